//! `--loss PERCENT`: the run again, inside a network namespace whose
//! loopback has Mycelium's MTU and drops that share of received packets.

use std::process::Command;

/// Set in the run inside the namespace.
const INSIDE: &str = "HYPHA_FAILOVER_NETNS";

pub fn inside() -> bool {
    std::env::var_os(INSIDE).is_some()
}

fn run(args: &[&str]) -> Result<(), String> {
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .map_err(|e| {
            format!(
                "{}: {e} (needs root, iproute2 and iptables)",
                args.join(" ")
            )
        })?;
    match status.success() {
        true => Ok(()),
        false => Err(format!("{} failed: {status}", args.join(" "))),
    }
}

/// Creates the namespace, runs this program with the same arguments in it,
/// and removes the namespace whatever happened.
pub fn rerun_inside(percent: &str) -> Result<(), String> {
    let p: f64 = percent
        .parse()
        .map_err(|e| format!("--loss {percent}: {e}"))?;
    if !(0.0..100.0).contains(&p) {
        return Err(format!("--loss {percent}: a percentage below 100"));
    }
    let probability = format!("{:.4}", p / 100.0);
    let ns = format!("hypha-failover-{}", std::process::id());
    run(&["ip", "netns", "add", &ns])?;
    let result = (|| {
        let exec = |rest: &[&str]| {
            let mut args = vec!["ip", "netns", "exec", &ns];
            args.extend_from_slice(rest);
            run(&args)
        };
        exec(&["ip", "link", "set", "lo", "up", "mtu", "1400"])?;
        for tool in ["iptables", "ip6tables"] {
            exec(&[
                tool,
                "-A",
                "INPUT",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &probability,
                "-j",
                "DROP",
            ])?;
        }
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let status = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(me)
            .args(std::env::args().skip(1))
            .env(INSIDE, "1")
            .status()
            .map_err(|e| e.to_string())?;
        match status.success() {
            true => Ok(()),
            false => Err(format!("the run in namespace {ns} failed: {status}")),
        }
    })();
    let _ = run(&["ip", "netns", "del", &ns]);
    result
}
