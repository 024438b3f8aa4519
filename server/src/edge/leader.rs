//! Writes in a failover group (`hypha http --members`): sent to the member
//! believed to lead, and to the others in turn when it does not (any more),
//! while an election runs. A write is sent again only where it cannot have
//! been applied: the member refused it before writing (`NotMaster`), or no
//! connection reached it. A write whose outcome cannot be known is a 503
//! that says so, never retried blindly.

use super::Edge;
use crate::http::BackendError;
use crate::peer::CallFailed;
use hypha_net::{ErrorCode, Message};
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

impl Edge {
    pub(super) async fn write_to_leader(&self, m: &Message) -> Result<Message, BackendError> {
        let deadline = Instant::now() + Duration::from_millis(LEADER_WAIT_MS);
        let start = self.leader_index();
        let mut why = String::new();
        loop {
            for i in 0..self.members.len() {
                let peer = &self.members[(start + i) % self.members.len()];
                match peer
                    .call_tracked(&self.cfg.cluster, &self.cfg.keys, m)
                    .await
                {
                    Ok(Message::Error {
                        code: ErrorCode::NotMaster,
                        message,
                        ..
                    }) => why = format!("{}: {message}", peer.addr),
                    Ok(answer) => {
                        self.found_leader(peer);
                        return Ok(answer);
                    }
                    Err(CallFailed::NotSent(e)) => why = e.to_string(),
                    Err(CallFailed::Lost(e)) => {
                        // Silent, maybe stopped: the next write starts
                        // with the next member.
                        self.suspect(peer);
                        return Err(BackendError::Unavailable(format!(
                            "the write's outcome is unknown: the connection to member {} failed \
                             with it in flight ({e}); it may or may not have been applied — read \
                             the key to find out before writing it again",
                            peer.addr
                        )));
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(BackendError::Unavailable(format!(
                    "no member of {} took the write within {LEADER_WAIT_MS} ms (an election \
                     needs a majority of members up and connected); last: {why}",
                    self.members.len()
                )));
            }
            smol::Timer::after(Duration::from_millis(LEADER_POLL_MS)).await;
        }
    }

    /// A linearizable read (`MIN_SEQ_LINEARIZABLE`) at whichever member
    /// leads: reads change nothing, so any failure tries the next member.
    pub(super) async fn linearizable_read(&self, m: &Message) -> Result<Message, BackendError> {
        let deadline = Instant::now() + Duration::from_millis(LEADER_WAIT_MS);
        let start = self.leader_index();
        let mut why = String::new();
        loop {
            for i in 0..self.members.len() {
                let peer = &self.members[(start + i) % self.members.len()];
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
                    self.members.len()
                )));
            }
            smol::Timer::after(Duration::from_millis(LEADER_POLL_MS)).await;
        }
    }

    /// Where the member believed to lead is in the member list.
    fn leader_index(&self) -> usize {
        let first = self.master();
        self.members
            .iter()
            .position(|p| p.addr == first.addr)
            .unwrap_or(0)
    }

    /// Keeps one member's connection alive and, whenever a member says it
    /// leads a higher term than the one believed to lead, sends writes there.
    pub(super) async fn watch_member(self: std::sync::Arc<Self>, i: usize) {
        let peer = self.members[i].clone();
        loop {
            let ping = Message::Digest {
                req_id: self.req_id(),
            };
            let _ = peer.call(&self.cfg.cluster, &self.cfg.keys, &ping).await;
            if let Some(term) = peer.leads() {
                let current = self.master();
                let believed = current.leads().filter(|_| current.addr != peer.addr);
                if believed.is_none_or(|t| term > t) {
                    self.found_leader(&peer);
                }
            }
            smol::Timer::after(Duration::from_millis(MEMBER_WATCH_MS)).await;
        }
    }

    /// Member `peer` failed with a write in flight: try the next one first.
    fn suspect(&self, peer: &std::sync::Arc<crate::peer::Peer>) {
        let Some(i) = self.members.iter().position(|p| p.addr == peer.addr) else {
            return;
        };
        let next = self.members[(i + 1) % self.members.len()].clone();
        let mut master = self.master.lock().unwrap_or_else(|p| p.into_inner());
        if master.addr == peer.addr {
            *master = next;
        }
    }

    fn found_leader(&self, peer: &std::sync::Arc<crate::peer::Peer>) {
        let mut master = self.master.lock().unwrap_or_else(|p| p.into_inner());
        if master.addr != peer.addr {
            log::info!(
                "edge: member {} leads (term {:?}); writes go there",
                peer.addr,
                peer.leads()
            );
            *master = peer.clone();
            self.leader_changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// `/status`'s `members`: each member's role and term as it last said
    /// (`unreachable`: no connection now), health, applied seq and lag.
    pub(super) fn member_status(&self, master_seq: u64) -> serde_json::Value {
        let members: Vec<serde_json::Value> = self
            .members
            .iter()
            .map(|p| {
                let (role, term) = match p.welcome() {
                    Some((hypha_net::Role::Master, t)) => ("leader", Some(t)),
                    Some((_, t)) => ("follower", Some(t)),
                    None => ("unreachable", None),
                };
                let applied = p.applied_seq.load(std::sync::atomic::Ordering::Relaxed);
                serde_json::json!({
                    "addr": p.addr.to_string(),
                    "role": role,
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
