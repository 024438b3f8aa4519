//! A client's transaction on the master (`Message::Txn`): its conditions,
//! and then its writes as one atomic batch or its reads, in the engine
//! under one hold of the write lock (`Db::txn`).
//!
//! Every answer names a seq the master waits for as it waits for a write's
//! (durable, a majority in a failover group, `--sync N` workers): the
//! batch's last record, or, when nothing was written, the seq at which the
//! conditions were checked. So a transaction that failed on a write no
//! majority holds yet is not answered before it does.

use super::expiry::Expiry;
use super::writes::{failed, repeated, unknown, Written};
use crate::requests::error_message;
use crate::requests::wall_ms;
use hypha_engine::{BatchOp, Cond, Db, Expect, Request, Test, Txn, TxnOutcome};
use hypha_net::{ErrorCode, Message, TxnOp, TxnRead, TxnTest};

/// Runs the `Txn` in `m`; `None` when `wait` is false and it would wait.
/// Time to live counts from this node's clock; a TTL write that is
/// applied goes into `expiry`.
pub(super) fn run(db: &Db, m: &Message, wait: bool, expiry: &Expiry) -> Option<Written> {
    let Message::Txn {
        req_id,
        txn,
        request,
    } = m
    else {
        let req_id = m.req_id().unwrap_or(0);
        return Some(failed(req_id, ErrorCode::Internal, "not a transaction"));
    };
    let req_id = *req_id;
    let now_ms = wall_ms();
    let t = engine_txn(txn, now_ms);
    let req = request.map(|r| Request {
        id: r.id,
        retry_after: r.retry_after,
    });
    let outcome = match db.txn(&t, req.as_ref(), wait) {
        Ok(None) => return None,
        Ok(Some(outcome)) => outcome,
        Err(e) => return Some(failed_with(req_id, error_message(req_id, &e))),
    };
    let wrote = |seq| Written {
        req_id,
        seq: Some(seq),
        answer: Message::Written { req_id, seq },
    };
    if let TxnOutcome::Applied(_) = outcome {
        for op in &t.ops {
            if let BatchOp::Put { deadline_ms, .. } | BatchOp::Refresh { deadline_ms, .. } = op {
                if *deadline_ms != 0 {
                    expiry.note(*deadline_ms, op.key());
                }
            }
        }
    }
    Some(match outcome {
        TxnOutcome::Applied(Some(seq)) => wrote(seq),
        TxnOutcome::Applied(None) => wrote(db.seq()),
        TxnOutcome::Repeated(seq) => {
            repeated(seq);
            wrote(seq)
        }
        TxnOutcome::Unknown(why) => unknown(req_id, &why),
        TxnOutcome::Failed { failed, seq, reads } => Written {
            req_id,
            seq: Some(seq),
            answer: Message::TxnFailed {
                req_id,
                seq,
                failed,
                reads: reads.into_iter().map(|value| TxnRead { value }).collect(),
            },
        },
    })
}

fn failed_with(req_id: u64, answer: Message) -> Written {
    Written {
        req_id,
        seq: None,
        answer,
    }
}

/// The engine's view of a wire transaction (borrowing its bytes), its
/// times to live made deadlines from `now_ms`.
fn engine_txn(txn: &hypha_net::Txn, now_ms: u64) -> Txn<'_> {
    fn cond(c: &hypha_net::TxnCond) -> Cond<'_> {
        Cond {
            key: c.key.as_slice(),
            test: match &c.test {
                TxnTest::Expect(e) => Test::Expect(expect(*e)),
                TxnTest::Value(v) => Test::Value(v),
            },
        }
    }
    fn op(o: &TxnOp, now_ms: u64) -> BatchOp<'_> {
        let deadline = |ttl_ms: u64| match ttl_ms {
            0 => 0,
            ttl => now_ms.saturating_add(ttl),
        };
        match o {
            TxnOp::Put { key, value, ttl_ms } => BatchOp::Put {
                key,
                value,
                deadline_ms: deadline(*ttl_ms),
            },
            TxnOp::Delete { key } => BatchOp::Delete { key },
            TxnOp::Refresh { key, ttl_ms } => BatchOp::Refresh {
                key,
                deadline_ms: deadline(*ttl_ms).max(1),
            },
        }
    }
    Txn {
        conds: txn.conds.iter().map(cond).collect(),
        ops: txn.ops.iter().map(|o| op(o, now_ms)).collect(),
        reads: txn.reads.iter().map(Vec::as_slice).collect(),
    }
}

/// The engine's form of a wire expectation.
pub(super) fn expect(e: hypha_net::Expect) -> Expect {
    match e {
        hypha_net::Expect::Seq(seq) => Expect::Seq(seq),
        hypha_net::Expect::Absent => Expect::Absent,
        hypha_net::Expect::Present => Expect::Present,
    }
}
