//! A witness's durable state (`WitnessStore`): its term and vote and the
//! newest log id it vouched for survive a reopen, never go back, take a few
//! hundred bytes, and a damaged file stops the open.

mod common;

use common::TempDir;
use hypha_engine::{Error, Vote, WitnessLast, WitnessStore, WITNESS_BYTES, WITNESS_FILE};

fn last(term: u64, seq: u64) -> WitnessLast {
    WitnessLast { term, seq }
}

#[test]
fn vote_and_last_survive_a_reopen_and_never_go_back() -> Result<(), Error> {
    let dir = TempDir::new("witness-durable");
    let w = WitnessStore::open(dir.path())?;
    assert_eq!(
        (w.vote(), w.last()),
        (Vote::default(), WitnessLast::default())
    );
    w.set_vote(Vote {
        term: 4,
        voted_for: Some(0),
    })?;
    w.set_last(last(4, 17))?;
    // An older id changes nothing; a vote taken back is refused.
    w.set_last(last(3, 99))?;
    w.set_last(last(4, 16))?;
    assert!(matches!(
        w.set_vote(Vote {
            term: 4,
            voted_for: Some(1)
        }),
        Err(Error::InvalidVote { .. })
    ));
    drop(w);
    let w = WitnessStore::open(dir.path())?;
    assert_eq!(
        (w.vote(), w.last()),
        (
            Vote {
                term: 4,
                voted_for: Some(0)
            },
            last(4, 17)
        )
    );
    let bytes: u64 = std::fs::read_dir(dir.path())
        .map_err(|source| Error::Io {
            context: "list".into(),
            source,
        })?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(bytes <= 1024, "a witness keeps {bytes} bytes");
    Ok(())
}

#[test]
fn a_damaged_witness_file_stops_the_open() -> Result<(), Error> {
    let dir = TempDir::new("witness-damaged");
    WitnessStore::open(dir.path())?.set_last(last(2, 5))?;
    let path = dir.path().join(WITNESS_FILE);
    let mut bytes = std::fs::read(&path).map_err(|source| Error::Io {
        context: "read".into(),
        source,
    })?;
    assert_eq!(bytes.len(), WITNESS_BYTES);
    bytes[20] ^= 1;
    std::fs::write(&path, &bytes).map_err(|source| Error::Io {
        context: "write".into(),
        source,
    })?;
    assert!(matches!(
        WitnessStore::open(dir.path()),
        Err(Error::Corrupted { .. })
    ));
    Ok(())
}
