//! The background threads of a database: the checkpointer (size and idle
//! checkpoints, the fsyncs a data-file rollover owes, and the writes of
//! pending key-index slots), the compactor (automatic compaction) and the flusher of
//! `Fsync::EveryMs`. Each holds the database weakly or is stopped by
//! `Db::close`/drop, and none holds the write lock across an fsync.

use crate::inner::{lock, Inner};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// A stop switch and the thread it stops (dropping the sender stops it).
pub(crate) type Worker = (mpsc::Sender<()>, JoinHandle<()>);

/// A database that has changed since its last checkpoint and then sees no
/// write for this long (noticed within twice this) takes a checkpoint: a
/// crash while it sits idle then replays nothing, and memory held for the
/// burst (pending key-index slots) is freed. A steady stream of writes,
/// however slow, never triggers it; the size thresholds
/// (`CHECKPOINT_IDS_MAX`, `CHECKPOINT_BYTES_MAX`) do.
pub const CHECKPOINT_IDLE_MS: u64 = 1000;

pub(crate) fn spawn_checkpointer(inner: Arc<Inner>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("hypha-ckpt".into())
        .spawn(move || loop {
            let mut sig = lock(&inner.ckpt_signal);
            // Set before looking, so a write after the look wakes us.
            inner.ckpt_sleeping.store(true, Ordering::SeqCst);
            let (seq, changed) = {
                let core = inner.read();
                (core.seq, core.ckpt_bytes > 0)
            };
            if changed {
                inner.ckpt_sleeping.store(false, Ordering::SeqCst);
            }
            if !sig.due && !sig.stop && !sig.seal && !sig.keys {
                sig = match changed {
                    true => {
                        let idle = Duration::from_millis(CHECKPOINT_IDLE_MS);
                        inner
                            .ckpt_cv
                            .wait_timeout(sig, idle)
                            .map_or_else(|p| p.into_inner().0, |(g, _)| g)
                    }
                    // Nothing to do: no timer wakes an idle database.
                    false => inner.ckpt_cv.wait(sig).unwrap_or_else(|p| p.into_inner()),
                };
            }
            // (Under the lock, so a writer that finds it set notifies a wait
            // that has not ended.)
            inner.ckpt_sleeping.store(false, Ordering::SeqCst);
            if sig.stop {
                return;
            }
            if std::mem::take(&mut sig.seal) {
                drop(sig);
                // A failure latches the database read-only.
                if inner.writable().is_ok() {
                    let _ = inner.finish_seal();
                }
                continue;
            }
            if std::mem::take(&mut sig.keys) {
                drop(sig);
                if inner.writable().is_ok() {
                    // A failure latches the database read-only.
                    let _ = inner.flush_keys();
                }
                continue;
            }
            let asked = std::mem::take(&mut sig.due);
            drop(sig);
            if !asked {
                // Woken by a first write, or timed out: checkpoint only after
                // CHECKPOINT_IDLE_MS without a write.
                if !changed || inner.read().seq != seq {
                    continue;
                }
                log::debug!("{}: idle checkpoint", inner.dir.display());
            }
            if inner.writable().is_ok() {
                if let Err(e) = inner.checkpoint(true) {
                    log::error!("{}: checkpoint failed: {e}", inner.dir.display());
                }
            }
        })
        .expect("cannot start the checkpoint thread")
}

/// Milliseconds between the background compactor's checks.
pub const COMPACT_CHECK_MS: u64 = 1000;

pub(crate) fn spawn_compactor(inner: Weak<Inner>) -> Worker {
    let (tx, rx) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("hypha-compact".into())
        .spawn(move || {
            // Said once, not every check, while the disk lacks the room.
            let mut told_no_room = false;
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(Duration::from_millis(COMPACT_CHECK_MS))
            {
                let Some(inner) = inner.upgrade() else { return };
                // Latched by a full disk, a compaction may win space back.
                if inner.writable().is_err() && !inner.full_disk() {
                    continue;
                }
                if let Some(garbage) = inner.compaction_due() {
                    if let Err(e) = inner.compaction_room() {
                        if !std::mem::replace(&mut told_no_room, true) {
                            log::warn!("{}: not compacting: {e}", inner.dir.display());
                        }
                        continue;
                    }
                    told_no_room = false;
                    log::info!(
                        "{}: {:.1} MB of garbage in the data files: compacting",
                        inner.dir.display(),
                        garbage as f64 / 1e6
                    );
                    if let Err(e) = inner.compact() {
                        log::error!("{}: compaction failed: {e}", inner.dir.display());
                    }
                }
            }
        })
        .expect("cannot start the compaction thread");
    (tx, handle)
}

pub(crate) fn spawn_flusher(inner: Weak<Inner>, ms: u32) -> Worker {
    let (tx, rx) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("hypha-flush".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(Duration::from_millis(ms as u64))
            {
                let Some(inner) = inner.upgrade() else { return };
                if inner.writable().is_ok() {
                    let _ = inner.sync();
                }
            }
        })
        .expect("cannot start the flusher thread");
    (tx, handle)
}
