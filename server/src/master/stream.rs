//! The master's I/O for one replication session: the reader feeds the
//! worker's messages to the core, the writer carries out what the core says
//! for the session (welcome or refuse, one log batch or the snapshot at a
//! time, close), and heartbeats are checked and answered with the session's
//! keys.

use super::{lock, Master};
use crate::progress::Progress;
use crate::wire::{self, allowed, refuse, to_wire, wire_bytes, Beats, Reader, Writer};
use hypha_engine::LogIter;
use hypha_net::{
    decode_heartbeat, encode_heartbeat, open_heartbeat, Heartbeat, Message, Role, WireRecord,
    BATCH_BYTES_MAX, BATCH_RECORDS_MAX,
};
use hypha_repl::{Conn, Join, MasterAction, MasterEvent};
use std::net::SocketAddr;
use std::sync::Arc;

/// Where a session's log reads stand: the engine iterator is kept between
/// batches, with the first record past the last read's bound.
struct Cursor {
    it: LogIter,
    /// Every record up to this was returned.
    position: u64,
    ahead: Option<WireRecord>,
    progress: Progress,
}

impl Master {
    /// Serves a worker's replication session until it ends.
    pub(super) async fn replicate(
        self: Arc<Self>,
        mut r: Reader,
        mut w: Writer,
        hello: hypha_net::Hello,
        peer: SocketAddr,
        beats: Beats,
    ) -> std::io::Result<()> {
        let conn = beats.inn.session();
        let (link, actions) = smol::channel::unbounded();
        lock(&self.links).insert(conn, link);
        let join = Join {
            node: hello.node_id,
            role: hello.role,
            history_id: hello.history_id,
            applied_seq: hello.applied_seq,
            last_term: hello.last_term,
            peer,
        };
        let horizon = self.db.tombstone_horizon();
        self.handle(MasterEvent::Joined {
            conn,
            join,
            horizon,
            beats,
        });
        let reader = async {
            while let Some(msg) = r.recv().await? {
                self.handle(MasterEvent::Received { conn, msg });
            }
            Ok(())
        };
        let result = smol::future::or(reader, self.write_session(&mut w, conn, actions)).await;
        lock(&self.links).remove(&conn);
        self.handle(MasterEvent::Closed { conn });
        if let Err(e) = &result {
            log::warn!(
                "master: worker {:016x} at {peer}: {e}; ending its session",
                hello.node_id
            );
        }
        result
    }

    /// Carries out the core's actions for session `conn` until it closes.
    async fn write_session(
        &self,
        w: &mut Writer,
        conn: Conn,
        actions: smol::channel::Receiver<MasterAction>,
    ) -> std::io::Result<()> {
        let mut cursor: Option<Cursor> = None;
        while let Ok(action) = actions.recv().await {
            match action {
                MasterAction::Send { msgs, .. } => {
                    let mut out = Vec::new();
                    for m in &msgs {
                        w.encode(m, &mut out)?;
                    }
                    w.send_encoded(&out).await?;
                    self.handle(MasterEvent::Sent { conn });
                }
                MasterAction::Refuse {
                    reason, message, ..
                } => {
                    refuse(w, reason, &message).await;
                    return Ok(());
                }
                MasterAction::Close { why, .. } => {
                    return Err(std::io::Error::other(why));
                }
                MasterAction::SendSnapshot { upto, .. } => {
                    let upto = self.send_snapshot(w, upto).await?;
                    self.handle(MasterEvent::SnapshotSent { conn, upto });
                }
                MasterAction::ReadLog { after, upto, .. } => {
                    let records = self.read_log(&mut cursor, after, upto)?;
                    self.handle(MasterEvent::LogRead { conn, records });
                }
                MasterAction::Confirm { .. }
                | MasterAction::SyncFailed { .. }
                | MasterAction::TombstoneFloor(_) => {}
            }
        }
        Ok(())
    }

    /// One batch of the records with `after < seq <= upto`. Reads the
    /// mapped log on this thread: no fsync, no lock held for long.
    fn read_log(
        &self,
        cursor: &mut Option<Cursor>,
        after: u64,
        upto: u64,
    ) -> std::io::Result<Vec<WireRecord>> {
        if cursor.as_ref().is_none_or(|c| c.position != after) {
            *cursor = Some(Cursor {
                it: self.db.read_from(after),
                position: after,
                ahead: None,
                progress: Progress::new("catch-up", self.db.seq().saturating_sub(after)),
            });
        }
        let c = cursor.as_mut().expect("just set");
        let (mut batch, mut bytes) = (Vec::new(), 0);
        while batch.len() < BATCH_RECORDS_MAX && bytes < BATCH_BYTES_MAX {
            let rec = match c.ahead.take() {
                Some(rec) => rec,
                None => match c.it.next() {
                    Some(Ok(rec)) => to_wire(rec),
                    Some(Err(e)) => {
                        return Err(std::io::Error::other(format!("reading the log: {e}")))
                    }
                    None => break,
                },
            };
            if rec.seq > upto {
                c.ahead = Some(rec);
                break;
            }
            bytes += wire_bytes(&rec);
            c.position = rec.seq;
            batch.push(rec);
        }
        // Every record up to the bound was returned (an `ahead` record is
        // past it), or compaction dropped the rest up to it.
        if batch.is_empty() || c.ahead.is_some() {
            c.position = c.position.max(upto);
        }
        let behind = self.db.seq().saturating_sub(c.position);
        if !batch.is_empty() {
            c.progress.add(batch.len() as u64, bytes as u64, behind);
        }
        if behind == 0 || batch.is_empty() {
            // Caught up: a later burst is timed on its own.
            c.progress.done();
        }
        Ok(batch)
    }

    /// Sends the live records with seq ≤ `upto`, built in chunks on the
    /// blocking pool; returns `upto`.
    async fn send_snapshot(&self, w: &mut Writer, upto: u64) -> std::io::Result<u64> {
        let stats = self.db.stats();
        w.send(&Message::SnapshotBegin {
            term: self.term(),
            history_id: self.me.history_id,
            upto_seq: upto,
            records_total: stats.live,
            // An upper bound for progress reports: the log holds the live
            // records and older versions.
            bytes_total: stats.disk_bytes,
        })
        .await?;
        let mut progress = Progress::new("snapshot", stats.live);
        let mut it = Some(self.db.snapshot_at(upto));
        while let Some(snapshot) = it.take() {
            let (rest, chunk) = smol::unblock(move || snapshot_chunk(snapshot, upto)).await;
            let chunk = chunk?;
            it = rest;
            if !chunk.is_empty() {
                let bytes: usize = chunk.iter().map(wire_bytes).sum();
                progress.add(chunk.len() as u64, bytes as u64, 0);
                w.send(&Message::SnapshotChunk { records: chunk }).await?;
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
        let now = self.now();
        let mut core = lock(&self.core);
        let beats = core.beats_of(node)?;
        let hb = match open_heartbeat(datagram, &mut beats.inn) {
            Ok(hb) => hb,
            Err(e) => {
                log::debug!("master: heartbeat from {from} for worker {node:016x} dropped: {e}");
                return None;
            }
        };
        let reply = self.heartbeat(&mut beats.out).ok();
        let serve_port = hb.serve_port;
        let actions = core.handle(MasterEvent::Heard { node, serve_port }, now);
        drop(core);
        self.dispatch(actions);
        reply
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

/// The next chunk of a snapshot (records with seq ≤ `upto`, in seq order),
/// and the iterator if there is more.
fn snapshot_chunk(
    mut it: LogIter,
    upto: u64,
) -> (Option<LogIter>, std::io::Result<Vec<WireRecord>>) {
    let (mut chunk, mut bytes) = (Vec::new(), 0);
    while chunk.len() < BATCH_RECORDS_MAX && bytes < BATCH_BYTES_MAX {
        match it.next() {
            Some(Ok(rec)) if rec.seq <= upto => {
                let rec = to_wire(rec);
                bytes += wire_bytes(&rec);
                chunk.push(rec);
            }
            Some(Ok(_)) | None => return (None, Ok(chunk)),
            Some(Err(e)) => {
                let e = std::io::Error::other(format!("reading the snapshot: {e}"));
                return (None, Err(e));
            }
        }
    }
    (Some(it), Ok(chunk))
}
