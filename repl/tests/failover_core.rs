//! The failover parts of the replication core, case by case: where a
//! joining member starts (its log matches, diverged, or cannot be told),
//! the cut a follower makes, the snapshot it asks for when it cannot cut,
//! majority commit under Raft's rule, and frames of another term. The
//! failover simulator (`tests/failover_sim/`) runs the same code through
//! thousands of seeded interleavings.

use hypha_net::{Message, RecordKind, Role, TermStart, WireMeta, WireRecord};
use hypha_repl::terms::TermHistory;
use hypha_repl::{
    Follower, FollowerAction, FollowerEvent, FollowerParams, Join, MasterAction, MasterCore,
    MasterEvent, MasterParams, SyncMode,
};
use std::net::SocketAddr;

const HISTORY: u64 = 0x77;

fn t(term: u64, first_seq: u64) -> TermStart {
    TermStart { term, first_seq }
}

/// A leader of term 5 whose log holds term 1 from seq 1 and its own term
/// from seq 11, committed locally up to `seq`.
fn leader(seq: u64) -> MasterCore<()> {
    MasterCore::new(leader_params(), seq, 0)
}

fn join(conn: u64, node: u64, role: Role, last_term: u64, applied_seq: u64) -> MasterEvent<()> {
    MasterEvent::Joined {
        conn,
        join: Join {
            node,
            role,
            history_id: HISTORY,
            applied_seq,
            last_term,
            peer: SocketAddr::from(([10, 0, 0, node as u8], 7000)),
        },
        horizon: 0,
        beats: (),
    }
}

fn reads(actions: &[MasterAction]) -> Vec<(u64, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            MasterAction::ReadLog { after, upto, .. } => Some((*after, *upto)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_member_whose_last_record_the_leader_holds_resumes() {
    let mut l = leader(15);
    let out = l.handle(join(1, 2, Role::Member, 5, 12), 0);
    assert_eq!(reads(&out), vec![(12, 15)]);
    // Term 1 up to seq 10 is in the leader's log too.
    let mut l = leader(15);
    assert_eq!(
        reads(&l.handle(join(1, 2, Role::Member, 1, 10), 0)),
        vec![(10, 15)]
    );
}

#[test]
fn a_member_whose_log_diverged_gets_a_welcome_and_nothing_more() {
    let mut l = leader(15);
    // Seq 12 of term 3 is not in the leader's log; nor is anything past 15.
    for (last_term, applied) in [(3, 12), (5, 16), (1, 11)] {
        let out: Vec<_> = l
            .handle(join(1, 2, Role::Member, last_term, applied), 0)
            .into_iter()
            .filter(|a| !matches!(a, MasterAction::TombstoneFloor(_)))
            .collect();
        let welcome = |msgs: &[Message]| matches!(msgs, [Message::Welcome(w)] if w.term == 5 && w.terms == [t(1, 1), t(5, 11)]);
        assert!(
            matches!(&out[..], [MasterAction::Send { msgs, .. }] if welcome(msgs)),
            "{last_term}/{applied}: {out:?}"
        );
        // Nothing streams while it is held, even once records commit.
        let out = l.handle(MasterEvent::Committed { seq: 16 }, 1);
        assert!(reads(&out).is_empty(), "{out:?}");
        l.handle(MasterEvent::Closed { conn: 1 }, 0);
    }
}

#[test]
fn a_member_older_than_the_kept_boundaries_gets_a_snapshot() {
    let params = MasterParams {
        terms: vec![t(4, 100), t(5, 200)],
        ..leader_params()
    };
    let mut l = MasterCore::new(params, 250, 0);
    let out = l.handle(join(1, 2, Role::Member, 2, 50), 0);
    assert!(
        out.iter()
            .any(|a| matches!(a, MasterAction::SendSnapshot { upto: 250, .. })),
        "{out:?}"
    );
}

fn leader_params() -> MasterParams {
    MasterParams {
        node_id: 1,
        history_id: HISTORY,
        term: 5,
        terms: vec![t(1, 1), t(5, 11)],
        sync: SyncMode::Majority { voters: 3 },
        sync_timeout_ms: 1_000,
        heartbeat_ms: 250,
        heartbeat_timeout_ms: 1_000,
        forget_after_ms: 60_000,
    }
}

fn welcomed(commit_seq: u64, mine: &[TermStart]) -> FollowerEvent {
    FollowerEvent::Welcomed {
        node_id: 1,
        history_id: HISTORY,
        commit_seq,
        term: 5,
        terms: vec![t(1, 1), t(5, 11)],
        mine: TermHistory::from_starts(mine).expect("valid"),
    }
}

fn follower(applied: u64) -> Follower {
    let params = FollowerParams {
        heartbeat_timeout_ms: 1_000,
        accept_new_history: false,
    };
    let mut f = Follower::new(params, HISTORY, applied);
    let out = f.handle(FollowerEvent::Tick, 0);
    assert_eq!(
        out,
        vec![FollowerAction::Connect {
            history_id: HISTORY,
            applied_seq: applied
        }]
    );
    f
}

#[test]
fn a_diverged_follower_cuts_back_to_where_the_logs_agree_then_resumes() {
    // Its seqs 11 and 12 are of term 3, which no majority took.
    let mut f = follower(12);
    let out = f.handle(welcomed(15, &[t(1, 1), t(3, 11)]), 1);
    assert_eq!(out.last(), Some(&FollowerAction::Truncate { after: 10 }));
    assert!(!f.wants_message());
    let out = f.handle(FollowerEvent::Truncated { seq: 10 }, 2);
    assert!(out.is_empty());
    assert_eq!(
        f.handle(FollowerEvent::Tick, 2),
        vec![FollowerAction::Connect {
            history_id: HISTORY,
            applied_seq: 10
        }]
    );
    let out = f.handle(welcomed(15, &[t(1, 1)]), 3);
    assert!(out.is_empty(), "{out:?}");
    assert!(f.wants_message());
}

#[test]
fn a_follower_that_cannot_cut_asks_for_a_snapshot_and_takes_it_whole() {
    let mut f = follower(12);
    f.handle(welcomed(15, &[t(1, 1), t(3, 11)]), 1);
    f.handle(
        FollowerEvent::TruncateFailed {
            why: "compacted".into(),
        },
        2,
    );
    assert_eq!(
        f.handle(FollowerEvent::Tick, 2),
        vec![FollowerAction::Connect {
            history_id: 0,
            applied_seq: 12
        }]
    );
    // The master sends a snapshot: the follower does not cut again (it did,
    // in a loop, before the failover simulator caught it).
    let out = f.handle(welcomed(15, &[t(1, 1), t(3, 11)]), 3);
    assert!(out.is_empty(), "{out:?}");
    assert!(f.wants_message());
}

#[test]
fn a_follower_whose_boundaries_cannot_tell_asks_for_a_snapshot() {
    let mut f = follower(12);
    // No term in common among the kept boundaries.
    let out = f.handle(welcomed(15, &[t(3, 11)]), 1);
    assert!(
        matches!(&out[..], [FollowerAction::Disconnect { .. }]),
        "{out:?}"
    );
    let out = f.handle(FollowerEvent::Tick, 1_000);
    assert_eq!(
        out,
        vec![FollowerAction::Connect {
            history_id: 0,
            applied_seq: 12
        }]
    );
}

fn record(seq: u64, term: u64) -> WireRecord {
    WireRecord {
        seq,
        id: seq as u32,
        kind: RecordKind::Put,
        key: vec![b'k'],
        value: vec![],
        meta: WireMeta {
            term,
            ..WireMeta::default()
        },
    }
}

#[test]
fn a_frame_of_another_term_ends_the_session() {
    let mut f = follower(10);
    assert!(f.handle(welcomed(15, &[t(1, 1)]), 1).is_empty());
    let out = f.handle(
        FollowerEvent::Received(Message::Records {
            term: 4,
            first_seq: 11,
            records: vec![record(11, 4)],
        }),
        2,
    );
    assert!(
        matches!(&out[..], [FollowerAction::Disconnect { why }] if why.contains("term 4")),
        "{out:?}"
    );
}

#[test]
fn a_record_of_a_later_term_than_its_master_ends_the_session() {
    let mut f = follower(10);
    assert!(f.handle(welcomed(15, &[t(1, 1)]), 1).is_empty());
    let out = f.handle(
        FollowerEvent::Received(Message::Records {
            term: 5,
            first_seq: 11,
            records: vec![record(11, 6)],
        }),
        2,
    );
    assert!(
        matches!(&out[..], [FollowerAction::Disconnect { why }] if why.contains("later term 6")),
        "{out:?}"
    );
}

#[test]
fn a_write_commits_when_a_majority_holds_it() {
    let mut l = leader(10);
    l.handle(join(1, 2, Role::Member, 1, 10), 0);
    l.handle(join(2, 3, Role::Worker, 1, 10), 0);
    l.handle(MasterEvent::AwaitWorkers { waiter: 7, seq: 11 }, 0);
    let out = l.handle(MasterEvent::Committed { seq: 11 }, 1);
    assert!(!out
        .iter()
        .any(|a| matches!(a, MasterAction::Confirm { .. })));
    // A plain worker's ack does not count toward the majority.
    let ack = |term, applied_seq| Message::Ack { term, applied_seq };
    let out = l.handle(
        MasterEvent::Received {
            conn: 2,
            msg: ack(5, 11),
        },
        2,
    );
    assert!(!out
        .iter()
        .any(|a| matches!(a, MasterAction::Confirm { .. })));
    assert_eq!(l.majority_commit(), 0);
    // A member's does: the leader and one member are 2 of 3.
    let out = l.handle(
        MasterEvent::Received {
            conn: 1,
            msg: ack(5, 11),
        },
        3,
    );
    assert!(
        out.contains(&MasterAction::Confirm { waiter: 7 }),
        "{out:?}"
    );
    assert_eq!(l.majority_commit(), 11);
}

#[test]
fn records_of_earlier_terms_commit_only_with_one_of_the_leaders_own() {
    let mut l = leader(10);
    l.handle(join(1, 2, Role::Member, 1, 8), 0);
    let ack = |applied_seq| MasterEvent::Received {
        conn: 1,
        msg: Message::Ack {
            term: 5,
            applied_seq,
        },
    };
    l.handle(ack(10), 1);
    // Seq 10 (term 1) is on a majority, but Raft counts only the leader's
    // own records: a later leader could still overwrite a record of an
    // earlier term that was merely on a majority.
    assert_eq!(l.majority_commit(), 0);
    l.handle(MasterEvent::Committed { seq: 11 }, 2);
    l.handle(ack(11), 3);
    assert_eq!(l.majority_commit(), 11);
}

#[test]
fn an_ack_of_another_term_closes_the_session() {
    let mut l = leader(10);
    l.handle(join(1, 2, Role::Member, 1, 10), 0);
    let out = l.handle(
        MasterEvent::Received {
            conn: 1,
            msg: Message::Ack {
                term: 4,
                applied_seq: 10,
            },
        },
        1,
    );
    assert!(
        matches!(&out[..], [MasterAction::Close { why, .. }] if why.contains("term 4")),
        "{out:?}"
    );
}

#[test]
fn a_fixed_role_master_refuses_members() {
    let params = MasterParams {
        term: 0,
        terms: Vec::new(),
        sync: SyncMode::Async,
        ..leader_params()
    };
    let mut l = MasterCore::new(params, 10, 0);
    let out = l.handle(join(1, 2, Role::Member, 0, 10), 0);
    assert!(
        matches!(&out[..], [MasterAction::Refuse { message, .. }] if message.contains("Member")),
        "{out:?}"
    );
}

#[test]
fn a_witness_ack_completes_a_majority() {
    let mut l = leader(10);
    l.handle(MasterEvent::AwaitWorkers { waiter: 9, seq: 11 }, 0);
    l.handle(MasterEvent::Committed { seq: 11 }, 1);
    let out = l.handle(
        MasterEvent::WitnessAck {
            witness: 3,
            seq: 11,
        },
        2,
    );
    assert!(
        out.contains(&MasterAction::Confirm { waiter: 9 }),
        "{out:?}"
    );
    // A witness cannot vouch for what the leader has not made durable.
    let mut l = leader(10);
    l.handle(MasterEvent::AwaitWorkers { waiter: 9, seq: 11 }, 0);
    let out = l.handle(
        MasterEvent::WitnessAck {
            witness: 3,
            seq: 11,
        },
        1,
    );
    assert!(
        !out.contains(&MasterAction::Confirm { waiter: 9 }),
        "{out:?}"
    );
}

mod witness {
    use hypha_net::{Ballot, LogId};
    use hypha_repl::election::{
        Election, ElectionAction, ElectionEvent, Persisted, Seat, ELECTION_DEFAULTS,
    };

    fn witness(last: LogId) -> Election {
        let seat = Seat {
            me: 2,
            members: 3,
            may_lead: false,
        };
        let state = Persisted {
            term: 4,
            voted_for: None,
        };
        Election::new(seat, ELECTION_DEFAULTS, state, last, 7, 0)
    }

    #[test]
    fn a_witness_persists_the_leaders_log_id_before_acknowledging_it() {
        let mut w = witness(LogId::default());
        let last = LogId { term: 4, seq: 30 };
        let msg = Ballot::Heartbeat {
            term: 4,
            last,
            round: 1,
        };
        let out = w.handle(ElectionEvent::Received { from: 0, msg }, 10);
        let persist = out
            .iter()
            .position(|a| *a == ElectionAction::PersistLast { last });
        let ack = out.iter().position(|a| {
            matches!(a, ElectionAction::Send { msg: Ballot::HeartbeatAck { last: l, .. }, .. } if *l == last)
        });
        assert!(
            matches!((persist, ack), (Some(p), Some(a)) if p < a),
            "{out:?}"
        );
    }

    #[test]
    fn a_witness_votes_only_for_logs_as_new_as_what_it_vouched_for() {
        let kept = LogId { term: 4, seq: 30 };
        for (last, granted) in [(LogId { term: 4, seq: 29 }, false), (kept, true)] {
            let mut w = witness(kept);
            // Long after any leader was heard: pre-votes are not sticky.
            let ask = Ballot::PreVote { term: 5, last };
            let out = w.handle(ElectionEvent::Received { from: 1, msg: ask }, 5_000);
            let want = Ballot::PreVoteReply {
                term: if granted { 5 } else { 4 },
                granted,
            };
            assert!(
                out.contains(&ElectionAction::Send { to: 1, msg: want }),
                "{last:?}: {out:?}"
            );
            let ask = Ballot::RequestVote { term: 5, last };
            let out = w.handle(ElectionEvent::Received { from: 1, msg: ask }, 5_001);
            let vote = out.iter().find_map(|a| match a {
                ElectionAction::Send {
                    msg: Ballot::Vote { granted, .. },
                    ..
                } => Some(*granted),
                _ => None,
            });
            assert_eq!(vote, Some(granted), "{last:?}: {out:?}");
        }
    }
}

mod read_index {
    use hypha_net::{Ballot, LogId};
    use hypha_repl::election::{
        Election, ElectionAction, ElectionEvent, Persisted, Role, Seat, ELECTION_DEFAULTS,
    };

    /// Member 0 of 3, elected leader of term 5 with member 1's votes.
    fn leader() -> (Election, u64) {
        let seat = Seat {
            me: 0,
            members: 3,
            may_lead: true,
        };
        let state = Persisted {
            term: 4,
            voted_for: None,
        };
        let mut e = Election::new(seat, ELECTION_DEFAULTS, state, LogId::default(), 3, 0);
        let now = e.next_deadline();
        e.handle(ElectionEvent::Tick, now);
        let grant = Ballot::PreVoteReply {
            term: 5,
            granted: true,
        };
        e.handle(
            ElectionEvent::Received {
                from: 1,
                msg: grant,
            },
            now,
        );
        let vote = Ballot::Vote {
            term: 5,
            granted: true,
        };
        e.handle(ElectionEvent::Received { from: 1, msg: vote }, now);
        assert_eq!(e.role(), Role::Leader);
        (e, now)
    }

    fn ack(e: &mut Election, from: usize, round: u64, now: u64) -> Vec<ElectionAction> {
        let msg = Ballot::HeartbeatAck {
            term: 5,
            last: LogId::default(),
            round,
        };
        e.handle(ElectionEvent::Received { from, msg }, now)
    }

    fn rounds_sent(out: &[ElectionAction]) -> Vec<u64> {
        let mut r: Vec<u64> = out
            .iter()
            .filter_map(|a| match a {
                ElectionAction::Send {
                    msg: Ballot::Heartbeat { round, .. },
                    ..
                } => Some(*round),
                _ => None,
            })
            .collect();
        r.dedup();
        r
    }

    #[test]
    fn a_read_waits_for_a_round_sent_after_it_and_rounds_are_shared() {
        let (mut e, now) = leader();
        // Round 1 went out with the election; member 1 acknowledged it.
        ack(&mut e, 1, 1, now);
        // A read now needs a round sent after it: round 2 goes out at once.
        let out = e.handle(ElectionEvent::ReadIndex(7), now + 1);
        assert_eq!(rounds_sent(&out), vec![2]);
        // Two more reads while round 2 is out wait for round 3 together.
        assert!(e.handle(ElectionEvent::ReadIndex(8), now + 2).is_empty());
        assert!(e.handle(ElectionEvent::ReadIndex(9), now + 2).is_empty());
        // A late ack of round 1 confirms nothing.
        let confirmed = |out: &[ElectionAction]| -> Vec<u64> {
            out.iter()
                .filter_map(|a| match a {
                    ElectionAction::ReadConfirmed { id } => Some(*id),
                    _ => None,
                })
                .collect()
        };
        assert!(confirmed(&ack(&mut e, 2, 1, now + 3)).is_empty());
        // Round 2 from one member (with the leader: 2 of 3) answers read 7
        // and sends round 3 for the others.
        let out = ack(&mut e, 2, 2, now + 4);
        assert_eq!(confirmed(&out), vec![7]);
        assert_eq!(rounds_sent(&out), vec![3]);
        let out = ack(&mut e, 1, 3, now + 5);
        assert_eq!(confirmed(&out), vec![8, 9]);
    }

    #[test]
    fn reads_fail_when_the_leader_steps_down_or_does_not_lead() {
        let (mut e, now) = leader();
        e.handle(ElectionEvent::ReadIndex(7), now + 1);
        let out = e.handle(ElectionEvent::SawTerm(6), now + 2);
        assert!(
            out.contains(&ElectionAction::ReadFailed { id: 7 }),
            "{out:?}"
        );
        let out = e.handle(ElectionEvent::ReadIndex(8), now + 3);
        assert_eq!(out, vec![ElectionAction::ReadFailed { id: 8 }]);
    }
}
