//! The edge's multiplexed node connection: many calls share one connection,
//! each gets its own answer whatever the order the node answers in, and a
//! connection the node closes fails the calls waiting on it.

use hypha_net::{ClusterKeys, Message, Purpose, Role, Welcome, PROTOCOL_VERSION};
use hypha_server::mux::Mux;
use hypha_server::wire::{self, Reader, Writer};
use smol::net::TcpListener;
use std::io;

const CALLS: u64 = 64;

fn welcome() -> Message {
    Message::Welcome(Welcome {
        version: PROTOCOL_VERSION,
        role: Role::Worker,
        node_id: 1,
        history_id: 1,
        commit_seq: 0,
        term: 0,
        terms: Vec::new(),
    })
}

/// Accepts one connection, answers the Hello, and hands over the halves.
async fn accept(listener: &TcpListener) -> io::Result<(Reader, Writer)> {
    let (stream, peer) = listener.accept().await?;
    let keys = ClusterKeys::insecure();
    let accepted = wire::accept(
        stream,
        peer,
        &keys,
        "hypha",
        "test node",
        wire::HANDSHAKE_TIMEOUT_MS,
    )
    .await?;
    let wire::Accepted { r, mut w, .. } = accepted.expect("the edge authenticates");
    w.send(&welcome()).await?;
    Ok((r, w))
}

fn get(req_id: u64) -> Message {
    Message::Get {
        req_id,
        key: req_id.to_le_bytes().to_vec(),
        min_seq: 0,
    }
}

#[test]
fn answers_in_any_order_reach_their_own_callers() -> io::Result<()> {
    smol::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // The node reads every request, then answers them newest first, each
        // with its key as the value.
        let node = smol::spawn(async move {
            let (mut r, mut w) = accept(&listener).await?;
            let mut requests = Vec::new();
            while requests.len() < CALLS as usize {
                requests.push(r.recv().await?.ok_or(io::ErrorKind::UnexpectedEof)?);
            }
            for m in requests.into_iter().rev() {
                let Message::Get { req_id, key, .. } = m else {
                    panic!("{m:?}")
                };
                let value = Some((req_id, key));
                w.send(&Message::Value {
                    req_id,
                    applied_seq: 0,
                    value,
                })
                .await?;
            }
            io::Result::Ok(())
        });
        let hello = wire::hello("hypha", Role::Edge, 0, Purpose::Request)?;
        let mux = Mux::connect(addr, hello, &ClusterKeys::insecure()).await?;
        let calls: Vec<_> = (1..=CALLS)
            .map(|req_id| {
                let mux = mux.clone();
                smol::spawn(async move { (req_id, mux.call(&get(req_id)).await) })
            })
            .collect();
        for call in calls {
            let (req_id, answer) = call.await;
            match answer? {
                Message::Value {
                    req_id: got,
                    value: Some((seq, key)),
                    ..
                } => {
                    assert_eq!(
                        (got, seq, key),
                        (req_id, req_id, req_id.to_le_bytes().to_vec())
                    );
                }
                other => panic!("call {req_id}: {other:?}"),
            }
        }
        node.await
    })
}

#[test]
fn a_closed_connection_fails_the_waiting_calls() -> io::Result<()> {
    smol::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (got_request, request_seen) = smol::channel::bounded::<()>(1);
        // The node reads one request and closes without answering.
        let node = smol::spawn(async move {
            let (mut r, w) = accept(&listener).await?;
            r.recv().await?;
            let _ = got_request.send(()).await;
            drop((r, w));
            io::Result::Ok(())
        });
        let hello = wire::hello("hypha", Role::Edge, 0, Purpose::Request)?;
        let mux = Mux::connect(addr, hello, &ClusterKeys::insecure()).await?;
        let waiting = {
            let mux = mux.clone();
            smol::spawn(async move { mux.call(&get(1)).await })
        };
        let _ = request_seen.recv().await;
        node.await?;
        assert!(waiting.await.is_err(), "the call must fail, not hang");
        assert!(mux.is_failed());
        assert!(mux.call(&get(2)).await.is_err(), "later calls fail at once");
        Ok(())
    })
}
