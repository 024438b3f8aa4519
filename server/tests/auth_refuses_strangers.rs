//! A master and a worker that hold a cluster key serve nobody who cannot
//! prove it: a peer with another key, with none, or speaking out of turn is
//! refused at the handshake, logged, and changes nothing.

mod common;
use common::*;
use hypha_net::{encode_frame_to_vec, ClusterKeys, Message, Purpose, RefuseReason, Role};
use hypha_server::wire;
use std::io::{Read, Write};
use std::time::Duration;

const FAST_HB: [&str; 4] = ["--heartbeat-ms", "100", "--heartbeat-timeout-ms", "600"];

/// What an outsider tries with `keys`: every request purpose and role.
fn outsider_attempts(addr: std::net::SocketAddr, keys: &ClusterKeys) -> Vec<std::io::Error> {
    let mut refused = Vec::new();
    for (role, purpose) in [
        (Role::Client, Purpose::Request),
        (Role::Edge, Purpose::Request),
        (Role::Worker, Purpose::Replicate),
    ] {
        let attempt = smol::block_on(async {
            let hello = wire::hello("hypha", role, 666, purpose)?;
            // History 0: the old master sent such a peer everything as a
            // snapshot.
            let (mut r, mut w, answer, _) = wire::connect(addr, hello, keys).await?;
            if let Message::Refuse(refuse) = answer {
                return Err(wire::refusal(addr, &refuse));
            }
            w.send(&Message::Put {
                req_id: 1,
                key: b"k".to_vec(),
                value: b"forged".to_vec(),
            })
            .await?;
            let _ = r.recv().await;
            Ok(())
        });
        match attempt {
            Ok(()) => panic!("{role:?}/{purpose:?} with the wrong key was served"),
            Err(e) => refused.push(e),
        }
    }
    refused
}

#[test]
fn peers_without_the_key_are_refused_and_change_nothing() -> std::io::Result<()> {
    let dir = TempDir::new("auth-strangers");
    let (key_file, keys) = keygen(&dir, "cluster.key");
    let (_, other_keys) = keygen(&dir, "other.key");
    let mport = free_port();
    let (listen, mdata) = (loopback(mport).to_string(), data(&dir, "master"));
    let mut args = vec![
        "master",
        "--data",
        &mdata,
        "--listen",
        &listen,
        "--fsync",
        "never",
        "--cluster-key-file",
        &key_file,
    ];
    args.extend_from_slice(&FAST_HB);
    let master = Node::start(loopback(mport), &args);
    master.wait_log(
        "every node connection is authenticated",
        0,
        Duration::from_secs(30),
    );

    let mut insider = Client::wait_connect_with(master.addr, &keys);
    assert!(matches!(insider.put(b"k", b"v"), Message::Written { .. }));
    let before = insider.digest();

    let refused = outsider_attempts(master.addr, &other_keys);
    for e in &refused {
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    }
    assert!(
        refused[0].to_string().contains("could not prove"),
        "{}",
        refused[0]
    );
    // Without a key at all (the public insecure key) the same.
    for e in outsider_attempts(master.addr, &ClusterKeys::insecure()) {
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    }

    // Bytes out of turn: a Put as the first frame, and a Put where the
    // Prove belongs. Both are refused and the connection closed.
    let put = encode_frame_to_vec(&Message::Put {
        req_id: 1,
        key: b"k".to_vec(),
        value: b"forged".to_vec(),
    })
    .map_err(std::io::Error::other)?;
    let mut raw = std::net::TcpStream::connect(master.addr)?;
    raw.set_read_timeout(Some(Duration::from_secs(10)))?;
    raw.write_all(&put)?;
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    let refusal = hypha_net::decode_frame(&answer).map_err(std::io::Error::other)?;
    assert!(
        matches!(
            refusal,
            hypha_net::Decoded::Frame {
                message: Message::Refuse(hypha_net::Refuse {
                    reason: RefuseReason::Unexpected,
                    ..
                }),
                ..
            }
        ),
        "{refusal:?}"
    );
    let mut raw = std::net::TcpStream::connect(master.addr)?;
    raw.set_read_timeout(Some(Duration::from_secs(10)))?;
    let hello = wire::hello("hypha", Role::Client, 1, Purpose::Request)?;
    raw.write_all(&encode_frame_to_vec(&Message::Hello(hello)).map_err(std::io::Error::other)?)?;
    raw.write_all(&put)?;
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    assert!(
        answer.len() < 200,
        "only a Challenge, then the close: {answer:?}"
    );

    master.wait_log("another cluster key", 0, Duration::from_secs(10));
    assert_eq!(insider.digest(), before, "an outsider changed the data");
    assert_eq!(insider.get(b"k").as_deref(), Some(&b"v"[..]));
    Ok(())
}

#[test]
fn a_node_on_a_public_address_needs_a_key_or_an_explicit_opt_out() -> std::io::Result<()> {
    let dir = TempDir::new("auth-default");
    let mdata = data(&dir, "master");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hypha"))
        .args(["master", "--data", &mdata, "--listen", "[400::1]:7000"])
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--cluster-key-file") && err.contains("hypha keygen"),
        "{err}"
    );
    // keygen refuses to overwrite a key.
    let (key_file, _) = keygen(&dir, "k");
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_hypha"))
        .args(["keygen", &key_file])
        .output()?;
    assert!(!again.status.success());
    let meta = std::fs::metadata(&key_file)?;
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    Ok(())
}

/// The `Hello` a protocol-1 worker sends (its bytes as that release pinned
/// them in `net/WIRE.md`): cluster "lab", node 7, applied seq 300.
const PROTOCOL_1_HELLO: &str = "11000000 5ead23f0 00 c8a0e5c204 01 036c6162 01 07 00 ac02 00";

/// The `Hello` a protocol-2 worker (the previous release) sends, as its
/// `net/WIRE.md` pinned it: the same, with the nonce `[0x11; 32]`.
const PROTOCOL_2_HELLO: &str = "31000000 20226382 00 c8a0e5c204 02 036c6162 01 07 00 ac02 00 \
     1111111111111111111111111111111111111111111111111111111111111111";

#[test]
fn nodes_of_earlier_protocols_are_told_both_versions() -> std::io::Result<()> {
    let dir = TempDir::new("auth-old-peer");
    let port = free_port();
    let (listen, mdata) = (loopback(port).to_string(), data(&dir, "master"));
    let master = Node::start(
        loopback(port),
        &[
            "master", "--data", &mdata, "--listen", &listen, "--fsync", "never",
        ],
    );
    master.wait_log("(tcp+udp)", 0, Duration::from_secs(30));
    for (theirs, hello) in [(1, PROTOCOL_1_HELLO), (2, PROTOCOL_2_HELLO)] {
        let hex: String = hello.split_whitespace().collect();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let mut raw = std::net::TcpStream::connect(master.addr)?;
        raw.set_read_timeout(Some(Duration::from_secs(10)))?;
        raw.write_all(&bytes)?;
        let mut answer = Vec::new();
        let _ = raw.read_to_end(&mut answer);
        let refusal = hypha_net::decode_frame(&answer).map_err(std::io::Error::other)?;
        let hypha_net::Decoded::Frame {
            message: Message::Refuse(refuse),
            ..
        } = refusal
        else {
            panic!("a protocol-{theirs} peer got {refusal:?}");
        };
        assert_eq!(refuse.reason, RefuseReason::VersionMismatch { ours: 3 });
        let peer = format!("the peer {theirs}");
        assert!(
            refuse.message.contains("protocol 3") && refuse.message.contains(&peer),
            "{}",
            refuse.message
        );
        master.wait_log(&peer, 0, Duration::from_secs(10));
    }
    Ok(())
}
