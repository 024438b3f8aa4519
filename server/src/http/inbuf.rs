//! A connection's receive buffer: bytes received and not used yet (part of a
//! head, a body, or pipelined requests).
//!
//! Reads go straight into spare room at the end, which is zeroed once when
//! the buffer grows and then reused: a `Vec` resized and truncated around
//! every read zeroed its whole read size each time.

/// Received bytes `bytes[start..end]`, with room after them for reads.
#[derive(Debug, Default)]
pub(crate) struct InBuf {
    bytes: Vec<u8>,
    start: usize,
    end: usize,
}

impl InBuf {
    /// The bytes not used yet.
    pub(crate) fn data(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks the first `n` bytes of [`data`](Self::data) as used.
    pub(crate) fn consume(&mut self, n: usize) {
        assert!(
            n <= self.end - self.start,
            "consumed {n} bytes of {}",
            self.end - self.start
        );
        self.start += n;
        if self.start == self.end {
            self.clear();
        }
    }

    /// Bytes the buffer holds room for (0 before its first read).
    pub(crate) fn room(&self) -> usize {
        self.bytes.len()
    }

    /// Drops every byte not used yet.
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Drops every byte not used yet and gives the memory back (a watch
    /// stream reads nothing more: 10,000 of them would hold 160 MiB of
    /// empty read buffers).
    pub(crate) fn release(&mut self) {
        *self = InBuf::default();
    }

    /// Takes up to `n` bytes from the front.
    pub(crate) fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.end - self.start);
        let taken = self.bytes[self.start..self.start + n].to_vec();
        self.consume(n);
        taken
    }

    /// Room for a read of at least `want` bytes after the data, moving the
    /// data to the front or growing the buffer if needed. Call
    /// [`filled`](Self::filled) with what the read stored.
    pub(crate) fn spare(&mut self, want: usize) -> &mut [u8] {
        if self.bytes.len() - self.end < want {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.bytes.len() - self.end < want {
                self.bytes.resize(self.end + want, 0);
            }
        }
        &mut self.bytes[self.end..]
    }

    /// Appends the `n` bytes a read stored in [`spare`](Self::spare).
    pub(crate) fn filled(&mut self, n: usize) {
        assert!(
            n <= self.bytes.len() - self.end,
            "filled {n} bytes past the room"
        );
        self.end += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(buf: &mut InBuf, bytes: &[u8]) {
        buf.spare(bytes.len())[..bytes.len()].copy_from_slice(bytes);
        buf.filled(bytes.len());
    }

    #[test]
    fn data_survives_compaction_and_growth() {
        let mut buf = InBuf::default();
        push(&mut buf, b"GET / HTTP/1.1\r\n");
        buf.consume(4);
        assert_eq!(buf.data(), b"/ HTTP/1.1\r\n");
        // Room for more than is left moves the data to the front, then grows.
        let room = buf.spare(64).len();
        assert!(room >= 64);
        push(&mut buf, b"Host: x\r\n\r\n");
        assert_eq!(buf.data(), b"/ HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(buf.take(2), b"/ ");
        assert_eq!(buf.take(100), b"HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(buf.is_empty());
    }
}
