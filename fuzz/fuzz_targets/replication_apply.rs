#![no_main]
//! A worker's apply path: arbitrary record streams (duplicates, gaps,
//! reorders, conflicting bindings) through `wire::from_wire` into
//! `Db::apply`, checked against a model.
//!
//! A record is applied iff its seq is above every seq applied before and it
//! binds no key to a second id (nor an id to a second key): that is
//! `Error::Diverged`, and it changes nothing. Too-long keys and values, ids
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
}

fn outcome(result: Result<bool, Error>) -> Outcome {
    match result {
        Ok(true) => Outcome::Applied,
        Ok(false) => Outcome::Stale,
        Err(Error::KeyTooLong { .. }) => Outcome::KeyTooLong,
        Err(Error::ValueTooLong { .. }) => Outcome::ValueTooLong,
        Err(Error::IdOutOfRange { .. }) => Outcome::IdOutOfRange,
        Err(Error::Diverged { .. }) => Outcome::Diverged,
        Err(e) => panic!("apply failed: {e}"),
    }
}

#[derive(Default)]
struct Model {
    seq: u64,
    /// id → (key, value; `None` after a delete).
    ids: BTreeMap<u32, (Vec<u8>, Option<Vec<u8>>)>,
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
        let key_elsewhere = !r.key.is_empty()
            && self
                .ids
                .iter()
                .any(|(&id, (k, _))| id != r.id && *k == r.key);
        let id_has_other_key = self.ids.get(&r.id).is_some_and(|(k, _)| *k != r.key);
        if key_elsewhere || id_has_other_key {
            return Outcome::Diverged;
        }
        Outcome::Applied
    }

    fn apply(&mut self, r: Record) {
        let value = (r.kind == RecordKind::Put).then(|| r.value.clone());
        self.ids.insert(r.id, (r.key.clone(), value));
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
        let bound = model.ids.values().find(|(mk, _)| *mk == key);
        let expected = bound.and_then(|(_, v)| v.clone());
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
