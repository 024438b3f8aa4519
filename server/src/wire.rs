//! Framed connections between nodes: send and receive [`Message`]s over a
//! TCP stream, the authenticated handshake both sides run (`net/WIRE.md`
//! §4), and engine ↔ wire records.

mod records;
pub use records::{from_wire, terms_from_wire, terms_to_wire, to_wire, wire_bytes};

use hypha_net::{
    check_hello, connector_finish, encode_frame, seal_frame, Acceptor, BeatOpener, BeatSealer,
    ClusterKeys, DecodeError, FrameDecoder, Hello, Message, Opener, Purpose, Refuse, RefuseReason,
    Role, Sealer, ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX, CLUSTER_NAME_BYTES_MAX,
    CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX, PROTOCOL_VERSION,
};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Bytes read from a socket at a time, once the peer authenticated.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// Bytes read from a socket at a time during the handshake: with the
/// decoder's handshake limit, all a stranger can make a node buffer.
const HANDSHAKE_CHUNK_BYTES: usize = 256;
const _: () = assert!(ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX + 8 <= HANDSHAKE_CHUNK_BYTES);
/// How long a peer has to finish the handshake (from the TCP accept to its
/// `Prove`, or from connecting to the `Welcome`); the default of
/// `--handshake-timeout-ms` on the accepting side.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

/// The cluster keys of a node, shared by its tasks and replaced on SIGHUP:
/// new sessions use the keys of the moment, running ones keep theirs.
pub type Keys = std::sync::Arc<std::sync::RwLock<ClusterKeys>>;

/// The keys of the moment.
pub fn current_keys(keys: &Keys) -> ClusterKeys {
    keys.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Notified whenever a node's keys are replaced (SIGHUP): sessions whose key
/// is gone end (see `gate::serve_port`).
pub fn keys_replaced() -> &'static event_listener::Event {
    static EVENT: std::sync::OnceLock<event_listener::Event> = std::sync::OnceLock::new();
    EVENT.get_or_init(event_listener::Event::new)
}

/// Completes once `key_id` is no longer among `keys` (checked at every
/// [`keys_replaced`] notification).
pub async fn key_removed(keys: &Keys, key_id: u64) {
    loop {
        let listener = keys_replaced().listen();
        if !current_keys(keys).all().iter().any(|k| k.id() == key_id) {
            return;
        }
        listener.await;
    }
}

/// A session's heartbeat keys: seal what this side sends, check what the
/// other side sends (`net/WIRE.md` §8).
#[derive(Debug)]
pub struct Beats {
    /// Seals this side's heartbeats.
    pub out: BeatSealer,
    /// Checks the other side's heartbeats.
    pub inn: BeatOpener,
}

/// The receiving half of a framed connection.
pub struct Reader {
    stream: TcpStream,
    decoder: FrameDecoder,
    chunk: Vec<u8>,
}

impl Reader {
    /// Wraps a stream (a clone of the writer's) for the handshake: frames
    /// up to `payload_max` bytes, read in small pieces.
    fn handshake(stream: TcpStream, payload_max: usize) -> Reader {
        Reader {
            stream,
            decoder: FrameDecoder::with_payload_max(payload_max),
            chunk: vec![0; HANDSHAKE_CHUNK_BYTES],
        }
    }

    /// From now on frames must carry MACs that `opener` accepts; they may
    /// be as large as the protocol allows.
    fn authenticate(&mut self, opener: Opener) {
        self.decoder.authenticate(opener);
        self.chunk = vec![0; READ_CHUNK_BYTES];
    }

    /// The next message, keeping the decoder's error as it is.
    async fn recv_decoded(&mut self) -> io::Result<Result<Option<Message>, DecodeError>> {
        loop {
            match self.decoder.next_message() {
                Ok(None) => {}
                other => return Ok(other),
            }
            if !self.fill().await? {
                return Ok(Ok(None));
            }
        }
    }

    /// The next message; `None` when the peer closed cleanly. A malformed
    /// frame is an `InvalidData` error: the caller logs it and closes.
    pub async fn recv(&mut self) -> io::Result<Option<Message>> {
        loop {
            if let Some(m) = self.try_recv()? {
                return Ok(Some(m));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// The next message among the bytes already received, without reading.
    pub fn try_recv(&mut self) -> io::Result<Option<Message>> {
        self.decoder
            .next_message()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }

    /// One read from the socket into the decoder; `false` when the peer
    /// closed cleanly (an error if it closed mid-frame). Cancel-safe: bytes
    /// are fed in the same poll that reads them.
    pub async fn fill(&mut self) -> io::Result<bool> {
        let n = self.stream.read(&mut self.chunk).await?;
        if n == 0 {
            return match self.decoder.buffered_bytes() {
                0 => Ok(false),
                b => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("peer closed mid-frame ({b} bytes)"),
                )),
            };
        }
        self.decoder.feed(&self.chunk[..n]);
        Ok(true)
    }
}

/// The sending half of a framed connection.
pub struct Writer {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Seals every frame once the connection is authenticated.
    sealer: Option<Sealer>,
}

impl Writer {
    /// Wraps a stream; frames are plain until [`Writer::authenticate`].
    fn new(stream: TcpStream) -> Writer {
        Writer {
            stream,
            buf: Vec::new(),
            sealer: None,
        }
    }

    fn authenticate(&mut self, sealer: Sealer) {
        self.sealer = Some(sealer);
    }

    /// Takes the sealer out, for a caller that encodes frames itself (the
    /// edge's multiplexer) and writes them with [`Writer::write_some`] in the
    /// order it sealed them.
    pub fn take_sealer(&mut self) -> Option<Sealer> {
        self.sealer.take()
    }

    /// Appends `m` as one frame, sealed when the connection is
    /// authenticated, to `out`. Frames must go out in the order they were
    /// encoded: each one's MAC covers its place in the stream.
    pub fn encode(&mut self, m: &Message, out: &mut Vec<u8>) -> io::Result<()> {
        encode_sealed(m, self.sealer.as_mut(), out)
    }

    /// Sends one message.
    pub async fn send(&mut self, m: &Message) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let sent = match self.encode(m, &mut buf) {
            Ok(()) => self.stream.write_all(&buf).await,
            Err(e) => Err(e),
        };
        self.buf = buf;
        sent
    }

    /// One write of a prefix of `bytes`; cancel-safe (the bytes are out when
    /// it returns Ready, and none are when it is dropped before).
    pub async fn write_some(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.stream.write(bytes).await
    }

    /// Sends frames already encoded with [`encode`], in one write when the
    /// socket takes them.
    pub async fn send_encoded(&mut self, frames: &[u8]) -> io::Result<()> {
        self.stream.write_all(frames).await
    }
}

/// Appends `m` as one frame to `out`, sealed by `sealer` if there is one.
pub fn encode_sealed(
    m: &Message,
    sealer: Option<&mut Sealer>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    match sealer {
        Some(sealer) => seal_frame(m, sealer, out),
        None => encode_frame(m, out),
    }
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// Splits a stream into framed halves for the handshake.
fn split(stream: TcpStream, payload_max: usize) -> (Reader, Writer) {
    let _ = stream.set_nodelay(true);
    (
        Reader::handshake(stream.clone(), payload_max),
        Writer::new(stream),
    )
}

/// Runs `f` with a deadline.
pub async fn timeout<T>(
    ms: u64,
    f: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    smol::future::or(f, async {
        smol::Timer::after(Duration::from_millis(ms)).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {ms} ms"),
        ))
    })
    .await
}

/// The cluster name as the handshake carries it.
pub fn cluster_name(name: &str) -> io::Result<heapless::String<CLUSTER_NAME_BYTES_MAX>> {
    heapless::String::try_from(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cluster name longer than {CLUSTER_NAME_BYTES_MAX} bytes"),
        )
    })
}

/// Connects to `addr` and runs the handshake: `Hello` with a fresh nonce,
/// the acceptor's `Challenge` checked against `keys`, our `Prove`; then the
/// acceptor's answer, `Welcome` or `Refuse`, on the authenticated stream.
/// Returns the authenticated halves, the answer and the session's heartbeat
/// keys. A plain `Refuse` instead of a `Challenge` (a node of another
/// protocol version or cluster) is an error: nothing that did not prove the
/// key may steer the caller, so only an authenticated `Refuse` is returned
/// as an answer.
pub async fn connect(
    addr: SocketAddr,
    hello: Hello,
    keys: &ClusterKeys,
) -> io::Result<(Reader, Writer, Message, Beats)> {
    let stream = timeout(HANDSHAKE_TIMEOUT_MS, TcpStream::connect(addr)).await?;
    handshake_on(stream, addr, hello, keys).await
}

/// [`connect`] on a connection that fails (`ETIMEDOUT`) once data it sent
/// stays unacknowledged for `unacked_ms` (`TCP_USER_TIMEOUT`), instead of
/// retrying with a backoff that grows to minutes: after a link was cut for
/// a few seconds, the caller connects again at once rather than waiting
/// out the backoff. For election traffic, which must get through within an
/// election timeout or not at all.
pub async fn connect_failing_fast(
    addr: SocketAddr,
    hello: Hello,
    keys: &ClusterKeys,
    unacked_ms: u32,
) -> io::Result<(Reader, Writer, Message, Beats)> {
    let stream = timeout(HANDSHAKE_TIMEOUT_MS, TcpStream::connect(addr)).await?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    rustix::net::sockopt::set_tcp_user_timeout(&stream, unacked_ms)?;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = unacked_ms;
    handshake_on(stream, addr, hello, keys).await
}

/// The connector's side of the handshake on a connected `stream`.
async fn handshake_on(
    stream: TcpStream,
    addr: SocketAddr,
    mut hello: Hello,
    keys: &ClusterKeys,
) -> io::Result<(Reader, Writer, Message, Beats)> {
    let (mut r, mut w) = split(stream, CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX);
    hello.nonce = random_bytes()?;
    w.send(&Message::Hello(hello.clone())).await?;
    let closed = || {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{addr} closed during the handshake"),
        )
    };
    let first = timeout(HANDSHAKE_TIMEOUT_MS, r.recv())
        .await?
        .ok_or_else(closed)?;
    let challenge = match first {
        Message::Challenge(challenge) => challenge,
        Message::Refuse(refuse) => return Err(refusal(addr, &refuse)),
        other => {
            return Err(io::Error::other(format!(
                "{addr} answered the Hello with {} instead of a Challenge",
                other.name()
            )))
        }
    };
    let (prove, session) = connector_finish(keys, &hello, &challenge)
        .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, format!("{addr}: {e}")))?;
    w.send(&Message::Prove(prove)).await?;
    r.authenticate(session.opener);
    w.authenticate(session.sealer);
    let answer = timeout(HANDSHAKE_TIMEOUT_MS, r.recv())
        .await?
        .ok_or_else(closed)?;
    let beats = Beats {
        out: session.beats_out,
        inn: session.beats_in,
    };
    Ok((r, w, answer, beats))
}

/// An accepted connection after the handshake: authenticated halves, the
/// peer's `Hello` and the session's heartbeat keys. The caller answers with
/// `Welcome` or `Refuse` (sent authenticated).
pub struct Accepted {
    /// Receives the peer's frames.
    pub r: Reader,
    /// Sends to the peer.
    pub w: Writer,
    /// What the peer said it is and wants.
    pub hello: Hello,
    /// The session's heartbeat keys.
    pub beats: Beats,
    /// [`hypha_net::ClusterKey::id`] of the key the peer proved.
    pub key_id: u64,
}

/// Runs the acceptor's side of the handshake on a new connection, within
/// `handshake_ms` ([`HANDSHAKE_TIMEOUT_MS`] by default): reads the `Hello` (at most
/// `ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX` bytes), checks magic, version and
/// cluster, challenges the peer and checks its `Prove` against `keys`.
/// `Ok(None)` when the peer was refused (logged with the reason, and told
/// when it is a hypha node); an error when it broke the protocol.
pub async fn accept(
    stream: TcpStream,
    peer: SocketAddr,
    keys: &ClusterKeys,
    cluster: &str,
    who: &str,
    handshake_ms: u64,
) -> io::Result<Option<Accepted>> {
    let (mut r, mut w) = split(stream, ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX);
    timeout(handshake_ms, async {
        let hello = match r.recv_decoded().await? {
            Ok(Some(Message::Hello(hello))) => hello,
            Ok(None) => return Ok(None),
            Err(DecodeError::UnsupportedVersion { ours, theirs }) => {
                let msg = version_message(ours, theirs);
                stranger(|| format!("{who}: refused {peer}: {msg}"));
                refuse(&mut w, RefuseReason::VersionMismatch { ours }, &msg).await;
                return Ok(None);
            }
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            Ok(Some(other)) => {
                let msg = format!("the first frame must be a Hello, not {}", other.name());
                refuse(&mut w, RefuseReason::Unexpected, &msg).await;
                return Err(io::Error::other(msg));
            }
        };
        if let Err(reason) = check_hello(&hello, cluster) {
            let msg = match reason {
                RefuseReason::VersionMismatch { ours } => version_message(ours, hello.version),
                _ => format!("refused: {reason:?}; this {who} serves cluster {cluster:?}"),
            };
            stranger(|| format!("{who}: refused {peer}: {msg}"));
            refuse(&mut w, reason, &msg).await;
            return Ok(None);
        }
        let (pending, challenge) = Acceptor::new(keys, &hello, random_bytes()?);
        w.send(&Message::Challenge(challenge)).await?;
        let prove = match r.recv().await? {
            Some(Message::Prove(prove)) => prove,
            Some(other) => {
                return Err(io::Error::other(format!(
                    "expected Prove, got {}",
                    other.name()
                )))
            }
            None => {
                stranger(|| {
                    format!(
                    "{who}: refused {peer} ({:?} node {:016x}): it closed the connection instead \
                     of proving the cluster key: it holds another cluster key, or none",
                    hello.role,
                    hello.node_id
                )
                });
                return Ok(None);
            }
        };
        let session = match pending.finish(&prove) {
            Ok(session) => session,
            Err(e) => {
                stranger(|| {
                    format!(
                        "{who}: refused {peer} ({:?} node {:016x}): {e}",
                        hello.role, hello.node_id
                    )
                });
                let msg = "authentication failed: this node holds another cluster key";
                refuse(&mut w, RefuseReason::NotAuthenticated, msg).await;
                return Ok(None);
            }
        };
        r.authenticate(session.opener);
        w.authenticate(session.sealer);
        let beats = Beats {
            out: session.beats_out,
            inn: session.beats_in,
        };
        let key_id = session.key_id;
        Ok(Some(Accepted {
            r,
            w,
            hello,
            beats,
            key_id,
        }))
    })
    .await
    .map_err(|e| match e.kind() {
        io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "did not finish the handshake within {handshake_ms} ms (--handshake-timeout-ms)"
            ),
        ),
        _ => e,
    })
}

/// Lines about peers that have not authenticated, logged per window.
pub const STRANGER_LOG_LINES_MAX: u32 = 20;
/// The window of [`STRANGER_LOG_LINES_MAX`].
pub const STRANGER_LOG_WINDOW_MS: u64 = 10_000;

/// Logs (as a warning) a line about a peer that has not authenticated: at
/// most [`STRANGER_LOG_LINES_MAX`] per [`STRANGER_LOG_WINDOW_MS`], so a flood
/// of strangers cannot flood the log; the next line logged says how many
/// were left out.
pub fn stranger(line: impl FnOnce() -> String) {
    use std::sync::Mutex;
    use std::time::Instant;
    struct Window {
        start: Option<Instant>,
        lines: u32,
        suppressed: u64,
    }
    static WINDOW: Mutex<Window> = Mutex::new(Window {
        start: None,
        lines: 0,
        suppressed: 0,
    });
    let mut w = WINDOW.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    let expired = w.start.is_none_or(|start| {
        now.duration_since(start) > Duration::from_millis(STRANGER_LOG_WINDOW_MS)
    });
    if expired {
        (w.start, w.lines) = (Some(now), 0);
    }
    if w.lines >= STRANGER_LOG_LINES_MAX {
        w.suppressed += 1;
        return;
    }
    w.lines += 1;
    let suppressed = std::mem::take(&mut w.suppressed);
    drop(w);
    match suppressed {
        0 => log::warn!("{}", line()),
        n => log::warn!(
            "{} ({n} similar lines about unauthenticated peers left out before it)",
            line()
        ),
    }
}

/// What a node says about a peer of another protocol version: both versions.
pub fn version_message(ours: u16, theirs: u16) -> String {
    format!(
        "protocol version mismatch: this node speaks hypha protocol {ours}, the peer {theirs}; \
         run the same hypha release on every node"
    )
}

/// Explains a `Refuse` that came instead of a `Welcome`.
pub fn refusal(addr: SocketAddr, refuse: &Refuse) -> io::Error {
    let kind = match refuse.reason {
        RefuseReason::NotAuthenticated => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::ConnectionRefused,
    };
    let version = match refuse.reason {
        RefuseReason::VersionMismatch { ours } if !refuse.message.contains("protocol") => {
            format!(" ({})", version_message(PROTOCOL_VERSION, ours))
        }
        _ => String::new(),
    };
    io::Error::new(
        kind,
        format!(
            "{addr} refused: {:?}: {}{version}",
            refuse.reason, refuse.message
        ),
    )
}

/// `N` random bytes from the OS; an error if it has none to give.
pub fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    use std::io::Read;
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// A Hello for this node.
pub fn hello(cluster: &str, role: Role, node_id: u64, purpose: Purpose) -> io::Result<Hello> {
    Ok(Hello::new(cluster_name(cluster)?, role, node_id, purpose))
}

/// Sends a refusal (best effort) with a message that says what to fix.
pub async fn refuse(w: &mut Writer, reason: RefuseReason, message: &str) {
    let _ = w.send(&Message::Refuse(Refuse::new(reason, message))).await;
}

/// Reads a node id from `path`, or makes and stores a random one.
pub fn node_id(path: &std::path::Path) -> io::Result<u64> {
    if let Ok(s) = std::fs::read_to_string(path) {
        if let Ok(id) = u64::from_str_radix(s.trim(), 16) {
            return Ok(id);
        }
    }
    let id = random_u64();
    std::fs::write(path, format!("{id:016x}\n"))?;
    Ok(id)
}

/// A random u64 (the engine's: `/dev/urandom`, else time and pid).
pub use hypha_engine::random_u64;

/// Whether `peer` may connect, logging a refusal.
pub fn allowed(allow: &Option<hypha_net::Allowlist>, peer: SocketAddr, what: &str) -> bool {
    match allow {
        Some(list) if !list.contains(peer.ip()) => {
            stranger(|| format!("{what}: refused connection from {peer}: not in --allow"));
            false
        }
        _ => true,
    }
}
