//! Sans-IO request head reader: feed it the bytes received so far, get back a
//! [`Head`], [`Status::Partial`] (send more) or an [`HttpError`] with the exact
//! status to answer. Body framing is decided here; the chunked body decoder is
//! in [`chunked`](super::chunked).

use core::mem::MaybeUninit;

use crate::http::config::{HEADERS_COUNT_MAX, HEAD_BYTES_MAX, REQUEST_LINE_BYTES_MAX};
use crate::http::error::HttpError;

/// Result of feeding bytes to a sans-IO reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status<T> {
    /// Done; `T` says how much input was used.
    Complete(T),
    /// The input is a valid prefix; read more and call again.
    Partial,
}

/// Request method. Anything not routed is kept as `Other` so 405 can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `PUT`
    Put,
    /// `POST`
    Post,
    /// `DELETE`
    Delete,
    /// Any other token, as sent.
    Other(String),
}

impl Method {
    fn parse(token: &str) -> Self {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "PUT" => Method::Put,
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            other => Method::Other(other.to_owned()),
        }
    }

    /// The method token as sent.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Other(token) => token,
        }
    }
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No `Content-Length` and no `Transfer-Encoding`: no body.
    Empty,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// One header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Field name, lowercased.
    pub name: String,
    /// Field value as sent (httparse strips surrounding whitespace).
    pub value: Vec<u8>,
}

/// A parsed request head with its framing and connection decisions made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method.
    pub method: Method,
    /// The request target in origin form (`/path?query`); absolute-form targets
    /// (`http://host/path`) are reduced to their path and query.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header fields in order; at most [`HEADERS_COUNT_MAX`].
    pub headers: Vec<Header>,
    /// Bytes of input the head used, including leading blank lines and the final CRLF.
    pub len: usize,
    /// Body framing.
    pub body: BodyFraming,
    /// Whether the connection stays open after the response (HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request.
    pub expect_continue: bool,
}

impl Head {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value.as_slice())
    }

    /// The target up to `?`.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(&self.target, |(path, _)| path)
    }

    /// The target after `?`, or `""`.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }

    /// Whether body bytes follow the head.
    pub fn has_body(&self) -> bool {
        !matches!(self.body, BodyFraming::Empty | BodyFraming::Length(0))
    }
}

fn bad(message: impl Into<String>) -> HttpError {
    HttpError::BadRequest(message.into())
}

/// Parses one request head from the start of `buf`.
///
/// Returns `Partial` while `buf` is a valid prefix no longer than the limits
/// allow. Leftover bytes after [`Head::len`] are the body or the next
/// pipelined request.
pub fn parse_head(buf: &[u8]) -> Result<Status<Head>, HttpError> {
    check_request_line(buf)?;
    if buf.is_empty() {
        return Ok(Status::Partial);
    }
    let window = &buf[..buf.len().min(HEAD_BYTES_MAX)];
    // Uninitialized slots: httparse initializes those it fills, so a head
    // with two headers does not pay for zeroing all of them.
    let mut slots = [const { MaybeUninit::<httparse::Header>::uninit() }; HEADERS_COUNT_MAX];
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(window, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > HEAD_BYTES_MAX => {
            return Err(HttpError::HeadTooLarge {
                too_many_headers: false,
            });
        }
        Ok(httparse::Status::Partial) => return Ok(Status::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::HeadTooLarge {
                too_many_headers: true,
            });
        }
        Err(httparse::Error::Version) => return Err(HttpError::VersionNotSupported),
        Err(error) => return Err(bad(format!("malformed request head: {error}"))),
    };
    let (Some(method), Some(path), Some(minor_version)) =
        (request.method, request.path, request.version)
    else {
        return Err(bad("malformed request line"));
    };
    let headers = request
        .headers
        .iter()
        .map(|h| Header {
            name: h.name.to_ascii_lowercase(),
            value: h.value.to_vec(),
        })
        .collect();
    let mut head = Head {
        method: Method::parse(method),
        target: origin_form(path)?,
        minor_version,
        headers,
        len,
        body: BodyFraming::Empty,
        keep_alive: false,
        expect_continue: false,
    };
    decide(&mut head)?;
    Ok(Status::Complete(head))
}

/// 414 when the first line (after blank lines httparse skips) is over the limit.
fn check_request_line(buf: &[u8]) -> Result<(), HttpError> {
    let window = &buf[..buf.len().min(HEAD_BYTES_MAX + 1)];
    let start = window
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(window.len());
    let line = &window[start..];
    let bytes = line.iter().position(|b| *b == b'\n').unwrap_or(line.len());
    // The line ends with CR LF; the CR is not part of the limit.
    let bytes = if bytes > 0 && line.get(bytes - 1) == Some(&b'\r') {
        bytes - 1
    } else {
        bytes
    };
    if bytes > REQUEST_LINE_BYTES_MAX {
        return Err(HttpError::UriTooLong { bytes });
    }
    Ok(())
}

fn origin_form(target: &str) -> Result<String, HttpError> {
    if target.starts_with('/') {
        return Ok(target.to_owned());
    }
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &target[7..]
    } else if lower.starts_with("https://") {
        &target[8..]
    } else {
        return Err(bad(format!(
            "request target {target:?} must start with '/'"
        )));
    };
    Ok(match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('?') => format!("/{}", &rest[at..]),
        Some(at) => rest[at..].to_owned(),
        None => "/".to_owned(),
    })
}

/// Comma-separated tokens of every `name` field, trimmed and lowercased.
fn tokens(head: &Head, name: &str) -> Vec<String> {
    head.headers
        .iter()
        .filter(|h| h.name == name)
        .flat_map(|h| h.value.split(|b| *b == b','))
        .map(|t| String::from_utf8_lossy(t).trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn decide(head: &mut Head) -> Result<(), HttpError> {
    let http11 = head.minor_version == 1;
    let connection = tokens(head, "connection");
    let close = connection.iter().any(|t| t == "close");
    let keep = connection.iter().any(|t| t == "keep-alive");
    head.keep_alive = !close && (http11 || keep);

    let hosts = head.headers.iter().filter(|h| h.name == "host").count();
    if http11 && hosts != 1 {
        return Err(bad(format!(
            "HTTP/1.1 needs exactly one Host header; this request has {hosts}"
        )));
    }

    let expect = tokens(head, "expect");
    match expect.as_slice() {
        [] => {}
        [only] if only == "100-continue" => head.expect_continue = http11,
        _ => {
            return Err(HttpError::ExpectationFailed(format!(
                "Expect: {} is not supported; only 100-continue is",
                expect.join(", ")
            )))
        }
    }

    let codings = tokens(head, "transfer-encoding");
    let has_length = head.header("content-length").is_some();
    let has_codings = head.headers.iter().any(|h| h.name == "transfer-encoding");
    head.body = if has_codings {
        if has_length {
            return Err(bad(
                "both Content-Length and Transfer-Encoding are set; send only one",
            ));
        }
        if !http11 {
            return Err(bad(
                "Transfer-Encoding needs HTTP/1.1; send Content-Length instead",
            ));
        }
        match codings.split_last() {
            Some((last, [])) if last == "chunked" => BodyFraming::Chunked,
            Some((last, others)) if last == "chunked" => {
                return Err(HttpError::NotImplemented(format!(
                    "Transfer-Encoding {} is not supported; send the body plain or chunked",
                    others.join(", ")
                )))
            }
            _ => return Err(bad("Transfer-Encoding must end with chunked")),
        }
    } else if has_length {
        BodyFraming::Length(content_length(head)?)
    } else {
        BodyFraming::Empty
    };
    Ok(())
}

/// Every `Content-Length` value (lists included) must be the same decimal number.
fn content_length(head: &Head) -> Result<u64, HttpError> {
    let mut length = None;
    for value in head.headers.iter().filter(|h| h.name == "content-length") {
        for part in value.value.split(|b| *b == b',') {
            let text = String::from_utf8_lossy(part);
            let text = text.trim();
            let parsed = text
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| text.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| bad(format!("Content-Length {text:?} is not a byte count")))?;
            if length.is_some_and(|seen| seen != parsed) {
                return Err(bad("Content-Length headers disagree; send one"));
            }
            length = Some(parsed);
        }
    }
    length.ok_or_else(|| bad("Content-Length is empty"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Status<Head>, HttpError> {
        parse_head(raw.as_bytes())
    }

    fn complete(raw: &str) -> Head {
        match head(raw) {
            Ok(Status::Complete(head)) => head,
            other => panic!("expected a complete head for {raw:?}, got {other:?}"),
        }
    }

    fn status_of(raw: &[u8]) -> u16 {
        match parse_head(raw) {
            Err(error) => error.status(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    const PUT: &str = "PUT /kv/a%2Fb?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";

    #[test]
    fn complete_head_reports_fields_and_length() {
        let head = complete(PUT);
        assert_eq!(head.method, Method::Put);
        assert_eq!(head.path(), "/kv/a%2Fb");
        assert_eq!(head.query(), "x=1");
        assert_eq!(head.len, PUT.len());
        assert_eq!(head.body, BodyFraming::Length(3));
        assert!(head.keep_alive && !head.expect_continue && head.has_body());
        assert_eq!(head.header("host"), Some(&b"h"[..]));
    }

    #[test]
    fn every_prefix_of_a_head_is_partial() {
        for split in 0..PUT.len() {
            assert_eq!(
                parse_head(&PUT.as_bytes()[..split]),
                Ok(Status::Partial),
                "split {split}"
            );
        }
    }

    #[test]
    fn pipelined_heads_parse_one_after_another() {
        let second = "GET /ping HTTP/1.1\r\nHost: h\r\n\r\n";
        let both = format!("{PUT}abc{second}");
        let first = complete(&both);
        let rest = &both[first.len + 3..];
        assert_eq!(complete(rest).path(), "/ping");
        assert_eq!(complete(rest).len, second.len());
    }

    #[test]
    fn head_of_exactly_the_limit_is_accepted_and_one_more_byte_gets_431() {
        let start = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
        let pad = HEAD_BYTES_MAX - start.len() - "\r\n\r\n".len();
        let exact = format!("{start}{}\r\n\r\n", "p".repeat(pad));
        assert_eq!(complete(&exact).len, HEAD_BYTES_MAX);
        let over = format!("{start}{}\r\n\r\n", "p".repeat(pad + 1));
        assert_eq!(status_of(over.as_bytes()), 431);
        // Without its end the oversized head is refused as soon as it passes the limit.
        assert_eq!(status_of(&over.as_bytes()[..HEAD_BYTES_MAX + 1]), 431);
        assert_eq!(
            parse_head(&over.as_bytes()[..HEAD_BYTES_MAX]),
            Ok(Status::Partial)
        );
    }

    #[test]
    fn too_many_headers_get_431() {
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        for i in 0..HEADERS_COUNT_MAX {
            raw.push_str(&format!("X-{i}: v\r\n"));
        }
        raw.push_str("\r\n");
        assert_eq!(status_of(raw.as_bytes()), 431);
    }

    #[test]
    fn long_request_line_gets_414_even_before_it_ends() {
        let path = "a".repeat(REQUEST_LINE_BYTES_MAX);
        let raw = format!("GET /{path} HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(status_of(raw.as_bytes()), 414);
        assert_eq!(
            status_of(&raw.as_bytes()[..REQUEST_LINE_BYTES_MAX + 1]),
            414
        );
        let fits = format!(
            "GET /{} HTTP/1.1\r\nHost: h\r\n\r\n",
            &path[..REQUEST_LINE_BYTES_MAX - 15]
        );
        assert_eq!(complete(&fits).method, Method::Get);
    }

    #[test]
    fn bad_framing_gets_400() {
        let cases = [
            "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
            "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n",
            "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\n",
            "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET nope HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header: v\r\n\r\n",
        ];
        for raw in cases {
            assert_eq!(status_of(raw.as_bytes()), 400, "{raw:?}");
        }
    }

    #[test]
    fn repeated_equal_content_lengths_are_one_length() {
        let head = complete(
            "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n",
        );
        assert_eq!(head.body, BodyFraming::Length(5));
    }

    #[test]
    fn chunked_is_the_only_transfer_coding() {
        let head = complete("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(head.body, BodyFraming::Chunked);
        let gzip = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(status_of(gzip.as_bytes()), 501);
    }

    #[test]
    fn expect_decides_continue_or_417() {
        let raw = "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n";
        assert!(complete(raw).expect_continue);
        // RFC 9110 10.1.1: an HTTP/1.0 request's 100-continue is ignored.
        let old = "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
        assert!(!complete(old).expect_continue);
        let odd = "PUT / HTTP/1.1\r\nHost: h\r\nExpect: coffee\r\n\r\n";
        assert_eq!(status_of(odd.as_bytes()), 417);
    }

    #[test]
    fn keep_alive_follows_version_and_connection_header() {
        assert!(complete("GET / HTTP/1.1\r\nHost: h\r\n\r\n").keep_alive);
        assert!(!complete("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!complete("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(complete("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn absolute_form_targets_become_paths() {
        let head = complete("GET http://example.com:80/kv/x?y=1 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.target, "/kv/x?y=1");
        assert_eq!(
            complete("GET HTTP://h?q HTTP/1.1\r\nHost: h\r\n\r\n").target,
            "/?q"
        );
        assert_eq!(
            complete("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n").target,
            "/"
        );
    }

    #[test]
    fn other_http_versions_get_505() {
        assert_eq!(status_of(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
    }
}
