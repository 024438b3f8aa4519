#![no_main]
//! Arbitrary bytes into `decode_frame`, `FrameDecoder` and `decode_heartbeat`.
//!
//! Repeated `decode_frame` over the stream is the reference: every frame it
//! returns lies inside the input and re-encodes to a frame that decodes to
//! the same message. `FrameDecoder`, fed the same bytes in arbitrary chunks
//! (empty feeds included), must return the same messages and the same error,
//! and hold exactly the unread tail. A decoded heartbeat re-encodes and
//! decodes to itself. Nothing may panic.

use arbitrary::Arbitrary;
use hypha_net::{
    decode_frame, decode_heartbeat, encode_frame_to_vec, encode_heartbeat, DecodeError, Decoded,
    FrameDecoder, Message,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// Chunk lengths for the decoder, minus one, used in turn; 0 also
    /// feeds an empty slice first.
    splits: Vec<u8>,
    bytes: &'a [u8],
}

/// Messages, the error that ended the stream, and the unread tail.
type Outcome = (Vec<Message>, Option<DecodeError>, usize);

fn reference(bytes: &[u8]) -> Outcome {
    let mut messages = Vec::new();
    let mut at = 0;
    loop {
        match decode_frame(&bytes[at..]) {
            Ok(Decoded::Frame { message, consumed }) => {
                assert!(
                    consumed > 0 && consumed <= bytes.len() - at,
                    "consumed {consumed}"
                );
                let again = encode_frame_to_vec(&message).expect("a decoded message encodes");
                let expected = Decoded::Frame {
                    message: message.clone(),
                    consumed: again.len(),
                };
                assert_eq!(decode_frame(&again), Ok(expected), "re-encoded frame");
                messages.push(message);
                at += consumed;
            }
            Ok(Decoded::NeedMore(n)) => {
                assert!(n > 0, "NeedMore(0)");
                return (messages, None, bytes.len() - at);
            }
            Err(e) => return (messages, Some(e), 0),
        }
    }
}

fn chunked(splits: &[u8], mut bytes: &[u8]) -> Outcome {
    let mut decoder = FrameDecoder::new();
    let mut messages = Vec::new();
    for i in 0.. {
        let split = splits.get(i % splits.len().max(1)).copied();
        if split == Some(0) {
            decoder.feed(&[]);
        }
        let n = split
            .map_or(bytes.len(), |s| s as usize + 1)
            .min(bytes.len());
        let (chunk, rest) = bytes.split_at(n);
        bytes = rest;
        decoder.feed(chunk);
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(decoder.buffered_bytes(), 0, "a failed decoder keeps bytes");
                    assert_eq!(decoder.next_message(), Err(e.clone()), "decoder not stuck");
                    return (messages, Some(e), 0);
                }
            }
        }
        if bytes.is_empty() {
            break;
        }
    }
    (messages, None, decoder.buffered_bytes())
}

fuzz_target!(|input: Input| {
    let whole = reference(input.bytes);
    let split = chunked(&input.splits, input.bytes);
    assert_eq!(split, whole, "FrameDecoder disagrees with decode_frame");
    if let Ok(beat) = decode_heartbeat(input.bytes) {
        let again = encode_heartbeat(&beat).expect("a decoded heartbeat encodes");
        assert_eq!(decode_heartbeat(&again), Ok(beat));
    }
});
