//! Format revision 2: a database the previous release wrote (format 1,
//! `tests/fixtures/format1`) opens and reads as term 0, and takes records
//! with terms in a new version-2 file; records keep their optional fields
//! through apply, the log and a reopen; a batch the log ends inside is cut
//! whole; a record this release cannot apply stops the open untouched.

mod common;

use common::TempDir;
use hypha_engine::limits::FILE_SIZE_MIN;
use hypha_engine::record::{encode, RecordRef, KIND_RANGE_DELETE};
use hypha_engine::RecordMeta;
use hypha_engine::{CodecError, Db, Error, Fsync, Location, Options, Record, RecordKind};
use std::path::Path;

/// What the fixture's generator printed.
const FIXTURE_SEQ: u64 = 391;
const FIXTURE_LIVE: u64 = 320;
const FIXTURE_DIGEST: u64 = 0x5914_23b4_cf19_18a6;

fn fixture_options() -> Options {
    Options {
        file_size: FILE_SIZE_MIN,
        fsync: Fsync::Never,
        auto_compact: false,
        ..Options::default()
    }
}

fn never() -> Options {
    Options {
        fsync: Fsync::Never,
        auto_compact: false,
        ..Options::default()
    }
}

fn copy_fixture(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1");
    for entry in std::fs::read_dir(&from).expect("fixture dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// The value the fixture holds for key `i`, if any.
fn fixture_value(i: u32) -> Option<Vec<u8>> {
    match i {
        0 => Some(b"x0".to_vec()),
        1..=49 => Some(format!("w{i}").into_bytes()),
        50..=59 => None,
        60..=329 => Some(format!("v{i}").into_bytes()),
        _ => None,
    }
}

fn check_fixture_keys(db: &Db) -> Result<(), Error> {
    for i in 0..340u32 {
        let key = format!("k{i:03}");
        assert_eq!(db.get(key.as_bytes())?, fixture_value(i), "{key}");
    }
    Ok(())
}

fn data_file_versions(dir: &Path) -> Vec<(String, u16)> {
    let mut v: Vec<(String, u16)> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .map(|p| {
            let b = std::fs::read(&p).expect("read");
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, u16::from_le_bytes([b[8], b[9]]))
        })
        .collect();
    v.sort();
    v
}

fn meta_version(dir: &Path) -> u16 {
    let b = std::fs::read(dir.join("meta")).expect("meta");
    u16::from_le_bytes([b[8], b[9]])
}

#[test]
fn a_format_1_database_opens_reads_as_term_0_and_takes_terms_in_a_new_file() -> Result<(), Error> {
    let dir = TempDir::new("format1");
    copy_fixture(dir.path());
    assert_eq!(meta_version(dir.path()), 2, "the fixture is format 1");
    let before = data_file_versions(dir.path());
    assert!(before.iter().all(|(_, v)| *v == 1), "{before:?}");

    let db = Db::open(dir.path(), fixture_options())?;
    assert_eq!(
        (db.seq(), db.len(), db.digest()),
        (FIXTURE_SEQ, FIXTURE_LIVE, FIXTURE_DIGEST)
    );
    check_fixture_keys(&db)?;
    let history: Vec<_> = db
        .history(b"k000", 4)?
        .into_iter()
        .map(|v| v.value)
        .collect();
    assert_eq!(history, vec![Some(b"x0".to_vec()), Some(b"w0".to_vec())]);
    assert_eq!(db.last_log_id(), (0, FIXTURE_SEQ));
    assert_eq!(db.term(), 0);
    // The open wrote its checkpoint as meta version 3: a release that reads
    // only versions 1 and 2 refuses the database from now on.
    assert_eq!(meta_version(dir.path()), 3);

    // Term 0 writes are format-1 records: they stay in the format-1 file.
    db.put(b"plain", b"p")?;
    assert_eq!(data_file_versions(dir.path()), before);
    // A record with a term does not go into a format-1 file.
    db.set_term(5);
    db.put(b"termed", b"t")?;
    let after = data_file_versions(dir.path());
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    assert_eq!(after.iter().filter(|(_, v)| *v == 2).count(), 1);
    assert_eq!(db.last_log_id(), (5, FIXTURE_SEQ + 2));
    db.close()?;

    let db = Db::open(dir.path(), fixture_options())?;
    check_fixture_keys(&db)?;
    assert_eq!(db.get(b"plain")?.as_deref(), Some(&b"p"[..]));
    assert_eq!(db.get(b"termed")?.as_deref(), Some(&b"t"[..]));
    assert_eq!(db.last_log_id(), (5, FIXTURE_SEQ + 2));
    assert_eq!(db.term(), 5);
    assert_eq!(db.stats().last_term, 5);
    let terms: Vec<u64> = db
        .read_from(FIXTURE_SEQ - 1)
        .map(|r| r.map(|r| r.meta.term))
        .collect::<Result<_, _>>()?;
    assert_eq!(terms, vec![0, 0, 5], "x0, plain, termed");
    // Compaction copies records with their terms into version-2 files.
    db.compact()?;
    assert!(data_file_versions(dir.path()).iter().all(|(_, v)| *v == 2));
    assert_eq!(db.last_log_id(), (5, FIXTURE_SEQ + 2));
    let termed: Vec<(Vec<u8>, u64)> = db
        .snapshot()
        .map(|r| r.map(|r| (r.key, r.meta.term)))
        .filter(|r| !matches!(r, Ok((_, 0))))
        .collect::<Result<_, _>>()?;
    assert_eq!(termed, vec![(b"termed".to_vec(), 5)]);
    Ok(())
}

#[test]
fn applied_records_keep_term_deadline_and_request_id() -> Result<(), Error> {
    let dir = TempDir::new("format2-meta");
    let db = Db::open(dir.path(), never())?;
    let meta = RecordMeta {
        term: 3,
        deadline_ms: 1_800_000_000_000,
        request_id: [7; 16],
        batch_more: false,
        refresh: true,
    };
    let r = Record {
        seq: 1,
        id: 1,
        kind: RecordKind::Put,
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        meta,
    };
    assert!(db.apply(&r)?);
    assert_eq!(db.last_log_id(), (3, 1));
    let read: Vec<Record> = db.read_from(0).collect::<Result<_, _>>()?;
    assert_eq!(read, vec![r.clone()]);
    db.close()?;
    let db = Db::open(dir.path(), never())?;
    let read: Vec<Record> = db.read_from(0).collect::<Result<_, _>>()?;
    assert_eq!(read, vec![r]);
    assert_eq!(db.last_log_id(), (3, 1));
    Ok(())
}

/// Appends `records` (key, seq, id, batch_more), encoded with valid CRCs,
/// to `0.db`.
fn append_records(dir: &Path, records: &[(&[u8], u64, u32, bool)]) {
    let path = dir.join("0.db");
    let mut file = std::fs::read(&path).expect("read");
    for &(key, seq, id, batch_more) in records {
        let r = RecordRef {
            seq,
            id,
            kind: RecordKind::Put,
            key,
            value: b"batched",
            meta: RecordMeta {
                batch_more,
                ..RecordMeta::default()
            },
        };
        encode(&mut file, &r, Location::NONE);
    }
    std::fs::write(&path, &file).expect("write");
}

#[test]
fn a_batch_the_log_ends_inside_is_cut_whole() -> Result<(), Error> {
    let dir = TempDir::new("format2-batch");
    let db = Db::open(dir.path(), never())?;
    db.put(b"a", b"1")?; // id 1, seq 1
    db.sync()?;
    db.crash();
    // A whole batch (seqs 2-3), then one whose last record never came.
    append_records(
        dir.path(),
        &[
            (b"b", 2, 2, true),
            (b"c", 3, 3, false),
            (b"d", 4, 4, true),
            (b"e", 5, 5, true),
        ],
    );
    let db = Db::open(dir.path(), never())?;
    assert_eq!(db.get(b"b")?.as_deref(), Some(&b"batched"[..]));
    assert_eq!(db.get(b"c")?.as_deref(), Some(&b"batched"[..]));
    assert_eq!(db.get(b"d")?, None, "half a batch is none of it");
    assert_eq!(db.get(b"e")?, None);
    assert_eq!(db.seq(), 3);
    let torn: Vec<_> = std::fs::read_dir(dir.path().join("torn"))
        .expect("the cut batch is kept in torn/")
        .collect();
    assert_eq!(torn.len(), 1);
    // The next write takes the seq after the whole batch.
    assert_eq!(db.put(b"f", b"2")?, 4);
    Ok(())
}

#[test]
fn a_record_this_release_cannot_apply_stops_the_open_and_changes_nothing() -> Result<(), Error> {
    let dir = TempDir::new("format2-range-delete");
    let db = Db::open(dir.path(), never())?;
    db.put(b"a", b"1")?;
    db.sync()?;
    db.crash();
    append_records(dir.path(), &[(b"z", 2, 0, false)]);
    // Make it a range delete with a valid CRC, as a newer release would.
    let path = dir.path().join("0.db");
    let mut file = std::fs::read(&path).expect("read");
    let at = file.len() - (40 + 1 + b"batched".len());
    file[at + 6] = KIND_RANGE_DELETE;
    file[at + 32..at + 40].copy_from_slice(&[0; 8]); // pair_hash 0
    let mut crc = crc32fast::Hasher::new();
    crc.update(&file[at + 4..]);
    let c = crc.finalize().to_le_bytes();
    file[at..at + 4].copy_from_slice(&c);
    std::fs::write(&path, &file).expect("write");
    let before: Vec<_> = std::fs::read(&path).expect("read");

    match Db::open(dir.path(), never()) {
        Err(
            e @ Error::Corrupted {
                cause: CodecError::Unsupported { .. },
                ..
            },
        ) => {
            let msg = e.to_string();
            assert!(msg.contains("newer hypha"), "says why: {msg}");
            assert!(
                msg.contains("nothing was changed"),
                "says what to do: {msg}"
            );
        }
        other => panic!("expected Unsupported, got {:?}", other.map(|_| ())),
    }
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "the log is untouched"
    );
    assert!(!dir.path().join("torn").exists());
    Ok(())
}
