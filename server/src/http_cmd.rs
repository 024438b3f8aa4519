//! The HTTP port's settings from the command line (`hypha http` and the
//! all-in-one forms), and an open-file limit that lets it hold them.

use hypha_server::cli::Args;
use hypha_server::http::HttpConfig;
use hypha_server::keys;

/// File descriptors a node needs besides its HTTP connections: data files,
/// tables, listeners, connections between nodes (at most
/// `NODE_CONNECTIONS_MAX_DEFAULT` per node port by default).
pub const FDS_BESIDES_HTTP: u64 = 512;

/// Connections the kernel holds for the HTTP port before they are accepted
/// (it caps this at `net.core.somaxconn`). The 128 a listener gets by
/// default drops the SYNs of a burst — 10,000 watchers reconnecting after an
/// edge restart — and each dropped client waits 1, 3, 7 s to retry.
pub const HTTP_LISTEN_BACKLOG: i32 = 4096;

/// `l` with the [`HTTP_LISTEN_BACKLOG`] (listening again changes it).
pub fn with_backlog(l: smol::net::TcpListener) -> smol::net::TcpListener {
    if let Err(e) = rustix::net::listen(&l, HTTP_LISTEN_BACKLOG) {
        log::warn!("http: cannot set the listen backlog to {HTTP_LISTEN_BACKLOG}: {e}");
    }
    l
}

/// The HTTP settings given by `args`, and what SIGHUP reloads.
pub fn http_config(args: &Args) -> Result<(HttpConfig, keys::Reload), String> {
    let (token, token_file) = keys::token(args)?;
    let reload = keys::Reload {
        keys: None,
        token: token_file.zip(token.clone()),
    };
    let defaults = HttpConfig::default();
    let budget_mb = args.number("body-budget-mb", (defaults.body_budget_bytes >> 20) as u64)?;
    let value_max = args.number("value-max", hypha_server::limits::VALUE_BYTES_MAX as u64)?;
    if budget_mb << 20 < value_max {
        return Err(format!(
            "--body-budget-mb {budget_mb} is smaller than one value (--value-max {value_max}): \
             the largest PUT could never be served"
        ));
    }
    let connections_max = args.number("http-connections", defaults.connections_max as u64)?;
    if connections_max == 0 {
        return Err("--http-connections 0: give at least 1".to_string());
    }
    let cfg = HttpConfig {
        token,
        token_for_reads: args.on("token-reads"),
        body_budget_bytes: (budget_mb << 20) as usize,
        connections_max: connections_max as usize,
        connections_per_addr_max: args.number(
            "connections-per-addr",
            defaults.connections_per_addr_max as u64,
        )? as usize,
        body_total_timeout_ms: args
            .number("body-total-timeout-ms", defaults.body_total_timeout_ms)?,
        json_values_max: args.number("json-values-max", defaults.json_values_max as u64)? as usize,
        ..defaults
    };
    open_files_for(cfg.connections_max as u64 + FDS_BESIDES_HTTP);
    Ok((cfg, reload))
}

/// Raises the soft open-file limit towards `want` (up to the hard limit),
/// so that the connection caps, not the limit, decide how many clients are
/// served; says so in the log when the hard limit is lower.
fn open_files_for(want: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= want {
        return;
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    limit.current = Some(want.min(hard));
    match setrlimit(Resource::Nofile, limit) {
        Ok(()) if want <= hard => {
            log::info!("open-file limit raised from {soft} to {want} for --http-connections")
        }
        Ok(()) | Err(_) => log::warn!(
            "the open-file limit is {} (hard limit {hard}), below the {want} that \
             --http-connections needs: past it new connections fail. Raise it (ulimit -n, \
             systemd LimitNOFILE=) or lower --http-connections",
            getrlimit(Resource::Nofile).current.unwrap_or(soft)
        ),
    }
}
