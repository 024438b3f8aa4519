//! The limit values that `net/WIRE.md` §7 and §8 list; a change here is a
//! protocol change and needs a `PROTOCOL_VERSION` bump.
use hypha_net::*;

#[test]
fn limits_have_the_documented_values() {
    let documented: [(&str, usize, usize); 17] = [
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
        ("HEARTBEAT_BYTES_WORST", HEARTBEAT_BYTES_WORST, 113),
        (
            "RECORDS_MESSAGE_BYTES_WORST",
            RECORDS_MESSAGE_BYTES_WORST,
            18_010_125,
        ),
        (
            "PUT_MESSAGE_BYTES_WORST",
            PUT_MESSAGE_BYTES_WORST,
            16_781_329,
        ),
    ];
    for (name, actual, in_wire_md) in documented {
        assert_eq!(actual, in_wire_md, "{name}");
    }
}

#[test]
fn protocol_constants_have_the_documented_values() {
    assert_eq!(PROTOCOL_VERSION, 1);
    assert_eq!(HELLO_MAGIC, 0x4859_5048);
    assert_eq!(MESSAGE_TAG_COUNT, 29);
    assert_eq!(FRAME_HEADER_BYTES, 8);
}
