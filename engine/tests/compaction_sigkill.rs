//! A child process overwrites 64 keys with `Fsync::Always` while another of
//! its threads compacts in a loop, and reports each acknowledged write; the
//! parent kills it with SIGKILL at a random moment — often inside a
//! compaction — reopens, and checks that every key holds its last
//! acknowledged value or a later one, never an older or garbled value.
//! Repeated 20 times on the same directory.

mod common;
use common::{Rng, TempDir};
use hypha_engine::{Db, Error, Fsync, Options};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

const CHILD_ENV: &str = "HYPHA_COMPACT_CRASH_CHILD_DIR";
const TRIALS: u64 = 20;
const KEYS: u64 = 64;

fn value(i: u64) -> Vec<u8> {
    let len = 50 + (i * 37 % 400) as usize;
    let mut v = i.to_le_bytes().to_vec();
    v.extend((0..len).map(|j| (i as usize + j) as u8));
    v
}

/// The write number a value encodes.
fn write_of(v: &[u8]) -> u64 {
    let n = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
    assert_eq!(v, value(n).as_slice(), "value of write {n} garbled");
    n
}

fn opts() -> Options {
    Options {
        fsync: Fsync::Always,
        file_size: 1 << 15,
        auto_compact: false,
        ..Options::default()
    }
}

/// The child: runs only when the parent sets `CHILD_ENV`.
#[test]
fn child_writer_and_compactor() -> Result<(), Error> {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return Ok(());
    };
    let db = Arc::new(Db::open(&dir, opts())?);
    let start: u64 = std::env::var("HYPHA_COMPACT_CRASH_START")
        .expect("start")
        .parse()
        .expect("number");
    let compactor = {
        let db = db.clone();
        std::thread::spawn(move || loop {
            db.compact().expect("compaction");
        })
    };
    let mut out = std::io::stdout().lock();
    // The test harness has printed "test child_writer_and_compactor ... "
    // without a newline: end that line, or the first ack would be glued to
    // it and missed.
    writeln!(out).expect("parent gone");
    for i in start.. {
        db.put(format!("k{}", i % KEYS).as_bytes(), &value(i))?;
        writeln!(out, "acked {i}")
            .and_then(|_| out.flush())
            .expect("parent gone");
    }
    drop(compactor);
    Ok(())
}

#[test]
fn sigkill_during_compaction_never_loses_an_acknowledged_write() -> Result<(), Error> {
    let mut rng = Rng::from_env("sigkill_during_compaction_never_loses_an_acknowledged_write");
    let dir = TempDir::new("compact-sigkill");
    let exe = std::env::current_exe().expect("test binary path");
    // Per key, the last acknowledged write number.
    let mut acked: Vec<Option<u64>> = vec![None; KEYS as usize];
    let mut next = 0u64;
    let mut compactions_seen = 0;
    for trial in 0..TRIALS {
        let kill_after = 50 + rng.below(2000);
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_writer_and_compactor",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("HYPHA_COMPACT_CRASH_START", next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start child");
        let stdout = child.stdout.take().expect("piped");
        let mut seen = 0;
        let mut last = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read child");
            if let Some((_, i)) = line.split_once("acked ") {
                let i = i.parse::<u64>().expect("number");
                acked[(i % KEYS) as usize] = Some(i);
                last = Some(i);
                seen += 1;
                if seen == kill_after {
                    break;
                }
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let last = last.expect("child acknowledged writes");
        let db = Db::open(dir.path(), opts())?;
        if db.stats().files < 8 {
            compactions_seen += 1;
        }
        for k in 0..KEYS {
            let got = db.get(format!("k{k}").as_bytes())?;
            match (acked[k as usize], got) {
                (None, None) => {}
                (None, Some(v)) => {
                    // Written after the last acknowledgement the parent read
                    // (the child runs ahead of the pipe).
                    let w = write_of(&v);
                    assert!(w % KEYS == k && w > last, "trial {trial}: k{k} = write {w}");
                }
                (Some(a), Some(v)) => {
                    let w = write_of(&v);
                    assert_eq!(w % KEYS, k, "trial {trial}: k{k} holds another key's value");
                    // The acknowledged write or a later one, never older.
                    assert!(w >= a, "trial {trial}: k{k} = write {w}, acked {a}");
                }
                (Some(a), None) => panic!("trial {trial}: k{k} lost (acked write {a})"),
            }
            // What is there now is durable: the next trial starts from it.
            if let Some(v) = db.get(format!("k{k}").as_bytes())? {
                acked[k as usize] = Some(write_of(&v));
            }
        }
        next = last + 1_000_000;
        db.close()?;
    }
    // The loop compacts continuously, so the log stays short.
    assert!(compactions_seen > 0);
    Ok(())
}
