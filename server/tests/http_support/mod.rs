//! Shared by the `http_*` tests: a server on its own thread and a small raw
//! HTTP/1.1 client over a blocking `TcpStream`, so tests see exact bytes.
#![allow(dead_code)] // each test binary uses a different part

use std::error::Error;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hypha_server::http::{serve, Backend, HttpConfig, MemBackend};

/// What every test returns.
pub type TestResult = Result<(), Box<dyn Error>>;

/// Client-side safety net: a server bug fails the test instead of hanging it.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `serve` with its backend; dropping it shuts the server down.
pub struct Server<B: Backend = MemBackend> {
    pub addr: SocketAddr,
    pub backend: Arc<B>,
    stop: Option<smol::channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server<MemBackend> {
    /// A server over an empty [`MemBackend`].
    pub fn start(config: HttpConfig) -> io::Result<Self> {
        Server::with_backend(config, MemBackend::new())
    }
}

impl<B: Backend> Server<B> {
    /// A server over `backend`, listening on `127.0.0.1:0`.
    pub fn with_backend(config: HttpConfig, backend: B) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let listener = smol::net::TcpListener::try_from(listener)?;
        let backend = Arc::new(backend);
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let served = Arc::clone(&backend);
        let thread = std::thread::Builder::new()
            .name("http-test-server".into())
            .spawn(move || {
                let shutdown = async move {
                    let _ = stopped.recv().await;
                };
                smol::block_on(serve(listener, served, config, shutdown));
            })?;
        Ok(Server {
            addr,
            backend,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Starts graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        self.stop.take();
    }

    /// Shuts down and waits until `serve` has returned.
    pub fn shutdown(&mut self) -> io::Result<()> {
        self.begin_shutdown();
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(_)) => Err(io::Error::other("the server thread panicked")),
            _ => Ok(()),
        }
    }

    /// A new raw client connection.
    pub fn client(&self) -> io::Result<Client> {
        Client::connect(self.addr)
    }

    /// One request on a fresh connection.
    pub fn request(&self, method: &str, target: &str, body: &[u8]) -> io::Result<Reply> {
        self.client()?.request(method, target, &[], body)
    }
}

impl<B: Backend> Drop for Server<B> {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let found = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name));
        found.map(|(_, value)| value.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, Box<dyn Error>> {
        serde_json::from_slice(&self.body).map_err(|e| format!("{e}: {:?}", self.text()).into())
    }

    /// The body as lossy text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error` message of a JSON error body.
    pub fn error(&self) -> Result<String, Box<dyn Error>> {
        let document = self.json()?;
        let message = document["error"]
            .as_str()
            .ok_or_else(|| format!("no error in {document}"))?;
        Ok(message.to_owned())
    }
}

/// A raw connection that keeps unread bytes between responses (pipelining).
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            buf: Vec::new(),
        })
    }

    /// Writes raw bytes.
    pub fn send(&mut self, raw: &[u8]) -> io::Result<()> {
        self.stream.write_all(raw)
    }

    /// Sends a request with `Host` and `Content-Length` added, reads its reply.
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Reply> {
        self.send(&request_bytes(method, target, headers, body))?;
        self.read_reply(method == "HEAD")
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 64 * 1024];
        let got = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..got]);
        Ok(got)
    }

    /// Reads one response; `head_request` means no body follows.
    pub fn read_reply(&mut self, head_request: bool) -> io::Result<Reply> {
        loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut slots);
            match response.parse(&self.buf).map_err(io::Error::other)? {
                httparse::Status::Complete(head_len) => {
                    let status = response.code.unwrap_or(0);
                    let headers: Vec<(String, String)> = response
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    let length = headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    let length = if head_request { 0 } else { length };
                    while self.buf.len() < head_len + length {
                        if self.fill()? == 0 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                    }
                    let body = self.buf[head_len..head_len + length].to_vec();
                    self.buf.drain(..head_len + length);
                    return Ok(Reply {
                        status,
                        headers,
                        body,
                    });
                }
                httparse::Status::Partial => {
                    if self.fill()? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "closed before a response",
                        ));
                    }
                }
            }
        }
    }

    /// Everything until the server closes (buffered bytes included).
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut rest = std::mem::take(&mut self.buf);
        self.stream.read_to_end(&mut rest)?;
        Ok(rest)
    }

    /// Reads until the server closes and parses what came as one response.
    pub fn read_reply_then_eof(&mut self) -> io::Result<Reply> {
        let reply = self.read_reply(false)?;
        let rest = self.read_to_end()?;
        if !rest.is_empty() {
            return Err(io::Error::other(format!(
                "{} bytes after the response",
                rest.len()
            )));
        }
        Ok(reply)
    }
}

/// A request with `Host` and, for non-empty bodies or writes, `Content-Length`.
pub fn request_bytes(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    let chunked = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
    if !chunked && (!body.is_empty() || matches!(method, "PUT" | "POST")) {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// Checks a status, showing the body when it differs.
pub fn expect_status(reply: &Reply, status: u16) -> TestResult {
    if reply.status != status {
        return Err(format!(
            "expected {status}, got {} with {:?}",
            reply.status,
            reply.text()
        )
        .into());
    }
    Ok(())
}
