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

mod ballots;
mod roles;

use crate::group::Elector;
use crate::wire::{self, Keys};
use hypha_engine::{Db, Options};
use hypha_net::{Allowlist, Ballot, LogId, Purpose, RefuseReason};
use hypha_repl::election::{
    Election, ElectionAction, ElectionEvent, ElectionParams, Persisted, Seat,
};
use hypha_repl::Millis;
use roles::Active;
use smol::net::{TcpListener, UdpSocket};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most ballots waiting for the election task, and for each member's
/// connection; more are dropped (as a lossy network would: the election
/// retries on its timers).
pub const BALLOTS_QUEUED_MAX: usize = 64;

/// How to run a member.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// Data directory (the database lives in `DIR/db`).
    pub data: PathBuf,
    /// Every member's address, this one's included, in the same order on
    /// every member.
    pub peers: Vec<SocketAddr>,
    /// This member's index in `peers` (where it listens).
    pub me: usize,
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
        self.peers[self.me]
    }

    /// The group's member-list id (`hypha_net::group_id`).
    pub fn group_id(&self) -> u64 {
        let texts: Vec<String> = self.peers.iter().map(|a| a.to_string()).collect();
        hypha_net::group_id(&texts)
    }
}

/// A running member.
pub struct Member {
    cfg: MemberConfig,
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
    /// Ballots for each member (none for this one).
    #[allow(clippy::type_complexity)]
    outboxes: Vec<
        Option<(
            smol::channel::Sender<Ballot>,
            smol::channel::Receiver<Ballot>,
        )>,
    >,
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
    Ballot(usize, Ballot),
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
    pub async fn bind_on(cfg: MemberConfig, listener: TcpListener) -> std::io::Result<Arc<Member>> {
        let db = crate::worker::open_data(&cfg.data, &cfg.engine)?;
        db.sync().map_err(std::io::Error::other)?;
        let (term, seq) = db.last_log_id();
        log::info!(
            "member {} of {} on {}: term {}, log ends at seq {seq} of term {term}, {} keys",
            cfg.me,
            cfg.peers.len(),
            cfg.listen(),
            db.vote().term,
            db.len()
        );
        Member::with(
            cfg,
            Active::idle(Arc::new(db)),
            LogId { term, seq },
            listener,
        )
        .await
    }

    /// A witness (`hypha witness`): it votes and counts toward a majority,
    /// keeps only its term, vote and the newest log id a leader told it
    /// (`hypha_engine::WitnessStore`), and never leads or serves data.
    pub async fn bind_witness(cfg: MemberConfig) -> std::io::Result<Arc<Member>> {
        let store = hypha_engine::WitnessStore::open(&cfg.data).map_err(std::io::Error::other)?;
        let last = store.last();
        log::info!(
            "witness {} of {} on {}: term {}, vouches for seq {} of term {}",
            cfg.me,
            cfg.peers.len(),
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
        Member::with(cfg, Active::Witness(Arc::new(store)), last, listener).await
    }

    async fn with(
        cfg: MemberConfig,
        active: Active,
        last: LogId,
        listener: TcpListener,
    ) -> std::io::Result<Arc<Member>> {
        std::fs::create_dir_all(&cfg.data)?;
        let node_id = wire::node_id(&cfg.data.join("node-id"))?;
        let udp = UdpSocket::bind(listener.local_addr()?).await?;
        let witnesses = (0..cfg.peers.len())
            .map(|_| AtomicBool::new(false))
            .collect();
        let (inbox, inbox_rx) = smol::channel::bounded(BALLOTS_QUEUED_MAX);
        let outboxes = (0..cfg.peers.len())
            .map(|i| (i != cfg.me).then(|| smol::channel::bounded(BALLOTS_QUEUED_MAX)))
            .collect();
        Ok(Arc::new(Member {
            group: cfg.group_id(),
            gate: crate::gate::Gate::new(cfg.connections_max),
            cfg,
            node_id,
            listener,
            udp: Arc::new(udp),
            active: Mutex::new(active),
            witnesses,
            acks: Arc::new(smol::lock::RwLock::new(0)),
            inbox,
            inbox_rx,
            reads: Mutex::new(std::collections::HashMap::new()),
            next_read: AtomicU64::new(1),
            outboxes,
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
        let _dialers: Vec<_> = (0..self.cfg.peers.len())
            .filter(|&i| i != self.cfg.me)
            .map(|i| crate::rt::spawn(self.clone().dial(i)))
            .collect();
        self.elect().await
    }

    /// Serves one authenticated connection: ballots from another member,
    /// or whatever the current role serves.
    async fn session(
        self: Arc<Self>,
        accepted: wire::Accepted,
        peer: SocketAddr,
    ) -> std::io::Result<()> {
        if let Purpose::Elect { member, group } = accepted.hello.purpose {
            return self.ballots_from(accepted, member, group, peer).await;
        }
        let serving = lock(&self.active).serving(&self.cfg.peers);
        let Some((role, life)) = serving else {
            let mut w = accepted.w;
            let why = match self.witness() {
                Some(_) => format!(
                    "member {} is a witness: it keeps no data; ask a data member",
                    self.cfg.me
                ),
                None => format!(
                    "member {} knows no leader yet (an election is under way); retry shortly",
                    self.cfg.me
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
                            self.cfg.me
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

    /// The election task: feeds the election its timer, ballots and
    /// replication's reports, and carries out what it says, in order.
    async fn elect(self: Arc<Self>) -> Result<(), String> {
        let vote = match (self.witness(), self.db()) {
            (Some(w), _) => w.vote(),
            (None, Some(db)) => db.vote(),
            (None, None) => return Err("no database".into()),
        };
        let last = *lock(&self.last);
        let persisted = Persisted {
            term: vote.term,
            voted_for: vote.voted_for.map(|m| m as usize),
        };
        let seat = Seat {
            me: self.cfg.me,
            members: self.cfg.peers.len(),
            may_lead: self.witness().is_none(),
        };
        let seed = hypha_engine::random_u64();
        let mut e = Election::new(seat, self.cfg.election, persisted, last, seed, self.now());
        *self.acks.write().await = vote.term;
        let (mut fed_last, mut fed_term) = (last, vote.term);
        loop {
            let poked = self.poke.listen();
            self.feed_last(&mut e, &mut fed_last).await?;
            let t = self.seen_term.load(Ordering::Acquire);
            if t > fed_term {
                fed_term = t;
                self.step(&mut e, &mut fed_last, ElectionEvent::SawTerm(t))
                    .await?;
            }
            let at = e.next_deadline();
            let wait = Duration::from_millis(at.saturating_sub(self.now()));
            let event = smol::future::or(
                async {
                    match self.inbox_rx.recv().await {
                        Ok(Input::Ballot(from, msg)) => Some(ElectionEvent::Received { from, msg }),
                        Ok(Input::Gone(from)) => Some(ElectionEvent::LeaderGone(from)),
                        Ok(Input::Read(id)) => Some(ElectionEvent::ReadIndex(id)),
                        Err(_) => std::future::pending().await,
                    }
                },
                smol::future::or(
                    async {
                        smol::Timer::after(wait).await;
                        Some(ElectionEvent::Tick)
                    },
                    async {
                        poked.await;
                        None
                    },
                ),
            )
            .await;
            if let Some(event) = event {
                self.step(&mut e, &mut fed_last, event).await?;
            }
        }
    }

    /// Feeds the election one event. An event of a higher term first stops
    /// this member's acknowledgements to the old leader, then gives the
    /// election the final log id (every record acknowledged so far was
    /// reported before its ack went out): a vote decided after that counts
    /// every record this member vouched for.
    async fn step(
        self: &Arc<Self>,
        e: &mut Election,
        fed_last: &mut LogId,
        event: ElectionEvent,
    ) -> Result<(), String> {
        let higher = match &event {
            ElectionEvent::Received { msg, .. } => match msg {
                Ballot::PreVote { .. } | Ballot::PreVoteReply { granted: true, .. } => None,
                other => Some(other.term()),
            },
            ElectionEvent::SawTerm(t) => Some(*t),
            _ => None,
        };
        if let Some(t) = higher.filter(|&t| t > e.term()) {
            self.fence(t).await;
            self.feed_last(e, fed_last).await?;
        }
        let acts = e.handle(event, self.now());
        // Its own campaign raised the term.
        if e.term() > *self.acks.read().await {
            self.fence(e.term()).await;
        }
        self.act(acts).await
    }

    async fn fence(&self, term: u64) {
        let mut acks = self.acks.write().await;
        *acks = (*acks).max(term);
    }

    async fn feed_last(
        self: &Arc<Self>,
        e: &mut Election,
        fed_last: &mut LogId,
    ) -> Result<(), String> {
        let l = *lock(&self.last);
        if l == *fed_last {
            return Ok(());
        }
        *fed_last = l;
        let acts = e.handle(ElectionEvent::LogChanged(l), self.now());
        self.act(acts).await
    }

    /// Carries out the election's actions in order: a persist completes
    /// before anything after it.
    async fn act(self: &Arc<Self>, acts: Vec<ElectionAction>) -> Result<(), String> {
        for a in acts {
            match a {
                ElectionAction::Persist { term, voted_for } => {
                    self.persist(term, voted_for).await?;
                }
                ElectionAction::Send { to, msg } => {
                    if let Some(Some((out, _))) = self.outboxes.get(to) {
                        let _ = out.try_send(msg);
                    }
                }
                ElectionAction::BecomeLeader { term } => {
                    log::info!(
                        "member {}: leads term {term} (log ends at {:?})",
                        self.cfg.me,
                        *lock(&self.last)
                    );
                    self.lead(term).await?;
                }
                ElectionAction::BecomeFollower { term, leader } => {
                    self.follow(term, leader).await?;
                }
                ElectionAction::ReadConfirmed { id } => self.read_done(id, true),
                ElectionAction::ReadFailed { id } => self.read_done(id, false),
                ElectionAction::PersistLast { last } => self.persist_last(last).await?,
                ElectionAction::Acked { from, last } => self.witness_acked(from, last),
            }
        }
        Ok(())
    }

    fn read_done(&self, id: u64, leads: bool) {
        if let Some(tx) = lock(&self.reads).remove(&id) {
            let _ = tx.try_send(leads);
        }
    }

    /// This member's witness state, if it is a witness.
    fn witness(&self) -> Option<Arc<hypha_engine::WitnessStore>> {
        match &*lock(&self.active) {
            Active::Witness(w) => Some(w.clone()),
            _ => None,
        }
    }

    /// A witness: makes the log id it is about to vouch for durable.
    async fn persist_last(&self, last: LogId) -> Result<(), String> {
        let Some(w) = self.witness() else {
            return Ok(());
        };
        let at = hypha_engine::WitnessLast {
            term: last.term,
            seq: last.seq,
        };
        smol::unblock(move || w.set_last(at))
            .await
            .map_err(|e| format!("cannot make log id {last:?} durable: {e}"))
    }

    /// A leader heard member `from` hold `last`: a witness's acknowledgement
    /// counts toward the majority when it is of this leader's term.
    fn witness_acked(&self, from: usize, last: LogId) {
        if !self
            .witnesses
            .get(from)
            .is_some_and(|w| w.load(Ordering::Relaxed))
        {
            return;
        }
        if let Active::Leading { master, .. } = &*lock(&self.active) {
            master.witness_ack(from, last);
        }
    }

    /// Makes the term and vote durable (on the blocking pool).
    async fn persist(&self, term: u64, voted_for: Option<usize>) -> Result<(), String> {
        let vote = hypha_engine::Vote {
            term,
            voted_for: voted_for.map(|m| m as u32),
        };
        if let Some(w) = self.witness() {
            return smol::unblock(move || w.set_vote(vote))
                .await
                .map_err(|e| format!("cannot make term {term} and its vote durable: {e}"));
        }
        loop {
            if let Some(db) = self.db() {
                return smol::unblock(move || db.set_vote(vote))
                    .await
                    .map_err(|e| format!("cannot make term {term} and its vote durable: {e}"));
            }
            // Roles are switching or a snapshot is being swapped in.
            smol::Timer::after(Duration::from_millis(1)).await;
        }
    }
}
