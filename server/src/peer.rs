//! One node as the edge sees it: its health, how far it has applied, and
//! its multiplexed request connection.

use crate::mux::Mux;
use crate::wire;
use hypha_net::{Message, Purpose, Role};
#[cfg(not(target_has_atomic = "64"))]
use portable_atomic::AtomicU64;
use std::net::SocketAddr;
#[cfg(target_has_atomic = "64")]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// A node that failed is skipped for this long.
pub const RETRY_AFTER_MS: u64 = 1_000;

/// Why a call failed.
pub(crate) enum CallFailed {
    /// No connection: the request never left.
    NotSent(std::io::Error),
    /// The connection failed with the request sent or queued: the node may
    /// have acted on it.
    Lost(std::io::Error),
}

/// One node the edge talks to.
pub struct Peer {
    /// Its request address.
    pub addr: SocketAddr,
    mux: Mutex<Option<Arc<Mux>>>,
    /// Held while connecting, so concurrent callers share one attempt.
    connecting: smol::lock::Mutex<()>,
    /// The last failed connection attempt: when, and why.
    connect_failed: Mutex<Option<(Instant, std::io::ErrorKind, String)>>,
    pub(crate) healthy: AtomicBool,
    /// When a call last failed, in ms after [`epoch`] plus one; 0 when the
    /// last call succeeded.
    failed_at_ms: AtomicU64,
    pub(crate) applied_seq: AtomicU64,
}

/// The clock of `failed_at_ms`.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

impl Peer {
    /// A node at `addr`, not connected yet.
    pub(crate) fn new(addr: SocketAddr) -> Arc<Peer> {
        Arc::new(Peer {
            addr,
            mux: Mutex::new(None),
            connecting: smol::lock::Mutex::new(()),
            connect_failed: Mutex::new(None),
            healthy: AtomicBool::new(true),
            failed_at_ms: AtomicU64::new(0),
            applied_seq: AtomicU64::new(0),
        })
    }

    /// Healthy, and no call failed in the last [`RETRY_AFTER_MS`].
    pub(crate) fn usable(&self) -> bool {
        let failed = self.failed_at_ms.load(Ordering::Relaxed);
        self.healthy.load(Ordering::Relaxed)
            && (failed == 0 || now_ms().saturating_sub(failed) > RETRY_AFTER_MS)
    }

    /// Connected, and no call waited for its answer longer than `late_ms`.
    pub(crate) fn responsive(&self, late_ms: u64) -> bool {
        self.current()
            .is_some_and(|mux| mux.oldest_wait() <= std::time::Duration::from_millis(late_ms))
    }

    /// Sends `m` (connecting first if needed) and waits for the answer.
    pub(crate) async fn call(
        &self,
        cluster: &str,
        keys: &wire::Keys,
        m: &Message,
    ) -> std::io::Result<Message> {
        self.call_tracked(cluster, keys, m)
            .await
            .map_err(|e| match e {
                CallFailed::NotSent(e) | CallFailed::Lost(e) => e,
            })
    }

    /// [`Peer::call`] that says whether a failed request may have reached
    /// the node (a write then may or may not have been applied).
    pub(crate) async fn call_tracked(
        &self,
        cluster: &str,
        keys: &wire::Keys,
        m: &Message,
    ) -> Result<Message, CallFailed> {
        let result = match self.mux(cluster, keys).await {
            Ok(mux) => mux.call(m).await.map_err(CallFailed::Lost),
            Err(e) => Err(CallFailed::NotSent(e)),
        };
        let failed = match &result {
            // A request that could not be encoded is the caller's mistake,
            // not the node's: it stays usable.
            Ok(_) => 0,
            Err(CallFailed::NotSent(e) | CallFailed::Lost(e))
                if e.kind() == std::io::ErrorKind::InvalidInput =>
            {
                return result
            }
            Err(_) => now_ms(),
        };
        if self.failed_at_ms.load(Ordering::Relaxed) != failed {
            self.failed_at_ms.store(failed, Ordering::Relaxed);
        }
        result
    }

    /// The live connection, or a new one. Callers that queue up behind a
    /// failing attempt get its error instead of trying again one by one.
    async fn mux(&self, cluster: &str, keys: &wire::Keys) -> std::io::Result<Arc<Mux>> {
        if let Some(mux) = self.current() {
            return Ok(mux);
        }
        let queued = Instant::now();
        let _connecting = self.connecting.lock().await;
        if let Some(mux) = self.current() {
            return Ok(mux);
        }
        if let Some(e) = self.failed_since(queued) {
            return Err(e);
        }
        let hello = wire::hello(cluster, Role::Edge, 0, Purpose::Request)?;
        match Mux::connect(self.addr, hello, &wire::current_keys(keys)).await {
            Ok(mux) => {
                *self.mux.lock().unwrap_or_else(|p| p.into_inner()) = Some(mux.clone());
                Ok(mux)
            }
            Err(e) => {
                let why = format!("cannot connect to {}: {e}", self.addr);
                let mut failed = self
                    .connect_failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                *failed = Some((Instant::now(), e.kind(), why.clone()));
                Err(std::io::Error::new(e.kind(), why))
            }
        }
    }

    /// The error of a connection attempt that failed after `since`.
    fn failed_since(&self, since: Instant) -> Option<std::io::Error> {
        let failed = self
            .connect_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match &*failed {
            Some((at, kind, why)) if *at >= since => Some(std::io::Error::new(*kind, why.clone())),
            _ => None,
        }
    }
}

impl Peer {
    /// The term this node said it leads in when it welcomed the live
    /// connection (`None`: not connected, or it does not lead).
    pub(crate) fn leads(&self) -> Option<u64> {
        let (role, term) = self.welcome()?;
        (role == hypha_net::Role::Master).then_some(term)
    }

    /// The role and term this node gave when it welcomed the live
    /// connection (`None`: not connected).
    pub(crate) fn welcome(&self) -> Option<(hypha_net::Role, u64)> {
        Some(self.current()?.welcome)
    }

    /// The seq this node said was committed when it welcomed the live
    /// connection.
    pub(crate) fn welcome_commit(&self) -> Option<u64> {
        Some(self.current()?.commit_seq)
    }

    fn current(&self) -> Option<Arc<Mux>> {
        let mux = self.mux.lock().unwrap_or_else(|p| p.into_inner());
        mux.as_ref().filter(|m| !m.is_failed()).cloned()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mux) = self.mux.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            mux.close();
        }
    }
}
