//! The master: takes every write, assigns its seq (the engine's), streams the
//! log to every connected worker, answers the edge, and waits for worker acks
//! in `sync N` mode.

mod durable;
mod stream;

use crate::requests::{answer_read, error_message, serve_requests, wait_until, Answer, Me};
use crate::wire::{self, refuse, Beats, Keys, Reader, Writer};
use hypha_engine::{Db, Options};
use hypha_net::{
    Allowlist, ErrorCode, Message, Purpose, RefuseReason, Role, Welcome, WorkerInfo,
    PROTOCOL_VERSION,
};
use smol::net::{TcpListener, UdpSocket};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When a write is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// After the local commit.
    Async,
    /// After this many workers applied it.
    Workers(u32),
}

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
}

/// What the master knows of one worker. Everything here comes from the
/// worker's authenticated replication session or from heartbeats signed
/// with that session's keys.
struct WorkerState {
    peer: SocketAddr,
    /// Highest seq the worker acknowledged on its session (never from a
    /// heartbeat).
    applied_seq: u64,
    serve_port: u16,
    last_heard: Instant,
    connected: bool,
    /// The id of the session this state belongs to: a worker that
    /// reconnects while its old session still lingers gets a new one, and
    /// only the current session may update or end it.
    session: u64,
    /// The current session's heartbeat keys; `None` once it ended.
    beats: Option<Beats>,
}

/// A running master's shared state.
pub struct Master {
    cfg: MasterConfig,
    db: Arc<Db>,
    me: Me,
    workers: Mutex<HashMap<u64, WorkerState>>,
    /// Notified after every local write: replication senders wake up.
    written: event_listener::Event,
    /// Notified on every worker ack: `sync N` waiters wake up.
    acked: event_listener::Event,
    /// The bound TCP address (useful when listening on port 0).
    pub local_addr: SocketAddr,
    listener: TcpListener,
    udp: UdpSocket,
    started: Instant,
    gate: Arc<crate::gate::Gate>,
    /// Group commit of `--fsync always` writes.
    committer: durable::Committer,
}

/// Default of `--forget-after`: a worker heard from within this long still
/// counts for the tombstone floor (compaction keeps the deletes it has not
/// applied, so it resumes from the log instead of taking a snapshot) and
/// stays in the master's table.
pub const FORGET_AFTER_MS_DEFAULT: u64 = 3_600_000;
/// For this many heartbeat timeouts after start the master keeps every
/// delete: workers it knew before a restart have time to reconnect.
pub const FLOOR_GRACE_TIMEOUTS: u32 = 10;

impl Master {
    /// Opens the database and binds the sockets.
    pub async fn bind(cfg: MasterConfig) -> std::io::Result<Arc<Master>> {
        std::fs::create_dir_all(&cfg.data)?;
        let node_id = wire::node_id(&cfg.data.join("node-id"))?;
        let db =
            Db::open(cfg.data.join("db"), cfg.engine.clone()).map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(cfg.listen).await?;
        let local_addr = listener.local_addr()?;
        let udp = UdpSocket::bind(local_addr).await?;
        let me = Me {
            role: Role::Master,
            node_id,
            history_id: db.history_id(),
        };
        log::info!(
            "master {node_id:016x} on {local_addr} (tcp+udp): history {:016x}, seq {}, {} keys",
            me.history_id,
            db.seq(),
            db.len()
        );
        Ok(Arc::new(Master {
            gate: crate::gate::Gate::new(cfg.connections_max),
            cfg,
            db: Arc::new(db),
            me,
            workers: Mutex::new(HashMap::new()),
            written: event_listener::Event::new(),
            acked: event_listener::Event::new(),
            local_addr,
            listener,
            udp,
            started: Instant::now(),
            committer: durable::Committer::default(),
        }))
    }

    /// Lets compaction drop only the deletes every connected or recently
    /// heard worker has applied (see `Db::set_tombstone_floor`).
    fn update_tombstone_floor(&self) {
        let grace = Duration::from_millis(self.cfg.heartbeat_timeout_ms) * FLOOR_GRACE_TIMEOUTS;
        let floor = if self.started.elapsed() < grace {
            0
        } else {
            let recent = Duration::from_millis(self.cfg.forget_after_ms);
            let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
            workers
                .values()
                .filter(|w| w.connected || w.last_heard.elapsed() < recent)
                .map(|w| w.applied_seq)
                .min()
                .unwrap_or(u64::MAX)
        };
        self.db.set_tombstone_floor(floor);
    }

    /// Drops the workers neither connected nor heard for `--forget-after`.
    fn forget_silent_workers(&self) {
        let forget = Duration::from_millis(self.cfg.forget_after_ms);
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        workers.retain(|id, w| {
            let keep = w.connected || w.last_heard.elapsed() < forget;
            if !keep {
                log::info!(
                    "master: forgetting worker {id:016x} at {}: not heard for {} ms (--forget-after)",
                    w.peer,
                    self.cfg.forget_after_ms
                );
            }
            keep
        });
    }

    async fn floor_loop(self: Arc<Self>) {
        loop {
            self.forget_silent_workers();
            self.update_tombstone_floor();
            smol::Timer::after(Duration::from_millis(self.cfg.heartbeat_ms)).await;
        }
    }

    /// The database.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// Serves until the future is dropped.
    pub async fn run(self: Arc<Self>) {
        let _hb = crate::rt::spawn(self.clone().heartbeats());
        let _floor = crate::rt::spawn(self.clone().floor_loop());
        let port = crate::gate::Port {
            who: "master",
            allow: self.cfg.allow.clone(),
            keys: self.cfg.keys.clone(),
            cluster: self.cfg.cluster.clone(),
            handshake_ms: self.cfg.handshake_timeout_ms,
            gate: self.gate.clone(),
        };
        let me = self.clone();
        crate::gate::serve_port(&self.listener, port, move |accepted, peer| {
            me.clone().session(accepted, peer)
        })
        .await
    }

    /// Serves one authenticated connection: requests, or a worker's
    /// replication session.
    async fn session(
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
            Purpose::Replicate => self.replicate(r, w, hello, peer, beats).await,
        }
    }

    fn welcome(&self) -> Message {
        Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            role: Role::Master,
            node_id: self.me.node_id,
            history_id: self.me.history_id,
            commit_seq: self.db.seq(),
        })
    }

    /// Answers reads and writes at once, unless they must wait for an
    /// fdatasync or for workers: then in their own task. Every write is
    /// appended here, at once; under `--fsync always` its answer waits for
    /// an fdatasync it shares with the writes appended meanwhile
    /// ([`durable`]).
    fn answer(
        self: &Arc<Self>,
        m: Message,
    ) -> Answer<impl std::future::Future<Output = Message> + Send + 'static> {
        if let Some(a) = answer_read(&self.db, self.me, &m) {
            return Answer::Now(a);
        }
        let is_write = matches!(m, Message::Put { .. } | Message::Delete { .. });
        if matches!(m, Message::Compact { .. }) || (is_write && self.writes_wait()) {
            let me = self.clone();
            let later = match m {
                Message::Compact { req_id, run } => Err((req_id, run)),
                m => Ok(write(&self.db, m)),
            };
            return Answer::Later(async move {
                match later {
                    Ok(written) => {
                        let written = me.durable(written).await;
                        me.after_write(written).await
                    }
                    Err((req_id, run)) => {
                        crate::requests::answer_compact(me.db.clone(), req_id, run).await
                    }
                }
            });
        }
        match m {
            Message::Put { .. } | Message::Delete { .. } => {
                let written = write(&self.db, m);
                self.written.notify(usize::MAX);
                Answer::Wrote(written.answer)
            }
            Message::Workers { req_id } => Answer::Now(Message::WorkerList {
                req_id,
                workers: self.worker_list(),
            }),
            other => {
                let req_id = other.req_id().unwrap_or(0);
                Answer::Now(Message::error(
                    req_id,
                    ErrorCode::BadRequest,
                    &format!("a master does not answer {}", other.name()),
                ))
            }
        }
    }

    /// Whether a write is acknowledged only after something slow: an
    /// fdatasync (`--fsync always`) or N workers (`--sync N`). Other writes
    /// take microseconds and are answered inline, without a task or a hop
    /// to another thread.
    fn writes_wait(&self) -> bool {
        self.fsync_always() || self.cfg.sync != SyncMode::Async
    }

    fn fsync_always(&self) -> bool {
        matches!(self.cfg.engine.fsync, hypha_engine::Fsync::Always)
    }

    /// Under `--fsync always`, waits until the write is durable; a failed
    /// fdatasync turns its answer into the error.
    async fn durable(&self, written: Written) -> Written {
        let Some(seq) = written.seq.filter(|_| self.fsync_always()) else {
            return written;
        };
        match self.committer.durable(&self.db, seq).await {
            Ok(()) => written,
            Err(e) => Written {
                req_id: written.req_id,
                seq: None,
                answer: error_message(written.req_id, &e),
            },
        }
    }

    /// Wakes the senders, then (in `sync N`) waits for N workers to apply.
    async fn after_write(&self, written: Written) -> Message {
        self.written.notify(usize::MAX);
        let (SyncMode::Workers(wanted), Some(seq)) = (self.cfg.sync, written.seq) else {
            return written.answer;
        };
        let deadline = Instant::now() + Duration::from_millis(self.cfg.sync_timeout_ms);
        if wait_until(&self.acked, deadline, || self.confirmed(seq) >= wanted).await {
            return written.answer;
        }
        let confirmed = self.confirmed(seq);
        Message::error(
            written.req_id,
            ErrorCode::SyncFailed { confirmed, wanted },
            &format!(
                "write seq {seq} is durable on the master but only {confirmed} of {wanted} workers \
                 applied it within {} ms",
                self.cfg.sync_timeout_ms
            ),
        )
    }

    fn confirmed(&self, seq: u64) -> u32 {
        let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        workers
            .values()
            .filter(|w| w.connected && w.applied_seq >= seq)
            .count() as u32
    }

    fn worker_list(&self) -> Vec<WorkerInfo> {
        let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let timeout = Duration::from_millis(self.cfg.heartbeat_timeout_ms);
        workers
            .iter()
            .filter(|(_, w)| w.serve_port != 0)
            .take(hypha_net::WORKERS_MAX)
            .map(|(id, w)| WorkerInfo {
                node_id: *id,
                addr: SocketAddr::new(w.peer.ip(), w.serve_port).to_string(),
                applied_seq: w.applied_seq,
                healthy: w.connected && w.last_heard.elapsed() < timeout,
            })
            .collect()
    }

    async fn replicate(
        self: Arc<Self>,
        mut r: Reader,
        mut w: Writer,
        hello: hypha_net::Hello,
        peer: SocketAddr,
        beats: Beats,
    ) -> std::io::Result<()> {
        if hello.role != Role::Worker {
            let msg = format!("only workers replicate; a {:?} cannot", hello.role);
            refuse(&mut w, RefuseReason::NotAllowed, &msg).await;
            return Ok(());
        }
        let ours = self.me.history_id;
        let seq = self.db.seq();
        let horizon = self.db.tombstone_horizon();
        let snapshot = if hello.history_id == ours && hello.applied_seq <= seq {
            if hello.applied_seq < horizon {
                log::warn!(
                    "master: worker {:016x} at {peer} applied seq {}, but compaction dropped \
                     deletes up to seq {horizon}: sending it a snapshot",
                    hello.node_id,
                    hello.applied_seq
                );
            }
            hello.applied_seq < horizon
        } else if hello.history_id == 0 {
            true
        } else {
            let msg = if hello.history_id == ours {
                format!(
                    "worker applied seq {} but this master only has {seq}: the master lost writes; \
                     restart the worker with --accept-new-history to resync from this master",
                    hello.applied_seq
                )
            } else {
                format!(
                    "worker follows history {:016x}, this master holds {ours:016x}; restart the worker \
                     with --accept-new-history to replace its data with this master's",
                    hello.history_id
                )
            };
            log::warn!(
                "master: refusing worker {:016x} at {peer}: {msg}",
                hello.node_id
            );
            refuse(&mut w, RefuseReason::HistoryMismatch { ours }, &msg).await;
            return Ok(());
        };
        w.send(&self.welcome()).await?;
        let node = hello.node_id;
        let sid = beats.inn.session();
        {
            let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
            let e = workers.entry(node).or_insert(WorkerState {
                peer,
                applied_seq: 0,
                serve_port: 0,
                last_heard: Instant::now(),
                connected: true,
                session: sid,
                beats: None,
            });
            e.peer = peer;
            e.session = sid;
            e.applied_seq = if snapshot { 0 } else { hello.applied_seq };
            e.connected = true;
            e.last_heard = Instant::now();
            e.beats = Some(beats);
        }
        // An older session of this worker, if one lingers, ends now.
        self.written.notify(usize::MAX);
        self.update_tombstone_floor();
        log::info!(
            "master: worker {node:016x} at {peer} joined at seq {} ({})",
            hello.applied_seq,
            if snapshot {
                "snapshot"
            } else {
                "resuming from its log position"
            }
        );
        let acks = {
            let me = self.clone();
            crate::rt::spawn(async move {
                let result = me.read_acks(&mut r, node, sid).await;
                if let Err(e) = &result {
                    log::warn!("master: worker {node:016x} at {peer}: {e}; ending its session");
                }
                me.end_session(node, sid);
                result
            })
        };
        let sent = self
            .clone()
            .send_log(&mut w, node, sid, snapshot, hello.applied_seq)
            .await;
        self.end_session(node, sid);
        drop(w);
        let _ = acks.cancel().await;
        log::info!("master: worker {node:016x} at {peer} left");
        sent
    }

    /// Marks `node` gone, unless a newer session of it took over.
    fn end_session(&self, node: u64, sid: u64) {
        if let Some(w) = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&node)
            .filter(|w| w.session == sid)
        {
            w.connected = false;
            w.beats = None;
        }
        self.acked.notify(usize::MAX);
        // Wakes the log sender of a worker that left, so it ends.
        self.written.notify(usize::MAX);
    }

    /// Takes the acks of session `sid` until it ends or a newer session of
    /// the same worker takes over (then its acks count no more).
    async fn read_acks(&self, r: &mut Reader, node: u64, sid: u64) -> std::io::Result<()> {
        while let Some(m) = r.recv().await? {
            match m {
                Message::Ack { applied_seq } => {
                    let seq = self.db.seq();
                    if applied_seq > seq {
                        return Err(std::io::Error::other(format!(
                            "worker acknowledged seq {applied_seq}, beyond the master's {seq}"
                        )));
                    }
                    {
                        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
                        match workers.get_mut(&node).filter(|w| w.session == sid) {
                            Some(w) => w.applied_seq = w.applied_seq.max(applied_seq),
                            None => return Ok(()),
                        }
                    }
                    self.acked.notify(usize::MAX);
                }
                Message::Ping { .. } | Message::Pong { .. } => {}
                other => {
                    return Err(std::io::Error::other(format!(
                        "unexpected {} from a worker",
                        other.name()
                    )))
                }
            }
        }
        Ok(())
    }

    /// Whether session `sid` is still `node`'s live session.
    fn is_current(&self, node: u64, sid: u64) -> bool {
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&node)
            .is_some_and(|w| w.connected && w.session == sid)
    }
}

/// The outcome of a local write.
struct Written {
    req_id: u64,
    /// The write's seq, if it wrote a record.
    seq: Option<u64>,
    /// The answer once the write is acknowledged.
    answer: Message,
}

/// Appends a `Put` or `Delete` to the engine, without waiting for an
/// fdatasync whatever the fsync mode (under `--fsync always` the answer
/// waits in [`Master::durable`]).
fn write(db: &Db, m: Message) -> Written {
    let (req_id, result) = match m {
        Message::Put { req_id, key, value } => (
            req_id,
            db.put_unsynced(&key, &value)
                .map(|seq| (Some(seq), Message::Written { req_id, seq })),
        ),
        Message::Delete { req_id, key } => (
            req_id,
            db.delete_unsynced(&key)
                .map(|seq| (seq, Message::Deleted { req_id, seq })),
        ),
        other => {
            let req_id = other.req_id().unwrap_or(0);
            let message = format!("{} is not a write", other.name());
            let answer = Message::error(req_id, ErrorCode::Internal, &message);
            return Written {
                req_id,
                seq: None,
                answer,
            };
        }
    };
    match result {
        Ok((seq, answer)) => Written {
            req_id,
            seq,
            answer,
        },
        Err(e) => Written {
            req_id,
            seq: None,
            answer: error_message(req_id, &e),
        },
    }
}
