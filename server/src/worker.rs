//! A worker: follows the master's log (resuming from its own last applied
//! seq, or taking a snapshot when it is new), and answers reads at its
//! applied seq.
//!
//! Data layout under `--data DIR`: `DIR/db` is the database, `DIR/history`
//! the master history it follows, `DIR/snapshot.tmp` a snapshot being
//! received. A snapshot is built beside the old data and swapped in by
//! renames only when complete, so a crash half way leaves the old data.

mod snapshot;

use crate::requests::{answer_read, min_seq, serve_requests, wait_applied, Answer, Me};
use crate::wire::{self, from_wire, refuse, Beats, Keys, Reader};
use hypha_engine::{Db, Fsync, Options};
use hypha_net::{
    Allowlist, ErrorCode, Message, Purpose, RefuseReason, Role, Welcome, PROTOCOL_VERSION,
};
#[cfg(not(target_has_atomic = "64"))]
use portable_atomic::AtomicU64;
use smol::net::{TcpListener, UdpSocket};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
#[cfg(target_has_atomic = "64")]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Wait before reconnecting to the master after a failure.
pub const RECONNECT_MS: u64 = 200;

/// How long a worker holds back the `Ack` of records it applied, so that
/// one `Ack` covers every batch applied meanwhile. A master that waits for
/// acks (`--sync N`) asks for one at once with a `Ping` after the records;
/// otherwise an ack per batch would wake the master on every write just
/// when its client turns to a worker to read.
pub const ACK_DELAY_MS: u64 = 50;
/// Wait before retrying a master that holds another history.
pub const HISTORY_RETRY_MS: u64 = 5_000;
/// How often a snapshot swap checks whether in-flight reads let go of the
/// old database.
const SWAP_POLL_MS: u64 = 1;

/// How to run a worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Data directory.
    pub data: PathBuf,
    /// The master's address.
    pub master: SocketAddr,
    /// Where this worker answers reads (TCP) and sends heartbeats from (UDP).
    pub listen: SocketAddr,
    /// Engine options.
    pub engine: Options,
    /// Peers allowed to connect.
    pub allow: Option<Allowlist>,
    /// Cluster name.
    pub cluster: String,
    /// Replace local data when the master holds another history.
    pub accept_new_history: bool,
    /// Heartbeat interval.
    pub heartbeat_ms: u64,
    /// The master is presumed gone after this long without a heartbeat.
    pub heartbeat_timeout_ms: u64,
    /// The cluster keys every connection must prove (`net/WIRE.md` §4).
    pub keys: Keys,
    /// Most connections open at once (`--max-connections`).
    pub connections_max: usize,
    /// A request connection silent this long is closed.
    pub idle_timeout_ms: u64,
    /// A connection that has not proved the key this long after it was
    /// accepted is closed.
    pub handshake_timeout_ms: u64,
}

impl WorkerConfig {
    /// Engine defaults for a worker: a crash loses at most 200 ms of applied
    /// records, which the master sends again.
    pub fn default_engine() -> Options {
        Options {
            fsync: Fsync::EveryMs(200),
            ..Options::default()
        }
    }
}

/// A running worker.
pub struct Worker {
    cfg: WorkerConfig,
    node_id: u64,
    /// `None` only while a snapshot is swapped in.
    db: RwLock<Option<Arc<Db>>>,
    followed: AtomicU64,
    applied: event_listener::Event,
    master_heard: std::sync::Mutex<Instant>,
    /// The heartbeat keys of the session with the master, while it lasts.
    beats: std::sync::Mutex<Option<Beats>>,
    /// The bound request address.
    pub local_addr: SocketAddr,
    listener: TcpListener,
    udp: UdpSocket,
    gate: Arc<crate::gate::Gate>,
}

fn history_path(data: &Path) -> PathBuf {
    data.join("history")
}

impl Worker {
    /// Opens the data (finishing or discarding an interrupted snapshot) and
    /// binds the sockets.
    pub async fn bind(cfg: WorkerConfig) -> std::io::Result<Arc<Worker>> {
        std::fs::create_dir_all(&cfg.data)?;
        let node_id = wire::node_id(&cfg.data.join("node-id"))?;
        let (db_dir, tmp, old) = (
            cfg.data.join("db"),
            cfg.data.join("snapshot.tmp"),
            cfg.data.join("db.old"),
        );
        if old.exists() {
            if db_dir.exists() {
                std::fs::remove_dir_all(&old)?;
            } else {
                std::fs::rename(&old, &db_dir)?;
            }
        }
        if tmp.exists() {
            log::warn!(
                "worker: discarding an interrupted snapshot in {}",
                tmp.display()
            );
            std::fs::remove_dir_all(&tmp)?;
        }
        let db = Db::open(&db_dir, cfg.engine.clone()).map_err(std::io::Error::other)?;
        let followed = std::fs::read_to_string(history_path(&cfg.data))
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        let listener = TcpListener::bind(cfg.listen).await?;
        let local_addr = listener.local_addr()?;
        let udp = UdpSocket::bind(SocketAddr::new(local_addr.ip(), 0)).await?;
        log::info!(
            "worker {node_id:016x} serving reads on {local_addr}: follows history {followed:016x} from {}, seq {}",
            cfg.master,
            db.seq()
        );
        Ok(Arc::new(Worker {
            gate: crate::gate::Gate::new(cfg.connections_max),
            cfg,
            node_id,
            db: RwLock::new(Some(Arc::new(db))),
            followed: AtomicU64::new(followed),
            applied: event_listener::Event::new(),
            master_heard: std::sync::Mutex::new(Instant::now()),
            beats: std::sync::Mutex::new(None),
            local_addr,
            listener,
            udp,
        }))
    }

    /// The current database (`None` while a snapshot is swapped in).
    pub fn db(&self) -> Option<Arc<Db>> {
        self.db.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn db_or_busy(&self) -> std::io::Result<Arc<Db>> {
        self.db()
            .ok_or_else(|| std::io::Error::other("the database is being replaced by a snapshot"))
    }

    fn me(&self) -> Me {
        Me {
            role: Role::Worker,
            node_id: self.node_id,
            history_id: self.followed.load(Ordering::Acquire),
        }
    }

    /// Serves reads and follows the master until dropped.
    pub async fn run(self: Arc<Self>) {
        let _serve = crate::rt::spawn(self.clone().serve());
        let _hb = crate::rt::spawn(self.clone().heartbeats());
        let mut force_snapshot = false;
        loop {
            match self.follow(force_snapshot).await {
                Ok(Follow::HistoryMismatch(msg)) => {
                    if self.cfg.accept_new_history {
                        log::warn!("worker: {msg}; --accept-new-history is set: taking a snapshot from the master");
                        force_snapshot = true;
                        continue;
                    }
                    log::error!(
                        "worker: NOT FOLLOWING the master at {}: {msg}. Local data is kept and still served.",
                        self.cfg.master
                    );
                    smol::Timer::after(Duration::from_millis(HISTORY_RETRY_MS)).await;
                }
                Ok(Follow::Ended) => {
                    force_snapshot = false;
                    log::info!(
                        "worker: master {} closed the stream; reconnecting",
                        self.cfg.master
                    );
                }
                Err(e) => log::info!(
                    "worker: following {} failed: {e}; reconnecting",
                    self.cfg.master
                ),
            }
            smol::Timer::after(Duration::from_millis(RECONNECT_MS)).await;
        }
    }

    async fn follow(&self, force_snapshot: bool) -> std::io::Result<Follow> {
        let seq = self.db_or_busy()?.seq();
        let mut hello = wire::hello(
            &self.cfg.cluster,
            Role::Worker,
            self.node_id,
            Purpose::Replicate,
        )?;
        hello.history_id = if force_snapshot {
            0
        } else {
            self.followed.load(Ordering::Acquire)
        };
        hello.applied_seq = seq;
        let keys = wire::current_keys(&self.cfg.keys);
        let (mut r, mut w, answer, beats) = wire::connect(self.cfg.master, hello, &keys).await?;
        let welcome = match answer {
            Message::Welcome(welcome) => welcome,
            Message::Refuse(refusal) => {
                return match refusal.reason {
                    RefuseReason::HistoryMismatch { .. } => {
                        Ok(Follow::HistoryMismatch(refusal.message))
                    }
                    _ => Err(wire::refusal(self.cfg.master, &refusal)),
                }
            }
            other => {
                return Err(std::io::Error::other(format!(
                    "master answered {} to Hello",
                    other.name()
                )))
            }
        };
        log::info!(
            "worker: following master {:016x} (history {:016x}, seq {}) from seq {}",
            welcome.node_id,
            welcome.history_id,
            welcome.commit_seq,
            seq
        );
        *self.master_heard.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        *self.beats.lock().unwrap_or_else(|p| p.into_inner()) = Some(beats);
        let followed = self.follow_session(&mut r, &mut w).await;
        *self.beats.lock().unwrap_or_else(|p| p.into_inner()) = None;
        followed
    }

    /// Applies what the master streams on an authenticated session until it
    /// ends or the master falls silent.
    async fn follow_session(
        &self,
        r: &mut Reader,
        w: &mut wire::Writer,
    ) -> std::io::Result<Follow> {
        // Liveness is watched by one timer for the whole session, not one
        // per message: a timer per message is a reactor registration and a
        // wake-up on the replication path.
        let watchdog = async {
            loop {
                smol::Timer::after(Duration::from_millis(self.cfg.heartbeat_ms)).await;
                let heard = *self.master_heard.lock().unwrap_or_else(|p| p.into_inner());
                if heard.elapsed() > Duration::from_millis(self.cfg.heartbeat_timeout_ms) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "no heartbeat from the master for {} ms",
                            self.cfg.heartbeat_timeout_ms
                        ),
                    ));
                }
            }
        };
        let receive = async {
            // Applied but not acknowledged yet, and the timer that sends the
            // ack (one per ack, not one per wait: creating a timer interrupts
            // the reactor).
            let mut unacked: Option<u64> = None;
            let mut ack_timer: Option<smol::Timer> = None;
            loop {
                let m = match r.try_recv()? {
                    Some(m) => m,
                    None => {
                        let more = match ack_timer.as_mut() {
                            None => r.fill().await?,
                            Some(timer) => {
                                let fill = async { r.fill().await.map(Some) };
                                let due = async {
                                    timer.await;
                                    Ok(None)
                                };
                                match smol::future::or(fill, due).await? {
                                    Some(more) => more,
                                    None => {
                                        ack_timer = None;
                                        if let Some(applied) = unacked.take() {
                                            w.send(&Message::Ack {
                                                applied_seq: applied,
                                            })
                                            .await?;
                                        }
                                        continue;
                                    }
                                }
                            }
                        };
                        if !more {
                            return Ok(Follow::Ended);
                        }
                        continue;
                    }
                };
                // Anything from the master proves it alive, as a heartbeat
                // does (under loss and rate limits the datagrams are the
                // first to go while the stream keeps flowing).
                *self.master_heard.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                match m {
                    Message::Records { records, .. } => {
                        let db = self.db_or_busy()?;
                        let apply = move || -> Result<u64, hypha_engine::Error> {
                            for r in records {
                                db.apply(&from_wire(r))?;
                            }
                            Ok(db.seq())
                        };
                        // Only an fdatasync per apply is slow enough to be worth a
                        // hop to the blocking pool.
                        let applied = match self.cfg.engine.fsync {
                            Fsync::Always => smol::unblock(apply).await,
                            _ => apply(),
                        }
                        .map_err(|e| std::io::Error::other(format!("applying records: {e}")))?;
                        self.applied.notify(usize::MAX);
                        unacked = Some(applied);
                        if ack_timer.is_none() {
                            ack_timer =
                                Some(smol::Timer::after(Duration::from_millis(ACK_DELAY_MS)));
                        }
                    }
                    Message::SnapshotBegin {
                        history_id,
                        upto_seq,
                        records_total,
                        bytes_total,
                    } => {
                        log::info!(
                            "worker: receiving a snapshot of {records_total} records (~{:.1} MB) up to seq {upto_seq}",
                            bytes_total as f64 / 1e6
                        );
                        self.receive_snapshot(r, history_id, records_total).await?;
                        (unacked, ack_timer) = (None, None);
                        w.send(&Message::Ack {
                            applied_seq: self.db_or_busy()?.seq(),
                        })
                        .await?;
                    }
                    Message::Ping { nonce } => {
                        // Everything sent before the Ping is applied: ack it
                        // first, so the Pong confirms it.
                        let mut out = Vec::new();
                        ack_timer = None;
                        if let Some(applied) = unacked.take() {
                            w.encode(
                                &Message::Ack {
                                    applied_seq: applied,
                                },
                                &mut out,
                            )?;
                        }
                        w.encode(&Message::Pong { nonce }, &mut out)?;
                        w.send_encoded(&out).await?;
                    }
                    other => {
                        return Err(std::io::Error::other(format!(
                            "unexpected {} from the master",
                            other.name()
                        )))
                    }
                }
            }
        };
        smol::future::or(receive, watchdog).await
    }

    async fn serve(self: Arc<Self>) {
        let port = crate::gate::Port {
            who: "worker",
            allow: self.cfg.allow.clone(),
            keys: self.cfg.keys.clone(),
            cluster: self.cfg.cluster.clone(),
            handshake_ms: self.cfg.handshake_timeout_ms,
            gate: self.gate.clone(),
        };
        let me = self.clone();
        crate::gate::serve_port(&self.listener, port, move |accepted, _| {
            me.clone().session(accepted)
        })
        .await
    }

    /// Serves one authenticated connection: requests from the edge.
    async fn session(self: Arc<Self>, accepted: wire::Accepted) -> std::io::Result<()> {
        let wire::Accepted {
            r, mut w, hello, ..
        } = accepted;
        if hello.purpose != Purpose::Request {
            refuse(
                &mut w,
                RefuseReason::NotMaster,
                "workers do not replicate to others; connect to the master",
            )
            .await;
            return Ok(());
        }
        w.send(&Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            role: Role::Worker,
            node_id: self.node_id,
            history_id: self.followed.load(Ordering::Acquire),
            commit_seq: self.db().map_or(0, |db| db.seq()),
        }))
        .await?;
        let me = self.clone();
        let idle_ms = self.cfg.idle_timeout_ms;
        serve_requests(r, w, "worker", idle_ms, move |m| me.answer(m)).await
    }

    /// Answers at once when this worker can (it has applied the request's
    /// `min_seq`), otherwise in a task that waits for the apply.
    fn answer(
        self: &Arc<Self>,
        m: Message,
    ) -> Answer<impl std::future::Future<Output = Message> + Send + 'static> {
        if let Some(db) = self.db() {
            let compact = matches!(m, Message::Compact { .. });
            if !compact && min_seq(&m).is_none_or(|seq| db.seq() >= seq) {
                return Answer::Now(self.answer_at(&db, &m));
            }
        }
        let me = self.clone();
        Answer::Later(async move { me.answer_later(m).await })
    }

    /// Waits (at most [`MIN_SEQ_WAIT_MS`](crate::requests::MIN_SEQ_WAIT_MS))
    /// until this worker has applied the request's `min_seq`, then answers.
    /// The database is not held while waiting, so a snapshot can swap it.
    async fn answer_later(&self, m: Message) -> Message {
        let req_id = m.req_id().unwrap_or(0);
        if let Some(seq) = min_seq(&m) {
            let applied = || self.db().is_some_and(|db| db.seq() >= seq);
            if !wait_applied(&self.applied, applied).await {
                let now = self.db().map_or(0, |db| db.seq());
                return Message::error(
                    req_id,
                    ErrorCode::Timeout,
                    &format!("this worker has applied seq {now}, not yet {seq}"),
                );
            }
        }
        if let (Message::Compact { req_id, run }, Some(db)) = (&m, self.db()) {
            return crate::requests::answer_compact(db, *req_id, *run).await;
        }
        match self.db() {
            Some(db) => self.answer_at(&db, &m),
            None => Message::error(
                req_id,
                ErrorCode::Unavailable,
                "this worker is installing a snapshot; retry",
            ),
        }
    }

    fn answer_at(&self, db: &Db, m: &Message) -> Message {
        match answer_read(db, self.me(), m) {
            Some(a) => a,
            None => Message::error(
                m.req_id().unwrap_or(0),
                ErrorCode::NotMaster,
                "workers take no writes: send them to the master",
            ),
        }
    }
}

enum Follow {
    Ended,
    HistoryMismatch(String),
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
