//! A follower goes on reading while records are applied: what arrives
//! meanwhile is applied next as one batch (one fdatasync for all of it on
//! a member), a ping is answered only once everything sent before it is
//! applied, and reading stops once `APPLY_QUEUED_BYTES_MAX` bytes wait.

use hypha_net::{Message, RecordKind, WireMeta, WireRecord};
use hypha_repl::terms::TermHistory;
use hypha_repl::{Follower, FollowerAction, FollowerEvent, FollowerParams, APPLY_QUEUED_BYTES_MAX};

const HISTORY: u64 = 0x77;
const TERM: u64 = 3;

fn record(seq: u64, value_bytes: usize) -> WireRecord {
    WireRecord {
        seq,
        id: seq as u32,
        kind: RecordKind::Put,
        key: format!("k{seq}").into_bytes(),
        value: vec![b'v'; value_bytes],
        meta: WireMeta {
            term: TERM,
            ..WireMeta::default()
        },
    }
}

fn records(seqs: std::ops::RangeInclusive<u64>, value_bytes: usize) -> FollowerEvent {
    let records: Vec<_> = seqs.clone().map(|s| record(s, value_bytes)).collect();
    FollowerEvent::Received(Message::Records {
        term: TERM,
        first_seq: *seqs.start(),
        records,
    })
}

/// A follower of term `TERM` that applied up to 10 and is following.
fn following() -> Follower {
    let params = FollowerParams {
        heartbeat_timeout_ms: 1_000,
        accept_new_history: false,
    };
    let mut f = Follower::new(params, HISTORY, 10);
    f.handle(FollowerEvent::Tick, 0);
    let out = f.handle(
        FollowerEvent::Welcomed {
            node_id: 1,
            history_id: HISTORY,
            commit_seq: 10,
            term: TERM,
            terms: vec![hypha_net::TermStart {
                term: TERM,
                first_seq: 1,
            }],
            mine: TermHistory::from_starts(&[hypha_net::TermStart {
                term: TERM,
                first_seq: 1,
            }])
            .expect("valid"),
        },
        1,
    );
    assert!(out.is_empty(), "{out:?}");
    assert!(f.wants_message());
    f
}

fn applied_seqs(out: &[FollowerAction]) -> Vec<Vec<u64>> {
    out.iter()
        .filter_map(|a| match a {
            FollowerAction::Apply { records } => Some(records.iter().map(|r| r.seq).collect()),
            _ => None,
        })
        .collect()
}

fn sent(out: &[FollowerAction]) -> Vec<String> {
    out.iter()
        .filter_map(|a| match a {
            FollowerAction::Send(Message::Ack { applied_seq, .. }) => {
                Some(format!("ack {applied_seq}"))
            }
            FollowerAction::Send(Message::Pong { nonce }) => Some(format!("pong {nonce}")),
            _ => None,
        })
        .collect()
}

#[test]
fn records_that_arrive_during_an_apply_are_applied_next_as_one_batch() {
    let mut f = following();
    let out = f.handle(records(11..=12, 10), 2);
    assert_eq!(applied_seqs(&out), vec![vec![11, 12]]);
    // Still reading: the next frames queue behind the apply.
    assert!(f.wants_message());
    let ping = |nonce| FollowerEvent::Received(Message::Ping { nonce });
    assert!(
        sent(&f.handle(ping(12), 3)).is_empty(),
        "12 is not applied yet"
    );
    assert!(f.handle(records(13..=14, 10), 3).is_empty());
    assert!(f.handle(ping(14), 3).is_empty());
    assert!(f.handle(records(15..=15, 10), 4).is_empty());
    // The first apply ends: the ping behind it is paid (ack first), the
    // one behind 14 is not, and everything queued goes as one apply.
    let out = f.handle(FollowerEvent::Applied { seq: 12 }, 5);
    assert_eq!(sent(&out), vec!["ack 12", "pong 12"]);
    assert_eq!(applied_seqs(&out), vec![vec![13, 14, 15]]);
    let out = f.handle(FollowerEvent::Applied { seq: 15 }, 6);
    assert_eq!(sent(&out), vec!["ack 15", "pong 14"]);
    assert!(applied_seqs(&out).is_empty());
}

#[test]
fn reading_stops_once_the_queue_is_full_and_goes_on_after_the_apply() {
    let mut f = following();
    f.handle(records(11..=11, 10), 2);
    let value_bytes = 64 * 1024;
    let mut seq = 12;
    while f.wants_message() {
        assert!(f.handle(records(seq..=seq, value_bytes), 3).is_empty());
        seq += 1;
        assert!(
            (seq - 12) as usize * value_bytes <= APPLY_QUEUED_BYTES_MAX + value_bytes,
            "read past the bound"
        );
    }
    let out = f.handle(FollowerEvent::Applied { seq: 11 }, 4);
    let batches = applied_seqs(&out);
    assert_eq!(batches, vec![(12..seq).collect::<Vec<_>>()]);
    assert!(f.wants_message(), "the queue went out: reading goes on");
}

#[test]
fn a_follower_that_lost_its_session_mid_apply_connects_only_after_it() {
    let mut f = following();
    f.handle(records(11..=12, 10), 2);
    f.handle(records(13..=13, 10), 2);
    f.handle(
        FollowerEvent::Failed {
            why: "reset".into(),
        },
        3,
    );
    // The reconnect is due, but the Hello must name the seq applied.
    assert!(f.handle(FollowerEvent::Tick, 10_000).is_empty());
    let out = f.handle(FollowerEvent::Applied { seq: 12 }, 10_001);
    assert!(
        applied_seqs(&out).is_empty(),
        "the queue died with the session"
    );
    assert_eq!(
        f.handle(FollowerEvent::Tick, 10_002),
        vec![FollowerAction::Connect {
            history_id: HISTORY,
            applied_seq: 12
        }]
    );
}

/// Records `seqs` with `batch_more` on those from `from` up to before
/// `last` (the batch's last record; `None`: it is not among them).
fn batched(seqs: std::ops::RangeInclusive<u64>, from: u64, last: Option<u64>) -> FollowerEvent {
    let records: Vec<_> = seqs
        .clone()
        .map(|s| {
            let mut r = record(s, 1);
            r.meta.batch_more = s >= from && last.is_none_or(|l| s < l);
            r
        })
        .collect();
    FollowerEvent::Received(Message::Records {
        term: TERM,
        first_seq: *seqs.start(),
        records,
    })
}

#[test]
fn an_atomic_batch_split_over_frames_is_applied_whole() {
    let mut f = following();
    // 11-12 single, 13-16 a batch whose end is in the next frame.
    let out = f.handle(batched(11..=14, 13, None), 2);
    assert_eq!(applied_seqs(&out), vec![vec![11, 12]]);
    let out = f.handle(FollowerEvent::Applied { seq: 12 }, 3);
    assert!(applied_seqs(&out).is_empty(), "half a batch: {out:?}");
    let out = f.handle(batched(15..=17, 13, Some(16)), 4);
    assert_eq!(applied_seqs(&out), vec![vec![13, 14, 15, 16, 17]]);
    // While an apply is out, a frame that ends a batch waits for it.
    let out = f.handle(batched(18..=19, 18, Some(19)), 5);
    assert!(applied_seqs(&out).is_empty());
    let out = f.handle(FollowerEvent::Applied { seq: 17 }, 6);
    assert_eq!(applied_seqs(&out), vec![vec![18, 19]]);
}

#[test]
fn a_batch_longer_than_any_transaction_ends_the_session() {
    let mut f = following();
    let n = hypha_net::TXN_ITEMS_MAX as u64 + 1;
    let out = f.handle(batched(11..=10 + n, 11, None), 2);
    assert!(applied_seqs(&out).is_empty());
    assert!(
        out.iter().any(
            |a| matches!(a, FollowerAction::Disconnect { why } if why.contains("TXN_ITEMS_MAX"))
        ),
        "{out:?}"
    );
}
