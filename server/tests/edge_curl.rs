//! End to end with the real binary and the real `curl`, exactly as a user
//! types it: the all-in-one `hypha` (master, 2 workers, HTTP edge), and the
//! roles as separate processes with a worker killed mid-test.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-S", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl is not installed: apt-get install curl (.ci/run does)");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut body = out.stdout;
    let nl = body.iter().rposition(|&b| b == b'\n').expect("status line");
    let code = String::from_utf8_lossy(&body[nl + 1..]).into_owned();
    body.truncate(nl);
    (code, body)
}

/// The body as text, without the newline JSON answers end with.
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_end_matches('\n')
        .to_string()
}

fn all_in_one(dir: &TempDir) -> (Node, String) {
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let data = data(dir, "data");
    let n = Node::start(
        loopback(port),
        &["--data", &data, "--http", &http, "--heartbeat-ms", "100"],
    );
    n.wait_log("http: listening", 0, Duration::from_secs(30));
    (n, format!("http://{http}"))
}

#[test]
fn the_rest_api_through_curl() {
    let dir = TempDir::new("curl-rest");
    let (_node, base) = all_in_one(&dir);
    let kv = |k: &str| format!("{base}/kv/{k}");
    let (code, body) = curl(&[&format!("{base}/ping")]);
    assert_eq!(
        (code.as_str(), text(&body).as_str()),
        ("200", r#"{"message":"pong"}"#)
    );
    let (code, _) = curl(&["-X", "PUT", "--data-binary", "world", &kv("hello")]);
    assert!(code.starts_with('2'), "{code}");
    // Read-your-writes right after the write, through a worker.
    assert_eq!(curl(&[&kv("hello")]), ("200".into(), b"world".to_vec()));
    // Binary keys and values with NUL bytes, and 1 MiB values.
    let bin = dir.join("bin");
    let value: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(&bin, &value).expect("write");
    let at_bin = format!("@{}", path_str(&bin));
    let (code, _) = curl(&["-X", "PUT", "--data-binary", &at_bin, &kv("bin%00key%2Fx")]);
    assert!(code.starts_with('2'), "{code}");
    assert_eq!(curl(&[&kv("bin%00key%2Fx")]), ("200".into(), value));
    // History, newest first, as JSON with base64 values.
    curl(&["-X", "PUT", "--data-binary", "again", &kv("hello")]);
    let (code, body) = curl(&[&format!("{}?history=5", kv("hello"))]);
    assert_eq!(code, "200");
    let h: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let versions = h["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2, "{h}");
    assert_eq!(versions[0]["value"], "YWdhaW4=", "{h}");
    // Delete, then 404.
    assert_eq!(curl(&["-X", "DELETE", &kv("hello")]).0, "200");
    assert_eq!(curl(&[&kv("hello")]).0, "404");
    assert_eq!(curl(&["-X", "DELETE", &kv("hello")]).0, "404");
    // Listing by prefix.
    for k in ["p/1", "p/2", "q/1"] {
        curl(&["-X", "PUT", "--data-binary", "v", &kv(k)]);
    }
    let (code, body) = curl(&[&format!("{base}/kv?prefix=p/&limit=10")]);
    assert_eq!(code, "200");
    let listing = text(&body);
    assert!(
        listing.contains("p/1") && listing.contains("p/2") && !listing.contains("q/1"),
        "{listing}"
    );
    // Digests agree across master and workers once replication caught up.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let d: serde_json::Value =
            serde_json::from_slice(&curl(&[&format!("{base}/digest")]).1).expect("json");
        let master = d["master"]["digest"].clone();
        let workers = d["workers"].as_array().expect("workers").clone();
        if workers.len() == 2 && workers.iter().all(|w| w["digest"] == master) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "digests differ: {d}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, body) = curl(&[&format!("{base}/status")]);
    assert_eq!(code, "200");
    assert!(text(&body).contains("\"workers\""), "{}", text(&body));
    let (code, body) = curl(&[&format!("{base}/metrics")]);
    assert_eq!(code, "200");
    assert!(
        text(&body).contains("hypha_http_requests_total"),
        "{}",
        text(&body)
    );
    // Errors say what to fix.
    assert_eq!(curl(&["-X", "POST", &kv("x")]).0, "405");
    assert_eq!(curl(&[&kv("bad%zz")]).0, "400");
}

#[test]
fn the_compatibility_dialects_through_curl() {
    let dir = TempDir::new("curl-compat");
    let (_node, base) = all_in_one(&dir);
    let u = |p: &str| format!("{base}{p}");
    assert_eq!(curl(&["-d", "key=k1&value=v+1", &u("/set")]).0, "200");
    assert_eq!(curl(&[&u("/get?key=k1")]), ("200".into(), b"v 1".to_vec()));
    assert_eq!(curl(&["-d", "key=k1", &u("/delete")]).0, "200");
    assert_eq!(curl(&[&u("/get?key=k1")]).0, "404");
    let json = ["-H", "Content-Type: application/json"];
    let (code, _) = curl(&[
        json[0],
        json[1],
        "-d",
        r#"{"key":"hello","value":"world"}"#,
        &u("/store"),
    ]);
    assert_eq!(code, "200");
    let (code, body) = curl(&[
        "-X",
        "GET",
        json[0],
        json[1],
        "-d",
        r#"{"key":"hello"}"#,
        &u("/store/key"),
    ]);
    assert_eq!(
        (code.as_str(), text(&body).as_str()),
        ("200", r#"{"value":"world"}"#)
    );
    let (code, body) = curl(&[
        "-X",
        "GET",
        json[0],
        json[1],
        "-d",
        r#"{"key":"nope"}"#,
        &u("/store/key"),
    ]);
    assert_eq!(
        (code.as_str(), text(&body).as_str()),
        ("404", r#"{"error":"Key not found"}"#)
    );
    let (code, body) = curl(&[&u("/store/hash")]);
    assert_eq!(code, "200");
    assert!(text(&body).starts_with(r#"{"hash":""#), "{}", text(&body));
    let batch = r#"[{"key":{"encoding":"string","data":"a"},"value":{"encoding":"string","data":"1"}},
                   {"key":{"encoding":"binary","data":"AAE="},"value":{"encoding":"binary","data":"/w=="}}]"#;
    let (code, body) = curl(&["-X", "PUT", json[0], json[1], "-d", batch, &u("/set")]);
    assert_eq!(code, "200");
    assert!(text(&body).contains(r#""keys_added":2"#), "{}", text(&body));
    let (code, body) = curl(&[
        json[0],
        json[1],
        "-d",
        r#"[{"encoding":"string","data":"a"}]"#,
        &u("/fetch"),
    ]);
    assert_eq!(code, "200");
    assert!(text(&body).contains(r#""data":"1""#), "{}", text(&body));
    let (code, body) = curl(&[&u("/fetch")]);
    assert_eq!(code, "200");
    assert!(text(&body).contains("hello"), "{}", text(&body));
    let (code, body) = curl(&[
        json[0],
        json[1],
        "-d",
        r#"[{"encoding":"string","data":"a"},{"encoding":"string","data":"zz"}]"#,
        &u("/query"),
    ]);
    assert_eq!(code, "200");
    let q: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(q[0]["value"], true, "{q}");
    assert_eq!(q[1]["value"], false, "{q}");
    assert_eq!(curl(&["-X", "PUT", &u("/put/pk/pv")]).0, "200");
    assert_eq!(curl(&[&u("/get/pk/")]), ("200".into(), b"pv".to_vec()));
    assert_eq!(curl(&["-X", "DELETE", &u("/delete/pk")]).0, "200");
    assert_eq!(curl(&[&u("/get/pk")]).0, "404");

    // The master and its workers, as diststore's routes show them.
    let (code, body) = curl(&[&u("/status")]);
    assert_eq!(code, "200");
    let status: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let (code, body) = curl(&[&u("/master/")]);
    assert_eq!(code, "200");
    let master: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(master["addr"], status["master"]["addr"], "{master}");
    assert_eq!(
        master["workers"].as_array().map(Vec::len),
        Some(2),
        "{master}"
    );
    let (code, body) = curl(&[&u("/worker/2")]);
    assert_eq!(code, "200");
    let second: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(second["addr"], status["workers"][1]["addr"], "{second}");
    assert_eq!(second["idx"], 2);
    let (code, body) = curl(&[&u("/worker/3")]);
    assert_eq!(code, "404");
    assert!(
        text(&body).contains("hypha worker --data DIR --master"),
        "{}",
        text(&body)
    );
    assert_eq!(curl(&[&u("/worker/0")]).0, "400");
}

#[test]
fn reads_survive_a_killed_worker_and_writes_fail_cleanly_without_a_master() {
    let dir = TempDir::new("curl-roles");
    let (mport, w1port, w2port, hport) = (free_port(), free_port(), free_port(), free_port());
    let hb = ["--heartbeat-ms", "100", "--heartbeat-timeout-ms", "500"];
    let m_listen = loopback(mport).to_string();
    let mdata = data(&dir, "m");
    let mut margs = vec!["master", "--data", &mdata, "--listen", &m_listen];
    margs.extend_from_slice(&hb);
    let mut master = Node::start(loopback(mport), &margs);
    let start_worker = |name: &str, port: u16| {
        let listen = loopback(port).to_string();
        let d = data(&dir, name);
        let mut a = vec![
            "worker", "--data", &d, "--master", &m_listen, "--listen", &listen,
        ];
        a.extend_from_slice(&hb);
        Node::start(loopback(port), &a)
    };
    let mut w1 = start_worker("w1", w1port);
    let _w2 = start_worker("w2", w2port);
    let h_listen = loopback(hport).to_string();
    let workers = format!("{},{}", loopback(w1port), loopback(w2port));
    let mut hargs = vec![
        "http",
        "--listen",
        &h_listen,
        "--master",
        &m_listen,
        "--workers",
        &workers,
    ];
    hargs.extend_from_slice(&hb);
    let edge = Node::start(loopback(hport), &hargs);
    edge.wait_log("http: listening", 0, Duration::from_secs(30));
    let base = format!("http://{h_listen}");
    // Node::start does not wait for listeners, so the edge may come up
    // before the master does. A first PUT may also land on the master but
    // time out at the edge, making the retry an overwrite (200): any 2xx
    // proves the master takes writes.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = curl(&[
            "-X",
            "PUT",
            "--data-binary",
            "v",
            &format!("{base}/kv/warm"),
        ]);
        if code.starts_with('2') {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "master never took a write: last answer {code} {}\nedge log:\n{}\nmaster log:\n{}",
            text(&body),
            edge.log_text(),
            master.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 0..200 {
        let url = format!("{base}/kv/k{i}");
        assert!(
            curl(&["-X", "PUT", "--data-binary", &format!("v{i}"), &url])
                .0
                .starts_with('2')
        );
        if i == 100 {
            w1.kill9();
        }
        assert_eq!(
            curl(&[&url]),
            ("200".into(), format!("v{i}").into_bytes()),
            "read {i}"
        );
    }
    master.kill9();
    let (code, body) = curl(&[
        "-X",
        "PUT",
        "--data-binary",
        "x",
        &format!("{base}/kv/late"),
    ]);
    assert_eq!(code, "503", "{}", text(&body));
    assert!(text(&body).contains("master"), "{}", text(&body));
    assert_eq!(
        curl(&[&format!("{base}/kv/k150")]),
        ("200".into(), b"v150".to_vec()),
        "reads keep working"
    );
}
