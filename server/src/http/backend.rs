//! The seam between the HTTP layer and the cluster: everything a route needs
//! from storage goes through [`Backend`].
//!
//! The edge plugs in the real master/worker backend; tests use
//! [`MemBackend`](super::mem::MemBackend). Keys and values are raw bytes end to
//! end: the HTTP layer never assumes UTF-8.

use core::fmt;
use core::future::Future;

/// How fresh a read must be. Chosen per request with `?consistency=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Consistency {
    /// The read sees every write this edge acknowledged before it (`ryw`, the default).
    #[default]
    ReadYourWrites,
    /// The read sees every write acknowledged anywhere before it (`linearizable`).
    Linearizable,
    /// Any replica's current state, however stale (`any`).
    Any,
}

impl Consistency {
    /// Parses the `consistency` query value: `ryw`, `linearizable` or `any`.
    pub fn from_query(value: &[u8]) -> Option<Self> {
        match value {
            b"ryw" => Some(Consistency::ReadYourWrites),
            b"linearizable" => Some(Consistency::Linearizable),
            b"any" => Some(Consistency::Any),
            _ => None,
        }
    }
}

/// The live version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// Sequence number of the write that stored this version.
    pub seq: u64,
}

/// One version in a key's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Sequence number of the write (or delete) that made this version.
    pub seq: u64,
    /// The value; `None` when this version is a delete.
    pub value: Option<Vec<u8>>,
}

/// The versions of a key that one answer carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Newest first; deletes included.
    pub versions: Vec<Version>,
    /// Older versions within the requested depth that did not fit one
    /// answer (the wire's `BATCH_BYTES_MAX` rule: about 1 MiB of values
    /// plus one more).
    pub omitted: u32,
    /// The store's seq when it was read (`X-Hypha-Seq`).
    pub applied_seq: u64,
}

/// One page of a key scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Live keys in insertion order (see [`Backend::scan`]).
    pub keys: Vec<Vec<u8>>,
    /// Cursor for the next page; `None` when the scan is complete.
    pub next_cursor: Option<u64>,
    /// The store's seq when it was read (`X-Hypha-Seq`).
    pub applied_seq: u64,
}

/// Why a backend call failed. Each variant maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendError {
    /// No master or worker can serve the request now (503).
    Unavailable(String),
    /// A key or value is over a storage limit (413).
    TooLarge(String),
    /// The request is invalid for storage, e.g. an empty or oversized key (400).
    BadRequest(String),
    /// The cluster did not answer in time (504).
    Timeout(String),
    /// The store refuses writes, e.g. the disk is full or this node is a worker (503).
    ReadOnly(String),
    /// Fewer workers than required confirmed a write (503).
    SyncFailed {
        /// Workers that confirmed.
        confirmed: u32,
        /// Workers that had to confirm.
        wanted: u32,
    },
    /// A bug or an unexpected storage failure (500).
    Internal(String),
    /// A watch's cursor is older than what the nodes' logs still hold (410).
    Compacted {
        /// The earliest cursor they can serve.
        earliest: u64,
        /// Why.
        why: String,
    },
}

impl BackendError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            BackendError::Unavailable(_)
            | BackendError::ReadOnly(_)
            | BackendError::SyncFailed { .. } => 503,
            BackendError::TooLarge(_) => 413,
            BackendError::BadRequest(_) => 400,
            BackendError::Timeout(_) => 504,
            BackendError::Internal(_) => 500,
            BackendError::Compacted { .. } => 410,
        }
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Unavailable(why) => {
                write!(f, "storage is unavailable: {why}; retry later")
            }
            BackendError::TooLarge(why) | BackendError::BadRequest(why) => f.write_str(why),
            BackendError::Timeout(why) => write!(f, "storage timed out: {why}; retry later"),
            BackendError::ReadOnly(why) => write!(f, "storage is read-only: {why}"),
            BackendError::SyncFailed { confirmed, wanted } => write!(
                f,
                "only {confirmed} of {wanted} workers confirmed the write; \
                 it may not be replicated, retry it"
            ),
            BackendError::Internal(why) => write!(f, "internal error: {why}"),
            BackendError::Compacted { why, .. } => f.write_str(why),
        }
    }
}

impl std::error::Error for BackendError {}

/// A page of a watch: the events, and the cursor after them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchPage {
    /// The next cursor: every write up to here was examined.
    pub upto: u64,
    /// The events, in seq order.
    pub events: Vec<hypha_net::WatchEvent>,
}

/// Which page of a backup to read (`GET /admin/backup`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackupAsk {
    /// The node that served the first page (`None`: the first page, any reader).
    pub node: Option<String>,
    /// The seq the copy is of (`None`: the first page, the node's seq now).
    pub upto: Option<u64>,
    /// Resume after this record's seq.
    pub after: u64,
    /// The first page's generation (`None` on the first page).
    pub generation: Option<u64>,
}

/// A page of a backup and the node that read it (every later page must
/// come from the same node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupAnswer {
    /// The node's address.
    pub node: String,
    /// The page.
    pub page: hypha_net::BackupPage,
}

/// What a transaction came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnAnswer {
    /// Every condition held; the writes are applied at or before `seq`
    /// (the batch's last record, or the store's seq if nothing was written).
    Applied {
        /// The seq.
        seq: u64,
    },
    /// A condition failed; nothing was written.
    Failed {
        /// The store's seq when the conditions were checked.
        seq: u64,
        /// Indexes of the failed conditions.
        failed: Vec<u32>,
        /// The reads asked for, as of `seq`: `(seq, value)` or absent.
        reads: Vec<Option<(u64, Vec<u8>)>>,
    },
}

/// Storage as the HTTP routes see it. Every method is one request's worth of work;
/// implementations must not block the executor (run blocking I/O with
/// `smol::unblock`).
pub trait Backend: Send + Sync + 'static {
    /// Stores `value` under `key`; returns the write's sequence number.
    fn put(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<u64, BackendError>> + Send;

    /// Deletes `key`; returns the delete's sequence number, or `None` if the key was absent.
    fn delete(
        &self,
        key: Vec<u8>,
    ) -> impl Future<Output = Result<Option<u64>, BackendError>> + Send;

    /// Stores `value` under `key` only if `key` is as `expect` says
    /// (compare-and-swap, decided where writes are ordered): `Ok(Ok(seq))`
    /// when written, `Ok(Err(current))` when not, with the key's live seq
    /// (`None`: absent).
    fn put_if(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        expect: hypha_net::Expect,
    ) -> impl Future<Output = Result<Result<u64, Option<u64>>, BackendError>> + Send {
        let _ = (key, value, expect);
        async {
            Err(BackendError::BadRequest(
                "this backend has no conditional writes".into(),
            ))
        }
    }

    /// Deletes `key` only if it is as `expect` says (see [`Backend::put_if`]).
    fn delete_if(
        &self,
        key: Vec<u8>,
        expect: hypha_net::Expect,
    ) -> impl Future<Output = Result<Result<Option<u64>, Option<u64>>, BackendError>> + Send {
        let _ = (key, expect);
        async {
            Err(BackendError::BadRequest(
                "this backend has no conditional writes".into(),
            ))
        }
    }

    /// Runs a transaction where writes are ordered: its writes as one
    /// atomic batch if every condition holds, else its reads.
    fn txn(
        &self,
        txn: hypha_net::Txn,
    ) -> impl Future<Output = Result<TxnAnswer, BackendError>> + Send {
        let _ = txn;
        async {
            Err(BackendError::BadRequest(
                "this backend has no transactions".into(),
            ))
        }
    }

    /// A page of a consistent copy of the live keys (`GET /admin/backup`).
    fn backup(
        &self,
        ask: BackupAsk,
    ) -> impl Future<Output = Result<BackupAnswer, BackendError>> + Send {
        let _ = ask;
        async {
            Err(BackendError::BadRequest(
                "this backend has no backups".into(),
            ))
        }
    }

    /// The changes under `prefix` after cursor `after` (`None`: from now),
    /// waiting at most `wait_ms` for a first one; `Compacted` when the
    /// cursor is older than what the nodes hold.
    fn watch(
        &self,
        prefix: Vec<u8>,
        after: Option<u64>,
        values: bool,
        wait_ms: u32,
    ) -> impl Future<Output = Result<WatchPage, BackendError>> + Send {
        let _ = (prefix, after, values, wait_ms);
        async {
            Err(BackendError::BadRequest(
                "this backend has no watches".into(),
            ))
        }
    }

    /// Reads the live version of `key`, or `None` if absent.
    fn get(
        &self,
        key: Vec<u8>,
        c: Consistency,
    ) -> impl Future<Output = Result<Option<Entry>, BackendError>> + Send;

    /// [`Backend::get`] with the store's seq when it was read (0: not
    /// known), for `X-Hypha-Seq`.
    fn get_at(
        &self,
        key: Vec<u8>,
        c: Consistency,
    ) -> impl Future<Output = Result<(Option<Entry>, u64), BackendError>> + Send {
        async move { Ok((self.get(key, c).await?, 0)) }
    }

    /// Up to `depth` versions of `key`, newest first, deletes included: as
    /// many as one answer carries, and how many more there were.
    fn history(
        &self,
        key: Vec<u8>,
        depth: u32,
        c: Consistency,
    ) -> impl Future<Output = Result<History, BackendError>> + Send;

    /// Up to `limit` live keys starting with `prefix`, from `cursor` (0
    /// starts a scan; later values come from [`ScanPage::next_cursor`]).
    ///
    /// Keys come in insertion order: the order in which each key was first
    /// written (the engine's ids), not byte order. Cursors stay valid while
    /// keys are written: a key first written after a scan started appears at
    /// its end. A page may hold fewer than `limit` keys (even none) while
    /// `next_cursor` is `Some`: follow the cursor until it is `None`.
    fn scan(
        &self,
        cursor: u64,
        prefix: Vec<u8>,
        limit: u32,
        c: Consistency,
    ) -> impl Future<Output = Result<ScanPage, BackendError>> + Send;

    /// The whole `/digest` document:
    /// `{"master":{"addr","digest","seq"},"workers":[...]}`.
    fn digest(&self) -> impl Future<Output = Result<serde_json::Value, BackendError>> + Send;

    /// The `/status` document.
    fn status(&self) -> impl Future<Output = serde_json::Value> + Send;

    /// Appends backend gauges (lag, engine sizes) to `out` in Prometheus text format.
    fn metrics(&self, out: &mut String);

    /// Compacts the storage now (`POST /admin/compact`) and describes what
    /// it did. A backend without append-only files has nothing to do.
    fn compact(&self) -> impl Future<Output = Result<serde_json::Value, BackendError>> + Send {
        async { Ok(serde_json::json!({"message": "this backend has nothing to compact"})) }
    }

    /// A failover group's member list (`GET /admin/members`), or the list
    /// after `change` (`POST /admin/members?add=ADDR|remove=ADDR`).
    fn members(
        &self,
        change: Option<hypha_net::MemberChange>,
    ) -> impl Future<Output = Result<serde_json::Value, BackendError>> + Send {
        let _ = change;
        async {
            Err(BackendError::BadRequest(
                "this backend has no member list; member lists belong to failover groups".into(),
            ))
        }
    }

    /// The largest value `put` accepts, in bytes. The HTTP layer refuses larger
    /// bodies with 413 before reading them.
    fn value_bytes_max(&self) -> usize;

    /// Whether reads now may miss writes acknowledged elsewhere beyond what
    /// their consistency allows: a failover group's edge that reaches no
    /// member leading (a partitioned minority). Reads answered then carry
    /// `X-Hypha-Stale: true`.
    fn stale(&self) -> bool {
        false
    }
}
