//! The master's side of a replication session once it is under way: the
//! snapshot and log stream it sends, and the heartbeats it checks and
//! answers for the session.

use super::{Master, SyncMode};
use crate::progress::Progress;
use crate::wire::{self, allowed, to_wire, wire_bytes, Writer};
use hypha_net::{
    decode_heartbeat, encode_heartbeat, open_heartbeat, Heartbeat, Message, Role, BATCH_BYTES_MAX,
    BATCH_RECORDS_MAX,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

impl Master {
    /// Streams a snapshot (if asked) and then the log, forever.
    pub(super) async fn send_log(
        self: Arc<Self>,
        w: &mut Writer,
        node: u64,
        sid: u64,
        snapshot: bool,
        mut after: u64,
    ) -> std::io::Result<()> {
        if snapshot {
            after = self.send_snapshot(w).await?;
        }
        let mut it = self.db.read_from(after);
        let mut progress = Progress::new("catch-up", self.db.seq().saturating_sub(after));
        loop {
            if !self.is_current(node, sid) {
                return Ok(());
            }
            let listener = self.written.listen();
            let mut batch = Vec::new();
            let mut bytes = 0;
            while batch.len() < BATCH_RECORDS_MAX && bytes < BATCH_BYTES_MAX {
                match it.next() {
                    Some(Ok(rec)) => {
                        let rec = to_wire(rec);
                        bytes += wire_bytes(&rec);
                        batch.push(rec);
                    }
                    Some(Err(e)) => {
                        return Err(std::io::Error::other(format!("reading the log: {e}")))
                    }
                    None => break,
                }
            }
            if batch.is_empty() {
                progress.done();
                // Nothing new: sleep until a write, or until this worker is
                // marked gone (`end_session` notifies too). No timer: each
                // one interrupts the reactor, and this sleep follows every
                // write.
                listener.await;
                continue;
            }
            progress.add(
                batch.len() as u64,
                bytes as u64,
                self.db.seq().saturating_sub(it.position()),
            );
            let first_seq = batch[0].seq;
            let last_seq = batch[batch.len() - 1].seq;
            let records = Message::Records {
                first_seq,
                records: batch,
            };
            if self.cfg.sync == SyncMode::Async {
                w.send(&records).await?;
            } else {
                // Writes wait for acks: a Ping right behind the records has
                // the worker ack them at once (it answers a Ping only
                // after an Ack of everything applied before it).
                let mut out = Vec::new();
                w.encode(&records, &mut out)?;
                w.encode(&Message::Ping { nonce: last_seq }, &mut out)?;
                w.send_encoded(&out).await?;
            }
        }
    }

    async fn send_snapshot(&self, w: &mut Writer) -> std::io::Result<u64> {
        let stats = self.db.stats();
        let upto = stats.seq;
        w.send(&Message::SnapshotBegin {
            history_id: self.me.history_id,
            upto_seq: upto,
            records_total: stats.live,
            // An upper bound for progress reports: the log holds the live
            // records and older versions.
            bytes_total: stats.disk_bytes,
        })
        .await?;
        let mut progress = Progress::new("snapshot", stats.live);
        let mut it = self.db.snapshot();
        loop {
            let mut chunk = Vec::new();
            let mut bytes = 0;
            let mut end = false;
            while chunk.len() < BATCH_RECORDS_MAX && bytes < BATCH_BYTES_MAX {
                match it.next() {
                    Some(Ok(rec)) if rec.seq <= upto => {
                        let rec = to_wire(rec);
                        bytes += wire_bytes(&rec);
                        chunk.push(rec);
                    }
                    Some(Ok(_)) | None => {
                        end = true;
                        break;
                    }
                    Some(Err(e)) => {
                        return Err(std::io::Error::other(format!("reading the snapshot: {e}")))
                    }
                }
            }
            if !chunk.is_empty() {
                progress.add(chunk.len() as u64, bytes as u64, 0);
                w.send(&Message::SnapshotChunk { records: chunk }).await?;
            }
            if end {
                break;
            }
        }
        progress.done();
        w.send(&Message::SnapshotEnd { upto_seq: upto }).await?;
        Ok(upto)
    }

    /// Answers worker heartbeats and records who is alive. A beat counts
    /// only when the keys of that worker's current session sign it; it
    /// updates liveness and the serve port, never the applied seq.
    pub(super) async fn heartbeats(self: Arc<Self>) {
        let mut buf = vec![0u8; 2048];
        loop {
            let (n, from) = match self.udp.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    log::debug!("master: udp: {e}");
                    continue;
                }
            };
            if !allowed(&self.cfg.allow, from, "master heartbeat") {
                continue;
            }
            if let Some(reply) = self.heard(&buf[..n], from) {
                let _ = self.udp.send_to(&reply, from).await;
            }
        }
    }

    /// Checks one heartbeat datagram; the signed answer if it counted.
    fn heard(&self, datagram: &[u8], from: SocketAddr) -> Option<hypha_net::HeartbeatBytes> {
        let node = match decode_heartbeat(datagram) {
            Ok(hb) if hb.cluster.as_str() == self.cfg.cluster => hb.node_id,
            Ok(_) => return None,
            Err(e) => {
                log::debug!("master: bad heartbeat from {from}: {e}");
                return None;
            }
        };
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let w = workers.get_mut(&node)?;
        let beats = w.beats.as_mut()?;
        let hb = match open_heartbeat(datagram, &mut beats.inn) {
            Ok(hb) => hb,
            Err(e) => {
                log::debug!("master: heartbeat from {from} for worker {node:016x} dropped: {e}");
                return None;
            }
        };
        w.last_heard = Instant::now();
        w.serve_port = hb.serve_port;
        self.heartbeat(&mut beats.out).ok()
    }

    fn heartbeat(
        &self,
        sealer: &mut hypha_net::BeatSealer,
    ) -> Result<hypha_net::HeartbeatBytes, hypha_net::EncodeError> {
        let mut hb = Heartbeat::new(
            wire::cluster_name(&self.cfg.cluster).unwrap_or_default(),
            Role::Master,
            self.me.node_id,
        );
        let seq = self.db.seq();
        hb.applied_seq = seq;
        hb.commit_seq = seq;
        hb.serve_port = self.local_addr.port();
        encode_heartbeat(&hb, sealer)
    }
}
