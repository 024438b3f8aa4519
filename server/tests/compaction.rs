//! Compaction with real processes: `Compact` over the protocol on master and
//! worker, `POST /admin/compact` through the HTTP edge (token-protected),
//! its counters in /metrics, and `hypha compact` offline — after which a
//! worker that had not applied the dropped deletes gets a snapshot instead of
//! silently keeping deleted keys.

mod common;
use common::*;
use hypha_net::Message;
use std::process::Command;
use std::time::{Duration, Instant};

const FAST_HB: [&str; 4] = ["--heartbeat-ms", "100", "--heartbeat-timeout-ms", "600"];

fn put_all(c: &mut Client, round: u32, n: u32) {
    for i in 0..n {
        let v = format!("value-{i}-round-{round}-{}", "x".repeat(100));
        match c.put(format!("key-{i}").as_bytes(), v.as_bytes()) {
            Message::Written { .. } => {}
            other => panic!("put {i}: {other:?}"),
        }
    }
}

fn delete(c: &mut Client, key: &str) {
    let key = key.as_bytes().to_vec();
    match c.call(|req_id| Message::Delete { req_id, key }) {
        Message::Deleted { .. } => {}
        other => panic!("delete: {other:?}"),
    }
}

fn compact(c: &mut Client) -> hypha_net::CompactInfo {
    match c.call(|req_id| Message::Compact { req_id, run: true }) {
        Message::CompactIs { info, .. } => info,
        other => panic!("compact: {other:?}"),
    }
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl is not installed: apt-get install curl (.ci/run does)");
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = body.rsplit_once('\n').expect("status line");
    (code.to_string(), body.to_string())
}

#[test]
fn compaction_through_protocol_http_and_offline_keeps_replicas_right() {
    let dir = TempDir::new("compaction-e2e");
    let mport = free_port();
    let listen = loopback(mport).to_string();
    let mdata = data(&dir, "master");
    let mut margs = vec![
        "master", "--data", &mdata, "--listen", &listen, "--fsync", "never",
    ];
    margs.extend_from_slice(&FAST_HB);
    let mut m = Node::start(loopback(mport), &margs);
    m.wait_log("(tcp+udp)", 0, Duration::from_secs(30));
    let wport = free_port();
    let wlisten = loopback(wport).to_string();
    let wdata = data(&dir, "w1");
    let mut wargs = vec![
        "worker", "--data", &wdata, "--master", &listen, "--listen", &wlisten,
    ];
    wargs.extend_from_slice(&FAST_HB);
    let mut w = Node::start(loopback(wport), &wargs);
    let mut mc = Client::wait_connect(m.addr);
    let mut wc = Client::wait_connect(w.addr);

    // Overwrite every key several times, delete some.
    for round in 0..4 {
        put_all(&mut mc, round, 1500);
    }
    for i in (0..1500).step_by(10) {
        delete(&mut mc, &format!("key-{i}"));
    }
    converge(&mut mc, &mut wc, Duration::from_secs(20));

    // Compact both over the protocol: space shrinks, contents do not change.
    let (digest, _) = mc.digest();
    let info = compact(&mut mc);
    assert_eq!(info.compactions, 1);
    assert!(
        info.last_bytes_after * 2 < info.last_bytes_before,
        "{info:?}"
    );
    let winfo = compact(&mut wc);
    assert!(
        winfo.last_bytes_after < winfo.last_bytes_before,
        "{winfo:?}"
    );
    assert_eq!(mc.digest().0, digest);
    converge(&mut mc, &mut wc, Duration::from_secs(20));
    assert_eq!(
        wc.get(b"key-7").as_deref(),
        Some(format!("value-7-round-3-{}", "x".repeat(100)).as_bytes())
    );
    assert_eq!(wc.get(b"key-10"), None);

    // The HTTP edge: POST /admin/compact needs the token; /metrics shows it.
    let hport = free_port();
    let http = format!("127.0.0.1:{hport}");
    let mut hargs = vec![
        "http", "--listen", &http, "--master", &listen, "--token", "s3cret",
    ];
    hargs.extend_from_slice(&FAST_HB);
    let edge = Node::start(loopback(hport), &hargs);
    edge.wait_log("http: listening", 0, Duration::from_secs(30));
    let url = format!("http://{http}/admin/compact");
    let (code, _) = curl(&["-X", "POST", &url]);
    assert_eq!(code, "401");
    let (code, body) = curl(&["-X", "POST", "-H", "Authorization: Bearer s3cret", &url]);
    assert_eq!(code, "200", "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(report["master"]["compactions"], 2, "{body}");
    assert!(report["master"]["bytes_after"].as_u64().is_some(), "{body}");
    assert_eq!(
        report["workers"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
    assert_eq!(report["workers"][0]["compactions"], 2, "{body}");
    // /metrics is refreshed in the background: wait for the counter.
    let metrics_url = format!("http://{http}/metrics");
    let needle = format!("hypha_compactions_total{{node=\"{listen}\"}} 2");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = curl(&[&metrics_url]);
        if body.contains(&needle) && body.contains("hypha_live_bytes{node=") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in /metrics:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(edge);

    // The worker stops; deletes go on; the master is compacted offline,
    // which drops every delete. The worker, back, must get a snapshot.
    w.kill9();
    drop(wc);
    for i in (1..1500).step_by(10) {
        delete(&mut mc, &format!("key-{i}"));
    }
    put_all(&mut mc, 9, 100);
    drop(mc);
    m.terminate();
    let out = Command::new(env!("CARGO_BIN_EXE_hypha"))
        .args(["compact", "--data", &mdata])
        .output()
        .expect("run hypha compact");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("compacted"), "{stdout}");
    // Offline compaction refuses a directory that holds no database.
    let bad = Command::new(env!("CARGO_BIN_EXE_hypha"))
        .args(["compact", "--data", &dir.join("nothing").to_string_lossy()])
        .output()
        .expect("run hypha compact");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no hypha database"));

    m.restart();
    m.wait_log("(tcp+udp)", 0, Duration::from_secs(30));
    w.restart();
    m.wait_log("sending it a snapshot", 0, Duration::from_secs(30));
    let mut mc = Client::wait_connect(m.addr);
    let mut wc = Client::wait_connect(w.addr);
    converge(&mut mc, &mut wc, Duration::from_secs(30));
    for i in [101u32, 111, 1201, 1491] {
        assert_eq!(
            wc.get(format!("key-{i}").as_bytes()),
            None,
            "key-{i} deleted"
        );
    }
    // Deleted, then written again after the delete: the new value.
    assert_eq!(
        wc.get(b"key-11").as_deref(),
        Some(format!("value-11-round-9-{}", "x".repeat(100)).as_bytes())
    );
    assert!(wc.get(b"key-1102").is_some());
}
