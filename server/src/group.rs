//! What the master and worker drivers need to run inside a member of a
//! failover group (`hypha member`): the term they serve in, and where to
//! report what the election must hear (a higher term seen on a replication
//! connection, the log's newest durable record).
//!
//! The fixed roles (`hypha master`, `hypha worker`) run without it, in term
//! 0, exactly as before failover existed.

use hypha_net::{LogId, TermStart};
use std::sync::Arc;

/// The member's election, as the replication drivers see it.
pub trait Elector: Send + Sync {
    /// A replication handshake or frame carried `term` (a higher one makes
    /// the member adopt it and follow).
    fn saw_term(&self, term: u64);
    /// The log's newest durable record is now `last`: a vote is granted only
    /// to a candidate whose log is at least as new.
    fn log_changed(&self, last: LogId);
    /// Confirms this member still leads, by a heartbeat round a majority
    /// acknowledges after now (a read index): the receiver gets `true`
    /// then, `false` if it does not lead (any more).
    fn read_index(&self) -> smol::channel::Receiver<bool>;
}

/// A driver serving in a failover group's term.
#[derive(Clone)]
pub struct InGroup {
    /// The term it serves in: a leader stamps it on every record and frame;
    /// a follower follows only a leader of this term.
    pub term: u64,
    /// Where it reports to.
    pub elector: Arc<dyn Elector>,
    /// The member's current term, raised by its election *before* it decides
    /// anything in a higher term. A follower sends an acknowledgement only
    /// while this equals its `term`, holding the read side across the send:
    /// once a member moved on, no record of the old leader can count on
    /// its ack (which the vote it is about to give did not account for).
    pub acks: Arc<smol::lock::RwLock<u64>>,
}

impl std::fmt::Debug for InGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InGroup").field("term", &self.term).finish()
    }
}

/// A master leading a failover group's term.
#[derive(Clone, Debug)]
pub struct Leading {
    /// Its term and election.
    pub group: InGroup,
    /// Where the newest terms start in its log, ending with its own.
    pub terms: Vec<TermStart>,
    /// Members of the group (itself included): a write is acknowledged once
    /// a majority of them hold it durably.
    pub voters: u32,
    /// The group's write history (the one every member follows), which a
    /// member that installed a snapshot keeps beside its database.
    pub history_id: u64,
}
