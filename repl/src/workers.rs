//! The master's table of workers: who is connected on which session, what
//! each acknowledged, when each was last heard. The tombstone floor, the
//! `--sync N` count and the worker list are all read from here.

use crate::events::Conn;
use crate::limits::Millis;
use hypha_net::WorkerInfo;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// What the master knows of one worker. Everything here comes from the
/// worker's authenticated replication session or from heartbeats signed with
/// that session's keys (`B`, kept for the driver, opaque here).
#[derive(Debug)]
pub struct WorkerEntry<B> {
    /// Where its session came from.
    pub peer: SocketAddr,
    /// Highest seq acknowledged on its session (never from a heartbeat).
    pub applied_seq: u64,
    /// Where it answers reads (0 until a heartbeat said).
    pub serve_port: u16,
    /// When it was last heard (session start, ack or heartbeat).
    pub last_heard: Millis,
    /// Its current session; `None` once that ended. Only this session may
    /// update or end the entry: a worker that reconnects while its old
    /// session lingers gets a new one.
    pub conn: Option<Conn>,
    /// The current session's heartbeat keys; `None` once it ended.
    pub beats: Option<B>,
    /// A member of the master's failover group: its acks count toward the
    /// majority that commits a write.
    pub voter: bool,
}

/// Every worker the master knows, by node id.
#[derive(Debug)]
pub struct Workers<B> {
    pub(crate) map: BTreeMap<u64, WorkerEntry<B>>,
    /// Witnesses of a failover group: the seq each acknowledged keeping.
    pub(crate) witnesses: BTreeMap<u64, u64>,
    /// The voters a failover group's member list names (`None`: every
    /// member and witness connected counts).
    pub(crate) voter_keys: Option<BTreeSet<u64>>,
}

impl<B> Workers<B> {
    pub(crate) fn new() -> Self {
        Workers {
            map: BTreeMap::new(),
            witnesses: BTreeMap::new(),
            voter_keys: None,
        }
    }

    /// The entry of `node` if `conn` is its current session.
    pub(crate) fn current(&mut self, node: u64, conn: Conn) -> Option<&mut WorkerEntry<B>> {
        self.map.get_mut(&node).filter(|w| w.conn == Some(conn))
    }

    /// How many connected workers acknowledged `seq` or more.
    pub(crate) fn confirmed(&self, seq: u64) -> u32 {
        self.map
            .values()
            .filter(|w| w.conn.is_some() && w.applied_seq >= seq)
            .count() as u32
    }

    /// The seq each voter acknowledged: connected members, and witnesses.
    fn voter_acks(&self) -> impl Iterator<Item = u64> + '_ {
        let votes = |id: &u64, voter: bool| match &self.voter_keys {
            Some(keys) => keys.contains(id),
            None => voter,
        };
        let members =
            (self.map.iter()).filter(move |(id, w)| votes(id, w.voter) && w.conn.is_some());
        let witnesses = (self.witnesses.iter()).filter(move |(id, _)| votes(id, true));
        members
            .map(|(_, w)| w.applied_seq)
            .chain(witnesses.map(|(_, &seq)| seq))
    }

    /// How many voters acknowledged `seq` or more.
    pub(crate) fn voters_confirmed(&self, seq: u64) -> u32 {
        self.voter_acks().filter(|&a| a >= seq).count() as u32
    }

    /// The highest seq that `n` voters acknowledged (0 if fewer than `n`
    /// did).
    pub(crate) fn nth_voter_ack(&self, n: usize) -> u64 {
        let mut acks: Vec<u64> = self.voter_acks().collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        match n {
            0 => u64::MAX,
            n => acks.get(n - 1).copied().unwrap_or(0),
        }
    }

    /// The lowest seq acknowledged by a worker connected or heard within
    /// `recent_ms` (`u64::MAX` when there is none): compaction may drop the
    /// deletes at or below it.
    pub(crate) fn floor(&self, now: Millis, recent_ms: Millis) -> u64 {
        self.map
            .values()
            .filter(|w| w.conn.is_some() || now.saturating_sub(w.last_heard) < recent_ms)
            .map(|w| w.applied_seq)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Drops the workers neither connected nor heard for `forget_ms`.
    pub(crate) fn forget_silent(&mut self, now: Millis, forget_ms: Millis) {
        self.map.retain(|id, w| {
            let keep = w.conn.is_some() || now.saturating_sub(w.last_heard) < forget_ms;
            if !keep {
                log::info!(
                    "master: forgetting worker {id:016x} at {}: not heard for {forget_ms} ms \
                     (--forget-after)",
                    w.peer
                );
            }
            keep
        });
    }

    /// The workers that said where they serve reads, at most `max`.
    pub(crate) fn list(&self, now: Millis, timeout_ms: Millis, max: usize) -> Vec<WorkerInfo> {
        self.map
            .iter()
            .filter(|(_, w)| w.serve_port != 0)
            .take(max)
            .map(|(id, w)| WorkerInfo {
                node_id: *id,
                addr: SocketAddr::new(w.peer.ip(), w.serve_port).to_string(),
                applied_seq: w.applied_seq,
                healthy: w.conn.is_some() && now.saturating_sub(w.last_heard) < timeout_ms,
            })
            .collect()
    }
}
