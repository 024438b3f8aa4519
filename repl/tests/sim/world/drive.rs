//! The simulator's drivers: what the server's I/O loops do with the state
//! machines' actions, done on the simulated network and storage models.

use super::{node_of, Conn, Ev, Pending, World, HISTORY, QUEUE_MAX, TERM, WINDOW};
use hypha_net::{Hello, Message, Purpose, Role, BATCH_RECORDS_MAX};
use hypha_repl::{FollowerAction, FollowerEvent, MasterAction, MasterEvent};
use std::collections::VecDeque;

impl World {
    pub(super) fn master_event(&mut self, event: MasterEvent<()>) -> Result<(), String> {
        let Some(master) = self.master.as_mut() else {
            return Ok(());
        };
        let actions = master.handle(event, self.now);
        for action in actions {
            if self.trace {
                eprintln!("       master: {action:?}");
            }
            self.master_action(action)?;
        }
        self.schedule_master_tick();
        Ok(())
    }

    pub(super) fn schedule_master_tick(&mut self) {
        let Some(master) = self.master.as_ref() else {
            return;
        };
        let at = master.next_deadline().max(self.now);
        if self.master_tick_at.is_none_or(|t| at < t) {
            self.master_tick_at = Some(at);
            self.at(at, Ev::MasterTick);
        }
    }

    pub(super) fn schedule_worker_tick(&mut self, w: usize) {
        let at = self.workers[w].follower.next_deadline().max(self.now);
        if at == u64::MAX {
            return;
        }
        if self.workers[w].tick_at.is_none_or(|t| at < t) {
            self.workers[w].tick_at = Some(at);
            self.at(at, Ev::WorkerTick(w));
        }
    }

    fn master_action(&mut self, action: MasterAction) -> Result<(), String> {
        match action {
            MasterAction::Send { conn, msgs } => {
                for msg in msgs {
                    self.send(conn, false, msg);
                }
                if let Some(c) = self.conns.get_mut(&conn).filter(|c| c.open) {
                    if c.m2w.len() < WINDOW {
                        let t = self.now + 1;
                        self.at(t, Ev::Sent { conn });
                    } else {
                        c.sent_owed = true;
                    }
                }
            }
            MasterAction::Refuse {
                conn,
                reason,
                message,
            } => {
                let refuse = hypha_net::Refuse::new(reason, &message);
                self.send(conn, false, Message::Refuse(refuse));
                self.close_conn(conn);
            }
            MasterAction::Close { conn, .. } => self.close_conn(conn),
            MasterAction::SendSnapshot { conn, upto } => {
                if upto > self.store.committed {
                    return Err(format!(
                        "snapshot up to {upto} beyond the committed {}",
                        self.store.committed
                    ));
                }
                let state = self.store.state_at(upto);
                self.send(
                    conn,
                    false,
                    Message::SnapshotBegin {
                        term: TERM,
                        history_id: HISTORY,
                        upto_seq: upto,
                        records_total: state.len() as u64,
                        bytes_total: 0,
                    },
                );
                let mut records: Vec<_> = state
                    .into_iter()
                    .map(|(key, (seq, value))| hypha_net::WireRecord {
                        seq,
                        id: u32::from(key[0]) + 1,
                        kind: hypha_net::RecordKind::Put,
                        key,
                        value,
                        meta: hypha_net::WireMeta {
                            term: TERM,
                            ..Default::default()
                        },
                    })
                    .collect();
                records.sort_by_key(|r| r.seq);
                let chunk = self.rng.range(1, 5) as usize;
                for part in records.chunks(chunk) {
                    let records = part.to_vec();
                    self.send(conn, false, Message::SnapshotChunk { records });
                }
                self.send(conn, false, Message::SnapshotEnd { upto_seq: upto });
                if self.conns.get(&conn).is_some_and(|c| c.open) {
                    self.master_event(MasterEvent::SnapshotSent { conn, upto })?;
                }
            }
            MasterAction::ReadLog { conn, after, upto } => {
                if upto > self.store.committed {
                    return Err(format!(
                        "log read up to {upto} beyond the committed {}",
                        self.store.committed
                    ));
                }
                let t = self.now + self.rng.range(0, 3);
                self.at(t, Ev::LogRead { conn, after, upto });
            }
            MasterAction::Confirm { waiter } => {
                let seq = self.waiting.remove(&waiter).ok_or("unknown waiter")?;
                let wanted = match self.params.sync {
                    hypha_repl::SyncMode::Workers(n) => n as usize,
                    hypha_repl::SyncMode::Async => 0,
                    hypha_repl::SyncMode::Majority { .. } => {
                        return Err("the fixed-master simulator runs no failover group".into())
                    }
                };
                // "Applied" as the README promises it: a worker may crash
                // after its ack and lose what its last sync did not cover.
                let holding = self.workers.iter().filter(|w| w.peak >= seq).count();
                if holding < wanted {
                    return Err(format!(
                        "write seq {seq} confirmed under --sync {wanted} but only {holding} \
                         workers applied it"
                    ));
                }
                self.acked += 1;
            }
            MasterAction::SyncFailed { waiter, .. } => {
                self.waiting.remove(&waiter);
                self.sync_failed += 1;
            }
            MasterAction::TombstoneFloor(floor) => self.store.floor = floor,
        }
        Ok(())
    }

    pub(super) fn log_read(&mut self, conn: u64, after: u64, upto: u64) -> Result<(), String> {
        let open = self
            .conns
            .get(&conn)
            .is_some_and(|c| c.open && c.master_incarnation == self.incarnation);
        if !open || self.master.is_none() {
            return Ok(());
        }
        let max = self.rng.range(1, BATCH_RECORDS_MAX.min(8) as u64) as usize;
        match self.store.read(after, upto, max) {
            Ok(records) => self.master_event(MasterEvent::LogRead { conn, records }),
            Err(_) => {
                // The engine refuses to read below its horizon; the server
                // ends the session and the worker comes back for a snapshot.
                self.close_conn(conn);
                self.master_event(MasterEvent::Closed { conn })
            }
        }
    }

    pub(super) fn worker_event(&mut self, w: usize, event: FollowerEvent) -> Result<(), String> {
        let actions = self.workers[w].follower.handle(event, self.now);
        for action in actions {
            if self.trace {
                eprintln!("       worker {w}: {action:?}");
            }
            self.worker_action(w, action)?;
        }
        if let Some(conn) = self.workers[w].conn {
            if self.workers[w].follower.wants_message() {
                self.at(
                    self.now,
                    Ev::Deliver {
                        conn,
                        to_master: false,
                    },
                );
            }
        }
        self.schedule_worker_tick(w);
        Ok(())
    }

    fn worker_action(&mut self, w: usize, action: FollowerAction) -> Result<(), String> {
        let incarnation = self.workers[w].incarnation;
        match action {
            FollowerAction::Connect {
                history_id,
                applied_seq,
            } => {
                let conn = self.next_conn;
                self.next_conn += 1;
                self.conns.insert(
                    conn,
                    Conn {
                        w,
                        m2w: VecDeque::new(),
                        w2m: VecDeque::new(),
                        open: true,
                        sent_owed: false,
                        master_incarnation: self.incarnation,
                    },
                );
                self.workers[w].conn = Some(conn);
                if self.master.is_none() || self.is_cut(w, true) || self.is_cut(w, false) {
                    let t = self.now + super::CONNECT_TIMEOUT_MS;
                    self.at(t, Ev::ConnectFailed { w, conn });
                    return Ok(());
                }
                let cluster = "sim".try_into().expect("short name");
                let mut hello = Hello::new(cluster, Role::Worker, node_of(w), Purpose::Replicate);
                hello.history_id = history_id;
                hello.applied_seq = applied_seq;
                hello.last_term = if applied_seq > 0 { TERM } else { 0 };
                self.send(conn, true, Message::Hello(hello));
            }
            FollowerAction::Apply { records } => {
                if !records.windows(2).all(|p| p[0].seq < p[1].seq) {
                    return Err("records out of seq order".into());
                }
                self.workers[w].pending = Some(Pending::Records(records));
                let t = self.now + self.rng.range(0, 5);
                self.at(t, Ev::Applied { w, incarnation });
            }
            FollowerAction::SnapshotBegin { .. } => {
                self.workers[w].tmp = Some(Default::default());
            }
            FollowerAction::SnapshotChunk { records } => {
                let tmp = self.workers[w].tmp.as_mut().ok_or("chunk without begin")?;
                for r in &records {
                    crate::model::apply(tmp, r);
                }
            }
            FollowerAction::Truncate { after } => {
                // One master, one term: a worker's log is always a prefix.
                return Err(format!("worker {w} asked to cut its log after {after}"));
            }
            FollowerAction::SnapshotEnd {
                history_id,
                upto_seq,
                terms,
            } => {
                let first = hypha_net::TermStart {
                    term: TERM,
                    first_seq: 1,
                };
                if upto_seq > 0 && terms != [first] {
                    return Err(format!(
                        "snapshot to {upto_seq} with term boundaries {terms:?}"
                    ));
                }
                self.workers[w].pending = Some(Pending::Snapshot {
                    history_id,
                    upto: upto_seq,
                });
                let t = self.now + self.rng.range(0, 20);
                self.at(t, Ev::Applied { w, incarnation });
            }
            FollowerAction::Send(msg) => {
                if let Some(conn) = self.workers[w].conn {
                    self.send(conn, true, msg);
                }
            }
            FollowerAction::Disconnect { .. } => {
                self.workers[w].tmp = None;
                if let Some(conn) = self.workers[w].conn.take() {
                    self.close_conn(conn);
                }
            }
        }
        Ok(())
    }

    pub(super) fn applied(&mut self, w: usize, incarnation: u64) -> Result<(), String> {
        let node = &mut self.workers[w];
        if node.incarnation != incarnation || !node.up {
            return Ok(());
        }
        let event = match node.pending.take() {
            Some(Pending::Records(records)) => {
                node.store.apply(&records);
                node.peak = node.peak.max(node.store.applied);
                FollowerEvent::Applied {
                    seq: node.store.applied,
                }
            }
            Some(Pending::Snapshot { history_id, upto }) => {
                let kv = node.tmp.take().ok_or("snapshot end without begin")?;
                node.store.kv = kv;
                node.store.applied = upto;
                node.store.followed = history_id;
                node.peak = node.peak.max(upto);
                // Synced before the swap.
                node.durable = node.store.clone();
                FollowerEvent::SnapshotInstalled {
                    history_id,
                    seq: upto,
                }
            }
            None => return Ok(()),
        };
        // `--fsync every 200 ms`, modelled as a sync at every 200 ms mark.
        if self.now / 200 != node.durable_mark {
            node.durable_mark = self.now / 200;
            node.durable = node.store.clone();
        }
        self.worker_event(w, event)?;
        let (events, conns, core) = self.queue_lens();
        if events > QUEUE_MAX * 64 || conns > QUEUE_MAX || core > QUEUE_MAX {
            return Err(format!(
                "a queue grew: events {events}, conn {conns}, waits {core}"
            ));
        }
        Ok(())
    }
}
