//! The three groups the failover benchmark runs, each as processes on
//! loopback, and the one client every system gets: a write per attempt,
//! 250 ms timeout, a new connection per attempt.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every client attempt's timeout (a write takes milliseconds on loopback;
/// a shorter timeout measures failover more finely, for every system alike).
const ATTEMPT: Duration = Duration::from_millis(250);
/// How long a group may take to become whole and writable again.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// A group under test.
pub trait Cluster {
    fn name(&self) -> String;
    /// The index of the process that leads now.
    fn leader(&mut self) -> Result<usize, String>;
    /// One write attempt; true if acknowledged.
    fn write(&mut self, n: u64) -> bool;
    fn pid(&self, node: usize) -> u32;
    /// Starts node `node` again (it was killed).
    fn restart(&mut self, node: usize) -> Result<(), String>;
    /// Waits until every node runs and a write is acknowledged.
    fn settle(&mut self) -> Result<(), String>;
}

/// A child process with its command line, its log in a file, killed on drop.
pub struct Proc {
    args: Vec<String>,
    log: PathBuf,
    child: Child,
}

impl Proc {
    fn spawn(args: Vec<String>, log: PathBuf) -> Result<Proc, String> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", args[0]))?;
        Ok(Proc { args, log, child })
    }

    fn restart(&mut self) -> Result<(), String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = Proc::spawn(self.args.clone(), self.log.clone())?;
        Ok(())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One request on a new connection, all of it within [`ATTEMPT`]; the
/// reply's bytes.
fn exchange(addr: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
    let deadline = Instant::now() + ATTEMPT;
    let mut s = TcpStream::connect_timeout(&addr, ATTEMPT).ok()?;
    s.set_nodelay(true).ok()?;
    s.set_write_timeout(Some(ATTEMPT)).ok()?;
    s.write_all(request).ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match s.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if complete(&out) {
                    return Some(out);
                }
            }
            Err(_) => return None,
        }
    }
}

/// Whether `b` holds a whole HTTP response (by Content-Length) or a whole
/// RESP reply line/array.
fn complete(b: &[u8]) -> bool {
    if b.starts_with(b"HTTP/") {
        let Some(end) = b.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&b[..end]).to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        return b.len() >= end + 4 + len;
    }
    resp_end(b, 0).is_some()
}

/// Where the RESP value starting at `at` ends, if it is all in `b`.
fn resp_end(b: &[u8], at: usize) -> Option<usize> {
    let line_end = at + b.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(&b[at + 1..line_end]).ok()?;
    let after = line_end + 2;
    match b.get(at)? {
        b'$' => match head.parse::<i64>().ok()? {
            n if n < 0 => Some(after),
            n => (b.len() >= after + n as usize + 2).then_some(after + n as usize + 2),
        },
        b'*' => {
            let mut end = after;
            for _ in 0..head.parse::<i64>().ok()?.max(0) {
                end = resp_end(b, end)?;
            }
            Some(end)
        }
        _ => Some(after),
    }
}

fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let reply = exchange(addr, &req)?;
    let status = std::str::from_utf8(reply.get(9..12)?).ok()?.parse().ok()?;
    let body_at = reply.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some((status, reply[body_at..].to_vec()))
}

fn resp(addr: SocketAddr, parts: &[&str]) -> Option<String> {
    let mut req = format!("*{}\r\n", parts.len());
    for p in parts {
        req.push_str(&format!("${}\r\n{p}\r\n", p.len()));
    }
    let reply = exchange(addr, req.as_bytes())?;
    Some(String::from_utf8_lossy(&reply).into_owned())
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    while !ok() {
        if Instant::now() > deadline {
            return Err(format!("{what} within {SETTLE_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Three `hypha member`s and an edge.
pub struct HyphaGroup {
    timing: (u64, u64),
    members: Vec<Proc>,
    _edge: Proc,
    edge: SocketAddr,
}

impl HyphaGroup {
    pub fn start(bin: &str, dir: &Path, hb: u64, election: u64) -> Result<HyphaGroup, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let addrs: Vec<SocketAddr> = (0..3)
            .map(|_| free_port().map(loopback))
            .collect::<Result<_, _>>()?;
        let peers = addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for (i, a) in addrs.iter().enumerate() {
            let args = [
                bin,
                "member",
                "--data",
                &dir.join(format!("m{i}")).to_string_lossy(),
                "--listen",
                &a.to_string(),
                "--peers",
                &peers,
                "--heartbeat-ms",
                &hb.to_string(),
                "--election-timeout-ms",
                &election.to_string(),
            ]
            .map(String::from)
            .to_vec();
            members.push(Proc::spawn(args, dir.join(format!("m{i}.log")))?);
        }
        let edge = loopback(free_port()?);
        let args = [
            bin,
            "http",
            "--listen",
            &edge.to_string(),
            "--members",
            &peers,
        ]
        .map(String::from)
        .to_vec();
        let edge_proc = Proc::spawn(args, dir.join("edge.log"))?;
        Ok(HyphaGroup {
            timing: (hb, election),
            members,
            _edge: edge_proc,
            edge,
        })
    }
}

impl Cluster for HyphaGroup {
    fn name(&self) -> String {
        format!(
            "hypha, 3 members, heartbeat {} ms, election {} ms",
            self.timing.0, self.timing.1
        )
    }

    fn leader(&mut self) -> Result<usize, String> {
        let term_of = |p: &Proc| {
            p.log_text()
                .lines()
                .filter_map(|l| l.split("leads term ").nth(1))
                .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
                .max()
        };
        (0..self.members.len())
            .filter_map(|i| term_of(&self.members[i]).map(|t| (t, i)))
            .max()
            .map(|(_, i)| i)
            .ok_or_else(|| "no hypha member leads".into())
    }

    fn write(&mut self, n: u64) -> bool {
        let path = format!("/kv/failover-{n}");
        matches!(http(self.edge, "PUT", &path, b"v"), Some((200 | 201, _)))
    }

    fn pid(&self, node: usize) -> u32 {
        self.members[node].child.id()
    }

    fn restart(&mut self, node: usize) -> Result<(), String> {
        self.members[node].restart()
    }

    fn settle(&mut self) -> Result<(), String> {
        // Every member follows or leads, and a write goes through.
        let mut n = 1u64 << 40;
        wait_until("a hypha write", || {
            n += 1;
            self.write(n)
        })?;
        std::thread::sleep(Duration::from_millis(4 * self.timing.1));
        Ok(())
    }
}

/// A three-member etcd at its defaults.
pub struct EtcdGroup {
    members: Vec<Proc>,
    clients: Vec<SocketAddr>,
}

impl EtcdGroup {
    pub fn start(bin: &str, dir: &Path) -> Result<EtcdGroup, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let clients: Vec<SocketAddr> = (0..3)
            .map(|_| free_port().map(loopback))
            .collect::<Result<_, _>>()?;
        let peers: Vec<SocketAddr> = (0..3)
            .map(|_| free_port().map(loopback))
            .collect::<Result<_, _>>()?;
        let cluster = (0..3)
            .map(|i| format!("e{i}=http://{}", peers[i]))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for i in 0..3 {
            let args = [
                bin.to_string(),
                "--name".into(),
                format!("e{i}"),
                "--data-dir".into(),
                dir.join(format!("e{i}")).to_string_lossy().into_owned(),
                "--listen-client-urls".into(),
                format!("http://{}", clients[i]),
                "--advertise-client-urls".into(),
                format!("http://{}", clients[i]),
                "--listen-peer-urls".into(),
                format!("http://{}", peers[i]),
                "--initial-advertise-peer-urls".into(),
                format!("http://{}", peers[i]),
                "--initial-cluster".into(),
                cluster.clone(),
            ]
            .to_vec();
            members.push(Proc::spawn(args, dir.join(format!("e{i}.log")))?);
        }
        Ok(EtcdGroup { members, clients })
    }

    fn status(&self, i: usize) -> Option<(u64, u64)> {
        let (code, body) = http(self.clients[i], "POST", "/v3/maintenance/status", b"{}")?;
        if code != 200 {
            return None;
        }
        let text = String::from_utf8_lossy(&body);
        let field = |name: &str| -> Option<u64> {
            let at = text.find(&format!("\"{name}\":\""))? + name.len() + 4;
            text[at..].split('"').next()?.parse().ok()
        };
        Some((field("member_id")?, field("leader")?))
    }
}

impl Cluster for EtcdGroup {
    fn name(&self) -> String {
        "etcd, 3 members, defaults (heartbeat 100 ms, election 1000 ms)".into()
    }

    fn leader(&mut self) -> Result<usize, String> {
        (0..3)
            .find(|&i| self.status(i).is_some_and(|(me, leader)| me == leader))
            .ok_or_else(|| "no etcd member leads".into())
    }

    fn write(&mut self, n: u64) -> bool {
        // base64 of "failover-N" is not needed to be exact: any key works.
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"dg==\"}}",
            b64(&format!("f{n}"))
        );
        let i = (n % 3) as usize;
        matches!(http(self.clients[i], "POST", "/v3/kv/put", body.as_bytes()), Some((200, b)) if !String::from_utf8_lossy(&b).contains("\"error\""))
    }

    fn pid(&self, node: usize) -> u32 {
        self.members[node].child.id()
    }

    fn restart(&mut self, node: usize) -> Result<(), String> {
        self.members[node].restart()
    }

    fn settle(&mut self) -> Result<(), String> {
        wait_until("all etcd members healthy", || {
            (0..3).all(|i| self.status(i).is_some_and(|(_, l)| l != 0))
        })?;
        let mut n = 1u64 << 40;
        wait_until("an etcd write", || {
            n += 1;
            self.write(n)
        })
    }
}

fn b64(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in s.as_bytes().chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            out.push(if k <= c.len() {
                A[(n >> (18 - 6 * k) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// Redis: a master, two replicas, three Sentinels (quorum 2).
pub struct SentinelGroup {
    down_after_ms: u64,
    redis: Vec<Proc>,
    ports: Vec<u16>,
    _sentinels: Vec<Proc>,
    sentinel_addrs: Vec<SocketAddr>,
}

impl SentinelGroup {
    pub fn start(
        redis: &str,
        sentinel: &str,
        dir: &Path,
        down_after_ms: u64,
    ) -> Result<SentinelGroup, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_, _>>()?;
        let mut procs = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            let mut args = vec![
                redis.to_string(),
                "--port".into(),
                p.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
                "--dir".into(),
                dir.to_string_lossy().into_owned(),
                "--dbfilename".into(),
                format!("r{i}.rdb"),
            ];
            if i > 0 {
                args.extend([
                    "--replicaof".into(),
                    "127.0.0.1".into(),
                    ports[0].to_string(),
                ]);
            }
            procs.push(Proc::spawn(args, dir.join(format!("r{i}.log")))?);
        }
        let mut sentinels = Vec::new();
        let mut sentinel_addrs = Vec::new();
        for i in 0..3 {
            let port = free_port()?;
            let conf = dir.join(format!("s{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nsentinel monitor m 127.0.0.1 {} 2\n\
                     sentinel down-after-milliseconds m {down_after_ms}\n\
                     sentinel failover-timeout m 10000\nsentinel parallel-syncs m 1\n",
                    ports[0]
                ),
            )
            .map_err(|e| e.to_string())?;
            let args = vec![sentinel.to_string(), conf.to_string_lossy().into_owned()];
            sentinels.push(Proc::spawn(args, dir.join(format!("s{i}.log")))?);
            sentinel_addrs.push(loopback(port));
        }
        Ok(SentinelGroup {
            down_after_ms,
            redis: procs,
            ports,
            _sentinels: sentinels,
            sentinel_addrs,
        })
    }

    /// The master's port as the first Sentinel that answers names it.
    fn master_port(&self) -> Option<u16> {
        self.sentinel_addrs.iter().find_map(|s| {
            let r = resp(*s, &["SENTINEL", "get-master-addr-by-name", "m"])?;
            r.lines()
                .filter(|l| !l.starts_with(['*', '$']))
                .nth(1)?
                .trim()
                .parse()
                .ok()
        })
    }
}

impl Cluster for SentinelGroup {
    fn name(&self) -> String {
        format!(
            "Redis + 3 Sentinels, down-after-milliseconds {}",
            self.down_after_ms
        )
    }

    fn leader(&mut self) -> Result<usize, String> {
        let port = self.master_port().ok_or("no Sentinel names a master")?;
        self.ports
            .iter()
            .position(|&p| p == port)
            .ok_or_else(|| format!("Sentinels name port {port}"))
    }

    fn write(&mut self, n: u64) -> bool {
        let Some(port) = self.master_port() else {
            return false;
        };
        let key = format!("failover-{n}");
        resp(loopback(port), &["SET", &key, "v"]).is_some_and(|r| r.starts_with("+OK"))
    }

    fn pid(&self, node: usize) -> u32 {
        self.redis[node].child.id()
    }

    fn restart(&mut self, node: usize) -> Result<(), String> {
        // It comes back as a master; the Sentinels make it a replica.
        self.redis[node].restart()
    }

    fn settle(&mut self) -> Result<(), String> {
        wait_until("all Redis nodes answer", || {
            self.ports
                .iter()
                .all(|&p| resp(loopback(p), &["PING"]).is_some_and(|r| r.starts_with("+PONG")))
        })?;
        // Two replicas known to the Sentinels, so the next failover can run.
        wait_until("two replicas in the master's INFO", || {
            self.master_port()
                .and_then(|p| resp(loopback(p), &["INFO", "replication"]))
                .is_some_and(|r| r.contains("connected_slaves:2"))
        })?;
        let mut n = 1u64 << 40;
        wait_until("a Redis write", || {
            n += 1;
            self.write(n)
        })?;
        std::thread::sleep(Duration::from_millis(2 * self.down_after_ms));
        Ok(())
    }
}
