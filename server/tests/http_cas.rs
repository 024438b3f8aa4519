//! Compare-and-swap over HTTP: `If-Match: "SEQ"` and `If-None-Match: *`
//! on `PUT`/`DELETE /kv/{key}`, 412 with the current seq when the key is
//! not as expected. The HTTP contract against the in-memory backend, then
//! 32 curl-like clients incrementing one counter through a real edge — in
//! front of a master and workers, and in front of a failover group — end
//! with exactly as many increments as were acknowledged, and a create-only
//! race has one winner.

mod common;
mod http_support;

use common::{data, free_port, loopback, Node, TempDir};
use http_support::{expect_status, Server, TestResult};
use hypha_server::http::HttpConfig;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn conditional_writes_apply_only_over_the_expected_version() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut c = server.client()?;
    let created = c.request("PUT", "/kv/k", &[("If-None-Match", "*")], b"v1")?;
    expect_status(&created, 201)?;
    let etag = created
        .header("ETag")
        .ok_or("a write answers its ETag")?
        .to_owned();
    // Create-only again: 412, the current seq in ETag and in the body.
    let again = c.request("PUT", "/kv/k", &[("If-None-Match", "*")], b"x")?;
    expect_status(&again, 412)?;
    assert_eq!(again.header("ETag"), Some(etag.as_str()));
    let seq: u64 = etag.trim_matches('"').parse()?;
    assert_eq!(again.json()?["seq"], seq);
    // Over the version read: written; over the old one: 412.
    let swapped = c.request("PUT", "/kv/k", &[("If-Match", &etag)], b"v2")?;
    expect_status(&swapped, 201)?;
    let stale = c.request("PUT", "/kv/k", &[("If-Match", &etag)], b"v3")?;
    expect_status(&stale, 412)?;
    assert_eq!(server.request("GET", "/kv/k", b"")?.body, b"v2");
    // If-Match: * needs the key; an absent key's 412 has no ETag.
    let absent = c.request("PUT", "/kv/none", &[("If-Match", "*")], b"v")?;
    expect_status(&absent, 412)?;
    assert_eq!(absent.header("ETag"), None);
    assert!(absent.json()?["seq"].is_null());
    // DELETE at a stale version: 412, nothing deleted; at the current: gone.
    expect_status(
        &c.request("DELETE", "/kv/k", &[("If-Match", &etag)], b"")?,
        412,
    )?;
    let now = swapped.header("ETag").ok_or("etag")?.to_owned();
    expect_status(
        &c.request("DELETE", "/kv/k", &[("If-Match", &now)], b"")?,
        200,
    )?;
    expect_status(&server.request("GET", "/kv/k", b"")?, 404)?;
    // /metrics counts the conflicts: create-only, stale PUT, absent, stale DELETE.
    let metrics = server.request("GET", "/metrics", b"")?.text();
    assert!(metrics.contains("hypha_cas_conflicts_total 4"), "{metrics}");
    // Headers that make no sense are the client's mistake.
    expect_status(
        &c.request("PUT", "/kv/k", &[("If-Match", "\"x\"")], b"v")?,
        400,
    )?;
    let both = [("If-Match", "*"), ("If-None-Match", "*")];
    expect_status(&c.request("PUT", "/kv/k", &both, b"v")?, 400)?;
    Ok(())
}

/// 32 clients, each adding 1 to counter `key` `each` times by GET then
/// `PUT If-Match` (again on 412): the acknowledged increments.
fn count(edge: SocketAddr, key: &str, clients: usize, each: usize) -> u64 {
    let acked = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (acked, key) = (acked.clone(), key.to_string());
            std::thread::spawn(move || {
                let mut c = http_support::Client::connect(edge).expect("the edge is up");
                let path = format!("/kv/{key}");
                let mut done = 0;
                while done < each {
                    let read = c.request("GET", &path, &[], b"").expect("an answer");
                    assert_eq!(read.status, 200, "{}", read.text());
                    let etag = read.header("ETag").expect("an ETag").to_owned();
                    let n: u64 = read.text().parse().expect("a number");
                    let next = (n + 1).to_string();
                    let w = c.request("PUT", &path, &[("If-Match", &etag)], next.as_bytes());
                    match w.expect("an answer").status {
                        201 => {
                            done += 1;
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        412 => {}
                        other => panic!("PUT If-Match answered {other}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client panicked");
    }
    acked.load(Ordering::Relaxed)
}

/// `clients` create-only PUTs of one key at once: how many won.
fn create_race(edge: SocketAddr, key: &str, clients: usize) -> usize {
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let key = key.to_string();
            std::thread::spawn(move || {
                let mut c = http_support::Client::connect(edge).expect("the edge is up");
                let body = i.to_string();
                let r = c.request(
                    "PUT",
                    &format!("/kv/{key}"),
                    &[("If-None-Match", "*")],
                    body.as_bytes(),
                );
                match r.expect("an answer").status {
                    201 => 1,
                    412 => 0,
                    other => panic!("create-only PUT answered {other}"),
                }
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("no panic"))
        .sum()
}

fn check_counter(edge: SocketAddr) {
    let mut c = http_support::Client::connect(edge).expect("the edge is up");
    let put = c
        .request("PUT", "/kv/counter", &[], b"0")
        .expect("an answer");
    assert_eq!(put.status, 201, "{}", put.text());
    let acked = count(edge, "counter", 32, 15);
    assert_eq!(acked, 32 * 15);
    // Linearizable where there is a leader; ryw otherwise: the edge's own
    // writes are all seen.
    let read = c
        .request("GET", "/kv/counter", &[], b"")
        .expect("an answer");
    assert_eq!(read.text(), acked.to_string(), "lost increments");
    assert_eq!(
        create_race(edge, "once", 32),
        1,
        "a create-only race has one winner"
    );
}

#[test]
fn thirty_two_clients_increment_one_counter_without_losing_an_update() {
    let dir = TempDir::new("cas-counter");
    let http = loopback(free_port());
    let listen = http.to_string();
    let d = data(&dir, "fixed");
    let node = Node::start(http, &["--data", &d, "--http", &listen, "--workers", "1"]);
    node.wait_log("http: listening", 0, Duration::from_secs(30));
    check_counter(http);
}

#[test]
fn a_failover_group_decides_compare_and_swap_on_its_leader() {
    let dir = TempDir::new("cas-failover");
    let http = loopback(free_port());
    let listen = http.to_string();
    let d = data(&dir, "group");
    let node = Node::start(http, &["--failover", "--data", &d, "--http", &listen]);
    node.wait_log("http: listening", 0, Duration::from_secs(30));
    check_counter(http);
}
