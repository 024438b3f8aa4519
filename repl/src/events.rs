//! What a master's driver tells [`MasterCore`](crate::MasterCore) and what
//! it is told to do.

use hypha_net::{Message, RefuseReason, Role, WireRecord};
use std::net::SocketAddr;

/// A replication connection, named by its driver (the server uses the
/// authenticated session's id, unique per connection).
pub type Conn = u64;

/// A worker's `Hello`, after its connection proved the cluster key.
#[derive(Clone, Debug)]
pub struct Join {
    /// The worker's node id.
    pub node: u64,
    /// The role it claims.
    pub role: Role,
    /// The history it follows (0: none, it wants a snapshot).
    pub history_id: u64,
    /// The highest seq it applied.
    pub applied_seq: u64,
    /// The term of its newest record (with `applied_seq`, its last log id).
    pub last_term: u64,
    /// Where the connection came from.
    pub peer: SocketAddr,
}

/// What happened, as told by the driver.
#[derive(Debug)]
pub enum MasterEvent<B> {
    /// A connection proved the key and asked to replicate. `horizon` is the
    /// engine's tombstone horizon now; `beats` the session's heartbeat keys.
    Joined {
        /// The connection.
        conn: Conn,
        /// Its `Hello`.
        join: Join,
        /// `Db::tombstone_horizon()`.
        horizon: u64,
        /// Heartbeat keys, kept with the worker while its session lasts.
        beats: B,
    },
    /// A message arrived on a replication connection.
    Received {
        /// The connection.
        conn: Conn,
        /// The message.
        msg: Message,
    },
    /// The driver did a [`MasterAction::ReadLog`]: the records it found, in
    /// seq order (empty: nothing new up to the bound).
    LogRead {
        /// The connection.
        conn: Conn,
        /// The records.
        records: Vec<WireRecord>,
    },
    /// The driver sent a whole snapshot up to `upto` (inclusive).
    SnapshotSent {
        /// The connection.
        conn: Conn,
        /// Its last seq.
        upto: u64,
    },
    /// The last [`MasterAction::Send`] to `conn` left for the socket.
    Sent {
        /// The connection.
        conn: Conn,
    },
    /// The connection ended (closed, failed, or closed on our request).
    Closed {
        /// The connection.
        conn: Conn,
    },
    /// A local write committed at `seq` (under `--fsync always`: after its
    /// fdatasync). Everything at or below it may be streamed.
    Committed {
        /// Its seq.
        seq: u64,
    },
    /// A local write at `seq` is in the log, durable or not. In a failover
    /// group (`SyncMode::Majority`) it is streamed at once, so that the
    /// leader's fdatasync and its followers' run side by side; only
    /// `Committed` counts the leader toward the majority. Elsewhere it is
    /// ignored: a fixed-role master's workers serve what they hold, so they
    /// get only what the master made durable.
    Appended {
        /// Its seq.
        seq: u64,
    },
    /// A write at `seq` waits for `--sync N` workers; `waiter` names it in
    /// the [`MasterAction::Confirm`] or [`MasterAction::SyncFailed`] to come.
    AwaitWorkers {
        /// Chosen by the driver, unique among waiting writes.
        waiter: u64,
        /// The write's seq.
        seq: u64,
    },
    /// A heartbeat of `node`, checked against its current session's keys.
    Heard {
        /// The worker.
        node: u64,
        /// Where it serves reads.
        serve_port: u16,
    },
    /// A witness of the failover group (a voter that keeps no data, only
    /// the leader's last log id) acknowledged holding this master's log up
    /// to `seq` (`ElectionAction::Acked` of a witness, whose log id is of
    /// this master's term). It counts toward the majority.
    WitnessAck {
        /// The witness, named by the driver.
        witness: u64,
        /// The seq of the log id it keeps.
        seq: u64,
    },
    /// The failover group's voters changed (the newest member list in this
    /// master's log, committed or not): `count` voters in all, this master
    /// among them if `leader_votes`; `others` names those of them the
    /// driver knows (a member's node id, a witness as in `WitnessAck`).
    /// Only their acknowledgements count toward the majority from now on;
    /// before this event, every worker of role `Member` and every witness
    /// counts, out of `SyncMode::Majority`'s `voters`.
    Voters {
        /// Voters in all.
        count: u32,
        /// Whether this master votes.
        leader_votes: bool,
        /// The other voters the driver can name.
        others: Vec<u64>,
    },
    /// Time passed (see [`MasterCore::next_deadline`](crate::MasterCore::next_deadline)).
    Tick,
}

/// What the driver must do.
#[derive(Debug, PartialEq)]
pub enum MasterAction {
    /// Send these messages on `conn`, in order, then report
    /// [`MasterEvent::Sent`].
    Send {
        /// The connection.
        conn: Conn,
        /// The messages.
        msgs: Vec<Message>,
    },
    /// Send `Refuse` and close `conn`.
    Refuse {
        /// The connection.
        conn: Conn,
        /// Why, for the peer's code.
        reason: RefuseReason,
        /// Why, for the peer's operator.
        message: String,
    },
    /// Close `conn` (report [`MasterEvent::Closed`] once it is).
    Close {
        /// The connection.
        conn: Conn,
        /// Why, for the log.
        why: String,
    },
    /// Send a snapshot of every live record with seq ≤ `upto` (the highest
    /// committed seq: nothing a crash could take back), then report
    /// [`MasterEvent::SnapshotSent`].
    SendSnapshot {
        /// The connection.
        conn: Conn,
        /// Its last seq.
        upto: u64,
    },
    /// Read the log records with `after < seq <= upto`, at most one batch
    /// (`BATCH_RECORDS_MAX`, `BATCH_BYTES_MAX`), and report
    /// [`MasterEvent::LogRead`].
    ReadLog {
        /// The connection.
        conn: Conn,
        /// Exclusive lower bound.
        after: u64,
        /// Inclusive upper bound: the highest committed seq.
        upto: u64,
    },
    /// The write named `waiter` reached its `--sync N`.
    Confirm {
        /// The waiting write.
        waiter: u64,
    },
    /// The write named `waiter` timed out waiting for workers.
    SyncFailed {
        /// The waiting write.
        waiter: u64,
        /// Its seq.
        seq: u64,
        /// Workers that applied it.
        confirmed: u32,
        /// Workers wanted.
        wanted: u32,
    },
    /// Compaction may drop deletes at or below this seq
    /// (`Db::set_tombstone_floor`).
    TombstoneFloor(u64),
}
