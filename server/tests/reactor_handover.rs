//! async-io must never leave I/O that somebody waits for unpolled, however
//! the reactor passes between `block_on` threads and async-io's helper
//! thread. hypha's tests and tools call `smol::block_on` once per request,
//! after pauses long enough for the helper to take the reactor; the binary
//! runs one long-lived `block_on` (`rt::run`) beside threads that may wait
//! outside it. A change to how the reactor is handed over (such as the one
//! in `docs/async-io-proposal.md`, which hypha once built as a patched
//! copy, and whose first version hung `tests/compaction.rs` this way) must
//! keep these three cases making progress.
//!
//! The tests take turns (`ONE_AT_A_TIME`): each needs to know how many
//! `block_on` calls its process runs.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

/// Requests, each in its own `block_on`.
const ROUNDS: u32 = 300;
/// Pause between them, so that the helper thread takes the reactor.
const GAP_MS: u64 = 1;
/// A healthy run takes well under a second.
const HANG_S: u64 = 20;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A plain thread that sends every datagram back.
fn echo() -> SocketAddr {
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 16];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    addr
}

/// Sends `i` to `echo` and waits for it to come back, or for `HANG_S`.
async fn round_trip(socket: &smol::net::UdpSocket, echo: SocketAddr, i: u32) {
    socket.send_to(&i.to_le_bytes(), echo).await.unwrap();
    let mut buf = [0u8; 16];
    let reply = async { Some(socket.recv_from(&mut buf).await.unwrap().0) };
    // A timer: registering it interrupts whoever waits for I/O.
    let limit = async {
        smol::Timer::after(Duration::from_secs(HANG_S)).await;
        None
    };
    let n = smol::future::or(reply, limit).await;
    assert_eq!(
        n.map(|n| &buf[..n]),
        Some(&i.to_le_bytes()[..]),
        "round {i}"
    );
}

/// Runs `f` on its own thread; panics if it has not finished in `HANG_S`.
fn within_limit(what: &str, f: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(HANG_S))
        .unwrap_or_else(|_| panic!("{what}: no progress in {HANG_S} s"));
}

#[test]
fn block_on_after_the_helper_held_the_reactor_gets_its_events() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let echo = echo();
    within_limit(
        "a block_on waited for I/O that nobody was polling",
        move || {
            let socket = smol::block_on(smol::net::UdpSocket::bind("127.0.0.1:0")).unwrap();
            for i in 0..ROUNDS {
                std::thread::sleep(Duration::from_millis(GAP_MS));
                smol::block_on(round_trip(&socket, echo, i));
            }
        },
    );
}

/// Two `block_on` threads at once, one for good and one per request: the
/// number of `block_on` calls goes 1 → 2 → 1 all the time, and the reactor
/// moves between the two threads.
#[test]
fn overlapping_block_on_calls_get_their_events() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (echo_a, echo_b) = (echo(), echo());
    let long = std::thread::spawn(move || {
        within_limit("the long block_on", move || {
            smol::block_on(async {
                let socket = smol::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                for i in 0..ROUNDS {
                    round_trip(&socket, echo_a, i).await;
                    if i % 4 == 0 {
                        // Busy for a while, holding no reactor.
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_micros(700) {}
                    }
                }
            })
        })
    });
    within_limit("a block_on per request beside a long one", move || {
        let socket = smol::block_on(smol::net::UdpSocket::bind("127.0.0.1:0")).unwrap();
        for i in 0..ROUNDS {
            if i % 3 == 0 {
                std::thread::sleep(Duration::from_millis(GAP_MS));
            }
            smol::block_on(round_trip(&socket, echo_b, i));
        }
    });
    long.join().unwrap();
}

/// A lone `block_on` thread stuck in a task (here: waiting for another
/// thread) leaves nobody in the reactor. The "async-io" helper thread must
/// take the ready events, so that a thread that waits for a timer outside
/// `block_on` still gets it.
#[test]
fn a_timer_waited_for_outside_block_on_fires_while_block_on_is_stuck() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    within_limit("a timer outside block_on", || {
        smol::block_on(async {
            let (fired, waited) = mpsc::channel();
            std::thread::spawn(move || {
                // futures-lite's block_on: no reactor of its own.
                smol::future::block_on(smol::Timer::after(Duration::from_millis(10)));
                fired.send(()).unwrap();
            });
            // Blocks the block_on thread: no task, no reactor.
            waited
                .recv_timeout(Duration::from_secs(HANG_S))
                .expect("the timer fired while the block_on thread was stuck");
        })
    });
}
