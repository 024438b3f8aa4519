//! A message over any limit is refused by the sender (`EncodeError::Rejected`)
//! and, sent anyway, by the receiver (`DecodeError::LimitExceeded`); a
//! message exactly at every limit passes.
mod common;

use common::{record, unchecked_frame, TestResult};
use hypha_net::{
    decode_frame, encode_frame_to_vec, DecodeError, EncodeError, ErrorCode, Message, Refuse,
    RefuseReason, Version, WireRecord, WorkerInfo, ADDR_BYTES_MAX, BATCH_BYTES_MAX,
    BATCH_RECORDS_MAX, HISTORY_DEPTH_MAX, KEY_BYTES_MAX, MESSAGE_STRING_BYTES_MAX, SCAN_LIMIT_MAX,
    VALUE_BYTES_MAX, WORKERS_MAX,
};

fn key(len: usize) -> Vec<u8> {
    vec![b'k'; len]
}

fn depth(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn worker(addr_len: usize) -> WorkerInfo {
    WorkerInfo {
        node_id: 1,
        addr: "a".repeat(addr_len),
        applied_seq: 0,
        healthy: false,
    }
}

fn records(count: usize) -> Vec<WireRecord> {
    (1..=count as u64)
        .map(|seq| record(seq, b"k", b""))
        .collect()
}

/// `(message one over the limit, field, limit name, len, max)`.
fn over_limit_cases() -> Vec<(Message, &'static str, &'static str, usize, usize)> {
    let k = KEY_BYTES_MAX;
    let s = MESSAGE_STRING_BYTES_MAX;
    vec![
        (
            Message::Get {
                req_id: 1,
                key: key(k + 1),
                min_seq: 0,
            },
            "Get.key",
            "KEY_BYTES_MAX",
            k + 1,
            k,
        ),
        (
            Message::Put {
                req_id: 1,
                key: key(k + 1),
                value: Vec::new(),
            },
            "Put.key",
            "KEY_BYTES_MAX",
            k + 1,
            k,
        ),
        (
            Message::Put {
                req_id: 1,
                key: key(1),
                value: vec![0; VALUE_BYTES_MAX + 1],
            },
            "Put.value",
            "VALUE_BYTES_MAX",
            VALUE_BYTES_MAX + 1,
            VALUE_BYTES_MAX,
        ),
        (
            Message::Delete {
                req_id: 1,
                key: key(k + 1),
            },
            "Delete.key",
            "KEY_BYTES_MAX",
            k + 1,
            k,
        ),
        (
            Message::History {
                req_id: 1,
                key: key(k + 1),
                depth: 1,
                min_seq: 0,
            },
            "History.key",
            "KEY_BYTES_MAX",
            k + 1,
            k,
        ),
        (
            Message::History {
                req_id: 1,
                key: key(1),
                depth: depth(HISTORY_DEPTH_MAX + 1),
                min_seq: 0,
            },
            "History.depth",
            "HISTORY_DEPTH_MAX",
            HISTORY_DEPTH_MAX + 1,
            HISTORY_DEPTH_MAX,
        ),
        (
            Message::Scan {
                req_id: 1,
                cursor: 0,
                prefix: key(k + 1),
                limit: 1,
                min_seq: 0,
            },
            "Scan.prefix",
            "KEY_BYTES_MAX",
            k + 1,
            k,
        ),
        (
            Message::Scan {
                req_id: 1,
                cursor: 0,
                prefix: Vec::new(),
                limit: depth(SCAN_LIMIT_MAX + 1),
                min_seq: 0,
            },
            "Scan.limit",
            "SCAN_LIMIT_MAX",
            SCAN_LIMIT_MAX + 1,
            SCAN_LIMIT_MAX,
        ),
        (
            Message::Value {
                req_id: 1,
                applied_seq: 1,
                value: Some((1, vec![0; VALUE_BYTES_MAX + 1])),
            },
            "Value.value",
            "VALUE_BYTES_MAX",
            VALUE_BYTES_MAX + 1,
            VALUE_BYTES_MAX,
        ),
        (
            Message::Versions {
                req_id: 1,
                applied_seq: 1,
                versions: (0..=HISTORY_DEPTH_MAX as u64)
                    .map(|seq| Version { seq, value: None })
                    .collect(),
                omitted: 0,
            },
            "Versions.versions",
            "HISTORY_DEPTH_MAX",
            HISTORY_DEPTH_MAX + 1,
            HISTORY_DEPTH_MAX,
        ),
        (
            Message::Versions {
                req_id: 1,
                applied_seq: 1,
                versions: vec![Version {
                    seq: 1,
                    value: Some(vec![0; VALUE_BYTES_MAX + 1]),
                }],
                omitted: 0,
            },
            "Versions.versions[].value",
            "VALUE_BYTES_MAX",
            VALUE_BYTES_MAX + 1,
            VALUE_BYTES_MAX,
        ),
        (
            Message::Versions {
                req_id: 1,
                applied_seq: 1,
                versions: vec![
                    Version {
                        seq: 2,
                        value: Some(vec![0; BATCH_BYTES_MAX + 1]),
                    },
                    Version {
                        seq: 1,
                        value: None,
                    },
                ],
                omitted: 0,
            },
            "Versions.versions value bytes before the last version",
            "BATCH_BYTES_MAX",
            BATCH_BYTES_MAX + 1,
            BATCH_BYTES_MAX,
        ),
        (
            Message::ScanPage {
                req_id: 1,
                applied_seq: 1,
                keys: vec![Vec::new(); SCAN_LIMIT_MAX + 1],
                next_cursor: None,
            },
            "ScanPage.keys",
            "SCAN_LIMIT_MAX",
            SCAN_LIMIT_MAX + 1,
            SCAN_LIMIT_MAX,
        ),
        (
            Message::ScanPage {
                req_id: 1,
                applied_seq: 1,
                keys: vec![key(k + 1)],
                next_cursor: None,
            },
            "ScanPage.keys[]",
            "KEY_BYTES_MAX",
            k + 1,
            k,
        ),
        (
            Message::WorkerList {
                req_id: 1,
                workers: vec![worker(1); WORKERS_MAX + 1],
            },
            "WorkerList.workers",
            "WORKERS_MAX",
            WORKERS_MAX + 1,
            WORKERS_MAX,
        ),
        (
            Message::WorkerList {
                req_id: 1,
                workers: vec![worker(ADDR_BYTES_MAX + 1)],
            },
            "WorkerList.workers[].addr",
            "ADDR_BYTES_MAX",
            ADDR_BYTES_MAX + 1,
            ADDR_BYTES_MAX,
        ),
        (
            Message::Error {
                req_id: 1,
                code: ErrorCode::Internal,
                message: "e".repeat(s + 1),
            },
            "Error.message",
            "MESSAGE_STRING_BYTES_MAX",
            s + 1,
            s,
        ),
        (
            Message::Refuse(Refuse {
                reason: RefuseReason::Busy,
                message: "e".repeat(s + 1),
            }),
            "Refuse.message",
            "MESSAGE_STRING_BYTES_MAX",
            s + 1,
            s,
        ),
        (
            Message::Records {
                term: 0,
                first_seq: 1,
                records: records(BATCH_RECORDS_MAX + 1),
            },
            "Records.records",
            "BATCH_RECORDS_MAX",
            BATCH_RECORDS_MAX + 1,
            BATCH_RECORDS_MAX,
        ),
        (
            Message::Records {
                term: 0,
                first_seq: 1,
                records: vec![record(1, &key(k + 1), b"")],
            },
            "Records.records[].key",
            "KEY_BYTES_MAX",
            k + 1,
            k,
        ),
        (
            Message::Records {
                term: 0,
                first_seq: 1,
                records: vec![record(1, b"k", &vec![0; VALUE_BYTES_MAX + 1])],
            },
            "Records.records[].value",
            "VALUE_BYTES_MAX",
            VALUE_BYTES_MAX + 1,
            VALUE_BYTES_MAX,
        ),
        (
            Message::Records {
                term: 0,
                first_seq: 1,
                records: vec![
                    record(1, b"k", &vec![0; BATCH_BYTES_MAX]),
                    record(2, b"k", b""),
                ],
            },
            "Records.records key+value bytes before the last record",
            "BATCH_BYTES_MAX",
            BATCH_BYTES_MAX + 1,
            BATCH_BYTES_MAX,
        ),
        (
            Message::SnapshotChunk {
                records: records(BATCH_RECORDS_MAX + 1),
            },
            "SnapshotChunk.records",
            "BATCH_RECORDS_MAX",
            BATCH_RECORDS_MAX + 1,
            BATCH_RECORDS_MAX,
        ),
        (
            Message::SnapshotChunk {
                records: vec![record(1, &key(k + 1), b"")],
            },
            "SnapshotChunk.records[].key",
            "KEY_BYTES_MAX",
            k + 1,
            k,
        ),
        (
            Message::SnapshotChunk {
                records: vec![record(1, b"k", &vec![0; VALUE_BYTES_MAX + 1])],
            },
            "SnapshotChunk.records[].value",
            "VALUE_BYTES_MAX",
            VALUE_BYTES_MAX + 1,
            VALUE_BYTES_MAX,
        ),
        (
            Message::SnapshotChunk {
                records: vec![
                    record(1, b"k", &vec![0; BATCH_BYTES_MAX]),
                    record(2, b"k", b""),
                ],
            },
            "SnapshotChunk.records key+value bytes before the last record",
            "BATCH_BYTES_MAX",
            BATCH_BYTES_MAX + 1,
            BATCH_BYTES_MAX,
        ),
    ]
}

#[test]
fn every_limit_is_enforced_on_decode_and_encode() {
    for (message, what, limit, len, max) in over_limit_cases() {
        let expected = DecodeError::LimitExceeded {
            what,
            limit,
            len,
            max,
        };
        assert_eq!(message.validate(), Err(expected.clone()), "{what}");
        assert_eq!(
            encode_frame_to_vec(&message),
            Err(EncodeError::Rejected(expected.clone())),
            "{what}"
        );
        assert_eq!(
            decode_frame(&unchecked_frame(&message)),
            Err(expected),
            "{what}"
        );
    }
}

#[test]
fn messages_exactly_at_the_limits_pass() -> TestResult {
    let at_limits = [
        Message::Put {
            req_id: 1,
            key: key(KEY_BYTES_MAX),
            value: vec![1; VALUE_BYTES_MAX],
        },
        Message::History {
            req_id: 1,
            key: key(KEY_BYTES_MAX),
            depth: depth(HISTORY_DEPTH_MAX),
            min_seq: 0,
        },
        Message::Scan {
            req_id: 1,
            cursor: 0,
            prefix: key(KEY_BYTES_MAX),
            limit: depth(SCAN_LIMIT_MAX),
            min_seq: 0,
        },
        Message::ScanPage {
            req_id: 1,
            applied_seq: 0,
            keys: vec![key(KEY_BYTES_MAX); SCAN_LIMIT_MAX],
            next_cursor: Some(1),
        },
        Message::WorkerList {
            req_id: 1,
            workers: vec![worker(ADDR_BYTES_MAX); WORKERS_MAX],
        },
        Message::error(
            1,
            ErrorCode::Internal,
            &"e".repeat(MESSAGE_STRING_BYTES_MAX),
        ),
        Message::Records {
            term: 0,
            first_seq: 1,
            records: records(BATCH_RECORDS_MAX),
        },
    ];
    for message in at_limits {
        let frame = encode_frame_to_vec(&message)?;
        assert!(
            matches!(decode_frame(&frame)?, hypha_net::Decoded::Frame { .. }),
            "{}",
            message.name()
        );
    }
    Ok(())
}

#[test]
fn protocol_rules_besides_lengths_are_invalid() {
    let mut delete_with_value = record(1, b"k", b"v");
    delete_with_value.kind = hypha_net::RecordKind::Delete;
    let cases = [
        Message::Records {
            term: 0,
            first_seq: 1,
            records: vec![delete_with_value],
        },
        Message::Records {
            term: 0,
            first_seq: 2,
            records: vec![record(1, b"k", b"")],
        },
        Message::Records {
            term: 0,
            first_seq: 1,
            records: vec![record(1, b"k", b""), record(1, b"k", b"")],
        },
        Message::Records {
            term: 0,
            first_seq: 2,
            records: vec![record(2, b"k", b""), record(1, b"k", b"")],
        },
    ];
    for message in cases {
        assert!(
            matches!(message.validate(), Err(DecodeError::Invalid(_))),
            "{message:?}"
        );
        assert!(matches!(
            decode_frame(&unchecked_frame(&message)),
            Err(DecodeError::Invalid(_))
        ));
        assert!(matches!(
            encode_frame_to_vec(&message),
            Err(EncodeError::Rejected(DecodeError::Invalid(_)))
        ));
    }
}
