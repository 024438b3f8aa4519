//! A master or worker answers requests pipelined on one connection: all of
//! them, matched by `req_id`, and a read that waits for its `min_seq` does not
//! hold up the requests sent after it.

mod common;
use common::*;
use hypha_net::{ErrorCode, Message, Purpose, Role};
use hypha_server::wire;
use std::collections::HashSet;
use std::time::Duration;

const FAST_HB: [&str; 4] = ["--heartbeat-ms", "100", "--heartbeat-timeout-ms", "600"];
const PIPELINED: u64 = 2_000;

/// Sends every message before reading any answer; returns the answers in
/// arrival order.
fn pipeline(addr: std::net::SocketAddr, requests: Vec<Message>) -> std::io::Result<Vec<Message>> {
    smol::block_on(async {
        let hello = wire::hello("hypha", Role::Client, 7, Purpose::Request)?;
        let keys = hypha_net::ClusterKeys::insecure();
        let (mut r, mut w, answer, _) = wire::connect(addr, hello, &keys).await?;
        assert!(matches!(answer, Message::Welcome(_)), "{answer:?}");
        let mut frames = Vec::new();
        for m in &requests {
            w.encode(m, &mut frames)?;
        }
        w.send_encoded(&frames).await?;
        let mut answers = Vec::new();
        while answers.len() < requests.len() {
            let m = r.recv().await?.ok_or(std::io::ErrorKind::UnexpectedEof)?;
            answers.push(m);
        }
        Ok(answers)
    })
}

#[test]
fn pipelined_requests_are_all_answered_and_a_waiting_read_holds_up_none() -> std::io::Result<()> {
    let dir = TempDir::new("pipelining");
    let mport = free_port();
    let (listen, mdata) = (loopback(mport).to_string(), data(&dir, "master"));
    let mut args = vec![
        "master", "--data", &mdata, "--listen", &listen, "--fsync", "never",
    ];
    args.extend_from_slice(&FAST_HB);
    let master = Node::start(loopback(mport), &args);
    master.wait_log("(tcp+udp)", 0, Duration::from_secs(30));

    // Writes and reads interleaved on one connection to the master.
    let requests = (1..=PIPELINED)
        .map(|req_id| {
            let key = format!("k{}", req_id / 2).into_bytes();
            match req_id % 2 {
                0 => Message::Put {
                    req_id,
                    key,
                    value: b"v".to_vec(),
                },
                _ => Message::Get {
                    req_id,
                    key,
                    min_seq: 0,
                },
            }
        })
        .collect();
    let answers = pipeline(master.addr, requests)?;
    let ids: HashSet<u64> = answers.iter().filter_map(Message::req_id).collect();
    assert_eq!(ids.len() as u64, PIPELINED, "every req_id answered once");
    for a in &answers {
        assert!(
            matches!(a, Message::Written { .. } | Message::Value { .. }),
            "{a:?}"
        );
    }

    let wport = free_port();
    let (wlisten, wdata, m) = (
        loopback(wport).to_string(),
        data(&dir, "w"),
        master.addr.to_string(),
    );
    let mut args = vec![
        "worker", "--data", &wdata, "--master", &m, "--listen", &wlisten,
    ];
    args.extend_from_slice(&FAST_HB);
    let worker = Node::start(loopback(wport), &args);
    let mut wc = Client::wait_connect(worker.addr);
    let mut mc = Client::wait_connect(master.addr);
    converge(&mut mc, &mut wc, Duration::from_secs(30));

    // A read at a seq the worker will not reach waits (and times out); the
    // read behind it is answered first.
    // A seq that never comes (u64::MAX itself asks a failover leader for a
    // linearizable read: MIN_SEQ_LINEARIZABLE).
    let future = u64::MAX - 1;
    let key = b"k1".to_vec();
    let requests = vec![
        Message::Get {
            req_id: 1,
            key: key.clone(),
            min_seq: future,
        },
        Message::Get {
            req_id: 2,
            key,
            min_seq: 0,
        },
    ];
    let answers = pipeline(worker.addr, requests)?;
    assert!(
        matches!(
            answers[0],
            Message::Value {
                req_id: 2,
                value: Some(_),
                ..
            }
        ),
        "{answers:?}"
    );
    assert!(
        matches!(
            answers[1],
            Message::Error {
                req_id: 1,
                code: ErrorCode::Timeout,
                ..
            }
        ),
        "{answers:?}"
    );
    Ok(())
}
