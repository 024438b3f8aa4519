//! A failover member's term and vote (`Db::set_vote`): durable once
//! `set_vote` returns, never taken back, kept whole through a failed write,
//! fsync or rename, and a damaged file stops the open.

mod common;

use common::TempDir;
use hypha_engine::io::{FaultyIo, Op};
use hypha_engine::{CodecError, Db, Error, Fsync, Options, Vote};
use std::sync::Arc;

fn opts(io: Option<Arc<FaultyIo>>) -> Options {
    let mut o = Options {
        fsync: Fsync::Never,
        auto_compact: false,
        ..Options::default()
    };
    if let Some(io) = io {
        o.io = io;
    }
    o
}

fn vote(term: u64, voted_for: Option<u32>) -> Vote {
    Vote { term, voted_for }
}

#[test]
fn a_vote_survives_a_reopen_and_a_crash() -> Result<(), Error> {
    let dir = TempDir::new("vote-durable");
    let db = Db::open(dir.path(), opts(None))?;
    assert_eq!(db.vote(), Vote::default());
    db.set_vote(vote(3, Some(1)))?;
    assert_eq!(db.vote(), vote(3, Some(1)));
    db.crash();
    let db = Db::open(dir.path(), opts(None))?;
    assert_eq!(db.vote(), vote(3, Some(1)));
    db.set_vote(vote(4, None))?;
    db.close()?;
    assert_eq!(Db::open(dir.path(), opts(None))?.vote(), vote(4, None));
    Ok(())
}

#[test]
fn a_term_or_a_cast_vote_is_never_taken_back() -> Result<(), Error> {
    let dir = TempDir::new("vote-monotonic");
    let db = Db::open(dir.path(), opts(None))?;
    db.set_vote(vote(5, Some(1)))?;
    for bad in [
        vote(4, Some(1)),
        vote(5, Some(2)),
        vote(5, None),
        vote(6, Some(u32::MAX)),
    ] {
        match db.set_vote(bad) {
            Err(Error::InvalidVote { detail }) => {
                assert!(detail.contains("cannot follow term 5"), "{detail}")
            }
            other => panic!("{bad:?} accepted: {other:?}"),
        }
        assert_eq!(db.vote(), vote(5, Some(1)));
    }
    // The same vote again is fine (a repeated RequestVote), and so is a
    // vote in a later term.
    db.set_vote(vote(5, Some(1)))?;
    db.set_vote(vote(6, None))?;
    db.set_vote(vote(6, Some(0)))?;
    db.close()?;
    assert_eq!(Db::open(dir.path(), opts(None))?.vote(), vote(6, Some(0)));
    Ok(())
}

#[test]
fn a_failed_save_leaves_the_old_vote_or_the_new_one_never_a_mix() -> Result<(), Error> {
    for op in [Op::Write, Op::Sync, Op::Rename, Op::SyncDir] {
        let dir = TempDir::new("vote-fault");
        let io = Arc::new(FaultyIo::new(0, 0, 5));
        let db = Db::open(dir.path(), opts(Some(io.clone())))?;
        db.set_vote(vote(1, Some(0)))?;
        io.arm(op, 1);
        assert!(db.set_vote(vote(2, Some(1))).is_err(), "{op:?} failed");
        // The vote the member acts on is the one known durable.
        assert_eq!(db.vote(), vote(1, Some(0)), "{op:?}");
        io.disarm(op);
        db.crash();
        let on_disk = Db::open(dir.path(), opts(None))?.vote();
        // A failed directory fsync may still leave the rename in place.
        let want = match op {
            Op::SyncDir => vec![vote(1, Some(0)), vote(2, Some(1))],
            _ => vec![vote(1, Some(0))],
        };
        assert!(want.contains(&on_disk), "{op:?}: {on_disk:?}");
    }
    Ok(())
}

#[test]
fn a_damaged_vote_file_stops_the_open() -> Result<(), Error> {
    let dir = TempDir::new("vote-damaged");
    let db = Db::open(dir.path(), opts(None))?;
    db.set_vote(vote(7, Some(2)))?;
    db.close()?;
    let path = dir.path().join("vote");
    let mut b = std::fs::read(&path).expect("read");
    b[16] ^= 1;
    std::fs::write(&path, &b).expect("write");
    match Db::open(dir.path(), opts(None)) {
        Err(Error::Corrupted {
            file,
            cause: CodecError::BadCrc { .. },
            ..
        }) => assert_eq!(file, path),
        other => panic!("opened with a damaged vote: {:?}", other.map(|_| ())),
    }
    // A leftover vote.tmp (a crash while saving) is not the vote.
    b[16] ^= 1;
    std::fs::write(&path, &b).expect("write");
    std::fs::write(dir.path().join("vote.tmp"), b"torn").expect("write");
    assert_eq!(Db::open(dir.path(), opts(None))?.vote(), vote(7, Some(2)));
    Ok(())
}
