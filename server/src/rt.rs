//! Where the nodes' tasks run: on the executor the binary runs with [`run`]
//! (the thread that runs the roles), or on smol's global executor when none
//! was installed (tests, embedders).
//!
//! Keeping every task of a process on one executor thread means a task
//! woken by another task of the same process is only queued: no other
//! thread has to be woken, which on loopback costs more than the work.

use smol::{Executor, Task};
use std::future::Future;
use std::sync::{Arc, OnceLock};

static EXECUTOR: OnceLock<Arc<Executor<'static>>> = OnceLock::new();

/// Runs `f`, and every task the roles spawn, on one executor driven by this
/// thread, which also waits for I/O when it has nothing to run. The work is
/// short steps between socket events: on loopback, waking another executor
/// thread costs more than the step (measured with the HTTP benchmark: two
/// threads of smol's work-stealing executor served fewer requests per
/// second and per CPU-second than one). Blocking work (fdatasync, snapshot
/// installs) runs on smol's blocking pool.
///
/// This thread waits for I/O until the process has been idle for about
/// 20 ms; then async-io (as published) hands the reactor to its helper
/// thread, and every socket event costs a wake-up of the helper and then of
/// this thread, until events keep this thread busy again (a worker's read
/// after a pause: p99 49-54 µs instead of 14-29 µs with a patched reactor,
/// `benches/` replication on a 2-core VM). The change that would avoid it is
/// described as a proposal to upstream in `docs/async-io-proposal.md`.
///
/// `f` runs as a task too: the future given to `Executor::run` is polled
/// again every time the executor wakes, and a role's top-level future (an
/// accept loop, a replication stream) then retries its socket, one failed
/// `accept4` or `recvfrom` per wake-up.
pub fn run<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> T {
    let executor = Arc::new(Executor::new());
    install(executor.clone());
    let main = executor.spawn(f);
    async_io::block_on(executor.run(main))
}

/// Makes [`spawn`] use `executor` from now on; the first call wins (so
/// [`run`] is for once per process).
pub fn install(executor: Arc<Executor<'static>>) {
    let _ = EXECUTOR.set(executor);
}

/// The installed executor, if any.
pub fn executor() -> Option<Arc<Executor<'static>>> {
    EXECUTOR.get().cloned()
}

/// Spawns `future` on the installed executor, or on smol's global one.
///
/// Boxed: the executor's task code is then built once per output type
/// rather than once per future type and path (49 future types cost 107 KiB
/// of the deploy binary unboxed); a spawn costs one allocation more.
pub fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Task<T> {
    let future: std::pin::Pin<Box<dyn Future<Output = T> + Send>> = Box::pin(future);
    match EXECUTOR.get() {
        Some(executor) => executor.spawn(future),
        None => smol::spawn(future),
    }
}

/// Hands the C allocator's free memory back to the OS.
///
/// A snapshot is applied on smol's blocking threads, and glibc gives each
/// thread its own heap (arena), which it does not shrink when the memory is
/// freed: a worker that had installed a 1M-key snapshot kept 7.6-9.9 MiB of
/// anonymous memory, 4.2 MiB with a single arena. `malloc_trim` returns the
/// free pages of every arena. Other C libraries (musl on routers) keep no
/// per-thread heaps; there it does nothing.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: glibc's malloc_trim takes the allocator's own locks and
        // only releases memory no allocation holds.
        unsafe {
            malloc_trim(0);
        }
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    fn rss_anon_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("RssAnon")
    }

    #[test]
    fn free_memory_of_another_threads_heap_goes_back_to_the_os() {
        // 64 MiB in small blocks on another thread (its own glibc arena),
        // then all freed but one block in 1,000: every page of that heap
        // is free save a few, and glibc keeps them.
        const BLOCKS: usize = 320_000;
        let kept = std::thread::spawn(|| {
            let blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|i| vec![i as u8; 200]).collect();
            blocks.into_iter().step_by(1000).collect::<Vec<_>>()
        })
        .join()
        .expect("allocating thread");
        let before = rss_anon_kib();
        super::release_free_memory();
        let after = rss_anon_kib();
        assert_eq!(kept.len(), BLOCKS / 1000);
        assert!(
            before.saturating_sub(after) > 16 << 10,
            "RssAnon {before} KiB before, {after} KiB after: the freed heap was not returned"
        );
    }
}
