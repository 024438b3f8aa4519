//! Records and term boundaries between the engine's types and the wire's.

use hypha_engine::{Record, RecordKind, RecordMeta, REQUEST_ID_BYTES};
use hypha_net::WireRecord;

/// Engine record → wire.
pub fn to_wire(r: Record) -> WireRecord {
    WireRecord {
        seq: r.seq,
        id: r.id,
        kind: match r.kind {
            RecordKind::Put => hypha_net::RecordKind::Put,
            RecordKind::Delete => hypha_net::RecordKind::Delete,
        },
        key: r.key,
        value: r.value,
        meta: hypha_net::WireMeta {
            term: r.meta.term,
            deadline_ms: r.meta.deadline_ms,
            request_id: (r.meta.request_id != [0; REQUEST_ID_BYTES]).then_some(r.meta.request_id),
            batch_more: r.meta.batch_more,
            refresh: r.meta.refresh,
        },
    }
}

/// The engine's term boundaries, as the wire and the replication core name
/// them.
pub fn terms_to_wire(starts: &[hypha_engine::TermStart]) -> Vec<hypha_net::TermStart> {
    starts
        .iter()
        .map(|t| hypha_net::TermStart {
            term: t.term,
            first_seq: t.first_seq,
        })
        .collect()
}

/// Term boundaries from the wire, as the engine stores them.
pub fn terms_from_wire(starts: &[hypha_net::TermStart]) -> Vec<hypha_engine::TermStart> {
    starts
        .iter()
        .map(|t| hypha_engine::TermStart {
            term: t.term,
            first_seq: t.first_seq,
        })
        .collect()
}

// Both sides keep the same number of term boundaries.
const _: () = assert!(hypha_engine::limits::TERMS_KEPT == hypha_net::TERMS_KEPT);

// The engine stores the request id the wire carries, byte for byte.
const _: () = assert!(REQUEST_ID_BYTES == hypha_net::REQUEST_ID_BYTES);

/// Wire record → engine: the record as the master stored it, meta included
/// (term, deadline, request id, batch marker).
pub fn from_wire(r: WireRecord) -> Record {
    Record {
        seq: r.seq,
        id: r.id,
        kind: match r.kind {
            hypha_net::RecordKind::Put => RecordKind::Put,
            hypha_net::RecordKind::Delete => RecordKind::Delete,
        },
        key: r.key,
        value: r.value,
        meta: RecordMeta {
            term: r.meta.term,
            deadline_ms: r.meta.deadline_ms,
            request_id: r.meta.request_id.unwrap_or([0; REQUEST_ID_BYTES]),
            batch_more: r.meta.batch_more,
            refresh: r.meta.refresh,
        },
    }
}

/// Bytes a record adds to a batch (payload plus a bound on its framing).
pub fn wire_bytes(r: &WireRecord) -> usize {
    r.key.len() + r.value.len() + hypha_net::WIRE_RECORD_OVERHEAD_BYTES_MAX
}
