//! What a member that leads needs of its master driver to change the
//! group's member list: write a system record (the list) and wait until a
//! majority holds it, count only the list's voters, and see how far a new
//! member has caught up.

use super::{lock, Master};
use hypha_repl::MasterEvent;
use std::time::{Duration, Instant};

/// How often a wait for the majority checks the commit point.
const MAJORITY_POLL_MS: u64 = 2;

impl Master {
    /// Writes `value` under the system key `key`, durably on this member,
    /// and streams it to the followers; returns its seq (`Err` if this
    /// master no longer takes writes, or the engine failed).
    pub async fn append_system(&self, key: &'static [u8], value: Vec<u8>) -> Result<u64, String> {
        let db = self.db.clone();
        let open = self.writes_open.clone();
        let wrote = smol::unblock(move || {
            let open = open.read().unwrap_or_else(|p| p.into_inner());
            match *open {
                true => db.put_unsynced(key, &value).map(Some),
                false => Ok(None),
            }
        })
        .await;
        let seq = match wrote {
            Ok(Some(seq)) => seq,
            Ok(None) => return Err("this member stopped leading".into()),
            Err(e) => return Err(format!("cannot write: {e}")),
        };
        if self.cfg.group.is_some() {
            self.handle(MasterEvent::Appended { seq });
        }
        self.committer
            .durable(&self.db, seq)
            .await
            .map_err(|e| format!("seq {seq} is not durable: {e}"))?;
        self.handle(MasterEvent::Committed { seq });
        self.report_durable(seq);
        Ok(seq)
    }

    /// Waits until a majority holds `seq` (true), or `timeout_ms` passed.
    pub async fn wait_majority(&self, seq: u64, timeout_ms: u64) -> bool {
        let until = Instant::now() + Duration::from_millis(timeout_ms);
        while self.commit_point() < seq {
            if Instant::now() >= until {
                return false;
            }
            smol::Timer::after(Duration::from_millis(MAJORITY_POLL_MS)).await;
        }
        true
    }

    /// The highest seq a majority holds (0 until this term's first record
    /// is held by one).
    pub fn majority_commit(&self) -> u64 {
        self.commit_point()
    }

    /// Only these voters count toward the majority from now on: `count` in
    /// all, this master among them if `leader_votes`, `others` named by
    /// node id (a witness: `u64::MAX - member`).
    pub fn set_voters(&self, count: u32, leader_votes: bool, others: Vec<u64>) {
        self.handle(MasterEvent::Voters {
            count,
            leader_votes,
            others,
        });
    }

    /// The seq worker `node` acknowledged on its current session, if it is
    /// connected.
    pub fn worker_applied(&self, node: u64) -> Option<u64> {
        let core = lock(&self.core);
        let found = core.workers().find(|(&id, _)| id == node);
        found.and_then(|(_, w)| w.conn.map(|_| w.applied_seq))
    }
}
