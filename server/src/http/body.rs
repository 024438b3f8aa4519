//! Reading a request body: `Content-Length` or chunked, within the
//! per-read stall and the whole-body deadline, and (chunked) within the
//! share of the body budget it has reserved.

use std::io;
use std::time::{Duration, Instant};

use crate::http::backend::Backend;
use crate::http::budget::{Reserved, BODY_BUDGET_STEP_BYTES};
use crate::http::chunked::ChunkedDecoder;
use crate::http::conn::{Connection, Read, BODY_READ_CHUNK_BYTES, READ_CHUNK_BYTES};
use crate::http::error::HttpError;
use crate::http::request::{BodyFraming, Status};
use crate::http::socket::read_by;

/// How reading a body ended.
pub(super) enum Body {
    Complete(Vec<u8>),
    TooLarge,
    OverBudget,
    Malformed(HttpError),
    TimedOut,
    Eof,
}

impl<B: Backend> Connection<'_, B> {
    pub(super) async fn read_body(
        &mut self,
        framing: BodyFraming,
        body_bytes_max: usize,
        reserved: &mut Reserved<'_>,
    ) -> io::Result<Body> {
        let total = Duration::from_millis(self.shared.config.body_total_timeout_ms);
        let until = Instant::now() + total;
        match framing {
            BodyFraming::Empty => Ok(Body::Complete(Vec::new())),
            // `admit` refused lengths over the limit, which fits in memory.
            BodyFraming::Length(len) => match usize::try_from(len) {
                Ok(len) if len <= body_bytes_max => self.read_length(len, until).await,
                _ => Ok(Body::TooLarge),
            },
            BodyFraming::Chunked => self.read_chunked(body_bytes_max, reserved, until).await,
        }
    }

    /// The deadline of the next body read: a stall, or the whole body's end.
    fn body_deadline(&self, until: Instant) -> Instant {
        let stall = Duration::from_millis(self.shared.config.body_timeout_ms);
        (Instant::now() + stall).min(until)
    }

    async fn read_length(&mut self, len: usize, until: Instant) -> io::Result<Body> {
        let mut body = self.buf.take(len);
        while body.len() < len {
            let start = body.len();
            body.resize(start + (len - start).min(BODY_READ_CHUNK_BYTES), 0);
            let read = self.stream.read(&mut body[start..]);
            match read_by(&self.watch, read, self.body_deadline(until)).await? {
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
        until: Instant,
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
            match self.read_more(self.body_deadline(until), false).await? {
                Read::Data => {}
                Read::Eof | Read::Stopped => return Ok(Body::Eof),
                Read::TimedOut => return Ok(Body::TimedOut),
            }
        }
    }
}
