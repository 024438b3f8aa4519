//! [`Message`]: everything that travels in a TCP frame.
//!
//! postcard encodes an enum as its variant index (a varint) followed by the
//! variant's fields in declaration order, with no names and no lengths. So
//! the order of variants and fields *is* the format: variants are only ever
//! appended, and the tag of each variant is pinned in `net/WIRE.md` and in
//! [`Message::tag`], which a test checks against the encoder.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::failover::{Ballot, WriteRequest};
use crate::members::{MemberChange, Membership};

mod backup;
mod meta;
mod txn;
mod watch;
use crate::handshake::{Challenge, Hello, Prove, Refuse, Role, Welcome};
use crate::limits::REQUEST_ID_BYTES;
pub use backup::{BackupAsk, BackupPage};
pub use txn::{Txn, TxnCond, TxnOp, TxnRead, TxnTest};
pub use watch::{Change, ChangeKind, WatchEvent};

pub use crate::limits::MESSAGE_TAG_COUNT;

/// One protocol message. The tag of each variant is in its doc, after "Tag".
///
/// Requests carry a `req_id` chosen by the requester; the response to a
/// request carries the same `req_id`, so many requests can be in flight on one
/// connection and answered out of order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Tag 0. Opens every connection. Frozen: see [`Hello`].
    Hello(Hello),
    /// Tag 1. Accepts a `Hello`.
    Welcome(Welcome),
    /// Tag 2. Refuses a `Hello`; the sender closes after it.
    Refuse(Refuse),

    /// Tag 3. Read the newest version of `key`. Answer: `Value`.
    Get {
        /// Request id, echoed by the response.
        req_id: u64,
        /// The key, at most `KEY_BYTES_MAX` bytes.
        #[serde(with = "crate::bytes::vec")]
        key: Vec<u8>,
        /// A worker waits briefly until it has applied at least this seq
        /// (read-your-writes); 0 = no wait.
        min_seq: u64,
    },
    /// Tag 4. Write `value` under `key` (master only). Answer: `Written`.
    Put {
        /// Request id.
        req_id: u64,
        /// The key, at most `KEY_BYTES_MAX` bytes.
        #[serde(with = "crate::bytes::vec")]
        key: Vec<u8>,
        /// The value, at most `VALUE_BYTES_MAX` bytes.
        #[serde(with = "crate::bytes::vec")]
        value: Vec<u8>,
    },
    /// Tag 5. Delete `key` (master only). Answer: `Deleted`.
    Delete {
        /// Request id.
        req_id: u64,
        /// The key, at most `KEY_BYTES_MAX` bytes.
        #[serde(with = "crate::bytes::vec")]
        key: Vec<u8>,
    },
    /// Tag 6. The last `depth` versions of `key`, newest first. Answer: `Versions`.
    History {
        /// Request id.
        req_id: u64,
        /// The key, at most `KEY_BYTES_MAX` bytes.
        #[serde(with = "crate::bytes::vec")]
        key: Vec<u8>,
        /// Most versions wanted, at most `HISTORY_DEPTH_MAX`.
        depth: u32,
        /// As in `Get`.
        min_seq: u64,
    },
    /// Tag 7. A page of keys starting with `prefix`. Answer: `ScanPage`.
    Scan {
        /// Request id.
        req_id: u64,
        /// 0 for the first page, else a `next_cursor` from the page before.
        cursor: u64,
        /// Key prefix, at most `KEY_BYTES_MAX` bytes; empty = all keys.
        #[serde(with = "crate::bytes::vec")]
        prefix: Vec<u8>,
        /// Most keys wanted, at most `SCAN_LIMIT_MAX`.
        limit: u32,
        /// As in `Get`.
        min_seq: u64,
    },
    /// Tag 8. The digest of the whole store. Answer: `DigestIs`.
    Digest {
        /// Request id.
        req_id: u64,
    },
    /// Tag 9. The node's status. Answer: `StatusIs`.
    Status {
        /// Request id.
        req_id: u64,
    },
    /// Tag 10. Which workers the master has connected. Answer: `WorkerList`.
    Workers {
        /// Request id.
        req_id: u64,
    },

    /// Tag 11. Answers `Get`.
    Value {
        /// Request id of the `Get`.
        req_id: u64,
        /// Highest seq the answering node had applied when it read.
        applied_seq: u64,
        /// `(seq of that version, value)`, or `None` if the key is absent.
        #[serde(with = "crate::bytes::option_seq")]
        value: Option<(u64, Vec<u8>)>,
    },
    /// Tag 12. Answers `Put`.
    Written {
        /// Request id of the `Put`.
        req_id: u64,
        /// Seq the write got.
        seq: u64,
    },
    /// Tag 13. Answers `Delete`.
    Deleted {
        /// Request id of the `Delete`.
        req_id: u64,
        /// Seq the delete got; `None` if the key was absent (nothing written).
        seq: Option<u64>,
    },
    /// Tag 14. Answers `History`, newest first.
    Versions {
        /// Request id of the `History`.
        req_id: u64,
        /// Highest seq the answering node had applied when it read.
        applied_seq: u64,
        /// At most `HISTORY_DEPTH_MAX` versions, under the `BATCH_BYTES_MAX` rule.
        versions: Vec<Version>,
        /// Older versions within the requested depth left out so that the
        /// answer keeps to the batch rule (protocol 2).
        omitted: u32,
    },
    /// Tag 15. Answers `Scan`.
    ScanPage {
        /// Request id of the `Scan`.
        req_id: u64,
        /// Highest seq the answering node had applied when it read.
        applied_seq: u64,
        /// At most `SCAN_LIMIT_MAX` keys.
        #[serde(with = "crate::bytes::list")]
        keys: Vec<Vec<u8>>,
        /// Cursor for the next page; `None` = this was the last page.
        next_cursor: Option<u64>,
    },
    /// Tag 16. Answers `Digest`.
    DigestIs {
        /// Request id of the `Digest`.
        req_id: u64,
        /// Digest of every live key and value at `seq`.
        digest: u64,
        /// Seq the digest was taken at.
        seq: u64,
        /// Number of live keys at `seq`.
        len: u64,
    },
    /// Tag 17. Answers `Status`.
    StatusIs {
        /// Request id of the `Status`.
        req_id: u64,
        /// The node's status.
        status: NodeStatus,
    },
    /// Tag 18. Answers `Workers`.
    WorkerList {
        /// Request id of the `Workers`.
        req_id: u64,
        /// At most `WORKERS_MAX` workers.
        workers: Vec<WorkerInfo>,
    },
    /// Tag 19. Answers any request that failed.
    Error {
        /// Request id of the failed request.
        req_id: u64,
        /// What failed, for the requester's logic.
        code: ErrorCode,
        /// What failed, for a human; at most `MESSAGE_STRING_BYTES_MAX` bytes.
        message: String,
    },

    /// Tag 20. Master to worker: consecutive records of the write log.
    /// Pipelined: the master sends more before the `Ack` of earlier ones.
    Records {
        /// The master's term (protocol 3): the session's, set at the
        /// handshake; a frame of another term ends the session.
        term: u64,
        /// Seq of the first record; equals `records[0].seq` if any.
        first_seq: u64,
        /// Records in strictly increasing seq order, at most
        /// `BATCH_RECORDS_MAX`, under the `BATCH_BYTES_MAX` rule.
        records: Vec<WireRecord>,
    },
    /// Tag 21. Worker to master: everything up to `applied_seq` is applied
    /// (as durable as the worker's fsync policy makes it). A worker may hold
    /// it back, but sends it before answering a `Ping` on the replication
    /// stream (see WIRE.md, "Replication").
    Ack {
        /// The worker's term (protocol 3).
        term: u64,
        /// Highest seq applied.
        applied_seq: u64,
    },
    /// Tag 22. Master to worker: a full copy of the store follows, replacing
    /// whatever the worker holds.
    SnapshotBegin {
        /// The master's term (protocol 3).
        term: u64,
        /// History the snapshot belongs to; the worker adopts it.
        history_id: u64,
        /// The snapshot holds every write up to and including this seq.
        upto_seq: u64,
        /// Number of records the chunks will carry.
        records_total: u64,
        /// For progress reports: an estimate of the bytes the chunks will
        /// carry (hypha's master sends the size of its data files, an upper
        /// bound, since the log also holds older versions).
        bytes_total: u64,
    },
    /// Tag 23. Master to worker: part of a snapshot.
    SnapshotChunk {
        /// At most `BATCH_RECORDS_MAX` records, under the `BATCH_BYTES_MAX` rule.
        records: Vec<WireRecord>,
    },
    /// Tag 24. Master to worker: the snapshot is complete; `Records` from
    /// `upto_seq + 1` follow.
    SnapshotEnd {
        /// Same as in `SnapshotBegin`.
        upto_seq: u64,
    },
    /// Tag 25. Liveness probe on an idle connection; answered by `Pong`. On
    /// the replication stream it also asks the worker for an `Ack` at once.
    Ping {
        /// Echoed by the `Pong`.
        nonce: u64,
    },
    /// Tag 26. Answers `Ping`.
    Pong {
        /// The `Ping`'s nonce.
        nonce: u64,
    },
    /// Tag 27. Asks a node about compaction; with `run`, compacts first
    /// (answered when it is done). Answer: `CompactIs`.
    Compact {
        /// Request id.
        req_id: u64,
        /// Compact now before answering.
        run: bool,
    },
    /// Tag 28. Answers `Compact`.
    CompactIs {
        /// Request id of the `Compact`.
        req_id: u64,
        /// The node's compaction counters.
        info: CompactInfo,
    },
    /// Tag 29. The acceptor's answer to a `Hello`: its nonce and its proof
    /// of the cluster key (plain frame). Answer: `Prove`.
    Challenge(Challenge),
    /// Tag 30. The connector's proof of the cluster key, the last plain
    /// frame; every later frame carries a MAC. Answer: `Welcome` / `Refuse`.
    Prove(Prove),
    /// Tag 31. Between members of a failover group, on a connection of
    /// purpose `Elect` (protocol 3): an election or liveness message.
    Ballot(Ballot),
    /// Tag 32. `Put` with a request id (protocol 3): a retry whose first
    /// attempt is in the log is answered with that attempt's seq and
    /// writes nothing. Answer: `Written`, or `Error { OutcomeUnknown }`.
    PutOnce {
        /// Request id.
        req_id: u64,
        /// The key, at most `KEY_BYTES_MAX` bytes.
        #[serde(with = "crate::bytes::vec")]
        key: Vec<u8>,
        /// The value, at most `VALUE_BYTES_MAX` bytes.
        #[serde(with = "crate::bytes::vec")]
        value: Vec<u8>,
        /// The client request, kept in the record.
        request: WriteRequest,
    },
    /// Tag 33. `Delete` with a request id, as `PutOnce`. Answer: `Deleted`.
    DeleteOnce {
        /// Request id.
        req_id: u64,
        /// The key, at most `KEY_BYTES_MAX` bytes.
        #[serde(with = "crate::bytes::vec")]
        key: Vec<u8>,
        /// The client request, kept in the record.
        request: WriteRequest,
    },
    /// Tag 34. A failover group's member list as this member's log holds
    /// it. Answer: `MemberList`.
    Members {
        /// Request id.
        req_id: u64,
    },
    /// Tag 35. Answers `Members` and `ChangeMembers`; also the first
    /// message a member sends on an `Elect` connection once its group's
    /// list changed (`req_id` 0), so a witness learns where members listen.
    MemberList {
        /// Request id.
        req_id: u64,
        /// The list.
        members: Membership,
    },
    /// Tag 36. Change a failover group's member list by one member (the
    /// leader only; others answer `NotMaster`). Answer: `MemberList` once
    /// the change is committed (an `Add`: once the new member caught up
    /// and votes), or `Error`.
    ChangeMembers {
        /// Request id.
        req_id: u64,
        /// The change.
        change: MemberChange,
    },
    /// Tag 37. `Put` only if the key is as `expect` says
    /// (compare-and-swap), decided by the master with the append; with a
    /// `request`, a retry is answered as `PutOnce` is. Answer: `Written`,
    /// or `Error { Conflict { seq } }` with the key's live seq.
    PutIf {
        /// Request id.
        req_id: u64,
        /// The key, at most `KEY_BYTES_MAX` bytes.
        #[serde(with = "crate::bytes::vec")]
        key: Vec<u8>,
        /// The value, at most `VALUE_BYTES_MAX` bytes.
        #[serde(with = "crate::bytes::vec")]
        value: Vec<u8>,
        /// What the key must be for the write to happen.
        expect: Expect,
        /// The client request (an edge in front of a failover group).
        request: Option<WriteRequest>,
    },
    /// Tag 38. `Delete` only if the key is as `expect` says (see `PutIf`).
    /// Answer: `Deleted`, or `Error { Conflict { seq } }`.
    DeleteIf {
        /// Request id.
        req_id: u64,
        /// The key, at most `KEY_BYTES_MAX` bytes.
        #[serde(with = "crate::bytes::vec")]
        key: Vec<u8>,
        /// What the key must be for the delete to happen.
        expect: Expect,
        /// The client request (an edge in front of a failover group).
        request: Option<WriteRequest>,
    },
    /// Tag 39. A transaction: if every condition holds, its writes as one
    /// atomic batch (consecutive seqs, seen and kept all or none), decided
    /// by the master under one hold of its write lock; with a `request`, a
    /// retry is answered as `PutOnce` is. Answer: `Written` with the
    /// batch's last seq (the store's seq when there was nothing to write),
    /// `TxnFailed`, or `Error`.
    Txn {
        /// Request id.
        req_id: u64,
        /// Conditions, writes and reads.
        txn: Txn,
        /// The client request (an edge in front of a failover group).
        request: Option<WriteRequest>,
    },
    /// Tag 40. Answers a `Txn` a condition of which did not hold: nothing
    /// was written.
    TxnFailed {
        /// Request id of the `Txn`.
        req_id: u64,
        /// The store's seq when the conditions were checked.
        seq: u64,
        /// Indexes of the conditions that failed, ascending.
        failed: Vec<u32>,
        /// The `Txn`'s reads, in order, as of `seq`.
        reads: Vec<TxnRead>,
    },
    /// Tag 41. The changes under `prefix` after seq `after` (`None`: after
    /// the node's seq now), as soon as there is one, or none after
    /// `wait_ms`. Answer: `Events`, or `Error { Compacted { earliest } }`
    /// when the node's log no longer holds every write after `after`.
    Watch {
        /// Request id.
        req_id: u64,
        /// Keys starting with these bytes (at most `KEY_BYTES_MAX`).
        #[serde(with = "crate::bytes::vec")]
        prefix: Vec<u8>,
        /// The cursor: changes after this seq.
        after: Option<u64>,
        /// Whether changes carry their values.
        values: bool,
        /// Longest wait for a first change, at most `WATCH_WAIT_MS_MAX`.
        wait_ms: u32,
    },
    /// Tag 42. Answers `Watch`: the events in seq order, and `upto`, the
    /// seq through which the node looked (the next `after`).
    Events {
        /// Request id of the `Watch`.
        req_id: u64,
        /// The next cursor: every write up to here was examined.
        upto: u64,
        /// At most `WATCH_CHANGES_MAX` changes in all, under the batch rule.
        events: Vec<WatchEvent>,
    },
    /// Tag 43. A page of a consistent copy of the live keys ([`BackupAsk`]).
    /// Answer: `BackupPage`, or `Error { Compacted }` (start again).
    Backup(BackupAsk),
    /// Tag 44. Answers `Backup` ([`BackupPage`]).
    BackupPage(BackupPage),
}

/// A node's compaction counters, in [`Message::CompactIs`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactInfo {
    /// Compactions finished since the node started.
    pub compactions: u64,
    /// Input bytes a running compaction has examined (0: none running).
    pub running_done_bytes: u64,
    /// Input bytes of the running compaction (0: none running).
    pub running_total_bytes: u64,
    /// Bytes of the data files.
    pub data_bytes: u64,
    /// Bytes of the newest records that hold values.
    pub live_bytes: u64,
    /// Bytes of data files and tables.
    pub disk_bytes: u64,
    /// Disk bytes before the last compaction (0: none yet).
    pub last_bytes_before: u64,
    /// Disk bytes after the last compaction.
    pub last_bytes_after: u64,
    /// Milliseconds the last compaction took.
    pub last_millis: u64,
    /// Keys this node expired (wrote the delete of) while it was master.
    pub expired: u64,
}

/// Whether a [`WireRecord`] writes or deletes its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecordKind {
    /// Sets the key to the value. Tag 0.
    Put,
    /// Deletes the key; the value is empty. Tag 1.
    Delete,
}

/// One write of the log, as replicated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRecord {
    /// Position in the master's write log.
    pub seq: u64,
    /// The key's id in the master's lookup table.
    pub id: u32,
    /// Put or delete.
    pub kind: RecordKind,
    /// The key, at most `KEY_BYTES_MAX` bytes.
    #[serde(with = "crate::bytes::vec")]
    pub key: Vec<u8>,
    /// The value, at most `VALUE_BYTES_MAX` bytes; empty for a delete.
    #[serde(with = "crate::bytes::vec")]
    pub value: Vec<u8>,
    /// What the record carries besides its key and value (protocol 3).
    pub meta: WireMeta,
}

/// The fields of a record beyond key and value (protocol 3), as the engine
/// stores them (`engine/FORMAT.md`, record format 2): a worker writes them
/// back unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMeta {
    /// Term of the master that wrote the record; 0 before failover.
    pub term: u64,
    /// Expiry, ms since the Unix epoch; 0: none.
    pub deadline_ms: u64,
    /// The client request that wrote it; never all zero.
    pub request_id: Option<[u8; REQUEST_ID_BYTES]>,
    /// More records of the same atomic batch follow.
    pub batch_more: bool,
    /// A put that only moved its key's deadline (the value is the previous
    /// version's).
    pub refresh: bool,
}

/// One version of a key, in [`Message::Versions`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Seq of the write.
    pub seq: u64,
    /// The value written, or `None` for a delete.
    #[serde(with = "crate::bytes::option")]
    pub value: Option<Vec<u8>>,
}

/// A node's status, in [`Message::StatusIs`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's role.
    pub role: Role,
    /// The node's id.
    pub node_id: u64,
    /// The history the node holds; 0 = none.
    pub history_id: u64,
    /// Highest seq applied.
    pub applied_seq: u64,
    /// Highest seq known committed.
    pub commit_seq: u64,
    /// Number of live keys.
    pub keys: u64,
    /// Bytes the store takes on disk.
    pub disk_bytes: u64,
}

/// A worker known to the master, in [`Message::WorkerList`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The worker's node id.
    pub node_id: u64,
    /// `host:port` where the worker serves requests; at most `ADDR_BYTES_MAX` bytes.
    pub addr: String,
    /// Highest seq the worker has acknowledged.
    pub applied_seq: u64,
    /// Whether the master currently hears the worker's heartbeats.
    pub healthy: bool,
}

/// Why a request failed, in [`Message::Error`]. Variants are append-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The key does not exist. Tag 0.
    NotFound,
    /// The key or value is over its limit. Tag 1.
    TooLarge,
    /// The request makes no sense (e.g. a `Put` sent to a worker). Tag 2.
    BadRequest,
    /// The node cannot serve now (starting, catching up). Tag 3.
    Unavailable,
    /// `min_seq` was not reached in time, or a peer did not answer. Tag 4.
    Timeout,
    /// The node takes no writes (disk full, read-only mode). Tag 5.
    ReadOnly,
    /// Writes go to the master; this node is not it. Tag 6.
    NotMaster,
    /// A bug or I/O failure on the node. Tag 7.
    Internal,
    /// The write is durable on the master but fewer workers confirmed it
    /// than the request wanted. Tag 8.
    SyncFailed {
        /// Workers that confirmed.
        confirmed: u32,
        /// Workers wanted.
        wanted: u32,
    },
    /// Whether an earlier attempt of a retried write was applied cannot be
    /// told (its window is not in the log whole): nothing was written.
    /// Tag 9 (protocol 3).
    OutcomeUnknown,
    /// A conditional write (`PutIf`, `DeleteIf`) found its key otherwise
    /// than it expected and wrote nothing; `seq` is the key's live
    /// version's seq (`None`: absent). Tag 10.
    Conflict {
        /// The key's live seq.
        seq: Option<u64>,
    },
    /// A `Watch` asked for changes after a seq the node's log no longer
    /// holds every write after (compacted, or before a snapshot);
    /// `earliest` is the lowest cursor it can serve. Tag 11.
    Compacted {
        /// The earliest cursor available.
        earliest: u64,
    },
}

/// What a conditional write expects of its key ([`Message::PutIf`],
/// [`Message::DeleteIf`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Expect {
    /// Its live version was written at this seq (HTTP `If-Match: "SEQ"`).
    /// Tag 0.
    Seq(u64),
    /// It holds no value (`If-None-Match: *`). Tag 1.
    Absent,
    /// It holds a value (`If-Match: *`). Tag 2.
    Present,
}

// Tags fit one varint byte; WIRE.md and the worst-case sizes rely on it.
const _: () = assert!(MESSAGE_TAG_COUNT <= 128);
