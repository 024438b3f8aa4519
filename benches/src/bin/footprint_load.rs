//! Loads and reads the footprint workload (benches/footprint.sh): N keys of
//! 16 bytes with 100-byte values, the same keys and values for every store.
//!
//! ```text
//! footprint_load hypha --dir DIR [--keys N]          # DIR/db, opened as `hypha master --data DIR` opens it
//! footprint_load redis [--keys N] | redis-cli --pipe  # RESP SET commands on stdout
//! footprint_load etcd  --endpoint HOST:PORT [--keys N] [--txn-ops 128]   # v3 JSON gateway, batched txns
//! footprint_load read  --http HOST:PORT [--keys N] [--sample S]          # GET /kv/{key} on a hypha edge
//! footprint_load write --http HOST:PORT [--keys N] [--count C]           # PUT C keys after the N loaded
//! ```
//!
//! Keys are the 16 hex digits of `splitmix64(i)` (a bijection, so all N
//! differ, and they come in random order); values are 100 pseudo-random bytes.

use hypha_engine::{Db, Fsync, Options};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;
const KEYS_DEFAULT: u64 = 1_000_000;
/// etcd's own default `--max-txn-ops`.
const TXN_OPS_DEFAULT: u64 = 128;
const ETCD_CONNECTIONS: u64 = 4;

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn key(i: u64) -> [u8; KEY_BYTES] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let a = splitmix64(i);
    let mut k = [0u8; KEY_BYTES];
    for (j, b) in k.iter_mut().enumerate() {
        *b = HEX[((a >> (60 - 4 * j)) & 0xF) as usize];
    }
    k
}

fn value(i: u64) -> [u8; VALUE_BYTES] {
    let mut v = [0u8; VALUE_BYTES];
    let mut s = splitmix64(i ^ 0x005E_ED0F_F007);
    for chunk in v.chunks_mut(8) {
        s = splitmix64(s);
        chunk.copy_from_slice(&s.to_le_bytes()[..chunk.len()]);
    }
    v
}

struct Flags(Vec<String>);

impl Flags {
    fn get(&self, name: &str) -> Option<&str> {
        let pos = self.0.iter().position(|a| a == name)?;
        self.0.get(pos + 1).map(String::as_str)
    }

    fn need(&self, name: &str) -> Res<&str> {
        self.get(name)
            .ok_or_else(|| format!("{name} is required").into())
    }

    fn number(&self, name: &str, default: u64) -> Res<u64> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => Ok(v
                .replace('_', "")
                .parse()
                .map_err(|_| format!("{name} {v:?}"))?),
        }
    }
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = Flags(args.clone());
    let keys = flags.number("--keys", KEYS_DEFAULT)?;
    match args.first().map(String::as_str) {
        Some("hypha") => load_hypha(PathBuf::from(flags.need("--dir")?), keys),
        Some("redis") => print_redis(keys),
        Some("etcd") => load_etcd(
            flags.need("--endpoint")?,
            keys,
            flags.number("--txn-ops", TXN_OPS_DEFAULT)?,
        ),
        Some("read") => read_edge(
            flags.need("--http")?,
            keys,
            flags.number("--sample", 100_000)?,
        ),
        Some("write") => write_edge(flags.need("--http")?, keys, flags.number("--count", 10_000)?),
        _ => Err(
            "usage: footprint_load hypha|redis|etcd|read|write ... (see the file's doc comment)"
                .into(),
        ),
    }
}

/// Opens `DIR/db` with the options `hypha master` uses except the fsync mode
/// (`Never` while loading; the master reopens it with its own), puts N keys,
/// and closes cleanly (a checkpoint, so the master replays nothing).
fn load_hypha(dir: PathBuf, keys: u64) -> Res<()> {
    let t = Instant::now();
    let db = Db::open(
        dir.join("db"),
        Options {
            fsync: Fsync::Never,
            ..Options::default()
        },
    )?;
    for i in 0..keys {
        db.put(&key(i), &value(i))?;
    }
    let len = db.len();
    db.close()?;
    eprintln!(
        "hypha: {len} keys in {} in {:.1} s",
        dir.join("db").display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `SET key value` for every key, in RESP, for `redis-cli --pipe`.
fn print_redis(keys: u64) -> Res<()> {
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    for i in 0..keys {
        out.write_all(b"*3\r\n$3\r\nSET\r\n")?;
        write!(out, "${KEY_BYTES}\r\n")?;
        out.write_all(&key(i))?;
        write!(out, "\r\n${VALUE_BYTES}\r\n")?;
        out.write_all(&value(i))?;
        out.write_all(b"\r\n")?;
    }
    out.flush()?;
    Ok(())
}

fn base64(bytes: &[u8], out: &mut String) {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= c.len() {
                out.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

/// A minimal HTTP/1.1 keep-alive client: one request, its whole response.
struct Http {
    host: String,
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Http {
    fn connect(host: &str) -> Res<Http> {
        let s = TcpStream::connect(host)?;
        s.set_nodelay(true)?;
        Ok(Http {
            host: host.to_string(),
            r: BufReader::new(s.try_clone()?),
            w: s,
        })
    }

    /// Returns the status and the body (Content-Length or chunked framing).
    fn call(&mut self, method: &str, path: &str, body: &[u8]) -> Res<(u16, Vec<u8>)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        self.w.write_all(&req)?;
        let mut line = String::new();
        self.r.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let (mut len, mut chunked) = (None, false);
        loop {
            let l = self.line()?;
            if l.is_empty() {
                break;
            }
            if let Some((name, v)) = l.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    len = Some(v.trim().parse::<usize>()?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = v.trim().eq_ignore_ascii_case("chunked");
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let size = usize::from_str_radix(self.line()?.split(';').next().unwrap_or(""), 16)?;
                let start = body.len();
                body.resize(start + size, 0);
                self.r.read_exact(&mut body[start..])?;
                self.line()?; // the CRLF after the chunk (or after the trailers)
                if size == 0 {
                    break;
                }
            }
        } else {
            body.resize(len.ok_or("no Content-Length")?, 0);
            self.r.read_exact(&mut body)?;
        }
        Ok((status, body))
    }

    /// One line of a head, without its CRLF.
    fn line(&mut self) -> Res<String> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err("connection closed in a response".into());
        }
        Ok(line.trim_end().to_string())
    }
}

/// Puts N keys through etcd's v3 JSON gateway, `txn_ops` puts per txn (etcd
/// refuses more than its `--max-txn-ops`), over a few connections at once.
fn load_etcd(endpoint: &str, keys: u64, txn_ops: u64) -> Res<()> {
    let t = Instant::now();
    let lanes: Vec<_> = (0..ETCD_CONNECTIONS)
        .map(|lane| {
            let endpoint = endpoint.to_string();
            std::thread::spawn(move || -> Res<()> {
                let mut http = Http::connect(&endpoint)?;
                let mut start = lane * txn_ops;
                while start < keys {
                    let mut body = String::from("{\"success\":[");
                    for i in start..(start + txn_ops).min(keys) {
                        if i > start {
                            body.push(',');
                        }
                        body.push_str("{\"requestPut\":{\"key\":\"");
                        base64(&key(i), &mut body);
                        body.push_str("\",\"value\":\"");
                        base64(&value(i), &mut body);
                        body.push_str("\"}}");
                    }
                    body.push_str("]}");
                    let (status, reply) = http.call("POST", "/v3/kv/txn", body.as_bytes())?;
                    if status != 200 {
                        return Err(format!(
                            "etcd txn at key {start}: {status} {}",
                            String::from_utf8_lossy(&reply)
                        )
                        .into());
                    }
                    start += ETCD_CONNECTIONS * txn_ops;
                }
                Ok(())
            })
        })
        .collect();
    for lane in lanes {
        lane.join().map_err(|_| "an etcd lane panicked")??;
    }
    eprintln!(
        "etcd: {keys} keys in txns of {txn_ops} in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// GETs `sample` of the N keys (spread over all of them) through a hypha
/// edge and checks every value.
fn read_edge(http: &str, keys: u64, sample: u64) -> Res<()> {
    let t = Instant::now();
    let mut conn = Http::connect(http)?;
    let step = (keys / sample.max(1)).max(1);
    let mut n = 0;
    for i in (0..keys).step_by(step as usize).take(sample as usize) {
        let k = key(i);
        let path = format!("/kv/{}", std::str::from_utf8(&k)?);
        let (status, body) = conn.call("GET", &path, b"")?;
        if status != 200 || body != value(i) {
            return Err(format!(
                "GET {path}: status {status}, {} bytes, not the loaded value",
                body.len()
            )
            .into());
        }
        n += 1;
    }
    eprintln!(
        "read: {n} keys checked through {http} in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// PUTs keys N..N+count (new keys, so `read` still finds the loaded values).
fn write_edge(http: &str, keys: u64, count: u64) -> Res<()> {
    let t = Instant::now();
    let mut conn = Http::connect(http)?;
    for i in keys..keys + count {
        let k = key(i);
        let path = format!("/kv/{}", std::str::from_utf8(&k)?);
        let (status, _) = conn.call("PUT", &path, &value(i))?;
        if status != 200 && status != 201 && status != 204 {
            return Err(format!("PUT {path}: status {status}").into());
        }
    }
    eprintln!(
        "write: {count} keys put through {http} in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
