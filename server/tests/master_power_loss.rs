//! Power loss through a real master process: durable writes (`--fsync
//! always`), SIGKILL at random moments, restart, check — 50 trials. Every
//! acknowledged write is present with its exact value, nothing
//! unacknowledged is invented, and the master restarts every time.

mod common;
use common::*;
use hypha_net::Message;
use std::time::Duration;

const TRIALS: u32 = 50;

fn value(i: u32) -> Vec<u8> {
    (0..(i % 500)).map(|j| (i + j) as u8).collect()
}

#[test]
fn sigkilled_master_keeps_every_acknowledged_write() {
    let dir = TempDir::new("power-loss");
    let port = free_port();
    let listen = loopback(port).to_string();
    let data = data(&dir, "m");
    let args = [
        "master", "--data", &data, "--listen", &listen, "--fsync", "always",
    ];
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("seed {seed}");
    let mut next = 0u32; // keys k0..k{next} were acknowledged
    let mut master = Node::start(loopback(port), &args);
    for trial in 0..TRIALS {
        let mut c = Client::wait_connect(master.addr);
        // Check the previous trials' writes, then write more.
        for i in 0..next {
            assert_eq!(
                c.get(format!("k{i}").as_bytes()),
                Some(value(i)),
                "trial {trial}: k{i} lost"
            );
        }
        let mut extra = next;
        while c.get(format!("k{extra}").as_bytes()).is_some() {
            assert_eq!(
                c.get(format!("k{extra}").as_bytes()),
                Some(value(extra)),
                "k{extra} garbled"
            );
            extra += 1;
        }
        assert!(
            extra <= next + 1,
            "trial {trial}: {} unacknowledged writes invented",
            extra - next
        );
        next = extra;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let writes = 1 + (seed % 60) as u32;
        // Kill from another thread at a random moment in the middle of writing.
        let pid = master.child.id();
        let delay = Duration::from_micros(seed % 20_000);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        });
        for _ in 0..writes {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                c.put(format!("k{next}").as_bytes(), &value(next))
            }));
            match ok {
                Ok(Message::Written { .. }) => next += 1,
                _ => break, // the connection died with the master
            }
        }
        killer.join().expect("killer");
        let _ = master.child.wait();
        master.restart();
    }
    assert!(next > 0);
}
