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
//! | `PUT /set` JSON `[{"key":T,"value":T}, …]` | `[{"keys_added":N,"keys_failed":[T…],"errors":["…"]}]` |
//! | `POST /fetch` JSON `[T, …]` | `[{"key":T,"value":T or null}, …]` |
//! | `GET /fetch?cursor=C&limit=L&prefix=P` | all pairs as above, paged; next cursor in `X-Hypha-Next-Cursor` (absent on the last page) |
//! | `POST /query` JSON `[T, …]` | `[{"key":T,"value":true or false}, …]` |
//! | `PUT /put/{key}/{value}`, `GET /get/{key}`, `DELETE /delete/{key}` | as their names say |
//!
//! `T` is `{"encoding":"string"|"binary","data":…}` with binary data in base64;
//! a plain JSON string is accepted as a string key. Answers use `string` when the
//! bytes are UTF-8, else `binary`. A trailing `/` on path routes is dropped.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::http::backend::Backend;
use crate::http::metrics::RouteId;
use crate::http::params::{
    backend_error, check_value_len, consistency, decode_key, limit_param, number_param,
    seq_response,
};
use crate::http::percent::{form_value, parse_form, FormPairs};
use crate::http::request::{Head, Method};
use crate::http::response::Response;
use crate::http::router::BodyKind;

/// Most keys in one `POST /fetch`, `POST /query` or `PUT /set`.
pub const BATCH_KEYS_MAX: usize = 1000;
/// Keys per page of `GET /fetch` when `limit` is not given.
pub const FETCH_LIMIT_DEFAULT: u32 = 100;
/// Value bytes after which `GET /fetch` ends its page early and `POST /fetch`
/// refuses; keeps one response from holding the whole store in memory.
pub const FETCH_VALUES_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Keys scanned per backend call while filling a `GET /fetch` page, so a page
/// can stop close to [`FETCH_VALUES_BYTES_MAX`].
const FETCH_SCAN_KEYS: u32 = 16;

const _: () = assert!(FETCH_LIMIT_DEFAULT <= crate::http::router::SCAN_LIMIT_MAX);
const _: () = assert!(BATCH_KEYS_MAX as u32 >= crate::http::router::SCAN_LIMIT_MAX);

/// Base64 that accepts data with or without `=` padding.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

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
        _ => None,
    };
    if let Some(found) = fixed {
        return Some(Ok(found));
    }
    let rest = |prefix: &str| {
        path.strip_prefix(prefix)
            .map(|r| r.strip_suffix('/').unwrap_or(r))
    };
    if let Some(rest) = rest("/put/") {
        let shape = "/put/{key}/{value}";
        let Some((key, value)) = rest.split_once('/') else {
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
    if takes_json(&route, &head.method) {
        if let Err(refused) = check_json_values(&body, json_values_max) {
            return refused;
        }
    }
    let result = match route {
        Route::Set if head.method == Method::Put => set_batch(backend, &body).await,
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
    };
    result.unwrap_or_else(|response| response)
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

/// Default of `--json-values-max`: most JSON values (arrays, objects,
/// strings, numbers, ...) in one request body of the dialects. A parsed
/// value costs ~32 bytes and some work however short its text, so a 16 MiB
/// body of `[0,0,...]` would cost ~300 MiB and a second of the executor
/// thread; counting first bounds both (the largest batch the dialects carry
/// is `SCAN_LIMIT_MAX` keys of a few values each).
pub const JSON_VALUES_MAX_DEFAULT: usize = 16 * 1024;

/// Whether `route` carries a JSON body (when it has one).
fn takes_json(route: &Route, method: &Method) -> bool {
    match route {
        Route::Store | Route::StoreKey | Route::Query => true,
        Route::Set => *method == Method::Put,
        Route::Fetch => *method == Method::Post,
        _ => false,
    }
}

/// Refuses, before parsing, a JSON body of more than `max` values.
fn check_json_values(body: &[u8], max: usize) -> Result<(), Response> {
    if json_values_at_least(body, max.saturating_add(1)) <= max {
        return Ok(());
    }
    let message = format!(
        "the JSON body holds more than {max} values (--json-values-max); send fewer keys or \
         values per request"
    );
    Err(Response::error(413, message))
}

fn json_body(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| Response::error(400, format!("body is not JSON: {e}")))
}

/// A cheap upper bound on the values in a JSON text, counted until `stop`:
/// every `[`, `{`, `,` and `:` outside strings starts at most one value.
fn json_values_at_least(text: &[u8], stop: usize) -> usize {
    let (mut count, mut in_string, mut escaped) = (1, false, false);
    for &byte in text {
        match (in_string, byte) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') | (false, b'"') => in_string = !in_string,
            (false, b'[' | b'{' | b',' | b':') => {
                count += 1;
                if count >= stop {
                    break;
                }
            }
            _ => {}
        }
    }
    count
}

fn string_field(document: &Value, name: &str, shape: &str) -> Result<Vec<u8>, Response> {
    match document.get(name) {
        Some(Value::String(text)) => Ok(text.clone().into_bytes()),
        _ => Err(Response::error(
            400,
            format!("the body must be {shape}; \"{name}\" is not a string"),
        )),
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

/// `{"encoding":"string"|"binary","data":…}` (or a plain string) to bytes.
fn decode_typed(item: &Value) -> Result<Vec<u8>, String> {
    let shape = r#"{"encoding":"string"|"binary","data":"..."}"#;
    let object = match item {
        Value::String(text) => return Ok(text.clone().into_bytes()),
        Value::Object(object) => object,
        _ => return Err(format!("expected {shape}")),
    };
    let Some(Value::String(data)) = object.get("data") else {
        return Err(format!("\"data\" must be a string in {shape}"));
    };
    match object
        .get("encoding")
        .and_then(Value::as_str)
        .unwrap_or("string")
    {
        "string" => Ok(data.clone().into_bytes()),
        "binary" => BASE64_LENIENT
            .decode(data)
            .map_err(|e| format!("binary data is not base64: {e}")),
        other => Err(format!("encoding {other:?} is not string or binary")),
    }
}

/// Bytes to the typed form: `string` when UTF-8, else `binary` (base64).
fn encode_typed(bytes: &[u8]) -> Value {
    match core::str::from_utf8(bytes) {
        Ok(text) => json!({"encoding": "string", "data": text}),
        Err(_) => json!({"encoding": "binary", "data": STANDARD.encode(bytes)}),
    }
}

/// A JSON array of at most [`BATCH_KEYS_MAX`] items.
fn batch(body: &[u8], shape: &str) -> Result<Vec<Value>, Response> {
    let Value::Array(items) = json_body(body)? else {
        return Err(Response::error(
            400,
            format!("the body must be a JSON array: {shape}"),
        ));
    };
    if items.len() > BATCH_KEYS_MAX {
        let message = format!(
            "{} items; send at most {BATCH_KEYS_MAX} (BATCH_KEYS_MAX) per request",
            items.len()
        );
        return Err(Response::error(400, message));
    }
    Ok(items)
}

fn batch_keys(body: &[u8]) -> Result<Vec<Vec<u8>>, Response> {
    let shape = r#"[{"encoding":"string","data":"k"}, ...]"#;
    let items = batch(body, shape)?;
    let decode = |(at, item): (usize, &Value)| {
        decode_typed(item).map_err(|e| Response::error(400, format!("key {at}: {e}")))
    };
    items.iter().enumerate().map(decode).collect()
}

async fn set_batch<B: Backend>(backend: &B, body: &[u8]) -> Result<Response, Response> {
    let items = batch(
        body,
        r#"[{"key":{"encoding":"string","data":"k"},"value":{...}}, ...]"#,
    )?;
    let (mut added, mut failed, mut errors) = (0usize, Vec::new(), Vec::new());
    for (at, item) in items.iter().enumerate() {
        let key_item = item.get("key").cloned().unwrap_or(Value::Null);
        let decoded = decode_typed(&key_item)
            .and_then(|key| {
                if key.is_empty() {
                    Err("the key is empty".into())
                } else {
                    Ok(key)
                }
            })
            .and_then(|key| {
                Ok((
                    key,
                    decode_typed(item.get("value").unwrap_or(&Value::Null))?,
                ))
            });
        let outcome = match decoded {
            Err(message) => Err(message),
            Ok((key, value)) => match check_value_len(backend, value.len()) {
                Err(response) => Err(String::from_utf8_lossy(&response.body).trim().to_owned()),
                Ok(()) => match backend.put(key, value).await {
                    Ok(_) => Ok(()),
                    Err(error) if matches!(error.status(), 400 | 413) => Err(error.to_string()),
                    Err(error) => {
                        let message = format!(
                            "{error} ({added} of {} keys were added before it)",
                            items.len()
                        );
                        return Err(Response::error(error.status(), message));
                    }
                },
            },
        };
        match outcome {
            Ok(()) => added += 1,
            Err(message) => {
                failed.push(key_item);
                errors.push(format!("item {at}: {message}"));
            }
        }
    }
    Ok(Response::json(
        200,
        &json!([{"keys_added": added, "keys_failed": failed, "errors": errors}]),
    ))
}

async fn fetch<B: Backend>(
    backend: &B,
    query: &FormPairs,
    body: &[u8],
) -> Result<Response, Response> {
    let c = consistency(query)?;
    let (mut pairs, mut bytes) = (Vec::new(), 0usize);
    for key in batch_keys(body)? {
        let entry = backend.get(key.clone(), c).await.map_err(backend_error)?;
        bytes += entry.as_ref().map_or(0, |e| e.value.len());
        if bytes > FETCH_VALUES_BYTES_MAX && pairs.len() > 1 {
            let message = format!(
                "the values are over {FETCH_VALUES_BYTES_MAX} bytes (FETCH_VALUES_BYTES_MAX); ask for fewer keys"
            );
            return Err(Response::error(400, message));
        }
        let value = entry.map(|entry| encode_typed(&entry.value));
        pairs.push(json!({"key": encode_typed(&key), "value": value}));
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
    for key in batch_keys(body)? {
        let present = backend
            .get(key.clone(), c)
            .await
            .map_err(backend_error)?
            .is_some();
        answers.push(json!({"key": encode_typed(&key), "value": present}));
    }
    Ok(Response::json(200, &Value::Array(answers)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_values_are_counted_outside_strings_and_counting_stops_early() {
        assert_eq!(json_values_at_least(b"[1,2,3]", 100), 4);
        assert_eq!(json_values_at_least(br#"["a,b:[{", "c\"d,"]"#, 100), 3);
        assert_eq!(json_values_at_least(&b"[0,".repeat(1000), 10), 10);
        let flood = [
            b"[".as_slice(),
            &b"0,".repeat(JSON_VALUES_MAX_DEFAULT),
            b"0]",
        ]
        .concat();
        let Err(refused) = check_json_values(&flood, JSON_VALUES_MAX_DEFAULT) else {
            panic!("a body of too many values was let through")
        };
        assert_eq!(refused.status, 413);
        // Counted as 4: two `[` and one `,` start values, plus the first.
        assert!(check_json_values(br#"[["a","b"]]"#, 4).is_ok());
        assert!(check_json_values(br#"[["a","b"]]"#, 3).is_err());
    }

    use super::*;

    #[test]
    fn typed_values_round_trip_strings_and_binary() {
        let binary = [0u8, 0xff, b'/'];
        assert_eq!(
            encode_typed(b"hi"),
            json!({"encoding": "string", "data": "hi"})
        );
        assert_eq!(decode_typed(&encode_typed(&binary)), Ok(binary.to_vec()));
        assert_eq!(
            decode_typed(&json!({"encoding": "binary", "data": "AP8v"})),
            Ok(binary.to_vec())
        );
        assert_eq!(
            decode_typed(&json!({"encoding": "binary", "data": "AA"})),
            Ok(vec![0])
        );
        assert_eq!(decode_typed(&json!("plain")), Ok(b"plain".to_vec()));
        assert!(decode_typed(&json!({"encoding": "hex", "data": "00"})).is_err());
        assert!(decode_typed(&json!({"encoding": "binary", "data": "!!"})).is_err());
        assert!(decode_typed(&json!(7)).is_err());
    }

    #[test]
    fn path_routes_decode_keys_and_drop_one_trailing_slash() {
        assert_eq!(
            match_path("/get/a%2Fb/"),
            Some(Ok((Route::GetPath(b"a/b".to_vec()), "GET, HEAD")))
        );
        assert_eq!(
            match_path("/put/k%00/v/w"),
            Some(Ok((
                Route::PutPath(b"k\0".to_vec(), b"v/w".to_vec()),
                "PUT"
            )))
        );
        assert!(matches!(match_path("/put/k"), Some(Err(_))));
        assert!(matches!(match_path("/delete/"), Some(Err(_))));
        assert!(matches!(match_path("/get/%"), Some(Err(_))));
        assert_eq!(match_path("/other"), None);
    }
}
