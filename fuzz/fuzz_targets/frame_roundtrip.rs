#![no_main]
//! Arbitrary `Message`s (and `Heartbeat`s) through `encode_frame` and back.
//!
//! `hypha_net` does not derive `Arbitrary`, so messages are built here from
//! arbitrary fields. Whenever `encode_frame` succeeds, `decode_frame` of its
//! bytes is the same message and takes all of them, and the same message
//! sealed with `seal_frame` comes out of an authenticated `FrameDecoder`;
//! when it fails, the reason is exactly what `Message::validate` says. Same
//! for heartbeats: sealed by one side of a session, `open_heartbeat` on the
//! other side gives the beat back (with the session's id and counter 1)
//! once, and a replay is refused.

use arbitrary::{Result, Unstructured};
use hypha_net::{
    connector_finish, decode_frame, decode_heartbeat, encode_frame_to_vec, encode_heartbeat,
    open_heartbeat, seal_frame, Acceptor, Challenge, ClusterKey, ClusterKeys, CompactInfo,
    DecodeError, Decoded, EncodeError, ErrorCode, FrameDecoder, Heartbeat, Hello, Message,
    NodeStatus, Prove, Purpose, RecordKind, Refuse, RefuseReason, Role, Session, Version, Welcome,
    WireRecord, WorkerInfo, WriteRequest, Txn, TxnCond, TxnOp, TxnRead, TxnTest, Change, ChangeKind, WatchEvent, MemberChange, Membership, Slot, Standing, Expect, CLUSTER_NAME_BYTES_MAX, Ballot, LogId, TermStart, WireMeta, HELLO_MAGIC, MESSAGE_TAG_COUNT, NONCE_BYTES,
};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

// A new message kind must get a case in `message` below.
const _: () = assert!(MESSAGE_TAG_COUNT == 45);

/// (connector, acceptor): one fixed session, made once; each input works
/// on clones, so its counters start afresh.
fn sessions() -> &'static (Session, Session) {
    static SESSIONS: OnceLock<(Session, Session)> = OnceLock::new();
    SESSIONS.get_or_init(|| {
        let keys = ClusterKeys::one(ClusterKey::from_bytes([7; 32]));
        let cluster = heapless::String::try_from("fuzz").expect("fits");
        let mut hello = Hello::new(cluster, Role::Worker, 1, Purpose::Request);
        hello.nonce = [0x11; NONCE_BYTES];
        let (pending, challenge) = Acceptor::new(&keys, &hello, [0x22; NONCE_BYTES]);
        let (prove, connector) = connector_finish(&keys, &hello, &challenge).expect("same key");
        (connector, pending.finish(&prove).expect("same key"))
    })
}

/// `HELLO_MAGIC` half the time, so validation passes often enough.
fn magic(u: &mut Unstructured) -> Result<u32> {
    Ok(if u.arbitrary()? {
        HELLO_MAGIC
    } else {
        u.arbitrary()?
    })
}

fn cluster(u: &mut Unstructured) -> Result<heapless::String<CLUSTER_NAME_BYTES_MAX>> {
    let text: &str = u.arbitrary()?;
    let mut out = heapless::String::new();
    for c in text.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    Ok(out)
}

fn role(u: &mut Unstructured) -> Result<Role> {
    Ok(*u.choose(&[
        Role::Master,
        Role::Worker,
        Role::Edge,
        Role::Client,
        Role::Member,
        Role::Witness,
    ])?)
}

fn hello(u: &mut Unstructured) -> Result<Hello> {
    Ok(Hello {
        magic: magic(u)?,
        version: u.arbitrary()?,
        cluster: cluster(u)?,
        role: role(u)?,
        node_id: u.arbitrary()?,
        history_id: u.arbitrary()?,
        applied_seq: u.arbitrary()?,
        purpose: match u.int_in_range(0..=3)? {
            0 => Purpose::Replicate,
            1 => Purpose::Request,
            2 => Purpose::Members,
            _ => Purpose::Elect {
                member: u.arbitrary()?,
                group: u.arbitrary()?,
            },
        },
        nonce: u.arbitrary()?,
        term: u.arbitrary()?,
        last_term: u.arbitrary()?,
    })
}

fn refuse_reason(u: &mut Unstructured) -> Result<RefuseReason> {
    Ok(match u.int_in_range(0..=10)? {
        10 => RefuseReason::Removed {
            epoch: u.arbitrary()?,
        },
        0 => RefuseReason::BadMagic,
        1 => RefuseReason::VersionMismatch {
            ours: u.arbitrary()?,
        },
        2 => RefuseReason::WrongCluster,
        3 => RefuseReason::NotAllowed,
        4 => RefuseReason::HistoryMismatch {
            ours: u.arbitrary()?,
        },
        5 => RefuseReason::NotMaster,
        6 => RefuseReason::Busy,
        7 => RefuseReason::Unexpected,
        8 => RefuseReason::NotAuthenticated,
        _ => RefuseReason::StaleTerm {
            current: u.arbitrary()?,
        },
    })
}

fn error_code(u: &mut Unstructured) -> Result<ErrorCode> {
    Ok(match u.int_in_range(0..=11)? {
        11 => ErrorCode::Compacted {
            earliest: u.arbitrary()?,
        },
        10 => ErrorCode::Conflict {
            seq: u.arbitrary()?,
        },
        9 => ErrorCode::OutcomeUnknown,
        0 => ErrorCode::NotFound,
        1 => ErrorCode::TooLarge,
        2 => ErrorCode::BadRequest,
        3 => ErrorCode::Unavailable,
        4 => ErrorCode::Timeout,
        5 => ErrorCode::ReadOnly,
        6 => ErrorCode::NotMaster,
        7 => ErrorCode::Internal,
        _ => ErrorCode::SyncFailed {
            confirmed: u.arbitrary()?,
            wanted: u.arbitrary()?,
        },
    })
}

/// Half the time an all-zero id, which validation refuses.
fn write_request(u: &mut Unstructured) -> Result<WriteRequest> {
    Ok(WriteRequest {
        id: if u.arbitrary()? { [0; 16] } else { u.arbitrary()? },
        retry_after: u.arbitrary()?,
    })
}

fn record(u: &mut Unstructured) -> Result<WireRecord> {
    Ok(WireRecord {
        seq: u.arbitrary()?,
        id: u.arbitrary()?,
        kind: *u.choose(&[RecordKind::Put, RecordKind::Delete])?,
        key: u.arbitrary()?,
        value: u.arbitrary()?,
        meta: WireMeta {
            term: u.arbitrary()?,
            deadline_ms: u.arbitrary()?,
            request_id: u.arbitrary()?,
            batch_more: u.arbitrary()?,
            refresh: u.arbitrary()?,
        },
    })
}

fn log_id(u: &mut Unstructured) -> Result<LogId> {
    Ok(LogId {
        term: u.arbitrary()?,
        seq: u.arbitrary()?,
    })
}

fn ballot(u: &mut Unstructured) -> Result<Ballot> {
    let term = u.arbitrary()?;
    Ok(match u.int_in_range(0..=5)? {
        0 => Ballot::PreVote {
            term,
            last: log_id(u)?,
        },
        1 => Ballot::PreVoteReply {
            term,
            granted: u.arbitrary()?,
        },
        2 => Ballot::RequestVote {
            term,
            last: log_id(u)?,
        },
        3 => Ballot::Vote {
            term,
            granted: u.arbitrary()?,
        },
        4 => Ballot::Heartbeat {
            term,
            last: log_id(u)?,
            round: u.arbitrary()?,
        },
        _ => Ballot::HeartbeatAck {
            term,
            last: log_id(u)?,
            round: u.arbitrary()?,
        },
    })
}

/// Items while the input says "one more".
fn list<T>(
    u: &mut Unstructured,
    mut item: impl FnMut(&mut Unstructured) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    while !u.is_empty() && u.arbitrary()? {
        out.push(item(u)?);
    }
    Ok(out)
}

fn expect(u: &mut Unstructured) -> Result<Expect> {
    Ok(match u.int_in_range(0..=2)? {
        0 => Expect::Seq(u.arbitrary()?),
        1 => Expect::Absent,
        _ => Expect::Present,
    })
}

/// A transaction: small lists of conditions, writes and reads.
fn txn(u: &mut Unstructured) -> Result<Txn> {
    let n = |u: &mut Unstructured| u.int_in_range(0..=4usize);
    let conds = (0..n(u)?)
        .map(|_| {
            Ok(TxnCond {
                key: u.arbitrary()?,
                test: match u.arbitrary()? {
                    true => TxnTest::Expect(expect(u)?),
                    false => TxnTest::Value(u.arbitrary()?),
                },
            })
        })
        .collect::<Result<_>>()?;
    let ops = (0..n(u)?)
        .map(|_| {
            Ok(match u.int_in_range(0..=2u8)? {
                0 => TxnOp::Put {
                    key: u.arbitrary()?,
                    value: u.arbitrary()?,
                    ttl_ms: u.arbitrary()?,
                },
                1 => TxnOp::Delete { key: u.arbitrary()? },
                _ => TxnOp::Refresh {
                    key: u.arbitrary()?,
                    ttl_ms: u.arbitrary()?,
                },
            })
        })
        .collect::<Result<_>>()?;
    let reads = (0..n(u)?).map(|_| u.arbitrary()).collect::<Result<_>>()?;
    Ok(Txn { conds, ops, reads })
}

/// Watch events: a few, each with a few changes of any kind.
fn events(u: &mut Unstructured) -> Result<Vec<WatchEvent>> {
    (0..u.int_in_range(0..=3usize)?)
        .map(|_| {
            let changes = (0..u.int_in_range(0..=3usize)?)
                .map(|_| {
                    Ok(Change {
                        kind: match u.int_in_range(0..=3u8)? {
                            0 => ChangeKind::Put,
                            1 => ChangeKind::Delete,
                            2 => ChangeKind::Expire,
                            _ => ChangeKind::Refresh,
                        },
                        key: u.arbitrary()?,
                        value: u.arbitrary()?,
                    })
                })
                .collect::<Result<_>>()?;
            Ok(WatchEvent {
                seq: u.arbitrary()?,
                changes,
            })
        })
        .collect()
}

/// A member list: often valid, sometimes over a limit or without a voter.
fn membership(u: &mut Unstructured) -> Result<Membership> {
    Ok(Membership {
        group: u.arbitrary()?,
        term: u.arbitrary()?,
        epoch: u.arbitrary()?,
        slots: list(u, |u| {
            Ok(Slot {
                addr: u.arbitrary()?,
                standing: *u.choose(&[Standing::Voter, Standing::Learner, Standing::Removed])?,
            })
        })?,
    })
}

fn message(u: &mut Unstructured) -> Result<Message> {
    let tag = u.int_in_range(0..=MESSAGE_TAG_COUNT - 1)?;
    let m = match tag {
        0 => Message::Hello(hello(u)?),
        1 => Message::Welcome(Welcome {
            version: u.arbitrary()?,
            role: role(u)?,
            node_id: u.arbitrary()?,
            history_id: u.arbitrary()?,
            commit_seq: u.arbitrary()?,
            term: u.arbitrary()?,
            terms: list(u, |u| {
                Ok(TermStart {
                    term: u.arbitrary()?,
                    first_seq: u.arbitrary()?,
                })
            })?,
        }),
        2 => Message::Refuse(Refuse {
            reason: refuse_reason(u)?,
            message: u.arbitrary()?,
        }),
        3 => Message::Get {
            req_id: u.arbitrary()?,
            key: u.arbitrary()?,
            min_seq: u.arbitrary()?,
        },
        4 => Message::Put {
            req_id: u.arbitrary()?,
            key: u.arbitrary()?,
            value: u.arbitrary()?,
        },
        5 => Message::Delete {
            req_id: u.arbitrary()?,
            key: u.arbitrary()?,
        },
        6 => Message::History {
            req_id: u.arbitrary()?,
            key: u.arbitrary()?,
            depth: u.arbitrary()?,
            min_seq: u.arbitrary()?,
        },
        7 => Message::Scan {
            req_id: u.arbitrary()?,
            cursor: u.arbitrary()?,
            prefix: u.arbitrary()?,
            limit: u.arbitrary()?,
            min_seq: u.arbitrary()?,
        },
        8 => Message::Digest {
            req_id: u.arbitrary()?,
        },
        9 => Message::Status {
            req_id: u.arbitrary()?,
        },
        10 => Message::Workers {
            req_id: u.arbitrary()?,
        },
        11 => Message::Value {
            req_id: u.arbitrary()?,
            applied_seq: u.arbitrary()?,
            value: u.arbitrary()?,
        },
        12 => Message::Written {
            req_id: u.arbitrary()?,
            seq: u.arbitrary()?,
        },
        13 => Message::Deleted {
            req_id: u.arbitrary()?,
            seq: u.arbitrary()?,
        },
        14 => Message::Versions {
            req_id: u.arbitrary()?,
            applied_seq: u.arbitrary()?,
            versions: list(u, |u| {
                Ok(Version {
                    seq: u.arbitrary()?,
                    value: u.arbitrary()?,
                })
            })?,
            omitted: 0,
        },
        15 => Message::ScanPage {
            req_id: u.arbitrary()?,
            applied_seq: u.arbitrary()?,
            keys: u.arbitrary()?,
            next_cursor: u.arbitrary()?,
        },
        16 => Message::DigestIs {
            req_id: u.arbitrary()?,
            digest: u.arbitrary()?,
            seq: u.arbitrary()?,
            len: u.arbitrary()?,
        },
        17 => Message::StatusIs {
            req_id: u.arbitrary()?,
            status: NodeStatus {
                role: role(u)?,
                node_id: u.arbitrary()?,
                history_id: u.arbitrary()?,
                applied_seq: u.arbitrary()?,
                commit_seq: u.arbitrary()?,
                keys: u.arbitrary()?,
                disk_bytes: u.arbitrary()?,
            },
        },
        18 => Message::WorkerList {
            req_id: u.arbitrary()?,
            workers: list(u, |u| {
                Ok(WorkerInfo {
                    node_id: u.arbitrary()?,
                    addr: u.arbitrary()?,
                    applied_seq: u.arbitrary()?,
                    healthy: u.arbitrary()?,
                })
            })?,
        },
        19 => Message::Error {
            req_id: u.arbitrary()?,
            code: error_code(u)?,
            message: u.arbitrary()?,
        },
        20 => Message::Records {
            term: u.arbitrary()?,
            first_seq: u.arbitrary()?,
            records: list(u, record)?,
        },
        21 => Message::Ack {
            term: u.arbitrary()?,
            applied_seq: u.arbitrary()?,
        },
        22 => Message::SnapshotBegin {
            term: u.arbitrary()?,
            history_id: u.arbitrary()?,
            upto_seq: u.arbitrary()?,
            records_total: u.arbitrary()?,
            bytes_total: u.arbitrary()?,
        },
        23 => Message::SnapshotChunk {
            records: list(u, record)?,
        },
        24 => Message::SnapshotEnd {
            upto_seq: u.arbitrary()?,
        },
        25 => Message::Ping {
            nonce: u.arbitrary()?,
        },
        26 => Message::Pong {
            nonce: u.arbitrary()?,
        },
        27 => Message::Compact {
            req_id: u.arbitrary()?,
            run: u.arbitrary()?,
        },
        28 => Message::CompactIs {
            req_id: u.arbitrary()?,
            info: CompactInfo {
                compactions: u.arbitrary()?,
                running_done_bytes: u.arbitrary()?,
                running_total_bytes: u.arbitrary()?,
                data_bytes: u.arbitrary()?,
                live_bytes: u.arbitrary()?,
                disk_bytes: u.arbitrary()?,
                last_bytes_before: u.arbitrary()?,
                last_bytes_after: u.arbitrary()?,
                last_millis: u.arbitrary()?,
                expired: u.arbitrary()?,
            },
        },
        29 => Message::Challenge(Challenge {
            nonce: u.arbitrary()?,
            proof: u.arbitrary()?,
        }),
        31 => Message::Ballot(ballot(u)?),
        32 => Message::PutOnce {
            req_id: u.arbitrary()?,
            key: u.arbitrary()?,
            value: u.arbitrary()?,
            request: write_request(u)?,
        },
        33 => Message::DeleteOnce {
            req_id: u.arbitrary()?,
            key: u.arbitrary()?,
            request: write_request(u)?,
        },
        34 => Message::Members {
            req_id: u.arbitrary()?,
        },
        35 => Message::MemberList {
            req_id: u.arbitrary()?,
            members: membership(u)?,
        },
        36 => Message::ChangeMembers {
            req_id: u.arbitrary()?,
            change: match u.arbitrary()? {
                true => MemberChange::Add(u.arbitrary()?),
                false => MemberChange::Remove(u.arbitrary()?),
            },
        },
        37 => Message::PutIf {
            req_id: u.arbitrary()?,
            key: u.arbitrary()?,
            value: u.arbitrary()?,
            expect: expect(u)?,
            request: if u.arbitrary()? { Some(write_request(u)?) } else { None },
        },
        38 => Message::DeleteIf {
            req_id: u.arbitrary()?,
            key: u.arbitrary()?,
            expect: expect(u)?,
            request: if u.arbitrary()? { Some(write_request(u)?) } else { None },
        },
        39 => Message::Txn {
            req_id: u.arbitrary()?,
            txn: txn(u)?,
            request: if u.arbitrary()? { Some(write_request(u)?) } else { None },
        },
        41 => Message::Watch {
            req_id: u.arbitrary()?,
            prefix: u.arbitrary()?,
            after: u.arbitrary()?,
            values: u.arbitrary()?,
            wait_ms: u.arbitrary()?,
        },
        42 => Message::Events {
            req_id: u.arbitrary()?,
            upto: u.arbitrary()?,
            events: events(u)?,
        },
        43 => Message::Backup(hypha_net::BackupAsk {
            req_id: u.arbitrary()?,
            upto: u.arbitrary()?,
            after: u.arbitrary()?,
            generation: u.arbitrary()?,
        }),
        44 => Message::BackupPage(hypha_net::BackupPage {
            req_id: u.arbitrary()?,
            upto: u.arbitrary()?,
            generation: u.arbitrary()?,
            records: list(u, record)?,
            done: u.arbitrary()?,
        }),
        40 => Message::TxnFailed {
            req_id: u.arbitrary()?,
            seq: u.arbitrary()?,
            failed: u.arbitrary()?,
            reads: (0..u.int_in_range(0..=4usize)?)
                .map(|_| {
                    Ok(TxnRead {
                        value: match u.arbitrary()? {
                            true => Some((u.arbitrary()?, u.arbitrary()?)),
                            false => None,
                        },
                    })
                })
                .collect::<Result<_>>()?,
        },
        _ => Message::Prove(Prove {
            proof: u.arbitrary()?,
        }),
    };
    assert_eq!(m.tag(), tag, "case {tag} builds {}", m.name());
    Ok(m)
}

fn heartbeat(u: &mut Unstructured) -> Result<Heartbeat> {
    Ok(Heartbeat {
        magic: magic(u)?,
        version: u.arbitrary()?,
        cluster: cluster(u)?,
        node_id: u.arbitrary()?,
        role: role(u)?,
        applied_seq: u.arbitrary()?,
        commit_seq: u.arbitrary()?,
        load: u.arbitrary()?,
        serve_port: u.arbitrary()?,
        // The sealer overwrites both.
        session: u.arbitrary()?,
        counter: u.arbitrary()?,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    if let Ok(m) = message(&mut u) {
        match encode_frame_to_vec(&m) {
            Ok(bytes) => {
                let consumed = bytes.len();
                let back = decode_frame(&bytes);
                assert_eq!(
                    back,
                    Ok(Decoded::Frame {
                        message: m.clone(),
                        consumed
                    })
                );
                // Sealed, through an authenticated decoder.
                let (connector, acceptor) = sessions();
                let mut sealer = connector.sealer.clone();
                let mut sealed = Vec::new();
                seal_frame(&m, &mut sealer, &mut sealed).expect("encodes, so it seals");
                assert_eq!(
                    sealed[..consumed],
                    bytes[..],
                    "a sealed frame is the frame + MAC"
                );
                let mut decoder = FrameDecoder::new();
                decoder.authenticate(acceptor.opener.clone());
                decoder.feed(&sealed);
                assert_eq!(decoder.next_message(), Ok(Some(m)));
                assert_eq!(decoder.buffered_bytes(), 0);
            }
            Err(EncodeError::Rejected(why)) => assert_eq!(m.validate(), Err(why)),
            Err(other) => panic!("{} did not encode: {other}", m.name()),
        }
    }
    if let Ok(beat) = heartbeat(&mut u) {
        let (connector, acceptor) = sessions();
        let mut sealer = connector.beats_out.clone();
        match encode_heartbeat(&beat, &mut sealer) {
            Ok(bytes) => {
                let sent = Heartbeat {
                    session: connector.id,
                    counter: 1,
                    ..beat
                };
                assert_eq!(decode_heartbeat(&bytes), Ok(sent.clone()));
                let mut opener = acceptor.beats_in.clone();
                assert_eq!(open_heartbeat(&bytes, &mut opener), Ok(sent));
                assert_eq!(
                    open_heartbeat(&bytes, &mut opener),
                    Err(DecodeError::Replayed { counter: 1 })
                );
            }
            Err(EncodeError::Rejected(why)) => assert_eq!(beat.validate(), Err(why)),
            Err(other) => panic!("heartbeat did not encode: {other}"),
        }
    }
});
