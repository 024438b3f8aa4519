//! Linearizability on real processes: three `hypha member`s and an edge
//! (`hypha http --members`) on loopback; client threads write and read
//! (`consistency=linearizable`) a few keys over HTTP while the leader is
//! killed with SIGKILL and restarted, again and again. Every operation's
//! invocation and return is recorded; stateright's `LinearizabilityTester`
//! then checks each key's history (linearizability is local: a history is
//! linearizable iff each key's is). An operation whose outcome is unknown
//! (a 503, a connection cut) stays in flight forever: the checker lets it
//! take effect or not.
//!
//! CI runs a few kills; `HYPHA_LINEARIZABLE_KILLS=30 cargo test --release
//! -p hypha-server --test failover_linearizable -- --nocapture` is longer.

mod common;
mod http_support;

use common::group::{start_edge, start_group};
use common::history::{self, Op as RegisterOp, Outcome, Ret as RegisterRet, Value};
use common::Node;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Clients writing and reading at once.
const CLIENTS: usize = 3;

/// The member that most recently logged that it leads (highest term).
fn leader(nodes: &[Node]) -> Option<usize> {
    let term_of = |n: &Node| {
        n.log_text()
            .lines()
            .filter_map(|l| l.split("leads term ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .max()
    };
    (0..nodes.len())
        .filter_map(|i| term_of(&nodes[i]).map(|t| (t, i)))
        .max()
        .map(|(_, i)| i)
}

fn perform(
    c: &mut Option<http_support::Client>,
    edge: SocketAddr,
    key: &str,
    op: &RegisterOp<Value>,
) -> Outcome {
    let client = match c {
        Some(c) => c,
        None => match http_support::Client::connect(edge) {
            Ok(new) => c.insert(new),
            Err(_) => return Outcome::Unknown,
        },
    };
    static READS: AtomicUsize = AtomicUsize::new(0);
    let by_history =
        matches!(op, RegisterOp::Read) && READS.fetch_add(1, Ordering::Relaxed) % 2 == 1;
    let reply = match op {
        RegisterOp::Write(v) => {
            let body = v.as_deref().unwrap_or_default().as_bytes();
            client.request("PUT", &format!("/kv/{key}"), &[], body)
        }
        // Every other read asks for the key's newest version by history.
        RegisterOp::Read if by_history => client.request(
            "GET",
            &format!("/kv/{key}?history=1&consistency=linearizable"),
            &[],
            b"",
        ),
        RegisterOp::Read => client.request(
            "GET",
            &format!("/kv/{key}?consistency=linearizable"),
            &[],
            b"",
        ),
    };
    let reply = match reply {
        Ok(r) => r,
        Err(_) => {
            *c = None;
            return Outcome::Unknown;
        }
    };
    match (op, reply.status) {
        (RegisterOp::Write(_), 200 | 201) => Outcome::Done(RegisterRet::WriteOk),
        (RegisterOp::Read, 200) if by_history => {
            Outcome::Done(RegisterRet::ReadOk(newest_version(&reply)))
        }
        (RegisterOp::Read, 200) => Outcome::Done(RegisterRet::ReadOk(Some(reply.text()))),
        (RegisterOp::Read, 404) => Outcome::Done(RegisterRet::ReadOk(None)),
        (_, 503 | 504) => Outcome::Unknown,
        (_, status) => panic!("{op:?} on {key}: unexpected {status}: {}", reply.text()),
    }
}

/// The value of the newest version in a `?history=1` answer (`None`: a
/// delete).
fn newest_version(reply: &http_support::Reply) -> Option<String> {
    use base64::Engine as _;
    let doc = reply.json().expect("history JSON");
    let newest = &doc["versions"][0];
    let value = newest["value"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .expect("base64 value");
    Some(String::from_utf8(bytes).expect("utf-8 value"))
}

/// A linearizable listing through the edge holds every key a linearizable
/// GET finds.
fn listing_holds_every_key(edge: SocketAddr, keys: &[String]) {
    let mut client = http_support::Client::connect(edge).expect("edge");
    let mut listed = String::new();
    let mut cursor = String::new();
    loop {
        let target = format!("/kv?limit=1000&consistency=linearizable{cursor}");
        let page = client.request("GET", &target, &[], b"").expect("listing");
        assert_eq!(page.status, 200, "{}", page.text());
        let doc = page.json().expect("listing JSON");
        listed += &doc["keys"].to_string();
        match doc["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    for key in keys {
        let got = client
            .request(
                "GET",
                &format!("/kv/{key}?consistency=linearizable"),
                &[],
                b"",
            )
            .expect("get");
        if got.status == 200 {
            assert!(
                listed.contains(&format!("\"{key}\"")),
                "{key} missing from {listed}"
            );
        }
    }
}

#[test]
fn histories_through_leader_kills_are_linearizable() {
    let kills: usize = std::env::var("HYPHA_LINEARIZABLE_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let group = start_group(3, &[]);
    let (addrs, mut nodes) = (group.addrs.clone(), group.nodes);
    let edge = start_edge(&addrs);
    let edge_addr = edge.addr;
    let deadline = Instant::now() + Duration::from_secs(20);
    while leader(&nodes).is_none() {
        assert!(Instant::now() < deadline, "no member was elected");
        std::thread::sleep(Duration::from_millis(20));
    }
    let testers = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (t, s) = (testers.clone(), stop.clone());
            let seed = 0x9e37_79b9 + c as u64;
            std::thread::spawn(move || {
                let mut conn = None;
                history::run_client(c, t, s, seed, start, |key, op| {
                    perform(&mut conn, edge_addr, key, op)
                })
            })
        })
        .collect();
    let mut killed_terms = BTreeMap::new();
    for k in 0..kills {
        std::thread::sleep(Duration::from_millis(700));
        let Some(l) = leader(&nodes) else { continue };
        nodes[l].kill9();
        killed_terms.insert(k, l);
        std::thread::sleep(Duration::from_millis(400));
        nodes[l].restart();
    }
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    let (mut done, mut unknown) = (0, 0);
    for c in clients {
        let (d, u) = c.join().expect("client");
        (done, unknown) = (done + d, unknown + u);
    }
    let all: Vec<String> = testers.lock().expect("testers").keys().cloned().collect();
    let keys = history::check(&testers);
    println!(
        "{done} operations answered, {unknown} with an unknown outcome, on {keys} keys, over {} \
         leader kills: every key's history is linearizable",
        killed_terms.len()
    );
    assert!(done > 100, "too few operations to check anything: {done}");
    listing_holds_every_key(edge_addr, &all);
    status_names_one_leader(edge_addr, &addrs, killed_terms.len());
}

/// The edge's `/status` lists every member, exactly one of them leading,
/// in a term past the first, and counts the leader changes it saw.
fn status_names_one_leader(edge: SocketAddr, addrs: &[SocketAddr], kills: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = http_support::Client::connect(edge).expect("edge");
        let reply = c.request("GET", "/status", &[], b"").expect("status");
        let doc = reply.json().expect("status JSON");
        let members = doc["members"].as_array().cloned().unwrap_or_default();
        let leaders: Vec<_> = members.iter().filter(|m| m["role"] == "leader").collect();
        let listed: Vec<String> = members
            .iter()
            .filter_map(|m| m["addr"].as_str().map(String::from))
            .collect();
        let expected: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        let settled = leaders.len() == 1
            && members.iter().all(|m| m["role"] != "unreachable")
            && leaders[0]["term"].as_u64() > Some(1)
            && doc["leader_changes"].as_u64() >= Some(kills.min(1) as u64);
        if settled {
            assert_eq!(listed, expected, "{doc}");
            assert_eq!(doc["leader"], leaders[0]["addr"], "{doc}");
            let leader_row = doc["workers"]
                .as_array()
                .and_then(|ws| ws.iter().find(|w| w["addr"] == leaders[0]["addr"]).cloned());
            if let Some(row) = leader_row {
                assert_eq!(
                    &row["lag"],
                    &serde_json::json!(0),
                    "the leader lags itself: {doc}"
                );
            }
            return;
        }
        assert!(Instant::now() < deadline, "/status never settled: {doc}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
