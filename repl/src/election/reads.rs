//! Linearizable reads without clocks (a read index, Raft §6.4): a leader
//! answers a read only after a majority acknowledged a heartbeat it sent
//! after the read arrived, so it was still the leader at some moment after
//! the read began, and nothing was committed then that it did not hold.
//! Heartbeats carry a round number that acknowledgements echo; reads that
//! arrive while a round is out wait for the next one, so one round serves
//! any number of reads.

use super::MemberId;
use std::collections::VecDeque;

/// A leader's read rounds in its current term.
#[derive(Debug)]
pub(super) struct ReadRounds {
    me: MemberId,
    /// The last round sent.
    sent: u64,
    /// The highest round each member acknowledged in this term.
    acked: Vec<u64>,
    /// Reads waiting: (id, the round that confirms it).
    pending: VecDeque<(u64, u64)>,
}

impl ReadRounds {
    pub(super) fn new(me: MemberId) -> ReadRounds {
        ReadRounds {
            me,
            sent: 0,
            acked: vec![0; super::MEMBERS_MAX],
            pending: VecDeque::new(),
        }
    }

    /// A new leadership: every round starts over; the reads that were
    /// waiting (of an earlier leadership) are returned, failed.
    pub(super) fn reset(&mut self) -> Vec<u64> {
        self.acked.iter_mut().for_each(|a| *a = 0);
        self.drain()
    }

    /// The reads waiting, now failed (the leader stepped down).
    pub(super) fn drain(&mut self) -> Vec<u64> {
        self.pending.drain(..).map(|(id, _)| id).collect()
    }

    /// A heartbeat goes out: its round.
    pub(super) fn next_round(&mut self) -> u64 {
        self.sent += 1;
        self.acked[self.me] = self.sent;
        self.sent
    }

    /// Read `id` arrived; true if a round must go out now for it (none is
    /// out for earlier reads; else it waits for the round after).
    pub(super) fn register(&mut self, id: u64) -> bool {
        let out = self.round_out();
        self.pending.push_back((id, self.sent + 1));
        !out
    }

    /// Whether a round sent for waiting reads is still unconfirmed.
    fn round_out(&self) -> bool {
        self.pending.iter().any(|&(_, need)| need <= self.sent)
    }

    /// Member `from` acknowledged `round`.
    pub(super) fn acked(&mut self, from: MemberId, round: u64) {
        if let Some(a) = self.acked.get_mut(from) {
            *a = (*a).max(round.min(self.sent));
        }
    }

    /// The reads a majority of `voters` (a bit per member) now confirm by
    /// their acknowledgements, and whether a round must go out for the
    /// reads still waiting.
    pub(super) fn confirmed(&mut self, voters: u64) -> (Vec<u64>, bool) {
        let mut acks: Vec<u64> = (self.acked.iter().enumerate())
            .filter(|&(m, _)| voters & (1 << m) != 0)
            .map(|(_, &a)| a)
            .collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let round = acks.get(acks.len() / 2).copied().unwrap_or(0);
        let mut done = Vec::new();
        while let Some(&(id, need)) = self.pending.front() {
            if need > round {
                break;
            }
            self.pending.pop_front();
            done.push(id);
        }
        (done, !self.round_out() && !self.pending.is_empty())
    }
}
