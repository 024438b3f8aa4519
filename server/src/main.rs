//! The `hypha` binary: every role of the cluster, and all of them at once.

use hypha_server::cli::{self, Args};
use hypha_server::master::{Master, MasterConfig};
use hypha_server::worker::{Worker, WorkerConfig};
use smol::stream::StreamExt;
use std::process::ExitCode;

const HELP: &str = "\
hypha — a replicated key-value store for edge devices

USAGE:
    hypha [--workers N] [--data DIR] [--http ADDR] [--fsync MODE] [--sync MODE]
        Runs everything on this machine: a master, N workers (default 2) and the
        HTTP edge, talking over loopback. Data under ./hypha-data, HTTP on
        localhost:8080 (127.0.0.1 and ::1).
    hypha master --data DIR --listen ADDR [--fsync always|never|MSms] [--allow CIDR,...]
                 [--sync async|N] [--sync-timeout-ms MS]
        Takes every write and streams it to the workers. TCP and UDP on ADDR.
    hypha worker --data DIR --master ADDR --listen ADDR [--allow CIDR,...]
                 [--accept-new-history] [--fsync MODE]
        Follows the master and answers reads.
    hypha http --listen ADDR --master ADDR [--workers ADDR,ADDR,...] [--token T]
        The HTTP edge: writes to the master, reads to workers.

COMMON FLAGS:
    --cluster NAME             cluster name every node must share (default: hypha)
    --heartbeat-ms MS          UDP heartbeat interval (default 1000)
    --heartbeat-timeout-ms MS  a peer silent this long is down (default 3000)

FLAGS OF master:
    --fsync always|never|MSms  when writes reach the disk (default always: a write
                               is acknowledged after fdatasync; concurrent writes
                               share one). MSms: every MS milliseconds.
    --sync async|N             acknowledge after the local commit (async, default)
                               or after N workers applied the write
    --sync-timeout-ms MS       how long --sync N waits before failing (default 5000)
    --allow CIDR,...           only these peers may connect, e.g. 400::/7,127.0.0.1
    --value-max BYTES          largest value accepted (default 16777216)

FLAGS OF worker:
    --accept-new-history       if the master holds another history (it was replaced
                               or came back empty), replace local data with its
                               snapshot instead of refusing to follow it
    --fsync ...                as for master (default 200ms)

Every flag can also come from the environment: --sync-timeout-ms is
HYPHA_SYNC_TIMEOUT_MS. Addresses are HOST:PORT, IPv6 as [ADDR]:PORT
(e.g. a Mycelium address [4a0:1234::1]:7000). Logs: RUST_LOG=info|debug.
";

const COMMON: [&str; 3] = ["cluster", "heartbeat-ms", "heartbeat-timeout-ms"];

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let result = match args.first().map(String::as_str) {
        Some("master") => run_master(&args[1..]),
        Some("worker") => run_worker(&args[1..]),
        Some(other) if !other.starts_with("--") => {
            Err(format!("unknown command {other:?}; see hypha --help"))
        }
        _ => Err("the all-in-one mode needs the HTTP edge, which is not built yet".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hypha: {e}");
            ExitCode::from(2)
        }
    }
}

fn flags<'a>(own: &[&'a str]) -> Vec<&'a str> {
    own.iter().copied().chain(COMMON).collect()
}

fn engine_options(args: &Args, default_fsync: &str) -> Result<hypha_engine::Options, String> {
    let value_max = args.number(
        "value-max",
        hypha_engine::limits::VALUE_BYTES_MAX_DEFAULT as u64,
    )? as usize;
    Ok(hypha_engine::Options {
        fsync: cli::fsync(args.get_or("fsync", default_fsync))?,
        value_bytes_max: value_max,
        ..hypha_engine::Options::default()
    })
}

pub fn master_config(args: &Args) -> Result<MasterConfig, String> {
    Ok(MasterConfig {
        data: args.need("data")?.into(),
        listen: cli::addr("listen", args.need("listen")?)?,
        engine: engine_options(args, "always")?,
        allow: cli::allow(args)?,
        sync: cli::sync(args.get_or("sync", "async"))?,
        sync_timeout_ms: args.number("sync-timeout-ms", 5_000)?,
        cluster: args.get_or("cluster", "hypha").to_string(),
        heartbeat_ms: args.number("heartbeat-ms", 1_000)?,
        heartbeat_timeout_ms: args.number("heartbeat-timeout-ms", 3_000)?,
    })
}

fn run_master(raw: &[String]) -> Result<(), String> {
    let own = [
        "data",
        "listen",
        "fsync",
        "allow",
        "sync",
        "sync-timeout-ms",
        "value-max",
    ];
    let args = Args::parse(raw, &flags(&own), &[])?;
    let cfg = master_config(&args)?;
    smol::block_on(async {
        let master = Master::bind(cfg)
            .await
            .map_err(|e| format!("cannot start the master: {e}"))?;
        let db = master.db().clone();
        smol::future::or(
            async {
                master.run().await;
                Ok(())
            },
            shutdown_signal(),
        )
        .await?;
        db.sync().map_err(|e| format!("final sync failed: {e}"))?;
        log::info!("master: stopped; data synced");
        Ok(())
    })
}

fn run_worker(raw: &[String]) -> Result<(), String> {
    let own = ["data", "master", "listen", "allow", "fsync", "value-max"];
    let args = Args::parse(raw, &flags(&own), &["accept-new-history"])?;
    let cfg = WorkerConfig {
        data: args.need("data")?.into(),
        master: cli::addr("master", args.need("master")?)?,
        listen: cli::addr("listen", args.need("listen")?)?,
        engine: engine_options(&args, "200ms")?,
        allow: cli::allow(&args)?,
        cluster: args.get_or("cluster", "hypha").to_string(),
        accept_new_history: args.on("accept-new-history"),
        heartbeat_ms: args.number("heartbeat-ms", 1_000)?,
        heartbeat_timeout_ms: args.number("heartbeat-timeout-ms", 3_000)?,
    };
    smol::block_on(async {
        let worker = Worker::bind(cfg)
            .await
            .map_err(|e| format!("cannot start the worker: {e}"))?;
        let w = worker.clone();
        smol::future::or(
            async {
                worker.run().await;
                Ok(())
            },
            shutdown_signal(),
        )
        .await?;
        if let Some(db) = w.db() {
            db.sync().map_err(|e| format!("final sync failed: {e}"))?;
        }
        log::info!("worker: stopped; data synced");
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() -> Result<(), String> {
    use async_signal::{Signal, Signals};
    let mut signals = Signals::new([Signal::Int, Signal::Term])
        .map_err(|e| format!("cannot watch signals: {e}"))?;
    if let Some(Ok(sig)) = signals.next().await {
        log::info!("received {sig:?}: shutting down");
    }
    Ok(())
}
