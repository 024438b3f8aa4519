//! Election traffic between members: each member opens one connection of
//! purpose `Elect` to every other member and sends its `Ballot`s on it; it
//! reads the others' ballots on the connections they opened to it.

use super::Member;
use crate::wire;
use hypha_net::{Message, Purpose, RefuseReason, Role, Welcome, PROTOCOL_VERSION};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

impl Member {
    /// Sends the election's ballots for member `to` over a connection to
    /// it, opened when there is something to send and again after a
    /// failure. Ballots queued while it was unreachable are dropped: the
    /// election repeats what still matters on its timers.
    pub(super) async fn dial(self: Arc<Self>, to: usize) {
        let Some((_, rx)) = self.outboxes[to].clone() else {
            return;
        };
        let addr = self.cfg.peers[to];
        let mut connected = false;
        loop {
            let Ok(first) = rx.recv().await else {
                return;
            };
            let why = match self.connect_to(to).await {
                Ok((mut r, mut w)) => {
                    if !connected {
                        log::info!(
                            "member {}: ballots reach member {to} at {addr}",
                            self.cfg.me
                        );
                        connected = true;
                    }
                    let send = async {
                        let mut next = Some(first);
                        loop {
                            let ballot = match next.take() {
                                Some(b) => b,
                                None => rx.recv().await.map_err(std::io::Error::other)?,
                            };
                            w.send(&Message::Ballot(ballot)).await?;
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
                        self.cfg.me
                    );
                    connected = false;
                } else {
                    log::debug!(
                        "member {}: cannot reach member {to} at {addr}: {e}",
                        self.cfg.me
                    );
                }
            }
            smol::Timer::after(Duration::from_millis(hypha_repl::RECONNECT_MS)).await;
            while rx.try_recv().is_ok() {}
        }
    }

    async fn connect_to(&self, to: usize) -> std::io::Result<(wire::Reader, wire::Writer)> {
        let purpose = Purpose::Elect {
            member: self.cfg.me as u16,
            group: self.group,
        };
        let role = match self.witness() {
            Some(_) => Role::Witness,
            None => Role::Member,
        };
        let hello = wire::hello(&self.cfg.cluster, role, self.node_id, purpose)?;
        let keys = wire::current_keys(&self.cfg.keys);
        let addr = self.cfg.peers[to];
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
            Message::Refuse(refusal) => Err(wire::refusal(addr, &refusal)),
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
        let n = self.cfg.peers.len();
        let refusal = if group != self.group {
            Some(format!(
                "{peer} has member list {group:016x}, this member {:016x}: start every member \
                 with the same --peers list, in the same order",
                self.group
            ))
        } else if usize::from(member) >= n || usize::from(member) == self.cfg.me {
            Some(format!(
                "{peer} says it is member {member}; this group has members 0..{n} and this is \
                 member {}",
                self.cfg.me
            ))
        } else {
            None
        };
        if let Some(why) = refusal {
            log::warn!("member {}: refused ballots: {why}", self.cfg.me);
            wire::refuse(&mut w, RefuseReason::NotAllowed, &why).await;
            return Ok(());
        }
        if let Some(flag) = self.witnesses.get(usize::from(member)) {
            flag.store(
                hello.role == Role::Witness,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
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
        let from = usize::from(member);
        let result = loop {
            match r.recv().await {
                Ok(Some(Message::Ballot(b))) => {
                    // Full: the election is behind; a lost ballot is
                    // repeated on its timers.
                    let _ = self.inbox.try_send(super::Input::Ballot(from, b));
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
}
