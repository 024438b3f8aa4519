//! A witness's durable state (`hypha witness`): its term and vote (the file
//! `vote`, as a member's) and the newest log id a leader told it (the file
//! `witness`). Each is replaced atomically (written to `NAME.tmp`,
//! fdatasynced, renamed, the directory fsynced) before the call returns, so
//! a witness says nothing it could forget in a crash. No log, no tables: a
//! few hundred bytes on disk.

use crate::dir::{read_if_exists, replace_file};
use crate::error::{Error, Result};
use crate::io::{FileIo, RealIo};
use crate::tables::Vote;
use crate::witness_file::WitnessLast;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The witness file's name.
pub const WITNESS_FILE: &str = "witness";

/// A witness's term, vote and vouched-for log id, on disk in one directory.
pub struct WitnessStore {
    dir: PathBuf,
    vote: Mutex<Vote>,
    last: Mutex<WitnessLast>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WitnessStore {
    /// Opens (creating) the state in `dir`. A damaged file stops the open:
    /// forgetting a vote, or what it vouched for, could lose a write.
    pub fn open(dir: impl AsRef<Path>) -> Result<WitnessStore> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            context: format!("create {}", dir.display()),
            source,
        })?;
        let vote = crate::vote::load(&dir)?;
        let path = dir.join(WITNESS_FILE);
        let last = match read_if_exists(&path)? {
            None => WitnessLast::default(),
            Some(bytes) => WitnessLast::decode(&bytes).map_err(|cause| Error::Corrupted {
                file: path,
                offset: 0,
                cause,
            })?,
        };
        Ok(WitnessStore {
            dir,
            vote: Mutex::new(vote),
            last: Mutex::new(last),
        })
    }

    /// The term and vote on disk.
    pub fn vote(&self) -> Vote {
        *lock(&self.vote)
    }

    /// Makes `vote` durable, as `Db::set_vote` does (terms never go back, a
    /// vote cast stays).
    pub fn set_vote(&self, vote: Vote) -> Result<()> {
        let mut now = lock(&self.vote);
        crate::vote::check(&now, &vote)?;
        if *now != vote {
            crate::vote::save(&self.dir, &vote, &RealIo)?;
            *now = vote;
        }
        Ok(())
    }

    /// The newest log id it vouched for.
    pub fn last(&self) -> WitnessLast {
        *lock(&self.last)
    }

    /// Makes `last` durable; an older one than on disk changes nothing.
    pub fn set_last(&self, last: WitnessLast) -> Result<()> {
        let mut now = lock(&self.last);
        if last > *now {
            let io: &dyn FileIo = &RealIo;
            replace_file(&self.dir, WITNESS_FILE, &last.encode(), io)?;
            *now = last;
        }
        Ok(())
    }
}
