//! Responses: a status, headers and a body, serialized as HTTP/1.1.
//!
//! The writer always sends `Content-Length` (except where the status forbids a
//! body), so every response is self-delimiting and keep-alive stays possible.

use std::borrow::Cow;

use serde_json::Value;

/// The interim response sent to `Expect: 100-continue` when the body will be accepted.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A response about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers; names as written, values without CR or LF.
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    /// The body; for `HEAD` requests only its length is sent.
    pub body: Vec<u8>,
    /// Close the connection after this response.
    pub close: bool,
    /// The body is streamed after the head until the connection closes (a
    /// watch): no `Content-Length`, and the connection closes after it.
    pub streamed: bool,
}

impl Response {
    /// An empty response.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
            streamed: false,
        }
    }

    /// A body with a content type.
    pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Response::new(status)
            .header("Content-Type", content_type)
            .with_body(body)
    }

    /// A JSON document (newline-terminated, so `curl` output ends cleanly).
    pub fn json(status: u16, document: &Value) -> Self {
        let mut body = document.to_string().into_bytes();
        body.push(b'\n');
        Response::bytes(status, "application/json", body)
    }

    /// `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Response::json(status, &serde_json::json!({ "error": message.into() }))
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Self {
        let value = value.into();
        debug_assert!(
            !value.contains(['\r', '\n']),
            "header {name} value has CR/LF"
        );
        self.headers.push((name, value));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// Marks the connection to close after this response.
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// Whether this status may carry a body (RFC 9110 6.4.1).
    pub fn allows_body(&self) -> bool {
        !matches!(self.status, 100..=199 | 204 | 304)
    }

    /// Status line and headers. `keep_alive_http10` echoes `Connection: keep-alive`
    /// for HTTP/1.0 clients that asked for it; the body follows separately.
    pub fn encode_head(&self, keep_alive_http10: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.headers.len() * 32);
        self.encode_head_into(keep_alive_http10, &mut out);
        out
    }

    /// [`encode_head`](Self::encode_head) appended to `out` (no formatting
    /// machinery: it runs once per response).
    pub fn encode_head_into(&self, keep_alive_http10: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, u64::from(self.status));
        out.push(b' ');
        out.extend_from_slice(reason(self.status).as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if self.allows_body() && !self.streamed {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, self.body.len() as u64);
            out.extend_from_slice(b"\r\n");
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if keep_alive_http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// `n` in decimal, without the formatting machinery.
pub fn decimal(n: u64) -> String {
    let mut out = Vec::with_capacity(20);
    push_decimal(&mut out, n);
    // Only ASCII digits were pushed.
    String::from_utf8(out).unwrap_or_default()
}

/// The reason phrase for the statuses this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_carries_length_and_connection_decision() {
        let response = Response::error(404, "key not found").header("X-Hypha-Seq", "7");
        let head = String::from_utf8(response.encode_head(false)).unwrap_or_default();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
        assert!(head.contains("Content-Type: application/json\r\n"));
        assert!(head.contains("X-Hypha-Seq: 7\r\n"));
        assert!(head.contains(&format!("Content-Length: {}\r\n", response.body.len())));
        assert!(head.ends_with("\r\n\r\n") && !head.contains("Connection"));
        assert_eq!(response.body, b"{\"error\":\"key not found\"}\n");

        let closing =
            String::from_utf8(Response::new(200).closing().encode_head(true)).unwrap_or_default();
        assert!(closing.contains("Connection: close\r\n") && !closing.contains("keep-alive"));
        let old = String::from_utf8(Response::new(200).encode_head(true)).unwrap_or_default();
        assert!(old.contains("Connection: keep-alive\r\n"));
    }

    #[test]
    fn decimals_match_display() {
        for n in [0, 7, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(decimal(n), n.to_string());
        }
    }

    #[test]
    fn not_modified_has_no_content_length() {
        let head = String::from_utf8(Response::new(304).encode_head(false)).unwrap_or_default();
        assert_eq!(head, "HTTP/1.1 304 Not Modified\r\n\r\n");
    }
}
