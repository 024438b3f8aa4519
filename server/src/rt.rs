//! Where the nodes' tasks run: on the executor the binary installed with
//! [`install`] (the thread that runs the roles), or on smol's global
//! executor when none was installed (tests, embedders).
//!
//! Keeping every task of a process on one executor thread means a task
//! woken by another task of the same process is only queued: no other
//! thread has to be woken, which on loopback costs more than the work.

use smol::{Executor, Task};
use std::future::Future;
use std::sync::{Arc, OnceLock};

static EXECUTOR: OnceLock<Arc<Executor<'static>>> = OnceLock::new();

/// Makes [`spawn`] use `executor` from now on; the first call wins.
pub fn install(executor: Arc<Executor<'static>>) {
    let _ = EXECUTOR.set(executor);
}

/// The installed executor, if any.
pub fn executor() -> Option<Arc<Executor<'static>>> {
    EXECUTOR.get().cloned()
}

/// Spawns `future` on the installed executor, or on smol's global one.
pub fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Task<T> {
    match EXECUTOR.get() {
        Some(executor) => executor.spawn(future),
        None => smol::spawn(future),
    }
}
