//! Exactly-once retries in a failover group: a write whose answer was lost
//! when its leader died is sent again with its request id, and whichever
//! member leads by then answers with the first attempt's seq instead of
//! applying it a second time; through the edge, writes in flight during
//! leader kills are answered (not left "unknown") and each key written once
//! holds exactly one version.

mod common;
mod http_support;

use common::group::{start_edge, start_group};
use common::Client;
use hypha_net::{ErrorCode, Message, WriteRequest};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sends `m` to each member until one that leads answers it; that answer
/// and the member's index.
fn at_leader(
    addrs: &[SocketAddr],
    skip: Option<usize>,
    m: impl Fn(u64) -> Message,
) -> (usize, Message) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, a) in addrs.iter().enumerate() {
            if Some(i) == skip {
                continue;
            }
            let Ok(mut c) = Client::connect(*a) else {
                continue;
            };
            match c.try_call(&m) {
                Ok(Message::Error {
                    code: ErrorCode::NotMaster,
                    ..
                })
                | Err(_) => {}
                Ok(answer) => return (i, answer),
            }
        }
        assert!(Instant::now() < deadline, "no member led within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn put_once(key: &str, value: &str, id: u8, retry_after: Option<u64>) -> impl Fn(u64) -> Message {
    let (key, value) = (key.as_bytes().to_vec(), value.as_bytes().to_vec());
    move |req_id| Message::PutOnce {
        req_id,
        key: key.clone(),
        value: value.clone(),
        request: WriteRequest {
            id: [id; 16],
            retry_after,
        },
    }
}

fn versions(addr: SocketAddr, key: &str) -> usize {
    let mut c = Client::connect(addr).expect("connect");
    match c.call(|req_id| Message::History {
        req_id,
        key: key.as_bytes().to_vec(),
        depth: 8,
        min_seq: 0,
    }) {
        Message::Versions { versions, .. } => versions.len(),
        other => panic!("history of {key}: {other:?}"),
    }
}

fn written_seq(m: &Message) -> u64 {
    match m {
        Message::Written { seq, .. } => *seq,
        other => panic!("expected Written, got {other:?}"),
    }
}

#[test]
fn a_retry_after_the_leader_died_gets_the_first_attempts_seq() {
    let mut g = start_group(3, &[]);
    let (_, before) = at_leader(&g.addrs, None, put_once("before", "x", 1, None));
    let committed = written_seq(&before);
    let (leader, first) = at_leader(&g.addrs, None, put_once("k", "v", 2, None));
    let first = written_seq(&first);
    let (_, after) = at_leader(&g.addrs, None, put_once("other", "y", 3, None));
    assert!(written_seq(&after) > first);
    // The answer to the first attempt is "lost": the leader dies.
    g.nodes[leader].kill9();
    let (new_leader, again) = at_leader(
        &g.addrs,
        Some(leader),
        put_once("k", "v", 2, Some(committed)),
    );
    assert_ne!(new_leader, leader);
    assert_eq!(
        written_seq(&again),
        first,
        "the retry is answered with the first attempt's seq"
    );
    assert_eq!(
        versions(g.addrs[new_leader], "k"),
        1,
        "the retry wrote nothing"
    );
    // Another request for the same key is a new write.
    let (_, other) = at_leader(
        &g.addrs,
        Some(leader),
        put_once("k", "v", 4, Some(committed)),
    );
    assert!(written_seq(&other) > first);
    assert_eq!(versions(g.addrs[new_leader], "k"), 2);
    // A delete's retry is recognized the same way.
    let delete = |retry_after| {
        move |req_id| Message::DeleteOnce {
            req_id,
            key: b"other".to_vec(),
            request: WriteRequest {
                id: [5; 16],
                retry_after,
            },
        }
    };
    let (_, deleted) = at_leader(&g.addrs, Some(leader), delete(None));
    let Message::Deleted { seq: Some(seq), .. } = deleted else {
        panic!("{deleted:?}")
    };
    let (_, again) = at_leader(&g.addrs, Some(leader), delete(Some(committed)));
    assert!(
        matches!(again, Message::Deleted { seq: Some(s), .. } if s == seq),
        "{again:?}"
    );
    // The killed member rejoins with the same log.
    g.nodes[leader].restart();
    g.converge(&[0, 1, 2], Duration::from_secs(30));
    assert_eq!(versions(g.addrs[leader], "k"), 2);
}

/// One writer thread: unique keys, each written once, through the edge;
/// (answered, unknown).
fn writer(
    edge: SocketAddr,
    w: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> (Vec<String>, Vec<String>) {
    let (mut done, mut unknown) = (Vec::new(), Vec::new());
    let mut conn: Option<http_support::Client> = None;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("w{w}-{n}");
        let client = match &mut conn {
            Some(c) => c,
            None => conn.insert(http_support::Client::connect(edge).expect("the edge is up")),
        };
        match client.request("PUT", &format!("/kv/{key}"), &[], key.as_bytes()) {
            Ok(r) if r.status == 200 || r.status == 201 => {
                done.push(key);
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => unknown.push(format!("{key}: {} {}", r.status, r.text())),
            Err(e) => {
                unknown.push(format!("{key}: {e}"));
                conn = None;
            }
        }
    }
    (done, unknown)
}

#[test]
fn writes_in_flight_during_leader_kills_are_answered_once() {
    let mut g = start_group(3, &[]);
    let edge = start_edge(&g.addrs);
    let edge_addr = edge.addr;
    let (leader, _) = at_leader(&g.addrs, None, put_once("start", "x", 9, None));
    let (stop, acked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (s, a) = (stop.clone(), acked.clone());
            std::thread::spawn(move || writer(edge_addr, w, s, a))
        })
        .collect();
    let mut leader = Some(leader);
    for _ in 0..3 {
        // Kill only under load: some write is in flight.
        let floor = acked.load(Ordering::Relaxed) + 200;
        while acked.load(Ordering::Relaxed) < floor {
            std::thread::sleep(Duration::from_millis(5));
        }
        let l = leader.take().expect("a leader");
        g.nodes[l].kill9();
        let (next, _) = at_leader(
            &g.addrs,
            Some(l),
            put_once(&format!("probe-{l}"), "p", 10 + l as u8, None),
        );
        g.nodes[l].restart();
        leader = Some(next);
    }
    let floor = acked.load(Ordering::Relaxed) + 200;
    while acked.load(Ordering::Relaxed) < floor {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let (mut done, mut unknown) = (Vec::new(), Vec::new());
    for w in writers {
        let (d, u) = w.join().expect("writer");
        done.extend(d);
        unknown.extend(u);
    }
    g.converge(&[0, 1, 2], Duration::from_secs(30));
    let retries = edge
        .log_text()
        .matches("sending it again with its request id")
        .count();
    let repeats: usize = g
        .nodes
        .iter()
        .map(|n| n.log_text().matches("found its first attempt").count())
        .sum();
    println!(
        "{} writes answered, {} unknown, over 3 leader kills; {retries} retried after a lost \
         connection, {repeats} of them found already applied",
        done.len(),
        unknown.len()
    );
    assert!(
        unknown.is_empty(),
        "writes left without an answer: {unknown:?}\n{}",
        edge.log_text()
    );
    for key in &done {
        assert_eq!(
            versions(g.addrs[0], key),
            1,
            "{key} was applied more than once"
        );
    }
}
