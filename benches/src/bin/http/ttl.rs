//! The `ttl` case (only with `--only ttl`): how late the master writes a
//! key's expiry after its deadline. hypha all-in-one (`--fsync never`).
//!
//! Single keys: 8 clients each write a key with `ttl=1s`, wait until just
//! before its deadline, then poll the key's newest version on the master
//! (`?history=1&consistency=linearizable`) every millisecond until it is a
//! delete. Lateness = when the delete was first seen − (when the PUT was
//! sent + 1 s): an upper bound (the master stamps the deadline after the
//! PUT arrives; a poll adds up to ~1 ms). 8 × `--rounds` × 10 samples.
//!
//! A burst: 2,000 keys written at once with `ttl=2s`; lateness = when a
//! listing of them on the master is first empty − (the last PUT sent + 2 s).
//!
//! Target (issue 17): the expiry is written within 250 ms of the deadline,
//! p99.

use super::cas::exchange;
use super::*;

/// Lateness wanted at p99, ms.
const TARGET_P99_MS: f64 = 250.0;
/// Clients of the single-key part.
const CLIENTS: usize = 8;
/// Keys of the burst.
const BURST_KEYS: usize = 2_000;

fn put_ttl(key: &str, ttl: &str) -> Vec<u8> {
    format!("PUT /kv/{key}?ttl={ttl} HTTP/1.1\r\nHost: bench\r\nContent-Length: 1\r\n\r\nv")
        .into_bytes()
}

/// Whether `key`'s newest version on the master is a delete.
fn expired(s: &mut TcpStream, key: &str) -> Result<bool, String> {
    let req = format!(
        "GET /kv/{key}?history=1&consistency=linearizable HTTP/1.1\r\nHost: bench\r\n\r\n"
    );
    let (status, _, body) = exchange(s, req.as_bytes())?;
    if status != 200 {
        return Err(format!("history answered {status}"));
    }
    Ok(find(&body, b"\"deleted\":true").is_some())
}

/// One client: `n` keys in turn; the lateness of each, ms.
fn client(addr: SocketAddr, id: usize, n: usize) -> Result<Vec<f64>, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut late = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("t{id}-{i}");
        let sent = Instant::now();
        let (status, _, _) = exchange(&mut s, &put_ttl(&key, "1s"))?;
        if status != 201 {
            return Err(format!("PUT ?ttl answered {status}"));
        }
        let deadline = sent + Duration::from_secs(1);
        thread::sleep(deadline.saturating_duration_since(Instant::now() + Duration::from_millis(3)));
        while !expired(&mut s, &key)? {
            if sent.elapsed() > Duration::from_secs(10) {
                return Err(format!("{key} not expired 9 s after its deadline"));
            }
            thread::sleep(Duration::from_millis(1));
        }
        late.push(Instant::now().saturating_duration_since(deadline).as_secs_f64() * 1e3);
    }
    Ok(late)
}

/// The burst: ms from the deadline of the last key written until no key
/// of the burst is listed on the master.
fn burst(addr: SocketAddr) -> Result<f64, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut last_sent = Instant::now();
    for i in 0..BURST_KEYS {
        last_sent = Instant::now();
        let (status, _, _) = exchange(&mut s, &put_ttl(&format!("burst-{i}"), "2s"))?;
        if status != 201 {
            return Err(format!("PUT ?ttl answered {status}"));
        }
    }
    let deadline = last_sent + Duration::from_secs(2);
    thread::sleep(deadline.saturating_duration_since(Instant::now()));
    let list = b"GET /kv?prefix=burst-&limit=1&consistency=linearizable HTTP/1.1\r\nHost: bench\r\n\r\n";
    loop {
        let (status, _, body) = exchange(&mut s, list)?;
        if status != 200 {
            return Err(format!("listing answered {status}"));
        }
        if find(&body, b"\"keys\":[]").is_some() {
            return Ok(Instant::now().saturating_duration_since(deadline).as_secs_f64() * 1e3);
        }
        if deadline.elapsed() > Duration::from_secs(30) {
            return Err("the burst is not expired 30 s after its deadline".into());
        }
        thread::sleep(Duration::from_millis(1));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// Runs the case and prints its lines.
pub(super) fn run(o: &Opts, dir: &Path) -> Result<(), String> {
    eprintln!("case ttl: lateness of expiries after their deadline");
    let (mut p, addr) = start_hypha(o, dir, "ttl", "never")?;
    let per_client = (o.rounds as usize * 10).max(10);
    let threads: Vec<_> = (0..CLIENTS)
        .map(|id| thread::spawn(move || client(addr, id, per_client)))
        .collect();
    let mut late = Vec::new();
    for t in threads {
        late.extend(t.join().map_err(|_| "a client panicked")??);
    }
    late.sort_by(f64::total_cmp);
    let p99 = percentile(&late, 0.99);
    println!(
        "ttl: {} single keys (ttl=1s, {CLIENTS} clients): expiry seen after the deadline p50 {:.1} \
         ms, p99 {p99:.1} ms, max {:.1} ms; target p99 <= {TARGET_P99_MS} ms: {}",
        late.len(),
        percentile(&late, 0.5),
        late.last().copied().unwrap_or(f64::NAN),
        if p99 <= TARGET_P99_MS { "met" } else { "missed" }
    );
    let all = burst(addr)?;
    println!(
        "ttl: a burst of {BURST_KEYS} keys (ttl=2s, written back to back): the last expired \
         {all:.1} ms after its deadline"
    );
    p.check_alive()?;
    eprintln!("  hypha {}", p.stop());
    Ok(())
}
