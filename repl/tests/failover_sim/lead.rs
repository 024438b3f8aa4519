//! A member that leads: its `MasterCore` in majority mode, the record that
//! starts its term, client writes, and what it sends its followers.

use crate::member::{wire, Lead, Rec};
use crate::net::{Item, Side};
use crate::world::{Ev, Work, World, HISTORY};
use hypha_net::{Message, RefuseReason, WireRecord};
use hypha_repl::{Join, MasterAction, MasterCore, MasterEvent, MasterParams, SyncMode};
use std::collections::BTreeMap;
use std::net::SocketAddr;

impl World {
    pub fn become_leader(&mut self, m: usize, term: u64) -> Result<(), String> {
        self.stats.elections += 1;
        crate::check::new_leader(self, m, term)?;
        self.drop_roles(m);
        // The record that starts the term: the records of earlier terms
        // commit with it (Raft's commit rule).
        let seq = self.members[m].store.log.len() as u64 + 1;
        self.members[m].store.append(Rec {
            seq,
            term,
            key: 0,
            conf: None,
            more: false,
        })?;
        let durable = self.members[m].store.durable as u64;
        let params = MasterParams {
            node_id: m as u64 + 1,
            history_id: HISTORY,
            term,
            terms: self.members[m].store.terms.starts().to_vec(),
            sync: SyncMode::Majority {
                voters: self.members.len() as u32,
            },
            sync_timeout_ms: 3_000,
            heartbeat_ms: self.params.heartbeat_ms,
            heartbeat_timeout_ms: self.params.election_min_ms,
            forget_after_ms: 30_000,
        };
        let now = self.local(m);
        self.members[m].lead = Some(Lead {
            core: MasterCore::new(params, durable, now),
            term,
            waiters: BTreeMap::new(),
            next_beat: now,
            checked: 0,
        });
        self.feed_voters(m)?;
        self.appended(m, seq)?;
        self.commit_later(m, seq);
        self.log_changed(m)
    }

    /// As the server's master does: a record in the leader's log is
    /// streamed before its fdatasync returns (`Work::Commit`), which a
    /// crash in between undoes.
    pub fn appended(&mut self, m: usize, seq: u64) -> Result<(), String> {
        let now = self.local(m);
        let lead = self.members[m].lead.as_mut().expect("leads");
        let acts = lead.core.handle(MasterEvent::Appended { seq }, now);
        self.master_actions(m, acts)
    }

    /// A client write through `m`, which believes it leads: one record, or
    /// (one write in four) an atomic batch of 2-4 records appended at once
    /// and acknowledged at its last record's seq.
    pub fn write(&mut self, m: usize, key: u64) -> Result<(), String> {
        let lead = self.members[m].lead.as_ref().expect("leads");
        let term = lead.term;
        let records = if self.rng.below(4) == 0 {
            2 + self.rng.below(3)
        } else {
            1
        };
        let first = self.members[m].store.log.len() as u64 + 1;
        let seq = first + records - 1;
        for s in first..=seq {
            self.members[m].store.append(Rec {
                seq: s,
                term,
                key,
                conf: None,
                more: s < seq,
            })?;
        }
        if records > 1 {
            self.stats.batches += 1;
        }
        self.log_changed(m)?;
        let now = self.local(m);
        let lead = self.members[m].lead.as_mut().expect("leads");
        lead.waiters.insert(key, seq);
        let acts = lead
            .core
            .handle(MasterEvent::AwaitWorkers { waiter: key, seq }, now);
        self.master_actions(m, acts)?;
        self.appended(m, seq)?;
        self.commit_later(m, seq);
        Ok(())
    }

    pub fn commit_later(&mut self, m: usize, seq: u64) {
        let t = self.now + self.rng.below(3);
        let incarnation = self.members[m].incarnation;
        let work = Work::Commit(seq);
        self.at(
            t,
            Ev::Local {
                m,
                incarnation,
                work,
            },
        );
    }

    /// Something arrived for `m` as the leader side of `conn`.
    pub fn at_leader(&mut self, m: usize, conn: u64, item: Item) -> Result<(), String> {
        let now = self.local(m);
        let horizon = self.members[m].store.horizon;
        let Some(lead) = self.members[m].lead.as_mut() else {
            if let Item::Msg(Message::Hello(_)) = item {
                let why = "not the leader".to_string();
                let msg = Message::Refuse(hypha_net::Refuse::new(RefuseReason::NotMaster, &why));
                self.send_on(conn, Side::Follower, Item::Msg(msg));
                self.send_on(conn, Side::Follower, Item::Fin);
            }
            return Ok(());
        };
        let event = match item {
            Item::Fin => MasterEvent::Closed { conn },
            Item::Msg(Message::Hello(h)) => {
                if h.term > lead.term {
                    self.saw_term(m, h.term)?;
                    return self.at_leader(m, conn, Item::Msg(Message::Hello(h)));
                }
                let follower = self.conns.map[&conn].follower;
                MasterEvent::Joined {
                    conn,
                    join: Join {
                        node: follower as u64 + 1,
                        role: h.role,
                        history_id: h.history_id,
                        applied_seq: h.applied_seq,
                        last_term: h.last_term,
                        peer: SocketAddr::from(([10, 0, 0, follower as u8], 7000)),
                    },
                    horizon,
                    beats: (),
                }
            }
            Item::Msg(msg) => MasterEvent::Received { conn, msg },
        };
        let acts = lead.core.handle(event, now);
        self.master_actions(m, acts)
    }

    pub fn master_actions(&mut self, m: usize, acts: Vec<MasterAction>) -> Result<(), String> {
        for a in acts {
            let Some(lead) = self.members[m].lead.as_ref() else {
                return Ok(());
            };
            let term = lead.term;
            let now = self.local(m);
            let back = match a {
                MasterAction::Send { conn, msgs } => {
                    for msg in msgs {
                        self.send_on(conn, Side::Follower, Item::Msg(msg));
                    }
                    Some(MasterEvent::Sent { conn })
                }
                MasterAction::Refuse {
                    conn,
                    reason,
                    message,
                } => {
                    let msg = Message::Refuse(hypha_net::Refuse::new(reason, &message));
                    self.send_on(conn, Side::Follower, Item::Msg(msg));
                    self.send_on(conn, Side::Follower, Item::Fin);
                    Some(MasterEvent::Closed { conn })
                }
                MasterAction::Close { conn, .. } => {
                    self.send_on(conn, Side::Follower, Item::Fin);
                    Some(MasterEvent::Closed { conn })
                }
                MasterAction::SendSnapshot { conn, upto } => {
                    self.send_snapshot(m, conn, term, upto);
                    Some(MasterEvent::SnapshotSent { conn, upto })
                }
                MasterAction::ReadLog { conn, after, .. }
                    if after < self.members[m].store.horizon =>
                {
                    // The engine refuses a read below what compaction
                    // merged: the session ends, and the worker comes back
                    // for a snapshot.
                    self.send_on(conn, Side::Follower, Item::Fin);
                    Some(MasterEvent::Closed { conn })
                }
                MasterAction::ReadLog { conn, after, upto } => {
                    let take = 1 + self.rng.below(64) as usize;
                    let log = &self.members[m].store.log;
                    let end = (upto as usize).min(log.len());
                    let records: Vec<WireRecord> = log[(after as usize).min(end)..end]
                        .iter()
                        .take(take)
                        .map(wire)
                        .collect();
                    // A read of 1-64 records may end inside a batch: the
                    // follower must hold it until the rest arrives.
                    if records.last().is_some_and(|r| r.meta.batch_more) {
                        self.stats.split_batches += 1;
                    }
                    Some(MasterEvent::LogRead { conn, records })
                }
                MasterAction::Confirm { waiter } => {
                    let lead = self.members[m].lead.as_mut().expect("leads");
                    let seq = lead.waiters.remove(&waiter).ok_or("unknown waiter")?;
                    crate::check::acknowledged(self, m, waiter, seq, term)?;
                    None
                }
                MasterAction::SyncFailed { waiter, .. } => {
                    let lead = self.members[m].lead.as_mut().expect("leads");
                    lead.waiters.remove(&waiter);
                    self.stats.unknown += 1;
                    None
                }
                MasterAction::TombstoneFloor(_) => None,
            };
            if let Some(ev) = back {
                let lead = self.members[m].lead.as_mut().expect("leads");
                let more = lead.core.handle(ev, now);
                self.master_actions(m, more)?;
            }
        }
        Ok(())
    }

    pub fn send_snapshot(&mut self, m: usize, conn: u64, term: u64, upto: u64) {
        let records: Vec<WireRecord> = self.members[m].store.log[..upto as usize]
            .iter()
            .map(wire)
            .collect();
        let begin = Message::SnapshotBegin {
            term,
            history_id: HISTORY,
            upto_seq: upto,
            records_total: records.len() as u64,
            bytes_total: 0,
        };
        self.send_on(conn, Side::Follower, Item::Msg(begin));
        for chunk in records.chunks(100) {
            let msg = Message::SnapshotChunk {
                records: chunk.to_vec(),
            };
            self.send_on(conn, Side::Follower, Item::Msg(msg));
        }
        let end = Message::SnapshotEnd { upto_seq: upto };
        self.send_on(conn, Side::Follower, Item::Msg(end));
    }
}
