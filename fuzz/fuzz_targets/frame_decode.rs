#![no_main]
//! Arbitrary bytes into `decode_frame`, `FrameDecoder` and `decode_heartbeat`.
//!
//! Repeated `decode_frame` over the stream is the reference: every frame it
//! returns lies inside the input and re-encodes to a frame that decodes to
//! the same message. `FrameDecoder`, fed the same bytes in arbitrary chunks
//! (empty feeds included), must return the same messages and the same error,
//! and hold exactly the unread tail. A decoded heartbeat re-encodes (sealed
//! by a session, which sets its session and counter) and decodes to itself
//! but for those two fields; arbitrary bytes never pass `open_heartbeat`.
//! Nothing may panic. (`auth_frames` fuzzes the authenticated paths.)

use arbitrary::Arbitrary;
use hypha_net::{
    connector_finish, decode_frame, decode_heartbeat, encode_frame_to_vec, encode_heartbeat,
    open_heartbeat, Acceptor, ClusterKey, ClusterKeys, DecodeError, Decoded, FrameDecoder,
    Heartbeat, Hello, Message, Purpose, Role, Session, NONCE_BYTES,
};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// (connector, acceptor): one fixed session, made once; each input works
/// on clones, so its counters start afresh.
fn session_pair() -> &'static (Session, Session) {
    static SESSIONS: OnceLock<(Session, Session)> = OnceLock::new();
    SESSIONS.get_or_init(|| {
        let keys = ClusterKeys::one(ClusterKey::from_bytes([7; 32]));
        let cluster = heapless::String::try_from("fuzz").expect("fits");
        let mut hello = Hello::new(cluster, Role::Worker, 1, Purpose::Request);
        hello.nonce = [0x11; NONCE_BYTES];
        let (pending, challenge) = Acceptor::new(&keys, &hello, [0x22; NONCE_BYTES]);
        let (prove, connector) = connector_finish(&keys, &hello, &challenge).expect("same key");
        (connector, pending.finish(&prove).expect("same key"))
    })
}

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
        let (connector, acceptor) = session_pair();
        let mut sealer = connector.beats_out.clone();
        let again = encode_heartbeat(&beat, &mut sealer).expect("a decoded heartbeat encodes");
        let sent = Heartbeat {
            session: connector.id,
            counter: 1,
            ..beat
        };
        assert_eq!(decode_heartbeat(&again), Ok(sent));
        // The fuzzer does not hold the key: its bytes open only if they are
        // what the sealer makes (the session is the same in every run, so a
        // datagram sealed in an earlier run is genuine).
        let mut opener = acceptor.beats_in.clone();
        if open_heartbeat(input.bytes, &mut opener).is_ok() {
            assert_eq!(input.bytes, again.as_slice(), "forged heartbeat opened");
        }
    }
});
