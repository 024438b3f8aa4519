//! A lone `block_on` that finds the reactor held by async-io's helper thread
//! must still get its I/O. Between `block_on` calls the helper is the one
//! waiting for I/O. A `block_on` that starts then waits for the helper to
//! deliver its events. If the helper stops waiting, the `block_on` thread
//! has to take over. Tests and tools that call `smol::block_on` once per
//! request do exactly this.
//!
//! This guards the patch in `vendor/async-io` (PATCHED.md). A first version
//! parked the helper as soon as one `block_on` was running. When the
//! helper's wait ended with no event for the `block_on`, for example when a
//! new timer interrupted it, nobody was left waiting for I/O, and the
//! `block_on` slept forever. `tests/compaction.rs` hung that way.
//!
//! One test in this file: the test needs its `block_on` to be the only one
//! in its process.

use std::net::UdpSocket;
use std::sync::mpsc;
use std::time::Duration;

/// Requests, each in its own `block_on`.
const ROUNDS: u32 = 300;
/// Pause between them, so that the helper thread takes the reactor.
const GAP_MS: u64 = 1;
/// A healthy run takes well under a second.
const HANG_S: u64 = 20;

#[test]
fn block_on_after_the_helper_held_the_reactor_gets_its_events() {
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 16];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let socket = smol::block_on(smol::net::UdpSocket::bind("127.0.0.1:0")).unwrap();
        for i in 0..ROUNDS {
            std::thread::sleep(Duration::from_millis(GAP_MS));
            let got = smol::block_on(async {
                socket.send_to(&i.to_le_bytes(), echo_addr).await.unwrap();
                let mut buf = [0u8; 16];
                let reply = async { Some(socket.recv_from(&mut buf).await.unwrap().0) };
                // A timer: registering it interrupts whoever waits for I/O.
                let limit = async {
                    smol::Timer::after(Duration::from_secs(HANG_S)).await;
                    None
                };
                let n = smol::future::or(reply, limit).await;
                n.map(|n| buf[..n].to_vec())
            });
            assert_eq!(got.as_deref(), Some(&i.to_le_bytes()[..]), "round {i}");
        }
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(HANG_S))
        .expect("a block_on waited for I/O that nobody was polling");
}
