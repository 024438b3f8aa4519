//! `hypha --failover`: three members and the edge in one process, for
//! trying failover on one machine. Writes are acknowledged by a majority,
//! `/status` shows one leader among three members, and the data is there
//! after a restart (which binds new ports: the member list is rebuilt).

mod common;
mod http_support;

use common::{data, free_port, loopback, Node, TempDir};
use std::process::Command;
use std::time::{Duration, Instant};

fn request(http: &str, method: &str, target: &str, body: &[u8]) -> http_support::Reply {
    let addr = http.parse().expect("address");
    let mut c = http_support::Client::connect(addr).expect("the edge is up");
    c.request(method, target, &[], body).expect("an answer")
}

fn start(dir: &str, http: &str) -> Node {
    let n = Node::start(
        http.parse().expect("address"),
        &["--failover", "--data", dir, "--http", http],
    );
    n.wait_log("http: listening", 0, Duration::from_secs(30));
    n
}

/// `/status` once it lists three members, exactly one of them leading.
fn one_leader(http: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let doc = request(http, "GET", "/status", b"").json().expect("json");
        let members = doc["members"].as_array().cloned().unwrap_or_default();
        let leaders = members.iter().filter(|m| m["role"] == "leader").count();
        if members.len() == 3 && leaders == 1 {
            return doc;
        }
        assert!(
            Instant::now() < deadline,
            "no single leader among three members: {doc}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn one_process_runs_a_group_of_three_that_keeps_its_data() {
    let dir = TempDir::new("all-in-one-failover");
    let d = data(&dir, "data");
    let http = loopback(free_port()).to_string();
    let mut node = start(&d, &http);
    // The first write waits for the first election (the edge looks for a
    // leader for up to LEADER_WAIT_MS).
    let put = request(&http, "PUT", "/kv/greeting", b"hello");
    assert!(
        put.status == 200 || put.status == 201,
        "{} {}",
        put.status,
        put.text()
    );
    assert_eq!(request(&http, "GET", "/kv/greeting", b"").text(), "hello");
    one_leader(&http);
    for i in 0..3 {
        assert!(std::path::Path::new(&d)
            .join(format!("member-{i}"))
            .is_dir());
    }
    node.terminate();
    let node = start(&d, &http);
    let got = request(&http, "GET", "/kv/greeting?consistency=linearizable", b"");
    assert_eq!(
        (got.status, got.text()),
        (200, "hello".to_string()),
        "{}",
        node.log_text()
    );
    let doc = one_leader(&http);
    let term = doc["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "leader"))
        .and_then(|m| m["term"].as_u64());
    assert!(
        term >= Some(2),
        "a restarted group elects in a new term: {doc}"
    );
}

#[test]
fn fixed_role_flags_are_refused_with_failover() {
    let dir = TempDir::new("all-in-one-failover-flags");
    let out = Command::new(env!("CARGO_BIN_EXE_hypha"))
        .args(["--failover", "--data", &data(&dir, "d"), "--workers", "3"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--workers is for fixed roles"), "{err}");
}
