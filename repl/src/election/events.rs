//! What a member's driver tells its [`Election`](super::Election) and what
//! it is told to do.

use super::{Ballot, LogId, MemberId};

/// What the driver tells the election.
#[derive(Clone, Copy, Debug)]
pub enum ElectionEvent {
    /// A message from another member.
    Received {
        /// The sender.
        from: MemberId,
        /// The message.
        msg: Ballot,
    },
    /// The timer the election last asked for is due (or any earlier wake-up:
    /// the election checks its deadlines itself).
    Tick,
    /// The log's newest *durable* record changed (a commit, an applied
    /// record, a truncation). Only what survives a crash counts: a leader
    /// tells a witness this id, and a witness then refuses votes to logs
    /// older than it.
    LogChanged(LogId),
    /// A replication handshake or frame carried this term: a higher one is
    /// adopted (persisted) and a leader or candidate steps down, as for any
    /// message.
    SawTerm(u64),
    /// The connection from member `0` closed (its process died and the
    /// kernel closed its sockets, or it restarted). If it is the leader this
    /// member follows, the member stops waiting for its heartbeats: it
    /// grants pre-votes at once and asks for them itself within a
    /// heartbeat interval (a random point in it, so the followers of a
    /// crashed leader seldom split the vote). Only timing changes: a vote
    /// still needs a majority, and members that still hear the leader
    /// refuse pre-votes.
    LeaderGone(MemberId),
    /// The member list changed: the newest one this member's log holds
    /// (committed or not), as bit masks by member id. `voters` count toward
    /// every majority; `present` (voters and learners) hear this member.
    /// A member that is not a voter never campaigns (a leader never
    /// removes itself: the driver refuses that change).
    Members {
        /// Voting members.
        voters: u64,
        /// Members not removed.
        present: u64,
    },
    /// A linearizable read arrived at this member (the driver names it):
    /// answered with [`ElectionAction::ReadConfirmed`] once a majority
    /// acknowledged a heartbeat round sent after now, or
    /// [`ElectionAction::ReadFailed`] if this member does not lead or
    /// stops leading first.
    ReadIndex(u64),
}

/// What the driver must do, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionAction {
    /// Make `(term, voted_for)` durable before running any later action.
    Persist {
        /// The current term.
        term: u64,
        /// The member voted for in it, if any.
        voted_for: Option<MemberId>,
    },
    /// Send `msg` to member `to`.
    Send {
        /// The recipient.
        to: MemberId,
        /// The message.
        msg: Ballot,
    },
    /// A witness: make `last` (the leader's last log id it heard) durable
    /// before running any later action (the acknowledgement that says it).
    PersistLast {
        /// The newest log id the witness vouches for.
        last: LogId,
    },
    /// Leader: member `from` acknowledged a heartbeat of this term, holding
    /// `last` (a witness: the last log id it keeps, which counts toward the
    /// majority that commits a write).
    Acked {
        /// The member.
        from: MemberId,
        /// Its last log id.
        last: LogId,
    },
    /// Read `id` may be answered: this member led at a moment after it
    /// arrived, so everything committed before it is in the log (serve it
    /// at the commit point taken when it arrived, once applied).
    ReadConfirmed {
        /// The read.
        id: u64,
    },
    /// Read `id` cannot be answered here: this member does not lead (any
    /// more). Send it to the leader.
    ReadFailed {
        /// The read.
        id: u64,
    },
    /// This member now leads `term`: act as master.
    BecomeLeader {
        /// The term.
        term: u64,
    },
    /// This member follows in `term` (`leader` if known): act as a
    /// follower; a leader that steps down stops acknowledging writes.
    BecomeFollower {
        /// The term.
        term: u64,
        /// The leader, if known.
        leader: Option<MemberId>,
    },
}
