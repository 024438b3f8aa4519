//! A worker's liveness, serve port and applied seq come only from its
//! authenticated session: forged heartbeats, replayed heartbeats and frames
//! injected into the session confirm no `--sync` write and route no read,
//! and an injected frame ends the session with a logged reason.

mod common;
use common::relay::Relay;
use common::*;
use hypha_net::{
    encode_frame_to_vec, encode_heartbeat, Acceptor, ClusterKey, ClusterKeys, ErrorCode, Heartbeat,
    Message, Purpose, Role,
};
use hypha_server::wire;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

const FAST_HB: [&str; 4] = ["--heartbeat-ms", "100", "--heartbeat-timeout-ms", "600"];

fn signal(node: &Node, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &node.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// A heartbeat for `node_id` claiming everything, signed with the keys of a
/// session the attacker made up (it cannot make the real one's).
fn forged_beat(node_id: u64, serve_port: u16) -> Vec<u8> {
    let keys = ClusterKeys::one(ClusterKey::from_bytes([0x66; 32]));
    let hello = wire::hello("hypha", Role::Worker, node_id, Purpose::Replicate).expect("hello");
    let (_, challenge) = Acceptor::new(&keys, &hello, [1; 32]);
    let (_, mut session) =
        hypha_net::connector_finish(&keys, &hello, &challenge).expect("own session");
    let mut beat = Heartbeat::new(
        wire::cluster_name("hypha").expect("name"),
        Role::Worker,
        node_id,
    );
    beat.applied_seq = u64::MAX;
    beat.commit_seq = u64::MAX;
    beat.serve_port = serve_port;
    encode_heartbeat(&beat, &mut session.beats_out)
        .expect("encode")
        .to_vec()
}

fn node_id(dir: &TempDir, name: &str) -> u64 {
    let text = std::fs::read_to_string(dir.join(name).join("node-id")).expect("node-id");
    u64::from_str_radix(text.trim(), 16).expect("hex node id")
}

fn workers(c: &mut Client) -> Vec<hypha_net::WorkerInfo> {
    match c.call(|req_id| Message::Workers { req_id }) {
        Message::WorkerList { workers, .. } => workers,
        other => panic!("workers: {other:?}"),
    }
}

/// A keyed master with `--sync 1` and one worker that reaches it through a
/// relay that can record, replay, inject and freeze.
struct Relayed {
    dir: TempDir,
    keys: ClusterKeys,
    master: Node,
    relay: Relay,
    worker: Node,
    wport: u16,
}

fn relayed(tag: &str, sync_timeout_ms: &str) -> Relayed {
    let dir = TempDir::new(tag);
    let (key_file, keys) = keygen(&dir, "cluster.key");
    let (mport, rport, wport) = (free_port(), free_port(), free_port());
    let (mlisten, mdata) = (loopback(mport).to_string(), data(&dir, "master"));
    let mut args = vec![
        "master",
        "--data",
        &mdata,
        "--listen",
        &mlisten,
        "--fsync",
        "never",
        "--sync",
        "1",
        "--sync-timeout-ms",
        sync_timeout_ms,
        "--cluster-key-file",
        &key_file,
    ];
    args.extend_from_slice(&FAST_HB);
    let master = Node::start(loopback(mport), &args);
    master.wait_log("(tcp+udp)", 0, Duration::from_secs(30));
    let relay = Relay::start(rport, loopback(mport));
    let (rlisten, wlisten, wdata) = (
        relay.addr.to_string(),
        loopback(wport).to_string(),
        data(&dir, "w"),
    );
    let mut args = vec![
        "worker",
        "--data",
        &wdata,
        "--master",
        &rlisten,
        "--listen",
        &wlisten,
        "--cluster-key-file",
        &key_file,
    ];
    args.extend_from_slice(&FAST_HB);
    let worker = Node::start(loopback(wport), &args);
    worker.wait_log("installed", 0, Duration::from_secs(30));
    Relayed {
        dir,
        keys,
        master,
        relay,
        worker,
        wport,
    }
}

#[test]
fn forged_replayed_and_injected_messages_confirm_no_write() -> std::io::Result<()> {
    let Relayed {
        dir,
        keys,
        master,
        relay,
        worker,
        wport,
    } = relayed("auth-forged", "1500");
    let mut insider = Client::wait_connect_with(master.addr, &keys);
    let first = insider.put(b"k1", b"v1");
    assert!(matches!(first, Message::Written { .. }), "{first:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while relay.datagrams.lock().expect("datagrams").len() < 3 {
        assert!(Instant::now() < deadline, "no heartbeats through the relay");
        std::thread::sleep(Duration::from_millis(20));
    }
    let wid = node_id(&dir, "w");
    let fake = TcpListener::bind("127.0.0.1:0")?;
    let fake_port = fake.local_addr()?.port();

    // The worker stops applying; its session stays open.
    signal(&worker, "-STOP");
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    for _ in 0..10 {
        udp.send_to(&forged_beat(wid, fake_port), master.addr)?;
        relay.replay_datagrams();
    }
    match insider.put(b"k2", b"v2") {
        Message::Error {
            code: ErrorCode::SyncFailed { confirmed, wanted },
            ..
        } => assert_eq!((confirmed, wanted), (0, 1)),
        other => panic!("a write no worker applied was confirmed: {other:?}"),
    }
    let listed = workers(&mut insider);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        listed[0].addr,
        loopback(wport).to_string(),
        "serve port forged"
    );
    assert!(listed[0].applied_seq < 2, "applied seq forged: {listed:?}");

    // A frame injected into the session: an Ack of everything, with a
    // made-up MAC.
    let mut ack = encode_frame_to_vec(&Message::Ack {
        term: 0,
        applied_seq: u64::MAX,
    })
    .map_err(std::io::Error::other)?;
    ack.extend_from_slice(&[0x42; hypha_net::FRAME_MAC_BYTES]);
    relay.inject(&ack);
    master.wait_log("fails its MAC", 0, Duration::from_secs(10));
    match insider.put(b"k3", b"v3") {
        Message::Error {
            code: ErrorCode::SyncFailed { confirmed: 0, .. },
            ..
        } => {}
        other => panic!("an injected Ack confirmed a write: {other:?}"),
    }
    // The real worker, woken, authenticates again and confirms writes.
    signal(&worker, "-CONT");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Message::Written { .. } = insider.put(b"k4", b"v4") {
            break;
        }
        assert!(Instant::now() < deadline, "the real worker never came back");
    }
    fake.set_nonblocking(true)?;
    assert!(
        fake.accept().is_err(),
        "the fake serve port got a connection"
    );
    Ok(())
}

/// `GET path` on the edge with a fresh connection; (status, body).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let status = reply.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = reply
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok((status, body))
}

#[test]
fn a_stranger_posing_as_a_worker_gets_no_reads() -> std::io::Result<()> {
    let dir = TempDir::new("auth-fake-worker");
    let (key_file, keys) = keygen(&dir, "cluster.key");
    let (mport, wport, hport) = (free_port(), free_port(), free_port());
    let (mlisten, mdata) = (loopback(mport).to_string(), data(&dir, "master"));
    let mut args = vec![
        "master",
        "--data",
        &mdata,
        "--listen",
        &mlisten,
        "--fsync",
        "never",
        "--cluster-key-file",
        &key_file,
    ];
    args.extend_from_slice(&FAST_HB);
    let master = Node::start(loopback(mport), &args);
    master.wait_log("(tcp+udp)", 0, Duration::from_secs(30));
    let (wlisten, wdata) = (loopback(wport).to_string(), data(&dir, "w"));
    let mut args = vec![
        "worker",
        "--data",
        &wdata,
        "--master",
        &mlisten,
        "--listen",
        &wlisten,
        "--cluster-key-file",
        &key_file,
    ];
    args.extend_from_slice(&FAST_HB);
    let worker = Node::start(loopback(wport), &args);
    worker.wait_log("installed", 0, Duration::from_secs(30));
    let hlisten = loopback(hport).to_string();
    let mut args = vec![
        "http",
        "--listen",
        &hlisten,
        "--master",
        &mlisten,
        "--cluster-key-file",
        &key_file,
    ];
    args.extend_from_slice(&FAST_HB);
    let edge = Node::start(loopback(hport), &args);
    edge.wait_log("listening", 0, Duration::from_secs(30));
    let mut insider = Client::wait_connect_with(master.addr, &keys);
    assert!(matches!(
        insider.put(b"x", b"real"),
        Message::Written { .. }
    ));

    // The stranger: a serve port of its own, a worker session attempt
    // without the key, and heartbeats advertising its port under its own
    // node id and under the real worker's.
    let fake = TcpListener::bind("127.0.0.1:0")?;
    let fake_port = fake.local_addr()?.port();
    let hello = wire::hello("hypha", Role::Worker, 0xbad, Purpose::Replicate)?;
    let attempt = smol::block_on(wire::connect(master.addr, hello, &ClusterKeys::insecure()));
    assert!(attempt.is_err(), "a worker without the key was welcomed");
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    for id in [0xbad, node_id(&dir, "w")] {
        for _ in 0..5 {
            udp.send_to(&forged_beat(id, fake_port), master.addr)?;
        }
    }
    // Let the edge refresh its worker list a few times.
    edge.wait_log("learned worker", 0, Duration::from_secs(10));
    let mut reads = 0;
    for _ in 0..20 {
        let (status, body) = http_get(edge.addr, "/kv/x")?;
        assert_eq!((status, body.as_str()), (200, "real"));
        reads += 1;
    }
    assert_eq!(reads, 20);
    fake.set_nonblocking(true)?;
    assert!(
        fake.accept().is_err(),
        "the edge sent a read to the stranger"
    );
    let listed = workers(&mut insider);
    assert!(
        listed
            .iter()
            .all(|w| !w.addr.ends_with(&format!(":{fake_port}"))),
        "{listed:?}"
    );
    Ok(())
}

#[test]
fn a_lingering_old_session_does_not_end_the_workers_new_one() -> std::io::Result<()> {
    // `_dir` keeps the data directories until the end (a `..` would drop
    // and remove them at once, under the running nodes).
    let Relayed {
        dir: _dir,
        keys,
        master,
        relay,
        worker,
        ..
    } = relayed("old-session", "3000");
    let mut insider = Client::wait_connect_with(master.addr, &keys);
    let first = insider.put(b"k1", b"v1");
    assert!(matches!(first, Message::Written { .. }), "{first:?}");

    // A silent partition of the first session: the master does not notice,
    // the worker gives up on it and opens a second one.
    let seen = worker.log_lines();
    relay
        .udp_frozen
        .store(true, std::sync::atomic::Ordering::SeqCst);
    relay.freeze(0);
    worker.wait_log("reconnecting", seen, Duration::from_secs(10));
    relay
        .udp_frozen
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Message::Written { .. } = insider.put(b"k2", b"v2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second session never confirmed a write"
        );
    }
    assert!(relay.connections() >= 2);
    // The master ends the first session when the second joins (it is
    // still open in the relay: its end is the master's decision, not a
    // TCP error); the second one must go on.
    master.wait_log("opened a new session", 0, Duration::from_secs(10));
    relay.close(0);
    for i in 0..5 {
        match insider.put(format!("after{i}").as_bytes(), b"v") {
            Message::Written { .. } => {}
            other => panic!("the old session's end took the new one down: {other:?}"),
        }
    }
    let listed = workers(&mut insider);
    assert!(listed.iter().all(|w| w.healthy), "{listed:?}");
    // The second session carried those writes: the worker never had to
    // join a third time.
    let joins = master
        .log
        .lock()
        .expect("log")
        .iter()
        .filter(|l| l.contains("joined at seq"))
        .count();
    assert_eq!(joins, 2, "the old session's end tore down the new one");
    Ok(())
}
