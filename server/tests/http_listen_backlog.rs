//! The HTTP port's listen backlog holds a burst of connections (10,000
//! watchers reconnecting after an edge restart) while the edge is busy: with
//! the default backlog of 128 the kernel drops the SYNs past it and each
//! dropped client waits 1, 3, 7 s to retry.

mod common;
use common::{all_in_one, TempDir};
use rustix::process::{kill_process, Pid, Signal};
use std::net::TcpStream;
use std::time::Duration;

/// Connections made while the edge accepts none (more than 128).
const BURST: usize = 1_000;

#[test]
fn a_burst_of_connections_waits_in_the_backlog_while_the_edge_is_stopped() {
    let dir = TempDir::new("http-backlog");
    let (node, http) = all_in_one(&dir, &["--workers", "0", "--fsync", "never"]);
    let pid = Pid::from_raw(node.pid() as i32).expect("pid");
    // Stopped, the edge accepts nothing: every handshake the kernel completes
    // waits in the backlog.
    kill_process(pid, Signal::STOP).expect("SIGSTOP");
    let mut held = Vec::new();
    let mut failed = None;
    for i in 0..BURST {
        match TcpStream::connect_timeout(&http, Duration::from_secs(3)) {
            Ok(s) => held.push(s),
            Err(e) => {
                failed = Some(format!("connection {i}: {e}"));
                break;
            }
        }
    }
    kill_process(pid, Signal::CONT).expect("SIGCONT");
    assert_eq!(failed, None, "the backlog held {} connections", held.len());
}
