//! Command-line and environment parsing for the `hypha` binary: every flag
//! `--name VALUE` can also come from the variable `HYPHA_NAME` (dashes as
//! underscores); the flag wins.

use hypha_engine::Fsync;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};

/// Parsed flags of one subcommand.
pub struct Args {
    values: HashMap<String, String>,
    switches: Vec<String>,
}

impl Args {
    /// Parses `args` against the flags a subcommand takes (`value` flags take
    /// an argument, `switches` do not).
    pub fn parse(args: &[String], value: &[&str], switches: &[&str]) -> Result<Args, String> {
        let mut values = HashMap::new();
        let mut on = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            let Some(name) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument {a:?}; flags start with --"));
            };
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (name, None),
            };
            if switches.contains(&name) {
                on.push(name.to_string());
            } else if value.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        args.get(i)
                            .cloned()
                            .ok_or_else(|| format!("--{name} needs a value"))?
                    }
                };
                values.insert(name.to_string(), v);
            } else {
                return Err(format!("unknown flag --{name}; see --help"));
            }
            i += 1;
        }
        for name in value {
            if !values.contains_key(*name) {
                if let Ok(v) = std::env::var(env_name(name)) {
                    values.insert(name.to_string(), v);
                }
            }
        }
        for name in switches {
            if !on.iter().any(|s| s == name)
                && matches!(
                    std::env::var(env_name(name)).as_deref(),
                    Ok("1" | "true" | "yes")
                )
            {
                on.push(name.to_string());
            }
        }
        Ok(Args {
            values,
            switches: on,
        })
    }

    /// A flag's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A flag's value or a default.
    pub fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }

    /// A required flag.
    pub fn need(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("--{name} is required (or set {})", env_name(name)))
    }

    /// Whether a switch is on.
    pub fn on(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// A number flag.
    pub fn number(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name} {v:?} is not a whole number")),
        }
    }
}

/// `--listen-addr` → `HYPHA_LISTEN_ADDR`.
pub fn env_name(flag: &str) -> String {
    format!("HYPHA_{}", flag.replace('-', "_").to_uppercase())
}

/// Resolves `host:port` (`[::1]:7000`, `localhost:7000`, `400::1:7000` is
/// ambiguous: write `[400::1]:7000`).
pub fn addr(flag: &str, text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("--{flag} {text:?}: {e}; write HOST:PORT, IPv6 as [ADDR]:PORT"))?
        .next()
        .ok_or_else(|| format!("--{flag} {text:?} resolves to no address"))
}

/// Why a node could not start, naming the address it was to listen on.
pub fn start_error(role: &str, listen: SocketAddr, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "cannot start the {role}: {listen} is already in use (TCP or UDP; another hypha, \
             or another program, listens there): stop it or give another --listen"
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "cannot start the {role}: {listen} is not an address of this machine (--listen)"
        ),
        _ => format!("cannot start the {role} (--listen {listen}): {e}"),
    }
}

/// `always`, `never`, or `100ms`.
pub fn fsync(text: &str) -> Result<Fsync, String> {
    match text {
        "always" => Ok(Fsync::Always),
        "never" => Ok(Fsync::Never),
        t => t
            .strip_suffix("ms")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|&n| n > 0)
            .map(Fsync::EveryMs)
            .ok_or_else(|| format!("--fsync {t:?}: use always, never, or a period like 100ms")),
    }
}

/// `async` or a worker count.
pub fn sync(text: &str) -> Result<crate::master::SyncMode, String> {
    match text {
        "async" => Ok(crate::master::SyncMode::Async),
        n => n
            .parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .map(crate::master::SyncMode::Workers)
            .ok_or_else(|| {
                format!("--sync {n:?}: use async, or the number of workers that must apply a write")
            }),
    }
}

/// `--allow` list.
pub fn allow(args: &Args) -> Result<Option<hypha_net::Allowlist>, String> {
    args.get("allow")
        .map(|t| hypha_net::Allowlist::parse(t).map_err(|e| format!("--allow {t:?}: {e}")))
        .transpose()
}
