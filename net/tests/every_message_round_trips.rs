//! Every message variant survives encode → decode, through `decode_frame`
//! and through `FrameDecoder`, and carries its pinned tag.
mod common;

use common::{every_message, TestResult};
use hypha_net::{
    decode_frame, encode_frame, encode_frame_to_vec, Decoded, ErrorCode, FrameDecoder, Message,
    Refuse, RefuseReason, Role, Welcome, FRAME_HEADER_BYTES, MESSAGE_TAG_COUNT, PROTOCOL_VERSION,
};

#[test]
fn every_variant_round_trips_through_decode_frame() -> TestResult {
    for message in every_message() {
        let frame = encode_frame_to_vec(&message)?;
        let decoded = decode_frame(&frame)?;
        assert_eq!(
            decoded,
            Decoded::Frame {
                message: message.clone(),
                consumed: frame.len()
            },
            "{}",
            message.name()
        );
    }
    Ok(())
}

#[test]
fn samples_cover_every_tag_in_order() {
    let messages = every_message();
    assert_eq!(
        messages.len(),
        usize::try_from(MESSAGE_TAG_COUNT).unwrap_or(0)
    );
    for (index, message) in messages.iter().enumerate() {
        assert_eq!(
            usize::try_from(message.tag()).ok(),
            Some(index),
            "{}",
            message.name()
        );
    }
}

#[test]
fn the_tag_is_the_first_payload_byte() -> TestResult {
    for message in every_message() {
        let frame = encode_frame_to_vec(&message)?;
        let first = frame.get(FRAME_HEADER_BYTES).copied().map(u32::from);
        assert_eq!(first, Some(message.tag()), "{}", message.name());
    }
    Ok(())
}

#[test]
fn a_stream_of_every_variant_decodes_fed_in_odd_chunks() -> TestResult {
    let messages = every_message();
    let mut stream = Vec::new();
    for message in &messages {
        encode_frame(message, &mut stream)?;
    }
    for chunk_len in [1, 3, 7, 64, 4096] {
        let mut decoder = FrameDecoder::new();
        let mut out = Vec::new();
        for chunk in stream.chunks(chunk_len) {
            decoder.feed(chunk);
            while let Some(message) = decoder.next_message()? {
                out.push(message);
            }
        }
        assert_eq!(out, messages, "chunks of {chunk_len}");
        assert_eq!(decoder.buffered_bytes(), 0);
    }
    Ok(())
}

#[test]
fn nested_enum_variants_round_trip() -> TestResult {
    let reasons = [
        RefuseReason::BadMagic,
        RefuseReason::VersionMismatch { ours: 1 },
        RefuseReason::WrongCluster,
        RefuseReason::NotAllowed,
        RefuseReason::HistoryMismatch { ours: u64::MAX },
        RefuseReason::NotMaster,
        RefuseReason::Busy,
        RefuseReason::Unexpected,
        RefuseReason::NotAuthenticated,
        RefuseReason::StaleTerm { current: u64::MAX },
        RefuseReason::Removed { epoch: u64::MAX },
    ];
    let codes = [
        ErrorCode::NotFound,
        ErrorCode::TooLarge,
        ErrorCode::BadRequest,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::ReadOnly,
        ErrorCode::NotMaster,
        ErrorCode::Internal,
        ErrorCode::SyncFailed {
            confirmed: 0,
            wanted: u32::MAX,
        },
        ErrorCode::OutcomeUnknown,
        ErrorCode::Conflict { seq: None },
        ErrorCode::Conflict {
            seq: Some(u64::MAX),
        },
    ];
    let roles = [
        Role::Master,
        Role::Worker,
        Role::Edge,
        Role::Client,
        Role::Member,
        Role::Witness,
    ];
    let mut messages: Vec<Message> = Vec::new();
    messages.extend(reasons.map(|reason| Message::Refuse(Refuse::new(reason, ""))));
    messages.extend(codes.map(|code| Message::error(1, code, "é")));
    messages.extend(roles.map(|role| {
        Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            role,
            node_id: 0,
            history_id: 0,
            commit_seq: 0,
            term: 0,
            terms: Vec::new(),
        })
    }));
    for message in messages {
        let frame = encode_frame_to_vec(&message)?;
        let Decoded::Frame { message: back, .. } = decode_frame(&frame)? else {
            return Err("whole frame reported as partial".into());
        };
        assert_eq!(back, message);
    }
    Ok(())
}

#[test]
fn req_id_is_reported_for_requests_and_responses_only() {
    for message in every_message() {
        let tag = message.tag();
        let expect_req_id = (3..=19).contains(&tag) || (27..=28).contains(&tag) || tag >= 32;
        assert_eq!(
            message.req_id().is_some(),
            expect_req_id,
            "{}",
            message.name()
        );
    }
}
