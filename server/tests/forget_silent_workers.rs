//! A worker that stops heartbeating gets no reads at once (it is marked
//! unhealthy) and leaves the master's worker table, and the edge's list of
//! workers it learned from the master, after `--forget-after`: a worker
//! that came and went does not stay listed forever.

mod common;
use common::*;
use hypha_net::Message;
use std::time::{Duration, Instant};

const FAST_HB: [&str; 4] = ["--heartbeat-ms", "100", "--heartbeat-timeout-ms", "600"];

fn workers(c: &mut Client) -> Vec<hypha_net::WorkerInfo> {
    match c.call(|req_id| Message::Workers { req_id }) {
        Message::WorkerList { workers, .. } => workers,
        other => panic!("workers: {other:?}"),
    }
}

#[test]
fn a_silent_worker_is_unhealthy_at_once_and_forgotten_after_forget_after() {
    let dir = TempDir::new("forget");
    let (mport, wport) = (free_port(), free_port());
    let (mlisten, wlisten) = (loopback(mport).to_string(), loopback(wport).to_string());
    let (mdata, wdata) = (data(&dir, "master"), data(&dir, "w"));
    let mut args = vec![
        "master",
        "--data",
        &mdata,
        "--listen",
        &mlisten,
        "--fsync",
        "never",
        "--forget-after",
        "1500",
    ];
    args.extend_from_slice(&FAST_HB);
    let master = Node::start(loopback(mport), &args);
    master.wait_log("(tcp+udp)", 0, Duration::from_secs(30));
    let mut args = vec![
        "worker", "--data", &wdata, "--master", &mlisten, "--listen", &wlisten,
    ];
    args.extend_from_slice(&FAST_HB);
    let mut worker = Node::start(loopback(wport), &args);
    worker.wait_log("installed", 0, Duration::from_secs(30));
    let hport = free_port();
    let hlisten = loopback(hport).to_string();
    let mut args = vec!["http", "--listen", &hlisten, "--master", &mlisten];
    args.extend_from_slice(&FAST_HB);
    let edge = Node::start(loopback(hport), &args);
    edge.wait_log(
        &format!("learned worker {wlisten}"),
        0,
        Duration::from_secs(30),
    );
    let mut c = Client::wait_connect(master.addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !workers(&mut c).iter().any(|w| w.healthy) {
        assert!(Instant::now() < deadline, "the worker never became healthy");
        std::thread::sleep(Duration::from_millis(20));
    }
    worker.kill9();
    let killed = Instant::now();
    loop {
        let listed = workers(&mut c);
        if listed.is_empty() {
            break;
        }
        assert!(
            listed.iter().all(|w| !w.healthy),
            "a dead worker listed healthy: {listed:?}"
        );
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "never forgotten: {listed:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // --forget-after counts from the worker's last heartbeat, which came up
    // to one interval (100 ms) before the kill.
    assert!(
        killed.elapsed() >= Duration::from_millis(1500 - 100),
        "forgotten after {:?}, before --forget-after",
        killed.elapsed()
    );
    master.wait_log("--forget-after", 0, Duration::from_secs(5));
    edge.wait_log(
        &format!("no longer lists worker {wlisten}"),
        0,
        Duration::from_secs(10),
    );
}
