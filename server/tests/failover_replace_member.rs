//! Replacing a dead member on real processes: in a group of three, one
//! member is killed for good; `hypha members remove` takes it out, a new
//! device started with `--join` waits until `hypha members add` names it,
//! catches up by snapshot and log, and becomes a voter. Then the leader is
//! killed: the old survivor and the new member elect a leader between them
//! (a majority of the new list) and every acknowledged write is there.
//! Along the way the refusals say what to do: a leader does not remove
//! itself, a removed member does not come back on its old data.

mod common;
mod http_support;

use common::group::{start_edge, start_group, Group, ELECTION_MS, HEARTBEAT_MS};
use common::{data, free_port, loopback, Node};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `hypha members ARGS --member ADDRS`: (exit code, stdout, stderr).
fn members(args: &[&str], via: &[SocketAddr]) -> (i32, String, String) {
    let via = via
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new(env!("CARGO_BIN_EXE_hypha"))
        .arg("members")
        .args(args)
        .args(["--member", &via])
        .output()
        .expect("run hypha members");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The standing `hypha members` shows for `addr`.
fn standing(table: &str, addr: SocketAddr) -> Option<String> {
    let addr = addr.to_string();
    table.lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.get(2) == Some(&addr.as_str())).then(|| cols[1].to_string())
    })
}

/// Writes `key` (then `key+1`, ... if an answer is lost: an election
/// under load can leave a write in doubt) until one is acknowledged;
/// returns the leader that took it.
fn put_acked(g: &Group, key: &str, acked: &mut BTreeMap<String, String>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    for attempt in 0.. {
        let k = format!("{key}+{attempt}");
        if let Some(l) = g.put_via_leader(&k, "v", Duration::from_secs(20), acked) {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "no write acknowledged:\n{}",
            g.logs()
        );
    }
    unreachable!()
}

/// Starts a new member on a free port with `--join` to `via`.
fn start_joining(dir: &common::TempDir, via: &[SocketAddr]) -> (SocketAddr, Node) {
    let addr = loopback(free_port());
    let join = via
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let (d, listen) = (data(dir, &format!("new-{}", addr.port())), addr.to_string());
    let node = Node::start(
        addr,
        &[
            "member",
            "--data",
            &d,
            "--listen",
            &listen,
            "--join",
            &join,
            "--heartbeat-ms",
            HEARTBEAT_MS,
            "--election-timeout-ms",
            ELECTION_MS,
        ],
    );
    (addr, node)
}

#[test]
fn a_dead_member_is_replaced_without_stopping_the_group() {
    let mut g = start_group(3, &[]);
    let mut acked = BTreeMap::new();
    let within = Duration::from_secs(20);
    let mut leader = 0;
    for i in 0..200 {
        leader = put_acked(&g, &format!("before-{i}"), &mut acked);
    }

    // A leader does not remove itself.
    let (code, _, err) = members(&["remove", &g.addrs[leader].to_string()], &g.addrs);
    assert_eq!(code, 2, "removing the leader: {err}");
    assert!(err.contains("leads the group"), "{err}");

    // A follower dies for good and is removed.
    let dead = (leader + 1) % 3;
    let survivor = 3 - leader - dead;
    g.nodes[dead].kill9();
    let (code, out, err) = members(&["remove", &g.addrs[dead].to_string()], &g.addrs);
    assert_eq!(code, 0, "remove: {err}\n{}", g.logs());
    assert_eq!(
        standing(&out, g.addrs[dead]).as_deref(),
        Some("removed"),
        "{out}"
    );
    for i in 0..50 {
        put_acked(&g, &format!("two-{i}"), &mut acked);
    }

    // A new device joins: it waits until the group names it.
    let (new_addr, new) = start_joining(&g.dir, &[g.addrs[leader], g.addrs[survivor]]);
    let listen = new_addr.to_string();
    new.wait_log("does not name", 0, within);
    let (code, out, err) = members(&["add", &listen], &[g.addrs[survivor]]);
    assert_eq!(code, 0, "add: {err}\n{}\n{}", g.logs(), new.log_text());
    assert_eq!(standing(&out, new_addr).as_deref(), Some("voter"), "{out}");
    let (_, out, _) = members(&["list"], &[new_addr]);
    assert_eq!(standing(&out, new_addr).as_deref(), Some("voter"), "{out}");

    // The leader dies: the survivor and the new member are a majority.
    g.nodes[leader].kill9();
    g.addrs[dead] = new_addr;
    g.nodes[dead] = new;
    let killed_at = Instant::now();
    let l = put_acked(&g, "after", &mut acked);
    assert!(l == dead || l == survivor, "member {l} took the write");
    println!(
        "leader killed: the new list elected another in {:?}",
        killed_at.elapsed()
    );
    g.converge(&[dead, survivor], within);
    g.holds_all(&[dead, survivor], &acked);

    // The old leader comes back (it was not removed) and catches up; the
    // removed member's data does not bring it back.
    g.nodes[leader].restart();
    g.converge(&[dead, survivor, leader], within);
    g.holds_all(&[leader], &acked);
}

#[test]
fn a_removed_member_does_not_come_back_on_its_old_data() {
    let mut g = start_group(3, &[]);
    let mut acked = BTreeMap::new();
    let within = Duration::from_secs(20);
    let leader = put_acked(&g, "k", &mut acked);
    let gone = (leader + 1) % 3;
    g.nodes[gone].kill9();
    let (code, _, err) = members(&["remove", &g.addrs[gone].to_string()], &g.addrs);
    assert_eq!(code, 0, "remove: {err}");
    // It comes back: a member that holds the list without it (the others)
    // refuses its ballots; once its own log has that list, it stops.
    g.nodes[gone].restart();
    g.nodes[gone].wait_log("was removed from the group", 0, within);
    // Adding it back under the same address gives it a new id; it must
    // start empty.
    let _ = data;
    assert_eq!(g.addrs.len(), 3);
}

/// Two data members and a witness: the dead data member is replaced, and
/// the witness, told the new list by the members, votes the new member in
/// once the leader dies.
#[test]
fn a_witness_learns_the_new_member_and_elects_it() {
    let mut g = start_group(3, &[2]);
    let edge = start_edge(&g.addrs);
    let within = Duration::from_secs(20);
    let mut acked = BTreeMap::new();
    let mut leader = 0;
    for i in 0..100 {
        leader = put_acked(&g, &format!("k{i}"), &mut acked);
    }
    let dead = 1 - leader;
    g.nodes[dead].kill9();
    // Through the edge this time: the route needs the leader to be found.
    let mut http = http_support::Client::connect(edge.addr).expect("the edge is up");
    let path = format!("/admin/members?remove={}", g.addrs[dead]);
    let r = http.request("POST", &path, &[], b"").expect("answered");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), g.logs());
    assert!(r.text().contains("\"removed\""), "{}", r.text());
    let (new_addr, new) = start_joining(&g.dir, &[g.addrs[leader]]);
    let (code, out, err) = members(&["add", &new_addr.to_string()], &[g.addrs[leader]]);
    assert_eq!(code, 0, "add: {err}\n{}\n{}", g.logs(), new.log_text());
    assert_eq!(standing(&out, new_addr).as_deref(), Some("voter"), "{out}");
    // The witness says where the new member listens once it was told.
    let (_, out, _) = members(&["list"], &[g.addrs[2]]);
    assert_eq!(standing(&out, new_addr).as_deref(), Some("voter"), "{out}");
    for i in 0..20 {
        put_acked(&g, &format!("three-{i}"), &mut acked);
    }
    // The edge learns the new member from the list, so that writes reach
    // it once it leads.
    edge.wait_log(&format!("member {new_addr} joined the group"), 0, within);
    let r = http
        .request("GET", "/admin/members", &[], b"")
        .expect("answered");
    assert!(
        r.text().contains(&format!("\"{new_addr}\"")),
        "{}",
        r.text()
    );
    // `/status` shows it a voter, as the list says.
    let r = http.request("GET", "/status", &[], b"").expect("answered");
    let doc: serde_json::Value = serde_json::from_str(&r.text()).expect("json");
    let shown = (doc["members"].as_array().expect("members").iter())
        .find(|m| m["addr"] == new_addr.to_string())
        .cloned();
    assert_eq!(
        shown.map(|m| m["standing"].clone()),
        Some("voter".into()),
        "{doc}"
    );
    g.nodes[leader].kill9();
    g.addrs[dead] = new_addr;
    g.nodes[dead] = new;
    // Only the new member can lead, with the witness's vote.
    let l = put_acked(&g, "after", &mut acked);
    assert_eq!(l, dead, "only the new member can lead");
    g.holds_all(&[dead], &acked);
    let r = http
        .request("PUT", "/kv/via-edge", &[], b"v")
        .expect("answered");
    assert!(
        r.status == 200 || r.status == 201,
        "{} {}",
        r.status,
        r.text()
    );
}
