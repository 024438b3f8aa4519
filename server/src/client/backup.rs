//! `hypha backup FILE` and `hypha restore FILE` through an edge.
//!
//! The file's format is `hypha_server::backup_file`. It is written to
//! `FILE.partial` and renamed when whole, so `FILE` is never half a copy.

use super::progress::Progress;
use super::transport::{Answer, Edge};
use super::{encode, json, out, refused, unreachable_edge, usage, Failed};
use super::{EXIT_CONDITION, EXIT_UNAVAILABLE};
use hypha_server::backup_file::{check, header, pair, pair_hash, trailer, Checked};
use serde_json::{json, Value};
use std::io::Write;

/// How often a backup starts again after a node compacted under it.
pub const BACKUP_ATTEMPTS_MAX: u32 = 5;
/// Key and value bytes (base64) in one `/txn` of a restore; a larger value
/// goes alone as a raw `PUT`.
pub const RESTORE_BATCH_BYTES: usize = 4 << 20;
/// Items in one `/txn` of a restore (`TXN_ITEMS_MAX`).
const RESTORE_BATCH_ITEMS: usize = hypha_net::TXN_ITEMS_MAX;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `hypha backup FILE`.
pub fn backup(edge: &Edge, file: &str) -> Result<(), Failed> {
    if std::path::Path::new(file).exists() {
        return Err(usage(format!(
            "{file} exists: remove it or give another name"
        )));
    }
    let partial = format!("{file}.partial");
    let result = attempts(edge, file, &partial);
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn attempts(edge: &Edge, file: &str, partial: &str) -> Result<(), Failed> {
    for attempt in 1..=BACKUP_ATTEMPTS_MAX {
        match copy(edge, partial)? {
            Some((records, upto)) => {
                std::fs::rename(partial, file)
                    .map_err(|e| Failed(EXIT_UNAVAILABLE, format!("renaming {partial}: {e}")))?;
                eprintln!("hypha backup: {records} keys as of seq {upto} in {file}");
                return Ok(());
            }
            None => eprintln!(
                "hypha backup: the node compacted during the copy (attempt {attempt} of \
                 {BACKUP_ATTEMPTS_MAX}); starting again"
            ),
        }
    }
    Err(Failed(
        EXIT_UNAVAILABLE,
        format!("the node compacted during each of {BACKUP_ATTEMPTS_MAX} copies; retry when it is quieter"),
    ))
}

/// One copy into `path`: `Some((records, upto))`, or `None` when the node
/// compacted under it.
fn copy(edge: &Edge, path: &str) -> Result<Option<(u64, u64)>, Failed> {
    let failed = |e: std::io::Error| Failed(EXIT_UNAVAILABLE, format!("writing {path}: {e}"));
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).map_err(failed)?);
    let (mut digest, mut records, mut after) = (0u64, 0u64, 0u64);
    let mut first: Option<(String, u64, String)> = None;
    let mut progress = Progress::new("backup", total_keys(edge));
    loop {
        let mut target = format!("/admin/backup?after={after}");
        if let Some((node, upto, generation)) = &first {
            target.push_str(&format!(
                "&node={}&upto={upto}&generation={generation}",
                encode(node.as_bytes())
            ));
        }
        let answer = edge
            .call("GET", &target, &[], b"")
            .map_err(unreachable_edge)?;
        match answer.status {
            200 => {}
            410 => return Ok(None),
            _ => return Err(refused(&answer)),
        }
        let page = json(&answer, "backup")?;
        if first.is_none() {
            let node = page["node"].as_str().unwrap_or_default().to_string();
            let upto = page["upto"].as_u64().unwrap_or(0);
            let generation = page["generation"].as_str().unwrap_or_default().to_string();
            writeln!(w, "{}", header(upto, &node, now_ms())).map_err(failed)?;
            first = Some((node, upto, generation));
        }
        let page_records = page["records"].as_array().cloned().unwrap_or_default();
        for record in &page_records {
            digest =
                digest.wrapping_add(pair_hash(record).map_err(|e| Failed(EXIT_UNAVAILABLE, e))?);
            after = record["seq"].as_u64().unwrap_or(after);
            writeln!(w, "{record}").map_err(failed)?;
        }
        records += page_records.len() as u64;
        progress.add(page_records.len() as u64, answer.body.len() as u64);
        if page["done"] == json!(true) {
            break;
        }
    }
    progress.done();
    writeln!(w, "{}", trailer(records, digest)).map_err(failed)?;
    let file = w.into_inner().map_err(|e| failed(e.into_error()))?;
    file.sync_all().map_err(failed)?;
    Ok(Some((records, first.map_or(0, |f| f.1))))
}

/// Keys the master holds now, for progress (0 when unknown).
fn total_keys(edge: &Edge) -> u64 {
    edge.call("GET", "/digest", &[], b"")
        .ok()
        .filter(|a| a.status == 200)
        .and_then(|a| serde_json::from_slice::<Value>(&a.body).ok())
        .and_then(|d| d["master"]["keys"].as_u64())
        .unwrap_or(0)
}

fn read_file(file: &str) -> Result<Checked, Failed> {
    let f = std::fs::File::open(file).map_err(|e| usage(format!("{file}: {e}")))?;
    check(std::io::BufReader::new(f))
        .map_err(|why| usage(format!("{file} is not a whole hypha backup: {why}")))
}

/// The master's digest, as `/digest` says it.
fn master_digest(edge: &Edge) -> Result<u64, Failed> {
    let answer = edge
        .call("GET", "/digest", &[], b"")
        .map_err(unreachable_edge)?;
    if answer.status != 200 {
        return Err(refused(&answer));
    }
    let text = json(&answer, "digest")?["master"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    u64::from_str_radix(&text, 16).map_err(|_| {
        Failed(
            EXIT_UNAVAILABLE,
            format!("the master's digest {text:?} is not hex"),
        )
    })
}

/// `hypha restore FILE`: into a cluster without keys, then the digest.
pub fn restore(edge: &Edge, file: &str) -> Result<(), Failed> {
    let checked = read_file(file)?;
    let listing = edge
        .call("GET", "/kv?limit=1", &[], b"")
        .map_err(unreachable_edge)?;
    if listing.status != 200 {
        return Err(refused(&listing));
    }
    if json(&listing, "restore")?["keys"]
        .as_array()
        .is_some_and(|k| !k.is_empty())
    {
        return Err(Failed(
            EXIT_CONDITION,
            "restore loads into a cluster without keys; this one holds some: use an empty one"
                .into(),
        ));
    }
    // System keys (a failover group's) are in the digest already.
    let mut expected = master_digest(edge)?;
    let (now, mut expired) = (now_ms(), 0u64);
    let mut batch: Vec<Value> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut progress = Progress::new("restore", checked.records.len() as u64);
    for record in &checked.records {
        let (key, value) = (
            record["key"].as_str().unwrap_or_default(),
            record["value"].as_str().unwrap_or_default(),
        );
        let mut put = json!({"put": key, "value": value});
        if let Some(deadline) = record["deadline_ms"].as_u64() {
            if deadline <= now {
                expired += 1;
                continue;
            }
            put["ttl"] = json!(format!("{}ms", deadline - now));
        }
        expected =
            expected.wrapping_add(pair_hash(record).map_err(|e| Failed(EXIT_UNAVAILABLE, e))?);
        if key.len() + value.len() > RESTORE_BATCH_BYTES {
            put_alone(edge, &put)?;
        } else {
            if batch.len() >= RESTORE_BATCH_ITEMS
                || batch_bytes + key.len() + value.len() > RESTORE_BATCH_BYTES
            {
                send(edge, &mut batch, &mut batch_bytes)?;
            }
            batch_bytes += key.len() + value.len();
            batch.push(put);
        }
        progress.add(1, (key.len() + value.len()) as u64);
    }
    send(edge, &mut batch, &mut batch_bytes)?;
    progress.done();
    let digest = master_digest(edge)?;
    if digest != expected {
        return Err(Failed(EXIT_UNAVAILABLE, format!(
            "restored, but the master's digest is {digest:016x}, not {expected:016x}: something wrote meanwhile, or a write was lost; compare with hypha ls"
        )));
    }
    let restored = checked.records.len() as u64 - expired;
    eprintln!("hypha restore: {restored} keys as of seq {} ({expired} already expired, left out); digest {digest:016x} matches", checked.upto);
    out(b"")
}

fn send(edge: &Edge, batch: &mut Vec<Value>, bytes: &mut usize) -> Result<(), Failed> {
    if batch.is_empty() {
        return Ok(());
    }
    let body = json!({"encoding": "base64", "then": std::mem::take(batch)}).to_string();
    *bytes = 0;
    let answer = edge
        .call(
            "POST",
            "/txn",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .map_err(unreachable_edge)?;
    let ok = answer.status == 200 && json(&answer, "restore")?["ok"] == json!(true);
    if !ok {
        return Err(refused(&answer));
    }
    Ok(())
}

/// A value too large to share a `/txn`: a raw PUT.
fn put_alone(edge: &Edge, put: &Value) -> Result<(), Failed> {
    let record = json!({"key": put["put"], "value": put["value"]});
    let (key, value) = pair(&record).map_err(|e| Failed(EXIT_UNAVAILABLE, e))?;
    let mut target = format!("/kv/{}", encode(&key));
    if let Some(ttl) = put["ttl"].as_str() {
        target.push_str(&format!("?ttl={ttl}"));
    }
    let answer: Answer = edge
        .call("PUT", &target, &[], &value)
        .map_err(unreachable_edge)?;
    match answer.status {
        200 | 201 => Ok(()),
        _ => Err(refused(&answer)),
    }
}
