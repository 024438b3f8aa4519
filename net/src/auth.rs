//! Authentication with the cluster key: the challenge-response that opens
//! every connection, the per-direction session keys it derives, and the MAC
//! that every later frame and every heartbeat carries.
//!
//! Sans-IO, no allocation: the caller supplies the random nonces and moves
//! the bytes. The exchange (`net/WIRE.md` §4):
//!
//! ```text
//! connector                                    acceptor
//!   Hello{..., nonce_c}              ------>     (plain frame, CRC only)
//!                                    <------     Challenge{nonce_a, proof_a}
//!   checks proof_a with its keys
//!   Prove{proof_c}                   ------>     checks proof_c
//!   ======= every later frame carries a MAC with the session keys =======
//!                                    <------     Welcome / Refuse
//! ```
//!
//! `th` = SHA-256("hypha/2 transcript" ‖ postcard(Hello) ‖ nonce_a) binds
//! both nonces and every field of the `Hello`. `proof_a` and `proof_c` are
//! HMAC-SHA-256 under the cluster key of `th` with distinct labels, so a
//! proof can neither be replayed into another connection (fresh nonces on
//! both sides) nor reflected to the other side (the labels). The session
//! keys come from HKDF-SHA-256 with the cluster key as input and `th` as
//! salt, one per direction and use.
//!
//! This is HMAC and HKDF from RustCrypto, used as specified; nothing here is
//! a new primitive.

use hkdf::Hkdf;
use hmac::Mac;
use sha2::{Digest, Sha256};

use crate::error::AuthError;
use crate::handshake::{Challenge, Hello, Prove};
use crate::limits::{HELLO_MESSAGE_BYTES_WORST, NONCE_BYTES, PROOF_BYTES};
use crate::session::{BeatOpener, BeatSealer, HmacSha256, Opener, Sealer};

/// Bytes of a cluster key.
pub const CLUSTER_KEY_BYTES: usize = 32;
/// Most keys a node holds at once: the current one and the next (rotation).
pub const CLUSTER_KEYS_MAX: usize = 2;

const LABEL_TRANSCRIPT: &[u8] = b"hypha/2 transcript";
const LABEL_PROOF_ACCEPTOR: &[u8] = b"hypha/2 acceptor proof";
const LABEL_PROOF_CONNECTOR: &[u8] = b"hypha/2 connector proof";
const LABEL_FRAMES_FROM_CONNECTOR: &[u8] = b"hypha/2 frames from connector";
const LABEL_FRAMES_FROM_ACCEPTOR: &[u8] = b"hypha/2 frames from acceptor";
const LABEL_BEATS_FROM_CONNECTOR: &[u8] = b"hypha/2 heartbeats from connector";
const LABEL_BEATS_FROM_ACCEPTOR: &[u8] = b"hypha/2 heartbeats from acceptor";
const LABEL_KEY_ID: &[u8] = b"hypha/2 key id";

/// A 256-bit cluster key. Its `Debug` output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey([u8; CLUSTER_KEY_BYTES]);

impl core::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.is_insecure() {
            true => f.write_str("ClusterKey(insecure: all zeros)"),
            false => f.write_str("ClusterKey(..)"),
        }
    }
}

impl ClusterKey {
    /// The key a node uses when run without one (`--insecure-no-auth`, or on
    /// loopback only): all zeros, known to everybody. The handshake and the
    /// MACs still run, so such nodes talk to each other, but they prove
    /// nothing.
    pub const INSECURE: ClusterKey = ClusterKey([0; CLUSTER_KEY_BYTES]);

    /// A key from its bytes.
    pub const fn from_bytes(bytes: [u8; CLUSTER_KEY_BYTES]) -> Self {
        Self(bytes)
    }

    /// Whether this is [`ClusterKey::INSECURE`].
    pub fn is_insecure(&self) -> bool {
        self.0 == [0; CLUSTER_KEY_BYTES]
    }

    /// The key's bytes (for writing a key file).
    pub fn as_bytes(&self) -> &[u8; CLUSTER_KEY_BYTES] {
        &self.0
    }

    /// A name for the key that gives nothing of it away: the first 8 bytes
    /// of HMAC(key, "hypha/2 key id"). Tells which key a session was
    /// authenticated under, e.g. to end the sessions of a removed key.
    pub fn id(&self) -> u64 {
        let mut mac = keyed(&self.0);
        mac.update(LABEL_KEY_ID);
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let mut id = [0u8; 8];
        id.copy_from_slice(full.get(..8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(id)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, AuthError> {
        let digits = text.as_bytes();
        if digits.len() != 2 * CLUSTER_KEY_BYTES {
            return Err(AuthError::BadKeyFile("a key is 64 hex digits"));
        }
        let mut key = [0u8; CLUSTER_KEY_BYTES];
        for (byte, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
            let (Some(high), Some(low)) = (
                pair.first().copied().and_then(hex_digit),
                pair.get(1).copied().and_then(hex_digit),
            ) else {
                return Err(AuthError::BadKeyFile(
                    "a key holds only hex digits 0-9, a-f",
                ));
            };
            *byte = high << 4 | low;
        }
        Ok(Self(key))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The keys a node holds: it sends with the first and accepts any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterKeys {
    keys: heapless::Vec<ClusterKey, CLUSTER_KEYS_MAX>,
}

impl ClusterKeys {
    /// One key.
    pub fn one(key: ClusterKey) -> Self {
        let mut keys = heapless::Vec::new();
        // Capacity is CLUSTER_KEYS_MAX >= 1.
        let _ = keys.push(key);
        Self { keys }
    }

    /// Only [`ClusterKey::INSECURE`].
    pub fn insecure() -> Self {
        Self::one(ClusterKey::INSECURE)
    }

    /// Whether every key is the insecure one.
    pub fn is_insecure(&self) -> bool {
        self.keys.iter().all(ClusterKey::is_insecure)
    }

    /// The key this node proves itself with.
    pub fn current(&self) -> &ClusterKey {
        // `keys` is never empty: every constructor puts one in.
        self.keys.first().unwrap_or(&ClusterKey::INSECURE)
    }

    /// Every key, the current one first.
    pub fn all(&self) -> &[ClusterKey] {
        &self.keys
    }

    /// Parses a key file: one or two keys of 64 hex digits, one per line,
    /// the current key first; blank lines and lines starting with `#` are
    /// ignored. An all-zero key is refused (it is the public insecure key).
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let mut keys = heapless::Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = ClusterKey::from_hex(line)?;
            if key.is_insecure() {
                return Err(AuthError::BadKeyFile(
                    "an all-zero key is the public insecure key; make a key with `hypha keygen`",
                ));
            }
            keys.push(key).map_err(|_| {
                AuthError::BadKeyFile("a key file holds at most 2 keys (current, then next)")
            })?;
        }
        if keys.is_empty() {
            return Err(AuthError::BadKeyFile("the key file holds no key"));
        }
        Ok(Self { keys })
    }
}

fn transcript(hello: &Hello, nonce_a: &[u8; NONCE_BYTES]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(LABEL_TRANSCRIPT);
    // postcard of a Hello needs at most HELLO_MESSAGE_BYTES_WORST bytes (a
    // test encodes the largest one), so this cannot fail; if it could, both
    // sides would leave the same bytes out and the proofs would still need
    // the key.
    let mut buf = [0u8; HELLO_MESSAGE_BYTES_WORST];
    if let Ok(bytes) = postcard::to_slice(hello, &mut buf) {
        hasher.update(bytes);
    }
    hasher.update(nonce_a);
    hasher.finalize().into()
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    }
}

#[cold]
fn unreachable_hmac() -> HmacSha256 {
    // Never reached (see `keyed`); an HMAC under an empty key keeps this
    // function total without a panic in the codec.
    <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default())
}

fn proof(key: &ClusterKey, label: &[u8], th: &[u8; 32]) -> [u8; PROOF_BYTES] {
    let mut mac = keyed(&key.0);
    mac.update(label);
    mac.update(th);
    mac.finalize().into_bytes().into()
}

fn proof_matches(key: &ClusterKey, label: &[u8], th: &[u8; 32], sent: &[u8]) -> bool {
    let mut mac = keyed(&key.0);
    mac.update(label);
    mac.update(th);
    // Constant-time comparison.
    mac.verify_slice(sent).is_ok()
}

/// The acceptor's side of a handshake, between `Challenge` and `Prove`.
#[derive(Debug)]
pub struct Acceptor {
    key: ClusterKey,
    th: [u8; 32],
}

impl Acceptor {
    /// Answers `hello` with a challenge over `nonce` (fresh random bytes
    /// from the caller), proving the current key.
    pub fn new(keys: &ClusterKeys, hello: &Hello, nonce: [u8; NONCE_BYTES]) -> (Self, Challenge) {
        let key = keys.current().clone();
        let th = transcript(hello, &nonce);
        let challenge = Challenge {
            nonce,
            proof: proof(&key, LABEL_PROOF_ACCEPTOR, &th),
        };
        (Self { key, th }, challenge)
    }

    /// Checks the connector's proof; on success, the session.
    pub fn finish(self, prove: &Prove) -> Result<Session, AuthError> {
        if !proof_matches(&self.key, LABEL_PROOF_CONNECTOR, &self.th, &prove.proof) {
            return Err(AuthError::PeerHasAnotherKey);
        }
        Ok(Session::derive(&self.key, &self.th, Side::Acceptor))
    }
}

/// The connector's side of a handshake: checks the acceptor's proof with
/// each of `keys` and answers with its own under the key that matched.
pub fn connector_finish(
    keys: &ClusterKeys,
    hello: &Hello,
    challenge: &Challenge,
) -> Result<(Prove, Session), AuthError> {
    let th = transcript(hello, &challenge.nonce);
    let key = keys
        .all()
        .iter()
        .find(|key| proof_matches(key, LABEL_PROOF_ACCEPTOR, &th, &challenge.proof))
        .ok_or(AuthError::PeerHasAnotherKey)?;
    let prove = Prove {
        proof: proof(key, LABEL_PROOF_CONNECTOR, &th),
    };
    Ok((prove, Session::derive(key, &th, Side::Connector)))
}

#[derive(Clone, Copy)]
enum Side {
    Connector,
    Acceptor,
}

/// What an authenticated connection needs: the MAC state of each direction
/// and the keys of the heartbeats that belong to it.
#[derive(Clone, Debug)]
pub struct Session {
    /// Identifies the session in its heartbeats (the first 8 bytes of `th`).
    pub id: u64,
    /// [`ClusterKey::id`] of the key the session was authenticated under.
    pub key_id: u64,
    /// Seals the frames this side sends.
    pub sealer: Sealer,
    /// Checks the frames this side receives.
    pub opener: Opener,
    /// Seals the heartbeats this side sends.
    pub beats_out: BeatSealer,
    /// Checks the heartbeats this side receives.
    pub beats_in: BeatOpener,
}

fn derive_key(key: &ClusterKey, th: &[u8; 32], label: &[u8]) -> HmacSha256 {
    let hk = Hkdf::<Sha256>::new(Some(th), &key.0);
    let mut okm = [0u8; 32];
    // 32 bytes is far below HKDF-SHA-256's 8160-byte limit: cannot fail.
    let _ = hk.expand(label, &mut okm);
    keyed(&okm)
}

impl Session {
    fn derive(key: &ClusterKey, th: &[u8; 32], side: Side) -> Self {
        let (frames_out, frames_in, beats_out, beats_in) = match side {
            Side::Connector => (
                LABEL_FRAMES_FROM_CONNECTOR,
                LABEL_FRAMES_FROM_ACCEPTOR,
                LABEL_BEATS_FROM_CONNECTOR,
                LABEL_BEATS_FROM_ACCEPTOR,
            ),
            Side::Acceptor => (
                LABEL_FRAMES_FROM_ACCEPTOR,
                LABEL_FRAMES_FROM_CONNECTOR,
                LABEL_BEATS_FROM_ACCEPTOR,
                LABEL_BEATS_FROM_CONNECTOR,
            ),
        };
        let mut id = [0u8; 8];
        id.copy_from_slice(th.get(..8).unwrap_or(&[0; 8]));
        let id = u64::from_le_bytes(id);
        Self {
            key_id: key.id(),
            id,
            sealer: Sealer::new(derive_key(key, th, frames_out)),
            opener: Opener::new(derive_key(key, th, frames_in)),
            beats_out: BeatSealer::new(derive_key(key, th, beats_out), id),
            beats_in: BeatOpener::new(derive_key(key, th, beats_in), id),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Purpose, Role};

    pub(crate) const KEY: ClusterKey = ClusterKey([7; CLUSTER_KEY_BYTES]);
    const OTHER: ClusterKey = ClusterKey([9; CLUSTER_KEY_BYTES]);

    pub(crate) fn hello() -> Hello {
        let cluster = heapless::String::try_from("lab").unwrap();
        let mut hello = Hello::new(cluster, Role::Worker, 7, Purpose::Replicate);
        hello.nonce = [1; NONCE_BYTES];
        hello
    }

    fn handshake(
        connector: &ClusterKeys,
        acceptor: &ClusterKeys,
    ) -> Result<(Session, Session), AuthError> {
        let (pending, challenge) = Acceptor::new(acceptor, &hello(), [2; NONCE_BYTES]);
        let (prove, connector) = connector_finish(connector, &hello(), &challenge)?;
        Ok((connector, pending.finish(&prove)?))
    }

    /// A connector's and an acceptor's session under [`KEY`].
    pub(crate) fn session_pair() -> (Session, Session) {
        handshake(&ClusterKeys::one(KEY), &ClusterKeys::one(KEY)).unwrap()
    }

    #[test]
    fn both_sides_derive_matching_keys() {
        let (mut connector, mut acceptor) = session_pair();
        assert_eq!(connector.id, acceptor.id);
        assert_eq!((connector.key_id, acceptor.key_id), (KEY.id(), KEY.id()));
        assert_ne!(KEY.id(), OTHER.id());
        let mut frame = alloc::vec![1, 2, 3];
        let mut tag = alloc::vec::Vec::new();
        connector.sealer.seal(&frame, &mut tag);
        assert_eq!(acceptor.opener.open(&frame, &tag), Ok(()));
        tag.clear();
        acceptor.sealer.seal(&frame, &mut tag);
        // A frame sent back to its sender does not verify (direction keys).
        assert!(acceptor.opener.open(&frame, &tag).is_err());
        assert_eq!(connector.opener.open(&frame, &tag), Ok(()));
        frame[0] ^= 1;
        tag.clear();
        connector.sealer.seal(&[9], &mut tag);
        assert!(acceptor.opener.open(&frame, &tag).is_err());
    }

    #[test]
    fn a_peer_without_the_key_fails_either_way() {
        let ours = ClusterKeys::one(KEY);
        let theirs = ClusterKeys::one(OTHER);
        assert_eq!(
            handshake(&theirs, &ours).err(),
            Some(AuthError::PeerHasAnotherKey)
        );
        assert_eq!(
            handshake(&ours, &theirs).err(),
            Some(AuthError::PeerHasAnotherKey)
        );
        assert!(handshake(&ClusterKeys::insecure(), &ours).is_err());
        assert!(handshake(&ClusterKeys::insecure(), &ClusterKeys::insecure()).is_ok());
    }

    #[test]
    fn a_connector_cannot_prove_with_the_acceptors_proof() {
        // Reflection: the acceptor's own proof sent back as the connector's.
        let ours = ClusterKeys::one(KEY);
        let (pending, challenge) = Acceptor::new(&ours, &hello(), [2; NONCE_BYTES]);
        let reflected = Prove {
            proof: challenge.proof,
        };
        assert_eq!(
            pending.finish(&reflected).err(),
            Some(AuthError::PeerHasAnotherKey)
        );
    }

    #[test]
    fn a_proof_is_bound_to_the_hello_and_both_nonces() {
        let keys = ClusterKeys::one(KEY);
        let (_, challenge) = Acceptor::new(&keys, &hello(), [2; NONCE_BYTES]);
        let (prove, _) = connector_finish(&keys, &hello(), &challenge).unwrap();
        // The same proof replayed into a connection with another acceptor
        // nonce, or a Hello with one field changed, fails.
        let (other_nonce, _) = Acceptor::new(&keys, &hello(), [3; NONCE_BYTES]);
        assert!(other_nonce.finish(&prove).is_err());
        let mut changed = hello();
        changed.applied_seq = 1;
        let (other_hello, _) = Acceptor::new(&keys, &changed, [2; NONCE_BYTES]);
        assert!(other_hello.finish(&prove).is_err());
    }

    #[test]
    fn rotation_accepts_either_key_and_proves_with_the_first() {
        let old_new =
            ClusterKeys::parse(&alloc::format!("{}\n{}\n", hex(&KEY), hex(&OTHER))).unwrap();
        let new_old =
            ClusterKeys::parse(&alloc::format!("{}\n{}\n", hex(&OTHER), hex(&KEY))).unwrap();
        let new_only = ClusterKeys::one(OTHER);
        assert!(handshake(&old_new, &new_old).is_ok());
        assert!(handshake(&new_old, &old_new).is_ok());
        assert!(handshake(&new_only, &new_old).is_ok());
        assert!(handshake(&new_old, &new_only).is_ok());
        assert!(handshake(&ClusterKeys::one(KEY), &new_old).is_err());
    }

    fn hex(key: &ClusterKey) -> alloc::string::String {
        key.as_bytes()
            .iter()
            .map(|b| alloc::format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn key_files_are_parsed_strictly() {
        let text = alloc::format!("# cluster lab\n\n{}\n", hex(&KEY));
        assert_eq!(ClusterKeys::parse(&text), Ok(ClusterKeys::one(KEY)));
        assert_eq!(
            ClusterKeys::parse(&hex(&KEY).to_uppercase()),
            Ok(ClusterKeys::one(KEY))
        );
        let three = alloc::format!("{0}\n{0}\n{0}\n", hex(&KEY));
        for bad in [
            "",
            "# only a comment",
            "abc",
            &three,
            &"g".repeat(64),
            &"0".repeat(64),
        ] {
            assert!(
                matches!(ClusterKeys::parse(bad), Err(AuthError::BadKeyFile(_))),
                "{bad:?}"
            );
        }
        assert_eq!(alloc::format!("{KEY:?}"), "ClusterKey(..)");
    }
}
