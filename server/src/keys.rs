//! Secrets from files: the cluster key every node proves at each handshake
//! (`net/WIRE.md` §4) and the edge's bearer token. Both are read from files
//! (or paths in the environment), never required on the command line, and
//! read again on SIGHUP so they can be rotated without a restart.
//!
//! Safe by default: a master or worker that listens on a non-loopback
//! address, or an edge that talks to one, refuses to start without a key
//! unless `--insecure-no-auth` says so (and a warning is logged).

use crate::cli::Args;
use crate::http::Token;
use crate::wire::Keys;
use hypha_net::{ClusterKey, ClusterKeys, CLUSTER_KEY_BYTES};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Flag naming the cluster key file (`HYPHA_CLUSTER_KEY_FILE`).
pub const KEY_FILE_FLAG: &str = "cluster-key-file";
/// Switch that lets a node run without a key on a non-loopback address.
pub const INSECURE_FLAG: &str = "insecure-no-auth";
/// Name of the key the all-in-one `hypha` makes in its data directory.
pub const ALL_IN_ONE_KEY_FILE: &str = "cluster.key";

/// `hypha keygen PATH`: a new random key in a new file of mode 0600.
pub fn keygen(path: &Path) -> Result<(), String> {
    let bytes: [u8; CLUSTER_KEY_BYTES] = crate::wire::random_bytes()
        .map_err(|e| format!("cannot read random bytes from the OS: {e}"))?;
    write_key_file(path, &ClusterKey::from_bytes(bytes))
}

fn write_key_file(path: &Path, key: &ClusterKey) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!(
                "{} exists already; keygen never overwrites a key (remove it first if you \
                 really mean to replace it: every node needs the new one)",
                path.display()
            ),
            _ => format!("cannot create {}: {e}", path.display()),
        })?;
    let text = format!("# hypha cluster key: copy to every node, keep mode 0600\n{hex}\n");
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads and parses a key file.
pub fn read_key_file(path: &Path) -> Result<ClusterKeys, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --cluster-key-file {}: {e}", path.display()))?;
    ClusterKeys::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The keys of a node whose peer-facing sockets are `exposed` (addresses it
/// listens on or connects to): from `--cluster-key-file`, or the public
/// insecure key when every address is loopback or `--insecure-no-auth` is
/// given. Also returns the key file, to read again on SIGHUP.
pub fn node_keys(
    args: &Args,
    exposed: &[SocketAddr],
    role: &str,
) -> Result<(Keys, Option<PathBuf>), String> {
    if let Some(path) = args.get(KEY_FILE_FLAG) {
        let path = PathBuf::from(path);
        let keys = read_key_file(&path)?;
        log::info!(
            "{role}: cluster key from {} ({} key{}); every node connection is authenticated",
            path.display(),
            keys.all().len(),
            if keys.all().len() == 1 { "" } else { "s" }
        );
        return Ok((Arc::new(RwLock::new(keys)), Some(path)));
    }
    let public = exposed.iter().find(|a| !a.ip().is_loopback());
    match (public, args.on(INSECURE_FLAG)) {
        (Some(addr), false) => Err(format!(
            "{role} on {addr} needs a cluster key: anyone who can reach that address could \
             otherwise read and write everything. Make one with `hypha keygen PATH`, copy it \
             to every node, and pass --cluster-key-file PATH (or HYPHA_CLUSTER_KEY_FILE); \
             --insecure-no-auth runs without one"
        )),
        (Some(addr), true) => {
            log::warn!(
                "{role}: --insecure-no-auth: node connections on {addr} are NOT authenticated; \
                 anyone who reaches it can read, write and pose as a worker"
            );
            Ok((Arc::new(RwLock::new(ClusterKeys::insecure())), None))
        }
        (None, _) => {
            log::info!(
                "{role}: no cluster key; loopback only, so nodes use the public insecure key"
            );
            Ok((Arc::new(RwLock::new(ClusterKeys::insecure())), None))
        }
    }
}

/// The all-in-one `hypha`'s key: `--cluster-key-file` if given, else
/// `DIR/cluster.key`, made on first start. Every node of the all-in-one
/// listens on loopback, but a key costs nothing and keeps other local
/// users' processes out.
pub fn all_in_one_keys(key_file: Option<&str>, data: &Path) -> Result<Keys, String> {
    if let Some(path) = key_file {
        return Ok(Arc::new(RwLock::new(read_key_file(Path::new(path))?)));
    }
    std::fs::create_dir_all(data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let path = data.join(ALL_IN_ONE_KEY_FILE);
    if !path.exists() {
        keygen(&path)?;
        log::info!("hypha: made a cluster key in {}", path.display());
    }
    Ok(Arc::new(RwLock::new(read_key_file(&path)?)))
}

/// The edge's bearer token: `--token-file` (or `HYPHA_TOKEN_FILE`), else
/// `--token`. An empty token is refused: it would let everyone in. Also
/// returns the token file, to read again on SIGHUP.
pub fn token(args: &Args) -> Result<(Option<Token>, Option<PathBuf>), String> {
    let (token, file) = match (args.get("token-file"), args.get("token")) {
        (Some(_), Some(_)) => {
            return Err("give --token-file or --token, not both".to_string());
        }
        (Some(path), None) => {
            let path = PathBuf::from(path);
            (read_token_file(&path)?, Some(path))
        }
        (None, Some(token)) => (token.to_string(), None),
        (None, None) => return Ok((None, None)),
    };
    if token.is_empty() {
        return Err(
            "the token is empty, which would let every client in; put a long random string \
             in --token-file"
                .to_string(),
        );
    }
    Ok((Some(Token::new(token)), file))
}

/// The first line of a token file, without surrounding whitespace.
pub fn read_token_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --token-file {}: {e}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

/// What a node reads again on SIGHUP: its cluster key file and, on the
/// edge, its token file.
#[derive(Default)]
pub struct Reload {
    /// The key file and the keys it fills.
    pub keys: Option<(PathBuf, Keys)>,
    /// The token file and the token it fills.
    pub token: Option<(PathBuf, Token)>,
}

/// Reads the key and token files again on every SIGHUP: new connections use
/// the new keys, running sessions keep theirs; the next request is checked
/// against the new token. A file that no longer reads or parses is logged
/// and the old secret stays.
pub async fn reload_on_sighup(reload: Reload, role: &'static str) {
    use async_signal::{Signal, Signals};
    use smol::stream::StreamExt;
    if reload.keys.is_none() && reload.token.is_none() {
        return;
    }
    let Ok(mut signals) = Signals::new([Signal::Hup]) else {
        log::warn!("{role}: cannot watch SIGHUP; key and token changes need a restart");
        return;
    };
    while let Some(Ok(_)) = signals.next().await {
        if let Some((path, keys)) = &reload.keys {
            match read_key_file(path) {
                Ok(new) => {
                    let count = new.all().len();
                    *keys.write().unwrap_or_else(|p| p.into_inner()) = new;
                    crate::wire::keys_replaced().notify(usize::MAX);
                    log::info!(
                        "{role}: SIGHUP: cluster key file {} read again ({count} key{})",
                        path.display(),
                        if count == 1 { "" } else { "s" }
                    );
                }
                Err(e) => log::error!("{role}: SIGHUP: keeping the old cluster keys: {e}"),
            }
        }
        if let Some((path, token)) = &reload.token {
            match read_token_file(path) {
                Ok(new) if !new.is_empty() => {
                    token.set(new);
                    log::info!("{role}: SIGHUP: token file {} read again", path.display());
                }
                Ok(_) => log::error!(
                    "{role}: SIGHUP: keeping the old token: {} is empty",
                    path.display()
                ),
                Err(e) => log::error!("{role}: SIGHUP: keeping the old token: {e}"),
            }
        }
    }
}
