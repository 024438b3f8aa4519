//! HTTP abuse against the real binary: 1,000 idle connections from one
//! address do not stop clients on other addresses, oversized heads and
//! bodies get 431/414/413, and the server's memory stays bounded throughout.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Idle connections opened at once.
const IDLE_CONNECTIONS: usize = 1_000;
/// How much the server's resident memory may grow under the abuse.
const RSS_GROWTH_BYTES_MAX: u64 = 64 << 20;

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Sends raw bytes and returns the status code of the answer.
fn status_of(addr: std::net::SocketAddr, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(request);
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let head = String::from_utf8_lossy(&buf[..got]).into_owned();
    head.get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"))
}

#[test]
fn idle_connections_and_oversized_requests_do_not_hurt_other_clients() {
    let dir = TempDir::new("abuse");
    let port = free_port();
    let http = loopback(port).to_string();
    let data = data(&dir, "d");
    let node = Node::start(
        loopback(port),
        &["--data", &data, "--http", &http, "--value-max", "100000"],
    );
    node.wait_log("http: listening", 0, Duration::from_secs(30));
    let pid = node.child.id();
    let before = rss_bytes(pid);

    let idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .map(|_| TcpStream::connect(node.addr).expect("idle connect"))
        .collect();
    // A client on another address is served at once; one more from the
    // flooding address is told why it is not.
    let start = Instant::now();
    let url = format!("http://{http}/ping");
    let other = std::process::Command::new("curl")
        .args([
            "-s",
            "-m",
            "5",
            "--interface",
            "127.0.0.2",
            "-w",
            "%{http_code}",
            &url,
        ])
        .output()
        .expect("curl");
    assert!(
        String::from_utf8_lossy(&other.stdout).ends_with("pong\"}\n200"),
        "{other:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "a normal client waited {:?}",
        start.elapsed()
    );
    let same = std::process::Command::new("curl")
        .args(["-s", "-m", "5", &url])
        .output()
        .expect("curl");
    // Refused: a 503 that names --connections-per-addr, or, while the
    // refusals to the flood's own connections are being written, a close.
    let refusal = String::from_utf8_lossy(&same.stdout);
    assert!(
        refusal.is_empty() || refusal.contains("--connections-per-addr"),
        "{refusal}"
    );
    let after = rss_bytes(pid);
    assert!(
        after < before + RSS_GROWTH_BYTES_MAX,
        "RSS grew from {before} to {after} bytes with {IDLE_CONNECTIONS} idle connections"
    );
    drop(idle);

    let long_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(6000));
    let big_head = format!(
        "GET /ping HTTP/1.1\r\nHost: x\r\nX-Junk: {}\r\n\r\n",
        "b".repeat(9000)
    );
    let big_body = "PUT /kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n";
    for _ in 0..50 {
        assert_eq!(status_of(node.addr, long_line.as_bytes()), 414);
        assert_eq!(status_of(node.addr, big_head.as_bytes()), 431);
        assert_eq!(status_of(node.addr, big_body.as_bytes()), 413);
    }
    assert_eq!(
        status_of(
            node.addr,
            b"PUT /kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"
        ),
        201
    );
    assert_eq!(
        status_of(node.addr, b"GET /kv/k HTTP/1.1\r\nHost: x\r\n\r\n"),
        200
    );
}
