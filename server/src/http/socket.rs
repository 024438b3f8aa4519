//! A connection's socket, its receive buffer, and the deadline-bound reads
//! and writes on it.

use std::future::Future;
use std::io::{self, Read as _, Write as _};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Async;

use crate::http::config::{
    FIRST_READ_BYTES, LINGER_BYTES_MAX, LINGER_READ_BYTES, LINGER_TIMEOUT_MS, READ_CHUNK_BYTES,
};
use crate::http::deadline::{Cut, Registered};
use crate::http::inbuf::InBuf;

/// A connection's socket.
///
/// Reads try the socket first and wait for readiness only when it has
/// nothing: waiting first (as nginx does when a read drained the socket)
/// measured worse here, because async-io re-arms its one-shot interest
/// with an `epoll_ctl` per wait, and the next request had often arrived
/// already by the time the response was out.
pub(crate) struct Socket {
    pub(crate) inner: Arc<Async<std::net::TcpStream>>,
}

impl Socket {
    pub(crate) fn new(stream: smol::net::TcpStream) -> Socket {
        Socket {
            inner: stream.into(),
        }
    }

    /// One read into `buf`; 0 at end of stream.
    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| (&*s).read(buf)).await
    }

    /// One write of a prefix of `bytes`.
    pub(crate) async fn write(&self, bytes: &[u8]) -> io::Result<usize> {
        self.inner.write_with(|s| (&*s).write(bytes)).await
    }
}

/// How a read ended.
pub(crate) enum Read {
    Data,
    Eof,
    TimedOut,
    Stopped,
}

/// One connection's socket, the deadline it waits under, and the bytes it
/// received and has not used yet. Heads are read here
/// ([`read_more`](Self::read_more)), bodies in `body.rs`.
pub(crate) struct Link<'s> {
    pub(crate) stream: Socket,
    /// The deadline of whatever this connection waits for.
    pub(crate) watch: Registered<'s>,
    /// Received bytes not used yet: part of a head, or pipelined requests.
    pub(crate) buf: InBuf,
}

impl Link<'_> {
    /// Appends one read to `buf`. With `stoppable`, shutdown ends the wait.
    pub(crate) async fn read_more(
        &mut self,
        deadline: Instant,
        stoppable: bool,
    ) -> io::Result<Read> {
        // A usual head fits the small room; one that fills half of it (a
        // long head, pipelined requests) gets the full chunk.
        let want = if self.buf.data().len() * 2 < self.buf.room().max(1) {
            FIRST_READ_BYTES
        } else {
            READ_CHUNK_BYTES
        };
        let read = self.stream.read(self.buf.spare(want));
        let outcome = self.watch.by(deadline, stoppable, read).await;
        if let Ok(Ok(got)) = &outcome {
            self.buf.filled(*got);
        }
        Ok(match outcome {
            Err(Cut::Stopped) => Read::Stopped,
            Err(Cut::Expired) => Read::TimedOut,
            Ok(read) => match read? {
                0 => Read::Eof,
                _ => Read::Data,
            },
        })
    }
}

/// The outcome of `read` (one read); `None` if `deadline` passes first.
pub(crate) async fn read_by(
    watch: &Registered<'_>,
    read: impl Future<Output = io::Result<usize>>,
    deadline: Instant,
) -> io::Result<Option<usize>> {
    match watch.by(deadline, false, read).await {
        Ok(read) => read.map(Some),
        Err(_) => Ok(None),
    }
}

/// Writes all of `bytes`; fails if one write makes no progress for `stall`.
pub(crate) async fn write_all(
    watch: &Registered<'_>,
    stream: &mut Socket,
    mut bytes: &[u8],
    stall: Duration,
) -> io::Result<()> {
    while !bytes.is_empty() {
        let write = stream.write(bytes);
        match watch.by(Instant::now() + stall, false, write).await {
            Err(_) => {
                let why = "the client stopped reading the response";
                return Err(io::Error::new(io::ErrorKind::TimedOut, why));
            }
            Ok(wrote) => match wrote? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                wrote => bytes = &bytes[wrote..],
            },
        }
    }
    Ok(())
}

/// Half-closes, then reads and drops what the client still sends until it
/// closes, [`LINGER_TIMEOUT_MS`] passes or [`LINGER_BYTES_MAX`] is dropped.
pub(crate) async fn linger_close(watch: &Registered<'_>, stream: &mut Socket) {
    let _ = stream.inner.get_ref().shutdown(Shutdown::Write);
    let deadline = Instant::now() + Duration::from_millis(LINGER_TIMEOUT_MS);
    let mut scratch = vec![0u8; LINGER_READ_BYTES];
    let mut dropped = 0;
    while dropped < LINGER_BYTES_MAX {
        match read_by(watch, stream.read(&mut scratch), deadline).await {
            Ok(Some(got)) if got > 0 => dropped += got,
            _ => return,
        }
    }
}
