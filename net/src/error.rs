//! The crate's errors: what went wrong decoding bytes from a peer, encoding a
//! message for one, or authenticating one. The error of parsing an
//! allowlist entry, [`CidrError`](crate::CidrError), lives beside the
//! [`Cidr`](crate::Cidr) it carries: each needs the other.
//!
//! Every message names the limit constant it enforces, so an operator can
//! find the rule in `net/WIRE.md` and in [`limits`](crate::limits).

use core::fmt;

use crate::handshake::HELLO_MAGIC;
use crate::limits::MESSAGE_TAG_COUNT;

/// Bytes from a peer that are not a valid frame, message or heartbeat.
///
/// Every variant except [`DecodeError::UnsupportedVersion`] means the peer is
/// broken or hostile. A byte stream cannot be resynchronised after an error:
/// close the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame header announces a payload longer than `FRAME_PAYLOAD_BYTES_MAX`.
    FrameTooLarge {
        /// Payload length from the header.
        len: usize,
        /// `FRAME_PAYLOAD_BYTES_MAX`.
        max: usize,
    },
    /// A heartbeat datagram is longer than `HEARTBEAT_BYTES_MAX`.
    DatagramTooLarge {
        /// Datagram length.
        len: usize,
        /// `HEARTBEAT_BYTES_MAX`.
        max: usize,
    },
    /// A heartbeat datagram is too short to hold even its CRC.
    DatagramTooShort {
        /// Datagram length.
        len: usize,
        /// `HEARTBEAT_CRC_BYTES`.
        min: usize,
    },
    /// The CRC32 of the payload does not match the one sent with it.
    BadCrc {
        /// CRC from the header.
        expected: u32,
        /// CRC computed over the payload received.
        actual: u32,
    },
    /// postcard could not decode the payload (truncated, bad varint, bad
    /// UTF-8, out-of-range enum or option tag, ...).
    Malformed(postcard::Error),
    /// The payload starts with a message tag this version does not know:
    /// the peer speaks a newer protocol or is broken.
    UnknownMessage {
        /// The tag (postcard variant index) received.
        tag: u32,
    },
    /// The payload holds bytes after the end of the message.
    TrailingBytes {
        /// Bytes left over.
        extra: usize,
    },
    /// A field is longer, or a list holds more entries, than its limit.
    LimitExceeded {
        /// Which field, e.g. `"Put.key"`.
        what: &'static str,
        /// Name of the limit constant, e.g. `"KEY_BYTES_MAX"`.
        limit: &'static str,
        /// Length, count or value received.
        len: usize,
        /// Value of the limit.
        max: usize,
    },
    /// A `Hello` or heartbeat does not start with `HELLO_MAGIC`: not a hypha peer.
    BadMagic {
        /// Magic received.
        found: u32,
    },
    /// A `Hello` or heartbeat from another protocol version that this version
    /// cannot decode. Answer a `Hello` with `Refuse` `VersionMismatch`.
    UnsupportedVersion {
        /// `PROTOCOL_VERSION`.
        ours: u16,
        /// Version the peer sent.
        theirs: u16,
    },
    /// A message breaks a protocol rule other than a length limit.
    Invalid(&'static str),
    /// An authenticated frame or heartbeat whose MAC does not match: it was
    /// injected, replayed, reordered or changed in transit (or a frame before
    /// it was dropped). The session ends.
    BadMac {
        /// The counter the frame or heartbeat was checked under.
        counter: u64,
    },
    /// A heartbeat with a valid MAC whose counter was seen already, or is
    /// older than the replay window: a replay.
    Replayed {
        /// The heartbeat's counter.
        counter: u64,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FrameTooLarge { len, max } => write!(
                f,
                "frame payload of {len} bytes exceeds FRAME_PAYLOAD_BYTES_MAX ({max}); \
                 the peer is broken or not a hypha node"
            ),
            Self::DatagramTooLarge { len, max } => write!(
                f,
                "heartbeat datagram of {len} bytes exceeds HEARTBEAT_BYTES_MAX ({max})"
            ),
            Self::DatagramTooShort { len, min } => write!(
                f,
                "heartbeat datagram of {len} bytes is shorter than its CRC \
                 (HEARTBEAT_CRC_BYTES = {min})"
            ),
            Self::BadCrc { expected, actual } => write!(
                f,
                "CRC mismatch: sent {expected:#010x}, computed {actual:#010x}; \
                 the bytes were corrupted in transit"
            ),
            Self::Malformed(detail) => write!(f, "malformed message: {detail}"),
            Self::UnknownMessage { tag } => write!(
                f,
                "unknown message tag {tag} (this version knows 0..MESSAGE_TAG_COUNT = {}); \
                 the peer runs a newer protocol",
                MESSAGE_TAG_COUNT
            ),
            Self::TrailingBytes { extra } => {
                write!(f, "{extra} bytes after the end of the message")
            }
            Self::LimitExceeded {
                what,
                limit,
                len,
                max,
            } => write!(f, "{what} is {len}, over {limit} ({max})"),
            Self::BadMagic { found } => write!(
                f,
                "bad magic {found:#010x}, want HELLO_MAGIC ({:#010x}); not a hypha peer",
                HELLO_MAGIC
            ),
            Self::UnsupportedVersion { ours, theirs } => write!(
                f,
                "peer speaks protocol version {theirs}, this node speaks \
                 PROTOCOL_VERSION {ours}; upgrade one side"
            ),
            Self::Invalid(rule) => write!(f, "invalid message: {rule}"),
            Self::BadMac { counter } => write!(
                f,
                "frame or heartbeat {counter} fails its MAC: injected, replayed, reordered or \
                 changed in transit"
            ),
            Self::Replayed { counter } => write!(
                f,
                "heartbeat {counter} was seen already or is older than the replay window \
                 (HEARTBEAT_REPLAY_WINDOW): a replay"
            ),
        }
    }
}

/// A message that cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The message breaks a limit or rule, so the receiver would reject it;
    /// the inner error says which.
    Rejected(DecodeError),
    /// The encoded message is longer than `FRAME_PAYLOAD_BYTES_MAX`. The
    /// limits make this impossible for a message that passes validation; it
    /// is kept as an error so encoding has no panic path.
    FrameTooLarge {
        /// Encoded payload length.
        len: usize,
        /// `FRAME_PAYLOAD_BYTES_MAX`.
        max: usize,
    },
    /// postcard failed to serialize the message.
    Serialize(postcard::Error),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(why) => write!(f, "refusing to send a message peers reject: {why}"),
            Self::FrameTooLarge { len, max } => write!(
                f,
                "encoded message of {len} bytes exceeds FRAME_PAYLOAD_BYTES_MAX ({max})"
            ),
            Self::Serialize(detail) => write!(f, "cannot serialize message: {detail}"),
        }
    }
}

impl From<DecodeError> for EncodeError {
    fn from(why: DecodeError) -> Self {
        Self::Rejected(why)
    }
}

/// A failed handshake or an unusable key file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// The peer's proof does not match any key this node holds: it has
    /// another cluster key, or none (`--insecure-no-auth`).
    PeerHasAnotherKey,
    /// A key file that does not hold one or two keys of 64 hex digits.
    BadKeyFile(&'static str),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PeerHasAnotherKey => f.write_str(
                "the peer could not prove it holds this cluster's key: it has another cluster \
                 key (--cluster-key-file), or none (--insecure-no-auth)",
            ),
            Self::BadKeyFile(why) => write!(
                f,
                "bad cluster key file: {why} (make one with `hypha keygen PATH`)"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for AuthError {}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Rejected(why) => Some(why),
            _ => None,
        }
    }
}

/// A decode error surfaces as `InvalidData`, so a reader loop can use `?`.
#[cfg(feature = "std")]
impl From<DecodeError> for std::io::Error {
    fn from(why: DecodeError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, why)
    }
}

/// An encode error surfaces as `InvalidInput`, so a writer loop can use `?`.
#[cfg(feature = "std")]
impl From<EncodeError> for std::io::Error {
    fn from(why: EncodeError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn limit_messages_quote_the_constant() {
        let why = DecodeError::LimitExceeded {
            what: "Put.key",
            limit: "KEY_BYTES_MAX",
            len: 5000,
            max: 4096,
        };
        assert_eq!(
            why.to_string(),
            "Put.key is 5000, over KEY_BYTES_MAX (4096)"
        );
        let why = DecodeError::FrameTooLarge { len: 1, max: 0 };
        assert!(why.to_string().contains("FRAME_PAYLOAD_BYTES_MAX"));
    }
}
