//! The `fanout` case (only with `--only fanout`): many watchers on one
//! worker (issue 17's fan-out targets). hypha runs as three processes — a
//! master (`--fsync never`), one worker and an edge — so the worker's memory
//! is its own; every watch and every GET goes through the edge to that one
//! worker.
//!
//! 1. **10,000 watchers, one prefix each** (`GET /watch/fo/{i}/?from=S`),
//!    connected from `FANOUT_ADDRS` loopback addresses (127.0.1.x) under the
//!    edge's `--connections-per-addr`, with `--http-connections` above
//!    10,000. In each of `ROUNDS` rounds a writer puts `WRITES_PER_SEC`
//!    keys spread over the prefixes; GET throughput on the same worker
//!    (closed loop, `--conns` clients, through the edge) is measured for
//!    `WINDOW_SECS` with the writer running and no watchers, then with the
//!    watchers open (every watcher must receive exactly the writes under its
//!    prefix); then the watchers close. The drop is the median of the
//!    rounds. The worker's anonymous memory (RssAnon) is read before the
//!    first round and sampled while watchers are open.
//! 2. **100 watchers on one prefix** (`fs/`), the same write rate under it:
//!    every watcher must receive every write.
//!
//! Targets: every event delivered; worker RssAnon grows by at most 32 MiB;
//! GET throughput drops by at most 20 %.

use super::*;
use polling::{Event, Events, Poller};
use socket2::{Domain, Socket, Type};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Watchers of part 1, each on its own prefix.
const WATCHERS: usize = 10_000;
/// Watchers of part 2, all on one prefix.
const SHARED_WATCHERS: usize = 100;
/// Loopback source addresses the watchers come from.
const FANOUT_ADDRS: usize = 200;
/// Writes per second during the measured windows.
const WRITES_PER_SEC: u64 = 1_000;
/// How long the writer runs in part 2, s.
const WRITE_SECS: u64 = 20;
/// Rounds of part 1, and the GET window of each half round, s.
const ROUNDS: usize = 3;
const WINDOW_SECS: u64 = 6;
/// Keys the GETs read (preloaded).
const GET_KEYS: u64 = 10_000;
/// Targets.
const RSS_GROWTH_MIB_MAX: f64 = 32.0;
const GET_DROP_PERCENT_MAX: f64 = 20.0;

/// Watch streams read by one thread: `counts[i]` is how many events
/// (`id:` lines) stream `i` delivered so far.
struct Watchers {
    counts: Arc<Vec<AtomicU64>>,
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<Result<(), String>>>,
}

impl Watchers {
    /// Opens one stream per path, from `FANOUT_ADDRS` source addresses, and
    /// waits until every one answered 200.
    fn open(edge: SocketAddr, paths: &[String]) -> Result<Watchers, String> {
        let mut streams = Vec::with_capacity(paths.len());
        for (i, path) in paths.iter().enumerate() {
            let ip = Ipv4Addr::new(127, 0, 1, 1 + (i % FANOUT_ADDRS) as u8);
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
            s.bind(&SocketAddrV4::new(ip, 0).into()).map_err(|e| format!("bind {ip}: {e}"))?;
            s.connect(&edge.into()).map_err(|e| format!("watcher {i}: connect: {e}"))?;
            let mut s: TcpStream = s.into();
            let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
            s.write_all(req.as_bytes()).map_err(|e| format!("watcher {i}: {e}"))?;
            streams.push(s);
        }
        // Each answer's head, read blocking (it comes at once).
        for (i, s) in streams.iter_mut().enumerate() {
            s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
            let mut head = [0u8; 12];
            s.read_exact(&mut head).map_err(|e| format!("watcher {i}: no answer: {e}"))?;
            if &head[..12] != b"HTTP/1.1 200" {
                return Err(format!("watcher {i}: {}", String::from_utf8_lossy(&head)));
            }
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
        }
        let counts: Arc<Vec<AtomicU64>> = Arc::new((0..streams.len()).map(|_| AtomicU64::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (counts, stop) = (counts.clone(), stop.clone());
            thread::spawn(move || read_streams(streams, &counts, &stop))
        };
        Ok(Watchers { counts, stop, reader: Some(reader) })
    }

    fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Waits up to `within` until the total reaches `want`.
    fn wait_total(&self, want: u64, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        while self.total() < want && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        self.total()
    }

    fn close(mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        match self.reader.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("watch reader panicked".into()),
            None => Ok(()),
        }
    }
}

/// Counts the `id:` lines of every stream until `stop` (an `id:` split
/// across two reads is found through the bytes kept from the last read).
fn read_streams(streams: Vec<TcpStream>, counts: &[AtomicU64], stop: &AtomicBool) -> Result<(), String> {
    let poller = Poller::new().map_err(|e| e.to_string())?;
    for (i, s) in streams.iter().enumerate() {
        // SAFETY: every stream outlives its registration (deleted below).
        unsafe { poller.add(s, Event::readable(i)) }.map_err(|e| e.to_string())?;
    }
    let mut carry: Vec<[u8; 4]> = vec![[0; 4]; streams.len()];
    let mut events = Events::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut closed = 0usize;
    while !stop.load(Ordering::Relaxed) {
        events.clear();
        poller.wait(&mut events, Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
        for ev in events.iter() {
            let i = ev.key;
            let mut open = true;
            loop {
                match (&streams[i]).read(&mut buf) {
                    Ok(0) => {
                        open = false;
                        break;
                    }
                    Ok(n) => {
                        let mut joined = carry[i].to_vec();
                        joined.extend_from_slice(&buf[..n]);
                        let ids = joined.windows(5).filter(|w| w == b"\nid: ").count();
                        counts[i].fetch_add(ids as u64, Ordering::Relaxed);
                        carry[i].copy_from_slice(&joined[joined.len() - 4..]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        open = false;
                        break;
                    }
                }
            }
            if open {
                poller.modify(&streams[i], Event::readable(i)).map_err(|e| e.to_string())?;
            } else {
                closed += 1;
                let _ = poller.delete(&streams[i]);
            }
        }
    }
    for s in &streams {
        let _ = poller.delete(s);
    }
    if closed > 0 {
        return Err(format!("{closed} watch streams were closed by the edge"));
    }
    Ok(())
}

/// Puts `WRITES_PER_SEC` keys for `secs`, key `i` under `prefix(i)`;
/// returns the writes acknowledged per prefix index (`prefixes` of them).
fn write_paced(edge: SocketAddr, secs: u64, prefixes: usize, prefix: impl Fn(u64) -> (usize, String)) -> Result<Vec<u64>, String> {
    let mut s = TcpStream::connect(edge).map_err(|e| format!("writer: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut acked = vec![0u64; prefixes];
    let start = Instant::now();
    let n = secs * WRITES_PER_SEC;
    for i in 0..n {
        let due = start + Duration::from_micros(i * 1_000_000 / WRITES_PER_SEC);
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        let (p, path) = prefix(i);
        let req = format!("PUT {path}k{i} HTTP/1.1\r\nHost: bench\r\nContent-Length: 2\r\n\r\nv1");
        let (status, _, _) = super::cas::exchange(&mut s, req.as_bytes())?;
        if status != 201 && status != 200 {
            return Err(format!("writer: PUT answered {status}"));
        }
        acked[p] += 1;
    }
    let took = start.elapsed().as_secs_f64();
    eprintln!("  writer: {n} PUTs in {took:.1} s ({:.0}/s)", n as f64 / took);
    Ok(acked)
}

/// `RssAnon` of `pid`, KiB.
fn rss_anon_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples the peak RssAnon of `pid` until `stop`.
fn peak_sampler(pid: u32, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_anon_kib(pid));
            thread::sleep(Duration::from_millis(100));
        }
        peak
    })
}

/// The seq of the master now (a PUT's answer).
fn seq_now(edge: SocketAddr) -> Result<u64, String> {
    let mut s = TcpStream::connect(edge).map_err(|e| e.to_string())?;
    let req = b"PUT /kv/fanout-mark HTTP/1.1\r\nHost: bench\r\nContent-Length: 1\r\n\r\nm";
    let (status, _, body) = super::cas::exchange(&mut s, req)?;
    let text = String::from_utf8_lossy(&body);
    if status != 201 && status != 200 {
        return Err(format!("PUT answered {status}: {text}"));
    }
    text.trim().trim_start_matches("{\"seq\":").trim_end_matches('}').parse().map_err(|_| format!("no seq in {text}"))
}

struct Cluster {
    master: Proc,
    worker: Proc,
    edge: Proc,
    http: SocketAddr,
}

fn start_cluster(o: &Opts, dir: &Path) -> Result<Cluster, String> {
    let (m, w, http) = (free_port()?, free_port()?, free_port()?);
    let spawn = |name: &'static str, args: Vec<String>| {
        let mut cmd = Command::new(&o.hypha);
        cmd.args(args);
        Proc::spawn(name, cmd, dir.join(format!("fanout-{name}.log")), libc::SIGTERM)
    };
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let data = |n: &str| dir.join(format!("fanout-{n}")).display().to_string();
    let master = spawn("master", s(&["master", "--data", &data("m"), "--listen", &m.to_string(), "--fsync", "never"]))?;
    let worker = spawn("worker", s(&["worker", "--data", &data("w"), "--master", &m.to_string(), "--listen", &w.to_string()]))?;
    let mut edge = spawn(
        "edge",
        s(&["http", "--listen", &http.to_string(), "--master", &m.to_string(), "--workers", &w.to_string(), "--http-connections", &(WATCHERS + 2_000).to_string()]),
    )?;
    wait_ready(&mut edge, http, "/ping")?;
    // The edge answers before the master listens: wait for a write.
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = seq_now(http) {
        if Instant::now() > deadline {
            return Err(format!("no write went through the edge within 20 s: {e}"));
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(Cluster { master, worker, edge, http })
}

/// GET throughput through the edge for `secs` (closed loop, `o.conns`).
fn get_rate(o: &Opts, c: &Cluster, secs: f64) -> f64 {
    let pids = [c.edge.pid(), c.worker.pid(), c.master.pid()];
    let (n, took, _, _, cpu, _) = run_load(c.http, Work::Get { keys: GET_KEYS }, o.conns, 0.5, secs, &pids);
    eprintln!(
        "    {:.0} GET/s; cores busy: hypha {:.2}, this process {:.2}, others {:.2}, idle {:.2}",
        n as f64 / took,
        cpu[0],
        cpu[1],
        cpu[2],
        cpu[3]
    );
    n as f64 / took
}

/// Runs the case and prints its lines.
pub(super) fn run(o: &Opts, dir: &Path) -> Result<(), String> {
    raise_open_files(WATCHERS as u64 + 4_096)?;
    eprintln!("case fanout: {WATCHERS} watchers on one worker, then {SHARED_WATCHERS} on one prefix");
    let mut c = start_cluster(o, dir)?;
    preload(c.http, GET_KEYS, o.conns).map_err(|e| {
        let logs: Vec<String> = [&c.master, &c.worker, &c.edge].iter().map(|p| format!("{}:\n{}", p.name, tail(&p.log, 8))).collect();
        format!("{e}\n{}", logs.join("\n"))
    })?;
    let worker_pid = c.worker.pid();
    let rss_before = rss_anon_kib(worker_pid);
    let (mut rounds, mut delivered1, mut rss_peak, mut edge_rss) = (Vec::new(), true, 0, 0);
    for round in 1..=ROUNDS {
        let r = part1_round(o, &c, worker_pid)?;
        eprintln!(
            "  round {round}: GET {:.0}/s without watchers, {:.0}/s with them; {} of {} events, {} of {WATCHERS} watchers exact",
            r.get_without, r.get_with, r.got, r.want, r.exact
        );
        delivered1 &= r.got == r.want && r.exact == WATCHERS;
        (rss_peak, edge_rss) = (rss_peak.max(r.rss_peak), edge_rss.max(r.edge_rss));
        rounds.push(r);
        for p in [&mut c.master, &mut c.worker, &mut c.edge] {
            p.check_alive()?;
        }
    }
    let mut drops: Vec<f64> = rounds.iter().map(|r| (1.0 - r.get_with / r.get_without) * 100.0).collect();
    drops.sort_by(f64::total_cmp);
    let drop_pct = drops[drops.len() / 2];
    let grew_mib = rss_peak.saturating_sub(rss_before) as f64 / 1024.0;
    let (got, want): (u64, u64) = rounds.iter().fold((0, 0), |(g, w), r| (g + r.got, w + r.want));
    println!(
        "fanout: {WATCHERS} watchers, own prefixes, {WRITES_PER_SEC} writes/s, {ROUNDS} rounds: {got} of {want} events \
         delivered ({}); worker RssAnon {:.1} MiB before, peak {:.1} MiB (+{grew_mib:.1} MiB); edge RssAnon peak {:.1} MiB; \
         GET drop with the watchers: median {drop_pct:+.1} % (rounds {})",
        if delivered1 { "every watcher exact" } else { "SOME WATCHERS NOT EXACT" },
        rss_before as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
        edge_rss as f64 / 1024.0,
        drops.iter().map(|d| format!("{d:+.1} %")).collect::<Vec<_>>().join(", "),
    );
    // Part 2: one shared prefix.
    let rss_before = rss_anon_kib(worker_pid);
    let from = seq_now(c.http)?;
    let paths: Vec<String> = (0..SHARED_WATCHERS).map(|_| format!("/watch/fs/?from={from}")).collect();
    let watchers = Watchers::open(c.http, &paths)?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = peak_sampler(worker_pid, stop.clone());
    let acked = write_paced(c.http, WRITE_SECS, 1, |_| (0, "/kv/fs/".to_string()))?;
    let want = acked[0] * SHARED_WATCHERS as u64;
    let got = watchers.wait_total(want, Duration::from_secs(30));
    let delivered2 = got == want && watchers.counts.iter().all(|c| c.load(Ordering::Relaxed) == acked[0]);
    let exact = (0..SHARED_WATCHERS).filter(|&i| watchers.counts[i].load(Ordering::Relaxed) == acked[0]).count();
    stop.store(true, Ordering::Relaxed);
    let rss_peak2 = sampler.join().map_err(|_| "sampler panicked")?;
    watchers.close()?;
    let grew2 = rss_peak2.saturating_sub(rss_before) as f64 / 1024.0;
    println!(
        "fanout: {SHARED_WATCHERS} watchers on one prefix, {WRITES_PER_SEC} writes/s: {got} of {want} events delivered, \
         {exact} of {SHARED_WATCHERS} exact; worker RssAnon +{grew2:.1} MiB"
    );
    let met = delivered1 && delivered2 && grew_mib.max(grew2) <= RSS_GROWTH_MIB_MAX && drop_pct <= GET_DROP_PERCENT_MAX;
    println!(
        "fanout: targets every event delivered, worker RssAnon +{RSS_GROWTH_MIB_MAX} MiB at most, GET drop <= {GET_DROP_PERCENT_MAX} %: {}",
        if met { "met" } else { "missed" }
    );
    for p in [&mut c.master, &mut c.worker, &mut c.edge] {
        let name = p.name;
        eprintln!("  {name} {}", p.stop());
    }
    Ok(())
}

/// What one round of part 1 measured.
struct Round {
    get_without: f64,
    get_with: f64,
    got: u64,
    want: u64,
    exact: usize,
    rss_peak: u64,
    edge_rss: u64,
}

/// One round of part 1: the GET rate with the writer running and no
/// watchers, then with `WATCHERS` watchers open (from the seq before the
/// writes, so none is missed), their events counted; then the watchers
/// close and their abandoned page waits end on the worker before the next
/// round.
fn part1_round(o: &Opts, c: &Cluster, worker_pid: u32) -> Result<Round, String> {
    let spread = |i: u64| ((i * 7_919) % WATCHERS as u64) as usize;
    let http = c.http;
    let writes = move || write_paced(http, WINDOW_SECS + 3, WATCHERS, |i| (spread(i), format!("/kv/fo/{}/", spread(i))));
    let writer = thread::spawn(writes);
    thread::sleep(Duration::from_secs(1));
    let get_without = get_rate(o, c, WINDOW_SECS as f64);
    writer.join().map_err(|_| "writer panicked")??;
    let from = seq_now(c.http)?;
    let paths: Vec<String> = (0..WATCHERS).map(|p| format!("/watch/fo/{p}/?from={from}")).collect();
    let watchers = Watchers::open(c.http, &paths)?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = peak_sampler(worker_pid, stop.clone());
    let writer = thread::spawn(writes);
    thread::sleep(Duration::from_secs(1));
    let get_with = get_rate(o, c, WINDOW_SECS as f64);
    let acked = writer.join().map_err(|_| "writer panicked")??;
    let want: u64 = acked.iter().sum();
    let got = watchers.wait_total(want, Duration::from_secs(30));
    let exact = (0..WATCHERS).filter(|&i| watchers.counts[i].load(Ordering::Relaxed) == acked[i]).count();
    stop.store(true, Ordering::Relaxed);
    let rss_peak = sampler.join().map_err(|_| "sampler panicked")?;
    let edge_rss = rss_anon_kib(c.edge.pid());
    watchers.close()?;
    // The worker answers each closed watcher's last page when its wait ends.
    thread::sleep(Duration::from_millis(u64::from(hypha_net::limits::WATCH_WAIT_MS_MAX).min(16_000)));
    Ok(Round { get_without, get_with, got, want, exact, rss_peak, edge_rss })
}

/// Raises this process's soft open-file limit to at least `want`.
fn raise_open_files(want: u64) -> Result<(), String> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write/read the struct given.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < want {
            if lim.rlim_max < want {
                return Err(format!("the hard open-file limit is {}; {want} needed (ulimit -Hn)", lim.rlim_max));
            }
            lim.rlim_cur = want;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    Ok(())
}
