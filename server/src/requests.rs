//! Answers to the edge's read requests, shared by master and worker: get,
//! history, scan, digest, status against a local [`Db`].

use crate::http::deadline::Watches;
use crate::wire::{Reader, Writer};
use hypha_engine::{Db, Error};
use hypha_net::{
    CompactInfo, ErrorCode, Message, NodeStatus, Role, Version, HISTORY_DEPTH_MAX, SCAN_LIMIT_MAX,
};
use smol::future::FutureExt as _;
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, Instant};

/// How long a read "at seq ≥ S" waits for this node to apply S.
pub const MIN_SEQ_WAIT_MS: u64 = 1_000;

/// Maps an engine error to the wire's error code.
pub fn error_message(req_id: u64, e: &Error) -> Message {
    let code = match e {
        Error::KeyTooLong { .. } | Error::ValueTooLong { .. } | Error::RecordTooLarge { .. } => {
            ErrorCode::TooLarge
        }
        Error::ReadOnly { .. }
        | Error::Full { .. }
        | Error::DiskFull { .. }
        | Error::CompactionNeedsSpace { .. } => ErrorCode::ReadOnly,
        _ => ErrorCode::Internal,
    };
    Message::error(req_id, code, &e.to_string())
}

/// Identity of the node answering.
#[derive(Clone, Copy, Debug)]
pub struct Me {
    /// Master or worker.
    pub role: Role,
    /// Its node id.
    pub node_id: u64,
    /// The history it holds (master: its own; worker: the one it follows).
    pub history_id: u64,
}

/// The read request's `min_seq`, if it has one.
pub fn min_seq(m: &Message) -> Option<u64> {
    match m {
        Message::Get { min_seq, .. }
        | Message::History { min_seq, .. }
        | Message::Scan { min_seq, .. } => Some(*min_seq),
        _ => None,
    }
}

/// The shortest wait [`wait_until`] is built for; its deadlines are checked
/// every tenth of it, so one fires up to 50 ms late (the waits are
/// `MIN_SEQ_WAIT_MS` and `--sync-timeout-ms`, seconds by default).
pub const WAIT_MS_SHORTEST: u64 = 500;

/// The deadlines of every [`wait_until`] in this process, on the edge's
/// mechanism: one sweeper instead of a timer per wait. Creating an async-io
/// timer interrupts the reactor (an eventfd write and a spurious wake-up),
/// and a timer per `--sync N` write or waiting `min_seq` read put that on
/// the path of every one of them.
fn wait_deadlines() -> &'static Watches {
    static WATCHES: OnceLock<Watches> = OnceLock::new();
    static SWEEPER: Once = Once::new();
    let watches = WATCHES.get_or_init(|| Watches::new(WAIT_MS_SHORTEST));
    SWEEPER.call_once(|| crate::rt::spawn(watches.sweep()).detach());
    watches
}

/// Waits until `done()` holds, re-checking whenever `event` is notified,
/// until `deadline`; returns the last answer of `done()`.
pub async fn wait_until(
    event: &event_listener::Event,
    deadline: Instant,
    done: impl Fn() -> bool,
) -> bool {
    if done() {
        return true;
    }
    let watch = wait_deadlines().register();
    let waited = watch
        .by(deadline, false, async {
            loop {
                // Listen before checking, so a notification in between is
                // not lost.
                let listener = event.listen();
                if done() {
                    return;
                }
                listener.await;
            }
        })
        .await;
    waited.is_ok() || done()
}

/// Waits until `applied_enough()` holds (or `MIN_SEQ_WAIT_MS` passed);
/// `applied` is notified after every apply.
pub async fn wait_applied(
    applied: &event_listener::Event,
    applied_enough: impl Fn() -> bool,
) -> bool {
    let deadline = Instant::now() + Duration::from_millis(MIN_SEQ_WAIT_MS);
    wait_until(applied, deadline, applied_enough).await
}

/// Most bytes of answers gathered before they are written out, so a burst
/// of pipelined reads with large values does not pile up in memory.
pub const REPLY_BATCH_BYTES_MAX: usize = 256 << 10;

/// How a node answers one request.
pub enum Answer<F> {
    /// Answered without waiting; goes out in the next batched write.
    Now(Message),
    /// A write answered without waiting. Before its answer goes out, the
    /// tasks the write woke (the master's log senders) get to run, so the
    /// record is on its way to the workers before the client hears the ack
    /// and turns to a worker to read it.
    Wrote(Message),
    /// Must wait (an fdatasync, workers' acks, a `min_seq` not applied yet):
    /// runs in its own task so it does not hold up the requests behind it.
    Later(F),
}

/// Serves the requests of one connection. Every request already received is
/// answered before the next read and those answers go out in one write, so a
/// peer that pipelines pays a few syscalls per batch, not per request.
/// Answers that must wait run in their own task and are written as they
/// complete; replies are matched by `req_id`, not by order. Returns once the
/// peer closed and every waiting answer was sent.
pub async fn serve_requests<F, Fut>(
    mut r: Reader,
    mut w: Writer,
    who: &'static str,
    idle_ms: u64,
    answer: F,
) -> std::io::Result<()>
where
    F: Fn(Message) -> Answer<Fut>,
    Fut: std::future::Future<Output = Message> + Send + 'static,
{
    enum Woke {
        Read(bool),
        Late(Message),
        Tick,
    }
    // One periodic timer per connection, not one per read: the idle check
    // costs nothing on the request path.
    let mut tick = smol::Timer::interval(Duration::from_millis((idle_ms / 2).max(1)));
    let mut heard = Instant::now();
    let (late_send, late) = smol::channel::unbounded::<Message>();
    let mut out = Vec::new();
    // Answers running in their own task and not written yet.
    let mut waiting = 0usize;
    let mut open = true;
    // An answer in `out` acknowledges a write (see `Answer::Wrote`).
    let mut wrote = false;
    loop {
        if open {
            let (spawned, acked) =
                answer_received(&mut r, &mut w, who, &answer, &mut out, &late_send)?;
            waiting += spawned;
            wrote |= acked;
        }
        while let Ok(reply) = late.try_recv() {
            waiting -= 1;
            encode_reply(&mut w, &reply, &mut out, who);
        }
        if !out.is_empty() {
            if std::mem::take(&mut wrote) {
                // Tasks woken so far are queued ahead of this one.
                smol::future::yield_now().await;
            }
            w.send_encoded(&out).await?;
            out.clear();
            if out.capacity() > REPLY_BATCH_BYTES_MAX {
                out = Vec::new();
            }
            // More may have been received already (the batch was full).
            continue;
        }
        if !open && waiting == 0 {
            return Ok(());
        }
        // `late_send` lives here, so `recv` never fails.
        let late_reply = async {
            late.recv()
                .await
                .map(Woke::Late)
                .map_err(std::io::Error::other)
        };
        let idle = async {
            smol::stream::StreamExt::next(&mut tick).await;
            Ok(Woke::Tick)
        };
        let woke = if open {
            let read = async { r.fill().await.map(Woke::Read) };
            read.or(late_reply).or(idle).await?
        } else {
            late_reply.await?
        };
        match woke {
            Woke::Read(more) => {
                open = more;
                heard = Instant::now();
            }
            Woke::Tick => {
                if waiting == 0 && heard.elapsed() > Duration::from_millis(idle_ms) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("idle for {idle_ms} ms (--idle-timeout-ms); closed"),
                    ));
                }
            }
            Woke::Late(reply) => {
                waiting -= 1;
                encode_reply(&mut w, &reply, &mut out, who);
            }
        }
    }
}

/// Answers the requests already received, until none is left or `out`
/// holds `REPLY_BATCH_BYTES_MAX` bytes: ready answers are appended to `out`,
/// answers that must wait run in their own task and arrive on `late_send`.
/// Returns how many went to a task, and whether an answer in `out`
/// acknowledges a write.
fn answer_received<F, Fut>(
    r: &mut Reader,
    w: &mut Writer,
    who: &str,
    answer: &F,
    out: &mut Vec<u8>,
    late_send: &smol::channel::Sender<Message>,
) -> std::io::Result<(usize, bool)>
where
    F: Fn(Message) -> Answer<Fut>,
    Fut: std::future::Future<Output = Message> + Send + 'static,
{
    let (mut spawned, mut wrote) = (0, false);
    while out.len() < REPLY_BATCH_BYTES_MAX {
        let Some(m) = r.try_recv()? else { break };
        match answer(m) {
            Answer::Now(reply) => encode_reply(w, &reply, out, who),
            Answer::Wrote(reply) => {
                wrote = true;
                encode_reply(w, &reply, out, who);
            }
            Answer::Later(reply) => {
                spawned += 1;
                let late_send = late_send.clone();
                crate::rt::spawn(async move {
                    // Fails only once this connection is gone.
                    let _ = late_send.send(reply.await).await;
                })
                .detach();
            }
        }
    }
    Ok((spawned, wrote))
}

/// Appends `reply` to `out`; one that cannot be encoded becomes an error
/// answer, so the requester is not left waiting.
fn encode_reply(w: &mut Writer, reply: &Message, out: &mut Vec<u8>, who: &str) {
    if let Err(e) = w.encode(reply, out) {
        log::warn!("{who}: cannot encode a {} answer: {e}", reply.name());
        let req_id = reply.req_id().unwrap_or(0);
        let error = Message::error(
            req_id,
            ErrorCode::Internal,
            &format!("answer not sent: {e}"),
        );
        if let Err(e) = w.encode(&error, out) {
            log::warn!("{who}: reply lost: {e}");
        }
    }
}

/// The node's compaction counters.
pub fn compact_info(db: &Db, expired: u64) -> CompactInfo {
    let s = db.stats();
    let (done, total) = s.compacting.unwrap_or((0, 0));
    let last = s.last_compaction.unwrap_or_default();
    CompactInfo {
        compactions: s.compactions,
        running_done_bytes: done,
        running_total_bytes: total,
        data_bytes: s.data_bytes,
        live_bytes: s.live_bytes,
        disk_bytes: s.disk_bytes,
        last_bytes_before: last.bytes_before,
        last_bytes_after: last.bytes_after,
        last_millis: last.millis,
        expired,
    }
}

/// Answers `Compact`: compacts first if asked (on the blocking pool; it
/// takes seconds on a large store), then reports the counters (`expired`:
/// the keys this node expired as master).
pub async fn answer_compact(db: Arc<Db>, req_id: u64, run: bool, expired: u64) -> Message {
    if run {
        let db2 = db.clone();
        if let Err(e) = smol::unblock(move || db2.compact()).await {
            return error_message(req_id, &e);
        }
    }
    Message::CompactIs {
        req_id,
        info: compact_info(&db, expired),
    }
}

/// This node's wall clock, ms since the Unix epoch (0 before 1970).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// When this binary was built, ms since the Unix epoch (`build.rs`).
pub const BUILD_UNIX_MS: u64 = parse_ms(env!("HYPHA_BUILD_UNIX_MS"));

const fn parse_ms(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let (mut i, mut n) = (0, 0u64);
    while i < bytes.len() {
        n = n * 10 + (bytes[i] - b'0') as u64;
        i += 1;
    }
    n
}

/// Whether a read at `now_ms` (this node's clock) hides a key whose live
/// version has `deadline_ms`: it is due, and the clock is plausible (not
/// before this binary was built: a router without a real-time clock boots
/// in 1970, and would otherwise keep nothing or everything). The master's
/// expiry delete follows within milliseconds; this covers the gap and
/// workers whose log is behind.
pub fn expired(deadline_ms: u64, now_ms: u64) -> bool {
    deadline_ms != 0 && now_ms >= BUILD_UNIX_MS && deadline_ms <= now_ms
}

/// Answers a read request, or `None` if `m` is not one.
pub fn answer_read(db: &Db, me: Me, m: &Message) -> Option<Message> {
    let applied_seq = db.seq();
    let out = match m {
        Message::Get { req_id, key, .. } => match db.get_live(key) {
            Ok(live) => Message::Value {
                req_id: *req_id,
                applied_seq,
                value: live
                    .filter(|l| !expired(l.deadline_ms, wall_ms()))
                    .map(|l| (l.seq, l.value)),
            },
            Err(e) => error_message(*req_id, &e),
        },
        Message::History {
            req_id, key, depth, ..
        } => match db.history(key, (*depth as usize).min(HISTORY_DEPTH_MAX)) {
            Ok(mut vs) => {
                // Newest first, as many as one answer may carry.
                let sizes = vs.iter().map(|v| v.value.as_ref().map_or(0, Vec::len));
                let fit = hypha_net::batch_prefix_len(sizes, HISTORY_DEPTH_MAX);
                let omitted = u32::try_from(vs.len() - fit).unwrap_or(u32::MAX);
                vs.truncate(fit);
                Message::Versions {
                    req_id: *req_id,
                    applied_seq,
                    versions: vs
                        .into_iter()
                        .map(|v| Version {
                            seq: v.seq,
                            value: v.value,
                        })
                        .collect(),
                    omitted,
                }
            }
            Err(e) => error_message(*req_id, &e),
        },
        Message::Scan {
            req_id,
            cursor,
            prefix,
            limit,
            ..
        } => match db.scan(*cursor, prefix, (*limit as usize).min(SCAN_LIMIT_MAX)) {
            Ok(page) => Message::ScanPage {
                req_id: *req_id,
                applied_seq,
                // The system's keys (a failover term's start) are no
                // client's: listings leave them out.
                keys: page
                    .keys
                    .into_iter()
                    .filter(|k| !hypha_net::is_system_key(k))
                    .collect(),
                next_cursor: page.next_cursor,
            },
            Err(e) => error_message(*req_id, &e),
        },
        Message::Digest { req_id } => Message::DigestIs {
            req_id: *req_id,
            digest: db.digest(),
            seq: applied_seq,
            len: db.len(),
        },
        Message::Status { req_id } => {
            let stats = db.stats();
            Message::StatusIs {
                req_id: *req_id,
                status: NodeStatus {
                    role: me.role,
                    node_id: me.node_id,
                    history_id: me.history_id,
                    applied_seq,
                    commit_seq: applied_seq,
                    keys: stats.live,
                    disk_bytes: stats.disk_bytes,
                },
            }
        }
        _ => return None,
    };
    Some(out)
}

#[cfg(test)]
mod wait_tests {
    use super::*;

    #[test]
    fn a_wait_ends_at_its_deadline_and_early_when_done() {
        smol::block_on(async {
            let event = event_listener::Event::new();
            // Nobody notifies: the shared sweeper ends the wait, not before
            // the deadline and not long after it.
            let start = Instant::now();
            let deadline = start + Duration::from_millis(WAIT_MS_SHORTEST);
            assert!(!wait_until(&event, deadline, || false).await);
            let took = start.elapsed();
            assert!(took >= Duration::from_millis(WAIT_MS_SHORTEST), "{took:?}");
            assert!(took < Duration::from_secs(10), "never woke: {took:?}");

            // Done once notified: returns true long before a far deadline.
            let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let far = Instant::now() + Duration::from_secs(3600);
            let (f, e) = (flag.clone(), &event);
            let waiting = wait_until(e, far, move || f.load(std::sync::atomic::Ordering::SeqCst));
            let notify = async {
                smol::Timer::after(Duration::from_millis(10)).await;
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                event.notify(usize::MAX);
            };
            let (done, ()) = smol::future::zip(waiting, notify).await;
            assert!(done);
        });
    }

    #[test]
    fn a_due_key_is_hidden_only_by_a_plausible_clock() {
        let now = super::BUILD_UNIX_MS + 10_000;
        assert!(super::expired(now, now));
        assert!(!super::expired(now + 1, now));
        assert!(!super::expired(0, now), "no deadline");
        // A clock that reads 1970 (no real-time clock set) hides nothing.
        assert!(!super::expired(5, 1_000));
    }
}
