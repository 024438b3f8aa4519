//! hypha's HTTP/1.1 edge: a binary-safe REST API over a [`Backend`], plus the
//! dialects of older KV services ([`compat`]).
//!
//! Layers, outermost first: [`conn`] (accept loop, cap, shutdown, one task
//! per connection) → `body` and `socket` (reads and writes under deadlines)
//! → [`request`] and [`chunked`] (sans-IO parsing) → [`router`] and
//! [`compat`] (routes; [`params`] and `compat_json` decode their inputs) →
//! [`Backend`]. [`config`] holds the settings and every limit; it and the
//! leaf modules (errors, responses, metrics, budget, percent-decoding)
//! import none of the layers above. Start a server with [`serve`].

#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod backend;
mod backup;
mod body;
pub mod budget;
mod cas;
pub mod chunked;
pub mod compat;
mod compat_json;
pub mod config;
pub mod conn;
pub(crate) mod deadline;
pub mod error;
mod etag;
mod inbuf;
pub mod mem;
pub mod metrics;
pub mod page;
pub mod params;
pub mod percent;
pub mod request;
pub mod response;
pub mod router;
mod routes;
mod socket;
pub mod token;
mod ttl;
mod txn;
mod watch;

pub use backend::{
    Backend, BackendError, BackupAnswer, BackupAsk, Consistency, Entry, History, ScanPage,
    TxnAnswer, Version, WatchPage,
};
pub use chunked::ChunkedDecoder;
pub use config::{HttpConfig, BODY_TIMEOUT_MS, CONNECTIONS_MAX, HEAD_TIMEOUT_MS, IDLE_TIMEOUT_MS};
pub use conn::{serve, serve_on};
pub use error::{HttpError, PercentError};
#[doc(hidden)]
pub use mem::MemBackend;
pub use metrics::{Metrics, RouteId};
pub use request::{parse_head, BodyFraming, Head, Method, Status};
pub use response::Response;
pub use router::{Admitted, Router};
pub use token::Token;
pub use watch::WATCH_KEEPALIVE_MS;
