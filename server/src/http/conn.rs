//! Connections on smol: the accept loop, one task per connection, timeouts,
//! the connection cap and graceful shutdown.
//!
//! A connection is a loop of: wait for a head (idle timeout between requests,
//! head timeout once a request has started), admit it, send `100 Continue` if
//! asked, read the body (body timeout per read), answer. Pipelined requests
//! are answered in order because one task serves one connection sequentially.
//! Anything a client does wrong ends its own task only.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::channel::Sender;
use smol::future::FutureExt as _;
use smol::net::TcpListener;
use smol::{Executor, Timer};

use crate::http::backend::Backend;
use crate::http::body::Body;
use crate::http::budget::{AddrSlot, Budget, PerAddr, Reserved};
use crate::http::config::{
    HttpConfig, ACCEPT_RETRY_MS, BODY_BUDGET_STEP_BYTES, BUDGET_RETRY_AFTER_SECS,
    COALESCE_BODY_BYTES_MAX, LINGER_TIMEOUT_MS, REFUSALS_INFLIGHT_MAX, REFUSAL_TIMEOUT_MS,
    RESPONSE_UNCOUNTED_BYTES_MAX,
};
use crate::http::deadline::Watches;
use crate::http::inbuf::InBuf;
use crate::http::metrics::RouteId;
use crate::http::request::{parse_head, BodyFraming, Head, Method, Status};
use crate::http::response::{Response, CONTINUE_100};
use crate::http::router::Router;
use crate::http::routes::Route;
use crate::http::socket::{linger_close, write_all, Link, Read, Socket};
use crate::http::watch::WATCH_STALL_MS;

struct Shared<B> {
    router: Router<B>,
    config: HttpConfig,
    /// Every connection's deadline, and the shutdown flag.
    watches: Watches,
    /// Refusals being written now, against [`REFUSALS_INFLIGHT_MAX`].
    refusing: AtomicUsize,
    /// Body bytes held, against `body_budget_bytes`.
    budget: Budget,
    /// Connections per client address.
    per_addr: Arc<PerAddr>,
}

/// Serves HTTP on `listener` until `shutdown` completes, then stops accepting,
/// lets in-flight requests finish (idle connections close at once, busy ones
/// after their current response) and returns.
///
/// Connection tasks run on an executor owned by this future, so whoever polls
/// it (e.g. `smol::block_on(serve(..))`) drives every connection; backend
/// futures must not block.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    backend: Arc<B>,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send,
) {
    serve_on(listener, backend, config, shutdown, None).await;
}

/// As [`serve`], with the connection tasks on `connections` (the executor
/// of the thread that polls this future, typically): a woken connection is
/// then queued once, not on an inner executor and then on the outer one.
pub async fn serve_on<B: Backend>(
    listener: TcpListener,
    backend: Arc<B>,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send,
    connections: Option<Arc<Executor<'static>>>,
) {
    // Every task holds a clone of `done`; `finished` yields once all are dropped.
    let (done, finished) = smol::channel::bounded::<()>(1);
    let shortest_ms = config
        .head_timeout_ms
        .min(config.idle_timeout_ms)
        .min(config.body_timeout_ms)
        .min(LINGER_TIMEOUT_MS)
        .min(REFUSAL_TIMEOUT_MS);
    let shared = Arc::new(Shared {
        router: Router::new(backend, &config),
        budget: Budget::new(config.body_budget_bytes),
        per_addr: Arc::new(PerAddr::new(config.connections_per_addr_max)),
        config,
        watches: Watches::new(shortest_ms),
        refusing: AtomicUsize::new(0),
    });
    let executor = Arc::new(Executor::new());
    let connections = connections.unwrap_or_else(|| executor.clone());
    let sweeper = shared.clone();
    executor
        .run(async {
            let _sweeper = executor.spawn(async move { sweeper.watches.sweep().await });
            accept_loop(&executor, &connections, &shared, &listener, &done)
                .or(shutdown)
                .await;
            log::info!("http: shutting down; waiting for open connections to finish");
            shared.watches.stop();
            drop((listener, done));
            let _ = finished.recv().await;
        })
        .await;
}

async fn accept_loop<B: Backend>(
    tasks: &Executor<'static>,
    connections: &Executor<'static>,
    shared: &Arc<Shared<B>>,
    listener: &TcpListener,
    done: &Sender<()>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                log::warn!("http: accept failed: {error}; retrying");
                Timer::after(Duration::from_millis(ACCEPT_RETRY_MS)).await;
                continue;
            }
        };
        let done = done.clone();
        let metrics = shared.router.metrics();
        // Only this loop increments, so checking then incrementing cannot overshoot.
        let max = shared.config.connections_max;
        let over = if metrics.connections_open.load(Ordering::Relaxed) >= max {
            Err(format!(
                "the server has {max} connections open (--http-connections); retry later"
            ))
        } else {
            shared.per_addr.admit(peer.ip()).ok_or_else(|| {
                let max = shared.per_addr.max();
                format!(
                    "{} (its address, or its /64) holds {max} connections already \
                     (--connections-per-addr); close some or retry later",
                    peer.ip()
                )
            })
        };
        let slot: AddrSlot = match over {
            Ok(slot) => slot,
            Err(message) => {
                metrics.record_refused();
                let refusing = Held::new(shared, |s| &s.refusing);
                if refusing.before < REFUSALS_INFLIGHT_MAX {
                    let shared = shared.clone();
                    let stream = Socket::new(stream);
                    tasks
                        .spawn(
                            async move { refuse(&shared, stream, message, refusing, done).await },
                        )
                        .detach();
                }
                continue;
            }
        };
        let open = Held::new(shared, |s| &s.router.metrics().connections_open);
        let shared = shared.clone();
        connections
            .spawn(async move {
                let _held = (open, slot, done);
                let shared = &*shared;
                let mut connection = Connection {
                    shared,
                    link: Link {
                        stream: Socket::new(stream),
                        watch: shared.watches.register(),
                        buf: InBuf::default(),
                    },
                    out: Vec::new(),
                };
                if let Err(error) = connection.run().await {
                    log::debug!("http: connection from {peer} ended: {error}");
                }
            })
            .detach();
    }
}

/// Increments one of a server's counters now and decrements it when
/// dropped (also on panic).
struct Held<B> {
    shared: Arc<Shared<B>>,
    counter: fn(&Shared<B>) -> &AtomicUsize,
    before: usize,
}

impl<B> Held<B> {
    fn new(shared: &Arc<Shared<B>>, counter: fn(&Shared<B>) -> &AtomicUsize) -> Self {
        Held {
            before: counter(shared).fetch_add(1, Ordering::Relaxed),
            shared: shared.clone(),
            counter,
        }
    }
}

impl<B> Drop for Held<B> {
    fn drop(&mut self) {
        (self.counter)(&self.shared).fetch_sub(1, Ordering::Relaxed);
    }
}

async fn refuse<B>(
    shared: &Shared<B>,
    mut stream: Socket,
    message: String,
    _refusing: Held<B>,
    _done: Sender<()>,
) {
    let response = Response::error(503, message)
        .header("Retry-After", "1")
        .closing();
    let mut bytes = response.encode_head(false);
    bytes.extend_from_slice(&response.body);
    let stall = Duration::from_millis(REFUSAL_TIMEOUT_MS);
    let watch = shared.watches.register();
    if write_all(&watch, &mut stream, &bytes, stall).await.is_ok() {
        linger_close(&watch, &mut stream).await;
    }
}

/// A response, its metrics label and the budget its body holds.
type Answer<'s> = (RouteId, Response, Option<Reserved<'s>>);

struct Connection<'s, B> {
    shared: &'s Shared<B>,
    link: Link<'s>,
    /// The response being written, kept between responses.
    out: Vec<u8>,
}

impl<'s, B: Backend> Connection<'s, B> {
    async fn run(&mut self) -> io::Result<()> {
        let _ = self.link.stream.inner.get_ref().set_nodelay(true);
        let mut first = true;
        while let Some(head) = self.read_head(first).await? {
            first = false;
            if !self.exchange(head).await? {
                break;
            }
            if self.link.buf.is_empty() {
                // The client has only just been sent its answer: let the
                // other connections run first, so the next read is more
                // likely to find the next request than to fail and wait.
                smol::future::yield_now().await;
            }
        }
        Ok(())
    }

    /// The next head, or `None` when the connection is done (EOF, timeout,
    /// shutdown while idle, or a malformed head that was answered).
    async fn read_head(&mut self, first: bool) -> io::Result<Option<Head>> {
        let config = &self.shared.config;
        let now = Instant::now();
        let head_timeout = Duration::from_millis(config.head_timeout_ms);
        let mut head_deadline = (first || !self.link.buf.is_empty()).then(|| now + head_timeout);
        let idle_deadline = now + Duration::from_millis(config.idle_timeout_ms);
        loop {
            match parse_head(self.link.buf.data()) {
                Ok(Status::Complete(head)) => {
                    self.link.buf.consume(head.len);
                    return Ok(Some(head));
                }
                Ok(Status::Partial) => {}
                Err(error) => {
                    let response = Response::error(error.status(), error.to_string()).closing();
                    self.respond(RouteId::Invalid, now, response, false, false)
                        .await?;
                    return Ok(None);
                }
            }
            // No byte of a request yet: shutdown may close the connection.
            let idle = self.link.buf.is_empty();
            match self
                .link
                .read_more(head_deadline.unwrap_or(idle_deadline), idle)
                .await?
            {
                Read::Data => {
                    head_deadline.get_or_insert_with(|| Instant::now() + head_timeout);
                }
                Read::Eof | Read::Stopped => return Ok(None),
                Read::TimedOut if idle => return Ok(None),
                Read::TimedOut => {
                    let ms = config.head_timeout_ms;
                    let message =
                        format!("the request head did not arrive within {ms} ms (head_timeout_ms)");
                    self.respond(
                        RouteId::Invalid,
                        now,
                        Response::error(408, message).closing(),
                        false,
                        false,
                    )
                    .await?;
                    return Ok(None);
                }
            }
        }
    }

    /// Serves one request; true when the connection stays open.
    async fn exchange(&mut self, head: Head) -> io::Result<bool> {
        if head.method == Method::Get && head.path().starts_with("/watch/") {
            if let Some(open) = self.watch(&head).await? {
                return Ok(open);
            }
        }
        let started = Instant::now();
        let Some((route_id, response, _held)) = self.serve(&head).await? else {
            return Ok(false);
        };
        let close = response.close || !head.keep_alive || self.shared.watches.stopping();
        let response = if close { response.closing() } else { response };
        let head_only = head.method == Method::Head;
        let http10_keep_alive = head.minor_version == 0;
        self.respond(route_id, started, response, head_only, http10_keep_alive)
            .await?;
        Ok(!close)
    }

    /// The response to `head` (and the budget its body holds while it is
    /// written), or `None` if the client left mid-body.
    async fn serve(&mut self, head: &Head) -> io::Result<Option<Answer<'s>>> {
        let shared = self.shared;
        let router = &shared.router;
        let admitted = match router.admit(head) {
            Ok(admitted) => admitted,
            // The body stays unread, so the connection cannot carry another request.
            Err((route_id, response)) if head.has_body() => {
                return Ok(Some((route_id, response.closing(), None)))
            }
            Err((route_id, response)) => return Ok(Some((route_id, response, None))),
        };
        let route_id = admitted.route_id;
        let first = match head.body {
            BodyFraming::Length(len) => usize::try_from(len).unwrap_or(usize::MAX),
            BodyFraming::Chunked => BODY_BUDGET_STEP_BYTES.min(admitted.body_bytes_max),
            BodyFraming::Empty => 0,
        };
        let Some(mut reserved) = shared.budget.reserve(first) else {
            // Unread body: the connection closes after the answer.
            return Ok(Some((route_id, self.over_budget().closing(), None)));
        };
        // RFC 9110 10.1.1: no need for 100 once body bytes have arrived.
        if head.expect_continue && head.has_body() && self.link.buf.is_empty() {
            let stall = Duration::from_millis(shared.config.body_timeout_ms);
            write_all(&self.link.watch, &mut self.link.stream, CONTINUE_100, stall).await?;
        }
        let body = self
            .link
            .read_body(
                head.body,
                admitted.body_bytes_max,
                &mut reserved,
                &shared.config,
            )
            .await?;
        let response = match body {
            Body::Complete(body) => router.handle(head, admitted, body).await,
            Body::TooLarge => router.body_too_large(&admitted, None),
            Body::OverBudget => self.over_budget().closing(),
            Body::Malformed(error) => Response::error(error.status(), error.to_string()).closing(),
            Body::TimedOut => {
                let (ms, total) = (
                    shared.config.body_timeout_ms,
                    shared.config.body_total_timeout_ms,
                );
                let message = format!(
                    "the body stalled for {ms} ms (body_timeout_ms) or took over {total} ms \
                     in all (body_total_timeout_ms)"
                );
                Response::error(408, message).closing()
            }
            Body::Eof => return Ok(None),
        };
        drop(reserved);
        if response.body.len() <= RESPONSE_UNCOUNTED_BYTES_MAX {
            return Ok(Some((route_id, response, None)));
        }
        match shared.budget.reserve(response.body.len()) {
            Some(held) => Ok(Some((route_id, response, Some(held)))),
            None => Ok(Some((route_id, self.over_budget(), None))),
        }
    }

    /// Streams a watch (`http/watch.rs`) until it ends, the client stops
    /// reading for `WATCH_STALL_MS` or the server shuts down; `None` if the
    /// request is not one the router admits as a watch (answered as usual).
    async fn watch(&mut self, head: &Head) -> io::Result<Option<bool>> {
        let router = &self.shared.router;
        let Ok(admitted) = router.admit(head) else {
            return Ok(None);
        };
        let Route::Watch(prefix) = admitted.route.clone() else {
            return Ok(None);
        };
        let (started, route_id) = (Instant::now(), admitted.route_id);
        let ask = crate::http::watch::ask(head, prefix, &admitted.query);
        let started_watch = match ask {
            Ok(ask) => router.watch_start(ask).await,
            Err(refused) => Err(refused),
        };
        let (response, mut stream) = match started_watch {
            Ok(started_watch) => started_watch,
            Err(refused) => {
                let open = !refused.close && head.keep_alive && !head.has_body();
                let refused = if open { refused } else { refused.closing() };
                self.respond(route_id, started, refused, false, false)
                    .await?;
                return Ok(Some(open));
            }
        };
        let metrics = router.metrics();
        metrics.record(route_id, response.status, started.elapsed());
        metrics.watchers.fetch_add(1, Ordering::Relaxed);
        // The connection ends with the stream: nothing more is read.
        self.link.buf.release();
        let stall = Duration::from_millis(WATCH_STALL_MS);
        let link = &mut self.link;
        let (mut out, mut events) = (response.encode_head(false), 0);
        loop {
            if !out.is_empty() {
                if write_all(&link.watch, &mut link.stream, &out, stall)
                    .await
                    .is_err()
                {
                    metrics.watch_dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                metrics
                    .watch_events
                    .fetch_add(events as u64, Ordering::Relaxed);
            }
            // Shutdown ends the wait for the next page (stoppable); so does
            // the client going away, seen at once rather than at the next
            // write (a keep-alive is up to 15 s off, and until then the
            // stream would go on asking a worker for pages).
            let until = Instant::now() + Duration::from_secs(3600);
            let hangup = async {
                let mut scrap = [0u8; 64];
                // Nothing is read after a watch request: stray bytes are
                // dropped, the end of the client's side ends the stream.
                while let Ok(1..) = link.stream.read(&mut scrap).await {}
                None
            };
            match link.watch.by(until, true, stream.next().or(hangup)).await {
                Ok(Some(bytes)) => (out, events) = (bytes, stream.events()),
                Ok(None) | Err(_) => break,
            }
        }
        metrics.watchers.fetch_sub(1, Ordering::Relaxed);
        linger_close(&link.watch, &mut link.stream).await;
        Ok(Some(false))
    }

    /// The 503 for a request whose body, or answer, does not fit the budget.
    fn over_budget(&self) -> Response {
        let max = self.shared.budget.max();
        let message = format!(
            "the server holds {max} bytes of request and response bodies already \
             (--body-budget-mb); retry in a moment"
        );
        Response::error(503, message).header("Retry-After", BUDGET_RETRY_AFTER_SECS.to_string())
    }

    /// Writes `response`, counts it, and lingers before closing if it closes.
    async fn respond(
        &mut self,
        route_id: RouteId,
        started: Instant,
        response: Response,
        head_only: bool,
        http10_keep_alive: bool,
    ) -> io::Result<()> {
        self.shared
            .router
            .metrics()
            .record(route_id, response.status, started.elapsed());
        let stall = Duration::from_millis(self.shared.config.body_timeout_ms);
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        response.encode_head_into(http10_keep_alive && !response.close, &mut out);
        let body = !head_only && response.allows_body();
        if body && response.body.len() <= COALESCE_BODY_BYTES_MAX {
            // One write, one segment: head and a small body together.
            out.extend_from_slice(&response.body);
            write_all(&self.link.watch, &mut self.link.stream, &out, stall).await?;
        } else {
            write_all(&self.link.watch, &mut self.link.stream, &out, stall).await?;
            if body {
                write_all(
                    &self.link.watch,
                    &mut self.link.stream,
                    &response.body,
                    stall,
                )
                .await?;
            }
        }
        if out.capacity() <= COALESCE_BODY_BYTES_MAX * 2 {
            // Kept for the next response; a rare large one is let go.
            self.out = out;
        }
        if response.close {
            linger_close(&self.link.watch, &mut self.link.stream).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::mem::MemBackend;

    /// Compile-time check: `serve` can be handed to a multi-threaded executor.
    #[allow(dead_code)]
    fn serve_future_is_send(listener: TcpListener) {
        fn send<T: Send>(_: T) {}
        send(serve(
            listener,
            Arc::new(MemBackend::new()),
            HttpConfig::default(),
            async {},
        ));
    }

    #[test]
    fn held_guard_restores_the_count_on_drop() {
        let config = HttpConfig::default();
        let shared = Arc::new(Shared {
            router: Router::new(Arc::new(MemBackend::new()), &config),
            budget: Budget::new(config.body_budget_bytes),
            per_addr: Arc::new(PerAddr::new(config.connections_per_addr_max)),
            config,
            watches: Watches::new(1_000),
            refusing: AtomicUsize::new(3),
        });
        let guard = Held::new(&shared, |s| &s.refusing);
        assert_eq!(
            (guard.before, shared.refusing.load(Ordering::Relaxed)),
            (3, 4)
        );
        drop(guard);
        assert_eq!(shared.refusing.load(Ordering::Relaxed), 3);
    }
}
