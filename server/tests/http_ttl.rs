//! Time to live over HTTP: `PUT /kv/{key}?ttl=…` (or `Hypha-TTL`) keys
//! vanish on the master and on workers once due, through a restart; a
//! refresh (`&refresh=true`, empty body) keeps the value under a new seq; a
//! worker cut off from its master hides a due key by its own clock; bad
//! parameters are the client's mistake.

mod common;
mod http_support;

use common::{start_roles, Node, TempDir};
use http_support::{expect_status, Client, Server, TestResult};
use hypha_server::http::HttpConfig;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[test]
fn ttl_parameters_are_checked() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut c = server.client()?;
    for (target, headers, body, says) in [
        ("/kv/k?ttl=abc", vec![], &b"v"[..], "not a duration"),
        ("/kv/k?ttl=0s", vec![], b"v", "0"),
        ("/kv/k?ttl=400d", vec![], b"v", "365 days"),
        ("/kv/k?refresh=true", vec![], b"", "ttl=30s"),
        ("/kv/k?ttl=5s&refresh=true", vec![], b"v", "empty body"),
        ("/kv/k?ttl=5s&refresh=yes", vec![], b"", "true or false"),
        ("/kv/k", vec![("Hypha-TTL", "5x")], b"v", "not a duration"),
    ] {
        let reply = c.request("PUT", target, &headers, body)?;
        expect_status(&reply, 400)?;
        let error = reply.error()?;
        assert!(error.contains(says), "{target}: {error}");
    }
    // A refresh of an absent key: nothing to refresh.
    expect_status(
        &c.request("PUT", "/kv/none?ttl=5s&refresh=true", &[], b"")?,
        404,
    )?;
    Ok(())
}

fn status_of(c: &mut Client, path: &str) -> u16 {
    c.request("GET", path, &[], b"").expect("an answer").status
}

/// Waits until `path` answers 404; how long that took.
fn until_gone(c: &mut Client, path: &str, within: Duration) -> Duration {
    let start = Instant::now();
    while status_of(c, path) != 404 {
        assert!(
            start.elapsed() < within,
            "{path} still there after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

/// The newest version of `key` in its history is an expiry (a delete).
fn expired_in_history(c: &mut Client, key: &str) -> bool {
    let reply = c
        .request("GET", &format!("/kv/{key}?history=4"), &[], b"")
        .expect("an answer");
    let h: Value = reply.json().expect("json");
    h["versions"][0]["deleted"] == true
}

fn all_in_one(dir: &TempDir) -> (Node, SocketAddr) {
    common::all_in_one(dir, &["--workers", "1", "--fsync", "always"])
}

#[test]
fn keys_expire_on_the_master_and_every_worker() -> TestResult {
    let dir = TempDir::new("ttl-expire");
    let (_node, http) = all_in_one(&dir);
    let mut c = Client::connect(http)?;
    expect_status(&c.request("PUT", "/kv/lease?ttl=1s", &[], b"owner")?, 201)?;
    expect_status(
        &c.request("PUT", "/kv/kept", &[("Hypha-TTL", "1s")], b"v1")?,
        201,
    )?;
    let before = c.request("GET", "/kv/kept", &[], b"")?;
    expect_status(&before, 200)?;
    // A refresh before the deadline: same value, new ETag, a long TTL.
    let refreshed = c.request("PUT", "/kv/kept?ttl=60s&refresh=true", &[], b"")?;
    expect_status(&refreshed, 200)?;
    assert_ne!(refreshed.header("ETag"), before.header("ETag"));
    expect_status(&c.request("PUT", "/kv/plain", &[], b"forever")?, 201)?;
    // The lease goes, on the worker (ryw) and on the master.
    until_gone(&mut c, "/kv/lease", Duration::from_secs(10));
    until_gone(
        &mut c,
        "/kv/lease?consistency=linearizable",
        Duration::from_secs(10),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !expired_in_history(&mut c, "lease") {
        assert!(Instant::now() < deadline, "no expiry record replicated");
        std::thread::sleep(Duration::from_millis(10));
    }
    let kept = c.request("GET", "/kv/kept", &[], b"")?;
    expect_status(&kept, 200)?;
    assert_eq!(kept.body, b"v1");
    assert_eq!(kept.header("ETag"), refreshed.header("ETag"));
    assert_eq!(c.request("GET", "/kv/plain", &[], b"")?.body, b"forever");
    // Master and worker come to hold the same contents: the expiry
    // replicated like any write.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let digest: Value = c.request("GET", "/digest", &[], b"")?.json()?;
        let workers = digest["workers"].as_array().cloned().unwrap_or_default();
        let same = !workers.is_empty()
            && workers
                .iter()
                .all(|w| w["digest"] == digest["master"]["digest"]);
        if same {
            break;
        }
        assert!(Instant::now() < deadline, "never converged: {digest}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The master's expiry shows in /metrics (refreshed by the edge).
    let deadline = Instant::now() + Duration::from_secs(10);
    while expired_total(&mut c)? < 1 {
        assert!(Instant::now() < deadline, "hypha_expired_total stayed 0");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The sum of `hypha_expired_total` over the nodes in `/metrics`.
fn expired_total(c: &mut Client) -> Result<u64, Box<dyn std::error::Error>> {
    let metrics = c.request("GET", "/metrics", &[], b"")?;
    let text = String::from_utf8(metrics.body)?;
    let mut total = 0;
    for line in text
        .lines()
        .filter(|l| l.starts_with("hypha_expired_total{"))
    {
        let value = line.rsplit(' ').next().unwrap_or_default();
        total += value.parse::<f64>()? as u64;
    }
    Ok(total)
}

#[test]
fn expiry_survives_a_restart() -> TestResult {
    let dir = TempDir::new("ttl-restart");
    let (mut node, http) = all_in_one(&dir);
    let mut c = Client::connect(http)?;
    expect_status(&c.request("PUT", "/kv/lease?ttl=2s", &[], b"owner")?, 201)?;
    let written = Instant::now();
    node.kill9();
    // Down across the deadline: the restarted master finds it due.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(written.elapsed()));
    node.restart();
    node.wait_log("http: listening", 0, Duration::from_secs(30));
    let mut c = Client::connect(http)?;
    until_gone(
        &mut c,
        "/kv/lease?consistency=linearizable",
        Duration::from_secs(10),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !expired_in_history(&mut c, "lease") {
        assert!(
            Instant::now() < deadline,
            "the restarted master wrote no expiry"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

#[test]
fn a_worker_without_its_master_hides_a_due_key() -> TestResult {
    let dir = TempDir::new("ttl-worker");
    let mut roles = start_roles(&dir);
    let http = roles.http;
    let mut c = Client::connect(http)?;
    let start = Instant::now();
    loop {
        let r = c.request("PUT", "/kv/lease?ttl=3s", &[], b"owner")?;
        if r.status == 201 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the master takes no writes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let written = Instant::now();
    // The worker has it (reads go there), then the master is gone.
    expect_status(&c.request("GET", "/kv/lease", &[], b"")?, 200)?;
    roles.master.kill9();
    std::thread::sleep(Duration::from_secs(3).saturating_sub(written.elapsed()));
    until_gone(&mut c, "/kv/lease?consistency=any", Duration::from_secs(5));
    Ok(())
}
