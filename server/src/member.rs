//! A member of a failover group (`hypha member`): a data node that any
//! election may make the group's master.
//!
//! One database, one listener, three jobs:
//! - the **election** (`hypha_repl::election`, Raft's rules with pre-vote
//!   and check-quorum) runs in one task fed by `Ballot`s from the other
//!   members (connections of purpose `Elect`, `ballots.rs`), its timer, and
//!   what replication reports (a higher term seen, the newest durable log
//!   id); its term and vote are fsynced before anything that rests on them;
//! - while it **leads**, the member runs the master driver
//!   (`crate::master`) around its database in majority mode: each write is
//!   stamped with the term and acknowledged once a majority of members hold
//!   it durably;
//! - while it **follows**, it runs the worker driver (`crate::worker`)
//!   against the leader: it acknowledges records once durable, cuts its
//!   log back where it diverged from the leader's, and serves reads.
//!
//! Switching roles ends every connection of the old role (`Life`) before
//! the new one starts, so a deposed leader answers no write after it knows
//! it was deposed. See `docs/design.md`, "Failover".

mod admin;
mod ask;
mod ballots;
mod elect;
mod list;
mod roles;

use crate::group::Elector;
use crate::wire::{self, Keys};
pub use admin::MEMBER_CATCH_UP_MS;
pub use ask::ask_member;
use hypha_engine::{Db, Options};
use hypha_net::{Allowlist, LogId, Membership, Message, Purpose, RefuseReason, MEMBERS_MAX};
use hypha_repl::election::ElectionParams;
use hypha_repl::Millis;
pub use list::addrs;
use roles::Active;
use smol::net::{TcpListener, UdpSocket};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Most ballots waiting for the election task, and for each member's
/// connection; more are dropped (as a lossy network would: the election
/// retries on its timers).
pub const BALLOTS_QUEUED_MAX: usize = 64;

/// How to run a member.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// Data directory (the database lives in `DIR/db`).
    pub data: PathBuf,
    /// Where this member listens: its address in the member list.
    pub listen: SocketAddr,
    /// The group's first member list (`--peers`: every member's address,
    /// the same list in the same order on every member), or the list a new
    /// member fetched (`--join`). Once the log holds a list (the group
    /// changed since), that one counts.
    pub first: Membership,
    /// Members to fetch the list from when this one is new to the group
    /// (`--join`; `first` is then unused until the list arrives).
    pub join: Vec<SocketAddr>,
    /// Engine options.
    pub engine: Options,
    /// Peers allowed to connect (all when `None`).
    pub allow: Option<Allowlist>,
    /// Cluster name every node must agree on.
    pub cluster: String,
    /// Heartbeats and election timeouts.
    pub election: ElectionParams,
    /// How long a write waits for a majority before it is answered as
    /// unconfirmed.
    pub sync_timeout_ms: u64,
    /// The cluster keys every connection must prove.
    pub keys: Keys,
    /// Most connections open at once.
    pub connections_max: usize,
    /// A request connection silent this long is closed.
    pub idle_timeout_ms: u64,
    /// A connection that has not proved the key this long after it was
    /// accepted is closed.
    pub handshake_timeout_ms: u64,
}

impl MemberConfig {
    /// This member's address.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The group's id (`hypha_net::group_id` of its first list).
    pub fn group_id(&self) -> u64 {
        self.first.group
    }

    /// The first list of a group whose members listen at `peers`.
    pub fn first_list(peers: &[SocketAddr]) -> Membership {
        let texts: Vec<String> = peers.iter().map(|a| a.to_string()).collect();
        Membership::first(&texts)
    }
}

/// Where ballots for one member wait, and the task that sends them.
struct Outbox {
    tx: smol::channel::Sender<Message>,
    _task: smol::Task<()>,
}

/// A running member.
pub struct Member {
    cfg: MemberConfig,
    /// This member's id in the list.
    me: usize,
    /// The member list in use: the newest the log holds (a witness: the
    /// newest it was told).
    list: Mutex<Membership>,
    /// The node id each member's `Elect` hello named (0: none yet): a
    /// leader counts the acknowledgements of the list's voters by it.
    node_of: Vec<AtomicU64>,
    /// A list change is being made (one at a time), and the seq of the
    /// last list written: the next waits until a majority holds it.
    changing: smol::lock::Mutex<()>,
    list_seq: AtomicU64,
    /// Another member refused this one as removed (that list's epoch + 1).
    told_removed: AtomicU64,
    group: u64,
    node_id: u64,
    listener: TcpListener,
    /// The leader role answers workers' heartbeats here (the listen port).
    udp: Arc<UdpSocket>,
    gate: Arc<crate::gate::Gate>,
    active: Mutex<Active>,
    /// What the election task must hear besides its timer.
    inbox: smol::channel::Sender<Input>,
    inbox_rx: smol::channel::Receiver<Input>,
    /// Reads waiting for a read-index round, by id.
    reads: Mutex<std::collections::HashMap<u64, smol::channel::Sender<bool>>>,
    next_read: AtomicU64,
    /// Ballots for each member of the list (none for this one), by id.
    outboxes: Mutex<Vec<Option<Outbox>>>,
    /// What replication reported for the election: the newest durable log
    /// id and the highest term seen; `poke` wakes the election task.
    last: Mutex<LogId>,
    seen_term: AtomicU64,
    poke: event_listener::Event,
    clock: Instant,
    /// Which members said they are witnesses (their `Elect` hello): a
    /// leader counts their acknowledgements toward the majority.
    witnesses: Vec<AtomicBool>,
    /// The term this member's acknowledgements may be sent in (see
    /// `InGroup::acks`).
    acks: Arc<smol::lock::RwLock<u64>>,
}

/// What reaches the election task from other tasks.
enum Input {
    /// A ballot from member `0`.
    Ballot(usize, hypha_net::Ballot),
    /// Member `0`'s connection closed.
    Gone(usize),
    /// A linearizable read (its id) needs a read-index round.
    Read(u64),
}

/// Most reads waiting for a read-index round at once; more are refused
/// (the edge tries again).
pub const READS_WAITING_MAX: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The election's view of a member: replication reports land here.
struct Reports(std::sync::Weak<Member>);

impl Elector for Reports {
    fn saw_term(&self, term: u64) {
        if let Some(m) = self.0.upgrade() {
            m.seen_term.fetch_max(term, Ordering::AcqRel);
            m.poke.notify(1);
        }
    }

    fn log_changed(&self, last: LogId) {
        if let Some(m) = self.0.upgrade() {
            *lock(&m.last) = last;
            m.poke.notify(1);
        }
    }

    fn read_index(&self) -> smol::channel::Receiver<bool> {
        let (tx, rx) = smol::channel::bounded(1);
        let Some(m) = self.0.upgrade() else {
            let _ = tx.try_send(false);
            return rx;
        };
        let id = m.next_read.fetch_add(1, Ordering::Relaxed);
        {
            let mut reads = lock(&m.reads);
            if reads.len() >= READS_WAITING_MAX {
                let _ = tx.try_send(false);
                return rx;
            }
            reads.insert(id, tx);
        }
        if m.inbox.try_send(Input::Read(id)).is_err() {
            if let Some(tx) = lock(&m.reads).remove(&id) {
                let _ = tx.try_send(false);
            }
        }
        rx
    }
}

impl Member {
    /// Opens the database (making what it holds durable first: the
    /// election compares logs by what survives a crash) and binds the
    /// sockets.
    pub async fn bind(cfg: MemberConfig) -> std::io::Result<Arc<Member>> {
        let listener = TcpListener::bind(cfg.listen()).await?;
        Member::bind_on(cfg, listener).await
    }

    /// [`Member::bind`] on a listener bound already at `cfg.listen()`: the
    /// all-in-one `hypha --failover` binds every member's port first, so
    /// that each member can be told every address.
    pub async fn bind_on(
        mut cfg: MemberConfig,
        listener: TcpListener,
    ) -> std::io::Result<Arc<Member>> {
        let db = crate::worker::open_data(&cfg.data, &cfg.engine)?;
        db.sync().map_err(std::io::Error::other)?;
        let (term, seq) = db.last_log_id();
        let list = match list::list_in(&db).map_err(std::io::Error::other)? {
            Some(list) => list,
            None if !cfg.join.is_empty() => list::fetch(&cfg).await,
            None => cfg.first.clone(),
        };
        if !cfg.join.is_empty() {
            cfg.first = list.clone();
        }
        let me = list::me_in(&cfg, &list)?;
        log::info!(
            "member {me} of {} on {}: term {}, log ends at seq {seq} of term {term}, {} keys",
            list.slots.len(),
            cfg.listen(),
            db.vote().term,
            db.len()
        );
        let active = Active::idle(Arc::new(db));
        Member::with(cfg, list, me, active, LogId { term, seq }, listener).await
    }

    /// A witness (`hypha witness`): it votes and counts toward a majority,
    /// keeps only its term, vote and the newest log id a leader told it
    /// (`hypha_engine::WitnessStore`), and never leads or serves data.
    pub async fn bind_witness(cfg: MemberConfig) -> std::io::Result<Arc<Member>> {
        let store = hypha_engine::WitnessStore::open(&cfg.data).map_err(std::io::Error::other)?;
        let mut cfg = cfg;
        if !cfg.join.is_empty() && !list::witness_told(&cfg) {
            cfg.first = list::fetch(&cfg).await;
        }
        let list = list::witness_list(&cfg).map_err(std::io::Error::other)?;
        if !cfg.join.is_empty() {
            cfg.first = list.clone();
        }
        let me = list::me_in(&cfg, &list)?;
        let last = store.last();
        log::info!(
            "witness {me} of {} on {}: term {}, vouches for seq {} of term {}",
            list.slots.len(),
            cfg.listen(),
            store.vote().term,
            last.seq,
            last.term
        );
        let last = LogId {
            term: last.term,
            seq: last.seq,
        };
        let listener = TcpListener::bind(cfg.listen()).await?;
        let active = Active::Witness(Arc::new(store));
        Member::with(cfg, list, me, active, last, listener).await
    }

    async fn with(
        cfg: MemberConfig,
        list: Membership,
        me: usize,
        active: Active,
        last: LogId,
        listener: TcpListener,
    ) -> std::io::Result<Arc<Member>> {
        std::fs::create_dir_all(&cfg.data)?;
        let node_id = wire::node_id(&cfg.data.join("node-id"))?;
        let udp = UdpSocket::bind(listener.local_addr()?).await?;
        let (inbox, inbox_rx) = smol::channel::bounded(BALLOTS_QUEUED_MAX);
        Ok(Arc::new(Member {
            group: cfg.group_id(),
            gate: crate::gate::Gate::new(cfg.connections_max),
            cfg,
            me,
            list: Mutex::new(list),
            node_of: (0..MEMBERS_MAX).map(|_| AtomicU64::new(0)).collect(),
            changing: smol::lock::Mutex::new(()),
            list_seq: AtomicU64::new(0),
            told_removed: AtomicU64::new(0),
            node_id,
            listener,
            udp: Arc::new(udp),
            active: Mutex::new(active),
            witnesses: (0..MEMBERS_MAX).map(|_| AtomicBool::new(false)).collect(),
            acks: Arc::new(smol::lock::RwLock::new(0)),
            inbox,
            inbox_rx,
            reads: Mutex::new(std::collections::HashMap::new()),
            next_read: AtomicU64::new(1),
            outboxes: Mutex::new((0..MEMBERS_MAX).map(|_| None).collect()),
            last: Mutex::new(last),
            seen_term: AtomicU64::new(0),
            poke: event_listener::Event::new(),
            clock: Instant::now(),
        }))
    }

    fn now(&self) -> Millis {
        self.clock.elapsed().as_millis() as Millis
    }

    /// The database, whichever role holds it (`None` for a moment while
    /// roles switch or a snapshot is swapped in).
    pub fn db(&self) -> Option<Arc<Db>> {
        lock(&self.active).db()
    }

    /// Runs until the future is dropped or the member cannot go on (its
    /// vote could not be made durable); the error says why.
    pub async fn run(self: Arc<Self>) -> Result<(), String> {
        let port = crate::gate::Port {
            who: "member",
            allow: self.cfg.allow.clone(),
            listed: Some(self.listed()),
            keys: self.cfg.keys.clone(),
            cluster: self.cfg.cluster.clone(),
            handshake_ms: self.cfg.handshake_timeout_ms,
            gate: self.gate.clone(),
        };
        let me = self.clone();
        let _serve = crate::rt::spawn(async move {
            let serving = me.clone();
            crate::gate::serve_port(&me.listener, port, move |accepted, peer| {
                serving.clone().session(accepted, peer)
            })
            .await
        });
        self.ensure_dialers();
        let result = self.clone().elect().await;
        // The ballot senders hold the member: end them.
        lock(&self.outboxes).iter_mut().for_each(|o| *o = None);
        result
    }

    /// Serves one authenticated connection: ballots from another member,
    /// or whatever the current role serves.
    async fn session(
        self: Arc<Self>,
        accepted: wire::Accepted,
        peer: SocketAddr,
    ) -> std::io::Result<()> {
        match accepted.hello.purpose {
            Purpose::Elect { member, group } => {
                return self.ballots_from(accepted, member, group, peer).await
            }
            Purpose::Members => return self.admin(accepted).await,
            _ => {}
        }
        let serving = lock(&self.active).serving();
        let Some((role, life)) = serving else {
            let mut w = accepted.w;
            let why = match self.witness() {
                Some(_) => format!(
                    "member {} is a witness: it keeps no data; ask a data member",
                    self.me
                ),
                None => format!(
                    "member {} knows no leader yet (an election is under way); retry shortly",
                    self.me
                ),
            };
            wire::refuse(&mut w, RefuseReason::NotMaster, &why).await;
            return Ok(());
        };
        let served = async {
            match role {
                roles::Serving::Master(master) => master.session(accepted, peer).await,
                roles::Serving::Idle(db) => self.serve_idle(db, accepted).await,
                roles::Serving::Worker(worker, leader) => {
                    if accepted.hello.purpose == Purpose::Replicate {
                        let mut w = accepted.w;
                        let why = format!(
                            "member {} follows the leader at {leader}; replicate from it",
                            self.me
                        );
                        wire::refuse(&mut w, RefuseReason::NotMaster, &why).await;
                        return Ok(());
                    }
                    worker.session(accepted).await
                }
            }
        };
        smol::future::or(served, async {
            life.ended().await;
            Err(std::io::Error::other(
                "this member changed role; connect again",
            ))
        })
        .await
    }
}
