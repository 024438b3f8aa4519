//! Percent-decoding for path segments and `application/x-www-form-urlencoded`
//! bodies and query strings, binary-safe: `%00` is a NUL byte, `%2F` a slash,
//! and UTF-8 (escaped or raw) passes through as bytes.

use crate::http::error::PercentError;

/// A decoded `name=value` list, in input order.
pub type FormPairs = Vec<(Vec<u8>, Vec<u8>)>;

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn decode_with(input: &[u8], plus_is_space: bool) -> Result<Vec<u8>, PercentError> {
    let mut out = Vec::with_capacity(input.len());
    let mut at = 0;
    while let Some(&byte) = input.get(at) {
        match byte {
            b'%' => {
                let high = input.get(at + 1).copied().and_then(hex_value);
                let low = input.get(at + 2).copied().and_then(hex_value);
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(PercentError { offset: at });
                };
                out.push(high << 4 | low);
                at += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                at += 1;
            }
            _ => {
                out.push(byte);
                at += 1;
            }
        }
    }
    Ok(out)
}

/// Decodes a path segment: `%XX` escapes become bytes, `+` stays `+`.
pub fn decode_path(input: &[u8]) -> Result<Vec<u8>, PercentError> {
    decode_with(input, false)
}

/// Decodes a form or query component: `%XX` escapes become bytes, `+` a space.
pub fn decode_form(input: &[u8]) -> Result<Vec<u8>, PercentError> {
    decode_with(input, true)
}

/// Splits and decodes `a=1&b=2` (a form body or a query string). A name with no
/// `=` gets an empty value; empty pieces (`a=1&&b=2`) are skipped.
pub fn parse_form(input: &[u8]) -> Result<FormPairs, PercentError> {
    let mut pairs = Vec::new();
    let mut start = 0;
    for piece in input.split(|byte| *byte == b'&') {
        if !piece.is_empty() {
            // `value_at` is the value's offset inside `piece`: after the first `=`, or the end.
            let (name, value, value_at) = match piece.iter().position(|byte| *byte == b'=') {
                Some(eq) => (&piece[..eq], &piece[eq + 1..], eq + 1),
                None => (piece, &piece[piece.len()..], piece.len()),
            };
            let shift = |at: usize| {
                move |e: PercentError| PercentError {
                    offset: at + e.offset,
                }
            };
            let name = decode_form(name).map_err(shift(start))?;
            let value = decode_form(value).map_err(shift(start + value_at))?;
            pairs.push((name, value));
        }
        start += piece.len() + 1;
    }
    Ok(pairs)
}

/// The first value of `name` in `pairs`.
pub fn form_value<'a>(pairs: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    pairs
        .iter()
        .find(|(candidate, _)| candidate.as_slice() == name.as_bytes())
        .map(|(_, value)| value.as_slice())
}

/// Percent-encodes every byte except RFC 3986 unreserved characters, so the
/// result is safe in a path segment and in a query or form component.
pub fn encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_slash_and_utf8_escapes_decode_to_bytes() {
        assert_eq!(decode_path(b"a%00b%2Fc").as_deref(), Ok(&b"a\0b/c"[..]));
        assert_eq!(decode_path(b"%2f").as_deref(), Ok(&b"/"[..]));
        assert_eq!(
            decode_path("h%C3%A9llo".as_bytes()).as_deref(),
            Ok("héllo".as_bytes())
        );
        assert_eq!(
            decode_path("héllo".as_bytes()).as_deref(),
            Ok("héllo".as_bytes())
        );
        assert_eq!(decode_path(b"%FF%fe").as_deref(), Ok(&[0xff, 0xfe][..]));
    }

    #[test]
    fn plus_is_literal_in_paths_and_space_in_forms() {
        assert_eq!(decode_path(b"a+b").as_deref(), Ok(&b"a+b"[..]));
        assert_eq!(decode_form(b"a+b%2B").as_deref(), Ok(&b"a b+"[..]));
    }

    #[test]
    fn bad_escapes_report_the_offset() {
        assert_eq!(decode_path(b"ab%"), Err(PercentError { offset: 2 }));
        assert_eq!(decode_path(b"ab%4"), Err(PercentError { offset: 2 }));
        assert_eq!(decode_path(b"%zz"), Err(PercentError { offset: 0 }));
        assert_eq!(decode_path(b"a%4g"), Err(PercentError { offset: 1 }));
        assert_eq!(parse_form(b"k=1&v=%x1"), Err(PercentError { offset: 6 }));
        assert_eq!(parse_form(b"k%=1"), Err(PercentError { offset: 1 }));
    }

    #[test]
    fn form_splits_pairs_and_keeps_empty_values() {
        let pairs = parse_form(b"key=a%26b&value=x%3Dy+z&&flag&empty=").unwrap_or_default();
        assert_eq!(form_value(&pairs, "key"), Some(&b"a&b"[..]));
        assert_eq!(form_value(&pairs, "value"), Some(&b"x=y z"[..]));
        assert_eq!(form_value(&pairs, "flag"), Some(&b""[..]));
        assert_eq!(form_value(&pairs, "empty"), Some(&b""[..]));
        assert_eq!(form_value(&pairs, "missing"), None);
        assert_eq!(pairs.len(), 4);
    }

    #[test]
    fn encode_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let encoded = encode(&all);
        assert!(encoded
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'+' && b != b'/'));
        assert_eq!(decode_path(encoded.as_bytes()), Ok(all.clone()));
        assert_eq!(decode_form(encoded.as_bytes()), Ok(all));
    }
}
