//! The dialects of older KV services, so existing scripts keep working.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /set` form `key=K&value=V` | 200 `{"seq":N}` |
//! | `GET /get?key=K` | 200 raw value; 404 `{"error":"Key not found"}` |
//! | `POST /delete` form `key=K` | 200 `{"seq":N}`; 404 |
//! | `POST /store` JSON `{"key":"k","value":"v"}` | 200 `{"seq":N}` |
//! | `GET /store/key` JSON body `{"key":"k"}` (or `?key=k`) | `{"value":"v"}` (`{"value_base64":…}` if not UTF-8); 404 |
//! | `GET /store/hash` | `{"hash":"…"}`, the master's digest |
//! | `PUT /set` (or `POST /set` with `Content-Type: application/json`) JSON `[{"key":T,"value":T}, …]` | `[{"keys_added":N,"keys_failed":[T…],"errors":["…"]}]` |
//! | `POST /fetch` JSON `[T, …]` | `[{"key":T,"value":T or null}, …]` |
//! | `GET /fetch?cursor=C&limit=L&prefix=P` | all pairs as above, paged; next cursor in `X-Hypha-Next-Cursor` (absent on the last page) |
//! | `POST /query` JSON `[T, …]` | `[{"key":T,"value":true or false}, …]` |
//! | `GET /master/` | the master (`addr`, `healthy`, `seq`) and its `workers` (`idx` from 1, `addr`, `healthy`, `applied_seq`, `lag`), as `/status` has them |
//! | `GET /worker/{idx}` | that worker; 404 with how to start one |
//! | `PUT /put/{key}/{value}`, `GET /get/{key}`, `DELETE /delete/{key}` | as their names say; the value is the last path segment, so `/put/a/b/c` stores `c` under `a/b` and `/get/a/b` reads it (a `/` in a value is `%2F`) |
//!
//! `T` is `{"encoding":"string"|"binary","data":…}` with binary data in base64;
//! a plain JSON string is accepted as a string key. Keys are answered in the
//! encoding they were asked in; values use `string` when the bytes are UTF-8,
//! else `binary`. A trailing `/` on path routes is dropped.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::http::backend::Backend;
use crate::http::compat_json::{
    batch, batch_keys, check_json_values, decode_typed, encode_typed, json_body, string_field,
};
use crate::http::config::{BodyKind, FETCH_LIMIT_DEFAULT, FETCH_SCAN_KEYS, FETCH_VALUES_BYTES_MAX};
use crate::http::metrics::RouteId;
use crate::http::params::{
    backend_error, check_value_len, consistency, decode_key, limit_param, number_param,
    seq_response,
};
use crate::http::percent::{form_value, parse_form, FormPairs};
use crate::http::request::{Head, Method};
use crate::http::response::Response;

/// A compat route with its decoded path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Set,
    Get,
    Delete,
    Store,
    StoreKey,
    StoreHash,
    Fetch,
    Query,
    PutPath(Vec<u8>, Vec<u8>),
    GetPath(Vec<u8>),
    DeletePath(Vec<u8>),
    /// `GET /master/`: the master and its workers.
    Master,
    /// `GET /worker/{idx}`: one worker (1-based, in the master's list).
    Worker(u32),
}

/// The compat route for `path` and its allowed methods.
pub(crate) fn match_path(path: &str) -> Option<Result<(Route, &'static str), String>> {
    let fixed = match path {
        "/set" => Some((Route::Set, "POST, PUT")),
        "/get" => Some((Route::Get, "GET, HEAD")),
        "/delete" => Some((Route::Delete, "POST")),
        "/store" => Some((Route::Store, "POST")),
        "/store/key" => Some((Route::StoreKey, "GET, HEAD, POST")),
        "/store/hash" => Some((Route::StoreHash, "GET, HEAD")),
        "/fetch" => Some((Route::Fetch, "GET, HEAD, POST")),
        "/query" => Some((Route::Query, "POST")),
        "/master" | "/master/" => Some((Route::Master, "GET, HEAD")),
        _ => None,
    };
    if let Some(found) = fixed {
        return Some(Ok(found));
    }
    let rest = |prefix: &str| {
        path.strip_prefix(prefix)
            .map(|r| r.strip_suffix('/').unwrap_or(r))
    };
    if let Some(rest) = rest("/worker/") {
        let idx = rest.parse::<u32>().ok().filter(|&i| i > 0);
        let shape = "/worker/{idx}, idx from 1";
        return Some(
            idx.map(|i| (Route::Worker(i), "GET, HEAD"))
                .ok_or(format!("use {shape}")),
        );
    }
    if let Some(rest) = rest("/put/") {
        let shape = "/put/{key}/{value}";
        // The value is the last segment: `/put/a/b/c` stores `c` under `a/b`,
        // which `/get/a/b` reads (a `/` inside a value is written `%2F`).
        let Some((key, value)) = rest.rsplit_once('/') else {
            return Some(Err(format!("no value in the path; use {shape}")));
        };
        let pair = decode_key(key, shape).and_then(|key| {
            let value = crate::http::percent::decode_path(value.as_bytes());
            value
                .map(|value| (key, value))
                .map_err(|e| format!("value: {e}"))
        });
        return Some(pair.map(|(key, value)| (Route::PutPath(key, value), "PUT")));
    }
    if let Some(rest) = rest("/get/") {
        return Some(decode_key(rest, "/get/{key}").map(|key| (Route::GetPath(key), "GET, HEAD")));
    }
    if let Some(rest) = rest("/delete/") {
        return Some(
            decode_key(rest, "/delete/{key}").map(|key| (Route::DeletePath(key), "DELETE")),
        );
    }
    None
}

pub(crate) fn route_id(route: &Route, method: &Method) -> RouteId {
    match route {
        Route::Set if *method == Method::Put => RouteId::CompatSetBatch,
        Route::Set => RouteId::CompatSet,
        Route::Get => RouteId::CompatGet,
        Route::Delete => RouteId::CompatDelete,
        Route::Store => RouteId::CompatStore,
        Route::StoreKey => RouteId::CompatStoreKey,
        Route::StoreHash => RouteId::CompatStoreHash,
        Route::Fetch if *method == Method::Post => RouteId::CompatFetch,
        Route::Fetch => RouteId::CompatFetchAll,
        Route::Query => RouteId::CompatQuery,
        Route::PutPath(..) => RouteId::CompatPutPath,
        Route::GetPath(_) => RouteId::CompatGetPath,
        Route::DeletePath(_) => RouteId::CompatDeletePath,
        Route::Master | Route::Worker(_) => RouteId::CompatNodes,
    }
}

pub(crate) fn is_write(route: &Route, _method: &Method) -> bool {
    matches!(
        route,
        Route::Set | Route::Delete | Route::Store | Route::PutPath(..) | Route::DeletePath(_)
    )
}

pub(crate) fn body_kind(route: &Route, method: &Method) -> BodyKind {
    match route {
        Route::Set | Route::Delete | Route::Store | Route::StoreKey | Route::Query => {
            BodyKind::Envelope
        }
        Route::Fetch if *method == Method::Post => BodyKind::Envelope,
        _ => BodyKind::Unused,
    }
}

/// Serves an admitted compat request.
pub(crate) async fn handle<B: Backend>(
    backend: &B,
    route: Route,
    head: &Head,
    query: &FormPairs,
    body: Vec<u8>,
    json_values_max: usize,
) -> Response {
    if takes_json(&route, head) {
        if let Err(refused) = check_json_values(&body, json_values_max) {
            return refused;
        }
    }
    let result = match route {
        Route::Set if head.method == Method::Put || is_json(head) => {
            set_batch(backend, &body).await
        }
        Route::Set => form_set(backend, head, &body).await,
        Route::Get => match form_value(query, "key") {
            Some(key) if !key.is_empty() => get_raw(backend, key.to_vec(), query).await,
            _ => Err(Response::error(400, "use /get?key=K")),
        },
        Route::Delete => form_delete(backend, head, &body).await,
        Route::Store => store(backend, &body).await,
        Route::StoreKey => store_key(backend, query, &body).await,
        Route::StoreHash => store_hash(backend).await,
        Route::Fetch if head.method == Method::Post => fetch(backend, query, &body).await,
        Route::Fetch => fetch_all(backend, query).await,
        Route::Query => query_keys(backend, query, &body).await,
        Route::PutPath(key, value) => put(backend, key, value).await,
        Route::GetPath(key) => get_raw(backend, key, query).await,
        Route::DeletePath(key) => delete(backend, key).await,
        Route::Master => Ok(Response::json(200, &nodes(&backend.status().await))),
        Route::Worker(idx) => worker(&backend.status().await, idx),
    };
    result.unwrap_or_else(|response| response)
}

/// `GET /master/`: what the master knows of its workers, from `/status`.
fn nodes(status: &Value) -> Value {
    let workers: Vec<Value> = status["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, w)| {
            let mut w = w.clone();
            w["idx"] = json!(i + 1);
            w
        })
        .collect();
    let mut master = status["master"].clone();
    master["workers"] = Value::Array(workers);
    master
}

/// `GET /worker/{idx}`: that worker, or how to start one.
fn worker(status: &Value, idx: u32) -> Result<Response, Response> {
    let master = nodes(status);
    let workers = master["workers"].as_array().cloned().unwrap_or_default();
    match workers.get(idx as usize - 1) {
        Some(w) => Ok(Response::json(200, w)),
        None => Err(Response::error(
            404,
            format!(
                "no worker {idx}: the master lists {} (1..={}); start another with `hypha \
                 worker --data DIR --master {} --listen ADDR` (it registers with the master)",
                workers.len(),
                workers.len(),
                master["addr"].as_str().unwrap_or("ADDR")
            ),
        )),
    }
}

fn key_not_found() -> Response {
    Response::error(404, "Key not found")
}

async fn put<B: Backend>(backend: &B, key: Vec<u8>, value: Vec<u8>) -> Result<Response, Response> {
    check_value_len(backend, value.len())?;
    let seq = backend.put(key, value).await.map_err(backend_error)?;
    Ok(seq_response(200, seq))
}

async fn delete<B: Backend>(backend: &B, key: Vec<u8>) -> Result<Response, Response> {
    match backend.delete(key).await.map_err(backend_error)? {
        Some(seq) => Ok(seq_response(200, seq)),
        None => Err(key_not_found()),
    }
}

async fn get_value<B: Backend>(
    backend: &B,
    key: Vec<u8>,
    query: &FormPairs,
) -> Result<Vec<u8>, Response> {
    let entry = backend
        .get(key, consistency(query)?)
        .await
        .map_err(backend_error)?;
    entry.map(|entry| entry.value).ok_or_else(key_not_found)
}

async fn get_raw<B: Backend>(
    backend: &B,
    key: Vec<u8>,
    query: &FormPairs,
) -> Result<Response, Response> {
    let value = get_value(backend, key, query).await?;
    Ok(Response::bytes(200, "application/octet-stream", value))
}

/// The decoded form body; multipart (`curl -F`) is refused with a hint.
fn form(head: &Head, body: &[u8]) -> Result<FormPairs, Response> {
    let content_type = head.header("content-type").unwrap_or_default();
    if content_type.to_ascii_lowercase().starts_with(b"multipart/") {
        let message = "send the form as application/x-www-form-urlencoded (curl -d or --data-urlencode), not multipart (-F)";
        return Err(Response::error(415, message));
    }
    parse_form(body).map_err(|e| Response::error(400, format!("form: {e}")))
}

fn form_key(form: &FormPairs) -> Result<Vec<u8>, Response> {
    match form_value(form, "key") {
        Some(key) if !key.is_empty() => Ok(key.to_vec()),
        _ => Err(Response::error(400, "the form needs a non-empty key=...")),
    }
}

async fn form_set<B: Backend>(backend: &B, head: &Head, body: &[u8]) -> Result<Response, Response> {
    let form = form(head, body)?;
    let key = form_key(&form)?;
    let value = form_value(&form, "value")
        .ok_or_else(|| Response::error(400, "the form needs value=..."))?;
    put(backend, key, value.to_vec()).await
}

async fn form_delete<B: Backend>(
    backend: &B,
    head: &Head,
    body: &[u8],
) -> Result<Response, Response> {
    let form = form(head, body)?;
    delete(backend, form_key(&form)?).await
}

/// Whether the request says its body is JSON (`POST /set` then is the
/// JSON batch, as `PUT /set` always is).
fn is_json(head: &Head) -> bool {
    head.header("content-type").is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t.starts_with(b"application/json") || t.ends_with(b"+json")
    })
}

/// Whether `route` carries a JSON body (when it has one).
fn takes_json(route: &Route, head: &Head) -> bool {
    match route {
        Route::Store | Route::StoreKey | Route::Query => true,
        Route::Set => head.method == Method::Put || is_json(head),
        Route::Fetch => head.method == Method::Post,
        _ => false,
    }
}

async fn store<B: Backend>(backend: &B, body: &[u8]) -> Result<Response, Response> {
    let document = json_body(body)?;
    let shape = r#"{"key":"...","value":"..."}"#;
    let key = string_field(&document, "key", shape)?;
    let value = string_field(&document, "value", shape)?;
    if key.is_empty() {
        return Err(Response::error(400, "the key is empty"));
    }
    put(backend, key, value).await
}

async fn store_key<B: Backend>(
    backend: &B,
    query: &FormPairs,
    body: &[u8],
) -> Result<Response, Response> {
    let key = match form_value(query, "key") {
        Some(key) if body.is_empty() => key.to_vec(),
        _ => string_field(&json_body(body)?, "key", r#"{"key":"..."}"#)?,
    };
    let value = get_value(backend, key, query).await?;
    Ok(Response::json(
        200,
        &match String::from_utf8(value) {
            Ok(text) => json!({ "value": text }),
            Err(binary) => json!({ "value_base64": STANDARD.encode(binary.as_bytes()) }),
        },
    ))
}

async fn store_hash<B: Backend>(backend: &B) -> Result<Response, Response> {
    let digest = backend.digest().await.map_err(backend_error)?;
    let hash = match digest.pointer("/master/digest") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => {
            return Err(Response::error(
                500,
                "the digest document has no master.digest",
            ))
        }
    };
    Ok(Response::json(200, &json!({ "hash": hash })))
}

/// The seed dialect's JSON batch: all of it as one atomic batch, or, if an
/// item is invalid, none of it (400 naming the item). The answer keeps the
/// dialect's form.
async fn set_batch<B: Backend>(backend: &B, body: &[u8]) -> Result<Response, Response> {
    let items = batch(
        body,
        r#"[{"key":{"encoding":"string","data":"k"},"value":{...}}, ...]"#,
    )?;
    let mut ops = Vec::with_capacity(items.len());
    for (at, item) in items.iter().enumerate() {
        let refuse = |status, message: &str| {
            let message = format!("item {at}: {message}; nothing was written (a batch is atomic)");
            Response::error(status, message)
        };
        let key = decode_typed(item.get("key").unwrap_or(&Value::Null))
            .and_then(|key| match key.is_empty() {
                true => Err("the key is empty".into()),
                false => Ok(key),
            })
            .map_err(|m| refuse(400, &m))?;
        let value =
            decode_typed(item.get("value").unwrap_or(&Value::Null)).map_err(|m| refuse(400, &m))?;
        if let Err(too_large) = check_value_len(backend, value.len()) {
            let why = String::from_utf8_lossy(&too_large.body).trim().to_owned();
            return Err(refuse(413, &why));
        }
        ops.push(hypha_net::TxnOp::Put {
            key,
            value,
            ttl_ms: 0,
        });
    }
    let added = ops.len();
    let txn = hypha_net::Txn {
        ops,
        ..hypha_net::Txn::default()
    };
    match backend.txn(txn).await {
        Ok(_) => Ok(Response::json(
            200,
            &json!([{"keys_added": added, "keys_failed": [], "errors": []}]),
        )),
        Err(error) => {
            let message = format!("{error}; none of the {added} keys was written");
            Err(Response::error(error.status(), message))
        }
    }
}

async fn fetch<B: Backend>(
    backend: &B,
    query: &FormPairs,
    body: &[u8],
) -> Result<Response, Response> {
    let c = consistency(query)?;
    let (mut pairs, mut bytes) = (Vec::new(), 0usize);
    for (key, asked) in batch_keys(body)? {
        let entry = backend.get(key, c).await.map_err(backend_error)?;
        bytes += entry.as_ref().map_or(0, |e| e.value.len());
        if bytes > FETCH_VALUES_BYTES_MAX && pairs.len() > 1 {
            let message =
                format!("the values are over {FETCH_VALUES_BYTES_MAX} bytes; ask for fewer keys");
            return Err(Response::error(400, message));
        }
        let value = entry.map(|entry| encode_typed(&entry.value));
        pairs.push(json!({"key": asked, "value": value}));
    }
    Ok(Response::json(200, &Value::Array(pairs)))
}

async fn fetch_all<B: Backend>(backend: &B, query: &FormPairs) -> Result<Response, Response> {
    let c = consistency(query)?;
    let prefix = form_value(query, "prefix").unwrap_or_default().to_vec();
    let mut cursor = Some(number_param(query, "cursor")?.unwrap_or(0));
    let limit = limit_param(query, FETCH_LIMIT_DEFAULT)?;
    let (mut pairs, mut bytes) = (Vec::new(), 0usize);
    while let Some(at) = cursor {
        let room = u32::try_from(limit as usize - pairs.len()).unwrap_or(0);
        if room == 0 || bytes > FETCH_VALUES_BYTES_MAX {
            break;
        }
        let page = backend.scan(at, prefix.clone(), room.min(FETCH_SCAN_KEYS), c);
        let page = page.await.map_err(backend_error)?;
        for key in page.keys {
            // A key deleted between scan and get is skipped, not reported as null.
            if let Some(entry) = backend.get(key.clone(), c).await.map_err(backend_error)? {
                bytes += entry.value.len();
                pairs.push(json!({"key": encode_typed(&key), "value": encode_typed(&entry.value)}));
            }
        }
        cursor = page.next_cursor;
    }
    let response = Response::json(200, &Value::Array(pairs));
    Ok(match cursor {
        Some(next) => response.header("X-Hypha-Next-Cursor", next.to_string()),
        None => response,
    })
}

async fn query_keys<B: Backend>(
    backend: &B,
    query: &FormPairs,
    body: &[u8],
) -> Result<Response, Response> {
    let c = consistency(query)?;
    let mut answers = Vec::new();
    for (key, asked) in batch_keys(body)? {
        let present = backend.get(key, c).await.map_err(backend_error)?.is_some();
        answers.push(json!({"key": asked, "value": present}));
    }
    Ok(Response::json(200, &Value::Array(answers)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_routes_decode_keys_and_drop_one_trailing_slash() {
        assert_eq!(
            match_path("/get/a%2Fb/"),
            Some(Ok((Route::GetPath(b"a/b".to_vec()), "GET, HEAD")))
        );
        assert_eq!(
            match_path("/put/k%00/v/w"),
            Some(Ok((
                Route::PutPath(b"k\0/v".to_vec(), b"w".to_vec()),
                "PUT"
            )))
        );
        // Where the key ends is the same for writing and reading.
        let Some(Ok((Route::PutPath(written, _), _))) = match_path("/put/a/b/c") else {
            panic!("a put path")
        };
        assert_eq!(
            match_path("/get/a/b"),
            Some(Ok((Route::GetPath(written), "GET, HEAD")))
        );
        assert!(matches!(match_path("/put/k"), Some(Err(_))));
        assert!(matches!(match_path("/delete/"), Some(Err(_))));
        assert!(matches!(match_path("/get/%"), Some(Err(_))));
        assert_eq!(match_path("/other"), None);
    }
}
