//! A failover group's member list as the edge sees it: learned from the
//! members (so a member added since the edge started gets reads and, once
//! it leads, writes; a removed one gets nothing), and changed through them
//! (`/admin/members`).

use super::Edge;
use crate::http::BackendError;
use crate::member::{ask_member, MEMBER_CATCH_UP_MS};
use crate::peer::Peer;
use hypha_net::{ErrorCode, MemberChange, Membership, Message, Standing};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// How long the edge waits for a member's list before asking the next.
const LIST_WAIT_MS: u64 = 1_000;

/// How long a change through the edge may take: an add waits for the new
/// member to catch up.
pub const MEMBER_CHANGE_WAIT_MS: u64 = MEMBER_CATCH_UP_MS + 30_000;

impl Edge {
    /// Whether this edge fronts a failover group (`--members`).
    pub(super) fn failover(&self) -> bool {
        !self.cfg.members.is_empty()
    }

    /// The group's members as the edge last learned them.
    pub(super) fn members(&self) -> Vec<Arc<Peer>> {
        self.members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The members, the one believed to lead first.
    fn leader_first(&self) -> Vec<Arc<Peer>> {
        let mut members = self.members();
        let leader = self.master().addr;
        members.sort_by_key(|p| p.addr != leader);
        members
    }

    /// Asks the members (the one believed to lead first) for the list and
    /// uses the first answer.
    pub(super) async fn learn_members(&self) {
        for p in self.leader_first() {
            let asked = ask_member(
                p.addr,
                &self.cfg.cluster,
                &self.cfg.keys,
                Message::Members { req_id: 1 },
                LIST_WAIT_MS,
            )
            .await;
            if let Ok(Message::MemberList { members, .. }) = asked {
                self.use_list(&members);
                return;
            }
        }
    }

    /// From now on, reads and writes go to the members of `list`.
    fn use_list(&self, list: &Membership) {
        *self.list.lock().unwrap_or_else(|p| p.into_inner()) = Some(list.clone());
        let present: Vec<SocketAddr> = (list.slots.iter())
            .filter(|s| s.standing != Standing::Removed)
            .filter_map(|s| s.addr.parse().ok())
            .collect();
        if present.is_empty() {
            return;
        }
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let same =
            members.len() == present.len() && members.iter().all(|p| present.contains(&p.addr));
        if same {
            return;
        }
        let next: Vec<Arc<Peer>> = (present.iter())
            .map(|&a| match members.iter().find(|p| p.addr == a) {
                Some(p) => p.clone(),
                None => {
                    log::info!(
                        "edge: member {a} joined the group (member list epoch {})",
                        list.epoch
                    );
                    Peer::new(a)
                }
            })
            .collect();
        for gone in members.iter().filter(|p| !present.contains(&p.addr)) {
            log::info!(
                "edge: member {} left the group (member list epoch {})",
                gone.addr,
                list.epoch
            );
        }
        *members = next.clone();
        drop(members);
        // Every member serves reads.
        *self.workers.lock().unwrap_or_else(|p| p.into_inner()) = next.clone();
        let mut master = self.master.lock().unwrap_or_else(|p| p.into_inner());
        if !present.contains(&master.addr) {
            *master = next[0].clone();
        }
    }

    /// `/admin/members`: the list, or the list after `change` (made by
    /// whichever member leads).
    pub(super) async fn change_members(
        &self,
        change: Option<MemberChange>,
    ) -> Result<serde_json::Value, BackendError> {
        if !self.failover() {
            return Err(BackendError::BadRequest(
                "this edge fronts fixed roles (--master); member lists belong to failover \
                 groups (--members)"
                    .into(),
            ));
        }
        let (request, wait) = match change {
            None => (Message::Members { req_id: 1 }, LIST_WAIT_MS),
            Some(change) => (
                Message::ChangeMembers { req_id: 1, change },
                MEMBER_CHANGE_WAIT_MS,
            ),
        };
        let mut why = Vec::new();
        for p in self.leader_first() {
            let asked = ask_member(
                p.addr,
                &self.cfg.cluster,
                &self.cfg.keys,
                request.clone(),
                wait,
            );
            match asked.await {
                Ok(Message::MemberList { members, .. }) => {
                    self.use_list(&members);
                    return Ok(list_json(&members));
                }
                Ok(Message::Error {
                    code: ErrorCode::NotMaster,
                    message,
                    ..
                }) => why.push(format!("{}: {message}", p.addr)),
                Ok(Message::Error { code, message, .. }) => {
                    let why = format!("{}: {message}", p.addr);
                    return Err(match code {
                        ErrorCode::BadRequest => BackendError::BadRequest(why),
                        ErrorCode::Timeout => BackendError::Timeout(why),
                        _ => BackendError::Unavailable(why),
                    });
                }
                Ok(other) => why.push(format!("{} answered {}", p.addr, other.name())),
                Err(e) => why.push(format!("{}: {e}", p.addr)),
            }
        }
        Err(BackendError::Unavailable(format!(
            "no member could answer: {}",
            why.join("; ")
        )))
    }
}

impl Edge {
    /// What the last list learned says member `addr` may do: `voter`,
    /// `learner` (catching up), or `None` before any list was learned.
    pub(super) fn standing(&self, addr: SocketAddr) -> Option<&'static str> {
        let list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        let id = list.as_ref()?.find(&addr.to_string())?;
        Some(list.as_ref()?.standing(id).name())
    }
}

/// The list as `/admin/members` shows it.
fn list_json(list: &Membership) -> serde_json::Value {
    let members: Vec<serde_json::Value> = (list.slots.iter().enumerate())
        .map(|(id, s)| json!({"id": id, "addr": s.addr, "standing": s.standing.name()}))
        .collect();
    json!({
        "group": format!("{:016x}", list.group),
        "epoch": list.epoch,
        "term": list.term,
        "members": members,
    })
}
