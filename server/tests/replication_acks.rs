//! The order of things on the replication stream, which keeps the lag short
//! and `--sync N` prompt:
//! - a master hands a write to its workers' connections before it tells the
//!   client the write is done, so a client that reads from a worker right
//!   after the ack finds the record already on its way;
//! - a worker holds back its `Ack` (one covers many batches) but answers a
//!   `Ping` only after acking everything applied before it;
//! - a master whose writes wait for workers sends that `Ping` behind every
//!   batch of records.
//!
//! The stand-in peers here are real sockets speaking the real protocol to
//! the real binary.

mod common;
use common::*;
use hypha_net::{Message, Purpose, RecordKind, Role, Welcome, WireRecord, PROTOCOL_VERSION};
use hypha_server::wire;
use std::time::Duration;

/// Longest a test waits for one message.
const WAIT_MS: u64 = 10_000;

const WRITES: u64 = 500;

#[test]
fn the_record_is_sent_to_the_worker_before_the_client_gets_the_ack() -> std::io::Result<()> {
    let dir = TempDir::new("ack-after-send");
    let port = free_port();
    let (listen, mdata) = (loopback(port).to_string(), data(&dir, "master"));
    let master = Node::start(
        loopback(port),
        &[
            "master", "--data", &mdata, "--listen", &listen, "--fsync", "never",
        ],
    );
    master.wait_log("master", 0, Duration::from_secs(30));
    smol::block_on(async {
        let hello = wire::hello("hypha", Role::Client, 1, Purpose::Request)?;
        let (mut cr, mut cw, welcome) = wire::connect(master.addr, hello).await?;
        let Message::Welcome(welcome) = welcome else {
            panic!("client refused: {welcome:?}")
        };
        // A worker (this test) that already holds the master's (empty)
        // history, so the master streams its log from seq 0.
        let mut hello = wire::hello("hypha", Role::Worker, 2, Purpose::Replicate)?;
        hello.history_id = welcome.history_id;
        let (mut wr, _ww, answer) = wire::connect(master.addr, hello).await?;
        assert!(matches!(answer, Message::Welcome(_)), "{answer:?}");
        // The first write may reach the master before it registered this
        // worker's stream; wait for it the ordinary way.
        let mut next = 0u64;
        let mut last_streamed = 0u64;
        for req_id in 1..=WRITES {
            cw.send(&Message::Put {
                req_id,
                key: format!("k{req_id}").into_bytes(),
                value: b"v".to_vec(),
            })
            .await?;
            let seq = match cr.recv().await? {
                Some(Message::Written { seq, .. }) => seq,
                other => panic!("Put answered {other:?}"),
            };
            if req_id == 1 {
                next = seq;
            }
            // Right after the ack: every record up to `seq` must already be
            // readable on the worker's socket, without waiting.
            while last_streamed < seq {
                let m = if req_id == 1 {
                    Some(wr.recv().await?)
                } else {
                    smol::future::poll_once(wr.recv()).await.transpose()?
                };
                match m {
                    Some(Some(Message::Records { records, .. })) => {
                        for r in records {
                            assert_eq!(r.seq, next, "records out of order");
                            next += 1;
                            last_streamed = r.seq;
                        }
                    }
                    Some(Some(Message::Ping { .. })) => {}
                    Some(other) => panic!("unexpected on the stream: {other:?}"),
                    None => panic!(
                        "write {req_id} (seq {seq}) was acknowledged before the master sent \
                         its record to the worker (last streamed seq {last_streamed})"
                    ),
                }
            }
        }
        Ok(())
    })
}

#[test]
fn a_worker_acks_everything_applied_before_it_answers_a_ping() -> std::io::Result<()> {
    let dir = TempDir::new("worker-ping-ack");
    let (mport, wport) = (free_port(), free_port());
    let listener = std::net::TcpListener::bind(loopback(mport))?;
    let (wlisten, wdata, m) = (
        loopback(wport).to_string(),
        data(&dir, "w"),
        loopback(mport).to_string(),
    );
    let _worker = Node::start(
        loopback(wport),
        &[
            "worker", "--data", &wdata, "--master", &m, "--listen", &wlisten,
        ],
    );
    smol::block_on(async {
        let listener = smol::net::TcpListener::try_from(listener)?;
        let (stream, _) = wire::timeout(WAIT_MS, listener.accept()).await?;
        let (mut r, mut w) = wire::split(stream);
        match wire::timeout(WAIT_MS, r.recv()).await? {
            Some(Message::Hello(h)) if h.role == Role::Worker => {}
            other => panic!("expected a worker's Hello, got {other:?}"),
        }
        w.send(&Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            role: Role::Master,
            node_id: 9,
            history_id: 77,
            commit_seq: 3,
        }))
        .await?;
        let records = (1..=3)
            .map(|seq| WireRecord {
                seq,
                id: seq as u32,
                kind: RecordKind::Put,
                key: format!("k{seq}").into_bytes(),
                value: b"v".to_vec(),
            })
            .collect();
        let mut out = Vec::new();
        wire::encode(
            &Message::Records {
                first_seq: 1,
                records,
            },
            &mut out,
        )?;
        wire::encode(&Message::Ping { nonce: 3 }, &mut out)?;
        w.send_encoded(&out).await?;
        // An Ack sent on the worker's timer instead would come after the Pong.
        match wire::timeout(WAIT_MS, r.recv()).await? {
            Some(Message::Ack { applied_seq: 3 }) => {}
            other => panic!("expected Ack of seq 3 before the Pong, got {other:?}"),
        }
        match wire::timeout(WAIT_MS, r.recv()).await? {
            Some(Message::Pong { nonce: 3 }) => {}
            other => panic!("expected Pong 3, got {other:?}"),
        }
        Ok(())
    })
}

#[test]
fn a_master_that_waits_for_acks_pings_behind_every_batch() -> std::io::Result<()> {
    let dir = TempDir::new("sync-ping");
    let port = free_port();
    let (listen, mdata) = (loopback(port).to_string(), data(&dir, "master"));
    let master = Node::start(
        loopback(port),
        &[
            "master", "--data", &mdata, "--listen", &listen, "--fsync", "never", "--sync", "1",
        ],
    );
    master.wait_log("master", 0, Duration::from_secs(30));
    smol::block_on(async {
        let hello = wire::hello("hypha", Role::Client, 1, Purpose::Request)?;
        let (mut cr, mut cw, welcome) = wire::connect(master.addr, hello).await?;
        let Message::Welcome(welcome) = welcome else {
            panic!("client refused: {welcome:?}")
        };
        // A stand-in worker that acks only when pinged: each write is
        // acknowledged only if the master pings.
        let mut hello = wire::hello("hypha", Role::Worker, 2, Purpose::Replicate)?;
        hello.history_id = welcome.history_id;
        let (mut wr, mut ww, answer) = wire::connect(master.addr, hello).await?;
        assert!(matches!(answer, Message::Welcome(_)), "{answer:?}");
        let mut applied = 0;
        for req_id in 1..=20 {
            cw.send(&Message::Put {
                req_id,
                key: format!("k{req_id}").into_bytes(),
                value: b"v".to_vec(),
            })
            .await?;
            loop {
                match wire::timeout(WAIT_MS, wr.recv()).await? {
                    Some(Message::Records { records, .. }) => {
                        applied = records.last().map_or(applied, |r| r.seq);
                    }
                    Some(Message::Ping { nonce }) => {
                        assert_eq!(nonce, applied, "the Ping names the last record sent");
                        let mut out = Vec::new();
                        wire::encode(
                            &Message::Ack {
                                applied_seq: applied,
                            },
                            &mut out,
                        )?;
                        wire::encode(&Message::Pong { nonce }, &mut out)?;
                        ww.send_encoded(&out).await?;
                        break;
                    }
                    other => panic!("unexpected on the stream: {other:?}"),
                }
            }
            match wire::timeout(WAIT_MS, cr.recv()).await? {
                Some(Message::Written { seq, .. }) => assert_eq!(seq, applied),
                other => panic!("write {req_id} answered {other:?}"),
            }
        }
        Ok(())
    })
}
