//! Seeded random corruption of valid frames and heartbeats: the decoders
//! return errors or `NeedMore`, and never panic. (The fuzz targets in
//! `fuzz/` explore further; this runs in every `cargo test`.)
mod common;

use common::{every_message, frame_of_payload, TestResult};
use hypha_net::{
    decode_frame, decode_heartbeat, encode_frame_to_vec, encode_heartbeat, Decoded, FrameDecoder,
    Heartbeat, Role, FRAME_HEADER_BYTES,
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
fn corrupted_heartbeats_never_panic() -> TestResult {
    let mut rng = Rng(7);
    let cluster = heapless::String::try_from("lab").map_err(|()| "cluster fits")?;
    let beat = encode_heartbeat(&Heartbeat::new(cluster, Role::Master, 1))?;
    for _ in 0..20_000 {
        let mut payload = beat[4..].to_vec();
        mutate(&mut rng, &mut payload);
        let mut datagram = crc32fast::hash(&payload).to_le_bytes().to_vec();
        datagram.extend(payload);
        let _ = decode_heartbeat(&datagram);
    }
    Ok(())
}
