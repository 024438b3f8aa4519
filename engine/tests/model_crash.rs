//! Model-based randomized test: put/delete/get/history/reopen/crash against a
//! `BTreeMap`. After a simulated crash (unsynced bytes dropped, the newest
//! file cut at a random offset past the synced end, garbage appended) the
//! database must hold exactly the model's state after some prefix of the
//! writes, and that prefix must include every write acknowledged as durable
//! and end between atomic batches, never inside one.

mod common;
use common::{Rng, TempDir};
use hypha_engine::{BatchOp, Db, Error, Fsync, Options, Seq};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

const KEYS: u64 = 48;

fn key(i: u64) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

/// The newest data file and its length: everything up to here is synced.
fn log_end(dir: &Path) -> (u16, u64) {
    let mut n = 0u16;
    while dir.join(format!("{}.db", n + 1)).exists() {
        n += 1;
    }
    (
        n,
        std::fs::metadata(dir.join(format!("{n}.db")))
            .map(|m| m.len())
            .unwrap_or(0),
    )
}

/// The checkpoint's log position: a checkpoint the engine took in the
/// background (an idle one) made the log durable up to there.
fn checkpointed(dir: &Path) -> (u16, u64) {
    let bytes = std::fs::read(dir.join("meta")).expect("meta");
    let meta = hypha_engine::tables::Meta::decode(&bytes).expect("meta decodes");
    (meta.ckpt.file, meta.ckpt.offset as u64)
}

/// Cuts unsynced bytes at random and appends garbage, as a power cut might.
fn crash_files(dir: &Path, synced: (u16, u64), rng: &mut Rng) {
    let synced = synced.max(checkpointed(dir));
    let (last, _) = log_end(dir);
    for n in synced.0..=last {
        let path = dir.join(format!("{n}.db"));
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let floor = if n == synced.0 { synced.1 } else { 0 };
        if len > floor && rng.below(2) == 0 {
            let cut = floor + rng.below(len - floor + 1);
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(cut))
                .expect("truncate");
        }
    }
    if rng.below(3) == 0 {
        let path = dir.join(format!("{}.db", log_end(dir).0));
        let junk_len = rng.below(100) as usize;
        let junk = if rng.below(2) == 0 {
            vec![0u8; junk_len]
        } else {
            rng.bytes(junk_len)
        };
        OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&junk))
            .expect("append");
    }
}

fn check_equal(db: &Db, model: &Model) -> Result<(), Error> {
    for i in 0..KEYS {
        let k = key(i);
        assert_eq!(db.get(&k)?, model.get(&k).cloned(), "key {i}");
    }
    assert_eq!(db.len(), model.len() as u64);
    Ok(())
}

#[test]
fn random_ops_with_crashes_match_the_model() -> Result<(), Error> {
    let mut rng = Rng::from_env("random_ops_with_crashes_match_the_model");
    let dir = TempDir::new("model");
    let path = dir.path();
    let mut durable: Model = BTreeMap::new(); // state at the last sync point
    let mut pending: Vec<(Seq, Vec<u8>, Option<Vec<u8>>)> = Vec::new(); // writes since
    let mut batches: Vec<(Seq, Seq)> = Vec::new(); // (first, last) seq of each batch
    for round in 0..40 {
        let fsync = if rng.below(2) == 0 {
            Fsync::Always
        } else {
            Fsync::Never
        };
        let opts = Options {
            fsync,
            file_size: 1 << 16,
            ..Options::default()
        };
        let db = Db::open(path, opts)?;
        // Before any new write: the database is the model after a prefix of
        // the pending writes, at least up to the last sync point.
        let seq = db.seq();
        let kept: Vec<_> = pending
            .iter()
            .filter(|(s, _, _)| *s <= seq)
            .cloned()
            .collect();
        assert!(
            pending.last().is_none_or(|(s, _, _)| seq <= *s),
            "round {round}: seq {seq} invented"
        );
        if let Some((first, last)) = batches.iter().find(|(f, l)| *f <= seq && seq < *l) {
            panic!("round {round}: recovery ended at seq {seq}, inside the batch {first}..={last}");
        }
        // Seqs past `seq` are written again from here on.
        batches.clear();
        for (_, k, v) in kept {
            match v {
                Some(v) => durable.insert(k, v),
                None => durable.remove(&k),
            };
        }
        pending.clear();
        check_equal(&db, &durable)?;
        let mut model = durable.clone();
        // Open ended with a checkpoint: everything on disk now is durable,
        // and no more (the end the last round saw may include zeros written
        // ahead, which recovery cut).
        let mut synced = log_end(path);
        for _ in 0..rng.below(300) {
            let k = key(rng.below(KEYS));
            match rng.below(10) {
                0..=4 => {
                    let len = rng.below(3000) as usize;
                    let v = rng.bytes(len);
                    let s = db.put(&k, &v)?;
                    model.insert(k.clone(), v.clone());
                    pending.push((s, k, Some(v)));
                }
                5 => {
                    if let Some(s) = db.delete(&k)? {
                        model.remove(&k);
                        pending.push((s, k, None));
                    } else {
                        assert!(!model.contains_key(&k));
                    }
                }
                8 if rng.below(2) == 0 => {
                    let n = 2 + rng.below(4);
                    let items: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
                        .map(|_| {
                            let k = key(rng.below(KEYS));
                            let len = rng.below(2000) as usize;
                            (k, rng.bytes(len))
                        })
                        .collect();
                    let ops: Vec<_> = items
                        .iter()
                        .map(|(k, v)| BatchOp::Put {
                            key: k,
                            value: v,
                            deadline_ms: 0,
                        })
                        .collect();
                    let last = db.batch(&ops)?.expect("puts write");
                    let first = last + 1 - n;
                    batches.push((first, last));
                    for (i, (k, v)) in items.into_iter().enumerate() {
                        model.insert(k.clone(), v.clone());
                        pending.push((first + i as u64, k, Some(v)));
                    }
                }
                6 => {
                    let h = db.history(&k, 3)?;
                    assert_eq!(
                        h.first().and_then(|v| v.value.clone()),
                        model.get(&k).cloned()
                    );
                }
                7 if rng.below(10) == 0 => {
                    db.sync()?;
                    durable = model.clone();
                    pending.clear();
                    synced = log_end(path);
                }
                _ => assert_eq!(db.get(&k)?, model.get(&k).cloned()),
            }
            if fsync == Fsync::Always || pending.is_empty() {
                // Every acknowledged write is durable: the model moves on.
                durable = model.clone();
                pending.clear();
                synced = log_end(path);
            }
        }
        if rng.below(3) == 0 {
            db.close()?;
            durable = model;
            pending.clear();
        } else {
            db.crash();
            crash_files(path, synced, &mut rng);
        }
    }
    Ok(())
}
