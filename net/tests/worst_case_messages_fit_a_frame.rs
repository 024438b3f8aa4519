//! The largest messages a sender may build encode within the `*_WORST`
//! bounds that `limits` proves fit a frame.
mod common;

use common::{record, TestResult};
use hypha_net::{
    decode_frame, encode_frame_to_vec, Decoded, Message, BATCH_BYTES_MAX, FRAME_HEADER_BYTES,
    FRAME_PAYLOAD_BYTES_MAX, KEY_BYTES_MAX, PUT_MESSAGE_BYTES_WORST, RECORDS_MESSAGE_BYTES_WORST,
    VALUE_BYTES_MAX,
};

#[test]
fn a_full_batch_plus_one_largest_record_fits_a_frame() -> TestResult {
    let key = vec![b'k'; KEY_BYTES_MAX];
    let message = Message::Records {
        first_seq: u64::MAX - 1,
        records: vec![
            record(
                u64::MAX - 1,
                &key,
                &vec![1; BATCH_BYTES_MAX - KEY_BYTES_MAX],
            ),
            record(u64::MAX, &key, &vec![2; VALUE_BYTES_MAX]),
        ],
    };
    let frame = encode_frame_to_vec(&message)?;
    let payload_len = frame.len() - FRAME_HEADER_BYTES;
    assert!(payload_len <= RECORDS_MESSAGE_BYTES_WORST);
    assert!(payload_len <= FRAME_PAYLOAD_BYTES_MAX);
    assert_eq!(
        decode_frame(&frame)?,
        Decoded::Frame {
            message,
            consumed: frame.len()
        }
    );
    Ok(())
}

#[test]
fn the_largest_put_is_exactly_its_worst_case() -> TestResult {
    let message = Message::Put {
        req_id: u64::MAX,
        key: vec![b'k'; KEY_BYTES_MAX],
        value: vec![b'v'; VALUE_BYTES_MAX],
    };
    let frame = encode_frame_to_vec(&message)?;
    assert_eq!(frame.len() - FRAME_HEADER_BYTES, PUT_MESSAGE_BYTES_WORST);
    Ok(())
}
