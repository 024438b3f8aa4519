//! TCP framing: a length, a CRC and one postcard-encoded [`Message`].
//!
//! Sans-IO: [`encode_frame`] appends bytes to a buffer the caller writes out,
//! [`decode_frame`] reads from a buffer the caller filled, and
//! [`FrameDecoder`] keeps the buffer for a caller that just feeds it what the
//! socket returned. An incomplete frame is [`Decoded::NeedMore`]; an error
//! means the stream is broken and the connection must be closed.

use alloc::vec::Vec;

use postcard::ser_flavors::Flavor;

use crate::error::{DecodeError, EncodeError};
use crate::handshake::{HELLO_MAGIC, PROTOCOL_VERSION};
use crate::limits::{
    DECODER_KEEP_BYTES, FRAME_HEADER_BYTES, FRAME_MAC_BYTES, FRAME_PAYLOAD_BYTES_MAX,
};
use crate::message::{Message, MESSAGE_TAG_COUNT};
use crate::session::{Opener, Sealer};

// Frame layout (all integers little-endian):
//
// | offset | size | field   | meaning                                   |
// |--------|------|---------|-------------------------------------------|
// | 0      | 4    | len     | payload length, <= FRAME_PAYLOAD_BYTES_MAX |
// | 4      | 4    | crc     | CRC-32 (IEEE, as zlib) of the payload     |
// | 8      | len  | payload | postcard encoding of one Message          |
const FRAME_LEN_OFFSET: usize = 0;
const FRAME_LEN_BYTES: usize = 4;
const FRAME_CRC_OFFSET: usize = FRAME_LEN_OFFSET + FRAME_LEN_BYTES;
const FRAME_CRC_BYTES: usize = 4;
const FRAME_PAYLOAD_OFFSET: usize = FRAME_CRC_OFFSET + FRAME_CRC_BYTES;

// `FRAME_HEADER_BYTES` in the table of limits is the size of this header.
const _: () = assert!(FRAME_PAYLOAD_OFFSET == FRAME_HEADER_BYTES);

/// Result of [`decode_frame`] on a buffer that holds no error (yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The buffer holds only part of a frame: read at least this many more
    /// bytes before trying again.
    NeedMore(usize),
    /// A whole, valid frame.
    Frame {
        /// The message, already checked by [`Message::validate`].
        message: Message,
        /// Bytes of the buffer the frame took; drop them before decoding on.
        consumed: usize,
    },
}

/// Appends the frame for `message` to `out`.
///
/// The message is validated first, so a frame this sends is one every peer
/// accepts. On error `out` is left as it was.
pub fn encode_frame(message: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    message.validate()?;
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    let written = postcard::serialize_with_flavor(message, AppendVec { out: &mut *out });
    if let Err(detail) = written {
        out.truncate(start);
        return Err(EncodeError::Serialize(detail));
    }
    // `start <= out.len()` and the header was pushed, so the splits hold.
    let (_, frame) = out.split_at_mut(start);
    let (header, payload) = frame.split_at_mut(FRAME_HEADER_BYTES);
    let len = payload.len();
    let len_field = match u32::try_from(len) {
        Ok(len_field) if len <= FRAME_PAYLOAD_BYTES_MAX => len_field,
        _ => {
            out.truncate(start);
            return Err(EncodeError::FrameTooLarge {
                len,
                max: FRAME_PAYLOAD_BYTES_MAX,
            });
        }
    };
    let crc = crc32fast::hash(payload);
    let (len_bytes, crc_bytes) = header.split_at_mut(FRAME_CRC_OFFSET);
    len_bytes.copy_from_slice(&len_field.to_le_bytes());
    crc_bytes.copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The frame for `message` in a new buffer.
pub fn encode_frame_to_vec(message: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_frame(message, &mut out)?;
    Ok(out)
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// A postcard flavor that appends to a borrowed `Vec`, so the payload lands
/// right after the header without a second buffer.
struct AppendVec<'a> {
    out: &'a mut Vec<u8>,
}

impl Flavor for AppendVec<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.out.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.out.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Decodes the frame at the start of `buf` (a plain frame: no MAC after
/// it, any length up to `FRAME_PAYLOAD_BYTES_MAX`).
///
/// Checks, in order: the length against `FRAME_PAYLOAD_BYTES_MAX` (as soon
/// as its 4 bytes are in, before waiting for or buffering the payload), the
/// CRC, the message tag, the postcard encoding, trailing bytes, and finally
/// [`Message::validate`]. Never panics and never allocates more than the
/// payload bytes present in `buf`.
pub fn decode_frame(buf: &[u8]) -> Result<Decoded, DecodeError> {
    decode_frame_with(buf, FRAME_PAYLOAD_BYTES_MAX, None)
}

/// [`decode_frame`] with a smaller length limit (before authentication)
/// and, once authenticated, the MAC after the frame checked by `opener`
/// before anything else is believed.
fn decode_frame_with(
    buf: &[u8],
    payload_max: usize,
    opener: Option<&mut Opener>,
) -> Result<Decoded, DecodeError> {
    let Some((len_bytes, _)) = buf.split_first_chunk::<FRAME_LEN_BYTES>() else {
        return Ok(Decoded::NeedMore(FRAME_HEADER_BYTES - buf.len()));
    };
    let len = usize::try_from(u32::from_le_bytes(*len_bytes)).unwrap_or(usize::MAX);
    if len > payload_max {
        return Err(DecodeError::FrameTooLarge {
            len,
            max: payload_max,
        });
    }
    let mac_bytes = if opener.is_some() { FRAME_MAC_BYTES } else { 0 };
    let frame_len = FRAME_HEADER_BYTES + len;
    let Some((header, rest)) = buf.split_first_chunk::<FRAME_HEADER_BYTES>() else {
        return Ok(Decoded::NeedMore(FRAME_HEADER_BYTES - buf.len()));
    };
    let (Some(payload), Some(tag)) = (rest.get(..len), rest.get(len..len + mac_bytes)) else {
        return Ok(Decoded::NeedMore(frame_len + mac_bytes - buf.len()));
    };
    if let Some(opener) = opener {
        opener.open(buf.get(..frame_len).unwrap_or_default(), tag)?;
    }
    let [_, _, _, _, crc0, crc1, crc2, crc3] = *header;
    let expected = u32::from_le_bytes([crc0, crc1, crc2, crc3]);
    let actual = crc32fast::hash(payload);
    if expected != actual {
        return Err(DecodeError::BadCrc { expected, actual });
    }
    let message = decode_payload(payload)?;
    Ok(Decoded::Frame {
        message,
        consumed: frame_len + mac_bytes,
    })
}

/// Appends the frame for `message` and its MAC to `out` (an authenticated
/// connection). On error `out` is left as it was and nothing is counted.
pub fn seal_frame(
    message: &Message,
    sealer: &mut Sealer,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    encode_frame(message, out)?;
    let mut tag = Vec::new();
    sealer.seal(out.get(start..).unwrap_or_default(), &mut tag);
    out.extend_from_slice(&tag);
    Ok(())
}

/// Decodes and validates one message from a whole, CRC-checked payload.
fn decode_payload(payload: &[u8]) -> Result<Message, DecodeError> {
    let (tag, _) = read_varint_u32(payload).map_err(DecodeError::Malformed)?;
    if tag >= MESSAGE_TAG_COUNT {
        return Err(DecodeError::UnknownMessage { tag });
    }
    let message = match postcard::take_from_bytes::<Message>(payload) {
        Ok((message, [])) => message,
        Ok((_, rest)) => {
            let extra = rest.len();
            return Err(hello_mismatch(payload).unwrap_or(DecodeError::TrailingBytes { extra }));
        }
        Err(detail) => {
            return Err(hello_mismatch(payload).unwrap_or(DecodeError::Malformed(detail)));
        }
    };
    message.validate()?;
    Ok(message)
}

/// Why a `Hello` payload that failed to decode failed, if its frozen head
/// (tag 0, magic, version) tells: another magic or another version.
fn hello_mismatch(payload: &[u8]) -> Option<DecodeError> {
    let (tag, rest) = read_varint_u32(payload).ok()?;
    if tag != 0 {
        return None;
    }
    let (found, rest) = read_varint_u32(rest).ok()?;
    if found != HELLO_MAGIC {
        return Some(DecodeError::BadMagic { found });
    }
    let (version, _) = read_varint_u32(rest).ok()?;
    let theirs = u16::try_from(version).ok()?;
    if theirs == PROTOCOL_VERSION {
        return None;
    }
    Some(DecodeError::UnsupportedVersion {
        ours: PROTOCOL_VERSION,
        theirs,
    })
}

/// Reads a postcard varint `u32` (LEB128, at most 5 bytes, the 5th at most
/// 0x0f) from the start of `bytes`, exactly as postcard does.
pub(crate) fn read_varint_u32(bytes: &[u8]) -> Result<(u32, &[u8]), postcard::Error> {
    let mut value: u32 = 0;
    for (index, byte) in bytes.iter().enumerate().take(5) {
        let bits = u32::from(byte & 0x7f);
        if index == 4 && *byte > 0x0f {
            return Err(postcard::Error::DeserializeBadVarint);
        }
        value |= bits << (7 * index);
        if byte & 0x80 == 0 {
            let rest = bytes.get(index + 1..).unwrap_or_default();
            return Ok((value, rest));
        }
    }
    if bytes.len() >= 5 {
        Err(postcard::Error::DeserializeBadVarint)
    } else {
        Err(postcard::Error::DeserializeUnexpectedEnd)
    }
}

/// A buffering frame decoder: feed it bytes as they arrive, take messages
/// out as they complete.
///
/// After each [`feed`](Self::feed), call [`next_message`](Self::next_message)
/// until it returns `Ok(None)`; the buffer then holds at most one partial
/// frame. The decoder never reserves memory for a frame it has not received:
/// a header announcing 32 MiB costs nothing until the bytes come.
///
/// After an error the decoder is stuck: every later call returns the same
/// error and fed bytes are dropped. Close the connection.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` before this offset were decoded already.
    start: usize,
    /// Bytes needed before the next message can complete, from the last call.
    wanted: usize,
    failed: Option<DecodeError>,
    /// Longest payload accepted: small until the peer authenticated.
    payload_max: usize,
    /// Checks each frame's MAC, once the connection is authenticated.
    opener: Option<Opener>,
}

impl FrameDecoder {
    /// An empty decoder of plain frames up to `FRAME_PAYLOAD_BYTES_MAX`.
    pub fn new() -> Self {
        Self::with_payload_max(FRAME_PAYLOAD_BYTES_MAX)
    }

    /// An empty decoder of plain frames up to `payload_max` bytes: for the
    /// handshake, [`ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX`](crate::ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX)
    /// or [`CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX`](crate::CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX).
    pub fn with_payload_max(payload_max: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            wanted: FRAME_HEADER_BYTES,
            failed: None,
            payload_max: payload_max.min(FRAME_PAYLOAD_BYTES_MAX),
            opener: None,
        }
    }

    /// From the next frame on, every frame must carry a MAC that `opener`
    /// accepts, and may be up to `FRAME_PAYLOAD_BYTES_MAX` long. Call it
    /// right after taking the last plain frame (`Prove`); bytes buffered
    /// behind that frame are checked as authenticated frames.
    pub fn authenticate(&mut self, opener: Opener) {
        self.opener = Some(opener);
        self.payload_max = FRAME_PAYLOAD_BYTES_MAX;
    }

    /// Whether frames are checked with a MAC.
    pub fn is_authenticated(&self) -> bool {
        self.opener.is_some()
    }

    /// Appends bytes received from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 {
            // At most one partial frame sits after `start`: compacting costs
            // as much as the bytes it keeps, once per decoded message.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        if let Some(why) = &self.failed {
            return Err(why.clone());
        }
        let pending = self.buf.get(self.start..).unwrap_or_default();
        match decode_frame_with(pending, self.payload_max, self.opener.as_mut()) {
            Ok(Decoded::NeedMore(wanted)) => {
                self.wanted = wanted;
                Ok(None)
            }
            Ok(Decoded::Frame { message, consumed }) => {
                self.start = self.start.saturating_add(consumed);
                if self.start >= self.buf.len() {
                    self.buf.clear();
                    self.buf.shrink_to(DECODER_KEEP_BYTES);
                    self.start = 0;
                }
                self.wanted = 0;
                Ok(Some(message))
            }
            Err(why) => {
                self.failed = Some(why.clone());
                self.buf = Vec::new();
                self.start = 0;
                Err(why)
            }
        }
    }

    /// Bytes fed but not yet returned as messages.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// At least this many more bytes must be fed before
    /// [`next_message`](Self::next_message) can return a message (0 if it may
    /// already); a hint for sizing reads.
    pub fn wanted_bytes(&self) -> usize {
        self.wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_varint_u32_agrees_with_postcard() {
        for value in [0u32, 1, 127, 128, 16_384, HELLO_MAGIC, u32::MAX] {
            let bytes = postcard::to_allocvec(&value).unwrap();
            assert_eq!(read_varint_u32(&bytes), Ok((value, &[][..])));
        }
        assert_eq!(
            read_varint_u32(&[0x80, 0x80]),
            Err(postcard::Error::DeserializeUnexpectedEnd)
        );
        assert_eq!(
            read_varint_u32(&[0xff, 0xff, 0xff, 0xff, 0x10]),
            Err(postcard::Error::DeserializeBadVarint)
        );
        assert_eq!(
            read_varint_u32(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            Err(postcard::Error::DeserializeBadVarint)
        );
        assert_eq!(
            read_varint_u32(&[]),
            Err(postcard::Error::DeserializeUnexpectedEnd)
        );
    }

    #[test]
    fn encode_error_leaves_the_buffer_alone() {
        let mut out = alloc::vec![1, 2, 3];
        let too_long = Message::Delete {
            req_id: 1,
            key: alloc::vec![0; crate::KEY_BYTES_MAX + 1],
        };
        assert!(matches!(
            encode_frame(&too_long, &mut out),
            Err(EncodeError::Rejected(DecodeError::LimitExceeded { .. }))
        ));
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn decoder_gives_back_a_big_buffer_once_it_is_empty() {
        let mut decoder = FrameDecoder::new();
        let big = Message::Put {
            req_id: 1,
            key: alloc::vec![1; 16],
            value: alloc::vec![2; 4 * DECODER_KEEP_BYTES],
        };
        let small = Message::Ping { nonce: 2 };
        let mut bytes = encode_frame_to_vec(&big).unwrap();
        bytes.extend(encode_frame_to_vec(&small).unwrap());
        // The big frame and part of the small one: the buffer must keep the
        // partial frame, whatever its capacity.
        let split = bytes.len() - 3;
        decoder.feed(&bytes[..split]);
        assert_eq!(decoder.next_message(), Ok(Some(big)));
        assert_eq!(decoder.next_message(), Ok(None));
        decoder.feed(&bytes[split..]);
        assert_eq!(decoder.next_message(), Ok(Some(small)));
        assert!(
            decoder.buf.capacity() <= DECODER_KEEP_BYTES,
            "kept {} bytes of capacity",
            decoder.buf.capacity()
        );
    }

    #[test]
    fn decoder_stays_failed_after_an_error() {
        let mut decoder = FrameDecoder::new();
        decoder.feed(&[0xff; 8]);
        let first = decoder.next_message();
        assert!(matches!(first, Err(DecodeError::FrameTooLarge { .. })));
        decoder.feed(&encode_frame_to_vec(&Message::Ping { nonce: 1 }).unwrap());
        assert_eq!(decoder.next_message(), first);
        assert_eq!(decoder.buffered_bytes(), 0);
    }
}
