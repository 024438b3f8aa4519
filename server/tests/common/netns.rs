//! Test hosts over a Mycelium-like network: one network namespace per node,
//! veth pairs into a bridge in a switch namespace, addresses in 400::/7,
//! MTU 1400; partitions and loss with ip6tables. Needs root, iproute2 and
//! ip6tables (.ci/run installs them).
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A set of namespaces removed on drop.
pub struct Net {
    pub tag: String,
    pub nodes: Vec<String>,
}

impl Net {
    pub fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.tag)
    }

    pub fn addr(&self, i: usize) -> String {
        format!("4a0:{:x}::{}", std::process::id() & 0xffff, i + 1)
    }

    pub fn build(nodes: &[&str]) -> Net {
        let tag = format!("hy{}", std::process::id() % 100_000);
        let net = Net {
            tag,
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
        };
        let probe = Command::new("ip")
            .args(["netns", "add", &net.ns("sw")])
            .output();
        match probe {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "cannot create network namespaces (need root and iproute2): {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!("cannot run `ip` (install iproute2): {e}"),
        }
        let sw = net.ns("sw");
        sh(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", &sw, "link", "set", "br0", "up"]);
        for (i, node) in nodes.iter().enumerate() {
            let ns = net.ns(node);
            sh(&["ip", "netns", "add", &ns]);
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            let (a, b) = (format!("v{i}"), format!("p{i}"));
            sh(&[
                "ip", "-n", &ns, "link", "add", &a, "mtu", "1400", "type", "veth", "peer", "name",
                &b, "mtu", "1400", "netns", &sw,
            ]);
            sh(&["ip", "-n", &sw, "link", "set", &b, "master", "br0", "up"]);
            sh(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/64", net.addr(i)),
                "dev",
                &a,
                "nodad",
            ]);
            sh(&["ip", "-n", &ns, "link", "set", &a, "up"]);
        }
        net
    }

    pub fn exec(&self, node: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(node)]);
        c
    }

    /// One curl in `node`'s namespace, at most `secs` seconds: (status,
    /// body); status 0 if no answer came.
    pub fn curl(&self, node: &str, secs: u32, args: &[&str]) -> (u16, String) {
        let out = self
            .exec(node)
            .args([
                "curl",
                "-s",
                "-m",
                &secs.to_string(),
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
            ])
            .args(args)
            .output()
            .expect("curl (apt-get install curl)");
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = s.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    pub fn index(&self, node: &str) -> usize {
        self.nodes.iter().position(|n| n == node).expect("node")
    }

    /// Cuts a node off (ip6tables DROP both ways) or heals it. Setting the
    /// link down would also drop its IPv6 address.
    pub fn partition(&self, node: &str, cut: bool) {
        let ns = self.ns(node);
        for chain in ["INPUT", "OUTPUT"] {
            if cut {
                let iface = if chain == "INPUT" { "-i" } else { "-o" };
                sh(&[
                    "ip",
                    "netns",
                    "exec",
                    &ns,
                    "ip6tables",
                    "-A",
                    chain,
                    "!",
                    iface,
                    "lo",
                    "-j",
                    "DROP",
                ]);
            } else {
                sh(&["ip", "netns", "exec", &ns, "ip6tables", "-F", chain]);
            }
        }
    }
}

impl Net {
    /// Deletes this net's namespaces when dropped, even while client
    /// threads still hold the `Net` (a test that fails does not join them,
    /// so the `Net` itself is never dropped).
    #[allow(dead_code)] // each test binary uses a different part
    pub fn cleanup(&self) -> Cleanup {
        let nodes = self.nodes.iter().map(String::as_str).chain(["sw"]);
        Cleanup(nodes.map(|n| self.ns(n)).collect())
    }
}

/// See [`Net::cleanup`].
pub struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        drop(self.cleanup());
    }
}

pub struct Proc {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn start(mut cmd: Command, args: &[&str]) -> Proc {
        cmd.arg(env!("CARGO_BIN_EXE_hypha"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start hypha");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let err = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().expect("log").push(l);
            }
        });
        Proc { child, log }
    }
    pub fn has(&self, needle: &str) -> bool {
        self.log
            .lock()
            .expect("log")
            .iter()
            .any(|l| l.contains(needle))
    }
    pub fn wait(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.has(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in log:\n{}",
                self.log.lock().expect("log").join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
