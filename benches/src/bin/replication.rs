//! Replication benchmark: hypha master → worker against Redis master →
//! replica, real processes on loopback, one run. See benches/README.md.
//!
//! cargo run --release --bin replication -- [--hypha PATH] [--samples N]
//!     [--records N] [--rate W] [--rounds R] [--redis-server PATH] [--dir PATH]
//!
//! Phases:
//!  1. lag, hypha (master --fsync never + 1 worker) and Redis (master +
//!     replica) running side by side, sampled in R alternating rounds (default
//!     10) so a slow spell of the shared machine hits both alike: idle, then
//!     under a paced background writer (each system's own, on only while its
//!     round runs). hypha is measured two ways: Get with min_seq = seq
//!     (primary) and a tight Get poll (the method used for Redis). Read round
//!     trips on the worker/replica, back to back and after 2 ms idle.
//!  2. hypha `--sync 1` Put round trip and Redis SET + WAIT 1 1000 (pipelined
//!     in one write), back to back, in the same alternating rounds.
//!  3. hypha catch-up of a worker 1M records behind.
//!  4. hypha snapshot to a new, empty worker.

use hypha_net::{
    connector_finish, encode_frame, seal_frame, ClusterKeys, ErrorCode, FrameDecoder, Message,
    Purpose, Role, Sealer, CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type R<T> = Result<T, String>;

const REPO: &str = "/work/main";
const KEY_LEN: usize = 24;
const VAL_LEN: usize = 100;
const IDLE_PAUSE: Duration = Duration::from_millis(2);
const VISIBLE_WITHIN: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT: [&str; 4] = ["--heartbeat-ms", "200", "--heartbeat-timeout-ms", "2000"];

macro_rules! say {
    ($($t:tt)*) => {{ println!($($t)*); let _ = std::io::stdout().flush(); }};
}

// ------------------------------------------------------------ workload

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// 24-byte key: a one-letter namespace, 15 hex chars of splitmix64(i)
/// (distinct for distinct i in practice), 8 hex chars of a second hash.
fn key(ns: u8, i: u64) -> Vec<u8> {
    let a = splitmix64(i) >> 4;
    let b = splitmix64(i ^ 0xA5A5_A5A5_A5A5_A5A5) >> 32;
    let mut k = Vec::with_capacity(KEY_LEN);
    k.push(ns);
    for j in 0..15 {
        k.push(HEX[((a >> (56 - 4 * j)) & 0xF) as usize]);
    }
    for j in 0..8 {
        k.push(HEX[((b >> (28 - 4 * j)) & 0xF) as usize]);
    }
    k
}

/// 100 pseudo-random (incompressible) bytes.
fn value(ns: u8, i: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(VAL_LEN);
    let mut s = splitmix64(i.wrapping_mul(0x1000_0000_01B3) ^ (ns as u64) << 56);
    while v.len() < VAL_LEN {
        s = splitmix64(s);
        let take = (VAL_LEN - v.len()).min(8);
        v.extend_from_slice(&s.to_le_bytes()[..take]);
    }
    v
}

// ------------------------------------------------------------ statistics

#[derive(Clone, Copy, Default)]
struct Stats {
    n: usize,
    p50: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

fn stats(v: &[f64]) -> Stats {
    if v.is_empty() {
        return Stats::default();
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
    Stats {
        n: s.len(),
        p50: at(0.50),
        p99: at(0.99),
        max: s[s.len() - 1],
        mean: s.iter().sum::<f64>() / s.len() as f64,
    }
}

/// Resamples drawn for a p99 interval.
const BOOTSTRAP_RESAMPLES: u64 = 2_000;

/// A p99 comparison of hypha and Redis with how sure it is:
/// `f(hypha p99, Redis p99)` (a difference or a ratio) on all samples, and
/// the 2.5th and 97.5th percentiles of `f` over bootstrap resamples.
///
/// Each resample draws as many round indices as there are rounds, with
/// replacement, and takes both systems' samples from those rounds. Rounds,
/// not single samples, are the unit: samples within a round share a spell of
/// the machine, and hypha's round i ran right beside Redis's round i, so a
/// slow spell counts for both or for neither. Fixed seed: a rerun on the same
/// samples gives the same interval.
fn p99_interval(h: &[&[f64]], r: &[&[f64]], f: impl Fn(f64, f64) -> f64) -> Option<(f64, f64, f64)> {
    if h.len() != r.len() || h.is_empty() || h.iter().chain(r).all(|x| x.is_empty()) {
        return None;
    }
    let flat = |v: &[&[f64]]| v.concat();
    let point = f(stats(&flat(h)).p99, stats(&flat(r)).p99);
    let mut seed = 0x5EED_u64;
    let mut picks = |n: usize| -> Vec<usize> {
        (0..n)
            .map(|_| {
                seed = splitmix64(seed);
                (seed % n as u64) as usize
            })
            .collect()
    };
    let mut fs: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            let idx = picks(h.len());
            let (hs, rs): (Vec<&[f64]>, Vec<&[f64]>) = idx.iter().map(|&i| (h[i], r[i])).unzip();
            f(stats(&flat(&hs)).p99, stats(&flat(&rs)).p99)
        })
        .collect();
    fs.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| fs[((p * fs.len() as f64) as usize).min(fs.len() - 1)];
    Some((point, at(0.025), at(0.975)))
}

/// Whether an interval for `hypha − Redis` (or `hypha / Redis − limit`)
/// settles the comparison.
fn settled(lo: f64, hi: f64) -> &'static str {
    if hi <= 0.0 {
        "hypha at or under, beyond the noise"
    } else if lo > 0.0 {
        "hypha over, beyond the noise"
    } else {
        "within the noise"
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn fmt_us(x: f64) -> String {
    if x >= 10_000.0 {
        format!("{:.1} ms", x / 1000.0)
    } else {
        format!("{x:.0} µs")
    }
}

fn fmt_stats(s: &Stats) -> String {
    if s.n == 0 {
        return "no samples".into();
    }
    format!("{} / {}", fmt_us(s.p50), fmt_us(s.p99))
}

fn describe(name: &str, s: &Stats, failures: u64, first: &Option<String>) {
    say!(
        "  {name}: n={} p50={} p99={} max={} mean={} failures={failures}{}",
        s.n,
        fmt_us(s.p50),
        fmt_us(s.p99),
        fmt_us(s.max),
        fmt_us(s.mean),
        first
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
}

// ------------------------------------------------------------ CPU placement

/// `--pin M,W,C`: the CPUs for both systems' masters, for their workers and
/// replicas, and for the measuring client (every thread of each process).
/// Which core a process runs on decides most of a round trip on a small VM
/// (a wake-up on another core costs ~30-40 µs here), and the kernel places
/// two systems differently; pinned, both get the same placement.
static PIN: Mutex<Option<[u32; 3]>> = Mutex::new(None);

/// Pins every thread of `pid` to CPU number `which` of `--pin` (0 master,
/// 1 worker/replica, 2 client), if `--pin` was given.
fn pin(pid: u32, which: usize) -> R<()> {
    taskset(&["-a"], pid, which)
}

/// Pins the calling thread (threads it starts later inherit it).
fn pin_this_thread(which: usize) -> R<()> {
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok()))
        .ok_or("cannot find this thread's id")?;
    taskset(&[], tid, which)
}

fn taskset(flags: &[&str], id: u32, which: usize) -> R<()> {
    let Some(cpus) = *PIN.lock().unwrap_or_else(|p| p.into_inner()) else {
        return Ok(());
    };
    let cpu = cpus[which].to_string();
    let ok = Command::new("taskset")
        .args(flags)
        .args(["-p", "-c", &cpu, &id.to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset (util-linux) for --pin: {e}"))?
        .success();
    if !ok {
        return Err(format!("taskset could not pin {id} to CPU {cpu}"));
    }
    Ok(())
}

// ------------------------------------------------------------ processes

/// Pids of every child still running, killed on exit and on panic.
static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn kill_all() {
    let pids: Vec<u32> = std::mem::take(&mut *PIDS.lock().unwrap_or_else(|p| p.into_inner()));
    for pid in pids {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

struct Reaper;
impl Drop for Reaper {
    fn drop(&mut self) {
        kill_all();
    }
}

type Log = Arc<Mutex<Vec<(Instant, String)>>>;

/// A child process whose stdout and stderr lines are kept with their arrival time.
struct Proc {
    name: String,
    child: Child,
    log: Log,
}

impl Proc {
    fn spawn(name: &str, program: &str, args: &[String]) -> R<Proc> {
        let mut child = Command::new(program)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {name} ({program}): {e}"))?;
        PIDS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(child.id());
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().ok_or("no stdout")?);
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().ok_or("no stderr")?);
        for stream in [out, err] {
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((Instant::now(), line));
                }
            });
        }
        Ok(Proc {
            name: name.to_string(),
            child,
            log,
        })
    }

    fn lines(&self) -> usize {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn find(&self, needle: &str, from: usize) -> Option<(usize, Instant, String)> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.iter()
            .enumerate()
            .skip(from)
            .find(|(_, (_, l))| l.contains(needle))
            .map(|(i, (t, l))| (i, *t, l.clone()))
    }

    fn all_matching(&self, needles: &[&str]) -> Vec<String> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.iter()
            .filter(|(_, l)| needles.iter().any(|n| l.contains(n)))
            .map(|(_, l)| l.clone())
            .collect()
    }

    fn tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let start = log.len().saturating_sub(n);
        log[start..]
            .iter()
            .map(|(_, l)| format!("    [{}] {l}", self.name))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn check_alive(&mut self) -> R<()> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(format!(
                "{} exited unexpectedly ({status}); last log lines:\n{}",
                self.name,
                self.tail(20)
            )),
            _ => Ok(()),
        }
    }

    fn wait_log(&mut self, needle: &str, from: usize, within: Duration) -> R<(usize, Instant, String)> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(hit) = self.find(needle, from) {
                return Ok(hit);
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: no log line with {needle:?} within {within:?}; last lines:\n{}",
                    self.name,
                    self.tail(20)
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, then wait for a clean exit (SIGKILL after 20 s).
    fn terminate(&mut self) -> R<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.forget();
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("{} exited with {status} after SIGTERM", self.name))
                };
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.forget();
                return Err(format!("{} ignored SIGTERM for 20 s; killed", self.name));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn forget(&self) {
        let id = self.child.id();
        PIDS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| *p != id);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.forget();
    }
}

/// A loopback port free for both TCP and UDP right now.
fn free_port() -> u16 {
    loop {
        let t = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = t.local_addr().expect("local addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

// ------------------------------------------------------------ hypha wire client

/// Blocking framed connection (the same codec the nodes use: hypha_net).
/// Plain frames during the handshake; once authenticated, every frame sent
/// is sealed and every frame received must carry a valid MAC.
struct FrameConn {
    s: TcpStream,
    dec: FrameDecoder,
    chunk: Vec<u8>,
    out: Vec<u8>,
    /// Seals outgoing frames once the handshake is done.
    sealer: Option<Sealer>,
}

impl FrameConn {
    /// A connection in its handshake: frames up to a `Refuse` are taken.
    fn new(s: TcpStream) -> FrameConn {
        FrameConn {
            s,
            dec: FrameDecoder::with_payload_max(CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX),
            chunk: vec![0; 64 << 10],
            out: Vec::new(),
            sealer: None,
        }
    }

    fn queue(&mut self, m: &Message) -> R<()> {
        match self.sealer.as_mut() {
            Some(sealer) => seal_frame(m, sealer, &mut self.out),
            None => encode_frame(m, &mut self.out),
        }
        .map_err(|e| format!("encode {}: {e}", m.name()))
    }

    /// (writer, reader) on clones of the stream, for a sending and a
    /// receiving thread: the writer keeps the sealer, the reader the
    /// authenticated decoder (and whatever it has buffered).
    fn split(self) -> R<(FrameConn, FrameConn)> {
        let reader = FrameConn {
            s: self.s.try_clone().map_err(|e| e.to_string())?,
            dec: self.dec,
            chunk: self.chunk,
            out: Vec::new(),
            sealer: None,
        };
        let writer = FrameConn {
            s: self.s,
            dec: FrameDecoder::new(),
            chunk: Vec::new(),
            out: self.out,
            sealer: self.sealer,
        };
        Ok((writer, reader))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.s.write_all(&self.out);
        self.out.clear();
        r
    }

    fn send(&mut self, m: &Message) -> R<()> {
        self.queue(m)?;
        self.flush().map_err(|e| format!("send: {e}"))
    }

    /// Next message; a read timeout comes back as an io error of kind
    /// WouldBlock/TimedOut and keeps partial frames buffered.
    fn recv(&mut self) -> std::io::Result<Message> {
        loop {
            match self.dec.next_message() {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        e.to_string(),
                    ))
                }
            }
            let n = self.s.read(&mut self.chunk)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "peer closed",
                ));
            }
            self.dec.feed(&self.chunk[..n]);
        }
    }
}

struct Hy {
    c: FrameConn,
    next: u64,
}

impl Hy {
    fn connect(addr: SocketAddr) -> R<Hy> {
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
        let mut c = FrameConn::new(s);
        // The authenticated handshake (net/WIRE.md §4) under the public
        // insecure key: the nodes run on loopback without a key file.
        let mut hello = hypha_server::wire::hello(
            "hypha",
            Role::Client,
            hypha_server::wire::random_u64(),
            Purpose::Request,
        )
        .map_err(|e| e.to_string())?;
        hello.nonce = hypha_server::wire::random_bytes().map_err(|e| e.to_string())?;
        c.send(&Message::Hello(hello.clone()))?;
        let challenge = match c.recv().map_err(|e| format!("handshake with {addr}: {e}"))? {
            Message::Challenge(challenge) => challenge,
            other => return Err(format!("{addr} answered the Hello with {other:?}")),
        };
        let (prove, session) = connector_finish(&ClusterKeys::insecure(), &hello, &challenge)
            .map_err(|e| format!("handshake with {addr}: {e}"))?;
        c.send(&Message::Prove(prove))?;
        c.dec.authenticate(session.opener);
        c.sealer = Some(session.sealer);
        match c.recv().map_err(|e| format!("handshake with {addr}: {e}"))? {
            Message::Welcome(_) => Ok(Hy { c, next: 1 }),
            other => Err(format!("{addr} answered the Prove with {other:?}")),
        }
    }

    fn call(&mut self, f: impl FnOnce(u64) -> Message) -> R<Message> {
        let id = self.next;
        self.next += 1;
        self.c.send(&f(id))?;
        let m = self.c.recv().map_err(|e| format!("recv: {e}"))?;
        if m.req_id() != Some(id) {
            return Err(format!("answer to request {id} carries another id: {m:?}"));
        }
        Ok(m)
    }

    /// Outer error: transport; inner error: the node's Error answer.
    fn put(&mut self, key: &[u8], value: &[u8]) -> R<Result<u64, String>> {
        match self.call(|req_id| Message::Put {
            req_id,
            key: key.to_vec(),
            value: value.to_vec(),
        })? {
            Message::Written { seq, .. } => Ok(Ok(seq)),
            Message::Error { code, message, .. } => Ok(Err(format!("{code:?}: {message}"))),
            other => Err(format!("Put answered by {other:?}")),
        }
    }

    fn get(&mut self, key: &[u8], min_seq: u64) -> R<Message> {
        self.call(|req_id| Message::Get {
            req_id,
            key: key.to_vec(),
            min_seq,
        })
    }

    /// (digest, seq, len), or None while a worker swaps in a snapshot.
    fn digest(&mut self) -> R<Option<(u64, u64, u64)>> {
        match self.call(|req_id| Message::Digest { req_id })? {
            Message::DigestIs {
                digest, seq, len, ..
            } => Ok(Some((digest, seq, len))),
            Message::Error {
                code: ErrorCode::Unavailable,
                ..
            } => Ok(None),
            other => Err(format!("Digest answered by {other:?}")),
        }
    }
}

fn put_msg(req_id: u64, ns: u8, i: u64) -> Message {
    Message::Put {
        req_id,
        key: key(ns, i),
        value: value(ns, i),
    }
}

// ------------------------------------------------------------ RESP client

#[derive(Debug, PartialEq)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

fn resp_encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one reply from the front of `buf`: Ok(None) if incomplete.
fn resp_parse(buf: &[u8]) -> R<Option<(Reply, usize)>> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    if eol == 0 {
        return Err("empty RESP line".into());
    }
    let line = std::str::from_utf8(&buf[1..eol]).map_err(|e| e.to_string())?;
    let after = eol + 2;
    let int = || line.parse::<i64>().map_err(|e| format!("bad RESP integer {line:?}: {e}"));
    Ok(match buf[0] {
        b'+' => Some((Reply::Simple(line.to_string()), after)),
        b'-' => Some((Reply::Error(line.to_string()), after)),
        b':' => Some((Reply::Int(int()?), after)),
        b'$' => {
            let n = int()?;
            if n < 0 {
                Some((Reply::Bulk(None), after))
            } else {
                let end = after + n as usize;
                if buf.len() < end + 2 {
                    None
                } else {
                    Some((Reply::Bulk(Some(buf[after..end].to_vec())), end + 2))
                }
            }
        }
        b'*' => {
            let n = int()?;
            let mut items = Vec::new();
            let mut pos = after;
            for _ in 0..n.max(0) {
                match resp_parse(&buf[pos..])? {
                    Some((r, used)) => {
                        items.push(r);
                        pos += used;
                    }
                    None => return Ok(None),
                }
            }
            Some((Reply::Array(items), pos))
        }
        other => return Err(format!("bad RESP type byte {other:#x}")),
    })
}

struct Resp {
    s: TcpStream,
    buf: Vec<u8>,
    start: usize,
    chunk: Vec<u8>,
    out: Vec<u8>,
}

impl Resp {
    fn from_stream(s: TcpStream) -> Resp {
        Resp {
            s,
            buf: Vec::new(),
            start: 0,
            chunk: vec![0; 64 << 10],
            out: Vec::new(),
        }
    }

    fn connect(port: u16) -> R<Resp> {
        let addr = lo(port);
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
        Ok(Resp::from_stream(s))
    }

    fn connect_retry(port: u16, within: Duration) -> R<Resp> {
        let deadline = Instant::now() + within;
        loop {
            let attempt = Resp::connect(port).and_then(|mut r| match r.cmd(&[b"PING"])? {
                Reply::Simple(s) if s == "PONG" => Ok(r),
                other => Err(format!("PING answered {other:?}")),
            });
            match attempt {
                Ok(r) => return Ok(r),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn queue(&mut self, args: &[&[u8]]) {
        resp_encode(&mut self.out, args);
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.s.write_all(&self.out);
        self.out.clear();
        r
    }

    /// Next reply; a read timeout keeps partial input buffered.
    fn recv(&mut self) -> std::io::Result<Reply> {
        loop {
            match resp_parse(&self.buf[self.start..]) {
                Ok(Some((r, used))) => {
                    self.start += used;
                    if self.start == self.buf.len() {
                        self.buf.clear();
                        self.start = 0;
                    }
                    return Ok(r);
                }
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            }
            let n = self.s.read(&mut self.chunk)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "redis closed",
                ));
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.extend_from_slice(&self.chunk[..n]);
        }
    }

    fn cmd(&mut self, args: &[&[u8]]) -> R<Reply> {
        self.queue(args);
        self.flush().map_err(|e| format!("redis send: {e}"))?;
        self.recv().map_err(|e| format!("redis recv: {e}"))
    }
}

// ------------------------------------------------------------ paced background writer

#[derive(Default)]
struct BgReport {
    sent: u64,
    secs: f64,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    max_in_flight: u64,
}

struct Bg {
    stop: Arc<AtomicBool>,
    sender: JoinHandle<R<(u64, f64, u64)>>,
    receiver: JoinHandle<R<(u64, u64, Option<String>)>>,
}

/// Sends `rate` requests/s on `out` (catching up to the schedule every
/// ~200 µs, so requests go out in bursts of 1–3 at 10,000/s), never waiting
/// for answers; `read_one` reads answers on a clone of the connection.
fn bg_start(
    mut out: TcpStream,
    rate: f64,
    mut encode: impl FnMut(u64, &mut Vec<u8>) -> R<()> + Send + 'static,
    mut read_one: impl FnMut() -> std::io::Result<Result<(), String>> + Send + 'static,
) -> Bg {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sender = {
        let (stop, sent, answered, done) = (stop.clone(), sent.clone(), answered.clone(), done.clone());
        std::thread::spawn(move || -> R<(u64, f64, u64)> {
            let start = Instant::now();
            let mut i = 0u64;
            let mut buf = Vec::new();
            let mut max_in_flight = 0;
            let result = (|| {
                while !stop.load(Ordering::Acquire) {
                    let due = (start.elapsed().as_secs_f64() * rate) as u64;
                    if due > i {
                        buf.clear();
                        while i < due {
                            encode(i, &mut buf)?;
                            i += 1;
                        }
                        out.write_all(&buf).map_err(|e| format!("background writer: {e}"))?;
                        sent.store(i, Ordering::Release);
                        max_in_flight = max_in_flight.max(i - answered.load(Ordering::Acquire));
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                Ok(())
            })();
            done.store(true, Ordering::Release);
            result.map(|()| (i, start.elapsed().as_secs_f64(), max_in_flight))
        })
    };
    let receiver = {
        let (sent, answered, done) = (sent.clone(), answered.clone(), done.clone());
        std::thread::spawn(move || -> R<(u64, u64, Option<String>)> {
            let (mut ok, mut errors, mut first) = (0u64, 0u64, None);
            let mut done_at: Option<Instant> = None;
            loop {
                if done.load(Ordering::Acquire) {
                    if ok + errors >= sent.load(Ordering::Acquire) {
                        return Ok((ok, errors, first));
                    }
                    let t = *done_at.get_or_insert_with(Instant::now);
                    if t.elapsed() > Duration::from_secs(30) {
                        return Err(format!(
                            "background writer: {} of {} answers missing 30 s after it stopped",
                            sent.load(Ordering::Acquire) - ok - errors,
                            sent.load(Ordering::Acquire)
                        ));
                    }
                }
                match read_one() {
                    Ok(Ok(())) => ok += 1,
                    Ok(Err(e)) => {
                        errors += 1;
                        first.get_or_insert(e);
                    }
                    Err(e) if timed_out(&e) => continue,
                    Err(e) => return Err(format!("background writer's answers: {e}")),
                }
                answered.store(ok + errors, Ordering::Release);
            }
        })
    };
    Bg {
        stop,
        sender,
        receiver,
    }
}

fn bg_stop(bg: Bg) -> R<BgReport> {
    bg.stop.store(true, Ordering::Release);
    let (sent, secs, max_in_flight) = bg.sender.join().map_err(|_| "background sender panicked")??;
    let (ok, errors, first_error) = bg
        .receiver
        .join()
        .map_err(|_| "background receiver panicked")??;
    Ok(BgReport {
        sent,
        secs,
        ok,
        errors,
        first_error,
        max_in_flight,
    })
}

impl BgReport {
    /// Adds another round's background writer.
    fn absorb(&mut self, o: BgReport) {
        self.sent += o.sent;
        self.secs += o.secs;
        self.ok += o.ok;
        self.errors += o.errors;
        self.max_in_flight = self.max_in_flight.max(o.max_in_flight);
        if let Some(e) = o.first_error {
            self.first_error.get_or_insert(e);
        }
    }
}

fn bg_describe(who: &str, r: &BgReport) {
    say!(
        "  background writer ({who}): {} requests in {:.2} s = {:.0}/s; {} ok, {} errors{}; most unanswered at once: {}",
        r.sent,
        r.secs,
        r.sent as f64 / r.secs.max(1e-9),
        r.ok,
        r.errors,
        r.first_error
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default(),
        r.max_in_flight
    );
}

fn hypha_bg(master: SocketAddr, rate: f64) -> R<Bg> {
    let hy = Hy::connect(master)?;
    let (writer, mut reader) = hy.c.split()?;
    reader
        .s
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let mut sealer = writer.sealer.ok_or("the connection is not authenticated")?;
    Ok(bg_start(
        writer.s,
        rate,
        move |i, buf| {
            seal_frame(&put_msg(i + 1, b'b', i), &mut sealer, buf).map_err(|e| e.to_string())
        },
        move || {
            Ok(match reader.recv()? {
                Message::Written { .. } => Ok(()),
                Message::Error { code, message, .. } => Err(format!("{code:?}: {message}")),
                other => Err(format!("unexpected {}", other.name())),
            })
        },
    ))
}

fn redis_bg(port: u16, rate: f64) -> R<Bg> {
    let r = Resp::connect(port)?;
    let s = r.s;
    let mut reader = Resp::from_stream(s.try_clone().map_err(|e| e.to_string())?);
    reader
        .s
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    Ok(bg_start(
        s,
        rate,
        |i, buf| {
            resp_encode(buf, &[b"SET", &key(b'b', i), &value(b'b', i)]);
            Ok(())
        },
        move || {
            Ok(match reader.recv()? {
                Reply::Simple(s) if s == "OK" => Ok(()),
                other => Err(format!("{other:?}")),
            })
        },
    ))
}

// ------------------------------------------------------------ lag samplers

#[derive(Clone, Copy, PartialEq)]
enum Method {
    /// One Get with min_seq = the write's seq: the worker answers as soon as
    /// it has applied it.
    MinSeq,
    /// Get (min_seq 0) in a tight loop until the value is there.
    Poll,
}

#[derive(Default)]
struct Lag {
    lag: Vec<f64>,
    ack: Vec<f64>,
    /// Where each round's samples end in `lag` and `ack`, for the bootstrap
    /// over rounds ([`p99_interval`]).
    round_ends: Vec<(usize, usize)>,
    polls: u64,
    failures: u64,
    first_failure: Option<String>,
}

impl Lag {
    fn fail(&mut self, e: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(e);
    }

    /// Adds the samples of another round.
    fn absorb(&mut self, o: Lag) {
        self.lag.extend(o.lag);
        self.ack.extend(o.ack);
        self.polls += o.polls;
        self.failures += o.failures;
        if let Some(e) = o.first_failure {
            self.first_failure.get_or_insert(e);
        }
        self.end_round();
    }

    /// Marks the end of a round of samples.
    fn end_round(&mut self) {
        self.round_ends.push((self.lag.len(), self.ack.len()));
    }

    /// The lag samples split into rounds.
    fn lag_rounds(&self) -> Vec<&[f64]> {
        split_rounds(&self.lag, self.round_ends.iter().map(|e| e.0))
    }

    /// The acknowledgement samples split into rounds.
    fn ack_rounds(&self) -> Vec<&[f64]> {
        split_rounds(&self.ack, self.round_ends.iter().map(|e| e.1))
    }
}

fn split_rounds(v: &[f64], ends: impl Iterator<Item = usize>) -> Vec<&[f64]> {
    let mut start = 0;
    ends.map(|end| {
        let round = &v[start..end];
        start = end;
        round
    })
    .collect()
}

fn hypha_lag(master: SocketAddr, worker: SocketAddr, from: u64, n: u64, method: Method, ns: u8) -> R<Lag> {
    let mut m = Hy::connect(master)?;
    let mut w = Hy::connect(worker)?;
    let mut out = Lag::default();
    for i in from..from + n {
        let (k, v) = (key(ns, i), value(ns, i));
        let t0 = Instant::now();
        let seq = match m.put(&k, &v)? {
            Ok(seq) => seq,
            Err(e) => {
                out.fail(format!("Put: {e}"));
                continue;
            }
        };
        let acked = Instant::now();
        out.ack.push(us(acked - t0));
        let visible = match method {
            Method::MinSeq => {
                out.polls += 1;
                match w.get(&k, seq)? {
                    Message::Value {
                        value: Some((s, got)),
                        ..
                    } if got == v && s == seq => Ok(()),
                    other => Err(format!("Get(min_seq {seq}) after Written: {other:?}")),
                }
            }
            Method::Poll => loop {
                out.polls += 1;
                match w.get(&k, 0)? {
                    Message::Value {
                        value: Some((_, got)),
                        ..
                    } if got == v => break Ok(()),
                    Message::Value { value: None, .. } if acked.elapsed() < VISIBLE_WITHIN => {}
                    other => break Err(format!("Get poll, seq {seq}: {other:?}")),
                }
            },
        };
        match visible {
            Ok(()) => out.lag.push(us(acked.elapsed())),
            Err(e) => out.fail(e),
        }
        std::thread::sleep(IDLE_PAUSE);
    }
    Ok(out)
}

fn redis_lag(master: u16, replica: u16, from: u64, n: u64, ns: u8) -> R<Lag> {
    let mut m = Resp::connect(master)?;
    let mut r = Resp::connect(replica)?;
    let mut out = Lag::default();
    for i in from..from + n {
        let (k, v) = (key(ns, i), value(ns, i));
        let t0 = Instant::now();
        match m.cmd(&[b"SET", &k, &v])? {
            Reply::Simple(s) if s == "OK" => {}
            other => {
                out.fail(format!("SET: {other:?}"));
                continue;
            }
        }
        let acked = Instant::now();
        out.ack.push(us(acked - t0));
        let visible = loop {
            out.polls += 1;
            match r.cmd(&[b"GET", &k])? {
                Reply::Bulk(Some(got)) if got == v => break Ok(()),
                Reply::Bulk(None) if acked.elapsed() < VISIBLE_WITHIN => {}
                other => break Err(format!("GET poll: {other:?}")),
            }
        };
        match visible {
            Ok(()) => out.lag.push(us(acked.elapsed())),
            Err(e) => out.fail(e),
        }
        std::thread::sleep(IDLE_PAUSE);
    }
    Ok(out)
}

/// Round trip of a read that needs no waiting (the key is there).
fn hypha_read_rtt(worker: SocketAddr, n: u64, ns: u8, pause: Option<Duration>) -> R<Vec<f64>> {
    let mut w = Hy::connect(worker)?;
    let mut v = Vec::new();
    for i in 0..n {
        let t0 = Instant::now();
        match w.get(&key(ns, i % 100), 0)? {
            Message::Value { value: Some(_), .. } => v.push(us(t0.elapsed())),
            other => return Err(format!("read RTT Get: {other:?}")),
        }
        if let Some(p) = pause {
            std::thread::sleep(p);
        }
    }
    Ok(v)
}

fn redis_read_rtt(replica: u16, n: u64, ns: u8, pause: Option<Duration>) -> R<Vec<f64>> {
    let mut r = Resp::connect(replica)?;
    let mut v = Vec::new();
    for i in 0..n {
        let t0 = Instant::now();
        match r.cmd(&[b"GET", &key(ns, i % 100)])? {
            Reply::Bulk(Some(_)) => v.push(us(t0.elapsed())),
            other => return Err(format!("read RTT GET: {other:?}")),
        }
        if let Some(p) = pause {
            std::thread::sleep(p);
        }
    }
    Ok(v)
}

// ------------------------------------------------------------ hypha nodes

struct Env {
    bin: String,
    dir: PathBuf,
}

impl Env {
    fn master(&self, name: &str, extra: &[&str]) -> R<(Proc, SocketAddr)> {
        let port = free_port();
        let mut args: Vec<String> = vec![
            "master".into(),
            "--data".into(),
            self.dir.join(name).display().to_string(),
            "--listen".into(),
            lo(port).to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(HEARTBEAT.iter().map(|s| s.to_string()));
        say!("  start: hypha {}", args.join(" "));
        let mut p = Proc::spawn(name, &self.bin, &args)?;
        p.wait_log("(tcp+udp)", 0, Duration::from_secs(20))?;
        pin(p.child.id(), 0)?;
        Ok((p, lo(port)))
    }

    fn worker_args(&self, name: &str, master: SocketAddr, port: u16) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "worker".into(),
            "--data".into(),
            self.dir.join(name).display().to_string(),
            "--master".into(),
            master.to_string(),
            "--listen".into(),
            lo(port).to_string(),
        ];
        args.extend(HEARTBEAT.iter().map(|s| s.to_string()));
        args
    }

    /// Starts a worker and waits until the master says it joined and the
    /// worker installed its (empty) first snapshot.
    fn worker_joined(&self, name: &str, master: &mut Proc, master_addr: SocketAddr, extra: &[&str]) -> R<(Proc, SocketAddr)> {
        let port = free_port();
        let mut args = self.worker_args(name, master_addr, port);
        args.extend(extra.iter().map(|s| s.to_string()));
        say!("  start: hypha {}", args.join(" "));
        let from = master.lines();
        let mut w = Proc::spawn(name, &self.bin, &args)?;
        master.wait_log("joined at seq", from, Duration::from_secs(20))?;
        w.wait_log("installed", 0, Duration::from_secs(60))?;
        pin(w.child.id(), 1)?;
        Ok((w, lo(port)))
    }
}

/// Polls a worker's digest until it equals `target`; returns when.
fn wait_digest(worker: &mut Proc, addr: SocketAddr, target: (u64, u64, u64), within: Duration) -> R<Instant> {
    let deadline = Instant::now() + within;
    let mut conn: Option<Hy> = None;
    let mut last = None;
    loop {
        worker.check_alive()?;
        if Instant::now() > deadline {
            return Err(format!(
                "worker digest {last:?} never reached the master's {target:?} within {within:?}; worker log:\n{}",
                worker.tail(20)
            ));
        }
        if conn.is_none() {
            conn = Hy::connect(addr).ok();
        }
        if let Some(c) = conn.as_mut() {
            match c.digest() {
                Ok(Some(d)) if d == target => return Ok(Instant::now()),
                Ok(d) => last = d.or(last),
                Err(_) => conn = None,
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Writes records 0..n (namespace `ns`) over `conns` connections with
/// `window` requests in flight on each.
fn hypha_load(master: SocketAddr, n: u64, conns: u64, window: u64, ns: u8) -> R<Duration> {
    let start = Instant::now();
    let mut handles = Vec::new();
    for c in 0..conns {
        let (lo_i, hi_i) = (n * c / conns, n * (c + 1) / conns);
        let hy = Hy::connect(master)?;
        let (mut writer, mut reader) = hy.c.split()?;
        let (tx, rx) = mpsc::channel::<u64>();
        let rd = std::thread::spawn(move || -> R<()> {
            for _ in lo_i..hi_i {
                let m = reader.recv().map_err(|e| format!("load: recv: {e}"))?;
                match m {
                    Message::Written { .. } => {}
                    other => return Err(format!("load: Put answered {other:?}")),
                }
                let _ = tx.send(1);
            }
            Ok(())
        });
        let wr = std::thread::spawn(move || -> R<()> {
            let mut in_flight = 0u64;
            let mut i = lo_i;
            while i < hi_i {
                while let Ok(k) = rx.try_recv() {
                    in_flight -= k;
                }
                if in_flight >= window {
                    let k = rx
                        .recv_timeout(IO_TIMEOUT)
                        .map_err(|e| format!("load: no answers: {e}"))?;
                    in_flight -= k;
                    continue;
                }
                let room = (window - in_flight).min(hi_i - i).min(256);
                for j in i..i + room {
                    writer.queue(&put_msg(j + 1, ns, j))?;
                }
                writer.flush().map_err(|e| format!("load: send: {e}"))?;
                in_flight += room;
                i += room;
            }
            Ok(())
        });
        handles.push((wr, rd));
    }
    for (wr, rd) in handles {
        wr.join().map_err(|_| "load writer panicked")??;
        rd.join().map_err(|_| "load reader panicked")??;
    }
    Ok(start.elapsed())
}

// ------------------------------------------------------------ machine info

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("({cmd}: {e})"))
}

fn machine_info(env: &Env, redis: &str) {
    say!("machine:");
    say!("  cpus (nproc): {}", sh("nproc"));
    say!("  cpu: {}", sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'"));
    say!("  memory: {}", sh("grep MemTotal /proc/meminfo | sed 's/MemTotal: *//'"));
    say!("  kernel: {}", sh("uname -srm"));
    say!("  load average at start: {}", sh("cat /proc/loadavg"));
    say!("  filesystem of {}:\n{}", env.dir.display(), sh(&format!("df -T '{}' | sed 's/^/    /'", env.dir.display())));
    say!("  hypha binary: {} (modified {})", env.bin, sh(&format!("date -u -r '{}' +%FT%TZ", env.bin)));
    say!("  hypha git revision: {}", sh(&format!("git --no-optional-locks -C '{REPO}' rev-parse --short HEAD")));
    say!("  redis: {}", sh(&format!("'{redis}' --version")));
    say!("  loopback only (127.0.0.1); every node is a separate process");
}

// ------------------------------------------------------------ main

struct Opts {
    hypha: String,
    redis: String,
    samples: u64,
    records: u64,
    rate: f64,
    rounds: u64,
    dir: PathBuf,
}

fn parse_args() -> R<Opts> {
    let mut o = Opts {
        hypha: "/work/target-bench/release/hypha".into(),
        redis: "redis-server".into(),
        samples: 2_000,
        records: 1_000_000,
        rate: 10_000.0,
        rounds: 10,
        dir: PathBuf::from("/tmp"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--hypha" => o.hypha = val()?,
            "--redis-server" => o.redis = val()?,
            "--samples" => o.samples = val()?.parse().map_err(|e| format!("--samples: {e}"))?,
            "--records" => o.records = val()?.parse().map_err(|e| format!("--records: {e}"))?,
            "--rate" => o.rate = val()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--rounds" => o.rounds = val()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--dir" => o.dir = PathBuf::from(val()?),
            "--pin" => {
                let v = val()?;
                let cpus: Vec<u32> = v.split(',').map(|c| c.trim().parse::<u32>()).collect::<Result<_, _>>().map_err(|e| format!("--pin {v}: {e}"))?;
                let cpus: [u32; 3] = cpus.try_into().map_err(|_| format!("--pin {v}: give three CPUs: master,worker,client"))?;
                *PIN.lock().unwrap_or_else(|p| p.into_inner()) = Some(cpus);
            }
            "--help" | "-h" => {
                println!("replication [--hypha PATH] [--redis-server PATH] [--samples N] [--records N] [--rate W] [--rounds R] [--dir PATH] [--pin M,W,C]");
                println!("  --pin M,W,C  run both systems' masters on CPU M, workers/replicas on CPU W, the measuring client on CPU C (taskset)");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }
    Ok(o)
}

struct Results {
    hy_idle: [Lag; 2],
    hy_load: [Lag; 2],
    hy_read: Stats,
    hy_read_first: Stats,
    hy_read_idle: Stats,
    rd_idle: Lag,
    rd_load: Lag,
    rd_read: Stats,
    rd_read_first: Stats,
    rd_read_idle: Stats,
    hy_sync: Lag,
    rd_wait: Lag,
    catchup: Option<(u64, f64, f64)>,
    snapshot: Option<(f64, f64, f64, String)>,
    handshake: Stats,
}

/// Connections timed for the handshake row.
const HANDSHAKES: usize = 500;

fn main() -> ExitCode {
    let _reaper = Reaper;
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_all();
        default_hook(info);
    }));
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("replication: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = opts.dir.join(format!("hypha-repl-bench-{}", std::process::id()));
    let result = run(&opts, &dir);
    kill_all();
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say!("\nBENCHMARK FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: &Opts, dir: &Path) -> R<()> {
    if !Path::new(&opts.hypha).is_file() {
        return Err(format!(
            "no hypha binary at {}; build it: cd /work/main && CARGO_TARGET_DIR=/work/target-bench cargo build --release -p hypha-server",
            opts.hypha
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let env = Env {
        bin: opts.hypha.clone(),
        dir: dir.to_path_buf(),
    };
    machine_info(&env, &opts.redis);
    pin_this_thread(2)?;
    match *PIN.lock().unwrap_or_else(|p| p.into_inner()) {
        Some([m, w, c]) => say!("placement (--pin): masters on CPU {m}, workers and replicas on CPU {w}, client on CPU {c}"),
        None => say!("placement: left to the kernel (no --pin)"),
    }
    say!(
        "workload: {KEY_LEN}-byte keys, {VAL_LEN}-byte incompressible values; {} lag samples per row, {} ms pause between samples; background writer {:.0} writes/s; catch-up/snapshot {} records",
        opts.samples,
        IDLE_PAUSE.as_millis(),
        opts.rate,
        opts.records
    );
    let n = opts.samples;

    // ---- 1. hypha and Redis side by side. Both run for the whole section
    // and their samples are taken in alternating rounds, so a slow spell of
    // this shared machine hits both alike.
    let rounds = opts.rounds.clamp(1, n.max(1));
    let per = n.div_ceil(rounds);
    say!("\n[1] replication lag, hypha and Redis in {rounds} alternating rounds of {per} samples per row");
    say!("  hypha: master --fsync never + 1 worker --fsync never (Redis runs without persistence too)");
    let (mut ma, ma_addr) = env.master("lag-master", &["--fsync", "never"])?;
    let (mut wa, wa_addr) = env.worker_joined("lag-worker", &mut ma, ma_addr, &["--fsync", "never"])?;
    say!("  Redis: master + 1 replica (--save '' --appendonly no)");
    let (rm_port, rr_port) = (free_port(), free_port());
    let redis_args = |port: u16, name: &str| -> R<Vec<String>> {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        Ok(vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            d.display().to_string(),
        ])
    };
    let margs = redis_args(rm_port, "redis-master")?;
    say!("  start: {} {}", opts.redis, margs.iter().map(|a| if a.is_empty() { "''".to_string() } else { a.clone() }).collect::<Vec<_>>().join(" "));
    let mut rm = Proc::spawn("redis-master", &opts.redis, &margs)?;
    pin(rm.child.id(), 0)?;
    let mut rargs = redis_args(rr_port, "redis-replica")?;
    rargs.extend(["--replicaof".into(), "127.0.0.1".into(), rm_port.to_string()]);
    say!("  start: {} ... --port {rr_port} --replicaof 127.0.0.1 {rm_port}", opts.redis);
    let mut rr = Proc::spawn("redis-replica", &opts.redis, &rargs)?;
    pin(rr.child.id(), 1)?;
    Resp::connect_retry(rm_port, Duration::from_secs(10))?;
    let mut rc = Resp::connect_retry(rr_port, Duration::from_secs(10))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        rm.check_alive()?;
        rr.check_alive()?;
        if let Reply::Bulk(Some(info)) = rc.cmd(&[b"INFO", b"replication"])? {
            if String::from_utf8_lossy(&info).contains("master_link_status:up") {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err(format!("Redis replica never linked up; log:\n{}", rr.tail(20)));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    say!("  replica linked (master_link_status:up)");

    let (mut hy_idle_min, mut hy_idle_poll, mut rd_idle) = (Lag::default(), Lag::default(), Lag::default());
    for round in 0..rounds {
        let from = round * per;
        let k = per.min(n - from.min(n));
        hy_idle_min.absorb(hypha_lag(ma_addr, wa_addr, from, k, Method::MinSeq, b'i')?);
        rd_idle.absorb(redis_lag(rm_port, rr_port, from, k, b'i')?);
        hy_idle_poll.absorb(hypha_lag(ma_addr, wa_addr, from, k, Method::Poll, b'j')?);
    }
    say!("  idle:");
    describe("hypha Get(min_seq=seq)", &stats(&hy_idle_min.lag), hy_idle_min.failures, &hy_idle_min.first_failure);
    describe("hypha tight Get poll", &stats(&hy_idle_poll.lag), hy_idle_poll.failures, &hy_idle_poll.first_failure);
    say!("  (hypha poll: {:.1} Gets per sample on average)", hy_idle_poll.polls as f64 / n as f64);
    describe("Redis tight GET poll on the replica", &stats(&rd_idle.lag), rd_idle.failures, &rd_idle.first_failure);
    say!("  (Redis poll: {:.1} GETs per sample on average)", rd_idle.polls as f64 / n as f64);
    describe("hypha Put round trip (async ack)", &stats(&hy_idle_min.ack), 0, &None);
    describe("Redis SET round trip", &stats(&rd_idle.ack), 0, &None);
    let (mut hy_rtt, mut rd_rtt) = (Vec::new(), Vec::new());
    let (mut hy_rtt_idle, mut rd_rtt_idle) = (Vec::new(), Vec::new());
    let (mut hy_first, mut rd_first) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let k = per.min(n - (round * per).min(n));
        // Each round reads on a new connection: its first read is kept
        // apart too (a connection's first request can cost more).
        let (hy, rd) = (hypha_read_rtt(wa_addr, k, b'i', None)?, redis_read_rtt(rr_port, k, b'i', None)?);
        hy_first.extend(hy.first());
        rd_first.extend(rd.first());
        hy_rtt.extend(hy);
        rd_rtt.extend(rd);
        hy_rtt_idle.extend(hypha_read_rtt(wa_addr, k, b'i', Some(IDLE_PAUSE))?);
        rd_rtt_idle.extend(redis_read_rtt(rr_port, k, b'i', Some(IDLE_PAUSE))?);
    }
    let (hy_read, rd_read) = (stats(&hy_rtt), stats(&rd_rtt));
    describe("hypha worker Get round trip, key present (floor of both methods)", &hy_read, 0, &None);
    describe("Redis replica GET round trip, key present", &rd_read, 0, &None);
    let (hy_read_first, rd_read_first) = (stats(&hy_first), stats(&rd_first));
    describe("hypha worker Get round trip, first on its connection", &hy_read_first, 0, &None);
    describe("Redis replica GET round trip, first on its connection", &rd_read_first, 0, &None);
    let (hy_read_idle, rd_read_idle) = (stats(&hy_rtt_idle), stats(&rd_rtt_idle));
    describe("hypha worker Get round trip, key present, after 2 ms idle", &hy_read_idle, 0, &None);
    describe("Redis replica GET round trip, key present, after 2 ms idle", &rd_read_idle, 0, &None);

    let (mut hy_load_min, mut hy_load_poll, mut rd_load) = (Lag::default(), Lag::default(), Lag::default());
    let (mut hy_bg, mut rd_bg) = (BgReport::default(), BgReport::default());
    for round in 0..rounds {
        let from = round * per;
        let k = per.min(n - from.min(n));
        let bg = hypha_bg(ma_addr, opts.rate)?;
        std::thread::sleep(Duration::from_millis(200));
        let loaded = (|| -> R<(Lag, Lag)> {
            let a = hypha_lag(ma_addr, wa_addr, from, k, Method::MinSeq, b'k')?;
            let b = hypha_lag(ma_addr, wa_addr, from, k, Method::Poll, b'l')?;
            Ok((a, b))
        })();
        hy_bg.absorb(bg_stop(bg)?);
        let (a, b) = loaded?;
        hy_load_min.absorb(a);
        hy_load_poll.absorb(b);
        let bg = redis_bg(rm_port, opts.rate)?;
        std::thread::sleep(Duration::from_millis(200));
        let loaded = redis_lag(rm_port, rr_port, from, k, b'k');
        rd_bg.absorb(bg_stop(bg)?);
        rd_load.absorb(loaded?);
    }
    say!("  {:.0} writes/s in the background:", opts.rate);
    describe("hypha Get(min_seq=seq)", &stats(&hy_load_min.lag), hy_load_min.failures, &hy_load_min.first_failure);
    describe("hypha tight Get poll", &stats(&hy_load_poll.lag), hy_load_poll.failures, &hy_load_poll.first_failure);
    describe("Redis tight GET poll", &stats(&rd_load.lag), rd_load.failures, &rd_load.first_failure);
    describe("hypha sampled Put round trip", &stats(&hy_load_min.ack), 0, &None);
    describe("Redis sampled SET round trip", &stats(&rd_load.ack), 0, &None);
    bg_describe("hypha Put, one pipelined connection", &hy_bg);
    bg_describe("Redis SET, one pipelined connection", &rd_bg);
    {
        let mut mc = Hy::connect(ma_addr)?;
        let target = mc.digest()?.ok_or("master digest unavailable")?;
        wait_digest(&mut wa, wa_addr, target, Duration::from_secs(30))?;
        say!("  check: worker digest equals master's (seq {}, {} keys)", target.1, target.2);
    }
    wa.terminate()?;
    ma.terminate()?;

    // ---- 2. hypha --sync 1 and Redis SET + WAIT, in alternating rounds
    say!("\n[2] write acknowledged by 1 replica, hypha and Redis in {rounds} alternating rounds of {per} samples");
    say!("  hypha: master --fsync never --sync 1 + 1 worker --fsync never; Redis: SET + WAIT 1 1000 sent in one write, time until both replies");
    let (mut ms, ms_addr) = env.master("sync-master", &["--fsync", "never", "--sync", "1"])?;
    let (mut ws, ws_addr) = env.worker_joined("sync-worker", &mut ms, ms_addr, &["--fsync", "never"])?;
    let (mut hy_sync, mut rd_wait) = (Lag::default(), Lag::default());
    {
        let mut c = Hy::connect(ms_addr)?;
        // Warm-up: until the worker's acks arrive.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut w = 0;
        loop {
            match c.put(&key(b'w', w), &value(b'w', w))? {
                Ok(_) if w >= 20 => break,
                Ok(_) => {}
                Err(e) if Instant::now() > deadline => return Err(format!("sync 1 warm-up: {e}")),
                Err(_) => {}
            }
            w += 1;
        }
        let mut rc = Resp::connect(rm_port)?;
        for round in 0..rounds {
            let from = round * per;
            for i in from..(from + per).min(n) {
                let (k, v) = (key(b's', i), value(b's', i));
                let t0 = Instant::now();
                match c.put(&k, &v)? {
                    Ok(_) => hy_sync.ack.push(us(t0.elapsed())),
                    Err(e) => hy_sync.fail(e),
                }
            }
            hy_sync.end_round();
            for i in from..(from + per).min(n) {
                let (k, v) = (key(b's', i), value(b's', i));
                let t0 = Instant::now();
                rc.queue(&[b"SET", &k, &v]);
                rc.queue(&[b"WAIT", b"1", b"1000"]);
                rc.flush().map_err(|e| format!("redis send: {e}"))?;
                let set = rc.recv().map_err(|e| format!("redis recv: {e}"))?;
                let wait = rc.recv().map_err(|e| format!("redis recv: {e}"))?;
                let t = us(t0.elapsed());
                match (set, wait) {
                    (Reply::Simple(s), Reply::Int(1)) if s == "OK" => rd_wait.ack.push(t),
                    other => rd_wait.fail(format!("{other:?}")),
                }
            }
            rd_wait.end_round();
        }
        // Check (untimed) that --sync 1 means what it says: a write is on the
        // worker when the master acknowledges it.
        let mut wc = Hy::connect(ws_addr)?;
        let (mut seen, checks) = (0, 200);
        for i in 0..checks {
            let (k, v) = (key(b'v', i), value(b'v', i));
            if c.put(&k, &v)?.is_ok() {
                if let Message::Value { value: Some((_, got)), .. } = wc.get(&k, 0)? {
                    seen += u64::from(got == v);
                }
            }
        }
        say!("  check: {seen} of {checks} writes were readable on the worker (Get, min_seq 0) right after the master's Written");
    }
    describe("hypha Put round trip with --sync 1", &stats(&hy_sync.ack), hy_sync.failures, &hy_sync.first_failure);
    describe("Redis SET + WAIT 1 1000 round trip", &stats(&rd_wait.ack), rd_wait.failures, &rd_wait.first_failure);
    ws.terminate()?;
    ms.terminate()?;
    let redis_warn = rm.all_matching(&["WARNING", "rror"]).into_iter().chain(rr.all_matching(&["WARNING", "rror"])).collect::<Vec<_>>();
    rr.terminate().ok();
    rm.terminate().ok();

    // ---- 5. catch-up
    say!("\n[3] hypha catch-up: a worker {} records behind (same history) resumes from its log position", opts.records);
    let (mut mc, mc_addr) = env.master("big-master", &["--fsync", "never"])?;
    let (mut wc, wc_addr) = env.worker_joined("catchup-worker", &mut mc, mc_addr, &[])?;
    say!("  worker joined at seq 0 (empty snapshot installed); stopping it with SIGTERM");
    wc.terminate()?;
    let wc_port = wc_addr.port();
    let load = hypha_load(mc_addr, opts.records, 4, 256, b'c')?;
    say!(
        "  loaded {} records into the master in {:.2} s ({:.0} Puts/s; 4 connections × 256 in flight)",
        opts.records,
        load.as_secs_f64(),
        opts.records as f64 / load.as_secs_f64()
    );
    let target = Hy::connect(mc_addr)?.digest()?.ok_or("master digest unavailable")?;
    say!("  master: seq {}, {} keys, digest {:016x}", target.1, target.2, target.0);
    let from = mc.lines();
    let args = env.worker_args("catchup-worker", mc_addr, wc_port);
    say!("  restart: hypha {}", args.join(" "));
    let t0 = Instant::now();
    let mut wc = Proc::spawn("catchup-worker", &env.bin, &args)?;
    pin(wc.child.id(), 1)?;
    let (_, joined_at, joined_line) = mc.wait_log("joined at seq", from, Duration::from_secs(30))?;
    let done = wait_digest(&mut wc, wc_addr, target, Duration::from_secs(600))?;
    let total = (done - t0).as_secs_f64();
    let after_join = (done - joined_at).as_secs_f64();
    let behind = target.1;
    say!("  master log: {}", joined_line.trim());
    for l in mc.all_matching(&["catch-up"]) {
        say!("  master log: {}", l.trim());
    }
    say!(
        "  digest equal {:.2} s after the worker process started ({:.2} s after the master logged the join): {:.0} records/s ({:.0} records/s from the join)",
        total,
        after_join,
        behind as f64 / total,
        behind as f64 / after_join
    );
    let catchup = Some((behind, total, behind as f64 / total));
    wc.terminate()?;

    // ---- 5b. handshake
    say!("\n[3b] hypha handshake: TCP connect, Hello, Challenge, Prove, Welcome ({HANDSHAKES} connections to the master)");
    let mut times = Vec::with_capacity(HANDSHAKES);
    for _ in 0..HANDSHAKES {
        let t = Instant::now();
        let c = Hy::connect(mc_addr)?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
        drop(c);
    }
    let handshake = stats(&times);
    say!("  p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs", handshake.p50, handshake.p99, handshake.max);

    // ---- 6. snapshot
    say!("\n[4] hypha snapshot: a NEW worker (empty data dir) joins the master holding {} records", target.2);
    let port = free_port();
    let args = env.worker_args("snapshot-worker", mc_addr, port);
    say!("  start: hypha {}", args.join(" "));
    let t0 = Instant::now();
    let mut wn = Proc::spawn("snapshot-worker", &env.bin, &args)?;
    pin(wn.child.id(), 1)?;
    let done = wait_digest(&mut wn, lo(port), target, Duration::from_secs(600))?;
    let secs = (done - t0).as_secs_f64();
    // The worker logs "installed" right after it swaps the snapshot in.
    let _ = wn.wait_log("installed", 0, Duration::from_secs(10));
    let kv_bytes = (target.2 * (KEY_LEN + VAL_LEN) as u64) as f64;
    let begin = wn.find("receiving a snapshot", 0);
    let installed = wn.find("installed", 0);
    for l in wn.all_matching(&["snapshot"]) {
        say!("  worker log: {}", l.trim());
    }
    for l in mc.all_matching(&["snapshot"]) {
        say!("  master log: {}", l.trim());
    }
    let transfer = match (&begin, &installed) {
        (Some((_, b, _)), Some((_, i, _))) => format!(
            "SnapshotBegin → installed: {:.2} s",
            (*i - *b).as_secs_f64()
        ),
        _ => "log lines missing".into(),
    };
    let begin_mb = begin
        .as_ref()
        .and_then(|(_, _, l)| l.split("(~").nth(1).and_then(|s| s.split(' ').next()).map(str::to_string))
        .unwrap_or_else(|| "?".into());
    say!(
        "  digest equal {:.2} s after the worker process started; key+value bytes {:.1} MB → {:.1} MB/s, {:.0} records/s; {transfer}; SnapshotBegin.bytes_total announced ~{begin_mb} MB",
        secs,
        kv_bytes / 1e6,
        kv_bytes / 1e6 / secs,
        target.2 as f64 / secs
    );
    let snapshot = Some((secs, kv_bytes / 1e6 / secs, target.2 as f64 / secs, begin_mb));
    wn.terminate()?;
    mc.terminate()?;

    // ---- anomalies
    let procs_warn: Vec<String> = [&ma, &wa, &ms, &ws, &mc, &wc, &wn]
        .iter()
        .flat_map(|p| {
            p.all_matching(&[" WARN ", " ERROR ", "panicked"])
                .into_iter()
                .map(move |l| format!("[{}] {l}", p.name))
        })
        .collect();
    say!("\nhypha WARN/ERROR log lines during the run: {}", if procs_warn.is_empty() { "none".to_string() } else { procs_warn.len().to_string() });
    for l in procs_warn.iter().take(30) {
        say!("  {l}");
    }
    say!("Redis log lines with WARNING/error: {}", redis_warn.len());
    for l in redis_warn.iter().take(10) {
        say!("  {l}");
    }
    say!("load average at end: {}", sh("cat /proc/loadavg"));

    report(
        opts,
        &Results {
            hy_idle: [hy_idle_min, hy_idle_poll],
            hy_load: [hy_load_min, hy_load_poll],
            hy_read,
            hy_read_first,
            hy_read_idle,
            rd_idle,
            rd_load,
            rd_read,
            rd_read_first,
            rd_read_idle,
            hy_sync,
            rd_wait,
            catchup,
            snapshot,
            handshake,
        },
    );
    Ok(())
}

fn report(opts: &Opts, r: &Results) {
    let s = |l: &Lag| stats(&l.lag);
    let a = |l: &Lag| stats(&l.ack);
    let fails = |l: &Lag| if l.failures > 0 { format!(" ({} failed)", l.failures) } else { String::new() };
    let rate = format!("{:.0}/s", opts.rate);
    let rows: Vec<(String, String, String)> = vec![
        ("lag idle, p50 / p99 — hypha Get(min_seq=seq), Redis GET poll".into(), fmt_stats(&s(&r.hy_idle[0])) + &fails(&r.hy_idle[0]), fmt_stats(&s(&r.rd_idle)) + &fails(&r.rd_idle)),
        ("lag idle, p50 / p99 — both tight GET poll".into(), fmt_stats(&s(&r.hy_idle[1])) + &fails(&r.hy_idle[1]), fmt_stats(&s(&r.rd_idle)) + &fails(&r.rd_idle)),
        (format!("lag at {rate} background — hypha min_seq, Redis poll"), fmt_stats(&s(&r.hy_load[0])) + &fails(&r.hy_load[0]), fmt_stats(&s(&r.rd_load)) + &fails(&r.rd_load)),
        (format!("lag at {rate} background — both tight GET poll"), fmt_stats(&s(&r.hy_load[1])) + &fails(&r.hy_load[1]), fmt_stats(&s(&r.rd_load)) + &fails(&r.rd_load)),
        ("replica read round trip (key present)".into(), fmt_stats(&r.hy_read), fmt_stats(&r.rd_read)),
        ("same, first read on a new connection (one per round)".into(), fmt_stats(&r.hy_read_first), fmt_stats(&r.rd_read_first)),
        ("same, after 2 ms idle (what waking a process costs here)".into(), fmt_stats(&r.hy_read_idle), fmt_stats(&r.rd_read_idle)),
        ("write ack, async (Put / SET), idle".into(), fmt_stats(&a(&r.hy_idle[0])), fmt_stats(&a(&r.rd_idle))),
        ("write acked by 1 replica (--sync 1 / SET+WAIT 1)".into(), fmt_stats(&a(&r.hy_sync)) + &fails(&r.hy_sync), fmt_stats(&a(&r.rd_wait)) + &fails(&r.rd_wait)),
        (
            "catch-up, worker 1M behind (records/s)".into(),
            r.catchup.map(|(n, t, rps)| format!("{rps:.0} ({n} in {t:.2} s)")).unwrap_or_default(),
            "not measured".into(),
        ),
        ("handshake: connect to Welcome (hypha), connect (Redis: none)".into(), fmt_stats(&r.handshake), "not measured".into()),
        (
            "snapshot to a new worker (key+value MB/s)".into(),
            r.snapshot.as_ref().map(|(t, mbs, rps, _)| format!("{mbs:.1} MB/s, {rps:.0} rec/s, {t:.2} s")).unwrap_or_default(),
            "not measured".into(),
        ),
    ];
    let w0 = rows.iter().map(|x| x.0.chars().count()).max().unwrap_or(0);
    let w1 = rows.iter().map(|x| x.1.chars().count()).max().unwrap_or(0).max(5);
    say!("\n=== replication: hypha vs Redis {} (p50 / p99; loopback, {} samples per latency row) ===", sh(&format!("'{}' --version | sed 's/.*v=\\([^ ]*\\).*/\\1/'", opts.redis)), opts.samples);
    say!("{:<w0$}  {:>w1$}  {}", "metric", "hypha", "Redis");
    for (m, h, rd) in &rows {
        say!("{:<w0$}  {:>w1$}  {}", m, h, rd);
    }

    let check = |name: &str, ok: Option<bool>, detail: String| {
        let verdict = match ok {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "n/a ",
        };
        say!("  {verdict}  {name}: {detail}");
    };
    let p99 = |l: &Lag| if l.lag.is_empty() || l.failures > 0 { None } else { Some(stats(&l.lag).p99) };
    say!("\ntargets:");
    for (label, h, rd) in [
        ("idle", &r.hy_idle, &r.rd_idle),
        (&*format!("at {rate}"), &r.hy_load, &r.rd_load),
    ] {
        for (mi, how) in [(0, "min_seq"), (1, "poll")] {
            let (hp, rp) = (p99(&h[mi]), p99(rd));
            let sure = hp
                .zip(rp)
                .and_then(|_| p99_interval(&h[mi].lag_rounds(), &rd.lag_rounds(), |a, b| a - b))
                .map(|(d, lo, hi)| format!("; hypha − Redis {d:+.0} µs, 95 % interval {lo:+.0} to {hi:+.0} µs: {}", settled(lo, hi)))
                .unwrap_or_default();
            check(
                &format!("hypha lag p99 ≤ Redis lag p99, {label} (hypha {how})"),
                hp.zip(rp).map(|(a, b)| a <= b),
                format!("{} vs {}{sure}", hp.map(fmt_us).unwrap_or("failed".into()), rp.map(fmt_us).unwrap_or("failed".into())),
            );
        }
    }
    let (sp, wp) = (
        (!r.hy_sync.ack.is_empty() && r.hy_sync.failures == 0).then(|| stats(&r.hy_sync.ack).p99),
        (!r.rd_wait.ack.is_empty() && r.rd_wait.failures == 0).then(|| stats(&r.rd_wait.ack).p99),
    );
    let sure = sp
        .zip(wp)
        .and_then(|_| p99_interval(&r.hy_sync.ack_rounds(), &r.rd_wait.ack_rounds(), |a, b| a / b))
        .map(|(x, lo, hi)| format!("; ratio {x:.2}×, 95 % interval {lo:.2}× to {hi:.2}×: {}", settled(lo - 1.5, hi - 1.5)))
        .unwrap_or_default();
    check(
        "sync 1 p99 ≤ 1.5 × Redis SET+WAIT p99",
        sp.zip(wp).map(|(a, b)| a <= 1.5 * b),
        format!(
            "{} vs 1.5 × {} = {}{sure}",
            sp.map(fmt_us).unwrap_or("failed".into()),
            wp.map(fmt_us).unwrap_or("failed".into()),
            wp.map(|w| fmt_us(1.5 * w)).unwrap_or("?".into())
        ),
    );
    for (mi, how) in [(0, "min_seq"), (1, "poll")] {
        let hp = p99(&r.hy_load[mi]);
        check(
            &format!("hypha lag p99 ≤ 1 ms at {rate} ({how})"),
            hp.map(|p| p <= 1000.0),
            hp.map(fmt_us).unwrap_or("failed".into()),
        );
    }
    check(
        "handshake p99 ≤ 1 ms on loopback",
        (r.handshake.n > 0).then(|| r.handshake.p99 <= 1000.0),
        fmt_us(r.handshake.p99),
    );
    check(
        "catch-up ≥ 300,000 records/s",
        r.catchup.map(|(_, _, rps)| rps >= 300_000.0),
        r.catchup.map(|(_, _, rps)| format!("{rps:.0} records/s")).unwrap_or("failed".into()),
    );
    say!("\nlag = from the client receiving the master's ack (Written / +OK) to the client seeing the value on the worker/replica; includes one read round trip (row \"replica read round trip\").");
    say!("min_seq: one Get(key, min_seq = the write's seq) sent right after Written; the worker answers once it has applied that seq (value and seq verified).");
    say!("poll: Get/GET (min_seq 0) in a tight loop on one connection until the value is there (value verified); the same method for both systems.");
    say!("95 % interval: bootstrap over the alternating rounds ({BOOTSTRAP_RESAMPLES} resamples); \"within the noise\" means this run cannot tell which p99 is lower (more --rounds narrow it).");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rounds` rounds of `per` samples: a slow spell in every third round
    /// (all samples +`spell` µs), and a tail of 2 % at 3× the base.
    fn rounds(rounds: usize, per: usize, base: f64, spell: f64, seed: u64) -> Vec<Vec<f64>> {
        let mut z = seed;
        (0..rounds)
            .map(|r| {
                (0..per)
                    .map(|_| {
                        z = splitmix64(z);
                        let jitter = (z % 1000) as f64 / 100.0;
                        let tail = if z.is_multiple_of(50) { 2.0 * base } else { 0.0 };
                        base + jitter + tail + if r.is_multiple_of(3) { spell } else { 0.0 }
                    })
                    .collect()
            })
            .collect()
    }

    fn slices(v: &[Vec<f64>]) -> Vec<&[f64]> {
        v.iter().map(Vec::as_slice).collect()
    }

    #[test]
    fn same_distribution_is_within_the_noise() {
        let (h, r) = (rounds(30, 200, 100.0, 80.0, 1), rounds(30, 200, 100.0, 80.0, 2));
        let (d, lo, hi) = p99_interval(&slices(&h), &slices(&r), |a, b| a - b).unwrap();
        assert!(lo <= d && d <= hi, "{lo} {d} {hi}");
        assert_eq!(settled(lo, hi), "within the noise", "{lo}..{hi}");
    }

    #[test]
    fn a_clear_shift_is_beyond_the_noise_either_way() {
        let (slow, fast) = (rounds(30, 200, 150.0, 80.0, 3), rounds(30, 200, 100.0, 80.0, 4));
        let (_, lo, hi) = p99_interval(&slices(&slow), &slices(&fast), |a, b| a - b).unwrap();
        assert_eq!(settled(lo, hi), "hypha over, beyond the noise", "{lo}..{hi}");
        let (_, lo, hi) = p99_interval(&slices(&fast), &slices(&slow), |a, b| a - b).unwrap();
        assert_eq!(settled(lo, hi), "hypha at or under, beyond the noise", "{lo}..{hi}");
    }

    #[test]
    fn rounds_split_where_they_ended() {
        let mut l = Lag::default();
        for round in 0..3 {
            l.absorb(Lag {
                lag: vec![round as f64; round + 1],
                ack: vec![round as f64; 2],
                ..Lag::default()
            });
        }
        let lag: Vec<Vec<f64>> = l.lag_rounds().iter().map(|r| r.to_vec()).collect();
        assert_eq!(lag, vec![vec![0.0], vec![1.0, 1.0], vec![2.0, 2.0, 2.0]]);
        assert_eq!(l.ack_rounds().len(), 3);
        assert!(p99_interval(&l.lag_rounds(), &l.lag_rounds()[..2], |a, b| a - b).is_none());
    }
}
