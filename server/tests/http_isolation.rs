//! One connection's failure stays its own: a request that panics the backend
//! or speaks garbage ends only its connection; the listener and every other
//! connection keep working.

mod http_support;

use http_support::{expect_status, request_bytes, Server, TestResult};
use hypha_server::http::HttpConfig;

#[test]
fn panicking_request_ends_only_its_own_connection() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut bystander = server.client()?;
    expect_status(&bystander.request("PUT", "/kv/ok", &[], b"v")?, 201)?;
    server.backend.panic_on(Some(b"boom".to_vec()));

    let mut victim = server.client()?;
    victim.send(&request_bytes("GET", "/kv/boom", &[], b""))?;
    assert!(
        victim.read_to_end()?.is_empty(),
        "the panicking request got an answer"
    );

    assert_eq!(bystander.request("GET", "/kv/ok", &[], b"")?.body, b"v");
    expect_status(&server.request("GET", "/ping", b"")?, 200)?;
    server.backend.panic_on(None);
    expect_status(&server.request("PUT", "/kv/boom", b"fine now")?, 201)?;
    Ok(())
}

#[test]
fn garbage_on_one_connection_leaves_the_others_working() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut bystander = server.client()?;
    expect_status(&bystander.request("GET", "/ping", &[], b"")?, 200)?;
    let mut garbage = server.client()?;
    garbage.send(b"\x16\x03\x01\x02\x00 not http\r\n\r\n")?;
    let reply = garbage.read_reply_then_eof()?;
    expect_status(&reply, 400)?;
    expect_status(&bystander.request("GET", "/ping", &[], b"")?, 200)?;
    expect_status(&server.request("GET", "/ping", b"")?, 200)?;
    Ok(())
}
