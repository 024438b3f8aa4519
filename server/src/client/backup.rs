//! `hypha backup FILE` through an edge (`restore.rs` loads one).
//!
//! The file's format is `hypha_server::backup_file`. It is written to
//! `FILE.partial` and renamed when whole, so `FILE` is never half a copy.

use super::progress::Progress;
use super::transport::Edge;
use super::{encode, json, refused, unreachable_edge, usage, Failed, EXIT_UNAVAILABLE};
use hypha_server::backup_file::{header, pair_hash, trailer};
use serde_json::json;
use std::io::Write;

/// How often a backup starts again after a node compacted under it.
pub const BACKUP_ATTEMPTS_MAX: u32 = 5;
pub(super) fn now_ms() -> u64 {
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
        .and_then(|a| serde_json::from_slice::<serde_json::Value>(&a.body).ok())
        .and_then(|d| d["master"]["keys"].as_u64())
        .unwrap_or(0)
}
