//! With a token, writes need `Authorization: Bearer <token>` (401 otherwise);
//! with `token_for_reads`, reads too, and `/ping` always stays open.

mod http_support;

use http_support::{expect_status, Server, TestResult};
use hypha_server::http::HttpConfig;

const TOKEN: &str = "s3cret-token";

fn with_token(token_for_reads: bool) -> HttpConfig {
    HttpConfig {
        token: Some(TOKEN.into()),
        token_for_reads,
        ..HttpConfig::default()
    }
}

#[test]
fn write_without_or_with_a_wrong_token_gets_401() -> TestResult {
    let server = Server::start(with_token(false))?;
    let mut client = server.client()?;
    let missing = client.request("PUT", "/kv/k", &[], b"v")?;
    expect_status(&missing, 401)?;
    assert_eq!(
        missing.header("WWW-Authenticate"),
        Some("Bearer realm=\"hypha\"")
    );
    assert!(missing.error()?.contains("Authorization: Bearer"));
    let mut client = server.client()?;
    let wrong = client.request("PUT", "/kv/k", &[("Authorization", "Bearer nope")], b"v")?;
    expect_status(&wrong, 401)?;
    for (method, target) in [
        ("DELETE", "/kv/k"),
        ("POST", "/set"),
        ("PUT", "/put/k/v"),
        ("DELETE", "/delete/k"),
    ] {
        expect_status(&server.client()?.request(method, target, &[], b"")?, 401)?;
    }
    Ok(())
}

#[test]
fn write_with_the_token_succeeds_and_reads_stay_open() -> TestResult {
    let server = Server::start(with_token(false))?;
    let bearer = format!("Bearer {TOKEN}");
    let mut client = server.client()?;
    expect_status(
        &client.request("PUT", "/kv/k", &[("Authorization", &bearer)], b"v")?,
        201,
    )?;
    assert_eq!(client.request("GET", "/kv/k", &[], b"")?.body, b"v");
    expect_status(&client.request("GET", "/metrics", &[], b"")?, 200)?;
    Ok(())
}

#[test]
fn token_for_reads_guards_reads_but_not_ping() -> TestResult {
    let server = Server::start(with_token(true))?;
    let bearer = format!("Bearer {TOKEN}");
    let mut client = server.client()?;
    expect_status(&client.request("GET", "/kv/k", &[], b"")?, 401)?;
    expect_status(
        &client.request("GET", "/kv/k", &[("Authorization", &bearer)], b"")?,
        404,
    )?;
    expect_status(&client.request("GET", "/status", &[], b"")?, 401)?;
    expect_status(&client.request("GET", "/metrics", &[], b"")?, 401)?;
    expect_status(
        &client.request("GET", "/metrics", &[("Authorization", &bearer)], b"")?,
        200,
    )?;
    expect_status(&client.request("GET", "/get?key=k", &[], b"")?, 401)?;
    expect_status(&client.request("GET", "/ping", &[], b"")?, 200)?;
    Ok(())
}
