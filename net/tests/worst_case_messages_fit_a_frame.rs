//! The largest messages a sender may build encode within the `*_WORST`
//! bounds that `limits` proves fit a frame.
mod common;

use common::{cluster, record, TestResult};
use hypha_net::{
    decode_frame, encode_frame_to_vec, varint_bytes, Challenge, Decoded, FrameDecoder, Hello,
    Message, Prove, Purpose, Refuse, RefuseReason, Role, ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX,
    BATCH_BYTES_MAX, CHALLENGE_MESSAGE_BYTES_WORST, CLUSTER_NAME_BYTES_MAX,
    CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX, FRAME_HEADER_BYTES, FRAME_PAYLOAD_BYTES_MAX,
    HELLO_MAGIC, HELLO_MESSAGE_BYTES_WORST, KEY_BYTES_MAX, MESSAGE_STRING_BYTES_MAX, NONCE_BYTES,
    PROOF_BYTES, PROTOCOL_VERSION, PROVE_MESSAGE_BYTES_WORST, PUT_MESSAGE_BYTES_WORST,
    RECORDS_MESSAGE_BYTES_WORST, REFUSE_MESSAGE_BYTES_WORST, VALUE_BYTES_MAX, VARINT_U16_BYTES_MAX,
};
use hypha_net::{
    Membership, Slot, Standing, ADDR_BYTES_MAX, MEMBERS_MAX, MEMBER_LIST_MESSAGE_BYTES_WORST,
};
use hypha_net::{TermStart, Welcome, TERMS_KEPT, WELCOME_MESSAGE_BYTES_WORST};

#[test]
fn a_full_batch_plus_one_largest_record_fits_a_frame() -> TestResult {
    let key = vec![b'k'; KEY_BYTES_MAX];
    let message = Message::Records {
        term: u64::MAX,
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

fn payload_len(message: &Message) -> Result<usize, Box<dyn std::error::Error>> {
    Ok(encode_frame_to_vec(message)?.len() - FRAME_HEADER_BYTES)
}

/// Whether a handshake decoder with `payload_max` takes `message`.
fn handshake_decoder_takes(message: &Message, payload_max: usize) -> TestResult {
    let mut decoder = FrameDecoder::with_payload_max(payload_max);
    decoder.feed(&encode_frame_to_vec(message)?);
    assert_eq!(decoder.next_message()?.as_ref(), Some(message));
    Ok(())
}

#[test]
fn the_largest_hello_fits_the_acceptors_handshake_limit() -> TestResult {
    let hello = Message::Hello(Hello {
        magic: HELLO_MAGIC,
        version: PROTOCOL_VERSION,
        cluster: cluster(&"é".repeat(CLUSTER_NAME_BYTES_MAX / 2)),
        role: Role::Client,
        node_id: u64::MAX,
        history_id: u64::MAX,
        applied_seq: u64::MAX,
        purpose: Purpose::Elect {
            member: u16::MAX,
            group: u64::MAX,
        },
        nonce: [0xff; NONCE_BYTES],
        term: u64::MAX,
        last_term: u64::MAX,
    });
    // Exact but for the version: 3 takes one varint byte, the bound allows
    // any u16 (three).
    let version_slack = VARINT_U16_BYTES_MAX - varint_bytes(u64::from(PROTOCOL_VERSION));
    assert_eq!(
        payload_len(&hello)?,
        HELLO_MESSAGE_BYTES_WORST - version_slack
    );
    handshake_decoder_takes(&hello, ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX)
}

#[test]
fn the_largest_welcome_is_exactly_its_worst_case() -> TestResult {
    let terms = (0..TERMS_KEPT as u64)
        .map(|i| TermStart {
            term: u64::MAX - TERMS_KEPT as u64 + i,
            first_seq: u64::MAX - TERMS_KEPT as u64 + i,
        })
        .collect();
    let welcome = Message::Welcome(Welcome {
        version: PROTOCOL_VERSION,
        role: Role::Master,
        node_id: u64::MAX,
        history_id: u64::MAX,
        commit_seq: u64::MAX,
        term: u64::MAX,
        terms,
    });
    let version_slack = VARINT_U16_BYTES_MAX - varint_bytes(u64::from(PROTOCOL_VERSION));
    assert_eq!(
        payload_len(&welcome)?,
        WELCOME_MESSAGE_BYTES_WORST - version_slack
    );
    Ok(())
}

#[test]
fn the_largest_transaction_and_its_answer_fit_their_worst_case() -> TestResult {
    use hypha_net::{
        Expect, Txn, TxnCond, TxnOp, TxnRead, TxnTest, WriteRequest, KEY_BYTES_MAX, TXN_BYTES_MAX,
        TXN_FAILED_MESSAGE_BYTES_WORST, TXN_ITEMS_MAX, TXN_MESSAGE_BYTES_WORST, TXN_READ_BYTES_MAX,
    };
    let key = |i: usize| {
        let mut k = i.to_string().into_bytes();
        k.resize(KEY_BYTES_MAX, b'k');
        k
    };
    // Every list full of largest keys; one value spends the rest of
    // TXN_BYTES_MAX.
    let mut txn = Txn {
        conds: (0..TXN_ITEMS_MAX)
            .map(|i| TxnCond {
                key: key(i),
                test: TxnTest::Expect(Expect::Seq(u64::MAX)),
            })
            .collect(),
        ops: (0..TXN_ITEMS_MAX)
            .map(|i| TxnOp::Delete { key: key(i) })
            .collect(),
        reads: (0..TXN_ITEMS_MAX).map(key).collect(),
    };
    let value = vec![7; TXN_BYTES_MAX - txn.bytes()];
    txn.ops[0] = TxnOp::Put {
        key: key(0),
        value,
        ttl_ms: hypha_net::TTL_MS_MAX,
    };
    assert_eq!(txn.bytes(), TXN_BYTES_MAX);
    let m = Message::Txn {
        req_id: u64::MAX,
        txn,
        request: Some(WriteRequest {
            id: [1; 16],
            retry_after: Some(u64::MAX),
        }),
    };
    m.validate()?;
    assert!(payload_len(&m)? <= TXN_MESSAGE_BYTES_WORST);
    // Five-byte indexes; the first read holds every byte allowed, the others
    // an empty value (a length of one byte, not four).
    let failed = Message::TxnFailed {
        req_id: u64::MAX,
        seq: u64::MAX,
        failed: (0..TXN_ITEMS_MAX as u32)
            .map(|i| u32::MAX - 1000 + i)
            .collect(),
        reads: (0..TXN_ITEMS_MAX)
            .map(|i| TxnRead {
                value: Some((
                    u64::MAX,
                    vec![1; if i == 0 { TXN_READ_BYTES_MAX } else { 0 }],
                )),
            })
            .collect(),
    };
    failed.validate()?;
    assert_eq!(
        payload_len(&failed)?,
        TXN_FAILED_MESSAGE_BYTES_WORST - (TXN_ITEMS_MAX - 1) * 3
    );
    Ok(())
}

#[test]
fn the_largest_member_list_is_exactly_its_worst_case() -> TestResult {
    let slots = (0..MEMBERS_MAX)
        .map(|i| Slot {
            addr: format!("{i:0>width$}", width = ADDR_BYTES_MAX),
            standing: Standing::Voter,
        })
        .collect();
    let list = Message::MemberList {
        req_id: u64::MAX,
        members: Membership {
            group: u64::MAX,
            term: u64::MAX,
            epoch: u64::MAX,
            slots,
        },
    };
    list.validate()?;
    assert_eq!(payload_len(&list)?, MEMBER_LIST_MESSAGE_BYTES_WORST);
    Ok(())
}

#[test]
fn challenge_and_prove_are_exactly_their_worst_case() -> TestResult {
    let challenge = Message::Challenge(Challenge {
        nonce: [0xff; NONCE_BYTES],
        proof: [0xff; PROOF_BYTES],
    });
    let prove = Message::Prove(Prove {
        proof: [0xff; PROOF_BYTES],
    });
    assert_eq!(payload_len(&challenge)?, CHALLENGE_MESSAGE_BYTES_WORST);
    assert_eq!(payload_len(&prove)?, PROVE_MESSAGE_BYTES_WORST);
    handshake_decoder_takes(&challenge, CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX)?;
    handshake_decoder_takes(&prove, ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX)
}

#[test]
fn the_largest_refuse_is_exactly_its_worst_case() -> TestResult {
    let refuse = Message::Refuse(Refuse::new(
        RefuseReason::HistoryMismatch { ours: u64::MAX },
        &"x".repeat(MESSAGE_STRING_BYTES_MAX),
    ));
    assert_eq!(payload_len(&refuse)?, REFUSE_MESSAGE_BYTES_WORST);
    handshake_decoder_takes(&refuse, CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX)
}
