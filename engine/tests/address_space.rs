//! The engine's address space is bounded whatever the size of its records
//! (`Options::sealed_map_bytes`, `docs/design.md` "Address space"): a child
//! process whose address space is limited to `AS_LIMIT` (setrlimit
//! RLIMIT_AS) writes several times that much in records, reads every key
//! back, deletes half, compacts, reopens and reads again. An engine that
//! kept every data file mapped fails here with a mapping error once the
//! files no longer fit.

mod common;
use common::TempDir;
use hypha_engine::{Db, Error, Fsync, Options};
use std::process::Command;

const CHILD_ENV: &str = "HYPHA_ADDRESS_SPACE_CHILD_DIR";
/// The child's address space: a 32-bit router's process has 2-3 GiB.
const AS_LIMIT: u64 = 512 << 20;
const FILE_SIZE: u32 = 64 << 20;
const SEALED_MAP_BYTES: u64 = 128 << 20;
const VALUE_BYTES: usize = 64 << 10;
/// 1.25 GiB of values: two and a half times the address space.
const KEYS: u32 = 20 * 1024;

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

fn value(i: u32) -> Vec<u8> {
    let mut v = vec![(i % 251) as u8; VALUE_BYTES];
    v[..4].copy_from_slice(&i.to_le_bytes());
    v
}

fn opts() -> Options {
    Options {
        fsync: Fsync::Never,
        file_size: FILE_SIZE,
        sealed_map_bytes: SEALED_MAP_BYTES,
        auto_compact: false,
        ..Options::default()
    }
}

/// Keys in an order that jumps between data files (a stride coprime with
/// `KEYS`), so reads keep finding files unmapped.
fn scattered() -> impl Iterator<Item = u32> {
    (0..KEYS).map(|n| (n as u64 * 7919 % KEYS as u64) as u32)
}

fn read_all(db: &Db, deleted_odd: bool) -> Result<(), Error> {
    for i in scattered() {
        let got = db.get(&key(i))?;
        match deleted_odd && i % 2 == 1 {
            true => assert_eq!(got, None, "key {i} was deleted"),
            false => assert!(got.as_deref() == Some(&value(i)[..]), "key {i}"),
        }
    }
    let s = db.stats();
    assert!(
        s.sealed_mapped_bytes <= SEALED_MAP_BYTES,
        "{} bytes of sealed files mapped, over the budget",
        s.sealed_mapped_bytes
    );
    Ok(())
}

fn vm_peak() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status.lines().find(|l| l.starts_with("VmPeak"));
    peak.unwrap_or("VmPeak unknown")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The child: runs only when the parent sets `CHILD_ENV`.
#[test]
fn child_in_a_small_address_space() -> Result<(), Error> {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return Ok(());
    };
    let limit = libc::rlimit {
        rlim_cur: AS_LIMIT as libc::rlim_t,
        rlim_max: AS_LIMIT as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
    // The limit bites: twice of it cannot be had.
    assert!(Vec::<u8>::new().try_reserve(2 * AS_LIMIT as usize).is_err());

    let db = Db::open(&dir, opts())?;
    for i in 0..KEYS {
        db.put(&key(i), &value(i))?;
    }
    assert!(db.stats().data_bytes > 2 * AS_LIMIT, "not enough records");
    read_all(&db, false)?;
    assert!(db.stats().unmapped_reads > 0, "every read found room");
    for i in (1..KEYS).step_by(2) {
        db.delete(&key(i))?;
    }
    db.compact()?;
    read_all(&db, true)?;
    db.close()?;
    let db = Db::open(&dir, opts())?;
    read_all(&db, true)?;
    println!("address-space child done: {}", vm_peak());
    Ok(())
}

#[test]
#[cfg_attr(
    not(target_pointer_width = "64"),
    ignore = "qemu-user ignores RLIMIT_AS; on a 32-bit device the address space is the limit"
)]
fn records_larger_than_the_address_space_write_read_compact_and_reopen() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = TempDir::new("address-space");
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_in_a_small_address_space", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        // One malloc arena: glibc reserves 64 MiB of address space per arena.
        .env("MALLOC_ARENA_MAX", "1")
        .output()
        .expect("start the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("address-space child done"),
        "child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let line = stdout.lines().find(|l| l.contains("child done"));
    println!("{}", line.unwrap_or_default());
}
