//! Replacing a dead member on test hosts over a Mycelium-like network (a
//! network namespace per node, 400::/7 addresses, MTU 1400), with every
//! member's `--allow` naming only the first three members and the edge:
//! the replacement's address is in no allowlist, and it gets in because
//! the member list names it. Through the edge: writes before; `hypha
//! members remove` of the dead member and `add` of the new one (run on
//! the edge's host); then the leader is SIGKILLed and the next writes and
//! linearizable reads go through the survivor and the new member.
//!
//! Needs root, iproute2 and curl (.ci/run installs them).

mod common;

use common::netns::{Net, Proc};
use common::{keygen, TempDir};
use std::time::{Duration, Instant};

const NODES: [&str; 5] = ["m0", "m1", "m2", "m3", "e"];
const TIMING: [&str; 4] = ["--heartbeat-ms", "100", "--election-timeout-ms", "600"];

fn member_addr(net: &Net, i: usize) -> String {
    format!("[{}]:7000", net.addr(i))
}

/// Starts member `i` with `--peers` (the first three) or `--join`.
fn start_member(net: &Net, dir: &TempDir, key: &str, i: usize, how: (&str, &str)) -> Proc {
    // Only the first three members and the edge: not the replacement.
    let allow = [0, 1, 2, 4]
        .iter()
        .map(|&j| format!("{}/128", net.addr(j)))
        .collect::<Vec<_>>()
        .join(",");
    let (d, listen) = (
        dir.join(NODES[i]).to_string_lossy().into_owned(),
        member_addr(net, i),
    );
    let mut args = vec![
        "member",
        "--data",
        &d,
        "--listen",
        &listen,
        how.0,
        how.1,
        "--allow",
        &allow,
        "--cluster-key-file",
        key,
    ];
    args.extend_from_slice(&TIMING);
    Proc::start(net.exec(NODES[i]), &args)
}

/// A PUT through the edge, retried until acknowledged (an election may be
/// under way).
fn put(net: &Net, url: &str, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let target = format!("{url}/kv/{key}");
        let (status, body) = net.curl("e", 3, &["-X", "PUT", "--data-binary", key, &target]);
        if status == 200 || status == 201 {
            return;
        }
        assert!(Instant::now() < deadline, "PUT {key}: {status} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The leader `/status` names, as a member index.
fn leader(net: &Net, url: &str) -> Option<usize> {
    let (_, body) = net.curl("e", 3, &[&format!("{url}/status")]);
    let doc: serde_json::Value = serde_json::from_str(&body).ok()?;
    let addr = doc["leader"].as_str()?.to_string();
    (0..4).find(|&i| addr == member_addr(net, i))
}

/// `hypha members ARGS` on the edge's host: (exit code, output).
fn members(net: &Net, key: &str, args: &[&str], via: &[usize]) -> (i32, String) {
    let via: Vec<String> = via.iter().map(|&i| member_addr(net, i)).collect();
    let out = net
        .exec("e")
        .arg(env!("CARGO_BIN_EXE_hypha"))
        .arg("members")
        .args(args)
        .args(["--member", &via.join(","), "--cluster-key-file", key])
        .output()
        .expect("run hypha members");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_dead_member_is_replaced_by_a_device_no_allowlist_names() {
    let net = Net::build(&NODES);
    let dir = TempDir::new("netns-replace");
    let (key, _) = keygen(&dir, "cluster.key");
    let peers = (0..3)
        .map(|j| member_addr(&net, j))
        .collect::<Vec<_>>()
        .join(",");
    let mut procs: Vec<Option<Proc>> = (0..3)
        .map(|i| Some(start_member(&net, &dir, &key, i, ("--peers", &peers))))
        .collect();
    let listen = format!("[{}]:8080", net.addr(4));
    let url = format!("http://{listen}");
    let edge_args = [
        "http",
        "--listen",
        &listen,
        "--members",
        &peers,
        "--cluster-key-file",
        &key,
    ];
    let edge = Proc::start(net.exec("e"), &edge_args);
    edge.wait("http: listening", Duration::from_secs(30));
    for i in 0..20 {
        put(&net, &url, &format!("before-{i}"));
    }
    let first = leader(&net, &url).expect("a leader after writes");

    // A follower dies for good; the group takes it out.
    let dead = (first + 1) % 3;
    drop(procs[dead].take());
    let (code, out) = members(
        &net,
        &key,
        &["remove", &member_addr(&net, dead)],
        &[0, 1, 2],
    );
    assert_eq!(code, 0, "remove: {out}");

    // Its replacement, at an address no member's --allow names.
    let m3 = start_member(&net, &dir, &key, 3, ("--join", &member_addr(&net, first)));
    let (code, out) = members(&net, &key, &["add", &member_addr(&net, 3)], &[first]);
    assert_eq!(
        code,
        0,
        "add: {out}\n--- new member\n{}",
        m3.log.lock().unwrap().join("\n")
    );
    assert!(out.contains("voter"), "{out}");
    for i in 0..10 {
        put(&net, &url, &format!("three-{i}"));
    }
    edge.wait(
        &format!("member {} joined the group", member_addr(&net, 3)),
        Duration::from_secs(30),
    );

    // The leader dies: the survivor and the new member carry on.
    drop(procs[first].take());
    put(&net, &url, "after");
    let now = leader(&net, &url);
    assert!(
        now.is_some_and(|l| l != first && l != dead),
        "leader after the kill: {now:?}"
    );
    for key in ["before-0", "before-19", "three-9", "after"] {
        let target = format!("{url}/kv/{key}?consistency=linearizable");
        let (status, body) = net.curl("e", 5, &[&target]);
        assert_eq!((status, body.as_str()), (200, key), "GET {key}");
    }
}
