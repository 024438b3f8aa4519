//! The master: takes every write, assigns its seq (the engine's), streams the
//! log to every connected worker, answers the edge, and waits for worker acks
//! in `sync N` mode.

mod durable;
mod expiry;
mod group;
mod members;
mod stream;
mod txn;
mod writes;

use crate::requests::{answer_read, error_message, serve_requests, Answer, Me};
use crate::wire::{self, Beats, Keys};
use hypha_engine::{Db, Options};
use hypha_net::{Allowlist, ErrorCode, Message, Purpose, Role, Welcome, PROTOCOL_VERSION};
use hypha_repl::{Conn, MasterAction, MasterCore, MasterEvent, MasterParams, Millis};
use smol::net::{TcpListener, UdpSocket};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use writes::{try_write, write, Written, Wrote};

#[cfg(not(target_has_atomic = "64"))]
use portable_atomic::AtomicU64;
#[cfg(target_has_atomic = "64")]
use std::sync::atomic::AtomicU64;

pub use expiry::{EXPIRY_BATCH_KEYS, EXPIRY_RECHECK_MS};
pub use hypha_repl::SyncMode;

/// How to run a master.
#[derive(Clone, Debug)]
pub struct MasterConfig {
    /// Data directory (the database lives in `DIR/db`).
    pub data: PathBuf,
    /// TCP (replication, requests) and UDP (heartbeats) address.
    pub listen: SocketAddr,
    /// Engine options (fsync mode, value limit).
    pub engine: Options,
    /// Peers allowed to connect (all when `None`).
    pub allow: Option<Allowlist>,
    /// Write acknowledgement mode.
    pub sync: SyncMode,
    /// How long `sync N` waits for workers.
    pub sync_timeout_ms: u64,
    /// Cluster name both sides must agree on.
    pub cluster: String,
    /// Heartbeat interval.
    pub heartbeat_ms: u64,
    /// A worker whose heartbeats stop for this long is unhealthy.
    pub heartbeat_timeout_ms: u64,
    /// A worker neither connected nor heard for this long is forgotten: it
    /// leaves the worker list, and compaction may drop the deletes it has
    /// not applied (it takes a snapshot if it comes back).
    pub forget_after_ms: u64,
    /// The cluster keys every connection must prove (`net/WIRE.md` §4).
    pub keys: Keys,
    /// Most connections open at once (`--max-connections`).
    pub connections_max: usize,
    /// A request connection silent this long is closed.
    pub idle_timeout_ms: u64,
    /// A connection that has not proved the key this long after it was
    /// accepted is closed.
    pub handshake_timeout_ms: u64,
    /// Leading a failover group's term (`hypha member`): writes carry the
    /// term and are acknowledged once a majority of members hold them
    /// durably. `None`: a fixed-role master, term 0.
    pub group: Option<crate::group::Leading>,
}

/// A running master: the replication core and what drives it.
pub struct Master {
    cfg: MasterConfig,
    db: Arc<Db>,
    me: Me,
    /// The replication protocol's state (`hypha-repl`): every decision
    /// about workers is taken there; this file and `stream.rs` only do
    /// what it says.
    core: Mutex<MasterCore<Beats>>,
    /// Where the actions for each replication connection go (its writer).
    links: Mutex<HashMap<Conn, smol::channel::Sender<MasterAction>>>,
    /// `--sync N` writes waiting for their confirmation.
    waiters: Mutex<HashMap<u64, smol::channel::Sender<MasterAction>>>,
    next_waiter: AtomicU64,
    /// Wakes the ticker when the core's next deadline moved earlier.
    tick: event_listener::Event,
    ticker_at: AtomicU64,
    clock: Instant,
    /// The bound TCP address (useful when listening on port 0).
    pub local_addr: SocketAddr,
    /// `None` inside a member, whose own listener hands it connections.
    listener: Option<TcpListener>,
    udp: Arc<UdpSocket>,
    gate: Arc<crate::gate::Gate>,
    committer: durable::Committer,
    /// The highest seq told to the election as durable (failover groups).
    reported: Mutex<u64>,
    /// False once [`Master::close_writes`] ran; every append holds it
    /// (read) while it runs.
    writes_open: Arc<std::sync::RwLock<bool>>,
    /// The keys with a deadline, and the task that expires them.
    expiry: Arc<expiry::Expiry>,
}

/// Default of `--forget-after`: a worker heard from within this long still
/// counts for the tombstone floor (compaction keeps the deletes it has not
/// applied, so it resumes from the log instead of taking a snapshot) and
/// stays in the master's table.
pub const FORGET_AFTER_MS_DEFAULT: u64 = 3_600_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Master {
    /// Opens the database and binds the sockets.
    pub async fn bind(cfg: MasterConfig) -> std::io::Result<Arc<Master>> {
        std::fs::create_dir_all(&cfg.data)?;
        let db =
            Db::open(cfg.data.join("db"), cfg.engine.clone()).map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(cfg.listen).await?;
        let udp = UdpSocket::bind(listener.local_addr()?).await?;
        Master::with_db(cfg, Arc::new(db), Some(listener), Arc::new(udp))
    }

    /// A master around an open database, answering heartbeats on `udp`.
    /// Without a listener it serves the connections handed to
    /// [`Master::session`].
    pub fn with_db(
        cfg: MasterConfig,
        db: Arc<Db>,
        listener: Option<TcpListener>,
        udp: Arc<UdpSocket>,
    ) -> std::io::Result<Arc<Master>> {
        let node_id = wire::node_id(&cfg.data.join("node-id"))?;
        let local_addr = match &listener {
            Some(l) => l.local_addr()?,
            None => cfg.listen,
        };
        let me = Me {
            role: Role::Master,
            node_id,
            history_id: cfg
                .group
                .as_ref()
                .map_or_else(|| db.history_id(), |g| g.history_id),
        };
        log::info!(
            "master {node_id:016x} on {local_addr} (tcp+udp): history {:016x}, seq {}, {} keys",
            me.history_id,
            db.seq(),
            db.len()
        );
        // A fixed-role master: term 0, as every record it writes.
        let (term, terms, sync) = match &cfg.group {
            Some(g) => (
                g.group.term,
                g.terms.clone(),
                SyncMode::Majority { voters: g.voters },
            ),
            None => (0, Vec::new(), cfg.sync),
        };
        let params = MasterParams {
            node_id,
            history_id: me.history_id,
            term,
            terms,
            sync,
            sync_timeout_ms: cfg.sync_timeout_ms,
            heartbeat_ms: cfg.heartbeat_ms,
            heartbeat_timeout_ms: cfg.heartbeat_timeout_ms,
            forget_after_ms: cfg.forget_after_ms,
        };
        Ok(Arc::new(Master {
            gate: crate::gate::Gate::new(cfg.connections_max),
            core: Mutex::new(MasterCore::new(params, db.seq(), 0)),
            cfg,
            db,
            me,
            links: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            next_waiter: AtomicU64::new(1),
            tick: event_listener::Event::new(),
            ticker_at: AtomicU64::new(u64::MAX),
            clock: Instant::now(),
            local_addr,
            listener,
            udp,
            committer: durable::Committer::default(),
            writes_open: Arc::new(std::sync::RwLock::new(true)),
            reported: Mutex::new(0),
            expiry: Arc::default(),
        }))
    }

    /// The database.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    fn now(&self) -> Millis {
        self.clock.elapsed().as_millis() as Millis
    }

    /// Feeds the core one event and does what it says.
    fn handle(&self, event: MasterEvent<Beats>) {
        let (actions, deadline) = {
            let mut core = lock(&self.core);
            let actions = core.handle(event, self.now());
            (actions, core.next_deadline())
        };
        if deadline < self.ticker_at.load(Ordering::Acquire) {
            self.tick.notify(1);
        }
        self.dispatch(actions);
    }

    /// Hands each action to whoever carries it out: a connection's writer,
    /// a waiting write, or the engine.
    fn dispatch(&self, actions: Vec<MasterAction>) {
        for action in actions {
            match action {
                MasterAction::Send { conn, .. }
                | MasterAction::Refuse { conn, .. }
                | MasterAction::Close { conn, .. }
                | MasterAction::SendSnapshot { conn, .. }
                | MasterAction::ReadLog { conn, .. } => {
                    if let Some(link) = lock(&self.links).get(&conn) {
                        // Unbounded, but the core keeps at most one read or
                        // send out per connection (plus a close).
                        let _ = link.try_send(action);
                    }
                }
                MasterAction::Confirm { waiter } | MasterAction::SyncFailed { waiter, .. } => {
                    if let Some(done) = lock(&self.waiters).remove(&waiter) {
                        let _ = done.try_send(action);
                    }
                }
                MasterAction::TombstoneFloor(floor) => self.db.set_tombstone_floor(floor),
            }
        }
    }

    /// Delivers the core's timer: `--sync N` deadlines, forgetting silent
    /// workers and the tombstone floor (every heartbeat interval).
    async fn ticker(self: Arc<Self>) {
        loop {
            let listener = self.tick.listen();
            let at = lock(&self.core).next_deadline();
            self.ticker_at.store(at, Ordering::Release);
            let now = self.now();
            if at > now {
                let wait = Duration::from_millis((at - now).min(self.cfg.heartbeat_ms.max(1)));
                smol::future::or(
                    async {
                        smol::Timer::after(wait).await;
                    },
                    listener,
                )
                .await;
            }
            self.handle(MasterEvent::Tick);
        }
    }

    /// Serves until the future is dropped.
    pub async fn run(self: Arc<Self>) {
        let _hb = crate::rt::spawn(self.clone().heartbeats());
        let _ticker = crate::rt::spawn(self.clone().ticker());
        let _expiry = crate::rt::spawn(self.clone().expire_keys());
        let starting = self.clone();
        let _term = crate::rt::spawn(async move { starting.start_term().await });
        let port = crate::gate::Port {
            who: "master",
            allow: self.cfg.allow.clone(),
            listed: None,
            keys: self.cfg.keys.clone(),
            cluster: self.cfg.cluster.clone(),
            handshake_ms: self.cfg.handshake_timeout_ms,
            gate: self.gate.clone(),
        };
        let Some(listener) = &self.listener else {
            return std::future::pending().await;
        };
        let me = self.clone();
        crate::gate::serve_port(listener, port, move |accepted, peer| {
            me.clone().session(accepted, peer)
        })
        .await
    }

    /// Refuses every later write, once the writes appending now are done
    /// (blocks for them: call it off the executor thread). A member that
    /// stops leading calls it, so no record of its term follows a record
    /// the next leader wrote.
    pub fn close_writes(&self) {
        *self.writes_open.write().unwrap_or_else(|p| p.into_inner()) = false;
        // Writes still waiting for a majority will not get one from this
        // master: they end now, answered as unknown, and release the
        // master (and its database, which the next role may need to cut).
        lock(&self.waiters).clear();
    }

    /// The term this master leads (0: a fixed-role master).
    pub fn term(&self) -> u64 {
        self.cfg.group.as_ref().map_or(0, |g| g.group.term)
    }

    /// Serves one authenticated connection: requests, or a worker's
    /// replication session.
    pub async fn session(
        self: Arc<Self>,
        accepted: wire::Accepted,
        peer: SocketAddr,
    ) -> std::io::Result<()> {
        let wire::Accepted {
            r,
            mut w,
            hello,
            beats,
            ..
        } = accepted;
        match hello.purpose {
            Purpose::Request => {
                w.send(&self.welcome()).await?;
                let me = self.clone();
                let idle_ms = self.cfg.idle_timeout_ms;
                serve_requests(r, w, "master", idle_ms, move |m| me.answer(m)).await
            }
            Purpose::Replicate if hello.term > self.term() => {
                // A member elected since: this one no longer leads.
                if let Some(g) = &self.cfg.group {
                    g.group.elector.saw_term(hello.term);
                }
                let why = format!(
                    "this member led term {}, and {peer} is in term {}: find the new leader",
                    self.term(),
                    hello.term
                );
                wire::refuse(&mut w, hypha_net::RefuseReason::NotMaster, &why).await;
                Ok(())
            }
            Purpose::Replicate => self.replicate(r, w, hello, peer, beats).await,
            Purpose::Elect { .. } | Purpose::Members => {
                let why = "this node is a fixed-role master (`hypha master`): elections and \
                           member lists are for failover groups (`hypha member`)";
                wire::stranger(|| format!("master: refused a member connection from {peer}"));
                wire::refuse(&mut w, hypha_net::RefuseReason::NotAllowed, why).await;
                Ok(())
            }
        }
    }

    fn welcome(&self) -> Message {
        Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            role: Role::Master,
            node_id: self.me.node_id,
            history_id: self.me.history_id,
            commit_seq: self.commit_point(),
            term: self.term(),
            terms: self
                .cfg
                .group
                .as_ref()
                .map_or_else(Vec::new, |g| g.terms.clone()),
        })
    }

    /// Answers reads at once; writes at once unless they must wait for an
    /// fdatasync, for workers, or for slow engine work (then in a task).
    fn answer(
        self: &Arc<Self>,
        m: Message,
    ) -> Answer<impl std::future::Future<Output = Message> + Send + 'static> {
        if let Some(refused) = group::reserved(&m) {
            return Answer::Now(refused);
        }
        let later = if group::linearizable(&m) {
            Later::Linearizable(m)
        } else if let Some(a) = answer_read(&self.db, self.me, &m) {
            return Answer::Now(a);
        } else {
            match self.answer_write(m) {
                Step::Later(later) => later,
                Step::Now(a) => return Answer::Now(a),
                Step::Wrote(a) => return Answer::Wrote(a),
            }
        };
        let me = self.clone();
        Answer::Later(async move { me.answer_later(later).await })
    }

    /// Writes, compactions and the rest: what waits, or the answer when
    /// nothing does.
    fn answer_write(self: &Arc<Self>, m: Message) -> Step {
        Step::Later(match m {
            m if m.is_write() => {
                match try_write(&self.db, &self.writes_open, &self.expiry, m) {
                    Wrote::Done(written) if !self.writes_wait() => {
                        if let Some(seq) = written.seq {
                            self.handle(MasterEvent::Committed { seq });
                        }
                        return Step::Wrote(written.answer);
                    }
                    Wrote::Done(written) => Later::Wrote(written),
                    // Key-index growth or a rollover's fsyncs: on the blocking
                    // pool, not the executor thread.
                    Wrote::Blocked(m) => Later::Write(m),
                }
            }
            Message::Compact { req_id, run } => Later::Compact(req_id, run),
            Message::Backup(ask) => Later::Backup(ask),
            Message::Workers { req_id } => {
                let workers = lock(&self.core).worker_list(self.now(), hypha_net::WORKERS_MAX);
                return Step::Now(Message::WorkerList { req_id, workers });
            }
            Message::Watch { req_id, .. } => {
                return Step::Now(Message::error(
                    req_id,
                    ErrorCode::NotMaster,
                    "watches are served by workers (a group's followers): ask one of them",
                ))
            }
            other => {
                let req_id = other.req_id().unwrap_or(0);
                return Step::Now(Message::error(
                    req_id,
                    ErrorCode::BadRequest,
                    &format!("a master does not answer {}", other.name()),
                ));
            }
        })
    }

    /// What an answer does in its task.
    async fn answer_later(self: Arc<Self>, later: Later) -> Message {
        let written = match later {
            Later::Wrote(written) => written,
            Later::Write(m) => {
                let (db, open) = (self.db.clone(), self.writes_open.clone());
                let expiry = self.expiry.clone();
                smol::unblock(move || write(&db, &open, &expiry, m)).await
            }
            Later::Compact(req_id, run) => {
                let expired = self.expiry.expired.load(Ordering::Relaxed);
                return crate::requests::answer_compact(self.db.clone(), req_id, run, expired)
                    .await;
            }
            Later::Linearizable(m) => return self.linearizable_read(m).await,
            Later::Backup(ask) => return crate::backup::answer(self.db.clone(), ask).await,
        };
        if let Some(seq) = written.seq.filter(|_| self.cfg.group.is_some()) {
            // Followers get it while this member's fdatasync runs.
            self.handle(MasterEvent::Appended { seq });
        }
        let written = self.durable(written).await;
        self.after_write(written).await
    }

    /// Whether a write is acknowledged only after something slow: an
    /// fdatasync (`--fsync always`) or N workers (`--sync N`). Other writes
    /// take microseconds and are answered inline, without a task or a hop
    /// to another thread.
    fn writes_wait(&self) -> bool {
        self.fsync_always() || self.cfg.sync != SyncMode::Async || self.cfg.group.is_some()
    }

    /// Whether a write is answered only once durable: under `--fsync
    /// always`, and in a failover group, whose majority counts only what
    /// survives a crash.
    fn fsync_always(&self) -> bool {
        matches!(self.cfg.engine.fsync, hypha_engine::Fsync::Always) || self.cfg.group.is_some()
    }

    /// Under `--fsync always`, waits until the write is durable; a failed
    /// fdatasync turns its answer into the error.
    async fn durable(&self, written: Written) -> Written {
        let Some(seq) = written.seq.filter(|_| self.fsync_always()) else {
            return written;
        };
        match self.committer.durable(&self.db, seq).await {
            Ok(()) => written,
            // Followers may hold it already, and a leader elected among
            // them keeps it.
            Err(e) if self.cfg.group.is_some() => Written {
                req_id: written.req_id,
                seq: None,
                answer: Message::error(
                    written.req_id,
                    ErrorCode::OutcomeUnknown,
                    &format!(
                        "this member's fdatasync of write seq {seq} failed ({e}) after it went \
                         to the followers: whether it survives is unknown"
                    ),
                ),
            },
            Err(e) => Written {
                req_id: written.req_id,
                seq: None,
                answer: error_message(written.req_id, &e),
            },
        }
    }

    /// Tells the core the write committed (its senders stream it), then (in
    /// `sync N`) waits for the core to confirm N workers applied it.
    async fn after_write(&self, written: Written) -> Message {
        let Some(seq) = written.seq else {
            return written.answer;
        };
        self.handle(MasterEvent::Committed { seq });
        if self.cfg.group.is_some() {
            self.report_durable(seq);
        } else if !matches!(self.cfg.sync, SyncMode::Workers(_)) {
            return written.answer;
        }
        let waiter = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        let (done, confirmed) = smol::channel::bounded(1);
        lock(&self.waiters).insert(waiter, done);
        self.handle(MasterEvent::AwaitWorkers { waiter, seq });
        match confirmed.recv().await {
            Ok(MasterAction::Confirm { .. }) => written.answer,
            Ok(MasterAction::SyncFailed {
                confirmed, wanted, ..
            }) => Message::error(
                written.req_id,
                ErrorCode::SyncFailed { confirmed, wanted },
                &format!(
                    "write seq {seq} is durable on the master but only {confirmed} of {wanted} \
                     workers applied it within {} ms",
                    self.cfg.sync_timeout_ms
                ),
            ),
            _ if self.cfg.group.is_some() => Message::error(
                written.req_id,
                ErrorCode::OutcomeUnknown,
                &format!(
                    "this member stopped leading before a majority held write seq {seq}: \
                     whether it survives is unknown"
                ),
            ),
            _ => Message::error(
                written.req_id,
                ErrorCode::Internal,
                "the master stopped waiting for workers",
            ),
        }
    }
}

/// What an answer still has to do in its task.
enum Later {
    Wrote(Written),
    Write(Message),
    Compact(u64, bool),
    /// A read at a failover group's commit point, after a read index.
    Linearizable(Message),
    /// A page of a backup, read on the blocking pool.
    Backup(hypha_net::BackupAsk),
}

/// How a request goes on.
enum Step {
    /// In a task.
    Later(Later),
    /// Answered: a read or a refusal.
    Now(Message),
    /// A write already acknowledged.
    Wrote(Message),
}
