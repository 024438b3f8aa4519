//! `hypha get|put|del|ls|watch|status` and `hypha compact --edge`: the
//! binary as a client of an edge (`--edge URL` or `HYPHA_EDGE`), binary-safe,
//! with exit codes a script can rely on (0 done, and the `EXIT_` constants).

mod backup;
mod progress;
mod restore;
pub use progress::Progress;
mod transport;

use hypha_server::cli::Args;
use hypha_server::commands;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use transport::{Answer, Edge};

/// The edge a client talks to when neither `--edge` nor `HYPHA_EDGE` says.
pub const EDGE_DEFAULT: &str = "http://localhost:8080";

/// The key (or anything asked for) is not there.
pub const EXIT_NOT_FOUND: u8 = 1;
/// The command line, or the request it makes, is wrong: fix the command.
pub const EXIT_USAGE: u8 = 2;
/// The edge could not be reached, or it (or the cluster behind it) refused.
pub const EXIT_UNAVAILABLE: u8 = 3;
/// A condition (`--if-match`, `--if-absent`) did not hold; nothing was written.
pub const EXIT_CONDITION: u8 = 4;

/// A failed client command: its exit code and what to tell the user.
pub struct Failed(pub u8, pub String);

fn usage(why: String) -> Failed {
    Failed(EXIT_USAGE, why)
}

/// Runs client command `name` with its arguments.
pub fn run(name: &str, raw: &[String]) -> Result<(), Failed> {
    let (positional, flags) = split(commands::get(name), raw);
    let args = commands::get(name).parse(&flags).map_err(usage)?;
    let edge = edge(&args, &flags)?;
    let arg = |i: usize, what: &str| {
        positional.get(i).cloned().ok_or_else(|| {
            usage(format!(
                "usage: hypha {} (missing {what})",
                commands::get(name).usage
            ))
        })
    };
    let extra = |n: usize| match positional.len() > n {
        true => Err(usage(format!(
            "unexpected argument {:?}; usage: hypha {}",
            String::from_utf8_lossy(&positional[n]),
            commands::get(name).usage
        ))),
        false => Ok(()),
    };
    match name {
        "get" => extra(1).and_then(|()| get(&edge, &arg(0, "KEY")?)),
        "put" => extra(2).and_then(|()| put(&edge, &args, &arg(0, "KEY")?, positional.get(1))),
        "del" => extra(1).and_then(|()| del(&edge, &args, &arg(0, "KEY")?)),
        "ls" => extra(1).and_then(|()| ls(&edge, positional.first().map_or(&[][..], |p| p))),
        "watch" => extra(1).and_then(|()| watch(&edge, &args, &arg(0, "PREFIX")?)),
        "status" => extra(0).and_then(|()| status(&edge)),
        "compact" => extra(0).and_then(|()| compact(&edge)),
        "backup" => extra(1).and_then(|()| backup::backup(&edge, &path(&arg(0, "FILE")?)?)),
        "restore" => extra(1).and_then(|()| restore::restore(&edge, &path(&arg(0, "FILE")?)?)),
        _ => Err(usage(format!("{name} is not a client command"))),
    }
}

/// Positional arguments (as bytes: keys may be any bytes) and flags.
fn split(command: &commands::Command, raw: &[String]) -> (Vec<Vec<u8>>, Vec<String>) {
    let os: Vec<std::ffi::OsString> = std::env::args_os().skip(2).collect();
    let mut positional = Vec::new();
    let mut flags = Vec::new();
    let mut i = 0;
    let mut only_positional = false;
    while i < raw.len() {
        let a = &raw[i];
        if a == "--" && !only_positional {
            // Everything after `--` is a key, a value or a file name, even
            // if it starts with dashes.
            only_positional = true;
        } else if a.starts_with("--") && !only_positional {
            flags.push(a.clone());
            let takes_value = !a.contains('=')
                && command
                    .all_flags()
                    .any(|f| a[2..] == *f.name && !f.value.is_empty());
            if takes_value {
                if let Some(v) = raw.get(i + 1) {
                    flags.push(v.clone());
                    i += 1;
                }
            }
        } else {
            // The raw bytes of this argument, not its lossy UTF-8 form.
            let bytes = os
                .get(i)
                .map_or_else(|| a.as_bytes().to_vec(), |o| o.as_bytes().to_vec());
            positional.push(bytes);
        }
        i += 1;
    }
    (positional, flags)
}

fn edge(args: &Args, raw: &[String]) -> Result<Edge, Failed> {
    // A flag on the command line wins over the environment's other one.
    let given = |flag: &str| {
        raw.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    let from_file = args
        .get("token-file")
        .filter(|_| !given("--token") || given("--token-file"));
    let token = match (from_file, args.get("token")) {
        (Some(path), _) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| usage(format!("--token-file {path}: {e}")))?
                .trim()
                .to_string(),
        ),
        (None, token) => token.map(str::to_string),
    };
    Edge::parse(args.get_or("edge", EDGE_DEFAULT), token).map_err(|(code, why)| Failed(code, why))
}

/// A file name argument.
fn path(bytes: &[u8]) -> Result<String, Failed> {
    String::from_utf8(bytes.to_vec()).map_err(|_| usage("give the file name in UTF-8".into()))
}

/// Percent-encodes every byte outside RFC 3986's unreserved set.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The exit code and message for an answer that is not what was asked.
fn refused(answer: &Answer) -> Failed {
    let code = match answer.status {
        404 => EXIT_NOT_FOUND,
        412 => EXIT_CONDITION,
        400 | 405 | 411 | 413 | 414 | 431 => EXIT_USAGE,
        _ => EXIT_UNAVAILABLE,
    };
    let mut message = format!("the edge answered {}: {}", answer.status, answer.error());
    if answer.status == 401 {
        message.push_str(" (give --token-file PATH or set HYPHA_TOKEN_FILE)");
    }
    Failed(code, message)
}

fn unreachable_edge(e: String) -> Failed {
    Failed(EXIT_UNAVAILABLE, e)
}

fn out(bytes: &[u8]) -> Result<(), Failed> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| Failed(EXIT_UNAVAILABLE, format!("cannot write to stdout: {e}")))
}

fn get(edge: &Edge, key: &[u8]) -> Result<(), Failed> {
    let answer = edge
        .call("GET", &format!("/kv/{}", encode(key)), &[], b"")
        .map_err(unreachable_edge)?;
    match answer.status {
        200 => out(&answer.body),
        _ => Err(refused(&answer)),
    }
}

/// The value: the argument, `--file PATH`, or standard input (`-` or none).
fn value(args: &Args, given: Option<&Vec<u8>>) -> Result<Vec<u8>, Failed> {
    match (given, args.get("file")) {
        (Some(_), Some(_)) => Err(usage("give the value or --file, not both".into())),
        (None, Some(path)) => std::fs::read(path).map_err(|e| usage(format!("--file {path}: {e}"))),
        (Some(v), None) if v.as_slice() != b"-" => Ok(v.clone()),
        _ => {
            let mut v = Vec::new();
            std::io::stdin()
                .read_to_end(&mut v)
                .map_err(|e| usage(format!("reading the value from stdin: {e}")))?;
            Ok(v)
        }
    }
}

/// `--if-match SEQ` and `--if-absent` as headers.
fn conditions(args: &Args) -> Result<Vec<(&'static str, String)>, Failed> {
    let mut headers = Vec::new();
    if let Some(seq) = args.get("if-match") {
        let seq: u64 = seq.parse().map_err(|_| {
            usage(format!(
                "--if-match {seq:?}: give the key's seq (a whole number)"
            ))
        })?;
        headers.push(("If-Match", format!("\"{seq}\"")));
    }
    if args.on("if-absent") {
        headers.push(("If-None-Match", "*".to_string()));
    }
    Ok(headers)
}

/// Prints a write's seq (the key's new ETag: what `--if-match` takes).
fn print_seq(answer: &Answer) -> Result<(), Failed> {
    let seq = serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| v["seq"].as_u64());
    match seq {
        Some(seq) => out(format!("{seq}\n").as_bytes()),
        None => out(&answer.body),
    }
}

fn put(edge: &Edge, args: &Args, key: &[u8], given: Option<&Vec<u8>>) -> Result<(), Failed> {
    let body = value(args, given)?;
    let mut target = format!("/kv/{}", encode(key));
    if let Some(ttl) = args.get("ttl") {
        target.push_str(&format!("?ttl={}", encode(ttl.as_bytes())));
    }
    let headers = conditions(args)?;
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let answer = edge
        .call("PUT", &target, &headers, &body)
        .map_err(unreachable_edge)?;
    match answer.status {
        200 | 201 => print_seq(&answer),
        _ => Err(refused(&answer)),
    }
}

fn del(edge: &Edge, args: &Args, key: &[u8]) -> Result<(), Failed> {
    let headers = conditions(args)?;
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let answer = edge
        .call("DELETE", &format!("/kv/{}", encode(key)), &headers, b"")
        .map_err(unreachable_edge)?;
    match answer.status {
        200 | 204 => print_seq(&answer),
        _ => Err(refused(&answer)),
    }
}

fn json(answer: &Answer, what: &str) -> Result<serde_json::Value, Failed> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        Failed(
            EXIT_UNAVAILABLE,
            format!("{what}: the edge's answer is not JSON: {e}"),
        )
    })
}

/// Every key under `prefix`, one per line, page after page.
fn ls(edge: &Edge, prefix: &[u8]) -> Result<(), Failed> {
    let mut cursor = String::new();
    loop {
        let mut target = format!(
            "/kv?prefix={}&limit={}",
            encode(prefix),
            hypha_server::limits::SCAN_LIMIT_MAX
        );
        if !cursor.is_empty() {
            target.push_str(&format!("&cursor={cursor}"));
        }
        let answer = edge
            .call("GET", &target, &[], b"")
            .map_err(unreachable_edge)?;
        if answer.status != 200 {
            return Err(refused(&answer));
        }
        let page = json(&answer, "ls")?;
        let mut lines = Vec::new();
        for k in page["keys"].as_array().into_iter().flatten() {
            let key = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                k["base64"].as_str().unwrap_or_default(),
            )
            .map_err(|e| {
                Failed(
                    EXIT_UNAVAILABLE,
                    format!("ls: a key's base64 did not decode: {e}"),
                )
            })?;
            lines.extend_from_slice(&key);
            lines.push(b'\n');
        }
        out(&lines)?;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => return Ok(()),
        }
    }
}

/// Changes under `prefix` as newline-delimited JSON, until interrupted.
fn watch(edge: &Edge, args: &Args, prefix: &[u8]) -> Result<(), Failed> {
    let mut target = format!("/watch/{}", encode(prefix));
    let mut query = Vec::new();
    if let Some(from) = args.get("from") {
        query.push(format!("from={}", encode(from.as_bytes())));
    }
    if args.on("no-values") {
        query.push("values=false".to_string());
    }
    if !query.is_empty() {
        target.push_str(&format!("?{}", query.join("&")));
    }
    let accept = [("Accept", "application/x-ndjson")];
    // The stream's keep-alives are empty lines: not events, so not printed.
    let mut last = b'\n';
    let mut sink = |bytes: &[u8]| {
        let mut kept = Vec::with_capacity(bytes.len());
        for &b in bytes {
            if !(b == b'\n' && last == b'\n') {
                kept.push(b);
                last = b;
            }
        }
        out(&kept).map_err(|Failed(_, why)| why)
    };
    let answer = edge
        .stream(&target, &accept, &mut sink)
        .map_err(unreachable_edge)?;
    match answer.status {
        200 => Err(Failed(
            EXIT_UNAVAILABLE,
            "watch: the edge ended the stream".into(),
        )),
        410 => Err(Failed(EXIT_NOT_FOUND, format!("watch: {}", answer.error()))),
        _ => Err(refused(&answer)),
    }
}

fn status(edge: &Edge) -> Result<(), Failed> {
    let answer = edge
        .call("GET", "/status", &[], b"")
        .map_err(unreachable_edge)?;
    if answer.status != 200 {
        return Err(refused(&answer));
    }
    out(table(&json(&answer, "status")?).as_bytes())
}

/// `/status` as a terminal table: one line per node.
fn table(status: &serde_json::Value) -> String {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let health = |v: &serde_json::Value| {
        if v == &serde_json::json!(true) {
            "up"
        } else {
            "DOWN"
        }
    };
    let mut rows = vec![["NODE", "ROLE", "TERM", "HEALTH", "SEQ", "LAG"].map(str::to_string)];
    if let Some(members) = status["members"].as_array() {
        for m in members {
            rows.push([
                text(&m["addr"]),
                text(&m["role"]),
                text(&m["term"]),
                health(&m["healthy"]).into(),
                text(&m["applied_seq"]),
                text(&m["lag"]),
            ]);
        }
    } else {
        let m = &status["master"];
        rows.push([
            text(&m["addr"]),
            "master".into(),
            "-".into(),
            health(&m["healthy"]).into(),
            text(&m["seq"]),
            "0".into(),
        ]);
        for w in status["workers"].as_array().into_iter().flatten() {
            rows.push([
                text(&w["addr"]),
                "worker".into(),
                "-".into(),
                health(&w["healthy"]).into(),
                text(&w["applied_seq"]),
                text(&w["lag"]),
            ]);
        }
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if let Some(refusal) = status["master"]["storage_error"].as_str() {
        out.push_str(&format!("the master refuses writes: {refusal}\n"));
    }
    out
}

/// `hypha compact --edge`: compacts every node now, online.
fn compact(edge: &Edge) -> Result<(), Failed> {
    let answer = edge
        .call("POST", "/admin/compact", &[], b"")
        .map_err(unreachable_edge)?;
    if answer.status != 200 {
        return Err(refused(&answer));
    }
    out(&answer.body)?;
    out(b"\n")
}
