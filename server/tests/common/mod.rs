//! Helpers for end-to-end tests: start the real `hypha` binary, wait for
//! what it logs, and talk the wire protocol to its nodes.
#![allow(dead_code)]

pub mod browser;
pub mod group;
pub mod history;
pub mod netns;
pub mod relay;

use hypha_net::{Message, Purpose, Role};
use hypha_server::wire::{self, Reader, Writer};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "hypha-e2e-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port free for both TCP and UDP right now, below the kernel's
/// ephemeral range: a port from `bind(0)` could be handed, before the test's
/// process binds it, to another test's outgoing connection or `bind(0)`
/// (CI saw "Address already in use"). Each call in a process tries the
/// next port of a range that starts at a place picked by its pid.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let low = 10_000u32;
    let high = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|&h| h > low + 1_000)
        .unwrap_or(32_768);
    let span = high - low;
    let start = std::process::id().wrapping_mul(7_919) % span;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = (low + (start + n) % span) as u16;
        let tcp = TcpListener::bind(("127.0.0.1", port));
        if tcp.is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running `hypha` process whose log lines are collected.
pub struct Node {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
    pub addr: SocketAddr,
    args: Vec<String>,
}

impl Node {
    pub fn start(addr: SocketAddr, args: &[&str]) -> Node {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hypha"))
            .args(&args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start hypha");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log").push(line);
            }
        });
        Node {
            child,
            log,
            addr,
            args,
        }
    }

    /// Waits until a log line contains `needle` (after `skip` lines).
    pub fn wait_log(&self, needle: &str, skip: usize, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            {
                let log = self.log.lock().expect("log");
                if let Some(i) = log.iter().skip(skip).position(|l| l.contains(needle)) {
                    return skip + i;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?} within {within:?}; log:\n{}",
                self.log.lock().expect("log").join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the node logged so far, for a failure message.
    pub fn log_text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    pub fn log_lines(&self) -> usize {
        self.log.lock().expect("log").len()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// Starts the same command again (same data, same ports).
    pub fn restart(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        *self = Node::start(self.addr, &args);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A wire-protocol client (what the edge speaks).
pub struct Client {
    r: Reader,
    w: Writer,
    next: u64,
}

impl Client {
    /// Connects with the public insecure key (what nodes on loopback use
    /// without a key file).
    pub fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        Client::connect_with(addr, &hypha_net::ClusterKeys::insecure())
    }

    /// Connects proving `keys`.
    pub fn connect_with(
        addr: SocketAddr,
        keys: &hypha_net::ClusterKeys,
    ) -> std::io::Result<Client> {
        smol::block_on(async {
            let hello = wire::hello("hypha", Role::Client, 7, Purpose::Request)?;
            let (r, w, answer, _) = wire::connect(addr, hello, keys).await?;
            match answer {
                Message::Welcome(_) => Ok(Client { r, w, next: 1 }),
                other => Err(std::io::Error::other(format!("refused: {other:?}"))),
            }
        })
    }

    /// Connects, retrying while the node starts.
    pub fn wait_connect(addr: SocketAddr) -> Client {
        Client::wait_connect_with(addr, &hypha_net::ClusterKeys::insecure())
    }

    /// Connects with `keys`, retrying while the node starts.
    pub fn wait_connect_with(addr: SocketAddr, keys: &hypha_net::ClusterKeys) -> Client {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Client::connect_with(addr, keys) {
                Ok(c) => return c,
                Err(e) => assert!(Instant::now() < deadline, "cannot connect to {addr}: {e}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn call(&mut self, f: impl FnOnce(u64) -> Message) -> Message {
        self.try_call(f).expect("an answer")
    }

    /// As [`Client::call`], with the connection's failure as an error.
    pub fn try_call(&mut self, f: impl FnOnce(u64) -> Message) -> std::io::Result<Message> {
        let id = self.next;
        self.next += 1;
        smol::block_on(async {
            self.w.send(&f(id)).await?;
            self.r
                .recv()
                .await?
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
        })
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Message {
        self.call(|req_id| Message::Put {
            req_id,
            key: key.to_vec(),
            value: value.to_vec(),
        })
    }

    pub fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        match self.call(|req_id| Message::Get {
            req_id,
            key: key.to_vec(),
            min_seq: 0,
        }) {
            Message::Value { value, .. } => value.map(|(_, v)| v),
            other => panic!("get: {other:?}"),
        }
    }

    /// (digest, seq) of the node.
    pub fn digest(&mut self) -> (u64, u64) {
        self.try_digest().expect("node unavailable")
    }

    /// (digest, seq), or `None` while the node is unavailable (a worker
    /// swapping in a snapshot).
    pub fn try_digest(&mut self) -> Option<(u64, u64)> {
        match self.call(|req_id| Message::Digest { req_id }) {
            Message::DigestIs { digest, seq, .. } => Some((digest, seq)),
            Message::Error {
                code: hypha_net::ErrorCode::Unavailable,
                ..
            } => None,
            other => panic!("digest: {other:?}"),
        }
    }
}

/// Waits until `worker`'s digest equals `master`'s; returns how long it took.
pub fn converge(master: &mut Client, worker: &mut Client, within: Duration) -> Duration {
    let start = Instant::now();
    let target = master.digest();
    loop {
        let now = worker.try_digest();
        if now == Some(target) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "worker at {now:?}, master at {target:?} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn data(dir: &TempDir, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

/// `hypha --data DIR/data --http ADDR` plus `more`, the whole cluster in
/// one process, once its edge listens.
#[allow(dead_code)] // not every test binary uses every helper
pub fn all_in_one(dir: &TempDir, more: &[&str]) -> (Node, SocketAddr) {
    let http = loopback(free_port());
    let (listen, d) = (http.to_string(), data(dir, "data"));
    let mut args = vec!["--data", &d, "--http", &listen];
    args.extend_from_slice(more);
    let node = Node::start(http, &args);
    node.wait_log("http: listening", 0, Duration::from_secs(30));
    (node, http)
}

pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Runs `hypha keygen DIR/name`; returns the key file's path and its keys.
pub fn keygen(dir: &TempDir, name: &str) -> (String, hypha_net::ClusterKeys) {
    let path = dir.join(name);
    let status = Command::new(env!("CARGO_BIN_EXE_hypha"))
        .arg("keygen")
        .arg(&path)
        .status()
        .expect("cannot run hypha keygen");
    assert!(status.success(), "hypha keygen failed");
    let keys = hypha_server::keys::read_key_file(&path).expect("keygen wrote a key");
    (path_str(&path), keys)
}

/// Anonymous memory (RssAnon) of a process, in KiB, from /proc.
pub fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/PID/status")
}

/// A master, one worker and an edge as separate processes, heartbeats every
/// 100 ms (a master presumed gone after 500 ms); the edge is listening.
pub struct Roles {
    pub master: Node,
    pub worker: Node,
    pub edge: Node,
    /// Where the edge answers HTTP.
    pub http: SocketAddr,
}

pub fn start_roles(dir: &TempDir) -> Roles {
    let (mport, wport, hport) = (free_port(), free_port(), free_port());
    let hb = ["--heartbeat-ms", "100", "--heartbeat-timeout-ms", "500"];
    let (m_listen, w_listen, h_listen) = (
        loopback(mport).to_string(),
        loopback(wport).to_string(),
        loopback(hport).to_string(),
    );
    let (mdata, wdata) = (data(dir, "m"), data(dir, "w"));
    let mut margs = vec!["master", "--data", &mdata, "--listen", &m_listen];
    margs.extend_from_slice(&hb);
    let master = Node::start(loopback(mport), &margs);
    let mut wargs = vec![
        "worker", "--data", &wdata, "--master", &m_listen, "--listen", &w_listen,
    ];
    wargs.extend_from_slice(&hb);
    let worker = Node::start(loopback(wport), &wargs);
    let mut hargs = vec![
        "http",
        "--listen",
        &h_listen,
        "--master",
        &m_listen,
        "--workers",
        &w_listen,
    ];
    hargs.extend_from_slice(&hb);
    let edge = Node::start(loopback(hport), &hargs);
    edge.wait_log("http: listening", 0, Duration::from_secs(30));
    Roles {
        master,
        worker,
        edge,
        http: loopback(hport),
    }
}
