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
use hypha_server::wire::{self, Reader, Writer};
use std::time::Duration;

/// Longest a test waits for one message.
const WAIT_MS: u64 = 10_000;

/// A real master (with `extra` flags), a client connection to it, and a
/// stand-in worker (this test) that already holds the master's (empty)
/// history, so the master streams its log to it from seq 0.
struct Setup {
    _dir: TempDir,
    _master: Node,
    client: (Reader, Writer),
    worker: (Reader, Writer),
}

fn master_with_stand_in_worker(tag: &str, extra: &[&str]) -> std::io::Result<Setup> {
    let dir = TempDir::new(tag);
    let port = free_port();
    let (listen, mdata) = (loopback(port).to_string(), data(&dir, "master"));
    let mut args = vec![
        "master", "--data", &mdata, "--listen", &listen, "--fsync", "never",
    ];
    args.extend_from_slice(extra);
    let master = Node::start(loopback(port), &args);
    master.wait_log("(tcp+udp)", 0, Duration::from_secs(30));
    let addr = master.addr;
    let (client, worker) = smol::block_on(async {
        let hello = wire::hello("hypha", Role::Client, 1, Purpose::Request)?;
        let keys = hypha_net::ClusterKeys::insecure();
        let (cr, cw, welcome, _) = wire::connect(addr, hello, &keys).await?;
        let Message::Welcome(welcome) = welcome else {
            panic!("client refused: {welcome:?}")
        };
        let mut hello = wire::hello("hypha", Role::Worker, 2, Purpose::Replicate)?;
        hello.history_id = welcome.history_id;
        let (wr, ww, answer, _) = wire::connect(addr, hello, &keys).await?;
        assert!(matches!(answer, Message::Welcome(_)), "{answer:?}");
        std::io::Result::Ok(((cr, cw), (wr, ww)))
    })?;
    Ok(Setup {
        _dir: dir,
        _master: master,
        client,
        worker,
    })
}

const WRITES: u64 = 500;

#[test]
fn the_record_is_sent_to_the_worker_before_the_client_gets_the_ack() -> std::io::Result<()> {
    let Setup {
        _dir,
        _master,
        client: (mut cr, mut cw),
        worker: (mut wr, _ww),
    } = master_with_stand_in_worker("ack-after-send", &[])?;
    smol::block_on(async {
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
    // The stand-in master listens on a port the kernel picks, taken at once.
    let listener = std::net::TcpListener::bind(loopback(0))?;
    let (mport, wport) = (listener.local_addr()?.port(), free_port());
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
        let (stream, peer) = wire::timeout(WAIT_MS, listener.accept()).await?;
        let keys = hypha_net::ClusterKeys::insecure();
        let accepted = wire::accept(
            stream,
            peer,
            &keys,
            "hypha",
            "stand-in master",
            wire::HANDSHAKE_TIMEOUT_MS,
        )
        .await?;
        let wire::Accepted {
            mut r,
            mut w,
            hello,
            ..
        } = accepted.expect("the worker authenticates");
        assert_eq!(hello.role, Role::Worker, "{hello:?}");
        w.send(&Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            role: Role::Master,
            node_id: 9,
            history_id: 77,
            commit_seq: 3,
            term: 0,
            terms: Vec::new(),
        }))
        .await?;
        let records = (1..=3)
            .map(|seq| WireRecord {
                seq,
                id: seq as u32,
                kind: RecordKind::Put,
                key: format!("k{seq}").into_bytes(),
                value: b"v".to_vec(),
                meta: Default::default(),
            })
            .collect();
        let mut out = Vec::new();
        w.encode(
            &Message::Records {
                term: 0,
                first_seq: 1,
                records,
            },
            &mut out,
        )?;
        w.encode(&Message::Ping { nonce: 3 }, &mut out)?;
        w.send_encoded(&out).await?;
        // An Ack sent on the worker's timer instead would come after the Pong.
        match wire::timeout(WAIT_MS, r.recv()).await? {
            Some(Message::Ack {
                term: 0,
                applied_seq: 3,
            }) => {}
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
    // The stand-in worker acks only when pinged: each write is acknowledged
    // only if the master pings.
    let Setup {
        _dir,
        _master,
        client: (mut cr, mut cw),
        worker: (mut wr, mut ww),
    } = master_with_stand_in_worker("sync-ping", &["--sync", "1"])?;
    smol::block_on(async {
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
                        ww.encode(
                            &Message::Ack {
                                term: 0,
                                applied_seq: applied,
                            },
                            &mut out,
                        )?;
                        ww.encode(&Message::Pong { nonce }, &mut out)?;
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
