//! `hypha restore FILE`: checks the whole backup first (one pass, one line
//! in memory at a time), refuses a cluster that holds keys, writes the keys
//! in `/txn` batches (halved on a 413, a large value alone as a raw `PUT`),
//! then compares the master's digest with the one expected.

use super::backup::now_ms;
use super::progress::Progress;
use super::transport::Edge;
use super::{encode, json, out, refused, unreachable_edge, usage, Failed};
use super::{EXIT_CONDITION, EXIT_UNAVAILABLE};
use hypha_server::backup_file::{check, pair, pair_hash, records, Checked};
use serde_json::{json, Value};
use std::io::BufReader;

/// Key and value bytes (base64) in one `/txn` of a restore at most; a
/// batch the edge finds too large (413, a small `--value-max`) is halved.
pub const RESTORE_BATCH_BYTES: usize = 512 * 1024;
/// A record whose key and value (base64) are over this goes alone as a
/// raw `PUT` (its value as is, not 4/3 of it).
pub const RESTORE_ALONE_BYTES: usize = 256 * 1024;
/// Items in one `/txn` of a restore (`TXN_ITEMS_MAX`).
const RESTORE_BATCH_ITEMS: usize = hypha_net::TXN_ITEMS_MAX;
/// How often the final digest is compared while expiries of restored keys
/// may still be on their way, and how long apart.
const DIGEST_TRIES: u32 = 10;
const DIGEST_RETRY_MS: u64 = 300;

fn open(file: &str) -> Result<BufReader<std::fs::File>, Failed> {
    let f = std::fs::File::open(file).map_err(|e| usage(format!("{file}: {e}")))?;
    Ok(BufReader::new(f))
}

fn damaged(file: &str, why: String) -> Failed {
    usage(format!("{file} is not a whole hypha backup: {why}"))
}

/// The master's digest, as `/digest` says it.
fn master_digest(edge: &Edge) -> Result<u64, Failed> {
    let answer = edge
        .call("GET", "/digest", &[], b"")
        .map_err(unreachable_edge)?;
    if answer.status != 200 {
        return Err(refused(&answer));
    }
    let doc = json(&answer, "digest")?;
    let text = doc["master"]["digest"].as_str().unwrap_or_default();
    u64::from_str_radix(text, 16).map_err(|_| {
        Failed(
            EXIT_UNAVAILABLE,
            format!("the master's digest {text:?} is not hex"),
        )
    })
}

/// Refuses a cluster that holds a key: every page of the listing is read
/// (a page can come back empty when its ids are deleted or the system's).
fn refuse_unless_empty(edge: &Edge) -> Result<(), Failed> {
    let mut cursor = 0u64;
    loop {
        let target = format!("/kv?limit=1000&cursor={cursor}&consistency=linearizable");
        let mut answer = edge
            .call("GET", &target, &[], b"")
            .map_err(unreachable_edge)?;
        if matches!(answer.status, 400 | 503) {
            // An edge that cannot read linearizably: the default (its own writes).
            answer = edge
                .call("GET", &format!("/kv?limit=1000&cursor={cursor}"), &[], b"")
                .map_err(unreachable_edge)?;
        }
        if answer.status != 200 {
            return Err(refused(&answer));
        }
        let page = json(&answer, "restore")?;
        if page["keys"].as_array().is_some_and(|k| !k.is_empty()) {
            return Err(Failed(
                EXIT_CONDITION,
                "restore loads into a cluster without keys; this one holds some: use an empty one"
                    .into(),
            ));
        }
        match page["next_cursor"].as_str().and_then(|c| c.parse().ok()) {
            Some(next) => cursor = next,
            None => return Ok(()),
        }
    }
}

/// What the restore wrote, for the final comparison.
#[derive(Default)]
struct Written {
    /// The empty cluster's digest plus every restored pair's.
    expected: u64,
    /// Restored pairs with a deadline: (deadline, pair hash).
    deadlines: Vec<(u64, u64)>,
    restored: u64,
    expired: u64,
}

/// `hypha restore FILE`.
pub fn restore(edge: &Edge, file: &str) -> Result<(), Failed> {
    let checked: Checked = check(open(file)?).map_err(|why| damaged(file, why))?;
    refuse_unless_empty(edge)?;
    // A failover group's system keys are in its digest already.
    let mut written = Written {
        expected: master_digest(edge)?,
        ..Written::default()
    };
    let mut batch = Batch::default();
    let mut progress = Progress::new("restore", checked.records);
    let all = records(open(file)?).map_err(|why| damaged(file, why))?;
    for record in all {
        let record = record.map_err(|why| damaged(file, why))?;
        let mut put = json!({"put": record["key"], "value": record["value"]});
        let size =
            put["put"].as_str().map_or(0, str::len) + put["value"].as_str().map_or(0, str::len);
        let hash = pair_hash(&record).map_err(|why| damaged(file, why))?;
        if let Some(deadline) = record["deadline_ms"].as_u64() {
            // Its deadline as written, so the key vanishes when it would have.
            let now = now_ms();
            if deadline <= now {
                written.expired += 1;
                continue;
            }
            put["ttl"] = json!(format!("{}ms", deadline - now));
            written.deadlines.push((deadline, hash));
        }
        written.expected = written.expected.wrapping_add(hash);
        written.restored += 1;
        if size > RESTORE_ALONE_BYTES {
            put_alone(edge, &put)?;
        } else {
            if batch.items.len() >= RESTORE_BATCH_ITEMS || batch.bytes + size > RESTORE_BATCH_BYTES
            {
                send(edge, &std::mem::take(&mut batch.items))?;
                batch.bytes = 0;
            }
            batch.bytes += size;
            batch.items.push(put);
        }
        progress.add(1, size as u64);
    }
    send(edge, &batch.items)?;
    progress.done();
    let digest = compare(edge, &written)?;
    eprintln!(
        "hypha restore: {} keys as of seq {} ({} had expired, left out); digest {digest:016x} matches",
        written.restored, checked.upto, written.expired
    );
    out(b"")
}

/// Compares the master's digest with the expected one, allowing for
/// restored keys whose deadline passed since (their expiry deletes them).
fn compare(edge: &Edge, written: &Written) -> Result<u64, Failed> {
    let mut digest = 0;
    for _ in 0..DIGEST_TRIES {
        digest = master_digest(edge)?;
        let due = written
            .deadlines
            .iter()
            .filter(|(deadline, _)| *deadline <= now_ms())
            .fold(0u64, |sum, (_, hash)| sum.wrapping_add(*hash));
        if digest == written.expected || digest == written.expected.wrapping_sub(due) {
            return Ok(digest);
        }
        if written.deadlines.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(DIGEST_RETRY_MS));
    }
    Err(Failed(
        EXIT_UNAVAILABLE,
        format!(
            "restored, but the master's digest is {digest:016x}, not {:016x}: something wrote \
             meanwhile, or a write was lost; compare with hypha ls",
            written.expected
        ),
    ))
}

#[derive(Default)]
struct Batch {
    items: Vec<Value>,
    bytes: usize,
}

/// Writes `items` as one `/txn`; a 413 (the edge's `--value-max` is small)
/// halves it, down to single items sent as raw PUTs.
fn send(edge: &Edge, items: &[Value]) -> Result<(), Failed> {
    match items {
        [] => Ok(()),
        _ => {
            let body = json!({"encoding": "base64", "then": items}).to_string();
            let headers = [("Content-Type", "application/json")];
            let answer = edge
                .call("POST", "/txn", &headers, body.as_bytes())
                .map_err(unreachable_edge)?;
            if answer.status == 413 {
                if let [one] = items {
                    return put_alone(edge, one);
                }
                let (a, b) = items.split_at(items.len() / 2);
                return send(edge, a).and_then(|()| send(edge, b));
            }
            if answer.status == 200 && json(&answer, "restore")?["ok"] == json!(true) {
                return Ok(());
            }
            Err(refused(&answer))
        }
    }
}

/// One record as a raw PUT (its value as is).
fn put_alone(edge: &Edge, put: &Value) -> Result<(), Failed> {
    let record = json!({"key": put["put"], "value": put["value"]});
    let (key, value) = pair(&record).map_err(|e| Failed(EXIT_UNAVAILABLE, e))?;
    let mut target = format!("/kv/{}", encode(&key));
    if let Some(ttl) = put["ttl"].as_str() {
        target.push_str(&format!("?ttl={ttl}"));
    }
    let answer = edge
        .call("PUT", &target, &[], &value)
        .map_err(unreachable_edge)?;
    match answer.status {
        200 | 201 => Ok(()),
        _ => Err(refused(&answer)),
    }
}
