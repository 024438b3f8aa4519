//! Failover time, side by side in one run: hypha (three `hypha member`s and
//! `hypha http --members`), etcd (three members, Debian's etcd-server, at
//! its defaults: 100 ms heartbeats, 1 s election timeout) and Redis with
//! three Sentinels (Debian's redis-server and redis-sentinel, one master and
//! two replicas, `down-after-milliseconds` as given).
//!
//! Failover time = from the leader's failure to the first write
//! acknowledged: through hypha's edge; by any etcd member (a client that
//! knows every endpoint); by the master the Sentinels name. Each write
//! attempt has a 250 ms timeout and the next starts at once, the same
//! client for every system. Two failures:
//! - `crash`: SIGKILL; the kernel closes the process's sockets, which the
//!   others may take as a hint;
//! - `silent`: SIGSTOP; its sockets stay open and nothing answers, as a
//!   power cut or a cut cable looks from outside.
//!
//! After each trial the failed process is killed and started again, and the
//! next trial waits until the group is whole and takes writes.
//!
//! With `--loss PERCENT` (root) the whole run — every system's processes
//! and the client — happens in a network namespace of its own whose
//! loopback has Mycelium's MTU (1400) and drops that share of the packets
//! it receives (iptables and ip6tables `statistic`), so every link of
//! every system loses packets alike.
//!
//! ```sh
//! cargo build --release -p hypha-server
//! cd benches && cargo run --release --bin failover -- --hypha ../target/release/hypha \
//!     [--trials 20] [--only hypha,hypha-etcd-timing,etcd,sentinel] [--modes crash,silent] \
//!     [--down-after-ms 1000] [--loss 1]
//! ```

#[path = "failover/netns.rs"]
mod netns;
#[path = "failover/systems.rs"]
mod systems;

use std::time::{Duration, Instant};
use systems::{Cluster, EtcdGroup, HyphaGroup, SentinelGroup};

/// The longest a trial waits for a write before it counts as failed.
const TRIAL_LIMIT: Duration = Duration::from_secs(30);

struct Opts {
    hypha: String,
    etcd: String,
    redis: String,
    sentinel: String,
    trials: usize,
    only: Vec<String>,
    modes: Vec<String>,
    down_after_ms: u64,
    /// Percent of packets dropped (runs in a namespace), if any.
    loss: Option<String>,
}

fn opts() -> Result<Opts, String> {
    let mut o = Opts {
        hypha: "../target/release/hypha".into(),
        etcd: "/usr/bin/etcd".into(),
        redis: "/usr/bin/redis-server".into(),
        sentinel: "/usr/bin/redis-sentinel".into(),
        trials: 20,
        only: ["hypha", "hypha-etcd-timing", "etcd", "sentinel"]
            .map(String::from)
            .to_vec(),
        modes: ["crash", "silent"].map(String::from).to_vec(),
        down_after_ms: 1000,
        loss: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut val = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--hypha" => o.hypha = val()?,
            "--etcd" => o.etcd = val()?,
            "--redis" => o.redis = val()?,
            "--sentinel" => o.sentinel = val()?,
            "--trials" => o.trials = val()?.parse().map_err(|e| format!("--trials: {e}"))?,
            "--only" => o.only = val()?.split(',').map(String::from).collect(),
            "--modes" => o.modes = val()?.split(',').map(String::from).collect(),
            "--down-after-ms" => {
                o.down_after_ms = val()?
                    .parse()
                    .map_err(|e| format!("--down-after-ms: {e}"))?
            }
            "--loss" => o.loss = Some(val()?),
            other => return Err(format!("unknown flag {other}; see the top of failover.rs")),
        }
    }
    Ok(o)
}

/// One trial: fail the leader, time the first acknowledged write, repair.
fn trial(c: &mut dyn Cluster, silent: bool, n: &mut u64) -> Result<Option<Duration>, String> {
    c.settle()?;
    // A status query can be lost (`--loss`): ask again for a while.
    let asked = Instant::now();
    let leader = loop {
        match c.leader() {
            Ok(l) => break l,
            Err(e) if asked.elapsed() > Duration::from_secs(10) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let pid = c.pid(leader);
    let signal = if silent { libc::SIGSTOP } else { libc::SIGKILL };
    let started = Instant::now();
    // SAFETY: kill(2) on a child process this program started.
    unsafe { libc::kill(pid as i32, signal) };
    let took = loop {
        *n += 1;
        if c.write(*n) {
            break Some(started.elapsed());
        }
        if started.elapsed() > TRIAL_LIMIT {
            break None;
        }
    };
    // SAFETY: as above; SIGKILL also ends a stopped process.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    c.restart(leader)?;
    Ok(took)
}

fn pct(sorted: &[Duration], p: usize) -> f64 {
    let i = (sorted.len() * p / 100).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

fn main() -> Result<(), String> {
    let o = opts()?;
    if let Some(loss) = o.loss.as_deref().filter(|_| !netns::inside()) {
        return netns::rerun_inside(loss);
    }
    println!(
        "failover: {} trials per system and mode; {} cores; {}{}",
        o.trials,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        String::from_utf8_lossy(
            &std::process::Command::new("date")
                .arg("-u")
                .output()
                .map_err(|e| e.to_string())?
                .stdout
        )
        .trim(),
        o.loss.as_deref().map_or(String::new(), |l| format!(
            "; in a namespace, {l} % loss, MTU 1400"
        ))
    );
    let dir = std::env::temp_dir().join(format!("hypha-failover-{}", std::process::id()));
    let mut rows = Vec::new();
    for system in &o.only {
        for mode in &o.modes {
            let sub = dir.join(format!("{system}-{mode}"));
            let mut c: Box<dyn Cluster> = match system.as_str() {
                "hypha" => Box::new(HyphaGroup::start(&o.hypha, &sub, 250, 1000)?),
                "hypha-etcd-timing" => Box::new(HyphaGroup::start(&o.hypha, &sub, 100, 1000)?),
                "etcd" => Box::new(EtcdGroup::start(&o.etcd, &sub)?),
                "sentinel" => Box::new(SentinelGroup::start(
                    &o.redis,
                    &o.sentinel,
                    &sub,
                    o.down_after_ms,
                )?),
                other => return Err(format!("unknown system {other}")),
            };
            let mut times = Vec::new();
            let mut failed = 0;
            let mut n = 0;
            for t in 0..o.trials {
                let took = trial(c.as_mut(), mode == "silent", &mut n)?;
                match took {
                    Some(d) => times.push(d),
                    None => failed += 1,
                }
                eprintln!("  {system} {mode} trial {t}: {took:?}");
            }
            times.sort();
            let row = (
                format!("{} ({mode})", c.name()),
                times.len(),
                failed,
                pct(&times, 50),
                pct(&times, 99),
                pct(&times, 0),
            );
            println!(
                "{:<48} n={:<3} failed={:<2} p50={:>7.0} ms  p99={:>7.0} ms  min={:>6.0} ms",
                row.0, row.1, row.2, row.3, row.4, row.5
            );
            rows.push(row);
            drop(c);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
