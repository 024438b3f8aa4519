//! The client's HTTP/1.1: one blocking request per connection to an edge,
//! `Connection: close`, the answer's body by `Content-Length`, chunks, or
//! until the edge closes (a watch stream, passed on as it arrives).

use hypha_server::http::{ChunkedDecoder, Status};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long the client waits to connect, and for each read of an answer
/// that is not a stream.
pub const CLIENT_TIMEOUT_MS: u64 = 30_000;
/// The largest answer the client holds (a 16 MiB value and its envelope).
pub const ANSWER_BYTES_MAX: usize = 64 << 20;
/// Head bytes before the client gives up on an answer.
const HEAD_BYTES_MAX: usize = 64 * 1024;
/// A body over this waits for the edge's `100 Continue` first.
pub const EXPECT_CONTINUE_BYTES: usize = 64 * 1024;
/// How long a body waits for `100 Continue` before it is sent anyway.
pub const EXPECT_WAIT_MS: u64 = 1_000;
/// A watch stream silent this long (three missed keep-alives) is dead.
pub const STREAM_SILENCE_MS: u64 = 3 * hypha_server::http::WATCH_KEEPALIVE_MS;

/// Where the edge is, and the token if any.
pub struct Edge {
    /// `host:port` as given, for the Host header and messages.
    pub host: String,
    addrs: Vec<SocketAddr>,
    token: Option<String>,
}

/// A whole answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value (names compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error` of a JSON error body, or the body as text.
    pub fn error(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).trim().to_string())
    }
}

impl Edge {
    /// `http://HOST:PORT[/]`, `HOST:PORT` or `[V6]:PORT`; a malformed URL
    /// is a usage error (2), a name that does not resolve an unreachable
    /// edge (3).
    pub fn parse(url: &str, token: Option<String>) -> Result<Edge, (u8, String)> {
        let usage = |why: String| (2u8, why);
        if url.starts_with("https://") {
            return Err(usage(format!(
                "--edge {url:?}: the edge speaks plain HTTP (Mycelium encrypts the path); use http://"
            )));
        }
        let host = url.strip_prefix("http://").unwrap_or(url);
        let host = host.strip_suffix('/').unwrap_or(host).to_string();
        if host.is_empty() || host.contains('/') {
            return Err(usage(format!("--edge {url:?}: give http://HOST:PORT")));
        }
        let addrs: Vec<SocketAddr> = host
            .to_socket_addrs()
            .map_err(|e| {
                let hint = "give http://HOST:PORT, IPv6 as [ADDR]:PORT";
                (3u8, format!("--edge {url:?} does not resolve: {e}; {hint}"))
            })?
            .collect();
        Ok(Edge { host, addrs, token })
    }

    fn connect(&self) -> std::io::Result<TcpStream> {
        let mut last = None;
        for addr in &self.addrs {
            match TcpStream::connect_timeout(addr, Duration::from_millis(CLIENT_TIMEOUT_MS)) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::ErrorKind::AddrNotAvailable.into()))
    }

    /// Sends the request. A body over [`EXPECT_CONTINUE_BYTES`] waits for
    /// the edge's `100 Continue` (at most [`EXPECT_WAIT_MS`]), so a refusal
    /// (413, 401) arrives instead of a reset mid-upload. Returns the bytes of
    /// the answer already read.
    fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(TcpStream, Vec<u8>), String> {
        let mut stream = self
            .connect()
            .map_err(|e| format!("cannot reach the edge at {}: {e}", self.host))?;
        let expect = body.len() > EXPECT_CONTINUE_BYTES;
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        if expect {
            head.push_str("Expect: 100-continue\r\n");
        }
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let failed =
            |e: std::io::Error| format!("sending to the edge at {} failed: {e}", self.host);
        stream.write_all(head.as_bytes()).map_err(failed)?;
        let mut early = Vec::new();
        if expect {
            let wait = Some(Duration::from_millis(EXPECT_WAIT_MS));
            stream.set_read_timeout(wait).map_err(failed)?;
            if let Some(answer) = await_continue(&mut stream, &mut early)? {
                return Ok((stream, answer));
            }
        }
        stream
            .set_read_timeout(Some(Duration::from_millis(CLIENT_TIMEOUT_MS)))
            .and_then(|()| stream.write_all(body))
            .map_err(failed)?;
        Ok((stream, early))
    }

    /// Sends one request and reads the whole answer.
    pub fn call(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, String> {
        let mut body_out = Vec::new();
        let mut answer = self.exchange(method, target, headers, body, false, &mut |bytes| {
            if body_out.len() + bytes.len() > ANSWER_BYTES_MAX {
                return Err(format!("the answer is over {ANSWER_BYTES_MAX} bytes"));
            }
            body_out.extend_from_slice(bytes);
            Ok(())
        })?;
        answer.body = body_out;
        Ok(answer)
    }

    /// Sends one request; a 200's body goes to `sink` as it arrives (no
    /// read timeout: a stream may be quiet), any other status's body is kept.
    pub fn stream(
        &self,
        target: &str,
        headers: &[(&str, &str)],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<Answer, String> {
        self.exchange("GET", target, headers, b"", true, sink)
    }

    fn exchange(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        streaming: bool,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<Answer, String> {
        let (mut stream, mut buf) = self.send(method, target, headers, body)?;
        let lost = |e: std::io::Error| format!("the edge at {} stopped answering: {e}", self.host);
        let mut chunk = vec![0u8; 64 * 1024];
        let (mut answer, used, framing) = loop {
            if let Some(parsed) = parse_head(&buf)? {
                break parsed;
            }
            let got = stream.read(&mut chunk).map_err(lost)?;
            if got == 0 {
                return Err(format!(
                    "the edge at {} closed the connection without an answer",
                    self.host
                ));
            }
            buf.extend_from_slice(&chunk[..got]);
            if buf.len() > HEAD_BYTES_MAX {
                return Err(format!(
                    "the edge at {} sent a head over {HEAD_BYTES_MAX} bytes",
                    self.host
                ));
            }
        };
        if method == "HEAD" || matches!(answer.status, 204 | 304) {
            return Ok(answer);
        }
        let mut kept = Vec::new();
        let passes = streaming && answer.status == 200;
        if passes {
            // A stream may be quiet, but never longer than a few keep-alives.
            let silence = Some(Duration::from_millis(STREAM_SILENCE_MS));
            stream.set_read_timeout(silence).map_err(lost)?;
        }
        let mut deliver = |bytes: &[u8]| -> Result<(), String> {
            match passes || !streaming {
                true => sink(bytes),
                false => {
                    kept.extend_from_slice(bytes);
                    Ok(())
                }
            }
        };
        let mut rest = buf.split_off(used);
        read_body(&mut stream, &mut rest, framing, &mut deliver)
            .map_err(|e| e.unwrap_or_else(lost))?;
        answer.body = kept;
        Ok(answer)
    }
}

/// Waits for `100 Continue`: `Ok(None)` once it came (or the wait ended:
/// send the body), `Ok(Some(bytes))` when a final answer came instead.
fn await_continue(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>, String> {
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(Some(std::mem::take(buf))),
            Ok(got) => buf.extend_from_slice(&chunk[..got]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(None)
            }
            Err(e) => return Err(format!("the edge stopped answering: {e}")),
        }
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut slots);
        match response.parse(buf) {
            Ok(httparse::Status::Complete(used)) if response.code == Some(100) => {
                buf.drain(..used);
                return Ok(None);
            }
            Ok(httparse::Status::Complete(_)) => return Ok(Some(std::mem::take(buf))),
            Ok(httparse::Status::Partial) if buf.len() <= HEAD_BYTES_MAX => {}
            _ => return Err("the edge's answer did not parse".into()),
        }
    }
}

/// How the body ends.
enum Framing {
    Length(u64),
    Chunked,
    Close,
}

fn parse_head(buf: &[u8]) -> Result<Option<(Answer, usize, Framing)>, String> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut slots);
    let used = match response.parse(buf) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("the edge's answer did not parse: {e}")),
    };
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let answer = Answer {
        status: response.code.unwrap_or(0),
        headers,
        body: Vec::new(),
    };
    let framing = if answer
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        Framing::Chunked
    } else if let Some(n) = answer.header("content-length") {
        Framing::Length(
            n.trim()
                .parse()
                .map_err(|_| format!("bad Content-Length {n:?}"))?,
        )
    } else {
        Framing::Close
    };
    Ok(Some((answer, used, framing)))
}

/// An I/O error (`Err(Err(io))`) or a message.
type BodyError = Result<String, std::io::Error>;

fn read_body(
    stream: &mut TcpStream,
    first: &mut Vec<u8>,
    framing: Framing,
    deliver: &mut dyn FnMut(&[u8]) -> Result<(), String>,
) -> Result<(), BodyError> {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut input = std::mem::take(first);
    let mut decoder = ChunkedDecoder::new(usize::MAX);
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    loop {
        match framing {
            Framing::Chunked => {
                let mut out = Vec::new();
                let status = decoder
                    .decode(&input, &mut out)
                    .map_err(|e| Ok(format!("the edge's chunked answer did not parse: {e}")))?;
                deliver(&out).map_err(Ok)?;
                if matches!(status, Status::Complete(_)) {
                    return Ok(());
                }
            }
            _ => {
                let take = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                deliver(&input[..take]).map_err(Ok)?;
                left -= take as u64;
                if left == 0 {
                    return Ok(());
                }
            }
        }
        let got = stream.read(&mut chunk).map_err(Err)?;
        if got == 0 {
            return match framing {
                Framing::Close => Ok(()),
                _ => Err(Ok(
                    "the edge closed the connection inside its answer".to_string()
                )),
            };
        }
        input = chunk[..got].to_vec();
    }
}
