//! Writes in a failover group (`hypha http --members`): sent to the member
//! believed to lead, and to the others in turn when it does not (any more),
//! while an election runs. A write is sent again only where it cannot have
//! been applied (the member refused it before writing, `NotMaster`, or no
//! connection reached it), or with its request id, which the leader
//! recognizes in its log. A write whose outcome cannot be known is a 503
//! that says so, never applied twice.

use super::Edge;
use crate::http::BackendError;
use crate::peer::{CallFailed, Peer};
use hypha_net::{ErrorCode, Message, WriteRequest};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a write looks for a leader (an election at the default timing
/// takes 1-2 s after a silent failure) before it is answered with 503.
pub const LEADER_WAIT_MS: u64 = 5_000;

/// Pause between rounds over the members while none leads.
const LEADER_POLL_MS: u64 = 20;

/// How often the edge asks each member whether it leads (a member ends its
/// connections when its role changes, and says its role and term when it
/// welcomes a new one).
pub const MEMBER_WATCH_MS: u64 = 250;

/// A member with a call unanswered this long is passed over for reads and
/// does not count as a reachable leader (`X-Hypha-Stale`): a partition
/// shows within it (the watch asks every [`MEMBER_WATCH_MS`]), where the
/// call itself fails only after `REQUEST_TIMEOUT_MS`.
pub const ANSWER_LATE_MS: u64 = 1_000;

impl Edge {
    /// Sends a client's write to the member that leads, as `PutOnce` or
    /// `DeleteOnce` with a fresh request id. A member that refuses it
    /// (`NotMaster`) or cannot be reached is passed over; when the
    /// connection fails with the write in flight, it is sent again with
    /// `retry_after` so that the leader answers with the first attempt's
    /// outcome if that was applied, and applies it otherwise.
    pub(super) async fn write_to_leader(&self, m: &Message) -> Result<Message, BackendError> {
        let deadline = Instant::now() + Duration::from_millis(LEADER_WAIT_MS);
        let after = self.committed_seq.load(Ordering::Acquire);
        let mut m = with_request(m)?;
        // Why the first attempt may have been applied, once it may have.
        let mut in_doubt: Option<String> = None;
        let mut why = String::new();
        'round: loop {
            let members = self.members();
            let start = leader_index(&members, &self.master());
            for i in 0..members.len() {
                let peer = &members[(start + i) % members.len()];
                let answer = match self.attempt(peer, &m).await {
                    Attempt::Answer(answer) => answer,
                    Attempt::Moved => {
                        why = format!("{}: another member leads now", peer.addr);
                        in_doubt.get_or_insert_with(|| why.clone());
                        set_retry(&mut m, after);
                        continue 'round;
                    }
                };
                match answer {
                    Ok(Message::Error {
                        code: ErrorCode::NotMaster,
                        message,
                        ..
                    }) => why = format!("{}: {message}", peer.addr),
                    // A leader deposed with the first attempt in its log:
                    // the next leader can tell whether it survived.
                    Ok(Message::Error {
                        code: ErrorCode::OutcomeUnknown,
                        message,
                        ..
                    }) if !is_retry(&m) => {
                        why = format!("{}: {message}", peer.addr);
                        in_doubt.get_or_insert_with(|| why.clone());
                        set_retry(&mut m, after);
                    }
                    Ok(answer) => {
                        self.found_leader(peer);
                        if let Message::Written { seq, .. }
                        | Message::Deleted { seq: Some(seq), .. }
                        | Message::TxnFailed { seq, .. } = answer
                        {
                            self.committed_seq.fetch_max(seq, Ordering::AcqRel);
                        }
                        return Ok(answer);
                    }
                    Err(CallFailed::NotSent(e)) => why = e.to_string(),
                    Err(CallFailed::Lost(e)) => {
                        // Silent, maybe stopped: try the next member first.
                        self.suspect(peer);
                        why = format!("{}: {e}", peer.addr);
                        log::info!(
                            "edge: the connection to member {} failed with a write in flight \
                             ({e}); sending it again with its request id",
                            peer.addr
                        );
                        in_doubt.get_or_insert_with(|| why.clone());
                        set_retry(&mut m, after);
                    }
                }
            }
            if Instant::now() >= deadline {
                let members = self.members().len();
                return Err(BackendError::Unavailable(match in_doubt {
                    Some(lost) => format!(
                        "the write's outcome is unknown: the connection to a member failed with \
                         it in flight ({lost}) and no member of {members} answered its retry \
                         within {LEADER_WAIT_MS} ms; it may or may not have been applied — read \
                         the key to find out before writing it again; last: {why}"
                    ),
                    None => format!(
                        "no member of {members} took the write within {LEADER_WAIT_MS} ms (an \
                         election needs a majority of members up and connected); last: {why}"
                    ),
                }));
            }
            smol::Timer::after(Duration::from_millis(LEADER_POLL_MS)).await;
        }
    }

    /// One attempt of a write at `peer`, given up (`Moved`) when the edge
    /// learns meanwhile that another member leads: a leader cut off without
    /// a FIN would hold the write until the request timeout, while the
    /// write, sent again with its request id, cannot be applied twice.
    async fn attempt(&self, peer: &Arc<Peer>, m: &Message) -> Attempt {
        let changes = self.leader_found.load(Ordering::Acquire);
        let call = async {
            Attempt::Answer(
                peer.call_tracked(&self.cfg.cluster, &self.cfg.keys, m)
                    .await,
            )
        };
        let moved = async {
            loop {
                let listener = self.leader_moved.listen();
                if self.leader_found.load(Ordering::Acquire) != changes
                    && self.master().addr != peer.addr
                {
                    return Attempt::Moved;
                }
                listener.await;
            }
        };
        smol::future::or(call, moved).await
    }

    /// A linearizable read (`MIN_SEQ_LINEARIZABLE`) at whichever member
    /// leads: reads change nothing, so any failure tries the next member.
    pub(super) async fn linearizable_read(&self, m: &Message) -> Result<Message, BackendError> {
        let deadline = Instant::now() + Duration::from_millis(LEADER_WAIT_MS);
        let mut why = String::new();
        loop {
            let members = self.members();
            let start = leader_index(&members, &self.master());
            for i in 0..members.len() {
                let peer = &members[(start + i) % members.len()];
                match peer.call(&self.cfg.cluster, &self.cfg.keys, m).await {
                    Ok(Message::Error {
                        code: ErrorCode::NotMaster | ErrorCode::Timeout | ErrorCode::Unavailable,
                        message,
                        ..
                    }) => why = format!("{}: {message}", peer.addr),
                    Ok(answer) => {
                        self.found_leader(peer);
                        return Ok(answer);
                    }
                    Err(e) => why = e.to_string(),
                }
            }
            if Instant::now() >= deadline {
                return Err(BackendError::Unavailable(format!(
                    "no member of {} could confirm it leads within {LEADER_WAIT_MS} ms, so no \
                     linearizable read is possible now (consistency=ryw or any still answer); \
                     last: {why}",
                    members.len()
                )));
            }
            smol::Timer::after(Duration::from_millis(LEADER_POLL_MS)).await;
        }
    }

    /// Keeps one member's connection alive and, whenever a member says it
    /// leads a higher term than the one believed to lead, sends writes there.
    /// It ends once the member left the group's list.
    pub(super) async fn watch_member(self: std::sync::Arc<Self>, peer: Arc<Peer>) {
        while self.members().iter().any(|p| Arc::ptr_eq(p, &peer)) {
            let ping = Message::Digest {
                req_id: self.req_id(),
            };
            let _ = peer.call(&self.cfg.cluster, &self.cfg.keys, &ping).await;
            if let Some(term) = peer.leads() {
                // A leader's commit point is committed for good.
                let commit = peer.welcome_commit().unwrap_or(0);
                self.committed_seq.fetch_max(commit, Ordering::AcqRel);
                let current = self.master();
                let believed = current.leads().filter(|_| current.addr != peer.addr);
                if believed.is_none_or(|t| term > t) {
                    self.found_leader(&peer);
                }
            }
            smol::Timer::after(Duration::from_millis(MEMBER_WATCH_MS)).await;
        }
    }

    /// The member leading now as far as this edge can tell: it answers,
    /// and it said it leads when it welcomed the live connection (a member
    /// ends its connections when its role changes).
    pub(super) fn reachable_leader(&self) -> Option<std::net::SocketAddr> {
        let leads = |p: &&std::sync::Arc<crate::peer::Peer>| {
            p.usable() && p.responsive(ANSWER_LATE_MS) && p.leads().is_some()
        };
        self.members().iter().find(leads).map(|p| p.addr)
    }

    /// Member `peer` failed with a write in flight: try the next one first.
    fn suspect(&self, peer: &std::sync::Arc<crate::peer::Peer>) {
        let members = self.members();
        let Some(i) = members.iter().position(|p| p.addr == peer.addr) else {
            return;
        };
        let next = members[(i + 1) % members.len()].clone();
        let mut master = self.master.lock().unwrap_or_else(|p| p.into_inner());
        if master.addr == peer.addr {
            *master = next;
        }
    }

    fn found_leader(&self, peer: &std::sync::Arc<crate::peer::Peer>) {
        let mut master = self.master.lock().unwrap_or_else(|p| p.into_inner());
        if master.addr != peer.addr {
            *master = peer.clone();
        }
        drop(master);
        // Counted against the member last found leading, not the pointer
        // writes try first (`suspect` moves that on a failure, maybe to
        // the next leader before it is found to lead).
        let mut leading = self.leading.lock().unwrap_or_else(|p| p.into_inner());
        if *leading != Some(peer.addr) {
            log::info!(
                "edge: member {} leads (term {:?}); writes go there",
                peer.addr,
                peer.leads()
            );
            if leading.is_some() {
                self.leader_changes.fetch_add(1, Ordering::AcqRel);
            }
            *leading = Some(peer.addr);
            self.leader_found.fetch_add(1, Ordering::AcqRel);
            self.leader_moved.notify(usize::MAX);
        }
    }

    /// `/status`'s `members`: each member's role and term as it last said
    /// (`unreachable`: no connection now), health, applied seq and lag.
    pub(super) fn member_status(&self, master_seq: u64) -> serde_json::Value {
        let members: Vec<serde_json::Value> = self
            .members()
            .iter()
            .map(|p| {
                let (role, term) = match p.welcome() {
                    Some((hypha_net::Role::Master, t)) => ("leader", Some(t)),
                    // Knows no leader: it answers reads only.
                    Some((hypha_net::Role::Member, t)) => ("idle", Some(t)),
                    Some((_, t)) => ("follower", Some(t)),
                    None => ("unreachable", None),
                };
                let mut applied = p.applied_seq.load(std::sync::atomic::Ordering::Relaxed);
                if role == "leader" {
                    // Reads seldom go to the leader: its seq is the edge's
                    // newest from it.
                    applied = applied.max(master_seq);
                }
                serde_json::json!({
                    "addr": p.addr.to_string(),
                    "role": role,
                    "standing": self.standing(p.addr),
                    "term": term,
                    "healthy": p.usable(),
                    "applied_seq": applied,
                    "lag": master_seq.saturating_sub(applied),
                })
            })
            .collect();
        serde_json::Value::Array(members)
    }
}

/// Where `leader` (the member believed to lead) is in `members`.
fn leader_index(members: &[Arc<Peer>], leader: &Peer) -> usize {
    members
        .iter()
        .position(|p| p.addr == leader.addr)
        .unwrap_or(0)
}

/// `m` (a `Put` or `Delete`) as its first attempt with a fresh request id.
fn with_request(m: &Message) -> Result<Message, BackendError> {
    let mut id: [u8; hypha_net::REQUEST_ID_BYTES] = crate::wire::random_bytes()
        .map_err(|e| BackendError::Internal(format!("no random request id: {e}")))?;
    // All zero means "no id" on the wire; one in 2^128.
    id[0] |= u8::from(id == [0; hypha_net::REQUEST_ID_BYTES]);
    let request = WriteRequest {
        id,
        retry_after: None,
    };
    match m.clone() {
        Message::Put { req_id, key, value } => Ok(Message::PutOnce {
            req_id,
            key,
            value,
            request,
        }),
        Message::Delete { req_id, key } => Ok(Message::DeleteOnce {
            req_id,
            key,
            request,
        }),
        Message::PutIf {
            req_id,
            key,
            value,
            expect,
            ..
        } => Ok(Message::PutIf {
            req_id,
            key,
            value,
            expect,
            request: Some(request),
        }),
        Message::DeleteIf {
            req_id,
            key,
            expect,
            ..
        } => Ok(Message::DeleteIf {
            req_id,
            key,
            expect,
            request: Some(request),
        }),
        Message::Txn { req_id, txn, .. } => Ok(Message::Txn {
            req_id,
            txn,
            request: Some(request),
        }),
        other => Err(BackendError::Internal(format!(
            "{} is not a client write",
            other.name()
        ))),
    }
}

/// Marks `m` a retry whose first attempt, if applied, is after `after`.
fn set_retry(m: &mut Message, after: u64) {
    match m {
        Message::PutOnce { request, .. } | Message::DeleteOnce { request, .. } => {
            request.retry_after = Some(after);
        }
        Message::PutIf {
            request: Some(request),
            ..
        }
        | Message::DeleteIf {
            request: Some(request),
            ..
        }
        | Message::Txn {
            request: Some(request),
            ..
        } => request.retry_after = Some(after),
        _ => {}
    }
}

/// What one attempt of a write came to.
enum Attempt {
    Answer(Result<Message, CallFailed>),
    /// Another member leads now; the attempt was given up.
    Moved,
}

/// Whether `m` is a retry (it names a `retry_after`).
fn is_retry(m: &Message) -> bool {
    match m {
        Message::PutOnce { request, .. } | Message::DeleteOnce { request, .. } => {
            request.retry_after.is_some()
        }
        Message::PutIf { request, .. }
        | Message::DeleteIf { request, .. }
        | Message::Txn { request, .. } => request.is_some_and(|r| r.retry_after.is_some()),
        _ => false,
    }
}
