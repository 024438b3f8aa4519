//! The exact bytes of a few frames and a heartbeat, pinned. `net/WIRE.md`
//! works through the same examples byte by byte; if one of these changes,
//! the wire format changed.
mod common;

use common::{cluster, hello, hex, record, TestResult};
use hypha_net::{
    decode_frame, decode_heartbeat, encode_frame_to_vec, encode_heartbeat, Decoded, ErrorCode,
    Heartbeat, Message, Role, Version, FRAME_HEADER_BYTES,
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
    // len 17 | crc | tag 0, magic c8a0e5c204, version 1, "lab", Worker,
    // node 7, history 0, applied 300 (ac02), Replicate
    assert_frame(
        Message::Hello(hello()),
        "11000000 5ead23f0 00 c8a0e5c204 01 036c6162 01 07 00 ac02 00"
            .replace(' ', "")
            .as_str(),
    )
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
    // len 14 | crc | tag 20, first_seq 300, 1 record: seq 300, id 1, Put,
    // key "k1", value "hi"
    let records = Message::Records {
        first_seq: 300,
        records: vec![record(300, b"k1", b"hi")],
    };
    assert_frame(
        records,
        &"0e000000 1f0af52a 14 ac02 01 ac02 01 00 026b31 026869".replace(' ', ""),
    )
}

#[test]
fn heartbeat_datagram_is_pinned() -> TestResult {
    let mut beat = Heartbeat::new(cluster("lab"), Role::Worker, 3);
    beat.applied_seq = 300;
    beat.commit_seq = 299;
    beat.load = 250;
    beat.serve_port = 7401;
    // crc | magic, version 1, "lab", node 3, Worker, applied 300,
    // commit 299, load 250, port 7401
    let golden = "9d0e1977 c8a0e5c204 01 036c6162 03 01 ac02 ab02 fa01 e939".replace(' ', "");
    let bytes = encode_heartbeat(&beat)?;
    assert_eq!(hex(&bytes), golden);
    assert_eq!(decode_heartbeat(&bytes)?, beat);
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
            },
            "0e 04 14 02 14 00 03 01 016f",
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
