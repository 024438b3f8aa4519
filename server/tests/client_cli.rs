//! `hypha get|put|del|ls|watch|status|compact` against a real all-in-one
//! with a token: binary-safe values from an argument, a file and stdin, and
//! the documented exit codes (0 done, 1 not found, 2 usage, 3 unreachable
//! or refused, 4 condition failed).

mod common;

use common::{all_in_one, TempDir};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const TOKEN: &str = "client-test-token";

struct Cli {
    edge: String,
    token_file: String,
}

impl Cli {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hypha"));
        c.args(args)
            .env("HYPHA_EDGE", &self.edge)
            .env("HYPHA_TOKEN_FILE", &self.token_file)
            .env_remove("HYPHA_TOKEN")
            .env_remove("HYPHA_DATA");
        c
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hypha");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("stdin");
        child.wait_with_output().expect("output")
    }

    /// Runs and checks the exit code; returns stdout.
    fn expect(&self, args: &[&str], code: i32) -> Vec<u8> {
        let out = self.run(args, b"");
        assert_eq!(out.status.code(), Some(code), "hypha {args:?}: {out:?}");
        out.stdout
    }
}

fn start(dir: &TempDir) -> (common::Node, SocketAddr, Cli) {
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token");
    let path = common::path_str(&token_file);
    let (node, http) = all_in_one(dir, &["--token-file", &path, "--value-max", "200000"]);
    let cli = Cli {
        edge: format!("http://{http}"),
        token_file: path,
    };
    // The edge answers before its master listens: wait for a first write.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cli.run(&["put", "warm-up", "1"], b"").status.code() != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "no write went through"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (node, http, cli)
}

fn seq(stdout: &[u8]) -> u64 {
    String::from_utf8_lossy(stdout)
        .trim()
        .parse()
        .expect("a seq")
}

#[test]
fn values_round_trip_byte_for_byte_and_exit_codes_say_what_happened() {
    let dir = TempDir::new("client");
    let (_node, _http, cli) = start(&dir);
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let out = cli.run(&["put", "bin/stdin"], &binary);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(cli.expect(&["get", "bin/stdin"], 0), binary);
    let file = dir.join("value");
    std::fs::write(&file, &binary[..1000]).expect("file");
    cli.expect(&["put", "bin/file", "--file", &common::path_str(&file)], 0);
    assert_eq!(cli.expect(&["get", "bin/file"], 0), &binary[..1000]);
    let first = seq(&cli.expect(&["put", "a key/with ünicode?&", "v1"], 0));
    assert_eq!(cli.expect(&["get", "a key/with ünicode?&"], 0), b"v1");

    // Conditions: 4 and nothing written; the printed seq is what --if-match takes.
    let stale = (first - 1).to_string();
    cli.expect(
        &["put", "a key/with ünicode?&", "v2", "--if-match", &stale],
        4,
    );
    let second = seq(&cli.expect(
        &[
            "put",
            "a key/with ünicode?&",
            "v2",
            "--if-match",
            &first.to_string(),
        ],
        0,
    ));
    assert!(second > first);
    cli.expect(&["put", "bin/file", "x", "--if-absent"], 4);
    assert_eq!(cli.expect(&["get", "bin/file"], 0), &binary[..1000]);

    // Listing, deleting, not found.
    let listed = cli.expect(&["ls", "bin/"], 0);
    let mut keys: Vec<&[u8]> = listed.split(|&b| b == b'\n').collect();
    keys.sort();
    assert_eq!(
        keys,
        [&b""[..], b"bin/file", b"bin/stdin"],
        "one key per line"
    );
    cli.expect(&["del", "bin/file"], 0);
    cli.expect(&["get", "bin/file"], 1);
    cli.expect(&["del", "bin/file"], 1);
    assert_eq!(cli.expect(&["ls", "bin/"], 0), b"bin/stdin\n");

    // Any bytes as a key (not UTF-8 here), and values that look like flags
    // after `--`.
    use std::os::unix::ffi::OsStrExt;
    let odd = std::ffi::OsStr::from_bytes(b"k\xff\xfe");
    let out = cli
        .command(&[])
        .arg("put")
        .arg(odd)
        .arg("--")
        .arg("-h")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = cli.command(&[]).arg("get").arg(odd).output().expect("run");
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), &b"-h"[..])
    );

    // A value over the edge's --value-max: its 413 (sent before the body,
    // after Expect: 100-continue) is a usage error naming the flag.
    let big = dir.join("big");
    std::fs::write(&big, vec![7u8; 300_000]).expect("big");
    let out = cli.run(&["put", "big", "--file", &common::path_str(&big)], b"");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--value-max"),
        "{out:?}"
    );

    // Usage errors: 2; a refused token and an unreachable edge: 3.
    cli.expect(&["get"], 2);
    cli.expect(&["put", "k", "v", "--bogus"], 2);
    cli.expect(&["put", "k", "v", "--file", "/nonexistent/file"], 2);
    let out = cli
        .command(&["put", "k", "v"])
        .env("HYPHA_TOKEN_FILE", "/dev/null")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );
    let port = common::free_port();
    let out = cli
        .command(&["get", "a"])
        .env("HYPHA_EDGE", format!("http://127.0.0.1:{port}"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the edge"),
        "{out:?}"
    );
}

#[test]
fn status_watch_and_online_compaction() {
    let dir = TempDir::new("client-ops");
    let (_node, _http, cli) = start(&dir);
    let table = String::from_utf8(cli.expect(&["status"], 0)).expect("utf-8");
    let status =
        String::from_utf8(cli.command(&["status"]).output().expect("run").stdout).expect("utf-8");
    assert!(table.starts_with("NODE") && status.starts_with("NODE"));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "a master and two workers: {table}");
    assert!(
        lines[1].contains("master") && lines[1].contains(" up "),
        "{table}"
    );
    assert!(lines[2..].iter().all(|l| l.contains("worker")), "{table}");

    // From a known cursor, so writes made before the stream opens count.
    let from = seq(&cli.expect(&["put", "elsewhere", "x"], 0)).to_string();
    let mut watch = cli
        .command(&["watch", "w/", "--from", &from])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch");
    let mut events = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    cli.expect(&["put", "elsewhere", "y"], 0);
    cli.expect(&["put", "w/1", "v"], 0);
    let first = events.next().expect("an event").expect("a line");
    let event: serde_json::Value = serde_json::from_str(&first).expect("JSON line");
    assert_eq!(event["changes"][0]["key"], "w/1", "{first}");
    cli.expect(&["del", "w/1"], 0);
    let line = events.next().expect("an event").expect("a line");
    let event: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
    assert_eq!(event["changes"][0]["type"], "delete", "{line}");
    let _ = watch.kill();
    let _ = watch.wait();

    let compacted = cli.expect(&["compact"], 0);
    let doc: serde_json::Value = serde_json::from_slice(&compacted).expect("JSON");
    assert!(
        doc["master"]["compactions"]
            .as_u64()
            .is_some_and(|c| c >= 1),
        "{doc}"
    );
    assert_eq!(doc["workers"].as_array().map(Vec::len), Some(2), "{doc}");
}
