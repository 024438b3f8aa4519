//! The wire types of failover groups (protocol 3): terms, log ids, term
//! boundaries and the election messages members exchange.
//!
//! A **term** numbers a master's reign: every record carries the term of the
//! master that wrote it, and every replication frame the sender's term. Term
//! 0 is the fixed-role master's (`hypha master`), and every record written
//! before failover existed.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Keys starting with this are the system's, never a client's: a `Put` or
/// `Delete` of one is refused, listings leave them out. (`0xff` never
/// starts UTF-8 text, so no text key collides.)
pub const SYSTEM_KEY_PREFIX: &[u8] = b"\xffhypha/";

/// The key a member writes when it starts leading a term (its value: the
/// term, 8 bytes little-endian). Raft's rule: records of earlier terms
/// count as committed only once a record of the leader's own term is; this
/// record is that first one, so a new leader knows its commit point (and
/// can answer linearizable reads) without waiting for a client's write.
pub const TERM_START_KEY: &[u8] = b"\xffhypha/term";

/// `min_seq` of a `Get` that asks a failover group's leader for a
/// linearizable answer: it confirms it still leads (a heartbeat round a
/// majority acknowledged after the request arrived) and answers with the
/// key's newest version only once a majority holds it.
pub const MIN_SEQ_LINEARIZABLE: u64 = u64::MAX;

/// Who asks for a write, in `PutOnce` and `DeleteOnce`: the request's id,
/// which the record keeps, and on a retry a seq the writer knew to be
/// committed before its first attempt was sent. The member that leads
/// searches its log after that seq for the id and, finding it, answers with
/// the first attempt's outcome instead of writing again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRequest {
    /// Random, chosen by the writer; never all zero.
    pub id: [u8; crate::limits::REQUEST_ID_BYTES],
    /// `None` on the first attempt; `Some(seq)` on a retry.
    pub retry_after: Option<u64>,
}

/// Whether `key` is reserved for the system (see [`SYSTEM_KEY_PREFIX`]).
pub fn is_system_key(key: &[u8]) -> bool {
    key.starts_with(SYSTEM_KEY_PREFIX)
}

/// The identity of a failover group's member list, as `Purpose::Elect`
/// carries it: the first 8 bytes (little-endian) of SHA-256 over
/// `"hypha/3 group"` and each member's address text, length-prefixed (one
/// byte), in list order. Members started with different lists (or the same
/// in another order, which gives members other indexes) disagree on it.
pub fn group_id<S: AsRef<str>>(members: &[S]) -> u64 {
    let mut h = Sha256::new();
    h.update(b"hypha/3 group");
    for m in members {
        let m = m.as_ref().as_bytes();
        let m = m.get(..255).unwrap_or(m);
        h.update([u8::try_from(m.len()).unwrap_or(u8::MAX)]);
        h.update(m);
    }
    let mut id = [0u8; 8];
    for (o, b) in id.iter_mut().zip(h.finalize().iter()) {
        *o = *b;
    }
    u64::from_le_bytes(id)
}

/// The (term, seq) of a log's newest record. Ordered by term, then seq: the
/// newer log is the greater.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogId {
    /// Term of the newest record.
    pub term: u64,
    /// Its seq.
    pub seq: u64,
}

/// Where a term's records start in a log: the records from `first_seq` up to
/// the next boundary's `first_seq` (exclusive) carry `term`. A log's
/// boundaries ascend in both fields; a node keeps the newest `TERMS_KEPT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TermStart {
    /// The term.
    pub term: u64,
    /// Seq of its first record (at least 1).
    pub first_seq: u64,
}

/// What members of a failover group say to each other about elections and
/// liveness, in [`Message::Ballot`](crate::Message::Ballot). Variants are
/// append-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ballot {
    /// "Would you vote for me in `term`?" (the asker's term + 1; nobody's
    /// term changes). Tag 0.
    PreVote {
        /// The term the asker would campaign in.
        term: u64,
        /// The asker's last log id.
        last: LogId,
    },
    /// Answer to a `PreVote`: `term` is the asked term if granted, else the
    /// answerer's own. Tag 1.
    PreVoteReply {
        /// See above.
        term: u64,
        /// Whether it would vote.
        granted: bool,
    },
    /// "Vote for me in `term`." Tag 2.
    RequestVote {
        /// The candidate's term.
        term: u64,
        /// The candidate's last log id.
        last: LogId,
    },
    /// Answer to a `RequestVote`, in the voter's term. Tag 3.
    Vote {
        /// The voter's term.
        term: u64,
        /// Whether it voted for the candidate.
        granted: bool,
    },
    /// The leader of `term` is alive (replication traffic counts as one).
    /// Tag 4.
    Heartbeat {
        /// The leader's term.
        term: u64,
        /// The leader's last durable log id (a witness keeps it, to vote
        /// only for logs at least as new).
        last: LogId,
        /// Numbers the leader's heartbeats in its term; the ack echoes it
        /// (a read index: a read is answered once a majority acknowledged a
        /// round sent after it arrived).
        round: u64,
    },
    /// A member heard the leader's `Heartbeat`, in the member's term. Tag 5.
    HeartbeatAck {
        /// The member's term.
        term: u64,
        /// The member's last log id (a witness: the newest it keeps).
        last: LogId,
        /// The `round` of the heartbeat it answers.
        round: u64,
    },
}

impl Ballot {
    /// The term the message carries.
    pub fn term(&self) -> u64 {
        match *self {
            Ballot::PreVote { term, .. }
            | Ballot::PreVoteReply { term, .. }
            | Ballot::RequestVote { term, .. }
            | Ballot::Vote { term, .. }
            | Ballot::Heartbeat { term, .. }
            | Ballot::HeartbeatAck { term, .. } => term,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::group_id;
    use sha2::{Digest, Sha256};

    #[test]
    fn group_id_is_the_documented_digest_and_depends_on_order() {
        let list = ["[400::1]:7000", "[400::2]:7000"];
        let mut h = Sha256::new();
        h.update(b"hypha/3 group");
        for m in list {
            h.update([m.len() as u8]);
            h.update(m.as_bytes());
        }
        let d = h.finalize();
        let want = u64::from_le_bytes(d[..8].try_into().unwrap());
        assert_eq!(group_id(&list), want);
        assert_ne!(group_id(&list), group_id(&[list[1], list[0]]));
        // Length prefixes keep "a","bc" apart from "ab","c".
        assert_ne!(group_id(&["a", "bc"]), group_id(&["ab", "c"]));
    }
}
