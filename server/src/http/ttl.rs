//! `PUT /kv/{key}?ttl=30s` (or a `Hypha-TTL: 30s` header): a write whose
//! key the master expires that long after writing it, by its clock; with
//! `&refresh=true` and an empty body, a new time to live for the key's
//! current value (a write: new seq, new `ETag`). Sent as a one-write
//! transaction, with `If-Match`/`If-None-Match` as its condition.

use crate::http::backend::{Backend, TxnAnswer};
use crate::http::etag::{conflict, expectation, written};
use crate::http::params::{backend_error, check_value_len, parse_ttl};
use crate::http::percent::{form_value, FormPairs};
use crate::http::request::Head;
use crate::http::response::Response;
use crate::http::router::Router;
use hypha_net::{Expect, Txn, TxnCond, TxnOp, TxnTest};

/// What a `PUT` asks of the key's lifetime: `None` (no TTL), or the TTL in
/// ms and whether it is a refresh.
pub(crate) fn lifetime(head: &Head, query: &FormPairs) -> Result<Option<(u64, bool)>, Response> {
    let bad = |message: String| Response::error(400, message);
    let refresh = match form_value(query, "refresh") {
        None | Some(b"false") => false,
        Some(b"true") => true,
        Some(_) => return Err(bad("refresh is true or false".into())),
    };
    let text = match (form_value(query, "ttl"), head.header("hypha-ttl")) {
        (Some(q), _) => q,
        (None, Some(h)) => h,
        (None, None) if refresh => {
            return Err(bad(
                "refresh=true gives the key a new time to live: add ttl=30s (or a Hypha-TTL \
                 header)"
                    .into(),
            ))
        }
        (None, None) => return Ok(None),
    };
    let text = std::str::from_utf8(text).map_err(|_| bad("ttl is not text".into()))?;
    let ttl_ms = parse_ttl(text).map_err(|e| bad(format!("ttl: {e}")))?;
    Ok(Some((ttl_ms, refresh)))
}

impl<B: Backend> Router<B> {
    /// A `PUT` with a time to live (see the module doc).
    pub(crate) async fn kv_put_ttl(
        &self,
        head: &Head,
        key: Vec<u8>,
        value: Vec<u8>,
        (ttl_ms, refresh): (u64, bool),
    ) -> Result<Response, Response> {
        let expect = expectation(head)?;
        check_value_len(&*self.backend, value.len())?;
        if refresh && !value.is_empty() {
            return Err(Response::error(
                400,
                "a refresh keeps the key's value: send it with an empty body",
            ));
        }
        let mut conds = Vec::new();
        if let Some(e) = expect {
            conds.push(TxnCond {
                key: key.clone(),
                test: TxnTest::Expect(e),
            });
        }
        if refresh {
            conds.push(TxnCond {
                key: key.clone(),
                test: TxnTest::Expect(Expect::Present),
            });
        }
        let op = match refresh {
            true => TxnOp::Refresh {
                key: key.clone(),
                ttl_ms,
            },
            false => TxnOp::Put {
                key: key.clone(),
                value,
                ttl_ms,
            },
        };
        let txn = Txn {
            conds,
            ops: vec![op],
            reads: vec![key],
        };
        match self.backend.txn(txn).await.map_err(backend_error)? {
            TxnAnswer::Applied { seq } => Ok(written(if refresh { 200 } else { 201 }, seq)),
            TxnAnswer::Failed { reads, .. } => {
                let current = reads.first().and_then(|r| r.as_ref().map(|(seq, _)| *seq));
                match (refresh, current) {
                    (true, None) => Err(Response::error(
                        404,
                        "key not found: there is nothing to refresh",
                    )),
                    _ => Err(conflict(current)),
                }
            }
        }
    }
}
