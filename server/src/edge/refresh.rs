//! What the edge learns in the background: the workers the master lists,
//! how far each has applied, and each node's compaction counters.

use super::Edge;
use crate::peer::Peer;
use hypha_net::Message;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often an edge in front of a failover group asks for its member
/// list (a member added or removed shows within this).
pub const MEMBERS_LEARN_MS: u64 = 5_000;

impl Edge {
    /// Refreshes the worker list (and their lag) from the master, forever.
    pub async fn refresh_loop(self: Arc<Self>) {
        // One watcher per member: a stalled member delays only its own.
        let mut watchers = Vec::new();
        let mut learned: Option<std::time::Instant> = None;
        loop {
            let due = learned.is_none_or(|t| t.elapsed().as_millis() as u64 >= MEMBERS_LEARN_MS);
            if self.failover() && due {
                self.watch_members(&mut watchers);
                self.learn_members().await;
                self.watch_members(&mut watchers);
                learned = Some(std::time::Instant::now());
            }
            self.refresh().await;
            self.refresh_compaction().await;
            smol::Timer::after(Duration::from_millis(self.cfg.refresh_ms)).await;
        }
    }

    /// Starts a watcher for each member that has none; ends those of
    /// members gone from the list.
    fn watch_members(self: &Arc<Self>, watchers: &mut Vec<(Arc<Peer>, smol::Task<()>)>) {
        let members = self.members();
        watchers.retain(|(p, _)| members.iter().any(|m| Arc::ptr_eq(m, p)));
        for p in members {
            if !watchers.iter().any(|(w, _)| Arc::ptr_eq(w, &p)) {
                let task = crate::rt::spawn(self.clone().watch_member(p.clone()));
                watchers.push((p, task));
            }
        }
    }

    /// Asks the master for its workers once.
    pub async fn refresh(&self) {
        let m = Message::Workers {
            req_id: self.req_id(),
        };
        let Ok(Message::WorkerList { workers, .. }) = self.call(&self.master(), &m).await else {
            return;
        };
        if let Ok(Message::DigestIs { seq, .. }) = self
            .call(
                &self.master(),
                &Message::Digest {
                    req_id: self.req_id(),
                },
            )
            .await
        {
            self.master_seq.store(seq, Ordering::Relaxed);
        }
        let mut list = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        // A worker the master forgot (`--forget-after`) is dropped here too,
        // unless it was given with `--workers`.
        list.retain(|p| {
            let known = self.cfg.workers.contains(&p.addr)
                || self.members().iter().any(|m| m.addr == p.addr)
                || workers.iter().any(|w| w.addr.parse() == Ok(p.addr));
            if !known {
                log::info!(
                    "edge: the master no longer lists worker {}; dropped",
                    p.addr
                );
            }
            known
        });
        for info in workers {
            let Ok(addr) = info.addr.parse::<SocketAddr>() else {
                continue;
            };
            let peer = match list.iter().find(|p| p.addr == addr) {
                Some(p) => p.clone(),
                None => {
                    log::info!("edge: learned worker {addr} from the master");
                    let p = Peer::new(addr);
                    list.push(p.clone());
                    p
                }
            };
            peer.healthy.store(info.healthy, Ordering::Relaxed);
            peer.applied_seq
                .fetch_max(info.applied_seq, Ordering::Relaxed);
        }
    }

    /// Asks every node for its compaction counters (for /metrics).
    async fn refresh_compaction(&self) {
        let master = self.master();
        let mut peers = vec![master.clone()];
        peers.extend(
            self.worker_list()
                .into_iter()
                .filter(|p| p.addr != master.addr),
        );
        let mut infos = Vec::new();
        for p in peers {
            let m = Message::Compact {
                req_id: self.req_id(),
                run: false,
            };
            if let Ok(Message::CompactIs { info, .. }) =
                p.call(&self.cfg.cluster, &self.cfg.keys, &m).await
            {
                infos.push((p.addr, info));
            }
        }
        *self.compaction.lock().unwrap_or_else(|p| p.into_inner()) = infos;
    }
}
