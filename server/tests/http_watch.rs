//! Watches through real processes: `GET /watch/{prefix}` streams puts,
//! deletes, atomic batches (one event), expiries and refreshes as
//! Server-Sent Events (or NDJSON); a watcher resumes with `Last-Event-ID`
//! after a worker restart and an edge restart without losing or repeating
//! an event; a cursor below compaction is 410 with the earliest one; a
//! watcher that stops reading is cut while memory stays bounded; a
//! blocking read answers when its key changes; shutdown ends streams.

mod common;

use common::{data, free_port, loopback, rss_anon_kib, start_roles, Node, TempDir};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One watch stream, read as it comes.
struct Watcher {
    s: TcpStream,
    buf: Vec<u8>,
}

/// An event: its id (SSE) and its JSON.
type Event = (Option<u64>, Value);

impl Watcher {
    fn open(edge: SocketAddr, target: &str, headers: &str) -> (u16, Watcher) {
        let mut s = TcpStream::connect(edge).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let req = format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
        s.write_all(req.as_bytes()).expect("send");
        let mut w = Watcher { s, buf: Vec::new() };
        let end = loop {
            if let Some(p) = find(&w.buf, b"\r\n\r\n") {
                break p + 4;
            }
            w.more();
        };
        let head = String::from_utf8_lossy(&w.buf[..end]).into_owned();
        w.buf.drain(..end);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        (status, w)
    }

    fn more(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        let n = self.s.read(&mut chunk).expect("read");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// The next SSE event (comments skipped), `None` at the end.
    fn next_sse(&mut self) -> Option<Event> {
        loop {
            if let Some(p) = find(&self.buf, b"\n\n") {
                let block = String::from_utf8_lossy(&self.buf[..p]).into_owned();
                self.buf.drain(..p + 2);
                let mut id = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v).ok();
                    }
                }
                match data {
                    Some(d) => return Some((id, d)),
                    None => continue, // a keep-alive comment
                }
            }
            if self.more() == 0 {
                return None;
            }
        }
    }

    /// The next NDJSON line that is an object.
    fn next_line(&mut self) -> Option<Value> {
        loop {
            if let Some(p) = find(&self.buf, b"\n") {
                let line = String::from_utf8_lossy(&self.buf[..p]).into_owned();
                self.buf.drain(..p + 1);
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    return Some(v);
                }
                continue;
            }
            if self.more() == 0 {
                return None;
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One request on a fresh connection: status and body.
fn request(edge: SocketAddr, method: &str, target: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(edge).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    s.write_all(body).expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let end = find(&out, b"\r\n\r\n").expect("a head") + 4;
    let status = String::from_utf8_lossy(&out[..end])
        .split(' ')
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    (status, out[end..].to_vec())
}

fn all_in_one(dir: &TempDir, name: &str) -> (Node, SocketAddr) {
    let http = loopback(free_port());
    let listen = http.to_string();
    let d = data(dir, name);
    let node = Node::start(http, &["--data", &d, "--http", &listen, "--workers", "1"]);
    node.wait_log("http: listening", 0, Duration::from_secs(30));
    (node, http)
}

fn types(v: &Value) -> Vec<String> {
    let changes = v["changes"].as_array().cloned().unwrap_or_default();
    changes
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["type"].as_str().unwrap_or("?"),
                c["key"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

#[test]
fn a_watch_streams_every_kind_of_change_under_its_prefix() {
    let dir = TempDir::new("watch-kinds");
    let (_node, edge) = all_in_one(&dir, "data");
    let (status, mut w) = Watcher::open(edge, "/watch/cfg/", "");
    assert_eq!(status, 200);
    assert_eq!(request(edge, "PUT", "/kv/cfg/a", b"1").0, 201);
    assert_eq!(request(edge, "PUT", "/kv/other/x", b"no").0, 201);
    assert_eq!(request(edge, "DELETE", "/kv/cfg/a", b"").0, 200);
    let txn = br#"{"then":[{"put":"cfg/b","value":"2"},{"put":"other/y","value":"3"},{"put":"cfg/c","value":"4"}]}"#;
    assert_eq!(request(edge, "POST", "/txn", txn).0, 200);
    assert_eq!(
        request(edge, "PUT", "/kv/cfg/lease?ttl=300ms", b"me").0,
        201
    );
    assert_eq!(
        request(edge, "PUT", "/kv/cfg/b?ttl=60s&refresh=true", b"").0,
        200
    );
    let mut seen: Vec<(u64, Vec<String>, Value)> = Vec::new();
    while seen.len() < 6 {
        let (id, v) = w.next_sse().expect("an event");
        seen.push((id.expect("an id"), types(&v), v));
    }
    let ids: Vec<u64> = seen.iter().map(|e| e.0).collect();
    assert!(ids.windows(2).all(|p| p[0] < p[1]), "{ids:?}");
    let kinds: Vec<Vec<String>> = seen.iter().map(|e| e.1.clone()).collect();
    let expire = vec!["expire cfg/lease".to_string()];
    let refresh = vec!["refresh cfg/b".to_string()];
    assert_eq!(kinds[0], vec!["put cfg/a"]);
    assert_eq!(kinds[1], vec!["delete cfg/a"]);
    // The batch: one event with its changes under the prefix, at its last seq.
    assert_eq!(kinds[2], vec!["put cfg/b", "put cfg/c"]);
    assert_eq!(kinds[3], vec!["put cfg/lease"]);
    assert!(
        kinds[4..].contains(&expire) && kinds[4..].contains(&refresh),
        "{kinds:?}"
    );
    assert_eq!(seen[0].2["changes"][0]["value"], "1");
    assert_eq!(seen[0].2["seq"].as_u64(), Some(ids[0]));
    // values=false and NDJSON.
    let (status, mut w) = Watcher::open(
        edge,
        "/watch/cfg/?from=0&values=false",
        "Accept: application/x-ndjson\r\n",
    );
    assert_eq!(status, 200);
    let first = w.next_line().expect("a line");
    assert_eq!(types(&first), vec!["put cfg/a"]);
    assert!(first["changes"][0].get("value").is_none(), "{first}");
}

/// Puts `n` keys `w{i}` one by one.
fn write_keys(edge: SocketAddr, from: usize, to: usize) {
    for i in from..to {
        let (status, _) = request(edge, "PUT", &format!("/kv/w/{i}"), b"v");
        assert!(status == 201, "PUT w/{i} answered {status}");
    }
}

/// Reads events until `want` keys were seen; (last id, keys seen in order).
fn read_keys(w: &mut Watcher, want: usize, seen: &mut Vec<String>) -> Option<u64> {
    let mut last = None;
    while seen.len() < want {
        let Some((id, v)) = w.next_sse() else {
            return last;
        };
        if v.get("error").is_some() {
            return last;
        }
        for c in v["changes"].as_array().cloned().unwrap_or_default() {
            seen.push(c["key"].as_str().unwrap_or("?").to_string());
        }
        last = id.or(last);
    }
    last
}

#[test]
fn a_watcher_resumes_across_worker_and_edge_restarts_without_loss_or_repeat() {
    let dir = TempDir::new("watch-resume");
    let roles = start_roles(&dir);
    let (mut worker, mut edge_node, edge) = (roles.worker, roles.edge, roles.http);
    let start = Instant::now();
    while request(edge, "PUT", "/kv/warm", b"x").0 != 201 {
        assert!(start.elapsed() < Duration::from_secs(20), "no master");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut w = open_when_served(edge, "/watch/w/?from=0", "");
    write_keys(edge, 0, 100);
    let mut seen = Vec::new();
    let mut last = read_keys(&mut w, 50, &mut seen).expect("events");
    // The worker restarts under the stream: it rides over.
    worker.kill9();
    worker.restart();
    last = read_keys(&mut w, 100, &mut seen).unwrap_or(last);
    assert_eq!(seen.len(), 100, "after the worker restart");
    // The edge restarts: a new stream from the last id seen.
    drop(w);
    edge_node.kill9();
    write_keys_when_up(edge, &mut edge_node);
    let mut w = open_when_served(edge, "/watch/w/", &format!("Last-Event-ID: {last}\r\n"));
    read_keys(&mut w, 200, &mut seen);
    let expected: Vec<String> = (0..200).map(|i| format!("w/{i}")).collect();
    assert_eq!(seen, expected, "lost or repeated events");
}

/// Opens a watch, again while the answer is 503 (no worker up yet).
fn open_when_served(edge: SocketAddr, target: &str, headers: &str) -> Watcher {
    let start = Instant::now();
    loop {
        let (status, w) = Watcher::open(edge, target, headers);
        match status {
            200 => return w,
            503 if start.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            other => panic!("watch answered {other}"),
        }
    }
}

/// Restarts the edge and writes `w/100..200` through it.
fn write_keys_when_up(edge: SocketAddr, node: &mut Node) {
    node.restart();
    node.wait_log("http: listening", 0, Duration::from_secs(30));
    write_keys(edge, 100, 200);
}

#[test]
fn a_cursor_below_compaction_is_gone_with_the_earliest_cursor() {
    let dir = TempDir::new("watch-410");
    let (_node, edge) = all_in_one(&dir, "data");
    // More than a worker keeps in memory for watches (4 MiB), so the first
    // versions are only in the log, which compaction then drops.
    for i in 0..48u8 {
        assert_eq!(request(edge, "PUT", "/kv/c/k", &vec![i; 128 * 1024]).0, 201);
    }
    assert_eq!(request(edge, "POST", "/admin/compact", b"").0, 200);
    let (status, body) = request(edge, "GET", "/watch/c/?from=1", b"");
    assert_eq!(status, 410, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).expect("json");
    let earliest: u64 = v["earliest"]
        .as_str()
        .and_then(|e| e.parse().ok())
        .expect("earliest");
    assert!(earliest > 1 && v["hint"].is_string(), "{v}");
    let (status, mut w) = Watcher::open(edge, &format!("/watch/c/?from={earliest}"), "");
    assert_eq!(status, 200);
    assert_eq!(request(edge, "PUT", "/kv/c/k", b"new").0, 201);
    let (_, v) = w.next_sse().expect("an event");
    assert!(v["changes"][0]["key"] == "c/k", "{v}");
    drop(w);
    // Another compaction moves the earliest cursor on (the worker keeps it
    // from one compaction to the next, not longer).
    for i in 0..48u8 {
        assert_eq!(request(edge, "PUT", "/kv/c/k", &vec![i; 128 * 1024]).0, 201);
    }
    assert_eq!(request(edge, "POST", "/admin/compact", b"").0, 200);
    let (status, body) = request(edge, "GET", &format!("/watch/c/?from={earliest}"), b"");
    assert_eq!(status, 410, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).expect("json");
    let later: u64 = v["earliest"]
        .as_str()
        .and_then(|e| e.parse().ok())
        .expect("earliest");
    assert!(later > earliest + 40, "{earliest} then {v}");
}

#[test]
fn a_watcher_that_stops_reading_is_cut_and_memory_stays_bounded() {
    let dir = TempDir::new("watch-slow");
    let (node, edge) = all_in_one(&dir, "data");
    let (status, _idle) = Watcher::open(edge, "/watch/big/", "");
    assert_eq!(status, 200);
    let before = rss_anon_kib(node.pid());
    let value = vec![b'x'; 256 * 1024];
    let start = Instant::now();
    let mut cut = false;
    for i in 0..400 {
        assert_eq!(request(edge, "PUT", &format!("/kv/big/{i}"), &value).0, 201);
        let (_, metrics) = request(edge, "GET", "/metrics", b"");
        if String::from_utf8_lossy(&metrics).contains("hypha_watch_dropped_total 1") {
            cut = true;
            break;
        }
    }
    while !cut && start.elapsed() < Duration::from_secs(30) {
        let (_, metrics) = request(edge, "GET", "/metrics", b"");
        cut = String::from_utf8_lossy(&metrics).contains("hypha_watch_dropped_total 1");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(cut, "the watcher that never reads was not cut");
    let grew = rss_anon_kib(node.pid()).saturating_sub(before);
    assert!(grew < 32 * 1024, "anonymous memory grew {grew} KiB");
}

#[test]
fn a_blocking_read_answers_when_its_key_changes() {
    let dir = TempDir::new("watch-block");
    let (_node, edge) = all_in_one(&dir, "data");
    let put = request(edge, "PUT", "/kv/b/k", b"1");
    assert_eq!(put.0, 201);
    let seq: u64 = serde_json::from_slice::<Value>(&put.1).expect("json")["seq"]
        .as_u64()
        .expect("seq");
    let reader = std::thread::spawn(move || {
        let started = Instant::now();
        let got = request(edge, "GET", &format!("/kv/b/k?wait=20s&index={seq}"), b"");
        (got, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(request(edge, "PUT", "/kv/b/other", b"x").0, 201);
    assert_eq!(request(edge, "PUT", "/kv/b/k", b"2").0, 201);
    let ((status, body), took) = reader.join().expect("reader");
    assert_eq!((status, body.as_slice()), (200, &b"2"[..]));
    assert!(took < Duration::from_secs(10), "{took:?}");
    // No change: the current value once the wait ends.
    let started = Instant::now();
    let (status, body) = request(edge, "GET", "/kv/b/k?wait=500ms", b"");
    assert_eq!((status, body.as_slice()), (200, &b"2"[..]));
    assert!(started.elapsed() >= Duration::from_millis(450));
}

#[test]
fn shutdown_ends_open_streams() {
    let dir = TempDir::new("watch-shutdown");
    let (mut node, edge) = all_in_one(&dir, "data");
    let (status, mut w) = Watcher::open(edge, "/watch/", "");
    assert_eq!(status, 200);
    let started = Instant::now();
    node.terminate();
    assert!(w.next_sse().is_none());
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// `hypha_watchers` in `/metrics`.
fn watchers_open(edge: SocketAddr) -> u64 {
    let (_, metrics) = request(edge, "GET", "/metrics", b"");
    let text = String::from_utf8_lossy(&metrics).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("hypha_watchers "))
        .and_then(|v| v.trim().parse().ok())
        .expect("hypha_watchers in /metrics")
}

#[test]
fn a_stream_ends_as_soon_as_its_client_goes_away() {
    let dir = TempDir::new("watch-hangup");
    let (_node, edge) = all_in_one(&dir, "data");
    let (status, w) = Watcher::open(edge, "/watch/gone/", "");
    assert_eq!(status, 200);
    assert_eq!(watchers_open(edge), 1);
    // The client closes with nothing written to it since: the edge sees the
    // end of its side well before a keep-alive (15 s) would have told it.
    drop(w);
    let deadline = Instant::now() + Duration::from_secs(5);
    while watchers_open(edge) != 0 {
        assert!(Instant::now() < deadline, "the stream outlived its client");
        std::thread::sleep(Duration::from_millis(20));
    }
}
