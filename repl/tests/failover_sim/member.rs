//! One member: its engine model, and the driver that runs its `Election`,
//! `MasterCore` and `Follower` as the server's `hypha member` does.

use crate::net::{Item, Side};
use crate::world::{Ev, Work, World};
use hypha_net::{Ballot, LogId, WireMeta, WireRecord};
use hypha_repl::election::{Election, ElectionAction, ElectionEvent, Persisted, Role, Seat};
use hypha_repl::terms::TermHistory;
use hypha_repl::{Follower, FollowerEvent, MasterCore, MasterEvent};
use std::collections::BTreeMap;

/// A record of the model log: its key is a client write's number (0: the
/// record a new leader writes to start its term).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rec {
    pub seq: u64,
    pub term: u64,
    pub key: u64,
    /// A member-list record: the list from here on (key 0).
    pub conf: Option<Conf>,
    /// Not the last record of its atomic batch (`WireMeta.batch_more`): a
    /// batch's records share its write's key, and a member applies, keeps
    /// and acknowledges a batch whole or not at all.
    pub more: bool,
}

/// A group's member list, as bit masks by member id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conf {
    pub voters: u64,
    pub present: u64,
}

impl Conf {
    pub fn votes(&self, m: usize) -> bool {
        self.voters & (1 << m) != 0
    }

    pub fn is_present(&self, m: usize) -> bool {
        self.present & (1 << m) != 0
    }

    pub fn majority(&self) -> usize {
        self.voters.count_ones() as usize / 2 + 1
    }
}

/// A member's engine, as the engine's contract has it: applied and
/// committed records are durable; a leader's own records are durable once
/// their fdatasync returns (`Work::Commit`), and a crash loses the rest;
/// the term table is durable before the first record of its term.
#[derive(Default)]
pub struct Store {
    /// Records 1..=len, contiguous (every key is written once, so a
    /// snapshot holds every record too).
    pub log: Vec<Rec>,
    pub durable: usize,
    pub terms: TermHistory,
    pub persisted: Persisted,
    /// Compaction merged the log up to here: it cannot be cut or read
    /// below it (the engine's `Error::Compacted`).
    pub horizon: u64,
}

impl Store {
    pub fn last(&self) -> LogId {
        LogId {
            term: self.log.last().map_or(0, |r| r.term),
            seq: self.log.len() as u64,
        }
    }

    /// The last log id of what survives a crash: what the election
    /// compares and what a leader tells a witness.
    pub fn durable_last(&self) -> LogId {
        LogId {
            term: self.log[..self.durable].last().map_or(0, |r| r.term),
            seq: self.durable as u64,
        }
    }

    pub fn append(&mut self, r: Rec) -> Result<(), String> {
        if r.seq != self.log.len() as u64 + 1 {
            return Err(format!("record {r:?} after seq {}", self.log.len()));
        }
        if self.terms.last_term().is_none_or(|t| r.term > t) {
            self.terms.note(r.term, r.seq);
        }
        self.log.push(r);
        Ok(())
    }
}

pub struct Lead {
    pub core: MasterCore<()>,
    pub term: u64,
    /// Client writes waiting for a majority: waiter (= key) → seq.
    pub waiters: BTreeMap<u64, u64>,
    pub next_beat: u64,
    /// The majority commit point last checked (`check::commit_point`).
    pub checked: u64,
}

pub struct Follow {
    pub core: Follower,
    pub leader: Option<usize>,
    pub conn: Option<u64>,
    /// Its session asked for a snapshot (`history_id` 0): its log is
    /// replaced, not continued.
    pub snapshot_asked: bool,
}

pub struct Member {
    pub up: bool,
    pub incarnation: u64,
    pub down_until: u64,
    pub rate: u64,
    pub offset: u64,
    pub store: Store,
    pub election: Option<Election>,
    pub lead: Option<Lead>,
    pub follow: Option<Follow>,
    pub snapshot: Option<Vec<Rec>>,
    /// A witness: votes and counts for a majority, keeps no data, only the
    /// newest log id a leader told it (`witness_last`, durable).
    pub witness: bool,
    pub witness_last: LogId,
    /// The member list last fed to its election (and master core).
    pub fed_conf: Option<Conf>,
}

impl Member {
    pub fn new(rate: u64, offset: u64, witness: bool) -> Member {
        Member {
            witness,
            witness_last: LogId::default(),
            fed_conf: None,
            up: false,
            incarnation: 0,
            down_until: 0,
            rate,
            offset,
            store: Store::default(),
            election: None,
            lead: None,
            follow: None,
            snapshot: None,
        }
    }

    pub fn role(&self) -> Option<Role> {
        self.election.as_ref().map(|e| e.role())
    }
}

pub fn wire(r: &Rec) -> WireRecord {
    WireRecord {
        seq: r.seq,
        id: 1 + (r.key % 1000) as u32,
        kind: hypha_net::RecordKind::Put,
        key: r.key.to_le_bytes().to_vec(),
        value: r.conf.map_or(Vec::new(), |c| {
            [c.voters.to_le_bytes(), c.present.to_le_bytes()].concat()
        }),
        meta: WireMeta {
            term: r.term,
            batch_more: r.more,
            ..WireMeta::default()
        },
    }
}

pub fn unwire(r: &WireRecord) -> Result<Rec, String> {
    let key = <[u8; 8]>::try_from(r.key.as_slice()).map_err(|_| "bad key")?;
    let conf = match r.value.len() {
        0 => None,
        _ => {
            let word = |i: usize| r.value.get(i..i + 8).and_then(|b| b.try_into().ok());
            let (v, p) = word(0).zip(word(8)).ok_or("bad member list")?;
            Some(Conf {
                voters: u64::from_le_bytes(v),
                present: u64::from_le_bytes(p),
            })
        }
    };
    Ok(Rec {
        seq: r.seq,
        term: r.meta.term,
        key: u64::from_le_bytes(key),
        conf,
        more: r.meta.batch_more,
    })
}

impl World {
    /// (Re)starts member `m` from what it persisted.
    pub fn start(&mut self, m: usize) {
        let now = self.local(m);
        let seed = self.rng.next();
        let n = self.members.len();
        let mem = &mut self.members[m];
        mem.up = true;
        mem.incarnation += 1;
        let seat = Seat {
            me: m,
            members: n,
            may_lead: !mem.witness,
        };
        let last = match mem.witness {
            true => mem.witness_last,
            false => mem.store.durable_last(),
        };
        mem.election = Some(Election::new(
            seat,
            self.params,
            mem.store.persisted,
            last,
            seed,
            now,
        ));
        mem.fed_conf = None;
        // Its log's member list, before anything else happens.
        self.conf_changed(m)
            .expect("a new election takes its member list");
    }

    /// Crashes `m` for `down` ms: it keeps only what is durable.
    pub fn crash(&mut self, m: usize, down: u64) {
        if self.trace {
            println!("{:>6} ms  CRASH member {m} for {down} ms", self.now);
        }
        self.stats.crashes += 1;
        self.drop_roles(m);
        let mem = &mut self.members[m];
        mem.up = false;
        mem.down_until = self.now + down;
        mem.election = None;
        mem.snapshot = None;
        let s = &mut mem.store;
        s.log.truncate(s.durable);
        // As the engine's open: an unfinished batch at the end is cut.
        while s.log.last().is_some_and(|r| r.more) {
            s.log.pop();
        }
        s.durable = s.log.len();
        // As the engine's open: entries past the log's end are dropped.
        s.terms.truncate_after(s.log.len() as u64);
    }

    /// Ends `m`'s leading and following; their connections close.
    pub fn drop_roles(&mut self, m: usize) {
        if let Some(lead) = self.members[m].lead.take() {
            self.stats.unknown += lead.waiters.len() as u64;
            let conns: Vec<u64> = self
                .conns
                .map
                .iter()
                .filter(|(_, c)| c.leader == m)
                .map(|(&id, _)| id)
                .collect();
            for conn in conns {
                self.send_on(conn, Side::Follower, Item::Fin);
            }
        }
        if let Some(conn) = self.members[m].follow.take().and_then(|f| f.conn) {
            self.send_on(conn, Side::Leader, Item::Fin);
        }
    }

    pub fn step_member(&mut self, m: usize) -> Result<(), String> {
        if !self.members[m].up {
            if self.now >= self.members[m].down_until {
                self.start(m);
            }
            return Ok(());
        }
        let now = self.local(m);
        let mem = &mut self.members[m];
        let e = mem.election.as_mut().expect("up");
        if now >= e.next_deadline() {
            let acts = e.handle(ElectionEvent::Tick, now);
            self.election_actions(m, acts)?;
        }
        crate::check::commit_point(self, m)?;
        let mem = &mut self.members[m];
        if let Some(lead) = mem.lead.as_mut() {
            if now >= lead.next_beat {
                lead.next_beat = now + self.params.heartbeat_ms;
                for to in (0..self.members.len()).filter(|&t| t != m) {
                    self.send_beat(m, to);
                }
            }
            let lead = self.members[m].lead.as_mut().expect("leads");
            if now >= lead.core.next_deadline() {
                let acts = lead.core.handle(MasterEvent::Tick, now);
                self.master_actions(m, acts)?;
            }
        }
        if let Some(f) = self.members[m].follow.as_mut() {
            if now >= f.core.next_deadline() {
                let acts = f.core.handle(FollowerEvent::Tick, now);
                self.follower_actions(m, acts)?;
            }
        }
        Ok(())
    }

    pub fn ballot(&mut self, from: usize, to: usize, msg: Ballot) -> Result<(), String> {
        if !self.members[to].up {
            return Ok(());
        }
        let now = self.local(to);
        let e = self.members[to].election.as_mut().expect("up");
        let acts = e.handle(ElectionEvent::Received { from, msg }, now);
        self.election_actions(to, acts)
    }

    pub fn beat(&mut self, from: usize, to: usize) -> Result<(), String> {
        let now = self.local(to);
        let Some(f) = self.members[to].follow.as_mut() else {
            return Ok(());
        };
        if f.leader == Some(from) && f.conn.is_some() {
            let acts = f.core.handle(FollowerEvent::MasterHeard, now);
            self.follower_actions(to, acts)?;
        }
        Ok(())
    }

    /// Feeds the election a change of `m`'s log.
    pub fn log_changed(&mut self, m: usize) -> Result<(), String> {
        self.conf_changed(m)?;
        let now = self.local(m);
        let last = self.members[m].store.durable_last();
        if let Some(e) = self.members[m].election.as_mut() {
            let acts = e.handle(ElectionEvent::LogChanged(last), now);
            self.election_actions(m, acts)?;
        }
        crate::check::terms_match_log(self, m)
    }

    /// Leader `m` heard member `from` hold `last`: a witness's counts
    /// toward the majority, if it is of this leader's term.
    fn acked(&mut self, m: usize, from: usize, last: LogId) -> Result<(), String> {
        if !self.members[from].witness {
            return Ok(());
        }
        let now = self.local(m);
        let Some(lead) = self.members[m].lead.as_mut() else {
            return Ok(());
        };
        if last.term != lead.term {
            return Ok(());
        }
        let ev = MasterEvent::WitnessAck {
            witness: from as u64 + 1,
            seq: last.seq,
        };
        let acts = lead.core.handle(ev, now);
        self.master_actions(m, acts)
    }

    /// A linearizable read through `m`, which believes it leads: it is
    /// served at the commit point of now, once a heartbeat round after now
    /// is confirmed by a majority.
    pub fn read(&mut self, m: usize) -> Result<(), String> {
        let Some(lead) = self.members[m].lead.as_ref() else {
            return Ok(());
        };
        let index = lead.core.majority_commit();
        if index == 0 {
            // Nothing of its term committed yet: it cannot know the commit
            // point (the driver waits for its term-start record).
            return Ok(());
        }
        let id = self.next_key;
        self.next_key += 1;
        let done_before = self.acked.values().map(|&(seq, _)| seq).max().unwrap_or(0);
        self.reads.insert(id, (m, index, done_before));
        let now = self.local(m);
        let e = self.members[m].election.as_mut().expect("up");
        let acts = e.handle(ElectionEvent::ReadIndex(id), now);
        self.election_actions(m, acts)
    }

    /// A replication handshake or frame carried `term`.
    pub fn saw_term(&mut self, m: usize, term: u64) -> Result<(), String> {
        let now = self.local(m);
        if let Some(e) = self.members[m].election.as_mut() {
            let acts = e.handle(ElectionEvent::SawTerm(term), now);
            self.election_actions(m, acts)?;
        }
        Ok(())
    }

    pub fn election_actions(&mut self, m: usize, acts: Vec<ElectionAction>) -> Result<(), String> {
        for a in acts {
            if self.trace {
                println!("{:>6} ms  member {m}: {a:?}", self.now);
            }
            match a {
                ElectionAction::Persist { term, voted_for } => {
                    self.members[m].store.persisted = Persisted { term, voted_for };
                }
                ElectionAction::Send { to, msg } => self.send_ballot(m, to, msg),
                ElectionAction::PersistLast { last } => {
                    if !self.members[m].witness || last < self.members[m].witness_last {
                        return Err(format!("member {m} persisted last log id {last:?}"));
                    }
                    self.members[m].witness_last = last;
                }
                ElectionAction::Acked { from, last } => self.acked(m, from, last)?,
                ElectionAction::ReadConfirmed { id } => crate::check::read(self, m, id)?,
                ElectionAction::ReadFailed { id } => {
                    self.reads.remove(&id);
                    self.stats.reads_failed += 1;
                }
                ElectionAction::BecomeLeader { term } => self.become_leader(m, term)?,
                ElectionAction::BecomeFollower { leader, .. } => self.become_follower(m, leader)?,
            }
        }
        Ok(())
    }

    pub fn later(&mut self, m: usize, work: Work) {
        let t = self.now + self.rng.below(3);
        let incarnation = self.members[m].incarnation;
        self.at(
            t,
            Ev::Local {
                m,
                incarnation,
                work,
            },
        );
    }

    pub fn local_work(&mut self, m: usize, work: Work) -> Result<(), String> {
        let now = self.local(m);
        match work {
            Work::Commit(seq) => {
                let s = &mut self.members[m].store;
                if (s.log.len() as u64) < seq {
                    return Ok(());
                }
                s.durable = s.durable.max(seq as usize);
                if let Some(lead) = self.members[m].lead.as_mut() {
                    let acts = lead.core.handle(MasterEvent::Committed { seq }, now);
                    self.master_actions(m, acts)?;
                }
                self.log_changed(m)
            }
            Work::Applied => {
                let seq = self.members[m].store.log.len() as u64;
                self.follower_event(m, FollowerEvent::Applied { seq })
            }
            Work::Truncated => {
                let seq = self.members[m].store.log.len() as u64;
                self.follower_event(m, FollowerEvent::Truncated { seq })
            }
            Work::TruncateFailed => {
                let why = "compaction merged the records to cut".to_string();
                self.follower_event(m, FollowerEvent::TruncateFailed { why })
            }
            Work::Installed { history_id } => {
                if let Some(f) = self.members[m].follow.as_mut() {
                    f.snapshot_asked = false;
                }
                let seq = self.members[m].store.log.len() as u64;
                self.follower_event(m, FollowerEvent::SnapshotInstalled { history_id, seq })
            }
        }
    }
}
