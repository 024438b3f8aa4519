//! Message framing over real sockets: keep-alive, pipelining, chunked uploads,
//! `Expect: 100-continue`, big binary values, and the limits with their exact
//! status codes.

mod http_support;

use http_support::{expect_status, request_bytes, Server, TestResult};
use hypha_server::http::{HttpConfig, MemBackend};

fn small_values() -> std::io::Result<Server> {
    Server::with_backend(
        HttpConfig::default(),
        MemBackend::with_value_bytes_max(1000),
    )
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut client = server.client()?;
    for i in 0..50 {
        expect_status(
            &client.request("PUT", &format!("/kv/k{i}"), &[], b"v")?,
            201,
        )?;
    }
    expect_status(&client.request("GET", "/kv/k49", &[], b"")?, 200)?;
    Ok(())
}

#[test]
fn pipelined_requests_in_one_write_are_answered_in_order() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut client = server.client()?;
    let mut burst = Vec::new();
    burst.extend(request_bytes("PUT", "/kv/p", &[], b"first"));
    burst.extend(request_bytes("GET", "/kv/p", &[], b""));
    burst.extend(request_bytes("PUT", "/kv/p", &[], b"second"));
    burst.extend(request_bytes("GET", "/kv/p", &[], b""));
    burst.extend(request_bytes("GET", "/nope", &[], b""));
    burst.extend(request_bytes(
        "GET",
        "/ping",
        &[("Connection", "close")],
        b"",
    ));
    client.send(&burst)?;
    expect_status(&client.read_reply(false)?, 201)?;
    assert_eq!(client.read_reply(false)?.body, b"first");
    expect_status(&client.read_reply(false)?, 201)?;
    assert_eq!(client.read_reply(false)?.body, b"second");
    expect_status(&client.read_reply(false)?, 404)?;
    let last = client.read_reply_then_eof()?;
    expect_status(&last, 200)?;
    assert_eq!(last.header("Connection"), Some("close"));
    Ok(())
}

#[test]
fn connection_close_and_http10_without_keep_alive_close_after_the_reply() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut closing = server.client()?;
    closing.send(&request_bytes(
        "GET",
        "/ping",
        &[("Connection", "close")],
        b"",
    ))?;
    expect_status(&closing.read_reply_then_eof()?, 200)?;

    let mut old = server.client()?;
    old.send(b"GET /ping HTTP/1.0\r\n\r\n")?;
    expect_status(&old.read_reply_then_eof()?, 200)?;

    let mut old_keep = server.client()?;
    old_keep.send(b"GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")?;
    let reply = old_keep.read_reply(false)?;
    assert_eq!(reply.header("Connection"), Some("keep-alive"));
    old_keep.send(b"GET /ping HTTP/1.0\r\n\r\n")?;
    expect_status(&old_keep.read_reply_then_eof()?, 200)?;
    Ok(())
}

#[test]
fn one_mib_binary_value_with_nul_bytes_round_trips() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let value: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 & 0x7f)
        .collect();
    assert!(value.iter().filter(|b| **b == 0).count() > 1000);
    let mut client = server.client()?;
    expect_status(&client.request("PUT", "/kv/big%00blob", &[], &value)?, 201)?;
    let got = client.request("GET", "/kv/big%00blob", &[], b"")?;
    expect_status(&got, 200)?;
    assert!(got.body == value, "the value came back different");
    Ok(())
}

#[test]
fn chunked_upload_is_stored_and_the_connection_stays_usable() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut client = server.client()?;
    let head = request_bytes(
        "PUT",
        "/kv/chunky",
        &[("Transfer-Encoding", "chunked")],
        b"",
    );
    client.send(&head)?;
    client.send(b"6;ext=1\r\nhello \r\n")?;
    client.send(b"6\r\n\0world\r\n0\r\nX-Trailer: t\r\n\r\n")?;
    expect_status(&client.read_reply(false)?, 201)?;
    assert_eq!(
        client.request("GET", "/kv/chunky", &[], b"")?.body,
        b"hello \0world"
    );
    Ok(())
}

#[test]
fn chunked_body_over_the_value_limit_gets_413_and_close() -> TestResult {
    let server = small_values()?;
    let mut client = server.client()?;
    client.send(&request_bytes(
        "PUT",
        "/kv/k",
        &[("Transfer-Encoding", "chunked")],
        b"",
    ))?;
    client.send(b"3e8\r\n")?;
    client.send(&[b'x'; 1000])?;
    client.send(b"\r\n1\r\n")?;
    let reply = client.read_reply_then_eof()?;
    expect_status(&reply, 413)?;
    assert!(reply
        .error()?
        .contains("value is over 1000 bytes; the limit is 1000 (--value-max)"));
    Ok(())
}

#[test]
fn malformed_chunk_gets_400_and_close() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut client = server.client()?;
    client.send(&request_bytes(
        "PUT",
        "/kv/k",
        &[("Transfer-Encoding", "chunked")],
        b"",
    ))?;
    client.send(b"zz\r\n")?;
    expect_status(&client.read_reply_then_eof()?, 400)?;
    Ok(())
}

#[test]
fn expect_100_continue_gets_continue_before_the_body() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut client = server.client()?;
    let head = "PUT /kv/e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
    client.send(head.as_bytes())?;
    // The server speaks first: the body is only sent after 100 arrives.
    expect_status(&client.read_reply(false)?, 100)?;
    client.send(b"hello")?;
    expect_status(&client.read_reply(false)?, 201)?;
    assert_eq!(client.request("GET", "/kv/e", &[], b"")?.body, b"hello");
    Ok(())
}

#[test]
fn expect_100_continue_with_oversized_length_gets_413_without_continue() -> TestResult {
    let server = small_values()?;
    let mut client = server.client()?;
    let head =
        "PUT /kv/e HTTP/1.1\r\nHost: t\r\nContent-Length: 20000000\r\nExpect: 100-continue\r\n\r\n";
    client.send(head.as_bytes())?;
    let reply = client.read_reply_then_eof()?;
    expect_status(&reply, 413)?;
    let expected =
        "value is 20000000 bytes; the limit is 1000 (--value-max); store it in smaller pieces";
    assert_eq!(reply.error()?, expected);
    Ok(())
}

#[test]
fn expect_100_continue_to_a_refused_route_gets_the_refusal_without_continue() -> TestResult {
    let server = Server::start(HttpConfig {
        token: Some("t".into()),
        ..HttpConfig::default()
    })?;
    let mut client = server.client()?;
    let head = "PUT /kv/e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
    client.send(head.as_bytes())?;
    expect_status(&client.read_reply_then_eof()?, 401)?;
    Ok(())
}

#[test]
fn oversized_body_gets_413_before_the_body_is_sent() -> TestResult {
    let server = small_values()?;
    let mut client = server.client()?;
    client.send(b"PUT /kv/k HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n")?;
    expect_status(&client.read_reply_then_eof()?, 413)?;
    // The limit is inclusive.
    expect_status(&server.request("PUT", "/kv/k", &[b'x'; 1000])?, 201)?;
    Ok(())
}

#[test]
fn oversized_head_gets_431() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut client = server.client()?;
    let padding = "p".repeat(9000);
    client.send(format!("GET /ping HTTP/1.1\r\nHost: t\r\nX-Pad: {padding}\r\n\r\n").as_bytes())?;
    let reply = client.read_reply_then_eof()?;
    expect_status(&reply, 431)?;
    let limit = format!("over {} bytes", hypha_server::http::config::HEAD_BYTES_MAX);
    assert!(reply.error()?.contains(&limit), "{}", reply.error()?);
    Ok(())
}

#[test]
fn long_request_line_gets_414() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut client = server.client()?;
    let key = "k".repeat(5000);
    client.send(format!("GET /kv/{key} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())?;
    let reply = client.read_reply_then_eof()?;
    expect_status(&reply, 414)?;
    let limit = format!(
        "the limit is {}",
        hypha_server::http::config::REQUEST_LINE_BYTES_MAX
    );
    assert!(reply.error()?.contains(&limit), "{}", reply.error()?);
    Ok(())
}

#[test]
fn both_content_length_and_chunked_get_400() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut client = server.client()?;
    client.send(b"PUT /kv/k HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc")?;
    let reply = client.read_reply_then_eof()?;
    expect_status(&reply, 400)?;
    assert!(reply.error()?.contains("send only one"));
    Ok(())
}
