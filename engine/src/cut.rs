//! Cutting the end off the log: a torn or corrupt tail found by recovery
//! (kept in `torn/`), or, when a former master rejoins a failover group, the
//! records no majority acknowledged (kept in `diverged/after-SEQ/`, made
//! durable before anything is cut: they are the only copy).

use crate::dir::sync_dir;
use crate::error::{IoContext, Result};
use crate::files::Log;
use crate::io::{FileIo, OpenMode};
use crate::location::Location;
use crate::record::Seq;
use std::path::{Path, PathBuf};

/// Why bytes are cut, and where they are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// A torn or corrupt tail: `torn/`.
    Torn,
    /// Records after seq `after` that another history replaced:
    /// `diverged/after-{after}/`.
    Diverged {
        /// The last seq kept.
        after: Seq,
    },
}

impl Keep {
    fn folder(&self, dir: &Path) -> PathBuf {
        match self {
            Keep::Torn => dir.join("torn"),
            Keep::Diverged { after } => dir.join("diverged").join(format!("after-{after}")),
        }
    }
}

/// Writes `bytes` (the part of file `n` from `from` on) to the folder of
/// `keep` unless they are all zeros; diverged bytes are fsynced with their
/// directory before this returns.
pub fn keep_cut(
    dir: &Path,
    n: u16,
    from: usize,
    bytes: &[u8],
    keep: Keep,
    io: &dyn FileIo,
) -> Result<()> {
    if bytes.iter().all(|&b| b == 0) {
        return Ok(());
    }
    let folder = keep.folder(dir);
    io.create_dir_all(&folder)
        .ctx(|| format!("create {}", folder.display()))?;
    let path = folder.join(format!("{n}.db.from-{from}"));
    let f = io
        .open(&path, OpenMode::Truncate)
        .ctx(|| format!("create {}", path.display()))?;
    io.write_at(&f, bytes, 0)
        .ctx(|| format!("write {}", path.display()))?;
    match keep {
        Keep::Torn => log::warn!(
            "cut {} bytes off {n}.db at offset {from} (torn or corrupt tail); they are kept in {}",
            bytes.len(),
            path.display()
        ),
        Keep::Diverged { after } => {
            io.sync_data(&f)
                .ctx(|| format!("fsync {}", path.display()))?;
            sync_dir(&folder, io)?;
            if let Some(parent) = folder.parent() {
                sync_dir(parent, io)?;
            }
            sync_dir(dir, io)?;
            log::warn!(
                "cut {} bytes off {n}.db at offset {from}: records after seq {after} that no \
                 majority acknowledged (another master's history replaces them); they are kept \
                 in {}",
                bytes.len(),
                path.display()
            );
        }
    }
    Ok(())
}

/// What [`cut_tail`] removed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cut {
    /// Bytes of records (or damage) cut.
    pub bytes: u64,
    /// Zero bytes cut past the last record.
    pub zeros: u64,
}

/// Ends the log at `at`: moves the bytes from there on (and any later files)
/// to the folder of `keep` unless they are all zeros, and truncates.
pub fn cut_tail(log: &mut Log, at: Location, keep: Keep) -> Result<Cut> {
    let dir = log.dir.clone();
    let io = log.io.clone();
    let i = log.position(at.file).expect("cut inside a live file");
    let later: Vec<u16> = log.order[i + 1..].to_vec();
    let mut cut = Cut::default();
    for &n in later.iter().rev() {
        let f = log.close_file(n).expect("later file is open");
        keep_cut(&dir, n, 0, &f.whole()?, keep, &*io)?;
        cut.bytes += f.len as u64;
        io.remove_file(&f.path)
            .ctx(|| format!("remove {}", f.path.display()))?;
    }
    let f = log.file(at.file).expect("cut inside a live file");
    let whole = f.whole()?;
    let tail = &whole[at.offset as usize..];
    keep_cut(&dir, at.file, at.offset as usize, tail, keep, &*io)?;
    if tail.iter().all(|&b| b == 0) {
        cut.zeros += tail.len() as u64;
    } else {
        cut.bytes += tail.len() as u64;
    }
    if at.offset < f.len {
        io.set_len(&f.file, at.offset as u64)
            .ctx(|| format!("truncate {}", f.path.display()))?;
        io.sync_data(&f.file)
            .ctx(|| format!("fsync {}", f.path.display()))?;
    }
    sync_dir(&dir, &*io)?;
    log.reopen(at.file)?;
    // Iterators and seek marks past `at` point at records that are gone.
    log.generation += 1;
    Ok(cut)
}
