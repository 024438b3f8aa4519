//! Every row of the compat table: the form, JSON, typed-batch and path
//! dialects of older KV services.

mod http_support;

use http_support::{expect_status, Server, TestResult};
use hypha_server::http::HttpConfig;
use serde_json::json;

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
const JSON: (&str, &str) = ("Content-Type", "application/json");

fn string(data: &str) -> serde_json::Value {
    json!({"encoding": "string", "data": data})
}

fn binary(data: &str) -> serde_json::Value {
    json!({"encoding": "binary", "data": data})
}

#[test]
fn form_set_then_get_by_query_decodes_plus_and_escapes() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut client = server.client()?;
    let set = client.request(
        "POST",
        "/set",
        &[FORM],
        b"key=a+b%2Fc&value=hello+w%C3%B6rld%00",
    )?;
    expect_status(&set, 200)?;
    assert_eq!(set.json()?, json!({"seq": 1}));
    let get = client.request("GET", "/get?key=a+b%2Fc", &[], b"")?;
    expect_status(&get, 200)?;
    assert_eq!(get.body, "hello wörld\0".as_bytes());
    let missing = client.request("GET", "/get?key=nope", &[], b"")?;
    expect_status(&missing, 404)?;
    assert_eq!(missing.error()?, "Key not found");
    expect_status(&client.request("POST", "/set", &[FORM], b"value=v")?, 400)?;
    expect_status(
        &client.request("POST", "/set", &[FORM], b"key=k&value=%G0")?,
        400,
    )?;
    expect_status(
        &client.request(
            "POST",
            "/set",
            &[("Content-Type", "multipart/form-data; boundary=x")],
            b"--x--",
        )?,
        415,
    )?;
    Ok(())
}

#[test]
fn form_delete_removes_and_absent_key_gets_404() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    server
        .client()?
        .request("POST", "/set", &[FORM], b"key=k&value=v")?;
    expect_status(
        &server
            .client()?
            .request("POST", "/delete", &[FORM], b"key=k")?,
        200,
    )?;
    expect_status(&server.request("GET", "/get?key=k", b"")?, 404)?;
    expect_status(
        &server
            .client()?
            .request("POST", "/delete", &[FORM], b"key=k")?,
        404,
    )?;
    Ok(())
}

#[test]
fn store_json_then_store_key_with_json_body() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut client = server.client()?;
    let stored = client.request(
        "POST",
        "/store",
        &[JSON],
        br#"{"key":"hello","value":"world"}"#,
    )?;
    expect_status(&stored, 200)?;
    let value = client.request("GET", "/store/key", &[JSON], br#"{"key":"hello"}"#)?;
    expect_status(&value, 200)?;
    assert_eq!(value.json()?, json!({"value": "world"}));
    let missing = client.request("GET", "/store/key", &[JSON], br#"{"key":"nope"}"#)?;
    expect_status(&missing, 404)?;
    assert_eq!(missing.json()?, json!({"error": "Key not found"}));
    expect_status(
        &client.request("POST", "/store", &[JSON], br#"{"key":"k","value":7}"#)?,
        400,
    )?;
    expect_status(
        &client.request("POST", "/store", &[JSON], b"{not json")?,
        400,
    )?;
    Ok(())
}

#[test]
fn store_hash_is_the_masters_digest_and_follows_content() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let empty = server.request("GET", "/store/hash", b"")?.json()?;
    let digest = server.request("GET", "/digest", b"")?.json()?;
    assert_eq!(empty["hash"], digest["master"]["digest"]);
    server
        .client()?
        .request("POST", "/store", &[JSON], br#"{"key":"a","value":"b"}"#)?;
    let changed = server.request("GET", "/store/hash", b"")?.json()?;
    assert!(
        changed["hash"].is_string() && changed["hash"] != empty["hash"],
        "{changed}"
    );
    Ok(())
}

#[test]
fn typed_batch_set_is_all_or_nothing() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let batch = json!([
        {"key": string("s"), "value": string("text")},
        {"key": binary("AP8="), "value": binary("AAEC")},
    ]);
    let reply = server
        .client()?
        .request("PUT", "/set", &[JSON], batch.to_string().as_bytes())?;
    expect_status(&reply, 200)?;
    let report = reply.json()?;
    assert_eq!(report[0]["keys_added"], 2);
    assert_eq!(report[0]["keys_failed"], json!([]));
    assert_eq!(server.request("GET", "/kv/%00%FF", b"")?.body, [0, 1, 2]);
    // One bad item: 400 naming it, and none of the batch is written.
    let batch = json!([
        {"key": string("t"), "value": string("text")},
        {"key": string("bad"), "value": binary("!!not base64")},
    ]);
    let reply = server
        .client()?
        .request("PUT", "/set", &[JSON], batch.to_string().as_bytes())?;
    expect_status(&reply, 400)?;
    assert!(reply.error()?.contains("item 1"), "{}", reply.text());
    expect_status(&server.request("GET", "/kv/t", b"")?, 404)?;
    let batch = json!([{"key": {"encoding": "hex", "data": "00"}, "value": string("v")}]);
    let reply = server
        .client()?
        .request("PUT", "/set", &[JSON], batch.to_string().as_bytes())?;
    expect_status(&reply, 400)?;
    expect_status(
        &server.client()?.request("PUT", "/set", &[JSON], b"{}")?,
        400,
    )?;
    Ok(())
}

#[test]
fn post_fetch_returns_typed_values_and_null_for_absent() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    server.request("PUT", "/kv/text", b"hello")?;
    server.request("PUT", "/kv/%FFbin", b"\xff\x00")?;
    let keys = json!([string("text"), binary("/2Jpbg"), "absent"]);
    let reply = server
        .client()?
        .request("POST", "/fetch", &[JSON], keys.to_string().as_bytes())?;
    expect_status(&reply, 200)?;
    let expected = json!([
        {"key": string("text"), "value": string("hello")},
        {"key": binary("/2Jpbg=="), "value": binary("/wA=")},
        {"key": string("absent"), "value": null},
    ]);
    assert_eq!(reply.json()?, expected);
    Ok(())
}

#[test]
fn get_fetch_pages_all_pairs_with_next_cursor_header() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    for key in ["a", "b", "c"] {
        server.request("PUT", &format!("/kv/{key}"), key.as_bytes())?;
    }
    let first = server.request("GET", "/fetch?limit=2", b"")?;
    expect_status(&first, 200)?;
    assert_eq!(
        first.json()?,
        json!([{"key": string("a"), "value": string("a")}, {"key": string("b"), "value": string("b")}])
    );
    let cursor = first
        .header("X-Hypha-Next-Cursor")
        .ok_or("no next cursor")?;
    let last = server.request("GET", &format!("/fetch?limit=2&cursor={cursor}"), b"")?;
    assert_eq!(
        last.json()?,
        json!([{"key": string("c"), "value": string("c")}])
    );
    assert_eq!(last.header("X-Hypha-Next-Cursor"), None);
    let all = server.request("GET", "/fetch", b"")?;
    assert_eq!(all.json()?.as_array().map(Vec::len), Some(3));
    assert_eq!(all.header("X-Hypha-Next-Cursor"), None);
    Ok(())
}

#[test]
fn query_answers_presence_per_key() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    server.request("PUT", "/kv/here", b"v")?;
    let keys = json!([string("here"), string("gone")]);
    let reply = server
        .client()?
        .request("POST", "/query", &[JSON], keys.to_string().as_bytes())?;
    expect_status(&reply, 200)?;
    let expected =
        json!([{"key": string("here"), "value": true}, {"key": string("gone"), "value": false}]);
    assert_eq!(reply.json()?, expected);
    Ok(())
}

#[test]
fn path_routes_put_get_and_delete() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    expect_status(
        &server.request("PUT", "/put/k%2F1/hello%20there", b"")?,
        200,
    )?;
    assert_eq!(
        server.request("GET", "/get/k%2F1", b"")?.body,
        b"hello there"
    );
    assert_eq!(
        server.request("GET", "/get/k%2F1/", b"")?.body,
        b"hello there"
    );
    expect_status(&server.request("DELETE", "/delete/k%2F1", b"")?, 200)?;
    let gone = server.request("GET", "/get/k%2F1", b"")?;
    expect_status(&gone, 404)?;
    assert_eq!(gone.error()?, "Key not found");
    expect_status(&server.request("DELETE", "/delete/k%2F1", b"")?, 404)?;
    expect_status(&server.request("PUT", "/put/only-key", b"")?, 400)?;
    let wrong = server.request("GET", "/put/A/happy", b"")?;
    expect_status(&wrong, 405)?;
    assert_eq!(wrong.header("Allow"), Some("PUT"));
    // The answer shows the command a script meant (diststore's README
    // sends GET here).
    let error = wrong.error()?;
    assert!(
        error.ends_with("curl -X PUT 'http://test/put/A/happy'"),
        "{error}"
    );
    // A key with slashes: the value is the last segment, for both routes.
    expect_status(&server.request("PUT", "/put/a/b/c", b"")?, 200)?;
    assert_eq!(server.request("GET", "/get/a/b", b"")?.body, b"c");
    expect_status(&server.request("GET", "/get/a", b"")?, 404)?;
    Ok(())
}

#[test]
fn post_set_with_json_is_the_batch_and_fetch_answers_keys_as_asked() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let mut c = server.client()?;
    let batch = br#"[{"key":"j1","value":"one"},{"key":{"encoding":"binary","data":"ajI="},"value":"two"}]"#;
    let json = [("Content-Type", "application/json")];
    let reply = c.request("POST", "/set", &json, batch)?;
    expect_status(&reply, 200)?;
    assert_eq!(
        reply.json()?,
        json!([{"keys_added": 2, "keys_failed": [], "errors": []}])
    );
    assert_eq!(server.request("GET", "/get?key=j2", b"")?.body, b"two");
    // A form is still a form.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    expect_status(&c.request("POST", "/set", &form, b"key=f&value=v")?, 200)?;
    assert_eq!(server.request("GET", "/get?key=f", b"")?.body, b"v");

    // "j2" asked as binary comes back binary, though its bytes are UTF-8.
    let asked =
        br#"[{"encoding":"binary","data":"ajI="},"j1",{"encoding":"string","data":"nope"}]"#;
    let reply = c.request("POST", "/fetch", &json, asked)?;
    expect_status(&reply, 200)?;
    let answer = reply.json()?;
    assert_eq!(
        answer[0]["key"],
        json!({"encoding": "binary", "data": "ajI="})
    );
    assert_eq!(
        answer[0]["value"],
        json!({"encoding": "string", "data": "two"})
    );
    assert_eq!(
        answer[1]["key"],
        json!({"encoding": "string", "data": "j1"})
    );
    assert_eq!(
        answer[2],
        json!({"key": {"encoding": "string", "data": "nope"}, "value": null})
    );
    let reply = c.request("POST", "/query", &json, asked)?;
    assert_eq!(
        reply.json()?[0]["key"],
        json!({"encoding": "binary", "data": "ajI="})
    );
    Ok(())
}
