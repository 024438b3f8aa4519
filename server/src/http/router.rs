//! The REST API and the request pipeline every route shares.
//!
//! [`Router::admit`] runs on the head alone (route, method, auth, body limit), so
//! a request that will be refused is refused before its body is read and before
//! `100 Continue` is sent. [`Router::handle`] runs once the body is in.
//!
//! | route | answer |
//! | --- | --- |
//! | `PUT /kv/{key}` raw body | 201 (every write creates a version), `{"seq":N}`, `X-Hypha-Seq` |
//! | `GET /kv/{key}` | 200 raw bytes, `ETag: "<seq>"`, `X-Hypha-Seq`; 304 on `If-None-Match`; 404 |
//! | `HEAD /kv/{key}` | as GET, no body |
//! | `DELETE /kv/{key}` | 200 `{"seq":N}`; 404 if absent |
//! | `GET /kv/{key}?history=N` (N ≤ `HISTORY_DEPTH_MAX`) | `{"key","key_base64","versions":[{"seq","value"(base64)} or {"seq","deleted":true}],"omitted":M}` newest first; `X-Hypha-Versions-Omitted: M` counts the older versions left out to keep one answer to about 1 MiB of values |
//! | `GET /kv?prefix=P&limit=L&cursor=C` | `{"keys":[{"key":utf8 or null,"base64"}],"next_cursor":"C" or null}` in insertion order (each key where it was first written); follow `next_cursor` until null, a page may be short or empty |
//! | `GET /ping`, `/status`, `/metrics`, `/digest` | pong, backend status, Prometheus text, backend digest |
//!
//! Keys are the percent-decoded rest of the path: `/kv/a/b` and `/kv/a%2Fb` are
//! the same key, `+` in a path is a plus. Query values are form-decoded (`+` is
//! a space, `%2B` a plus). Reads take `consistency=ryw|linearizable|any`;
//! while the backend says they may be stale (a failover group's edge that
//! reaches no leader), every read answer carries `X-Hypha-Stale: true`.
//! Every error is `{"error": "..."}` saying what to change.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::http::backend::{Backend, Version};
use crate::http::compat;
use crate::http::config::{BodyKind, HttpConfig, HISTORY_DEPTH_MAX, SCAN_LIMIT_DEFAULT};
use crate::http::metrics::{Metrics, RouteId};
use crate::http::page;
use crate::http::params::{backend_error, consistency, limit_param, number_param};
use crate::http::percent::{form_value, parse_form, FormPairs};
use crate::http::request::{BodyFraming, Head, Method};
use crate::http::response::{decimal, Response};
use crate::http::routes::{body_kind, match_path, member_change, not_found, route_id, Route};
use crate::http::token::Token;

/// A request that passed [`Router::admit`]: read at most `body_bytes_max` body bytes.
#[derive(Debug)]
pub struct Admitted {
    /// The metrics label.
    pub route_id: RouteId,
    /// The body limit for this route.
    pub body_bytes_max: usize,
    pub(crate) route: Route,
    pub(crate) query: FormPairs,
    body_kind: BodyKind,
}

/// Turns requests into backend calls and responses; one per server.
#[derive(Debug)]
pub struct Router<B> {
    pub(crate) backend: Arc<B>,
    token: Option<Token>,
    token_for_reads: bool,
    json_values_max: usize,
    pub(crate) kv_wait_ms_max: u64,
    metrics: Metrics,
}

/// The error response for a refused request, with the metrics label.
pub type Refusal = (RouteId, Response);

impl<B: Backend> Router<B> {
    /// A router over `backend`, with the auth settings of `config`.
    pub fn new(backend: Arc<B>, config: &HttpConfig) -> Self {
        Router {
            backend,
            token: config.token.clone(),
            token_for_reads: config.token_for_reads,
            json_values_max: config.json_values_max,
            kv_wait_ms_max: config
                .kv_wait_ms_max
                .min(crate::http::config::KV_WAIT_MS_MAX),
            metrics: Metrics::default(),
        }
    }

    /// The request and connection counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Decides from the head alone whether the request can be served: route (404),
    /// path decoding (400), method (405), query (400), token (401), body size (413).
    pub fn admit(&self, head: &Head) -> Result<Admitted, Refusal> {
        let path = head.path();
        let (route, allow) = match match_path(path) {
            None => return Err((RouteId::NotFound, not_found(path))),
            Some(Err(message)) => return Err((RouteId::Invalid, Response::error(400, message))),
            Some(Ok(found)) => found,
        };
        if !allow.split(", ").any(|m| m == head.method.as_str()) {
            let mut message = format!(
                "{} is not allowed on {path}; use {allow}",
                head.method.as_str()
            );
            if !allow.contains(',') {
                // Scripts copied from older systems' READMEs often send GET
                // where a write is meant: show the command to copy.
                let host = head.header("host").map(String::from_utf8_lossy);
                let host = host.as_deref().unwrap_or("HOST");
                message.push_str(&format!(": curl -X {allow} 'http://{host}{}'", head.target));
            }
            let route_id = route_id(&route, &head.method, &FormPairs::new());
            return Err((
                route_id,
                Response::error(405, message).header("Allow", allow),
            ));
        }
        let query = parse_form(head.query().as_bytes()).map_err(|e| {
            (
                RouteId::Invalid,
                Response::error(400, format!("query: {e}")),
            )
        })?;
        let route_id = route_id(&route, &head.method, &query);
        self.authorize(head, &route)
            .map_err(|response| (route_id, response))?;
        let body_kind = body_kind(&route, &head.method);
        let body_bytes_max = body_kind.body_bytes_max(self.backend.value_bytes_max());
        let admitted = Admitted {
            route_id,
            body_bytes_max,
            route,
            query,
            body_kind,
        };
        match head.body {
            BodyFraming::Length(len) if len > body_bytes_max as u64 => {
                Err((route_id, self.body_too_large(&admitted, Some(len))))
            }
            _ => Ok(admitted),
        }
    }

    /// The 413 for a body over [`Admitted::body_bytes_max`]; `len` is the
    /// announced length, `None` for a chunked body that grew past the limit.
    pub fn body_too_large(&self, admitted: &Admitted, len: Option<u64>) -> Response {
        let max = admitted.body_bytes_max;
        let size = len.map_or(format!("over {max} bytes"), |len| format!("{len} bytes"));
        let message = match admitted.body_kind {
            BodyKind::Value => format!(
                "value is {size}; the limit is {max} (--value-max); store it in smaller pieces"
            ),
            BodyKind::Envelope => format!(
                "request body is {size}; the limit for this endpoint is {max} \
                 (--value-max and {} KiB for the rest); send fewer or smaller values per request",
                crate::http::config::BODY_ENVELOPE_BYTES >> 10
            ),
            BodyKind::Unused => format!(
                "request body is {size}; this endpoint takes no body (limit {max}); \
                 send the request without one"
            ),
        };
        Response::error(413, message).closing()
    }

    /// Serves an admitted request.
    pub async fn handle(&self, head: &Head, admitted: Admitted, body: Vec<u8>) -> Response {
        let query = &admitted.query;
        let reads_data = match &admitted.route {
            Route::Kv(_) => matches!(head.method, Method::Get | Method::Head),
            Route::KvScan => true,
            Route::Compat(route) => !compat::is_write(route, &head.method),
            _ => false,
        };
        let result = match admitted.route {
            Route::Kv(key) => match head.method {
                Method::Put => self.kv_put(head, key, body, query).await,
                Method::Delete => self.kv_delete(head, key).await,
                _ if form_value(query, "history").is_some() => self.kv_history(key, query).await,
                _ => self.kv_get(head, key, query).await,
            },
            Route::KvScan => self.kv_scan(query).await,
            Route::Ping => Ok(Response::json(200, &json!({"message": "pong"}))),
            Route::Status => Ok(Response::json(200, &self.backend.status().await)),
            Route::Metrics => Ok(self.render_metrics()),
            Route::Digest => self
                .backend
                .digest()
                .await
                .map(|d| Response::json(200, &d))
                .map_err(backend_error),
            Route::AdminCompact => self
                .backend
                .compact()
                .await
                .map(|d| Response::json(200, &d))
                .map_err(backend_error),
            Route::AdminMembers => match member_change(&head.method, query) {
                Ok(change) => self
                    .backend
                    .members(change)
                    .await
                    .map(|d| Response::json(200, &d))
                    .map_err(backend_error),
                Err(response) => Err(response),
            },
            Route::Txn => {
                crate::http::txn::handle(&*self.backend, &body, self.json_values_max).await
            }
            Route::Watch(prefix) => self.watch_once(head, prefix, query).await,
            Route::AdminBackup => crate::http::backup::handle(&*self.backend, query).await,
            Route::Page => Ok(page::serve()),
            Route::ReadPass => Ok(page::read_pass(self.token.as_ref(), &body)),
            Route::Compat(route) => {
                let json_values_max = self.json_values_max;
                Ok(compat::handle(&*self.backend, route, head, query, body, json_values_max).await)
            }
        };
        let response = result.unwrap_or_else(|response| response);
        match reads_data && self.backend.stale() {
            true => response.header("X-Hypha-Stale", "true"),
            false => response,
        }
    }

    fn authorize(&self, head: &Head, route: &Route) -> Result<(), Response> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let write = match route {
            Route::Kv(_) => matches!(head.method, Method::Put | Method::Delete),
            Route::Compat(route) => compat::is_write(route, &head.method),
            Route::AdminCompact | Route::AdminBackup => true,
            Route::AdminMembers => head.method == Method::Post,
            Route::Txn => true,
            _ => false,
        };
        let open = matches!(route, Route::Ping | Route::Page | Route::ReadPass);
        if open || !(write || self.token_for_reads) {
            return Ok(());
        }
        // The status page's read pass opens reads, never writes.
        if !write
            && head
                .header("cookie")
                .is_some_and(|c| page::has_read_pass(token, c))
        {
            return Ok(());
        }
        let refuse = |message: &str| {
            Err(Response::error(401, message).header("WWW-Authenticate", "Bearer realm=\"hypha\""))
        };
        match head.header("authorization").and_then(bearer) {
            None => refuse("this request needs the header `Authorization: Bearer <token>`"),
            Some(presented) if token.matches(presented) => Ok(()),
            Some(_) => refuse("the bearer token is not this server's token"),
        }
    }

    async fn kv_get(
        &self,
        head: &Head,
        key: Vec<u8>,
        query: &FormPairs,
    ) -> Result<Response, Response> {
        let c = consistency(query)?;
        self.kv_wait(&key, query).await?;
        let (entry, at) = self.backend.get_at(key, c).await.map_err(backend_error)?;
        let Some(entry) = entry else {
            let absent = Response::error(404, "key not found");
            return Err(match at {
                0 => absent,
                at => absent.header("X-Hypha-Seq", decimal(at)),
            });
        };
        // The key's version in ETag; the store's seq at the read beside it.
        let etag = ["\"", &decimal(entry.seq), "\""].concat();
        let at = decimal(at.max(entry.seq));
        if head
            .header("if-none-match")
            .is_some_and(|tags| etag_matches(tags, &etag))
        {
            return Ok(Response::new(304)
                .header("ETag", etag)
                .header("X-Hypha-Seq", at));
        }
        Ok(
            Response::bytes(200, "application/octet-stream", entry.value)
                .header("ETag", etag)
                .header("X-Hypha-Seq", at),
        )
    }

    async fn kv_history(&self, key: Vec<u8>, query: &FormPairs) -> Result<Response, Response> {
        let c = consistency(query)?;
        let depth = number_param(query, "history")?.unwrap_or(1);
        if depth == 0 || depth > u64::from(HISTORY_DEPTH_MAX) {
            let message = format!(
                "history must be between 1 and {HISTORY_DEPTH_MAX} versions; it is {depth}"
            );
            return Err(Response::error(400, message));
        }
        let depth = u32::try_from(depth).unwrap_or(HISTORY_DEPTH_MAX);
        let history = self
            .backend
            .history(key.clone(), depth, c)
            .await
            .map_err(backend_error)?;
        if history.versions.is_empty() {
            return Err(Response::error(404, "key not found"));
        }
        let versions: Vec<Value> = history.versions.iter().map(version_json).collect();
        let text = core::str::from_utf8(&key).ok();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&key);
        // Versions that did not fit one answer are counted, not an error.
        let omitted = history.omitted;
        Ok(Response::json(
            200,
            &json!({"key": text, "key_base64": encoded, "versions": versions, "omitted": omitted}),
        )
        .header("X-Hypha-Versions-Omitted", omitted.to_string())
        .header("X-Hypha-Seq", decimal(history.applied_seq)))
    }

    async fn kv_scan(&self, query: &FormPairs) -> Result<Response, Response> {
        let c = consistency(query)?;
        let prefix = form_value(query, "prefix").unwrap_or_default().to_vec();
        let cursor = number_param(query, "cursor")?.unwrap_or(0);
        let limit = limit_param(query, SCAN_LIMIT_DEFAULT)?;
        let page = self
            .backend
            .scan(cursor, prefix, limit, c)
            .await
            .map_err(backend_error)?;
        let keys: Vec<Value> = page.keys.iter().map(|k| key_json(k)).collect();
        let next = page.next_cursor.map(|c| c.to_string());
        Ok(
            Response::json(200, &json!({"keys": keys, "next_cursor": next}))
                .header("X-Hypha-Seq", decimal(page.applied_seq)),
        )
    }

    fn render_metrics(&self) -> Response {
        let mut out = String::new();
        self.metrics.render(&mut out);
        self.backend.metrics(&mut out);
        Response::bytes(200, "text/plain; version=0.0.4", out.into_bytes())
    }
}

/// `Some(Ok)` for a route, `Some(Err)` for a route with an undecodable parameter.
/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| token.trim_ascii())
}

/// `If-None-Match`: `*` or a list of (possibly weak) tags, compared weakly.
fn etag_matches(header: &[u8], etag: &str) -> bool {
    header
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .any(|tag| tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == etag.as_bytes())
}

/// A key as `{"key": <UTF-8 text or null>, "base64": <always>}`.
pub(crate) fn key_json(key: &[u8]) -> Value {
    let text = core::str::from_utf8(key).ok();
    json!({"key": text, "base64": base64::engine::general_purpose::STANDARD.encode(key)})
}

fn version_json(version: &Version) -> Value {
    match &version.value {
        Some(value) => {
            json!({"seq": version.seq, "value": base64::engine::general_purpose::STANDARD.encode(value)})
        }
        None => json!({"seq": version.seq, "deleted": true}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::backend::BackendError;
    use crate::http::mem::MemBackend;
    use crate::http::request::{parse_head, Status};

    fn router(config: HttpConfig) -> Router<MemBackend> {
        Router::new(Arc::new(MemBackend::with_value_bytes_max(100)), &config)
    }

    fn head(raw: &str) -> Head {
        match parse_head(raw.as_bytes()) {
            Ok(Status::Complete(head)) => head,
            other => panic!("{raw:?} did not parse: {other:?}"),
        }
    }

    fn refusal(router: &Router<MemBackend>, raw: &str) -> Response {
        match router.admit(&head(raw)) {
            Err((_, response)) => response,
            Ok(admitted) => panic!("{raw:?} was admitted as {admitted:?}"),
        }
    }

    #[test]
    fn admit_refuses_with_the_exact_status() {
        let r = router(HttpConfig::default());
        let cases = [
            ("GET /nope HTTP/1.1\r\nHost: h\r\n\r\n", 404),
            ("PATCH /kv/a HTTP/1.1\r\nHost: h\r\n\r\n", 405),
            ("GET /kv/a%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET /kv/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET /kv?prefix=%g HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (
                "PUT /kv/a HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n",
                413,
            ),
            (
                "POST /set HTTP/1.1\r\nHost: h\r\nContent-Length: 65637\r\n\r\n",
                413,
            ),
            (
                "GET /ping HTTP/1.1\r\nHost: h\r\nContent-Length: 65537\r\n\r\n",
                413,
            ),
        ];
        for (raw, status) in cases {
            assert_eq!(refusal(&r, raw).status, status, "{raw:?}");
        }
        let allow = refusal(&r, "POST /kv/a HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(allow
            .headers
            .contains(&("Allow", "GET, HEAD, PUT, DELETE".into())));
        let large = refusal(
            &r,
            "PUT /kv/a HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n",
        );
        let text = String::from_utf8_lossy(&large.body);
        assert!(
            text.contains("value is 101 bytes; the limit is 100 (--value-max)"),
            "{text}"
        );
        assert!(r
            .admit(&head(
                "PUT /kv/a HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n"
            ))
            .is_ok());
    }

    #[test]
    fn token_guards_writes_and_optionally_reads_but_never_ping() {
        let writes = router(HttpConfig {
            token: Some("s3cret".into()),
            ..HttpConfig::default()
        });
        assert_eq!(
            refusal(&writes, "DELETE /kv/a HTTP/1.1\r\nHost: h\r\n\r\n").status,
            401
        );
        let wrong = "PUT /kv/a HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer nope\r\n\r\n";
        assert_eq!(refusal(&writes, wrong).status, 401);
        let right = "PUT /kv/a HTTP/1.1\r\nHost: h\r\nAuthorization: bearer s3cret\r\n\r\n";
        assert!(writes.admit(&head(right)).is_ok());
        assert!(writes
            .admit(&head("GET /kv/a HTTP/1.1\r\nHost: h\r\n\r\n"))
            .is_ok());

        let reads = router(HttpConfig {
            token: Some("s3cret".into()),
            token_for_reads: true,
            ..HttpConfig::default()
        });
        let refused = refusal(&reads, "POST /fetch HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(refused.status, 401);
        assert!(refused
            .headers
            .iter()
            .any(|(name, _)| *name == "WWW-Authenticate"));
        assert!(reads
            .admit(&head("GET /ping HTTP/1.1\r\nHost: h\r\n\r\n"))
            .is_ok());
    }

    #[test]
    fn backend_errors_map_to_statuses() {
        let r = router(HttpConfig::default());
        let cases = [
            (BackendError::Unavailable("no master".into()), 503),
            (BackendError::Timeout("slow".into()), 504),
            (BackendError::ReadOnly("disk full".into()), 503),
            (
                BackendError::SyncFailed {
                    confirmed: 1,
                    wanted: 2,
                },
                503,
            ),
            (BackendError::Internal("bug".into()), 500),
            (BackendError::BadRequest("key too long".into()), 400),
            (BackendError::TooLarge("too big".into()), 413),
        ];
        for (error, status) in cases {
            r.backend.fail_with(Some(error));
            let raw = "GET /kv/a HTTP/1.1\r\nHost: h\r\n\r\n";
            let admitted = r.admit(&head(raw)).map_err(|(_, response)| response);
            let response = match admitted {
                Ok(admitted) => smol::block_on(r.handle(&head(raw), admitted, Vec::new())),
                Err(response) => response,
            };
            assert_eq!(response.status, status);
        }
        let sync = backend_error(BackendError::SyncFailed {
            confirmed: 1,
            wanted: 2,
        });
        assert!(String::from_utf8_lossy(&sync.body).contains("only 1 of 2 workers confirmed"));
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        assert!(etag_matches(b"\"1\", W/\"7\"", "\"7\""));
        assert!(etag_matches(b"*", "\"7\""));
        assert!(!etag_matches(b"\"70\"", "\"7\""));
    }
}
