//! Slow and silent clients are cut off by the head, idle and body timeouts;
//! the event each test waits for is the server closing the connection.

mod http_support;

use std::io::Write;
use std::time::{Duration, Instant};

use http_support::{expect_status, Server, TestResult};
use hypha_server::http::HttpConfig;

const SHORT_MS: u64 = 300;

fn short_timeouts() -> HttpConfig {
    HttpConfig {
        head_timeout_ms: SHORT_MS,
        idle_timeout_ms: SHORT_MS * 2,
        body_timeout_ms: SHORT_MS,
        ..HttpConfig::default()
    }
}

#[test]
fn slow_header_client_is_cut_off_by_the_head_timeout() -> TestResult {
    let server = Server::start(short_timeouts())?;
    // Taken before connecting: the server's clock starts at accept, after this.
    let started = Instant::now();
    let mut client = server.client()?;
    let mut trickle = client.stream.try_clone()?;
    // Slowloris: one header byte every 20 ms, never finishing the head. The
    // trickle stops when the server's close makes a write fail.
    let writer = std::thread::spawn(move || {
        let _ = trickle.write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\n");
        for _ in 0..1000 {
            if trickle.write_all(b"X-Slow: 1\r\n").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let reply = client.read_reply_then_eof()?;
    let elapsed = started.elapsed();
    expect_status(&reply, 408)?;
    assert!(reply.error()?.contains("head_timeout_ms"));
    assert!(
        elapsed >= Duration::from_millis(SHORT_MS),
        "closed after {elapsed:?}"
    );
    // Progress must not extend the deadline: far less than the trickle's 20 s.
    assert!(elapsed < Duration::from_secs(5), "closed after {elapsed:?}");
    drop(client);
    writer.join().map_err(|_| "writer panicked")?;
    Ok(())
}

#[test]
fn silent_client_is_closed_at_the_head_timeout_without_a_reply() -> TestResult {
    let server = Server::start(short_timeouts())?;
    let started = Instant::now();
    let mut client = server.client()?;
    assert!(client.read_to_end()?.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(SHORT_MS));
    Ok(())
}

#[test]
fn idle_keep_alive_connection_is_closed_after_the_idle_timeout() -> TestResult {
    let server = Server::start(short_timeouts())?;
    let mut client = server.client()?;
    // Taken before the request: the server's idle clock starts after its reply.
    let idle_since = Instant::now();
    expect_status(&client.request("GET", "/ping", &[], b"")?, 200)?;
    assert!(client.read_to_end()?.is_empty());
    assert!(idle_since.elapsed() >= Duration::from_millis(SHORT_MS * 2));
    Ok(())
}

#[test]
fn stalled_body_gets_408_after_the_body_timeout() -> TestResult {
    let server = Server::start(short_timeouts())?;
    let mut client = server.client()?;
    client.send(b"PUT /kv/k HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")?;
    let reply = client.read_reply_then_eof()?;
    expect_status(&reply, 408)?;
    assert!(reply.error()?.contains("body_timeout_ms"));
    expect_status(&server.request("GET", "/kv/k", b"")?, 404)?;
    Ok(())
}

#[test]
fn a_trickled_body_gets_408_at_the_whole_body_deadline() -> TestResult {
    // Each read makes progress well within body_timeout_ms; only the
    // deadline on the whole body can end it.
    let total_ms = SHORT_MS * 3;
    let server = Server::start(HttpConfig {
        body_timeout_ms: 10_000,
        body_total_timeout_ms: total_ms,
        ..HttpConfig::default()
    })?;
    let mut client = server.client()?;
    let mut trickle = client.stream.try_clone()?;
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        let _ = trickle
            .write_all(b"PUT /kv/slow HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
        for _ in 0..1000 {
            if trickle.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let reply = client.read_reply_then_eof()?;
    let elapsed = started.elapsed();
    expect_status(&reply, 408)?;
    assert!(reply.error()?.contains("body_total_timeout_ms"));
    assert!(
        elapsed >= Duration::from_millis(total_ms),
        "closed after {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "closed after {elapsed:?}");
    drop(client);
    writer.join().map_err(|_| "writer panicked")?;
    Ok(())
}
