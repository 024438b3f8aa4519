//! The worker's side of a snapshot (received beside the old data and
//! swapped in by renames) and its heartbeats, signed with the keys of its
//! session with the master.

use super::{history_path, sync_dir, Worker, SWAP_POLL_MS};
use crate::wire::{self, from_wire};
use hypha_engine::{Db, Fsync, Options};
use hypha_net::{encode_heartbeat, open_heartbeat, Heartbeat, Role, WireRecord};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A snapshot being received into `DIR/snapshot.tmp`.
pub(super) struct Receiving {
    db: Arc<Db>,
    progress: crate::progress::Progress,
}

impl Receiving {
    /// Applies one chunk on the blocking pool.
    pub(super) async fn chunk(&mut self, records: Vec<WireRecord>) -> std::io::Result<()> {
        let n = records.len() as u64;
        let bytes: usize = records.iter().map(crate::wire::wire_bytes).sum();
        let db = self.db.clone();
        smol::unblock(move || -> Result<(), hypha_engine::Error> {
            for r in records {
                db.apply(&from_wire(r))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| std::io::Error::other(format!("applying the snapshot: {e}")))?;
        self.progress.add(n, bytes as u64, 0);
        Ok(())
    }
}

impl Worker {
    /// Starts a snapshot beside the current data (a half-received one is
    /// discarded first).
    pub(super) async fn snapshot_begin(&self, total: u64) -> std::io::Result<Receiving> {
        let tmp = self.cfg.data.join("snapshot.tmp");
        let opts = Options {
            fsync: Fsync::Never,
            ..self.cfg.engine.clone()
        };
        let fresh = smol::unblock(move || -> std::io::Result<Db> {
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp)?;
            }
            Db::open(&tmp, opts).map_err(std::io::Error::other)
        })
        .await?;
        Ok(Receiving {
            db: Arc::new(fresh),
            progress: crate::progress::Progress::new("snapshot", total),
        })
    }

    /// Makes the received snapshot durable and swaps it in; the engine's
    /// seq after it.
    pub(super) async fn snapshot_end(
        &self,
        rx: Receiving,
        history_id: u64,
        upto: u64,
        terms: Vec<hypha_net::TermStart>,
    ) -> std::io::Result<u64> {
        let Receiving {
            db: fresh,
            mut progress,
        } = rx;
        progress.done();
        let fresh = Arc::try_unwrap(fresh)
            .map_err(|_| std::io::Error::other("snapshot db still in use"))?;
        let terms = wire::terms_from_wire(&terms);
        let seq = smol::unblock(move || -> Result<u64, hypha_engine::Error> {
            // The snapshot's records came in any order: its term table is
            // the master's, up to the snapshot's seq.
            fresh.set_term_history(&terms)?;
            fresh.sync()?;
            let seq = fresh.seq();
            fresh.close()?;
            Ok(seq)
        })
        .await
        .map_err(std::io::Error::other)?;
        self.swap_in(self.cfg.data.join("snapshot.tmp"), history_id)
            .await?;
        crate::rt::release_free_memory();
        log::info!(
            "worker: snapshot up to seq {upto} installed ({seq} applied), following history \
             {history_id:016x}"
        );
        Ok(self.db().map_or(seq, |db| db.seq()))
    }

    /// Replaces `DIR/db` with the snapshot in `tmp`, by renames. The old
    /// database is closed first (reads answer "unavailable" for that moment),
    /// so nothing writes into a directory after it was renamed. Waits for
    /// in-flight reads to let go of the old database without blocking the
    /// executor thread they run on, and does the file work on the blocking
    /// pool.
    async fn swap_in(&self, tmp: PathBuf, history_id: u64) -> std::io::Result<()> {
        let old_db = self.take_db().await;
        let (data, engine) = (self.cfg.data.clone(), self.cfg.engine.clone());
        let fresh = smol::unblock(move || -> std::io::Result<Db> {
            if let Some(db) = old_db {
                db.close().map_err(std::io::Error::other)?;
            }
            let (db_dir, old) = (data.join("db"), data.join("db.old"));
            carry_vote(&db_dir, &tmp)?;
            std::fs::rename(&db_dir, &old)?;
            std::fs::rename(&tmp, &db_dir)?;
            sync_dir(&data)?;
            std::fs::write(history_path(&data), format!("{history_id:016x}\n"))?;
            sync_dir(&data)?;
            let fresh = Db::open(&db_dir, engine).map_err(std::io::Error::other)?;
            std::fs::remove_dir_all(&old)?;
            Ok(fresh)
        })
        .await?;
        if let Some(group) = &self.cfg.group {
            super::files::report_log(group, &fresh);
        }
        self.hub.reset(fresh.seq());
        *self.db.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(fresh));
        self.followed.store(history_id, Ordering::Release);
        self.applied.notify(usize::MAX);
        Ok(())
    }

    /// Takes the database out of service (reads answer "unavailable" until
    /// it is back), once in-flight reads let go of it, without blocking
    /// the executor thread they run on.
    async fn take_db(&self) -> Option<Db> {
        let mut current = self.db.write().unwrap_or_else(|p| p.into_inner()).take();
        loop {
            match current.map(Arc::try_unwrap) {
                None => return None,
                Some(Ok(db)) => return Some(db),
                Some(Err(shared)) => {
                    // An in-flight read still holds it; it finishes quickly.
                    current = Some(shared);
                    smol::Timer::after(Duration::from_millis(SWAP_POLL_MS)).await;
                }
            }
        }
    }

    /// Cuts the log back to end at `after` (`Db::truncate_after`: a
    /// failover member whose records no majority held). `Ok(Err(why))`
    /// when compaction already merged what must be cut (a snapshot then
    /// replaces the data).
    pub(super) async fn truncate(&self, after: u64) -> std::io::Result<Result<u64, String>> {
        let Some(db) = self.take_db().await else {
            return Err(std::io::Error::other("no database to cut"));
        };
        let (dir, engine) = (self.cfg.data.join("db"), self.cfg.engine.clone());
        let (db, outcome) = smol::unblock(move || match db.truncate_after(after) {
            Ok(db) => {
                let seq = db.seq();
                (Ok(db), Ok(seq))
            }
            // The database was closed and the cut refused or failed: it
            // opens again as it was (or with the cut done, if its marker
            // was written).
            Err(e) => (Db::open(&dir, engine), Err(e.to_string())),
        })
        .await;
        let db = db.map_err(std::io::Error::other)?;
        if let Some(group) = &self.cfg.group {
            super::files::report_log(group, &db);
        }
        self.hub.reset(db.seq());
        *self.db.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(db));
        self.applied.notify(usize::MAX);
        Ok(outcome)
    }

    /// Sends a heartbeat to the master every `--heartbeat-ms`, signed with
    /// the keys of the current session (none while there is none), and
    /// tells the follower (`heard`) when a signed answer proves the master
    /// alive.
    pub(super) async fn heartbeats(self: Arc<Self>, heard: smol::channel::Sender<()>) {
        let send = async {
            loop {
                let mut hb = Heartbeat::new(
                    wire::cluster_name(&self.cfg.cluster).unwrap_or_default(),
                    Role::Worker,
                    self.node_id,
                );
                hb.applied_seq = self.db().map_or(0, |db| db.seq());
                hb.commit_seq = hb.applied_seq;
                hb.serve_port = self.local_addr.port();
                let sealed = {
                    let mut beats = self.beats.lock().unwrap_or_else(|p| p.into_inner());
                    beats
                        .as_mut()
                        .and_then(|b| encode_heartbeat(&hb, &mut b.out).ok())
                };
                if let Some(bytes) = sealed {
                    if let Err(e) = self.udp.send_to(&bytes, self.cfg.master).await {
                        log::debug!("worker: heartbeat to {}: {e}", self.cfg.master);
                    }
                }
                smol::Timer::after(Duration::from_millis(self.cfg.heartbeat_ms)).await;
            }
        };
        let recv = async {
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((n, from)) = self.udp.recv_from(&mut buf).await else {
                    continue;
                };
                let opened = {
                    let mut beats = self.beats.lock().unwrap_or_else(|p| p.into_inner());
                    let Some(beats) = beats.as_mut() else {
                        continue;
                    };
                    open_heartbeat(&buf[..n], &mut beats.inn)
                };
                match opened {
                    // Full means the follower has one to read already.
                    Ok(hb) if hb.role == Role::Master => drop(heard.try_send(())),
                    Ok(_) => {}
                    Err(e) => log::debug!("worker: heartbeat from {from} dropped: {e}"),
                }
            }
        };
        smol::future::or(send, recv).await
    }
}

/// A member's term and vote (the engine's file `vote`) live in its database
/// directory: the snapshot replacing it takes them along, durably, before
/// the swap, so a crash can never leave a member that forgot its vote.
fn carry_vote(db_dir: &std::path::Path, tmp: &std::path::Path) -> std::io::Result<()> {
    let from = db_dir.join(hypha_engine::VOTE_FILE);
    if !from.exists() {
        return Ok(());
    }
    let to = tmp.join(hypha_engine::VOTE_FILE);
    std::fs::copy(&from, &to)?;
    std::fs::File::open(&to)?.sync_all()?;
    sync_dir(tmp)
}
