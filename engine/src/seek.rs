//! Seek marks: where in each data file a seq is, sampled.
//!
//! A data file holds records in seq order but has no index by seq, so
//! reading the log from a seq would start at the beginning of the file that
//! holds it — up to 256 MiB to skip, again for every page a watcher or a
//! resuming follower reads. Iterators passing through a file note the
//! (offset, seq) of one record per [`SEEK_MARK_STRIDE_BYTES`]; a later
//! seek starts at the last mark at or below the seq it wants.
//!
//! A mark stays true while the file's records do: files only grow, except
//! when a compaction replaces files or the tail is cut, and both change
//! `Log::generation`, which clears every mark.

use crate::limits::{FILE_HEADER_BYTES, SEEK_MARK_STRIDE_BYTES};
use crate::record::Seq;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// The marks, locked (a thread that panicked while noting one left them
/// true: a mark is written whole or not at all).
pub fn marks(m: &Mutex<SeekMarks>) -> MutexGuard<'_, SeekMarks> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sampled (offset, seq) pairs per file number, sorted by offset (and so by
/// seq), at most one per stride of each file.
#[derive(Default)]
pub struct SeekMarks {
    generation: u64,
    files: HashMap<u16, Vec<(u32, Seq)>>,
    /// Records iterators read and passed over on their way to the seq they
    /// were asked for, since open.
    pub skipped: u64,
}

impl SeekMarks {
    /// Notes that the record at `offset` of `file` has `seq`.
    pub fn note(&mut self, generation: u64, file: u16, offset: u32, seq: Seq) {
        if generation != self.generation {
            self.files = HashMap::new();
            self.generation = generation;
        }
        let marks = self.files.entry(file).or_default();
        let stride = offset / SEEK_MARK_STRIDE_BYTES;
        let at = marks.partition_point(|&(o, _)| o / SEEK_MARK_STRIDE_BYTES < stride);
        if marks
            .get(at)
            .is_none_or(|&(o, _)| o / SEEK_MARK_STRIDE_BYTES != stride)
        {
            marks.insert(at, (offset, seq));
        }
    }

    /// Where in `file` to start reading for the records after `after`: the
    /// last mark whose record has a seq at most `after + 1` (every record
    /// before it has a lower seq), else the first record.
    pub fn start(&self, generation: u64, file: u16, after: Seq) -> u32 {
        let first = FILE_HEADER_BYTES as u32;
        if generation != self.generation {
            return first;
        }
        let Some(marks) = self.files.get(&file) else {
            return first;
        };
        let n = marks.partition_point(|&(_, seq)| seq <= after.saturating_add(1));
        n.checked_sub(1).map_or(first, |i| marks[i].0)
    }

    /// The offset from which the next mark of `file` is due: the start of
    /// the stride after the one holding `offset`.
    pub fn next_due(offset: u32) -> u32 {
        (offset / SEEK_MARK_STRIDE_BYTES + 1).saturating_mul(SEEK_MARK_STRIDE_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_is_the_last_mark_at_or_below_the_next_seq() {
        let mut m = SeekMarks::default();
        let s = SEEK_MARK_STRIDE_BYTES;
        m.note(0, 3, 2 * s + 10, 200);
        m.note(0, 3, s + 5, 100);
        m.note(0, 3, s + 90, 101); // same stride as (s + 5): kept once
        assert_eq!(m.start(0, 3, 50), FILE_HEADER_BYTES as u32);
        assert_eq!(m.start(0, 3, 98), FILE_HEADER_BYTES as u32);
        assert_eq!(m.start(0, 3, 99), s + 5);
        assert_eq!(m.start(0, 3, 199), 2 * s + 10);
        assert_eq!(m.start(0, 3, Seq::MAX), 2 * s + 10);
        assert_eq!(m.start(0, 4, 199), FILE_HEADER_BYTES as u32);
        // Another generation: the marks are gone.
        assert_eq!(m.start(1, 3, 199), FILE_HEADER_BYTES as u32);
        m.note(1, 4, s, 7);
        assert_eq!(m.start(0, 3, 199), FILE_HEADER_BYTES as u32);
        assert_eq!(m.start(1, 4, 7), s);
    }

    #[test]
    fn next_due_is_the_next_stride() {
        let s = SEEK_MARK_STRIDE_BYTES;
        assert_eq!(SeekMarks::next_due(FILE_HEADER_BYTES as u32), s);
        assert_eq!(SeekMarks::next_due(s), 2 * s);
        assert_eq!(SeekMarks::next_due(u32::MAX), u32::MAX);
    }
}
