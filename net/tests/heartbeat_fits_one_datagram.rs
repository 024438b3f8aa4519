//! A heartbeat with every field at its largest fits one 1352-byte datagram,
//! and every broken datagram is a `DecodeError`.
mod common;

use common::{cluster, TestResult};
use hypha_net::{
    decode_heartbeat, encode_heartbeat, DecodeError, EncodeError, Heartbeat, Role,
    CLUSTER_NAME_BYTES_MAX, HEARTBEAT_BYTES_MAX, HEARTBEAT_BYTES_WORST, HEARTBEAT_CRC_BYTES,
    HELLO_MAGIC, LOAD_PERMILLE_MAX, PROTOCOL_VERSION,
};

fn worst_case() -> Heartbeat {
    Heartbeat {
        magic: HELLO_MAGIC,
        version: PROTOCOL_VERSION,
        cluster: cluster(&"é".repeat(CLUSTER_NAME_BYTES_MAX / 2)),
        node_id: u64::MAX,
        role: Role::Client,
        applied_seq: u64::MAX,
        commit_seq: u64::MAX,
        load: LOAD_PERMILLE_MAX,
        serve_port: u16::MAX,
    }
}

fn small() -> Heartbeat {
    let mut beat = Heartbeat::new(cluster("lab"), Role::Worker, 3);
    beat.applied_seq = 1000;
    beat
}

#[test]
fn worst_case_heartbeat_fits_one_datagram() -> TestResult {
    let bytes = encode_heartbeat(&worst_case())?;
    // The computed bound is exact but for the version: 1 takes one varint
    // byte, the bound allows any u16 (three).
    let version_slack = 2;
    assert_eq!(bytes.len(), HEARTBEAT_BYTES_WORST - version_slack);
    assert!(bytes.len() <= HEARTBEAT_BYTES_MAX);
    assert_eq!(decode_heartbeat(&bytes)?, worst_case());
    Ok(())
}

#[test]
fn heartbeat_round_trips() -> TestResult {
    let bytes = encode_heartbeat(&small())?;
    assert_eq!(decode_heartbeat(&bytes)?, small());
    Ok(())
}

#[test]
fn short_and_long_datagrams_are_refused() {
    for len in 0..HEARTBEAT_CRC_BYTES {
        assert_eq!(
            decode_heartbeat(&vec![0; len]),
            Err(DecodeError::DatagramTooShort {
                len,
                min: HEARTBEAT_CRC_BYTES
            })
        );
    }
    assert_eq!(
        decode_heartbeat(&vec![0; HEARTBEAT_BYTES_MAX + 1]),
        Err(DecodeError::DatagramTooLarge {
            len: HEARTBEAT_BYTES_MAX + 1,
            max: HEARTBEAT_BYTES_MAX
        })
    );
}

#[test]
fn a_flipped_bit_is_a_bad_crc() -> TestResult {
    let bytes = encode_heartbeat(&small())?;
    for index in 0..bytes.len() {
        let mut broken = bytes.to_vec();
        broken[index] ^= 1;
        assert!(
            matches!(decode_heartbeat(&broken), Err(DecodeError::BadCrc { .. })),
            "byte {index}"
        );
    }
    Ok(())
}

/// A datagram with a correct CRC around `payload`.
fn datagram(payload: &[u8]) -> Vec<u8> {
    let mut out = crc32fast::hash(payload).to_le_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

#[test]
fn other_magic_and_versions_are_refused_before_parsing_the_rest() {
    let mut payload = postcard::to_allocvec(&0x1234_5678u32).unwrap_or_default();
    payload.push(1);
    assert_eq!(
        decode_heartbeat(&datagram(&payload)),
        Err(DecodeError::BadMagic { found: 0x1234_5678 })
    );

    let mut payload = postcard::to_allocvec(&HELLO_MAGIC).unwrap_or_default();
    payload.extend_from_slice(&[2, 0xff]); // version 2, then anything
    assert_eq!(
        decode_heartbeat(&datagram(&payload)),
        Err(DecodeError::UnsupportedVersion {
            ours: PROTOCOL_VERSION,
            theirs: 2
        })
    );
}

#[test]
fn truncated_garbage_and_trailing_payloads_are_refused() -> TestResult {
    let bytes = encode_heartbeat(&small())?;
    let payload = &bytes[HEARTBEAT_CRC_BYTES..];
    for cut in 0..payload.len() {
        assert!(
            matches!(
                decode_heartbeat(&datagram(&payload[..cut])),
                Err(DecodeError::Malformed(_))
            ),
            "cut {cut}"
        );
    }
    let mut long = payload.to_vec();
    long.push(0);
    assert_eq!(
        decode_heartbeat(&datagram(&long)),
        Err(DecodeError::TrailingBytes { extra: 1 })
    );
    Ok(())
}

#[test]
fn load_over_the_limit_is_refused_both_ways() {
    let mut beat = small();
    beat.load = LOAD_PERMILLE_MAX + 1;
    let expected = DecodeError::LimitExceeded {
        what: "Heartbeat.load",
        limit: "LOAD_PERMILLE_MAX",
        len: 1001,
        max: 1000,
    };
    assert_eq!(
        encode_heartbeat(&beat),
        Err(EncodeError::Rejected(expected.clone()))
    );
    let payload = postcard::to_allocvec(&beat).unwrap_or_default();
    assert_eq!(decode_heartbeat(&datagram(&payload)), Err(expected));
}

#[test]
fn a_heartbeat_of_another_version_is_not_encoded() {
    let mut hb = small();
    hb.version = PROTOCOL_VERSION + 1;
    assert!(matches!(
        encode_heartbeat(&hb),
        Err(EncodeError::Rejected(
            DecodeError::UnsupportedVersion { .. }
        ))
    ));
}
