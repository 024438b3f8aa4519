//! The master's side of replication: which worker may join and how (resume
//! from its log position or take a snapshot), the log stream to each worker
//! one batch at a time, acks, `--sync N` confirmations, liveness and the
//! tombstone floor.

pub use crate::events::{Conn, Join, MasterAction, MasterEvent};
use crate::limits::{Millis, FLOOR_GRACE_TIMEOUTS};
use crate::terms::TermHistory;
use crate::workers::{WorkerEntry, Workers};

mod admit;
use hypha_net::{Message, Role, TermStart, Welcome, WireRecord, WorkerInfo, PROTOCOL_VERSION};
use std::collections::BTreeMap;

/// When a write is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// After the local commit.
    Async,
    /// After this many workers applied it.
    Workers(u32),
    /// After a majority of a failover group's `voters` (this master
    /// included) hold it: the master's local commit and the acks of the
    /// members (workers of role `Member`).
    Majority {
        /// Voting members of the group, this master included.
        voters: u32,
    },
}

/// The master's settings.
#[derive(Clone, Debug)]
pub struct MasterParams {
    /// This node's id.
    pub node_id: u64,
    /// The history this master holds.
    pub history_id: u64,
    /// This master's term (0: a fixed-role master, outside failover
    /// groups). Every frame it sends carries it.
    pub term: u64,
    /// Its log's newest term boundaries (empty outside failover groups),
    /// sent in `Welcome` so a follower can find where its log agrees.
    pub terms: Vec<TermStart>,
    /// Write acknowledgement mode.
    pub sync: SyncMode,
    /// How long a `--sync N` write waits for workers.
    pub sync_timeout_ms: Millis,
    /// Heartbeat interval (the floor and forgetting are re-checked this often).
    pub heartbeat_ms: Millis,
    /// A worker silent this long is unhealthy.
    pub heartbeat_timeout_ms: Millis,
    /// A worker neither connected nor heard this long is forgotten.
    pub forget_after_ms: Millis,
}

/// Where one worker's stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    /// Nothing is sent: the worker's log diverged (see [`Start::Diverged`]).
    Held,
    /// A snapshot is being sent.
    Snapshot,
    /// A `ReadLog` is out.
    Reading,
    /// A `Send` of records is out.
    Sending,
    /// Caught up with `committed`; waits for a commit.
    Idle,
}

/// One replication connection.
#[derive(Debug)]
struct Session {
    node: u64,
    stream: Stream,
    /// Highest seq handed to the socket (or covered by the snapshot).
    sent: u64,
    /// The bound of the `ReadLog` out.
    reading_upto: u64,
}

/// The master's replication state.
#[derive(Debug)]
pub struct MasterCore<B> {
    params: MasterParams,
    started: Millis,
    /// Highest seq known committed (and so safe to stream).
    committed: u64,
    /// Highest seq in the local log, durable or not (`MasterEvent::Appended`;
    /// at least `committed`): what a failover group streams.
    appended: u64,
    workers: Workers<B>,
    sessions: BTreeMap<Conn, Session>,
    /// Writes waiting for `--sync N`, by (seq, waiter), with their deadline.
    waiting: BTreeMap<(u64, u64), Millis>,
    next_check: Millis,
    /// This master's log's term boundaries (failover groups).
    terms: TermHistory,
    /// Highest seq a majority holds (failover groups, `SyncMode::Majority`):
    /// at least the first seq of this master's term (Raft commits an
    /// earlier term's records only with one of its own).
    majority: u64,
    /// The voters of the newest member list (`MasterEvent::Voters`): how
    /// many, and whether this master is one.
    voting: Option<(u32, bool)>,
}

impl<B> MasterCore<B> {
    /// A master whose engine committed up to `seq`, starting at `now`.
    ///
    /// In a failover group (`params.term` > 0) `params.terms` must end with
    /// this master's term, starting at the seq of its first write (the
    /// driver writes a record right after the election, so that the
    /// records of earlier terms commit with it).
    pub fn new(params: MasterParams, seq: u64, now: Millis) -> Self {
        let terms = TermHistory::from_starts(&params.terms).unwrap_or_else(|e| {
            debug_assert!(false, "master: bad term boundaries: {e}");
            TermHistory::new()
        });
        debug_assert!(
            params.term == 0 || terms.last_term() == Some(params.term),
            "a failover master's boundaries end with its own term"
        );
        MasterCore {
            params,
            started: now,
            committed: seq,
            appended: seq,
            workers: Workers::new(),
            sessions: BTreeMap::new(),
            waiting: BTreeMap::new(),
            next_check: now,
            terms,
            majority: 0,
            voting: None,
        }
    }

    /// The highest seq a majority of the group holds (0 until a record of
    /// this master's term does): what a linearizable read must see.
    pub fn majority_commit(&self) -> u64 {
        self.majority
    }

    /// Feeds one event; returns what to do, in order.
    pub fn handle(&mut self, event: MasterEvent<B>, now: Millis) -> Vec<MasterAction> {
        let mut out = Vec::new();
        match event {
            MasterEvent::Joined {
                conn,
                join,
                horizon,
                beats,
            } => self.joined(conn, join, horizon, beats, now, &mut out),
            MasterEvent::Received { conn, msg } => self.received(conn, msg, now, &mut out),
            MasterEvent::LogRead { conn, records } => self.log_read(conn, records, &mut out),
            MasterEvent::SnapshotSent { conn, upto } => {
                if let Some(s) = self.sessions.get_mut(&conn) {
                    s.sent = upto;
                    s.stream = Stream::Idle;
                    self.committed = self.committed.max(upto);
                    self.pump(conn, &mut out);
                }
            }
            MasterEvent::Sent { conn } => {
                if let Some(s) = self.sessions.get_mut(&conn) {
                    if s.stream == Stream::Sending {
                        s.stream = Stream::Idle;
                        self.pump(conn, &mut out);
                    }
                }
            }
            MasterEvent::Closed { conn } => self.closed(conn),
            MasterEvent::Appended { seq } => {
                let streams = matches!(self.params.sync, SyncMode::Majority { .. });
                if streams && seq > self.appended {
                    self.appended = seq;
                    self.pump_all(&mut out);
                }
            }
            MasterEvent::Committed { seq } => {
                if seq > self.committed {
                    self.committed = seq;
                    self.appended = self.appended.max(seq);
                    self.advance_majority();
                    self.confirm(&mut out);
                    self.pump_all(&mut out);
                }
            }
            MasterEvent::AwaitWorkers { waiter, seq } => {
                let deadline = now + self.params.sync_timeout_ms;
                self.waiting.insert((seq, waiter), deadline);
                self.confirm(&mut out);
            }
            MasterEvent::Heard { node, serve_port } => {
                if let Some(w) = self.workers.map.get_mut(&node) {
                    if w.conn.is_some() {
                        w.last_heard = now;
                        w.serve_port = serve_port;
                    }
                }
            }
            MasterEvent::WitnessAck { witness, seq } => {
                if self.params.term > 0 && seq <= self.committed {
                    let at = self.workers.witnesses.entry(witness).or_insert(0);
                    *at = (*at).max(seq);
                    self.advance_majority();
                    self.confirm(&mut out);
                }
            }
            MasterEvent::Voters {
                count,
                leader_votes,
                others,
            } => {
                self.voting = Some((count, leader_votes));
                self.workers.voter_keys = Some(others.into_iter().collect());
                self.advance_majority();
                self.confirm(&mut out);
            }
            MasterEvent::Tick => self.tick(now, &mut out),
        }
        out
    }

    /// When the driver must deliver [`MasterEvent::Tick`] next.
    pub fn next_deadline(&self) -> Millis {
        let waits = self.waiting.values().copied().min().unwrap_or(Millis::MAX);
        waits.min(self.next_check)
    }

    /// The heartbeat keys of `node`'s current session, to check its beats.
    pub fn beats_of(&mut self, node: u64) -> Option<&mut B> {
        self.workers.map.get_mut(&node)?.beats.as_mut()
    }

    /// The highest seq known committed.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// The workers that said where they serve reads, at most `max`.
    pub fn worker_list(&self, now: Millis, max: usize) -> Vec<WorkerInfo> {
        self.workers
            .list(now, self.params.heartbeat_timeout_ms, max)
    }

    /// The worker table (for tests and status).
    pub fn workers(&self) -> impl Iterator<Item = (&u64, &WorkerEntry<B>)> {
        self.workers.map.iter()
    }

    /// Writes waiting for workers, and sessions: the sizes of every queue
    /// this core keeps (the simulator checks they stay bounded).
    pub fn queue_lens(&self) -> (usize, usize) {
        (self.waiting.len(), self.sessions.len())
    }

    /// Whether `conn` is a live replication session.
    pub fn is_session(&self, conn: Conn) -> bool {
        self.sessions.contains_key(&conn)
    }

    fn welcome(&self) -> Message {
        Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            role: Role::Master,
            node_id: self.params.node_id,
            history_id: self.params.history_id,
            commit_seq: self.committed,
            term: self.params.term,
            terms: self.params.terms.clone(),
        })
    }

    /// The last seq of the local log that may be streamed: `appended` in
    /// a failover group, `committed` elsewhere (where they are equal).
    fn log_end(&self) -> u64 {
        self.appended.max(self.committed)
    }

    fn pump_all(&mut self, out: &mut Vec<MasterAction>) {
        let idle: Vec<Conn> = self.sessions.keys().copied().collect();
        for conn in idle {
            self.pump(conn, out);
        }
    }

    /// Starts the next log read of an idle session that is behind.
    fn pump(&mut self, conn: Conn, out: &mut Vec<MasterAction>) {
        let upto = self.log_end();
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        if s.stream == Stream::Idle && s.sent < upto {
            s.stream = Stream::Reading;
            s.reading_upto = upto;
            out.push(MasterAction::ReadLog {
                conn,
                after: s.sent,
                upto,
            });
        }
    }

    fn log_read(&mut self, conn: Conn, records: Vec<WireRecord>, out: &mut Vec<MasterAction>) {
        let sync = self.params.sync;
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        if s.stream != Stream::Reading {
            return;
        }
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            // Nothing up to the bound (a compaction may have dropped the
            // records between): caught up to the read's bound (not to
            // `committed`, which may have moved since).
            s.sent = s.sent.max(s.reading_upto);
            s.stream = Stream::Idle;
            return;
        };
        let (first_seq, last_seq) = (first.seq, last.seq);
        s.sent = last_seq;
        s.stream = Stream::Sending;
        let mut msgs = vec![Message::Records {
            term: self.params.term,
            first_seq,
            records,
        }];
        if sync != SyncMode::Async {
            // Writes wait for acks: a Ping right behind the records has the
            // worker ack them at once (it answers a Ping only after an Ack
            // of everything applied before it).
            msgs.push(Message::Ping { nonce: last_seq });
        }
        out.push(MasterAction::Send { conn, msgs });
    }

    fn received(&mut self, conn: Conn, msg: Message, now: Millis, out: &mut Vec<MasterAction>) {
        let Some(node) = self.sessions.get(&conn).map(|s| s.node) else {
            return;
        };
        match msg {
            Message::Ack { term, .. } if term != self.params.term => {
                let why = format!(
                    "worker acknowledged in term {term} on a session of term {}",
                    self.params.term
                );
                self.close(conn, why, out);
            }
            Message::Ack { applied_seq, .. } => {
                let sent = self.sessions.get(&conn).map_or(0, |s| s.sent);
                if applied_seq > sent.max(self.committed) {
                    let why = format!(
                        "worker acknowledged seq {applied_seq}, beyond the master's {}",
                        self.committed
                    );
                    self.close(conn, why, out);
                    return;
                }
                let Some(w) = self.workers.current(node, conn) else {
                    return;
                };
                w.applied_seq = w.applied_seq.max(applied_seq);
                w.last_heard = now;
                self.advance_majority();
                self.confirm(out);
            }
            Message::Ping { .. } | Message::Pong { .. } => {}
            other => {
                let why = format!("unexpected {} from a worker", other.name());
                self.close(conn, why, out);
            }
        }
    }

    /// Asks the driver to close `conn` and forgets it now.
    fn close(&mut self, conn: Conn, why: String, out: &mut Vec<MasterAction>) {
        out.push(MasterAction::Close { conn, why });
        self.closed(conn);
    }

    fn closed(&mut self, conn: Conn) {
        let Some(s) = self.sessions.remove(&conn) else {
            return;
        };
        if let Some(w) = self.workers.current(s.node, conn) {
            w.conn = None;
            w.beats = None;
            log::info!("master: worker {:016x} at {} left", s.node, w.peer);
        }
    }

    /// Confirms the waiting writes enough workers acknowledged. A worker
    /// that acknowledged a seq acknowledged every lower one, so the waits
    /// are walked by seq and the walk stops at the first unconfirmed.
    fn confirm(&mut self, out: &mut Vec<MasterAction>) {
        let sync = self.params.sync;
        if sync == SyncMode::Async {
            for ((_, waiter), _) in std::mem::take(&mut self.waiting) {
                out.push(MasterAction::Confirm { waiter });
            }
            return;
        }
        while let Some((&(seq, waiter), _)) = self.waiting.first_key_value() {
            let done = match sync {
                SyncMode::Workers(wanted) => self.workers.confirmed(seq) >= wanted,
                SyncMode::Majority { .. } => seq <= self.majority,
                SyncMode::Async => true,
            };
            if !done {
                break;
            }
            self.waiting.remove(&(seq, waiter));
            out.push(MasterAction::Confirm { waiter });
        }
    }

    /// Moves the majority commit point: the highest seq this master
    /// committed and `voters / 2` members acknowledged, if it is of this
    /// master's term (Raft's commit rule).
    fn advance_majority(&mut self) {
        let Some((_, others)) = self.majority_rule() else {
            return;
        };
        let held = self.committed.min(self.workers.nth_voter_ack(others));
        let first_own = self
            .terms
            .starts()
            .last()
            .filter(|t| t.term == self.params.term)
            .map(|t| t.first_seq);
        if first_own.is_some_and(|first| held >= first) && held > self.majority {
            self.majority = held;
        }
    }

    /// In majority mode: how many voters a write needs, and how many of
    /// them besides this master (which holds every record it commits).
    fn majority_rule(&self) -> Option<(u32, usize)> {
        let SyncMode::Majority { voters } = self.params.sync else {
            return None;
        };
        let (count, leader_votes) = self.voting.unwrap_or((voters, true));
        let need = count / 2 + 1;
        Some((need, (need - u32::from(leader_votes)) as usize))
    }

    fn tick(&mut self, now: Millis, out: &mut Vec<MasterAction>) {
        let wanted = match self.params.sync {
            SyncMode::Workers(n) => n,
            SyncMode::Majority { .. } => self.majority_rule().map_or(0, |(need, _)| need),
            SyncMode::Async => 0,
        };
        let leader_votes = self.voting.is_none_or(|(_, v)| v);
        let expired: Vec<(u64, u64)> = self
            .waiting
            .iter()
            .filter(|(_, &deadline)| deadline <= now)
            .map(|(&k, _)| k)
            .collect();
        for (seq, waiter) in expired {
            self.waiting.remove(&(seq, waiter));
            let confirmed = match self.params.sync {
                SyncMode::Majority { .. } => {
                    u32::from(leader_votes) + self.workers.voters_confirmed(seq)
                }
                _ => self.workers.confirmed(seq),
            };
            out.push(MasterAction::SyncFailed {
                waiter,
                seq,
                confirmed,
                wanted,
            });
        }
        if now >= self.next_check {
            self.next_check = now + self.params.heartbeat_ms.max(1);
            self.workers.forget_silent(now, self.params.forget_after_ms);
            self.floor(now, out);
        }
    }

    /// Lets compaction drop only the deletes every connected or recently
    /// heard worker has applied; keeps all of them for a grace period after
    /// start, so that workers known before a restart can come back.
    fn floor(&self, now: Millis, out: &mut Vec<MasterAction>) {
        let grace = self.params.heartbeat_timeout_ms * FLOOR_GRACE_TIMEOUTS;
        let floor = if now.saturating_sub(self.started) < grace {
            0
        } else {
            self.workers.floor(now, self.params.forget_after_ms)
        };
        out.push(MasterAction::TombstoneFloor(floor));
    }
}
