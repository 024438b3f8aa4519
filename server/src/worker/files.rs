//! A worker's files beside its database, and what it tells a failover
//! member's election.

use super::history_path;
use hypha_engine::{Db, Options};
use hypha_net::{Message, RefuseReason};
use std::net::SocketAddr;
use std::path::Path;

/// The master history a node under `data` follows (the file
/// `DIR/history`, written when a snapshot is installed), if it took one.
pub fn followed_history(data: &Path) -> Option<u64> {
    std::fs::read_to_string(history_path(data))
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
}

/// Opens `DIR/db`, first finishing a snapshot swap a crash interrupted or
/// discarding a half-received snapshot.
pub fn open_data(data: &Path, engine: &Options) -> std::io::Result<Db> {
    std::fs::create_dir_all(data)?;
    let (db_dir, tmp, old) = (
        data.join("db"),
        data.join("snapshot.tmp"),
        data.join("db.old"),
    );
    if old.exists() {
        if db_dir.exists() {
            std::fs::remove_dir_all(&old)?;
        } else {
            std::fs::rename(&old, &db_dir)?;
        }
    }
    if tmp.exists() {
        log::warn!(
            "worker: discarding an interrupted snapshot in {}",
            tmp.display()
        );
        std::fs::remove_dir_all(&tmp)?;
    }
    Db::open(&db_dir, engine.clone()).map_err(std::io::Error::other)
}

/// A member follows only the leader of its own term: a higher term in the
/// answer goes to the election (which then follows anew), a lower one
/// means the node answering no longer leads.
pub(super) fn check_leader_term(
    group: &crate::group::InGroup,
    leader: SocketAddr,
    answer: &Message,
) -> std::io::Result<()> {
    let term = match answer {
        Message::Welcome(w) => w.term,
        Message::Refuse(r) => match r.reason {
            RefuseReason::StaleTerm { current } => current,
            _ => return Ok(()),
        },
        _ => return Ok(()),
    };
    if term > group.term {
        group.elector.saw_term(term);
    }
    if term != group.term {
        return Err(std::io::Error::other(format!(
            "{leader} answered in term {term}; this member follows the leader of term {}",
            group.term
        )));
    }
    Ok(())
}

/// Tells the election the newest durable record of a member's log.
pub(super) fn report_log(group: &crate::group::InGroup, db: &Db) {
    let (term, seq) = db.last_log_id();
    group.elector.log_changed(hypha_net::LogId { term, seq });
}
