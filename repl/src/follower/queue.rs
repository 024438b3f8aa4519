//! The follower's queue of received records: applied one `Apply` at a
//! time, what arrives meanwhile next as one batch, an atomic batch only
//! whole; acks and pongs once records are applied.

use super::{Follower, FollowerAction, Phase};
use crate::limits::ACK_DELAY_MS;
use crate::Millis;
use hypha_net::{Message, WireRecord, TXN_ITEMS_MAX};

impl Follower {
    /// A `Records` frame: applied now if nothing is out and it ends a
    /// batch, else queued.
    pub(super) fn records(
        &mut self,
        records: Vec<WireRecord>,
        now: Millis,
        out: &mut Vec<FollowerAction>,
    ) {
        let s = &mut self.session;
        s.received = records.last().map_or(s.received, |r| r.seq.max(s.received));
        let whole = records.last().is_some_and(|r| !r.meta.batch_more);
        if !s.applying && s.queued.is_empty() && whole {
            s.applying = true;
            out.push(FollowerAction::Apply { records });
            return;
        }
        let bytes = records.iter().map(|r| r.key.len() + r.value.len());
        s.queued_bytes += bytes.sum::<usize>();
        s.queued.extend(records);
        let unfinished = s.queued.iter().rev().take_while(|r| r.meta.batch_more);
        if unfinished.count() > TXN_ITEMS_MAX {
            let why = format!(
                "the master sent an atomic batch of more than {TXN_ITEMS_MAX} records \
                 (TXN_ITEMS_MAX)"
            );
            return self.disconnect(why, now, out);
        }
        if !s.applying {
            self.apply_queued(out);
        }
    }

    /// The apply out is done: ack soon (at once for a ping it covers) and
    /// apply what queued meanwhile as one batch.
    pub(super) fn applied(&mut self, seq: u64, now: Millis, out: &mut Vec<FollowerAction>) {
        self.applied = seq;
        self.session.applying = false;
        if self.phase != Phase::Following {
            return;
        }
        self.session.unacked = Some(seq);
        if self.session.ack_at.is_none() {
            self.session.ack_at = Some(now + ACK_DELAY_MS);
        }
        self.pay_pongs(out);
        self.apply_queued(out);
    }

    /// Applies the queued records up to the end of the last whole atomic
    /// batch; an unfinished one waits for the rest of its records, so
    /// readers of this worker see a batch all at once.
    fn apply_queued(&mut self, out: &mut Vec<FollowerAction>) {
        let s = &mut self.session;
        let whole = s
            .queued
            .iter()
            .rposition(|r| !r.meta.batch_more)
            .map_or(0, |i| i + 1);
        if whole == 0 {
            return;
        }
        let rest = s.queued.split_off(whole);
        let records = std::mem::replace(&mut s.queued, rest);
        s.queued_bytes = s.queued.iter().map(|r| r.key.len() + r.value.len()).sum();
        s.applying = true;
        out.push(FollowerAction::Apply { records });
    }

    /// Sends the ack held back, if any.
    pub(super) fn ack(&mut self, out: &mut Vec<FollowerAction>) {
        self.session.ack_at = None;
        if let Some(applied_seq) = self.session.unacked.take() {
            out.push(FollowerAction::Send(Message::Ack {
                term: self.session.term,
                applied_seq,
            }));
        }
    }

    /// Answers the pings whose records are all applied: the ack goes first
    /// and each pong confirms it.
    pub(super) fn pay_pongs(&mut self, out: &mut Vec<FollowerAction>) {
        let applied = self.applied;
        if !self.session.pongs.iter().any(|&(_, at)| at <= applied) {
            return;
        }
        self.ack(out);
        self.session.pongs.retain(|&(nonce, at)| {
            let due = at <= applied;
            if due {
                out.push(FollowerAction::Send(Message::Pong { nonce }));
            }
            !due
        });
    }
}
