//! Watches (`Message::Watch`), answered by the nodes that follow the log
//! (workers, a failover group's followers): the changes under a prefix
//! after a cursor, from the recent records in memory ([`Hub`]) or, for an
//! older cursor, from the log; a watch with nothing to answer waits until
//! a record under its prefix is applied, or its wait ends. An answer's
//! `upto` is the next cursor, so a watcher resumes exactly where it was.
//!
//! A cursor is served only while the log holds every write after it: a
//! gap (compacted away, or older than a snapshot this node installed) is
//! `Error { Compacted { earliest } }`, `earliest` the lowest cursor after
//! which the log has no gap.

mod events;
mod hub;

pub use events::{Builder, Page};
pub use hub::{Hub, WATCH_RING_BYTES_MAX, WATCH_RING_RECORDS_MAX};

use hypha_engine::Db;
use hypha_net::{ErrorCode, Message};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most log records one answer reads when the cursor is older than the
/// ring (a watcher catching up gets the rest from its next request).
pub const WATCH_SCAN_RECORDS_MAX: usize = 65_536;

/// What a `Watch` asks.
pub struct Ask {
    req_id: u64,
    prefix: Vec<u8>,
    after: Option<u64>,
    values: bool,
    wait_ms: u32,
}

impl Ask {
    /// The watch in `m`, if it is one.
    pub fn of(m: &Message) -> Option<Ask> {
        match m {
            Message::Watch {
                req_id,
                prefix,
                after,
                values,
                wait_ms,
            } => Some(Ask {
                req_id: *req_id,
                prefix: prefix.clone(),
                after: *after,
                values: *values,
                wait_ms: *wait_ms,
            }),
            _ => None,
        }
    }
}

/// Answers a watch: at once if there are changes, else once there are or
/// its wait ends. `db` gives the database (none while a snapshot is
/// swapped in).
pub async fn answer(hub: Arc<Hub>, db: impl Fn() -> Option<Arc<Db>>, ask: Ask) -> Message {
    let until = Instant::now() + Duration::from_millis(u64::from(ask.wait_ms));
    let unavailable = || {
        Message::error(
            ask.req_id,
            ErrorCode::Unavailable,
            "this node is installing a snapshot; retry",
        )
    };
    let Some(first) = db() else {
        return unavailable();
    };
    let mut after = ask.after.unwrap_or_else(|| first.seq());
    drop(first);
    let event = hub.watch(&ask.prefix);
    loop {
        let woken = event.listen();
        let page = match hub.read(&ask.prefix, ask.values, after) {
            Some(page) => page,
            None => {
                let Some(db) = db() else {
                    return unavailable();
                };
                let reader = hub.log_reader().await;
                let (prefix, values, log) = (ask.prefix.clone(), ask.values, db.clone());
                let read = smol::unblock(move || read_log(&log, &prefix, values, after)).await;
                drop(reader);
                match read {
                    Ok(page) => page,
                    Err(Gap) => {
                        let earliest = hub.earliest(db).await;
                        return compacted(ask.req_id, after, earliest);
                    }
                }
            }
        };
        let now = Instant::now();
        if !page.events.is_empty() || now >= until {
            return Message::Events {
                req_id: ask.req_id,
                upto: page.upto,
                events: page.events,
            };
        }
        after = page.upto;
        let timer = async {
            smol::Timer::at(until).await;
        };
        smol::future::or(timer, woken).await;
    }
}

fn compacted(req_id: u64, after: u64, earliest: u64) -> Message {
    let message = format!(
        "this node's log no longer holds every write after seq {after} (compacted, or older \
         than a snapshot): watch from {earliest} or later, after listing the keys"
    );
    Message::error(req_id, ErrorCode::Compacted { earliest }, &message)
}

/// The log does not hold every write after a cursor.
pub struct Gap;

/// A page read from the log after `after` (at most
/// `WATCH_SCAN_RECORDS_MAX` records), or the gap that stops it.
pub fn read_log(db: &Db, prefix: &[u8], values: bool, after: u64) -> Result<Page, Gap> {
    let mut b = Builder::new(prefix, values, after);
    let records = db.read_from(after).take(WATCH_SCAN_RECORDS_MAX);
    for (expect, r) in (after + 1..).zip(records) {
        match r {
            Ok(r) if r.seq == expect => {
                if !b.push(&r) {
                    break;
                }
            }
            // A gap, or a log compacted past the cursor.
            _ => return Err(Gap),
        }
    }
    Ok(b.finish())
}

/// The lowest cursor after which the log has no gap: the end of its last
/// gap (compaction drops superseded versions; a snapshot holds live ones).
/// It reads the whole log: [`Hub::earliest`] keeps the answer until the
/// next compaction.
pub fn earliest(db: &Db) -> u64 {
    let from = db.tombstone_horizon();
    let mut earliest = from;
    let mut expect = None;
    for r in db.read_from(from) {
        let Ok(r) = r else {
            return db.seq();
        };
        if expect.is_some_and(|e| r.seq != e) || (expect.is_none() && r.seq != from + 1) {
            earliest = r.seq - 1;
        }
        expect = Some(r.seq + 1);
    }
    earliest
}
