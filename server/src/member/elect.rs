//! The election task: it feeds a member's `Election` its timer, the
//! ballots of the others, what replication reports and the member list,
//! and carries out what the election says, in order (a persist completes
//! before anything after it).

use super::{lock, Active, Input, Member};
use hypha_net::{Ballot, LogId, Message, Standing};
use hypha_repl::election::{Election, ElectionAction, ElectionEvent, Persisted, Seat};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

impl Member {
    /// The election task: feeds the election its timer, ballots and
    /// replication's reports, and carries out what it says, in order.
    pub(super) async fn elect(self: Arc<Self>) -> Result<(), String> {
        let vote = match (self.witness(), self.db()) {
            (Some(w), _) => w.vote(),
            (None, Some(db)) => db.vote(),
            (None, None) => return Err("no database".into()),
        };
        let last = *lock(&self.last);
        let persisted = Persisted {
            term: vote.term,
            voted_for: vote.voted_for.map(|m| m as usize),
        };
        let list = self.list();
        let seat = Seat {
            me: self.me,
            members: list.slots.len().max(self.me + 1),
            may_lead: self.witness().is_none(),
        };
        let seed = hypha_engine::random_u64();
        let mut e = Election::new(seat, self.cfg.election, persisted, last, seed, self.now());
        *self.acks.write().await = vote.term;
        let (mut fed_last, mut fed_term) = (last, vote.term);
        let mut fed_list = None;
        loop {
            let poked = self.poke.listen();
            self.feed_last(&mut e, &mut fed_last).await?;
            self.feed_list(&mut e, &mut fed_list).await?;
            let t = self.seen_term.load(Ordering::Acquire);
            if t > fed_term {
                fed_term = t;
                self.step(&mut e, &mut fed_last, ElectionEvent::SawTerm(t))
                    .await?;
            }
            let at = e.next_deadline();
            let wait = Duration::from_millis(at.saturating_sub(self.now()));
            let event = smol::future::or(
                async {
                    match self.inbox_rx.recv().await {
                        Ok(Input::Ballot(from, msg)) => Some(ElectionEvent::Received { from, msg }),
                        Ok(Input::Gone(from)) => Some(ElectionEvent::LeaderGone(from)),
                        Ok(Input::Read(id)) => Some(ElectionEvent::ReadIndex(id)),
                        Err(_) => std::future::pending().await,
                    }
                },
                smol::future::or(
                    async {
                        smol::Timer::after(wait).await;
                        Some(ElectionEvent::Tick)
                    },
                    async {
                        poked.await;
                        None
                    },
                ),
            )
            .await;
            if let Some(event) = event {
                self.step(&mut e, &mut fed_last, event).await?;
            }
        }
    }

    /// Feeds the election the member list, if it changed since `fed`; a
    /// member the list no longer has stops here.
    async fn feed_list(
        self: &Arc<Self>,
        e: &mut Election,
        fed: &mut Option<(u64, u64)>,
    ) -> Result<(), String> {
        let list = self.list();
        if *fed == Some((list.term, list.epoch)) {
            return Ok(());
        }
        *fed = Some((list.term, list.epoch));
        if list.standing(self.me) == Standing::Removed {
            log::warn!(
                "{}",
                super::list::removed_message(&self.cfg, self.me, &list)
            );
        }
        let event = ElectionEvent::Members {
            voters: list.voters(),
            present: list.present(),
        };
        let acts = e.handle(event, self.now());
        self.act(acts).await
    }

    /// Feeds the election one event. An event of a higher term first stops
    /// this member's acknowledgements to the old leader, then gives the
    /// election the final log id (every record acknowledged so far was
    /// reported before its ack went out): a vote decided after that counts
    /// every record this member vouched for.
    async fn step(
        self: &Arc<Self>,
        e: &mut Election,
        fed_last: &mut LogId,
        event: ElectionEvent,
    ) -> Result<(), String> {
        let higher = match &event {
            ElectionEvent::Received { msg, .. } => match msg {
                Ballot::PreVote { .. } | Ballot::PreVoteReply { granted: true, .. } => None,
                other => Some(other.term()),
            },
            ElectionEvent::SawTerm(t) => Some(*t),
            _ => None,
        };
        if let Some(t) = higher.filter(|&t| t > e.term()) {
            self.fence(t).await;
            self.feed_last(e, fed_last).await?;
        }
        let acts = e.handle(event, self.now());
        // Its own campaign raised the term.
        if e.term() > *self.acks.read().await {
            self.fence(e.term()).await;
        }
        self.act(acts).await
    }

    async fn fence(&self, term: u64) {
        let mut acks = self.acks.write().await;
        *acks = (*acks).max(term);
    }

    async fn feed_last(
        self: &Arc<Self>,
        e: &mut Election,
        fed_last: &mut LogId,
    ) -> Result<(), String> {
        let l = *lock(&self.last);
        if l == *fed_last {
            return Ok(());
        }
        *fed_last = l;
        // The log changed: it may hold another member list (a record, a
        // cut, a snapshot).
        self.refresh_list();
        let acts = e.handle(ElectionEvent::LogChanged(l), self.now());
        self.act(acts).await
    }

    /// Carries out the election's actions in order: a persist completes
    /// before anything after it.
    async fn act(self: &Arc<Self>, acts: Vec<ElectionAction>) -> Result<(), String> {
        for a in acts {
            match a {
                ElectionAction::Persist { term, voted_for } => {
                    self.persist(term, voted_for).await?;
                }
                ElectionAction::Send { to, msg } => self.send_to(to, Message::Ballot(msg)),
                ElectionAction::BecomeLeader { term } => {
                    log::info!(
                        "member {}: leads term {term} (log ends at {:?})",
                        self.me,
                        *lock(&self.last)
                    );
                    self.lead(term).await?;
                }
                ElectionAction::BecomeFollower { term, leader } => {
                    self.follow(term, leader).await?;
                }
                ElectionAction::ReadConfirmed { id } => self.read_done(id, true),
                ElectionAction::ReadFailed { id } => self.read_done(id, false),
                ElectionAction::PersistLast { last } => self.persist_last(last).await?,
                ElectionAction::Acked { from, last } => self.witness_acked(from, last),
            }
        }
        Ok(())
    }

    fn read_done(&self, id: u64, leads: bool) {
        if let Some(tx) = lock(&self.reads).remove(&id) {
            let _ = tx.try_send(leads);
        }
    }

    /// This member's witness state, if it is a witness.
    pub(super) fn witness(&self) -> Option<Arc<hypha_engine::WitnessStore>> {
        match &*lock(&self.active) {
            Active::Witness(w) => Some(w.clone()),
            _ => None,
        }
    }

    /// A witness: makes the log id it is about to vouch for durable.
    async fn persist_last(&self, last: LogId) -> Result<(), String> {
        let Some(w) = self.witness() else {
            return Ok(());
        };
        let at = hypha_engine::WitnessLast {
            term: last.term,
            seq: last.seq,
        };
        smol::unblock(move || w.set_last(at))
            .await
            .map_err(|e| format!("cannot make log id {last:?} durable: {e}"))
    }

    /// A leader heard member `from` hold `last`: a witness's acknowledgement
    /// counts toward the majority when it is of this leader's term.
    fn witness_acked(&self, from: usize, last: LogId) {
        if !self
            .witnesses
            .get(from)
            .is_some_and(|w| w.load(Ordering::Relaxed))
        {
            return;
        }
        if let Active::Leading { master, .. } = &*lock(&self.active) {
            master.witness_ack(from, last);
        }
    }

    /// Makes the term and vote durable (on the blocking pool).
    async fn persist(&self, term: u64, voted_for: Option<usize>) -> Result<(), String> {
        let vote = hypha_engine::Vote {
            term,
            voted_for: voted_for.map(|m| m as u32),
        };
        if let Some(w) = self.witness() {
            return smol::unblock(move || w.set_vote(vote))
                .await
                .map_err(|e| format!("cannot make term {term} and its vote durable: {e}"));
        }
        loop {
            if let Some(db) = self.db() {
                return smol::unblock(move || db.set_vote(vote))
                    .await
                    .map_err(|e| format!("cannot make term {term} and its vote durable: {e}"));
            }
            // Roles are switching or a snapshot is being swapped in.
            smol::Timer::after(Duration::from_millis(1)).await;
        }
    }
}
