//! `hypha_repl::terms`: term histories and where a follower's log agrees with
//! a leader's, by hand-written cases and against a brute-force model of
//! Raft-like logs (`Vec<u64>` of terms, index i = seq i + 1).

use hypha_repl::terms::*;

fn ts(term: u64, first_seq: u64) -> TermStart {
    TermStart { term, first_seq }
}

fn hist(starts: &[(u64, u64)]) -> TermHistory {
    let starts: Vec<_> = starts.iter().map(|&(t, s)| ts(t, s)).collect();
    TermHistory::from_starts(&starts).unwrap()
}

/// A history built by noting every record of `log`, in order.
fn noted(log: &[u64]) -> TermHistory {
    let mut h = TermHistory::new();
    for (i, &t) in log.iter().enumerate() {
        h.note(t, i as u64 + 1);
    }
    h
}

/// Every term boundary of `log`, untrimmed, computed directly.
fn model_starts(log: &[u64]) -> Vec<TermStart> {
    let mut out: Vec<TermStart> = Vec::new();
    for (i, &t) in log.iter().enumerate() {
        if out.last().is_none_or(|s| s.term != t) {
            out.push(ts(t, i as u64 + 1));
        }
    }
    out
}

/// The length of the longest common prefix of two logs.
fn lcp(a: &[u64], b: &[u64]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn agree(leader: &[u64], follower: &[u64]) -> Agreement {
    let (a, b) = (leader.len() as u64, follower.len() as u64);
    agreement(&noted(leader), a, &noted(follower), b)
}

#[test]
fn hand_written_cases() {
    use Agreement::*;
    let log = [0, 0, 1, 1, 1, 4, 4];
    assert_eq!(agree(&log, &log), Prefix, "identical");
    assert_eq!(agree(&log, &log[..4]), Prefix, "follower behind");
    assert_eq!(
        agree(&log, &log[..6]),
        Prefix,
        "behind, inside the last term"
    );
    assert_eq!(
        agree(&log[..4], &log),
        CutAfter(4),
        "follower ahead of leader"
    );
    // The follower kept records of term 1 that the leader of term 4 never had.
    assert_eq!(agree(&[0, 0, 1, 1, 4, 4], &[0, 0, 1, 1, 1, 1]), CutAfter(4));
    // Its whole tail is of term 3, which the leader never saw.
    assert_eq!(agree(&[0, 0, 1, 1, 4, 4], &[0, 0, 1, 3, 3]), CutAfter(3));
    assert_eq!(agree(&[0, 0, 5], &[0, 0, 3, 3]), CutAfter(2));
    // Same terms, different ends: both moved past term 1 at different seqs.
    assert_eq!(agree(&[1, 1, 2, 2], &[1, 1, 1, 3]), CutAfter(2));
    assert_eq!(agree(&log, &[]), Prefix, "follower empty");
    assert_eq!(agree(&[], &[]), Prefix, "both empty");
    assert_eq!(agree(&[], &[1, 1]), CutAfter(0), "leader empty");
    assert_eq!(agree(&[2], &[1, 1]), CutAfter(0), "differ at seq 1");
    // Trimmed histories without a common term cannot be decided.
    let leader = hist(&[(7, 40), (9, 50)]);
    let follower = hist(&[(3, 20), (5, 30)]);
    assert_eq!(
        agreement(&leader, 60, &follower, 35),
        Unknown,
        "disjoint trimmed"
    );
    assert_eq!(
        agreement(&leader, 60, &hist(&[(1, 1)]), 35),
        Unknown,
        "one trimmed"
    );
    // A common term starting at different seqs is inconsistent: never guess.
    let follower = hist(&[(7, 41)]);
    assert_eq!(
        agreement(&leader, 60, &follower, 45),
        Unknown,
        "inconsistent"
    );
    // Trimmed but sharing a term: decided.
    let follower = hist(&[(5, 30), (7, 40), (8, 45)]);
    assert_eq!(agreement(&leader, 60, &follower, 47), CutAfter(44));
    assert_eq!(agreement(&leader, 60, &hist(&[(7, 40)]), 47), Prefix);
    // A boundary past the given last seq is treated as absent.
    assert_eq!(leader.end_of(9, 45), None);
    assert_eq!(leader.end_of(7, 45), Some(45));
    assert_eq!(agreement(&leader, 45, &hist(&[(9, 50)]), 52), Unknown);
}

#[test]
fn history_queries() {
    let mut h = noted(&[0, 0, 2, 2, 2, 5]);
    assert_eq!(h.starts(), &[ts(0, 1), ts(2, 3), ts(5, 6)]);
    assert_eq!(h.last_term(), Some(5));
    let terms: Vec<_> = (0..=8).map(|s| h.term_at(s, 6)).collect();
    let s = Some;
    assert_eq!(
        terms,
        [None, s(0), s(0), s(2), s(2), s(2), s(5), None, None]
    );
    assert_eq!(
        (h.end_of(0, 6), h.end_of(2, 6), h.end_of(5, 6)),
        (s(2), s(5), s(6))
    );
    assert_eq!((h.end_of(1, 6), h.end_of(2, 4)), (None, s(4)));
    h.truncate_after(4);
    assert_eq!(h.starts(), &[ts(0, 1), ts(2, 3)]);
    h.truncate_after(0);
    assert_eq!((h.starts(), h.last_term()), (&[][..], None));
    // Trimming keeps the newest TERMS_KEPT boundaries.
    let log: Vec<u64> = (0..TERMS_KEPT as u64 + 5).collect();
    let h = noted(&log);
    assert_eq!(h.starts(), &model_starts(&log)[5..]);
    assert_eq!((h.term_at(5, 37), h.term_at(6, 37)), (None, Some(5)));
}

#[test]
fn from_starts_rejects_bad_input() {
    let err = |starts: &[TermStart]| TermHistory::from_starts(starts).unwrap_err();
    assert!(err(&[ts(2, 1), ts(1, 5)]).contains("term 1 does not ascend"));
    assert!(err(&[ts(1, 1), ts(1, 5)]).contains("term 1 does not ascend"));
    assert!(err(&[ts(1, 5), ts(2, 3)]).contains("first seq 3 does not ascend"));
    assert!(err(&[ts(1, 5), ts(2, 5)]).contains("first seq 5 does not ascend"));
    assert!(err(&[ts(0, 0)]).contains("seq 0"));
    let long: Vec<_> = (1..=TERMS_KEPT as u64 + 1).map(|i| ts(i, i)).collect();
    assert!(err(&long).contains("more than the 32 kept"));
    assert!(TermHistory::from_starts(&long[..TERMS_KEPT]).is_ok());
    assert_eq!(TermHistory::from_starts(&[]), Ok(TermHistory::new()));
}

/// splitmix64: a tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..=max`.
    fn upto(&mut self, max: usize) -> usize {
        (self.next() % (max as u64 + 1)) as usize
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.next().is_multiple_of(one_in)
    }
}

/// A member of the simulated group: its log and an incrementally kept history.
#[derive(Clone, Default)]
struct Member {
    log: Vec<u64>,
    hist: TermHistory,
    /// The history may have dropped boundaries (it once held TERMS_KEPT).
    trimmed: bool,
}

impl Member {
    /// Replace the log by `new`, updating the history by truncation and notes.
    fn set_log(&mut self, new: &[u64]) {
        let c = lcp(&self.log, new);
        self.hist.truncate_after(c as u64);
        self.log.truncate(c);
        for (i, &t) in new.iter().enumerate().skip(c) {
            self.append(t, i);
            self.log.push(t);
        }
        check_history(&self.hist, self.trimmed, &self.log);
    }
    fn append(&mut self, term: u64, index: usize) {
        let h = &mut self.hist;
        if h.starts().len() == TERMS_KEPT && h.last_term() < Some(term) {
            self.trimmed = true;
        }
        h.note(term, index as u64 + 1);
    }
}

/// `h` (of a log whose records are `log`) against the model.
fn check_history(h: &TermHistory, trimmed: bool, log: &[u64]) {
    let model = model_starts(log);
    let kept = h.starts();
    if !trimmed {
        assert_eq!(kept, &model[..], "untrimmed history of {log:?}");
    } else if let Some(first) = kept.first() {
        // A suffix of the model, whose oldest boundary may start late.
        let skip = model.len() - kept.len();
        assert_eq!(&kept[1..], &model[skip + 1..], "trimmed history of {log:?}");
        assert_eq!(first.term, model[skip].term);
        assert!(first.first_seq >= model[skip].first_seq);
        assert!(first.first_seq > 1 || model.len() == kept.len());
    }
    let last = log.len() as u64;
    for seq in 0..=last + 1 {
        match h.term_at(seq, last) {
            Some(t) => assert_eq!(t, log[seq as usize - 1], "term_at({seq}) in {log:?}"),
            None if seq == 0 || seq > last => {}
            None => assert!(trimmed && kept.first().is_none_or(|s| seq < s.first_seq)),
        }
    }
    for s in kept {
        let end = log.iter().rposition(|&t| t == s.term).unwrap() as u64 + 1;
        assert_eq!(h.end_of(s.term, last), Some(end));
    }
    let absent = log.last().map_or(0, |t| t + 1);
    assert_eq!(h.end_of(absent, last), None);
}

/// Outcomes seen, to check that every branch was exercised.
#[derive(Default, Debug)]
struct Seen {
    prefix: u64,
    cut: u64,
    cut0: u64,
    unknown: u64,
}

/// `agreement` of leader log `a` and follower log `b` against brute force.
fn check_pair(
    seen: &mut Seen,
    a: (&TermHistory, bool),
    b: (&TermHistory, bool),
    logs: (&[u64], &[u64]),
) {
    let (la, lb) = logs;
    let c = lcp(la, lb);
    match agreement(a.0, la.len() as u64, b.0, lb.len() as u64) {
        Agreement::Prefix => {
            assert_eq!(c, lb.len(), "Prefix: {la:?} {lb:?}");
            seen.prefix += 1;
        }
        Agreement::CutAfter(p) => {
            assert_eq!(p as usize, c, "CutAfter: {la:?} {lb:?}");
            assert!((p as usize) < lb.len());
            *if p == 0 {
                &mut seen.cut0
            } else {
                &mut seen.cut
            } += 1;
        }
        Agreement::Unknown => {
            assert!(a.1 || b.1, "Unknown, untrimmed: {la:?} {lb:?}");
            seen.unknown += 1;
        }
    }
}

/// A history of `log` keeping only its newest `k` boundaries, via from_starts.
fn suffix_history(log: &[u64], rng: &mut Rng) -> (TermHistory, bool) {
    let model = model_starts(log);
    let k = if rng.chance(2) {
        model.len()
    } else {
        rng.upto(model.len())
    };
    let keep = &model[model.len() - k.min(TERMS_KEPT)..];
    (
        TermHistory::from_starts(keep).unwrap(),
        keep.len() < model.len(),
    )
}

/// One simulated group: leaders of increasing terms extend some member's log;
/// others copy prefixes of the leader's. Log matching holds for every pair.
fn simulate(rng: &mut Rng) -> Vec<Member> {
    let n = 3 + rng.upto(2);
    let rounds = if rng.chance(8) {
        20 + rng.upto(30)
    } else {
        rng.upto(10)
    };
    let mut members = vec![Member::default(); n];
    let base = vec![0; rng.upto(3)]; // term 0: records from before failover
    for m in &mut members {
        let len = rng.upto(base.len());
        m.set_log(&base[..len]);
    }
    let mut term = 0;
    for _ in 0..rounds {
        term += 1 + rng.upto(2) as u64;
        let (leader, source) = (rng.upto(n - 1), rng.upto(n - 1));
        let mut log = members[source].log.clone();
        log.extend(std::iter::repeat_n(term, rng.upto(3)));
        members[leader].set_log(&log);
        for (i, m) in members.iter_mut().enumerate() {
            if i != leader && rng.chance(2) {
                let cut = if rng.chance(2) {
                    rng.upto(log.len())
                } else {
                    rng.upto(log.len().min(3))
                };
                m.set_log(&log[..log.len() - cut]);
            }
        }
    }
    members
}

#[test]
fn agreement_matches_brute_force() {
    let mut rng = Rng(0x5EED_7E4D);
    let mut seen = Seen::default();
    for _ in 0..20_000 {
        let members = simulate(&mut rng);
        for a in &members {
            for b in &members {
                let logs = (&a.log[..], &b.log[..]);
                // Histories noted from scratch: trimmed only past TERMS_KEPT terms.
                let (ha, hb) = (noted(&a.log), noted(&b.log));
                let ta = model_starts(&a.log).len() > TERMS_KEPT;
                let tb = model_starts(&b.log).len() > TERMS_KEPT;
                check_pair(&mut seen, (&ha, ta), (&hb, tb), logs);
                // Histories kept incrementally through truncations.
                check_pair(&mut seen, (&a.hist, a.trimmed), (&b.hist, b.trimmed), logs);
                // Histories trimmed to their newest few boundaries.
                let (sa, sb) = (
                    suffix_history(&a.log, &mut rng),
                    suffix_history(&b.log, &mut rng),
                );
                check_pair(&mut seen, (&sa.0, sa.1), (&sb.0, sb.1), logs);
            }
        }
    }
    println!("{seen:?}");
    assert!(seen.prefix > 0 && seen.cut > 0 && seen.cut0 > 0 && seen.unknown > 0);
}

#[test]
fn truncate_after_matches_model() {
    let mut rng = Rng(0x7A11);
    for _ in 0..20_000 {
        let mut log = Vec::new();
        let mut term = rng.upto(2) as u64;
        for _ in 0..rng.upto(80) {
            term += rng.upto(1) as u64 * (1 + rng.upto(3) as u64);
            log.push(term);
        }
        let mut h = noted(&log);
        let trimmed = model_starts(&log).len() > TERMS_KEPT;
        check_history(&h, trimmed, &log);
        let cut = rng.upto(log.len() + 2);
        h.truncate_after(cut as u64);
        log.truncate(cut);
        check_history(&h, trimmed, &log);
        // Appending after the cut keeps the history right (or late-but-true).
        let next = log.last().map_or(0, |&t| t + rng.upto(1) as u64);
        for _ in 0..rng.upto(3) {
            log.push(next);
            h.note(next, log.len() as u64);
        }
        let trimmed = trimmed || model_starts(&log).len() > TERMS_KEPT;
        check_history(&h, trimmed, &log);
    }
}
