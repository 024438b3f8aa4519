//! `GET /watch/{prefix}`: every change under the prefix after a cursor,
//! streamed as Server-Sent Events (or newline-delimited JSON with `Accept:
//! application/x-ndjson`) until the client leaves or the edge shuts down.
//!
//! ```text
//! id: 42
//! event: change
//! data: {"seq":42,"changes":[{"type":"put","key":"a","value":"1"}]}
//! ```
//!
//! The cursor is `from=` or `Last-Event-ID` (the `id` of the last event
//! seen; absent: from now). One event per write, or per atomic batch (all
//! its changes, at its last seq). Types: `put`, `delete`, `expire`,
//! `refresh`; `values=false` leaves values out. A cursor older than what the
//! workers still hold is 410 with `earliest`; a stream that falls behind
//! that far later ends with an `error` event saying the same. The edge
//! pulls one page at a time and writes it before it asks for the next, so
//! a slow watcher costs no memory, only a cursor; one that takes no bytes
//! for `WATCH_STALL_MS` is cut.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::backend::{Backend, BackendError, WatchPage};
use crate::http::config::KV_WAIT_MS_MAX;
use crate::http::params::backend_error;
use crate::http::percent::{form_value, FormPairs};
use crate::http::request::Head;
use crate::http::response::Response;
use crate::http::router::Router;
use hypha_net::{ChangeKind, WatchEvent};

/// Longest one page waits for a change: each page is a request to a worker,
/// so 10,000 idle watchers cost 10,000 / 15 s ≈ 667 requests/s. An idle
/// stream's keep-alive goes out when a page comes back empty, so this is
/// also the keep-alive interval.
pub const WATCH_POLL_MS: u32 = WATCH_KEEPALIVE_MS as u32;
/// An idle stream gets a keep-alive comment this often.
pub const WATCH_KEEPALIVE_MS: u64 = 15_000;
const _: () = assert!(WATCH_POLL_MS <= hypha_net::limits::WATCH_WAIT_MS_MAX);
/// A watcher that takes no bytes this long is cut (its socket is full).
pub const WATCH_STALL_MS: u64 = 10_000;
/// How long a stream rides out workers that cannot answer before it ends.
pub const WATCH_UNAVAILABLE_MS: u64 = 30_000;

/// How a stream is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Sse,
    Ndjson,
}

/// What a watch asks for.
#[derive(Clone, Debug)]
pub(crate) struct Ask {
    prefix: Vec<u8>,
    after: Option<u64>,
    values: bool,
    format: Format,
}

/// The watch `head` and `query` ask for on `prefix`.
pub(crate) fn ask(head: &Head, prefix: Vec<u8>, query: &FormPairs) -> Result<Ask, Response> {
    let bad = |m: &str| Response::error(400, m.to_string());
    let cursor = |text: &[u8]| -> Result<u64, Response> {
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| bad("a cursor (from=, Last-Event-ID) is the id of an event"))
    };
    let after = match (form_value(query, "from"), head.header("last-event-id")) {
        (Some(b"now"), _) | (None, None) => None,
        (Some(c), _) | (None, Some(c)) => Some(cursor(c)?),
    };
    let values = match form_value(query, "values") {
        None | Some(b"true") => true,
        Some(b"false") => false,
        Some(_) => return Err(bad("values is true or false")),
    };
    let ndjson = head.header("accept").is_some_and(|a| {
        a.windows(20)
            .any(|w| w.eq_ignore_ascii_case(b"application/x-ndjson"))
    });
    let format = if ndjson { Format::Ndjson } else { Format::Sse };
    Ok(Ask {
        prefix,
        after,
        values,
        format,
    })
}

/// A watch being streamed: each call to [`Stream::next`] is the next bytes
/// to write.
pub struct Stream<B> {
    backend: Arc<B>,
    ask: Ask,
    /// Bytes of the first page, written with the head.
    first: Option<Vec<u8>>,
    written: Instant,
    ended: bool,
    /// Events in the bytes `next` returned last.
    events: usize,
}

impl<B: Backend> Router<B> {
    /// Checks the cursor with a first page (no wait), so a cursor that is
    /// too old is a 410 before any stream begins; then the stream's head and
    /// the stream.
    pub(crate) async fn watch_start(&self, ask: Ask) -> Result<(Response, Stream<B>), Response> {
        let page = self.first_page(&ask).await?;
        let mut ask = ask;
        ask.after = Some(page.upto);
        let content_type = match ask.format {
            Format::Sse => "text/event-stream",
            Format::Ndjson => "application/x-ndjson",
        };
        let mut head = Response::new(200)
            .header("Content-Type", content_type)
            .header("Cache-Control", "no-cache")
            .header("X-Accel-Buffering", "no")
            .closing();
        head.streamed = true;
        let first = encode_page(&page, &ask);
        let stream = Stream {
            backend: self.backend.clone(),
            first: Some(first),
            events: page.events.len(),
            ask,
            written: Instant::now(),
            ended: false,
        };
        Ok((head, stream))
    }

    /// A watch answered in one response, without waiting: the changes after
    /// the cursor now (the `Router::handle` path; the connection streams).
    pub(crate) async fn watch_once(
        &self,
        head: &Head,
        prefix: Vec<u8>,
        query: &FormPairs,
    ) -> Result<Response, Response> {
        let ask = ask(head, prefix, query)?;
        let page = self.first_page(&ask).await?;
        let body = encode_page(&page, &ask);
        Ok(Response::bytes(200, "text/event-stream", body))
    }

    async fn first_page(&self, ask: &Ask) -> Result<WatchPage, Response> {
        let until = Instant::now() + Duration::from_millis(WATCH_POLL_MS.into());
        let first = loop {
            let prefix = ask.prefix.clone();
            match self.backend.watch(prefix, ask.after, ask.values, 0).await {
                // Workers starting or installing a snapshot: a moment.
                Err(BackendError::Unavailable(_)) if Instant::now() < until => {
                    smol::Timer::after(Duration::from_millis(100)).await
                }
                other => break other,
            };
        };
        match first {
            Ok(page) => Ok(page),
            Err(BackendError::Compacted { earliest, why }) => {
                let body = json!({
                    "error": why,
                    "earliest": earliest.to_string(),
                    "hint": "list the keys under the prefix (GET /kv?prefix=), then watch from the earliest cursor",
                });
                Err(Response::json(410, &body))
            }
            Err(e) => Err(backend_error(e)),
        }
    }
}

impl<B: Backend> Stream<B> {
    /// The next bytes to write; `None` once the stream has ended (its last
    /// bytes, an `error` event, were returned before).
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        self.events = 0;
        if self.ended {
            return None;
        }
        let mut failing: Option<Instant> = None;
        loop {
            let prefix = self.ask.prefix.clone();
            let (after, values) = (self.ask.after, self.ask.values);
            // An empty page comes back when the next keep-alive is due.
            let every = Duration::from_millis(WATCH_KEEPALIVE_MS);
            let due = every.saturating_sub(self.written.elapsed()).as_millis();
            let wait = u32::try_from(due).unwrap_or(u32::MAX).min(WATCH_POLL_MS);
            match self.backend.watch(prefix, after, values, wait).await {
                Ok(page) => {
                    failing = None;
                    self.ask.after = Some(page.upto);
                    if !page.events.is_empty() {
                        self.written = Instant::now();
                        self.events = page.events.len();
                        return Some(encode_page(&page, &self.ask));
                    }
                    if self.written.elapsed() >= every {
                        self.written = Instant::now();
                        return Some(keepalive(self.ask.format));
                    }
                }
                Err(BackendError::Compacted { earliest, why }) => {
                    return Some(self.end(json!({"error": why, "earliest": earliest.to_string()})))
                }
                Err(e) => {
                    let since = *failing.get_or_insert_with(Instant::now);
                    if since.elapsed() >= Duration::from_millis(WATCH_UNAVAILABLE_MS) {
                        let cursor = self.ask.after.map(|a| a.to_string());
                        let why = format!("{e}; resume from the cursor");
                        return Some(self.end(json!({"error": why, "cursor": cursor})));
                    }
                    smol::Timer::after(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// The bytes of a final `error` event.
    fn end(&mut self, body: Value) -> Vec<u8> {
        self.ended = true;
        match self.ask.format {
            Format::Sse => format!("event: error\ndata: {body}\n\n").into_bytes(),
            Format::Ndjson => format!("{body}\n").into_bytes(),
        }
    }

    /// Events in the bytes `next` returned last (for `/metrics`).
    pub fn events(&self) -> usize {
        self.events
    }
}

impl<B: Backend> Router<B> {
    /// With `wait=D` (and `index=SEQ`): returns once `key` changed after
    /// seq `SEQ` (absent: after now), or `D` passed; without, at once.
    pub(crate) async fn kv_wait(&self, key: &[u8], query: &FormPairs) -> Result<(), Response> {
        let Some(wait) = form_value(query, "wait") else {
            return Ok(());
        };
        let bad = |m: String| Response::error(400, m);
        let wait = std::str::from_utf8(wait).map_err(|_| bad("wait is a duration".into()))?;
        let wait_ms =
            crate::http::params::parse_ttl(wait).map_err(|e| bad(format!("wait: {e}")))?;
        if wait_ms > KV_WAIT_MS_MAX {
            return Err(bad(format!("wait is at most {} s", KV_WAIT_MS_MAX / 1000)));
        }
        let wait_ms = wait_ms.min(self.kv_wait_ms_max);
        let mut after = match form_value(query, "index") {
            None => None,
            Some(i) => Some(
                std::str::from_utf8(i)
                    .ok()
                    .and_then(|t| t.parse::<u64>().ok())
                    .ok_or_else(|| bad("index is a seq (an ETag or X-Hypha-Seq)".into()))?,
            ),
        };
        let until = Instant::now() + Duration::from_millis(wait_ms);
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            let poll = (left.as_millis() as u32).min(WATCH_POLL_MS);
            let page = match self.backend.watch(key.to_vec(), after, false, poll).await {
                Ok(page) => page,
                // Changes since `index` cannot be told: answer what the key
                // holds now.
                Err(BackendError::Compacted { .. }) => return Ok(()),
                // No worker can answer yet (one starting, one installing a
                // snapshot): again, until the wait ends.
                Err(_) => {
                    smol::Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let changed = page
                .events
                .iter()
                .flat_map(|e| &e.changes)
                .any(|c| c.key == key);
            if changed {
                return Ok(());
            }
            after = Some(page.upto);
        }
        Ok(())
    }
}

fn keepalive(format: Format) -> Vec<u8> {
    match format {
        Format::Sse => b": keep-alive\n\n".to_vec(),
        Format::Ndjson => b"\n".to_vec(),
    }
}

/// A page in the stream's format.
fn encode_page(page: &WatchPage, ask: &Ask) -> Vec<u8> {
    let mut out = Vec::new();
    for event in &page.events {
        let data = event_json(event);
        match ask.format {
            Format::Sse => out.extend_from_slice(
                format!("id: {}\nevent: change\ndata: {data}\n\n", event.seq).as_bytes(),
            ),
            Format::Ndjson => out.extend_from_slice(format!("{data}\n").as_bytes()),
        }
    }
    out
}

/// An event as JSON: keys and values as text, or base64 with `"encoding":
/// "base64"` on a change whose bytes are not UTF-8.
pub(crate) fn event_json(event: &WatchEvent) -> Value {
    let changes: Vec<Value> = event
        .changes
        .iter()
        .map(|c| {
            let kind = match c.kind {
                ChangeKind::Put => "put",
                ChangeKind::Delete => "delete",
                ChangeKind::Expire => "expire",
                ChangeKind::Refresh => "refresh",
            };
            let utf8 = |b: &[u8]| std::str::from_utf8(b).is_ok();
            let plain = utf8(&c.key) && c.value.as_deref().is_none_or(utf8);
            let text = |b: &[u8]| match plain {
                true => Value::from(String::from_utf8_lossy(b)),
                false => Value::from(STANDARD.encode(b)),
            };
            let mut item = json!({"type": kind, "key": text(&c.key)});
            if let Some(v) = &c.value {
                item["value"] = text(v);
            }
            if !plain {
                item["encoding"] = "base64".into();
            }
            item
        })
        .collect();
    json!({"seq": event.seq, "changes": changes})
}
