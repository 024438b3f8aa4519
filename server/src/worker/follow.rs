//! The worker's follow loop: the driver of the replication core
//! (`hypha_repl::Follower`) and the applies it asks for.

use super::files::report_log;
use super::link::{next_event, Applying, Link};
use super::Worker;
use crate::wire::from_wire;
use hypha_engine::Fsync;
use hypha_net::WireRecord;
use hypha_repl::{Follower, FollowerAction, FollowerEvent, FollowerParams, Millis};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Worker {
    /// Drives the replication core (`hypha_repl::Follower`): connects when
    /// it says, feeds it the master's messages one at a time, applies
    /// records (on the blocking pool when they may wait for an fdatasync)
    /// while it goes on reading what the core wants queued behind them,
    /// and sends what it says.
    pub(super) async fn follow(&self, heard: smol::channel::Receiver<()>) {
        let params = FollowerParams {
            heartbeat_timeout_ms: self.cfg.heartbeat_timeout_ms,
            accept_new_history: self.cfg.accept_new_history,
        };
        let applied = self.db().map_or(0, |db| db.seq());
        let mut core = Follower::new(params, self.followed.load(Ordering::Acquire), applied);
        let clock = Instant::now();
        let now = || clock.elapsed().as_millis() as Millis;
        let mut link = Link::default();
        // One timer for the whole run, moved to each deadline: a timer per
        // message is a reactor registration and a wake-up on the
        // replication path.
        let mut timer = smol::Timer::never();
        let mut timer_at = Millis::MAX;
        let mut events = std::collections::VecDeque::from([FollowerEvent::Tick]);
        // The apply in flight (the core has at most one out).
        let mut applying: Option<Applying<'_>> = None;
        loop {
            if self.stopping.load(Ordering::Acquire) {
                // The role that comes next writes to the same database.
                if let Some(apply) = applying.take() {
                    apply.await;
                }
                link.close();
                return;
            }
            let event = match events.pop_front() {
                Some(event) => event,
                None => {
                    let at = core.next_deadline();
                    if at != timer_at {
                        timer_at = at;
                        timer = match at {
                            Millis::MAX => smol::Timer::never(),
                            at => smol::Timer::at(clock + Duration::from_millis(at)),
                        };
                    }
                    let reading = core.wants_message();
                    let stop = self.stop.listen();
                    if self.stopping.load(Ordering::Acquire) {
                        continue;
                    }
                    let next = next_event(&mut link, reading, &mut timer, &heard, &mut applying);
                    match smol::future::or(async { Some(next.await) }, async {
                        stop.await;
                        None
                    })
                    .await
                    {
                        Some(event) => event,
                        None => continue,
                    }
                }
            };
            match &event {
                FollowerEvent::Tick => timer_at = Millis::MAX,
                FollowerEvent::Failed { .. } => self.end_session(&mut link),
                _ => {}
            }
            for action in core.handle(event, now()) {
                if let FollowerAction::Apply { records } = action {
                    let applied = &self.applied;
                    let apply = self.apply(records);
                    applying = Some(Box::pin(async move { applied_event(applied, apply.await) }));
                } else if let Some(event) = self.act(action, &mut link).await {
                    events.push_back(event);
                }
            }
        }
    }

    fn end_session(&self, link: &mut Link) {
        link.close();
        *self.beats.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Carries out one action of the core; the event it results in, if any.
    async fn act(&self, action: FollowerAction, link: &mut Link) -> Option<FollowerEvent> {
        let failed = |link: &mut Link, why: String| {
            self.end_session(link);
            Some(FollowerEvent::Failed { why })
        };
        match action {
            FollowerAction::Connect {
                history_id,
                applied_seq,
            } => match self
                .unless_stopped(self.connect(history_id, applied_seq))
                .await
            {
                Ok((r, w, event)) => {
                    link.open(r, w);
                    Some(event)
                }
                Err(e) => failed(link, e.to_string()),
            },
            // Started by `follow`, which goes on reading meanwhile.
            FollowerAction::Apply { records } => {
                let seq = self.apply(records).await;
                Some(applied_event(&self.applied, seq))
            }
            FollowerAction::SnapshotBegin { records_total, .. } => {
                match self.snapshot_begin(records_total).await {
                    Ok(rx) => {
                        link.snapshot = Some(rx);
                        None
                    }
                    Err(e) => failed(link, format!("starting a snapshot: {e}")),
                }
            }
            FollowerAction::SnapshotChunk { records } => {
                let rx = link.snapshot.as_mut()?;
                match rx.chunk(records).await {
                    Ok(()) => None,
                    Err(e) => failed(link, format!("applying the snapshot: {e}")),
                }
            }
            FollowerAction::SnapshotEnd {
                history_id,
                upto_seq,
                terms,
            } => {
                let rx = link.snapshot.take()?;
                match self.snapshot_end(rx, history_id, upto_seq, terms).await {
                    Ok(seq) => Some(FollowerEvent::SnapshotInstalled { history_id, seq }),
                    Err(e) => failed(link, format!("installing the snapshot: {e}")),
                }
            }
            FollowerAction::Send(msg) => {
                let fence = match &self.cfg.group {
                    Some(g) => {
                        let now = g.acks.read().await;
                        if *now != g.term {
                            let why = format!(
                                "this member moved to term {}; the leader of term {} is deposed",
                                *now, g.term
                            );
                            return failed(link, why);
                        }
                        Some(now)
                    }
                    None => None,
                };
                let w = link.w.as_mut()?;
                // Bounded: a member's election waits for this send before it
                // decides anything in a higher term.
                let limit = Duration::from_millis(self.cfg.heartbeat_timeout_ms.max(1));
                let sent = smol::future::or(w.send(&msg), async {
                    smol::Timer::after(limit).await;
                    Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
                })
                .await;
                drop(fence);
                match sent {
                    Ok(()) => None,
                    Err(e) => failed(link, format!("sending to the master: {e}")),
                }
            }
            FollowerAction::Disconnect { .. } => {
                self.end_session(link);
                None
            }
            FollowerAction::Truncate { after } => match self.truncate(after).await {
                Ok(Ok(seq)) => Some(FollowerEvent::Truncated { seq }),
                Ok(Err(why)) => Some(FollowerEvent::TruncateFailed { why }),
                Err(e) => Some(FollowerEvent::TruncateFailed { why: e.to_string() }),
            },
        }
    }

    /// Applies records in order; the engine's seq after them. Nothing that
    /// can stall (an fdatasync, key-index growth, a rollover's fsyncs) runs
    /// on the executor thread.
    async fn apply(&self, records: Vec<WireRecord>) -> std::io::Result<u64> {
        let seq = self.apply_records(records).await?;
        let Some(group) = &self.cfg.group else {
            return Ok(seq);
        };
        // A member's acknowledgement counts toward the majority that
        // commits a write: it says only what survives a crash. Under
        // `--fsync always` `apply_records` made the frame durable already.
        let db = self.db_or_busy()?;
        if !matches!(self.cfg.engine.fsync, Fsync::Always) {
            let synced = db.clone();
            smol::unblock(move || synced.sync())
                .await
                .map_err(std::io::Error::other)?;
        }
        report_log(group, &db);
        Ok(seq)
    }

    async fn apply_records(&self, records: Vec<WireRecord>) -> std::io::Result<u64> {
        let db = self.db_or_busy()?;
        let mut records: Vec<_> = records.into_iter().map(from_wire).collect();
        let mut done = 0;
        if !matches!(self.cfg.engine.fsync, Fsync::Always) {
            // On this thread while nothing slow is in the way; an atomic
            // batch (the core sends only whole ones) in one piece.
            for group in records.split_inclusive(|r| !r.meta.batch_more) {
                match db.try_apply_batch(group).map_err(std::io::Error::other)? {
                    Some(_) => done += group.len(),
                    None => break,
                }
            }
        }
        let rest = records.split_off(done);
        self.hub.push(&records);
        if rest.is_empty() {
            return Ok(db.seq());
        }
        // One fdatasync for the frame (`--fsync always`), key-index growth
        // or a rollover's fsyncs: on the blocking pool.
        let (seq, rest) = smol::unblock(move || (db.apply_all(&rest), rest)).await;
        let seq = seq.map_err(std::io::Error::other)?;
        self.hub.push(&rest);
        Ok(seq)
    }
}

/// The core's event for an apply's outcome; wakes reads waiting for the
/// records (read-your-writes).
fn applied_event(applied: &event_listener::Event, seq: std::io::Result<u64>) -> FollowerEvent {
    match seq {
        Ok(seq) => {
            applied.notify(usize::MAX);
            FollowerEvent::Applied { seq }
        }
        Err(e) => FollowerEvent::Failed {
            why: format!("applying records: {e}"),
        },
    }
}
