//! A master hands a write to its workers' connections before it tells the
//! client the write is done: a client that reads from a worker right after
//! the ack finds the record already on its way (what keeps the replication
//! lag short), never still sitting on the master.

mod common;
use common::*;
use hypha_net::{Message, Purpose, Role};
use hypha_server::wire;
use std::time::Duration;

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
