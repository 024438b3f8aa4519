//! The invariants of failover, checked while the run goes and at its end.

use crate::member::{Conf, Rec};
use crate::world::World;
use hypha_repl::election::Role;

/// A write is acknowledged only when a majority of the members hold its
/// record durably; then it and everything before it in the leader's log
/// are committed, and must never change.
pub fn acknowledged(w: &mut World, m: usize, key: u64, seq: u64, term: u64) -> Result<(), String> {
    let want = Rec {
        seq,
        term,
        key,
        conf: None,
        more: false,
    };
    let conf = w.conf_of(m);
    let (holding, data) = holders(w, want, conf);
    let majority = conf.majority();
    if data < majority {
        w.stats.witness_carried += 1;
    }
    if holding < majority {
        return Err(format!(
            "member {m} acknowledged {want:?} held durably by {holding} of the {} voters of \
             its list {conf:?}",
            conf.voters.count_ones()
        ));
    }
    // Everything before it in this leader's log is committed with it.
    let from = w.committed.range(..=seq).next_back().map_or(0, |(&s, _)| s);
    let from = from.saturating_sub(64).min(seq);
    let log = w.members[m].store.log[from as usize..seq as usize].to_vec();
    mark_committed(w, &log)?;
    w.acked.insert(key, (seq, term));
    if let Some((at, _)) = w.leader_crashed.filter(|&(_, old)| old != m) {
        let timing = (w.params.election_min_ms, w.params.heartbeat_ms);
        w.stats
            .failovers
            .entry(timing)
            .or_default()
            .push(w.now - at);
        w.leader_crashed = None;
    }
    if let Some(late) = w.late_writes.get_mut(&key) {
        *late = true;
    }
    w.stats.acked += 1;
    Ok(())
}

/// A leader's majority commit point moved: the record there is held
/// durably by a majority of the leader's list, and it and everything
/// before it are committed for good (every record, term starts and member
/// lists included, not only acknowledged writes).
pub fn commit_point(w: &mut World, m: usize) -> Result<(), String> {
    let Some(lead) = w.members[m].lead.as_ref() else {
        return Ok(());
    };
    let (point, from) = (lead.core.majority_commit(), lead.checked);
    if point <= from {
        return Ok(());
    }
    let Some(&rec) = w.members[m].store.log.get(point as usize - 1) else {
        return Err(format!(
            "member {m} says seq {point} is committed; its log is shorter"
        ));
    };
    let conf = w.conf_of(m);
    if holders(w, rec, conf).0 < conf.majority() {
        return Err(format!(
            "member {m} moved its commit point to {rec:?}, which fewer than a majority of its \
             list {conf:?} hold"
        ));
    }
    let log = w.members[m].store.log[from as usize..point as usize].to_vec();
    mark_committed(w, &log)?;
    w.members[m].lead.as_mut().expect("leads").checked = point;
    Ok(())
}

/// Records `log` as committed; a seq committed before in another term is
/// a lost committed record.
fn mark_committed(w: &mut World, log: &[Rec]) -> Result<(), String> {
    for r in log {
        if let Some(t) = w.committed.insert(r.seq, r.term) {
            if t != r.term {
                return Err(format!(
                    "seq {} was committed in term {t}, now in term {}",
                    r.seq, r.term
                ));
            }
        }
    }
    Ok(())
}

/// How many voters of `conf` hold `want` durably, and how many of those
/// keep data. A witness holds it if it keeps a log id of its term at or
/// past it.
fn holders(w: &World, want: Rec, conf: Conf) -> (usize, usize) {
    let holds = |o: usize| match w.members[o].witness {
        true => {
            let last = w.members[o].witness_last;
            last.term == want.term && last.seq >= want.seq
        }
        false => w.durable(o).get(want.seq as usize - 1) == Some(&want),
    };
    let voters = || (0..w.members.len()).filter(|&o| conf.votes(o));
    let all = voters().filter(|&o| holds(o)).count();
    let data = voters()
        .filter(|&o| !w.members[o].witness && holds(o))
        .count();
    (all, data)
}

/// A read confirmed by `m`: its index is committed and covers every write
/// acknowledged before the read began (linearizable: it sees them all), and
/// `m` holds the log up to it.
pub fn read(w: &mut World, m: usize, id: u64) -> Result<(), String> {
    let Some((at, index, done_before)) = w.reads.remove(&id) else {
        return Err(format!("member {m} confirmed unknown read {id}"));
    };
    if at != m {
        return Err(format!("member {m} confirmed read {id} made through {at}"));
    }
    if index < done_before {
        return Err(format!(
            "member {m} answered read {id} at seq {index}, but seq {done_before} was \
             acknowledged before the read began: a stale read"
        ));
    }
    let Some(&rec) = w.members[m].store.log.get(index as usize - 1) else {
        return Err(format!(
            "member {m} answered read {id} at seq {index} it lacks"
        ));
    };
    // Committed when a leader's commit point passed it (checked then), or
    // held by a majority of the list in use now.
    let conf = w.conf_of(m);
    let known = w.committed.get(&rec.seq) == Some(&rec.term);
    if !known && holders(w, rec, conf).0 < conf.majority() {
        return Err(format!(
            "member {m} answered read {id} at uncommitted {rec:?}"
        ));
    }
    w.stats.reads_confirmed += 1;
    Ok(())
}

/// One leader per term, holding every committed record.
pub fn new_leader(w: &mut World, m: usize, term: u64) -> Result<(), String> {
    if let Some(&other) = w.leaders.get(&term) {
        if other != m {
            return Err(format!("two leaders in term {term}: {other} and {m}"));
        }
    }
    w.leaders.insert(term, m);
    let log = &w.members[m].store.log;
    for (&seq, &t) in &w.committed {
        if log.get(seq as usize - 1).map(|r| r.term) != Some(t) {
            return Err(format!(
                "member {m} leads term {term} without committed seq {seq} (term {t}); its log \
                 ends at {:?}",
                w.members[m].store.last()
            ));
        }
    }
    Ok(())
}

/// Logs agree up to the commit point: the leader of the highest term
/// holds every committed record, and a member following a leader on an
/// established session holds a prefix of that leader's log. (A member cut
/// off may hold records at committed seqs that no majority took, until it
/// rejoins and cuts them: `cut` checks that cut.)
pub fn logs(w: &World) -> Result<(), String> {
    let top = (0..w.members.len())
        .filter_map(|m| w.members[m].lead.as_ref().map(|l| (l.term, m)))
        .max();
    if let Some((term, l)) = top {
        let log = &w.members[l].store.log;
        for (&seq, &t) in &w.committed {
            if log.get(seq as usize - 1).map(|r| r.term) != Some(t) {
                return Err(format!(
                    "leader {l} of term {term} lacks committed seq {seq} of term {t}"
                ));
            }
        }
    }
    for (m, mem) in w.members.iter().enumerate() {
        let Some(f) = mem.follow.as_ref() else {
            continue;
        };
        let Some(l) = f.leader.filter(|&l| w.members[l].lead.is_some()) else {
            continue;
        };
        if *f.core.phase() != hypha_repl::Phase::Following || f.conn.is_none() || f.snapshot_asked {
            continue;
        }
        let theirs = &w.members[l].store.log;
        if !theirs.starts_with(&mem.store.log) {
            return Err(format!(
                "member {m} follows leader {l} but its log (to {:?}) is not a prefix of the \
                 leader's (to {:?})",
                mem.store.last(),
                w.members[l].store.last()
            ));
        }
    }
    Ok(())
}

/// A member cuts only records that were never committed.
pub fn cut(w: &World, m: usize, after: u64) -> Result<(), String> {
    let log = &w.members[m].store.log;
    for r in log.iter().skip(after as usize) {
        if w.committed.get(&r.seq) == Some(&r.term) {
            return Err(format!(
                "member {m} cuts its log after seq {after}, losing committed {r:?}"
            ));
        }
    }
    Ok(())
}

/// A snapshot holds every committed record up to its end.
pub fn snapshot_keeps_committed(w: &World, m: usize, recs: &[Rec]) -> Result<(), String> {
    for (&seq, &t) in w.committed.range(..=recs.len() as u64) {
        if recs[seq as usize - 1].term != t {
            return Err(format!(
                "member {m} got a snapshot without committed seq {seq}"
            ));
        }
    }
    Ok(())
}

/// The member's term boundaries say what its log holds: each boundary's
/// first record is of its term, every record kept after the oldest
/// boundary has the term of the boundary before it, and none starts past
/// the end.
pub fn terms_match_log(w: &World, m: usize) -> Result<(), String> {
    let s = &w.members[m].store;
    let starts = s.terms.starts();
    for r in &s.log {
        let Some(b) = starts.iter().rev().find(|b| b.first_seq <= r.seq) else {
            continue;
        };
        if b.term != r.term {
            return Err(format!(
                "member {m}: {r:?} but its term boundaries {starts:?} say term {}",
                b.term
            ));
        }
    }
    if starts.iter().any(|b| b.first_seq > s.log.len() as u64) {
        return Err(format!(
            "member {m}: term boundaries {starts:?} past its log's end {}",
            s.log.len()
        ));
    }
    Ok(())
}

/// After healing: one leader followed by all, every log the same, every
/// acknowledged write in it, and the writes made after healing
/// acknowledged.
pub fn settled(w: &World) -> Result<(), String> {
    let roles: Vec<Option<Role>> = w.members.iter().map(|m| m.role()).collect();
    let leaders: Vec<usize> = (0..roles.len())
        .filter(|&m| roles[m] == Some(Role::Leader))
        .collect();
    let [leader] = leaders[..] else {
        return Err(format!("no single leader after healing: {roles:?}"));
    };
    let want = &w.members[leader].store.log;
    let conf = w.conf_of(leader);
    for (m, mem) in w.members.iter().enumerate() {
        if !conf.is_present(m) {
            // Removed, or never added: it may hold anything.
            continue;
        }
        if mem.witness {
            if roles[m]
                != Some(Role::Follower {
                    leader: Some(leader),
                })
            {
                return Err(format!(
                    "witness {m} does not follow leader {leader}: {roles:?}"
                ));
            }
            continue;
        }
        if mem.store.log != *want {
            return Err(format!(
                "member {m}'s log (to {:?}) differs from leader {leader}'s (to {:?})",
                mem.store.last(),
                w.members[leader].store.last()
            ));
        }
    }
    for (&key, &(seq, term)) in &w.acked {
        if want.get(seq as usize - 1)
            != Some(&Rec {
                seq,
                term,
                key,
                conf: None,
                more: false,
            })
        {
            return Err(format!("acknowledged write {key} at seq {seq} is lost"));
        }
    }
    if let Some((key, _)) = w.late_writes.iter().find(|(_, &acked)| !acked) {
        return Err(format!(
            "write {key}, made after healing, was never acknowledged"
        ));
    }
    if w.late_writes.is_empty() {
        return Err("no write was made after healing".into());
    }
    Ok(())
}
