//! A master whose disk fills (a small ext4 image on a loop device): writes
//! through the edge get 503 with the space the master needs, reads go on,
//! `/status` shows the refusal, and once space is freed writes resume
//! without a restart and every acknowledged write reads back.
//!
//! Needs root (mount) and mkfs.ext4 (Debian's e2fsprogs).

mod common;
mod http_support;

use common::{data, free_port, loopback, Node, TempDir};
use http_support::{expect_status, Client, TestResult};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const KEYS: u32 = 32;
const VALUE_BYTES: usize = 32 << 10;

/// An ext4 filesystem of `mib` MiB in a file under `dir`, mounted at
/// `dir/mnt` (no blocks reserved for root); unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn new(dir: &TempDir, mib: u64) -> SmallFs {
        let (img, mnt) = (dir.join("fs.img"), dir.join("mnt"));
        std::fs::create_dir(&mnt).expect("mount point");
        let f = std::fs::File::create(&img).expect("image");
        f.set_len(mib << 20).expect("size the image");
        let img = img.to_string_lossy().into_owned();
        run("mkfs.ext4", &["-q", "-F", "-m", "0", &img]);
        run("mount", &["-o", "loop", &img, &mnt.to_string_lossy()]);
        SmallFs(mnt)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd).args(args).status();
    let st = st.unwrap_or_else(|e| panic!("{cmd}: {e} (this test needs root and e2fsprogs)"));
    assert!(st.success(), "{cmd} {args:?}: {st} (this test needs root)");
}

fn value(n: u32) -> Vec<u8> {
    let mut v = format!("{n:08}").into_bytes();
    v.resize(VALUE_BYTES, b'a' + (n % 26) as u8);
    v
}

#[test]
fn a_full_master_refuses_writes_with_the_space_it_needs_then_resumes() -> TestResult {
    let dir = TempDir::new("http-full-disk");
    let fs = SmallFs::new(&dir, 16);
    let filler = fs.0.join("filler");
    std::fs::write(&filler, vec![0u8; 3 << 20])?;
    let (m, w, h) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let (ms, ws, hs) = (m.to_string(), w.to_string(), h.to_string());
    let mdata = fs.0.join("m").to_string_lossy().into_owned();
    let wdata = data(&dir, "w");
    let _master = Node::start(m, &["master", "--data", &mdata, "--listen", &ms]);
    let _worker = Node::start(
        w,
        &["worker", "--data", &wdata, "--master", &ms, "--listen", &ws],
    );
    let edge = Node::start(
        h,
        &["http", "--listen", &hs, "--master", &ms, "--workers", &ws],
    );
    edge.wait_log("http: listening", 0, Duration::from_secs(30));
    let mut c = Client::connect(h)?;

    // Overwrite the keys in turn until the master's disk is full.
    let mut acked: HashMap<u32, u32> = HashMap::new();
    let mut n = 0u32;
    let refusal = loop {
        let k = n % KEYS;
        let reply = c.request("PUT", &format!("/kv/k{k}"), &[], &value(n))?;
        match reply.status {
            200 | 201 => drop(acked.insert(k, n)),
            503 => {
                // The edge may answer before the master listens.
                let why = reply.error()?;
                if why.contains("unreachable") && acked.is_empty() && n < 200 {
                    std::thread::sleep(Duration::from_millis(50));
                    n += 1;
                    continue;
                }
                break why;
            }
            other => panic!("PUT answered {other}: {}", reply.text()),
        }
        n += 1;
        assert!(n < 10_000, "the disk never filled");
    };
    assert!(
        refusal.contains("full") && refusal.contains("bytes free"),
        "{refusal}"
    );

    // Reads go on; /status says why writes stop.
    let check = |c: &mut Client, acked: &HashMap<u32, u32>| -> TestResult {
        for (&k, &n) in acked {
            let reply = c.request("GET", &format!("/kv/k{k}?consistency=ryw"), &[], b"")?;
            expect_status(&reply, 200)?;
            let got: u32 = String::from_utf8_lossy(&reply.body[..8]).parse()?;
            assert!(
                got >= n && reply.body == value(got),
                "k{k}: {got}, acknowledged {n}"
            );
        }
        Ok(())
    };
    check(&mut c, &acked)?;
    let status = c.request("GET", "/status", &[], b"")?.json()?;
    let why = status["master"]["storage_error"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("bytes free"), "{status}");

    // Room again: writes resume without a restart.
    std::fs::remove_file(&filler)?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        n += 1;
        let k = n % KEYS;
        let reply = c.request("PUT", &format!("/kv/k{k}"), &[], &value(n))?;
        if reply.status == 200 || reply.status == 201 {
            acked.insert(k, n);
            break;
        }
        expect_status(&reply, 503)?;
        assert!(Instant::now() < deadline, "writes did not resume");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = c.request("GET", "/status", &[], b"")?.json()?;
    assert!(status["master"]["storage_error"].is_null(), "{status}");
    check(&mut c, &acked)?;
    Ok(())
}
