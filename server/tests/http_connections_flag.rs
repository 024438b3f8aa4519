//! `--http-connections N` lets an edge hold N client connections even when
//! it was started with a lower soft open-file limit (the edge raises it, up
//! to the hard limit, and logs that it did); connection N + 1 gets a 503
//! that names the flag.

mod common;
use common::{all_in_one, TempDir};
use rustix::process::{getrlimit, setrlimit, Resource};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The soft open-file limit the node starts with.
const SOFT_AT_START: u64 = 256;
/// Connections the test holds open at once: more than `SOFT_AT_START`.
const HELD: usize = 600;

fn ping(s: &mut TcpStream) -> String {
    s.write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn an_edge_holds_as_many_connections_as_the_flag_says() {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= 2 * HELD as u64 + 1024,
        "this test needs a hard open-file limit of at least {} (ulimit -Hn is {hard})",
        2 * HELD + 1024
    );
    let dir = TempDir::new("http-connections");
    let cap = (HELD + 1).to_string();
    // The node inherits a low soft limit (this test is alone in its binary,
    // so lowering its own limit for the spawn affects no other test).
    let mut low = limit;
    low.current = Some(SOFT_AT_START);
    setrlimit(Resource::Nofile, low).expect("lower the soft limit");
    let more = [
        "--workers",
        "1",
        "--fsync",
        "never",
        "--http-connections",
        &cap,
    ];
    let (node, http) = all_in_one(
        &dir,
        &[&more[..], &["--connections-per-addr", &cap]].concat(),
    );
    setrlimit(Resource::Nofile, limit).expect("restore the soft limit");
    node.wait_log("open-file limit raised from 256", 0, Duration::from_secs(1));

    let mut held = Vec::new();
    for i in 0..HELD {
        let mut s = TcpStream::connect(http).expect("connect");
        let answer = ping(&mut s);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "connection {i}: {answer:?}\n{}",
            node.log_text()
        );
        held.push(s);
    }
    // One more still fits (the cap is HELD + 1); the next is refused.
    let mut last = TcpStream::connect(http).expect("connect");
    assert!(ping(&mut last).starts_with("HTTP/1.1 200"));
    let mut over = TcpStream::connect(http).expect("connect");
    let refused = ping(&mut over);
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused:?}");
    let mut body = String::new();
    let _ = over.read_to_string(&mut body);
    assert!((refused + &body).contains("--http-connections"), "{body:?}");
    // Every held connection is still open and answers.
    let alive = held
        .iter_mut()
        .map(ping)
        .filter(|a| a.starts_with("HTTP/1.1 200"));
    assert_eq!(alive.count(), HELD, "{}", node.log_text());
}
