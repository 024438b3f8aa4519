//! Sans-IO decoder for `Transfer-Encoding: chunked` request bodies.
//!
//! ```text
//! chunk     = size-hex [ ";" ext ] CRLF  data  CRLF      (size > 0)
//! last      = "0" [ ";" ext ] CRLF
//! trailers  = *( field-line CRLF )   CRLF                 (skipped)
//! ```
//! Bare LF is refused everywhere: lenient line endings are how request
//! smuggling starts. The body limit is checked when a chunk size is announced,
//! before its data arrives.

use crate::http::config::{CHUNK_LINE_BYTES_MAX, TRAILERS_BYTES_MAX};
use crate::http::error::HttpError;
use crate::http::request::Status;
/// Most hex digits in a chunk size: 16 fill a u64.
const SIZE_DIGITS_MAX: u32 = 16;

const _: () = assert!(CHUNK_LINE_BYTES_MAX as u32 > SIZE_DIGITS_MAX);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size { value: u64, digits: u32 },
    /// Skipping a chunk extension up to CR.
    Extension { value: u64 },
    /// Saw CR after a size line; LF must follow.
    SizeLf { value: u64 },
    /// Copying chunk data; `remaining` bytes to go.
    Data { remaining: u64 },
    /// Chunk data done; CR must follow.
    DataCr,
    /// LF must follow the data's CR.
    DataLf,
    /// At the start of a trailer line or the final blank line.
    TrailerStart,
    /// Inside a trailer line, skipping to CR.
    Trailer,
    /// LF must follow a trailer line's CR.
    TrailerLf,
    /// LF must follow the final blank line's CR.
    EndLf,
}

/// Decodes one chunked body incrementally; feed it whatever bytes arrive.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Decoded bytes so far; never above `body_bytes_max`.
    body_len: u64,
    body_bytes_max: u64,
    /// Bytes of the current size line, against [`CHUNK_LINE_BYTES_MAX`].
    line_bytes: usize,
    /// Bytes of trailers so far, against [`TRAILERS_BYTES_MAX`].
    trailer_bytes: usize,
}

fn bad(what: &str) -> HttpError {
    HttpError::BadRequest(format!("malformed chunked body: {what}"))
}

impl ChunkedDecoder {
    /// A decoder that refuses bodies over `body_bytes_max` decoded bytes.
    pub fn new(body_bytes_max: usize) -> Self {
        ChunkedDecoder {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            body_len: 0,
            body_bytes_max: u64::try_from(body_bytes_max).unwrap_or(u64::MAX),
            line_bytes: 0,
            trailer_bytes: 0,
        }
    }

    /// Decodes from `input`, appending body bytes to `out`.
    ///
    /// `Complete(n)`: the body ended after `n` bytes of `input`; the rest belongs
    /// to the next request. `Partial`: all of `input` was used; call again with
    /// the next bytes. The limit error is [`HttpError::BodyTooLarge`].
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Status<usize>, HttpError> {
        let mut at = 0;
        while at < input.len() {
            if let State::Data { remaining } = self.state {
                let available = input.len() - at;
                let take = usize::try_from(remaining).map_or(available, |r| r.min(available));
                out.extend_from_slice(&input[at..at + take]);
                at += take;
                let remaining = remaining - take as u64;
                self.state = if remaining == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining }
                };
                continue;
            }
            let byte = input[at];
            at += 1;
            if self.step(byte)? {
                return Ok(Status::Complete(at));
            }
        }
        Ok(Status::Partial)
    }

    /// Advances the line-level state by one byte; true when the body is complete.
    fn step(&mut self, byte: u8) -> Result<bool, HttpError> {
        self.state = match self.state {
            State::Size { value, digits } => {
                self.count_line_byte()?;
                match (byte, hex(byte)) {
                    (_, Some(digit)) if digits < SIZE_DIGITS_MAX => State::Size {
                        value: value << 4 | u64::from(digit),
                        digits: digits + 1,
                    },
                    (_, Some(_)) => return Err(bad("chunk size is over 16 hex digits")),
                    (b';' | b' ' | b'\t', None) if digits > 0 => State::Extension { value },
                    (b'\r', None) if digits > 0 => State::SizeLf { value },
                    _ => return Err(bad("chunk size must be hex digits ending in CRLF")),
                }
            }
            State::Extension { value } => {
                self.count_line_byte()?;
                match byte {
                    b'\r' => State::SizeLf { value },
                    b'\n' => return Err(bad("bare LF in a chunk extension")),
                    _ => State::Extension { value },
                }
            }
            State::SizeLf { value } => {
                if byte != b'\n' {
                    return Err(bad("chunk size line must end in CRLF"));
                }
                self.line_bytes = 0;
                self.start_chunk(value)?
            }
            // `decode` copies data in bulk; a data byte never reaches `step`.
            State::Data { .. } => unreachable!("chunk data is copied by decode"),
            State::DataCr if byte == b'\r' => State::DataLf,
            State::DataLf if byte == b'\n' => State::Size {
                value: 0,
                digits: 0,
            },
            State::DataCr | State::DataLf => return Err(bad("chunk data must end in CRLF")),
            State::TrailerStart if byte == b'\r' => State::EndLf,
            State::TrailerStart | State::Trailer => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > TRAILERS_BYTES_MAX {
                    return Err(bad(&format!(
                        "trailers are over {TRAILERS_BYTES_MAX} bytes"
                    )));
                }
                match byte {
                    b'\r' => State::TrailerLf,
                    b'\n' => return Err(bad("bare LF in a trailer")),
                    _ => State::Trailer,
                }
            }
            State::TrailerLf if byte == b'\n' => State::TrailerStart,
            State::TrailerLf => return Err(bad("trailer line must end in CRLF")),
            State::EndLf if byte == b'\n' => return Ok(true),
            State::EndLf => return Err(bad("the last chunk must end in CRLF CRLF")),
        };
        Ok(false)
    }

    fn count_line_byte(&mut self) -> Result<(), HttpError> {
        self.line_bytes += 1;
        if self.line_bytes > CHUNK_LINE_BYTES_MAX {
            return Err(bad(&format!(
                "chunk size line is over {CHUNK_LINE_BYTES_MAX} bytes"
            )));
        }
        Ok(())
    }

    fn start_chunk(&mut self, size: u64) -> Result<State, HttpError> {
        if size == 0 {
            return Ok(State::TrailerStart);
        }
        let total = self.body_len.saturating_add(size);
        if total > self.body_bytes_max {
            return Err(HttpError::BodyTooLarge(format!(
                "chunked body is over {} bytes, the limit for this endpoint",
                self.body_bytes_max
            )));
        }
        self.body_len = total;
        Ok(State::Data { remaining: size })
    }
}

fn hex(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        b"5;name=v\r\nhello\r\n1\r\n\0\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
    const DECODED: &[u8] = b"hello\x000123456789";

    fn decode_in_two(input: &[u8], split: usize) -> Result<(Vec<u8>, usize), HttpError> {
        let mut decoder = ChunkedDecoder::new(1024);
        let mut out = Vec::new();
        match decoder.decode(&input[..split], &mut out)? {
            Status::Complete(used) => Ok((out, used)),
            Status::Partial => match decoder.decode(&input[split..], &mut out)? {
                Status::Complete(used) => Ok((out, split + used)),
                Status::Partial => Err(bad("test input ended early")),
            },
        }
    }

    #[test]
    fn decodes_identically_at_every_split() {
        let end = BODY.len() - b"NEXT".len();
        for split in 0..=BODY.len() {
            let decoded = decode_in_two(BODY, split);
            assert_eq!(decoded, Ok((DECODED.to_vec(), end)), "split {split}");
        }
    }

    #[test]
    fn byte_at_a_time_is_partial_until_the_final_crlf() {
        let end = BODY.len() - b"NEXT".len();
        let mut decoder = ChunkedDecoder::new(1024);
        let mut out = Vec::new();
        for at in 0..end - 1 {
            assert_eq!(
                decoder.decode(&BODY[at..at + 1], &mut out),
                Ok(Status::Partial)
            );
        }
        assert_eq!(
            decoder.decode(&BODY[end - 1..], &mut out),
            Ok(Status::Complete(1))
        );
        assert_eq!(out, DECODED);
    }

    #[test]
    fn body_over_the_limit_is_refused_when_the_size_is_announced() {
        let mut decoder = ChunkedDecoder::new(8);
        let mut out = Vec::new();
        assert_eq!(
            decoder.decode(b"5\r\nhello\r\n", &mut out),
            Ok(Status::Partial)
        );
        let over = decoder.decode(b"4\r\n", &mut out);
        assert!(matches!(over, Err(HttpError::BodyTooLarge(_))), "{over:?}");
        assert_eq!(
            ChunkedDecoder::new(8).decode(b"8\r\n12345678\r\n0\r\n\r\n", &mut out),
            Ok(Status::Complete(18))
        );
    }

    #[test]
    fn malformed_framing_gets_400() {
        let cases: [&[u8]; 9] = [
            b"x\r\n",
            b"\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloX",
            b"5\r\nhello\r\r",
            b"11111111111111111\r\n",
            b"0\r\n\r\r",
            b"0\r\nX-T: 1\n",
            b"1;ext\n",
        ];
        for input in cases {
            let result = ChunkedDecoder::new(1 << 20).decode(input, &mut Vec::new());
            assert_eq!(
                result.map_err(|e| e.status()),
                Err(400),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn long_size_lines_and_trailers_are_refused() {
        let mut line = b"1;".to_vec();
        line.resize(CHUNK_LINE_BYTES_MAX + 1, b'e');
        let result = ChunkedDecoder::new(1024).decode(&line, &mut Vec::new());
        assert_eq!(result.map_err(|e| e.status()), Err(400));
        let mut trailers = b"0\r\nX: ".to_vec();
        trailers.resize(TRAILERS_BYTES_MAX + 8, b't');
        let result = ChunkedDecoder::new(1024).decode(&trailers, &mut Vec::new());
        assert_eq!(result.map_err(|e| e.status()), Err(400));
    }
}
