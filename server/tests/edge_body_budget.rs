//! Unfinished bodies cannot grow the edge past its body budget: requests
//! beyond it get 503 with Retry-After before their body is read, other
//! clients are served meanwhile, and a JSON body of millions of tiny values
//! is refused without being parsed.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const BUDGET_MB: u64 = 16;
const VALUE_MAX: usize = 4_000_000;
/// Connections that each announce a whole value and send most of it.
const FLOODERS: usize = 40;
const SENT_BYTES: usize = 3_500_000;

fn status_line(s: &mut TcpStream) -> String {
    let mut buf = [0u8; 512];
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&buf[..got]).into_owned()
}

#[test]
fn unfinished_bodies_stay_within_the_budget_and_others_are_served() {
    let dir = TempDir::new("body-budget");
    let port = free_port();
    let http = loopback(port).to_string();
    let data = data(&dir, "d");
    let (budget, value_max) = (BUDGET_MB.to_string(), VALUE_MAX.to_string());
    let node = Node::start(
        loopback(port),
        &[
            "--data",
            &data,
            "--http",
            &http,
            "--value-max",
            &value_max,
            "--body-budget-mb",
            &budget,
        ],
    );
    node.wait_log("http: listening", 0, Duration::from_secs(30));
    let pid = node.child.id();
    let before = rss_anon_kib(pid);

    let head = format!("PUT /kv/big HTTP/1.1\r\nHost: x\r\nContent-Length: {VALUE_MAX}\r\n\r\n");
    let chunk = vec![b'x'; SENT_BYTES];
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..FLOODERS {
        let mut s = TcpStream::connect(node.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        s.write_all(head.as_bytes()).expect("head");
        // A refused request is answered before its body is read; the
        // server then closes, so this write may fail.
        let _ = s.write_all(&chunk);
        let answer = status_line(&mut s);
        if answer.starts_with("HTTP/1.1 503") {
            assert!(answer.contains("Retry-After"), "{answer}");
            refused += 1;
        } else {
            assert!(
                answer.is_empty(),
                "an unfinished body was answered: {answer}"
            );
            held.push(s);
        }
    }
    let budget_bytes = (BUDGET_MB << 20) as usize;
    assert!(
        held.len() <= budget_bytes / VALUE_MAX,
        "{} bodies held",
        held.len()
    );
    assert_eq!(held.len() + refused, FLOODERS);

    let grown_kib = rss_anon_kib(pid).saturating_sub(before);
    // The budget plus room for the allocator's slack; without the budget
    // the 40 bodies held ~140 MB.
    let allowed_kib = (BUDGET_MB + 16) * 1024;
    assert!(
        grown_kib < allowed_kib,
        "anonymous memory grew by {grown_kib} KiB with {FLOODERS} unfinished bodies"
    );

    // Others are served meanwhile, and a JSON flood is refused unparsed.
    let start = Instant::now();
    let mut s = TcpStream::connect(node.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"PUT /kv/small HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
        .expect("put");
    assert!(status_line(&mut s).starts_with("HTTP/1.1 201"));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "served in {:?}",
        start.elapsed()
    );
    // The flooders leave; their share of the budget comes back.
    drop(held);
    let flood = [b"[".as_slice(), &b"0,".repeat(1_000_000), b"0]"].concat();
    let head = format!(
        "POST /fetch HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        flood.len()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let mut s = TcpStream::connect(node.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(head.as_bytes()).expect("head");
        let _ = s.write_all(&flood);
        let answer = status_line(&mut s);
        if !answer.starts_with("HTTP/1.1 503") || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}
