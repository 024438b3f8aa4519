//! Request parameters shared by the REST and compat routes (path keys, query
//! values, value sizes) and the error responses for bad ones.

use crate::http::backend::{Backend, BackendError, Consistency};
use crate::http::config::SCAN_LIMIT_MAX;
use crate::http::percent::{decode_path, form_value, FormPairs};
use crate::http::response::{decimal, Response};

/// Percent-decodes a key from a path; empty keys are refused.
pub(crate) fn decode_key(encoded: &str, shape: &str) -> Result<Vec<u8>, String> {
    let key = decode_path(encoded.as_bytes()).map_err(|e| format!("key: {e}"))?;
    if key.is_empty() {
        return Err(format!("the key is empty; use {shape}"));
    }
    Ok(key)
}

/// `{"seq": N}` with `X-Hypha-Seq: N`.
pub(crate) fn seq_response(status: u16, seq: u64) -> Response {
    // `{"seq":N}` and a newline, as `Response::json` writes it, without
    // building a JSON value for every write.
    let seq = decimal(seq);
    let body = ["{\"seq\":", &seq, "}\n"].concat().into_bytes();
    Response::bytes(status, "application/json", body).header("X-Hypha-Seq", seq)
}

/// The response for a failed backend call; 503s say when to retry.
pub(crate) fn backend_error(error: BackendError) -> Response {
    let response = Response::error(error.status(), error.to_string());
    match error.status() {
        503 => response.header("Retry-After", "1"),
        _ => response,
    }
}

/// 413 unless `len` fits the backend's value limit.
pub(crate) fn check_value_len<B: Backend>(backend: &B, len: usize) -> Result<(), Response> {
    let max = backend.value_bytes_max();
    if len > max {
        let message = format!(
            "value is {len} bytes; the limit is {max} (--value-max); store it in smaller pieces"
        );
        return Err(Response::error(413, message));
    }
    Ok(())
}

/// The `consistency` query parameter; `ryw` when absent.
pub(crate) fn consistency(query: &FormPairs) -> Result<Consistency, Response> {
    match form_value(query, "consistency") {
        None => Ok(Consistency::default()),
        Some(value) => Consistency::from_query(value).ok_or_else(|| {
            let value = String::from_utf8_lossy(value);
            Response::error(
                400,
                format!("consistency {value:?} is not one of ryw, linearizable, any"),
            )
        }),
    }
}

/// A decimal query parameter.
pub(crate) fn number_param(query: &FormPairs, name: &str) -> Result<Option<u64>, Response> {
    let Some(value) = form_value(query, name) else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(value);
    match text.parse::<u64>() {
        Ok(number) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(number)),
        _ => Err(Response::error(
            400,
            format!("{name} {text:?} is not a non-negative integer"),
        )),
    }
}

/// The `limit` query parameter, 1..=[`SCAN_LIMIT_MAX`].
pub(crate) fn limit_param(query: &FormPairs, default: u32) -> Result<u32, Response> {
    let limit = number_param(query, "limit")?.unwrap_or(u64::from(default));
    match u32::try_from(limit) {
        Ok(limit) if (1..=SCAN_LIMIT_MAX).contains(&limit) => Ok(limit),
        _ => Err(Response::error(
            400,
            format!("limit must be between 1 and {SCAN_LIMIT_MAX}; it is {limit}"),
        )),
    }
}

/// A time to live: `500ms`, `30s`, `5m`, `2h`, `1d`, or a number of
/// seconds; at least 1 ms, at most `TTL_MS_MAX` (365 days).
pub(crate) fn parse_ttl(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{text:?} is not a duration: write 500ms, 30s, 5m, 2h or 1d"
            ))
        }
    };
    let ms = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("{text:?} is not a duration: write 500ms, 30s, 5m, 2h or 1d"))?;
    match ms {
        0 => Err(
            "a time to live of 0 would expire the key at once; leave the TTL out to keep it".into(),
        ),
        ms if ms > hypha_net::TTL_MS_MAX => Err(format!(
            "{text} is longer than the longest time to live, 365 days"
        )),
        ms => Ok(ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::percent::parse_form;

    fn query(text: &str) -> FormPairs {
        parse_form(text.as_bytes()).unwrap_or_default()
    }

    #[test]
    fn numbers_must_be_plain_decimal() {
        assert_eq!(number_param(&query("n=42"), "n"), Ok(Some(42)));
        assert_eq!(number_param(&query(""), "n"), Ok(None));
        for bad in ["n=-1", "n=+1", "n=1.5", "n=", "n=99999999999999999999"] {
            assert_eq!(
                number_param(&query(bad), "n").map_err(|r| r.status),
                Err(400),
                "{bad}"
            );
        }
    }

    #[test]
    fn limit_defaults_and_stays_within_scan_limit_max() {
        assert_eq!(limit_param(&query(""), 7), Ok(7));
        assert_eq!(limit_param(&query("limit=1000"), 7), Ok(SCAN_LIMIT_MAX));
        assert_eq!(
            limit_param(&query("limit=1001"), 7).map_err(|r| r.status),
            Err(400)
        );
        assert_eq!(
            limit_param(&query("limit=0"), 7).map_err(|r| r.status),
            Err(400)
        );
    }

    #[test]
    fn consistency_defaults_to_read_your_writes() {
        assert_eq!(consistency(&query("")), Ok(Consistency::ReadYourWrites));
        assert_eq!(consistency(&query("consistency=any")), Ok(Consistency::Any));
        assert_eq!(
            consistency(&query("consistency=strong")).map_err(|r| r.status),
            Err(400)
        );
    }

    #[test]
    fn path_keys_decode_and_must_not_be_empty() {
        assert_eq!(decode_key("a%00%2F", "/kv/{key}"), Ok(b"a\0/".to_vec()));
        assert!(decode_key("", "/kv/{key}").is_err_and(|e| e.contains("use /kv/{key}")));
        assert!(decode_key("%2", "/kv/{key}").is_err());
    }

    #[test]
    fn a_ttl_is_a_duration_within_its_bounds() {
        assert_eq!(super::parse_ttl("30s"), Ok(30_000));
        assert_eq!(super::parse_ttl("45"), Ok(45_000));
        assert_eq!(super::parse_ttl("250ms"), Ok(250));
        assert_eq!(super::parse_ttl("2h"), Ok(7_200_000));
        assert_eq!(super::parse_ttl("365d"), Ok(hypha_net::TTL_MS_MAX));
        for bad in [
            "",
            "0s",
            "366d",
            "1.5s",
            "-1s",
            "5 s",
            "99999999999999999999d",
        ] {
            assert!(super::parse_ttl(bad).is_err(), "{bad:?}");
        }
    }
}
