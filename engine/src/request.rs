//! Writes that carry a client's request id, so that a retry of a write
//! whose answer was lost (its leader crashed, its connection broke) is
//! answered with the original outcome instead of being applied twice.
//!
//! The first attempt of a write only stores its id in the record
//! (`FLAG_REQUEST`). A retry names, besides the id, a seq the writer knew
//! to be committed before the first attempt was sent: the first attempt, if
//! it was applied anywhere that counts, is after that seq. The search for
//! the id runs under the write lock, so no attempt can slip in between the
//! search and the append; it examines at most `REQUEST_SCAN_RECORDS_MAX`
//! records, and a window it cannot see whole (longer than that, or with
//! records a compaction dropped) makes the outcome `Once::Unknown`.

use crate::db::Db;
use crate::error::Result;
use crate::limits::{FILE_HEADER_BYTES, REQUEST_SCAN_RECORDS_MAX};
use crate::location::Location;
use crate::log_iter::seek;
use crate::record::RecordKind;
use crate::record::{Seq, REQUEST_ID_BYTES};
use crate::state::Core;

/// Who asked for a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The request's id, chosen at random by the writer; never all zero.
    pub id: [u8; REQUEST_ID_BYTES],
    /// `Some(seq)` on a retry: a seq committed before the first attempt
    /// was sent. `None` on the first attempt, which cannot be a repeat.
    pub retry_after: Option<Seq>,
}

/// The outcome of a write with a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Once {
    /// Applied now: its seq, or `None` for a delete of an absent key
    /// (nothing written).
    Wrote(Option<Seq>),
    /// An earlier attempt of the same request wrote the record at this
    /// seq; nothing was written now.
    Repeated(Seq),
    /// Whether an earlier attempt was applied cannot be told: nothing was
    /// written, and the reason is for the writer's operator.
    Unknown(String),
    /// A conditional write whose key is not as it expected: nothing was
    /// written; the key's live version's seq (`None`: absent).
    Conflict(Option<Seq>),
}

/// What a conditional write (compare-and-swap) expects of its key, checked
/// under the write lock together with the append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Its live version was written at this seq.
    Seq(Seq),
    /// It holds no value (never written, or deleted).
    Absent,
    /// It holds a value.
    Present,
}

/// How a write is asked for: the client request it belongs to (if any)
/// and what it expects of its key (if anything).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct How<'a> {
    pub(crate) req: Option<&'a Request>,
    pub(crate) expect: Option<Expect>,
}

/// What the search for a request id found.
pub(crate) enum Found {
    Absent,
    At(Seq),
    Unknown(String),
}

impl Core {
    /// Looks for a record carrying request `id` among the records after
    /// `after`, which must all still be in the log.
    pub(crate) fn find_request(&self, after: Seq, id: &[u8; REQUEST_ID_BYTES]) -> Found {
        if self.seq <= after {
            return Found::Absent;
        }
        let window = self.seq - after;
        if window > REQUEST_SCAN_RECORDS_MAX {
            return Found::Unknown(format!(
                "{window} records were written since seq {after}, more than the \
                 {REQUEST_SCAN_RECORDS_MAX} a retry may search"
            ));
        }
        let mut pos = seek(self, after);
        let mut expect = after + 1;
        loop {
            if pos.offset >= self.log.readable_end(pos.file) {
                match self.log.next_after(pos.file) {
                    Some(next) => {
                        pos = Location {
                            file: next,
                            offset: FILE_HEADER_BYTES as u32,
                        };
                        continue;
                    }
                    None => break,
                }
            }
            let Some((h, _)) = self.log.header_and_key(pos) else {
                return Found::Unknown(format!("the record at {pos:?} cannot be read"));
            };
            pos.offset += h.record_len() as u32;
            if h.seq <= after {
                continue;
            }
            if h.seq != expect {
                return Found::Unknown(format!(
                    "the records from seq {expect} to {} are not in this log any more \
                     (compacted, or never here after a snapshot)",
                    h.seq - 1
                ));
            }
            if h.meta.request_id == *id {
                return Found::At(h.seq);
            }
            expect += 1;
        }
        match expect > self.seq {
            true => Found::Absent,
            false => Found::Unknown(format!(
                "the log ends at seq {} before its last seq {}",
                expect - 1,
                self.seq
            )),
        }
    }
}

impl Db {
    /// [`Db::put_unsynced`] for a client's request: a retry that finds an
    /// earlier attempt writes nothing and returns its seq.
    pub fn put_once(&self, key: &[u8], value: &[u8], req: &Request) -> Result<Once> {
        let how = How {
            req: Some(req),
            expect: None,
        };
        self.put_request(key, value, how, true)
            .map(|once| once.expect("a waiting write always ends"))
    }

    /// [`Db::put_once`] that never waits for slow work (see
    /// [`Db::try_put_unsynced`]): `None` means retry with `put_once`.
    pub fn try_put_once(&self, key: &[u8], value: &[u8], req: &Request) -> Result<Option<Once>> {
        let how = How {
            req: Some(req),
            expect: None,
        };
        self.put_request(key, value, how, false)
    }

    /// [`Db::delete_unsynced`] for a client's request (see [`Db::put_once`]).
    pub fn delete_once(&self, key: &[u8], req: &Request) -> Result<Once> {
        let how = How {
            req: Some(req),
            expect: None,
        };
        self.delete_request(key, how, true)
            .map(|once| once.expect("a waiting write always ends"))
    }

    /// [`Db::delete_once`] that never waits for slow work.
    pub fn try_delete_once(&self, key: &[u8], req: &Request) -> Result<Option<Once>> {
        let how = How {
            req: Some(req),
            expect: None,
        };
        self.delete_request(key, how, false)
    }

    /// A put (unsynced, as [`Db::put_unsynced`]) that happens only if `key`
    /// is as `expect` says, decided under the write lock: else
    /// `Once::Conflict` with the key's live seq. With `req`, a retry that
    /// finds an earlier attempt is answered as [`Db::put_once`] does.
    /// `wait` false: never waits for slow work (`None`: retry with `wait`).
    pub fn put_if(
        &self,
        key: &[u8],
        value: &[u8],
        expect: Expect,
        req: Option<&Request>,
        wait: bool,
    ) -> Result<Option<Once>> {
        let how = How {
            req,
            expect: Some(expect),
        };
        self.put_request(key, value, how, wait)
    }

    /// A delete that happens only if `key` is as `expect` says (see
    /// [`Db::put_if`]).
    pub fn delete_if(
        &self,
        key: &[u8],
        expect: Expect,
        req: Option<&Request>,
        wait: bool,
    ) -> Result<Option<Once>> {
        let how = How {
            req,
            expect: Some(expect),
        };
        self.delete_request(key, how, wait)
    }
}

/// Before a conditional write: `Some(Conflict)` when `key` is not as
/// `expect` says.
pub(crate) fn unmet(core: &Core, key: &[u8], expect: Option<Expect>) -> Result<Option<Once>> {
    let Some(expect) = expect else {
        return Ok(None);
    };
    let current = match core.find_key(key)? {
        Some((id, _)) => match core.current(id)? {
            Some((_, h, _)) if h.kind == RecordKind::Put => Some(h.seq),
            _ => None,
        },
        None => None,
    };
    let holds = match expect {
        Expect::Seq(seq) => current == Some(seq),
        Expect::Absent => current.is_none(),
        Expect::Present => current.is_some(),
    };
    Ok((!holds).then_some(Once::Conflict(current)))
}

/// Before a write of `req`: `Some(outcome)` when the write must not happen
/// (an earlier attempt is in the log, or cannot be ruled out).
pub(crate) fn repeat_of(core: &Core, req: Option<&Request>) -> Option<Once> {
    let req = req?;
    let after = req.retry_after?;
    match core.find_request(after, &req.id) {
        Found::Absent => None,
        Found::At(seq) => Some(Once::Repeated(seq)),
        Found::Unknown(why) => Some(Once::Unknown(why)),
    }
}
