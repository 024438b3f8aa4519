//! The limit values that `net/WIRE.md` lists (§4 for the handshake and the
//! MACs, §7 and §8 for the limits); a change here is a protocol change and
//! needs a `PROTOCOL_VERSION` bump.
use hypha_net::*;

#[test]
fn limits_have_the_documented_values() {
    let documented: [(&str, usize, usize); 37] = [
        ("KEY_BYTES_MAX", KEY_BYTES_MAX, 4096),
        ("VALUE_BYTES_MAX", VALUE_BYTES_MAX, 16_777_216),
        ("CLUSTER_NAME_BYTES_MAX", CLUSTER_NAME_BYTES_MAX, 64),
        ("MESSAGE_STRING_BYTES_MAX", MESSAGE_STRING_BYTES_MAX, 1024),
        ("ADDR_BYTES_MAX", ADDR_BYTES_MAX, 256),
        ("BATCH_BYTES_MAX", BATCH_BYTES_MAX, 1_048_576),
        ("BATCH_RECORDS_MAX", BATCH_RECORDS_MAX, 8192),
        ("SCAN_LIMIT_MAX", SCAN_LIMIT_MAX, 1000),
        ("HISTORY_DEPTH_MAX", HISTORY_DEPTH_MAX, 256),
        ("WORKERS_MAX", WORKERS_MAX, 256),
        ("LOAD_PERMILLE_MAX", usize::from(LOAD_PERMILLE_MAX), 1000),
        ("FRAME_BYTES_MAX", FRAME_BYTES_MAX, 33_554_432),
        (
            "FRAME_PAYLOAD_BYTES_MAX",
            FRAME_PAYLOAD_BYTES_MAX,
            33_554_424,
        ),
        ("HEARTBEAT_BYTES_MAX", HEARTBEAT_BYTES_MAX, 1352),
        // 113 in protocol 1, plus session (10), counter (10) and MAC (16).
        ("HEARTBEAT_BYTES_WORST", HEARTBEAT_BYTES_WORST, 149),
        (
            "RECORDS_MESSAGE_BYTES_WORST",
            RECORDS_MESSAGE_BYTES_WORST,
            18_329_623,
        ),
        (
            "BACKUP_PAGE_MESSAGE_BYTES_WORST",
            BACKUP_PAGE_MESSAGE_BYTES_WORST,
            18_329_634,
        ),
        (
            "PUT_MESSAGE_BYTES_WORST",
            PUT_MESSAGE_BYTES_WORST,
            16_781_329,
        ),
        // 1 + 5 + 3 + 65 + 1 + 3 × 10 + 1 + 32 + 2 × 10
        ("HELLO_MESSAGE_BYTES_WORST", HELLO_MESSAGE_BYTES_WORST, 171),
        // 1 + 3 + 1 + 4 × 10 + 1 + 32 × 2 × 10
        (
            "WELCOME_MESSAGE_BYTES_WORST",
            WELCOME_MESSAGE_BYTES_WORST,
            686,
        ),
        ("REQUEST_ID_BYTES", REQUEST_ID_BYTES, 16),
        ("TERMS_KEPT", TERMS_KEPT, 32),
        ("MEMBERS_MAX", MEMBERS_MAX, 64),
        ("TXN_ITEMS_MAX", TXN_ITEMS_MAX, 1000),
        ("WATCH_WAIT_MS_MAX", WATCH_WAIT_MS_MAX as usize, 30000),
        ("WATCH_CHANGES_MAX", WATCH_CHANGES_MAX, 4096),
        // 1 + 2 × 10 + 2 + 4096 × (10 + 2 + 1 + 2 + 1 + 4) + BATCH_BYTES_MAX + TXN_BYTES_MAX
        (
            "EVENTS_MESSAGE_BYTES_WORST",
            EVENTS_MESSAGE_BYTES_WORST,
            18_956_311,
        ),
        // VALUE_BYTES_MAX + BATCH_BYTES_MAX
        ("TXN_BYTES_MAX", TXN_BYTES_MAX, 17_825_792),
        ("TXN_READ_BYTES_MAX", TXN_READ_BYTES_MAX, 16_777_216),
        // 1 + 10 + 3 × (2 + 1000 × 18) + TXN_BYTES_MAX + 1 + 16 + 1 + 10
        (
            "TXN_MESSAGE_BYTES_WORST",
            TXN_MESSAGE_BYTES_WORST,
            17_879_837,
        ),
        // 1 + 2 × 10 + 2 × 2 + 1000 × 5 + 1000 × 15 + TXN_READ_BYTES_MAX
        (
            "TXN_FAILED_MESSAGE_BYTES_WORST",
            TXN_FAILED_MESSAGE_BYTES_WORST,
            16_797_241,
        ),
        // 1 + 4 × 10 + 1 + 64 × (2 + 256 + 1)
        (
            "MEMBER_LIST_MESSAGE_BYTES_WORST",
            MEMBER_LIST_MESSAGE_BYTES_WORST,
            16_618,
        ),
        // 1 + 32 + 32
        (
            "CHALLENGE_MESSAGE_BYTES_WORST",
            CHALLENGE_MESSAGE_BYTES_WORST,
            65,
        ),
        // 1 + 32
        ("PROVE_MESSAGE_BYTES_WORST", PROVE_MESSAGE_BYTES_WORST, 33),
        // 1 + 1 + 10 + 2 + 1024
        (
            "REFUSE_MESSAGE_BYTES_WORST",
            REFUSE_MESSAGE_BYTES_WORST,
            1038,
        ),
        // = HELLO_MESSAGE_BYTES_WORST
        (
            "ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX",
            ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX,
            171,
        ),
        // = REFUSE_MESSAGE_BYTES_WORST
        (
            "CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX",
            CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX,
            1038,
        ),
    ];
    for (name, actual, in_wire_md) in documented {
        assert_eq!(actual, in_wire_md, "{name}");
    }
}

#[test]
fn protocol_constants_have_the_documented_values() {
    assert_eq!(PROTOCOL_VERSION, 3);
    assert_eq!(HELLO_MAGIC, 0x4859_5048);
    assert_eq!(MESSAGE_TAG_COUNT, 45);
    assert_eq!(FRAME_HEADER_BYTES, 8);
}

#[test]
fn authentication_constants_have_the_documented_values() {
    assert_eq!(CLUSTER_KEY_BYTES, 32);
    assert_eq!(CLUSTER_KEYS_MAX, 2);
    assert_eq!(NONCE_BYTES, 32);
    assert_eq!(PROOF_BYTES, 32);
    assert_eq!(FRAME_MAC_BYTES, 16);
    assert_eq!(HEARTBEAT_MAC_BYTES, 16);
    assert_eq!(HEARTBEAT_CRC_BYTES, 4);
    assert_eq!(HEARTBEAT_REPLAY_WINDOW, 64);
}
