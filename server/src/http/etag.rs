//! The headers of conditional writes: what `If-Match` / `If-None-Match`
//! ask for, and the answers that carry a key's version (`ETag`): a write's,
//! and the 412 of a write whose key was not as expected.

use serde_json::json;

use crate::http::params::seq_response;
use crate::http::request::Head;
use crate::http::response::{decimal, Response};
use hypha_net::Expect;

/// What a write's `If-Match` / `If-None-Match` header asks for (`None`:
/// nothing: a plain write).
pub(crate) fn expectation(head: &Head) -> Result<Option<Expect>, Response> {
    let bad = |why: &str| Err(Response::error(400, why.to_string()));
    match (head.header("if-match"), head.header("if-none-match")) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => bad("give If-Match or If-None-Match, not both"),
        (None, Some(tag)) if tag.trim_ascii() == b"*" => Ok(Some(Expect::Absent)),
        (None, Some(_)) => bad(
            "a write takes If-None-Match: * (create only if absent); to write only over a \
             known version use If-Match: \"SEQ\"",
        ),
        (Some(tag), None) => match tag.trim_ascii() {
            b"*" => Ok(Some(Expect::Present)),
            tag => {
                let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
                let inner = tag
                    .strip_prefix(b"\"")
                    .and_then(|t| t.strip_suffix(b"\""))
                    .unwrap_or(tag);
                match std::str::from_utf8(inner).ok().and_then(|t| t.parse().ok()) {
                    Some(seq) => Ok(Some(Expect::Seq(seq))),
                    None => bad(
                        "If-Match takes one ETag as a read or write answered it (\"SEQ\", a \
                         number in quotes) or *",
                    ),
                }
            }
        },
    }
}

/// 412: the key is not as the write expected.
pub(crate) fn conflict(seq: Option<u64>) -> Response {
    let body = json!({
        "error": "precondition failed: the key is not as the write expected; nothing was written",
        "seq": seq,
    });
    let response = Response::json(412, &body);
    match seq {
        Some(seq) => {
            let seq = decimal(seq);
            response
                .header("ETag", ["\"", &seq, "\""].concat())
                .header("X-Hypha-Seq", seq)
        }
        None => response,
    }
}

/// A write's answer: its seq, and the key's new `ETag`.
pub(crate) fn written(status: u16, seq: u64) -> Response {
    seq_response(status, seq).header("ETag", ["\"", &decimal(seq), "\""].concat())
}
