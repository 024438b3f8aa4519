#![no_main]
//! Arbitrary bytes as lookup entries and as the `lookup.tbl` or `keys.idx`
//! of an otherwise valid database.
//!
//! `location::decode_entry` returns an error or a location that encodes back
//! to the same bytes. The database holds `KEYS` keys written once each, with
//! values derived from the keys; after the table is overwritten (whole, body
//! behind the real header, or patched in place) `open` succeeds or fails
//! cleanly and every get, id get and history returns the key's own value or
//! an error, never another value. Tables are not checksummed, so a key whose
//! entry was wiped may read as absent — unless `open` rebuilt the tables from
//! the log, in which case every key must read back exactly.

use hypha_engine::limits::{FILE_HEADER_BYTES, FILE_SIZE_MIN, KEYSIZES, TABLE_HEADER_BYTES};
use hypha_engine::location::{decode_entry, encode_entry};
use hypha_engine::{Db, Fsync, Location, Options};
use hypha_fuzz::{Files, TempDir};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Keys in the database, ids 1..=KEYS in order.
const KEYS: u32 = 24;

fn key(i: u32) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

fn value(i: u32) -> Vec<u8> {
    format!("value-of-{i};")
        .repeat(1 + i as usize % 5)
        .into_bytes()
}

fn options(keysize: u8) -> Options {
    Options {
        keysize,
        file_size: FILE_SIZE_MIN,
        fsync: Fsync::Never,
        ..Options::default()
    }
}

fn template(keysize_idx: usize) -> &'static Files {
    static TEMPLATES: OnceLock<Vec<Files>> = OnceLock::new();
    let all = TEMPLATES.get_or_init(|| {
        KEYSIZES
            .iter()
            .map(|&ks| {
                Files::build(&options(ks), |db| {
                    for i in 0..KEYS {
                        db.put(&key(i), &value(i))
                            .expect("cannot fill the template");
                    }
                })
            })
            .collect()
    });
    &all[keysize_idx]
}

fn check_entries(data: &[u8]) {
    let _ = decode_entry(data);
    let loc = Location {
        file: 0,
        offset: FILE_HEADER_BYTES as u32,
    };
    let _ = encode_entry(loc, &mut vec![0; data.len()]);
    for ks in KEYSIZES {
        let Some(entry) = data.get(..ks as usize) else {
            continue;
        };
        if let Ok(loc) = decode_entry(entry) {
            let mut again = [0u8; 6];
            let again = &mut again[..ks as usize];
            assert_eq!(encode_entry(loc, again), Ok(()), "{loc:?} does not encode");
            assert_eq!(again, entry, "entry re-encodes differently");
        }
    }
}

/// The table's new contents: the fuzz bytes as the whole file, behind the
/// real header, or as (offset u24, byte) patches of the real file.
fn corrupt(real: &[u8], how: u8, bytes: &[u8]) -> Vec<u8> {
    match how {
        0 => bytes.to_vec(),
        1 => [&real[..TABLE_HEADER_BYTES], bytes].concat(),
        _ => {
            let mut file = real.to_vec();
            for p in bytes.chunks_exact(4) {
                let at = u32::from_le_bytes([p[0], p[1], p[2], 0]) as usize % file.len();
                file[at] = p[3];
            }
            file
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_entries(data);
    // First byte: which table (bit 0), how it is corrupted (bits 1-2),
    // keysize (bits 3-4).
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let table = if mode & 1 == 0 {
        "lookup.tbl"
    } else {
        "keys.idx"
    };
    let keysize_idx = ((mode >> 3) & 3) as usize;
    let files = template(keysize_idx);
    let real = files.get(table).expect("the template has both tables");
    let dir = TempDir::new("lookup_decode");
    files.write_to(dir.path());
    let file = corrupt(real, (mode >> 1) & 3, bytes);
    std::fs::write(dir.path().join(table), file).expect("cannot write the table");
    let Ok(db) = Db::open(dir.path(), options(KEYSIZES[keysize_idx])) else {
        return;
    };
    let rebuilt = db.recovery().rebuilt;
    for i in 0..KEYS {
        match db.get(&key(i)) {
            Ok(Some(v)) => assert_eq!(v, value(i), "get of key {i} returned another value"),
            Ok(None) => assert!(!rebuilt, "key {i} lost although the tables were rebuilt"),
            Err(_) => {}
        }
        if let Ok(Some(v)) = db.ids().get(i + 1) {
            assert_eq!(v, value(i), "id {} returned another id's value", i + 1);
        }
        for history in [db.history(&key(i), 4), db.ids().history(i + 1, 4)] {
            for version in history.into_iter().flatten() {
                assert_eq!(version.value, Some(value(i)), "history of key {i}");
            }
        }
    }
    if db.put(b"new-key", b"new-value").is_ok() {
        let got = db.get(b"new-key").ok();
        assert_eq!(got, Some(Some(b"new-value".to_vec())), "write after open");
    }
    let _ = db.close();
});
