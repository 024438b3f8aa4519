//! A worker: follows the master's log (resuming from its own last applied
//! seq, or taking a snapshot when it is new), and answers reads at its
//! applied seq.
//!
//! Data layout under `--data DIR`: `DIR/db` is the database, `DIR/history`
//! the master history it follows, `DIR/snapshot.tmp` a snapshot being
//! received. A snapshot is built beside the old data and swapped in by
//! renames only when complete, so a crash half way leaves the old data.

mod files;
mod follow;
mod link;
mod snapshot;

use crate::requests::{answer_read, min_seq, serve_requests, wait_applied, Answer, Me};
use crate::wire::{self, refuse, Beats, Keys, Reader};
use files::check_leader_term;
pub use files::{followed_history, open_data};
use hypha_engine::{Db, Fsync, Options};
use hypha_net::{
    Allowlist, ErrorCode, Message, Purpose, RefuseReason, Role, Welcome, PROTOCOL_VERSION,
};
use hypha_repl::FollowerEvent;
#[cfg(not(target_has_atomic = "64"))]
use portable_atomic::AtomicU64;
use smol::net::{TcpListener, UdpSocket};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
#[cfg(target_has_atomic = "64")]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

pub use hypha_repl::{ACK_DELAY_MS, HISTORY_RETRY_MS, RECONNECT_MS};
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
    /// In a failover group (`hypha member`): the term it follows in. It
    /// then says it is a member, follows only a leader of that term, and
    /// acknowledges records only once they are durable.
    pub group: Option<crate::group::InGroup>,
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
    /// The heartbeat keys of the session with the master, while it lasts.
    beats: std::sync::Mutex<Option<Beats>>,
    /// The bound request address.
    pub local_addr: SocketAddr,
    /// `None` inside a member, whose own listener hands it connections.
    listener: Option<TcpListener>,
    udp: UdpSocket,
    gate: Arc<crate::gate::Gate>,
    /// Set by [`Worker::stop`]: the follow loop ends after its current
    /// action (never inside an apply, a cut or a snapshot swap).
    stopping: std::sync::atomic::AtomicBool,
    stop: event_listener::Event,
    /// Recent records and waiting watches (`crate::watch`).
    hub: Arc<crate::watch::Hub>,
}

fn history_path(data: &Path) -> PathBuf {
    data.join("history")
}

impl Worker {
    /// Opens the data (finishing or discarding an interrupted snapshot) and
    /// binds the sockets.
    pub async fn bind(cfg: WorkerConfig) -> std::io::Result<Arc<Worker>> {
        let db = open_data(&cfg.data, &cfg.engine)?;
        let followed = followed_history(&cfg.data).unwrap_or(0);
        let listener = TcpListener::bind(cfg.listen).await?;
        let local_addr = listener.local_addr()?;
        let worker = Worker::with_db(cfg, Arc::new(db), followed, Some(listener)).await?;
        log::info!(
            "worker {:016x} serving reads on {local_addr}: follows history {followed:016x} from {}, seq {}",
            worker.node_id,
            worker.cfg.master,
            worker.db().map_or(0, |db| db.seq())
        );
        Ok(worker)
    }

    /// A worker around an open database, following history `followed`
    /// (0: none, it asks for a snapshot). Without a listener it serves the
    /// connections handed to [`Worker::session`].
    pub async fn with_db(
        cfg: WorkerConfig,
        db: Arc<Db>,
        followed: u64,
        listener: Option<TcpListener>,
    ) -> std::io::Result<Arc<Worker>> {
        let node_id = wire::node_id(&cfg.data.join("node-id"))?;
        let local_addr = match &listener {
            Some(l) => l.local_addr()?,
            None => cfg.listen,
        };
        let udp = UdpSocket::bind(SocketAddr::new(local_addr.ip(), 0)).await?;
        let hub = Arc::new(crate::watch::Hub::default());
        hub.reset(db.seq());
        Ok(Arc::new(Worker {
            hub,
            gate: crate::gate::Gate::new(cfg.connections_max),
            cfg,
            node_id,
            db: RwLock::new(Some(db)),
            followed: AtomicU64::new(followed),
            applied: event_listener::Event::new(),
            beats: std::sync::Mutex::new(None),
            local_addr,
            listener,
            udp,
            stopping: std::sync::atomic::AtomicBool::new(false),
            stop: event_listener::Event::new(),
        }))
    }

    /// Asks the follow loop to end after its current action; [`Worker::run`]
    /// then returns.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stop.notify(usize::MAX);
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
        let _serve = self
            .listener
            .is_some()
            .then(|| crate::rt::spawn(self.clone().serve()));
        let (heard, beats) = smol::channel::bounded(1);
        let _hb = crate::rt::spawn(self.clone().heartbeats(heard));
        self.follow(beats).await
    }

    /// Runs `f` unless [`Worker::stop`] comes first: a connection to a
    /// master that stopped answering (a handshake waits up to its timeout)
    /// must not hold up a member's switch to another role.
    async fn unless_stopped<T>(
        &self,
        f: impl std::future::Future<Output = std::io::Result<T>>,
    ) -> std::io::Result<T> {
        let stopped = async {
            loop {
                let listener = self.stop.listen();
                if self.stopping.load(Ordering::Acquire) {
                    return Err(std::io::Error::other("the worker is stopping"));
                }
                listener.await;
            }
        };
        smol::future::or(f, stopped).await
    }

    /// Connects to the master with a `Hello` for `history_id` at
    /// `applied_seq`; the session and the master's answer.
    async fn connect(
        &self,
        history_id: u64,
        applied_seq: u64,
    ) -> std::io::Result<(Reader, wire::Writer, FollowerEvent)> {
        let group = self.cfg.group.as_ref();
        let role = group.map_or(Role::Worker, |_| Role::Member);
        let mut hello = wire::hello(&self.cfg.cluster, role, self.node_id, Purpose::Replicate)?;
        hello.history_id = history_id;
        hello.applied_seq = applied_seq;
        hello.last_term = self.db().map_or(0, |db| db.last_log_id().0);
        hello.term = group.map_or(0, |g| g.term);
        let keys = wire::current_keys(&self.cfg.keys);
        let (r, w, answer, beats) = wire::connect(self.cfg.master, hello, &keys).await?;
        if let Some(g) = group {
            check_leader_term(g, self.cfg.master, &answer)?;
        }
        let event = match answer {
            Message::Welcome(welcome) => FollowerEvent::Welcomed {
                node_id: welcome.node_id,
                history_id: welcome.history_id,
                commit_seq: welcome.commit_seq,
                term: welcome.term,
                mine: hypha_repl::terms::TermHistory::from_starts(&wire::terms_to_wire(
                    &self.db().map_or_else(Vec::new, |db| db.term_history()),
                ))
                .unwrap_or_default(),
                terms: welcome.terms,
            },
            Message::Refuse(refusal) => match refusal.reason {
                RefuseReason::HistoryMismatch { .. } => FollowerEvent::Refused {
                    history_mismatch: true,
                    message: refusal.message.to_string(),
                },
                _ => return Err(wire::refusal(self.cfg.master, &refusal)),
            },
            other => {
                return Err(std::io::Error::other(format!(
                    "master answered {} to Hello",
                    other.name()
                )))
            }
        };
        *self.beats.lock().unwrap_or_else(|p| p.into_inner()) = Some(beats);
        Ok((r, w, event))
    }

    async fn serve(self: Arc<Self>) {
        let Some(listener) = &self.listener else {
            return;
        };
        let port = crate::gate::Port {
            who: "worker",
            allow: self.cfg.allow.clone(),
            listed: None,
            keys: self.cfg.keys.clone(),
            cluster: self.cfg.cluster.clone(),
            handshake_ms: self.cfg.handshake_timeout_ms,
            gate: self.gate.clone(),
        };
        let me = self.clone();
        crate::gate::serve_port(listener, port, move |accepted, _| {
            me.clone().session(accepted)
        })
        .await
    }

    /// Serves one authenticated connection: requests from the edge.
    pub async fn session(self: Arc<Self>, accepted: wire::Accepted) -> std::io::Result<()> {
        let wire::Accepted {
            r, mut w, hello, ..
        } = accepted;
        if hello.purpose != Purpose::Request {
            let (reason, why) = match hello.purpose {
                Purpose::Members => (
                    RefuseReason::NotAllowed,
                    "this is a fixed-role worker (`hypha worker`): member lists belong to \
                     failover groups (`hypha member`)",
                ),
                _ => (
                    RefuseReason::NotMaster,
                    "workers do not replicate to others; connect to the master",
                ),
            };
            refuse(&mut w, reason, why).await;
            return Ok(());
        }
        w.send(&Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            role: Role::Worker,
            node_id: self.node_id,
            history_id: self.followed.load(Ordering::Acquire),
            commit_seq: self.db().map_or(0, |db| db.seq()),
            term: self.cfg.group.as_ref().map_or(0, |g| g.term),
            terms: Vec::new(),
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
        if m.is_write() {
            // Refused before anything is written, whatever the database is
            // doing (a snapshot swap): the edge may send it elsewhere.
            return Answer::Now(Message::error(
                m.req_id().unwrap_or(0),
                ErrorCode::NotMaster,
                "workers take no writes: send them to the master",
            ));
        }
        if min_seq(&m) == Some(hypha_net::MIN_SEQ_LINEARIZABLE) {
            return Answer::Now(Message::error(
                m.req_id().unwrap_or(0),
                ErrorCode::NotMaster,
                "linearizable reads are answered by the group's leader",
            ));
        }
        if let Some(db) = self.db() {
            let later = matches!(
                m,
                Message::Compact { .. } | Message::Watch { .. } | Message::Backup(_)
            );
            if !later && min_seq(&m).is_none_or(|seq| db.seq() >= seq) {
                return Answer::Now(self.answer_at(&db, &m));
            }
        }
        let me = self.clone();
        Answer::Later(async move { me.answer_later(m).await })
    }

    /// Waits (at most [`MIN_SEQ_WAIT_MS`](crate::requests::MIN_SEQ_WAIT_MS))
    /// until this worker has applied the request's `min_seq`, then answers.
    /// The database is not held while waiting, so a snapshot can swap it.
    async fn answer_later(self: Arc<Self>, m: Message) -> Message {
        if let Some(ask) = crate::watch::Ask::of(&m) {
            let me = self.clone();
            return crate::watch::answer(self.hub.clone(), move || me.db(), ask).await;
        }
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
            return crate::requests::answer_compact(db, *req_id, *run, 0).await;
        }
        if let (Message::Backup(ask), Some(db)) = (&m, self.db()) {
            return crate::backup::answer(db, ask.clone()).await;
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

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
