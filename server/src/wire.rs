//! Framed connections between nodes: send and receive [`Message`]s over a
//! TCP stream, the handshake both sides run, and engine ↔ wire records.

use hypha_engine::{Record, RecordKind};
use hypha_net::{
    encode_frame, FrameDecoder, Hello, Message, Purpose, Refuse, RefuseReason, Role, WireRecord,
    CLUSTER_NAME_BYTES_MAX,
};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Bytes read from a socket at a time.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// How long a peer has to finish the handshake.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

/// The receiving half of a framed connection.
pub struct Reader {
    stream: TcpStream,
    decoder: FrameDecoder,
    chunk: Vec<u8>,
}

impl Reader {
    /// Wraps a stream (a clone of the writer's).
    pub fn new(stream: TcpStream) -> Reader {
        Reader {
            stream,
            decoder: FrameDecoder::new(),
            chunk: vec![0; READ_CHUNK_BYTES],
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
}

impl Writer {
    /// Wraps a stream.
    pub fn new(stream: TcpStream) -> Writer {
        Writer {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, m: &Message) -> io::Result<()> {
        self.buf.clear();
        encode(m, &mut self.buf)?;
        self.stream.write_all(&self.buf).await
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

/// Appends `m` as one frame to `out`.
pub fn encode(m: &Message, out: &mut Vec<u8>) -> io::Result<()> {
    encode_frame(m, out).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// Splits a stream into framed halves.
pub fn split(stream: TcpStream) -> (Reader, Writer) {
    let _ = stream.set_nodelay(true);
    (Reader::new(stream.clone()), Writer::new(stream))
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

/// Connects to `addr` and sends a Hello; returns the halves and the answer.
pub async fn connect(addr: SocketAddr, hello: Hello) -> io::Result<(Reader, Writer, Message)> {
    let stream = timeout(HANDSHAKE_TIMEOUT_MS, TcpStream::connect(addr)).await?;
    let (mut r, mut w) = split(stream);
    w.send(&Message::Hello(hello)).await?;
    let answer = timeout(HANDSHAKE_TIMEOUT_MS, r.recv())
        .await?
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{addr} closed during the handshake"),
            )
        })?;
    Ok((r, w, answer))
}

/// A Hello for this node.
pub fn hello(cluster: &str, role: Role, node_id: u64, purpose: Purpose) -> io::Result<Hello> {
    Ok(Hello::new(cluster_name(cluster)?, role, node_id, purpose))
}

/// Sends a refusal (best effort) with a message that says what to fix.
pub async fn refuse(w: &mut Writer, reason: RefuseReason, message: &str) {
    let _ = w.send(&Message::Refuse(Refuse::new(reason, message))).await;
}

/// Engine record → wire.
pub fn to_wire(r: Record) -> WireRecord {
    WireRecord {
        seq: r.seq,
        id: r.id,
        kind: match r.kind {
            RecordKind::Put => hypha_net::RecordKind::Put,
            RecordKind::Delete => hypha_net::RecordKind::Delete,
        },
        key: r.key,
        value: r.value,
    }
}

/// Wire record → engine.
pub fn from_wire(r: WireRecord) -> Record {
    Record {
        seq: r.seq,
        id: r.id,
        kind: match r.kind {
            hypha_net::RecordKind::Put => RecordKind::Put,
            hypha_net::RecordKind::Delete => RecordKind::Delete,
        },
        key: r.key,
        value: r.value,
    }
}

/// Bytes a record adds to a batch (payload plus a bound on its framing).
pub fn wire_bytes(r: &WireRecord) -> usize {
    r.key.len() + r.value.len() + hypha_net::WIRE_RECORD_OVERHEAD_BYTES_MAX
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

/// 64 random bits from the OS.
pub fn random_u64() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (std::process::id() as u64) << 32
}

/// Whether `peer` may connect, logging a refusal.
pub fn allowed(allow: &Option<hypha_net::Allowlist>, peer: SocketAddr, what: &str) -> bool {
    match allow {
        Some(list) if !list.contains(peer.ip()) => {
            log::warn!("{what}: refused connection from {peer}: not in --allow");
            false
        }
        _ => true,
    }
}
