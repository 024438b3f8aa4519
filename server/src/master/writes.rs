//! The master's local writes: appended on the executor thread when nothing
//! slow is in the way, else on the blocking pool; refused once the member
//! it runs in stopped leading. A write with a request id (`PutOnce`,
//! `DeleteOnce`) that repeats an earlier attempt is answered with that
//! attempt's seq and writes nothing (`hypha_engine::Request`).

use crate::requests::error_message;
use hypha_engine::{Db, Expect, Once, Request};
use hypha_net::{ErrorCode, Message};

/// The outcome of a local write.
pub(super) struct Written {
    pub(super) req_id: u64,
    /// The write's seq, if it wrote a record (or repeats one).
    pub(super) seq: Option<u64>,
    /// The answer once the write is acknowledged.
    pub(super) answer: Message,
}

/// A write tried on the executor thread.
pub(super) enum Wrote {
    Done(Written),
    /// It would have waited for slow engine work: run [`write`] where
    /// blocking is fine.
    Blocked(Message),
}

/// What a client's write asks for.
struct Op<'a> {
    key: &'a [u8],
    /// `None`: a delete.
    value: Option<&'a [u8]>,
    request: Option<Request>,
    /// A conditional write's expectation of its key.
    expect: Option<Expect>,
}

fn op(m: &Message) -> Option<Op<'_>> {
    let request = |r: &hypha_net::WriteRequest| {
        Some(Request {
            id: r.id,
            retry_after: r.retry_after,
        })
    };
    let expect = |e: &hypha_net::Expect| Some(super::txn::expect(*e));
    let (key, value, request, expect) = match m {
        Message::Put { key, value, .. } => (key, Some(value), None, None),
        Message::Delete { key, .. } => (key, None, None, None),
        Message::PutOnce {
            key,
            value,
            request: r,
            ..
        } => (key, Some(value), request(r), None),
        Message::DeleteOnce {
            key, request: r, ..
        } => (key, None, request(r), None),
        Message::PutIf {
            key,
            value,
            expect: e,
            request: r,
            ..
        } => (key, Some(value), r.as_ref().and_then(request), expect(e)),
        Message::DeleteIf {
            key,
            expect: e,
            request: r,
            ..
        } => (key, None, r.as_ref().and_then(request), expect(e)),
        _ => return None,
    };
    Some(Op {
        key,
        value: value.map(Vec::as_slice),
        request,
        expect,
    })
}

/// Runs `op` in the engine; `None` when `wait` is false and it would wait.
fn apply(db: &Db, op: &Op<'_>, wait: bool) -> Result<Option<Once>, hypha_engine::Error> {
    let (key, req) = (op.key, op.request.as_ref());
    match (op.value, req, op.expect) {
        (Some(v), r, Some(e)) => db.put_if(key, v, e, r, wait),
        (None, r, Some(e)) => db.delete_if(key, e, r, wait),
        (Some(v), None, None) if wait => {
            db.put_unsynced(key, v).map(|s| Some(Once::Wrote(Some(s))))
        }
        (Some(v), None, None) => Ok(db.try_put_unsynced(key, v)?.map(|s| Once::Wrote(Some(s)))),
        (None, None, None) if wait => db.delete_unsynced(key).map(|s| Some(Once::Wrote(s))),
        (None, None, None) => Ok(db.try_delete_unsynced(key)?.map(Once::Wrote)),
        (Some(v), Some(r), None) if wait => db.put_once(key, v, r).map(Some),
        (Some(v), Some(r), None) => db.try_put_once(key, v, r),
        (None, Some(r), None) if wait => db.delete_once(key, r).map(Some),
        (None, Some(r), None) => db.try_delete_once(key, r),
    }
}

/// Appends a client's write without waiting for an fdatasync (under
/// `--fsync always` the answer waits in [`Master::durable`]) or for
/// anything slow.
pub(super) fn try_write(
    db: &Db,
    open: &std::sync::RwLock<bool>,
    expiry: &super::expiry::Expiry,
    m: Message,
) -> Wrote {
    let open = open.read().unwrap_or_else(|p| p.into_inner());
    if !*open {
        return Wrote::Done(deposed(m));
    }
    if let Message::Txn { .. } = m {
        return match super::txn::run(db, &m, false, expiry) {
            Some(done) => Wrote::Done(done),
            None => Wrote::Blocked(m),
        };
    }
    let Some(op) = op(&m) else {
        return Wrote::Done(written(m, Ok(Once::Wrote(None))));
    };
    match apply(db, &op, false) {
        Ok(None) => Wrote::Blocked(m),
        Ok(Some(once)) => Wrote::Done(written(m, Ok(once))),
        Err(e) => Wrote::Done(written(m, Err(e))),
    }
}

/// [`try_write`] that may wait (on the blocking pool).
pub(super) fn write(
    db: &Db,
    open: &std::sync::RwLock<bool>,
    expiry: &super::expiry::Expiry,
    m: Message,
) -> Written {
    let open = open.read().unwrap_or_else(|p| p.into_inner());
    if !*open {
        return deposed(m);
    }
    if let Message::Txn { .. } = m {
        return super::txn::run(db, &m, true, expiry).unwrap_or_else(|| {
            let req_id = m.req_id().unwrap_or(0);
            failed(
                req_id,
                ErrorCode::Internal,
                "a waiting transaction did not run",
            )
        });
    }
    let Some(op) = op(&m) else {
        return written(m, Ok(Once::Wrote(None)));
    };
    let result = apply(db, &op, true).map(|o| o.unwrap_or(Once::Wrote(None)));
    written(m, result)
}

/// A write that wrote nothing, answered with an error.
pub(super) fn failed(req_id: u64, code: ErrorCode, message: &str) -> Written {
    Written {
        req_id,
        seq: None,
        answer: Message::error(req_id, code, message),
    }
}

/// The answer to a retried write whose first attempt cannot be found or
/// ruled out.
pub(super) fn unknown(req_id: u64, why: &str) -> Written {
    log::warn!("master: a retried write was not applied: its outcome is unknown ({why})");
    let message = format!(
        "whether an earlier attempt of this write was applied cannot be told: {why}; nothing \
         was written now"
    );
    failed(req_id, ErrorCode::OutcomeUnknown, &message)
}

/// Logs a retried write that found its first attempt.
pub(super) fn repeated(seq: u64) {
    log::info!("master: a retried write found its first attempt at seq {seq}; not written again");
}

/// The answer to write `m` given what the engine did.
fn written(m: Message, result: Result<Once, hypha_engine::Error>) -> Written {
    let req_id = m.req_id().unwrap_or(0);
    let fail = |answer| Written {
        req_id,
        seq: None,
        answer,
    };
    let seq = match result {
        Err(e) => return fail(error_message(req_id, &e)),
        Ok(Once::Unknown(why)) => return unknown(req_id, &why),
        Ok(Once::Repeated(seq)) => {
            repeated(seq);
            Some(seq)
        }
        Ok(Once::Wrote(seq)) => seq,
        Ok(Once::Conflict(seq)) => {
            let now = match seq {
                Some(seq) => format!("its live version is seq {seq}"),
                None => "it holds no value".to_string(),
            };
            let message =
                format!("the key is not as the write expected: {now}; nothing was written");
            return fail(Message::error(
                req_id,
                ErrorCode::Conflict { seq },
                &message,
            ));
        }
    };
    let answer = match (&m, seq) {
        (Message::Put { .. } | Message::PutOnce { .. } | Message::PutIf { .. }, Some(seq)) => {
            Message::Written { req_id, seq }
        }
        (Message::Delete { .. } | Message::DeleteOnce { .. } | Message::DeleteIf { .. }, seq) => {
            Message::Deleted { req_id, seq }
        }
        (other, _) => {
            let message = format!("{} is not a write", other.name());
            return fail(Message::error(req_id, ErrorCode::Internal, &message));
        }
    };
    Written {
        req_id,
        seq,
        answer,
    }
}

/// The answer to a write that reached a member after it stopped leading.
fn deposed(m: Message) -> Written {
    failed(
        m.req_id().unwrap_or(0),
        ErrorCode::NotMaster,
        "this member no longer leads its group: send the write to the new leader",
    )
}
