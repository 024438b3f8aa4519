//! The status page at `/` in a real browser (headless Chromium over the
//! DevTools protocol) in front of real processes: it asks for the token
//! once (`--token-reads`), shows the members and figures `/status` gives,
//! marks a killed worker down without a reload, and its read pass opens
//! reads only. Screenshots go to `target/screenshots/` (README "Status
//! page").

mod common;
mod http_support;

use common::browser::{chromium, Browser};
use common::{data, free_port, loopback, Node, TempDir};
use http_support::Client;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const TOKEN: &str = "page-test-token";
const HEARTBEAT: [&str; 4] = ["--heartbeat-ms", "100", "--heartbeat-timeout-ms", "500"];
/// The edge's `--heartbeat-timeout-ms` above, and the page's `REFRESH_MS`.
const HEARTBEAT_TIMEOUT_MS: u64 = 500;
const PAGE_REFRESH_MS: u64 = 1_000;

struct Cluster {
    _master: Node,
    workers: Vec<Node>,
    _edge: Node,
    http: SocketAddr,
}

fn start(dir: &TempDir) -> Cluster {
    let node = |args: &[&str], port: u16| {
        let mut all = args.to_vec();
        all.extend_from_slice(&HEARTBEAT);
        Node::start(loopback(port), &all)
    };
    let mport = free_port();
    let m = loopback(mport).to_string();
    let master = node(
        &["master", "--data", &data(dir, "m"), "--listen", &m],
        mport,
    );
    let mut workers = Vec::new();
    let mut listens = Vec::new();
    for i in 0..2 {
        let port = free_port();
        let listen = loopback(port).to_string();
        let wdata = data(dir, &format!("w{i}"));
        let args = [
            "worker", "--data", &wdata, "--master", &m, "--listen", &listen,
        ];
        workers.push(node(&args, port));
        listens.push(listen);
    }
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).expect("token file");
    let (hport, token_path) = (free_port(), common::path_str(&token_file));
    let h = loopback(hport).to_string();
    let list = listens.join(",");
    let args = [
        "http",
        "--listen",
        &h,
        "--master",
        &m,
        "--workers",
        &list,
        "--token-file",
        &token_path,
        "--token-reads",
    ];
    let edge = node(&args, hport);
    edge.wait_log("http: listening", 0, Duration::from_secs(30));
    Cluster {
        _master: master,
        workers,
        _edge: edge,
        http: loopback(hport),
    }
}

fn authorized(http: SocketAddr, method: &str, target: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let bearer = format!("Bearer {TOKEN}");
    let mut client = Client::connect(http).expect("edge");
    let reply = client
        .request(method, target, &[("Authorization", &bearer)], body)
        .expect("reply");
    (reply.status, reply.body)
}

fn status(http: SocketAddr) -> Value {
    let (code, body) = authorized(http, "GET", "/status", b"");
    assert_eq!(code, 200);
    serde_json::from_slice(&body).expect("status JSON")
}

/// Every write acknowledged and on both workers, so the figures hold still.
fn write_and_settle(http: SocketAddr, n: usize) -> Value {
    for i in 0..n {
        let target = format!("/kv/page-{i}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while authorized(http, "PUT", &target, b"value").0 != 201 {
            assert!(std::time::Instant::now() < deadline, "PUT {target}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = status(http);
        let caught_up = s["workers"].as_array().is_some_and(|ws| {
            ws.len() == 2
                && ws
                    .iter()
                    .all(|w| w["lag"] == json!(0) && w["healthy"] == json!(true))
        });
        if caught_up && s["master"]["seq"] == json!(n) {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "never settled: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const ROWS: &str = "JSON.stringify([...document.querySelectorAll('#nodes tbody tr')]\
    .map(r => [r.dataset.addr, r.dataset.health, Number(r.dataset.seq)]))";

/// What the page shows as (addr, up/down, seq), sorted.
fn rows(browser: &mut Browser) -> Vec<(String, String, u64)> {
    let text = browser.eval(ROWS);
    let mut rows: Vec<(String, String, u64)> =
        serde_json::from_str(text.as_str().expect("rows")).expect("rows JSON");
    rows.sort();
    rows
}

/// The same from `/status`.
fn expected(s: &Value) -> Vec<(String, String, u64)> {
    let health = |v: &Value| if v == &json!(true) { "up" } else { "down" }.to_string();
    let master = &s["master"];
    let mut rows = vec![(
        master["addr"].as_str().expect("addr").to_string(),
        health(&master["healthy"]),
        master["seq"].as_u64().expect("seq"),
    )];
    for w in s["workers"].as_array().expect("workers") {
        rows.push((
            w["addr"].as_str().expect("addr").to_string(),
            health(&w["healthy"]),
            w["applied_seq"].as_u64().expect("seq"),
        ));
    }
    rows.sort();
    rows
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots")
}

#[test]
fn the_page_shows_the_cluster_live_and_marks_a_dead_worker_down() {
    let Some(binary) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium (.ci/run)"
        );
        eprintln!("skipped: no chromium on the PATH (set HYPHA_CHROMIUM or install chromium)");
        return;
    };
    let dir = TempDir::new("status-page");
    let mut cluster = start(&dir);
    let settled = write_and_settle(cluster.http, 25);
    let url = format!("http://{}/", cluster.http);
    let mut browser = Browser::open(&binary, &url);

    // --token-reads: the page's own requests are refused until it has a pass.
    browser.wait_for(
        "!document.getElementById('login').hidden",
        Duration::from_secs(30),
    );
    assert_eq!(
        browser.eval("document.body.dataset.ticks || 'none'"),
        json!("none")
    );
    let wrong = "document.getElementById('token').value = 'not-it';\
        document.getElementById('login').requestSubmit(); true";
    browser.eval(wrong);
    browser.wait_for(
        "document.getElementById('loginerr').textContent.includes('not this edge')",
        Duration::from_secs(10),
    );
    let right = format!(
        "document.getElementById('token').value = '{TOKEN}';\
         document.getElementById('login').requestSubmit(); true"
    );
    browser.eval(&right);
    browser.wait_for(
        "Number(document.body.dataset.ticks) >= 2",
        Duration::from_secs(30),
    );
    assert_eq!(
        browser.eval("document.cookie"),
        json!(""),
        "the pass is HttpOnly"
    );

    // What it shows is what /status says.
    assert_eq!(rows(&mut browser), expected(&settled));
    assert_eq!(
        browser.eval("document.getElementById('seq').textContent"),
        json!("25")
    );
    let paint = browser.eval(
        "(performance.getEntriesByName('first-contentful-paint')[0] || {startTime: -1}).startTime",
    );
    let bytes = browser.eval("performance.getEntriesByType('navigation')[0].transferSize");
    eprintln!("status page: first contentful paint {paint} ms, {bytes} bytes transferred");
    browser.screenshot(&screenshots().join("status-page.png"));

    // The pass opens reads, never writes.
    let put = "fetch('/kv/from-page', {method: 'PUT', body: 'x'}).then(r => r.status)";
    assert_eq!(browser.eval(put), json!(401));
    let get = "fetch('/kv/page-3').then(r => r.status)";
    assert_eq!(browser.eval(get), json!(200));

    // A killed worker is marked down, live: same document, no reload.
    browser.eval("window.sameDocument = 42; true");
    let dead = cluster.workers[1].addr.to_string();
    cluster.workers[1].kill9();
    let took = browser.wait_for(
        &format!(
            "document.querySelector('#nodes tr[data-addr=\"{dead}\"]')?.dataset.health === 'down'"
        ),
        Duration::from_secs(30),
    );
    eprintln!(
        "status page: a killed worker shown down after {} ms (heartbeat timeout {HEARTBEAT_TIMEOUT_MS} ms + refresh {PAGE_REFRESH_MS} ms)",
        took.as_millis()
    );
    assert_eq!(browser.eval("window.sameDocument"), json!(42));
    browser.screenshot(&screenshots().join("status-page-worker-down.png"));
    let now = status(cluster.http);
    let down: Vec<_> = rows(&mut browser)
        .into_iter()
        .filter(|r| r.1 == "down")
        .map(|r| r.0)
        .collect();
    assert_eq!(down, vec![dead]);
    assert_eq!(rows(&mut browser), expected(&now));
    // Within the heartbeat timeout plus one refresh, with a second's grace
    // for the edge's own health check and a loaded CI machine.
    let bound = HEARTBEAT_TIMEOUT_MS + PAGE_REFRESH_MS + 1_000;
    assert!(
        took <= Duration::from_millis(bound),
        "shown down after {took:?}"
    );
}
