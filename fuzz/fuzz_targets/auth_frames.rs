#![no_main]
//! The authenticated paths of `hypha_net`: sealed frames through a
//! `FrameDecoder` after `authenticate`, the handshake decoder
//! (`with_payload_max`), and sealed heartbeats through `open_heartbeat`.
//!
//! * A stream of frames the connector seals, interleaved with tampering
//!   (frames dropped, replayed, changed, cut short, sealed by another
//!   session, sent plain, arbitrary bytes), optionally behind the plain
//!   `Hello` and `Prove` of the handshake, fed in arbitrary chunks: the
//!   acceptor's decoder takes every sealed frame that arrived whole and in
//!   place (within the longest common prefix of the bytes received and the
//!   bytes sealed), in order, and after them only frames that are byte for
//!   byte what the connector's sealer makes at their position; its only
//!   errors are `BadMac` and `FrameTooLarge`, it stays failed, and an
//!   untampered stream gives no error.
//!
//! The key and the sessions are the same in every run (so inputs replay),
//! so bytes sealed in an earlier run are genuine in this one and libFuzzer
//! may learn them: the checks compare with what the sealer makes, never
//! assume the fuzzer cannot produce a valid MAC.
//! * Arbitrary bytes into both sides' handshake decoders (the acceptor's
//!   authenticates after a `Prove`, the connector's after a `Challenge`):
//!   before that no payload over the handshake limit gets through, a longer
//!   one is `FrameTooLarge` against that limit, and after it only frames
//!   the peer's sealer made pass.
//! * Heartbeats the connector seals, delivered in any order, again, changed,
//!   from another session, or arbitrary bytes: `open_heartbeat` accepts
//!   exactly the intact beats of this session whose counter a model of the
//!   replay window accepts, and a refused beat never moves the window.
//!   (Arbitrary bytes may hold a beat sealed in an earlier run: the session
//!   is fixed, so that beat is genuine, and is checked like a delivered one.)

use arbitrary::Arbitrary;
use hypha_net::{
    connector_finish, decode_heartbeat, encode_frame, encode_frame_to_vec, encode_heartbeat,
    open_heartbeat, seal_frame, Acceptor, BeatSealer, ClusterKey, ClusterKeys, DecodeError,
    FrameDecoder, Heartbeat, Hello, Message, Opener, Purpose, Role, Sealer, Session,
    ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX, CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX,
    FRAME_HEADER_BYTES, FRAME_MAC_BYTES, FRAME_PAYLOAD_BYTES_MAX, HEARTBEAT_REPLAY_WINDOW,
    LOAD_PERMILLE_MAX, NONCE_BYTES,
};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// Most pieces, handshake bytes and beat operations one input uses.
const PIECES_MAX: usize = 128;
const BEAT_OPS_MAX: usize = 512;

fn hello() -> Hello {
    let cluster = heapless::String::try_from("fuzz").expect("fits");
    let mut hello = Hello::new(cluster, Role::Worker, 1, Purpose::Request);
    hello.nonce = [0x11; NONCE_BYTES];
    hello
}

/// (connector, acceptor, their Prove) of a handshake under a fixed key with
/// acceptor nonce `nonce`.
fn handshake(nonce: u8) -> (Session, Session, Message) {
    let keys = ClusterKeys::one(ClusterKey::from_bytes([7; 32]));
    let (pending, challenge) = Acceptor::new(&keys, &hello(), [nonce; NONCE_BYTES]);
    let (prove, connector) = connector_finish(&keys, &hello(), &challenge).expect("same key");
    let acceptor = pending.finish(&prove).expect("same key");
    (connector, acceptor, Message::Prove(prove))
}

/// The session under test; made once, each input works on clones.
fn ours() -> &'static (Session, Session, Message) {
    static OURS: OnceLock<(Session, Session, Message)> = OnceLock::new();
    OURS.get_or_init(|| handshake(0x22))
}

/// Another connection with the same key: other session keys.
fn theirs() -> &'static (Session, Session, Message) {
    static THEIRS: OnceLock<(Session, Session, Message)> = OnceLock::new();
    THEIRS.get_or_init(|| handshake(0x33))
}

/// A message to send: small ones, and `Put`s longer than a handshake frame.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Sample {
    kind: u8,
    n: u16,
}

impl Sample {
    fn message(self) -> Message {
        let n = u64::from(self.n);
        match self.kind % 5 {
            0 => Message::Ping { nonce: n },
            1 => Message::Ack {
                term: n,
                applied_seq: n,
            },
            2 => Message::Digest { req_id: n },
            3 => Message::Written { req_id: n, seq: n },
            _ => Message::Put {
                req_id: n,
                key: b"k".to_vec(),
                value: vec![self.kind; usize::from(self.n % 2048)],
            },
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Piece<'a> {
    /// The connector's next frame, intact.
    Sealed(Sample),
    /// The connector seals its next frame; it is lost on the way.
    Dropped(Sample),
    /// A frame delivered before, again.
    Replayed(u8),
    /// The connector's next frame with one byte changed (mask 0: intact).
    Flipped { sample: Sample, at: u16, mask: u8 },
    /// The connector's next frame, of which only the first `keep` bytes
    /// arrive (all of them: intact).
    Truncated { sample: Sample, keep: u16 },
    /// A plain frame without a MAC, padded with MAC-sized zeros or not.
    Plain { sample: Sample, padded: bool },
    /// A frame sealed by another session.
    Foreign(Sample),
    /// Anything.
    Raw(&'a [u8]),
}

#[derive(Arbitrary, Debug)]
enum BeatOp<'a> {
    /// The connector seals its next beat (kept, not delivered yet); a load
    /// over 60000 is refused and not counted.
    Seal { applied_seq: u64, load: u16 },
    /// The connector seals this many beats (to get past the replay window).
    SealMany(u8),
    /// Delivers a sealed beat (maybe again, maybe late).
    Deliver(u8),
    /// Delivers a sealed beat with one byte changed (mask 0: intact).
    Flip { which: u8, at: u8, mask: u8 },
    /// A beat of another session.
    Foreign,
    /// Anything.
    Raw(&'a [u8]),
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// Start with the plain `Hello` and `Prove`, through a handshake decoder.
    handshake: bool,
    /// Chunk lengths for the decoders, minus one, used in turn.
    splits: Vec<u8>,
    pieces: Vec<Piece<'a>>,
    /// Arbitrary bytes into both sides' handshake decoders.
    stranger: &'a [u8],
    beats: Vec<BeatOp<'a>>,
}

/// `bytes` in chunks whose lengths `splits` gives, in turn.
fn chunks<'b>(splits: &[u8], mut bytes: &'b [u8]) -> Vec<&'b [u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    while !bytes.is_empty() {
        let n = splits
            .get(i % splits.len().max(1))
            .map_or(bytes.len(), |s| usize::from(*s) + 1)
            .min(bytes.len());
        let (chunk, rest) = bytes.split_at(n);
        out.push(chunk);
        bytes = rest;
        i += 1;
    }
    out
}

/// What the pieces put on the wire, and what the connector sealed.
struct Wire {
    /// The bytes the acceptor receives.
    stream: Vec<u8>,
    /// Where the sealed part of `stream` starts (after the handshake).
    sealed_from: usize,
    /// Every frame the connector sealed, in order, delivered or not.
    genuine: Vec<u8>,
    /// The end of each frame in `genuine`, and its message.
    ends: Vec<(usize, Message)>,
}

fn build(input: &Input) -> Wire {
    let (connector, _, prove) = ours();
    let mut sealer = connector.sealer.clone();
    let mut foreign = theirs().0.sealer.clone();
    let mut stream = Vec::new();
    if input.handshake {
        encode_frame(&Message::Hello(hello()), &mut stream).expect("encodes");
        encode_frame(prove, &mut stream).expect("encodes");
    }
    let sealed_from = stream.len();
    let mut genuine = Vec::new();
    let mut ends = Vec::new();
    let mut delivered: Vec<Vec<u8>> = Vec::new();
    let mut seal = |sample: &Sample| {
        let message = sample.message();
        let mut frame = Vec::new();
        seal_frame(&message, &mut sealer, &mut frame).expect("a sample seals");
        genuine.extend_from_slice(&frame);
        ends.push((genuine.len(), message));
        frame
    };
    for piece in input.pieces.iter().take(PIECES_MAX) {
        match piece {
            Piece::Sealed(sample) => {
                let frame = seal(sample);
                stream.extend_from_slice(&frame);
                delivered.push(frame);
            }
            Piece::Dropped(sample) => {
                seal(sample);
            }
            Piece::Replayed(which) => {
                if !delivered.is_empty() {
                    stream.extend_from_slice(&delivered[usize::from(*which) % delivered.len()]);
                }
            }
            Piece::Flipped { sample, at, mask } => {
                let frame = seal(sample);
                let mut sent = frame.clone();
                let at = usize::from(*at) % sent.len();
                sent[at] ^= mask;
                stream.extend_from_slice(&sent);
                delivered.push(frame);
            }
            Piece::Truncated { sample, keep } => {
                let frame = seal(sample);
                let keep = usize::from(*keep) % (frame.len() + 1);
                stream.extend_from_slice(&frame[..keep]);
            }
            Piece::Plain { sample, padded } => {
                encode_frame(&sample.message(), &mut stream).expect("a sample encodes");
                if *padded {
                    stream.extend_from_slice(&[0; FRAME_MAC_BYTES]);
                }
            }
            Piece::Foreign(sample) => {
                let mut frame = Vec::new();
                seal_frame(&sample.message(), &mut foreign, &mut frame).expect("a sample seals");
                stream.extend_from_slice(&frame);
            }
            Piece::Raw(bytes) => stream.extend_from_slice(bytes),
        }
    }
    Wire {
        stream,
        sealed_from,
        genuine,
        ends,
    }
}

fn sealed_stream(input: &Input) {
    let Wire {
        stream,
        sealed_from,
        genuine,
        ends,
    } = build(input);
    // Every frame the acceptor takes after the handshake must be exactly
    // the bytes the connector's sealer makes for that message at that
    // position (`Authentic`), and it must take at least the sealed frames
    // that arrived whole and in place in this run: those within the longest
    // common prefix of what it received and what the connector sealed.
    let received = &stream[sealed_from..];
    let common = received
        .iter()
        .zip(&genuine)
        .take_while(|(a, b)| a == b)
        .count();
    let whole: Vec<(usize, Message)> = ends
        .into_iter()
        .take_while(|(end, _)| *end <= common)
        .collect();
    let taken = whole.last().map_or(0, |(end, _)| *end);
    let in_place: Vec<Message> = whole.into_iter().map(|(_, message)| message).collect();
    let untampered = genuine.starts_with(received);
    let (connector, acceptor, prove) = ours();
    let mut decoder = if input.handshake {
        FrameDecoder::with_payload_max(ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX)
    } else {
        let mut decoder = FrameDecoder::new();
        decoder.authenticate(acceptor.opener.clone());
        decoder
    };
    let mut authentic = Authentic::new(&connector.sealer);
    let mut plain = Vec::new();
    let mut got = Vec::new();
    let mut error = None;
    let (mut fed, mut start) = (0, 0);
    'feed: for chunk in chunks(&input.splits, &stream) {
        decoder.feed(chunk);
        fed += chunk.len();
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => {
                    let end = fed - decoder.buffered_bytes();
                    let frame = &stream[start..end];
                    start = end;
                    if decoder.is_authenticated() {
                        authentic.check(&message, frame);
                        got.push(message);
                        continue;
                    }
                    // The handshake frames are intact: nothing precedes them.
                    let is_prove = &message == prove;
                    plain.push(message);
                    if is_prove {
                        decoder.authenticate(acceptor.opener.clone());
                    }
                }
                Ok(None) => break,
                Err(why) => {
                    assert_eq!(decoder.buffered_bytes(), 0, "a failed decoder keeps bytes");
                    assert_eq!(
                        decoder.next_message(),
                        Err(why.clone()),
                        "decoder not stuck"
                    );
                    error = Some(why);
                    break 'feed;
                }
            }
        }
    }
    if input.handshake {
        assert_eq!(plain, vec![Message::Hello(hello()), prove.clone()]);
    }
    assert!(
        got.starts_with(&in_place),
        "frames that arrived intact were not taken: {got:?} {in_place:?}"
    );
    if untampered {
        assert_eq!(got, in_place);
        assert_eq!(error, None);
        assert_eq!(decoder.buffered_bytes(), received.len() - taken);
    }
    if let Some(why) = error {
        assert!(
            matches!(
                why,
                DecodeError::BadMac { .. }
                    | DecodeError::FrameTooLarge {
                        max: FRAME_PAYLOAD_BYTES_MAX,
                        ..
                    }
            ),
            "{why:?}"
        );
    }
}

/// Checks that the frames an authenticated decoder takes are, in order,
/// exactly what the peer's sealer makes. The fuzzer does not hold the key,
/// but the session is the same in every run, so a frame sealed in an
/// earlier run is genuine in this one (and libFuzzer learns bytes it sees
/// compared): such a frame may pass, any other may not.
struct Authentic {
    sealer: Sealer,
}

impl Authentic {
    fn new(sealer: &Sealer) -> Self {
        Self {
            sealer: sealer.clone(),
        }
    }

    fn check(&mut self, message: &Message, frame: &[u8]) {
        let counter = self.sealer.counter();
        let mut again = Vec::new();
        seal_frame(message, &mut self.sealer, &mut again).expect("a decoded message seals");
        assert!(
            again == frame,
            "frame {counter} passed the MAC check but is not what the peer sealed: {message:?}"
        );
    }
}

/// Arbitrary bytes into a handshake decoder limited to `payload_max` that
/// authenticates with `opener` after the first `authenticate_after` message.
fn stranger(
    splits: &[u8],
    bytes: &[u8],
    payload_max: usize,
    authenticate_after: fn(&Message) -> bool,
    opener: &Opener,
    peer: &Sealer,
) {
    let mut decoder = FrameDecoder::with_payload_max(payload_max);
    let mut authentic = Authentic::new(peer);
    let (mut fed, mut start) = (0, 0);
    for chunk in chunks(splits, bytes) {
        decoder.feed(chunk);
        fed += chunk.len();
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => {
                    let end = fed - decoder.buffered_bytes();
                    let frame = &bytes[start..end];
                    start = end;
                    if decoder.is_authenticated() {
                        authentic.check(&message, frame);
                        continue;
                    }
                    // A decoded message re-encodes canonically: no longer
                    // than the frame it came in.
                    let frame = encode_frame_to_vec(&message).expect("a decoded message encodes");
                    assert!(
                        frame.len() - FRAME_HEADER_BYTES <= payload_max,
                        "{message:?}"
                    );
                    if authenticate_after(&message) {
                        decoder.authenticate(opener.clone());
                    }
                }
                Ok(None) => break,
                Err(why) => {
                    let max = match decoder.is_authenticated() {
                        true => FRAME_PAYLOAD_BYTES_MAX,
                        false => payload_max,
                    };
                    if let DecodeError::FrameTooLarge { len, max: limit } = why {
                        assert!(len > limit && limit == max, "{why:?}");
                    }
                    if decoder.is_authenticated() {
                        assert!(
                            matches!(
                                why,
                                DecodeError::BadMac { .. } | DecodeError::FrameTooLarge { .. }
                            ),
                            "{why:?}"
                        );
                    }
                    return;
                }
            }
        }
    }
}

/// The receiver's replay window, modelled with a set.
#[derive(Default)]
struct Window {
    newest: u64,
    seen: BTreeSet<u64>,
}

impl Window {
    fn accept(&mut self, counter: u64) -> bool {
        if counter == 0 {
            return false;
        }
        if counter > self.newest {
            self.newest = counter;
        } else if self.newest - counter >= HEARTBEAT_REPLAY_WINDOW || self.seen.contains(&counter) {
            return false;
        }
        self.seen.insert(counter);
        true
    }
}

/// Most beats one run seals: `Seal` ops, plus `SealMany` up to
/// `BEAT_OPS_MAX`.
const BEATS_MAX: usize = 2 * BEAT_OPS_MAX;

/// The connector's beat sealer after `i` beats, for `i` in `0..BEATS_MAX`.
fn beat_sealers() -> &'static [BeatSealer] {
    static SEALERS: OnceLock<Vec<BeatSealer>> = OnceLock::new();
    SEALERS.get_or_init(|| {
        let mut sealer = ours().0.beats_out.clone();
        let beat = Heartbeat::new(heapless::String::new(), Role::Worker, 0);
        (0..BEATS_MAX)
            .map(|_| {
                let before = sealer.clone();
                encode_heartbeat(&beat, &mut sealer).expect("encodes");
                before
            })
            .collect()
    })
}

/// The beat in `bytes` if the connector's sealer makes exactly these bytes
/// for it. Arbitrary bytes can be such a beat: the session is the same in
/// every run, so a datagram sealed in an earlier run is genuine in this
/// one, and libFuzzer learns bytes it sees compared.
fn authentic(bytes: &[u8]) -> Option<Heartbeat> {
    let beat = decode_heartbeat(bytes).ok()?;
    if beat.session != ours().0.id || beat.counter == 0 {
        return None;
    }
    let index = usize::try_from(beat.counter - 1).ok()?;
    let mut sealer = beat_sealers().get(index)?.clone();
    let again = encode_heartbeat(&beat, &mut sealer).ok()?;
    (again.as_slice() == bytes).then_some(beat)
}

fn beats(ops: &[BeatOp]) {
    let (connector, acceptor, _) = ours();
    let mut sealer = connector.beats_out.clone();
    let mut opener = acceptor.beats_in.clone();
    let mut foreign = theirs().0.beats_out.clone();
    let mut window = Window::default();
    let mut counter = 0;
    // (datagram, the beat as sent)
    let mut sealed: Vec<(Vec<u8>, Heartbeat)> = Vec::new();
    let template = Heartbeat::new(
        heapless::String::try_from("fuzz").expect("fits"),
        Role::Worker,
        2,
    );
    for op in ops.iter().take(BEAT_OPS_MAX) {
        match op {
            BeatOp::Seal { .. } | BeatOp::SealMany(_) if counter >= BEATS_MAX as u64 => {}
            BeatOp::Seal { applied_seq, load } => {
                let load = match *load > 60_000 {
                    true => *load,
                    false => *load % (LOAD_PERMILLE_MAX + 1),
                };
                let beat = Heartbeat {
                    applied_seq: *applied_seq,
                    load,
                    ..template.clone()
                };
                match encode_heartbeat(&beat, &mut sealer) {
                    Ok(bytes) => {
                        counter += 1;
                        let sent = Heartbeat {
                            session: connector.id,
                            counter,
                            ..beat
                        };
                        assert_eq!(decode_heartbeat(&bytes), Ok(sent.clone()));
                        sealed.push((bytes.to_vec(), sent));
                    }
                    // A refused beat is not counted.
                    Err(_) => assert!(load > LOAD_PERMILLE_MAX),
                }
            }
            BeatOp::SealMany(n) => {
                for _ in 0..*n {
                    if counter >= BEATS_MAX as u64 {
                        break;
                    }
                    let bytes = encode_heartbeat(&template, &mut sealer).expect("encodes");
                    counter += 1;
                    let sent = Heartbeat {
                        session: connector.id,
                        counter,
                        ..template.clone()
                    };
                    sealed.push((bytes.to_vec(), sent));
                }
            }
            BeatOp::Deliver(which) | BeatOp::Flip { which, mask: 0, .. } => {
                if sealed.is_empty() {
                    continue;
                }
                let (bytes, sent) = &sealed[usize::from(*which) % sealed.len()];
                let expected = match window.accept(sent.counter) {
                    true => Ok(sent.clone()),
                    false => Err(DecodeError::Replayed {
                        counter: sent.counter,
                    }),
                };
                assert_eq!(open_heartbeat(bytes, &mut opener), expected);
            }
            BeatOp::Flip { which, at, mask } => {
                if sealed.is_empty() {
                    continue;
                }
                let mut bytes = sealed[usize::from(*which) % sealed.len()].0.clone();
                let at = usize::from(*at) % bytes.len();
                bytes[at] ^= mask;
                let result = open_heartbeat(&bytes, &mut opener);
                assert!(result.is_err(), "a changed beat opened: {result:?}");
            }
            BeatOp::Foreign => {
                let bytes = encode_heartbeat(&template, &mut foreign).expect("encodes");
                assert_eq!(
                    open_heartbeat(&bytes, &mut opener),
                    Err(DecodeError::Invalid("heartbeat of another session"))
                );
            }
            BeatOp::Raw(bytes) => {
                let result = open_heartbeat(bytes, &mut opener);
                match authentic(bytes) {
                    Some(sent) => {
                        let expected = match window.accept(sent.counter) {
                            true => Ok(sent),
                            false => Err(DecodeError::Replayed {
                                counter: sent.counter,
                            }),
                        };
                        assert_eq!(result, expected);
                    }
                    None => assert!(
                        matches!(&result, Err(why) if !matches!(why, DecodeError::Replayed { .. })),
                        "forged beat opened: {result:?}"
                    ),
                }
            }
        }
    }
}

fuzz_target!(|input: Input| {
    sealed_stream(&input);
    let (connector, acceptor, _) = ours();
    stranger(
        &input.splits,
        input.stranger,
        ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX,
        |m| matches!(m, Message::Prove(_)),
        &acceptor.opener,
        &connector.sealer,
    );
    stranger(
        &input.splits,
        input.stranger,
        CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX,
        |m| matches!(m, Message::Challenge(_)),
        &connector.opener,
        &acceptor.sealer,
    );
    beats(&input.beats);
});
