//! The `hypha` binary: every role of the cluster, and all of them at once.

mod arenas;
mod client;
mod compact_cmd;
mod http_cmd;
mod member_cmd;
mod members_cmd;

use http_cmd::http_config;
use hypha_server::cli::{self, Args};
use hypha_server::edge::{Edge, EdgeConfig};
use hypha_server::gate;
use hypha_server::http::{serve_on, HttpConfig};
use hypha_server::keys::{self, KEY_FILE_FLAG};
use hypha_server::master::{Master, MasterConfig};
use hypha_server::wire::HANDSHAKE_TIMEOUT_MS;
use hypha_server::worker::{Worker, WorkerConfig};
use hypha_server::{commands, help};
use smol::stream::StreamExt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    arenas::limit();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // Keys given as arguments may be any bytes: never panic on them (the
    // client reads their raw bytes again).
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Some(text) = help_asked(&args) {
        return match text {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hypha: {e}");
                ExitCode::from(2)
            }
        };
    }
    let result = match args.first().map(String::as_str) {
        Some("master") => run_master(&args[1..]),
        Some("worker") => run_worker(&args[1..]),
        Some("member") => member_cmd::run_member(&args[1..]),
        Some("witness") => member_cmd::run_witness(&args[1..]),
        Some("members") => {
            return match members_cmd::run(&args[1..]) {
                Ok(()) => ExitCode::SUCCESS,
                Err(members_cmd::Failed(code, why)) => {
                    eprintln!("hypha: {why}");
                    ExitCode::from(code)
                }
            }
        }
        Some("http") => run_http(&args[1..]),
        Some("compact") if !offline(&args[1..]) => return client_exit("compact", &args[1..]),
        Some(name @ ("get" | "put" | "del" | "ls" | "watch" | "status" | "backup" | "restore")) => {
            return client_exit(name, &args[1..])
        }
        Some("compact") => compact_cmd::run(&args[1..]),
        Some("keygen") => match args.get(1) {
            Some(path) if args.len() == 2 => keys::keygen(std::path::Path::new(path)),
            _ => Err("usage: hypha keygen PATH".to_string()),
        },
        Some(other) if !other.starts_with("--") => Err(format!(
            "unknown command {other:?}; the commands are {} (hypha --help)",
            command_names()
        )),
        _ => run_all(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hypha: {e}");
            ExitCode::from(2)
        }
    }
}

/// `hypha compact --data DIR` works on files, `--edge URL` asks an edge;
/// with neither on the command line, `HYPHA_DATA` means files.
fn offline(args: &[String]) -> bool {
    let given = |flag: &str| {
        args.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    given("--data") || (!given("--edge") && std::env::var_os(cli::env_name("data")).is_some())
}

/// Runs a client command; its failure is the documented exit code.
fn client_exit(name: &str, args: &[String]) -> ExitCode {
    match client::run(name, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(client::Failed(code, why)) => {
            eprintln!("hypha {name}: {why}");
            ExitCode::from(code)
        }
    }
}

fn command_names() -> String {
    let names: Vec<&str> = commands::COMMANDS
        .iter()
        .map(|c| c.name)
        .filter(|n| !n.is_empty())
        .collect();
    names.join(", ")
}

/// What to print instead of running: `--version`, `--help` (of the command
/// named first, if any), `help [COMMAND]`, `man`, `completions bash`.
fn help_asked(args: &[String]) -> Option<Result<String, String>> {
    let first = args.first().map(String::as_str);
    let named = |name: &str| match commands::find(name) {
        Some(_) if name.is_empty() => Ok(help::overview()),
        Some(c) => Ok(help::command(c)),
        None => Err(format!(
            "no command {name:?}; the commands are {}",
            command_names()
        )),
    };
    // Not after `--`: what follows is a key or a value, whatever it says.
    let mut flags = args.iter().take_while(|a| *a != "--");
    if flags.any(|a| a == "--help" || a == "-h") {
        return Some(match first {
            Some(name) if commands::find(name).is_some() => named(name),
            _ => named(""),
        });
    }
    match first? {
        "--version" | "-V" | "version" => Some(Ok(help::version())),
        "help" => Some(named(args.get(1).map_or("", String::as_str))),
        "man" => Some(Ok(help::man())),
        "completions" => Some(match args.get(1).map(String::as_str) {
            Some("bash") => Ok(help::bash_completion()),
            _ => Err("usage: hypha completions bash".to_string()),
        }),
        _ => None,
    }
}

fn engine_options(args: &Args, default_fsync: &str) -> Result<hypha_engine::Options, String> {
    let value_max = hypha_server::limits::value_bytes_max(
        args.number("value-max", hypha_server::limits::VALUE_BYTES_MAX as u64)?,
    )?;
    Ok(hypha_engine::Options {
        fsync: cli::fsync(args.get_or("fsync", default_fsync))?,
        value_bytes_max: value_max,
        ..compaction_options(args, hypha_engine::Options::default())?
    })
}

/// The compaction flags, applied to `base`.
fn compaction_options(
    args: &Args,
    base: hypha_engine::Options,
) -> Result<hypha_engine::Options, String> {
    let percent = args.number("compact-garbage", base.compact_garbage_percent as u64)?;
    if !(1..=100).contains(&percent) {
        return Err(format!(
            "--compact-garbage {percent}: give a percentage between 1 and 100"
        ));
    }
    let history = args.number("history", base.history as u64)?;
    let history_max = hypha_engine::limits::HISTORY_DEPTH_MAX as u64;
    if !(1..=history_max).contains(&history) {
        return Err(format!(
            "--history {history}: give 1 (only the newest version) to {history_max}"
        ));
    }
    Ok(hypha_engine::Options {
        history: history as usize,
        compact_garbage_percent: percent as u8,
        compact_min_bytes: args.number("compact-min-mb", base.compact_min_bytes >> 20)? << 20,
        ..base
    })
}

fn connections_max(args: &Args) -> Result<usize, String> {
    let max = args.number("max-connections", gate::NODE_CONNECTIONS_MAX_DEFAULT as u64)?;
    if max <= gate::NODE_HANDSHAKES_MAX as u64 {
        return Err(format!(
            "--max-connections {max}: give more than NODE_HANDSHAKES_MAX ({})",
            gate::NODE_HANDSHAKES_MAX
        ));
    }
    Ok(max as usize)
}

/// Runs the SIGHUP reloader of the key and token files beside `role`'s
/// future.
async fn with_reload<T>(
    reload: keys::Reload,
    role: &'static str,
    run: impl std::future::Future<Output = T>,
) -> T {
    let _reload = hypha_server::rt::spawn(keys::reload_on_sighup(reload, role));
    run.await
}

/// Reloads the key file (if there is one) on SIGHUP.
fn key_reload(
    key_file: Option<std::path::PathBuf>,
    keys: &hypha_server::wire::Keys,
) -> keys::Reload {
    keys::Reload {
        keys: key_file.map(|path| (path, keys.clone())),
        token: None,
    }
}

pub fn master_config(args: &Args) -> Result<(MasterConfig, Option<std::path::PathBuf>), String> {
    let listen = cli::addr("listen", args.need("listen")?)?;
    let (keys, key_file) = keys::node_keys(args, &[listen], "master")?;
    let cfg = MasterConfig {
        data: args.need("data")?.into(),
        listen,
        engine: engine_options(args, "always")?,
        allow: cli::allow(args)?,
        sync: cli::sync(args.get_or("sync", "async"))?,
        sync_timeout_ms: args.number("sync-timeout-ms", 5_000)?,
        cluster: args.get_or("cluster", "hypha").to_string(),
        heartbeat_ms: args.number("heartbeat-ms", 1_000)?,
        heartbeat_timeout_ms: args.number("heartbeat-timeout-ms", 3_000)?,
        forget_after_ms: args.number(
            "forget-after",
            hypha_server::master::FORGET_AFTER_MS_DEFAULT,
        )?,
        keys,
        connections_max: connections_max(args)?,
        idle_timeout_ms: args.number("idle-timeout-ms", gate::NODE_IDLE_TIMEOUT_MS_DEFAULT)?,
        handshake_timeout_ms: args.number("handshake-timeout-ms", HANDSHAKE_TIMEOUT_MS)?,
        group: None,
    };
    Ok((cfg, key_file))
}

fn run_master(raw: &[String]) -> Result<(), String> {
    let args = commands::get("master").parse(raw)?;
    let (cfg, key_file) = master_config(&args)?;
    let keys = cfg.keys.clone();
    let listen = cfg.listen;
    hypha_server::rt::run(with_reload(
        key_reload(key_file, &keys),
        "master",
        async move {
            let master = Master::bind(cfg)
                .await
                .map_err(|e| cli::start_error("master", listen, &e))?;
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
        },
    ))
}

fn run_worker(raw: &[String]) -> Result<(), String> {
    let args = commands::get("worker").parse(raw)?;
    let (master, listen) = (
        cli::addr("master", args.need("master")?)?,
        cli::addr("listen", args.need("listen")?)?,
    );
    let (keys, key_file) = keys::node_keys(&args, &[master, listen], "worker")?;
    let cfg = WorkerConfig {
        data: args.need("data")?.into(),
        master,
        listen,
        engine: engine_options(&args, "200ms")?,
        allow: cli::allow(&args)?,
        cluster: args.get_or("cluster", "hypha").to_string(),
        accept_new_history: args.on("accept-new-history"),
        heartbeat_ms: args.number("heartbeat-ms", 1_000)?,
        heartbeat_timeout_ms: args.number("heartbeat-timeout-ms", 3_000)?,
        keys: keys.clone(),
        connections_max: connections_max(&args)?,
        idle_timeout_ms: args.number("idle-timeout-ms", gate::NODE_IDLE_TIMEOUT_MS_DEFAULT)?,
        handshake_timeout_ms: args.number("handshake-timeout-ms", HANDSHAKE_TIMEOUT_MS)?,
        group: None,
    };
    hypha_server::rt::run(with_reload(
        key_reload(key_file, &keys),
        "worker",
        async move {
            let worker = Worker::bind(cfg)
                .await
                .map_err(|e| cli::start_error("worker", listen, &e))?;
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
        },
    ))
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

/// The HTTP settings, and the token file to read again on SIGHUP.
fn edge_config(
    args: &Args,
    master: SocketAddr,
    workers: Vec<SocketAddr>,
    keys: hypha_server::wire::Keys,
) -> Result<EdgeConfig, String> {
    Ok(EdgeConfig {
        keys,
        master,
        members: Vec::new(),
        workers,
        cluster: args.get_or("cluster", "hypha").to_string(),
        value_bytes_max: hypha_server::limits::value_bytes_max(
            args.number("value-max", hypha_server::limits::VALUE_BYTES_MAX as u64)?,
        )?,
        refresh_ms: args.number("heartbeat-ms", 1_000)?,
        lag_records_max: args.number("lag-max", 100_000)?,
    })
}

/// Binds every address `text` resolves to (`localhost:8080` → 127.0.0.1 and ::1).
async fn bind_http(text: &str) -> Result<Vec<smol::net::TcpListener>, String> {
    let mut addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("--http/--listen {text:?}: {e}; write HOST:PORT"))?
        .collect();
    // "localhost" means both loopbacks, whatever /etc/hosts lists.
    if let Some(port) = text
        .strip_prefix("localhost:")
        .and_then(|p| p.parse::<u16>().ok())
    {
        addrs = vec![
            SocketAddr::from(([127, 0, 0, 1], port)),
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
        ];
    }
    let mut out = Vec::new();
    for a in &addrs {
        match smol::net::TcpListener::bind(*a).await {
            Ok(l) => out.push(http_cmd::with_backlog(l)),
            Err(e) if out.is_empty() && a == addrs.last().unwrap_or(a) => {
                return Err(format!("cannot listen on {a}: {e}"));
            }
            Err(e) => log::warn!("http: cannot listen on {a}: {e}"),
        }
    }
    if out.is_empty() {
        return Err(format!("cannot listen on any address of {text:?}"));
    }
    for l in &out {
        if let Ok(a) = l.local_addr() {
            log::info!("http: listening on http://{a}");
        }
    }
    Ok(out)
}

/// Serves HTTP on every listener until SIGINT/SIGTERM, then lets in-flight
/// requests finish.
async fn serve_until_signal(
    listeners: Vec<smol::net::TcpListener>,
    edge: Arc<Edge>,
    cfg: HttpConfig,
) -> Result<(), String> {
    let stop = Arc::new(event_listener::Event::new());
    let mut tasks = Vec::new();
    for l in listeners {
        let stop = stop.clone();
        let listener = stop.listen();
        // Connections go straight onto the process's executor.
        let connections = hypha_server::rt::executor();
        let serving = serve_on(l, edge.clone(), cfg.clone(), listener, connections);
        tasks.push(hypha_server::rt::spawn(serving));
    }
    let refresh = hypha_server::rt::spawn(edge.clone().refresh_loop());
    shutdown_signal().await?;
    stop.notify(usize::MAX);
    for t in tasks {
        t.await;
    }
    drop(refresh);
    Ok(())
}

fn run_http(raw: &[String]) -> Result<(), String> {
    let args = commands::get("http").parse(raw)?;
    let list = |flag: &str| -> Result<Vec<SocketAddr>, String> {
        match args.get(flag) {
            Some(list) => list
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|w| cli::addr(flag, w.trim()))
                .collect(),
            None => Ok(Vec::new()),
        }
    };
    let (members, workers) = (list("members")?, list("workers")?);
    if !members.is_empty() && (args.get("master").is_some() || !workers.is_empty()) {
        return Err(
            "--members names a failover group's nodes: give it alone, without \
                    --master or --workers"
                .into(),
        );
    }
    let master = match (members.first(), args.get("master")) {
        (Some(&first), _) => first,
        (None, Some(m)) => cli::addr("master", m)?,
        (None, None) => {
            return Err(
                "give --master ADDR (fixed roles) or --members ADDR,ADDR,... (a \
                        failover group)"
                    .into(),
            )
        }
    };
    let mut nodes = vec![master];
    nodes.extend(&workers);
    nodes.extend(&members);
    let (keys, key_file) = keys::node_keys(&args, &nodes, "http")?;
    let mut edge = edge_config(&args, master, workers, keys.clone())?;
    edge.members = members;
    let (cfg, mut reload) = http_config(&args)?;
    reload.keys = key_file.map(|path| (path, keys));
    let listen = args.need("listen")?.to_string();
    hypha_server::rt::run(with_reload(reload, "http", async move {
        let listeners = bind_http(&listen).await?;
        serve_until_signal(listeners, Edge::new(edge), cfg).await?;
        log::info!("http: stopped");
        Ok(())
    }))
}

fn run_all(raw: &[String]) -> Result<(), String> {
    let args = commands::get("").parse(raw)?;
    let data = std::path::PathBuf::from(args.get_or("data", "./hypha-data"));
    let keys = keys::all_in_one_keys(args.get(KEY_FILE_FLAG), &data)?;
    if args.on("failover") {
        return member_cmd::run_all_failover(&args, data, keys);
    }
    let n = args.number("workers", 2)?;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let master_cfg = MasterConfig {
        data: data.join("master"),
        listen: loopback,
        engine: engine_options(&args, "always")?,
        allow: None,
        sync: cli::sync(args.get_or("sync", "async"))?,
        sync_timeout_ms: args.number("sync-timeout-ms", 5_000)?,
        cluster: args.get_or("cluster", "hypha").to_string(),
        heartbeat_ms: args.number("heartbeat-ms", 1_000)?,
        heartbeat_timeout_ms: args.number("heartbeat-timeout-ms", 3_000)?,
        forget_after_ms: hypha_server::master::FORGET_AFTER_MS_DEFAULT,
        keys: keys.clone(),
        connections_max: gate::NODE_CONNECTIONS_MAX_DEFAULT,
        idle_timeout_ms: gate::NODE_IDLE_TIMEOUT_MS_DEFAULT,
        handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS,
        group: None,
    };
    let http = args.get_or("http", "localhost:8080").to_string();
    let (http_cfg, reload) = http_config(&args)?;
    hypha_server::rt::run(with_reload(reload, "hypha", async move {
        let master = Master::bind(master_cfg.clone())
            .await
            .map_err(|e| format!("cannot start the master: {e}"))?;
        let master_addr = master.local_addr;
        let mut dbs = vec![master.db().clone()];
        hypha_server::rt::spawn(master.run()).detach();
        let mut worker_addrs = Vec::new();
        let mut workers = Vec::new();
        for i in 1..=n {
            let cfg = WorkerConfig {
                data: data.join(format!("worker-{i}")),
                master: master_addr,
                listen: loopback,
                engine: compaction_options(&args, WorkerConfig::default_engine())?,
                allow: None,
                cluster: master_cfg.cluster.clone(),
                accept_new_history: false,
                heartbeat_ms: master_cfg.heartbeat_ms,
                heartbeat_timeout_ms: master_cfg.heartbeat_timeout_ms,
                keys: keys.clone(),
                connections_max: gate::NODE_CONNECTIONS_MAX_DEFAULT,
                idle_timeout_ms: gate::NODE_IDLE_TIMEOUT_MS_DEFAULT,
                handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS,
                group: None,
            };
            let w = Worker::bind(cfg)
                .await
                .map_err(|e| format!("cannot start worker {i}: {e}"))?;
            worker_addrs.push(w.local_addr);
            workers.push(w.clone());
            hypha_server::rt::spawn(w.run()).detach();
        }
        let edge = edge_config(&args, master_addr, worker_addrs, keys.clone())?;
        let listeners = bind_http(&http).await?;
        log::info!(
            "hypha: master {master_addr}, {n} workers, data in {}; try: curl -X PUT --data-binary hello http://{http}/kv/greeting",
            data.display()
        );
        serve_until_signal(listeners, Edge::new(edge), http_cfg).await?;
        dbs.extend(workers.iter().filter_map(|w| w.db()));
        for db in dbs {
            db.sync().map_err(|e| format!("final sync failed: {e}"))?;
        }
        log::info!("hypha: stopped; data synced");
        Ok(())
    }))
}
