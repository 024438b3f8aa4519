//! Errors of the sans-IO request reader and the percent decoder.
//!
//! Each [`HttpError`] maps to exactly one status code; its `Display` text is the
//! JSON `error` message the client sees, so it says what to change.

use core::fmt;

use crate::http::config::{HEADERS_COUNT_MAX, HEAD_BYTES_MAX, REQUEST_LINE_BYTES_MAX};

/// A request that cannot be served as sent.
///
/// The connection answers with [`HttpError::status`] and `{"error": "<Display>"}`,
/// then closes: after a framing error the reader no longer knows where the next
/// request starts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError {
    /// Malformed syntax: request line, header, `Content-Length` or chunk framing (400).
    BadRequest(String),
    /// The request line is longer than [`REQUEST_LINE_BYTES_MAX`] (414).
    UriTooLong {
        /// How many bytes of request line were seen before giving up (a lower bound).
        bytes: usize,
    },
    /// The head is over [`HEAD_BYTES_MAX`] or has more than [`HEADERS_COUNT_MAX`] headers (431).
    HeadTooLarge {
        /// True when the header count, not the byte size, was exceeded.
        too_many_headers: bool,
    },
    /// The body is over the limit of its endpoint (413); the text names the limit.
    BodyTooLarge(String),
    /// An `Expect` value other than `100-continue` (417).
    ExpectationFailed(String),
    /// A `Transfer-Encoding` other than `chunked` (501).
    NotImplemented(String),
    /// A protocol version other than HTTP/1.0 and HTTP/1.1 (505).
    VersionNotSupported,
}

impl HttpError {
    /// The status code this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::UriTooLong { .. } => 414,
            HttpError::HeadTooLarge { .. } => 431,
            HttpError::BodyTooLarge(_) => 413,
            HttpError::ExpectationFailed(_) => 417,
            HttpError::NotImplemented(_) => 501,
            HttpError::VersionNotSupported => 505,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadRequest(message)
            | HttpError::BodyTooLarge(message)
            | HttpError::ExpectationFailed(message)
            | HttpError::NotImplemented(message) => f.write_str(message),
            HttpError::UriTooLong { bytes } => write!(
                f,
                "the request line is at least {bytes} bytes; the limit is \
                 {REQUEST_LINE_BYTES_MAX}; use a shorter key \
                 or send it in a body (POST /set)"
            ),
            HttpError::HeadTooLarge {
                too_many_headers: true,
            } => write!(
                f,
                "the request has more than {HEADERS_COUNT_MAX} headers; send fewer headers"
            ),
            HttpError::HeadTooLarge {
                too_many_headers: false,
            } => write!(
                f,
                "the request head is over {HEAD_BYTES_MAX} bytes; send fewer or shorter \
                 headers"
            ),
            HttpError::VersionNotSupported => {
                f.write_str("only HTTP/1.0 and HTTP/1.1 are supported; speak HTTP/1.1")
            }
        }
    }
}

impl std::error::Error for HttpError {}

/// A `%` that is not followed by two hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PercentError {
    /// Byte offset of the offending `%` in the encoded input.
    pub offset: usize,
}

impl fmt::Display for PercentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad percent-encoding at byte {}: '%' must be followed by two hex digits \
             (write %25 for a literal '%')",
            self.offset
        )
    }
}

impl std::error::Error for PercentError {}

impl From<PercentError> for HttpError {
    fn from(error: PercentError) -> Self {
        HttpError::BadRequest(error.to_string())
    }
}
