//! Random bit flips across data, lookup, index and meta files: open either
//! succeeds or fails with an error naming the file, and a read returns the
//! right value, nothing, or an error — never a corrupt value.

mod common;
use common::{Rng, TempDir};
use hypha_engine::{Db, Fsync, Options};
use std::path::Path;

const KEYS: u32 = 300;
const TRIALS: u32 = 200;

fn value(i: u32) -> Vec<u8> {
    format!("value-{i}-")
        .repeat(1 + i as usize % 7)
        .into_bytes()
}

fn opts() -> Options {
    Options {
        fsync: Fsync::Never,
        file_size: 1 << 16,
        ..Options::default()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).expect("ls") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_file() && e.file_name() != "LOCK" {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

#[test]
fn flipped_bits_never_become_wrong_values() {
    let mut rng = Rng::from_env("flipped_bits_never_become_wrong_values");
    let base = TempDir::new("flips-base");
    {
        let db = Db::open(base.path(), opts()).expect("open");
        for i in 0..KEYS {
            db.put(format!("k{i}").as_bytes(), &value(i)).expect("put");
        }
        for i in (0..KEYS).step_by(5) {
            db.put(format!("k{i}").as_bytes(), &value(i + 1000))
                .expect("overwrite");
        }
        db.close().expect("close");
    }
    let files: Vec<String> = std::fs::read_dir(base.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "LOCK")
        .collect();
    let (mut opened, mut refused) = (0, 0);
    for trial in 0..TRIALS {
        let dir = TempDir::new("flips");
        copy_dir(base.path(), dir.path());
        let name = &files[rng.below(files.len() as u64) as usize];
        let path = dir.path().join(name);
        let mut bytes = std::fs::read(&path).expect("read");
        for _ in 0..1 + rng.below(4) {
            let bit = rng.below(bytes.len() as u64 * 8) as usize;
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
        std::fs::write(&path, &bytes).expect("write");
        let db = match Db::open(dir.path(), opts()) {
            Ok(db) => db,
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(dir.path().to_str().expect("utf8")),
                    "trial {trial} ({name}): {msg}"
                );
                refused += 1;
                continue;
            }
        };
        opened += 1;
        for i in 0..KEYS {
            let expected = if i % 5 == 0 {
                value(i + 1000)
            } else {
                value(i)
            };
            // An error or a missing key is allowed; a wrong value is not.
            if let Ok(Some(v)) = db.get(format!("k{i}").as_bytes()) {
                assert_eq!(v, expected, "trial {trial} ({name}): wrong value for k{i}");
            }
        }
    }
    eprintln!("{opened} opened, {refused} refused with an error naming the file");
    assert!(opened > 0);
}
