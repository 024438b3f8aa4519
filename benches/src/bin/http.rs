//! HTTP load benchmark: hypha's HTTP edge against a static nginx ceiling.
//!
//! A closed-loop HTTP/1.1 load generator on loopback: N persistent keep-alive
//! connections (default 32), one OS thread each, every thread sending one
//! request and reading the whole response (Content-Length framing) in a loop.
//! Each case runs a warm-up, then a measured window; only requests that start
//! and finish inside the window count, and each one's latency goes into a
//! log-linear histogram (~0.2 % resolution) for p50/p99.
//!
//! Cases (one run):
//!   1 ceiling   nginx `return 200 "pong";`, worker_processes 2      GET /
//!   2 get       hypha all-in-one, --fsync never, 10,000 preloaded keys  GET /kv/{random key}
//!   3 put       same hypha process                                  PUT /kv/{random key}, 150 B
//!   4 put-sync  fresh hypha, --fsync always                         PUT /kv/{random key}, 150 B
//!
//! Case `cas` (only with `--only cas`; see `http/cas.rs`): 32 clients
//! incrementing one counter by `If-Match` compare-and-swap.
//!
//! Case `ttl` (only with `--only ttl`; see `http/ttl.rs`): how late after
//! their deadlines keys are expired.
//!
//! Case `watch` (only with `--only watch`; see `http/watch.rs`): from a
//! PUT's acknowledgement to its event at a watcher, hypha and etcd.
//!
//! Case `fanout` (only with `--only fanout`; see `http/fanout.rs`): 10,000
//! watchers on one worker at 1,000 writes/s, GET throughput beside them,
//! then 100 watchers on one prefix.
//!
//! Case `durable` (only with `--only durable`; see `http/durable.rs`): hypha
//! `--fsync always`, hypha `--fsync never` and etcd side by side, PUTs of new
//! keys at 32 and 128 connections, with the disk's fdatasync rate probed in
//! the same run.
//!
//! nginx and the first hypha run side by side, and cases 1-3 are measured in
//! `--rounds` alternating windows (default 5 rounds of 2 s each, after 0.5 s
//! of warm-up), summed per case: a slow spell of the shared machine hits the
//! ceiling and hypha alike. Case 4 follows in one window.
//!
//! The load generator runs on the same machine as the server: they share the
//! cores. Every spawned process is killed at the end, on error and on panic
//! (and gets SIGTERM from the kernel if this process dies: PR_SET_PDEATHSIG).
//!
//! ```sh
//! cd benches && CARGO_TARGET_DIR=/work/target-bench cargo run --release --bin http -- \
//!     [--hypha PATH] [--nginx PATH] [--secs 10] [--warmup 2] [--conns 32] [--keys 10000] \
//!     [--only ceiling,get,put,put-sync,durable,cas,ttl,watch,fanout] [--etcd PATH] [--durable-conns 32,128]
//! ```

// The crate root resolves modules beside itself, not in `http/`.
#[path = "http/cas.rs"]
mod cas;
#[path = "http/durable.rs"]
mod durable;
#[path = "http/fanout.rs"]
mod fanout;
#[path = "http/ttl.rs"]
mod ttl;
#[path = "http/watch.rs"]
mod watch;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const VALUE_BYTES: usize = 150;
/// A response that takes longer than this counts as a hang (error) and the
/// connection is reopened.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------- options

struct Opts {
    hypha: PathBuf,
    nginx: PathBuf,
    etcd: PathBuf,
    /// Connection counts of the `durable` case.
    durable_conns: Vec<usize>,
    secs: f64,
    warmup: f64,
    conns: usize,
    keys: u64,
    rounds: u32,
    only: Option<Vec<String>>,
    dir: PathBuf,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        hypha: PathBuf::from("/work/target-bench/release/hypha"),
        nginx: PathBuf::from("/usr/sbin/nginx"),
        etcd: PathBuf::from("/usr/bin/etcd"),
        durable_conns: vec![32, 128],
        secs: 10.0,
        warmup: 2.0,
        conns: 32,
        keys: 10_000,
        rounds: 5,
        only: None,
        dir: PathBuf::from("/tmp"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--hypha" => o.hypha = val()?.into(),
            "--nginx" => o.nginx = val()?.into(),
            "--etcd" => o.etcd = val()?.into(),
            "--durable-conns" => {
                o.durable_conns = val()?
                    .split(',')
                    .map(|c| c.parse().map_err(|e| format!("--durable-conns: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--secs" => o.secs = val()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--warmup" => o.warmup = val()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--conns" => o.conns = val()?.parse().map_err(|e| format!("--conns: {e}"))?,
            "--keys" => o.keys = val()?.parse().map_err(|e| format!("--keys: {e}"))?,
            "--rounds" => o.rounds = val()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--dir" => o.dir = val()?.into(),
            "--only" => o.only = Some(val()?.split(',').map(str::to_string).collect()),
            "-h" | "--help" => {
                println!(
                    "http [--hypha PATH] [--nginx PATH] [--etcd PATH] [--secs S] [--warmup S] [--conns N] \
                     [--keys N] [--rounds R] [--dir TMPDIR] [--only ceiling,get,put,put-sync,durable,cas,ttl,watch,fanout] \
                     [--durable-conns 32,128]\n\
                     `durable`, `cas`, `ttl`, `watch` and `fanout` run only when named in --only."
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }
    if o.conns == 0 || o.secs <= 0.0 || o.keys == 0 || o.rounds == 0 || o.durable_conns.contains(&0) {
        return Err("--conns, --secs, --keys and --rounds must be > 0".into());
    }
    Ok(o)
}

impl Opts {
    /// Whether `case` runs: every case but `durable` and `cas` by default.
    fn wants(&self, case: &str) -> bool {
        match &self.only {
            Some(l) => l.iter().any(|c| c == case),
            None => !["durable", "cas", "ttl", "watch", "fanout"].contains(&case),
        }
    }
}

// ---------------------------------------------------------------- histogram

/// Log-linear histogram of nanoseconds: exact below 1024 ns, then 512
/// sub-buckets per power of two (relative error < 0.2 %).
struct Hist {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

const SUB: usize = 512;

impl Hist {
    fn new() -> Self {
        Hist {
            buckets: vec![0; 64 * SUB],
            count: 0,
            max: 0,
        }
    }
    fn index(v: u64) -> usize {
        if v < 2 * SUB as u64 {
            v as usize
        } else {
            let msb = 63 - v.leading_zeros() as usize;
            let shift = msb - 9;
            (shift + 1) * SUB + ((v >> shift) as usize - SUB)
        }
    }
    fn value(i: usize) -> u64 {
        if i < 2 * SUB {
            i as u64
        } else {
            let shift = i / SUB - 1;
            (((i % SUB) + SUB) as u64) << shift
        }
    }
    fn record(&mut self, ns: u64) {
        self.buckets[Self::index(ns)] += 1;
        self.count += 1;
        self.max = self.max.max(ns);
    }
    fn merge(&mut self, o: &Hist) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.count += o.count;
        self.max = self.max.max(o.max);
    }
    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::value(i);
            }
        }
        self.max
    }
}

// ---------------------------------------------------------------- HTTP client

/// splitmix64: cheap, good enough for picking keys.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn key(i: u64) -> String {
    format!("bench-{:016x}", mix(i))
}

/// 150 printable pseudo-random bytes, different per `seed`.
fn value(seed: u64) -> Vec<u8> {
    (0..VALUE_BYTES as u64)
        .map(|j| b'a' + (mix(seed * 1000 + j) % 26) as u8)
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Work {
    /// GET / (the nginx ceiling).
    Static,
    /// GET /kv/{key} over `keys` preloaded keys; the body must be 150 bytes.
    Get { keys: u64 },
    /// PUT /kv/{key} of 150 bytes over `keys` keys.
    Put { keys: u64 },
    /// PUT /kv/new-{random} of 150 bytes: a new key every time.
    PutNew,
    /// etcd's `POST /v3/kv/put` of a new key, 150 bytes.
    EtcdPut,
}

struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

struct Answer {
    status: u16,
    body_len: usize,
    close: bool,
}

impl Conn {
    fn new(addr: SocketAddr) -> Self {
        Conn {
            addr,
            stream: None,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            self.stream = Some(s);
            self.buf.clear();
        }
        Ok(self.stream.as_mut().expect("just set"))
    }

    /// Sends `req` and reads one whole response. On any error the connection
    /// is dropped (the next call reconnects).
    fn exchange(&mut self, req: &[u8]) -> Result<Answer, String> {
        let r = self.exchange_inner(req);
        match &r {
            Ok(a) if !a.close => {}
            _ => self.stream = None,
        }
        r
    }

    fn exchange_inner(&mut self, req: &[u8]) -> Result<Answer, String> {
        self.stream().map_err(|e| format!("connect: {e}"))?;
        let s = self.stream.as_mut().expect("connected");
        s.write_all(req).map_err(|e| format!("write: {e}"))?;
        let buf = &mut self.buf;
        // Read until the end of the head.
        let head_end = loop {
            if let Some(p) = find(buf, b"\r\n\r\n") {
                break p + 4;
            }
            if buf.len() > 64 * 1024 {
                return Err("response head over 64 KiB".into());
            }
            read_some(s, buf).map_err(|e| format!("read head: {e}"))?;
        };
        let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "head not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let (mut len, mut close) = (None, false);
        for l in lines {
            let Some((name, v)) = l.split_once(':') else {
                continue;
            };
            let v = v.trim();
            if name.eq_ignore_ascii_case("content-length") {
                len = Some(v.parse::<usize>().map_err(|_| format!("bad Content-Length {v:?}"))?);
            } else if name.eq_ignore_ascii_case("connection") {
                close = v.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(format!("Transfer-Encoding {v:?} not supported by the bench"));
            }
        }
        let len = match (len, status) {
            (Some(l), _) => l,
            (None, 100..=199 | 204 | 304) => 0,
            (None, _) => return Err(format!("{status} without Content-Length")),
        };
        while buf.len() < head_end + len {
            read_some(s, buf).map_err(|e| format!("read body: {e}"))?;
        }
        buf.drain(..head_end + len);
        Ok(Answer {
            status,
            body_len: len,
            close,
        })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    let start = buf.len();
    buf.resize(start + 16 * 1024, 0);
    let r = s.read(&mut buf[start..]);
    let got = *r.as_ref().unwrap_or(&0);
    buf.truncate(start + got);
    match r {
        Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection")),
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    }
}

/// 64 precomputed values; a request picks one by its random number.
fn values() -> &'static [Vec<u8>] {
    static V: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    V.get_or_init(|| (0..64).map(|i| value(1 << 40 | i)).collect())
}

fn request(work: Work, rng: u64, out: &mut Vec<u8>) {
    out.clear();
    match work {
        Work::Static => out.extend_from_slice(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        Work::Get { keys } => {
            let k = key(rng % keys);
            out.extend_from_slice(format!("GET /kv/{k} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes());
        }
        Work::Put { keys } => {
            let k = key(rng % keys);
            out.extend_from_slice(
                format!(
                    "PUT /kv/{k} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {VALUE_BYTES}\r\n\r\n"
                )
                .as_bytes(),
            );
            out.extend_from_slice(&values()[(rng >> 58) as usize]);
        }
        Work::PutNew => {
            out.extend_from_slice(
                format!(
                    "PUT /kv/new-{rng:016x} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {VALUE_BYTES}\r\n\r\n"
                )
                .as_bytes(),
            );
            out.extend_from_slice(&values()[(rng >> 58) as usize]);
        }
        Work::EtcdPut => {
            let mut body = String::with_capacity(320);
            let key = format!("new-{rng:016x}");
            durable::etcd_put_body(key.as_bytes(), &values()[(rng >> 58) as usize], &mut body);
            out.extend_from_slice(
                format!(
                    "POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    }
}

// ---------------------------------------------------------------- load loop

#[derive(Default)]
struct Problems {
    /// status → count (non-2xx answers, all phases).
    statuses: BTreeMap<u16, u64>,
    /// I/O errors, malformed answers, timeouts: first message → count.
    errors: BTreeMap<String, u64>,
    /// GET answers whose body was not the 150-byte value.
    bad_bodies: u64,
    /// Answers with `Connection: close`.
    closes: u64,
}

impl Problems {
    fn merge(&mut self, o: Problems) {
        for (k, v) in o.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.bad_bodies += o.bad_bodies;
        self.closes += o.closes;
    }
    fn total(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.errors.values().sum::<u64>() + self.bad_bodies
    }
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (s, n) in &self.statuses {
            parts.push(format!("{n}× HTTP {s}"));
        }
        for (e, n) in &self.errors {
            parts.push(format!("{n}× {e}"));
        }
        if self.bad_bodies > 0 {
            parts.push(format!("{}× GET body not {VALUE_BYTES} bytes", self.bad_bodies));
        }
        if self.closes > 0 {
            parts.push(format!("{}× Connection: close", self.closes));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join("; ")
        }
    }
}

/// Normalises an error message so that per-port/per-os-error variants group.
fn error_class(e: &str) -> String {
    e.chars().take(120).collect()
}

struct CaseResult {
    name: &'static str,
    what: String,
    requests: u64,
    secs: f64,
    hist: Hist,
    problems: Problems,
    /// Cores in the measured window: used by the server, the load generator,
    /// all other processes; idle.
    cpu: [f64; 4],
    /// The busiest other processes in the window, for the warning.
    top_others: String,
}

impl CaseResult {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }

    /// Adds another round of the same case.
    fn absorb(&mut self, o: CaseResult) {
        let (a, b) = (self.secs, o.secs);
        for (mine, theirs) in self.cpu.iter_mut().zip(o.cpu) {
            *mine = (*mine * a + theirs * b) / (a + b);
        }
        self.requests += o.requests;
        self.secs += o.secs;
        self.hist.merge(&o.hist);
        self.problems.merge(o.problems);
        if !o.top_others.is_empty() {
            self.top_others = o.top_others;
        }
    }
}

/// Runs `work` on `conns` connections: warm-up, then the measured window.
/// `server_pids` are sampled for CPU time over the window.
fn run_load(
    addr: SocketAddr,
    work: Work,
    conns: usize,
    warmup: f64,
    secs: f64,
    server_pids: &[u32],
) -> (u64, f64, Hist, Problems, [f64; 4], String) {
    let t0 = Instant::now() + Duration::from_millis(50);
    let measure_from = t0 + Duration::from_secs_f64(warmup);
    let measure_to = measure_from + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..conns)
        .map(|tid| {
            thread::spawn(move || {
                let mut conn = Conn::new(addr);
                let mut hist = Hist::new();
                let mut problems = Problems::default();
                let mut req = Vec::with_capacity(512);
                let mut rng = mix(tid as u64 ^ 0xABCD_0000 ^ (work_seed(work) << 20));
                let mut counted = 0u64;
                let now = Instant::now();
                if now < t0 {
                    thread::sleep(t0 - now);
                }
                loop {
                    let start = Instant::now();
                    if start >= measure_to {
                        break;
                    }
                    rng = mix(rng);
                    request(work, rng, &mut req);
                    let r = conn.exchange(&req);
                    let end = Instant::now();
                    match r {
                        Ok(a) => {
                            if a.close {
                                problems.closes += 1;
                            }
                            if !(200..300).contains(&a.status) {
                                *problems.statuses.entry(a.status).or_default() += 1;
                                continue;
                            }
                            if matches!(work, Work::Get { .. }) && a.body_len != VALUE_BYTES {
                                problems.bad_bodies += 1;
                                continue;
                            }
                            if start >= measure_from && end <= measure_to {
                                counted += 1;
                                hist.record((end - start).as_nanos() as u64);
                            }
                        }
                        Err(e) => {
                            *problems.errors.entry(error_class(&e)).or_default() += 1;
                            // Do not spin on a dead server.
                            thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
                (counted, hist, problems)
            })
        })
        .collect();
    // CPU sampling over the measured window.
    let sleep_until = |t: Instant| {
        let now = Instant::now();
        if t > now {
            thread::sleep(t - now);
        }
    };
    sleep_until(measure_from);
    let mut skip = server_pids.to_vec();
    skip.push(std::process::id());
    let (s0, c0, o0, i0) = (cpu_ticks(server_pids), self_cpu_ticks(), other_ticks(&skip), idle_ticks());
    sleep_until(measure_to);
    let (s1, c1, o1, i1) = (cpu_ticks(server_pids), self_cpu_ticks(), other_ticks(&skip), idle_ticks());
    let hz = clock_ticks();
    let server_cpu = (s1 - s0) as f64 / hz / secs;
    let client_cpu = (c1 - c0) as f64 / hz / secs;
    let mut deltas: Vec<(u64, u32)> = o1
        .iter()
        .map(|(p, t)| (t.saturating_sub(*o0.get(p).unwrap_or(&0)), *p))
        .filter(|(d, _)| *d > 0)
        .collect();
    let other: u64 = deltas.iter().map(|(d, _)| d).sum();
    deltas.sort_unstable_by(|a, b| b.cmp(a));
    let top_others = deltas
        .iter()
        .take(3)
        .map(|(d, p)| {
            let comm = fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_else(|_| "?".into());
            format!("{} (pid {p}) {:.0} %", comm.trim(), 100.0 * *d as f64 / hz / secs)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let other_cpu = other as f64 / hz / secs;
    let idle_cpu = i1.saturating_sub(i0) as f64 / hz / secs;
    let mut total = 0;
    let mut hist = Hist::new();
    let mut problems = Problems::default();
    for h in handles {
        let (n, hh, p) = h.join().expect("load thread panicked");
        total += n;
        hist.merge(&hh);
        problems.merge(p);
    }
    (total, secs, hist, problems, [server_cpu, client_cpu, other_cpu, idle_cpu], top_others)
}

fn work_seed(w: Work) -> u64 {
    match w {
        Work::Static => 1,
        Work::Get { .. } => 2,
        Work::Put { .. } => 3,
        Work::PutNew => 4,
        Work::EtcdPut => 5,
    }
}

/// PUTs keys 0..n (the values GET expects), spread over `conns` connections.
fn preload(addr: SocketAddr, n: u64, conns: usize) -> Result<Duration, String> {
    let started = Instant::now();
    let handles: Vec<_> = (0..conns as u64)
        .map(|tid| {
            thread::spawn(move || -> Result<(), String> {
                let mut conn = Conn::new(addr);
                let mut i = tid;
                while i < n {
                    let k = key(i);
                    let mut req = format!(
                        "PUT /kv/{k} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {VALUE_BYTES}\r\n\r\n"
                    )
                    .into_bytes();
                    req.extend_from_slice(&value(i));
                    let a = conn.exchange(&req).map_err(|e| format!("preload PUT {k}: {e}"))?;
                    if !(200..300).contains(&a.status) {
                        return Err(format!("preload PUT {k}: HTTP {}", a.status));
                    }
                    i += conns as u64;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "preload thread panicked")??;
    }
    Ok(started.elapsed())
}

// ---------------------------------------------------------------- processes

/// A spawned server; SIGTERM (then SIGKILL) on drop.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
    stop_signal: i32,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: Command, log: PathBuf, stop_signal: i32) -> Result<Proc, String> {
        let out = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        Ok(Proc {
            name,
            child,
            log,
            stop_signal,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Err with the exit status and log tail if the process is gone.
    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(st)) => Err(format!(
                "{} exited unexpectedly ({st}); log tail:\n{}",
                self.name,
                tail(&self.log, 20)
            )),
            Err(e) => Err(format!("{}: wait failed: {e}", self.name)),
        }
    }

    /// Graceful stop; returns how it ended.
    fn stop(&mut self) -> String {
        if let Ok(Some(st)) = self.child.try_wait() {
            return format!("had already exited: {st}");
        }
        unsafe {
            libc::kill(self.child.id() as i32, self.stop_signal);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return format!("stopped: {st}");
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        "did not stop within 15 s of the stop signal: SIGKILLed".into()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn free_port() -> Result<SocketAddr, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr().map_err(|e| e.to_string())
}

/// Waits until `path` answers 200 on `addr`.
fn wait_ready(p: &mut Proc, addr: SocketAddr, path: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut last = String::new();
    while Instant::now() < deadline {
        p.check_alive()?;
        let mut c = Conn::new(addr);
        match c.exchange(req.as_bytes()) {
            Ok(a) if a.status == 200 => return Ok(()),
            Ok(a) => last = format!("HTTP {}", a.status),
            Err(e) => last = e,
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{} did not answer 200 on {path} within 20 s (last: {last}); log tail:\n{}",
        p.name,
        tail(&p.log, 20)
    ))
}

/// The pid and its direct children (nginx workers).
fn with_children(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if stat_fields(p).is_some_and(|f| f.get(1).and_then(|s| s.parse::<u32>().ok()) == Some(pid)) {
                out.push(p);
            }
        }
    }
    out
}

/// Fields of /proc/PID/stat after the command name (state is [0], ppid [1]).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    Some(rest.split(' ').map(str::to_string).collect())
}

/// utime + stime of the processes (all threads), in clock ticks.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|&p| stat_fields(p))
        .map(|f| f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0))
        .sum()
}

/// Idle + iowait ticks of the whole machine, from /proc/stat.
fn idle_ticks() -> u64 {
    let s = fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait ...
    f.get(3).unwrap_or(&0) + f.get(4).unwrap_or(&0)
}

/// utime + stime of every process except `skip`, by pid. Processes that
/// start and exit inside the window are missed (cutime would catch them, but
/// it also charges an orphan's whole lifetime to init when it reaps it).
fn other_ticks(skip: &[u32]) -> BTreeMap<u32, u64> {
    let mut out = BTreeMap::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if skip.contains(&p) {
            continue;
        }
        if let Some(f) = stat_fields(p) {
            let t: u64 = (11..=12).map(|i| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)).sum();
            out.insert(p, t);
        }
    }
    out
}

fn self_cpu_ticks() -> u64 {
    cpu_ticks(&[std::process::id()])
}

fn clock_ticks() -> f64 {
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

// ---------------------------------------------------------------- cases

/// Starts nginx as the ceiling: a static 200 from 2 worker processes.
fn start_nginx(o: &Opts, dir: &Path) -> Result<(Proc, SocketAddr, Vec<u32>), String> {
    let ndir = dir.join("nginx");
    fs::create_dir_all(&ndir).map_err(|e| e.to_string())?;
    let addr = free_port()?;
    let d = ndir.display();
    let conf = format!(
        "worker_processes 2;\n\
         daemon off;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
           access_log off;\n\
           keepalive_requests 100000000;\n\
           keepalive_timeout 75s;\n\
           client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;\n\
           uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
           server {{\n\
             listen {addr};\n\
             location / {{ return 200 \"pong\"; }}\n\
           }}\n\
         }}\n"
    );
    let conf_path = ndir.join("nginx.conf");
    fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&o.nginx);
    cmd.arg("-p").arg(&ndir).arg("-c").arg(&conf_path);
    // SIGQUIT: graceful shutdown of master and workers.
    let mut p = Proc::spawn("nginx", cmd, ndir.join("stderr.log"), libc::SIGQUIT)?;
    wait_ready(&mut p, addr, "/")?;
    let pids = with_children(p.pid());
    Ok((p, addr, pids))
}

/// One measured window of the ceiling.
fn nginx_window(o: &Opts, p: &mut Proc, addr: SocketAddr, pids: &[u32], warmup: f64, secs: f64) -> Result<CaseResult, String> {
    let (n, secs, hist, problems, cpu, top_others) =
        run_load(addr, Work::Static, o.conns, warmup, secs, pids);
    p.check_alive()?;
    Ok(CaseResult {
        name: "ceiling",
        what: format!("nginx GET / → 200 \"pong\" ({} procs: master + workers)", pids.len()),
        requests: n,
        secs,
        hist,
        problems,
        cpu,
        top_others,
    })
}

fn start_hypha(o: &Opts, dir: &Path, tag: &str, fsync: &str) -> Result<(Proc, SocketAddr), String> {
    start_hypha_with(o, dir, tag, fsync, &[])
}

/// [`start_hypha`] with more arguments.
fn start_hypha_with(o: &Opts, dir: &Path, tag: &str, fsync: &str, more: &[String]) -> Result<(Proc, SocketAddr), String> {
    let data = dir.join(format!("hypha-{tag}"));
    let addr = free_port()?;
    let mut cmd = Command::new(&o.hypha);
    cmd.args(more).arg("--data")
        .arg(&data)
        .arg("--http")
        .arg(addr.to_string())
        .arg("--fsync")
        .arg(fsync);
    let mut p = Proc::spawn("hypha", cmd, dir.join(format!("hypha-{tag}.log")), libc::SIGTERM)?;
    wait_ready(&mut p, addr, "/ping")?;
    Ok((p, addr))
}

#[allow(clippy::too_many_arguments)]
fn hypha_case(
    o: &Opts,
    p: &mut Proc,
    addr: SocketAddr,
    name: &'static str,
    what: String,
    work: Work,
    warmup: f64,
    secs: f64,
) -> Result<CaseResult, String> {
    let (n, secs, hist, problems, cpu, top_others) =
        run_load(addr, work, o.conns, warmup, secs, &[p.pid()]);
    p.check_alive()?;
    Ok(CaseResult {
        name,
        what,
        requests: n,
        secs,
        hist,
        problems,
        cpu,
        top_others,
    })
}

fn report_hypha_log(p: &Proc) {
    let text = fs::read_to_string(&p.log).unwrap_or_default();
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"))
        .collect();
    if bad.is_empty() {
        eprintln!("  hypha log ({}): no WARN/ERROR lines", p.log.display());
    } else {
        eprintln!("  hypha log ({}): {} WARN/ERROR lines, first 10:", p.log.display(), bad.len());
        for l in bad.iter().take(10) {
            eprintln!("    {l}");
        }
    }
}

// ---------------------------------------------------------------- output

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string() + String::from_utf8_lossy(&o.stderr).trim())
        .unwrap_or_else(|| "?".into())
}

fn machine_info(o: &Opts) {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string()))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.1} GiB", kb as f64 / 1048576.0))
        .unwrap_or_else(|| "?".into());
    println!("machine: nproc {}, CPU {cpu}, memory {mem}", sh("nproc", &[]));
    println!("kernel: {}", sh("uname", &["-r"]));
    println!(
        "filesystem of {}: {}",
        o.dir.display(),
        sh("sh", &["-c", &format!("df -T {} | tail -1 | awk '{{print $1, $2}}'", o.dir.display())])
    );
    println!(
        "hypha: {} (git {}{})",
        o.hypha.display(),
        sh("git", &["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short", "HEAD"]),
        if sh("git", &["-C", env!("CARGO_MANIFEST_DIR"), "status", "--porcelain", "--untracked-files=no", "--", "../server", "../engine", "../net"]).is_empty() { "" } else { ", dirty" }
    );
    if let Some(src) = newest_source() {
        let bin = fs::metadata(&o.hypha).and_then(|m| m.modified()).ok();
        if bin.is_some_and(|b| b < src) {
            println!("WARNING: {} is older than the newest file in server/, engine/, net/: rebuild it", o.hypha.display());
        }
    }
    if o.wants("ceiling") {
        println!("nginx: {}", sh(&o.nginx.display().to_string(), &["-v"]));
    }
    println!(
        "load: {} keep-alive connections (one thread each), {} s measured per case in {} alternating windows \
         (each after {:.1} s of warm-up; put-sync: one window after {} s), closed loop (each connection waits for its answer)",
        o.conns,
        o.secs,
        o.rounds,
        (o.warmup / o.rounds as f64).max(0.5),
        o.warmup
    );
    println!(
        "NOTE: the load generator runs on the same {} cores as the server; client CPU is shown per case.",
        sh("nproc", &[])
    );
    println!();
}

/// The newest modification time of hypha's sources (../server, ../engine, ../net src dirs and Cargo files).
fn newest_source() -> Option<std::time::SystemTime> {
    fn walk(p: &Path, newest: &mut Option<std::time::SystemTime>) {
        let Ok(m) = fs::metadata(p) else { return };
        if m.is_dir() {
            for e in fs::read_dir(p).into_iter().flatten().flatten() {
                walk(&e.path(), newest);
            }
        } else if let Ok(t) = m.modified() {
            *newest = Some(newest.map_or(t, |n| n.max(t)));
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut newest = None;
    for d in ["server/src", "engine/src", "net/src", "server/Cargo.toml", "engine/Cargo.toml", "net/Cargo.toml", "Cargo.lock"] {
        walk(&root.join(d), &mut newest);
    }
    newest
}

fn us(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_table(results: &[CaseResult]) {
    let ceiling = results.iter().find(|r| r.name == "ceiling").map(|r| r.rps());
    println!();
    println!(
        "| {:<9} | {:>9} | {:>8} | {:>8} | {:>8} | {:>10} | {:>10} | {:>10} | {:>11} | {:>6} | {:>6} |",
        "case", "req/s", "p50", "p99", "max", "÷ ceiling", "server CPU", "client CPU", "other procs", "idle", "errors"
    );
    println!("|{:-<11}|{:->11}|{:->10}|{:->10}|{:->10}|{:->12}|{:->12}|{:->12}|{:->13}|{:->8}|{:->8}|", "", "", "", "", "", "", "", "", "", "", "");
    for r in results {
        let ratio = match ceiling {
            Some(c) if c > 0.0 => format!("{:.0} %", 100.0 * r.rps() / c),
            _ => "n/a".into(),
        };
        println!(
            "| {:<9} | {:>9} | {:>8} | {:>8} | {:>8} | {:>10} | {:>8.0} % | {:>8.0} % | {:>9.0} % | {:>4.0} % | {:>6} |",
            r.name,
            thousands(r.rps()),
            us(r.hist.quantile(0.50)),
            us(r.hist.quantile(0.99)),
            us(r.hist.max),
            ratio,
            100.0 * r.cpu[0],
            100.0 * r.cpu[1],
            100.0 * r.cpu[2],
            100.0 * r.cpu[3],
            r.problems.total(),
        );
    }
    println!();
    for r in results {
        println!("  {:<9} {}", r.name, r.what);
    }
    println!("  CPU: % of one core over the measured window (200 % = both cores); server = all its processes/threads, client = this load generator, other procs = every other process (from /proc/PID/stat), idle = idle + iowait of the machine (/proc/stat). Kernel network (softirq) work is charged to whichever process was running.");
    for r in results {
        if r.cpu[2] > 0.10 {
            println!(
                "  WARNING: {} ran while other processes used {:.0} % of a core (top: {}); its figures are depressed.",
                r.name,
                100.0 * r.cpu[2],
                r.top_others
            );
        }
    }
    println!();
    println!("targets:");
    let get = |n: &str| results.iter().find(|r| r.name == n);
    let check = |label: &str, case: Option<&CaseResult>, want: f64| match (case, ceiling) {
        (Some(r), Some(c)) if c > 0.0 => {
            let ratio = r.rps() / c;
            let ok = ratio >= want && r.problems.total() == 0;
            println!(
                "  {label} ≥ {:.0} % of ceiling: {:.1} % → {}{}",
                100.0 * want,
                100.0 * ratio,
                if ok { "PASS" } else { "MISS" },
                if r.problems.total() > 0 { " (errors seen)" } else { "" }
            );
        }
        _ => println!("  {label} ≥ {:.0} % of ceiling: n/a (case not run)", 100.0 * want),
    };
    check("GET /kv hits", get("get"), 0.70);
    check("PUT --fsync never", get("put"), 0.50);
    if let Some(r) = get("put-sync") {
        println!(
            "  PUT --fsync always: no target; {:.1} % of ceiling, {:.1} % of PUT --fsync never",
            ceiling.map(|c| 100.0 * r.rps() / c).unwrap_or(f64::NAN),
            get("put").map(|p| 100.0 * r.rps() / p.rps()).unwrap_or(f64::NAN)
        );
    }
    println!();
    println!("problems (non-2xx, I/O errors, hangs > {} s, bad bodies, Connection: close), all phases incl. warm-up:", IO_TIMEOUT.as_secs());
    for r in results {
        println!("  {:<9} {}", r.name, r.problems.describe());
    }
}

// ---------------------------------------------------------------- main

/// Adds `r` to the case of the same name in `results`, or appends it.
fn absorb(results: &mut Vec<CaseResult>, r: CaseResult) {
    match results.iter_mut().find(|c| c.name == r.name) {
        Some(c) => c.absorb(r),
        None => results.push(r),
    }
}

fn run(o: &Opts, dir: &Path) -> Result<Vec<CaseResult>, String> {
    let mut results = Vec::new();
    // The ceiling, GET and PUT run side by side, measured in alternating
    // windows: the ceiling moved by ±25 % from one run to the next on this
    // shared machine, so comparing windows minutes apart compared the
    // machine's moods as much as the servers.
    let rounds = o.rounds;
    let secs = o.secs / rounds as f64;
    let warmup = (o.warmup / rounds as f64).max(0.5);
    let mut nginx = None;
    if o.wants("ceiling") {
        eprintln!("case ceiling: nginx");
        nginx = Some(start_nginx(o, dir)?);
    }
    let mut hypha = None;
    if o.wants("get") || o.wants("put") {
        eprintln!("case get/put: hypha --fsync never");
        let (p, addr) = start_hypha(o, dir, "never", "never")?;
        if o.wants("get") {
            let took = preload(addr, o.keys, o.conns)?;
            eprintln!(
                "  preloaded {} keys in {:.2} s ({:.0}/s)",
                o.keys,
                took.as_secs_f64(),
                o.keys as f64 / took.as_secs_f64()
            );
        }
        hypha = Some((p, addr));
    }
    eprintln!("  {rounds} rounds of {secs:.1} s measured per case (after {warmup:.1} s of warm-up each), cases alternating");
    for round in 1..=rounds {
        eprintln!("  round {round}");
        if let Some((p, addr, pids)) = nginx.as_mut() {
            absorb(&mut results, nginx_window(o, p, *addr, pids, warmup, secs)?);
        }
        if let Some((p, addr)) = hypha.as_mut() {
            if o.wants("get") {
                let what = format!(
                    "hypha --fsync never: GET /kv/{{key}} (default consistency=ryw), random of {} preloaded keys, {VALUE_BYTES} B values",
                    o.keys
                );
                let work = Work::Get { keys: o.keys };
                absorb(&mut results, hypha_case(o, p, *addr, "get", what, work, warmup, secs)?);
            }
            if o.wants("put") {
                let what = format!(
                    "hypha --fsync never: PUT /kv/{{key}}, {VALUE_BYTES} B values, random of {} keys (overwrites)",
                    o.keys
                );
                let work = Work::Put { keys: o.keys };
                absorb(&mut results, hypha_case(o, p, *addr, "put", what, work, warmup, secs)?);
            }
        }
    }
    if let Some((mut p, _, _)) = nginx {
        eprintln!("  nginx {}", p.stop());
    }
    if let Some((mut p, _)) = hypha {
        report_hypha_log(&p);
        eprintln!("  hypha {}", p.stop());
    }
    if o.wants("durable") {
        durable::run(o, dir)?;
    }
    if o.wants("cas") {
        cas::run(o, dir)?;
    }
    if o.wants("ttl") {
        ttl::run(o, dir)?;
    }
    if o.wants("watch") {
        watch::run(o, dir)?;
    }
    if o.wants("fanout") {
        fanout::run(o, dir)?;
    }
    if o.wants("put-sync") {
        eprintln!("case put-sync: fresh hypha --fsync always");
        let (mut p, addr) = start_hypha(o, dir, "always", "always")?;
        let what = format!(
            "hypha --fsync always (fresh data dir): PUT /kv/{{key}}, {VALUE_BYTES} B, random of {} keys",
            o.keys
        );
        let work = Work::Put { keys: o.keys };
        results.push(hypha_case(o, &mut p, addr, "put-sync", what, work, o.warmup, o.secs)?);
        report_hypha_log(&p);
        eprintln!("  hypha {}", p.stop());
    }
    Ok(results)
}

fn main() -> ExitCode {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("http: {e}");
            return ExitCode::from(2);
        }
    };
    let needed = [("--hypha", &o.hypha, true), ("--nginx", &o.nginx, o.wants("ceiling")), ("--etcd", &o.etcd, o.wants("durable") || o.wants("watch"))];
    for (what, p, _) in needed.iter().filter(|n| n.2) {
        if !p.exists() {
            eprintln!("http: {what} {} does not exist (build hypha with `cargo build --release -p hypha-server`; install nginx and etcd-server with apt-get)", p.display());
            return ExitCode::from(2);
        }
    }
    machine_info(&o);
    let dir = o.dir.join(format!("hypha-http-bench-{}", std::process::id()));
    if let Err(e) = fs::create_dir_all(&dir) {
        eprintln!("http: {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    // Processes are stopped by Proc's Drop, also when `run` fails or panics.
    let outcome = std::panic::catch_unwind(|| run(&o, &dir));
    let code = match outcome {
        Ok(Ok(results)) => {
            if !results.is_empty() {
                print_table(&results);
            }
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            println!("FAILED: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            println!("FAILED: panic (see stderr)");
            ExitCode::FAILURE
        }
    };
    let _ = fs::remove_dir_all(&dir);
    code
}
