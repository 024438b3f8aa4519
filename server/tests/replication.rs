//! Master and workers as real processes on loopback: replication, resume
//! after SIGKILL without a snapshot, late joiners, master restarts, history
//! mismatch, and `--sync 2`.

mod common;
use common::*;
use hypha_net::Message;
use std::time::Duration;

const FAST_HB: [&str; 4] = ["--heartbeat-ms", "100", "--heartbeat-timeout-ms", "600"];

fn master(dir: &TempDir, port: u16, extra: &[&str]) -> Node {
    let listen = loopback(port).to_string();
    let data = data(dir, "master");
    let mut args = vec!["master", "--data", &data, "--listen", &listen];
    args.extend_from_slice(extra);
    args.extend_from_slice(&FAST_HB);
    let n = Node::start(loopback(port), &args);
    n.wait_log("(tcp+udp)", 0, Duration::from_secs(30));
    n
}

fn worker(dir: &TempDir, name: &str, master_port: u16, extra: &[&str]) -> Node {
    let port = free_port();
    let listen = loopback(port).to_string();
    let m = loopback(master_port).to_string();
    let data = data(dir, name);
    let mut args = vec![
        "worker", "--data", &data, "--master", &m, "--listen", &listen,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&FAST_HB);
    Node::start(loopback(port), &args)
}

fn write_n(c: &mut Client, from: u32, n: u32) {
    for i in from..from + n {
        match c.put(
            format!("key-{i}").as_bytes(),
            format!("value-{i}").as_bytes(),
        ) {
            Message::Written { .. } => {}
            other => panic!("put {i}: {other:?}"),
        }
    }
}

#[test]
fn a_killed_worker_resumes_from_its_log_and_converges() {
    let dir = TempDir::new("repl-kill");
    let mport = free_port();
    let m = master(&dir, mport, &["--fsync", "never"]);
    let mut w1 = worker(&dir, "w1", mport, &[]);
    let w2 = worker(&dir, "w2", mport, &[]);
    let mut mc = Client::wait_connect(m.addr);
    write_n(&mut mc, 0, 5_000);
    w1.kill9();
    write_n(&mut mc, 5_000, 2_500);
    let before = w1.log_lines();
    w1.restart();
    write_n(&mut mc, 7_500, 2_500);
    let mut c1 = Client::wait_connect(w1.addr);
    let mut c2 = Client::wait_connect(w2.addr);
    let took = converge(&mut mc, &mut c1, Duration::from_secs(1));
    converge(&mut mc, &mut c2, Duration::from_secs(1));
    eprintln!("restarted worker converged {took:?} after the last write");
    let log = w1.log.lock().expect("log").join("\n");
    assert!(
        !log.contains("snapshot"),
        "a restarted worker must not need a snapshot:\n{log}"
    );
    assert!(log.contains("following master"), "{log}");
    let _ = before;
    assert_eq!(c1.get(b"key-9999").as_deref(), Some(&b"value-9999"[..]));
}

#[test]
fn a_late_worker_catches_up_by_snapshot() {
    let dir = TempDir::new("repl-late");
    let mport = free_port();
    let m = master(&dir, mport, &["--fsync", "never"]);
    let mut mc = Client::wait_connect(m.addr);
    write_n(&mut mc, 0, 10_000);
    let w = worker(&dir, "late", mport, &[]);
    let mut wc = Client::wait_connect(w.addr);
    converge(&mut mc, &mut wc, Duration::from_secs(10));
    w.wait_log("snapshot up to seq", 0, Duration::from_secs(1));
    assert_eq!(wc.get(b"key-0").as_deref(), Some(&b"value-0"[..]));
}

#[test]
fn workers_rejoin_a_restarted_master() {
    let dir = TempDir::new("repl-master-restart");
    let mport = free_port();
    let mut m = master(&dir, mport, &[]);
    let w = worker(&dir, "w", mport, &[]);
    let mut mc = Client::wait_connect(m.addr);
    write_n(&mut mc, 0, 500);
    let mut wc = Client::wait_connect(w.addr);
    converge(&mut mc, &mut wc, Duration::from_secs(5));
    for (round, clean) in [(1u32, true), (2, false)] {
        if clean {
            m.terminate();
        } else {
            m.kill9();
        }
        let skip = w.log_lines();
        m.restart();
        mc = Client::wait_connect(m.addr);
        write_n(&mut mc, round * 1000, 500);
        w.wait_log("following master", skip, Duration::from_secs(10));
        converge(&mut mc, &mut wc, Duration::from_secs(5));
    }
    let log = w.log.lock().expect("log").join("\n");
    assert_eq!(
        log.matches("snapshot up to seq").count(),
        1,
        "only the first join takes a snapshot:\n{log}"
    );
}

#[test]
fn a_master_with_a_new_history_is_refused_and_the_worker_keeps_its_data() {
    let dir = TempDir::new("repl-history");
    let mport = free_port();
    let mut m = master(&dir, mport, &[]);
    let w = worker(&dir, "w", mport, &[]);
    let mut mc = Client::wait_connect(m.addr);
    write_n(&mut mc, 0, 100);
    let mut wc = Client::wait_connect(w.addr);
    converge(&mut mc, &mut wc, Duration::from_secs(5));
    let kept = wc.digest();
    m.kill9();
    std::fs::remove_dir_all(dir.join("master")).expect("wipe master");
    m.restart();
    w.wait_log("NOT FOLLOWING", 0, Duration::from_secs(10));
    let mut mc = Client::wait_connect(m.addr);
    write_n(&mut mc, 500, 10);
    assert_eq!(wc.digest(), kept, "the worker keeps its data");
    assert_eq!(wc.get(b"key-5").as_deref(), Some(&b"value-5"[..]));
}

#[test]
fn with_sync_2_every_acknowledged_write_is_on_both_workers() {
    let dir = TempDir::new("repl-sync2");
    let mport = free_port();
    let m = master(&dir, mport, &["--sync", "2", "--sync-timeout-ms", "500"]);
    let w1 = worker(&dir, "w1", mport, &[]);
    let w2 = worker(&dir, "w2", mport, &[]);
    let mut c1 = Client::wait_connect(w1.addr);
    let mut c2 = Client::wait_connect(w2.addr);
    let mut mc = Client::wait_connect(m.addr);
    // Until both workers joined, writes fail with a clear count.
    loop {
        match mc.put(b"probe", b"x") {
            Message::Written { .. } => break,
            Message::Error { message, .. } => {
                assert!(message.contains("workers applied"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    for i in 0..300u32 {
        let k = format!("s{i}");
        match mc.put(k.as_bytes(), b"v") {
            Message::Written { .. } => {
                assert_eq!(
                    c1.get(k.as_bytes()).as_deref(),
                    Some(&b"v"[..]),
                    "{k} on worker 1"
                );
                assert_eq!(
                    c2.get(k.as_bytes()).as_deref(),
                    Some(&b"v"[..]),
                    "{k} on worker 2"
                );
            }
            other => panic!("{k}: {other:?}"),
        }
    }
}
