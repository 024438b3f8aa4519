//! Who may join a master's replication and how it starts: resuming from
//! its log position, a snapshot, or — in a failover group, when its last
//! record is not in this master's log — held until it cuts its log back.

use super::{MasterCore, Session, Stream};
use crate::events::{Conn, Join, MasterAction};
use crate::limits::Millis;
use crate::workers::WorkerEntry;
use hypha_net::{RefuseReason, Role};

/// How a joining worker starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Start {
    /// Streams from its applied seq.
    Resume,
    /// Takes a snapshot first.
    Snapshot,
    /// Its last log id is not in this master's log: it gets the `Welcome`
    /// (whose term boundaries tell it where to cut its log) and nothing
    /// more; it cuts and comes back.
    Diverged,
}

impl<B> MasterCore<B> {
    pub(super) fn joined(
        &mut self,
        conn: Conn,
        join: Join,
        horizon: u64,
        beats: B,
        now: Millis,
        out: &mut Vec<MasterAction>,
    ) {
        let start = match self.admit(&join, horizon) {
            Ok(start) => start,
            Err((reason, message)) => {
                log::warn!(
                    "master: refusing worker {:016x} at {}: {message}",
                    join.node,
                    join.peer
                );
                out.push(MasterAction::Refuse {
                    conn,
                    reason,
                    message,
                });
                return;
            }
        };
        out.push(MasterAction::Send {
            conn,
            msgs: vec![self.welcome()],
        });
        let applied = match start {
            Start::Resume => join.applied_seq,
            Start::Snapshot | Start::Diverged => 0,
        };
        let entry = self.workers.map.entry(join.node).or_insert(WorkerEntry {
            peer: join.peer,
            applied_seq: 0,
            serve_port: 0,
            last_heard: now,
            conn: None,
            beats: None,
            voter: false,
        });
        // An older session of this worker, if one lingers, ends now.
        if let Some(old) = entry.conn.replace(conn) {
            out.push(MasterAction::Close {
                conn: old,
                why: "the worker opened a new session".into(),
            });
        }
        entry.peer = join.peer;
        entry.applied_seq = applied;
        entry.last_heard = now;
        entry.beats = Some(beats);
        entry.voter = join.role == Role::Member;
        log::info!(
            "master: {:?} {:016x} at {} joined at seq {} (term {}): {}",
            join.role,
            join.node,
            join.peer,
            join.applied_seq,
            join.last_term,
            match start {
                Start::Snapshot => "sending a snapshot",
                Start::Resume => "resuming from its log position",
                Start::Diverged => "its log diverged from ours: it cuts it back first",
            }
        );
        let stream = match start {
            Start::Snapshot => {
                out.push(MasterAction::SendSnapshot {
                    conn,
                    upto: self.committed,
                });
                Stream::Snapshot
            }
            Start::Resume => Stream::Idle,
            Start::Diverged => Stream::Held,
        };
        self.sessions.insert(
            conn,
            Session {
                node: join.node,
                stream,
                sent: join.applied_seq,
                reading_upto: 0,
            },
        );
        self.pump(conn, out);
        self.floor(now, out);
    }

    /// Whether and how `join` may follow, or the refusal.
    fn admit(&self, join: &Join, horizon: u64) -> Result<Start, (RefuseReason, String)> {
        let failover = self.params.term > 0;
        let role_ok = match join.role {
            Role::Worker => true,
            Role::Member => failover,
            _ => false,
        };
        if !role_ok {
            let msg = format!(
                "only workers{} replicate; a {:?} cannot",
                if failover { " and members" } else { "" },
                join.role
            );
            return Err((RefuseReason::NotAllowed, msg));
        }
        let ours = self.params.history_id;
        if failover && join.history_id == ours && join.applied_seq > 0 {
            if let Some(start) = self.placed(join) {
                return Ok(start);
            }
        }
        let seq = self.log_end();
        if join.history_id == ours && join.applied_seq <= seq {
            if join.applied_seq < horizon {
                log::warn!(
                    "master: worker {:016x} at {} applied seq {}, but compaction dropped \
                     deletes up to seq {horizon}: sending it a snapshot",
                    join.node,
                    join.peer,
                    join.applied_seq
                );
            }
            return Ok(if join.applied_seq < horizon {
                Start::Snapshot
            } else {
                Start::Resume
            });
        }
        if join.history_id == 0 {
            return Ok(Start::Snapshot);
        }
        let msg = if join.history_id == ours {
            format!(
                "worker applied seq {} but this master only has {seq}: the master lost writes; \
                 restart the worker with --accept-new-history to resync from this master",
                join.applied_seq
            )
        } else {
            format!(
                "worker follows history {:016x}, this master holds {ours:016x}; restart the \
                 worker with --accept-new-history to replace its data with this master's",
                join.history_id
            )
        };
        Err((RefuseReason::HistoryMismatch { ours }, msg))
    }

    /// In a failover group: whether the worker's last log id is in this
    /// master's log. `None` when the log matches (the history checks
    /// decide the rest), `Diverged` when it does not, `Snapshot` when the
    /// kept term boundaries cannot tell.
    fn placed(&self, join: &Join) -> Option<Start> {
        match self.terms.term_at(join.applied_seq, self.log_end()) {
            Some(t) if t == join.last_term => None,
            Some(_) => Some(Start::Diverged),
            // Past our log's end: the worker holds records we lack, which
            // no majority acknowledged; it cuts them.
            None if join.applied_seq > self.log_end() => Some(Start::Diverged),
            // Older than the boundaries we keep.
            None => Some(Start::Snapshot),
        }
    }
}
