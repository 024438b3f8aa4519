//! Shared fixtures: one sample of every message, and raw frame builders that
//! skip validation so tests can put invalid messages on the wire.
#![allow(dead_code)]

use hypha_net::{
    connector_finish, Acceptor, Ballot, Challenge, ClusterKey, ClusterKeys, ErrorCode, Hello,
    LogId, Message, NodeStatus, Prove, Purpose, RecordKind, Refuse, RefuseReason, Role, Session,
    TermStart, Version, Welcome, WireMeta, WireRecord, WorkerInfo, FRAME_HEADER_BYTES, HELLO_MAGIC,
    NONCE_BYTES, PROOF_BYTES, PROTOCOL_VERSION, REQUEST_ID_BYTES,
};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn cluster(name: &str) -> heapless::String<64> {
    heapless::String::try_from(name).expect("test cluster name fits")
}

pub fn hello() -> Hello {
    Hello {
        magic: HELLO_MAGIC,
        version: PROTOCOL_VERSION,
        cluster: cluster("lab"),
        role: Role::Worker,
        node_id: 7,
        history_id: 0,
        applied_seq: 300,
        purpose: Purpose::Replicate,
        nonce: HELLO_NONCE,
        term: 0,
        last_term: 0,
    }
}

/// The connector's nonce in [`hello`].
pub const HELLO_NONCE: [u8; NONCE_BYTES] = [0x11; NONCE_BYTES];

/// The cluster key of the fixed sessions.
pub const KEY: ClusterKey = ClusterKey::from_bytes([7; 32]);

/// Another cluster's key.
pub const OTHER_KEY: ClusterKey = ClusterKey::from_bytes([9; 32]);

/// The acceptor's nonce of the fixed sessions.
pub const ACCEPTOR_NONCE: [u8; NONCE_BYTES] = [0x22; NONCE_BYTES];

/// The fixed handshake under [`KEY`]: [`hello`], then the acceptor's
/// `Challenge` over [`ACCEPTOR_NONCE`] and the connector's `Prove`.
pub fn handshake_messages() -> (Challenge, Prove) {
    let keys = ClusterKeys::one(KEY);
    let (_, challenge) = Acceptor::new(&keys, &hello(), ACCEPTOR_NONCE);
    let (prove, _) =
        connector_finish(&keys, &hello(), &challenge).expect("the connector holds the key");
    (challenge, prove)
}

/// A connector's and an acceptor's session from a handshake of `hello()`
/// with `nonce` as the acceptor's nonce, under `connector` and `acceptor`.
pub fn try_session_pair(
    connector: &ClusterKeys,
    acceptor: &ClusterKeys,
    nonce: [u8; NONCE_BYTES],
) -> Result<(Session, Session), hypha_net::AuthError> {
    let (pending, challenge) = Acceptor::new(acceptor, &hello(), nonce);
    let (prove, connector) = connector_finish(connector, &hello(), &challenge)?;
    Ok((connector, pending.finish(&prove)?))
}

/// (connector, acceptor): the sessions of the fixed handshake under [`KEY`],
/// always the same keys.
pub fn session_pair() -> (Session, Session) {
    let keys = ClusterKeys::one(KEY);
    try_session_pair(&keys, &keys, ACCEPTOR_NONCE).expect("both sides hold the key")
}

/// A session pair of a second connection under [`KEY`] (another acceptor
/// nonce): same key, different session keys.
pub fn other_session_pair() -> (Session, Session) {
    let keys = ClusterKeys::one(KEY);
    try_session_pair(&keys, &keys, [0x33; NONCE_BYTES]).expect("both sides hold the key")
}

pub fn record(seq: u64, key: &[u8], value: &[u8]) -> WireRecord {
    WireRecord {
        seq,
        id: 1,
        kind: RecordKind::Put,
        key: key.to_vec(),
        value: value.to_vec(),
        meta: WireMeta::default(),
    }
}

/// One message per variant, in tag order: `every_message()[t].tag() == t`.
pub fn every_message() -> Vec<Message> {
    vec![
        Message::Hello(hello()),
        Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            role: Role::Master,
            node_id: 1,
            history_id: 0xdead_beef_cafe,
            commit_seq: 1 << 40,
            term: 3,
            terms: vec![
                TermStart {
                    term: 0,
                    first_seq: 1,
                },
                TermStart {
                    term: 3,
                    first_seq: 1 << 40,
                },
            ],
        }),
        Message::Refuse(Refuse::new(
            RefuseReason::HistoryMismatch { ours: 42 },
            "history 42 is not yours",
        )),
        Message::Get {
            req_id: 1,
            key: b"user/1".to_vec(),
            min_seq: 10,
        },
        Message::Put {
            req_id: 2,
            key: b"user/1".to_vec(),
            value: vec![0xab; 300],
        },
        Message::Delete {
            req_id: 3,
            key: b"user/1".to_vec(),
        },
        Message::History {
            req_id: 4,
            key: b"k".to_vec(),
            depth: 16,
            min_seq: 0,
        },
        Message::Scan {
            req_id: 5,
            cursor: 99,
            prefix: b"user/".to_vec(),
            limit: 100,
            min_seq: 5,
        },
        Message::Digest { req_id: 6 },
        Message::Status { req_id: 7 },
        Message::Workers { req_id: 8 },
        Message::Value {
            req_id: 1,
            applied_seq: 12,
            value: Some((11, b"hello".to_vec())),
        },
        Message::Written { req_id: 2, seq: 13 },
        Message::Deleted {
            req_id: 3,
            seq: None,
        },
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
                    value: Some(b"old".to_vec()),
                },
            ],
            omitted: 0,
        },
        Message::ScanPage {
            req_id: 5,
            applied_seq: 20,
            keys: vec![b"user/1".to_vec(), b"user/2".to_vec(), Vec::new()],
            next_cursor: Some(3),
        },
        Message::DigestIs {
            req_id: 6,
            digest: u64::MAX,
            seq: 20,
            len: 2,
        },
        Message::StatusIs {
            req_id: 7,
            status: NodeStatus {
                role: Role::Edge,
                node_id: 9,
                history_id: 5,
                applied_seq: 20,
                commit_seq: 19,
                keys: 2,
                disk_bytes: 1 << 30,
            },
        },
        Message::WorkerList {
            req_id: 8,
            workers: vec![WorkerInfo {
                node_id: 2,
                addr: "[4a1:2b3::1]:7401".to_string(),
                applied_seq: 19,
                healthy: true,
            }],
        },
        Message::error(
            9,
            ErrorCode::SyncFailed {
                confirmed: 1,
                wanted: 2,
            },
            "1 of 2 workers confirmed",
        ),
        Message::Records {
            term: 3,
            first_seq: 21,
            records: vec![
                record(21, b"a", b"1"),
                WireRecord {
                    seq: 22,
                    id: 2,
                    kind: RecordKind::Delete,
                    key: b"b".to_vec(),
                    value: Vec::new(),
                    meta: WireMeta {
                        term: 3,
                        deadline_ms: 1_800_000_000_000,
                        request_id: Some([0x5c; REQUEST_ID_BYTES]),
                        batch_more: true,
                        refresh: false,
                    },
                },
            ],
        },
        Message::Ack {
            term: 3,
            applied_seq: 22,
        },
        Message::SnapshotBegin {
            term: 3,
            history_id: 5,
            upto_seq: 22,
            records_total: 1,
            bytes_total: 2,
        },
        Message::SnapshotChunk {
            records: vec![record(21, b"a", b"1")],
        },
        Message::SnapshotEnd { upto_seq: 22 },
        Message::Ping { nonce: 77 },
        Message::Pong { nonce: 77 },
        Message::Compact {
            req_id: 78,
            run: true,
        },
        Message::CompactIs {
            req_id: 79,
            info: hypha_net::CompactInfo {
                compactions: 2,
                running_done_bytes: 10,
                running_total_bytes: 20,
                data_bytes: 1000,
                live_bytes: 700,
                disk_bytes: 1200,
                last_bytes_before: 5000,
                last_bytes_after: 1100,
                last_millis: 42,
                expired: 3,
            },
        },
        Message::Challenge(Challenge {
            nonce: [0x22; NONCE_BYTES],
            proof: [0xa5; PROOF_BYTES],
        }),
        Message::Prove(Prove {
            proof: [0x5a; PROOF_BYTES],
        }),
        Message::Ballot(Ballot::RequestVote {
            term: 4,
            last: LogId { term: 3, seq: 22 },
        }),
        Message::PutOnce {
            req_id: 80,
            key: b"user/1".to_vec(),
            value: vec![0xcd; 40],
            request: hypha_net::WriteRequest {
                id: [0x11; 16],
                retry_after: Some(21),
            },
        },
        Message::DeleteOnce {
            req_id: 81,
            key: b"user/1".to_vec(),
            request: hypha_net::WriteRequest {
                id: [0x12; 16],
                retry_after: None,
            },
        },
        Message::Members { req_id: 82 },
        Message::MemberList {
            req_id: 83,
            members: hypha_net::Membership::first(&["[400::1]:7000", "[400::2]:7000"])
                .changed(&hypha_net::MemberChange::Add("[400::3]:7000".into()), 2)
                .expect("a new address"),
        },
        Message::ChangeMembers {
            req_id: 84,
            change: hypha_net::MemberChange::Remove("[400::2]:7000".into()),
        },
        Message::PutIf {
            req_id: 85,
            key: b"counter".to_vec(),
            value: b"2".to_vec(),
            expect: hypha_net::Expect::Seq(41),
            request: None,
        },
        Message::DeleteIf {
            req_id: 86,
            key: b"counter".to_vec(),
            expect: hypha_net::Expect::Present,
            request: Some(hypha_net::WriteRequest {
                id: [0x13; 16],
                retry_after: Some(40),
            }),
        },
        Message::Txn {
            req_id: 87,
            txn: hypha_net::Txn {
                conds: vec![
                    hypha_net::TxnCond {
                        key: b"a".to_vec(),
                        test: hypha_net::TxnTest::Expect(hypha_net::Expect::Seq(12)),
                    },
                    hypha_net::TxnCond {
                        key: b"c".to_vec(),
                        test: hypha_net::TxnTest::Value(b"on".to_vec()),
                    },
                ],
                ops: vec![
                    hypha_net::TxnOp::Put {
                        key: b"a".to_vec(),
                        value: b"1".to_vec(),
                        ttl_ms: 30_000,
                    },
                    hypha_net::TxnOp::Delete { key: b"b".to_vec() },
                    hypha_net::TxnOp::Refresh {
                        key: b"c".to_vec(),
                        ttl_ms: 5_000,
                    },
                ],
                reads: vec![b"a".to_vec()],
            },
            request: None,
        },
        Message::TxnFailed {
            req_id: 87,
            seq: 44,
            failed: vec![0, 1],
            reads: vec![
                hypha_net::TxnRead {
                    value: Some((12, b"0".to_vec())),
                },
                hypha_net::TxnRead { value: None },
            ],
        },
        Message::Watch {
            req_id: 88,
            prefix: b"cfg/".to_vec(),
            after: Some(40),
            values: true,
            wait_ms: 2_000,
        },
        Message::Events {
            req_id: 88,
            upto: 47,
            events: vec![
                hypha_net::WatchEvent {
                    seq: 42,
                    changes: vec![hypha_net::Change {
                        kind: hypha_net::ChangeKind::Put,
                        key: b"cfg/a".to_vec(),
                        value: Some(b"1".to_vec()),
                    }],
                },
                hypha_net::WatchEvent {
                    seq: 46,
                    changes: vec![
                        hypha_net::Change {
                            kind: hypha_net::ChangeKind::Expire,
                            key: b"cfg/lease".to_vec(),
                            value: None,
                        },
                        hypha_net::Change {
                            kind: hypha_net::ChangeKind::Refresh,
                            key: b"cfg/b".to_vec(),
                            value: Some(b"2".to_vec()),
                        },
                    ],
                },
            ],
        },
        Message::Backup(hypha_net::BackupAsk {
            req_id: 89,
            upto: Some(47),
            after: 12,
            generation: Some(3),
        }),
        Message::BackupPage(hypha_net::BackupPage {
            req_id: 89,
            upto: 47,
            generation: 3,
            records: vec![record(13, b"cfg/a", b"1"), record(40, b"cfg/b", b"2")],
            done: true,
        }),
    ]
}

/// A frame around `payload` with a correct length and CRC.
pub fn frame_of_payload(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    let len = u32::try_from(payload.len()).expect("test payload fits u32");
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The frame of `message` without validation: how a broken peer sends it.
pub fn unchecked_frame(message: &Message) -> Vec<u8> {
    let payload = postcard::to_allocvec(message).expect("postcard serializes any Message");
    frame_of_payload(&payload)
}

/// Hex of `bytes`, lower case, no separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
