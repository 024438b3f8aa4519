//! Group commit for the master's `--fsync always` writes.
//!
//! The executor thread appends every write as it arrives
//! (`Db::put_unsynced`, microseconds), and each write's answer then waits
//! here for an fdatasync that covers its seq. One waiter at a time runs the
//! fdatasyncs on the blocking pool ([`SYNC_ROUNDS_MAX`] back to back while
//! writes keep coming), and each covers every write appended before it
//! began: one thread hand-off and one fdatasync per batch of writes.
//!
//! Giving every write its own blocking thread to wait in `Db::put` shared
//! the fdatasyncs as well, but paid a thread wake-up to start each write,
//! one to end it, and the group-commit leader's `notify_all` woke every
//! waiter after every round; on two cores that cost more than the disk
//! (20,600 durable PUT/s through the edge against 51,500 with `--fsync
//! never`, 7.6 writes per fdatasync, 97,000 context switches per second).
//!
//! Invariant: `synced` only grows, and only to a seq read before an
//! fdatasync that then succeeded; a seq is durable once its record is
//! appended, so every seq up to `synced` is durable.

use super::lock;
use hypha_engine::{Db, Error};
use std::sync::{Arc, Mutex};

/// Most fdatasyncs one hand-off to the blocking pool runs back to back
/// (each for the writes appended while the previous one ran) before it
/// returns and the next waiter takes over.
pub const SYNC_ROUNDS_MAX: u32 = 8;

#[derive(Default)]
struct State {
    /// Every seq up to this is durable.
    synced: u64,
    /// A waiter is running fdatasyncs for everyone.
    running: bool,
}

/// The group-commit state of one master.
#[derive(Default)]
pub struct Committer {
    state: Arc<Mutex<State>>,
    /// Notified when `synced` grew or a run of fdatasyncs ended.
    progress: Arc<event_listener::Event>,
}

/// Ends a run of fdatasyncs, also when its future is dropped: another
/// waiter takes over.
struct Running<'a>(&'a Committer);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).running = false;
        self.0.progress.notify(usize::MAX);
    }
}

impl Committer {
    /// Returns once the write with `seq` (appended to `db` already) is
    /// durable, or the error of the fdatasync that should have made it so.
    pub async fn durable(&self, db: &Arc<Db>, seq: u64) -> Result<(), Error> {
        loop {
            let listener = {
                let mut st = lock(&self.state);
                if st.synced >= seq {
                    return Ok(());
                }
                if st.running {
                    // Listen under the lock: the run cannot end unheard.
                    Some(self.progress.listen())
                } else {
                    st.running = true;
                    None
                }
            };
            match listener {
                Some(listener) => listener.await,
                None => {
                    let _running = Running(self);
                    self.sync(db).await?;
                }
            }
        }
    }

    /// Runs up to [`SYNC_ROUNDS_MAX`] fdatasyncs on the blocking pool, on
    /// while writes were appended during the previous one, publishing
    /// `synced` after each.
    async fn sync(&self, db: &Arc<Db>) -> Result<(), Error> {
        let (db, state, progress) = (db.clone(), self.state.clone(), self.progress.clone());
        smol::unblock(move || {
            for _ in 0..SYNC_ROUNDS_MAX {
                // Read before the fdatasync begins: it covers this seq.
                let upto = db.seq();
                if lock(&state).synced >= upto {
                    break;
                }
                db.sync()?;
                let mut st = lock(&state);
                st.synced = st.synced.max(upto);
                drop(st);
                progress.notify(usize::MAX);
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypha_engine::io::FaultyIo;
    use hypha_engine::{Fsync, Options};

    fn open(dir: &std::path::Path, io: Arc<FaultyIo>) -> Arc<Db> {
        let opts = Options {
            fsync: Fsync::Always,
            io,
            ..Options::default()
        };
        Arc::new(Db::open(dir, opts).expect("open"))
    }

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("hypha-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn concurrent_waiters_share_fdatasyncs_and_all_end_durable() {
        const WRITES: u64 = 64;
        let dir = temp_dir("committer-shared");
        let io = Arc::new(FaultyIo::new(0, 0, 0));
        let db = open(&dir, io.clone());
        let committer = Arc::new(Committer::default());
        let before = io.syncs();
        // Every writer appends and then waits, as the master's answers do;
        // on one thread, the later ones append while the first one's
        // fdatasync runs on the blocking pool.
        let ex = smol::LocalExecutor::new();
        let tasks: Vec<_> = (0..WRITES)
            .map(|i| {
                let (db, committer) = (db.clone(), committer.clone());
                ex.spawn(async move {
                    let seq = db.put_unsynced(&i.to_be_bytes(), b"v").expect("put");
                    committer.durable(&db, seq).await.expect("durable");
                    seq
                })
            })
            .collect();
        let seqs: Vec<u64> = smol::block_on(ex.run(async {
            let mut seqs = Vec::new();
            for t in tasks {
                seqs.push(t.await);
            }
            seqs
        }));
        let syncs = io.syncs() - before;
        assert!(syncs >= 1, "nothing was synced");
        assert!(
            syncs < WRITES / 4,
            "{syncs} fdatasyncs for {WRITES} waiting writes"
        );
        assert!(lock(&committer.state).synced >= *seqs.iter().max().expect("writes"));
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_fdatasync_fails_its_waiters_and_the_next_one_takes_over() {
        let dir = temp_dir("committer-fails");
        // Every fdatasync from the first one after opening fails.
        let probe = Arc::new(FaultyIo::new(0, 0, 0));
        let db = open(&dir, probe.clone());
        let opened = probe.syncs();
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
        let db = open(&dir, Arc::new(FaultyIo::new(0, opened + 1, 5)));
        let committer = Committer::default();
        let seq = db.put_unsynced(b"k", b"v").expect("put");
        smol::block_on(async {
            let e = committer.durable(&db, seq).await.unwrap_err();
            assert!(e.to_string().contains("fdatasync"), "says why: {e}");
            // The run ended: a later waiter runs its own and hears the same.
            assert!(!lock(&committer.state).running);
            assert!(committer.durable(&db, seq).await.is_err());
        });
        assert_eq!(lock(&committer.state).synced, 0);
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
