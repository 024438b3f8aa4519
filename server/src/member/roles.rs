//! A member's roles: the master driver while it leads, the worker driver
//! while it follows a known leader, reads only while it knows none. One
//! role runs at a time; switching ends the old one first (its connections,
//! its writes in flight) and hands the database on.

use super::{lock, Member, Reports};
use crate::group::{InGroup, Leading};
use crate::master::{Master, MasterConfig, FORGET_AFTER_MS_DEFAULT};
use crate::requests::{answer_read, min_seq, serve_requests, Answer, Me};
use crate::worker::{Worker, WorkerConfig};
use hypha_engine::Db;
use hypha_net::{
    ErrorCode, Message, Purpose, RefuseReason, Role, TermStart, Welcome, PROTOCOL_VERSION,
    TERMS_KEPT,
};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The connections of one role: they end when it does.
pub(super) struct Life {
    over: AtomicBool,
    event: event_listener::Event,
}

impl Life {
    fn new() -> Arc<Life> {
        Arc::new(Life {
            over: AtomicBool::new(false),
            event: event_listener::Event::new(),
        })
    }

    fn end(&self) {
        self.over.store(true, Ordering::Release);
        self.event.notify(usize::MAX);
    }

    /// Resolves once the role ended.
    pub(super) async fn ended(&self) {
        loop {
            let listener = self.event.listen();
            if self.over.load(Ordering::Acquire) {
                return;
            }
            listener.await;
        }
    }
}

/// What a member is doing.
pub(super) enum Active {
    /// Knows no leader: holds its database and answers reads at what it
    /// holds (a partitioned minority still reads, labelled stale by the
    /// edge), nothing else.
    Idle { db: Arc<Db>, life: Arc<Life> },
    Leading {
        master: Arc<Master>,
        task: smol::Task<()>,
        life: Arc<Life>,
    },
    Following {
        term: u64,
        leader: usize,
        /// Where the leader listens.
        leader_addr: SocketAddr,
        worker: Arc<Worker>,
        task: smol::Task<()>,
        life: Arc<Life>,
    },
    /// For the moment a switch takes.
    Switching,
    /// A witness: no data, no role but its votes.
    Witness(Arc<hypha_engine::WitnessStore>),
}

/// Who serves a member's connections now.
pub(super) enum Serving {
    Master(Arc<Master>),
    /// The worker, and the leader it follows.
    Worker(Arc<Worker>, SocketAddr),
    /// No leader known: reads only.
    Idle(Arc<Db>),
}

impl Active {
    pub(super) fn idle(db: Arc<Db>) -> Active {
        Active::Idle {
            db,
            life: Life::new(),
        }
    }

    pub(super) fn db(&self) -> Option<Arc<Db>> {
        match self {
            Active::Idle { db, .. } => Some(db.clone()),
            Active::Leading { master, .. } => Some(master.db().clone()),
            Active::Following { worker, .. } => worker.db(),
            Active::Switching | Active::Witness(_) => None,
        }
    }

    /// The role serving connections now, and its life; `None` when none
    /// does.
    pub(super) fn serving(&self) -> Option<(Serving, Arc<Life>)> {
        match self {
            Active::Leading { master, life, .. } => {
                Some((Serving::Master(master.clone()), life.clone()))
            }
            Active::Following {
                worker,
                life,
                leader_addr,
                ..
            } => Some((Serving::Worker(worker.clone(), *leader_addr), life.clone())),
            Active::Idle { db, life } => Some((Serving::Idle(db.clone()), life.clone())),
            Active::Switching | Active::Witness(_) => None,
        }
    }
}

impl Member {
    fn elector(self: &Arc<Self>) -> InGroup {
        InGroup {
            term: 0,
            elector: Arc::new(Reports(Arc::downgrade(self))),
            acks: self.acks.clone(),
        }
    }

    /// The group's history this member's log belongs to: the one of the
    /// snapshot it installed, else its database's own (it led first).
    fn history(&self, db: &Db) -> u64 {
        crate::worker::followed_history(&self.cfg.data).unwrap_or_else(|| db.history_id())
    }

    /// Ends the current role and returns the database it held.
    async fn end_role(&self) -> Result<Arc<Db>, String> {
        let old = std::mem::replace(&mut *lock(&self.active), Active::Switching);
        match old {
            Active::Idle { db, life } => {
                life.end();
                Ok(db)
            }
            Active::Leading { master, task, life } => {
                // No write appends after this: one that did could take a
                // seq the next leader's record must have.
                let closing = master.clone();
                smol::unblock(move || closing.close_writes()).await;
                life.end();
                task.cancel().await;
                Ok(master.db().clone())
            }
            Active::Following {
                worker, task, life, ..
            } => {
                life.end();
                worker.stop();
                task.await;
                match worker.db() {
                    Some(db) => Ok(db),
                    None => crate::worker::open_data(&self.cfg.data, &self.cfg.engine)
                        .map(Arc::new)
                        .map_err(|e| format!("cannot reopen the database: {e}")),
                }
            }
            Active::Switching => Err("two role switches at once".into()),
            Active::Witness(_) => Err("a witness neither leads nor follows".into()),
        }
    }

    /// Leads `term`: the master driver around the database, in majority
    /// mode, its writes stamped with the term.
    pub(super) async fn lead(self: &Arc<Self>, term: u64) -> Result<(), String> {
        let db = self.end_role().await?;
        let history_id = self.history(&db);
        let synced = db.clone();
        smol::unblock(move || synced.sync())
            .await
            .map_err(|e| format!("cannot sync the log before leading: {e}"))?;
        db.set_term(term);
        let seq = db.seq();
        let mut terms = crate::wire::terms_to_wire(&db.term_history());
        // A boundary past the log's end names no record (a fresh log's
        // term 0 at seq 1): this term starts there instead.
        while terms.last().is_some_and(|t| t.first_seq > seq) {
            terms.pop();
        }
        terms.push(TermStart {
            term,
            first_seq: seq + 1,
        });
        let drop_n = terms.len().saturating_sub(TERMS_KEPT);
        terms.drain(..drop_n);
        let c = &self.cfg;
        let cfg = MasterConfig {
            data: c.data.clone(),
            listen: c.listen(),
            engine: c.engine.clone(),
            allow: c.allow.clone(),
            sync: crate::master::SyncMode::Async,
            sync_timeout_ms: c.sync_timeout_ms,
            cluster: c.cluster.clone(),
            heartbeat_ms: c.election.heartbeat_ms,
            heartbeat_timeout_ms: c.election.election_min_ms,
            forget_after_ms: FORGET_AFTER_MS_DEFAULT,
            keys: c.keys.clone(),
            connections_max: c.connections_max,
            idle_timeout_ms: c.idle_timeout_ms,
            handshake_timeout_ms: c.handshake_timeout_ms,
            group: Some(Leading {
                group: InGroup {
                    term,
                    ..self.elector()
                },
                terms,
                voters: self.list().voters().count_ones(),
                history_id,
            }),
        };
        // The new term's first record commits every list before it.
        self.list_seq.store(0, std::sync::atomic::Ordering::Release);
        self.refresh_list_from(&db);
        let master = Master::with_db(cfg, db, None, self.udp.clone())
            .map_err(|e| format!("cannot start leading: {e}"))?;
        // Only the list's voters count, before any acknowledgement does.
        self.push_voters(&master);
        let task = crate::rt::spawn(master.clone().run());
        *lock(&self.active) = Active::Leading {
            master,
            task,
            life: Life::new(),
        };
        Ok(())
    }

    /// Follows `leader` in `term`: the worker driver against it. With no
    /// leader known, a follower of this term goes on as it was; one of an
    /// older term and a deposed leader stop (`Idle`).
    pub(super) async fn follow(
        self: &Arc<Self>,
        term: u64,
        leader: Option<usize>,
    ) -> Result<(), String> {
        match (&*lock(&self.active), leader) {
            (
                Active::Following {
                    term: t, leader: l, ..
                },
                Some(leader),
            ) if *t == term && *l == leader => return Ok(()),
            // Pre-votes are out, the term is unchanged: a follower keeps
            // its worker, which serves reads (possibly stale, as on any
            // partitioned minority). In a higher term it stops following
            // the deposed leader.
            (Active::Following { term: t, .. }, None) if *t == term => return Ok(()),
            (Active::Idle { .. }, None) => return Ok(()),
            (Active::Witness(_), _) => return Ok(()),
            _ => {}
        }
        let db = self.end_role().await?;
        self.refresh_list_from(&db);
        let Some((leader, leader_addr)) = leader.and_then(|l| Some((l, self.addr_of(l)?))) else {
            *lock(&self.active) = Active::idle(db);
            return Ok(());
        };
        log::info!(
            "member {}: follows member {leader} at {leader_addr} in term {term}",
            self.me
        );
        // An empty log asks for a snapshot: it takes the leader's history.
        let followed = if db.seq() == 0 { 0 } else { self.history(&db) };
        let c = &self.cfg;
        let cfg = WorkerConfig {
            data: c.data.clone(),
            master: leader_addr,
            listen: c.listen(),
            engine: c.engine.clone(),
            allow: c.allow.clone(),
            cluster: c.cluster.clone(),
            accept_new_history: false,
            heartbeat_ms: c.election.heartbeat_ms,
            heartbeat_timeout_ms: c.election.election_min_ms,
            keys: c.keys.clone(),
            connections_max: c.connections_max,
            idle_timeout_ms: c.idle_timeout_ms,
            handshake_timeout_ms: c.handshake_timeout_ms,
            group: Some(InGroup {
                term,
                ..self.elector()
            }),
        };
        let worker = Worker::with_db(cfg, db, followed, None)
            .await
            .map_err(|e| format!("cannot start following: {e}"))?;
        let task = crate::rt::spawn(worker.clone().run());
        *lock(&self.active) = Active::Following {
            term,
            leader,
            leader_addr,
            worker,
            task,
            life: Life::new(),
        };
        Ok(())
    }
}

impl Member {
    /// Serves a connection while this member knows no leader (an election
    /// under way, a partitioned minority): reads at what its log holds,
    /// possibly stale; writes and linearizable reads are refused with why,
    /// and a read at a seq it has not applied gets `Timeout` at once.
    pub(super) async fn serve_idle(
        self: &Arc<Self>,
        db: Arc<Db>,
        accepted: crate::wire::Accepted,
    ) -> std::io::Result<()> {
        let crate::wire::Accepted {
            r, mut w, hello, ..
        } = accepted;
        let no_leader = format!(
            "member {} knows no leader yet (an election is under way); retry shortly",
            self.me
        );
        if hello.purpose != Purpose::Request {
            crate::wire::refuse(&mut w, RefuseReason::NotMaster, &no_leader).await;
            return Ok(());
        }
        let me = Me {
            role: Role::Member,
            node_id: self.node_id,
            history_id: self.history(&db),
        };
        w.send(&Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            role: me.role,
            node_id: me.node_id,
            history_id: me.history_id,
            commit_seq: db.seq(),
            term: self.seen_term.load(Ordering::Acquire),
            terms: Vec::new(),
        }))
        .await?;
        let answer = move |m: Message| {
            let req_id = m.req_id().unwrap_or(0);
            let at = db.seq();
            let refused = match min_seq(&m) {
                _ if m.is_write() => Some((ErrorCode::NotMaster, no_leader.clone())),
                Some(hypha_net::MIN_SEQ_LINEARIZABLE) => {
                    Some((ErrorCode::NotMaster, no_leader.clone()))
                }
                Some(seq) if seq > at => Some((
                    ErrorCode::Timeout,
                    format!("this member knows no leader and holds seq {at}, not yet {seq}"),
                )),
                _ => None,
            };
            let message = match refused {
                Some((code, why)) => Message::error(req_id, code, &why),
                None => answer_read(&db, me, &m)
                    .unwrap_or_else(|| Message::error(req_id, ErrorCode::NotMaster, &no_leader)),
            };
            Answer::<std::future::Ready<Message>>::Now(message)
        };
        serve_requests(r, w, "member", self.cfg.idle_timeout_ms, answer).await
    }
}
