//! A member that follows: its `Follower`, connecting to the leader its
//! election names, applying, cutting back a diverged log, taking
//! snapshots.

use crate::member::{unwire, Follow};
use crate::net::{Item, Side};
use crate::world::{Work, World, HISTORY};
use hypha_net::{Hello, Message, Purpose, RefuseReason, Role as NetRole};
use hypha_repl::terms::TermHistory;
use hypha_repl::{Follower, FollowerAction, FollowerEvent, FollowerParams};

impl World {
    pub fn become_follower(&mut self, m: usize, leader: Option<usize>) -> Result<(), String> {
        if self.members[m].witness {
            // A witness keeps no data: it follows in its election only.
            return Ok(());
        }
        let same = self.members[m]
            .follow
            .as_ref()
            .is_some_and(|f| f.leader == leader);
        if same && self.members[m].lead.is_none() {
            return Ok(());
        }
        self.drop_roles(m);
        let params = FollowerParams {
            heartbeat_timeout_ms: self.params.election_min_ms,
            accept_new_history: false,
        };
        let applied = self.members[m].store.log.len() as u64;
        self.members[m].follow = Some(Follow {
            core: Follower::new(params, HISTORY, applied),
            leader,
            conn: None,
            snapshot_asked: false,
        });
        Ok(())
    }

    pub fn follower_event(&mut self, m: usize, ev: FollowerEvent) -> Result<(), String> {
        if self.trace {
            let what = match &ev {
                FollowerEvent::Received(msg) => msg.name().to_string(),
                other => format!("{other:?}").chars().take(160).collect(),
            };
            println!("{:>6} ms  member {m} follower: {what}", self.now);
        }
        let now = self.local(m);
        let Some(f) = self.members[m].follow.as_mut() else {
            return Ok(());
        };
        let acts = f.core.handle(ev, now);
        self.follower_actions(m, acts)
    }

    /// Something arrived for `m` as the follower side of `conn`.
    pub fn at_follower(&mut self, m: usize, conn: u64, item: Item) -> Result<(), String> {
        let ours = self.members[m]
            .follow
            .as_ref()
            .is_some_and(|f| f.conn == Some(conn));
        if !ours {
            return Ok(());
        }
        let event = match item {
            Item::Fin => {
                self.members[m].follow.as_mut().expect("follows").conn = None;
                FollowerEvent::Failed {
                    why: "the connection closed".into(),
                }
            }
            Item::Msg(Message::Welcome(w)) => {
                let mine = self.members[m].election.as_ref().map_or(0, |e| e.term());
                if w.term < mine {
                    self.send_on(conn, Side::Leader, Item::Fin);
                    self.members[m].follow.as_mut().expect("follows").conn = None;
                    let why = format!("the master's term {} is behind ours {mine}", w.term);
                    return self.follower_event(m, FollowerEvent::Failed { why });
                }
                self.saw_term(m, w.term)?;
                // A higher term ends this following: the session is gone.
                let still = self.members[m].follow.as_ref().map(|f| f.conn);
                if still != Some(Some(conn)) {
                    return Ok(());
                }
                FollowerEvent::Welcomed {
                    node_id: w.node_id,
                    history_id: w.history_id,
                    commit_seq: w.commit_seq,
                    term: w.term,
                    terms: w.terms,
                    mine: self.members[m].store.terms.clone(),
                }
            }
            Item::Msg(Message::Refuse(r)) => FollowerEvent::Refused {
                history_mismatch: matches!(r.reason, RefuseReason::HistoryMismatch { .. }),
                message: r.message,
            },
            Item::Msg(msg) => FollowerEvent::Received(msg),
        };
        self.follower_event(m, event)
    }

    pub fn follower_actions(&mut self, m: usize, acts: Vec<FollowerAction>) -> Result<(), String> {
        for a in acts {
            if self.members[m].follow.is_none() {
                return Ok(());
            }
            self.follower_action(m, a)?;
        }
        Ok(())
    }

    pub fn follower_action(&mut self, m: usize, a: FollowerAction) -> Result<(), String> {
        if self.trace && !matches!(a, FollowerAction::Apply { .. } | FollowerAction::Send(_)) {
            let what: String = format!("{a:?}").chars().take(160).collect();
            println!("{:>6} ms  member {m} does {what}", self.now);
        }
        match a {
            FollowerAction::Connect {
                history_id,
                applied_seq,
            } => {
                let leader = self.members[m].follow.as_ref().and_then(|f| f.leader);
                let Some(leader) = leader.filter(|&l| l != m) else {
                    let why = "no leader known".to_string();
                    return self.follower_event(m, FollowerEvent::Failed { why });
                };
                let conn = self.connect(m, leader);
                let f = self.members[m].follow.as_mut().expect("follows");
                f.conn = Some(conn);
                f.snapshot_asked = history_id == 0;
                let cluster = "sim".try_into().expect("short name");
                let mut hello =
                    Hello::new(cluster, NetRole::Member, m as u64 + 1, Purpose::Replicate);
                hello.history_id = history_id;
                hello.applied_seq = applied_seq;
                hello.term = self.members[m].election.as_ref().map_or(0, |e| e.term());
                hello.last_term = self.members[m].store.last().term;
                self.send_on(conn, Side::Leader, Item::Msg(Message::Hello(hello)));
            }
            FollowerAction::Apply { records } => {
                for r in &records {
                    let rec = unwire(r)?;
                    self.members[m].store.append(rec)?;
                }
                let s = &mut self.members[m].store;
                if let Some(r) = s.log.last().filter(|r| r.more) {
                    return Err(format!("member {m} applied half a batch: it ends at {r:?}"));
                }
                s.durable = s.log.len();
                self.log_changed(m)?;
                self.later(m, Work::Applied);
            }
            FollowerAction::Send(msg) => {
                if let Some(conn) = self.members[m].follow.as_ref().and_then(|f| f.conn) {
                    self.send_on(conn, Side::Leader, Item::Msg(msg));
                }
            }
            FollowerAction::Disconnect { .. } => {
                let f = self.members[m].follow.as_mut().expect("follows");
                if let Some(conn) = f.conn.take() {
                    self.send_on(conn, Side::Leader, Item::Fin);
                }
                self.members[m].snapshot = None;
            }
            FollowerAction::Truncate { after } if after < self.members[m].store.horizon => {
                self.later(m, Work::TruncateFailed);
            }
            FollowerAction::Truncate { after } => {
                crate::check::cut(self, m, after)?;
                self.stats.truncations += 1;
                let s = &mut self.members[m].store;
                s.log.truncate(after as usize);
                if let Some(r) = s.log.last().filter(|r| r.more) {
                    return Err(format!(
                        "member {m} cut its log inside a batch, after {r:?}"
                    ));
                }
                s.durable = s.durable.min(s.log.len());
                s.terms.truncate_after(after);
                self.log_changed(m)?;
                self.later(m, Work::Truncated);
            }
            FollowerAction::SnapshotBegin { .. } => self.members[m].snapshot = Some(Vec::new()),
            FollowerAction::SnapshotChunk { records } => {
                let recs = records.iter().map(unwire).collect::<Result<Vec<_>, _>>()?;
                if let Some(s) = self.members[m].snapshot.as_mut() {
                    s.extend(recs);
                }
            }
            FollowerAction::SnapshotEnd {
                history_id,
                upto_seq,
                terms,
            } => {
                let mut recs = self.members[m].snapshot.take().ok_or("no snapshot begun")?;
                recs.sort_by_key(|r| r.seq);
                if recs.iter().enumerate().any(|(i, r)| r.seq != i as u64 + 1)
                    || recs.len() as u64 != upto_seq
                {
                    return Err(format!("member {m}: snapshot to {upto_seq} has holes"));
                }
                crate::check::snapshot_keeps_committed(self, m, &recs)?;
                self.stats.snapshots += 1;
                let s = &mut self.members[m].store;
                s.log = recs;
                s.durable = s.log.len();
                s.horizon = 0;
                s.terms = TermHistory::from_starts(&terms)?;
                self.log_changed(m)?;
                self.later(m, Work::Installed { history_id });
            }
        }
        Ok(())
    }
}
