//! Secrets come from files and are rotated without a restart: SIGHUP makes
//! a node read its cluster key file (current key first, next key second)
//! and the edge its token file again; sessions already open keep working
//! while their key is in the file and end once it is taken out, and a file
//! that no longer parses leaves the old secret in place.

mod common;
use common::*;
use hypha_net::{ClusterKeys, Message};
use std::time::Duration;

fn hup(node: &Node) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &node.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn hex_of(keys: &ClusterKeys) -> String {
    keys.current()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn both(first: &ClusterKeys, second: &ClusterKeys) -> ClusterKeys {
    ClusterKeys::parse(&format!("{}\n{}\n", hex_of(first), hex_of(second))).expect("two keys")
}

#[test]
fn a_master_takes_a_new_key_on_sighup_and_open_sessions_go_on() {
    let dir = TempDir::new("key-rotation");
    let (key_file, old) = keygen(&dir, "cluster.key");
    let (_, new) = keygen(&dir, "next.key");
    let port = free_port();
    let (listen, mdata) = (loopback(port).to_string(), data(&dir, "master"));
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
    let mut open = Client::wait_connect_with(master.addr, &old);
    assert!(Client::connect_with(master.addr, &new).is_err());

    // Step 2 of a rotation: the new key first, the old one still accepted.
    std::fs::write(&key_file, format!("{}\n{}\n", hex_of(&new), hex_of(&old))).expect("write");
    let seen = master.log_lines();
    hup(&master);
    master.wait_log("read again (2 keys)", seen, Duration::from_secs(10));
    assert!(Client::connect_with(master.addr, &new).is_ok());
    assert!(Client::connect_with(master.addr, &both(&old, &new)).is_ok());
    assert!(
        Client::connect_with(master.addr, &old).is_err(),
        "a node holding only the old key cannot check the master's proof with the new one"
    );
    assert!(matches!(open.put(b"k", b"v"), Message::Written { .. }));

    // Step 3: the old key leaves the file; sessions that proved it end.
    std::fs::write(&key_file, format!("{}\n", hex_of(&new))).expect("write");
    let seen = master.log_lines();
    hup(&master);
    master.wait_log("read again (1 key)", seen, Duration::from_secs(10));
    master.wait_log(
        "was removed from the key file",
        seen,
        Duration::from_secs(10),
    );
    let mut fresh = Client::connect_with(master.addr, &new).expect("the new key works");
    assert!(matches!(fresh.put(b"k2", b"v"), Message::Written { .. }));
    let after = open.try_call(|req_id| Message::Put {
        req_id,
        key: b"k3".to_vec(),
        value: b"v".to_vec(),
    });
    assert!(
        after.is_err(),
        "a session under the removed key was served: {after:?}"
    );

    // A file that no longer parses: the old keys stay.
    std::fs::write(&key_file, "not a key\n").expect("write");
    let seen = master.log_lines();
    hup(&master);
    master.wait_log(
        "keeping the old cluster keys",
        seen,
        Duration::from_secs(10),
    );
    assert!(Client::connect_with(master.addr, &new).is_ok());
}

fn curl(args: &[&str]) -> u16 {
    let out = std::process::Command::new("curl")
        .args(["-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

#[test]
fn the_edge_reads_its_token_file_again_on_sighup() {
    let dir = TempDir::new("token-rotation");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "first-token\n").expect("write");
    let port = free_port();
    let http = loopback(port).to_string();
    let (data, token_path) = (data(&dir, "all"), path_str(&token_file));
    let node = Node::start(
        loopback(port),
        &[
            "--data",
            &data,
            "--http",
            &http,
            "--token-file",
            &token_path,
        ],
    );
    node.wait_log("try: curl", 0, Duration::from_secs(30));
    let url = format!("http://{http}/kv/k");
    let put = |token: &str| {
        let auth = format!("Authorization: Bearer {token}");
        curl(&["-X", "PUT", "--data-binary", "v", "-H", &auth, &url])
    };
    assert_eq!(put("first-token"), 201);
    assert_eq!(put("second-token"), 401);
    std::fs::write(&token_file, "second-token\n").expect("write");
    let seen = node.log_lines();
    hup(&node);
    node.wait_log("token file", seen, Duration::from_secs(10));
    assert_eq!(put("second-token"), 201);
    assert_eq!(put("first-token"), 401);
    // An emptied file keeps the token in force.
    std::fs::write(&token_file, "\n").expect("write");
    let seen = node.log_lines();
    hup(&node);
    node.wait_log("keeping the old token", seen, Duration::from_secs(10));
    assert_eq!(put("second-token"), 201);
}

#[test]
fn an_empty_token_is_refused_at_startup() {
    let dir = TempDir::new("empty-token");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "\n").expect("write");
    let data = data(&dir, "all");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hypha"))
        .args([
            "--data",
            &data,
            "--http",
            "127.0.0.1:0",
            "--token-file",
            &path_str(&token_file),
        ])
        .output()
        .expect("hypha");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("token is empty"), "{err}");
}
