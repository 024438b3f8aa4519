//! Every way a frame can be broken is a `DecodeError`, detected before any
//! allocation sized by the peer.
mod common;

use common::{every_message, frame_of_payload, hello, unchecked_frame, TestResult};
use hypha_net::{
    decode_frame, encode_frame_to_vec, DecodeError, Decoded, FrameDecoder, Message,
    FRAME_HEADER_BYTES, FRAME_PAYLOAD_BYTES_MAX, MESSAGE_TAG_COUNT,
};

#[test]
fn oversized_length_is_refused_from_the_first_four_bytes() {
    let too_long = u32::try_from(FRAME_PAYLOAD_BYTES_MAX + 1).unwrap_or(u32::MAX);
    for len in [too_long, u32::MAX] {
        let header = len.to_le_bytes();
        assert_eq!(
            decode_frame(&header),
            Err(DecodeError::FrameTooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                max: FRAME_PAYLOAD_BYTES_MAX
            })
        );
    }
    // Three bytes cannot tell yet.
    assert_eq!(decode_frame(&[0xff; 3]), Ok(Decoded::NeedMore(5)));
}

#[test]
fn the_largest_allowed_length_waits_for_its_payload() {
    let len = u32::try_from(FRAME_PAYLOAD_BYTES_MAX).unwrap_or(u32::MAX);
    let mut header = len.to_le_bytes().to_vec();
    header.extend_from_slice(&[0; 4]);
    assert_eq!(
        decode_frame(&header),
        Ok(Decoded::NeedMore(FRAME_PAYLOAD_BYTES_MAX))
    );
}

#[test]
fn decoder_does_not_buffer_past_an_oversized_header() {
    let mut decoder = FrameDecoder::new();
    decoder.feed(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decoder.next_message(),
        Err(DecodeError::FrameTooLarge { .. })
    ));
    decoder.feed(&[0; 1024]);
    assert_eq!(decoder.buffered_bytes(), 0);
}

#[test]
fn a_flipped_bit_anywhere_after_the_length_is_a_bad_crc() -> TestResult {
    let frame = encode_frame_to_vec(&every_message()[4])?;
    for index in 4..frame.len() {
        let mut broken = frame.clone();
        broken[index] ^= 0x10;
        assert!(
            matches!(decode_frame(&broken), Err(DecodeError::BadCrc { .. })),
            "byte {index}"
        );
    }
    Ok(())
}

#[test]
fn bad_crc_reports_both_values() -> TestResult {
    let mut frame = encode_frame_to_vec(&Message::Ping { nonce: 1 })?;
    let actual = crc32fast::hash(&frame[FRAME_HEADER_BYTES..]);
    frame[4..8].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    assert_eq!(
        decode_frame(&frame),
        Err(DecodeError::BadCrc {
            expected: 0x1234_5678,
            actual
        })
    );
    Ok(())
}

#[test]
fn an_empty_payload_is_malformed() {
    assert_eq!(
        decode_frame(&frame_of_payload(&[])),
        Err(DecodeError::Malformed(
            postcard::Error::DeserializeUnexpectedEnd
        ))
    );
}

#[test]
fn a_payload_cut_short_is_malformed() -> TestResult {
    let frame = encode_frame_to_vec(&every_message()[4])?;
    let payload = &frame[FRAME_HEADER_BYTES..];
    for cut in 1..payload.len() {
        let result = decode_frame(&frame_of_payload(&payload[..cut]));
        assert!(
            matches!(result, Err(DecodeError::Malformed(_))),
            "cut {cut}: {result:?}"
        );
    }
    Ok(())
}

#[test]
fn garbage_payloads_are_malformed() {
    // Ping with an unterminated varint nonce; Deleted with option tag 2;
    // Refuse with a reason tag out of range; Error with invalid UTF-8.
    let cases: [&[u8]; 4] = [
        &[
            25, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
        &[13, 1, 2],
        &[2, 99, 0],
        &[19, 1, 0, 2, 0xc3, 0x28],
    ];
    for payload in cases {
        let result = decode_frame(&frame_of_payload(payload));
        assert!(
            matches!(result, Err(DecodeError::Malformed(_))),
            "{payload:?}: {result:?}"
        );
    }
}

#[test]
fn bytes_after_the_message_are_trailing() -> TestResult {
    let frame = unchecked_frame(&Message::Ack {
        term: 0,
        applied_seq: 5,
    });
    let mut payload = frame[FRAME_HEADER_BYTES..].to_vec();
    payload.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        decode_frame(&frame_of_payload(&payload)),
        Err(DecodeError::TrailingBytes { extra: 3 })
    );
    Ok(())
}

#[test]
fn unknown_tags_are_named() {
    // The first tag past the end, and a two-byte tag (300).
    assert_eq!(
        decode_frame(&frame_of_payload(&[MESSAGE_TAG_COUNT as u8])),
        Err(DecodeError::UnknownMessage {
            tag: MESSAGE_TAG_COUNT
        })
    );
    assert_eq!(
        decode_frame(&frame_of_payload(&[0xac, 0x02, 0])),
        Err(DecodeError::UnknownMessage { tag: 300 })
    );
    assert_eq!(
        decode_frame(&frame_of_payload(&[0xff, 0xff, 0xff, 0xff, 0xff])),
        Err(DecodeError::Malformed(
            postcard::Error::DeserializeBadVarint
        ))
    );
}

#[test]
fn a_hello_with_the_wrong_magic_is_bad_magic() {
    let mut wrong = hello();
    wrong.magic = 0x4854_5450; // "HTTP"
    assert_eq!(
        decode_frame(&unchecked_frame(&Message::Hello(wrong))),
        Err(DecodeError::BadMagic { found: 0x4854_5450 })
    );
}

#[test]
fn a_cluster_name_over_its_limit_is_malformed() {
    // Hello by hand: tag, magic, version 3, then a 65-byte cluster name,
    // the rest, the nonce, term and last term.
    let mut payload = vec![0];
    payload.extend(postcard::to_allocvec(&hypha_net::HELLO_MAGIC).unwrap_or_default());
    payload.extend([3, 65]);
    payload.extend([b'c'; 65]);
    payload.extend([1, 7, 0, 0, 0]);
    payload.extend([0x11; hypha_net::NONCE_BYTES]);
    payload.extend([0, 0]);
    let result = decode_frame(&frame_of_payload(&payload));
    assert!(
        matches!(result, Err(DecodeError::Malformed(_))),
        "{result:?}"
    );
    // The same Hello with a 64-byte name decodes.
    let mut fits = payload.clone();
    fits[7] = 64;
    fits.remove(8);
    assert!(matches!(
        decode_frame(&frame_of_payload(&fits)),
        Ok(Decoded::Frame {
            message: Message::Hello(_),
            ..
        })
    ));
}
