//! One simulated cluster: a master and workers running the real state
//! machines of `hypha-repl`, joined by simulated TCP connections (FIFO,
//! delayed, reset at random, held up by partitions in either direction) and
//! heartbeat datagrams (lost, duplicated, reordered), on simulated time, with
//! crashes and compaction. Every choice comes from one seeded [`Rng`].

use crate::model::{digest, MasterStore, Rng, WorkerStore};
use hypha_net::{Message, RefuseReason, TermStart};
use hypha_repl::terms::TermHistory;
use hypha_repl::{
    Follower, FollowerEvent, FollowerParams, Join, MasterCore, MasterEvent, MasterParams, Millis,
    SyncMode,
};
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::net::SocketAddr;

pub const HEARTBEAT_MS: Millis = 50;
pub const HEARTBEAT_TIMEOUT_MS: Millis = 200;
/// Messages a connection holds before the sender's socket is "full" and its
/// `Sent` waits (TCP's send buffer).
pub const WINDOW: usize = 4;
/// A connection to a partitioned or dead node fails after this long.
const CONNECT_TIMEOUT_MS: Millis = 300;
/// Every queue the simulator checks stays under this.
pub const QUEUE_MAX: usize = 256;

/// What a seed runs.
#[derive(Clone, Debug)]
pub struct Setup {
    pub workers: usize,
    pub sync: SyncMode,
    pub compaction: bool,
    /// Per mille of stream messages that reset their connection.
    pub reset: u64,
    /// Per mille of datagrams lost, duplicated.
    pub loss: u64,
    pub dup: u64,
    /// Per mille, per 100 ms, of starting a partition, a crash.
    pub partition: u64,
    pub crash: u64,
    /// How long clients write, then how long the healed cluster has to
    /// converge.
    pub busy_ms: Millis,
    pub settle_ms: Millis,
}

impl Setup {
    pub fn random(rng: &mut Rng) -> Setup {
        let workers = rng.range(1, 4) as usize;
        let sync = if rng.chance(500) {
            SyncMode::Async
        } else {
            SyncMode::Workers(rng.range(1, workers as u64) as u32)
        };
        Setup {
            workers,
            sync,
            compaction: rng.chance(500),
            reset: rng.range(0, 10),
            loss: rng.range(0, 300),
            dup: rng.range(0, 100),
            partition: rng.range(0, 60),
            crash: rng.range(0, 30),
            busy_ms: 3_000,
            settle_ms: 4_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    ClientWrite,
    Commit { incarnation: u64, seq: u64 },
    Deliver { conn: u64, to_master: bool },
    MasterTick,
    WorkerTick(usize),
    LogRead { conn: u64, after: u64, upto: u64 },
    Sent { conn: u64 },
    Applied { w: usize, incarnation: u64 },
    Beat(usize),
    BeatToMaster(usize),
    BeatToWorker(usize),
    Fault,
    MasterUp,
    WorkerUp(usize),
    Closed { conn: u64, to_master: bool },
    ConnectFailed { w: usize, conn: u64 },
}

struct Conn {
    w: usize,
    m2w: VecDeque<(Millis, Message)>,
    w2m: VecDeque<(Millis, Message)>,
    open: bool,
    /// The master's `Sent` waits for room in the window.
    sent_owed: bool,
    master_incarnation: u64,
}

struct WorkerNode {
    follower: Follower,
    store: WorkerStore,
    durable: WorkerStore,
    /// The highest seq it ever applied (a crash may lose some since).
    peak: u64,
    /// The 200 ms period of the last sync.
    durable_mark: u64,
    /// The snapshot being received.
    tmp: Option<crate::model::Kv>,
    /// The records or snapshot an apply in flight will install.
    pending: Option<Pending>,
    conn: Option<u64>,
    up: bool,
    incarnation: u64,
    tick_at: Option<Millis>,
}

enum Pending {
    Records(Vec<hypha_net::WireRecord>),
    Snapshot { history_id: u64, upto: u64 },
}

pub struct World {
    pub rng: Rng,
    pub setup: Setup,
    pub now: Millis,
    queue: BinaryHeap<std::cmp::Reverse<(Millis, u64, Ev)>>,
    order: u64,
    params: MasterParams,
    master: Option<MasterCore<()>>,
    pub store: MasterStore,
    incarnation: u64,
    last_commit_at: Millis,
    workers: Vec<WorkerNode>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    /// Partitions: (worker, to_master) → heals at.
    cut: BTreeMap<(usize, bool), Millis>,
    /// `--sync N` writes waiting: waiter → seq.
    waiting: BTreeMap<u64, u64>,
    next_waiter: u64,
    master_tick_at: Option<Millis>,
    /// Client writes made as an atomic batch of several puts.
    pub batches: u64,
    pub acked: u64,
    pub sync_failed: u64,
    pub steps: u64,
    /// `SIM_TRACE=1`: print every event and action.
    pub trace: bool,
}

const HISTORY: u64 = 0x4859_5048_4153_494d;
/// The master's term: every frame and record of the run carries it.
const TERM: u64 = 7;

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let setup = Setup::random(&mut rng);
        let params = MasterParams {
            node_id: 1,
            history_id: HISTORY,
            term: TERM,
            terms: vec![TermStart {
                term: TERM,
                first_seq: 1,
            }],
            sync: setup.sync,
            sync_timeout_ms: 1_000,
            heartbeat_ms: HEARTBEAT_MS,
            heartbeat_timeout_ms: HEARTBEAT_TIMEOUT_MS,
            forget_after_ms: 2_000,
        };
        let fparams = FollowerParams {
            heartbeat_timeout_ms: HEARTBEAT_TIMEOUT_MS,
            accept_new_history: false,
        };
        let workers = (0..setup.workers)
            .map(|_| WorkerNode {
                follower: Follower::new(fparams.clone(), 0, 0),
                store: WorkerStore::default(),
                durable: WorkerStore::default(),
                durable_mark: 0,
                peak: 0,
                tmp: None,
                pending: None,
                conn: None,
                up: true,
                incarnation: 0,
                tick_at: None,
            })
            .collect();
        let mut world = World {
            rng,
            setup,
            now: 0,
            queue: BinaryHeap::new(),
            order: 0,
            master: Some(MasterCore::new(params.clone(), 0, 0)),
            params,
            store: MasterStore::new(),
            incarnation: 0,
            last_commit_at: 0,
            workers,
            conns: BTreeMap::new(),
            next_conn: 1,
            cut: BTreeMap::new(),
            waiting: BTreeMap::new(),
            next_waiter: 1,
            master_tick_at: None,
            acked: 0,
            batches: 0,
            sync_failed: 0,
            steps: 0,
            trace: std::env::var_os("SIM_TRACE").is_some(),
        };
        world.at(0, Ev::ClientWrite);
        world.at(0, Ev::Fault);
        for w in 0..world.workers.len() {
            world.at(0, Ev::WorkerTick(w));
            world.at(world.params.heartbeat_ms, Ev::Beat(w));
        }
        world.at(0, Ev::MasterTick);
        world
    }

    fn at(&mut self, t: Millis, ev: Ev) {
        self.order += 1;
        self.queue.push(std::cmp::Reverse((t, self.order, ev)));
    }

    fn delay(&mut self) -> Millis {
        self.rng.range(0, 5)
    }

    /// When a message sent now from `w`'s side (or to it) gets there.
    fn arrival(&mut self, w: usize, to_master: bool) -> Millis {
        let d = self.delay();
        let healed = self.cut.get(&(w, to_master)).copied().unwrap_or(0);
        self.now.max(healed) + d
    }

    fn busy(&self) -> bool {
        self.now < self.setup.busy_ms
    }

    /// Runs until the settle time passed; `Err` names a broken invariant.
    pub fn run(&mut self) -> Result<(), String> {
        let end = self.setup.busy_ms + self.setup.settle_ms;
        while let Some(std::cmp::Reverse((t, _, ev))) = self.queue.pop() {
            if t > end {
                break;
            }
            self.now = t;
            self.steps += 1;
            if self.trace {
                eprintln!("{t:>6} {ev:?}");
            }
            self.step(ev)?;
            self.check()?;
        }
        self.converged()
    }

    fn step(&mut self, ev: Ev) -> Result<(), String> {
        match ev {
            Ev::ClientWrite => self.client_write(),
            Ev::Commit { incarnation, seq } => {
                if incarnation == self.incarnation && self.master.is_some() {
                    self.store.committed = self.store.committed.max(seq);
                    self.master_event(MasterEvent::Committed { seq })?;
                    if self.params.sync != SyncMode::Async {
                        let waiter = self.next_waiter;
                        self.next_waiter += 1;
                        self.waiting.insert(waiter, seq);
                        self.master_event(MasterEvent::AwaitWorkers { waiter, seq })?;
                    } else {
                        self.acked += 1;
                    }
                }
            }
            Ev::Deliver { conn, to_master } => self.deliver(conn, to_master)?,
            Ev::MasterTick => {
                self.master_tick_at = None;
                if self.master.is_some() {
                    self.master_event(MasterEvent::Tick)?;
                }
            }
            Ev::WorkerTick(w) => {
                self.workers[w].tick_at = None;
                if self.workers[w].up {
                    self.worker_event(w, FollowerEvent::Tick)?;
                }
            }
            Ev::LogRead { conn, after, upto } => self.log_read(conn, after, upto)?,
            Ev::Sent { conn } => {
                if self.conns.get(&conn).is_some_and(|c| c.open) {
                    self.master_event(MasterEvent::Sent { conn })?;
                }
            }
            Ev::Applied { w, incarnation } => self.applied(w, incarnation)?,
            Ev::Beat(w) => self.beat(w),
            Ev::BeatToMaster(w) => {
                if self.master.is_some() {
                    let node = node_of(w);
                    self.master_event(MasterEvent::Heard {
                        node,
                        serve_port: 1,
                    })?;
                    if self.rng.chance(1000 - self.setup.loss) && !self.is_cut(w, false) {
                        let t = self.now + self.delay();
                        self.at(t, Ev::BeatToWorker(w));
                    }
                }
            }
            Ev::BeatToWorker(w) => {
                if self.workers[w].up {
                    self.worker_event(w, FollowerEvent::MasterHeard)?;
                }
            }
            Ev::Fault => self.fault(),
            Ev::MasterUp if self.master.is_some() => {}
            Ev::WorkerUp(w) if self.workers[w].up => {}
            Ev::MasterUp => {
                let seq = self.store.committed;
                self.master = Some(MasterCore::new(self.params.clone(), seq, self.now));
                self.master_tick_at = None;
                self.schedule_master_tick();
            }
            Ev::WorkerUp(w) => {
                let node = &mut self.workers[w];
                node.up = true;
                node.store = node.durable.clone();
                let fparams = FollowerParams {
                    heartbeat_timeout_ms: HEARTBEAT_TIMEOUT_MS,
                    accept_new_history: false,
                };
                node.follower = Follower::new(fparams, node.store.followed, node.store.applied);
                node.tick_at = None;
                self.schedule_worker_tick(w);
            }
            Ev::Closed { conn, to_master } => {
                if to_master {
                    let current = self.conns.get(&conn).map(|c| c.master_incarnation);
                    if self.master.is_some() && current == Some(self.incarnation) {
                        self.master_event(MasterEvent::Closed { conn })?;
                    }
                } else if let Some(w) = self.conns.get(&conn).map(|c| c.w) {
                    if self.workers[w].conn == Some(conn) && self.workers[w].up {
                        self.workers[w].conn = None;
                        let why = "connection closed".to_string();
                        self.worker_event(w, FollowerEvent::Failed { why })?;
                    }
                }
            }
            Ev::ConnectFailed { w, conn } => {
                if self.workers[w].conn == Some(conn) && self.workers[w].up {
                    self.close_conn(conn);
                    self.workers[w].conn = None;
                    let why = "connect timed out".to_string();
                    self.worker_event(w, FollowerEvent::Failed { why })?;
                }
            }
        }
        Ok(())
    }

    fn client_write(&mut self) {
        if !self.busy() {
            return;
        }
        let next = self.now + self.rng.range(1, 20);
        self.at(next, Ev::ClientWrite);
        if self.master.is_none() {
            return;
        }
        let key = vec![self.rng.range(0, 11) as u8];
        let written = if self.rng.chance(200) {
            // An atomic batch of 2-4 puts (keys may repeat).
            let n = self.rng.range(2, 5);
            let puts = (0..n)
                .map(|_| {
                    let key = vec![self.rng.range(0, 11) as u8];
                    (key, self.rng.next().to_le_bytes().to_vec())
                })
                .collect();
            self.batches += 1;
            Some(self.store.write_batch(puts))
        } else {
            let value = if self.rng.chance(200) {
                None
            } else {
                Some(self.rng.next().to_le_bytes().to_vec())
            };
            self.store.write(key, value)
        };
        if let Some(seq) = written {
            // Group commit: commits finish in seq order.
            let t = (self.now + self.rng.range(0, 4)).max(self.last_commit_at);
            self.last_commit_at = t;
            let incarnation = self.incarnation;
            self.at(t, Ev::Commit { incarnation, seq });
        }
    }

    fn is_cut(&self, w: usize, to_master: bool) -> bool {
        self.cut
            .get(&(w, to_master))
            .is_some_and(|&until| until > self.now)
    }

    fn beat(&mut self, w: usize) {
        let next = self.now + HEARTBEAT_MS;
        self.at(next, Ev::Beat(w));
        let connected = self.workers[w].conn.is_some();
        if !self.workers[w].up || !connected || self.is_cut(w, true) {
            return;
        }
        let copies = if self.rng.chance(self.setup.dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.rng.chance(1000 - self.setup.loss) {
                let t = self.now + self.rng.range(0, 30);
                self.at(t, Ev::BeatToMaster(w));
            }
        }
    }

    fn send(&mut self, conn: u64, to_master: bool, msg: Message) {
        let Some(w) = self.conns.get(&conn).filter(|c| c.open).map(|c| c.w) else {
            return;
        };
        if self.rng.chance(self.setup.reset) {
            self.reset(conn);
            return;
        }
        let mut t = self.arrival(w, to_master);
        let c = self.conns.get_mut(&conn).expect("open conn");
        let q = if to_master { &mut c.w2m } else { &mut c.m2w };
        if let Some(&(last, _)) = q.back() {
            t = t.max(last);
        }
        q.push_back((t, msg));
        self.at(t, Ev::Deliver { conn, to_master });
    }

    fn deliver(&mut self, conn: u64, to_master: bool) -> Result<(), String> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(());
        };
        let w = c.w;
        if to_master {
            let Some(&(t, _)) = c.w2m.front() else {
                return Ok(());
            };
            if t > self.now || self.master.is_none() {
                return Ok(());
            }
            let (_, msg) = c.w2m.pop_front().expect("front");
            if c.w2m.len() + 1 == WINDOW {
                self.at(
                    self.now,
                    Ev::Deliver {
                        conn,
                        to_master: false,
                    },
                );
            }
            let c = self.conns.get_mut(&conn).expect("conn");
            if c.master_incarnation != self.incarnation {
                return Ok(());
            }
            return self.at_master(conn, w, msg);
        }
        if self.workers[w].conn != Some(conn) || !self.workers[w].up {
            return Ok(());
        }
        let Some(&(t, _)) = c.m2w.front() else {
            return Ok(());
        };
        let node = &self.workers[w];
        let connecting = *node.follower.phase() == hypha_repl::Phase::Connecting;
        // A worker whose own sends are stuck (its socket buffer full) reads
        // no further, as the server's driver blocks on its send.
        let stuck = c.w2m.len() >= WINDOW;
        if t > self.now || stuck || !(connecting || node.follower.wants_message()) {
            return Ok(());
        }
        let (_, msg) = c.m2w.pop_front().expect("front");
        if c.sent_owed && c.m2w.len() < WINDOW {
            c.sent_owed = false;
            self.at(self.now, Ev::Sent { conn });
        }
        if let Some(&(next, _)) = self.conns[&conn].m2w.front() {
            self.at(next.max(self.now), Ev::Deliver { conn, to_master });
        }
        let event = match msg {
            Message::Welcome(welcome) if connecting => FollowerEvent::Welcomed {
                node_id: welcome.node_id,
                history_id: welcome.history_id,
                commit_seq: welcome.commit_seq,
                term: welcome.term,
                terms: welcome.terms,
                // Every record of the run is of `TERM`.
                mine: match self.workers[w].store.applied {
                    0 => TermHistory::new(),
                    _ => TermHistory::from_starts(&[TermStart {
                        term: TERM,
                        first_seq: 1,
                    }])?,
                },
            },
            Message::Refuse(r) if connecting => FollowerEvent::Refused {
                history_mismatch: matches!(r.reason, RefuseReason::HistoryMismatch { .. }),
                message: r.message.to_string(),
            },
            other => FollowerEvent::Received(other),
        };
        self.worker_event(w, event)
    }

    fn at_master(&mut self, conn: u64, w: usize, msg: Message) -> Result<(), String> {
        let event = match msg {
            Message::Hello(hello) => MasterEvent::Joined {
                conn,
                join: Join {
                    node: hello.node_id,
                    role: hello.role,
                    history_id: hello.history_id,
                    applied_seq: hello.applied_seq,
                    last_term: hello.last_term,
                    peer: SocketAddr::from(([10, 0, 0, w as u8], 9000)),
                },
                horizon: self.store.horizon,
                beats: (),
            },
            other => MasterEvent::Received { conn, msg: other },
        };
        self.master_event(event)
    }
}

/// The node id of worker `w`.
pub fn node_of(w: usize) -> u64 {
    100 + w as u64
}

mod drive;
mod faults;

impl World {
    fn check(&self) -> Result<(), String> {
        crate::check::step(self)
    }

    fn converged(&self) -> Result<(), String> {
        crate::check::converged(self)
    }

    pub(crate) fn worker_views(&self) -> impl Iterator<Item = (usize, &WorkerStore, bool)> {
        self.workers
            .iter()
            .enumerate()
            .map(|(i, w)| (i, &w.store, w.up))
    }

    pub(crate) fn queue_lens(&self) -> (usize, usize, usize) {
        let conn_max = self
            .conns
            .values()
            .map(|c| c.m2w.len().max(c.w2m.len()))
            .max()
            .unwrap_or(0);
        let core = self.master.as_ref().map_or(0, |m| m.queue_lens().0);
        (self.queue.len(), conn_max, core)
    }

    pub(crate) fn master_up(&self) -> bool {
        self.master.is_some()
    }

    pub(crate) fn digest_of_master(&self) -> u64 {
        digest(&self.store.state_at(self.store.committed))
    }
}
