//! Unit tests of `tables.rs`.
use super::*;

fn meta() -> Meta {
    Meta {
        keysize: 6,
        incremental: true,
        file_size: 1 << 20,
        history_id: 0x1122_3344_5566_7788,
        hash_seed: 9,
        ckpt: Location {
            file: 2,
            offset: 64,
        },
        seq: 100,
        next_id: 51,
        live: 40,
        digest: 0xdead_beef,
        index_used: 50,
        index_slots: 4096,
        compact_seq: 70,
        tombstone_horizon: 65,
        live_bytes: Some(12_345),
        file_count: 3,
        compact_id: 0xfeed,
        last_term: 7,
    }
}

#[test]
fn golden_bytes_pin_the_file_header() {
    let b = FileHeader {
        version: DATA_VERSION,
        file_no: 3,
        first_seq: 0x0102,
        prev_len: 0x0304,
    }
    .encode();
    assert_eq!(&b[..16], b"HYPHADB\0\x02\x00\x03\x00\x00\x00\x00\x00");
    assert_eq!(&b[16..28], &[2, 1, 0, 0, 0, 0, 0, 0, 4, 3, 0, 0]);
    assert_eq!(FileHeader::decode(&b).unwrap().unwrap().first_seq, 0x0102);
    assert_eq!(FileHeader::decode(&b[..31]).unwrap(), None);
}

#[test]
fn meta_round_trips_and_every_flip_is_caught() {
    let m = meta();
    let b = m.encode();
    assert_eq!(&b[..10], b"HYPHAMT\0\x03\x00");
    assert_eq!(&b[124..132], &7u64.to_le_bytes());
    assert_eq!(&b[88..96], &70u64.to_le_bytes());
    assert_eq!(&b[112..116], &3u32.to_le_bytes());
    assert_eq!(Meta::decode(&b).unwrap(), m);
    for bit in 0..META_BYTES * 8 {
        let mut c = b;
        c[bit / 8] ^= 1 << (bit % 8);
        assert!(Meta::decode(&c).is_err(), "bit {bit}");
    }
}

#[test]
fn version_2_meta_is_still_read() {
    // A version-2 checkpoint: the first 124 bytes of version 3 with
    // version 2 and a CRC at 124.
    let m = meta();
    let v3 = m.encode();
    let mut b = [0u8; META_BYTES_V2];
    b[..M_CRC_V2].copy_from_slice(&v3[..M_CRC_V2]);
    b[8..10].copy_from_slice(&2u16.to_le_bytes());
    let c = crc(&b[..M_CRC_V2]);
    b[M_CRC_V2..].copy_from_slice(&c.to_le_bytes());
    assert_eq!(Meta::decode(&b).unwrap(), Meta { last_term: 0, ..m });
}

#[test]
fn version_1_meta_is_still_read() {
    // A version-1 checkpoint: the first 92 bytes of version 2 with
    // version 1 and a CRC at 92.
    let m = meta();
    let v2 = m.encode();
    let mut b = [0u8; META_BYTES_V1];
    b[..88].copy_from_slice(&v2[..88]);
    b[8..10].copy_from_slice(&1u16.to_le_bytes());
    let c = crc(&b[..M_CRC_V1]);
    b[M_CRC_V1..].copy_from_slice(&c.to_le_bytes());
    let read = Meta::decode(&b).unwrap();
    assert_eq!(
        read,
        Meta {
            compact_seq: 0,
            tombstone_horizon: 0,
            live_bytes: None,
            file_count: 0,
            compact_id: 0,
            last_term: 0,
            ..m
        }
    );
    let mut bad = b;
    bad[8] = 4;
    assert!(matches!(
        Meta::decode(&bad),
        Err(CodecError::BadVersion { found: 4, .. })
    ));
}

#[test]
fn table_header_and_slot_round_trip() {
    let h = TableHeader { width: 6, seed: 77 };
    let b = h.encode(&LOOKUP_MAGIC);
    assert_eq!(TableHeader::decode(&b, &LOOKUP_MAGIC, "lookup").unwrap(), h);
    assert!(TableHeader::decode(&b, &INDEX_MAGIC, "index").is_err());
    assert_eq!(
        encode_slot(0x0807060504030201, 0x0d0c0b0a),
        [1, 2, 3, 4, 5, 6, 7, 8, 0xa, 0xb, 0xc, 0xd]
    );
    assert_eq!(decode_slot(&encode_slot(5, 6)), (5, 6));
}

#[test]
fn marker_round_trips_and_every_flip_is_caught() {
    let m = Marker {
        compact_seq: 77,
        tombstone_horizon: 40,
        compact_id: 0x1234_5678_9abc_def0,
        next_id: 99,
        old: alloc::vec![0, 1, 5],
        new: alloc::vec![2, 3],
    };
    let b = m.encode();
    assert_eq!(&b[..10], b"HYPHACP\0\x01\x00");
    assert_eq!(&b[16..24], &77u64.to_le_bytes());
    assert_eq!(&b[40..44], &99u32.to_le_bytes());
    assert_eq!(&b[48..58], &[0, 0, 1, 0, 5, 0, 2, 0, 3, 0]);
    assert_eq!(Marker::decode(&b).unwrap(), m);
    for bit in 0..b.len() * 8 {
        let mut c = b.clone();
        c[bit / 8] ^= 1 << (bit % 8);
        assert!(Marker::decode(&c).is_err(), "bit {bit}");
    }
    assert!(Marker::decode(&b[..b.len() - 1]).is_err());
}

#[test]
fn vote_round_trips_and_every_flip_is_caught() {
    for v in [
        Vote::default(),
        Vote {
            term: 9,
            voted_for: Some(0),
        },
        Vote {
            term: u64::MAX,
            voted_for: Some(4),
        },
    ] {
        let b = v.encode();
        assert_eq!(Vote::decode(&b), Ok(v));
        for bit in 0..VOTE_BYTES * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(Vote::decode(&c).is_err(), "bit {bit}");
        }
        assert!(Vote::decode(&b[..31]).is_err());
    }
    let b = Vote {
        term: 0x0102,
        voted_for: Some(2),
    }
    .encode();
    assert_eq!(&b[..10], b"HYPHAVT\0\x01\x00");
    assert_eq!(&b[16..28], &[2, 1, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]);
}

#[test]
fn truncation_marker_round_trips_and_every_flip_is_caught() {
    let m = TruncateMarker { after: 0x0102 };
    let b = m.encode();
    assert_eq!(&b[..10], b"HYPHATR\0\x01\x00");
    assert_eq!(&b[16..24], &0x0102u64.to_le_bytes());
    assert_eq!(TruncateMarker::decode(&b), Ok(m));
    for bit in 0..TRUNCATE_BYTES * 8 {
        let mut c = b;
        c[bit / 8] ^= 1 << (bit % 8);
        assert!(TruncateMarker::decode(&c).is_err(), "bit {bit}");
    }
}
