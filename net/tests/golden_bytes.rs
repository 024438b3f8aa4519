//! The exact bytes of a few frames and a heartbeat, pinned. `net/WIRE.md`
//! works through the same examples byte by byte; if one of these changes,
//! the wire format changed.
//!
//! The handshake and the sealed frame are pinned under a fixed key
//! (`[7; 32]`), the fixed `hello()` (connector nonce `[0x11; 32]`) and a
//! fixed acceptor nonce (`[0x22; 32]`): their proofs and MACs pin the
//! transcript hash, the HMAC and HKDF constructions and every label.
mod common;

use common::{cluster, handshake_messages, hello, hex, record, session_pair, TestResult, KEY};
use hypha_net::{
    decode_frame, decode_heartbeat, encode_frame_to_vec, encode_heartbeat, open_heartbeat,
    seal_frame, Acceptor, ClusterKeys, Decoded, ErrorCode, FrameDecoder, Heartbeat, Message, Role,
    Version, FRAME_HEADER_BYTES,
};

/// Encodes `message`, compares with `golden`, and decodes `golden` back.
fn assert_frame(message: Message, golden: &str) -> TestResult {
    let frame = encode_frame_to_vec(&message)?;
    assert_eq!(hex(&frame), golden, "{}", message.name());
    assert_eq!(
        decode_frame(&frame)?,
        Decoded::Frame {
            message,
            consumed: frame.len()
        }
    );
    Ok(())
}

#[test]
fn hello_frame_is_pinned() -> TestResult {
    // len 51 | crc | tag 0, magic c8a0e5c204, version 3, "lab", Worker,
    // node 7, history 0, applied 300 (ac02), Replicate, nonce [0x11; 32]
    // (a fixed array: no length prefix), term 0, last term 0
    assert_frame(
        Message::Hello(hello()),
        "33000000 96ddaba2 00 c8a0e5c204 03 036c6162 01 07 00 ac02 00 \
         1111111111111111111111111111111111111111111111111111111111111111 00 00"
            .replace(' ', "")
            .as_str(),
    )
}

/// The acceptor's proof of key `[7; 32]` for `hello()` and nonce `[0x22; 32]`:
/// HMAC-SHA-256(key, "hypha/2 acceptor proof" ‖ th), where
/// th = SHA-256("hypha/2 transcript" ‖ postcard(Hello) ‖ nonce_a).
const ACCEPTOR_PROOF: &str = "750dac48c43204f02e326dcf0b85a0a6ec3e3840f1dd72a20ceb6015db3c9fd8";
/// The connector's proof: HMAC-SHA-256(key, "hypha/2 connector proof" ‖ th).
const CONNECTOR_PROOF: &str = "04593887da7d6c9d7c19ad627b6b71e571ce7922b451c39e51c90a256ab3cced";

#[test]
fn challenge_frame_is_pinned() -> TestResult {
    let (challenge, _) = handshake_messages();
    // len 65 | crc | tag 29 (1d), acceptor nonce [0x22; 32], proof (32 bytes)
    assert_frame(
        Message::Challenge(challenge),
        &format!(
            "41000000 cdd6754d 1d \
             2222222222222222222222222222222222222222222222222222222222222222 \
             {ACCEPTOR_PROOF}"
        )
        .replace(' ', ""),
    )
}

#[test]
fn prove_frame_is_pinned() -> TestResult {
    let (_, prove) = handshake_messages();
    // The pinned proof is the one the acceptor checks.
    let (pending, _) = Acceptor::new(&ClusterKeys::one(KEY), &hello(), [0x22; 32]);
    assert!(pending.finish(&prove).is_ok());
    // len 33 | crc | tag 30 (1e), proof (32 bytes)
    assert_frame(
        Message::Prove(prove),
        &format!("21000000 5c86be3b 1e {CONNECTOR_PROOF}").replace(' ', ""),
    )
}

#[test]
fn session_id_is_pinned() {
    // The first 8 bytes of th, little-endian.
    let (connector, acceptor) = session_pair();
    assert_eq!(connector.id, 0x5c62_529d_6da6_3e93);
    assert_eq!(acceptor.id, connector.id);
}

#[test]
fn sealed_frame_is_pinned() -> TestResult {
    let (mut connector, acceptor) = session_pair();
    let mut frame = Vec::new();
    seal_frame(
        &Message::Ping { nonce: 1 },
        &mut connector.sealer,
        &mut frame,
    )?;
    // len 2 | crc | tag 25 (19), nonce 1 | MAC: the first 16 bytes of
    // HMAC-SHA-256(k, counter 0 as u64 LE ‖ the 10 frame bytes), where
    // k = HKDF-SHA-256(salt th, key, info "hypha/2 frames from connector")
    let golden = "02000000 718bdead 19 01 af5582d77f6c28a94dbf0ac5fde5b7a4".replace(' ', "");
    assert_eq!(hex(&frame), golden);
    let mut decoder = FrameDecoder::new();
    decoder.authenticate(acceptor.opener);
    decoder.feed(&frame);
    assert_eq!(decoder.next_message()?, Some(Message::Ping { nonce: 1 }));
    assert_eq!(decoder.buffered_bytes(), 0);
    Ok(())
}

#[test]
fn put_frame_is_pinned() -> TestResult {
    // len 8 | crc | tag 4, req 2, key "k1", value "hi"
    let put = Message::Put {
        req_id: 2,
        key: b"k1".to_vec(),
        value: b"hi".to_vec(),
    };
    assert_frame(
        put,
        &"08000000 14548407 04 02 026b31 026869".replace(' ', ""),
    )
}

#[test]
fn records_frame_with_one_record_is_pinned() -> TestResult {
    // len 20 | crc | tag 20, term 2, first_seq 300, 1 record: seq 300,
    // id 1, Put, key "k1", value "hi", meta: term 2, no deadline, no
    // request id, not in a batch, not a refresh
    let mut r = record(300, b"k1", b"hi");
    r.meta.term = 2;
    let records = Message::Records {
        term: 2,
        first_seq: 300,
        records: vec![r],
    };
    assert_frame(
        records,
        &"14000000 de1be318 14 02 ac02 01 ac02 01 00 026b31 026869 02 00 00 00 00".replace(' ', ""),
    )
}

#[test]
fn heartbeat_datagram_is_pinned() -> TestResult {
    let mut beat = Heartbeat::new(cluster("lab"), Role::Worker, 3);
    beat.applied_seq = 300;
    beat.commit_seq = 299;
    beat.load = 250;
    beat.serve_port = 7401;
    // crc (of the payload) | magic, version 3, "lab", node 3, Worker,
    // applied 300, commit 299, load 250, port 7401, session
    // 0x5c62529d6da63e93 (93fd98edd6d394b15c), counter 1 | MAC: the first
    // 16 bytes of HMAC-SHA-256(k, crc ‖ payload), where
    // k = HKDF-SHA-256(salt th, key, info "hypha/2 heartbeats from connector")
    let golden = "5017f28b c8a0e5c204 03 036c6162 03 01 ac02 ab02 fa01 e939 \
                  93fd98edd6d394b15c 01 421ee11d1a03fd5ae22ade3e7629b763"
        .replace(' ', "");
    let (mut connector, mut acceptor) = session_pair();
    let bytes = encode_heartbeat(&beat, &mut connector.beats_out)?;
    assert_eq!(hex(&bytes), golden);
    beat.session = connector.id;
    beat.counter = 1;
    assert_eq!(decode_heartbeat(&bytes)?, beat);
    assert_eq!(open_heartbeat(&bytes, &mut acceptor.beats_in)?, beat);
    Ok(())
}

#[test]
fn option_list_and_nested_enum_payloads_are_pinned() -> TestResult {
    let cases = [
        (
            Message::Value {
                req_id: 1,
                applied_seq: 12,
                value: Some((11, b"v".to_vec())),
            },
            "0b 01 0c 01 0b 0176",
        ),
        (
            Message::Value {
                req_id: 1,
                applied_seq: 12,
                value: None,
            },
            "0b 01 0c 00",
        ),
        (
            Message::Deleted {
                req_id: 3,
                seq: None,
            },
            "0d 03 00",
        ),
        (
            Message::Versions {
                req_id: 4,
                applied_seq: 20,
                versions: vec![
                    Version {
                        seq: 20,
                        value: None,
                    },
                    Version {
                        seq: 3,
                        value: Some(b"o".to_vec()),
                    },
                ],
                omitted: 0,
            },
            "0e 04 14 02 14 00 03 01 016f 00",
        ),
        (
            Message::ScanPage {
                req_id: 5,
                applied_seq: 20,
                keys: vec![b"a".to_vec()],
                next_cursor: Some(3),
            },
            "0f 05 14 01 0161 01 03",
        ),
        (
            Message::error(
                9,
                ErrorCode::SyncFailed {
                    confirmed: 1,
                    wanted: 2,
                },
                "x",
            ),
            "13 09 08 01 02 0178",
        ),
        (
            Message::Refuse(hypha_net::Refuse::new(
                hypha_net::RefuseReason::NotAuthenticated,
                "x",
            )),
            "02 08 0178",
        ),
    ];
    for (message, golden) in cases {
        let frame = encode_frame_to_vec(&message)?;
        let payload = frame
            .get(FRAME_HEADER_BYTES..)
            .ok_or("frame has a header")?;
        assert_eq!(hex(payload), golden.replace(' ', ""), "{}", message.name());
    }
    Ok(())
}
