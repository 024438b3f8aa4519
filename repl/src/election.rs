//! Leader election among the members of a failover group, as a state
//! machine: Raft's rules (terms, one vote per term, a vote only for a log at
//! least as new as the voter's) with pre-vote and check-quorum.
//!
//! Fed `(event, now)`, it returns [`ElectionAction`]s that the driver runs
//! **in order**; a [`ElectionAction::Persist`] must be durable (fsynced)
//! before any action after it runs, so a vote or a campaign is never sent
//! before the term and vote it rests on would survive a crash.
//!
//! - **Pre-vote.** A member whose election timer fires first asks the others
//!   whether they would vote for it in the next term, without changing any
//!   term. A member grants that only if it has not heard from a leader for
//!   the shortest election timeout and the asker's log is at least as new as
//!   its own. Only with a majority of those does it start a real election
//!   (term + 1, vote for itself). So a member cut off from the group (a
//!   flapping link) cannot raise the group's term and depose a healthy
//!   leader when it comes back.
//! - **Votes.** One per term, persisted before it is sent; granted only to
//!   a candidate whose last log id (term, seq) is at least the voter's.
//! - **Check-quorum.** A leader that has not heard a majority (itself
//!   included) within the shortest election timeout steps down, so a leader
//!   cut off from the majority stops acting as one on its own.
//! - **Terms.** Any message with a higher term makes a member adopt it
//!   (persisted) and follow; a leader or candidate that sees one steps down.
//!   Messages of a lower term are answered with the current term, which
//!   tells a stale leader to step down.
//!
//! Randomized timeouts come from a generator seeded by the driver, so the
//! simulator replays a run bit for bit.

use crate::limits::Millis;
pub use events::{ElectionAction, ElectionEvent};
use reads::ReadRounds;

mod events;
mod reads;

/// A member: its id in the group's member list (`hypha_net::Membership`:
/// its slot, never reused), below `MEMBERS_MAX`.
pub type MemberId = usize;

pub use hypha_net::{Ballot, LogId};

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows `leader` (if known).
    Follower {
        /// The leader it heard in its current term.
        leader: Option<MemberId>,
    },
    /// Asking for pre-votes for the next term.
    PreCandidate,
    /// Campaigning in its current term.
    Candidate,
    /// Leads its current term.
    Leader,
}

/// Timing of elections, the same on every member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElectionParams {
    /// A leader sends a heartbeat at least this often.
    pub heartbeat_ms: Millis,
    /// Shortest election timeout; each timeout is drawn from
    /// `[election_min_ms, 2 × election_min_ms)`.
    pub election_min_ms: Millis,
}

/// Defaults for Mycelium (round trips of tens to hundreds of ms, and links
/// that flap): heartbeats every 250 ms, elections after 1-2 s of silence.
pub const ELECTION_DEFAULTS: ElectionParams = ElectionParams {
    heartbeat_ms: 250,
    election_min_ms: 1000,
};

/// etcd's defaults, for the side-by-side benchmark: 100 ms heartbeats, 1 s
/// election timeout.
pub const ELECTION_ETCD_TIMING: ElectionParams = ElectionParams {
    heartbeat_ms: 100,
    election_min_ms: 1000,
};

/// Who a member is in its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seat {
    /// This member.
    pub me: MemberId,
    /// Members of the group's first list (this one included): ids
    /// `0..members`, every one a voter, until a
    /// [`ElectionEvent::Members`] says otherwise.
    pub members: usize,
    /// False for a witness: it votes and counts for a majority, never leads.
    pub may_lead: bool,
}

/// The persisted part of a member's election state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Persisted {
    /// Current term.
    pub term: u64,
    /// The member voted for in it.
    pub voted_for: Option<MemberId>,
}

/// One member's election state machine.
#[derive(Debug)]
pub struct Election {
    me: MemberId,
    /// Members (a bit per id) whose votes and acknowledgements count.
    voters: u64,
    /// Members (a bit per id) this one talks to: voters and learners.
    present: u64,
    /// False for a member that may vote but never leads (a witness).
    may_lead: bool,
    params: ElectionParams,
    state: Persisted,
    role: Role,
    last: LogId,
    /// When the election timer fires (followers, pre-candidates,
    /// candidates), or when the next heartbeat goes out (leader).
    deadline: Millis,
    /// When a leader was last heard (followers), for pre-vote stickiness.
    heard_leader: Option<Millis>,
    /// Members that granted the current pre-vote or vote (bit per member).
    granted: u64,
    /// When each member was last heard in this term (leader: check-quorum).
    heard: Vec<Option<Millis>>,
    /// When this member became leader (check-quorum's grace).
    led_since: Millis,
    /// Leader: heartbeat rounds and the reads waiting for one.
    reads: ReadRounds,
    rng: u64,
}

/// Most member ids a group may have (a bit per member in vote counts).
pub use hypha_net::MEMBERS_MAX;

fn bits(n: usize) -> u64 {
    match n {
        0 => 0,
        n if n >= 64 => u64::MAX,
        n => (1u64 << n) - 1,
    }
}

impl Election {
    /// A member in `seat`, (re)started with its persisted state and the
    /// last durable log id of its log (a witness: the last id it
    /// persisted, `ElectionAction::PersistLast`), at `now`; `seed` drives its randomized
    /// timeouts. It starts as a follower that knows no leader.
    pub fn new(
        seat: Seat,
        params: ElectionParams,
        state: Persisted,
        last: LogId,
        seed: u64,
        now: Millis,
    ) -> Election {
        let Seat {
            me,
            members,
            may_lead,
        } = seat;
        assert!(
            me < members && members <= MEMBERS_MAX,
            "member {me} of {members}"
        );
        let mut e = Election {
            me,
            voters: bits(members),
            present: bits(members),
            may_lead,
            params,
            state,
            role: Role::Follower { leader: None },
            last,
            deadline: 0,
            heard_leader: None,
            granted: 0,
            heard: vec![None; MEMBERS_MAX],
            led_since: 0,
            reads: ReadRounds::new(me),
            rng: seed | 1,
        };
        e.reset_timer(now);
        e
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.state.term
    }

    /// The persisted state.
    pub fn persisted(&self) -> Persisted {
        self.state
    }

    /// The leader this member knows in its term (itself when leading).
    pub fn leader(&self) -> Option<MemberId> {
        match self.role {
            Role::Leader => Some(self.me),
            Role::Follower { leader } => leader,
            _ => None,
        }
    }

    /// When the driver should deliver the next `Tick`.
    pub fn next_deadline(&self) -> Millis {
        self.deadline
    }

    /// Handles one event.
    pub fn handle(&mut self, event: ElectionEvent, now: Millis) -> Vec<ElectionAction> {
        let mut out = Vec::new();
        match event {
            ElectionEvent::Received { from, msg } if from < MEMBERS_MAX && from != self.me => {
                self.receive(from, msg, now, &mut out)
            }
            ElectionEvent::Received { .. } => {}
            ElectionEvent::Tick => self.tick(now, &mut out),
            ElectionEvent::LogChanged(last) => self.last = last,
            ElectionEvent::SawTerm(term) => {
                if term > self.state.term {
                    self.adopt(term, now, &mut out);
                }
            }
            ElectionEvent::LeaderGone(m) => {
                if self.role == (Role::Follower { leader: Some(m) }) {
                    self.heard_leader = None;
                    let soon = now + self.random() % self.params.heartbeat_ms.max(1);
                    self.deadline = self.deadline.min(soon);
                }
            }
            ElectionEvent::Members { voters, present } => {
                self.members(voters, present, now, &mut out)
            }
            ElectionEvent::ReadIndex(id) => {
                if self.role != Role::Leader {
                    out.push(ElectionAction::ReadFailed { id });
                } else if self.reads.register(id) {
                    self.heartbeat(now, &mut out);
                }
            }
        }
        out
    }

    fn majority(&self) -> usize {
        self.voters.count_ones() as usize / 2 + 1
    }

    /// Whether the grants gathered so far are a majority of the voters.
    fn won(&self) -> bool {
        (self.granted & self.voters).count_ones() as usize >= self.majority()
    }

    /// Whether this member votes (its own vote counts for itself).
    fn votes(&self) -> bool {
        self.voters & (1 << self.me) != 0
    }

    /// The member list changed (the newest its log holds, committed or
    /// not: Raft's rule for single-server changes).
    fn members(&mut self, voters: u64, present: u64, now: Millis, out: &mut Vec<ElectionAction>) {
        if (voters, present | voters) == (self.voters, self.present) {
            return;
        }
        self.voters = voters;
        self.present = present | voters;
        // A candidacy may have won (or lost its point) by the change.
        match self.role {
            Role::PreCandidate | Role::Candidate if !self.votes() => self.follow(None, now, out),
            Role::PreCandidate if self.won() => self.campaign(now, out),
            Role::Candidate if self.won() => self.lead(now, out),
            Role::Leader => self.confirm_reads(now, out),
            _ => {}
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn reset_timer(&mut self, now: Millis) {
        let min = self.params.election_min_ms.max(1);
        self.deadline = now + min + self.random() % min;
    }

    fn broadcast(&self, msg: Ballot, out: &mut Vec<ElectionAction>) {
        for to in (0..MEMBERS_MAX).filter(|&m| m != self.me && self.present & (1 << m) != 0) {
            out.push(ElectionAction::Send { to, msg });
        }
    }

    /// Adopts a higher term: no vote in it yet; follows (leader unknown).
    fn adopt(&mut self, term: u64, now: Millis, out: &mut Vec<ElectionAction>) {
        debug_assert!(term > self.state.term);
        self.state = Persisted {
            term,
            voted_for: None,
        };
        out.push(ElectionAction::Persist {
            term,
            voted_for: None,
        });
        self.follow(None, now, out);
    }

    fn follow(&mut self, leader: Option<MemberId>, now: Millis, out: &mut Vec<ElectionAction>) {
        let was = self.role;
        for id in self.reads.drain() {
            out.push(ElectionAction::ReadFailed { id });
        }
        self.role = Role::Follower { leader };
        self.granted = 0;
        if was != self.role {
            out.push(ElectionAction::BecomeFollower {
                term: self.state.term,
                leader,
            });
        }
        if leader.is_some() {
            self.heard_leader = Some(now);
        }
        self.reset_timer(now);
    }

    fn receive(&mut self, from: MemberId, msg: Ballot, now: Millis, out: &mut Vec<ElectionAction>) {
        let term = msg.term();
        // A pre-vote (or its grant) names a term nobody is in yet.
        let pre = matches!(
            msg,
            Ballot::PreVote { .. } | Ballot::PreVoteReply { granted: true, .. }
        );
        if term > self.state.term && !pre {
            self.adopt(term, now, out);
        }
        self.heard[from] = Some(now);
        match msg {
            Ballot::PreVote { term, last } => {
                let quiet = self
                    .heard_leader
                    .is_none_or(|t| now >= t + self.params.election_min_ms);
                let granted = term > self.state.term
                    && last >= self.last
                    && quiet
                    && self.role != Role::Leader;
                let term = if granted { term } else { self.state.term };
                out.push(ElectionAction::Send {
                    to: from,
                    msg: Ballot::PreVoteReply { term, granted },
                });
            }
            Ballot::PreVoteReply { term, granted } => {
                if self.role == Role::PreCandidate && granted && term == self.state.term + 1 {
                    self.granted |= 1 << from;
                    if self.won() {
                        self.campaign(now, out);
                    }
                }
            }
            Ballot::RequestVote { term, last } => self.request_vote(from, term, last, now, out),
            Ballot::Vote { term, granted } => {
                if self.role == Role::Candidate && granted && term == self.state.term {
                    self.granted |= 1 << from;
                    if self.won() {
                        self.lead(now, out);
                    }
                }
            }
            Ballot::Heartbeat { term, last, round } => {
                if term == self.state.term {
                    // Only one leader per term: a candidate of it lost.
                    self.follow(Some(from), now, out);
                    if !self.may_lead && last > self.last {
                        // A witness keeps the leader's last log id, durably
                        // before it says so: it then votes only for a log
                        // at least as new, so what it acknowledged survives.
                        self.last = last;
                        out.push(ElectionAction::PersistLast { last });
                    }
                }
                out.push(ElectionAction::Send {
                    to: from,
                    msg: Ballot::HeartbeatAck {
                        term: self.state.term,
                        last: self.last,
                        round,
                    },
                });
            }
            Ballot::HeartbeatAck { term, last, round } => {
                if self.role == Role::Leader && term == self.state.term {
                    out.push(ElectionAction::Acked { from, last });
                    self.reads.acked(from, round);
                    self.confirm_reads(now, out);
                }
            }
        }
    }

    fn request_vote(
        &mut self,
        from: MemberId,
        term: u64,
        last: LogId,
        now: Millis,
        out: &mut Vec<ElectionAction>,
    ) {
        let free = self.state.voted_for.is_none_or(|v| v == from);
        let granted = term == self.state.term && free && last >= self.last;
        if granted && self.state.voted_for.is_none() {
            self.state.voted_for = Some(from);
            out.push(ElectionAction::Persist {
                term,
                voted_for: Some(from),
            });
        }
        if granted {
            // A member that voted waits a whole timeout for that leader.
            self.reset_timer(now);
        }
        out.push(ElectionAction::Send {
            to: from,
            msg: Ballot::Vote {
                term: self.state.term,
                granted,
            },
        });
    }

    /// Pre-vote won: term + 1, vote for itself (persisted), ask for votes.
    fn campaign(&mut self, now: Millis, out: &mut Vec<ElectionAction>) {
        self.state = Persisted {
            term: self.state.term + 1,
            voted_for: Some(self.me),
        };
        out.push(ElectionAction::Persist {
            term: self.state.term,
            voted_for: Some(self.me),
        });
        self.role = Role::Candidate;
        self.granted = 1 << self.me;
        self.reset_timer(now);
        if self.won() {
            return self.lead(now, out);
        }
        let msg = Ballot::RequestVote {
            term: self.state.term,
            last: self.last,
        };
        self.broadcast(msg, out);
    }

    fn lead(&mut self, now: Millis, out: &mut Vec<ElectionAction>) {
        for id in self.reads.reset() {
            out.push(ElectionAction::ReadFailed { id });
        }
        self.role = Role::Leader;
        self.granted = 0;
        self.led_since = now;
        self.heard.iter_mut().for_each(|h| *h = None);
        out.push(ElectionAction::BecomeLeader {
            term: self.state.term,
        });
        self.heartbeat(now, out);
    }

    fn heartbeat(&mut self, now: Millis, out: &mut Vec<ElectionAction>) {
        let msg = Ballot::Heartbeat {
            term: self.state.term,
            last: self.last,
            round: self.reads.next_round(),
        };
        self.broadcast(msg, out);
        self.deadline = now + self.params.heartbeat_ms.max(1);
        // A group of one is its own majority.
        self.confirm_reads(now, out);
    }

    /// Answers the reads a majority's acknowledgements confirm, and sends
    /// the round the reads still waiting need.
    fn confirm_reads(&mut self, now: Millis, out: &mut Vec<ElectionAction>) {
        let (done, send) = self.reads.confirmed(self.voters);
        for id in done {
            out.push(ElectionAction::ReadConfirmed { id });
        }
        if send {
            self.heartbeat(now, out);
        }
    }

    fn tick(&mut self, now: Millis, out: &mut Vec<ElectionAction>) {
        if now < self.deadline {
            return;
        }
        match self.role {
            Role::Leader => {
                if !self.hears_quorum(now) {
                    log::info!(
                        "member {}: leader of term {} heard no majority for {} ms: stepping down",
                        self.me,
                        self.state.term,
                        self.params.election_min_ms
                    );
                    return self.follow(None, now, out);
                }
                self.heartbeat(now, out);
            }
            // A witness, a learner, a removed member: never campaigns.
            _ if !self.may_lead || !self.votes() => self.reset_timer(now),
            _ => self.pre_vote(now, out),
        }
    }

    /// True if a majority (itself included) was heard within the shortest
    /// election timeout, or it has led for less than that.
    fn hears_quorum(&self, now: Millis) -> bool {
        let window = self.params.election_min_ms;
        if now < self.led_since + window {
            return true;
        }
        let heard = (0..MEMBERS_MAX)
            .filter(|&m| self.voters & (1 << m) != 0)
            .filter(|&m| m == self.me || self.heard[m].is_some_and(|t| now < t + window))
            .count();
        heard >= self.majority()
    }

    fn pre_vote(&mut self, now: Millis, out: &mut Vec<ElectionAction>) {
        log::debug!(
            "member {}: no leader heard in term {}: asking for pre-votes",
            self.me,
            self.state.term
        );
        let was = self.role;
        self.role = Role::PreCandidate;
        if matches!(was, Role::Follower { leader: Some(_) }) {
            out.push(ElectionAction::BecomeFollower {
                term: self.state.term,
                leader: None,
            });
        }
        self.heard_leader = None;
        self.granted = 1 << self.me;
        self.reset_timer(now);
        if self.won() {
            return self.campaign(now, out);
        }
        let msg = Ballot::PreVote {
            term: self.state.term + 1,
            last: self.last,
        };
        self.broadcast(msg, out);
    }
}
