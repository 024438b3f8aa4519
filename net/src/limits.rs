//! Every limit of the wire protocol, and the compile-time proofs that they fit
//! together.
//!
//! Names carry the unit and put the qualifier last (`KEY_BYTES_MAX`). A
//! `*_WORST` constant is the largest encoding a sender can produce while
//! keeping to the limits; the `const _: () = assert!(..)` lines below prove
//! that every worst case fits the frame or datagram that carries it, so a
//! message that passes [`Message::validate`](crate::Message::validate) can
//! always be sent. `net/WIRE.md` lists the same values; changing any of them
//! is a protocol change (see the version rule there).

/// Number of message tags this version knows: tags are `0..MESSAGE_TAG_COUNT`.
/// A payload starting with a larger tag is [`DecodeError::UnknownMessage`](crate::DecodeError::UnknownMessage).
pub const MESSAGE_TAG_COUNT: u32 = 45;

/// Longest key, in bytes.
pub const KEY_BYTES_MAX: usize = 4096;

/// Longest value, in bytes (16 MiB).
pub const VALUE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Longest cluster name in [`Hello`](crate::Hello) and
/// [`Heartbeat`](crate::Heartbeat), in bytes of UTF-8.
pub const CLUSTER_NAME_BYTES_MAX: usize = 64;

/// Longest human-readable string in [`Refuse`](crate::Refuse) and
/// [`Message::Error`](crate::Message::Error), in bytes of UTF-8.
pub const MESSAGE_STRING_BYTES_MAX: usize = 1024;

/// Longest `host:port` in [`WorkerInfo::addr`](crate::WorkerInfo::addr), in
/// bytes: any `[IPv6%zone]:port` literal fits, and host names up to 249 bytes.
pub const ADDR_BYTES_MAX: usize = 256;

/// Target size of a batch of records or versions, in key + value bytes.
///
/// A batch ([`Message::Records`](crate::Message::Records),
/// [`Message::SnapshotChunk`](crate::Message::SnapshotChunk),
/// [`Message::Versions`](crate::Message::Versions)) may cross this target only
/// with its last entry: the entries before the last hold at most
/// `BATCH_BYTES_MAX` bytes. So a sender fills a batch while it is at or under
/// the target, and a single record of the largest size still travels alone.
pub const BATCH_BYTES_MAX: usize = 1024 * 1024;

/// Most records in one [`Message::Records`](crate::Message::Records) or
/// [`Message::SnapshotChunk`](crate::Message::SnapshotChunk).
pub const BATCH_RECORDS_MAX: usize = 8192;

/// Largest `limit` of a [`Message::Scan`](crate::Message::Scan), and most keys
/// in one [`Message::ScanPage`](crate::Message::ScanPage).
pub const SCAN_LIMIT_MAX: usize = 1000;

/// Largest `depth` of a [`Message::History`](crate::Message::History), and
/// most versions in one [`Message::Versions`](crate::Message::Versions).
pub const HISTORY_DEPTH_MAX: usize = 256;

/// Most conditions, most writes and most reads of one
/// [`Txn`](crate::Txn) (each list apart); also the most items of the seed
/// dialect's atomic `PUT /set`.
pub const TXN_ITEMS_MAX: usize = 1000;

/// Most key and value bytes in one [`Txn`](crate::Txn), all lists
/// together: a largest value and a batch's worth besides.
pub const TXN_BYTES_MAX: usize = VALUE_BYTES_MAX + BATCH_BYTES_MAX;

/// Most value bytes the reads of one
/// [`TxnFailed`](crate::Message::TxnFailed) return (the engine's
/// `BATCH_READ_BYTES_MAX`).
pub const TXN_READ_BYTES_MAX: usize = VALUE_BYTES_MAX;

/// Longest time to live of a key (`TxnOp::Put.ttl_ms`,
/// `TxnOp::Refresh.ttl_ms`): 365 days, in ms.
pub const TTL_MS_MAX: u64 = 365 * 24 * 3600 * 1000;

/// Longest a [`Message::Watch`](crate::Message::Watch) waits for a first
/// change. Long, so that idle watchers cost few requests (10,000 of them
/// asking every 15 s are 667 requests/s); a waiting node holds one small
/// task per watch. The edge's request timeout counts from the end of the
/// wait.
pub const WATCH_WAIT_MS_MAX: u32 = 30_000;

/// Most changes in one [`Message::Events`](crate::Message::Events) (an
/// atomic batch, at most `TXN_ITEMS_MAX` changes, always fits).
pub const WATCH_CHANGES_MAX: usize = 4096;

/// Most workers in one [`Message::WorkerList`](crate::Message::WorkerList).
pub const WORKERS_MAX: usize = 256;

/// Bytes of a client request id in a record's
/// [`WireMeta`](crate::WireMeta) (the engine's `REQUEST_ID_BYTES`).
pub const REQUEST_ID_BYTES: usize = 16;

/// Most term boundaries a node keeps and a
/// [`Welcome`](crate::Welcome) carries (protocol 3): enough to find where a
/// follower's log agrees with the master's after this many elections that
/// wrote records; a follower further apart takes a snapshot.
pub const TERMS_KEPT: usize = 32;

/// Most member slots a failover group's list holds over its whole life
/// ([`Membership`](crate::Membership)): ids are never reused, and an
/// election counts votes in a 64-bit mask.
pub const MEMBERS_MAX: usize = 64;

/// Largest [`Heartbeat::load`](crate::Heartbeat::load): load is in per-mille.
pub const LOAD_PERMILLE_MAX: u16 = 1000;

/// Buffer capacity a [`FrameDecoder`](crate::FrameDecoder) keeps once it
/// holds no bytes: a 1 MiB batch (a snapshot chunk) grows it, and a
/// connection that goes back to small messages gives the rest back (a
/// worker kept ~1 MiB per connection after a snapshot).
pub const DECODER_KEEP_BYTES: usize = 64 * 1024;

/// Largest TCP frame, header included (32 MiB). Roughly twice the largest
/// message below, so the spare room is headroom, not a tight fit.
pub const FRAME_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Size of the frame header: `len` and `crc`, 4 bytes each. The byte map is
/// in `frame.rs`, which checks at compile time that its offsets add up to this.
pub const FRAME_HEADER_BYTES: usize = 8;

/// Largest frame payload (the postcard bytes of one message).
pub const FRAME_PAYLOAD_BYTES_MAX: usize = FRAME_BYTES_MAX - FRAME_HEADER_BYTES;

/// Bytes of the MAC after every authenticated frame: HMAC-SHA-256 cut to
/// 128 bits.
pub const FRAME_MAC_BYTES: usize = 16;

/// Bytes of each side's handshake nonce.
pub const NONCE_BYTES: usize = 32;

/// Bytes of a handshake proof (a whole HMAC-SHA-256).
pub const PROOF_BYTES: usize = 32;

/// MTU of the Mycelium TUN device that carries heartbeats.
pub const OVERLAY_MTU_BYTES: usize = 1400;

/// Size of an IPv6 header without extension headers.
pub const IPV6_HEADER_BYTES: usize = 40;

/// Size of a UDP header.
pub const UDP_HEADER_BYTES: usize = 8;

/// Largest heartbeat datagram: what one UDP datagram carries through the
/// overlay without fragmentation (1400 - 40 - 8 = 1352).
pub const HEARTBEAT_BYTES_MAX: usize = OVERLAY_MTU_BYTES - IPV6_HEADER_BYTES - UDP_HEADER_BYTES;

/// Bytes of the MAC at the end of every heartbeat datagram.
pub const HEARTBEAT_MAC_BYTES: usize = 16;

/// Width of a heartbeat receiver's replay window, in counters: a beat up to
/// this far behind the newest one seen is still accepted once (UDP
/// reorders), anything older is dropped.
pub const HEARTBEAT_REPLAY_WINDOW: u64 = 64;

/// Bytes of a postcard varint holding `value` (LEB128: 7 bits per byte).
pub const fn varint_bytes(value: u64) -> usize {
    let mut bytes = 1;
    let mut rest = value >> 7;
    while rest != 0 {
        bytes += 1;
        rest >>= 7;
    }
    bytes
}

/// Largest varint of a `u16` (3 bytes).
pub const VARINT_U16_BYTES_MAX: usize = varint_bytes(u16::MAX as u64);
/// Largest varint of a `u32` (5 bytes).
pub const VARINT_U32_BYTES_MAX: usize = varint_bytes(u32::MAX as u64);
/// Largest varint of a `u64` (10 bytes).
pub const VARINT_U64_BYTES_MAX: usize = varint_bytes(u64::MAX);

/// Bytes of a length prefix plus the bytes it counts, for at most `max` bytes.
const fn sized_bytes_max(max: usize) -> usize {
    varint_bytes(max as u64) + max
}

/// Largest message tag: tags stay below 128, so they take one byte.
const TAG_BYTES_MAX: usize = 1;

/// Largest encoding of a [`WireRecord`](crate::WireRecord) apart from its key
/// and value bytes: seq, id, kind, the two length prefixes and the meta
/// (term, deadline, request id, batch flag).
pub const WIRE_RECORD_OVERHEAD_BYTES_MAX: usize = VARINT_U64_BYTES_MAX
    + VARINT_U32_BYTES_MAX
    + 1
    + varint_bytes(KEY_BYTES_MAX as u64)
    + varint_bytes(VALUE_BYTES_MAX as u64)
    + WIRE_META_BYTES_MAX;

/// Largest encoding of a [`WireMeta`](crate::WireMeta): two u64 varints, an
/// option tag with the request id, the batch and refresh flags.
pub const WIRE_META_BYTES_MAX: usize = 2 * VARINT_U64_BYTES_MAX + 1 + REQUEST_ID_BYTES + 2;

/// Largest record list a batch can carry under the [`BATCH_BYTES_MAX`] rule:
/// full overhead on every record, the target filled, then one largest record.
pub const BATCH_RECORDS_BYTES_WORST: usize = varint_bytes(BATCH_RECORDS_MAX as u64)
    + BATCH_RECORDS_MAX * WIRE_RECORD_OVERHEAD_BYTES_MAX
    + BATCH_BYTES_MAX
    + KEY_BYTES_MAX
    + VALUE_BYTES_MAX;

/// Largest [`Message::Records`](crate::Message::Records) payload.
pub const RECORDS_MESSAGE_BYTES_WORST: usize =
    TAG_BYTES_MAX + 2 * VARINT_U64_BYTES_MAX + BATCH_RECORDS_BYTES_WORST;

/// Largest [`Message::BackupPage`](crate::Message::BackupPage) payload:
/// request id, `upto`, `generation`, the records, `done`.
pub const BACKUP_PAGE_MESSAGE_BYTES_WORST: usize =
    TAG_BYTES_MAX + 3 * VARINT_U64_BYTES_MAX + BATCH_RECORDS_BYTES_WORST + 1;

/// Largest [`Message::Put`](crate::Message::Put) payload.
pub const PUT_MESSAGE_BYTES_WORST: usize = TAG_BYTES_MAX
    + VARINT_U64_BYTES_MAX
    + sized_bytes_max(KEY_BYTES_MAX)
    + sized_bytes_max(VALUE_BYTES_MAX);

/// Largest [`Message::Value`](crate::Message::Value) payload.
pub const VALUE_MESSAGE_BYTES_WORST: usize =
    TAG_BYTES_MAX + 3 * VARINT_U64_BYTES_MAX + 1 + sized_bytes_max(VALUE_BYTES_MAX);

/// Largest [`Message::Versions`](crate::Message::Versions) payload.
pub const VERSIONS_MESSAGE_BYTES_WORST: usize = TAG_BYTES_MAX
    + 2 * VARINT_U64_BYTES_MAX
    + varint_bytes(HISTORY_DEPTH_MAX as u64)
    + HISTORY_DEPTH_MAX * (VARINT_U64_BYTES_MAX + 1 + varint_bytes(VALUE_BYTES_MAX as u64))
    + BATCH_BYTES_MAX
    + VALUE_BYTES_MAX
    + VARINT_U32_BYTES_MAX;

/// Largest encoding of one item of a [`Txn`](crate::Txn) apart from its
/// key and value bytes (a condition, a write or a read, whichever is
/// longest): a variant tag, a key's length, an `Expect` or a value's length.
pub const TXN_ITEM_OVERHEAD_BYTES_MAX: usize = 1
    + varint_bytes(KEY_BYTES_MAX as u64)
    + 1
    + VARINT_U64_BYTES_MAX
    + varint_bytes(VALUE_BYTES_MAX as u64);

/// Largest [`Message::Txn`](crate::Message::Txn) payload.
pub const TXN_MESSAGE_BYTES_WORST: usize = TAG_BYTES_MAX
    + VARINT_U64_BYTES_MAX
    + 3 * (varint_bytes(TXN_ITEMS_MAX as u64) + TXN_ITEMS_MAX * TXN_ITEM_OVERHEAD_BYTES_MAX)
    + TXN_BYTES_MAX
    + 1
    + REQUEST_ID_BYTES
    + 1
    + VARINT_U64_BYTES_MAX;

/// Largest [`Message::TxnFailed`](crate::Message::TxnFailed) payload.
pub const TXN_FAILED_MESSAGE_BYTES_WORST: usize = TAG_BYTES_MAX
    + 2 * VARINT_U64_BYTES_MAX
    + 2 * varint_bytes(TXN_ITEMS_MAX as u64)
    + TXN_ITEMS_MAX * VARINT_U32_BYTES_MAX
    + TXN_ITEMS_MAX * (1 + VARINT_U64_BYTES_MAX + varint_bytes(VALUE_BYTES_MAX as u64))
    + TXN_READ_BYTES_MAX;

/// Largest [`Message::Events`](crate::Message::Events) payload: every
/// change with full overhead (kind, key length, option tag, value length),
/// an event per change (seq and count), the batch target filled and then
/// the largest batch (`TXN_BYTES_MAX`).
pub const EVENTS_MESSAGE_BYTES_WORST: usize = TAG_BYTES_MAX
    + 2 * VARINT_U64_BYTES_MAX
    + varint_bytes(WATCH_CHANGES_MAX as u64)
    + WATCH_CHANGES_MAX
        * (VARINT_U64_BYTES_MAX
            + varint_bytes(WATCH_CHANGES_MAX as u64)
            + 1
            + varint_bytes(KEY_BYTES_MAX as u64)
            + 1
            + varint_bytes(VALUE_BYTES_MAX as u64))
    + BATCH_BYTES_MAX
    + TXN_BYTES_MAX;

/// How many of `sizes` (each entry's key + value bytes, in order) one batch
/// takes under the [`BATCH_BYTES_MAX`] rule: entries are added while the
/// batch holds at most `BATCH_BYTES_MAX` bytes, so only the last may cross
/// it, and at most `max` entries.
pub fn batch_prefix_len(sizes: impl IntoIterator<Item = usize>, max: usize) -> usize {
    let (mut taken, mut bytes) = (0, 0usize);
    for size in sizes {
        if taken == max || bytes > BATCH_BYTES_MAX {
            break;
        }
        bytes = bytes.saturating_add(size);
        taken += 1;
    }
    taken
}

/// Largest [`Message::ScanPage`](crate::Message::ScanPage) payload.
pub const SCAN_PAGE_MESSAGE_BYTES_WORST: usize = TAG_BYTES_MAX
    + 2 * VARINT_U64_BYTES_MAX
    + varint_bytes(SCAN_LIMIT_MAX as u64)
    + SCAN_LIMIT_MAX * sized_bytes_max(KEY_BYTES_MAX)
    + 1
    + VARINT_U64_BYTES_MAX;

/// Largest [`Message::WorkerList`](crate::Message::WorkerList) payload.
pub const WORKER_LIST_MESSAGE_BYTES_WORST: usize = TAG_BYTES_MAX
    + VARINT_U64_BYTES_MAX
    + varint_bytes(WORKERS_MAX as u64)
    + WORKERS_MAX * (2 * VARINT_U64_BYTES_MAX + sized_bytes_max(ADDR_BYTES_MAX) + 1);

/// Largest [`Message::MemberList`](crate::Message::MemberList) payload:
/// tag, request id, group, term, epoch, `MEMBERS_MAX` slots (address and
/// standing).
pub const MEMBER_LIST_MESSAGE_BYTES_WORST: usize = TAG_BYTES_MAX
    + 4 * VARINT_U64_BYTES_MAX
    + varint_bytes(MEMBERS_MAX as u64)
    + MEMBERS_MAX * (sized_bytes_max(ADDR_BYTES_MAX) + 1);

/// Largest [`Hello`](crate::Hello) payload: tag, magic, version, cluster,
/// role, node id, history id, applied seq, purpose (`Elect`: tag, member,
/// group), nonce, term, last term.
pub const HELLO_MESSAGE_BYTES_WORST: usize = TAG_BYTES_MAX
    + VARINT_U32_BYTES_MAX
    + VARINT_U16_BYTES_MAX
    + sized_bytes_max(CLUSTER_NAME_BYTES_MAX)
    + 1
    + 3 * VARINT_U64_BYTES_MAX
    + 1
    + VARINT_U16_BYTES_MAX
    + VARINT_U64_BYTES_MAX
    + NONCE_BYTES
    + 2 * VARINT_U64_BYTES_MAX;

/// Largest [`Welcome`](crate::Welcome) payload: tag, version, role, node id,
/// history id, commit seq, term, `TERMS_KEPT` term boundaries.
pub const WELCOME_MESSAGE_BYTES_WORST: usize = TAG_BYTES_MAX
    + VARINT_U16_BYTES_MAX
    + 1
    + 4 * VARINT_U64_BYTES_MAX
    + varint_bytes(TERMS_KEPT as u64)
    + TERMS_KEPT * 2 * VARINT_U64_BYTES_MAX;

/// Largest [`Challenge`](crate::Challenge) payload: tag, nonce, proof.
pub const CHALLENGE_MESSAGE_BYTES_WORST: usize = TAG_BYTES_MAX + NONCE_BYTES + PROOF_BYTES;

/// Largest [`Prove`](crate::Prove) payload: tag, proof.
pub const PROVE_MESSAGE_BYTES_WORST: usize = TAG_BYTES_MAX + PROOF_BYTES;

/// Largest [`Refuse`](crate::Refuse) payload: tag, reason (tag and a u64),
/// message.
pub const REFUSE_MESSAGE_BYTES_WORST: usize =
    TAG_BYTES_MAX + 1 + VARINT_U64_BYTES_MAX + sized_bytes_max(MESSAGE_STRING_BYTES_MAX);

/// Largest frame payload an accepting node takes from a peer that has not
/// authenticated yet (a `Hello`, then a `Prove`): all that a stranger can
/// make a node buffer.
pub const ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX: usize = HELLO_MESSAGE_BYTES_WORST;

/// Largest frame payload a connecting node takes before the acceptor has
/// proved the key (a `Challenge`, or a `Refuse`).
pub const CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX: usize = REFUSE_MESSAGE_BYTES_WORST;

/// Bytes of the CRC in front of a heartbeat's postcard payload.
pub const HEARTBEAT_CRC_BYTES: usize = 4;

/// Largest heartbeat datagram: CRC, magic, version, cluster, node id, role,
/// applied seq, commit seq, load, serve port, session, counter, MAC. A test encodes a heartbeat with
/// every field at its largest and checks it is exactly this long.
pub const HEARTBEAT_BYTES_WORST: usize = HEARTBEAT_CRC_BYTES
    + VARINT_U32_BYTES_MAX
    + VARINT_U16_BYTES_MAX
    + sized_bytes_max(CLUSTER_NAME_BYTES_MAX)
    + VARINT_U64_BYTES_MAX
    + 1
    + 2 * VARINT_U64_BYTES_MAX
    + varint_bytes(LOAD_PERMILLE_MAX as u64)
    + VARINT_U16_BYTES_MAX
    + 2 * VARINT_U64_BYTES_MAX
    + HEARTBEAT_MAC_BYTES;

// Every message a sender may build fits a frame.
const _: () = assert!(RECORDS_MESSAGE_BYTES_WORST <= FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(BACKUP_PAGE_MESSAGE_BYTES_WORST <= FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(PUT_MESSAGE_BYTES_WORST <= FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(VALUE_MESSAGE_BYTES_WORST <= FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(VERSIONS_MESSAGE_BYTES_WORST <= FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(SCAN_PAGE_MESSAGE_BYTES_WORST <= FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(WORKER_LIST_MESSAGE_BYTES_WORST <= FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(WELCOME_MESSAGE_BYTES_WORST <= FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(MEMBER_LIST_MESSAGE_BYTES_WORST <= FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(TXN_MESSAGE_BYTES_WORST <= FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(TXN_FAILED_MESSAGE_BYTES_WORST <= FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(EVENTS_MESSAGE_BYTES_WORST <= FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(TXN_ITEMS_MAX <= WATCH_CHANGES_MAX);
// A batch of a `Txn` replicates in `Records` frames (split anywhere) and
// the follower holds an unfinished one: bounded by these.
const _: () = assert!(TXN_ITEMS_MAX <= BATCH_RECORDS_MAX);
const _: () = assert!(MEMBERS_MAX <= 64);
// The frame length field is a u32.
const _: () = assert!(FRAME_BYTES_MAX <= u32::MAX as usize);
// A batch target smaller than one record would still work (the one-record
// exception), but then every large record travels alone: keep it generous.
const _: () = assert!(BATCH_BYTES_MAX >= KEY_BYTES_MAX + 64 * 1024);
const _: () = assert!(VALUE_BYTES_MAX >= BATCH_BYTES_MAX);
// A scan page holds at least one key; a history at least one version.
const _: () = assert!(SCAN_LIMIT_MAX >= 1 && HISTORY_DEPTH_MAX >= 1);
// The heartbeat fits one datagram, CRC included, with room to append fields.
const _: () = assert!(HEARTBEAT_BYTES_WORST <= HEARTBEAT_BYTES_MAX);
const _: () = assert!(HEARTBEAT_BYTES_MAX == 1352);
// Before authentication a node buffers at most one handshake frame.
const _: () = assert!(PROVE_MESSAGE_BYTES_WORST <= ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX);
const _: () = assert!(CHALLENGE_MESSAGE_BYTES_WORST <= CONNECTOR_HANDSHAKE_PAYLOAD_BYTES_MAX);
const _: () = assert!(ACCEPTOR_HANDSHAKE_PAYLOAD_BYTES_MAX <= 256);
// A Refuse message can always quote the cluster name it refused.
const _: () = assert!(CLUSTER_NAME_BYTES_MAX <= MESSAGE_STRING_BYTES_MAX);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_bytes_matches_leb128_boundaries() {
        assert_eq!(varint_bytes(0), 1);
        assert_eq!(varint_bytes(127), 1);
        assert_eq!(varint_bytes(128), 2);
        assert_eq!(varint_bytes(16_383), 2);
        assert_eq!(varint_bytes(16_384), 3);
        assert_eq!(VARINT_U16_BYTES_MAX, 3);
        assert_eq!(VARINT_U32_BYTES_MAX, 5);
        assert_eq!(VARINT_U64_BYTES_MAX, 10);
    }

    #[test]
    fn a_batch_takes_entries_while_it_is_at_or_under_the_target() {
        let mib = BATCH_BYTES_MAX;
        assert_eq!(batch_prefix_len([1, 2, 3], 10), 3);
        assert_eq!(batch_prefix_len([1, 2, 3], 2), 2);
        assert_eq!(batch_prefix_len([mib, 5, 5], 10), 2);
        assert_eq!(batch_prefix_len([mib + 1, 5], 10), 1);
        assert_eq!(batch_prefix_len([16 * mib, 16 * mib], 10), 1);
        assert_eq!(batch_prefix_len([], 10), 0);
    }

    #[test]
    fn varint_bytes_matches_postcard() {
        for value in [0, 1, 127, 128, 300, 16_384, u32::MAX as u64, u64::MAX] {
            let encoded = postcard::to_allocvec(&value).unwrap_or_default();
            assert_eq!(encoded.len(), varint_bytes(value), "value {value}");
        }
    }
}
