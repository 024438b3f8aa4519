//! Connection deadlines without a timer per read: each connection keeps one
//! deadline in an atomic, and one sweeper task per server wakes the
//! connections whose deadline passed, on a tick of a tenth of the shortest
//! timeout. A read or write that completes at once touches no timer at all;
//! one that waits pays a few atomic operations instead of a timer inserted
//! into and removed from the reactor (and a reactor wake-up) each time.
//!
//! The master's and workers' waits for an event (`requests::wait_until`:
//! `--sync N` acks, `min_seq` reads) use the same mechanism.
//!
//! A deadline fires between its instant and one tick later. Shutdown goes
//! through the same path: [`Watches::stop`] wakes every connection waiting
//! in a stoppable (idle) wait.

#[cfg(not(target_has_atomic = "64"))]
use portable_atomic::AtomicU64;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
#[cfg(target_has_atomic = "64")]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Ticks of the sweeper per shortest timeout: a deadline fires at most a
/// tenth of its timeout late.
const TICKS_PER_TIMEOUT: u64 = 10;
/// Bounds of the sweeper's tick.
const TICK_MS_MIN: u64 = 1;
const TICK_MS_MAX: u64 = 1_000;
/// `deadline_ms` of a connection that is not waiting.
const NONE: u64 = u64::MAX;

const _: () = assert!(TICK_MS_MIN <= TICK_MS_MAX && TICKS_PER_TIMEOUT > 0);

/// The deadlines of one server's connections, and its shutdown flag.
pub(crate) struct Watches {
    epoch: Instant,
    tick: Duration,
    stopping: AtomicBool,
    state: Mutex<Registry>,
    /// Wakes the sweeper when the first connection arrives.
    arrived: event_listener::Event,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    watches: HashMap<u64, Arc<Watch>>,
}

/// One connection's deadline.
pub(crate) struct Watch {
    /// Deadline of the current wait in ms after `Watches::epoch`; `NONE` when
    /// the connection is not waiting.
    deadline_ms: AtomicU64,
    /// The last deadline the sweeper found passed.
    fired_ms: AtomicU64,
    /// Whether shutdown ends the current wait.
    stoppable: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// Why a wait ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// The deadline passed.
    Expired,
    /// The server is shutting down and the wait was stoppable.
    Stopped,
}

impl Watches {
    /// Deadlines for timeouts of at least `shortest_timeout_ms`.
    pub(crate) fn new(shortest_timeout_ms: u64) -> Self {
        let tick_ms = (shortest_timeout_ms / TICKS_PER_TIMEOUT).clamp(TICK_MS_MIN, TICK_MS_MAX);
        Watches {
            epoch: Instant::now(),
            tick: Duration::from_millis(tick_ms),
            stopping: AtomicBool::new(false),
            state: Mutex::new(Registry::default()),
            arrived: event_listener::Event::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `at` in ms after the epoch, rounded up so a deadline never fires early.
    fn ms(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.epoch);
        let ms = since.as_millis() as u64;
        ms + u64::from(!since.subsec_nanos().is_multiple_of(1_000_000))
    }

    /// Registers a connection; it is unregistered when the guard drops.
    pub(crate) fn register(&self) -> Registered<'_> {
        let watch = Arc::new(Watch {
            deadline_ms: AtomicU64::new(NONE),
            fired_ms: AtomicU64::new(NONE),
            stoppable: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        let id = {
            let mut registry = self.lock();
            let id = registry.next_id;
            registry.next_id += 1;
            registry.watches.insert(id, watch.clone());
            id
        };
        self.arrived.notify(1);
        Registered {
            watches: self,
            id,
            watch,
        }
    }

    /// Whether shutdown has begun.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Begins shutdown: every stoppable wait ends now and later ones at once.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let watches: Vec<Arc<Watch>> = self.lock().watches.values().cloned().collect();
        for watch in watches {
            watch.wake();
        }
    }

    /// Wakes connections whose deadline passed, every tick, forever.
    pub(crate) async fn sweep(&self) {
        let mut watches = Vec::new();
        loop {
            let listener = self.arrived.listen();
            if self.lock().watches.is_empty() {
                // No connection: sleep until one arrives, not every tick.
                listener.await;
                continue;
            }
            drop(listener);
            smol::Timer::after(self.tick).await;
            let now = self.ms(Instant::now());
            watches.extend(self.lock().watches.values().cloned());
            for watch in watches.drain(..) {
                let deadline = watch.deadline_ms.load(Ordering::Acquire);
                if deadline <= now && watch.fired_ms.load(Ordering::Acquire) != deadline {
                    watch.fired_ms.store(deadline, Ordering::Release);
                    watch.wake();
                }
            }
        }
    }
}

impl Watch {
    fn wake(&self) {
        let waker = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A registered connection.
pub(crate) struct Registered<'a> {
    watches: &'a Watches,
    id: u64,
    watch: Arc<Watch>,
}

impl Registered<'_> {
    /// Runs `io` until it completes, `deadline` passes, or (if `stoppable`)
    /// shutdown begins.
    pub(crate) async fn by<T>(
        &self,
        deadline: Instant,
        stoppable: bool,
        io: impl Future<Output = T>,
    ) -> Result<T, Cut> {
        let watch = &self.watch;
        watch
            .deadline_ms
            .store(self.watches.ms(deadline), Ordering::Release);
        watch.stoppable.store(stoppable, Ordering::Release);
        let cut = CutFuture { registered: self };
        let outcome = smol::future::or(async { Ok(io.await) }, async { Err(cut.await) }).await;
        watch.deadline_ms.store(NONE, Ordering::Release);
        outcome
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.watches.lock().watches.remove(&self.id);
    }
}

/// Ready once the current wait is cut.
struct CutFuture<'a, 'b> {
    registered: &'a Registered<'b>,
}

impl Future for CutFuture<'_, '_> {
    type Output = Cut;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Cut> {
        let (watches, watch) = (self.registered.watches, &self.registered.watch);
        let check = || {
            let deadline = watch.deadline_ms.load(Ordering::Acquire);
            if deadline != NONE && watch.fired_ms.load(Ordering::Acquire) == deadline {
                Some(Cut::Expired)
            } else if watch.stoppable.load(Ordering::Acquire) && watches.stopping() {
                Some(Cut::Stopped)
            } else {
                None
            }
        };
        if let Some(cut) = check() {
            return Poll::Ready(cut);
        }
        {
            let mut waker = watch.waker.lock().unwrap_or_else(|p| p.into_inner());
            match &*waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
        }
        // Checked again: the sweeper or `stop` may have run before the waker
        // was stored.
        match check() {
            Some(cut) => Poll::Ready(cut),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_fires_after_it_passed_and_not_before() {
        let watches = Watches::new(50);
        smol::block_on(smol::future::or(
            async {
                watches.sweep().await;
            },
            async {
                let connection = watches.register();
                let start = Instant::now();
                let deadline = start + Duration::from_millis(30);
                let cut = connection
                    .by(deadline, false, smol::future::pending::<()>())
                    .await;
                assert_eq!(cut, Err(Cut::Expired));
                assert!(Instant::now() >= deadline);
                // Completing work is not cut, and an old firing does not
                // cut a later wait.
                let later = Instant::now() + Duration::from_secs(60);
                assert_eq!(connection.by(later, true, async { 7 }).await, Ok(7));
                watches.stop();
                let cut = connection
                    .by(later, true, smol::future::pending::<()>())
                    .await;
                assert_eq!(cut, Err(Cut::Stopped));
            },
        ));
    }
}
