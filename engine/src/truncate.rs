//! Cutting the log back to a seq when a former master rejoins a failover
//! group with records no majority acknowledged (`Db::truncate_after`).
//!
//! The cut is requested by a durable marker (`TRUNCATE`) and done by the
//! next open, before replay: the records after the seq are written to
//! `diverged/after-SEQ/` and fsynced, then the files are cut, then the
//! tables are rebuilt from the log (they may name cut records), and the
//! marker is removed after the open's checkpoint. A crash at any point
//! leaves the marker, and the next open does the rest; the cut is the same
//! each time, since it is found by seq.

use crate::cut::{cut_tail, Cut, Keep};
use crate::dir::{read_if_exists, replace_file, sync_dir};
use crate::error::{Error, IoContext, Result};
use crate::files::Log;
use crate::io::FileIo;
use crate::limits::FILE_HEADER_BYTES;
use crate::location::Location;
use crate::record::{self, Seq};
use crate::tables::TruncateMarker;
use std::path::Path;

/// The marker's name in the database directory.
pub const TRUNCATE_FILE: &str = "TRUNCATE";

/// Makes a request to cut the log after `after` durable.
pub fn request(dir: &Path, after: Seq, io: &dyn FileIo) -> Result<()> {
    replace_file(dir, TRUNCATE_FILE, &TruncateMarker { after }.encode(), io)
}

/// The cut a marker in `dir` asks for, if any.
pub fn pending(dir: &Path) -> Result<Option<Seq>> {
    let path = dir.join(TRUNCATE_FILE);
    let Some(bytes) = read_if_exists(&path)? else {
        return Ok(None);
    };
    let m = TruncateMarker::decode(&bytes).map_err(|cause| Error::Corrupted {
        file: path,
        offset: 0,
        cause,
    })?;
    Ok(Some(m.after))
}

/// Where the first record with a seq above `after` starts, in log order;
/// `None` if there is none (or the log is damaged before one: recovery
/// cuts that as a torn tail).
fn first_after(log: &Log, after: Seq) -> Option<Location> {
    for (i, &n) in log.order.iter().enumerate() {
        let next_first = log
            .order
            .get(i + 1)
            .and_then(|&m| log.file(m))
            .map(|f| f.header.first_seq);
        if next_first.is_some_and(|s| s <= after.saturating_add(1)) {
            continue; // every record in file n is at or below `after`
        }
        let f = log.file(n)?;
        let mut at = FILE_HEADER_BYTES;
        let bytes = f.whole().ok()?;
        while at < bytes.len() {
            let d = record::decode(&bytes[at..]).ok()??;
            if d.header.seq > after {
                break;
            }
            at += d.header.record_len();
        }
        if at == FILE_HEADER_BYTES && i > 0 {
            // Nothing of file n is kept: it goes whole, so no file is left
            // whose first_seq is above the seqs appended next.
            let prev = log.file(log.order[i - 1])?;
            return Some(Location {
                file: prev.header.file_no,
                offset: prev.len,
            });
        }
        if at < bytes.len() || next_first.is_some() {
            return Some(Location {
                file: n,
                offset: at as u32,
            });
        }
    }
    None
}

/// Does the cut a marker asks for (at open, before replay); refuses one
/// below what compaction rewrote (the versions it needs are gone).
pub fn apply(log: &mut Log, after: Seq, compacted: Seq) -> Result<Cut> {
    if after < compacted {
        return Err(Error::Compacted {
            after,
            horizon: compacted,
        });
    }
    match first_after(log, after) {
        Some(at) => cut_tail(log, at, Keep::Diverged { after }),
        None => Ok(Cut::default()),
    }
}

/// Removes the marker once the open that did the cut took its checkpoint.
pub fn finish(dir: &Path, io: &dyn FileIo) -> Result<()> {
    let path = dir.join(TRUNCATE_FILE);
    io.remove_file(&path)
        .ctx(|| format!("remove {}", path.display()))?;
    sync_dir(dir, io)
}
