//! A request over a limit is the client's mistake: the edge answers it with
//! 413 and the limit's name, and every node stays healthy and serving (it
//! used to be a 503 "master unreachable" and a node marked failed).

mod common;
use common::*;
use std::time::Duration;

fn curl(args: &[&str]) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or_default();
    (code.parse().unwrap_or(0), body.to_string())
}

#[test]
fn an_oversized_key_is_a_413_and_every_node_stays_healthy() {
    let dir = TempDir::new("client-errors");
    let port = free_port();
    let http = loopback(port).to_string();
    let data = data(&dir, "all");
    let node = Node::start(loopback(port), &["--data", &data, "--http", &http]);
    node.wait_log("try: curl", 0, Duration::from_secs(30));
    let base = format!("http://{http}");
    let (code, _) = curl(&["-X", "PUT", "--data-binary", "v", &format!("{base}/kv/k")]);
    assert_eq!(code, 201);

    let long = "a".repeat(hypha_net::KEY_BYTES_MAX + 1);
    let form = format!("key={long}&value=hello");
    let (code, body) = curl(&["-X", "POST", "--data", &form, &format!("{base}/set")]);
    assert_eq!(code, 413, "{body}");
    assert!(
        body.contains("the key is 4097 bytes; the limit is 4096"),
        "{body}"
    );
    let query = format!("{base}/fetch");
    let fetch = format!("[{{\"encoding\":\"string\",\"data\":\"{long}\"}}]");
    let (code, body) = curl(&["-X", "POST", "--data", &fetch, &query]);
    assert!(code == 413 || code == 400, "{code} {body}");

    let (code, status) = curl(&[&format!("{base}/status")]);
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&status).expect("json");
    assert_eq!(status["master"]["healthy"], true, "{status}");
    for w in status["workers"].as_array().expect("workers") {
        assert_eq!(w["healthy"], true, "{status}");
    }
    // Writes and reads go on at once, on every node.
    for i in 0..20 {
        let (code, _) = curl(&[
            "-X",
            "PUT",
            "--data-binary",
            "x",
            &format!("{base}/kv/n{i}"),
        ]);
        assert_eq!(code, 201);
        let (code, body) = curl(&[&format!("{base}/kv/n{i}")]);
        assert_eq!((code, body.as_str()), (200, "x"));
    }
}
