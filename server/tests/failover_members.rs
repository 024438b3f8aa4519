//! Failover on real processes: three `hypha member`s on loopback elect a
//! leader, take writes through it, and elect another when it is killed
//! (SIGKILL); a restarted member rejoins as a follower. Every write the
//! group acknowledged is on every member at the end.
//!
//! CI runs a few kills; `HYPHA_FAILOVER_KILLS=50 cargo test --release -p
//! hypha-server --test failover_members -- --nocapture` is the long run.

mod common;

use common::{data, free_port, loopback, Client, Node, TempDir};
use hypha_net::Message;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const HEARTBEAT_MS: &str = "50";
const ELECTION_MS: &str = "300";

struct Group {
    _dir: TempDir,
    nodes: Vec<Node>,
    addrs: Vec<SocketAddr>,
}

fn start_group(n: usize) -> Group {
    let dir = TempDir::new("failover");
    let addrs: Vec<SocketAddr> = (0..n).map(|_| loopback(free_port())).collect();
    let peers = addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let nodes = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let (d, listen) = (data(&dir, &format!("m{i}")), a.to_string());
            let args = [
                "member",
                "--data",
                &d,
                "--listen",
                &listen,
                "--peers",
                &peers,
                "--heartbeat-ms",
                HEARTBEAT_MS,
                "--election-timeout-ms",
                ELECTION_MS,
            ];
            Node::start(*a, &args)
        })
        .collect();
    Group {
        _dir: dir,
        nodes,
        addrs,
    }
}

/// What a write through member `addr` came to.
enum Put {
    Acked,
    /// Refused or not answered: it may or may not be in the log.
    Unknown,
    /// The member does not lead (it said so before writing anything).
    NotLeader,
}

fn put(addr: SocketAddr, key: &str, value: &str) -> Put {
    let Ok(mut c) = Client::connect(addr) else {
        return Put::NotLeader;
    };
    let answer = c.try_call(|req_id| Message::Put {
        req_id,
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    });
    match answer {
        Ok(Message::Written { .. }) => Put::Acked,
        Ok(Message::Error {
            code: hypha_net::ErrorCode::NotMaster,
            ..
        }) => Put::NotLeader,
        _ => Put::Unknown,
    }
}

/// Writes `key` through whichever member leads, within `within`; the
/// leader's index, or `None` if the write's outcome is unknown.
fn put_via_leader(
    g: &Group,
    key: &str,
    value: &str,
    within: Duration,
    acked: &mut BTreeMap<String, String>,
) -> Option<usize> {
    let deadline = Instant::now() + within;
    loop {
        for (i, a) in g.addrs.iter().enumerate() {
            match put(*a, key, value) {
                Put::Acked => {
                    acked.insert(key.to_string(), value.to_string());
                    return Some(i);
                }
                Put::Unknown => return None,
                Put::NotLeader => {}
            }
        }
        assert!(
            Instant::now() < deadline,
            "no member took a write within {within:?}; logs:\n{}",
            g.nodes
                .iter()
                .enumerate()
                .map(|(i, n)| format!("--- member {i}\n{}", n.log_text()))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until every member holds the same live pairs at the same seq.
fn converge(g: &Group, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let states: Vec<Option<(u64, u64)>> = g
            .addrs
            .iter()
            .map(|a| Client::connect(*a).ok().and_then(|mut c| c.try_digest()))
            .collect();
        if states.iter().all(|s| s.is_some() && *s == states[0]) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "members did not converge within {within:?}: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_leader_is_replaced_and_no_acknowledged_write_is_lost() {
    let kills: usize = std::env::var("HYPHA_FAILOVER_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let mut g = start_group(3);
    let mut acked = BTreeMap::new();
    let mut unknown = 0;
    let mut failovers = Vec::new();
    let first = put_via_leader(&g, "first", "1", Duration::from_secs(20), &mut acked);
    let mut leader = first.expect("the first write was answered");
    for round in 0..kills {
        for i in 0..30 {
            let (k, v) = (format!("r{round}-k{i}"), format!("v{round}-{i}"));
            match put_via_leader(&g, &k, &v, Duration::from_secs(20), &mut acked) {
                Some(l) => leader = l,
                None => unknown += 1,
            }
        }
        let killed = leader;
        g.nodes[killed].kill9();
        let killed_at = Instant::now();
        let key = format!("after-kill-{round}");
        let new_leader = put_via_leader(&g, &key, "x", Duration::from_secs(20), &mut acked);
        failovers.push(killed_at.elapsed());
        if let Some(l) = new_leader {
            assert_ne!(l, killed, "the killed member cannot have taken the write");
            leader = l;
        } else {
            unknown += 1;
        }
        // The killed member comes back and follows.
        g.nodes[killed].restart();
    }
    converge(&g, Duration::from_secs(30));
    for (i, a) in g.addrs.iter().enumerate() {
        let mut c = Client::connect(*a).expect("connect");
        for (k, v) in &acked {
            assert_eq!(
                c.get(k.as_bytes()).as_deref(),
                Some(v.as_bytes()),
                "member {i} lost acknowledged write {k}"
            );
        }
    }
    failovers.sort();
    println!(
        "{} acknowledged writes ({unknown} unanswered), {kills} leader kills; time from a kill to \
         the next acknowledged write: min {:?}, median {:?}, max {:?}",
        acked.len(),
        failovers.first(),
        failovers.get(failovers.len() / 2),
        failovers.last()
    );
}
