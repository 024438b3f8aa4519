#![no_main]
//! Arbitrary bytes as one client connection to the HTTP edge, without
//! sockets: `parse_head` → `Router::admit` → body (`Content-Length` or
//! `ChunkedDecoder`) → `Router::handle` on a `MemBackend`, in the loop
//! `http::conn` runs, pipelining included.
//!
//! Every request gets a response or the connection ends cleanly (bytes run
//! out mid-request); nothing panics. Every response head parses back as
//! HTTP/1.1 with the same status and a `Content-Length` matching its body.
//! The bytes are served twice, all at once and in reads of 1-64 bytes, and
//! both runs must give the same responses: parsing does not depend on how
//! TCP cut the stream.

use futures_lite::future::block_on;
use hypha_server::http::token::Token;
use hypha_server::http::{
    parse_head, BodyFraming, ChunkedDecoder, HttpConfig, HttpError, MemBackend, Method, Response,
    Router, Status,
};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::time::Duration;

/// The bytes a client sent, handed out in reads of `read_bytes`.
struct Client<'a> {
    input: &'a [u8],
    read_bytes: usize,
    buf: Vec<u8>,
}

impl Client<'_> {
    /// Appends one read to `buf`; false at end of input.
    fn read_more(&mut self) -> bool {
        if self.input.is_empty() {
            return false;
        }
        let (read, rest) = self.input.split_at(self.read_bytes.min(self.input.len()));
        self.buf.extend_from_slice(read);
        self.input = rest;
        true
    }

    /// The body, or `Err(None)` if the client stopped sending mid-body, or
    /// `Err(Some(error))` for a body that is refused.
    fn body(
        &mut self,
        framing: BodyFraming,
        body_bytes_max: usize,
    ) -> Result<Vec<u8>, Option<HttpError>> {
        match framing {
            BodyFraming::Empty => Ok(Vec::new()),
            BodyFraming::Length(len) => {
                // `admit` refused lengths over the limit, so this fits a usize.
                let len = usize::try_from(len).expect("admitted length fits");
                while self.buf.len() < len {
                    if !self.read_more() {
                        return Err(None);
                    }
                }
                Ok(self.buf.drain(..len).collect())
            }
            BodyFraming::Chunked => {
                let mut decoder = ChunkedDecoder::new(body_bytes_max);
                let mut body = Vec::new();
                loop {
                    let status = decoder.decode(&self.buf, &mut body);
                    assert!(body.len() <= body_bytes_max, "chunked body over its limit");
                    match status.map_err(Some)? {
                        Status::Complete(used) => {
                            self.buf.drain(..used);
                            return Ok(body);
                        }
                        Status::Partial => self.buf.clear(),
                    }
                    if !self.read_more() {
                        return Err(None);
                    }
                }
            }
        }
    }
}

/// Serializes `response` as `conn` does and checks that it parses back.
fn check(response: &Response, keep_alive_http10: bool) {
    let head = response.encode_head(keep_alive_http10 && !response.close);
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let status = parsed.parse(&head);
    assert_eq!(
        status,
        Ok(httparse::Status::Complete(head.len())),
        "bad response head"
    );
    assert_eq!(parsed.code, Some(response.status));
    if response.allows_body() {
        let length = parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| h.value);
        assert_eq!(length, Some(response.body.len().to_string().as_bytes()));
    }
}

/// Serves one connection; returns (status, body, closes) per response.
fn serve(input: &[u8], read_bytes: usize, config: &HttpConfig) -> Vec<(u16, Vec<u8>, bool)> {
    let router = Router::new(Arc::new(MemBackend::new()), config);
    let mut client = Client {
        input,
        read_bytes,
        buf: Vec::new(),
    };
    let mut out = Vec::new();
    loop {
        let head = loop {
            match parse_head(&client.buf) {
                Ok(Status::Complete(head)) => {
                    client.buf.drain(..head.len);
                    break head;
                }
                Ok(Status::Partial) if client.read_more() => {}
                Ok(Status::Partial) => return out,
                Err(e) => {
                    let response = Response::error(e.status(), e.to_string()).closing();
                    check(&response, false);
                    out.push((response.status, response.body, true));
                    return out;
                }
            }
        };
        let (route_id, response) = match router.admit(&head) {
            Err((route_id, response)) if head.has_body() => (route_id, response.closing()),
            Err(refusal) => refusal,
            Ok(admitted) => match client.body(head.body, admitted.body_bytes_max) {
                Ok(body) => (
                    admitted.route_id,
                    block_on(router.handle(&head, admitted, body)),
                ),
                Err(None) => return out,
                Err(Some(HttpError::BodyTooLarge(_))) => {
                    (admitted.route_id, router.body_too_large(&admitted, None))
                }
                Err(Some(e)) => {
                    let response = Response::error(e.status(), e.to_string()).closing();
                    (admitted.route_id, response)
                }
            },
        };
        let close = response.close || !head.keep_alive;
        let response = if close { response.closing() } else { response };
        router
            .metrics()
            .record(route_id, response.status, Duration::ZERO);
        check(&response, head.minor_version == 0);
        let body = match head.method {
            Method::Head => Vec::new(),
            _ => response.body,
        };
        out.push((response.status, body, close));
        if close {
            return out;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // First byte: auth settings (bits 0-1) and the read size (bits 2-7).
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let config = HttpConfig {
        token: (mode & 1 != 0).then(|| Token::new("fuzz-token")),
        token_for_reads: mode & 2 != 0,
        ..HttpConfig::default()
    };
    let whole = serve(input, usize::MAX, &config);
    let split = serve(input, 1 + (mode >> 2) as usize, &config);
    assert_eq!(split, whole, "responses depend on how the bytes were split");
});
