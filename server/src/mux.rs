//! One request connection to a node, shared by every caller: requests are
//! pipelined and answers matched by `req_id` (the protocol allows both, see
//! `net/WIRE.md` §5).
//!
//! Callers append their encoded request to a queue and wait for their
//! answer; one driver task per connection writes everything queued since its
//! last write in one `write`, and routes each answer it reads to its caller.
//! Under load many requests share each syscall and each wake-up of the node,
//! instead of every request paying a round trip of its own.
//!
//! The driver reads while it writes, so a node that is blocked writing large
//! answers never waits on an edge that is blocked writing large requests.

use crate::wire::{self, Reader, Writer};
use hypha_net::{ClusterKeys, Hello, Message, Sealer};
use smol::future::FutureExt as _;
use smol::stream::StreamExt as _;
use smol::Timer;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How long a request may wait for its answer (a worker's `min_seq` wait
/// included); checked every [`EXPIRY_TICK_MS`], so it fires up to that late.
pub const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// How often the driver looks for requests past [`REQUEST_TIMEOUT_MS`], while
/// any are outstanding.
const EXPIRY_TICK_MS: u64 = REQUEST_TIMEOUT_MS / 10;
/// A write buffer grown beyond this (large values) is given back after use.
const QUEUE_KEEP_BYTES_MAX: usize = 1 << 20;
/// Wake-ups of the driver without a read before it reads first.
const UNREAD_WAKES_MAX: u32 = 4;

const _: () = assert!(EXPIRY_TICK_MS > 0 && EXPIRY_TICK_MS < REQUEST_TIMEOUT_MS);

/// A multiplexed request connection to one node.
pub struct Mux {
    /// The node's role and term when it welcomed this connection (a failover
    /// member ends its connections when its role changes).
    pub welcome: (hypha_net::Role, u64),
    /// The seq the node said was committed when it welcomed this connection.
    pub commit_seq: u64,
    addr: SocketAddr,
    /// Set with `State::failed`, readable without the lock.
    failed: AtomicBool,
    state: Mutex<State>,
}

struct State {
    /// Encoded requests the driver has not taken yet.
    queue: Vec<u8>,
    /// Callers waiting for an answer, by `req_id`.
    calls: HashMap<u64, Call, BuildHasherDefault<ReqIdHasher>>,
    /// The driver, while it waits for work.
    driver: Option<Waker>,
    /// Why the connection is gone; every later call fails with it.
    failed: Option<(io::ErrorKind, String)>,
    /// Seals each request as it is queued: the queue goes out in order.
    sealer: Option<Sealer>,
}

/// Hashes a `req_id` with one multiplication: the edge's ids are
/// sequential and local, so they need spreading, not SipHash's defence
/// against chosen keys (SipHash was 3% of the edge's instructions).
#[derive(Default)]
struct ReqIdHasher(u64);

impl Hasher for ReqIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

struct Call {
    /// When the request was queued, plus the time the node may wait before
    /// answering by design (a watch's `wait_ms`): [`REQUEST_TIMEOUT_MS`]
    /// counts from here.
    since: Instant,
    waker: Option<Waker>,
    answer: Option<io::Result<Message>>,
}

impl Mux {
    /// Connects to `addr`, runs the handshake with `hello` and starts the
    /// driver (with [`rt::spawn`](crate::rt::spawn), on the callers' thread).
    /// Fails if the node does not answer `Welcome`.
    pub async fn connect(
        addr: SocketAddr,
        hello: Hello,
        keys: &ClusterKeys,
    ) -> io::Result<Arc<Mux>> {
        let (r, mut w, answer, _) = wire::connect(addr, hello, keys).await?;
        let (welcome, commit_seq) = match answer {
            Message::Welcome(w) => ((w.role, w.term), w.commit_seq),
            Message::Refuse(refuse) => return Err(wire::refusal(addr, &refuse)),
            other => {
                return Err(io::Error::other(format!(
                    "{addr} answered {} instead of Welcome",
                    other.name()
                )))
            }
        };
        let sealer = w.take_sealer();
        let mux = Arc::new(Mux {
            addr,
            welcome,
            commit_seq,
            failed: AtomicBool::new(false),
            state: Mutex::new(State {
                queue: Vec::new(),
                calls: HashMap::default(),
                driver: None,
                failed: None,
                sealer,
            }),
        });
        let driven = mux.clone();
        let driver = async move {
            let why = driven.drive(r, w).await;
            log::debug!("edge: connection to {} ended: {why}", driven.addr);
            driven.fail(why);
        };
        crate::rt::spawn(driver).detach();
        Ok(mux)
    }

    /// Whether the connection is gone (callers should connect anew).
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Closes the connection: waiting and later calls fail, the driver stops.
    pub fn close(&self) {
        self.fail(io::Error::other("closed by the edge"));
    }

    /// Sends `m` (a request with a `req_id` unique on this connection) and
    /// waits for its answer, at most [`REQUEST_TIMEOUT_MS`].
    pub async fn call(&self, m: &Message) -> io::Result<Message> {
        let req_id = m
            .req_id()
            .ok_or_else(|| io::Error::other(format!("{} is not a request", m.name())))?;
        let driver = {
            let mut state = self.lock();
            if let Some((kind, why)) = &state.failed {
                return Err(io::Error::new(*kind, why.clone()));
            }
            if state.calls.contains_key(&req_id) {
                return Err(io::Error::other(format!(
                    "req_id {req_id} is in flight already"
                )));
            }
            let was_empty = state.queue.is_empty();
            let state = &mut *state;
            wire::encode_sealed(m, state.sealer.as_mut(), &mut state.queue)?;
            let call = Call {
                since: Instant::now() + answer_wait(m),
                waker: None,
                answer: None,
            };
            state.calls.insert(req_id, call);
            // The driver has been woken already if the queue held something.
            if was_empty {
                state.driver.take()
            } else {
                None
            }
        };
        if let Some(driver) = driver {
            driver.wake();
        }
        Answer {
            mux: self,
            req_id,
            done: false,
        }
        .await
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails every waiting call and every later one with `why`.
    fn fail(&self, why: io::Error) {
        let mut wakers: Vec<Waker> = Vec::new();
        {
            let mut state = self.lock();
            if state.failed.is_some() {
                return;
            }
            let message = format!("connection to {} lost: {why}", self.addr);
            state.failed = Some((why.kind(), message.clone()));
            self.failed.store(true, Ordering::Release);
            state.queue = Vec::new();
            wakers.extend(state.driver.take());
            for call in state.calls.values_mut() {
                if call.answer.is_none() {
                    call.answer = Some(Err(io::Error::new(why.kind(), message.clone())));
                    wakers.extend(call.waker.take());
                }
            }
        }
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Writes queued requests and routes answers until the connection fails
    /// or is closed; returns why it ended.
    async fn drive(&self, mut r: Reader, mut w: Writer) -> io::Error {
        enum Woke {
            Work,
            Wrote(usize),
            Read(bool),
            Tick,
        }
        // Bytes being written, and how many of them are out already.
        let (mut sending, mut sent) = (Vec::new(), 0);
        let mut answers = Vec::new();
        let mut tick = Timer::never();
        let mut ticking = false;
        // Wake-ups since the last read; reading goes first past a few, so a
        // steady stream of new requests cannot starve the answers.
        let mut unread = 0;
        loop {
            let writing = sent < sending.len();
            // Each branch is cancel-safe: its write or read happens in the
            // poll that returns Ready, or not at all.
            let work = async {
                match writing {
                    true => std::future::pending().await,
                    false => self.work().await.map(|()| Woke::Work),
                }
            };
            let write = async {
                match writing {
                    true => w.write_some(&sending[sent..]).await.map(Woke::Wrote),
                    false => std::future::pending().await,
                }
            };
            let read = async { r.fill().await.map(Woke::Read) };
            let expire = async {
                tick.next().await;
                Ok(Woke::Tick)
            };
            let woke = if unread < UNREAD_WAKES_MAX {
                work.or(write).or(read).or(expire).await
            } else {
                read.or(work).or(write).or(expire).await
            };
            let woke = match woke {
                Ok(woke) => woke,
                Err(e) => return e,
            };
            unread += 1;
            match woke {
                Woke::Work => {
                    let mut state = self.lock();
                    std::mem::swap(&mut state.queue, &mut sending);
                    drop(state);
                    if !ticking {
                        ticking = true;
                        tick.set_interval(Duration::from_millis(EXPIRY_TICK_MS));
                    }
                }
                Woke::Wrote(0) => return io::ErrorKind::WriteZero.into(),
                Woke::Wrote(n) => {
                    sent += n;
                    if sent == sending.len() {
                        sent = 0;
                        sending.clear();
                        if sending.capacity() > QUEUE_KEEP_BYTES_MAX {
                            sending = Vec::new();
                        }
                    }
                }
                Woke::Read(false) => {
                    return io::Error::new(io::ErrorKind::UnexpectedEof, "the node closed it")
                }
                Woke::Read(true) => {
                    unread = 0;
                    loop {
                        match r.try_recv() {
                            Ok(Some(m)) => answers.push(m),
                            Ok(None) => break,
                            Err(e) => return e,
                        }
                    }
                    if let Err(e) = self.route(&mut answers) {
                        return e;
                    }
                }
                Woke::Tick => {
                    if !self.expire() && !writing {
                        ticking = false;
                        tick = Timer::never();
                    }
                }
            }
        }
    }

    /// Waits until requests are queued; fails once the mux is closed.
    async fn work(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            let mut state = self.lock();
            if let Some((kind, why)) = &state.failed {
                return Poll::Ready(Err(io::Error::new(*kind, why.clone())));
            }
            if state.queue.is_empty() {
                state.driver = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Hands each answer to its caller. An answer nobody waits for (its
    /// caller gave up) is dropped.
    fn route(&self, answers: &mut Vec<Message>) -> io::Result<()> {
        let mut wakers = Vec::with_capacity(answers.len());
        let mut unexpected = None;
        {
            let mut state = self.lock();
            for m in answers.drain(..) {
                let Some(req_id) = m.req_id() else {
                    unexpected = Some(m.name());
                    break;
                };
                if let Some(call) = state.calls.get_mut(&req_id) {
                    call.answer = Some(Ok(m));
                    wakers.extend(call.waker.take());
                }
            }
        }
        wakers.into_iter().for_each(Waker::wake);
        match unexpected {
            Some(name) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the node sent {name}, which answers no request"),
            )),
            None => Ok(()),
        }
    }

    /// How long the oldest call still without an answer has waited (zero
    /// when none waits).
    pub fn oldest_wait(&self) -> Duration {
        let state = self.lock();
        let now = Instant::now();
        let waiting = state.calls.values().filter(|c| c.answer.is_none());
        let waited = waiting.map(|c| now.saturating_duration_since(c.since));
        waited.max().unwrap_or_default()
    }

    /// Fails the calls waiting longer than [`REQUEST_TIMEOUT_MS`]; returns
    /// whether any call is still waiting. A call that got no answer in that
    /// time means the connection is stuck (a partition leaves TCP
    /// retransmitting with long backoffs), so the whole connection is failed
    /// and the next call connects anew.
    fn expire(&self) -> bool {
        let (timeout, now) = (Duration::from_millis(REQUEST_TIMEOUT_MS), Instant::now());
        let stuck = {
            let state = self.lock();
            state.calls.values().any(|call| {
                call.answer.is_none() && now.saturating_duration_since(call.since) >= timeout
            })
        };
        if stuck {
            self.fail(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {REQUEST_TIMEOUT_MS} ms"),
            ));
            return false;
        }
        !self.lock().calls.is_empty()
    }
}

/// How long a node may take to answer `m` by design, before
/// [`REQUEST_TIMEOUT_MS`] starts: a watch waits up to its `wait_ms` for a
/// change.
fn answer_wait(m: &Message) -> Duration {
    match m {
        Message::Watch { wait_ms, .. } => Duration::from_millis(u64::from(*wait_ms)),
        _ => Duration::ZERO,
    }
}

/// The answer to one call; dropping it forgets the call.
struct Answer<'a> {
    mux: &'a Mux,
    req_id: u64,
    done: bool,
}

impl Future for Answer<'_> {
    type Output = io::Result<Message>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mux = self.mux;
        let mut state = mux.lock();
        let Some(call) = state.calls.get_mut(&self.req_id) else {
            return Poll::Ready(Err(io::Error::other("the call was forgotten")));
        };
        if call.answer.is_none() {
            match &call.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => call.waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        let call = state.calls.remove(&self.req_id);
        drop(state);
        self.done = true;
        let answer = call.and_then(|c| c.answer);
        Poll::Ready(answer.unwrap_or_else(|| Err(io::Error::other("no answer"))))
    }
}

impl Drop for Answer<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.mux.lock().calls.remove(&self.req_id);
        }
    }
}
