//! The log's term boundaries, kept in the file `terms` (`FORMAT.md`,
//! codec in `term_table.rs`): where each of the newest `TERMS_KEPT` terms
//! starts. A failover member sends them to a follower, which finds with
//! them where its log and the leader's agree (`hypha-repl`'s `terms`).
//!
//! The table must never claim less than the log holds: a record of a new
//! term is appended only after the table naming that term is durable (a
//! file replace under the write lock, once per term). It may name the term
//! of the next record before it is written — a new database's table says
//! term 0 starts at seq 1, and a crash or a failed append can leave an
//! entry just past the log's end — but never claims a record wrongly: an
//! entry further past the end is dropped at open, and an append at or
//! before an entry's first seq drops that entry (durably) before it writes.

use crate::dir::{read_if_exists, replace_file};
use crate::error::{Error, Result};
use crate::io::FileIo;
use crate::limits::TERMS_KEPT;
use crate::record::Seq;
use crate::term_table::{self, TermStart};
use std::path::Path;

/// The file's name in the database directory.
pub const TERMS_FILE: &str = "terms";

/// The term table of an open database.
#[derive(Clone, Debug, Default)]
pub struct Terms {
    starts: Vec<TermStart>,
}

impl Terms {
    /// The table of the log in `dir` that ends at `seq` with a record of
    /// `last_term`. Without a file, a log whose newest record is of term 0
    /// holds only term 0 (terms never fall along the log); any other log
    /// without a file has unknown boundaries (the table stays empty, and a
    /// leader sends such a follower a snapshot).
    pub fn load(dir: &Path, seq: Seq, last_term: u64, io: &dyn FileIo) -> Result<Terms> {
        let path = dir.join(TERMS_FILE);
        let mut terms = match read_if_exists(&path)? {
            Some(bytes) => Terms {
                starts: term_table::decode(&bytes).map_err(|cause| Error::Corrupted {
                    file: path,
                    offset: 0,
                    cause,
                })?,
            },
            None if last_term == 0 => {
                let t = Terms {
                    starts: vec![TermStart {
                        term: 0,
                        first_seq: 1,
                    }],
                };
                t.save(dir, io)?;
                t
            }
            None => Terms::default(),
        };
        if terms.drop_after(seq + 1) {
            terms.save(dir, io)?;
        }
        Ok(terms)
    }

    /// The boundaries, oldest first.
    pub fn starts(&self) -> &[TermStart] {
        &self.starts
    }

    /// Whether appending a record of `term` at `seq` changes the table: it
    /// starts a new term, or an entry names a term from `seq` on that the
    /// record does not have.
    pub fn changes(&self, term: u64, seq: Seq) -> bool {
        match self.starts.last() {
            None => true,
            Some(l) if l.first_seq >= seq => l.term != term || l.first_seq != seq,
            Some(l) => term > l.term,
        }
    }

    /// A record of `term` will be appended at `seq` (and
    /// [`Terms::changes`] said the table changes): makes the table that
    /// says so durable first.
    pub fn note(&mut self, term: u64, seq: Seq, dir: &Path, io: &dyn FileIo) -> Result<()> {
        // Entries at or past `seq` name records never written.
        self.drop_after(seq - 1);
        if self.starts.last().is_none_or(|l| term > l.term) {
            self.starts.push(TermStart {
                term,
                first_seq: seq,
            });
        }
        if self.starts.len() > TERMS_KEPT {
            self.starts.remove(0);
        }
        self.save(dir, io)
    }

    /// Replaces the table (a replica that installed a snapshot takes its
    /// master's), dropping entries past `seq` + 1.
    pub fn replace(
        &mut self,
        starts: &[TermStart],
        seq: Seq,
        dir: &Path,
        io: &dyn FileIo,
    ) -> Result<()> {
        term_table::check(starts).map_err(|cause| Error::InvalidRecord {
            detail: format!("term boundaries {starts:?}: {cause}"),
        })?;
        self.starts = starts.to_vec();
        self.drop_after(seq + 1);
        self.save(dir, io)
    }

    /// Drops the entries of terms that start after `seq`; true if any.
    fn drop_after(&mut self, seq: Seq) -> bool {
        let before = self.starts.len();
        self.starts.retain(|t| t.first_seq <= seq);
        self.starts.len() != before
    }

    fn save(&self, dir: &Path, io: &dyn FileIo) -> Result<()> {
        replace_file(dir, TERMS_FILE, &term_table::encode(&self.starts), io)
    }
}
