//! The HTTP edge's settings ([`HttpConfig`]) and every limit it enforces, in
//! one place: what a request head, a body, a connection and an answer may
//! cost, and the defaults of the settings a deployment can change.
//!
//! The constants named `*_DEFAULT` and the timeouts are the defaults of
//! [`HttpConfig`] fields (and of the `hypha http` flags that set them); the
//! others are fixed. Relations between limits are checked at compile time
//! below. Error messages quote the constant a client ran into.

use crate::http::token::Token;

// Request heads and chunked bodies (the sans-IO readers, `request.rs`, `chunked.rs`).

/// Largest request head (request line + headers + blank line) in bytes; over it → 431.
pub const HEAD_BYTES_MAX: usize = 8 * 1024;
/// Largest request line in bytes; over it → 414.
pub const REQUEST_LINE_BYTES_MAX: usize = 4 * 1024;
/// Most header fields in one request; over it → 431.
pub const HEADERS_COUNT_MAX: usize = 64;

/// Longest chunk-size line (size digits plus extensions) in bytes.
pub const CHUNK_LINE_BYTES_MAX: usize = 1024;
/// Most trailer bytes after the last chunk (trailers are read and dropped).
pub const TRAILERS_BYTES_MAX: usize = HEAD_BYTES_MAX;

const _: () = assert!(REQUEST_LINE_BYTES_MAX < HEAD_BYTES_MAX);
// The smallest header line, "a:\r\n", is 4 bytes: the count limit must be reachable.
const _: () = assert!(HEADERS_COUNT_MAX * 4 < HEAD_BYTES_MAX);

// Connections (`conn.rs`, `socket.rs`).

/// Default time a client has to send a complete head, from accept (first
/// request) or from its first byte (later requests). Stops slowloris.
pub const HEAD_TIMEOUT_MS: u64 = 10_000;
/// Default time a keep-alive connection may sit between requests.
pub const IDLE_TIMEOUT_MS: u64 = 60_000;
/// Default time one body read or response write may make no progress.
pub const BODY_TIMEOUT_MS: u64 = 30_000;
/// Default cap on open connections; beyond it new ones get 503 and are closed.
pub const CONNECTIONS_MAX: usize = 1024;
/// Default time a whole request body may take, however steadily it comes
/// (a 16 MiB value at 1.1 Mbit/s): a client cannot hold its share of the
/// body budget forever by trickling.
pub const BODY_TOTAL_TIMEOUT_MS: u64 = 120_000;
/// Default of `--connections-per-addr`: connections one client address may
/// hold open, so one address cannot take every connection.
pub const CONNECTIONS_PER_ADDR_MAX_DEFAULT: usize = 64;

/// Bytes asked of the socket per read while reading heads and chunked bodies.
pub(crate) const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Room for a connection's reads while its buffer holds less than half of
/// it: a whole usual request head. The buffer grows to `READ_CHUNK_BYTES`
/// only when unused bytes fill half of it (a long head, pipelined
/// requests), so 10,000 open watch streams or idle keep-alive connections do
/// not each hold 16 KiB.
pub(crate) const FIRST_READ_BYTES: usize = 2 * 1024;
/// Most bytes read into a `Content-Length` body per read.
pub(crate) const BODY_READ_CHUNK_BYTES: usize = 256 * 1024;
/// Bodies up to this size are copied behind the head and sent in one write;
/// larger ones go in a second write rather than being copied.
pub(crate) const COALESCE_BODY_BYTES_MAX: usize = 16 << 10;
/// Most refusals (503 over the cap) being written at once; beyond it excess
/// connections are closed without an answer.
pub(crate) const REFUSALS_INFLIGHT_MAX: usize = 64;
/// Time to write a refusal.
pub(crate) const REFUSAL_TIMEOUT_MS: u64 = 1_000;
/// Pause after a failed accept (e.g. out of file descriptors).
pub(crate) const ACCEPT_RETRY_MS: u64 = 50;
/// How long a closing connection keeps reading (and dropping) what the client
/// still sends, so the kernel does not reset the connection before the client
/// reads our last response.
pub(crate) const LINGER_TIMEOUT_MS: u64 = 1_000;
/// Most bytes dropped while lingering.
pub(crate) const LINGER_BYTES_MAX: usize = 1024 * 1024;
/// Bytes read at a time while lingering.
pub(crate) const LINGER_READ_BYTES: usize = 16 * 1024;

const _: () = assert!(HEAD_TIMEOUT_MS <= IDLE_TIMEOUT_MS);
const _: () = assert!(BODY_TIMEOUT_MS <= BODY_TOTAL_TIMEOUT_MS);
const _: () = assert!(LINGER_TIMEOUT_MS < HEAD_TIMEOUT_MS);
const _: () = assert!(READ_CHUNK_BYTES <= BODY_READ_CHUNK_BYTES);
const _: () = assert!(FIRST_READ_BYTES <= READ_CHUNK_BYTES);

// The body budget (`budget.rs`).

/// Default of `--body-budget-mb`: request and response bodies held at once.
pub const BODY_BUDGET_BYTES_DEFAULT: usize = 64 << 20;
/// A chunked body reserves budget in steps of this many bytes as it grows.
pub const BODY_BUDGET_STEP_BYTES: usize = 1 << 20;
/// Response bodies up to this size are not counted (headers and error
/// messages): the connection cap bounds them.
pub const RESPONSE_UNCOUNTED_BYTES_MAX: usize = 64 << 10;
/// `Retry-After` of a request turned away for the budget, in seconds.
pub const BUDGET_RETRY_AFTER_SECS: u32 = 1;

// Routes (`router.rs`, `compat.rs`).

/// Body allowance beyond `value_bytes_max` for JSON and form endpoints (escaping,
/// field names, several small values), and the whole allowance of endpoints that
/// take no body.
pub const BODY_ENVELOPE_BYTES: usize = 64 * 1024;
/// Keys per scan page when `limit` is not given.
pub const SCAN_LIMIT_DEFAULT: u32 = 100;
/// Largest `limit` a scan accepts: the wire's (`crate::limits`).
pub const SCAN_LIMIT_MAX: u32 = crate::limits::SCAN_LIMIT_MAX as u32;
/// Largest `history=N`: the wire's (`crate::limits`).
pub const HISTORY_DEPTH_MAX: u32 = crate::limits::HISTORY_DEPTH_MAX as u32;
/// Most keys in one `POST /fetch`, `POST /query` or `PUT /set`.
pub const BATCH_KEYS_MAX: usize = 1000;
/// Longest `wait` of a blocking read (`GET /kv/{key}?wait=30s&index=N`).
pub const KV_WAIT_MS_MAX: u64 = 300_000;
/// Keys per page of `GET /fetch` when `limit` is not given.
pub const FETCH_LIMIT_DEFAULT: u32 = 100;
/// Value bytes after which `GET /fetch` ends its page early and `POST /fetch`
/// refuses; keeps one response from holding the whole store in memory.
pub const FETCH_VALUES_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Keys scanned per backend call while filling a `GET /fetch` page, so a page
/// can stop close to [`FETCH_VALUES_BYTES_MAX`].
pub(crate) const FETCH_SCAN_KEYS: u32 = 16;
/// Default of `--json-values-max`: most JSON values (arrays, objects,
/// strings, numbers, ...) in one request body of the dialects. A parsed
/// value costs ~32 bytes and some work however short its text, so a 16 MiB
/// body of `[0,0,...]` would cost ~300 MiB and a second of the executor
/// thread; counting first bounds both (the largest batch the dialects carry
/// is `SCAN_LIMIT_MAX` keys of a few values each).
pub const JSON_VALUES_MAX_DEFAULT: usize = 16 * 1024;

const _: () = assert!(SCAN_LIMIT_DEFAULT <= SCAN_LIMIT_MAX);
const _: () = assert!(BODY_ENVELOPE_BYTES >= HEAD_BYTES_MAX);
const _: () = assert!(FETCH_LIMIT_DEFAULT <= SCAN_LIMIT_MAX);
const _: () = assert!(BATCH_KEYS_MAX as u32 >= SCAN_LIMIT_MAX);
// `PUT /set` is one atomic batch (a `Txn`).
const _: () = assert!(BATCH_KEYS_MAX <= hypha_net::TXN_ITEMS_MAX);

/// What a route does with a request body; decides the body limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// The body is the value: limit `value_bytes_max`.
    Value,
    /// JSON or a form carrying values: limit `value_bytes_max + BODY_ENVELOPE_BYTES`.
    Envelope,
    /// Ignored: limit `BODY_ENVELOPE_BYTES`.
    Unused,
}

impl BodyKind {
    /// The most body bytes a route of this kind reads, given the backend's
    /// largest value.
    pub(crate) fn body_bytes_max(self, value_bytes_max: usize) -> usize {
        match self {
            BodyKind::Value => value_bytes_max,
            BodyKind::Envelope => value_bytes_max.saturating_add(BODY_ENVELOPE_BYTES),
            BodyKind::Unused => BODY_ENVELOPE_BYTES,
        }
    }
}

/// Settings of one HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// See [`HEAD_TIMEOUT_MS`].
    pub head_timeout_ms: u64,
    /// See [`IDLE_TIMEOUT_MS`].
    pub idle_timeout_ms: u64,
    /// See [`BODY_TIMEOUT_MS`]; also bounds each response write.
    pub body_timeout_ms: u64,
    /// See [`CONNECTIONS_MAX`].
    pub connections_max: usize,
    /// When set, writes need `Authorization: Bearer <token>` (401 otherwise).
    pub token: Option<Token>,
    /// With `token`, reads need it too; `/ping` stays open.
    pub token_for_reads: bool,
    /// See [`BODY_TOTAL_TIMEOUT_MS`].
    pub body_total_timeout_ms: u64,
    /// See [`BODY_BUDGET_BYTES_DEFAULT`].
    pub body_budget_bytes: usize,
    /// See [`CONNECTIONS_PER_ADDR_MAX_DEFAULT`].
    pub connections_per_addr_max: usize,
    /// See [`JSON_VALUES_MAX_DEFAULT`].
    pub json_values_max: usize,
    /// Longest `wait` of a blocking read (`GET /kv/{key}?wait=`), ms; at most
    /// `KV_WAIT_MS_MAX` (a fuzzer sets it near zero).
    pub kv_wait_ms_max: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            head_timeout_ms: HEAD_TIMEOUT_MS,
            idle_timeout_ms: IDLE_TIMEOUT_MS,
            body_timeout_ms: BODY_TIMEOUT_MS,
            connections_max: CONNECTIONS_MAX,
            token: None,
            token_for_reads: false,
            body_total_timeout_ms: BODY_TOTAL_TIMEOUT_MS,
            body_budget_bytes: BODY_BUDGET_BYTES_DEFAULT,
            connections_per_addr_max: CONNECTIONS_PER_ADDR_MAX_DEFAULT,
            json_values_max: JSON_VALUES_MAX_DEFAULT,
            kv_wait_ms_max: KV_WAIT_MS_MAX,
        }
    }
}
