//! The status page in a real browser: first contentful paint and bytes
//! transferred, hypha's edge (`/`, drawing live `/status` and `/metrics`)
//! beside nginx serving the very same HTML file (which then fails its
//! fetches: a baseline for the browser's own cost of painting it).
//!
//! ```text
//! cd benches && CARGO_TARGET_DIR=/work/target-bench cargo run --release --bin page -- \
//!     --hypha /work/main/target/deploy/hypha [--loads 40]
//! ```
//!
//! Needs `chromium` and `nginx` on the PATH. Loads alternate between the
//! two servers in one headless browser (warm, as an operator reloading),
//! each a fresh navigation; prints p50 and p90 of first contentful paint.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn get(port: u16, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    out.split_off(at)
}

fn start_hypha(binary: &str, dir: &std::path::Path) -> (Killed, u16) {
    let port = free_port();
    let child = Command::new(binary)
        .args(["--data", dir.to_str().unwrap(), "--http", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::null())
        .spawn()
        .expect("hypha");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "hypha never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Killed(child), port)
}

fn start_nginx(dir: &std::path::Path, html: &[u8]) -> (Killed, u16) {
    let port = free_port();
    std::fs::write(dir.join("index.html"), html).unwrap();
    let conf = format!(
        "daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{}}\nhttp {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d};\n\
         fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
         server {{ listen 127.0.0.1:{port}; root {d}; default_type text/html; }} }}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new("nginx")
        .args(["-c", dir.join("nginx.conf").to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Killed(child), port)
}

fn devtools(profile: &std::path::Path) -> (Killed, Socket) {
    let mut child = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg("--remote-debugging-port=0")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines.next().expect("chromium exited").unwrap();
        if let Some(rest) = line.split("DevTools listening on ws://").nth(1) {
            break rest.split(['/', ':']).nth(1).unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let deadline = Instant::now() + Duration::from_secs(30);
    let ws = loop {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET /json/list HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("[]");
        let list: Value = serde_json::from_str(body).unwrap_or(json!([]));
        let page = list.as_array().into_iter().flatten().find(|t| t["type"] == "page");
        if let Some(ws) = page.and_then(|t| t["webSocketDebuggerUrl"].as_str()) {
            break ws.to_string();
        }
        assert!(Instant::now() < deadline, "no page target");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (socket, _) = tungstenite::connect(ws.as_str()).expect("websocket");
    (Killed(child), socket)
}

fn call(socket: &mut Socket, id: &mut u64, method: &str, params: Value) -> Value {
    *id += 1;
    let msg = json!({"id": *id, "method": method, "params": params}).to_string();
    socket.send(tungstenite::Message::text(msg)).unwrap();
    loop {
        let m = socket.read().unwrap();
        let Ok(text) = m.to_text() else { continue };
        let v: Value = serde_json::from_str(text).unwrap();
        if v["id"] == json!(*id) {
            return v["result"].clone();
        }
    }
}

fn eval(socket: &mut Socket, id: &mut u64, expr: &str) -> Value {
    let r = call(socket, id, "Runtime.evaluate", json!({"expression": expr, "returnByValue": true, "awaitPromise": true}));
    r["result"]["value"].clone()
}

/// One fresh load of `url`: (first contentful paint ms, bytes transferred).
fn load(socket: &mut Socket, id: &mut u64, url: &str) -> (f64, f64) {
    call(socket, id, "Page.navigate", json!({"url": url}));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fcp = eval(socket, id, &format!(
            "location.href === '{url}' && document.readyState === 'complete' && \
             (performance.getEntriesByName('first-contentful-paint')[0] || {{}}).startTime"
        ));
        if let Some(ms) = fcp.as_f64() {
            let bytes = eval(socket, id, "performance.getEntriesByType('navigation')[0].transferSize");
            return (ms, bytes.as_f64().unwrap_or(-1.0));
        }
        assert!(Instant::now() < deadline, "{url} never painted");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let binary = arg("--hypha").expect("--hypha PATH");
    let loads: usize = arg("--loads").map_or(40, |n| n.parse().unwrap());
    let tmp = std::env::temp_dir().join(format!("hypha-page-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for d in ["data", "nginx", "profile"] {
        std::fs::create_dir_all(tmp.join(d)).unwrap();
    }
    let (_hypha, hport) = start_hypha(&binary, &tmp.join("data"));
    let html = get(hport, "/");
    let (_nginx, nport) = start_nginx(&tmp.join("nginx"), &html);
    let (_chromium, mut socket) = devtools(&tmp.join("profile"));
    let mut id = 0;
    let (hurl, nurl) = (format!("http://127.0.0.1:{hport}/"), format!("http://127.0.0.1:{nport}/"));
    let (mut h, mut n, mut hb) = (Vec::new(), Vec::new(), 0.0);
    for _ in 0..3 {
        load(&mut socket, &mut id, &hurl);
        load(&mut socket, &mut id, &nurl);
    }
    for _ in 0..loads {
        let (ms, bytes) = load(&mut socket, &mut id, &hurl);
        h.push(ms);
        hb = bytes;
        n.push(load(&mut socket, &mut id, &nurl).0);
    }
    println!("page: {} bytes of HTML, {hb} bytes transferred per load (hypha)", html.len());
    println!(
        "first contentful paint, ms over {loads} loads each: hypha p50 {:.1} p90 {:.1}; nginx (same HTML) p50 {:.1} p90 {:.1}",
        percentile(&mut h.clone(), 0.5),
        percentile(&mut h, 0.9),
        percentile(&mut n.clone(), 0.5),
        percentile(&mut n, 0.9)
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
