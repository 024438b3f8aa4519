//! The master's local writes: appended on the executor thread when nothing
//! slow is in the way, else on the blocking pool; refused once the member
//! it runs in stopped leading.

use crate::requests::error_message;
use hypha_engine::Db;
use hypha_net::{ErrorCode, Message};

/// The outcome of a local write.
pub(super) struct Written {
    pub(super) req_id: u64,
    /// The write's seq, if it wrote a record.
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

/// Appends a `Put` or `Delete` without waiting for an fdatasync (under
/// `--fsync always` the answer waits in [`Master::durable`]) or for anything
/// slow.
pub(super) fn try_write(db: &Db, open: &std::sync::RwLock<bool>, m: Message) -> Wrote {
    let open = open.read().unwrap_or_else(|p| p.into_inner());
    if !*open {
        return Wrote::Done(deposed(m));
    }
    let result = match &m {
        Message::Put { key, value, .. } => db.try_put_unsynced(key, value).map(|seq| seq.map(Some)),
        Message::Delete { key, .. } => db.try_delete_unsynced(key),
        _ => Ok(Some(None)),
    };
    match result {
        Ok(None) => Wrote::Blocked(m),
        Ok(Some(seq)) => Wrote::Done(written(m, Ok(seq))),
        Err(e) => Wrote::Done(written(m, Err(e))),
    }
}

/// [`try_write`] that may wait (on the blocking pool).
pub(super) fn write(db: &Db, open: &std::sync::RwLock<bool>, m: Message) -> Written {
    let open = open.read().unwrap_or_else(|p| p.into_inner());
    if !*open {
        return deposed(m);
    }
    let result = match &m {
        Message::Put { key, value, .. } => db.put_unsynced(key, value).map(Some),
        Message::Delete { key, .. } => db.delete_unsynced(key),
        _ => Ok(None),
    };
    written(m, result)
}

/// The answer to write `m` that got `seq` (`None`: nothing written).
fn written(m: Message, result: Result<Option<u64>, hypha_engine::Error>) -> Written {
    let req_id = m.req_id().unwrap_or(0);
    let answer = match (&m, result) {
        (_, Err(e)) => {
            return Written {
                req_id,
                seq: None,
                answer: error_message(req_id, &e),
            }
        }
        (Message::Put { .. }, Ok(Some(seq))) => Message::Written { req_id, seq },
        (Message::Delete { .. }, Ok(seq)) => Message::Deleted { req_id, seq },
        (other, _) => {
            let message = format!("{} is not a write", other.name());
            Message::error(req_id, ErrorCode::Internal, &message)
        }
    };
    let seq = match answer {
        Message::Written { seq, .. } => Some(seq),
        Message::Deleted { seq, .. } => seq,
        _ => None,
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
