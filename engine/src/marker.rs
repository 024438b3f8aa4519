//! The compaction marker file `COMPACT` on disk: written at a compaction's
//! commit point, acted on at open, removed last. Its bytes are encoded by
//! [`Marker`](crate::tables::Marker) in `tables.rs`.
//!
//! Invariant: while `COMPACT` exists, the compaction it names has committed —
//! its outputs (`N.db.compact` or already `N.db`) are durable and replace the
//! old files it lists. Without it, `.compact` files are leftovers of one that
//! never happened.

use crate::dir::{data_path, read_if_exists, replace_file, sync_dir};
use crate::error::{Error, IoContext, Result};
use crate::io::FileIo;
use crate::tables::Marker;
use std::fs;
use std::path::{Path, PathBuf};

/// Name of the commit marker.
pub const MARKER: &str = "COMPACT";
/// Name of the marker while it is written (see `replace_file`).
const MARKER_TMP: &str = "COMPACT.tmp";

/// Where compaction writes output file `n` before its commit.
pub fn compact_path(dir: &Path, n: u16) -> PathBuf {
    dir.join(format!("{n}.db.compact"))
}

/// Writes the marker atomically (temporary file, fsync, rename, fsync the
/// directory): the commit point of a compaction.
pub fn write_marker(dir: &Path, marker: &Marker, io: &dyn FileIo) -> Result<()> {
    replace_file(dir, MARKER, &marker.encode(), io)
}

/// At open: finishes a committed compaction (its marker exists) by renaming
/// its outputs and removing the files it replaced, or removes the outputs of
/// one that did not commit. Returns the marker, which the caller removes
/// after its checkpoint.
pub fn finish_or_undo(dir: &Path, io: &dyn FileIo) -> Result<Option<Marker>> {
    let path = dir.join(MARKER);
    let marker = match read_if_exists(&path)? {
        Some(b) => Some(Marker::decode(&b).map_err(|cause| Error::Corrupted {
            file: path.clone(),
            offset: 0,
            cause,
        })?),
        None => None,
    };
    let changed = match &marker {
        Some(m) => finish(dir, m, io)?,
        None => undo(dir, io)?,
    };
    if changed {
        sync_dir(dir, io)?;
    }
    Ok(marker)
}

/// Renames the outputs of the committed compaction `m` and removes the
/// files it replaced; true if it changed anything.
fn finish(dir: &Path, m: &Marker, io: &dyn FileIo) -> Result<bool> {
    let mut changed = false;
    for &n in &m.new {
        let from = compact_path(dir, n);
        if from.exists() {
            let to = data_path(dir, n);
            io.rename(&from, &to)
                .ctx(|| format!("rename {} to {}", from.display(), to.display()))?;
            changed = true;
        }
    }
    for &n in &m.old {
        let old = data_path(dir, n);
        match io.remove_file(&old) {
            Ok(()) => changed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Io {
                    context: format!("remove {}", old.display()),
                    source: e,
                })
            }
        }
    }
    log::info!(
        "{}: finished a compaction that committed before the process stopped \
         (removed {} old data files)",
        dir.display(),
        m.old.len()
    );
    Ok(changed)
}

/// Removes what a compaction that did not commit left; true if anything.
fn undo(dir: &Path, io: &dyn FileIo) -> Result<bool> {
    let mut changed = false;
    for entry in fs::read_dir(dir).ctx(|| format!("list {}", dir.display()))? {
        let entry = entry.ctx(|| format!("list {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".db.compact") || name == MARKER_TMP {
            io.remove_file(&entry.path())
                .ctx(|| format!("remove {}", entry.path().display()))?;
            log::info!(
                "{}: removed {name}, left by a compaction that did not commit",
                dir.display()
            );
            changed = true;
        }
    }
    Ok(changed)
}

/// Removes the marker once the compaction it describes is complete.
pub fn remove_marker(dir: &Path, io: &dyn FileIo) -> Result<()> {
    let path = dir.join(MARKER);
    io.remove_file(&path)
        .ctx(|| format!("remove {}", path.display()))?;
    sync_dir(dir, io)
}
