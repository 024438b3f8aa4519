#![no_main]
//! A worker's apply path: arbitrary record streams (duplicates, gaps,
//! reorders, conflicting bindings) through `wire::from_wire` into
//! `Db::apply`, checked against a model.
//!
//! A record is applied iff its seq is above every seq applied before and it
//! binds no key to a second id (nor an id to a second key): that is
//! `Error::Diverged`, and it changes nothing — except that a key whose id
//! ends in a delete may move to an id that holds nothing yet (the source
//! compacted the delete away and bound the key anew). Too-long keys and values, ids
//! out of range and deletes carrying a value (which the wire refuses too)
//! are errors that change nothing either. After the stream the database
//! holds the model's contents, `read_from(0)` ships exactly the accepted
//! records, and a second database fed only those has the same digest.

use arbitrary::Arbitrary;
use hypha_engine::limits::{FILE_SIZE_MIN, KEY_BYTES_MAX};
use hypha_engine::{Db, Error, Fsync, Options, Record, RecordKind};
use hypha_fuzz::TempDir;
use hypha_net::WireRecord;
use hypha_server::wire::from_wire;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

/// Highest id the databases accept; the stream uses 0..=IDS_MAX + 1.
const IDS_MAX: u32 = 6;
/// Keys the stream uses besides the empty key (id API) and one too long.
const KEYS: u8 = 8;
/// `value_bytes_max` of the databases, so longer values are refused.
const VALUE_BYTES_MAX: usize = 256;

#[derive(Arbitrary, Debug)]
struct Rec {
    seq: u16,
    id: u8,
    delete: bool,
    key_idx: u8,
    value: Vec<u8>,
    term: u8,
    deadline_ms: u16,
}

impl Rec {
    fn wire(&self) -> WireRecord {
        let key = match self.key_idx % (KEYS + 2) {
            0 => Vec::new(),
            k if k <= KEYS => format!("key-{k}").into_bytes(),
            _ => vec![b'k'; KEY_BYTES_MAX + 1],
        };
        WireRecord {
            seq: self.seq as u64,
            id: self.id as u32 % (IDS_MAX + 2),
            kind: match self.delete {
                true => hypha_net::RecordKind::Delete,
                false => hypha_net::RecordKind::Put,
            },
            key,
            value: self.value.clone(),
            meta: hypha_net::WireMeta {
                term: u64::from(self.term),
                deadline_ms: u64::from(self.deadline_ms),
                ..Default::default()
            },
        }
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Applied,
    Stale,
    KeyTooLong,
    ValueTooLong,
    IdOutOfRange,
    Diverged,
    TermBehind,
}

fn outcome(result: Result<bool, Error>) -> Outcome {
    match result {
        Ok(true) => Outcome::Applied,
        Ok(false) => Outcome::Stale,
        Err(Error::KeyTooLong { .. }) => Outcome::KeyTooLong,
        Err(Error::ValueTooLong { .. }) => Outcome::ValueTooLong,
        Err(Error::IdOutOfRange { .. }) => Outcome::IdOutOfRange,
        Err(Error::Diverged { .. }) => Outcome::Diverged,
        Err(Error::InvalidRecord { detail }) if detail.contains("terms never go back") => {
            Outcome::TermBehind
        }
        Err(e) => panic!("apply failed: {e}"),
    }
}

#[derive(Default)]
struct Model {
    seq: u64,
    /// id → (key, value; `None` after a delete).
    ids: BTreeMap<u32, (Vec<u8>, Option<Vec<u8>>)>,
    /// id → seq of its newest record.
    newest: BTreeMap<u32, u64>,
    accepted: Vec<Record>,
}

impl Model {
    fn expect(&self, r: &Record) -> Outcome {
        if r.key.len() > KEY_BYTES_MAX {
            return Outcome::KeyTooLong;
        }
        if r.value.len() > VALUE_BYTES_MAX {
            return Outcome::ValueTooLong;
        }
        if r.id == 0 || r.id > IDS_MAX {
            return Outcome::IdOutOfRange;
        }
        if r.seq <= self.seq {
            return Outcome::Stale;
        }
        let id_has_other_key = self.ids.get(&r.id).is_some_and(|(k, _)| *k != r.key);
        let last_term = self.accepted.last().map_or(0, |a| a.meta.term);
        let outcome = match self.bound(&r.key) {
            // The key's id ends in a delete and the record's id is unused.
            Some(id) if id != r.id => {
                match self.ids[&id].1.is_none() && !self.ids.contains_key(&r.id) {
                    true => Outcome::Applied,
                    false => Outcome::Diverged,
                }
            }
            Some(_) => Outcome::Applied,
            None if id_has_other_key => Outcome::Diverged,
            None => Outcome::Applied,
        };
        match outcome {
            Outcome::Applied if r.meta.term < last_term => Outcome::TermBehind,
            o => o,
        }
    }

    /// The id a key is bound to (as `find_key`): the one holding a value,
    /// else the one whose delete is newest; never for the empty key.
    fn bound(&self, key: &[u8]) -> Option<u32> {
        if key.is_empty() {
            return None;
        }
        let ids = self.ids.iter().filter(|(_, (k, _))| k == key);
        let live = ids.clone().find(|(_, (_, v))| v.is_some());
        let newest = ids.max_by_key(|(id, _)| self.newest[id]);
        live.or(newest).map(|(&id, _)| id)
    }

    fn apply(&mut self, r: Record) {
        let value = (r.kind == RecordKind::Put).then(|| r.value.clone());
        self.ids.insert(r.id, (r.key.clone(), value));
        self.newest.insert(r.id, r.seq);
        self.seq = r.seq;
        self.accepted.push(r);
    }
}

fn options() -> Options {
    Options {
        file_size: FILE_SIZE_MIN,
        fsync: Fsync::Never,
        value_bytes_max: VALUE_BYTES_MAX,
        ids_max: IDS_MAX,
        ..Options::default()
    }
}

fn check_contents(db: &Db, model: &Model) {
    for k in 1..=KEYS {
        let key = format!("key-{k}").into_bytes();
        let expected = model.bound(&key).and_then(|id| model.ids[&id].1.clone());
        assert_eq!(db.get(&key).expect("get"), expected, "key-{k}");
    }
    for id in 1..=IDS_MAX {
        let expected = model.ids.get(&id).and_then(|(_, v)| v.clone());
        assert_eq!(db.ids().get(id).expect("id get"), expected, "id {id}");
    }
    let live = model.ids.values().filter(|(_, v)| v.is_some()).count();
    assert_eq!(db.len(), live as u64, "live count");
    assert_eq!(db.seq(), model.seq, "seq");
    let shipped: Vec<Record> = db.read_from(0).map(|r| r.expect("read_from")).collect();
    assert_eq!(shipped, model.accepted, "read_from(0) ships other records");
    // The term table names each accepted record's term.
    let starts = db.term_history();
    for r in &model.accepted {
        match starts.iter().rev().find(|s| s.first_seq <= r.seq) {
            Some(entry) => assert_eq!(entry.term, r.meta.term, "term table {starts:?} at {r:?}"),
            // Older than the terms kept.
            None => assert_eq!(starts.len(), hypha_engine::limits::TERMS_KEPT, "{starts:?}"),
        }
    }
}

fuzz_target!(|stream: Vec<Rec>| {
    let dir = TempDir::new("replication_apply");
    let db = Db::open(dir.path(), options()).expect("create");
    let mut model = Model::default();
    for rec in &stream {
        let r = from_wire(rec.wire());
        let delete_with_value = r.kind == RecordKind::Delete && !r.value.is_empty();
        let (seq, digest) = (db.seq(), db.digest());
        let result = db.apply(&r);
        if delete_with_value {
            assert!(result.is_err(), "a Delete with a value was applied");
        } else {
            let expected = model.expect(&r);
            assert_eq!(outcome(result), expected, "{r:?}");
            if expected == Outcome::Applied {
                model.apply(r);
                continue;
            }
        }
        let now = (db.seq(), db.digest());
        assert_eq!(now, (seq, digest), "a refused record changed the database");
    }
    check_contents(&db, &model);

    let twin_dir = TempDir::new("replication_apply_twin");
    let twin = Db::open(twin_dir.path(), options()).expect("create");
    for r in &model.accepted {
        assert_eq!(
            twin.apply(r).ok(),
            Some(true),
            "accepted record refused in order"
        );
    }
    assert_eq!(
        twin.digest(),
        db.digest(),
        "digest differs from the in-order twin"
    );
    check_contents(&twin, &model);
    twin.close().expect("close");
    db.close().expect("close");
});
