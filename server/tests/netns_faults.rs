//! Test hosts over a Mycelium-like network: one network namespace per node
//! (master, 2 workers, edge, and an intruder), veth pairs into a bridge in a
//! switch namespace, addresses in 400::/7, MTU 1400. Then partitions, 5 %
//! random loss plus a rate limit, a master SIGKILL under `--sync 1`, and the
//! allowlist. Needs root, iproute2 and ip6tables (.ci/run installs them);
//! where namespaces cannot be made the test fails and says so.

mod common;
use common::netns::{sh, Net, Proc};
use common::{keygen, TempDir};
use std::time::{Duration, Instant};

const HB: [&str; 4] = ["--heartbeat-ms", "200", "--heartbeat-timeout-ms", "3000"];

struct Cluster {
    net: Net,
    _dir: TempDir,
    master: Proc,
    w1: Proc,
    _w2: Proc,
    _edge: Proc,
    edge_url: String,
}

fn cluster(tag: &str, master_extra: &[&str]) -> Cluster {
    let net = Net::build(&["m", "w1", "w2", "e", "x"]);
    let dir = TempDir::new(tag);
    let m = format!("[{}]:7000", net.addr(0));
    let allow = format!(
        "{}/128,{}/128,{}/128,{}/128",
        net.addr(0),
        net.addr(1),
        net.addr(2),
        net.addr(3)
    );
    let mdata = dir.join("m").to_string_lossy().into_owned();
    // Every node holds the cluster key: they listen on overlay addresses.
    let (key, _) = keygen(&dir, "cluster.key");
    let mut margs = vec![
        "master",
        "--data",
        &mdata,
        "--listen",
        &m,
        "--allow",
        &allow,
        "--cluster-key-file",
        &key,
    ];
    margs.extend_from_slice(master_extra);
    margs.extend_from_slice(&HB);
    let master = Proc::start(net.exec("m"), &margs);
    let worker = |name: &str, i: usize| {
        let d = dir.join(name).to_string_lossy().into_owned();
        let listen = format!("[{}]:7001", net.addr(i));
        let mut a = vec![
            "worker",
            "--data",
            &d,
            "--master",
            &m,
            "--listen",
            &listen,
            "--allow",
            &allow,
            "--cluster-key-file",
            &key,
        ];
        a.extend_from_slice(&HB);
        Proc::start(net.exec(name), &a)
    };
    let w1 = worker("w1", 1);
    let w2 = worker("w2", 2);
    let h = format!("[{}]:8080", net.addr(3));
    let mut eargs = vec![
        "http",
        "--listen",
        &h,
        "--master",
        &m,
        "--cluster-key-file",
        &key,
    ];
    eargs.extend_from_slice(&HB);
    let edge = Proc::start(net.exec("e"), &eargs);
    edge.wait("http: listening", Duration::from_secs(30));
    w1.wait("following master", Duration::from_secs(30));
    w2.wait("following master", Duration::from_secs(30));
    Cluster {
        edge_url: format!("http://{h}"),
        net,
        _dir: dir,
        master,
        w1,
        _w2: w2,
        _edge: edge,
    }
}

impl Cluster {
    /// One curl from the edge's namespace: (status, body).
    fn curl(&self, args: &[&str]) -> (u16, String) {
        self.net.curl("e", 10, args)
    }
    fn put(&self, k: &str, v: &str) -> u16 {
        self.curl(&[
            "-X",
            "PUT",
            "--data-binary",
            v,
            &format!("{}/kv/{k}", self.edge_url),
        ])
        .0
    }
    fn get(&self, k: &str) -> (u16, String) {
        self.curl(&[&format!("{}/kv/{k}", self.edge_url)])
    }
    /// Waits until master and both workers report the same digest.
    fn converge(&self, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let (code, body) = self.curl(&[&format!("{}/digest", self.edge_url)]);
            if code == 200 {
                let d: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let m = &d["master"]["digest"];
                let ws = d["workers"].as_array().cloned().unwrap_or_default();
                if !m.is_null() && ws.len() == 2 && ws.iter().all(|w| &w["digest"] == m) {
                    return start.elapsed();
                }
            }
            assert!(
                start.elapsed() < within,
                "no convergence within {within:?}: {body}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn partitions_loss_rate_limits_master_kill_and_allowlist_over_test_hosts() {
    let c = cluster("netns", &["--sync", "1", "--sync-timeout-ms", "3000"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.put("warm", "x") != 201 {
        assert!(
            Instant::now() < deadline,
            "the edge never wrote through the master"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // 1. Partition worker 1 for 30 s while writes continue; heal; it converges within 5 s.
    c.net.partition("w1", true);
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(30) {
        assert_eq!(
            c.put(&format!("part{n}"), "v"),
            201,
            "write {n} during the partition"
        );
        n += 1;
    }
    c.net.partition("w1", false);
    let took = c.converge(Duration::from_secs(5));
    eprintln!("partition: {n} writes in 30 s; worker 1 converged {took:?} after healing");

    // 2. 5 % random loss on every node and a 1 Mbit/s limit on worker 2's link.
    for node in ["m", "w1", "w2", "e"] {
        sh(&[
            "ip",
            "netns",
            "exec",
            &c.net.ns(node),
            "ip6tables",
            "-A",
            "INPUT",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            "0.05",
            "-j",
            "DROP",
        ]);
    }
    let dev = format!("v{}", c.net.index("w2"));
    sh(&[
        "tc",
        "-n",
        &c.net.ns("w2"),
        "qdisc",
        "add",
        "dev",
        &dev,
        "root",
        "tbf",
        "rate",
        "1mbit",
        "burst",
        "32kbit",
        "latency",
        "400ms",
    ]);
    let flaps_before =
        c.w1.log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| l.contains("no heartbeat"))
            .count();
    for i in 0..300 {
        assert_eq!(
            c.put(&format!("loss{i}"), &format!("v{i}")),
            201,
            "write {i} under loss"
        );
        assert_eq!(
            c.get(&format!("loss{i}")),
            (200, format!("v{i}")),
            "read {i} under loss"
        );
    }
    c.converge(Duration::from_secs(10));
    let flaps =
        c.w1.log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| l.contains("no heartbeat"))
            .count()
            - flaps_before;
    assert_eq!(flaps, 0, "heartbeats flapped under 5 % loss");
    for node in ["m", "w1", "w2", "e"] {
        sh(&[
            "ip",
            "netns",
            "exec",
            &c.net.ns(node),
            "ip6tables",
            "-F",
            "INPUT",
        ]);
    }

    // 3. A peer outside the allowlist cannot connect to the master or a worker.
    let dir = TempDir::new("intruder");
    let d = dir.join("x").to_string_lossy().into_owned();
    let m = format!("[{}]:7000", c.net.addr(0));
    let xl = format!("[{}]:7001", c.net.addr(4));
    let intruder = Proc::start(
        c.net.exec("x"),
        // Without the key too: the allowlist turns it away before that.
        &[
            "worker",
            "--data",
            &d,
            "--master",
            &m,
            "--listen",
            &xl,
            "--insecure-no-auth",
        ],
    );
    c.master
        .wait("refused connection from", Duration::from_secs(10));
    assert!(!intruder.has("following master"));
    let w = format!("http://[{}]:7001/", c.net.addr(1));
    let out = c
        .net
        .exec("x")
        .args(["curl", "-s", "-m", "3", &w])
        .output()
        .expect("curl");
    assert!(out.stdout.is_empty(), "the worker answered an outsider");
    c.w1.wait("refused connection from", Duration::from_secs(10));

    // 4. SIGKILL the master during --sync 1 writes: every acknowledged write is on a worker.
    let mut c = c;
    let mut acked = Vec::new();
    for i in 0..2000 {
        if i == 200 {
            let _ = c.master.child.kill();
            let _ = c.master.child.wait();
        }
        if c.put(&format!("sync{i}"), &format!("v{i}")) == 201 {
            acked.push(i);
        }
    }
    assert!(
        acked.len() >= 200,
        "only {} writes acknowledged before the kill",
        acked.len()
    );
    for i in acked {
        assert_eq!(
            c.get(&format!("sync{i}")),
            (200, format!("v{i}")),
            "acknowledged sync{i} lost"
        );
    }
}
