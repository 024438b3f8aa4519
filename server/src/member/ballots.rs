//! Election traffic between members: each member opens one connection of
//! purpose `Elect` to every other member and sends its `Ballot`s on it; it
//! reads the others' ballots on the connections they opened to it.

use super::Member;
use crate::wire;
use hypha_net::{
    Message, Purpose, RefuseReason, Role, Standing, Welcome, MEMBERS_MAX, PROTOCOL_VERSION,
};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

impl Member {
    /// Sends the election's ballots for member `to` over a connection to
    /// it, opened when there is something to send and again after a
    /// failure. Ballots queued while it was unreachable are dropped: the
    /// election repeats what still matters on its timers.
    pub(super) async fn dial(self: Arc<Self>, to: usize, rx: smol::channel::Receiver<Message>) {
        let mut connected = false;
        loop {
            let Ok(first) = rx.recv().await else {
                return;
            };
            // The list says where it listens now (gone: removed).
            let Some(addr) = self.addr_of(to) else {
                return;
            };
            let why = match self.connect_to(addr).await {
                Ok((mut r, mut w)) => {
                    if !connected {
                        log::info!("member {}: ballots reach member {to} at {addr}", self.me);
                        connected = true;
                    }
                    let send = async {
                        // Once the group changed, a member says its list
                        // first: a witness learns where members listen.
                        let list = self.list();
                        if list.epoch > 0 {
                            w.send(&Message::MemberList {
                                req_id: 0,
                                members: list,
                            })
                            .await?;
                        }
                        let mut next = Some(first);
                        loop {
                            let msg = match next.take() {
                                Some(m) => m,
                                None => rx.recv().await.map_err(std::io::Error::other)?,
                            };
                            w.send(&msg).await?;
                        }
                    };
                    // Nothing is expected back; reading notices a close.
                    let watch = async {
                        while r.recv().await?.is_some() {}
                        Err::<(), _>(std::io::Error::other("it closed the connection"))
                    };
                    smol::future::or(send, watch).await.err()
                }
                Err(e) => Some(e),
            };
            if let Some(e) = why {
                if connected {
                    log::info!(
                        "member {}: lost the connection to member {to} at {addr}: {e}",
                        self.me
                    );
                    connected = false;
                } else {
                    log::debug!(
                        "member {}: cannot reach member {to} at {addr}: {e}",
                        self.me
                    );
                }
            }
            smol::Timer::after(Duration::from_millis(hypha_repl::RECONNECT_MS)).await;
            while rx.try_recv().is_ok() {}
        }
    }

    async fn connect_to(&self, addr: SocketAddr) -> std::io::Result<(wire::Reader, wire::Writer)> {
        let purpose = Purpose::Elect {
            member: self.me as u16,
            group: self.group,
        };
        let role = match self.witness() {
            Some(_) => Role::Witness,
            None => Role::Member,
        };
        let hello = wire::hello(&self.cfg.cluster, role, self.node_id, purpose)?;
        let keys = wire::current_keys(&self.cfg.keys);
        // A ballot that cannot get through within an election timeout is
        // stale anyway: fail and connect again rather than sit in TCP's
        // retransmission backoff after a cut link heals.
        let unacked_ms = self
            .cfg
            .election
            .election_min_ms
            .clamp(1, u64::from(u32::MAX)) as u32;
        let (r, w, answer, _) = wire::connect_failing_fast(addr, hello, &keys, unacked_ms).await?;
        match answer {
            Message::Welcome(_) => Ok((r, w)),
            Message::Refuse(refusal) => {
                if let RefuseReason::Removed { epoch } = refusal.reason {
                    // Said once per epoch: the member idles (its ballots
                    // go nowhere) until an operator stops it.
                    if self.told_removed.swap(epoch + 1, Ordering::Relaxed) != epoch + 1 {
                        log::warn!(
                            "member {} at {}: {addr} says it was removed from the group \
                             (member list epoch {epoch}): {}",
                            self.me,
                            self.cfg.listen(),
                            refusal.message
                        );
                    }
                }
                Err(wire::refusal(addr, &refusal))
            }
            other => Err(std::io::Error::other(format!(
                "{addr} answered {} to an election Hello",
                other.name()
            ))),
        }
    }

    /// Reads the ballots member `member` sends on the connection it opened,
    /// after checking it belongs to this group.
    pub(super) async fn ballots_from(
        self: Arc<Self>,
        accepted: wire::Accepted,
        member: u16,
        group: u64,
        peer: SocketAddr,
    ) -> std::io::Result<()> {
        let wire::Accepted {
            mut r,
            mut w,
            hello,
            ..
        } = accepted;
        let from = usize::from(member);
        let list = self.list();
        let refusal = if group != self.group {
            Some(format!(
                "{peer} has member list {group:016x}, this member {:016x}: start every member \
                 with the same --peers list, in the same order",
                self.group
            ))
        } else if from >= MEMBERS_MAX || from == self.me {
            Some(format!(
                "{peer} says it is member {member}; this is member {} and ids stay below \
                 MEMBERS_MAX ({MEMBERS_MAX})",
                self.me
            ))
        } else if from < list.slots.len() && list.standing(from) == Standing::Removed {
            Some(format!(
                "member {member} ({peer}) was removed from the group (member list epoch {}); it \
                 takes no further part: empty its data directory, `hypha members add` it \
                 again and start it with --join",
                list.epoch
            ))
        } else {
            None
        };
        if let Some(why) = refusal {
            log::warn!("member {}: refused ballots: {why}", self.me);
            let reason = match from < list.slots.len() && list.standing(from) == Standing::Removed {
                true => RefuseReason::Removed { epoch: list.epoch },
                false => RefuseReason::NotAllowed,
            };
            wire::refuse(&mut w, reason, &why).await;
            return Ok(());
        }
        self.met(from, hello.node_id, hello.role == Role::Witness);
        let db = self.db();
        w.send(&Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            role: Role::Member,
            node_id: self.node_id,
            history_id: db.as_ref().map_or(0, |db| db.history_id()),
            commit_seq: db.as_ref().map_or(0, |db| db.seq()),
            term: 0,
            terms: Vec::new(),
        }))
        .await?;
        drop(db);
        let result = loop {
            match r.recv().await {
                Ok(Some(Message::Ballot(b))) => {
                    // Full: the election is behind; a lost ballot is
                    // repeated on its timers.
                    let _ = self.inbox.try_send(super::Input::Ballot(from, b));
                }
                Ok(Some(Message::MemberList { members, .. })) => {
                    if self.witness().is_some() && members.check().is_ok() {
                        self.told(members);
                    }
                }
                Ok(Some(other)) => {
                    break Err(std::io::Error::other(format!(
                        "member {member} sent {} on an election connection",
                        other.name()
                    )))
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        // Closed by the kernel of a process that died, most likely: if it
        // led, the election need not wait out its timeout.
        let _ = self.inbox.try_send(super::Input::Gone(from));
        result
    }

    /// Member `id` opened an election connection as node `node` (a
    /// witness, or not): a leader counts its acknowledgements by that.
    fn met(&self, id: usize, node: u64, witness: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let was_witness = self.witnesses[id].swap(witness, Relaxed);
        let was_node = self.node_of[id].swap(node, Relaxed);
        if (was_witness, was_node) != (witness, node) {
            if let Some(master) = self.leading() {
                self.push_voters(&master);
            }
        }
    }
}
