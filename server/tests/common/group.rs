//! A failover group of `hypha member`s (and witnesses) on loopback, and
//! writes through whichever member leads.

use super::{data, free_port, loopback, Client, Node, TempDir};
use hypha_net::Message;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Heartbeats and election timeout of test groups (fast, for CI).
pub const HEARTBEAT_MS: &str = "50";
pub const ELECTION_MS: &str = "300";

pub struct Group {
    pub dir: TempDir,
    pub nodes: Vec<Node>,
    pub addrs: Vec<SocketAddr>,
}

/// Starts `n` members; those in `witnesses` run `hypha witness`.
pub fn start_group(n: usize, witnesses: &[usize]) -> Group {
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
            let role = if witnesses.contains(&i) {
                "witness"
            } else {
                "member"
            };
            let args = [
                role,
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
    Group { dir, nodes, addrs }
}

/// What a write through member `addr` came to.
pub enum Put {
    Acked,
    /// Refused or not answered (why): it may or may not be in the log.
    Unknown(String),
    /// The member does not lead (it said so before writing anything).
    NotLeader,
}

pub fn put(addr: SocketAddr, key: &str, value: &str) -> Put {
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
        Ok(other) => Put::Unknown(format!("{addr} answered {other:?}")),
        Err(e) => Put::Unknown(format!("{addr}: {e}")),
    }
}

/// Starts `hypha http --members` for the members at `addrs`, listening.
pub fn start_edge(addrs: &[SocketAddr]) -> Node {
    let edge_addr = loopback(free_port());
    let members = addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let listen = edge_addr.to_string();
    let edge = Node::start(
        edge_addr,
        &["http", "--listen", &listen, "--members", &members],
    );
    edge.wait_log("http: listening", 0, Duration::from_secs(30));
    edge
}

impl Group {
    /// Every member's log, for a failure message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- member {i}\n{}", n.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Writes `key` through whichever member leads, within `within`; the
    /// leader's index, or `None` if the write's outcome is unknown.
    pub fn put_via_leader(
        &self,
        key: &str,
        value: &str,
        within: Duration,
        acked: &mut BTreeMap<String, String>,
    ) -> Option<usize> {
        self.try_put_via_leader(key, value, within, acked).ok()
    }

    /// As [`Group::put_via_leader`], with why the outcome is unknown.
    pub fn try_put_via_leader(
        &self,
        key: &str,
        value: &str,
        within: Duration,
        acked: &mut BTreeMap<String, String>,
    ) -> Result<usize, String> {
        let deadline = Instant::now() + within;
        loop {
            for (i, a) in self.addrs.iter().enumerate() {
                match put(*a, key, value) {
                    Put::Acked => {
                        acked.insert(key.to_string(), value.to_string());
                        return Ok(i);
                    }
                    Put::Unknown(why) => return Err(why),
                    Put::NotLeader => {}
                }
            }
            assert!(
                Instant::now() < deadline,
                "no member took a write within {within:?}; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the members `which` hold the same live pairs at the same
    /// seq.
    pub fn converge(&self, which: &[usize], within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let states: Vec<Option<(u64, u64)>> = which
                .iter()
                .map(|&i| {
                    Client::connect(self.addrs[i])
                        .ok()
                        .and_then(|mut c| c.try_digest())
                })
                .collect();
            if states.iter().all(|s| s.is_some() && *s == states[0]) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "members {which:?} did not converge within {within:?}: {states:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Checks every acknowledged write on each member in `which`.
    pub fn holds_all(&self, which: &[usize], acked: &BTreeMap<String, String>) {
        for &i in which {
            let mut c = Client::connect(self.addrs[i]).expect("connect");
            for (k, v) in acked {
                assert_eq!(
                    c.get(k.as_bytes()).as_deref(),
                    Some(v.as_bytes()),
                    "member {i} lost acknowledged write {k}"
                );
            }
        }
    }
}
