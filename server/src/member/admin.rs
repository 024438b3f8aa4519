//! Reading and changing the member list (connections of purpose
//! `Members`, from `hypha members` or an edge): one member at a time,
//! through the leader.
//!
//! - **Remove**: the leader writes the list without the member; it counts
//!   from the moment it is in the leader's log, and the change is answered
//!   once a majority of the new list holds it. The leader refuses to remove
//!   itself (stop it instead: another member takes over), and refuses a
//!   removal after which the members it reaches would not be a majority.
//! - **Add**: the leader writes the list with the new member as a
//!   *learner* (it gets the log, a snapshot first, but neither votes nor
//!   counts), waits until it holds everything committed, then writes the
//!   list with it as a voter. Adding a learner again resumes that wait.
//!
//! A change starts only once every earlier one is committed and this
//! leader's term has begun (its first record is committed), so two lists
//! are never both pending: any majority of one shares a member with any
//! majority of the next.

use super::list::addrs;
use super::{lock, Member};
use crate::requests::{serve_requests, Answer};
use crate::wire;
use hypha_net::{
    ErrorCode, MemberChange, Membership, Message, Role, Standing, Welcome, MEMBERS_KEY,
    PROTOCOL_VERSION,
};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an `Add` waits for the new member to catch up (a snapshot of
/// the whole store, then the log) before it is answered with how far it
/// got; the member stays a learner, and the same `Add` resumes the wait.
pub const MEMBER_CATCH_UP_MS: u64 = 120_000;

/// How often an `Add` checks how far the new member got.
const CATCH_UP_POLL_MS: u64 = 100;

/// A refused change: the error code and why.
type Refusal = (ErrorCode, String);

impl Member {
    /// Serves a `Members` connection: `Members` from any member,
    /// `ChangeMembers` from the leader.
    pub(super) async fn admin(self: Arc<Self>, accepted: wire::Accepted) -> std::io::Result<()> {
        let wire::Accepted { r, mut w, .. } = accepted;
        let role = match self.witness() {
            Some(_) => Role::Witness,
            None => Role::Member,
        };
        w.send(&Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            role,
            node_id: self.node_id,
            history_id: 0,
            commit_seq: 0,
            term: self.seen_term.load(Ordering::Acquire),
            terms: Vec::new(),
        }))
        .await?;
        let me = self.clone();
        let idle_ms = self.cfg.idle_timeout_ms;
        serve_requests(r, w, "member", idle_ms, move |m| match m {
            Message::Members { req_id } => Answer::Now(Message::MemberList {
                req_id,
                members: me.list(),
            }),
            Message::ChangeMembers { req_id, change } => {
                let me = me.clone();
                Answer::Later(async move {
                    match me.change(change).await {
                        Ok(members) => Message::MemberList { req_id, members },
                        Err((code, why)) => Message::error(req_id, code, &why),
                    }
                })
            }
            other => Answer::Now(Message::error(
                other.req_id().unwrap_or(0),
                ErrorCode::BadRequest,
                &format!(
                    "a member-list connection answers Members and ChangeMembers, not {}",
                    other.name()
                ),
            )),
        })
        .await
    }

    /// Makes one change, if this member leads and may make it now.
    async fn change(self: &Arc<Self>, change: MemberChange) -> Result<Membership, Refusal> {
        let addr: SocketAddr = change.addr().parse().map_err(|_| {
            let why = format!(
                "{:?} is not an IP address and port (like [400::1]:7000)",
                change.addr()
            );
            (ErrorCode::BadRequest, why)
        })?;
        let Some(_one) = self.changing.try_lock() else {
            let why = "another member change is under way; retry when it is done";
            return Err((ErrorCode::Unavailable, why.into()));
        };
        let master = self.leader_ready()?;
        let list = self.list();
        let term = master.term();
        let addr = addr.to_string();
        match change {
            MemberChange::Remove(_) => {
                if list.find(&addr) == Some(self.me) {
                    let why = format!(
                        "{addr} leads the group and a leader does not remove itself: stop it \
                         (another member takes over within seconds), then remove it through \
                         the new leader"
                    );
                    return Err((ErrorCode::BadRequest, why));
                }
                let next = list
                    .changed(&MemberChange::Remove(addr), term)
                    .map_err(|why| (ErrorCode::BadRequest, why.to_string()))?;
                self.reachable_majority(&master, &next)?;
                self.write_list(&master, next).await
            }
            MemberChange::Add(_) => {
                let list = match list.find(&addr) {
                    Some(id) if list.standing(id) == Standing::Learner => list,
                    _ => {
                        let next = list
                            .changed(&MemberChange::Add(addr.clone()), term)
                            .map_err(|why| (ErrorCode::BadRequest, why.to_string()))?;
                        self.write_list(&master, next).await?
                    }
                };
                let id = list.find(&addr).ok_or((
                    ErrorCode::Internal,
                    "the new member vanished from the list".to_string(),
                ))?;
                self.caught_up(&master, id, &addr).await?;
                let master = self.leader_ready()?;
                self.write_list(&master, self.list().promoted(id, master.term()))
                    .await
            }
        }
    }

    /// The master driver, if this member leads, its term has begun and
    /// every earlier list is committed.
    fn leader_ready(&self) -> Result<Arc<crate::master::Master>, Refusal> {
        let Some(master) = self.leading() else {
            let leader = match &*lock(&self.active) {
                super::Active::Following { leader_addr, .. } => {
                    format!("; the leader is at {leader_addr}")
                }
                _ => String::new(),
            };
            let why = format!("member {} does not lead the group{leader}", self.me);
            return Err((ErrorCode::NotMaster, why));
        };
        let commit = master.majority_commit();
        if commit == 0 || commit < self.list_seq.load(Ordering::Acquire) {
            let why = "the leader's term or the last member change is not committed yet; \
                       retry in a moment";
            return Err((ErrorCode::Unavailable, why.into()));
        }
        Ok(master)
    }

    /// Refuses a list whose voters this leader does not reach a majority
    /// of: the group could commit nothing after it.
    fn reachable_majority(
        &self,
        master: &crate::master::Master,
        next: &Membership,
    ) -> Result<(), Refusal> {
        let voters = next.voters();
        let reached = (0..next.slots.len())
            .filter(|&id| voters & (1 << id) != 0)
            .filter(|&id| {
                let node = self.node_of[id].load(Ordering::Relaxed);
                id == self.me
                    || self.witnesses[id].load(Ordering::Relaxed)
                    || (node != 0 && master.worker_applied(node).is_some())
            })
            .count();
        let need = voters.count_ones() as usize / 2 + 1;
        if reached < need {
            let why = format!(
                "after that change {reached} of its {} voters would be reachable from the \
                 leader, fewer than a majority ({need}): the group could commit nothing. Bring \
                 members back first",
                voters.count_ones()
            );
            return Err((ErrorCode::Unavailable, why));
        }
        Ok(())
    }

    /// Writes `next` into the log, uses it at once, and waits until a
    /// majority (of `next`) holds it.
    async fn write_list(
        self: &Arc<Self>,
        master: &crate::master::Master,
        next: Membership,
    ) -> Result<Membership, Refusal> {
        let seq = master
            .append_system(MEMBERS_KEY, next.to_value())
            .await
            .map_err(|e| (ErrorCode::Unavailable, e))?;
        self.list_seq.fetch_max(seq, Ordering::AcqRel);
        self.adopt(next.clone());
        if !master.wait_majority(seq, self.cfg.sync_timeout_ms).await {
            let why = format!(
                "the member list (epoch {}) is written at seq {seq} but no majority confirmed \
                 it within {} ms; it takes effect if the group keeps it: check with `hypha \
                 members` before trying again",
                next.epoch, self.cfg.sync_timeout_ms
            );
            return Err((ErrorCode::OutcomeUnknown, why));
        }
        log::info!(
            "member {}: member list epoch {} committed: {}",
            self.me,
            next.epoch,
            addrs(&next)
        );
        Ok(next)
    }

    /// Waits until learner `id` holds everything committed now.
    async fn caught_up(
        &self,
        master: &crate::master::Master,
        id: usize,
        addr: &str,
    ) -> Result<(), Refusal> {
        let target = master.majority_commit();
        let until = Instant::now() + Duration::from_millis(MEMBER_CATCH_UP_MS);
        loop {
            let node = self.node_of[id].load(Ordering::Relaxed);
            let at = (node != 0).then(|| master.worker_applied(node)).flatten();
            if at.is_some_and(|seq| seq >= target) {
                return Ok(());
            }
            if Instant::now() >= until {
                let why = format!(
                    "{addr} is in the group as a learner but has not caught up within {} s (it \
                     holds seq {} of {target}{}). Run the same add again to go on waiting",
                    MEMBER_CATCH_UP_MS / 1000,
                    at.unwrap_or(0),
                    match at {
                        Some(_) => "",
                        None =>
                            "; it has not connected: start it with `hypha member --data \
                                 DIR --listen ADDR --join LEADER`",
                    }
                );
                return Err((ErrorCode::Timeout, why));
            }
            smol::Timer::after(Duration::from_millis(CATCH_UP_POLL_MS)).await;
        }
    }
}
