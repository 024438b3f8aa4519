//! A child process writes with `Fsync::Always` and reports each acknowledged
//! write; the parent kills it with SIGKILL at a random moment, reopens, and
//! checks every acknowledged write is there with its exact value and nothing
//! else was invented. Repeated 20 times.

mod common;
use common::{Rng, TempDir};
use hypha_engine::{Db, Error, Fsync, Options};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "HYPHA_CRASH_CHILD_DIR";
const TRIALS: u64 = 20;

fn value(i: u64) -> Vec<u8> {
    let len = (i * 37 % 700) as usize;
    (0..len).map(|j| (i as usize + j) as u8).collect()
}

fn opts() -> Options {
    Options {
        fsync: Fsync::Always,
        file_size: 1 << 18,
        ..Options::default()
    }
}

/// The child: runs only when the parent sets `CHILD_ENV`.
#[test]
fn child_writer() -> Result<(), Error> {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return Ok(());
    };
    let db = Db::open(&dir, opts())?;
    let start = db.len();
    let mut out = std::io::stdout().lock();
    for i in start.. {
        db.put(format!("k{i}").as_bytes(), &value(i))?;
        writeln!(out, "acked {i}")
            .and_then(|_| out.flush())
            .expect("parent gone");
    }
    Ok(())
}

#[test]
fn sigkill_never_loses_an_acknowledged_write() -> Result<(), Error> {
    let mut rng = Rng::from_env("sigkill_never_loses_an_acknowledged_write");
    let dir = TempDir::new("sigkill");
    let exe = std::env::current_exe().expect("test binary path");
    let mut acked_total = 0u64;
    for trial in 0..TRIALS {
        let kill_after = 1 + rng.below(400);
        let mut child = Command::new(&exe)
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start child");
        let stdout = child.stdout.take().expect("piped");
        let mut last_acked = None;
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read child");
            if let Some(i) = line.strip_prefix("acked ") {
                last_acked = Some(i.parse::<u64>().expect("number"));
                seen += 1;
                if seen == kill_after {
                    break;
                }
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let db = Db::open(dir.path(), opts())?;
        let acked = last_acked.expect("child acknowledged writes") + 1;
        let len = db.len();
        assert!(
            len >= acked,
            "trial {trial}: {len} keys, {acked} acknowledged"
        );
        for i in 0..len {
            assert_eq!(
                db.get(format!("k{i}").as_bytes())?,
                Some(value(i)),
                "trial {trial}, key {i}"
            );
        }
        assert_eq!(
            db.get(format!("k{len}").as_bytes())?,
            None,
            "trial {trial}: invented k{len}"
        );
        acked_total = acked;
        db.close()?;
    }
    assert!(acked_total > 0);
    Ok(())
}
