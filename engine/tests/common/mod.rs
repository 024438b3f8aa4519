//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("hypha-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("cannot create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// xorshift64*: deterministic randomness from a printed seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// A seed from the environment (HYPHA_SEED) or the clock, printed so a
    /// failure can be replayed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("HYPHA_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("{test}: HYPHA_SEED={seed}");
        Rng::new(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Which writes a [`WriteGate`] holds: given the file's path and the
/// bytes.
pub type WriteFilter = fn(&std::path::Path, &[u8]) -> bool;

/// A file layer whose writes that match its filter wait while the gate is
/// closed; it counts the writes held. For tests that hold one kind of write
/// (a table write, a buffer write) and check what goes on meanwhile.
#[derive(Debug)]
pub struct WriteGate {
    filter: WriteFilter,
    /// (closed, writes held so far)
    state: std::sync::Mutex<(bool, u64)>,
    changed: std::sync::Condvar,
}

/// The path of an open file (for the filter).
fn path_of(file: &std::fs::File) -> std::io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

impl WriteGate {
    pub fn new(filter: WriteFilter) -> WriteGate {
        WriteGate {
            filter,
            state: std::sync::Mutex::new((false, 0)),
            changed: std::sync::Condvar::new(),
        }
    }
    pub fn close(&self) {
        self.state.lock().expect("lock").0 = true;
    }
    pub fn open(&self) {
        self.state.lock().expect("lock").0 = false;
        self.changed.notify_all();
    }
    pub fn held(&self) -> u64 {
        self.state.lock().expect("lock").1
    }
    /// Waits (at most `ms`) until a write is held; false if none was.
    pub fn wait_held(&self, ms: u64) -> bool {
        let st = self.state.lock().expect("lock");
        let (st, _) = self
            .changed
            .wait_timeout_while(st, std::time::Duration::from_millis(ms), |st| st.1 == 0)
            .expect("lock");
        st.1 > 0
    }
}

impl hypha_engine::io::FileIo for WriteGate {
    fn write_at(&self, file: &std::fs::File, buf: &[u8], offset: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if (self.filter)(&path_of(file)?, buf) {
            let mut st = self.state.lock().expect("lock");
            if st.0 {
                st.1 += 1;
                self.changed.notify_all();
                while st.0 {
                    st = self.changed.wait(st).expect("lock");
                }
            }
        }
        file.write_all_at(buf, offset)
    }
    fn sync_data(&self, file: &std::fs::File) -> std::io::Result<()> {
        file.sync_data()
    }
}
