//! What the edge learns in the background: the workers the master lists,
//! how far each has applied, and each node's compaction counters.

use super::Edge;
use crate::peer::Peer;
use hypha_net::Message;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

impl Edge {
    /// Refreshes the worker list (and their lag) from the master, forever.
    pub async fn refresh_loop(self: Arc<Self>) {
        // One watcher per member: a stalled member delays only its own.
        let _watchers: Vec<_> = (0..self.members.len())
            .map(|i| crate::rt::spawn(self.clone().watch_member(i)))
            .collect();
        loop {
            self.refresh().await;
            self.refresh_compaction().await;
            smol::Timer::after(Duration::from_millis(self.cfg.refresh_ms)).await;
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
                || self.cfg.members.contains(&p.addr)
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
