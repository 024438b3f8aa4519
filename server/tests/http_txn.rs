//! Transactions and atomic batches over HTTP: `POST /txn` writes only when
//! every condition holds and otherwise answers which failed with the
//! `else` reads; the seed dialect's `PUT /set` is all or nothing. The HTTP
//! contract against the in-memory backend, then through real processes:
//! concurrent transfers between accounts keep the total exact, and
//! batches interrupted by SIGKILL are whole or absent after recovery.

mod common;
mod http_support;

use common::{data, free_port, loopback, Node, TempDir};
use http_support::{expect_status, Server, TestResult};
use hypha_server::http::HttpConfig;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn txn(c: &mut http_support::Client, body: &Value) -> http_support::Reply {
    c.request("POST", "/txn", &[JSON], body.to_string().as_bytes())
        .expect("an answer")
}

#[test]
fn a_transaction_writes_only_when_every_condition_holds() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut c = server.client()?;
    let a = c.request("PUT", "/kv/a", &[], b"on")?;
    let seq: u64 = a.header("ETag").ok_or("etag")?.trim_matches('"').parse()?;
    let body = |seq: u64| {
        json!({
            "if": [{"key": "a", "seq": seq}, {"key": "b", "absent": true}, {"key": "a", "value": "on"}],
            "then": [{"put": "a", "value": "1"}, {"put": "b", "value": "2"}, {"delete": "c"}],
            "else": [{"get": "a"}, {"get": "nothing"}],
        })
    };
    // A stale seq: the first condition fails, nothing is written.
    let failed = txn(&mut c, &body(seq + 5));
    expect_status(&failed, 200)?;
    let answer = failed.json()?;
    assert_eq!(answer["ok"], false);
    assert_eq!(answer["failed"], json!([0]));
    assert_eq!(
        answer["results"],
        json!([{"key": "a", "value": "on", "seq": seq}, {"key": "nothing", "value": null, "seq": null}])
    );
    assert_eq!(server.request("GET", "/kv/b", b"")?.status, 404);
    // All hold: applied; the answer's seq is in X-Hypha-Seq too.
    let ok = txn(&mut c, &body(seq));
    expect_status(&ok, 200)?;
    let answer = ok.json()?;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(
        ok.header("X-Hypha-Seq"),
        Some(answer["seq"].to_string().as_str())
    );
    assert_eq!(server.request("GET", "/kv/a", b"")?.body, b"1");
    assert_eq!(server.request("GET", "/kv/b", b"")?.body, b"2");
    // Base64 keys and values.
    let b64 = json!({"encoding": "base64", "if": [{"key": "AP8=", "absent": true}],
                     "then": [{"put": "AP8=", "value": "AAEC"}]});
    assert_eq!(txn(&mut c, &b64).json()?["ok"], true);
    assert_eq!(server.request("GET", "/kv/%00%FF", b"")?.body, [0, 1, 2]);
    Ok(())
}

#[test]
fn a_malformed_transaction_is_refused_naming_the_item() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut c = server.client()?;
    let cases = [
        (json!([1]), "JSON object"),
        (json!({"when": []}), "unknown field"),
        (json!({"if": [{"key": "a"}]}), "if[0]"),
        (
            json!({"if": [{"key": "a", "seq": 1, "absent": true}]}),
            "exactly one",
        ),
        (
            json!({"then": [{"put": "a", "value": "1"}, {"put": ""}]}),
            "then[1]",
        ),
        (
            json!({"then": [{"put": "a", "value": "1", "ttl": "soon"}]}),
            "ttl",
        ),
        (json!({"then": [{"delete": "a", "value": "1"}]}), "then[0]"),
        (json!({"else": [{"got": "a"}]}), "else[0]"),
        (
            json!({"encoding": "base64", "then": [{"put": "!", "value": ""}]}),
            "base64",
        ),
        (json!({"encoding": "hex"}), "encoding"),
    ];
    for (body, names) in cases {
        let reply = txn(&mut c, &body);
        expect_status(&reply, 400)?;
        let error = reply.error()?;
        assert!(error.contains(names), "{body}: {error}");
    }
    let many: Vec<Value> = (0..1001).map(|i| json!({"get": format!("k{i}")})).collect();
    let reply = txn(&mut c, &json!({"else": many}));
    expect_status(&reply, 400)?;
    let limit = format!("at most {}", hypha_net::TXN_ITEMS_MAX);
    assert!(reply.error()?.contains(&limit), "{}", reply.error()?);
    expect_status(&c.request("GET", "/txn", &[], b"")?, 405)?;
    // Nothing of any of them was written.
    assert_eq!(server.request("GET", "/kv/a", b"")?.status, 404);
    Ok(())
}

#[test]
fn the_json_batch_of_the_seed_dialect_is_all_or_nothing() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut c = server.client()?;
    let s = |t: &str| json!({"encoding": "string", "data": t});
    let bad = json!([
        {"key": s("x"), "value": s("1")},
        {"key": s("y"), "value": {"encoding": "binary", "data": "!!"}},
    ]);
    let reply = c.request("PUT", "/set", &[JSON], bad.to_string().as_bytes())?;
    expect_status(&reply, 400)?;
    assert!(reply.error()?.contains("item 1"), "{}", reply.text());
    assert_eq!(server.request("GET", "/kv/x", b"")?.status, 404);
    let good = json!([{"key": s("x"), "value": s("1")}, {"key": s("y"), "value": s("2")}]);
    let reply = c.request("PUT", "/set", &[JSON], good.to_string().as_bytes())?;
    expect_status(&reply, 200)?;
    assert_eq!(
        reply.json()?,
        json!([{"keys_added": 2, "keys_failed": [], "errors": []}])
    );
    Ok(())
}

/// The balances of `accounts`, read in one transaction whose condition
/// never holds (its reads come back at one seq).
fn balances(c: &mut http_support::Client, accounts: usize) -> Vec<i64> {
    let reads: Vec<Value> = (0..accounts)
        .map(|i| json!({"get": format!("acct{i}")}))
        .collect();
    let body = json!({"if": [{"key": "no such key", "present": true}], "else": reads});
    let answer = txn(c, &body).json().expect("json");
    assert_eq!(answer["ok"], false, "{answer}");
    let results = answer["results"].as_array().expect("results");
    results
        .iter()
        .map(|r| {
            r["value"]
                .as_str()
                .expect("a balance")
                .parse()
                .expect("a number")
        })
        .collect()
}

/// `threads` clients moving 1 between random accounts by read + `POST
/// /txn` on both seqs, while one client checks the total: the transfers
/// that succeeded.
fn transfers(edge: SocketAddr, accounts: usize, threads: usize, each: usize) -> u64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let checker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = http_support::Client::connect(edge).expect("the edge is up");
            let mut checks = 0;
            while !stop.load(Ordering::Acquire) {
                let sum: i64 = balances(&mut c, accounts).iter().sum();
                assert_eq!(sum, 100 * accounts as i64, "money created or lost");
                checks += 1;
            }
            checks
        })
    };
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut c = http_support::Client::connect(edge).expect("the edge is up");
                let mut moved = 0;
                let mut n = t;
                while moved < each {
                    n = n.wrapping_mul(2_654_435_761).wrapping_add(12_345);
                    let (from, to) = (n % accounts, (n / 7 + 1 + n % (accounts - 1)) % accounts);
                    if from == to {
                        continue;
                    }
                    let read = |c: &mut http_support::Client, i: usize| {
                        let r = c
                            .request("GET", &format!("/kv/acct{i}"), &[], b"")
                            .expect("an answer");
                        let seq: u64 = r.header("ETag").expect("etag").trim_matches('"').parse().expect("seq");
                        (seq, r.text().parse::<i64>().expect("a number"))
                    };
                    let ((fs, fb), (ts, tb)) = (read(&mut c, from), read(&mut c, to));
                    let body = json!({
                        "if": [{"key": format!("acct{from}"), "seq": fs}, {"key": format!("acct{to}"), "seq": ts}],
                        "then": [{"put": format!("acct{from}"), "value": (fb - 1).to_string()},
                                 {"put": format!("acct{to}"), "value": (tb + 1).to_string()}],
                    });
                    let answer = txn(&mut c, &body);
                    assert_eq!(answer.status, 200, "{}", answer.text());
                    if answer.json().expect("json")["ok"] == true {
                        moved += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a client panicked");
    }
    stop.store(true, Ordering::Release);
    let checks = checker.join().expect("the checker panicked");
    assert!(checks > 0);
    done.load(Ordering::Relaxed)
}

fn check_transfers(edge: SocketAddr) {
    let mut c = http_support::Client::connect(edge).expect("the edge is up");
    let accounts = 6;
    let init: Vec<Value> = (0..accounts)
        .map(|i| json!({"put": format!("acct{i}"), "value": "100"}))
        .collect();
    assert_eq!(
        txn(&mut c, &json!({"then": init})).json().expect("json")["ok"],
        true
    );
    let moved = transfers(edge, accounts, 8, 25);
    assert_eq!(moved, 8 * 25);
    let end = balances(&mut c, accounts);
    assert_eq!(end.iter().sum::<i64>(), 600, "{end:?}");
}

#[test]
fn concurrent_transfers_through_an_edge_keep_the_total() {
    let dir = TempDir::new("txn-transfers");
    let http = loopback(free_port());
    let listen = http.to_string();
    let d = data(&dir, "fixed");
    let node = Node::start(http, &["--data", &d, "--http", &listen, "--workers", "1"]);
    node.wait_log("http: listening", 0, Duration::from_secs(30));
    check_transfers(http);
}

#[test]
fn a_failover_group_applies_transactions_on_its_leader() {
    let dir = TempDir::new("txn-failover");
    let http = loopback(free_port());
    let listen = http.to_string();
    let d = data(&dir, "group");
    let node = Node::start(http, &["--failover", "--data", &d, "--http", &listen]);
    node.wait_log("http: listening", 0, Duration::from_secs(30));
    check_transfers(http);
}

/// Writes batches of `width` new keys through `PUT /set` until stopped:
/// the batches acknowledged.
fn batch_writer(edge: SocketAddr, width: usize, stop: Arc<AtomicBool>) -> u64 {
    let mut c = match http_support::Client::connect(edge) {
        Ok(c) => c,
        Err(_) => return 0,
    };
    let mut acked = 0;
    for g in 0u64.. {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let items: Vec<Value> = (0..width)
            .map(|i| {
                json!({"key": {"encoding": "string", "data": format!("g{g}-{i}")},
                       "value": {"encoding": "string", "data": "x".repeat(200)}})
            })
            .collect();
        match c.request(
            "PUT",
            "/set",
            &[JSON],
            Value::from(items).to_string().as_bytes(),
        ) {
            Ok(r) if r.status == 200 => acked = g + 1,
            _ => break,
        }
    }
    acked
}

#[test]
fn batches_cut_by_sigkill_are_whole_or_absent_after_recovery() -> TestResult {
    let dir = TempDir::new("txn-sigkill");
    let http = loopback(free_port());
    let listen = http.to_string();
    let d = data(&dir, "data");
    let args = [
        "--data",
        &d,
        "--http",
        &listen,
        "--workers",
        "1",
        "--fsync",
        "always",
    ];
    let mut node = Node::start(http, &args);
    node.wait_log("http: listening", 0, Duration::from_secs(30));
    let width = 50;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || batch_writer(http, width, stop))
    };
    // Kill once a few hundred batches are in, mid-stream.
    let mut c = http_support::Client::connect(http)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while c.request("GET", "/kv/g200-0", &[], b"")?.status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "200 batches take a minute"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    node.kill9();
    stop.store(true, Ordering::Release);
    let acked = writer.join().map_err(|_| "the writer panicked")?;
    assert!(acked >= 200, "{acked} batches acknowledged");
    node.restart();
    node.wait_log("http: listening", 0, Duration::from_secs(30));
    let mut c = http_support::Client::connect(http)?;
    let mut whole = 0;
    for g in 0..acked + 5 {
        let present: Vec<bool> = (0..width)
            .map(|i| {
                // From the master: a worker may still be catching up.
                let path = format!("/kv/g{g}-{i}?consistency=linearizable");
                let r = c.request("GET", &path, &[], b"").expect("an answer");
                r.status == 200
            })
            .collect();
        let n = present.iter().filter(|p| **p).count();
        assert!(
            n == 0 || n == width,
            "batch {g}: {n} of {width} keys after recovery"
        );
        if g < acked {
            assert_eq!(n, width, "acknowledged batch {g} lost (--fsync always)");
        }
        whole += usize::from(n == width);
    }
    assert!(whole as u64 >= acked);
    Ok(())
}
