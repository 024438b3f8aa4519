//! The database directory: file names, directory fsync, atomic replacement
//! of small files (`meta`, `COMPACT`) and creation of data files.

use crate::error::{Error, IoContext, Result};
use crate::io::{FileIo, OpenMode};
use crate::tables::FileHeader;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The path of data file `n`.
pub fn data_path(dir: &Path, n: u16) -> PathBuf {
    dir.join(format!("{n}.db"))
}

/// fsyncs a directory so a created or renamed entry survives power loss.
pub fn sync_dir(dir: &Path, io: &dyn FileIo) -> Result<()> {
    io.sync_dir(dir)
        .ctx(|| format!("fsync directory {}", dir.display()))
}

/// Replaces `dir/name` atomically: writes `dir/name.tmp`, fsyncs it,
/// renames it over `name`, fsyncs the directory.
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8], io: &dyn FileIo) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let f = io
        .open(&tmp, OpenMode::Truncate)
        .ctx(|| format!("create {}", tmp.display()))?;
    io.write_at(&f, bytes, 0)
        .ctx(|| format!("write {}", tmp.display()))?;
    io.sync_data(&f)
        .ctx(|| format!("fsync {}", tmp.display()))?;
    io.rename(&tmp, &path)
        .ctx(|| format!("rename {} to {}", tmp.display(), path.display()))?;
    sync_dir(dir, io)
}

/// The bytes of `path`, or `None` if it does not exist.
pub fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            context: format!("read {}", path.display()),
            source: e,
        }),
    }
}

/// Creates file `path` (it must not exist) and writes a data-file header.
pub fn create_with_header(path: &Path, header: &FileHeader, io: &dyn FileIo) -> Result<File> {
    let file = io
        .open(path, OpenMode::CreateNew)
        .ctx(|| format!("create {}", path.display()))?;
    if let Err(e) = io.write_at(&file, &header.encode(), 0) {
        // Not left behind: a retry (after a full disk has room again)
        // creates the same file.
        let _ = io.remove_file(path);
        return Err(e).ctx(|| format!("write header of {}", path.display()));
    }
    Ok(file)
}
