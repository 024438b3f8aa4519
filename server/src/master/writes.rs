//! The master's local writes: appended on the executor thread when nothing
//! slow is in the way, else on the blocking pool; refused once the member
//! it runs in stopped leading. A write with a request id (`PutOnce`,
//! `DeleteOnce`) that repeats an earlier attempt is answered with that
//! attempt's seq and writes nothing (`hypha_engine::Request`).

use crate::requests::error_message;
use hypha_engine::{Db, Once, Request};
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
}

fn op(m: &Message) -> Option<Op<'_>> {
    let request = |r: &hypha_net::WriteRequest| {
        Some(Request {
            id: r.id,
            retry_after: r.retry_after,
        })
    };
    Some(match m {
        Message::Put { key, value, .. } => Op {
            key,
            value: Some(value),
            request: None,
        },
        Message::Delete { key, .. } => Op {
            key,
            value: None,
            request: None,
        },
        Message::PutOnce {
            key,
            value,
            request: r,
            ..
        } => Op {
            key,
            value: Some(value),
            request: request(r),
        },
        Message::DeleteOnce {
            key, request: r, ..
        } => Op {
            key,
            value: None,
            request: request(r),
        },
        _ => return None,
    })
}

/// Appends a client's write without waiting for an fdatasync (under
/// `--fsync always` the answer waits in [`Master::durable`]) or for
/// anything slow.
pub(super) fn try_write(db: &Db, open: &std::sync::RwLock<bool>, m: Message) -> Wrote {
    let open = open.read().unwrap_or_else(|p| p.into_inner());
    if !*open {
        return Wrote::Done(deposed(m));
    }
    let Some(op) = op(&m) else {
        return Wrote::Done(written(m, Ok(Once::Wrote(None))));
    };
    let result = match (op.value, &op.request) {
        (Some(v), None) => db
            .try_put_unsynced(op.key, v)
            .map(|s| s.map(|s| Once::Wrote(Some(s)))),
        (None, None) => db.try_delete_unsynced(op.key).map(|s| s.map(Once::Wrote)),
        (Some(v), Some(r)) => db.try_put_once(op.key, v, r),
        (None, Some(r)) => db.try_delete_once(op.key, r),
    };
    match result {
        Ok(None) => Wrote::Blocked(m),
        Ok(Some(once)) => Wrote::Done(written(m, Ok(once))),
        Err(e) => Wrote::Done(written(m, Err(e))),
    }
}

/// [`try_write`] that may wait (on the blocking pool).
pub(super) fn write(db: &Db, open: &std::sync::RwLock<bool>, m: Message) -> Written {
    let open = open.read().unwrap_or_else(|p| p.into_inner());
    if !*open {
        return deposed(m);
    }
    let Some(op) = op(&m) else {
        return written(m, Ok(Once::Wrote(None)));
    };
    let result = match (op.value, &op.request) {
        (Some(v), None) => db.put_unsynced(op.key, v).map(|s| Once::Wrote(Some(s))),
        (None, None) => db.delete_unsynced(op.key).map(Once::Wrote),
        (Some(v), Some(r)) => db.put_once(op.key, v, r),
        (None, Some(r)) => db.delete_once(op.key, r),
    };
    written(m, result)
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
        Ok(Once::Unknown(why)) => {
            log::warn!("master: a retried write was not applied: its outcome is unknown ({why})");
            let message = format!(
                "whether an earlier attempt of this write was applied cannot be told: {why}; \
                 nothing was written now"
            );
            return fail(Message::error(req_id, ErrorCode::OutcomeUnknown, &message));
        }
        Ok(Once::Repeated(seq)) => {
            log::info!(
                "master: a retried write found its first attempt at seq {seq}; not written again"
            );
            Some(seq)
        }
        Ok(Once::Wrote(seq)) => seq,
    };
    let answer = match (&m, seq) {
        (Message::Put { .. } | Message::PutOnce { .. }, Some(seq)) => {
            Message::Written { req_id, seq }
        }
        (Message::Delete { .. } | Message::DeleteOnce { .. }, seq) => {
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
    let req_id = m.req_id().unwrap_or(0);
    Written {
        req_id,
        seq: None,
        answer: Message::error(
            req_id,
            ErrorCode::NotMaster,
            "this member no longer leads its group: send the write to the new leader",
        ),
    }
}
