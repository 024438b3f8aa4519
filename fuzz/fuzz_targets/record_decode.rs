#![no_main]
//! Arbitrary bytes into the engine's decoders and into `Db::open` as data
//! file `0.db`.
//!
//! The decoders (`record::decode`, `record::decode_header`,
//! `FileHeader::decode`, `Meta::decode`, `TableHeader::decode`,
//! `Vote::decode`, `TruncateMarker::decode`, `term_table::decode`,
//! `WitnessLast::decode`, and hypha-net's `Membership::from_value`, the
//! member list a failover group keeps in its log) must
//! return an
//! error or a value, never panic; a decoded record lies inside the input and
//! re-encodes to the same bytes (puts) and every decoded structure
//! round-trips. Then the bytes become `0.db` of a database, with the other
//! files of a fresh database or alone: `open` plus scans, gets, histories and
//! a log read return data or errors; a put after recovery reads back. An
//! allocation sized by an unchecked length trips libFuzzer's malloc limit.
//!
//! Raw bytes rarely pass a record's CRC, so a mode bit reads the bytes as
//! record fields instead and encodes them with valid CRCs: records that are
//! well formed but contradict each other (seqs out of order, ids 0, keys
//! under two ids, `prev` pointing anywhere, deletes with values).

use arbitrary::{Arbitrary, Unstructured};
use hypha_engine::limits::{FILE_SIZE_MIN, KEYSIZES};
use hypha_engine::record::{self, RecordKind, RecordMeta, RecordRef};
use hypha_engine::tables::{
    FileHeader, Meta, TableHeader, TruncateMarker, Vote, DATA_VERSION, INDEX_MAGIC, LOOKUP_MAGIC,
};
use hypha_engine::term_table;
use hypha_engine::Location;
use hypha_engine::{Db, Fsync, Options};
use hypha_fuzz::{Files, TempDir};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Ids the id API is asked for after open.
const IDS_CHECKED: u32 = 64;

fn check_decoders(data: &[u8]) {
    let _ = record::decode_header(data);
    if let Ok(Some(d)) = record::decode(data) {
        let h = d.header;
        assert!(h.record_len() <= data.len(), "record runs past its input");
        if h.kind == RecordKind::Put {
            let mut again = Vec::new();
            let r = RecordRef {
                seq: h.seq,
                id: h.id,
                kind: h.kind,
                key: d.key,
                value: d.value,
                meta: h.meta,
            };
            record::encode(&mut again, &r, h.prev);
            assert_eq!(
                again,
                &data[..h.record_len()],
                "record re-encodes differently"
            );
        } else {
            assert!(d.value.is_empty(), "delete with a value");
        }
    }
    if let Ok(Some(h)) = FileHeader::decode(data) {
        assert_eq!(FileHeader::decode(&h.encode()), Ok(Some(h)));
    }
    if let Ok(m) = Meta::decode(data) {
        assert_eq!(Meta::decode(&m.encode()), Ok(m));
    }
    if let Ok(t) = TruncateMarker::decode(data) {
        assert_eq!(&t.encode()[..], data, "truncation marker re-encodes differently");
    }
    if let Ok(starts) = term_table::decode(data) {
        assert!(term_table::check(&starts).is_ok(), "a decoded table breaks its rules");
        assert_eq!(&term_table::encode(&starts)[..], data, "term table re-encodes differently");
    }
    // A failover group's member list, as the log's MEMBERS_KEY value and a
    // witness's `members` file hold it.
    if let Ok(m) = hypha_net::Membership::from_value(data) {
        assert_eq!(m.check(), Ok(()), "a decoded member list breaks its rules");
        let again = hypha_net::Membership::from_value(&m.to_value());
        assert_eq!(again, Ok(m), "a member list does not round-trip");
    }
    if let Ok(w) = hypha_engine::WitnessLast::decode(data) {
        assert_eq!(&w.encode()[..], data, "witness file re-encodes differently");
    }
    if let Ok(v) = Vote::decode(data) {
        assert_eq!(Vote::decode(&v.encode()), Ok(v));
        assert_eq!(&v.encode()[..], data, "vote re-encodes differently");
    }
    for magic in [&LOOKUP_MAGIC, &INDEX_MAGIC] {
        if let Ok(h) = TableHeader::decode(data, magic, "fuzz") {
            assert_eq!(TableHeader::decode(&h.encode(magic), magic, "fuzz"), Ok(h));
        }
    }
}

/// A record to encode with a valid CRC and pair hash.
#[derive(Arbitrary, Debug)]
struct Spec {
    delete: bool,
    id: u8,
    seq: u16,
    /// 0: no previous version; k: the k-th record before this one.
    prev: u8,
    key: Vec<u8>,
    value: Vec<u8>,
    /// Format-2 optional fields: term, deadline, request id (0: absent)
    /// and the batch marker, so batches (whole or cut) reach recovery, and
    /// the refresh marker (valid only on a put with a deadline).
    term: u8,
    deadline: u16,
    request: u8,
    batch_more: bool,
    refresh: bool,
}

/// Encodes the records `bytes` describe; what is left is appended raw.
fn records(bytes: &[u8], out: &mut Vec<u8>) {
    let mut u = Unstructured::new(bytes);
    let specs: Vec<Spec> = u.arbitrary().unwrap_or_default();
    let mut starts: Vec<Location> = Vec::new();
    for s in &specs {
        let prev = match s.prev as usize {
            0 => Location::NONE,
            k => starts
                .len()
                .checked_sub(k)
                .map_or(Location::NONE, |i| starts[i]),
        };
        let r = RecordRef {
            seq: s.seq as u64,
            id: s.id as u32,
            kind: if s.delete {
                RecordKind::Delete
            } else {
                RecordKind::Put
            },
            key: &s.key,
            value: &s.value,
            meta: RecordMeta {
                term: s.term as u64,
                deadline_ms: s.deadline as u64,
                request_id: [s.request; 16],
                batch_more: s.batch_more,
                refresh: s.refresh,
            },
        };
        starts.push(Location {
            file: 0,
            offset: out.len() as u32,
        });
        record::encode(out, &r, prev);
    }
    out.extend_from_slice(u.take_rest());
}

fn options(keysize: u8) -> Options {
    Options {
        keysize,
        file_size: FILE_SIZE_MIN,
        fsync: Fsync::Never,
        ..Options::default()
    }
}

/// A fresh, empty database per keysize.
fn fresh(keysize_idx: usize) -> &'static Files {
    static FRESH: OnceLock<Vec<Files>> = OnceLock::new();
    let all = FRESH.get_or_init(|| {
        KEYSIZES
            .iter()
            .map(|&ks| Files::build(&options(ks), |_| {}))
            .collect()
    });
    &all[keysize_idx]
}

/// Reads everything the open database offers; errors are fine.
fn read_all(db: &Db) {
    let mut cursor = Some(0);
    while let Some(c) = cursor {
        let Ok(page) = db.scan(c, b"", 1000) else {
            break;
        };
        for key in &page.keys {
            let _ = db.get(key);
            let _ = db.history(key, 16);
        }
        cursor = page.next_cursor;
    }
    for r in db.read_from(0).take(10_000) {
        if r.is_err() {
            break;
        }
    }
    for r in db.snapshot().take(10_000) {
        if r.is_err() {
            break;
        }
    }
    for id in 1..IDS_CHECKED {
        let _ = db.ids().get(id);
        let _ = db.ids().history(id, 16);
    }
    let _ = db.stats();
    if db.put(b"after-recovery", b"value").is_ok() {
        assert_eq!(
            db.get(b"after-recovery").ok(),
            Some(Some(b"value".to_vec()))
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check_decoders(data);
    // First byte: keysize (bits 0-1), whether the fresh database's tables
    // and meta come along (bit 2), whether a valid file header is put in
    // front (bit 3), whether the bytes describe records (bit 4, implies 3),
    // and whether that header says version 1 (bit 5) or 2.
    let Some((&mode, file)) = data.split_first() else {
        return;
    };
    let keysize_idx = (mode & 3) as usize;
    let dir = TempDir::new("record_decode");
    if mode & 4 != 0 {
        fresh(keysize_idx).write_to(dir.path());
    }
    let mut bytes = Vec::new();
    if mode & 0x18 != 0 {
        let header = FileHeader {
            version: if mode & 0x20 != 0 { 1 } else { DATA_VERSION },
            file_no: 0,
            first_seq: 1,
            prev_len: 0,
        };
        bytes.extend_from_slice(&header.encode());
    }
    if mode & 0x10 != 0 {
        records(file, &mut bytes);
    } else {
        bytes.extend_from_slice(file);
    }
    std::fs::write(dir.path().join("0.db"), &bytes).expect("cannot write 0.db");
    if let Ok(db) = Db::open(dir.path(), options(KEYSIZES[keysize_idx])) {
        read_all(&db);
        let _ = db.close();
    }
});
