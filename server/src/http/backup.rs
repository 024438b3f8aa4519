//! `GET /admin/backup`: one page of a consistent copy of the live keys, as
//! JSON (keys and values in base64). `hypha backup` asks page after page,
//! passing back `node`, `upto` and `generation` from the first page and the
//! last record's seq as `after`; `done` ends the copy. Token-protected like
//! writes (it reads everything).

use crate::http::backend::{Backend, BackupAsk};
use crate::http::params::{backend_error, number_param};
use crate::http::percent::{form_value, FormPairs};
use crate::http::response::Response;
use base64::Engine as _;
use serde_json::{json, Value};

/// Answers one page.
pub(crate) async fn handle<B: Backend>(
    backend: &B,
    query: &FormPairs,
) -> Result<Response, Response> {
    let node = form_value(query, "node")
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .filter(|n| !n.is_empty());
    let ask = BackupAsk {
        node,
        upto: number_param(query, "upto")?,
        after: number_param(query, "after")?.unwrap_or(0),
        generation: number_param(query, "generation")?,
    };
    let answer = backend.backup(ask).await.map_err(backend_error)?;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let records: Vec<Value> = answer
        .page
        .records
        .iter()
        .map(|r| {
            let mut record = json!({"seq": r.seq, "key": b64(&r.key), "value": b64(&r.value)});
            if r.meta.deadline_ms != 0 {
                record["deadline_ms"] = json!(r.meta.deadline_ms);
            }
            record
        })
        .collect();
    let page = &answer.page;
    Ok(Response::json(
        200,
        &json!({
            "node": answer.node,
            "upto": page.upto,
            "generation": page.generation.to_string(),
            "done": page.done,
            "records": records,
        }),
    ))
}
