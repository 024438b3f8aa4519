//! The JSON bodies of the dialects ([`compat`](super::compat)): the typed
//! value form `{"encoding":"string"|"binary","data":…}`, batches of them,
//! and the cheap count of values that runs before a body is parsed.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::http::config::BATCH_KEYS_MAX;
use crate::http::response::Response;

/// Base64 that accepts data with or without `=` padding.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Refuses, before parsing, a JSON body of more than `max` values.
pub(crate) fn check_json_values(body: &[u8], max: usize) -> Result<(), Response> {
    if json_values_at_least(body, max.saturating_add(1)) <= max {
        return Ok(());
    }
    let message = format!(
        "the JSON body holds more than {max} values (--json-values-max); send fewer keys or \
         values per request"
    );
    Err(Response::error(413, message))
}

pub(crate) fn json_body(body: &[u8]) -> Result<Value, Response> {
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

pub(crate) fn string_field(document: &Value, name: &str, shape: &str) -> Result<Vec<u8>, Response> {
    match document.get(name) {
        Some(Value::String(text)) => Ok(text.clone().into_bytes()),
        _ => Err(Response::error(
            400,
            format!("the body must be {shape}; \"{name}\" is not a string"),
        )),
    }
}

/// `{"encoding":"string"|"binary","data":…}` (or a plain string) to bytes.
pub(crate) fn decode_typed(item: &Value) -> Result<Vec<u8>, String> {
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
pub(crate) fn encode_typed(bytes: &[u8]) -> Value {
    match core::str::from_utf8(bytes) {
        Ok(text) => json!({"encoding": "string", "data": text}),
        Err(_) => json!({"encoding": "binary", "data": STANDARD.encode(bytes)}),
    }
}

/// A JSON array of at most [`BATCH_KEYS_MAX`] items.
pub(crate) fn batch(body: &[u8], shape: &str) -> Result<Vec<Value>, Response> {
    let Value::Array(items) = json_body(body)? else {
        return Err(Response::error(
            400,
            format!("the body must be a JSON array: {shape}"),
        ));
    };
    if items.len() > BATCH_KEYS_MAX {
        let message = format!(
            "{} items; send at most {BATCH_KEYS_MAX} per request",
            items.len()
        );
        return Err(Response::error(400, message));
    }
    Ok(items)
}

pub(crate) fn batch_keys(body: &[u8]) -> Result<Vec<(Vec<u8>, Value)>, Response> {
    let shape = r#"[{"encoding":"string","data":"k"}, ...]"#;
    let items = batch(body, shape)?;
    let decode = |(at, item): (usize, &Value)| {
        let key = decode_typed(item).map_err(|e| Response::error(400, format!("key {at}: {e}")))?;
        let echo = echo_key(&key, item);
        Ok((key, echo))
    };
    items.iter().enumerate().map(decode).collect()
}

/// A key as the answer shows it: in the encoding it was asked in (a
/// binary key stays binary even when its bytes happen to be UTF-8), with
/// canonical base64.
fn echo_key(key: &[u8], item: &Value) -> Value {
    let binary = item.get("encoding").and_then(Value::as_str) == Some("binary");
    match binary {
        true => json!({"encoding": "binary", "data": STANDARD.encode(key)}),
        false => encode_typed(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::config::JSON_VALUES_MAX_DEFAULT;

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
}
