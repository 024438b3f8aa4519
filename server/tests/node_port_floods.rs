//! Strangers flooding a master's or a worker's node port cannot grow its
//! memory or lock the cluster out: before a peer proves the key a node buffers at
//! most one Hello-sized frame, refuses a frame header announcing more at
//! once, holds at most `NODE_HANDSHAKES_PER_SOURCE_MAX` handshakes per
//! source for at most `HANDSHAKE_TIMEOUT_MS`, and a node from another
//! address authenticates meanwhile.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Stranger connections: each announces a 32 MiB frame and sends part of it.
const FLOODERS: usize = 200;
/// The anonymous memory a node may hold under the flood (the bound the
/// issue sets for a master or a worker under floods: 16 MiB).
const RSS_ANON_KIB_MAX: u64 = 16 * 1024;

#[test]
fn a_flood_of_unfinished_frames_stays_small_and_a_node_gets_in() {
    let dir = TempDir::new("node-floods");
    let (key_file, keys) = keygen(&dir, "cluster.key");
    let port = free_port();
    // On every address, IPv4 and IPv6, so that the flood (127.0.0.1) and
    // the node (::1) come from different sources.
    let listen = format!("[::]:{port}");
    let mdata = data(&dir, "master");
    let master = Node::start(
        loopback(port),
        &[
            "master",
            "--data",
            &mdata,
            "--listen",
            &listen,
            "--fsync",
            "never",
            "--cluster-key-file",
            &key_file,
        ],
    );
    master.wait_log("(tcp+udp)", 0, Duration::from_secs(30));
    flood_then_authenticate(&master, port, &keys);
}

#[test]
fn a_workers_port_holds_up_the_same() {
    let dir = TempDir::new("worker-floods");
    let (key_file, keys) = keygen(&dir, "cluster.key");
    let (mport, wport) = (free_port(), free_port());
    let (mlisten, mdata) = (loopback(mport).to_string(), data(&dir, "master"));
    let master = Node::start(
        loopback(mport),
        &[
            "master",
            "--data",
            &mdata,
            "--listen",
            &mlisten,
            "--cluster-key-file",
            &key_file,
        ],
    );
    master.wait_log("(tcp+udp)", 0, Duration::from_secs(30));
    let (wlisten, wdata) = (format!("[::]:{wport}"), data(&dir, "w"));
    let worker = Node::start(
        loopback(wport),
        &[
            "worker",
            "--data",
            &wdata,
            "--master",
            &mlisten,
            "--listen",
            &wlisten,
            "--cluster-key-file",
            &key_file,
        ],
    );
    worker.wait_log("installed", 0, Duration::from_secs(30));
    flood_then_authenticate(&worker, wport, &keys);
}

/// Floods `node`'s port from 127.0.0.1, checks its memory and that a
/// client holding `keys` gets in from ::1 meanwhile.
fn flood_then_authenticate(node: &Node, port: u16, keys: &hypha_net::ClusterKeys) {
    let pid = node.child.id();

    let mut frame = (32u32 << 20).to_le_bytes().to_vec();
    frame.extend_from_slice(&[0u8; 4]);
    frame.extend_from_slice(&vec![0x55; 60_000]);
    let mut streams = Vec::new();
    let mut closed_at_once = 0;
    for _ in 0..FLOODERS {
        let Ok(mut s) = TcpStream::connect(loopback(port)) else {
            continue;
        };
        let _ = s.write_all(&frame);
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                streams.push(s)
            }
            // EOF or a reset: the node closed it.
            _ => closed_at_once += 1,
        }
    }
    assert!(
        closed_at_once >= FLOODERS - 8,
        "only {closed_at_once} of {FLOODERS} frames over the handshake limit were refused at once"
    );
    let anon = rss_anon_kib(pid);
    assert!(
        anon < RSS_ANON_KIB_MAX,
        "node RssAnon {anon} KiB under the flood"
    );

    // Half-sent Hellos hold handshake slots, a few per source.
    let mut slow: Vec<TcpStream> = (0..50)
        .filter_map(|_| TcpStream::connect(loopback(port)).ok())
        .collect();
    for s in &mut slow {
        let _ = s.write_all(&[0x30, 0, 0, 0, 1, 2]);
    }
    let insider_addr: SocketAddr = format!("[::1]:{port}").parse().expect("addr");
    let started = Instant::now();
    let mut insider = Client::connect_with(insider_addr, keys).unwrap_or_else(|e| {
        panic!(
            "a node on another address was kept out: {e}; its log:\n{}",
            node.log.lock().expect("log").join("\n")
        )
    });
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    assert!(
        insider.try_digest().is_some(),
        "the node answers the insider"
    );
    // The flood's own address is full of handshakes: its slots come back
    // only at the handshake deadline, when the node closes them.
    assert!(
        Client::connect_with(loopback(port), keys).is_err(),
        "a fifth handshake from the flooding source was let in"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while Client::connect_with(loopback(port), keys).is_err() {
        assert!(
            Instant::now() < deadline,
            "the flood's handshake slots never came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A flood of refusals is not a flood of log lines.
    let lines = node.log_lines();
    assert!(
        lines < 100,
        "{lines} log lines for {} stranger connections",
        FLOODERS + 50
    );
    let anon = rss_anon_kib(pid);
    assert!(
        anon < RSS_ANON_KIB_MAX,
        "node RssAnon {anon} KiB after the flood"
    );
    drop((streams, slow));
}
