//! Turning records into watch events: one event per write or per atomic
//! batch (its changes under the prefix, at the batch's last seq), within
//! the limits of one `Events` answer.

use hypha_engine::{Record, RecordKind};
use hypha_net::{Change, ChangeKind, WatchEvent, BATCH_BYTES_MAX, WATCH_CHANGES_MAX};

/// What a page of events holds, and how far it looked.
#[derive(Debug, Default)]
pub struct Page {
    /// Events, in seq order.
    pub events: Vec<WatchEvent>,
    /// Every record up to this seq was examined (the next cursor).
    pub upto: u64,
}

/// Builds a page from records in seq order: whole batches only (a batch
/// the records end inside is left for the next page), at most
/// `WATCH_CHANGES_MAX` changes, and events added while their bytes are at
/// or under `BATCH_BYTES_MAX` (so the last may cross it).
pub struct Builder<'a> {
    prefix: &'a [u8],
    values: bool,
    page: Page,
    bytes: usize,
    changes: usize,
    /// The batch being read (its records so far), and whether the page is
    /// full.
    batch: Vec<Change>,
    full: bool,
}

impl<'a> Builder<'a> {
    /// A page of changes under `prefix` after cursor `after`.
    pub fn new(prefix: &'a [u8], values: bool, after: u64) -> Self {
        Builder {
            prefix,
            values,
            page: Page {
                events: Vec::new(),
                upto: after,
            },
            bytes: 0,
            changes: 0,
            batch: Vec::new(),
            full: false,
        }
    }

    /// Adds a record; false once the page is full (the record and those
    /// after it are for the next page).
    pub fn push(&mut self, r: &Record) -> bool {
        if self.full {
            return false;
        }
        if self.wants(&r.key) {
            self.batch.push(change(r, self.values));
        }
        if r.meta.batch_more {
            return true;
        }
        // The end of a write or batch.
        let changes = std::mem::take(&mut self.batch);
        if !changes.is_empty() {
            let event = WatchEvent {
                seq: r.seq,
                changes,
            };
            let fits = self.changes + event.changes.len() <= WATCH_CHANGES_MAX;
            if !fits || self.bytes > BATCH_BYTES_MAX {
                self.full = true;
                return false;
            }
            self.changes += event.changes.len();
            self.bytes += event.bytes();
            self.page.events.push(event);
        }
        self.page.upto = r.seq;
        true
    }

    /// Whether no more fits.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// The page; a batch left unfinished is not in it.
    pub fn finish(self) -> Page {
        self.page
    }

    fn wants(&self, key: &[u8]) -> bool {
        key.starts_with(self.prefix) && !key.is_empty() && !hypha_net::is_system_key(key)
    }
}

/// A record as a change: a delete with a deadline is an expiry, a put
/// marked as a refresh a refresh.
fn change(r: &Record, values: bool) -> Change {
    let kind = match (r.kind, r.meta.refresh, r.meta.deadline_ms != 0) {
        (RecordKind::Put, true, _) => ChangeKind::Refresh,
        (RecordKind::Put, false, _) => ChangeKind::Put,
        (RecordKind::Delete, _, true) => ChangeKind::Expire,
        (RecordKind::Delete, _, false) => ChangeKind::Delete,
    };
    let value = (values && r.kind == RecordKind::Put).then(|| r.value.clone());
    Change {
        kind,
        key: r.key.clone(),
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypha_engine::RecordMeta;

    fn rec(seq: u64, key: &str, more: bool) -> Record {
        Record {
            seq,
            id: seq as u32,
            kind: RecordKind::Put,
            key: key.as_bytes().to_vec(),
            value: b"v".to_vec(),
            meta: RecordMeta {
                batch_more: more,
                ..RecordMeta::default()
            },
        }
    }

    #[test]
    fn a_batch_is_one_event_at_its_last_seq_and_other_prefixes_only_move_the_cursor() {
        let mut b = Builder::new(b"a/", true, 10);
        for r in [
            rec(11, "a/1", false),
            rec(12, "b/1", false),
            rec(13, "a/2", true),
            rec(14, "b/2", true),
            rec(15, "a/3", false),
            rec(16, "a/4", true),
        ] {
            assert!(b.push(&r));
        }
        let page = b.finish();
        let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![11, 15]);
        assert_eq!(page.events[1].changes.len(), 2);
        // The batch from 16 is unfinished: the cursor stops before it.
        assert_eq!(page.upto, 15);
    }
}
