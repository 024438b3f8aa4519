//! Pages of a consistent copy of the live keys (`Backup` → `BackupPage`),
//! served by workers (a group's followers) and masters: what `hypha backup`
//! reads through the edge's `GET /admin/backup`.
//!
//! Every page is read from the engine's snapshot at the first page's seq
//! (`Db::snapshot_at_after`), so the copy is the store as it was after that
//! seq, whatever is written meanwhile. A compaction may drop versions that
//! were live then: a page carries the node's *generation* (a random number
//! per process plus its compaction count) and a later page asked with
//! another is refused with `Compacted`, so a copy is whole or starts again.

use crate::requests::error_message;
use crate::wire::to_wire;
use hypha_engine::Db;
use hypha_net::{BackupAsk, BackupPage, ErrorCode, Message, BATCH_BYTES_MAX, BATCH_RECORDS_MAX};
use std::sync::Arc;

/// Answers a `Backup` on the blocking pool: a page reads the log.
pub async fn answer(db: Arc<Db>, ask: BackupAsk) -> Message {
    smol::unblock(move || page(&db, &ask)).await
}

/// One page (see the module doc).
pub fn page(db: &Db, ask: &BackupAsk) -> Message {
    let generation = db.log_generation();
    if ask.generation.is_some_and(|g| g != generation) {
        return moved(db, ask);
    }
    let now = db.seq();
    let upto = ask.upto.unwrap_or(now);
    if upto > now {
        return Message::error(
            ask.req_id,
            ErrorCode::Unavailable,
            &format!("this node holds seq {now}, the backup is of seq {upto}: start it again"),
        );
    }
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let mut done = true;
    for r in db.snapshot_at_after(upto, ask.after) {
        let r = match r {
            Ok(r) => r,
            Err(e) => return error_message(ask.req_id, &e),
        };
        if hypha_net::is_system_key(&r.key) {
            continue;
        }
        // The batch rule: add while what is in is at most BATCH_BYTES_MAX.
        if records.len() >= BATCH_RECORDS_MAX || bytes > BATCH_BYTES_MAX {
            done = false;
            break;
        }
        bytes += r.key.len() + r.value.len();
        records.push(to_wire(r));
    }
    if db.log_generation() != generation {
        // A compaction switched files (or the log was cut) while this page
        // was read: versions live at `upto` may have been missed.
        return moved(db, ask);
    }
    Message::BackupPage(BackupPage {
        req_id: ask.req_id,
        upto,
        generation,
        records,
        done,
    })
}

/// The refusal of a page whose log changed under the copy.
fn moved(db: &Db, ask: &BackupAsk) -> Message {
    Message::error(
        ask.req_id,
        ErrorCode::Compacted { earliest: db.seq() },
        "this node compacted, cut its log or reopened its data since the backup began, so \
         versions it was copying may be gone: start the backup again",
    )
}
