//! The worker's side of replication: connect (resume from its applied seq,
//! or ask for a snapshot), apply what the master streams one batch at a
//! time (what arrives meanwhile is queued and applied next as one batch,
//! so one fdatasync covers it), acknowledge after a short delay or at once
//! when pinged, watch the master's liveness, and decide what a refusal
//! means.

use crate::limits::{
    Millis, APPLY_QUEUED_BYTES_MAX, HISTORY_RETRY_MS, PONGS_OWED_MAX, RECONNECT_MS,
};
use crate::terms::{agreement, Agreement, TermHistory};

mod queue;
use hypha_net::{Message, TermStart, WireRecord};

/// The worker's settings.
#[derive(Clone, Debug)]
pub struct FollowerParams {
    /// The master is presumed gone after this long without a word or a
    /// heartbeat from it.
    pub heartbeat_timeout_ms: Millis,
    /// Replace local data when the master holds another history.
    pub accept_new_history: bool,
}

/// What happened, as told by the driver.
#[derive(Debug)]
pub enum FollowerEvent {
    /// Time passed (see [`Follower::next_deadline`]).
    Tick,
    /// The master accepted the `Hello` of a [`FollowerAction::Connect`].
    Welcomed {
        /// The master's node id.
        node_id: u64,
        /// The history it holds.
        history_id: u64,
        /// Its seq.
        commit_seq: u64,
        /// Its term: every frame of the session must carry it.
        term: u64,
        /// Its log's newest term boundaries (empty from a fixed-role
        /// master, term 0).
        terms: Vec<TermStart>,
        /// This worker's own term boundaries, read from its engine now.
        mine: TermHistory,
    },
    /// The master refused the `Hello`.
    Refused {
        /// Whether it holds another history (or lost writes this worker has).
        history_mismatch: bool,
        /// Its message.
        message: String,
    },
    /// Connecting failed, or the session ended or failed.
    Failed {
        /// Why, for the log.
        why: String,
    },
    /// A message of the session.
    Received(Message),
    /// The driver applied the last [`FollowerAction::Apply`]; the engine's
    /// seq is now `seq`.
    Applied {
        /// The engine's seq.
        seq: u64,
    },
    /// The driver installed the snapshot of [`FollowerAction::SnapshotEnd`].
    SnapshotInstalled {
        /// The history now followed.
        history_id: u64,
        /// The engine's seq.
        seq: u64,
    },
    /// A heartbeat from the master, checked against the session's keys.
    MasterHeard,
    /// The driver did the [`FollowerAction::Truncate`]: the log now ends at
    /// `seq`.
    Truncated {
        /// The engine's seq.
        seq: u64,
    },
    /// The [`FollowerAction::Truncate`] could not be done (compaction
    /// already merged the records to cut): a snapshot replaces the data.
    TruncateFailed {
        /// Why, for the log.
        why: String,
    },
}

/// What the driver must do.
#[derive(Debug, PartialEq)]
pub enum FollowerAction {
    /// Connect to the master and say `Hello` with this history and seq.
    Connect {
        /// The history followed (0: send a snapshot).
        history_id: u64,
        /// The highest seq applied.
        applied_seq: u64,
    },
    /// Apply the records in order, then report [`FollowerEvent::Applied`].
    /// One at a time; the driver goes on reading while
    /// [`Follower::wants_message`] says so (the core queues what arrives).
    Apply {
        /// The records.
        records: Vec<WireRecord>,
    },
    /// Start receiving a snapshot beside the current data.
    SnapshotBegin {
        /// The history it belongs to.
        history_id: u64,
        /// Its last seq.
        upto_seq: u64,
        /// Records it holds, for progress.
        records_total: u64,
        /// Bytes it may hold, for progress.
        bytes_total: u64,
    },
    /// Apply a chunk to the snapshot being received.
    SnapshotChunk {
        /// The records.
        records: Vec<WireRecord>,
    },
    /// The snapshot is whole: make it durable, swap it in by renames, then
    /// report [`FollowerEvent::SnapshotInstalled`].
    SnapshotEnd {
        /// The history it belongs to.
        history_id: u64,
        /// Its last seq.
        upto_seq: u64,
        /// The master's term boundaries up to `upto_seq`: the snapshot's
        /// (`Db::set_term_history`).
        terms: Vec<TermStart>,
    },
    /// Send on the session.
    Send(Message),
    /// End the session (a half-received snapshot is discarded).
    Disconnect {
        /// Why, for the log.
        why: String,
    },
    /// The session is over. Cut the log back to end at `after`
    /// (`Db::truncate_after`, keeping the records cut in `diverged/`): they
    /// are not in the master's log, so no majority ever held them. Then
    /// report [`FollowerEvent::Truncated`] or
    /// [`FollowerEvent::TruncateFailed`].
    Truncate {
        /// The last seq kept.
        after: u64,
    },
}

/// Where the worker is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting to connect until this time.
    Waiting(Millis),
    /// A `Connect` is out.
    Connecting,
    /// Following the master on a session.
    Following,
    /// A `Truncate` is out.
    Truncating,
}

/// A session with the master.
#[derive(Debug, Default)]
struct Session {
    /// The master's term, from its `Welcome`.
    term: u64,
    /// The master's term boundaries, from its `Welcome`.
    terms: Vec<TermStart>,
    heard: Millis,
    /// Applied but not acknowledged, and when the ack is due.
    unacked: Option<u64>,
    ack_at: Option<Millis>,
    /// An `Apply` (or snapshot step) is out.
    applying: bool,
    /// Records received while an `Apply` was out: the next `Apply`.
    queued: Vec<WireRecord>,
    /// Key and value bytes in `queued`.
    queued_bytes: usize,
    /// The highest seq received on the session.
    received: u64,
    /// Pings to answer, each with the highest seq received before it: its
    /// pong goes once that is applied.
    pongs: Vec<(u64, u64)>,
    /// The snapshot being received: (history, upto).
    snapshot: Option<(u64, u64)>,
}

/// The worker's replication state.
#[derive(Debug)]
pub struct Follower {
    params: FollowerParams,
    /// The history followed (0: none yet).
    followed: u64,
    /// The engine's seq.
    applied: u64,
    /// Ask for a snapshot at the next connect (`--accept-new-history`).
    force_snapshot: bool,
    phase: Phase,
    session: Session,
}

impl Follower {
    /// A worker that follows `followed` and applied up to `applied`; it
    /// connects at the first tick.
    pub fn new(params: FollowerParams, followed: u64, applied: u64) -> Self {
        Follower {
            params,
            followed,
            applied,
            force_snapshot: false,
            phase: Phase::Waiting(0),
            session: Session::default(),
        }
    }

    /// Where the worker is.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The history followed.
    pub fn followed(&self) -> u64 {
        self.followed
    }

    /// Whether the driver may read the next message of the session: while
    /// records are applied, until [`APPLY_QUEUED_BYTES_MAX`] bytes wait
    /// behind them; not while a snapshot is installed.
    pub fn wants_message(&self) -> bool {
        let s = &self.session;
        self.phase == Phase::Following
            && (!s.applying || (s.snapshot.is_none() && s.queued_bytes < APPLY_QUEUED_BYTES_MAX))
    }

    /// When the driver must deliver [`FollowerEvent::Tick`] next.
    pub fn next_deadline(&self) -> Millis {
        match self.phase {
            Phase::Waiting(until) => until,
            Phase::Connecting | Phase::Truncating => Millis::MAX,
            Phase::Following => {
                let silent = self.session.heard + self.params.heartbeat_timeout_ms;
                silent.min(self.session.ack_at.unwrap_or(Millis::MAX))
            }
        }
    }

    /// Feeds one event; returns what to do, in order.
    pub fn handle(&mut self, event: FollowerEvent, now: Millis) -> Vec<FollowerAction> {
        let mut out = Vec::new();
        match event {
            FollowerEvent::Tick => self.tick(now, &mut out),
            FollowerEvent::Welcomed {
                node_id,
                history_id,
                commit_seq,
                term,
                terms,
                mine,
            } if self.phase == Phase::Connecting => {
                // A worker that asked for a snapshot takes the master's data
                // whole: where the logs agree does not matter.
                let check = term > 0 && !self.force_snapshot;
                if check && !self.agrees(&terms, commit_seq, &mine, now, &mut out) {
                    return out;
                }
                log::info!(
                    "worker: following master {node_id:016x} (history {history_id:016x}, seq \
                     {commit_seq}) from seq {}",
                    self.applied
                );
                self.phase = Phase::Following;
                self.session = Session {
                    term,
                    terms,
                    heard: now,
                    ..Session::default()
                };
            }
            FollowerEvent::Refused {
                history_mismatch,
                message,
            } if self.phase == Phase::Connecting => self.refused(history_mismatch, message, now),
            FollowerEvent::Welcomed { .. } | FollowerEvent::Refused { .. } => {}
            FollowerEvent::Failed { why } => {
                if !matches!(self.phase, Phase::Waiting(_)) {
                    log::info!("worker: following the master failed: {why}; reconnecting");
                }
                self.retry(now + RECONNECT_MS);
            }
            FollowerEvent::Received(msg) => {
                if self.phase == Phase::Following {
                    self.session.heard = now;
                    self.received(msg, now, &mut out);
                }
            }
            FollowerEvent::Applied { seq } => self.applied(seq, now, &mut out),
            FollowerEvent::SnapshotInstalled { history_id, seq } => {
                self.applied = seq;
                self.followed = history_id;
                self.force_snapshot = false;
                self.session.applying = false;
                if self.phase == Phase::Following {
                    self.session.snapshot = None;
                    self.session.unacked = Some(seq);
                    self.session.ack_at = None;
                    self.ack(&mut out);
                    self.pay_pongs(&mut out);
                }
            }
            FollowerEvent::MasterHeard => {
                if self.phase == Phase::Following {
                    self.session.heard = now;
                }
            }
            FollowerEvent::Truncated { seq } => {
                if self.phase == Phase::Truncating {
                    log::info!("worker: log cut back to seq {seq}; reconnecting");
                    self.applied = seq;
                    self.retry(now);
                }
            }
            FollowerEvent::TruncateFailed { why } => {
                if self.phase == Phase::Truncating {
                    log::warn!("worker: cutting the log back failed: {why}; taking a snapshot");
                    self.force_snapshot = true;
                    self.retry(now);
                }
            }
        }
        out
    }

    /// In a failover group: whether this worker's log is a prefix of the
    /// master's (its `Welcome` gave the master's term boundaries). If not,
    /// the session ends with a `Truncate` to where the logs agree, or with
    /// a snapshot asked for when the boundaries cannot tell.
    fn agrees(
        &mut self,
        terms: &[TermStart],
        master_last: u64,
        mine: &TermHistory,
        now: Millis,
        out: &mut Vec<FollowerAction>,
    ) -> bool {
        let theirs = match TermHistory::from_starts(terms) {
            Ok(t) => t,
            Err(e) => {
                self.disconnect(format!("the master's term boundaries: {e}"), now, out);
                return false;
            }
        };
        match agreement(&theirs, master_last, mine, self.applied) {
            Agreement::Prefix => true,
            Agreement::CutAfter(after) => {
                log::warn!(
                    "worker: records after seq {after} (up to {}) are not in the master's log: \
                     no majority acknowledged them; cutting them (kept in diverged/)",
                    self.applied
                );
                out.push(FollowerAction::Disconnect {
                    why: "cutting back a diverged log".into(),
                });
                out.push(FollowerAction::Truncate { after });
                self.phase = Phase::Truncating;
                false
            }
            Agreement::Unknown => {
                log::warn!(
                    "worker: cannot tell where this log and the master's agree from the term \
                     boundaries kept; taking a snapshot"
                );
                self.force_snapshot = true;
                self.disconnect("asking for a snapshot".into(), now, out);
                false
            }
        }
    }

    fn tick(&mut self, now: Millis, out: &mut Vec<FollowerAction>) {
        match self.phase {
            // Not while an apply is out: the `Hello` names the seq applied.
            Phase::Waiting(until) if now >= until && !self.session.applying => {
                self.phase = Phase::Connecting;
                let history_id = if self.force_snapshot {
                    0
                } else {
                    self.followed
                };
                out.push(FollowerAction::Connect {
                    history_id,
                    applied_seq: self.applied,
                });
            }
            Phase::Following => {
                let silent = now.saturating_sub(self.session.heard);
                if silent >= self.params.heartbeat_timeout_ms {
                    let why = format!(
                        "no word or heartbeat from the master for {} ms",
                        self.params.heartbeat_timeout_ms
                    );
                    self.disconnect(why, now, out);
                    return;
                }
                if self.session.ack_at.is_some_and(|at| at <= now) {
                    self.ack(out);
                }
            }
            _ => {}
        }
    }

    fn refused(&mut self, history_mismatch: bool, message: String, now: Millis) {
        if !history_mismatch {
            log::info!("worker: the master refused: {message}; retrying");
            self.retry(now + RECONNECT_MS);
        } else if self.params.accept_new_history {
            log::warn!(
                "worker: {message}; --accept-new-history is set: taking a snapshot from the master"
            );
            self.force_snapshot = true;
            self.retry(now + RECONNECT_MS);
        } else {
            log::error!(
                "worker: NOT FOLLOWING the master: {message}. Local data is kept and still served."
            );
            self.retry(now + HISTORY_RETRY_MS);
        }
    }

    fn retry(&mut self, at: Millis) {
        self.phase = Phase::Waiting(at);
        let applying = self.session.applying;
        self.session = Session {
            applying,
            ..Session::default()
        };
    }

    fn disconnect(&mut self, why: String, now: Millis, out: &mut Vec<FollowerAction>) {
        log::info!("worker: {why}; reconnecting");
        out.push(FollowerAction::Disconnect { why });
        self.retry(now + RECONNECT_MS);
    }

    fn received(&mut self, msg: Message, now: Millis, out: &mut Vec<FollowerAction>) {
        let s = &mut self.session;
        let term = match &msg {
            Message::Records { term, .. } | Message::SnapshotBegin { term, .. } => Some(*term),
            _ => None,
        };
        if let Some(term) = term.filter(|&t| t != s.term) {
            let why = format!(
                "the master sent a frame of term {term} on a session of term {}",
                s.term
            );
            return self.disconnect(why, now, out);
        }
        // A master of term t holds no record of a later term (a failover
        // group's; a fixed-role master, term 0, may serve records of any).
        let from_future = match &msg {
            Message::Records { records, .. } | Message::SnapshotChunk { records } => records
                .iter()
                .find(|r| s.term > 0 && r.meta.term > s.term)
                .map(|r| (r.seq, r.meta.term)),
            _ => None,
        };
        if let Some((seq, term)) = from_future {
            let why = format!(
                "the master of term {} sent seq {seq} of the later term {term}",
                s.term
            );
            return self.disconnect(why, now, out);
        }
        match msg {
            Message::Records { records, .. } if s.snapshot.is_none() => {
                self.records(records, now, out)
            }
            Message::Ping { nonce } => {
                // The master only wants an ack at once: a later ping's pong
                // stands for the one it replaces.
                if s.pongs.len() >= PONGS_OWED_MAX {
                    s.pongs.pop();
                }
                s.pongs.push((nonce, s.received));
                if s.snapshot.is_none() {
                    self.pay_pongs(out);
                }
            }
            Message::Pong { .. } => {}
            Message::SnapshotBegin {
                history_id,
                term: _,
                upto_seq,
                records_total,
                bytes_total,
            } if s.snapshot.is_none() && !s.applying => {
                log::info!(
                    "worker: receiving a snapshot of {records_total} records (~{:.1} MB) up to \
                     seq {upto_seq}",
                    bytes_total as f64 / 1e6
                );
                s.snapshot = Some((history_id, upto_seq));
                out.push(FollowerAction::SnapshotBegin {
                    history_id,
                    upto_seq,
                    records_total,
                    bytes_total,
                });
            }
            Message::SnapshotChunk { records } if s.snapshot.is_some() && !s.applying => {
                out.push(FollowerAction::SnapshotChunk { records });
            }
            Message::SnapshotEnd { upto_seq } if s.snapshot.map(|s| s.1) == Some(upto_seq) => {
                let history_id = s.snapshot.map_or(0, |s| s.0);
                s.applying = true;
                let terms = s.terms.iter().copied();
                out.push(FollowerAction::SnapshotEnd {
                    history_id,
                    upto_seq,
                    terms: terms.filter(|t| t.first_seq <= upto_seq).collect(),
                });
            }
            other => {
                let why = format!("unexpected {} from the master", other.name());
                self.disconnect(why, now, out);
            }
        }
    }
}
