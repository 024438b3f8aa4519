//! `PUT` and `DELETE /kv/{key}`, plain or conditional (compare-and-swap):
//! `If-Match: "SEQ"` writes only if the key's live version has that seq
//! (the `ETag` a read or write answered), `If-Match: *` only if the key
//! holds a value, `If-None-Match: *` only if it holds none. The condition
//! is decided where writes are ordered, with the append; when it does not
//! hold, nothing is written and the answer is 412 with the key's current
//! seq in `ETag` (none for an absent key) and in the JSON body.

use serde_json::json;

use crate::http::backend::Backend;
use crate::http::params::{backend_error, check_value_len, seq_response};
use crate::http::percent::FormPairs;
use crate::http::request::Head;
use crate::http::response::{decimal, Response};
use crate::http::router::Router;
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

impl<B: Backend> Router<B> {
    pub(crate) async fn kv_put(
        &self,
        head: &Head,
        key: Vec<u8>,
        value: Vec<u8>,
        query: &FormPairs,
    ) -> Result<Response, Response> {
        if let Some(lifetime) = crate::http::ttl::lifetime(head, query)? {
            return self.kv_put_ttl(head, key, value, lifetime).await;
        }
        let expect = expectation(head)?;
        check_value_len(&*self.backend, value.len())?;
        let b = &self.backend;
        let seq = match expect {
            None => b.put(key, value).await.map_err(backend_error)?,
            Some(e) => match b.put_if(key, value, e).await.map_err(backend_error)? {
                Ok(seq) => seq,
                Err(current) => return Err(conflict(current)),
            },
        };
        Ok(written(201, seq))
    }

    pub(crate) async fn kv_delete(&self, head: &Head, key: Vec<u8>) -> Result<Response, Response> {
        let deleted = match expectation(head)? {
            None => self.backend.delete(key).await.map_err(backend_error)?,
            Some(e) => match self
                .backend
                .delete_if(key, e)
                .await
                .map_err(backend_error)?
            {
                Ok(seq) => seq,
                Err(current) => return Err(conflict(current)),
            },
        };
        match deleted {
            Some(seq) => Ok(seq_response(200, seq)),
            None => Err(Response::error(404, "key not found")),
        }
    }
}
