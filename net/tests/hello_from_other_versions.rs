//! A `Hello` from another protocol version is always recognisable as one, so
//! the node can answer `Refuse { VersionMismatch }` instead of just closing.
mod common;

use common::{frame_of_payload, hello, unchecked_frame, TestResult};
use hypha_net::{
    check_hello, decode_frame, DecodeError, Decoded, FrameDecoder, Message, RefuseReason,
    ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX, FRAME_HEADER_BYTES, HELLO_MAGIC, NONCE_BYTES,
    PROTOCOL_VERSION,
};

#[test]
fn this_is_protocol_3() {
    assert_eq!(PROTOCOL_VERSION, 3);
}

/// The `Hello` payload a protocol-2 node (the previous release) sent, as its
/// golden test pinned it: version 2, and no term fields.
const V2_HELLO_PAYLOAD: &str = "00 c8a0e5c204 02 036c6162 01 07 00 ac02 00 \
     1111111111111111111111111111111111111111111111111111111111111111";

#[test]
fn a_protocol_2_hello_is_refused_naming_both_versions() {
    let hex: String = V2_HELLO_PAYLOAD.split_whitespace().collect();
    let payload: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let expected = DecodeError::UnsupportedVersion { ours: 3, theirs: 2 };
    let mut decoder = FrameDecoder::with_payload_max(ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX);
    decoder.feed(&frame_of_payload(&payload));
    let err = decoder.next_message().expect_err("a v2 Hello is not ours");
    assert_eq!(err, expected);
    let text = err.to_string();
    assert!(
        text.contains("protocol version 2") && text.contains("PROTOCOL_VERSION 3"),
        "{text}"
    );
}

/// The frame a protocol-1 node sends: our `hello()` with version 1 and
/// without the nonce, which version 2 appended.
fn v1_hello_frame() -> Vec<u8> {
    let mut v1 = hello();
    v1.version = 1;
    let frame = unchecked_frame(&Message::Hello(v1));
    let payload = &frame[FRAME_HEADER_BYTES..frame.len() - NONCE_BYTES];
    frame_of_payload(payload)
}

#[test]
fn a_version_1_hello_without_the_nonce_is_unsupported_version() {
    let expected = DecodeError::UnsupportedVersion { ours: 3, theirs: 1 };
    assert_eq!(decode_frame(&v1_hello_frame()), Err(expected.clone()));
    // Also through the acceptor's handshake decoder.
    let mut decoder = FrameDecoder::with_payload_max(ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX);
    decoder.feed(&v1_hello_frame());
    assert_eq!(decoder.next_message(), Err(expected));
}

#[test]
fn a_hello_of_our_version_without_the_nonce_is_malformed() {
    let frame = unchecked_frame(&Message::Hello(hello()));
    for cut in 1..=NONCE_BYTES {
        let payload = &frame[FRAME_HEADER_BYTES..frame.len() - cut];
        assert_eq!(
            decode_frame(&frame_of_payload(payload)),
            Err(DecodeError::Malformed(
                postcard::Error::DeserializeUnexpectedEnd
            )),
            "{cut} nonce bytes missing"
        );
    }
}

#[test]
fn a_newer_hello_with_appended_fields_is_unsupported_version() -> TestResult {
    let mut newer = hello();
    newer.version = PROTOCOL_VERSION + 1;
    let frame = unchecked_frame(&Message::Hello(newer));
    let mut payload = frame[8..].to_vec();
    payload.extend_from_slice(&[5, 1, 2, 3, 4, 5]); // a field v3 might add
    assert_eq!(
        decode_frame(&frame_of_payload(&payload)),
        Err(DecodeError::UnsupportedVersion {
            ours: PROTOCOL_VERSION,
            theirs: PROTOCOL_VERSION + 1
        })
    );
    Ok(())
}

#[test]
fn an_older_hello_with_fewer_fields_is_unsupported_version() {
    // Tag 0, magic, version 0, and nothing else.
    let mut payload = vec![0];
    payload.extend(postcard::to_allocvec(&HELLO_MAGIC).unwrap_or_default());
    payload.push(0);
    assert_eq!(
        decode_frame(&frame_of_payload(&payload)),
        Err(DecodeError::UnsupportedVersion {
            ours: PROTOCOL_VERSION,
            theirs: 0
        })
    );
}

#[test]
fn a_same_shaped_hello_of_another_version_decodes_and_is_refused() -> TestResult {
    let mut other = hello();
    other.version = PROTOCOL_VERSION + 1;
    let Decoded::Frame { message, .. } = decode_frame(&unchecked_frame(&Message::Hello(other)))?
    else {
        return Err("whole frame reported as partial".into());
    };
    let Message::Hello(received) = message else {
        return Err("not a Hello".into());
    };
    assert_eq!(
        check_hello(&received, "lab"),
        Err(RefuseReason::VersionMismatch {
            ours: PROTOCOL_VERSION
        })
    );
    Ok(())
}

#[test]
fn a_broken_hello_of_our_version_stays_malformed() {
    let mut payload = vec![0];
    payload.extend(postcard::to_allocvec(&HELLO_MAGIC).unwrap_or_default());
    payload.extend(postcard::to_allocvec(&PROTOCOL_VERSION).unwrap_or_default());
    assert_eq!(
        decode_frame(&frame_of_payload(&payload)),
        Err(DecodeError::Malformed(
            postcard::Error::DeserializeUnexpectedEnd
        ))
    );
}

#[test]
fn a_non_hypha_first_frame_is_bad_magic_even_if_it_does_not_parse() {
    // Tag 0 and a magic of "HTTP", then junk.
    let mut payload = vec![0];
    payload.extend(postcard::to_allocvec(&0x4854_5450u32).unwrap_or_default());
    payload.extend_from_slice(b"\xff\xff\xff\xff");
    assert_eq!(
        decode_frame(&frame_of_payload(&payload)),
        Err(DecodeError::BadMagic { found: 0x4854_5450 })
    );
}
