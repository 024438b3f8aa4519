//! A failover member's term and vote (the file `vote`, see `FORMAT.md`).
//!
//! Raft's safety rests on a member never voting twice in one term, also
//! across a crash: the vote is made durable (written to `vote.tmp`,
//! fdatasynced, renamed over `vote`, the directory fsynced) before the
//! caller sends it. A missing file is term 0 with no vote; a damaged one
//! stops the open, since forgetting a vote could elect two leaders.

use crate::dir::{read_if_exists, replace_file};
use crate::error::{Error, Result};
use crate::io::FileIo;
use crate::tables::Vote;
use std::path::Path;

/// The file's name in the database directory.
pub const VOTE_FILE: &str = "vote";

/// The vote on disk in `dir` (term 0, no vote, if there is none).
pub fn load(dir: &Path) -> Result<Vote> {
    let path = dir.join(VOTE_FILE);
    match read_if_exists(&path)? {
        None => Ok(Vote::default()),
        Some(bytes) => Vote::decode(&bytes).map_err(|cause| Error::Corrupted {
            file: path,
            offset: 0,
            cause,
        }),
    }
}

/// Checks that `next` may follow `now`: terms never go back, and a vote
/// once cast in a term stays.
pub fn check(now: &Vote, next: &Vote) -> Result<()> {
    let back = next.term < now.term
        || (next.term == now.term && now.voted_for.is_some() && next.voted_for != now.voted_for);
    if back || next.voted_for == Some(u32::MAX) {
        return Err(Error::InvalidVote {
            detail: format!(
                "term {} vote {:?} cannot follow term {} vote {:?}",
                next.term, next.voted_for, now.term, now.voted_for
            ),
        });
    }
    Ok(())
}

/// Makes `vote` durable in `dir`.
pub fn save(dir: &Path, vote: &Vote, io: &dyn FileIo) -> Result<()> {
    replace_file(dir, VOTE_FILE, &vote.encode(), io)
}
