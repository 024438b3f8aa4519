//! `hypha member`: one data member of a failover group.

use super::http_cmd::http_config;
use super::{
    bind_http, compaction_options, connections_max, edge_config, key_reload, serve_until_signal,
    shutdown_signal, with_reload, Args,
};
use hypha_repl::election::{ElectionParams, ELECTION_DEFAULTS};
use hypha_server::cli;
use hypha_server::commands;
use hypha_server::edge::Edge;
use hypha_server::gate;
use hypha_server::keys;
use hypha_server::member::{Member, MemberConfig};
use hypha_server::wire::HANDSHAKE_TIMEOUT_MS;

/// Parses `hypha member`'s flags.
fn member_config(args: &Args) -> Result<(MemberConfig, Option<std::path::PathBuf>), String> {
    let listen = cli::addr("listen", args.need("listen")?)?;
    let list = |flag: &str| -> Result<Vec<std::net::SocketAddr>, String> {
        let text = args.get(flag).unwrap_or_default();
        let addrs = text.split(',').filter(|p| !p.is_empty());
        addrs.map(|p| cli::addr(flag, p.trim())).collect()
    };
    let (peers, join) = (list("peers")?, list("join")?);
    match (peers.is_empty(), join.is_empty()) {
        (true, true) => {
            return Err(
                "give --peers (every member of a new group, the same list on every \
                        member) or --join (members of a running group this one is added to)"
                    .into(),
            )
        }
        (false, false) => {
            return Err("--peers starts a new group, --join enters a running one: give one".into())
        }
        _ => {}
    }
    let n = peers.len();
    if n > hypha_net::MEMBERS_MAX {
        return Err(format!(
            "--peers lists {n} members: give 1 to {} (3 or 5 survive one or two failures)",
            hypha_net::MEMBERS_MAX
        ));
    }
    if n > 0 && !peers.contains(&listen) {
        return Err(format!(
            "--listen {listen} is not in --peers: list every member's address, this one's \
             included, the same list in the same order on every member"
        ));
    }
    if peers.iter().filter(|p| **p == listen).count() > 1 {
        return Err(format!("--peers lists {listen} twice"));
    }
    let election = ElectionParams {
        heartbeat_ms: args.number("heartbeat-ms", ELECTION_DEFAULTS.heartbeat_ms)?,
        election_min_ms: args.number("election-timeout-ms", ELECTION_DEFAULTS.election_min_ms)?,
    };
    if election.heartbeat_ms == 0 || election.election_min_ms < 2 * election.heartbeat_ms {
        return Err(format!(
            "--election-timeout-ms {} must be at least twice --heartbeat-ms {} (and both above \
             0): a leader must get heartbeats through before members give up on it",
            election.election_min_ms, election.heartbeat_ms
        ));
    }
    let exposed: Vec<_> = [listen].into_iter().chain(peers.iter().copied()).collect();
    let (keys, key_file) = keys::node_keys(args, &exposed, "member")?;
    let value_max = hypha_server::limits::value_bytes_max(
        args.number("value-max", hypha_server::limits::VALUE_BYTES_MAX as u64)?,
    )?;
    let engine = hypha_engine::Options {
        // Acknowledged writes and records are fsynced explicitly (a
        // majority counts only what survives a crash); the background sync
        // covers the rest.
        fsync: hypha_engine::Fsync::EveryMs(200),
        value_bytes_max: value_max,
        ..compaction_options(args, hypha_engine::Options::default())?
    };
    let cfg = MemberConfig {
        data: args.need("data")?.into(),
        listen,
        first: MemberConfig::first_list(&peers),
        join,
        engine,
        allow: cli::allow(args)?,
        cluster: args.get_or("cluster", "hypha").to_string(),
        election,
        sync_timeout_ms: args.number("sync-timeout-ms", 5_000)?,
        keys,
        connections_max: connections_max(args)?,
        idle_timeout_ms: args.number("idle-timeout-ms", gate::NODE_IDLE_TIMEOUT_MS_DEFAULT)?,
        handshake_timeout_ms: args.number("handshake-timeout-ms", HANDSHAKE_TIMEOUT_MS)?,
    };
    Ok((cfg, key_file))
}

/// `hypha witness`: votes and counts toward a majority, keeps no data.
pub fn run_witness(raw: &[String]) -> Result<(), String> {
    let args = commands::get("witness").parse(raw)?;
    let (cfg, key_file) = member_config(&args)?;
    let (keys, listen) = (cfg.keys.clone(), cfg.listen);
    hypha_server::rt::run(with_reload(
        key_reload(key_file, &keys),
        "witness",
        async move {
            let witness = Member::bind_witness(cfg)
                .await
                .map_err(|e| cli::start_error("witness", listen, &e))?;
            smol::future::or(witness.run(), shutdown_signal()).await?;
            log::info!("witness: stopped");
            Ok(())
        },
    ))
}

pub fn run_member(raw: &[String]) -> Result<(), String> {
    let args = commands::get("member").parse(raw)?;
    let (cfg, key_file) = member_config(&args)?;
    let (keys, listen) = (cfg.keys.clone(), cfg.listen);
    hypha_server::rt::run(with_reload(
        key_reload(key_file, &keys),
        "member",
        async move {
            let member = Member::bind(cfg)
                .await
                .map_err(|e| cli::start_error("member", listen, &e))?;
            let m = member.clone();
            smol::future::or(member.run(), shutdown_signal()).await?;
            if let Some(db) = m.db() {
                db.sync().map_err(|e| format!("final sync failed: {e}"))?;
            }
            log::info!("member: stopped; data synced");
            Ok(())
        },
    ))
}

/// Members the all-in-one `hypha --failover` runs.
const ALL_IN_ONE_MEMBERS: usize = 3;

/// `hypha --failover`: three members (`DIR/member-N`) on loopback ports and
/// the HTTP edge in front of them, in one process. For trying failover on
/// one machine; it survives no machine failure (run `hypha member` on
/// three devices for that).
pub fn run_all_failover(
    args: &Args,
    data: std::path::PathBuf,
    keys: hypha_server::wire::Keys,
) -> Result<(), String> {
    for flag in ["workers", "sync"] {
        if args.get(flag).is_some() {
            return Err(format!(
                "--{flag} is for fixed roles; with --failover every write waits for a \
                 majority of the {ALL_IN_ONE_MEMBERS} members"
            ));
        }
    }
    let engine = hypha_engine::Options {
        fsync: hypha_engine::Fsync::EveryMs(200),
        ..compaction_options(args, hypha_engine::Options::default())?
    };
    let template = MemberConfig {
        data: data.clone(),
        listen: ([127, 0, 0, 1], 0).into(),
        first: MemberConfig::first_list(&[]),
        join: Vec::new(),
        engine,
        allow: None,
        cluster: args.get_or("cluster", "hypha").to_string(),
        election: ELECTION_DEFAULTS,
        sync_timeout_ms: args.number("sync-timeout-ms", 5_000)?,
        keys: keys.clone(),
        connections_max: gate::NODE_CONNECTIONS_MAX_DEFAULT,
        idle_timeout_ms: gate::NODE_IDLE_TIMEOUT_MS_DEFAULT,
        handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS,
    };
    let http = args.get_or("http", "localhost:8080").to_string();
    let (http_cfg, reload) = http_config(args)?;
    // The members' addresses are known once their ports are bound.
    let mut edge = edge_config(args, ([127, 0, 0, 1], 0).into(), Vec::new(), keys.clone())?;
    hypha_server::rt::run(with_reload(reload, "hypha", async move {
        let mut listeners = Vec::new();
        for _ in 0..ALL_IN_ONE_MEMBERS {
            let l = smol::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|e| format!("cannot bind a member's port on loopback: {e}"))?;
            listeners.push(l);
        }
        let peers = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let mut members = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let cfg = MemberConfig {
                data: data.join(format!("member-{i}")),
                listen: peers[i],
                first: MemberConfig::first_list(&peers),
                ..template.clone()
            };
            let m = Member::bind_on(cfg, listener)
                .await
                .map_err(|e| format!("cannot start member {i}: {e}"))?;
            hypha_server::rt::spawn(m.clone().run()).detach();
            members.push(m);
        }
        edge.master = peers[0];
        edge.members = peers.clone();
        let listeners = bind_http(&http).await?;
        log::info!(
            "hypha: a failover group of {ALL_IN_ONE_MEMBERS} members on {peers:?}, data in {}; \
             try: curl -X PUT --data-binary hello http://{http}/kv/greeting",
            data.display()
        );
        serve_until_signal(listeners, Edge::new(edge), http_cfg).await?;
        for db in members.iter().filter_map(|m| m.db()) {
            db.sync().map_err(|e| format!("final sync failed: {e}"))?;
        }
        log::info!("hypha: stopped; data synced");
        Ok(())
    }))
}
