//! A headless Chromium driven over the DevTools protocol: open a page,
//! evaluate JavaScript in it, take screenshots. The browser is Debian's
//! `chromium` (or `HYPHA_CHROMIUM`); `.ci/run` installs it.

use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The longest one DevTools call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

/// A running headless browser with one page open.
pub struct Browser {
    child: Child,
    socket: Socket,
    next_id: u64,
    _profile: super::TempDir,
}

/// The browser to run: `HYPHA_CHROMIUM`, else `chromium` or
/// `chromium-browser` on the PATH.
pub fn chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("HYPHA_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

impl Browser {
    /// Starts the browser on `url` and connects to that page.
    pub fn open(binary: &Path, url: &str) -> Browser {
        let profile = super::TempDir::new("chromium");
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--window-size=1100,700",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.0.display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start chromium");
        let port = devtools_port(&mut child);
        let page = page_socket_url(port, url);
        let (socket, _) = tungstenite::connect(page.as_str()).expect("DevTools websocket");
        if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = socket.get_ref() {
            // A browser that stops answering fails the test instead of hanging it.
            tcp.set_read_timeout(Some(CALL_TIMEOUT))
                .expect("DevTools socket timeout");
        }
        Browser {
            child,
            socket,
            next_id: 1,
            _profile: profile,
        }
    }

    /// Calls a DevTools method and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket
            .send(tungstenite::Message::text(request))
            .expect("DevTools send");
        loop {
            let message = self.socket.read().expect("DevTools read");
            let Ok(text) = message.to_text() else {
                continue;
            };
            let answer: Value = serde_json::from_str(text).expect("DevTools JSON");
            if answer["id"] != json!(id) {
                continue; // an event
            }
            if let Some(error) = answer.get("error") {
                panic!("{method} failed: {error}");
            }
            return answer["result"].clone();
        }
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns
    /// its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(thrown) = result.get("exceptionDetails") {
            panic!("{expression} threw: {thrown}");
        }
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` until it is `true`, for at most `within`;
    /// returns how long that took.
    pub fn wait_for(&mut self, expression: &str, within: Duration) -> Duration {
        let start = Instant::now();
        // Before the page has loaded, the expression may throw: not yet.
        let guarded = format!(
            "(() => {{ try {{ return ({expression}); }} catch (e) {{ return false; }} }})()"
        );
        loop {
            if self.eval(&guarded) == json!(true) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "{expression} did not become true within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Saves a PNG of the page to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("data"))
            .expect("base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(path, png).expect("screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the DevTools port from the browser's "DevTools listening on
/// ws://127.0.0.1:PORT/..." line.
fn devtools_port(child: &mut Child) -> u16 {
    let stderr = child.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("chromium exited before it listened")
            .expect("chromium stderr");
        if let Some(rest) = line.split("DevTools listening on ws://").nth(1) {
            let port = rest.split(['/', ':']).nth(1).expect("port");
            break port.parse().expect("a port number");
        }
    };
    // Keep draining so the browser never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    port
}

/// The websocket URL of the page target showing `url`.
fn page_socket_url(port: u16, url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = devtools_get(port, "/json/list");
        let targets: Value = serde_json::from_str(&list).unwrap_or(json!([]));
        let page =
            targets.as_array().into_iter().flatten().find(|t| {
                t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(url))
            });
        if let Some(ws) = page.and_then(|t| t["webSocketDebuggerUrl"].as_str()) {
            return ws.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no page target for {url}: {list}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn devtools_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("DevTools HTTP");
    stream
        .set_read_timeout(Some(CALL_TIMEOUT))
        .expect("DevTools HTTP timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .expect("request");
    // The DevTools server keeps the connection open: read by Content-Length.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let got = stream.read(&mut chunk).expect("DevTools answer");
        answer.extend_from_slice(&chunk[..got]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if got == 0 || length.is_some_and(|n| body.len() >= n) {
                return body.to_string();
            }
        }
        assert!(got > 0, "DevTools closed the connection early");
    }
}
