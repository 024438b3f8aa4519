//! Beyond `connections_max`, new connections get a 503 JSON answer and are
//! closed, while the connections already open keep working.

mod http_support;

use http_support::{expect_status, Server, TestResult};
use hypha_server::http::HttpConfig;

#[test]
fn connection_beyond_the_cap_gets_503_while_existing_ones_keep_working() -> TestResult {
    let server = Server::start(HttpConfig {
        connections_max: 2,
        ..HttpConfig::default()
    })?;
    // A completed request proves the server accepted and counted the connection.
    let mut first = server.client()?;
    expect_status(&first.request("GET", "/ping", &[], b"")?, 200)?;
    let mut second = server.client()?;
    expect_status(&second.request("GET", "/ping", &[], b"")?, 200)?;

    let mut third = server.client()?;
    third.send(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")?;
    let refused = third.read_reply_then_eof()?;
    expect_status(&refused, 503)?;
    assert_eq!(refused.header("Connection"), Some("close"));
    assert!(
        refused.error()?.contains("--http-connections"),
        "{}",
        refused.text()
    );

    expect_status(&first.request("PUT", "/kv/k", &[], b"v")?, 201)?;
    assert_eq!(second.request("GET", "/kv/k", &[], b"")?.body, b"v");
    let metrics = first.request("GET", "/metrics", &[], b"")?.text();
    assert!(
        metrics
            .lines()
            .any(|l| l == "hypha_http_connections_refused_total 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "hypha_http_connections_open 2"),
        "{metrics}"
    );
    Ok(())
}
