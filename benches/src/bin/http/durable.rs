//! The `durable` case: durable PUTs of new keys through hypha's HTTP edge
//! against a single etcd, which fdatasyncs every commit, and against hypha's
//! own `--fsync never`, side by side in one run.
//!
//! Three servers run at once, each with a fresh data dir in the bench's temp
//! dir: hypha `--fsync always` (the default), hypha `--fsync never`, and a
//! one-member etcd. For each connection count (`--durable-conns`, default 32
//! and 128) the three are measured in `--rounds` alternating windows, the
//! order rotating by round, and before each round the disk's fdatasync rate
//! is probed in the same filesystem (append 200 B + `sync_data`, like the
//! engine bench's probe). Every request writes a new key (a random 64-bit
//! name), 150-byte value:
//!
//! - hypha: `PUT /kv/new-{16 hex}`, raw body;
//! - etcd: `POST /v3/kv/put` on its JSON gateway, `{"key": b64, "value": b64}`.
//!
//! Targets (issue 15, item 5): hypha `--fsync always` ≥ 5× etcd at every
//! connection count, and ≥ 0.7× hypha `--fsync never` when the disk probed
//! at ≥ 2,000 fdatasyncs/s.

use super::*;

/// Most fdatasyncs one probe runs.
const PROBE_SYNCS_MAX: u32 = 1_000;
/// Longest one probe runs.
const PROBE_MS_MAX: u64 = 1_000;
/// Bytes appended before each probed fdatasync (the engine bench's size).
const PROBE_APPEND_BYTES: usize = 200;
/// Durable PUT ÷ etcd PUT wanted.
const TARGET_OVER_ETCD: f64 = 5.0;
/// Durable PUT ÷ `--fsync never` PUT wanted, on a disk at least this fast…
const TARGET_OVER_NEVER: f64 = 0.7;
/// …in fdatasyncs per second (the probe's median).
const TARGET_DISK_SYNCS_PER_SEC_MIN: f64 = 2_000.0;

/// Majority-committed PUT (`hypha --failover`) ÷ `--fsync always` PUT wanted
/// (issue 16).
const TARGET_GROUP_OVER_ALWAYS: f64 = 0.5;

/// The servers of the case, in the order of the table.
const SERVERS: [&str; 4] = ["always", "never", "etcd", "group"];

/// Runs the durable case and prints its table.
pub(super) fn run(o: &Opts, dir: &Path) -> Result<(), String> {
    eprintln!("case durable: hypha --fsync always, hypha --fsync never, etcd");
    // The edge takes 64 connections per client address by default.
    let conns_max = o.durable_conns.iter().max().copied().unwrap_or(0);
    let more = ["--connections-per-addr".to_string(), conns_max.to_string()];
    let (mut always, always_addr) = start_hypha_with(o, dir, "durable-always", "always", &more)?;
    let (mut never, never_addr) = start_hypha_with(o, dir, "durable-never", "never", &more)?;
    let (mut etcd, etcd_addr) = start_etcd(o, dir)?;
    let mut more_group = more.to_vec();
    more_group.push("--failover".into());
    let (mut group, group_addr) = start_hypha_with(o, dir, "durable-group", "always", &more_group)?;
    wait_leader(&mut group, group_addr)?;
    let rounds = o.rounds;
    let secs = o.secs / rounds as f64;
    let warmup = (o.warmup / rounds as f64).max(0.5);
    // (conns, server) → the summed windows.
    let mut results: Vec<(usize, CaseResult)> = Vec::new();
    let mut probes: Vec<f64> = Vec::new();
    let mut lines = Vec::new();
    for &conns in &o.durable_conns {
        for round in 0..rounds {
            let probe = probe_fdatasync(dir)?;
            probes.push(probe);
            let mut rates = [0.0; SERVERS.len()];
            for k in 0..SERVERS.len() {
                let s = (k + round as usize) % SERVERS.len();
                let (p, addr, work) = match SERVERS[s] {
                    "always" => (&mut always, always_addr, Work::PutNew),
                    "never" => (&mut never, never_addr, Work::PutNew),
                    "group" => (&mut group, group_addr, Work::PutNew),
                    _ => (&mut etcd, etcd_addr, Work::EtcdPut),
                };
                let (n, secs, hist, problems, cpu, top_others) =
                    run_load(addr, work, conns, warmup, secs, &[p.pid()]);
                p.check_alive()?;
                let r = CaseResult {
                    name: SERVERS[s],
                    what: String::new(),
                    requests: n,
                    secs,
                    hist,
                    problems,
                    cpu,
                    top_others,
                };
                rates[s] = r.rps();
                match results.iter_mut().find(|(c, x)| *c == conns && x.name == r.name) {
                    Some((_, x)) => x.absorb(r),
                    None => results.push((conns, r)),
                }
            }
            let line = format!(
                "  {conns:>3} conns, round {}: disk {:>6} fdatasync/s | always {:>7} never {:>7} etcd {:>6} group {:>6} | always÷etcd {:>5.1}× always÷never {:.2} group÷always {:.2}",
                round + 1,
                thousands(probe),
                thousands(rates[0]),
                thousands(rates[1]),
                thousands(rates[2]),
                thousands(rates[3]),
                rates[0] / rates[2],
                rates[0] / rates[1],
                rates[3] / rates[0],
            );
            eprintln!("{line}");
            lines.push(line);
        }
    }
    for p in [&always, &never] {
        report_hypha_log(p);
    }
    eprintln!("  hypha --fsync always {}", always.stop());
    eprintln!("  hypha --fsync never {}", never.stop());
    eprintln!("  etcd {}", etcd.stop());
    eprintln!("  hypha --failover {}", group.stop());
    print_durable(o, &results, &mut probes, &lines);
    Ok(())
}

/// Starts a one-member etcd with a fresh data dir; returns its client address.
pub(super) fn start_etcd(o: &Opts, dir: &Path) -> Result<(Proc, SocketAddr), String> {
    let client = free_port()?;
    let peer = free_port()?;
    let mut cmd = Command::new(&o.etcd);
    cmd.arg("--name")
        .arg("bench")
        .arg("--data-dir")
        .arg(dir.join("etcd"))
        .arg("--listen-client-urls")
        .arg(format!("http://{client}"))
        .arg("--advertise-client-urls")
        .arg(format!("http://{client}"))
        .arg("--listen-peer-urls")
        .arg(format!("http://{peer}"))
        .arg("--initial-advertise-peer-urls")
        .arg(format!("http://{peer}"))
        .arg("--initial-cluster")
        .arg(format!("bench=http://{peer}"));
    let mut p = Proc::spawn("etcd", cmd, dir.join("etcd.log"), libc::SIGTERM)?;
    wait_ready(&mut p, client, "/health")?;
    Ok((p, client))
}

/// The disk's fdatasync rate in `dir`: appends of 200 B, each synced, for at
/// most `PROBE_SYNCS_MAX` syncs or `PROBE_MS_MAX`.
fn probe_fdatasync(dir: &Path) -> Result<f64, String> {
    let path = dir.join("fdatasync-probe");
    let mut f = fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let chunk = [b'p'; PROBE_APPEND_BYTES];
    let started = Instant::now();
    let mut n = 0;
    while n < PROBE_SYNCS_MAX && started.elapsed() < Duration::from_millis(PROBE_MS_MAX) {
        f.write_all(&chunk).map_err(|e| format!("probe write: {e}"))?;
        f.sync_data().map_err(|e| format!("probe fdatasync: {e}"))?;
        n += 1;
    }
    let rate = f64::from(n) / started.elapsed().as_secs_f64();
    drop(f);
    let _ = fs::remove_file(&path);
    Ok(rate)
}

/// Writes etcd's JSON body of a put of `key` = `value` into `out`.
pub(super) fn etcd_put_body(key: &[u8], value: &[u8], out: &mut String) {
    out.push_str("{\"key\":\"");
    base64(key, out);
    out.push_str("\",\"value\":\"");
    base64(value, out);
    out.push_str("\"}");
}

fn base64(bytes: &[u8], out: &mut String) {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= c.len() {
                out.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

fn print_durable(o: &Opts, results: &[(usize, CaseResult)], probes: &mut [f64], lines: &[String]) {
    probes.sort_by(f64::total_cmp);
    let median = probes.get(probes.len() / 2).copied().unwrap_or(0.0);
    println!("durable PUT, new keys, {VALUE_BYTES} B values: {} rounds per connection count, {:.1} s measured per server per round (after {:.1} s warm-up), order rotating", o.rounds, o.secs / o.rounds as f64, (o.warmup / o.rounds as f64).max(0.5));
    println!(
        "disk: {} fdatasyncs/s median of {} probes (min {}, max {}), {PROBE_APPEND_BYTES} B appends in {}",
        thousands(median),
        probes.len(),
        thousands(probes.first().copied().unwrap_or(0.0)),
        thousands(probes.last().copied().unwrap_or(0.0)),
        o.dir.display()
    );
    println!("etcd: {}", sh(&o.etcd.display().to_string(), &["--version"]).lines().next().unwrap_or("?"));
    println!();
    println!("per round:");
    for l in lines {
        println!("{l}");
    }
    println!();
    println!(
        "| {:>5} | {:<6} | {:>9} | {:>8} | {:>8} | {:>8} | {:>10} | {:>10} | {:>11} | {:>6} | {:>6} |",
        "conns", "server", "req/s", "p50", "p99", "max", "server CPU", "client CPU", "other procs", "idle", "errors"
    );
    println!("|{:->7}|{:-<8}|{:->11}|{:->10}|{:->10}|{:->10}|{:->12}|{:->12}|{:->13}|{:->8}|{:->8}|", "", "", "", "", "", "", "", "", "", "", "");
    for (conns, r) in results {
        println!(
            "| {:>5} | {:<6} | {:>9} | {:>8} | {:>8} | {:>8} | {:>8.0} % | {:>8.0} % | {:>9.0} % | {:>4.0} % | {:>6} |",
            conns,
            r.name,
            thousands(r.rps()),
            us(r.hist.quantile(0.50)),
            us(r.hist.quantile(0.99)),
            us(r.hist.max),
            100.0 * r.cpu[0],
            100.0 * r.cpu[1],
            100.0 * r.cpu[2],
            100.0 * r.cpu[3],
            r.problems.total(),
        );
    }
    println!();
    println!("  always  hypha --fsync always (fresh data dir): PUT /kv/new-{{random}}, {VALUE_BYTES} B raw body");
    println!("  never   hypha --fsync never (fresh data dir): the same requests");
    println!("  group   hypha --failover (three members and the edge in one process, fresh data dir): the same requests, each acknowledged once two members hold it durably");
    println!("  etcd    one-member etcd (fresh data dir, defaults: fdatasync per commit): POST /v3/kv/put {{\"key\",\"value\"}} base64, same keys and values");
    for (conns, r) in results {
        if r.cpu[2] > 0.10 {
            println!(
                "  WARNING: {} at {conns} conns ran while other processes used {:.0} % of a core (top: {}); its figures are depressed.",
                r.name,
                100.0 * r.cpu[2],
                r.top_others
            );
        }
    }
    println!();
    println!("targets:");
    let rate = |c: usize, n: &str| results.iter().find(|(k, r)| *k == c && r.name == n).map(|(_, r)| (r.rps(), r.problems.total()));
    for &c in &o.durable_conns {
        let (Some((a, ea)), Some((n, en)), Some((e, ee))) = (rate(c, "always"), rate(c, "never"), rate(c, "etcd")) else {
            continue;
        };
        let clean = ea + en + ee == 0;
        let over_etcd = a / e;
        let pass = over_etcd >= TARGET_OVER_ETCD && clean;
        println!(
            "  {c:>3} conns: durable PUT ≥ {TARGET_OVER_ETCD:.0}× etcd: {over_etcd:.1}× → {}",
            if pass { "PASS" } else { "MISS" }
        );
        let over_never = a / n;
        let verdict = if median < TARGET_DISK_SYNCS_PER_SEC_MIN {
            format!("n/a (disk {} fdatasyncs/s < {})", thousands(median), thousands(TARGET_DISK_SYNCS_PER_SEC_MIN))
        } else if over_never >= TARGET_OVER_NEVER && clean {
            "PASS".into()
        } else {
            "MISS".into()
        };
        println!("  {c:>3} conns: durable PUT ≥ {TARGET_OVER_NEVER:.1}× --fsync never: {over_never:.2}× → {verdict}");
        if let Some((g, eg)) = rate(c, "group") {
            let over = g / a;
            let pass = over >= TARGET_GROUP_OVER_ALWAYS && ea + eg == 0;
            println!(
                "  {c:>3} conns: majority-committed PUT ≥ {TARGET_GROUP_OVER_ALWAYS:.1}× --fsync always: {over:.2}× → {}",
                if pass { "PASS" } else { "MISS" }
            );
        }
    }
    println!();
    println!("problems (non-2xx, I/O errors, hangs > {} s, Connection: close), all phases incl. warm-up:", IO_TIMEOUT.as_secs());
    for (conns, r) in results {
        println!("  {conns:>3} {:<6} {}", r.name, r.problems.describe());
    }
}

/// Waits until a group's first election is done: a PUT is acknowledged.
fn wait_leader(p: &mut Proc, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let req = b"PUT /kv/bench-ready HTTP/1.1\r\nHost: b\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx";
    loop {
        p.check_alive()?;
        let mut answer = Vec::new();
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.write_all(req).and_then(|_| s.read_to_end(&mut answer));
        }
        if answer.starts_with(b"HTTP/1.1 20") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("the group at {addr} took no write within 20 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
