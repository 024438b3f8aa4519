//! Incomplete input is not invalid: every proper prefix of a valid frame is
//! `NeedMore`, with a hint that never overshoots the frame.
mod common;

use common::{every_message, TestResult};
use hypha_net::{decode_frame, encode_frame_to_vec, Decoded, FrameDecoder, FRAME_HEADER_BYTES};

#[test]
fn every_split_point_of_every_variant_needs_more() -> TestResult {
    for message in every_message() {
        let frame = encode_frame_to_vec(&message)?;
        for split in 0..frame.len() {
            let prefix = frame.get(..split).ok_or("split in range")?;
            let Decoded::NeedMore(hint) = decode_frame(prefix)? else {
                return Err(format!("{} decoded from {split} bytes", message.name()).into());
            };
            assert!(hint >= 1, "{} at {split}", message.name());
            assert!(split + hint <= frame.len(), "{} at {split}", message.name());
            if split >= FRAME_HEADER_BYTES {
                // With the header in, the hint is exact.
                assert_eq!(split + hint, frame.len(), "{} at {split}", message.name());
            }
        }
    }
    Ok(())
}

#[test]
fn decoder_completes_only_on_the_last_byte() -> TestResult {
    for message in every_message() {
        let frame = encode_frame_to_vec(&message)?;
        let mut decoder = FrameDecoder::new();
        let (last, head) = frame.split_last().ok_or("frame is not empty")?;
        for byte in head {
            decoder.feed(std::slice::from_ref(byte));
            assert_eq!(decoder.next_message()?, None);
            assert!(decoder.wanted_bytes() >= 1);
        }
        decoder.feed(std::slice::from_ref(last));
        assert_eq!(decoder.next_message()?, Some(message));
        assert_eq!(decoder.next_message()?, None);
    }
    Ok(())
}

#[test]
fn a_frame_followed_by_part_of_another_leaves_the_part() -> TestResult {
    let messages = every_message();
    let first = encode_frame_to_vec(&messages[3])?;
    let second = encode_frame_to_vec(&messages[4])?;
    let mut buf = first.clone();
    buf.extend_from_slice(&second[..5]);
    assert_eq!(
        decode_frame(&buf)?,
        Decoded::Frame {
            message: messages[3].clone(),
            consumed: first.len()
        }
    );
    assert!(matches!(
        decode_frame(&buf[first.len()..])?,
        Decoded::NeedMore(3)
    ));
    Ok(())
}
