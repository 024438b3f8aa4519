//! Term boundaries of a replicated log, and where two logs agree.
//!
//! The log is a sequence of records with seqs 1, 2, 3, … each stamped with
//! the term of the leader that wrote it; terms never decrease along the log
//! (term 0 is a normal term: data written before failover existed). A
//! [`TermHistory`] keeps the seq at which each term starts — like Kafka's
//! leader-epoch cache — bounded to the newest [`TERMS_KEPT`] terms.
//!
//! [`agreement`] uses two histories to find how much of a follower's log is
//! also in the leader's, relying on Raft's *log matching* property: if two
//! logs hold a record with the same seq and term, they are identical up to
//! that seq. So all records of one term come from that term's one leader,
//! and two logs holding records of term T hold them from the same first seq.
//!
//! Pure: no I/O, no clock, std only.

/// The most boundaries a [`TermHistory`] keeps (the wire's limit on
/// `Welcome.terms`); when a new term would exceed it, the oldest boundary is
/// dropped.
pub use hypha_net::TERMS_KEPT;

/// A term boundary: the record at `first_seq` is the log's first of `term`.
pub use hypha_net::TermStart;

/// The term boundaries of one log, oldest first, at most [`TERMS_KEPT`].
///
/// Invariants: terms strictly ascend, first_seqs strictly ascend, every
/// first_seq >= 1. The boundary of term `starts[i].term` covers seqs
/// `starts[i].first_seq ..= starts[i + 1].first_seq - 1` (the last one runs
/// to the log's last seq, which the history does not store: every query
/// takes it as `last`).
///
/// Trimming drops the oldest boundaries only, and truncation drops the
/// newest (with their records), so the kept terms are always *all* the
/// log's terms from the oldest kept one on. [`agreement`] relies on that.
///
/// One boundary may start later than its term really does: if
/// [`TermHistory::truncate_after`] cuts a trimmed history down to nothing
/// while records remain, the next [`TermHistory::note`] starts a boundary at
/// the noted seq though earlier records may share its term. Only the oldest
/// kept boundary can be such, and never at seq 1; everything it claims
/// (records from its first_seq on have its term) is still true, so at worst
/// [`agreement`] answers [`Agreement::Unknown`] when it could have decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TermHistory {
    starts: Vec<TermStart>,
}

impl TermHistory {
    /// An empty history: the history of an empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A history from boundaries (e.g. sent by a peer), oldest first.
    ///
    /// Errors unless terms strictly ascend, first_seqs strictly ascend,
    /// every first_seq >= 1 and there are at most [`TERMS_KEPT`] of them.
    pub fn from_starts(starts: &[TermStart]) -> Result<Self, String> {
        if starts.len() > TERMS_KEPT {
            return Err(format!(
                "{} term boundaries, more than the {TERMS_KEPT} kept",
                starts.len()
            ));
        }
        for (i, s) in starts.iter().enumerate() {
            if s.first_seq == 0 {
                return Err(format!(
                    "term boundary {i} (term {}) starts at seq 0",
                    s.term
                ));
            }
            if i == 0 {
                continue;
            }
            let prev = starts[i - 1];
            if s.term <= prev.term {
                return Err(format!(
                    "term boundary {i}: term {} does not ascend from term {}",
                    s.term, prev.term
                ));
            }
            if s.first_seq <= prev.first_seq {
                return Err(format!(
                    "term boundary {i} (term {}): first seq {} does not ascend from {}",
                    s.term, s.first_seq, prev.first_seq
                ));
            }
        }
        Ok(Self {
            starts: starts.to_vec(),
        })
    }

    /// The kept boundaries, oldest first.
    pub fn starts(&self) -> &[TermStart] {
        &self.starts
    }

    /// A record `(term, seq)` was appended (`seq` = previous last + 1).
    ///
    /// A term above the last known one starts a boundary at `seq`, dropping
    /// the oldest when over [`TERMS_KEPT`]. A term below the last known one,
    /// seq 0, or a new term at a seq not above the last boundary's is a
    /// caller bug: asserted in debug builds, ignored otherwise.
    pub fn note(&mut self, term: u64, seq: u64) {
        let last = self.starts.last().copied();
        if let Some(last) = last {
            if term == last.term {
                return;
            }
            if term < last.term || seq <= last.first_seq {
                debug_assert!(false, "note({term}, {seq}) after {last:?}");
                return;
            }
        }
        if seq == 0 {
            debug_assert!(false, "note({term}, 0): seqs start at 1");
            return;
        }
        if self.starts.len() == TERMS_KEPT {
            self.starts.remove(0);
        }
        self.starts.push(TermStart {
            term,
            first_seq: seq,
        });
    }

    /// The log was cut to end at `seq` (records after it removed): drops the
    /// boundaries of terms that started after `seq`.
    pub fn truncate_after(&mut self, seq: u64) {
        let keep = self.starts.partition_point(|s| s.first_seq <= seq);
        self.starts.truncate(keep);
    }

    /// The term of the record at `seq` in a log whose last seq is `last`, if
    /// known: `1 <= seq <= last` and `seq` is not older than the oldest kept
    /// boundary.
    pub fn term_at(&self, seq: u64, last: u64) -> Option<u64> {
        if seq == 0 || seq > last {
            return None;
        }
        let n = self.starts.partition_point(|s| s.first_seq <= seq);
        n.checked_sub(1).map(|i| self.starts[i].term)
    }

    /// The last seq holding `term` in a log whose last seq is `last`; `None`
    /// if the history keeps no boundary for `term`, or keeps one that starts
    /// after `last` (an inconsistent `last`: treated as absent).
    pub fn end_of(&self, term: u64, last: u64) -> Option<u64> {
        let i = self.starts.binary_search_by_key(&term, |s| s.term).ok()?;
        if self.starts[i].first_seq > last {
            return None;
        }
        let end = match self.starts.get(i + 1) {
            Some(next) => last.min(next.first_seq - 1),
            None => last,
        };
        Some(end)
    }

    /// The term of the newest kept boundary (of the log's last record if the
    /// log is consistent with the history); `None` if none is kept.
    pub fn last_term(&self) -> Option<u64> {
        self.starts.last().map(|s| s.term)
    }

    /// The boundary of `term`, if kept and starting at or before `last`.
    fn boundary(&self, term: u64, last: u64) -> Option<TermStart> {
        let i = self.starts.binary_search_by_key(&term, |s| s.term).ok()?;
        Some(self.starts[i]).filter(|s| s.first_seq <= last)
    }

    /// Whether the history provably covers its (non-empty) log from seq 1:
    /// its oldest boundary starts at seq 1 (a late one never does).
    fn complete(&self) -> bool {
        self.starts.first().is_some_and(|s| s.first_seq == 1)
    }
}

/// How a follower's log relates to the leader's; see [`agreement`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agreement {
    /// The follower's whole log is a prefix of the leader's: resume
    /// streaming after the follower's last seq.
    Prefix,
    /// The logs agree up to and including this seq (< the follower's last
    /// seq) and differ right after it (or the leader's log ends there): the
    /// follower must cut everything after it, then resume. 0 means nothing
    /// agrees: the follower's log must be emptied.
    CutAfter(u64),
    /// Not decidable from the kept boundaries (trimmed histories without a
    /// common term, inconsistent starts): the follower needs a full snapshot.
    Unknown,
}

/// Where the follower's log (history `follower`, last seq `follower_last`)
/// agrees with the leader's (history `leader`, last seq `leader_last`).
///
/// Boundaries starting after their log's last seq are ignored. Let T be the
/// largest term with a boundary in both histories, s its first seq (the
/// same in both, else [`Agreement::Unknown`]: inconsistent, never guess), a
/// and b its last seqs in the leader's and the follower's log, and
/// p = min(a, b). The answer is [`Agreement::Prefix`] if p is the
/// follower's last seq, else [`Agreement::CutAfter`]`(p)`; p is exactly the
/// length of the logs' longest common prefix:
///
/// - *Agreement through p is safe.* Records s..=a of the leader's log and
///   s..=b of the follower's have term T, and s <= p <= min(a, b), so both
///   logs hold the record (p, T); by log matching they are identical up to p.
/// - *No agreement through p + 1.* Suppose both logs hold a record at p + 1
///   with the same term U. p is T's end in at least one log, so there the
///   record at p + 1 is of a later term (terms never decrease): U > T, and
///   it starts a boundary at p + 1. If T's ends differ, the other log's
///   record at p + 1 has term T != U: contradiction. If they are equal, both
///   logs start a boundary of U at p + 1: U is a common term larger than T,
///   contradicting T's choice.
///
/// *Trimming never makes the answer wrong, only `Unknown`.* A history keeps
/// all its log's terms from its oldest kept one on (see [`TermHistory`]),
/// so a common term larger than T would be kept in both and would have been
/// chosen: T is the largest common term of the logs themselves. And p needs
/// only T's boundary and the next ones, which are newer, hence kept. If T
/// was trimmed from either history, no common term is kept (every kept term
/// of that history is above T, so not in the other log) and, unless both
/// histories provably start at seq 1, the answer is `Unknown`.
///
/// With no common term but both histories complete from seq 1 (or the
/// leader's log empty), the logs differ at seq 1: `CutAfter(0)`.
pub fn agreement(
    leader: &TermHistory,
    leader_last: u64,
    follower: &TermHistory,
    follower_last: u64,
) -> Agreement {
    if follower_last == 0 {
        return Agreement::Prefix;
    }
    let common = follower
        .starts
        .iter()
        .rev()
        .filter(|f| f.first_seq <= follower_last)
        .find_map(|f| leader.boundary(f.term, leader_last).map(|l| (*f, l)));
    let Some((f, l)) = common else {
        return if leader_last == 0 || (leader.complete() && follower.complete()) {
            Agreement::CutAfter(0)
        } else {
            Agreement::Unknown
        };
    };
    if f.first_seq != l.first_seq {
        return Agreement::Unknown;
    }
    let (Some(a), Some(b)) = (
        leader.end_of(f.term, leader_last),
        follower.end_of(f.term, follower_last),
    ) else {
        return Agreement::Unknown; // unreachable: both boundaries start by `last`
    };
    let p = a.min(b);
    if p == follower_last {
        Agreement::Prefix
    } else {
        Agreement::CutAfter(p)
    }
}
