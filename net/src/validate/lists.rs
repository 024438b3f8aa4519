//! Validation of the list-carrying messages of transactions and watches
//! (`Txn`, `TxnFailed`, `Events`).

use super::{check_batch_bytes, check_key, check_len, check_request_key, check_value};
use crate::error::DecodeError;
use crate::limits::{
    TTL_MS_MAX, TXN_BYTES_MAX, TXN_ITEMS_MAX, TXN_READ_BYTES_MAX, WATCH_CHANGES_MAX,
};

pub(super) fn check_txn(txn: &crate::Txn) -> Result<(), DecodeError> {
    let lists = [
        ("Txn.conds", txn.conds.len()),
        ("Txn.ops", txn.ops.len()),
        ("Txn.reads", txn.reads.len()),
    ];
    for (what, len) in lists {
        check_len(what, "TXN_ITEMS_MAX", len, TXN_ITEMS_MAX)?;
    }
    check_len("Txn", "TXN_BYTES_MAX", txn.bytes(), TXN_BYTES_MAX)?;
    for cond in &txn.conds {
        check_request_key("Txn.conds[].key", &cond.key)?;
        if let crate::TxnTest::Value(v) = &cond.test {
            check_value("Txn.conds[].value", v)?;
        }
    }
    for op in &txn.ops {
        check_request_key("Txn.ops[].key", op.key())?;
        let ttl_ms = match op {
            crate::TxnOp::Put { value, ttl_ms, .. } => {
                check_value("Txn.ops[].value", value)?;
                *ttl_ms
            }
            crate::TxnOp::Refresh { ttl_ms: 0, .. } => {
                return Err(DecodeError::Invalid("a Txn refresh has a ttl_ms of 0"))
            }
            crate::TxnOp::Refresh { ttl_ms, .. } => *ttl_ms,
            crate::TxnOp::Delete { .. } => 0,
        };
        let ttl = usize::try_from(ttl_ms).unwrap_or(usize::MAX);
        let max = usize::try_from(TTL_MS_MAX).unwrap_or(usize::MAX);
        check_len("Txn.ops[].ttl_ms", "TTL_MS_MAX", ttl, max)?;
    }
    txn.reads
        .iter()
        .try_for_each(|key| check_request_key("Txn.reads[]", key))
}

pub(super) fn check_txn_failed(
    failed: &[u32],
    reads: &[crate::TxnRead],
) -> Result<(), DecodeError> {
    for (what, len) in [
        ("TxnFailed.failed", failed.len()),
        ("TxnFailed.reads", reads.len()),
    ] {
        check_len(what, "TXN_ITEMS_MAX", len, TXN_ITEMS_MAX)?;
    }
    let ascending = failed.iter().zip(failed.iter().skip(1)).all(|(a, b)| a < b);
    if failed.is_empty() || !ascending {
        return Err(DecodeError::Invalid(
            "TxnFailed.failed is empty or not ascending",
        ));
    }
    let bytes = reads
        .iter()
        .filter_map(|r| r.value.as_ref().map(|(_, v)| v.len()))
        .fold(0, usize::saturating_add);
    check_len(
        "TxnFailed.reads",
        "TXN_READ_BYTES_MAX",
        bytes,
        TXN_READ_BYTES_MAX,
    )
}

/// An `Events` answer: events in ascending seq order, none empty, at most
/// `WATCH_CHANGES_MAX` changes, keys and values within their limits, the
/// batch rule over events.
pub(super) fn check_events(events: &[crate::WatchEvent]) -> Result<(), DecodeError> {
    let changes = events.iter().map(|e| e.changes.len());
    let count = changes.fold(0, usize::saturating_add);
    check_len(
        "Events.changes",
        "WATCH_CHANGES_MAX",
        count,
        WATCH_CHANGES_MAX,
    )?;
    let ascending = events
        .iter()
        .zip(events.iter().skip(1))
        .all(|(a, b)| a.seq < b.seq);
    if !ascending || events.iter().any(|e| e.changes.is_empty()) {
        return Err(DecodeError::Invalid(
            "Events: seqs not ascending, or an event without changes",
        ));
    }
    for change in events.iter().flat_map(|e| &e.changes) {
        check_key("Events.changes[].key", &change.key)?;
        if let Some(v) = &change.value {
            check_value("Events.changes[].value", v)?;
        }
    }
    let sizes: alloc::vec::Vec<usize> = events.iter().map(crate::WatchEvent::bytes).collect();
    let last = sizes.last().copied().unwrap_or(0);
    check_len("Events (last)", "TXN_BYTES_MAX", last, TXN_BYTES_MAX)?;
    check_batch_bytes("Events", sizes.into_iter())
}
