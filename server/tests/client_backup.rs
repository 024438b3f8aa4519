//! `hypha backup` and `hypha restore` against real all-in-ones: a backup
//! taken while writers overwrite keys is exactly the store at its seq; a
//! restore into an empty cluster reproduces it (digest checked); a copy
//! that a compaction interrupts is refused (410) rather than mixed; damaged
//! files, occupied clusters and missing tokens are refused with their exit
//! codes.

mod common;
mod http_support;

use common::{all_in_one, TempDir};
use http_support::Client;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "backup-test-token";

fn start(dir: &TempDir, name: &str) -> (common::Node, SocketAddr, String, TempDir) {
    let token_file = dir.join(&format!("{name}-token"));
    std::fs::write(&token_file, TOKEN).expect("token");
    let path = common::path_str(&token_file);
    let sub = TempDir::new(name);
    let (node, http) = all_in_one(&sub, &["--token-file", &path]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while put(http, "warm-up", b"1").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no write went through"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (node, http, path, sub)
}

fn request(http: SocketAddr, method: &str, target: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let bearer = format!("Bearer {TOKEN}");
    let mut c = Client::connect(http).expect("edge");
    let reply = c
        .request(method, target, &[("Authorization", &bearer)], body)
        .expect("reply");
    (reply.status, reply.body)
}

/// The seq of an acknowledged write.
fn put(http: SocketAddr, key: &str, value: &[u8]) -> Option<u64> {
    let (status, body) = request(http, "PUT", &format!("/kv/{key}"), value);
    let doc: Value = serde_json::from_slice(&body).ok()?;
    (status == 201 || status == 200)
        .then(|| doc["seq"].as_u64())
        .flatten()
}

fn hypha(http: SocketAddr, token_file: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hypha"))
        .args(args)
        .env("HYPHA_EDGE", format!("http://{http}"))
        .env("HYPHA_TOKEN_FILE", token_file)
        .output()
        .expect("hypha")
}

fn b64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

/// The records of a backup file: key → value, and its seq.
fn contents(path: &std::path::Path) -> (u64, BTreeMap<Vec<u8>, Vec<u8>>) {
    let text = std::fs::read_to_string(path).expect("backup file");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let upto = lines[0]["upto"].as_u64().expect("upto");
    assert_eq!(lines.last().expect("trailer")["end"], true);
    let records = lines[1..lines.len() - 1]
        .iter()
        .map(|r| {
            let (k, v) = (r["key"].as_str(), r["value"].as_str());
            (b64(k.expect("key")), b64(v.expect("value")))
        })
        .collect();
    (upto, records)
}

#[test]
fn a_backup_under_writes_is_the_store_at_its_seq_and_restores_whole() {
    let dir = TempDir::new("backup");
    let (_node, http, token, _data) = start(&dir, "source");
    // Every acknowledged write: (seq, key, value). 3,000 values of 1 KiB
    // make several pages (each at most 1 MiB of keys and values).
    let mut writes: Vec<(u64, Vec<u8>, Vec<u8>)> = Vec::new();
    for i in 0..3_000 {
        let (key, value) = (format!("k{i:04}"), vec![b'a' + (i % 26) as u8; 1024]);
        let seq = put(http, &key, &value).expect("preload");
        writes.push((seq, key.into_bytes(), value));
    }
    let ttl = request(http, "PUT", "/kv/lease?ttl=1h", b"held").0;
    assert_eq!(ttl, 201);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut done = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                // Keys the backup reads last are the ones overwritten.
                let key = format!("k{:04}", 2_999 - (n * 7) % 1_500);
                let value = format!("overwritten-{n}").into_bytes();
                if let Some(seq) = put(http, &key, &value) {
                    done.push((seq, key.into_bytes(), value));
                }
            }
            done
        })
    };
    std::thread::sleep(Duration::from_millis(100)); // let the writer start
    let file = dir.join("copy.ndjson");
    let out = hypha(http, &token, &["backup", &common::path_str(&file)]);
    stop.store(true, Ordering::SeqCst);
    let during = writer.join().expect("writer");
    assert!(out.status.success(), "{out:?}");
    let (upto, copy) = contents(&file);
    assert!(
        during.iter().any(|w| w.0 > upto),
        "no write landed after the copy's seq: the test proved nothing"
    );
    // What the store held after seq `upto`, from the writes themselves.
    writes.extend(during);
    writes.sort();
    let mut expected: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for (seq, key, value) in writes.into_iter().filter(|w| w.0 <= upto) {
        let _ = seq;
        expected.insert(key, value);
    }
    expected.insert(b"warm-up".to_vec(), b"1".to_vec());
    expected.insert(b"lease".to_vec(), b"held".to_vec());
    assert_eq!(copy.len(), expected.len());
    assert!(
        copy == expected,
        "the copy differs from the store at seq {upto}"
    );

    // Into an empty cluster: every key back, the digest checked by restore.
    let (_target, http2, token2, _data2) = start(&dir, "target");
    let out = hypha(http2, &token2, &["restore", &common::path_str(&file)]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "warm-up made it non-empty: {out:?}"
    );
    assert_eq!(request(http2, "DELETE", "/kv/warm-up", b"").0, 200);
    let out = hypha(http2, &token2, &["restore", &common::path_str(&file)]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("matches"),
        "{out:?}"
    );
    for (key, value) in expected.iter().step_by(97) {
        let key = String::from_utf8(key.clone()).expect("utf-8");
        let (status, body) = request(http2, "GET", &format!("/kv/{key}"), b"");
        assert_eq!((status, &body), (200, value), "{key}");
    }
    let (status, body) = request(http2, "GET", "/kv/lease", b"");
    assert_eq!((status, body.as_slice()), (200, &b"held"[..]));
}

#[test]
fn damaged_files_busy_clusters_compactions_and_missing_tokens_are_refused() {
    let dir = TempDir::new("backup-refusals");
    let (_node, http, token, _data) = start(&dir, "one");
    for i in 0..50 {
        put(http, &format!("r{i}"), &[7u8; 100]).expect("put");
    }
    let file = dir.join("b.ndjson");
    let path = common::path_str(&file);
    assert!(hypha(http, &token, &["backup", &path]).status.success());
    // An existing file is never overwritten.
    assert_eq!(
        hypha(http, &token, &["backup", &path]).status.code(),
        Some(2)
    );
    // No token: refused by the edge (3), nothing written.
    let other = common::path_str(&dir.join("c.ndjson"));
    assert_eq!(
        hypha(http, "/dev/null", &["backup", &other]).status.code(),
        Some(3)
    );
    assert!(!dir.join("c.ndjson").exists() && !dir.join("c.ndjson.partial").exists());
    // A file cut short, or with a changed value, is refused whole (2).
    let text = std::fs::read_to_string(&file).expect("read");
    let cut = dir.join("cut.ndjson");
    std::fs::write(&cut, &text[..text.len() - 60]).expect("write");
    assert_eq!(
        hypha(http, &token, &["restore", &common::path_str(&cut)])
            .status
            .code(),
        Some(2)
    );
    let changed = dir.join("changed.ndjson");
    let one_line = text.lines().nth(3).expect("a record").to_string();
    let altered = one_line.replacen("\"value\":\"B", "\"value\":\"C", 1);
    assert_ne!(altered, one_line);
    std::fs::write(&changed, text.replacen(&one_line, &altered, 1)).expect("write");
    let out = hypha(http, &token, &["restore", &common::path_str(&changed)]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("digest"),
        "{out:?}"
    );

    // A compaction between two pages of one copy: the next page is refused.
    let (status, body) = request(http, "GET", "/admin/backup", b"");
    assert_eq!(status, 200);
    let page: Value = serde_json::from_slice(&body).expect("page");
    let (node, upto, generation) = (
        page["node"].as_str().expect("node").to_string(),
        page["upto"].as_u64().expect("upto"),
        page["generation"].as_str().expect("generation").to_string(),
    );
    let again = format!("/admin/backup?node={node}&upto={upto}&generation={generation}&after=0");
    assert_eq!(
        request(http, "GET", &again, b"").0,
        200,
        "same generation: served"
    );
    assert_eq!(request(http, "POST", "/admin/compact", b"").0, 200);
    let (status, body) = request(http, "GET", &again, b"");
    assert_eq!(status, 410, "{}", String::from_utf8_lossy(&body));
}
