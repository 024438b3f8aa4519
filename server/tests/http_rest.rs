//! Every row of the REST table over real HTTP: /kv writes and reads, history,
//! scans, conditional GETs, the service routes and the error contract.

mod http_support;

use base64::Engine as _;
use http_support::{expect_status, Server, TestResult};
use hypha_server::http::{BackendError, HttpConfig};
use serde_json::json;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn put_returns_201_with_seq_and_get_returns_exact_bytes() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let put = server.request("PUT", "/kv/greeting", b"hello\0world")?;
    expect_status(&put, 201)?;
    let seq = put.json()?["seq"].as_u64().ok_or("no seq")?;
    assert_eq!(put.header("X-Hypha-Seq"), Some(seq.to_string().as_str()));

    let get = server.request("GET", "/kv/greeting", b"")?;
    expect_status(&get, 200)?;
    assert_eq!(get.body, b"hello\0world");
    assert_eq!(get.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(get.header("ETag"), Some(format!("\"{seq}\"").as_str()));
    assert_eq!(get.header("X-Hypha-Seq"), Some(seq.to_string().as_str()));
    Ok(())
}

#[test]
fn get_of_absent_key_gets_404_json() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let reply = server.request("GET", "/kv/missing", b"")?;
    expect_status(&reply, 404)?;
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    assert_eq!(reply.error()?, "key not found");
    Ok(())
}

#[test]
fn matching_if_none_match_gets_304_and_stale_tag_gets_the_value() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    expect_status(&server.request("PUT", "/kv/k", b"v1")?, 201)?;
    let etag = server
        .request("GET", "/kv/k", b"")?
        .header("ETag")
        .ok_or("no etag")?
        .to_owned();
    let mut client = server.client()?;
    let cached = client.request("GET", "/kv/k", &[("If-None-Match", &etag)], b"")?;
    expect_status(&cached, 304)?;
    assert!(cached.body.is_empty());
    expect_status(&client.request("PUT", "/kv/k", &[], b"v2")?, 201)?;
    let fresh = client.request("GET", "/kv/k", &[("If-None-Match", &etag)], b"")?;
    expect_status(&fresh, 200)?;
    assert_eq!(fresh.body, b"v2");
    Ok(())
}

#[test]
fn head_reports_the_value_length_without_a_body() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    expect_status(&server.request("PUT", "/kv/k", &[7u8; 1234])?, 201)?;
    let mut client = server.client()?;
    let head = client.request("HEAD", "/kv/k", &[], b"")?;
    expect_status(&head, 200)?;
    assert_eq!(head.header("Content-Length"), Some("1234"));
    // The connection carries on: no body bytes were sent after the HEAD reply.
    expect_status(&client.request("HEAD", "/kv/absent", &[], b"")?, 404)?;
    expect_status(&client.request("GET", "/ping", &[], b"")?, 200)?;
    Ok(())
}

#[test]
fn delete_returns_seq_then_absent_key_gets_404() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    expect_status(&server.request("PUT", "/kv/k", b"v")?, 201)?;
    let delete = server.request("DELETE", "/kv/k", b"")?;
    expect_status(&delete, 200)?;
    assert_eq!(delete.json()?, json!({"seq": 2}));
    expect_status(&server.request("GET", "/kv/k", b"")?, 404)?;
    expect_status(&server.request("DELETE", "/kv/k", b"")?, 404)?;
    Ok(())
}

#[test]
fn history_lists_versions_newest_first_with_deletes() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    server.request("PUT", "/kv/h", b"one")?;
    server.request("PUT", "/kv/h", b"\xfftwo")?;
    server.request("DELETE", "/kv/h", b"")?;
    let reply = server.request("GET", "/kv/h?history=10", b"")?;
    expect_status(&reply, 200)?;
    let expected = json!({
        "key": "h",
        "key_base64": "aA==",
        "versions": [
            {"seq": 3, "deleted": true},
            {"seq": 2, "value": b64(b"\xfftwo")},
            {"seq": 1, "value": b64(b"one")},
        ],
        "omitted": 0,
    });
    assert_eq!(reply.json()?, expected);
    let two = server.request("GET", "/kv/h?history=2", b"")?.json()?;
    assert_eq!(two["versions"].as_array().map(Vec::len), Some(2));
    expect_status(&server.request("GET", "/kv/h?history=0", b"")?, 400)?;
    // One source of limits: the wire's HISTORY_DEPTH_MAX, said as a number.
    let over = server.request("GET", "/kv/h?history=257", b"")?;
    expect_status(&over, 400)?;
    let limit = format!("between 1 and {} versions", hypha_net::HISTORY_DEPTH_MAX);
    assert!(over.text().contains(&limit), "{}", over.text());
    expect_status(&server.request("GET", "/kv/h?history=x", b"")?, 400)?;
    expect_status(&server.request("GET", "/kv/never?history=3", b"")?, 404)?;
    Ok(())
}

#[test]
fn scan_pages_by_prefix_limit_and_cursor_with_binary_safe_keys() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    for key in ["user%2F1", "user%2F2", "user%2F%FF", "other"] {
        expect_status(&server.request("PUT", &format!("/kv/{key}"), b"v")?, 201)?;
    }
    let first = server.request("GET", "/kv?prefix=user%2F&limit=2", b"")?;
    expect_status(&first, 200)?;
    let first = first.json()?;
    assert_eq!(
        first["keys"],
        json!([{"key": "user/1", "base64": b64(b"user/1")}, {"key": "user/2", "base64": b64(b"user/2")}])
    );
    let cursor = first["next_cursor"].as_str().ok_or("no next_cursor")?;
    let last = server
        .request(
            "GET",
            &format!("/kv?prefix=user/&limit=2&cursor={cursor}"),
            b"",
        )?
        .json()?;
    assert_eq!(
        last,
        json!({"keys": [{"key": null, "base64": b64(b"user/\xff")}], "next_cursor": null})
    );
    let all = server.request("GET", "/kv", b"")?.json()?;
    assert_eq!(all["keys"].as_array().map(Vec::len), Some(4));
    expect_status(&server.request("GET", "/kv?limit=0", b"")?, 400)?;
    expect_status(&server.request("GET", "/kv?limit=100000", b"")?, 400)?;
    expect_status(&server.request("GET", "/kv?cursor=-1", b"")?, 400)?;
    Ok(())
}

#[test]
fn keys_with_nul_slash_and_utf8_are_distinct_and_round_trip() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let keys = [
        ("a%00b", "nul"),
        ("a%2Fb", "slash"),
        ("h%C3%A9llo", "utf8"),
        ("a+b", "plus"),
        ("a%20b", "space"),
    ];
    for (path_key, value) in keys {
        expect_status(
            &server.request("PUT", &format!("/kv/{path_key}"), value.as_bytes())?,
            201,
        )?;
    }
    for (path_key, value) in keys {
        assert_eq!(
            server.request("GET", &format!("/kv/{path_key}"), b"")?.body,
            value.as_bytes()
        );
    }
    // A raw slash and raw UTF-8 in the path name the same keys as their escapes.
    assert_eq!(server.request("GET", "/kv/a/b", b"")?.body, b"slash");
    assert_eq!(server.request("GET", "/kv/héllo", b"")?.body, b"utf8");
    let scan = server.request("GET", "/kv?prefix=a", b"")?.json()?;
    let names: Vec<String> = scan["keys"]
        .as_array()
        .ok_or("no keys")?
        .iter()
        .map(|k| k["base64"].to_string())
        .collect();
    assert_eq!(names.len(), 4);
    Ok(())
}

#[test]
fn bad_percent_encoding_in_key_or_query_gets_400() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let reply = server.request("PUT", "/kv/a%zz", b"v")?;
    expect_status(&reply, 400)?;
    assert!(
        reply.error()?.contains("write %25 for a literal '%'"),
        "{}",
        reply.text()
    );
    expect_status(&server.request("GET", "/kv/a%2", b"")?, 400)?;
    expect_status(&server.request("GET", "/kv?prefix=%", b"")?, 400)?;
    expect_status(&server.request("PUT", "/kv/", b"v")?, 400)?;
    Ok(())
}

#[test]
fn consistency_is_chosen_per_read_and_unknown_values_get_400() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    server.request("PUT", "/kv/k", b"v")?;
    for level in ["ryw", "linearizable", "any"] {
        expect_status(
            &server.request("GET", &format!("/kv/k?consistency={level}"), b"")?,
            200,
        )?;
    }
    let reply = server.request("GET", "/kv/k?consistency=eventual", b"")?;
    expect_status(&reply, 400)?;
    assert!(reply.error()?.contains("ryw, linearizable, any"));
    expect_status(&server.request("GET", "/kv?consistency=bogus", b"")?, 400)?;
    Ok(())
}

#[test]
fn ping_status_digest_and_metrics_answer() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    server.request("PUT", "/kv/k", b"v")?;
    assert_eq!(
        server.request("GET", "/ping", b"")?.json()?,
        json!({"message": "pong"})
    );
    assert_eq!(server.request("GET", "/status", b"")?.json()?["seq"], 1);
    let digest = server.request("GET", "/digest", b"")?.json()?;
    assert!(
        digest["master"]["digest"].is_string() && digest["workers"].is_array(),
        "{digest}"
    );
    let metrics = server.request("GET", "/metrics", b"")?;
    expect_status(&metrics, 200)?;
    assert!(metrics
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("text/plain")));
    let text = metrics.text();
    for line in [
        "hypha_http_requests_total{route=\"kv_put\",status=\"201\"} 1",
        "hypha_http_requests_total{route=\"ping\",status=\"200\"} 1",
        "hypha_http_request_duration_seconds_bucket{route=\"kv_put\",le=\"+Inf\"} 1",
        "hypha_mem_seq 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    Ok(())
}

#[test]
fn wrong_method_gets_405_with_allow_and_unknown_path_gets_404() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let reply = server.request("POST", "/kv/k", b"v")?;
    expect_status(&reply, 405)?;
    assert_eq!(reply.header("Allow"), Some("GET, HEAD, PUT, DELETE"));
    assert!(reply.error()?.contains("use GET, HEAD, PUT, DELETE"));
    expect_status(&server.request("DELETE", "/ping", b"")?, 405)?;
    let missing = server.request("GET", "/nope", b"")?;
    expect_status(&missing, 404)?;
    assert!(missing.error()?.contains("no route for /nope"));
    Ok(())
}

#[test]
fn backend_failures_become_json_errors_with_their_status() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    server
        .backend
        .fail_with(Some(BackendError::Unavailable("no master elected".into())));
    let reply = server.request("PUT", "/kv/k", b"v")?;
    expect_status(&reply, 503)?;
    assert_eq!(reply.header("Retry-After"), Some("1"));
    assert!(reply.error()?.contains("no master elected"));
    server.backend.fail_with(Some(BackendError::SyncFailed {
        confirmed: 1,
        wanted: 3,
    }));
    let sync = server.request("PUT", "/kv/k", b"v")?;
    expect_status(&sync, 503)?;
    assert!(sync.error()?.contains("only 1 of 3 workers confirmed"));
    server
        .backend
        .fail_with(Some(BackendError::Timeout("worker 2".into())));
    expect_status(&server.request("GET", "/kv/k", b"")?, 504)?;
    server.backend.fail_with(None);
    expect_status(&server.request("PUT", "/kv/k", b"v")?, 201)?;
    Ok(())
}

#[test]
fn every_answer_that_reads_or_writes_a_key_carries_the_seq() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let put = server.request("PUT", "/kv/s/a", b"1")?;
    expect_status(&put, 201)?;
    let seq = put.json()?["seq"].as_u64().ok_or("no seq")?;
    assert_eq!(put.header("ETag"), Some(format!("\"{seq}\"").as_str()));
    expect_status(&server.request("PUT", "/kv/s/b", b"2")?, 201)?;
    // Reads at the store's seq: two writes so far.
    let history = server.request("GET", "/kv/s/a?history=5", b"")?;
    assert_eq!(history.header("X-Hypha-Seq"), Some("2"));
    let scan = server.request("GET", "/kv?prefix=s/", b"")?;
    assert_eq!(scan.header("X-Hypha-Seq"), Some("2"));
    // A read answers the store's seq; the key's own version is its ETag.
    let get = server.request("GET", "/kv/s/a", b"")?;
    assert_eq!(get.header("X-Hypha-Seq"), Some("2"));
    assert_eq!(get.header("ETag"), Some(format!("\"{seq}\"").as_str()));
    let del = server.request("DELETE", "/kv/s/a", b"")?;
    assert_eq!(del.header("X-Hypha-Seq"), Some("3"));
    let absent = server.request("GET", "/kv/s/a", b"")?;
    expect_status(&absent, 404)?;
    assert_eq!(absent.header("X-Hypha-Seq"), Some("3"));
    Ok(())
}
