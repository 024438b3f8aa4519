//! The simulated group: members running the real `Election`, a network,
//! a model log with Raft's append and commit rules, and the checks.

use crate::simkit::{env_u64, healed, link_fault, Links, Rng};
use hypha_repl::election::{
    Ballot, Election, ElectionAction, ElectionEvent, ElectionParams, LogId, Persisted, Role, Seat,
    ELECTION_DEFAULTS, ELECTION_ETCD_TIMING,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// Simulated milliseconds of faults, then of healed running.
const CHAOS_MS: u64 = 30_000;
const HEALED_MS: u64 = 30_000;
/// The term must not change during this last part of the healed run.
const STABLE_MS: u64 = 10_000;
/// Messages in flight at once, at most (a bounded network).
const IN_FLIGHT_MAX: usize = 20_000;

/// A message in flight, with what the sim's replication model carries.
#[derive(Clone)]
struct Packet {
    from: usize,
    to: usize,
    msg: Ballot,
    /// A heartbeat carries the leader's log (terms of seqs 1..).
    log: Option<Vec<u64>>,
    /// A heartbeat ack says how much of the leader's log matched.
    matched: Option<usize>,
    /// Not a ballot: `from`'s connection to `to` closed (its process died
    /// and the kernel closed its sockets); `msg` is unused.
    gone: bool,
}

struct Member {
    election: Option<Election>,
    persisted: Persisted,
    /// Terms of the log's records, seq `i + 1` at index `i` (durable).
    log: Vec<u64>,
    may_lead: bool,
    /// Clock rate in per mille and offset: local = global * rate / 1000 + offset.
    rate: u64,
    offset: u64,
    down_until: u64,
    /// Leader only: how far each member's log matches this leader's.
    matched: Vec<usize>,
    commit: usize,
}

impl Member {
    fn last(&self) -> LogId {
        LogId {
            term: self.log.last().copied().unwrap_or(0),
            seq: self.log.len() as u64,
        }
    }
}

pub struct World {
    rng: Rng,
    pub now: u64,
    pub params: ElectionParams,
    members: Vec<Member>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    packets: BTreeMap<u64, Packet>,
    next_packet: u64,
    /// link[from][to] up?
    link: Links,
    loss: u64,
    dup: u64,
    delay_max: u64,
    leaders: BTreeMap<u64, usize>,
    pub committed: BTreeMap<usize, u64>,
    pub elections: u64,
    /// Since when two members have both been leaders (of different terms).
    overlap_since: Option<u64>,
    /// When the leader was crashed with no other fault pending (and
    /// whether loudly: the others saw its connections close), and how long
    /// each such failover took (crash to the next leader), in ms.
    leader_crashed: Option<(u64, bool)>,
    pub failovers: Vec<(u64, bool)>,
    trace: bool,
    pub setup: String,
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = Rng(seed);
        let n = [1, 2, 3, 3, 3, 4, 5, 5][rng.below(8) as usize];
        let witness = n >= 3 && rng.chance(30);
        let params = if rng.chance(50) {
            ELECTION_DEFAULTS
        } else {
            ELECTION_ETCD_TIMING
        };
        let (loss, dup, delay_max) = (rng.below(15), rng.below(5), 1 + rng.below(200));
        let members = (0..n)
            .map(|m| Member {
                election: None,
                persisted: Persisted::default(),
                log: Vec::new(),
                may_lead: !(witness && m == n - 1),
                rate: 950 + rng.below(101),
                offset: rng.below(1_000_000),
                down_until: 0,
                matched: vec![0; n],
                commit: 0,
            })
            .collect();
        let setup = format!(
            "{n} members (witness: {witness}), {params:?}, loss {loss}%, dup {dup}%, delay <= {delay_max} ms"
        );
        let mut w = World {
            rng,
            now: 0,
            params,
            members,
            queue: BinaryHeap::new(),
            packets: BTreeMap::new(),
            next_packet: 0,
            link: healed(n),
            loss,
            dup,
            delay_max,
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            elections: 0,
            overlap_since: None,
            leader_crashed: None,
            failovers: Vec::new(),
            trace: env_u64("SIM_SEED").is_some(),
            setup,
        };
        for m in 0..n {
            w.start(m);
        }
        w
    }

    fn local(&self, m: usize) -> u64 {
        self.now * self.members[m].rate / 1000 + self.members[m].offset
    }

    fn start(&mut self, m: usize) {
        let now = self.local(m);
        let seed = self.rng.next();
        let mem = &self.members[m];
        let seat = Seat {
            me: m,
            members: self.members.len(),
            may_lead: mem.may_lead,
        };
        let e = Election::new(seat, self.params, mem.persisted, mem.last(), seed, now);
        self.members[m].election = Some(e);
    }

    fn send(&mut self, p: Packet) -> Result<(), String> {
        if !self.link[p.from][p.to] || self.rng.chance(self.loss) {
            return Ok(());
        }
        let copies = if self.rng.chance(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + 1 + self.rng.below(self.delay_max);
            let id = self.next_packet;
            self.next_packet += 1;
            self.packets.insert(id, p.clone());
            self.queue.push(Reverse((at, id)));
        }
        if self.packets.len() > IN_FLIGHT_MAX {
            return Err(format!("{} messages in flight", self.packets.len()));
        }
        Ok(())
    }

    fn run_actions(&mut self, m: usize, actions: Vec<ElectionAction>) -> Result<(), String> {
        for a in actions {
            if self.trace {
                println!("{:>6} ms  member {m}: {a:?}", self.now);
            }
            match a {
                ElectionAction::Persist { term, voted_for } => {
                    let old = self.members[m].persisted;
                    if term < old.term
                        || (term == old.term
                            && old.voted_for.is_some()
                            && voted_for != old.voted_for)
                    {
                        return Err(format!(
                            "member {m} persisted {term}/{voted_for:?} over {old:?}"
                        ));
                    }
                    self.members[m].persisted = Persisted { term, voted_for };
                }
                ElectionAction::Send { to, msg } => {
                    if let Ballot::Vote {
                        term,
                        granted: true,
                    } = msg
                    {
                        let p = self.members[m].persisted;
                        if p.term != term || p.voted_for != Some(to) {
                            return Err(format!("member {m} sent a vote for {to} in {term} it had not persisted ({p:?})"));
                        }
                    }
                    let log = match msg {
                        Ballot::Heartbeat { .. } => Some(self.members[m].log.clone()),
                        _ => None,
                    };
                    self.send(Packet {
                        from: m,
                        to,
                        msg,
                        log,
                        matched: None,
                        gone: false,
                    })?;
                }
                ElectionAction::BecomeLeader { term } => self.became_leader(m, term)?,
                // The witness's model log holds what it heard (copied from
                // the leader's heartbeat before the election sees it), so
                // a restart gives it at least the id it persisted.
                ElectionAction::BecomeFollower { .. }
                | ElectionAction::PersistLast { .. }
                | ElectionAction::Acked { .. }
                | ElectionAction::ReadConfirmed { .. }
                | ElectionAction::ReadFailed { .. } => {}
            }
        }
        Ok(())
    }

    fn became_leader(&mut self, m: usize, term: u64) -> Result<(), String> {
        self.elections += 1;
        if let Some((at, loud)) = self.leader_crashed.take() {
            self.failovers.push((self.now - at, loud));
        }
        if let Some(&other) = self.leaders.get(&term) {
            if other != m {
                return Err(format!("two leaders in term {term}: {other} and {m}"));
            }
        }
        self.leaders.insert(term, m);
        let log = &self.members[m].log;
        for (&i, &t) in &self.committed {
            if log.get(i - 1) != Some(&t) {
                return Err(format!(
                    "member {m} leads term {term} without committed seq {i} (term {t}); its log ends at {:?}",
                    self.members[m].last()
                ));
            }
        }
        let n = self.members.len();
        let me = &mut self.members[m];
        me.matched = vec![0; n];
        me.commit = 0;
        Ok(())
    }

    fn deliver(&mut self, p: Packet) -> Result<(), String> {
        let to = p.to;
        if self.members[to].election.is_none() {
            return Ok(());
        }
        if p.gone {
            let now = self.local(to);
            let e = self.members[to].election.as_mut().expect("up");
            let acts = e.handle(ElectionEvent::LeaderGone(p.from), now);
            return self.run_actions(to, acts);
        }
        if let (Ballot::Heartbeat { term, .. }, Some(log)) = (p.msg, &p.log) {
            let mine = self.members[to]
                .election
                .as_ref()
                .map(|e| e.term())
                .unwrap_or(0);
            if term >= mine {
                let me = &mut self.members[to];
                let same = me.log.iter().zip(log).take_while(|(a, b)| a == b).count();
                if same < log.len() {
                    me.log.truncate(same);
                    me.log.extend_from_slice(&log[same..]);
                }
                let last = me.last();
                let now = self.local(to);
                let e = self.members[to].election.as_mut().expect("up");
                e.handle(ElectionEvent::LogChanged(last), now);
                let acts = e.handle(
                    ElectionEvent::Received {
                        from: p.from,
                        msg: p.msg,
                    },
                    now,
                );
                return self.run_actions_with_match(to, acts, log.len());
            }
        }
        if let (Ballot::HeartbeatAck { term, .. }, Some(matched)) = (p.msg, p.matched) {
            self.ack(to, p.from, term, matched)?;
        }
        let now = self.local(to);
        let e = self.members[to].election.as_mut().expect("up");
        let acts = e.handle(
            ElectionEvent::Received {
                from: p.from,
                msg: p.msg,
            },
            now,
        );
        self.run_actions(to, acts)
    }

    /// Like `run_actions`, with the heartbeat ack carrying how much matched.
    fn run_actions_with_match(
        &mut self,
        m: usize,
        acts: Vec<ElectionAction>,
        matched: usize,
    ) -> Result<(), String> {
        let (acks, rest): (Vec<_>, Vec<_>) = acts.into_iter().partition(|a| {
            matches!(
                a,
                ElectionAction::Send {
                    msg: Ballot::HeartbeatAck { .. },
                    ..
                }
            )
        });
        self.run_actions(m, rest)?;
        for a in acks {
            if let ElectionAction::Send { to, msg } = a {
                self.send(Packet {
                    from: m,
                    to,
                    msg,
                    log: None,
                    matched: Some(matched),
                    gone: false,
                })?;
            }
        }
        Ok(())
    }

    /// The leader heard how far a member's log matches its own.
    fn ack(&mut self, leader: usize, from: usize, term: u64, matched: usize) -> Result<(), String> {
        let Some(e) = self.members[leader].election.as_ref() else {
            return Ok(());
        };
        if e.role() != Role::Leader || e.term() != term {
            return Ok(());
        }
        let majority = self.members.len() / 2 + 1;
        let me = &mut self.members[leader];
        me.matched[from] = me.matched[from].max(matched);
        me.matched[leader] = me.log.len();
        let mut sorted = me.matched.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let n = sorted[majority - 1];
        // Raft: only an entry of the leader's own term is committed by
        // counting; the ones before it are committed with it.
        if n > me.commit && me.log.get(n - 1) == Some(&term) {
            me.commit = n;
            let log = me.log[..n].to_vec();
            for (i, &t) in log.iter().enumerate() {
                match self.committed.insert(i + 1, t) {
                    Some(old) if old != t => {
                        return Err(format!(
                            "committed seq {} changed from term {old} to {t}",
                            i + 1
                        ))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn fault(&mut self) {
        let n = self.members.len();
        let kind = self.rng.below(6);
        if link_fault(&mut self.rng, &mut self.link, kind).is_some() {
            return;
        }
        match kind {
            3 => self.link = healed(n),
            _ => {
                // Crash a member (the leader, half the time) for a while.
                let leader = (0..n).find(|&m| {
                    self.members[m]
                        .election
                        .as_ref()
                        .is_some_and(|e| e.role() == Role::Leader)
                });
                let m = match leader {
                    Some(l) if self.rng.chance(50) => l,
                    _ => self.rng.below(n as u64) as usize,
                };
                if self.members[m].election.is_some() {
                    let healthy = n - 1 > n / 2
                        && self.loss == 0
                        && self.link.iter().all(|l| l.iter().all(|&up| up))
                        && self.members.iter().all(|m| m.election.is_some());
                    // A process crash: the kernel closes its connections,
                    // which the others see (unless the link is down). A
                    // power cut: they see nothing.
                    let loud = self.rng.chance(50);
                    self.leader_crashed =
                        (leader == Some(m) && healthy).then_some((self.now, loud));
                    self.members[m].election = None;
                    for to in (0..n).filter(|&to| loud && to != m) {
                        let closed = Packet {
                            from: m,
                            to,
                            msg: Ballot::Vote {
                                term: 0,
                                granted: false,
                            },
                            log: None,
                            matched: None,
                            gone: true,
                        };
                        let _ = self.send(closed);
                    }
                    self.members[m].down_until = self.now + 200 + self.rng.below(5_000);
                }
            }
        }
    }

    fn step_members(&mut self) -> Result<(), String> {
        for m in 0..self.members.len() {
            if self.members[m].election.is_none() {
                if self.now >= self.members[m].down_until {
                    self.start(m);
                }
                continue;
            }
            let now = self.local(m);
            let is_leader = self.members[m]
                .election
                .as_ref()
                .is_some_and(|e| e.role() == Role::Leader);
            if is_leader && self.rng.chance(5) {
                let term = self.members[m].election.as_ref().expect("up").term();
                self.members[m].log.push(term);
                let last = self.members[m].last();
                self.members[m]
                    .election
                    .as_mut()
                    .expect("up")
                    .handle(ElectionEvent::LogChanged(last), now);
            }
            let e = self.members[m].election.as_mut().expect("up");
            if now >= e.next_deadline() {
                let acts = e.handle(ElectionEvent::Tick, now);
                self.run_actions(m, acts)?;
            }
        }
        Ok(())
    }

    pub fn run(&mut self) -> Result<(), String> {
        let end = CHAOS_MS + HEALED_MS;
        let mut stable_term = None;
        while self.now < end {
            if self.now < CHAOS_MS && self.rng.chance(1) && self.rng.chance(20) {
                self.fault();
            }
            if self.now == CHAOS_MS {
                let n = self.members.len();
                self.link = healed(n);
                self.loss = 0;
                for m in 0..n {
                    self.members[m].down_until = self.now;
                }
            }
            while let Some(&Reverse((at, id))) = self.queue.peek() {
                if at > self.now {
                    break;
                }
                self.queue.pop();
                let p = self.packets.remove(&id).expect("queued packet");
                self.deliver(p)?;
            }
            self.step_members()?;
            self.check_overlap()?;
            if self.now == end - STABLE_MS {
                stable_term = Some(self.settled()?);
            }
            self.now += 1;
        }
        let term = self.settled()?;
        if Some(term) != stable_term {
            return Err(format!(
                "the healed group changed term from {stable_term:?} to {term}"
            ));
        }
        Ok(())
    }

    /// A leader cut off from the majority steps down (check-quorum), or
    /// hears the new term, within about two election timeouts of a newer
    /// leader being elected: two leaders never act together for long.
    fn check_overlap(&mut self) -> Result<(), String> {
        let leaders = self
            .members
            .iter()
            .filter(|m| {
                m.election
                    .as_ref()
                    .is_some_and(|e| e.role() == Role::Leader)
            })
            .count();
        if leaders < 2 {
            self.overlap_since = None;
            return Ok(());
        }
        let since = *self.overlap_since.get_or_insert(self.now);
        let bound = 2 * self.params.election_min_ms + self.delay_max;
        if self.now - since > bound {
            return Err(format!("two leaders for over {bound} ms"));
        }
        Ok(())
    }

    /// One leader in the highest term, followed by every member.
    fn settled(&self) -> Result<u64, String> {
        let roles: Vec<(Role, u64)> = self
            .members
            .iter()
            .map(|m| {
                m.election
                    .as_ref()
                    .map(|e| (e.role(), e.term()))
                    .expect("all up")
            })
            .collect();
        let leaders: Vec<usize> = (0..roles.len())
            .filter(|&m| roles[m].0 == Role::Leader)
            .collect();
        let [leader] = leaders[..] else {
            return Err(format!("no single leader after healing: {roles:?}"));
        };
        let term = roles[leader].1;
        for (m, &(role, t)) in roles.iter().enumerate() {
            if m != leader
                && (t != term
                    || role
                        != (Role::Follower {
                            leader: Some(leader),
                        }))
            {
                return Err(format!(
                    "member {m} does not follow leader {leader} of term {term}: {roles:?}"
                ));
            }
        }
        Ok(term)
    }
}
