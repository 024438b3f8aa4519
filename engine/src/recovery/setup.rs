//! The checkpoint of a new database, and the check that a database is
//! opened with the options it was created with.

use crate::error::{Error, Result};
use crate::limits::INDEX_SLOTS_MIN;
use crate::location::Location;
use crate::options::Options;
use crate::random::random_u64;
use crate::tables::Meta;
use std::path::Path;

pub(super) fn fresh_meta(opts: &Options) -> Meta {
    Meta {
        keysize: opts.keysize,
        incremental: opts.incremental,
        file_size: opts.file_size,
        history_id: random_u64() | 1,
        hash_seed: random_u64(),
        ckpt: Location::NONE,
        seq: 0,
        next_id: 1,
        live: 0,
        digest: 0,
        index_used: 0,
        index_slots: INDEX_SLOTS_MIN,
        compact_seq: 0,
        tombstone_horizon: 0,
        live_bytes: Some(0),
        file_count: 0,
        compact_id: 0,
        last_term: 0,
    }
}

pub(super) fn check_options(m: &Meta, opts: &Options, dir: &Path) -> Result<()> {
    if m.keysize != opts.keysize || m.incremental != opts.incremental {
        return Err(Error::BadOptions {
            detail: format!(
                "{} was created with keysize {} and incremental = {}; open it with the same \
                 (asked: keysize {}, incremental = {})",
                dir.display(),
                m.keysize,
                m.incremental,
                opts.keysize,
                opts.incremental
            ),
        });
    }
    if m.file_size != opts.file_size {
        log::info!(
            "{}: using its file_size {} (asked {})",
            dir.display(),
            m.file_size,
            opts.file_size
        );
    }
    Ok(())
}
