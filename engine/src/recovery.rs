//! Opening a database: create it, or load the checkpoint and replay the log
//! written since, truncating a torn tail.
//!
//! Recovery reads only what was written after the last checkpoint (at most
//! about `CHECKPOINT_BYTES_MAX`), so its time does not grow with the
//! database. A record that fails its checks ends the log there: its bytes and
//! everything after are moved to `torn/` (unless they are all zeros, as after
//! a power cut) and the file is truncated, so no byte is destroyed and no
//! corrupt value is ever served.

use crate::db::Options;
use crate::error::{Error, IoContext, Result};
use crate::files::{data_path, sync_dir, DataFile, Log};
use crate::hash::key_hash;
use crate::keyindex::KeyIndex;
use crate::limits::{FILE_HEADER_BYTES, INDEX_SLOTS_MIN, META_BYTES};
use crate::location::Location;
use crate::lookup::Lookup;
use crate::record;
use crate::state::{write_meta, Core};
use crate::tables::Meta;
use std::fs;
use std::io::Read;
use std::path::Path;

/// What `open` found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Records replayed from the checkpoint on.
    pub replayed: u64,
    /// Bytes cut off the end of the log (torn or corrupt tail).
    pub truncated_bytes: u64,
    /// Where the tail was cut, if it was.
    pub truncated_at: Option<(u16, u32)>,
    /// The tables were rebuilt from the whole log.
    pub rebuilt: bool,
}

pub fn open_core(dir: &Path, opts: &Options) -> Result<(Core, Recovery)> {
    let io = opts.io.clone();
    let meta_path = dir.join("meta");
    let numbers = data_file_numbers(dir)?;
    let stored = match fs::read(&meta_path) {
        Ok(bytes) => Some(Meta::decode(&bytes).map_err(|cause| Error::Corrupted {
            file: meta_path.clone(),
            offset: 0,
            cause,
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Error::Io {
                context: format!("read {}", meta_path.display()),
                source: e,
            })
        }
    };
    let mut report = Recovery::default();
    let mut meta = match stored {
        Some(m) => {
            check_options(&m, opts, dir)?;
            m
        }
        None => {
            if !numbers.is_empty() {
                log::warn!(
                    "{} has data files but no meta: rebuilding the tables from the whole log \
                     under a new history id",
                    dir.display()
                );
                report.rebuilt = true;
            }
            fresh_meta(opts)
        }
    };
    if numbers.is_empty() {
        let f = DataFile::create(dir, 0, 1, meta.file_size, &*io)?;
        let log = Log {
            dir: dir.to_path_buf(),
            file_size: meta.file_size,
            files: vec![f],
            buf: Vec::new(),
            io,
        };
        let lookup = Lookup::create(dir, meta.keysize, &*log.io)?;
        let keys = KeyIndex::create(dir, meta.hash_seed, INDEX_SLOTS_MIN, &*log.io)?;
        meta.ckpt = log.end();
        meta.index_slots = keys.slots;
        write_meta(dir, &meta, &*log.io)?;
        let core = core_from(log, lookup, keys, meta);
        return Ok((core, report));
    }
    let mut files = Vec::with_capacity(numbers.len());
    for &n in &numbers {
        files.push(DataFile::open(data_path(dir, n), meta.file_size)?);
    }
    let mut log = Log {
        dir: dir.to_path_buf(),
        file_size: meta.file_size,
        files,
        buf: Vec::new(),
        io,
    };
    let tables = if report.rebuilt {
        None
    } else {
        match (
            Lookup::open(dir, meta.keysize),
            KeyIndex::open(dir, meta.hash_seed),
        ) {
            (Ok(l), Ok(k)) => Some((l, k)),
            (l, k) => {
                let why = l
                    .err()
                    .or(k.err())
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                log::warn!(
                    "rebuilding lookup table and key index of {} from the log: {why}",
                    dir.display()
                );
                None
            }
        }
    };
    let (lookup, keys) = match tables {
        Some(t) => t,
        None => {
            report.rebuilt = true;
            meta = Meta {
                history_id: meta.history_id,
                hash_seed: meta.hash_seed,
                ..fresh_meta(opts)
            };
            (
                Lookup::create(dir, meta.keysize, &*log.io)?,
                KeyIndex::create(dir, meta.hash_seed, INDEX_SLOTS_MIN, &*log.io)?,
            )
        }
    };
    if report.rebuilt {
        meta.ckpt = Location {
            file: 0,
            offset: FILE_HEADER_BYTES as u32,
        };
    }
    check_headers(&mut log, &meta, &mut report)?;
    let mut core = core_from(log, lookup, keys, meta);
    replay(&mut core, &mut report)?;
    core.checkpoint()?;
    if report.replayed > 0 || report.truncated_bytes > 0 {
        log::info!(
            "recovered {}: replayed {} records since the checkpoint, cut {} bytes",
            dir.display(),
            report.replayed,
            report.truncated_bytes
        );
    }
    Ok((core, report))
}

fn core_from(log: Log, lookup: Lookup, keys: KeyIndex, meta: Meta) -> Core {
    Core {
        log,
        lookup,
        keys,
        seq: meta.seq,
        next_id: meta.next_id,
        live: meta.live,
        digest: meta.digest,
        ckpt_bytes: 0,
        meta,
    }
}

fn fresh_meta(opts: &Options) -> Meta {
    Meta {
        keysize: opts.keysize,
        incremental: opts.incremental,
        file_size: opts.file_size,
        history_id: random_u64() | 1,
        hash_seed: random_u64(),
        ckpt: Location::NONE,
        seq: 0,
        next_id: 1,
        live: 0,
        digest: 0,
        index_used: 0,
        index_slots: INDEX_SLOTS_MIN,
    }
}

fn check_options(m: &Meta, opts: &Options, dir: &Path) -> Result<()> {
    if m.keysize != opts.keysize || m.incremental != opts.incremental {
        return Err(Error::BadOptions {
            detail: format!(
                "{} was created with keysize {} and incremental = {}; open it with the same \
                 (asked: keysize {}, incremental = {})",
                dir.display(),
                m.keysize,
                m.incremental,
                opts.keysize,
                opts.incremental
            ),
        });
    }
    if m.file_size != opts.file_size {
        log::info!(
            "{}: using its file_size {} (asked {})",
            dir.display(),
            m.file_size,
            opts.file_size
        );
    }
    Ok(())
}

/// Numbers of the data files in `dir`, which must run 0, 1, … without gaps.
fn data_file_numbers(dir: &Path) -> Result<Vec<u16>> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir).ctx(|| format!("list {}", dir.display()))? {
        let entry = entry.ctx(|| format!("list {}", dir.display()))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".db")) else {
            continue;
        };
        if let Ok(n) = stem.parse::<u16>() {
            if n.to_string() == stem {
                numbers.push(n);
            }
        }
    }
    numbers.sort_unstable();
    for (i, &n) in numbers.iter().enumerate() {
        if n as usize != i {
            return Err(Error::BadOptions {
                detail: format!(
                    "{} lacks data file {i}.db (found {n}.db): restore it",
                    dir.display()
                ),
            });
        }
    }
    Ok(numbers)
}

/// Checks the data-file headers; a torn header on the newest file (a crash
/// while creating it) is cut like a torn tail.
fn check_headers(log: &mut Log, meta: &Meta, report: &mut Recovery) -> Result<()> {
    let last = log.files.len() - 1;
    for (i, f) in log.files.iter().enumerate() {
        if f.header.file_no == i as u16 {
            continue;
        }
        let torn = i == last && i > 0 && i > meta.ckpt.file as usize;
        if !torn {
            return Err(Error::Corrupted {
                file: f.path.clone(),
                offset: 0,
                cause: crate::CodecError::BadField {
                    what: "data file header (number or length)",
                },
            });
        }
    }
    if log.files[last].header.file_no != last as u16 {
        cut_tail(
            log,
            Location {
                file: last as u16,
                offset: 0,
            },
            report,
        )?;
        let f = log.files.pop().expect("checked above");
        fs::remove_file(&f.path).ctx(|| format!("remove {}", f.path.display()))?;
        sync_dir(&log.dir)?;
    }
    Ok(())
}

/// Replays the records from the checkpoint to the end of the log.
fn replay(core: &mut Core, report: &mut Recovery) -> Result<()> {
    let mut pos = core.meta.ckpt;
    if pos.is_none() || pos.offset < FILE_HEADER_BYTES as u32 {
        pos = Location {
            file: 0,
            offset: FILE_HEADER_BYTES as u32,
        };
    }
    while let Some(file) = core.log.files.get(pos.file as usize) {
        let len = file.len;
        if pos.offset > len {
            return Err(Error::Corrupted {
                file: file.path.clone(),
                offset: len as u64,
                cause: crate::CodecError::BadField {
                    what: "file shorter than the checkpoint says",
                },
            });
        }
        while pos.offset < len {
            let decoded =
                record::decode(&core.log.files[pos.file as usize].bytes()[pos.offset as usize..]);
            let (header, key) = match decoded {
                Ok(Some(d)) => (d.header, d.key.to_vec()),
                Ok(None) | Err(_) => {
                    if let Err(e) = &decoded {
                        log::warn!(
                            "bad record in file {} at offset {}: {e}",
                            pos.file,
                            pos.offset
                        );
                    }
                    cut_tail(&mut core.log, pos, report)?;
                    return Ok(());
                }
            };
            replay_one(core, &header, &key, pos)?;
            report.replayed += 1;
            pos.offset += header.record_len() as u32;
        }
        if pos.file as usize + 1 >= core.log.files.len() {
            break;
        }
        pos = Location {
            file: pos.file + 1,
            offset: FILE_HEADER_BYTES as u32,
        };
    }
    Ok(())
}

fn replay_one(core: &mut Core, h: &record::Header, key: &[u8], loc: Location) -> Result<()> {
    let old = if h.prev.is_none() {
        None
    } else {
        // The previous version must be an earlier record of the same id; a
        // record whose CRC holds but whose chain does not cannot be trusted,
        // and the counters would go wrong.
        let bad = || {
            core.log.corrupted(
                loc,
                crate::CodecError::BadField {
                    what: "previous version",
                },
            )
        };
        let (old, _) = core.log.header_and_key(h.prev).ok_or_else(bad)?;
        if old.id != h.id || h.prev >= loc {
            return Err(bad());
        }
        Some(old)
    };
    core.lookup.set(h.id, loc);
    if !key.is_empty() {
        let hash = key_hash(key, core.keys.seed);
        if core.keys.find(hash, |id| id == h.id).is_none() {
            let io = core.log.io.clone();
            core.keys.insert(hash, h.id, &*io)?;
        }
    }
    core.account(old.as_ref(), h);
    core.seq = core.seq.max(h.seq);
    core.next_id = core.next_id.max(h.id.saturating_add(1));
    Ok(())
}

/// Ends the log at `at`: moves the bytes from there on (and any later files)
/// to `torn/` unless they are all zeros, and truncates.
fn cut_tail(log: &mut Log, at: Location, report: &mut Recovery) -> Result<()> {
    let dir = log.dir.clone();
    let torn_dir = dir.join("torn");
    let mut cut = 0u64;
    for n in (at.file as usize..log.files.len()).rev() {
        let f = &log.files[n];
        let from = if n == at.file as usize {
            at.offset as usize
        } else {
            0
        };
        let tail = &f.bytes()[from..];
        cut += tail.len() as u64;
        if tail.iter().any(|&b| b != 0) {
            fs::create_dir_all(&torn_dir).ctx(|| format!("create {}", torn_dir.display()))?;
            let keep = torn_dir.join(format!("{n}.db.from-{from}"));
            fs::write(&keep, tail).ctx(|| format!("write {}", keep.display()))?;
            log::warn!(
                "cut {} bytes off {} at offset {from} (torn or corrupt tail); they are kept in {}",
                tail.len(),
                f.path.display(),
                keep.display()
            );
        }
    }
    while log.files.len() > at.file as usize + 1 {
        let f = log.files.pop().expect("more files than at.file");
        fs::remove_file(&f.path).ctx(|| format!("remove {}", f.path.display()))?;
    }
    let f = &log.files[at.file as usize];
    if at.offset < f.len {
        f.file
            .set_len(at.offset as u64)
            .ctx(|| format!("truncate {}", f.path.display()))?;
        f.file
            .sync_all()
            .ctx(|| format!("fsync {}", f.path.display()))?;
    }
    sync_dir(&dir)?;
    let reopened = DataFile::open(f.path.clone(), log.file_size)?;
    log.files[at.file as usize] = reopened;
    report.truncated_bytes += cut;
    report.truncated_at = Some((at.file, at.offset));
    Ok(())
}

/// 64 random bits from the OS, or from time and pid if it has none.
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    crate::hash::hash64(&t.to_le_bytes(), std::process::id() as u64)
}

const _: () = assert!(META_BYTES < 4096);
