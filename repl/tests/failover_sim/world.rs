//! The simulated group: members, the network, faults, clients and the run.

use crate::member::{Conf, Member, Rec};
use crate::net::{Conn, Conns, Item, Side};
pub use crate::simkit::{env_u64, Rng};
use crate::simkit::{healed, link_fault, Links};
use hypha_net::Ballot;
use hypha_repl::election::{ElectionParams, Role, ELECTION_DEFAULTS, ELECTION_ETCD_TIMING};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// Simulated milliseconds of faults, then of healed running.
pub const CHAOS_MS: u64 = 20_000;
pub const HEALED_MS: u64 = 20_000;
/// Writes issued this long after healing must be acknowledged.
const LIVE_AFTER_HEAL_MS: u64 = 8_000;
/// The group's history id (every member starts in it, empty).
pub const HISTORY: u64 = 0x4859_5048_4641_494c;
/// Most items in flight in the network at once (a bounded network).
const IN_FLIGHT_MAX: usize = 50_000;

/// Whether follower `m` reads the next message of `conn` now: one apply
/// at a time on its session; a connection that is not its session (any
/// more) it reads and drops.
fn follower_reads(m: &Member, conn: u64) -> bool {
    match &m.follow {
        Some(f) if f.conn == Some(conn) => {
            *f.core.phase() != hypha_repl::Phase::Following || f.core.wants_message()
        }
        _ => true,
    }
}

/// What happens at a time.
pub enum Ev {
    /// An election datagram arrives.
    Ballot { from: usize, to: usize, msg: Ballot },
    /// A leader's liveness datagram arrives (the UDP heartbeat of a session).
    Beat { from: usize, to: usize },
    /// The head of a connection's queue toward `to` may arrive.
    Conn { conn: u64, to: Side },
    /// A member's own engine work finished (it is ignored if the member
    /// restarted since).
    Local {
        m: usize,
        incarnation: u64,
        work: Work,
    },
}

/// Engine work that takes time.
pub enum Work {
    /// The leader's fdatasync covering `seq` returned.
    Commit(u64),
    /// A follower's apply returned.
    Applied,
    /// A cut returned.
    Truncated,
    /// A cut was refused: compaction merged what it would cut.
    TruncateFailed,
    /// A snapshot was swapped in.
    Installed { history_id: u64 },
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub acked: u64,
    pub unknown: u64,
    pub elections: u64,
    pub truncations: u64,
    pub snapshots: u64,
    pub crashes: u64,
    /// Writes acknowledged with a witness in their majority (the other data
    /// member did not hold them).
    pub witness_carried: u64,
    /// Linearizable reads answered, and refused (not the leader).
    pub reads_confirmed: u64,
    pub reads_failed: u64,
    /// Member-list changes proposed.
    pub changes: u64,
    /// Client writes made as an atomic batch of several records, and log
    /// reads sent to a follower that ended inside one.
    pub batches: u64,
    pub split_batches: u64,
    /// A leader's silent crash to the first write another member
    /// acknowledged, in ms, by (election_min, heartbeat).
    pub failovers: BTreeMap<(u64, u64), Vec<u64>>,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.acked += o.acked;
        self.unknown += o.unknown;
        self.elections += o.elections;
        self.truncations += o.truncations;
        self.snapshots += o.snapshots;
        self.crashes += o.crashes;
        self.witness_carried += o.witness_carried;
        self.batches += o.batches;
        self.split_batches += o.split_batches;
        self.reads_confirmed += o.reads_confirmed;
        self.reads_failed += o.reads_failed;
        self.changes += o.changes;
        for (k, v) in &o.failovers {
            self.failovers.entry(*k).or_default().extend(v);
        }
    }

    /// One line per timing: the failover times' count, p50, p99 and max.
    pub fn failover_times(&self) -> Vec<String> {
        self.failovers
            .iter()
            .map(|(&(min, hb), times)| {
                let mut t = times.clone();
                t.sort_unstable();
                let pct = |p: usize| t.get(t.len() * p / 100).copied().unwrap_or(0);
                format!(
                    "silent leader crash to the first write acknowledged by the next leader \
                     (election_min {min} ms, heartbeat {hb} ms): {} crashes, p50 {} ms, p99 {} \
                     ms, max {} ms",
                    t.len(),
                    pct(50),
                    pct(99),
                    t.last().copied().unwrap_or(0)
                )
            })
            .collect()
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} writes acknowledged ({} with a witness in their majority), {} reads answered ({} \
             refused), {} left in doubt, {} elections, {} logs cut back, {} snapshots, {} crashes, \
             {} member-list changes, {} batches ({} split between two log reads)",
            self.acked,
            self.witness_carried,
            self.reads_confirmed,
            self.reads_failed,
            self.unknown,
            self.elections,
            self.truncations,
            self.snapshots,
            self.crashes,
            self.changes,
            self.batches,
            self.split_batches
        )
    }
}

pub struct World {
    pub rng: Rng,
    pub now: u64,
    pub params: ElectionParams,
    pub members: Vec<Member>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Ev>,
    next_event: u64,
    pub conns: Conns,
    /// link[from][to] up?
    pub link: Links,
    pub loss: u64,
    dup: u64,
    pub delay_max: u64,
    /// The leader of each term.
    pub leaders: BTreeMap<u64, usize>,
    /// Every acknowledged write: key → (seq, term).
    pub acked: BTreeMap<u64, (u64, u64)>,
    /// Seqs known committed, with their term.
    pub committed: BTreeMap<u64, u64>,
    pub next_key: u64,
    /// When the leader crashed with no other fault, and which member it was:
    /// the next write acknowledged by another member ends a failover.
    pub leader_crashed: Option<(u64, usize)>,
    /// Reads waiting: id → (member, read index, highest seq acknowledged
    /// before the read began).
    pub reads: BTreeMap<u64, (usize, u64, u64)>,
    /// Keys written after healing, and whether each was acknowledged.
    pub late_writes: BTreeMap<u64, bool>,
    pub stats: Stats,
    pub trace: bool,
    pub setup: String,
    /// The list every member starts with (before any list record).
    pub first_conf: Conf,
    /// Whether leaders change the list in this run.
    pub changes: bool,
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = Rng(seed);
        let n = [1, 2, 3, 3, 3, 4, 5, 5][rng.below(8) as usize];
        let params = if rng.chance(50) {
            ELECTION_DEFAULTS
        } else {
            ELECTION_ETCD_TIMING
        };
        let (loss, dup, delay_max) = (rng.below(10), rng.below(5), 1 + rng.below(100));
        // Two data members and a witness, 40 % of the 3-member groups.
        let witness = n == 3 && rng.chance(40);
        let members = (0..n)
            .map(|m| {
                let w = witness && m == n - 1;
                Member::new(950 + rng.below(101), rng.below(1_000_000), w)
            })
            .collect();
        let changes = n > 1 && rng.chance(50);
        // Some groups start with their last data member outside the list.
        let spare = changes && !witness && rng.chance(30);
        let all = (1u64 << n) - 1;
        let first = if spare { all >> 1 } else { all };
        let first_conf = Conf {
            voters: first,
            present: first,
        };
        let setup = format!(
            "{n} members (witness: {witness}, list changes: {changes}, first list {first:b}), \
             {params:?}, ballot loss {loss}%, dup {dup}%, delay <= {delay_max} ms"
        );
        let mut w = World {
            rng,
            now: 0,
            params,
            members,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            next_event: 0,
            conns: Conns::default(),
            link: healed(n),
            loss,
            dup,
            delay_max,
            leaders: BTreeMap::new(),
            acked: BTreeMap::new(),
            committed: BTreeMap::new(),
            next_key: 1,
            reads: BTreeMap::new(),
            leader_crashed: None,
            late_writes: BTreeMap::new(),
            stats: Stats::default(),
            trace: env_u64("SIM_SEED").is_some(),
            setup,
            first_conf,
            changes,
        };
        for m in 0..n {
            w.start(m);
        }
        w
    }

    /// Member `m`'s clock.
    pub fn local(&self, m: usize) -> u64 {
        self.now * self.members[m].rate / 1000 + self.members[m].offset
    }

    pub fn at(&mut self, t: u64, ev: Ev) {
        let id = self.next_event;
        self.next_event += 1;
        self.events.insert(id, ev);
        self.queue.push(Reverse((t, id)));
    }

    fn delay(&mut self) -> u64 {
        1 + self.rng.below(self.delay_max)
    }

    /// An election datagram: lost on a cut link or by chance.
    pub fn send_ballot(&mut self, from: usize, to: usize, msg: Ballot) {
        if self.trace {
            println!("{:>6} ms  {from} -> {to}: {msg:?}", self.now);
        }
        if !self.link[from][to] || self.rng.chance(self.loss) {
            return;
        }
        let copies = if self.rng.chance(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let t = self.now + self.delay();
            self.at(t, Ev::Ballot { from, to, msg });
        }
    }

    pub fn send_beat(&mut self, from: usize, to: usize) {
        if self.link[from][to] && !self.rng.chance(self.loss) {
            let t = self.now + self.delay();
            self.at(t, Ev::Beat { from, to });
        }
    }

    /// Opens a connection from follower `f` to `leader`.
    pub fn connect(&mut self, f: usize, leader: usize) -> u64 {
        self.conns.open(Conn {
            follower: f,
            leader,
            follower_inc: self.members[f].incarnation,
            leader_inc: self.members[leader].incarnation,
            to_leader: Default::default(),
            to_follower: Default::default(),
            closed_by_follower: false,
            closed_by_leader: false,
        })
    }

    /// Puts `item` on `conn` toward side `to`, after what is already there.
    pub fn send_on(&mut self, conn: u64, to: Side, item: Item) {
        if self.trace {
            if let Item::Msg(m) = &item {
                println!("{:>6} ms  conn {conn} -> {to:?}: {}", self.now, m.name());
            }
        }
        let t = self.now + self.delay();
        let Some(c) = self.conns.map.get_mut(&conn) else {
            return;
        };
        let from = match to {
            Side::Leader => Side::Follower,
            Side::Follower => Side::Leader,
        };
        if c.closed_by(from) {
            return;
        }
        if matches!(item, Item::Fin) {
            match from {
                Side::Leader => c.closed_by_leader = true,
                Side::Follower => c.closed_by_follower = true,
            }
        }
        let q = c.queue(to);
        let t = q.back().map_or(t, |&(last, _)| t.max(last));
        let first = q.is_empty();
        q.push_back((t, item));
        if first {
            self.at(t, Ev::Conn { conn, to });
        }
    }

    /// The head of `conn`'s queue toward `to`, if it may arrive now: its
    /// time came, the link is up, and the receiver takes it.
    fn conn_head(&mut self, conn: u64, to: Side) -> Result<(), String> {
        let Some(c) = self.conns.map.get_mut(&conn) else {
            return Ok(());
        };
        let (m, from) = (
            c.member(to),
            c.member(match to {
                Side::Leader => Side::Follower,
                Side::Follower => Side::Leader,
            }),
        );
        let inc = match to {
            Side::Leader => c.leader_inc,
            Side::Follower => c.follower_inc,
        };
        let q = c.queue(to);
        let Some(&(t, _)) = q.front() else {
            return Ok(());
        };
        let gone = self.members[m].incarnation != inc || !self.members[m].up;
        if gone {
            // The receiver restarted: nothing of this connection reaches it.
            q.clear();
            return Ok(());
        }
        let link_up = self.link[from][m];
        let takes = to == Side::Leader || follower_reads(&self.members[m], conn);
        if t > self.now || !link_up || !takes {
            let retry = t.max(self.now + if link_up { 1 } else { 20 });
            self.at(retry, Ev::Conn { conn, to });
            return Ok(());
        }
        let (_, item) = q.pop_front().expect("head");
        if let Some(&(next, _)) = q.front() {
            self.at(next.max(self.now), Ev::Conn { conn, to });
        }
        match to {
            Side::Leader => self.at_leader(m, conn, item),
            Side::Follower => self.at_follower(m, conn, item),
        }
    }

    fn deliver(&mut self, ev: Ev) -> Result<(), String> {
        match ev {
            Ev::Ballot { from, to, msg } => self.ballot(from, to, msg),
            Ev::Beat { from, to } => self.beat(from, to),
            Ev::Conn { conn, to } => self.conn_head(conn, to),
            Ev::Local {
                m,
                incarnation,
                work,
            } => {
                if self.members[m].up && self.members[m].incarnation == incarnation {
                    self.local_work(m, work)?;
                }
                Ok(())
            }
        }
    }

    fn fault(&mut self) {
        let n = self.members.len();
        // Any other fault ends a failover-time measurement.
        self.leader_crashed = None;
        let kind = self.rng.below(7);
        if link_fault(&mut self.rng, &mut self.link, kind).is_some() {
            return;
        }
        match kind {
            3 => self.link = healed(n),
            4 => {
                // A compaction: the log up to what is durable is merged.
                let m = self.rng.below(n as u64) as usize;
                let s = &mut self.members[m].store;
                s.horizon = s.durable as u64;
            }
            _ => {
                let leader = (0..n).find(|&m| self.members[m].role() == Some(Role::Leader));
                let m = match leader {
                    Some(l) if self.rng.chance(60) => l,
                    _ => self.rng.below(n as u64) as usize,
                };
                if self.members[m].up {
                    // A leader's silent crash in a healthy group (no other
                    // fault) starts a failover-time measurement.
                    let healthy = self.loss == 0
                        && self.link.iter().all(|l| l.iter().all(|&up| up))
                        && self.members.iter().all(|m| m.up)
                        && n - 1 > n / 2;
                    self.leader_crashed = (leader == Some(m) && healthy).then_some((self.now, m));
                    let down = 100 + self.rng.below(4_000);
                    self.crash(m, down);
                }
            }
        }
    }

    /// A member that believes it leads (a stale one too), if any.
    fn any_leader(&mut self) -> Option<usize> {
        let leading: Vec<usize> = (0..self.members.len())
            .filter(|&m| self.members[m].lead.is_some())
            .collect();
        let pick = self.rng.below(leading.len() as u64) as usize;
        leading.get(pick).copied()
    }

    /// A client write to a member that believes it leads (stale ones too).
    fn client(&mut self) -> Result<(), String> {
        let Some(m) = self.any_leader() else {
            return Ok(());
        };
        let key = self.next_key;
        self.next_key += 1;
        if self.now >= CHAOS_MS + LIVE_AFTER_HEAL_MS && self.now < CHAOS_MS + HEALED_MS - 2_000 {
            self.late_writes.insert(key, false);
        }
        self.write(m, key)
    }

    /// A client read through a member that believes it leads.
    fn reader(&mut self) -> Result<(), String> {
        match self.any_leader() {
            Some(m) => self.read(m),
            None => Ok(()),
        }
    }

    pub fn run(&mut self) -> Result<(), String> {
        let end = CHAOS_MS + HEALED_MS;
        while self.now < end {
            if self.now < CHAOS_MS && self.rng.chance(1) && self.rng.chance(25) {
                self.fault();
            }
            if self.now == CHAOS_MS {
                self.heal();
            }
            while let Some(&Reverse((t, id))) = self.queue.peek() {
                if t > self.now {
                    break;
                }
                self.queue.pop();
                let ev = self.events.remove(&id).expect("queued event");
                self.deliver(ev)?;
            }
            for m in 0..self.members.len() {
                self.step_member(m)?;
            }
            if self.now + 2_000 < end && self.rng.chance(5) {
                self.client()?;
            }
            if self.rng.chance(3) {
                self.reader()?;
            }
            if self.changes && self.now < CHAOS_MS && self.rng.chance(1) && self.rng.chance(20) {
                if let Some(m) = self.any_leader() {
                    self.propose(m)?;
                }
            }
            if self.now.is_multiple_of(500) {
                crate::check::logs(self)?;
                self.conns.reap();
                let in_flight = self.conns.in_flight() + self.events.len();
                if in_flight > IN_FLIGHT_MAX {
                    return Err(format!("{in_flight} items in flight"));
                }
            }
            self.now += 1;
        }
        crate::check::settled(self)
    }

    fn heal(&mut self) {
        let n = self.members.len();
        self.link = healed(n);
        self.loss = 0;
        for m in 0..n {
            self.members[m].down_until = self.now;
        }
    }

    /// Durable records of `m` (what survives a crash).
    pub fn durable(&self, m: usize) -> &[Rec] {
        let s = &self.members[m].store;
        &s.log[..s.durable]
    }
}
