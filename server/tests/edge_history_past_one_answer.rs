//! `?history=N` reaching past what one answer can carry (about 1 MiB of
//! values, the wire's batch rule) answers the newest versions that fit and
//! says how many it left out, in a header and in the body, instead of
//! failing.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn history_past_one_answer_returns_the_newest_that_fit_and_counts_the_rest() {
    let dir = TempDir::new("history-omitted");
    let port = free_port();
    let http = loopback(port).to_string();
    let data = data(&dir, "all");
    let node = Node::start(
        loopback(port),
        &["--data", &data, "--http", &http, "--history", "8"],
    );
    node.wait_log("try: curl", 0, Duration::from_secs(30));
    let url = format!("http://{http}/kv/big");
    let value = dir.join("value");
    for fill in [b'a', b'b', b'c', b'd'] {
        std::fs::write(&value, vec![fill; 700_000]).expect("value");
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
            .arg("--data-binary")
            .arg(format!("@{}", path_str(&value)))
            .arg(&url)
            .output()
            .expect("curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "201");
    }
    let out = std::process::Command::new("curl")
        .args(["-s", "-D", "-", &format!("{url}?history=4")])
        .output()
        .expect("curl");
    let reply = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = reply.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-hypha-versions-omitted: 2"),
        "{head}"
    );
    let doc: serde_json::Value = serde_json::from_str(body).expect("json");
    assert_eq!(doc["omitted"], 2);
    let seqs: Vec<u64> = doc["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["seq"].as_u64().expect("seq"))
        .collect();
    // The two newest: 700 kB fits the 1 MiB target, and one more may cross it.
    assert_eq!(seqs, [4, 3]);
}
