//! UDP heartbeats: one small datagram a node sends every so often so peers
//! know it is alive, how far it has applied, and how busy it is.
//!
//! A heartbeat must fit one datagram through the Mycelium overlay without IP
//! fragmentation, so its encoding is bounded at compile time by
//! [`HEARTBEAT_BYTES_WORST`] `<=` [`HEARTBEAT_BYTES_MAX`] and built in a
//! fixed-capacity buffer: no allocation on the send or receive path.

use serde::{Deserialize, Serialize};

use crate::error::{DecodeError, EncodeError};
use crate::frame::read_varint_u32;
use crate::handshake::{Role, HELLO_MAGIC, PROTOCOL_VERSION};
use crate::limits::{
    CLUSTER_NAME_BYTES_MAX, HEARTBEAT_BYTES_MAX, HEARTBEAT_BYTES_WORST, HEARTBEAT_CRC_BYTES,
    HEARTBEAT_MAC_BYTES, LOAD_PERMILLE_MAX,
};
use crate::session::{BeatOpener, BeatSealer};

/// An encoded heartbeat: the bytes of one UDP datagram.
pub type HeartbeatBytes = heapless::Vec<u8, HEARTBEAT_BYTES_MAX>;

/// The liveness datagram. Field order is the wire order; `magic` and
/// `version` come first and stay first in every version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Always [`HELLO_MAGIC`].
    pub magic: u32,
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// The sender's cluster; receivers drop heartbeats of other clusters.
    pub cluster: heapless::String<CLUSTER_NAME_BYTES_MAX>,
    /// The sender's node id.
    pub node_id: u64,
    /// The sender's role.
    pub role: Role,
    /// Highest seq the sender has applied.
    pub applied_seq: u64,
    /// Highest seq the sender knows committed.
    pub commit_seq: u64,
    /// How busy the sender is, in per-mille (`0..=LOAD_PERMILLE_MAX`).
    pub load: u16,
    /// TCP port where the sender serves requests (0 = none); the master takes
    /// the host from the sender's authenticated session.
    pub serve_port: u16,
    /// The authenticated session whose keys sign this beat
    /// ([`Session::id`](crate::Session::id)).
    pub session: u64,
    /// The sender's beat counter in that session: 1, 2, 3, ...; receivers
    /// accept each at most once ([`ReplayWindow`](crate::ReplayWindow)).
    pub counter: u64,
}

impl Heartbeat {
    /// A heartbeat with this crate's magic and version and zero progress.
    pub fn new(
        cluster: heapless::String<CLUSTER_NAME_BYTES_MAX>,
        role: Role,
        node_id: u64,
    ) -> Self {
        Self {
            magic: HELLO_MAGIC,
            version: PROTOCOL_VERSION,
            cluster,
            node_id,
            role,
            applied_seq: 0,
            commit_seq: 0,
            load: 0,
            serve_port: 0,
            session: 0,
            counter: 0,
        }
    }

    /// Checks the magic, the version (a heartbeat of another version would
    /// encode but no peer of this version would decode it) and that `load`
    /// is at most `LOAD_PERMILLE_MAX`.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.magic != HELLO_MAGIC {
            return Err(DecodeError::BadMagic { found: self.magic });
        }
        if self.version != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                ours: PROTOCOL_VERSION,
                theirs: self.version,
            });
        }
        if self.load > LOAD_PERMILLE_MAX {
            return Err(DecodeError::LimitExceeded {
                what: "Heartbeat.load",
                limit: "LOAD_PERMILLE_MAX",
                len: usize::from(self.load),
                max: usize::from(LOAD_PERMILLE_MAX),
            });
        }
        Ok(())
    }
}

// Heartbeat datagram layout:
//
// | offset   | size     | field   | meaning                                  |
// |----------|----------|---------|------------------------------------------|
// | 0        | 4        | crc     | CRC-32 (IEEE) of the payload, u32 LE     |
// | 4        | 31..=145 | payload | postcard encoding of Heartbeat           |
// | 4 + len  | 16       | mac     | HMAC-SHA-256 of crc and payload, cut     |
//
// The payload's first two fields, magic (varint u32) and version (varint
// u16), are frozen. A protocol-1 beat has no MAC: its last 16 bytes are
// taken for one, so it fails the CRC check and is dropped as BadCrc.
const HEARTBEAT_CRC_OFFSET: usize = 0;
const HEARTBEAT_PAYLOAD_OFFSET: usize = HEARTBEAT_CRC_OFFSET + HEARTBEAT_CRC_BYTES;

// HEARTBEAT_BYTES_WORST counts the CRC in front of the payload.
const _: () = assert!(HEARTBEAT_PAYLOAD_OFFSET == HEARTBEAT_CRC_BYTES);
const _: () = assert!(HEARTBEAT_BYTES_WORST <= HEARTBEAT_BYTES_MAX);

/// Encodes `heartbeat` into one datagram of at most `HEARTBEAT_BYTES_MAX`,
/// signed by `sealer`: its `session` and `counter` fields are set from it.
pub fn encode_heartbeat(
    heartbeat: &Heartbeat,
    sealer: &mut BeatSealer,
) -> Result<HeartbeatBytes, EncodeError> {
    heartbeat.validate()?;
    let mut heartbeat = heartbeat.clone();
    (heartbeat.session, heartbeat.counter) = sealer.next_beat();
    let mut datagram = [0u8; HEARTBEAT_BYTES_MAX];
    let (crc_field, payload_room) = datagram.split_at_mut(HEARTBEAT_PAYLOAD_OFFSET);
    let room = payload_room.len().saturating_sub(HEARTBEAT_MAC_BYTES);
    let payload_room = payload_room.get_mut(..room).unwrap_or_default();
    let payload = postcard::to_slice(&heartbeat, payload_room).map_err(EncodeError::Serialize)?;
    let signed_len = HEARTBEAT_PAYLOAD_OFFSET + payload.len();
    crc_field.copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let mut out = HeartbeatBytes::from_slice(datagram.get(..signed_len).unwrap_or_default())
        .map_err(|()| EncodeError::Serialize(postcard::Error::SerializeBufferFull))?;
    let tag = sealer.tag(&out);
    out.extend_from_slice(&tag)
        .map_err(|()| EncodeError::Serialize(postcard::Error::SerializeBufferFull))?;
    Ok(out)
}

/// Decodes one heartbeat datagram without checking its MAC: enough to find
/// the session whose [`BeatOpener`] must then check it with
/// [`open_heartbeat`]. Nothing in a beat is to be believed before that.
///
/// Checks, in order: size, CRC, magic, version (a heartbeat of another
/// protocol version is [`DecodeError::UnsupportedVersion`] and should be
/// ignored), the postcard encoding, trailing bytes, and `load`.
pub fn decode_heartbeat(datagram: &[u8]) -> Result<Heartbeat, DecodeError> {
    Ok(split_heartbeat(datagram)?.0)
}

/// Decodes one heartbeat datagram and checks it with `opener`: its session,
/// its MAC, and that its counter is new.
pub fn open_heartbeat(datagram: &[u8], opener: &mut BeatOpener) -> Result<Heartbeat, DecodeError> {
    let (heartbeat, signed, tag) = split_heartbeat(datagram)?;
    opener.open(heartbeat.session, heartbeat.counter, signed, tag)?;
    Ok(heartbeat)
}

/// The heartbeat, the bytes its MAC covers, and the MAC.
fn split_heartbeat(datagram: &[u8]) -> Result<(Heartbeat, &[u8], &[u8]), DecodeError> {
    if datagram.len() > HEARTBEAT_BYTES_MAX {
        return Err(DecodeError::DatagramTooLarge {
            len: datagram.len(),
            max: HEARTBEAT_BYTES_MAX,
        });
    }
    let min = HEARTBEAT_CRC_BYTES + HEARTBEAT_MAC_BYTES;
    if datagram.len() < min {
        return Err(DecodeError::DatagramTooShort {
            len: datagram.len(),
            min,
        });
    }
    let (signed, tag) = datagram.split_at(datagram.len() - HEARTBEAT_MAC_BYTES);
    let Some((crc_field, payload)) = signed.split_first_chunk::<HEARTBEAT_CRC_BYTES>() else {
        return Err(DecodeError::DatagramTooShort {
            len: datagram.len(),
            min,
        });
    };
    let expected = u32::from_le_bytes(*crc_field);
    let actual = crc32fast::hash(payload);
    if expected != actual {
        return Err(DecodeError::BadCrc { expected, actual });
    }
    let (found, rest) = read_varint_u32(payload).map_err(DecodeError::Malformed)?;
    if found != HELLO_MAGIC {
        return Err(DecodeError::BadMagic { found });
    }
    let (version, _) = read_varint_u32(rest).map_err(DecodeError::Malformed)?;
    if version != u32::from(PROTOCOL_VERSION) {
        return Err(DecodeError::UnsupportedVersion {
            ours: PROTOCOL_VERSION,
            theirs: u16::try_from(version).unwrap_or(u16::MAX),
        });
    }
    let heartbeat = match postcard::take_from_bytes::<Heartbeat>(payload) {
        Ok((heartbeat, [])) => heartbeat,
        Ok((_, rest)) => return Err(DecodeError::TrailingBytes { extra: rest.len() }),
        Err(detail) => return Err(DecodeError::Malformed(detail)),
    };
    heartbeat.validate()?;
    Ok((heartbeat, signed, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat() -> Heartbeat {
        let mut beat = Heartbeat::new(heapless::String::try_from("lab").unwrap(), Role::Worker, 3);
        beat.applied_seq = 1000;
        beat.commit_seq = 999;
        beat.load = 250;
        beat.serve_port = 7401;
        beat
    }

    fn session_pair() -> (crate::Session, crate::Session) {
        crate::auth::tests::session_pair()
    }

    #[test]
    fn heartbeat_round_trips_and_is_accepted_once() {
        let (mut connector, mut acceptor) = session_pair();
        let bytes = encode_heartbeat(&heartbeat(), &mut connector.beats_out).unwrap();
        let opened = open_heartbeat(&bytes, &mut acceptor.beats_in).unwrap();
        let mut want = heartbeat();
        (want.session, want.counter) = (connector.id, 1);
        assert_eq!(opened, want);
        assert_eq!(decode_heartbeat(&bytes), Ok(want));
        assert_eq!(
            open_heartbeat(&bytes, &mut acceptor.beats_in),
            Err(DecodeError::Replayed { counter: 1 })
        );
    }

    #[test]
    fn a_changed_or_misdirected_beat_fails_its_mac() {
        let (mut connector, mut acceptor) = session_pair();
        let mut beat = heartbeat();
        beat.applied_seq = u64::MAX;
        let bytes = encode_heartbeat(&beat, &mut connector.beats_out).unwrap();
        // Sent back to its sender: the other direction's key.
        assert!(matches!(
            open_heartbeat(&bytes, &mut connector.beats_in),
            Err(DecodeError::BadMac { .. })
        ));
        let mut changed = bytes.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert!(matches!(
            open_heartbeat(&changed, &mut acceptor.beats_in),
            Err(DecodeError::BadMac { .. })
        ));
        assert!(open_heartbeat(&bytes, &mut acceptor.beats_in).is_ok());
    }

    #[test]
    fn load_over_a_thousand_permille_is_refused_both_ways() {
        let mut beat = heartbeat();
        beat.load = LOAD_PERMILLE_MAX + 1;
        let (mut connector, _) = session_pair();
        assert!(matches!(
            encode_heartbeat(&beat, &mut connector.beats_out),
            Err(EncodeError::Rejected(DecodeError::LimitExceeded { .. }))
        ));
    }
}
