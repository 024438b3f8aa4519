//! The executor thread of [`hypha_server::rt::run`] is also the thread that
//! waits for I/O, after idle spells too. If another thread took a socket
//! event and woke the executor, that would be a second thread wake-up per
//! request: 30-40 µs across cores on the 2-core box. Published async-io
//! 2.6 does this to a process that was idle for about 20 ms. hypha builds a
//! patched copy, `vendor/async-io/PATCHED.md`.
//!
//! One test in this file: the test needs `rt::run` to be the only
//! `block_on` in its process.

use std::future::Future;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

/// Idleness before each datagram. It is longer than upstream's helper
/// backoff (ten sleeps, 50 µs doubling to 10 ms, about 20 ms), after which
/// the helper blocks on the reactor lock and takes the reactor.
const IDLE_MS: u64 = 60;
const ROUNDS: u8 = 6;

/// Names the thread that wakes a task, then wakes it.
struct Spy {
    inner: Waker,
    woken_on: Arc<Mutex<Vec<String>>>,
}

impl Wake for Spy {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let me = std::thread::current();
        let name = me.name().unwrap_or("(unnamed)").to_string();
        self.woken_on.lock().unwrap().push(name);
        self.inner.wake_by_ref();
    }
}

/// `f`, polled with a waker that records which thread wakes it.
fn spied<F: Future>(f: F, woken_on: Arc<Mutex<Vec<String>>>) -> impl Future<Output = F::Output> {
    let mut f = Box::pin(f);
    std::future::poll_fn(move |cx| {
        let spy = Waker::from(Arc::new(Spy {
            inner: cx.waker().clone(),
            woken_on: woken_on.clone(),
        }));
        f.as_mut().poll(&mut Context::from_waker(&spy))
    })
}

/// Gives up on the test after this long (a healthy run takes under a
/// second).
const HANG_S: u64 = 30;
const EXECUTOR_THREAD: &str = "executor";

#[test]
fn after_idle_spells_the_executor_thread_takes_every_socket_event() {
    let woken_on = Arc::new(Mutex::new(Vec::new()));
    let log = woken_on.clone();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(EXECUTOR_THREAD.into())
        .spawn(move || {
            hypha_server::rt::run(echo_after_idle_spells(log));
            done.send(()).unwrap();
        })
        .unwrap();
    finished
        .recv_timeout(Duration::from_secs(HANG_S))
        .unwrap_or_else(|_| panic!("the exchange did not end in {HANG_S} s"));
    let woken_on = woken_on.lock().unwrap();
    // Each datagram normally arrives while its receive waits (one wake-up
    // each); one that arrives before is taken without a wake-up, which a
    // loaded machine may cause now and then.
    assert!(
        woken_on.len() >= usize::from(ROUNDS / 2),
        "expected about a wake-up per datagram ({ROUNDS}), saw {woken_on:?}"
    );
    let elsewhere: Vec<&String> = woken_on.iter().filter(|t| *t != EXECUTOR_THREAD).collect();
    assert!(
        elsewhere.is_empty(),
        "socket events taken by another thread than the executor's: \
         {elsewhere:?} of {} wake-ups; is async-io the patched copy in vendor/?",
        woken_on.len()
    );
}

/// Receives `ROUNDS` datagrams, each sent after an idle spell by a plain
/// thread, and echoes each back; records who woke each receive.
async fn echo_after_idle_spells(log: Arc<Mutex<Vec<String>>>) {
    let socket = smol::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = socket.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(HANG_S)))
            .unwrap();
        let mut echo = [0u8; 8];
        for i in 0..ROUNDS {
            std::thread::sleep(Duration::from_millis(IDLE_MS));
            s.send_to(&[i], to).unwrap();
            let (n, _) = s.recv_from(&mut echo).expect("the echo");
            assert_eq!(&echo[..n], &[i]);
        }
    });
    let mut buf = [0u8; 8];
    for i in 0..ROUNDS {
        let (n, from) = spied(socket.recv_from(&mut buf), log.clone())
            .await
            .unwrap();
        assert_eq!(&buf[..n], &[i]);
        socket.send_to(&buf[..n], from).await.unwrap();
    }
    smol::unblock(move || peer.join().unwrap()).await;
}
