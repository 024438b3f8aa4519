//! The edge's cluster backend: writes go to the master, reads to a healthy
//! worker (round robin), with read-your-writes by seq and a fallback to the
//! master when no worker can answer.

mod answers;
mod backup;
mod cas;
mod compact;
mod leader;
mod members;
mod metrics;
use answers::{client_fault, to_error};
pub use leader::{ANSWER_LATE_MS, LEADER_WAIT_MS, MEMBER_WATCH_MS};
pub use members::MEMBER_CHANGE_WAIT_MS;
pub use refresh::MEMBERS_LEARN_MS;
mod refresh;
mod watch;

use crate::http::{Backend, BackendError, Consistency, Entry, History, ScanPage, Version};
use crate::peer::Peer;
use crate::wire;
use hypha_net::{CompactInfo, ErrorCode, Message};
#[cfg(not(target_has_atomic = "64"))]
use portable_atomic::AtomicU64;
use serde_json::json;
use std::net::SocketAddr;
#[cfg(target_has_atomic = "64")]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use crate::mux::REQUEST_TIMEOUT_MS;
pub use crate::peer::RETRY_AFTER_MS;
/// How long `POST /admin/compact` waits for one node's compaction.
pub const COMPACT_TIMEOUT_MS: u64 = 600_000;

/// How to run the edge's backend.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    /// The master (in a failover group: the member tried first).
    pub master: SocketAddr,
    /// A failover group's members (`--members`), empty for fixed roles:
    /// writes go to whichever leads, reads to any of them.
    pub members: Vec<SocketAddr>,
    /// Workers known up front (more are learned from the master).
    pub workers: Vec<SocketAddr>,
    /// Cluster name.
    pub cluster: String,
    /// Largest value accepted.
    pub value_bytes_max: usize,
    /// How often the worker list is refreshed from the master.
    pub refresh_ms: u64,
    /// Workers more than this many records behind the master are skipped
    /// (unless nothing else can answer).
    pub lag_records_max: u64,
    /// The cluster keys every node connection must prove.
    pub keys: wire::Keys,
}

/// How long `/status` waits for fresh figures from the master before it
/// answers with what the edge last knew (a silent master must not hold an
/// operator's `curl /status` for seconds).
pub const STATUS_REFRESH_WAIT_MS: u64 = 500;

/// The backend behind the HTTP edge.
pub struct Edge {
    cfg: EdgeConfig,
    /// The master, or the member believed to lead.
    master: Mutex<Arc<Peer>>,
    /// A failover group's members (empty for fixed roles): the `--members`
    /// given, then the group's member list as its members tell it.
    members: Mutex<Vec<Arc<Peer>>>,
    /// The member list last learned from the members (`/status`).
    list: Mutex<Option<hypha_net::Membership>>,
    workers: Mutex<Vec<Arc<Peer>>>,
    next: AtomicUsize,
    req_ids: AtomicU64,
    /// Times the edge saw another member lead (failover groups), the
    /// member it found leading last, and how often that was set.
    leader_changes: AtomicU64,
    leading: Mutex<Option<SocketAddr>>,
    leader_found: AtomicU64,
    /// Notified when the edge starts sending writes to another member.
    leader_moved: event_listener::Event,
    /// Highest seq this edge acknowledged: reads never go below it.
    written_seq: AtomicU64,
    /// Why the master last refused a write for its storage (a full disk:
    /// the space it needs), until a write goes through.
    storage_refusal: Mutex<Option<String>>,
    /// Highest seq this edge knows a failover group committed (its
    /// acknowledged writes, leaders' welcomes): a retried write's search
    /// for its first attempt starts after it.
    committed_seq: AtomicU64,
    master_seq: AtomicU64,
    /// Each node's compaction counters as of the last refresh, for /metrics.
    compaction: Mutex<Vec<(SocketAddr, CompactInfo)>>,
    /// A connection per worker for watches only (`edge/watch.rs`).
    watch_peers: Mutex<std::collections::HashMap<SocketAddr, Arc<Peer>>>,
}

impl Edge {
    /// A backend; call [`Edge::refresh_loop`] to learn workers from the master.
    pub fn new(cfg: EdgeConfig) -> Arc<Edge> {
        let members: Vec<Arc<Peer>> = cfg.members.iter().map(|&a| Peer::new(a)).collect();
        // Every member serves reads; the one leading also takes writes.
        let workers = match members.is_empty() {
            true => cfg.workers.iter().map(|&a| Peer::new(a)).collect(),
            false => members.clone(),
        };
        let master = members
            .iter()
            .find(|p| p.addr == cfg.master)
            .cloned()
            .unwrap_or_else(|| Peer::new(cfg.master));
        Arc::new(Edge {
            master: Mutex::new(master),
            members: Mutex::new(members),
            list: Mutex::new(None),
            leader_changes: AtomicU64::new(0),
            leading: Mutex::new(None),
            leader_found: AtomicU64::new(0),
            leader_moved: event_listener::Event::new(),
            workers: Mutex::new(workers),
            next: AtomicUsize::new(0),
            req_ids: AtomicU64::new(1),
            written_seq: AtomicU64::new(0),
            storage_refusal: Mutex::new(None),
            committed_seq: AtomicU64::new(0),
            master_seq: AtomicU64::new(0),
            compaction: Mutex::new(Vec::new()),
            watch_peers: Mutex::default(),
            cfg,
        })
    }

    /// The master, or the member believed to lead.
    fn master(&self) -> Arc<Peer> {
        self.master
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn call(&self, peer: &Peer, m: &Message) -> std::io::Result<Message> {
        peer.call(&self.cfg.cluster, &self.cfg.keys, m).await
    }

    fn req_id(&self) -> u64 {
        self.req_ids.fetch_add(1, Ordering::Relaxed)
    }

    fn candidates(&self, min_seq: u64) -> Vec<Arc<Peer>> {
        let master_seq = self.master_seq.load(Ordering::Relaxed);
        let list = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let n = list.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut out: Vec<Arc<Peer>> = (0..n)
            .map(|i| &list[(start + i) % n])
            .filter(|p| {
                p.usable()
                    && master_seq.saturating_sub(p.applied_seq.load(Ordering::Relaxed))
                        <= self.cfg.lag_records_max
            })
            .cloned()
            .collect();
        drop(list);
        // Those answering first (a partitioned member's calls hang until
        // they time out), then those known to have applied min_seq.
        // Keyed once per peer: `responsive` locks the peer's connection.
        out.sort_by_cached_key(|p| {
            let late = self.failover() && !p.responsive(ANSWER_LATE_MS);
            (late, p.applied_seq.load(Ordering::Relaxed) < min_seq)
        });
        out
    }

    /// Sends a read to a worker that can answer at `min_seq`, falling back to
    /// the master.
    async fn read(
        &self,
        c: Consistency,
        make: impl Fn(u64, u64) -> Message,
    ) -> Result<Message, BackendError> {
        client_fault(&make(0, 0))?;
        let min_seq = match c {
            Consistency::Any => 0,
            Consistency::ReadYourWrites => self.written_seq.load(Ordering::Acquire),
            Consistency::Linearizable if self.failover() => {
                return self
                    .linearizable_read(&make(self.req_id(), hypha_net::MIN_SEQ_LINEARIZABLE))
                    .await;
            }
            Consistency::Linearizable => {
                match self.call(&self.master(), &Message::Digest { req_id: self.req_id() }).await {
                    Ok(Message::DigestIs { seq, .. }) => seq,
                    _ => {
                        return Err(BackendError::Unavailable(format!(
                            "consistency=linearizable needs the master's commit seq and the master at {} is \
                             unreachable; use consistency=ryw or any",
                            self.master().addr
                        )))
                    }
                }
            }
        };
        for peer in self.candidates(min_seq) {
            match self.call(&peer, &make(self.req_id(), min_seq)).await {
                Ok(Message::Error {
                    code: ErrorCode::Timeout | ErrorCode::Unavailable,
                    ..
                })
                | Err(_) => continue,
                Ok(answer) => {
                    if let Some(seq) = applied_of(&answer) {
                        peer.applied_seq.fetch_max(seq, Ordering::Relaxed);
                    }
                    return Ok(answer);
                }
            }
        }
        self.call(&self.master(), &make(self.req_id(), min_seq))
            .await
            .map_err(|e| {
                BackendError::Unavailable(format!(
                    "no worker could answer and the master at {} is unreachable: {e}",
                    self.master().addr
                ))
            })
    }

    async fn write(&self, m: Message) -> Result<Message, BackendError> {
        client_fault(&m)?;
        let answer = if !self.failover() {
            self.call(&self.master(), &m).await.map_err(|e| {
                BackendError::Unavailable(format!(
                    "the master at {} is unreachable ({e}); writes are refused until it is back, reads keep working",
                    self.cfg.master
                ))
            })?
        } else {
            self.write_to_leader(&m).await?
        };
        let seq = match &answer {
            Message::Written { seq, .. } => Some(*seq),
            Message::Deleted { seq, .. } => *seq,
            Message::TxnFailed { seq, .. } => Some(*seq),
            _ => None,
        };
        if let Some(seq) = seq {
            self.written_seq.fetch_max(seq, Ordering::AcqRel);
            self.master_seq.fetch_max(seq, Ordering::Relaxed);
        }
        answers::note_storage(&self.storage_refusal, &answer, seq.is_some());
        Ok(answer)
    }

    async fn node_digest(&self, peer: &Peer) -> serde_json::Value {
        match self
            .call(
                peer,
                &Message::Digest {
                    req_id: self.req_id(),
                },
            )
            .await
        {
            Ok(Message::DigestIs {
                digest, seq, len, ..
            }) => {
                json!({"addr": peer.addr.to_string(), "digest": format!("{digest:016x}"), "seq": seq, "keys": len})
            }
            Ok(Message::Error { code, message, .. }) => {
                json!({"addr": peer.addr.to_string(), "error": format!("{code:?}: {message}")})
            }
            Ok(other) => {
                json!({"addr": peer.addr.to_string(), "error": format!("unexpected {}", other.name())})
            }
            Err(e) => json!({"addr": peer.addr.to_string(), "error": e.to_string()}),
        }
    }

    fn worker_list(&self) -> Vec<Arc<Peer>> {
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn applied_of(m: &Message) -> Option<u64> {
    match m {
        Message::Value { applied_seq, .. }
        | Message::Versions { applied_seq, .. }
        | Message::ScanPage { applied_seq, .. } => Some(*applied_seq),
        _ => None,
    }
}

impl Backend for Edge {
    async fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<u64, BackendError> {
        match self
            .write(Message::Put {
                req_id: self.req_id(),
                key,
                value,
            })
            .await?
        {
            Message::Written { seq, .. } => Ok(seq),
            other => Err(to_error(other)),
        }
    }

    async fn delete(&self, key: Vec<u8>) -> Result<Option<u64>, BackendError> {
        match self
            .write(Message::Delete {
                req_id: self.req_id(),
                key,
            })
            .await?
        {
            Message::Deleted { seq, .. } => Ok(seq),
            other => Err(to_error(other)),
        }
    }

    async fn put_if(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        expect: hypha_net::Expect,
    ) -> Result<Result<u64, Option<u64>>, BackendError> {
        self.cas_put(key, value, expect).await
    }

    async fn delete_if(
        &self,
        key: Vec<u8>,
        expect: hypha_net::Expect,
    ) -> Result<Result<Option<u64>, Option<u64>>, BackendError> {
        self.cas_delete(key, expect).await
    }

    async fn txn(&self, txn: hypha_net::Txn) -> Result<crate::http::TxnAnswer, BackendError> {
        self.send_txn(txn).await
    }

    async fn backup(
        &self,
        ask: crate::http::BackupAsk,
    ) -> Result<crate::http::BackupAnswer, BackendError> {
        self.backup_page(ask).await
    }

    async fn watch(
        &self,
        prefix: Vec<u8>,
        after: Option<u64>,
        values: bool,
        wait_ms: u32,
    ) -> Result<crate::http::WatchPage, BackendError> {
        self.watch_page(prefix, after, values, wait_ms).await
    }

    async fn get(&self, key: Vec<u8>, c: Consistency) -> Result<Option<Entry>, BackendError> {
        Ok(self.get_at(key, c).await?.0)
    }

    async fn get_at(
        &self,
        key: Vec<u8>,
        c: Consistency,
    ) -> Result<(Option<Entry>, u64), BackendError> {
        let make = |req_id, min_seq| Message::Get {
            req_id,
            key: key.clone(),
            min_seq,
        };
        match self.read(c, make).await? {
            Message::Value {
                value, applied_seq, ..
            } => Ok((value.map(|(seq, value)| Entry { value, seq }), applied_seq)),
            other => Err(to_error(other)),
        }
    }

    async fn history(
        &self,
        key: Vec<u8>,
        depth: u32,
        c: Consistency,
    ) -> Result<History, BackendError> {
        let depth = depth.min(hypha_net::HISTORY_DEPTH_MAX as u32);
        match self
            .read(c, |req_id, min_seq| Message::History {
                req_id,
                key: key.clone(),
                depth,
                min_seq,
            })
            .await?
        {
            Message::Versions {
                versions,
                omitted,
                applied_seq,
                ..
            } => Ok(History {
                applied_seq,
                versions: versions
                    .into_iter()
                    .map(|v| Version {
                        seq: v.seq,
                        value: v.value,
                    })
                    .collect(),
                omitted,
            }),
            other => Err(to_error(other)),
        }
    }

    async fn scan(
        &self,
        cursor: u64,
        prefix: Vec<u8>,
        limit: u32,
        c: Consistency,
    ) -> Result<ScanPage, BackendError> {
        let limit = limit.min(hypha_net::SCAN_LIMIT_MAX as u32);
        let make = |req_id, min_seq| Message::Scan {
            req_id,
            cursor,
            prefix: prefix.clone(),
            limit,
            min_seq,
        };
        match self.read(c, make).await? {
            Message::ScanPage {
                keys,
                next_cursor,
                applied_seq,
                ..
            } => Ok(ScanPage {
                keys,
                next_cursor,
                applied_seq,
            }),
            other => Err(to_error(other)),
        }
    }

    async fn digest(&self) -> Result<serde_json::Value, BackendError> {
        let master = self.node_digest(&self.master()).await;
        let mut workers = Vec::new();
        for w in self.worker_list() {
            workers.push(self.node_digest(&w).await);
        }
        Ok(json!({"master": master, "workers": workers}))
    }

    async fn status(&self) -> serde_json::Value {
        // A silent master would hold the answer for two request timeouts;
        // the refresh loop keeps what is shown fresh meanwhile.
        let wait = std::time::Duration::from_millis(STATUS_REFRESH_WAIT_MS);
        smol::future::or(self.refresh(), async {
            smol::Timer::after(wait).await;
        })
        .await;
        let master_seq = self.master_seq.load(Ordering::Relaxed);
        let master = self.master();
        let workers: Vec<_> = self
            .worker_list()
            .iter()
            .map(|w| {
                let mut applied = w.applied_seq.load(Ordering::Relaxed);
                if w.addr == master.addr {
                    // A group's leader: reads seldom go there.
                    applied = applied.max(master_seq);
                }
                json!({
                    "addr": w.addr.to_string(),
                    "healthy": w.usable(),
                    "applied_seq": applied,
                    "lag": master_seq.saturating_sub(applied),
                })
            })
            .collect();
        let mut doc = json!({
            "role": "edge",
            "master": {"addr": master.addr.to_string(), "healthy": master.usable(), "seq": master_seq},
            "workers": workers,
            "written_seq": self.written_seq.load(Ordering::Relaxed),
        });
        doc["master"]["storage_error"] = json!(*self
            .storage_refusal
            .lock()
            .unwrap_or_else(|p| p.into_inner()));
        if self.failover() {
            doc["members"] = self.member_status(master_seq);
            doc["leader"] = json!(self.reachable_leader().map(|a| a.to_string()));
            doc["leader_changes"] = json!(self.leader_changes.load(Ordering::Relaxed));
        }
        doc
    }

    fn metrics(&self, out: &mut String) {
        self.render_metrics(out);
    }

    fn stale(&self) -> bool {
        self.failover() && self.reachable_leader().is_none()
    }

    fn value_bytes_max(&self) -> usize {
        self.cfg.value_bytes_max
    }

    async fn members(
        &self,
        change: Option<hypha_net::MemberChange>,
    ) -> Result<serde_json::Value, BackendError> {
        self.change_members(change).await
    }

    async fn compact(&self) -> Result<serde_json::Value, BackendError> {
        let master = self.compact_node(self.master().addr).await;
        let mut workers = Vec::new();
        for w in self.worker_list() {
            workers.push(self.compact_node(w.addr).await);
        }
        Ok(json!({"master": master, "workers": workers}))
    }
}
