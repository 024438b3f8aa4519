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
    LOAD_PERMILLE_MAX,
};

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
    /// TCP port where the sender serves requests (0 = none); the host is the
    /// datagram's source address.
    pub serve_port: u16,
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
// | offset | size     | field   | meaning                                  |
// |--------|----------|---------|------------------------------------------|
// | 0      | 4        | crc     | CRC-32 (IEEE) of the payload, u32 LE     |
// | 4      | 13..=109 | payload | postcard encoding of Heartbeat           |
//
// The payload's first two fields, magic (varint u32) and version (varint
// u16), are frozen so any version can recognise and skip another's beats.
const HEARTBEAT_CRC_OFFSET: usize = 0;
const HEARTBEAT_PAYLOAD_OFFSET: usize = HEARTBEAT_CRC_OFFSET + HEARTBEAT_CRC_BYTES;

// HEARTBEAT_BYTES_WORST counts the CRC in front of the payload.
const _: () = assert!(HEARTBEAT_PAYLOAD_OFFSET == HEARTBEAT_CRC_BYTES);
const _: () = assert!(HEARTBEAT_BYTES_WORST <= HEARTBEAT_BYTES_MAX);

/// Encodes `heartbeat` into one datagram of at most `HEARTBEAT_BYTES_MAX`.
pub fn encode_heartbeat(heartbeat: &Heartbeat) -> Result<HeartbeatBytes, EncodeError> {
    heartbeat.validate()?;
    let mut datagram = [0u8; HEARTBEAT_BYTES_MAX];
    let (crc_field, payload_room) = datagram.split_at_mut(HEARTBEAT_PAYLOAD_OFFSET);
    let payload = postcard::to_slice(heartbeat, payload_room).map_err(EncodeError::Serialize)?;
    let len = HEARTBEAT_PAYLOAD_OFFSET + payload.len();
    crc_field.copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let used = datagram.get(..len).unwrap_or_default();
    HeartbeatBytes::from_slice(used)
        .map_err(|()| EncodeError::Serialize(postcard::Error::SerializeBufferFull))
}

/// Decodes one heartbeat datagram.
///
/// Checks, in order: size, CRC, magic, version (a heartbeat of another
/// protocol version is [`DecodeError::UnsupportedVersion`] and should be
/// ignored), the postcard encoding, trailing bytes, and `load`.
pub fn decode_heartbeat(datagram: &[u8]) -> Result<Heartbeat, DecodeError> {
    if datagram.len() > HEARTBEAT_BYTES_MAX {
        return Err(DecodeError::DatagramTooLarge {
            len: datagram.len(),
            max: HEARTBEAT_BYTES_MAX,
        });
    }
    let Some((crc_field, payload)) = datagram.split_first_chunk::<HEARTBEAT_CRC_BYTES>() else {
        return Err(DecodeError::DatagramTooShort {
            len: datagram.len(),
            min: HEARTBEAT_CRC_BYTES,
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
    Ok(heartbeat)
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

    #[test]
    fn heartbeat_round_trips() {
        let bytes = encode_heartbeat(&heartbeat()).unwrap();
        assert_eq!(decode_heartbeat(&bytes), Ok(heartbeat()));
    }

    #[test]
    fn load_over_a_thousand_permille_is_refused_both_ways() {
        let mut beat = heartbeat();
        beat.load = LOAD_PERMILLE_MAX + 1;
        assert!(matches!(
            encode_heartbeat(&beat),
            Err(EncodeError::Rejected(DecodeError::LimitExceeded { .. }))
        ));
    }
}
