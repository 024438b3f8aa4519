//! The `cas` case (only with `--only cas`): contended compare-and-swap.
//! `--conns` clients (default 32) increment one counter through hypha's
//! edge (all-in-one, `--fsync never`), each by `GET /kv/counter` then `PUT
//! /kv/counter` with `If-Match` its `ETag`, again on 412, for `--secs`.
//! Reported: successful increments per second, conflicts per second, and
//! whether the counter ends at exactly the acknowledged increments.
//!
//! Target (issue 17): ≥ 5,000 successful increments/s by 32 clients.

use super::*;

/// Successful increments per second wanted.
const TARGET_INCREMENTS_PER_SEC: f64 = 5_000.0;

/// One HTTP/1.1 exchange on `s`: status, `ETag` (if any), body.
pub(super) fn exchange(s: &mut TcpStream, req: &[u8]) -> Result<(u16, Option<String>, Vec<u8>), String> {
    s.write_all(req).map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p + 4;
        }
        read_some(s, &mut buf).map_err(|e| format!("read: {e}"))?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|t| t.parse().ok())
        .ok_or("bad status line")?;
    let header = |name: &str| {
        head.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        read_some(s, &mut buf).map_err(|e| format!("read body: {e}"))?;
    }
    Ok((
        status,
        header("etag"),
        buf[head_end..head_end + len].to_vec(),
    ))
}

fn get_req() -> Vec<u8> {
    b"GET /kv/counter HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec()
}

fn put_req(etag: Option<&str>, value: &str) -> Vec<u8> {
    let cond = etag.map_or(String::new(), |t| format!("If-Match: {t}\r\n"));
    format!(
        "PUT /kv/counter HTTP/1.1\r\nHost: bench\r\n{cond}Content-Length: {}\r\n\r\n{value}",
        value.len()
    )
    .into_bytes()
}

/// One client until `end`: (increments, conflicts).
fn client(addr: SocketAddr, end: Instant) -> Result<(u64, u64), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut done, mut conflicts) = (0, 0);
    while Instant::now() < end {
        let (status, etag, body) = exchange(&mut s, &get_req())?;
        if status != 200 {
            return Err(format!("GET answered {status}"));
        }
        let n: u64 = String::from_utf8_lossy(&body)
            .parse()
            .map_err(|_| "not a number")?;
        let put = put_req(etag.as_deref(), &(n + 1).to_string());
        match exchange(&mut s, &put)?.0 {
            201 => done += 1,
            412 => conflicts += 1,
            other => return Err(format!("PUT If-Match answered {other}")),
        }
    }
    Ok((done, conflicts))
}

/// Runs the case and prints its line.
pub(super) fn run(o: &Opts, dir: &Path) -> Result<(), String> {
    eprintln!(
        "case cas: {} clients increment one counter by If-Match",
        o.conns
    );
    let (mut p, addr) = start_hypha(o, dir, "cas", "never")?;
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let (status, _, _) = exchange(&mut s, &put_req(None, "0"))?;
    if status != 201 {
        return Err(format!("the first PUT answered {status}"));
    }
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(o.secs);
    let threads: Vec<_> = (0..o.conns)
        .map(|_| thread::spawn(move || client(addr, end)))
        .collect();
    let (mut done, mut conflicts) = (0, 0);
    for t in threads {
        let (d, c) = t.join().map_err(|_| "a client panicked")??;
        done += d;
        conflicts += c;
    }
    let secs = start.elapsed().as_secs_f64();
    let (_, _, body) = exchange(&mut s, &get_req())?;
    let last: u64 = String::from_utf8_lossy(&body)
        .parse()
        .map_err(|_| "not a number")?;
    p.check_alive()?;
    let rate = done as f64 / secs;
    println!(
        "cas: {} clients, {secs:.1} s: {} increments/s ({done} in all), {} conflicts/s; counter \
         {last} = increments {done}: {}; target >= {} /s: {}",
        o.conns,
        thousands(rate),
        thousands(conflicts as f64 / secs),
        if last == done {
            "exact"
        } else {
            "LOST UPDATES"
        },
        thousands(TARGET_INCREMENTS_PER_SEC),
        if rate >= TARGET_INCREMENTS_PER_SEC {
            "met"
        } else {
            "missed"
        }
    );
    eprintln!("  hypha {}", p.stop());
    Ok(())
}
