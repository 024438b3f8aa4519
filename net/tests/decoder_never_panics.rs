//! Seeded random corruption of valid frames and heartbeats: the decoders
//! return errors or `NeedMore`, and never panic. (The fuzz targets in
//! `fuzz/` explore further; this runs in every `cargo test`.)
mod common;

use common::{
    every_message, frame_of_payload, handshake_messages, hello, session_pair, TestResult,
};
use hypha_net::{
    decode_frame, decode_heartbeat, encode_frame, encode_frame_to_vec, encode_heartbeat,
    open_heartbeat, seal_frame, Decoded, FrameDecoder, Heartbeat, Message, Role,
    ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX, FRAME_HEADER_BYTES, HEARTBEAT_CRC_BYTES,
    HEARTBEAT_MAC_BYTES,
};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    match rng.below(4) {
        0 => {
            let index = rng.below(bytes.len());
            if let Some(byte) = bytes.get_mut(index) {
                *byte = rng.next() as u8;
            }
        }
        1 => {
            let index = rng.below(bytes.len() + 1);
            bytes.insert(index, rng.next() as u8);
        }
        2 => {
            if !bytes.is_empty() {
                let index = rng.below(bytes.len());
                bytes.remove(index);
            }
        }
        _ => bytes.truncate(rng.below(bytes.len() + 1)),
    }
}

#[test]
fn corrupted_payloads_with_good_crcs_never_panic() -> TestResult {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let payloads: Vec<Vec<u8>> = every_message()
        .iter()
        .map(|message| {
            encode_frame_to_vec(message).map(|frame| frame[FRAME_HEADER_BYTES..].to_vec())
        })
        .collect::<Result<_, _>>()?;
    let mut decoded = 0;
    for round in 0..20_000 {
        let mut payload = payloads[round % payloads.len()].clone();
        for _ in 0..=rng.below(3) {
            mutate(&mut rng, &mut payload);
        }
        // The CRC is recomputed so the corruption reaches postcard and validate.
        if let Ok(Decoded::Frame { message, .. }) = decode_frame(&frame_of_payload(&payload)) {
            assert_eq!(message.validate(), Ok(()));
            decoded += 1;
        }
    }
    assert!(
        decoded > 0,
        "some mutations (e.g. of a varint) still decode"
    );
    Ok(())
}

#[test]
fn corrupted_streams_never_panic_the_buffering_decoder() -> TestResult {
    let mut rng = Rng(42);
    let mut stream = Vec::new();
    for message in every_message() {
        stream.extend(encode_frame_to_vec(&message)?);
    }
    for _ in 0..2_000 {
        let mut bytes = stream.clone();
        mutate(&mut rng, &mut bytes);
        let mut decoder = FrameDecoder::new();
        for chunk in bytes.chunks(1 + rng.below(64)) {
            decoder.feed(chunk);
            while let Ok(Some(_)) = decoder.next_message() {}
        }
    }
    Ok(())
}

#[test]
fn corrupted_authenticated_streams_never_panic_and_never_lie() -> TestResult {
    // The acceptor's side of a connection: the plain Hello and Prove under
    // the handshake limit, then frames sealed by the connector. Whatever
    // the corruption, every message the decoder hands out is the one that
    // was sent in its place: a changed frame fails its CRC or its MAC.
    let (mut connector, acceptor) = session_pair();
    let (_, prove) = handshake_messages();
    let mut sent = vec![Message::Hello(hello()), Message::Prove(prove)];
    let mut stream = Vec::new();
    for message in &sent {
        encode_frame(message, &mut stream)?;
    }
    for message in every_message() {
        seal_frame(&message, &mut connector.sealer, &mut stream)?;
        sent.push(message);
    }
    let mut rng = Rng(0x5eed);
    let mut sealed_total = 0;
    for round in 0..2_000 {
        let mut bytes = stream.clone();
        for _ in 0..=round % 3 {
            mutate(&mut rng, &mut bytes);
        }
        let mut decoder = FrameDecoder::with_payload_max(ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX);
        let mut received = Vec::new();
        for chunk in bytes.chunks(1 + rng.below(64)) {
            decoder.feed(chunk);
            while let Ok(Some(message)) = decoder.next_message() {
                let prove = matches!(message, Message::Prove(_));
                received.push(message);
                if prove && !decoder.is_authenticated() {
                    decoder.authenticate(acceptor.opener.clone());
                }
            }
        }
        // Plain frames are only CRC'd: a mutation may slip through them, but
        // none past the MAC.
        let sealed = received.len().saturating_sub(2);
        assert_eq!(
            received.get(2..).unwrap_or_default(),
            &sent[2..2 + sealed],
            "round {round}: a sealed frame decoded to another message"
        );
        sealed_total += sealed;
    }
    assert!(
        sealed_total > 0,
        "corruption late in the stream leaves sealed frames before it"
    );
    Ok(())
}

#[test]
fn corrupted_heartbeats_never_panic() -> TestResult {
    let mut rng = Rng(7);
    let cluster = heapless::String::try_from("lab").map_err(|()| "cluster fits")?;
    let (mut connector, acceptor) = session_pair();
    let beat = encode_heartbeat(
        &Heartbeat::new(cluster, Role::Master, 1),
        &mut connector.beats_out,
    )?;
    let (signed, mac) = beat.split_at(beat.len() - HEARTBEAT_MAC_BYTES);
    for round in 0..20_000 {
        let mut payload = signed[HEARTBEAT_CRC_BYTES..].to_vec();
        mutate(&mut rng, &mut payload);
        let mut datagram = crc32fast::hash(&payload).to_le_bytes().to_vec();
        datagram.extend(payload);
        if round % 2 == 0 {
            datagram.extend_from_slice(mac);
        } else {
            // Cut or grown MACs, and datagrams too short for one.
            let mut mac = mac.to_vec();
            mutate(&mut rng, &mut mac);
            datagram.extend(mac);
        }
        let _ = decode_heartbeat(&datagram);
        let mut opener = acceptor.beats_in.clone();
        if let Ok(opened) = open_heartbeat(&datagram, &mut opener) {
            // Only the beat that was sent opens.
            assert_eq!(datagram, beat.as_slice(), "round {round}: {opened:?}");
        }
        // Raw bytes, MAC and all, mutated.
        let mut raw = beat.to_vec();
        mutate(&mut rng, &mut raw);
        let _ = decode_heartbeat(&raw);
        let mut opener = acceptor.beats_in.clone();
        if open_heartbeat(&raw, &mut opener).is_ok() {
            assert_eq!(raw, beat.as_slice(), "round {round}");
        }
    }
    Ok(())
}
