//! Once a connection is authenticated, every frame carries a MAC over its
//! bytes and its position in the stream: a `FrameDecoder` that checks them
//! takes exactly the frames the peer sealed, in order, and nothing else.
//! Before that, the handshake decoder refuses frames longer than a
//! handshake message from the first 4 bytes. And a peer without the key
//! gets no session at all.
mod common;

use common::{
    cluster, every_message, handshake_messages, hello, other_session_pair, session_pair,
    try_session_pair, TestResult, ACCEPTOR_NONCE, KEY, OTHER_KEY,
};
use hypha_net::{
    connector_finish, decode_heartbeat, encode_frame, encode_frame_to_vec, encode_heartbeat,
    open_heartbeat, seal_frame, Acceptor, AuthError, ClusterKeys, DecodeError, FrameDecoder,
    Heartbeat, Message, Opener, Prove, Role, Sealer, ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX,
    CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX, FRAME_HEADER_BYTES, FRAME_MAC_BYTES,
    FRAME_PAYLOAD_BYTES_MAX, HEARTBEAT_CRC_BYTES, HEARTBEAT_MAC_BYTES, PROOF_BYTES,
};

/// The sealed frame of each of `messages`, in order.
fn seal_each(
    sealer: &mut Sealer,
    messages: &[Message],
) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
    let mut frames = Vec::new();
    for message in messages {
        let mut frame = Vec::new();
        seal_frame(message, sealer, &mut frame)?;
        frames.push(frame);
    }
    Ok(frames)
}

fn ping(nonce: u64) -> Message {
    Message::Ping { nonce }
}

fn pings(n: u64) -> Vec<Message> {
    (0..n).map(ping).collect()
}

/// A decoder that checks frames with `opener`.
fn authenticated(opener: Opener) -> FrameDecoder {
    let mut decoder = FrameDecoder::new();
    decoder.authenticate(opener);
    decoder
}

/// Feeds `frames` one by one and takes messages until an error: the
/// messages, and the error if there was one.
fn run(decoder: &mut FrameDecoder, frames: &[&[u8]]) -> (Vec<Message>, Option<DecodeError>) {
    let mut messages = Vec::new();
    for frame in frames {
        decoder.feed(frame);
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(why) => return (messages, Some(why)),
            }
        }
    }
    (messages, None)
}

#[test]
fn frames_sealed_in_order_are_accepted_in_any_chunking() -> TestResult {
    let messages = every_message();
    let mut stream = Vec::new();
    let (mut connector, acceptor) = session_pair();
    for message in &messages {
        seal_frame(message, &mut connector.sealer, &mut stream)?;
    }
    assert_eq!(connector.sealer.counter(), u64::try_from(messages.len())?);
    for chunk_len in [1, 5, 16, 17, 64, 4096] {
        let mut decoder = authenticated(acceptor.opener.clone());
        let chunks: Vec<&[u8]> = stream.chunks(chunk_len).collect();
        let (received, error) = run(&mut decoder, &chunks);
        assert_eq!(error, None, "chunks of {chunk_len}");
        assert_eq!(received, messages, "chunks of {chunk_len}");
        assert_eq!(decoder.buffered_bytes(), 0);
    }
    Ok(())
}

#[test]
fn both_directions_have_their_own_keys() -> TestResult {
    let (mut connector, mut acceptor) = session_pair();
    // Acceptor to connector works too.
    let back = seal_each(&mut acceptor.sealer, &pings(2))?;
    let mut decoder = authenticated(connector.opener.clone());
    let (received, error) = run(&mut decoder, &[&back[0], &back[1]]);
    assert_eq!((received, error), (pings(2), None));
    // A frame reflected to its sender fails: the other direction's key.
    let sent = seal_each(&mut connector.sealer, &pings(1))?;
    let mut own = authenticated(connector.opener);
    assert_eq!(
        run(&mut own, &[&sent[0]]),
        (vec![], Some(DecodeError::BadMac { counter: 0 }))
    );
    Ok(())
}

#[test]
fn an_injected_plain_frame_is_a_bad_mac() -> TestResult {
    let (mut connector, acceptor) = session_pair();
    let sealed = seal_each(&mut connector.sealer, &pings(2))?;
    let plain = encode_frame_to_vec(&ping(99))?;

    // Followed by a genuine frame: the MAC is read from that frame's bytes.
    let mut decoder = authenticated(acceptor.opener.clone());
    assert_eq!(
        run(&mut decoder, &[&sealed[0], &plain, &sealed[1]]),
        (vec![ping(0)], Some(DecodeError::BadMac { counter: 1 }))
    );

    // Padded with a MAC-sized run of zeros, or of anything.
    for pad in [[0u8; FRAME_MAC_BYTES], [0xff; FRAME_MAC_BYTES]] {
        let mut padded = plain.clone();
        padded.extend_from_slice(&pad);
        let mut decoder = authenticated(acceptor.opener.clone());
        assert_eq!(
            run(&mut decoder, &[&sealed[0], &padded]),
            (vec![ping(0)], Some(DecodeError::BadMac { counter: 1 }))
        );
    }

    // Alone: the decoder waits for its MAC and never hands it out.
    let mut decoder = authenticated(acceptor.opener.clone());
    assert_eq!(run(&mut decoder, &[&plain]), (vec![], None));
    assert_eq!(decoder.buffered_bytes(), plain.len());
    assert_eq!(decoder.wanted_bytes(), FRAME_MAC_BYTES);
    Ok(())
}

#[test]
fn a_frame_sealed_by_another_session_is_a_bad_mac() -> TestResult {
    let (_, acceptor) = session_pair();
    let (mut stranger, _) = other_session_pair();
    assert_ne!(stranger.id, acceptor.id);
    let theirs = seal_each(&mut stranger.sealer, &pings(1))?;
    let mut decoder = authenticated(acceptor.opener.clone());
    assert_eq!(
        run(&mut decoder, &[&theirs[0]]),
        (vec![], Some(DecodeError::BadMac { counter: 0 }))
    );

    // Also in the middle of a good stream.
    let (mut connector, acceptor) = session_pair();
    let ours = seal_each(&mut connector.sealer, &pings(2))?;
    let mut decoder = authenticated(acceptor.opener);
    assert_eq!(
        run(&mut decoder, &[&ours[0], &theirs[0], &ours[1]]),
        (vec![ping(0)], Some(DecodeError::BadMac { counter: 1 }))
    );
    Ok(())
}

#[test]
fn a_replayed_frame_is_a_bad_mac() -> TestResult {
    let (mut connector, acceptor) = session_pair();
    let sealed = seal_each(&mut connector.sealer, &pings(2))?;
    let mut decoder = authenticated(acceptor.opener.clone());
    assert_eq!(
        run(&mut decoder, &[&sealed[0], &sealed[0]]),
        (vec![ping(0)], Some(DecodeError::BadMac { counter: 1 }))
    );
    // A frame of this session replayed into a fresh connection with the
    // same key (another acceptor nonce) fails too.
    let (_, later) = other_session_pair();
    let mut decoder = authenticated(later.opener);
    assert_eq!(
        run(&mut decoder, &[&sealed[0]]),
        (vec![], Some(DecodeError::BadMac { counter: 0 }))
    );
    Ok(())
}

#[test]
fn swapped_frames_are_a_bad_mac() -> TestResult {
    let (mut connector, acceptor) = session_pair();
    let sealed = seal_each(&mut connector.sealer, &pings(3))?;
    let mut decoder = authenticated(acceptor.opener.clone());
    assert_eq!(
        run(&mut decoder, &[&sealed[0], &sealed[2], &sealed[1]]),
        (vec![ping(0)], Some(DecodeError::BadMac { counter: 1 }))
    );
    let mut decoder = authenticated(acceptor.opener);
    assert_eq!(
        run(&mut decoder, &[&sealed[1], &sealed[0]]),
        (vec![], Some(DecodeError::BadMac { counter: 0 }))
    );
    Ok(())
}

#[test]
fn a_dropped_frame_makes_the_next_a_bad_mac() -> TestResult {
    let (mut connector, acceptor) = session_pair();
    let sealed = seal_each(&mut connector.sealer, &pings(3))?;
    let mut decoder = authenticated(acceptor.opener.clone());
    assert_eq!(
        run(&mut decoder, &[&sealed[0], &sealed[2]]),
        (vec![ping(0)], Some(DecodeError::BadMac { counter: 1 }))
    );
    let mut decoder = authenticated(acceptor.opener);
    assert_eq!(
        run(&mut decoder, &[&sealed[1]]),
        (vec![], Some(DecodeError::BadMac { counter: 0 }))
    );
    Ok(())
}

#[test]
fn a_flipped_byte_is_a_bad_mac() -> TestResult {
    let (mut connector, acceptor) = session_pair();
    let put = Message::Put {
        req_id: 3,
        key: b"k".to_vec(),
        value: b"value".to_vec(),
    };
    let sealed = seal_each(&mut connector.sealer, &[put, ping(1)])?;
    let (frame, next) = (&sealed[0], &sealed[1]);
    for index in 0..frame.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut broken = frame.clone();
            broken[index] ^= mask;
            let mut decoder = authenticated(acceptor.opener.clone());
            let (received, error) = run(&mut decoder, &[&broken, next]);
            assert_eq!(received, vec![], "byte {index} ^ {mask:#x}");
            if index >= 4 {
                // CRC, payload or MAC: the MAC is checked before the CRC.
                assert_eq!(
                    error,
                    Some(DecodeError::BadMac { counter: 0 }),
                    "byte {index} ^ {mask:#x}"
                );
            } else {
                // The length: the frame ends elsewhere, so its MAC is read
                // from other bytes (a bad MAC), or it waits for bytes that
                // never come, or is too long. Never a message.
                assert!(
                    matches!(
                        error,
                        None | Some(
                            DecodeError::BadMac { counter: 0 } | DecodeError::FrameTooLarge { .. }
                        )
                    ),
                    "byte {index} ^ {mask:#x}: {error:?}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn a_truncated_frame_needs_more_and_is_never_a_message() -> TestResult {
    let (mut connector, acceptor) = session_pair();
    let sealed = seal_each(&mut connector.sealer, &pings(1))?;
    let frame = &sealed[0];
    for missing in 1..=frame.len() {
        let cut = frame.len() - missing;
        let mut decoder = authenticated(acceptor.opener.clone());
        decoder.feed(&frame[..cut]);
        // Missing only MAC bytes, it holds a whole plain frame: still no.
        assert_eq!(decoder.next_message(), Ok(None), "{missing} bytes missing");
        assert!(decoder.wanted_bytes() >= 1);
        assert!(decoder.wanted_bytes() <= missing);
        if cut >= FRAME_HEADER_BYTES {
            assert_eq!(
                decoder.wanted_bytes(),
                missing,
                "exact once the header is in"
            );
        }
        decoder.feed(&frame[cut..]);
        assert_eq!(decoder.next_message(), Ok(Some(ping(0))));
    }
    Ok(())
}

#[test]
fn the_handshake_decoder_refuses_a_long_frame_from_its_first_four_bytes() {
    let max = ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX;
    let too_long = u32::try_from(max + 1).unwrap_or(u32::MAX);
    for len in [too_long, 1 << 20, u32::MAX] {
        let mut decoder = FrameDecoder::with_payload_max(max);
        let header = len.to_le_bytes();
        decoder.feed(&header[..3]);
        assert_eq!(decoder.next_message(), Ok(None));
        decoder.feed(&header[3..]);
        assert_eq!(
            decoder.next_message(),
            Err(DecodeError::FrameTooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                max
            })
        );
        decoder.feed(&[0; 1024]);
        assert_eq!(
            decoder.buffered_bytes(),
            0,
            "nothing buffered after the refusal"
        );
    }
    // The largest handshake payload waits for its bytes.
    let mut decoder = FrameDecoder::with_payload_max(max);
    decoder.feed(&u32::try_from(max).unwrap_or(u32::MAX).to_le_bytes());
    assert_eq!(decoder.next_message(), Ok(None));
    // The connector's limit (a whole Refuse) works the same way, and no
    // limit reaches past FRAME_PAYLOAD_BYTES_MAX.
    let mut decoder = FrameDecoder::with_payload_max(CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX);
    decoder.feed(
        &u32::try_from(CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX + 1)
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    assert!(matches!(
        decoder.next_message(),
        Err(DecodeError::FrameTooLarge { .. })
    ));
    let mut decoder = FrameDecoder::with_payload_max(usize::MAX);
    decoder.feed(&u32::MAX.to_le_bytes());
    assert_eq!(
        decoder.next_message(),
        Err(DecodeError::FrameTooLarge {
            len: usize::try_from(u32::MAX).unwrap_or(usize::MAX),
            max: FRAME_PAYLOAD_BYTES_MAX
        })
    );
}

#[test]
fn after_authenticate_frames_may_be_long() -> TestResult {
    let (mut connector, acceptor) = session_pair();
    let (_, prove) = handshake_messages();
    let big = Message::Put {
        req_id: 1,
        key: b"k".to_vec(),
        value: vec![0xab; 64 * 1024],
    };
    let sealed = seal_each(&mut connector.sealer, &[big.clone(), ping(1)])?;
    assert!(sealed[0].len() > ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX + FRAME_HEADER_BYTES);

    // What the connector sends: Hello and Prove plain, then sealed frames,
    // all in one write. The decoder authenticates right after the Prove;
    // the bytes behind it are checked as sealed frames.
    let mut stream = Vec::new();
    encode_frame(&Message::Hello(hello()), &mut stream)?;
    encode_frame(&Message::Prove(prove.clone()), &mut stream)?;
    stream.extend_from_slice(&sealed[0]);
    stream.extend_from_slice(&sealed[1]);
    let mut decoder = FrameDecoder::with_payload_max(ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX);
    decoder.feed(&stream);
    assert_eq!(decoder.next_message()?, Some(Message::Hello(hello())));
    assert_eq!(decoder.next_message()?, Some(Message::Prove(prove.clone())));
    assert!(!decoder.is_authenticated());
    decoder.authenticate(acceptor.opener.clone());
    assert!(decoder.is_authenticated());
    assert_eq!(decoder.next_message()?, Some(big));
    assert_eq!(decoder.next_message()?, Some(ping(1)));
    assert_eq!(decoder.next_message()?, None);

    // Without `authenticate`, the long frame is refused.
    let mut decoder = FrameDecoder::with_payload_max(ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX);
    decoder.feed(&stream);
    assert!(decoder.next_message()?.is_some());
    assert!(decoder.next_message()?.is_some());
    assert!(matches!(
        decoder.next_message(),
        Err(DecodeError::FrameTooLarge { .. })
    ));

    // A plain frame after the Prove, where a sealed one must come.
    let mut stream = Vec::new();
    encode_frame(&Message::Prove(prove), &mut stream)?;
    encode_frame(&ping(1), &mut stream)?;
    stream.extend_from_slice(&[0; FRAME_MAC_BYTES]);
    let mut decoder = FrameDecoder::with_payload_max(ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX);
    decoder.feed(&stream);
    assert!(decoder.next_message()?.is_some());
    decoder.authenticate(acceptor.opener);
    assert_eq!(
        decoder.next_message(),
        Err(DecodeError::BadMac { counter: 0 })
    );
    Ok(())
}

#[test]
fn a_peer_with_another_key_gets_no_session() -> TestResult {
    let ours = ClusterKeys::one(KEY);
    let theirs = ClusterKeys::one(OTHER_KEY);
    // A connector without our key cannot check our challenge...
    assert_eq!(
        try_session_pair(&theirs, &ours, ACCEPTOR_NONCE).err(),
        Some(AuthError::PeerHasAnotherKey)
    );
    // ... nor can it check one from an acceptor without its key.
    assert_eq!(
        try_session_pair(&ours, &theirs, ACCEPTOR_NONCE).err(),
        Some(AuthError::PeerHasAnotherKey)
    );
    // The insecure key is just another key.
    assert_eq!(
        try_session_pair(&ClusterKeys::insecure(), &ours, ACCEPTOR_NONCE).err(),
        Some(AuthError::PeerHasAnotherKey)
    );
    assert_eq!(
        try_session_pair(&ours, &ClusterKeys::insecure(), ACCEPTOR_NONCE).err(),
        Some(AuthError::PeerHasAnotherKey)
    );
    let insecure = ClusterKeys::insecure();
    assert!(try_session_pair(&insecure, &insecure, ACCEPTOR_NONCE).is_ok());

    // On the acceptor's side: a Prove made with another key (a connector
    // that answered a challenge of its own key), a zero proof, and our own
    // proof reflected back are all refused.
    let (pending_theirs, challenge_theirs) = Acceptor::new(&theirs, &hello(), ACCEPTOR_NONCE);
    let (prove_theirs, _) = connector_finish(&theirs, &hello(), &challenge_theirs)?;
    assert!(pending_theirs.finish(&prove_theirs).is_ok());
    let (ours_challenge, ours_prove) = handshake_messages();
    let forged = [
        prove_theirs,
        Prove {
            proof: [0; PROOF_BYTES],
        },
        Prove {
            proof: ours_challenge.proof,
        },
    ];
    for prove in forged {
        let (pending, _) = Acceptor::new(&ours, &hello(), ACCEPTOR_NONCE);
        assert_eq!(
            pending.finish(&prove).err(),
            Some(AuthError::PeerHasAnotherKey)
        );
    }
    // The genuine proof replayed into a connection with another acceptor
    // nonce is refused too.
    let (pending, _) = Acceptor::new(&ours, &hello(), [0x44; 32]);
    assert_eq!(
        pending.finish(&ours_prove).err(),
        Some(AuthError::PeerHasAnotherKey)
    );
    Ok(())
}

fn beat() -> Heartbeat {
    let mut beat = Heartbeat::new(cluster("lab"), Role::Worker, 3);
    beat.applied_seq = 300;
    beat
}

#[test]
fn heartbeats_of_one_session_are_refused_by_another() -> TestResult {
    let (mut connector, mut acceptor) = session_pair();
    let (_, mut stranger) = other_session_pair();
    let bytes = encode_heartbeat(&beat(), &mut connector.beats_out)?;

    // Another session's opener: its id does not match.
    assert_eq!(
        open_heartbeat(&bytes, &mut stranger.beats_in),
        Err(DecodeError::Invalid("heartbeat of another session"))
    );
    // With the other session's id written in (and the CRC fixed), the MAC
    // does not match.
    let mut relabelled = decode_heartbeat(&bytes)?;
    relabelled.session = stranger.id;
    let payload = postcard::to_allocvec(&relabelled)?;
    let mut forged = crc32fast::hash(&payload).to_le_bytes().to_vec();
    forged.extend_from_slice(&payload);
    forged.extend_from_slice(&bytes[bytes.len() - HEARTBEAT_MAC_BYTES..]);
    assert_eq!(decode_heartbeat(&forged)?, relabelled);
    assert_eq!(
        open_heartbeat(&forged, &mut stranger.beats_in),
        Err(DecodeError::BadMac { counter: 1 })
    );
    // Sent back to its sender: the other direction's key.
    assert_eq!(
        open_heartbeat(&bytes, &mut connector.beats_in),
        Err(DecodeError::BadMac { counter: 1 })
    );
    // A stranger's own beat, sealed with its keys, to our acceptor.
    let (mut other_connector, _) = other_session_pair();
    let other = encode_heartbeat(&beat(), &mut other_connector.beats_out)?;
    assert_eq!(
        open_heartbeat(&other, &mut acceptor.beats_in),
        Err(DecodeError::Invalid("heartbeat of another session"))
    );
    // None of that used up the genuine beat's counter.
    assert_eq!(open_heartbeat(&bytes, &mut acceptor.beats_in)?.counter, 1);
    Ok(())
}

#[test]
fn a_changed_heartbeat_counter_is_a_bad_mac() -> TestResult {
    // Replaying a beat under a fresh counter (to slip past the replay
    // window) breaks its MAC.
    let (mut connector, mut acceptor) = session_pair();
    let bytes = encode_heartbeat(&beat(), &mut connector.beats_out)?;
    let mut bumped = decode_heartbeat(&bytes)?;
    bumped.counter = 2;
    let payload = postcard::to_allocvec(&bumped)?;
    let mut forged = crc32fast::hash(&payload).to_le_bytes().to_vec();
    forged.extend_from_slice(&payload);
    forged.extend_from_slice(&bytes[HEARTBEAT_CRC_BYTES + payload.len()..]);
    assert_eq!(forged.len(), bytes.len());
    assert_eq!(
        open_heartbeat(&forged, &mut acceptor.beats_in),
        Err(DecodeError::BadMac { counter: 2 })
    );
    Ok(())
}
