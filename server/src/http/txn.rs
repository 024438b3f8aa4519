//! `POST /txn`: conditions, then writes applied as one atomic batch or
//! reads answered, decided where writes are ordered (`Backend::txn`).
//!
//! ```text
//! {"if":   [{"key": "a", "seq": 12}, {"key": "b", "absent": true},
//!           {"key": "c", "value": "on"}, {"key": "d", "present": true}],
//!  "then": [{"put": "a", "value": "1", "ttl": "30s"}, {"delete": "b"}],
//!  "else": [{"get": "a"}],
//!  "encoding": "base64"}
//! ```
//!
//! Keys and values are UTF-8 strings, or base64 with `"encoding":
//! "base64"`. Answer: `200 {"ok": true, "seq": N}` when every condition
//! held (the writes applied, `N` the batch's seq), else `200 {"ok": false,
//! "failed": [indexes], "seq": N, "results": [...]}` with the `else` reads
//! as of seq `N`. A malformed body is 400 naming the item; nothing is
//! written.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::http::backend::{Backend, TxnAnswer};
use crate::http::compat_json::{check_json_values, json_body};
use crate::http::params::{backend_error, parse_ttl};
use crate::http::response::{decimal, Response};
use hypha_net::{Expect, Txn, TxnCond, TxnOp, TxnTest, TXN_BYTES_MAX, TXN_ITEMS_MAX};

/// How a body spells keys and values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Base64,
}

const SHAPE: &str = r#"{"if": [{"key": K, "seq": N | "absent": true | "present": true | "value": V}], "then": [{"put": K, "value": V, "ttl": "30s" (optional)} | {"delete": K}], "else": [{"get": K}], "encoding": "base64" (optional)}"#;

/// Serves `POST /txn`.
pub(crate) async fn handle<B: Backend>(
    backend: &B,
    body: &[u8],
    json_values_max: usize,
) -> Result<Response, Response> {
    check_json_values(body, json_values_max)?;
    let document = json_body(body)?;
    let (txn, encoding) = parse(&document, backend.value_bytes_max())?;
    let reads = txn.reads.clone();
    match backend.txn(txn).await.map_err(backend_error)? {
        TxnAnswer::Applied { seq } => Ok(with_seq(json!({"ok": true, "seq": seq}), seq)),
        TxnAnswer::Failed {
            seq,
            failed,
            reads: values,
        } => {
            let results: Vec<Value> = reads
                .iter()
                .zip(values)
                .map(|(key, value)| read_result(key, value, encoding))
                .collect();
            let body = json!({"ok": false, "failed": failed, "seq": seq, "results": results});
            Ok(with_seq(body, seq))
        }
    }
}

fn with_seq(body: Value, seq: u64) -> Response {
    Response::json(200, &body).header("X-Hypha-Seq", decimal(seq))
}

fn bad(message: String) -> Response {
    Response::error(400, message)
}

/// The transaction a body asks for.
fn parse(document: &Value, value_bytes_max: usize) -> Result<(Txn, Encoding), Response> {
    let Value::Object(top) = document else {
        return Err(bad(format!("the body must be a JSON object: {SHAPE}")));
    };
    if let Some(name) = top
        .keys()
        .find(|k| !matches!(k.as_str(), "if" | "then" | "else" | "encoding"))
    {
        return Err(bad(format!(
            "unknown field {name:?}; a transaction has \"if\", \"then\", \"else\" and \
             \"encoding\": {SHAPE}"
        )));
    }
    let encoding = match top.get("encoding").map(Value::as_str) {
        None | Some(Some("utf-8" | "string")) => Encoding::Utf8,
        Some(Some("base64")) => Encoding::Base64,
        _ => return Err(bad("\"encoding\" is \"base64\" or absent (UTF-8)".into())),
    };
    let list = |name: &str| -> Result<&[Value], Response> {
        match top.get(name) {
            None => Ok(&[]),
            Some(Value::Array(items)) if items.len() <= TXN_ITEMS_MAX => Ok(items),
            Some(Value::Array(items)) => Err(bad(format!(
                "\"{name}\" has {} items; at most {TXN_ITEMS_MAX}",
                items.len()
            ))),
            Some(_) => Err(bad(format!("\"{name}\" must be an array: {SHAPE}"))),
        }
    };
    let mut txn = Txn::default();
    for (at, item) in list("if")?.iter().enumerate() {
        txn.conds
            .push(cond(item, encoding).map_err(|e| bad(format!("if[{at}]: {e}")))?);
    }
    for (at, item) in list("then")?.iter().enumerate() {
        let op = op(item, encoding, value_bytes_max)
            .map_err(|(status, e)| Response::error(status, format!("then[{at}]: {e}")))?;
        txn.ops.push(op);
    }
    for (at, item) in list("else")?.iter().enumerate() {
        let key = object(item, &["get"])
            .and_then(|o| key_of(o, "get", encoding))
            .map_err(|e| bad(format!("else[{at}]: {e}")))?;
        txn.reads.push(key);
    }
    if txn.bytes() > TXN_BYTES_MAX {
        let message = format!(
            "the transaction holds {} bytes of keys and values; at most {TXN_BYTES_MAX}",
            txn.bytes()
        );
        return Err(Response::error(413, message));
    }
    Ok((txn, encoding))
}

/// `item` as an object whose fields are among `fields`.
fn object<'a>(item: &'a Value, fields: &[&str]) -> Result<&'a Map<String, Value>, String> {
    let Value::Object(o) = item else {
        return Err(format!("must be an object: {SHAPE}"));
    };
    match o.keys().find(|k| !fields.contains(&k.as_str())) {
        Some(name) => Err(format!("unknown field {name:?} (expected {fields:?})")),
        None => Ok(o),
    }
}

fn bytes_of(v: &Value, name: &str, encoding: Encoding) -> Result<Vec<u8>, String> {
    let Value::String(text) = v else {
        return Err(format!("\"{name}\" must be a string"));
    };
    match encoding {
        Encoding::Utf8 => Ok(text.clone().into_bytes()),
        Encoding::Base64 => STANDARD
            .decode(text)
            .map_err(|e| format!("\"{name}\" is not base64: {e}")),
    }
}

fn key_of(o: &Map<String, Value>, name: &str, encoding: Encoding) -> Result<Vec<u8>, String> {
    let v = o
        .get(name)
        .ok_or_else(|| format!("\"{name}\" is missing"))?;
    let key = bytes_of(v, name, encoding)?;
    match key.len() {
        0 => Err("the key is empty".into()),
        n if n > hypha_net::KEY_BYTES_MAX => Err(format!(
            "the key is {n} bytes; at most {}",
            hypha_net::KEY_BYTES_MAX
        )),
        _ => Ok(key),
    }
}

fn cond(item: &Value, encoding: Encoding) -> Result<TxnCond, String> {
    let o = object(item, &["key", "seq", "absent", "present", "value"])?;
    let key = key_of(o, "key", encoding)?;
    let tests: Vec<&str> = ["seq", "absent", "present", "value"]
        .into_iter()
        .filter(|t| o.contains_key(*t))
        .collect();
    let test = match tests.as_slice() {
        ["seq"] => match o.get("seq").and_then(Value::as_u64) {
            Some(seq) => TxnTest::Expect(Expect::Seq(seq)),
            None => return Err("\"seq\" must be a whole number (an ETag without quotes)".into()),
        },
        ["absent"] if o.get("absent") == Some(&Value::Bool(true)) => {
            TxnTest::Expect(Expect::Absent)
        }
        ["present"] if o.get("present") == Some(&Value::Bool(true)) => {
            TxnTest::Expect(Expect::Present)
        }
        ["value"] => TxnTest::Value(bytes_of(&o["value"], "value", encoding)?),
        _ => {
            return Err(
                "give exactly one of \"seq\": N, \"absent\": true, \"present\": true or \
                 \"value\": V"
                    .into(),
            )
        }
    };
    Ok(TxnCond { key, test })
}

/// A write; a value over the limit is 413.
fn op(item: &Value, encoding: Encoding, value_bytes_max: usize) -> Result<TxnOp, (u16, String)> {
    let o = object(item, &["put", "value", "ttl", "delete"]).map_err(|e| (400, e))?;
    let ttl_ms = match o.get("ttl") {
        None => 0,
        Some(Value::String(text)) => parse_ttl(text).map_err(|e| (400, format!("\"ttl\": {e}")))?,
        Some(_) => return Err((400, "\"ttl\" is a duration string such as \"30s\"".into())),
    };
    match (o.contains_key("put"), o.contains_key("delete")) {
        (true, false) => {
            let key = key_of(o, "put", encoding).map_err(|e| (400, e))?;
            let value = match o.get("value") {
                Some(v) => bytes_of(v, "value", encoding).map_err(|e| (400, e))?,
                None => return Err((400, "a put needs \"value\"".into())),
            };
            if value.len() > value_bytes_max {
                let message = format!(
                    "value is {} bytes; the limit is {value_bytes_max} (--value-max)",
                    value.len()
                );
                return Err((413, message));
            }
            Ok(TxnOp::Put { key, value, ttl_ms })
        }
        (false, true) if !o.contains_key("value") && ttl_ms == 0 => {
            let key = key_of(o, "delete", encoding).map_err(|e| (400, e))?;
            Ok(TxnOp::Delete { key })
        }
        _ => Err((
            400,
            "give {\"put\": K, \"value\": V} or {\"delete\": K}".into(),
        )),
    }
}

/// One `else` read in the answer: the key, and its value and seq (null
/// when absent). In a UTF-8 body, a key or value that is not UTF-8 makes
/// the item base64, marked `"encoding": "base64"`.
fn read_result(key: &[u8], value: Option<(u64, Vec<u8>)>, encoding: Encoding) -> Value {
    let utf8 = |b: &[u8]| std::str::from_utf8(b).is_ok();
    let plain =
        encoding == Encoding::Utf8 && utf8(key) && value.as_ref().is_none_or(|(_, v)| utf8(v));
    let text = |b: &[u8]| match plain {
        true => Value::from(String::from_utf8_lossy(b)),
        false => Value::from(STANDARD.encode(b)),
    };
    let mut item = json!({"key": text(key), "value": null, "seq": null});
    if let Some((seq, value)) = value {
        item["value"] = text(&value);
        item["seq"] = seq.into();
    }
    if !plain && encoding == Encoding::Utf8 {
        item["encoding"] = "base64".into();
    }
    item
}
