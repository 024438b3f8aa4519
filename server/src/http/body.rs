//! Reading a request body: `Content-Length` or chunked, within the
//! per-read stall and the whole-body deadline, and (chunked) within the
//! share of the body budget it has reserved.

use std::io;
use std::time::{Duration, Instant};

use crate::http::budget::Reserved;
use crate::http::chunked::ChunkedDecoder;
use crate::http::config::{
    HttpConfig, BODY_BUDGET_STEP_BYTES, BODY_READ_CHUNK_BYTES, READ_CHUNK_BYTES,
};
use crate::http::error::HttpError;
use crate::http::request::{BodyFraming, Status};
use crate::http::socket::{read_by, Link, Read};

/// How reading a body ended.
pub(super) enum Body {
    Complete(Vec<u8>),
    TooLarge,
    OverBudget,
    Malformed(HttpError),
    TimedOut,
    Eof,
}

/// When the body being read must be in: per read, and as a whole.
#[derive(Clone, Copy)]
struct Due {
    stall: Duration,
    until: Instant,
}

impl Due {
    /// The deadline of the next body read: a stall, or the whole body's end.
    fn next(self) -> Instant {
        (Instant::now() + self.stall).min(self.until)
    }
}

impl Link<'_> {
    /// Reads the body `framing` announces, at most `body_bytes_max` bytes,
    /// within `config`'s body timeouts.
    pub(super) async fn read_body(
        &mut self,
        framing: BodyFraming,
        body_bytes_max: usize,
        reserved: &mut Reserved<'_>,
        config: &HttpConfig,
    ) -> io::Result<Body> {
        let total = Duration::from_millis(config.body_total_timeout_ms);
        let due = Due {
            stall: Duration::from_millis(config.body_timeout_ms),
            until: Instant::now() + total,
        };
        match framing {
            BodyFraming::Empty => Ok(Body::Complete(Vec::new())),
            // `admit` refused lengths over the limit, which fits in memory.
            BodyFraming::Length(len) => match usize::try_from(len) {
                Ok(len) if len <= body_bytes_max => self.read_length(len, due).await,
                _ => Ok(Body::TooLarge),
            },
            BodyFraming::Chunked => self.read_chunked(body_bytes_max, reserved, due).await,
        }
    }

    async fn read_length(&mut self, len: usize, due: Due) -> io::Result<Body> {
        let mut body = self.buf.take(len);
        while body.len() < len {
            let start = body.len();
            body.resize(start + (len - start).min(BODY_READ_CHUNK_BYTES), 0);
            let read = self.stream.read(&mut body[start..]);
            match read_by(&self.watch, read, due.next()).await? {
                None => return Ok(Body::TimedOut),
                Some(0) => return Ok(Body::Eof),
                Some(got) => body.truncate(start + got),
            }
        }
        Ok(Body::Complete(body))
    }

    async fn read_chunked(
        &mut self,
        body_bytes_max: usize,
        reserved: &mut Reserved<'_>,
        due: Due,
    ) -> io::Result<Body> {
        let mut decoder = ChunkedDecoder::new(body_bytes_max);
        let mut body = Vec::new();
        loop {
            let step = reserved.bytes().saturating_add(BODY_BUDGET_STEP_BYTES);
            if body.len() + READ_CHUNK_BYTES > reserved.bytes() && !reserved.grow_to(step) {
                return Ok(Body::OverBudget);
            }
            match decoder.decode(self.buf.data(), &mut body) {
                Ok(Status::Complete(used)) => {
                    self.buf.consume(used);
                    return Ok(Body::Complete(body));
                }
                Ok(Status::Partial) => self.buf.clear(),
                Err(HttpError::BodyTooLarge(_)) => return Ok(Body::TooLarge),
                Err(error) => return Ok(Body::Malformed(error)),
            }
            match self.read_more(due.next(), false).await? {
                Read::Data => {}
                Read::Eof | Read::Stopped => return Ok(Body::Eof),
                Read::TimedOut => return Ok(Body::TimedOut),
            }
        }
    }
}
