//! Unit tests of `record.rs`.
use super::*;

fn sample() -> Vec<u8> {
    let mut out = Vec::new();
    let r = RecordRef {
        seq: 7,
        id: 3,
        kind: RecordKind::Put,
        key: b"k",
        value: b"val",
        meta: RecordMeta::default(),
    };
    encode(
        &mut out,
        &r,
        Location {
            file: 1,
            offset: 0x20,
        },
    );
    out
}

#[test]
fn golden_bytes_pin_the_record_encoding() {
    let b = sample();
    assert_eq!(b.len(), RECORD_HEADER_BYTES + 4);
    // magic, kind, reserved, key_len, prev_file
    assert_eq!(&b[4..12], &[0x79, 0x48, 1, 0, 1, 0, 1, 0]);
    // value_len, id, prev_offset
    assert_eq!(&b[12..24], &[3, 0, 0, 0, 3, 0, 0, 0, 0x20, 0, 0, 0]);
    assert_eq!(&b[24..32], &[7, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&b[32..40], &pair_hash(b"k", 3, b"val").to_le_bytes());
    assert_eq!(&b[40..], b"kval");
    let mut crc = crc32fast::Hasher::new();
    crc.update(&b[4..]);
    assert_eq!(&b[0..4], &crc.finalize().to_le_bytes());
}

#[test]
fn round_trip() {
    let b = sample();
    let d = decode(&b).unwrap().unwrap();
    assert_eq!(d.key, b"k");
    assert_eq!(d.value, b"val");
    assert_eq!(d.header.seq, 7);
    assert_eq!(
        d.header.prev,
        Location {
            file: 1,
            offset: 0x20
        }
    );
    assert_eq!(d.to_record().kind, RecordKind::Put);
}

#[test]
fn every_prefix_is_partial_and_every_flip_is_caught() {
    let b = sample();
    for cut in 0..b.len() {
        assert!(matches!(decode(&b[..cut]), Ok(None)), "cut {cut}");
    }
    for bit in 0..b.len() * 8 {
        let mut c = b.clone();
        c[bit / 8] ^= 1 << (bit % 8);
        match decode(&c) {
            Err(_) | Ok(None) => {}
            Ok(Some(_)) => panic!("flip of bit {bit} went unnoticed"),
        }
    }
}

fn sample_v2(batch_more: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let r = RecordRef {
        seq: 9,
        id: 4,
        kind: RecordKind::Put,
        key: b"key",
        value: b"v",
        meta: RecordMeta {
            term: 0x0102,
            deadline_ms: 0x0304,
            request_id: [0xAB; REQUEST_ID_BYTES],
            batch_more,
            refresh: false,
        },
    };
    encode(&mut out, &r, Location::NONE);
    out
}

#[test]
fn a_refresh_flag_needs_a_put_with_a_deadline() {
    let meta = |deadline_ms| RecordMeta {
        deadline_ms,
        refresh: true,
        ..RecordMeta::default()
    };
    for (kind, m, ok) in [
        (RecordKind::Put, meta(5), true),
        (RecordKind::Delete, meta(5), false),
        (RecordKind::Put, meta(0), false),
    ] {
        let mut out = Vec::new();
        let r = RecordRef {
            seq: 1,
            id: 1,
            kind,
            key: b"k",
            value: b"",
            meta: m,
        };
        encode(&mut out, &r, Location::NONE);
        let decoded = decode(&out);
        assert_eq!(decoded.is_ok(), ok, "{kind:?} {m:?}: {decoded:?}");
    }
}

#[test]
fn golden_bytes_pin_the_optional_fields() {
    let b = sample_v2(true);
    assert_eq!(b.len(), RECORD_HEADER_BYTES + RECORD_EXT_BYTES_MAX + 4);
    // kind, flags: term | deadline | request | batch_more
    assert_eq!(&b[6..8], &[1, 0x0F]);
    assert_eq!(&b[40..48], &0x0102u64.to_le_bytes());
    assert_eq!(&b[48..56], &0x0304u64.to_le_bytes());
    assert_eq!(&b[56..72], &[0xAB; 16]);
    assert_eq!(&b[72..], b"keyv");
    let d = decode(&b).unwrap().unwrap();
    assert_eq!((d.key, d.value), (&b"key"[..], &b"v"[..]));
    assert_eq!(d.header.meta.term, 0x0102);
    assert_eq!(d.header.meta.deadline_ms, 0x0304);
    assert!(d.header.meta.batch_more);
    assert_eq!(d.header.record_len(), b.len());
    assert_eq!(d.to_record().meta, d.header.meta);
}

#[test]
fn only_the_flagged_fields_are_present() {
    for (meta, ext) in [
        (
            RecordMeta {
                term: 1,
                ..RecordMeta::default()
            },
            8,
        ),
        (
            RecordMeta {
                deadline_ms: 1,
                ..RecordMeta::default()
            },
            8,
        ),
        (
            RecordMeta {
                request_id: [1; 16],
                ..RecordMeta::default()
            },
            16,
        ),
        (
            RecordMeta {
                batch_more: true,
                ..RecordMeta::default()
            },
            0,
        ),
    ] {
        let mut b = Vec::new();
        let r = RecordRef {
            seq: 1,
            id: 1,
            kind: RecordKind::Delete,
            key: b"k",
            value: b"",
            meta,
        };
        encode(&mut b, &r, Location::NONE);
        assert_eq!(b.len(), RECORD_HEADER_BYTES + ext + 1);
        assert_eq!(decode(&b).unwrap().unwrap().header.meta, meta);
    }
}

#[test]
fn optional_fields_are_checked_like_the_rest() {
    let b = sample_v2(false);
    for cut in 0..b.len() {
        assert!(matches!(decode(&b[..cut]), Ok(None)), "cut {cut}");
    }
    for bit in 0..b.len() * 8 {
        let mut c = b.clone();
        c[bit / 8] ^= 1 << (bit % 8);
        if let Ok(Some(_)) = decode(&c) {
            panic!("flip of bit {bit} went unnoticed");
        }
    }
    // Unknown flag bits, and a flagged field that is zero, are refused
    // even with a valid CRC: each record has one encoding.
    let recrc = |c: &mut Vec<u8>| {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&c[4..]);
        let v = crc.finalize().to_le_bytes();
        c[0..4].copy_from_slice(&v);
    };
    let mut c = b.clone();
    c[7] |= 0x20;
    recrc(&mut c);
    assert!(matches!(decode(&c), Err(CodecError::BadField { .. })));
    let mut c = b.clone();
    c[40..48].copy_from_slice(&[0; 8]);
    recrc(&mut c);
    assert!(matches!(decode(&c), Err(CodecError::BadField { .. })));
}

#[test]
fn a_range_delete_is_unsupported_when_whole_and_damage_otherwise() {
    let mut b = sample();
    b[6] = KIND_RANGE_DELETE;
    // Its CRC now fails: damage, which recovery may cut.
    assert!(matches!(decode(&b), Err(CodecError::BadKind(3))));
    let mut crc = crc32fast::Hasher::new();
    crc.update(&b[4..]);
    let v = crc.finalize().to_le_bytes();
    b[0..4].copy_from_slice(&v);
    // Well formed: written by a newer release, never to be cut.
    assert!(matches!(decode(&b), Err(CodecError::Unsupported { .. })));
    assert!(matches!(
        decode(&b[..b.len() - 1]),
        Err(CodecError::BadKind(3))
    ));
}

#[test]
fn bad_lengths_are_errors_not_allocations() {
    let mut b = sample();
    b[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
    assert!(matches!(
        decode(&b),
        Err(CodecError::TooLong { what: "key", .. })
    ));
    let mut b = sample();
    b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode(&b),
        Err(CodecError::TooLong { what: "value", .. })
    ));
    assert!(matches!(
        decode(&[0u8; 64]),
        Err(CodecError::BadMagic { .. })
    ));
    let mut b = sample();
    b[6] = 9;
    assert!(matches!(decode(&b), Err(CodecError::BadKind(9))));
}
