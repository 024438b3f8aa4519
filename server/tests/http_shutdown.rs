//! Graceful shutdown: idle connections close at once, a request in flight
//! finishes and is answered with `Connection: close`, then `serve` returns and
//! the port stops accepting.

mod http_support;

use std::net::TcpStream;

use http_support::{expect_status, request_bytes, Server, TestResult};
use hypha_server::http::{
    Backend, BackendError, Consistency, Entry, History, HttpConfig, MemBackend, ScanPage,
};
use smol::channel::{Receiver, Sender};

/// A [`MemBackend`] whose `put` reports that it started, then waits for a gate.
struct GatedBackend {
    inner: MemBackend,
    entered: Sender<()>,
    gate: Receiver<()>,
}

impl Backend for GatedBackend {
    async fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<u64, BackendError> {
        let _ = self.entered.send(()).await;
        let _ = self.gate.recv().await;
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: Vec<u8>) -> Result<Option<u64>, BackendError> {
        self.inner.delete(key).await
    }
    async fn get(&self, key: Vec<u8>, c: Consistency) -> Result<Option<Entry>, BackendError> {
        self.inner.get(key, c).await
    }
    async fn history(
        &self,
        key: Vec<u8>,
        depth: u32,
        c: Consistency,
    ) -> Result<History, BackendError> {
        self.inner.history(key, depth, c).await
    }
    async fn scan(
        &self,
        cursor: u64,
        prefix: Vec<u8>,
        limit: u32,
        c: Consistency,
    ) -> Result<ScanPage, BackendError> {
        self.inner.scan(cursor, prefix, limit, c).await
    }
    async fn digest(&self) -> Result<serde_json::Value, BackendError> {
        self.inner.digest().await
    }
    async fn status(&self) -> serde_json::Value {
        self.inner.status().await
    }
    fn metrics(&self, out: &mut String) {
        self.inner.metrics(out);
    }
    fn value_bytes_max(&self) -> usize {
        self.inner.value_bytes_max()
    }
}

#[test]
fn shutdown_closes_idle_connections_and_finishes_the_request_in_flight() -> TestResult {
    let (entered_sender, entered) = smol::channel::unbounded();
    let (open_gate, gate) = smol::channel::unbounded();
    let backend = GatedBackend {
        inner: MemBackend::new(),
        entered: entered_sender,
        gate,
    };
    let mut server = Server::with_backend(HttpConfig::default(), backend)?;

    let mut idle = server.client()?;
    expect_status(&idle.request("GET", "/ping", &[], b"")?, 200)?;
    let mut busy = server.client()?;
    busy.send(&request_bytes("PUT", "/kv/k", &[], b"v"))?;
    smol::block_on(entered.recv())?;

    server.begin_shutdown();
    assert!(
        idle.read_to_end()?.is_empty(),
        "the idle connection got bytes instead of a close"
    );

    smol::block_on(open_gate.send(()))?;
    let reply = busy.read_reply_then_eof()?;
    expect_status(&reply, 201)?;
    assert_eq!(reply.header("Connection"), Some("close"));

    drop(busy);
    let addr = server.addr;
    server.shutdown()?;
    assert!(
        TcpStream::connect(addr).is_err(),
        "the port still accepts after serve returned"
    );
    assert_eq!(server.backend.inner.status_seq(), 1);
    Ok(())
}

trait StatusSeq {
    fn status_seq(&self) -> u64;
}

impl StatusSeq for MemBackend {
    fn status_seq(&self) -> u64 {
        smol::block_on(self.status())["seq"].as_u64().unwrap_or(0)
    }
}
