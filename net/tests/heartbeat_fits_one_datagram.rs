//! A heartbeat with every field at its largest fits one 1352-byte datagram,
//! and every broken datagram is a `DecodeError`.
mod common;

use common::{cluster, other_session_pair, session_pair, TestResult};
use hypha_net::{
    decode_heartbeat, encode_heartbeat, open_heartbeat, varint_bytes, DecodeError, EncodeError,
    Heartbeat, Role, CLUSTER_NAME_BYTES_MAX, HEARTBEAT_BYTES_MAX, HEARTBEAT_BYTES_WORST,
    HEARTBEAT_CRC_BYTES, HEARTBEAT_MAC_BYTES, HELLO_MAGIC, LOAD_PERMILLE_MAX, PROTOCOL_VERSION,
    VARINT_U16_BYTES_MAX, VARINT_U64_BYTES_MAX,
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
        // Overwritten by the sealer: the session's id and its next counter.
        session: u64::MAX,
        counter: u64::MAX,
    }
}

fn small() -> Heartbeat {
    let mut beat = Heartbeat::new(cluster("lab"), Role::Worker, 3);
    beat.applied_seq = 1000;
    beat
}

/// `beat` as the sealer of `session` sends it as its `counter`-th beat.
fn as_sent(mut beat: Heartbeat, session: u64, counter: u64) -> Heartbeat {
    beat.session = session;
    beat.counter = counter;
    beat
}

#[test]
fn worst_case_heartbeat_fits_one_datagram() -> TestResult {
    let (mut connector, _) = session_pair();
    let bytes = encode_heartbeat(&worst_case(), &mut connector.beats_out)?;
    // The computed bound is exact but for three fields the encoder does not
    // let us set to their largest:
    // * version: 3 takes one varint byte, the bound allows any u16 (three);
    // * counter: the sealer sets it, and a fresh sealer's first beat is 1
    //   (one byte), the bound allows any u64 (ten);
    // * session: the sealer sets it to the session id, the first 8 bytes of
    //   the transcript hash; the fixed session's id, 0x5c62529d6da63e93,
    //   has its top bit clear, so it takes nine bytes: one byte of slack.
    let version_slack = VARINT_U16_BYTES_MAX - varint_bytes(u64::from(PROTOCOL_VERSION));
    let counter_slack = VARINT_U64_BYTES_MAX - varint_bytes(1);
    let session_slack = VARINT_U64_BYTES_MAX - varint_bytes(connector.id);
    assert_eq!((version_slack, counter_slack, session_slack), (2, 9, 1));
    assert_eq!(
        bytes.len(),
        HEARTBEAT_BYTES_WORST - version_slack - counter_slack - session_slack
    );
    assert!(bytes.len() <= HEARTBEAT_BYTES_MAX);
    assert_eq!(
        decode_heartbeat(&bytes)?,
        as_sent(worst_case(), connector.id, 1)
    );
    Ok(())
}

#[test]
fn heartbeat_round_trips() -> TestResult {
    let (mut connector, mut acceptor) = session_pair();
    for counter in 1..=3 {
        let bytes = encode_heartbeat(&small(), &mut connector.beats_out)?;
        let sent = as_sent(small(), connector.id, counter);
        assert_eq!(decode_heartbeat(&bytes)?, sent);
        assert_eq!(open_heartbeat(&bytes, &mut acceptor.beats_in)?, sent);
    }
    Ok(())
}

#[test]
fn heartbeats_may_come_late_but_only_once() -> TestResult {
    let (mut connector, mut acceptor) = session_pair();
    let beats = (0..3)
        .map(|_| encode_heartbeat(&small(), &mut connector.beats_out))
        .collect::<Result<Vec<_>, _>>()?;
    // UDP reorders: 3, 1, 2 are all fresh.
    for (index, counter) in [(2, 3), (0, 1), (1, 2)] {
        assert_eq!(
            open_heartbeat(&beats[index], &mut acceptor.beats_in)?.counter,
            counter
        );
    }
    for (index, beat) in beats.iter().enumerate() {
        assert_eq!(
            open_heartbeat(beat, &mut acceptor.beats_in),
            Err(DecodeError::Replayed {
                counter: index as u64 + 1
            })
        );
    }
    Ok(())
}

#[test]
fn a_beat_of_another_session_is_refused() -> TestResult {
    let (mut connector, _) = session_pair();
    let (_, mut stranger) = other_session_pair();
    let bytes = encode_heartbeat(&small(), &mut connector.beats_out)?;
    assert_eq!(
        open_heartbeat(&bytes, &mut stranger.beats_in),
        Err(DecodeError::Invalid("heartbeat of another session"))
    );
    Ok(())
}

#[test]
fn short_and_long_datagrams_are_refused() {
    let min = HEARTBEAT_CRC_BYTES + HEARTBEAT_MAC_BYTES;
    assert_eq!(min, 4 + 16);
    for len in 0..min {
        assert_eq!(
            decode_heartbeat(&vec![0; len]),
            Err(DecodeError::DatagramTooShort { len, min })
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
fn a_flipped_bit_is_a_bad_crc_or_a_bad_mac() -> TestResult {
    let (mut connector, acceptor) = session_pair();
    let bytes = encode_heartbeat(&small(), &mut connector.beats_out)?;
    let mac_at = bytes.len() - HEARTBEAT_MAC_BYTES;
    for index in 0..bytes.len() {
        let mut broken = bytes.to_vec();
        broken[index] ^= 1;
        let mut opener = acceptor.beats_in.clone();
        if index < mac_at {
            // The CRC covers the payload only; a flip in either breaks it.
            assert!(
                matches!(decode_heartbeat(&broken), Err(DecodeError::BadCrc { .. })),
                "byte {index}"
            );
            assert!(
                matches!(
                    open_heartbeat(&broken, &mut opener),
                    Err(DecodeError::BadCrc { .. })
                ),
                "byte {index}"
            );
        } else {
            // decode_heartbeat does not check the MAC; open_heartbeat does.
            assert_eq!(
                decode_heartbeat(&broken)?,
                as_sent(small(), connector.id, 1),
                "byte {index}"
            );
            assert_eq!(
                open_heartbeat(&broken, &mut opener),
                Err(DecodeError::BadMac { counter: 1 }),
                "byte {index}"
            );
        }
    }
    Ok(())
}

/// A datagram with a correct CRC around `payload`, and a MAC of zeros
/// (`decode_heartbeat` does not check it).
fn datagram(payload: &[u8]) -> Vec<u8> {
    let mut out = crc32fast::hash(payload).to_le_bytes().to_vec();
    out.extend_from_slice(payload);
    out.extend_from_slice(&[0; HEARTBEAT_MAC_BYTES]);
    out
}

#[test]
fn a_beat_without_a_valid_mac_is_not_opened() -> TestResult {
    let (_, mut acceptor) = session_pair();
    let forged = as_sent(small(), acceptor.id, 1);
    let payload = postcard::to_allocvec(&forged)?;
    let bytes = datagram(&payload);
    assert_eq!(decode_heartbeat(&bytes)?, forged);
    assert_eq!(
        open_heartbeat(&bytes, &mut acceptor.beats_in),
        Err(DecodeError::BadMac { counter: 1 })
    );
    Ok(())
}

#[test]
fn other_magic_and_versions_are_refused_before_parsing_the_rest() {
    let mut payload = postcard::to_allocvec(&0x1234_5678u32).unwrap_or_default();
    payload.push(1);
    assert_eq!(
        decode_heartbeat(&datagram(&payload)),
        Err(DecodeError::BadMagic { found: 0x1234_5678 })
    );

    for theirs in [PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1] {
        let mut payload = postcard::to_allocvec(&HELLO_MAGIC).unwrap_or_default();
        payload.extend(postcard::to_allocvec(&theirs).unwrap_or_default());
        payload.push(0xff); // then anything
        assert_eq!(
            decode_heartbeat(&datagram(&payload)),
            Err(DecodeError::UnsupportedVersion {
                ours: PROTOCOL_VERSION,
                theirs
            })
        );
    }
}

#[test]
fn a_version_1_heartbeat_is_refused() {
    // A whole protocol-1 beat as a v1 node sends it: CRC of everything
    // after it, no session, counter or MAC. Version 2 takes its last 16
    // bytes as the MAC and checks the CRC over the bytes in between, before
    // it reads the version: so today it is a `BadCrc`, not an
    // `UnsupportedVersion` (either way it is dropped, never decoded).
    let mut payload = postcard::to_allocvec(&HELLO_MAGIC).unwrap_or_default();
    payload.push(1);
    payload.extend_from_slice(&[3, b'l', b'a', b'b', 3, 1, 0xac, 0x02, 0xab, 0x02]);
    payload.extend_from_slice(&[0xfa, 0x01, 0xe9, 0x39]);
    let mut v1 = crc32fast::hash(&payload).to_le_bytes().to_vec();
    v1.extend_from_slice(&payload);
    let result = decode_heartbeat(&v1);
    assert!(
        matches!(
            result,
            Err(DecodeError::BadCrc { .. }
                | DecodeError::UnsupportedVersion {
                    ours: PROTOCOL_VERSION,
                    theirs: 1
                })
        ),
        "{result:?}"
    );
}

#[test]
fn truncated_garbage_and_trailing_payloads_are_refused() -> TestResult {
    let (mut connector, _) = session_pair();
    let bytes = encode_heartbeat(&small(), &mut connector.beats_out)?;
    let payload = &bytes[HEARTBEAT_CRC_BYTES..bytes.len() - HEARTBEAT_MAC_BYTES];
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
    let (mut connector, _) = session_pair();
    assert_eq!(
        encode_heartbeat(&beat, &mut connector.beats_out),
        Err(EncodeError::Rejected(expected.clone()))
    );
    let payload = postcard::to_allocvec(&beat).unwrap_or_default();
    assert_eq!(decode_heartbeat(&datagram(&payload)), Err(expected));
}

#[test]
fn a_heartbeat_of_another_version_is_not_encoded() {
    let mut hb = small();
    hb.version = PROTOCOL_VERSION + 1;
    let (mut connector, _) = session_pair();
    assert!(matches!(
        encode_heartbeat(&hb, &mut connector.beats_out),
        Err(EncodeError::Rejected(
            DecodeError::UnsupportedVersion { .. }
        ))
    ));
}
