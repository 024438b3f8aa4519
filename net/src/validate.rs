//! [`Message::validate`]: the limits and rules postcard cannot express.
//!
//! postcard checks shapes (tags, varints, UTF-8, lengths present in the
//! input); this module checks sizes against [`limits`](crate::limits) and a
//! few protocol rules. [`decode_frame`](crate::decode_frame) runs it on every
//! message it returns and [`encode_frame`](crate::encode_frame) on every
//! message it sends, so both ends enforce the same rules.

use crate::error::DecodeError;
use crate::failover::TermStart;
use crate::handshake::HELLO_MAGIC;
use crate::limits::{
    ADDR_BYTES_MAX, BATCH_BYTES_MAX, BATCH_RECORDS_MAX, HISTORY_DEPTH_MAX, KEY_BYTES_MAX,
    MESSAGE_STRING_BYTES_MAX, REQUEST_ID_BYTES, SCAN_LIMIT_MAX, TERMS_KEPT, VALUE_BYTES_MAX,
    WATCH_WAIT_MS_MAX, WORKERS_MAX,
};
use crate::message::{Message, RecordKind, Version, WireRecord, WorkerInfo};

mod lists;
use lists::{check_events, check_txn, check_txn_failed};

/// Field names used in the errors of one record batch.
struct BatchNames {
    records: &'static str,
    key: &'static str,
    value: &'static str,
    bytes: &'static str,
}

const RECORDS_NAMES: BatchNames = BatchNames {
    records: "Records.records",
    key: "Records.records[].key",
    value: "Records.records[].value",
    bytes: "Records.records key+value bytes before the last record",
};

const SNAPSHOT_NAMES: BatchNames = BatchNames {
    records: "SnapshotChunk.records",
    key: "SnapshotChunk.records[].key",
    value: "SnapshotChunk.records[].value",
    bytes: "SnapshotChunk.records key+value bytes before the last record",
};

const BACKUP_NAMES: BatchNames = BatchNames {
    records: "BackupPage.records",
    key: "BackupPage.records[].key",
    value: "BackupPage.records[].value",
    bytes: "BackupPage.records key+value bytes before the last record",
};

fn check_watch(prefix: &[u8], wait_ms: u32) -> Result<(), DecodeError> {
    check_key("Watch.prefix", prefix)?;
    let (wait, max) = (usize_from(wait_ms), usize_from(WATCH_WAIT_MS_MAX));
    check_len("Watch.wait_ms", "WATCH_WAIT_MS_MAX", wait, max)
}

impl Message {
    /// Checks every limit and rule of `net/WIRE.md` that the type system does
    /// not: key, value, string and list lengths, the batch byte rule, the
    /// `Hello` magic, record order and delete records without values.
    ///
    /// Decoding runs this on every message, so a message from a peer that
    /// breaks a limit is a [`DecodeError`], never a value.
    pub fn validate(&self) -> Result<(), DecodeError> {
        match self {
            Self::Hello(hello) => {
                if hello.magic != HELLO_MAGIC {
                    return Err(DecodeError::BadMagic { found: hello.magic });
                }
                Ok(())
            }
            Self::Refuse(refuse) => check_message_string("Refuse.message", &refuse.message),
            Self::Get { key, .. } => check_request_key("Get.key", key),
            Self::Put { .. }
            | Self::Delete { .. }
            | Self::PutOnce { .. }
            | Self::DeleteOnce { .. }
            | Self::PutIf { .. }
            | Self::DeleteIf { .. } => self.validate_write(),
            Self::Txn { txn, request, .. } => {
                check_txn(txn)?;
                request.map_or(Ok(()), |r| check_request_id(&r.id))
            }
            Self::TxnFailed { failed, reads, .. } => check_txn_failed(failed, reads),
            Self::Watch {
                prefix, wait_ms, ..
            } => check_watch(prefix, *wait_ms),
            Self::Events { events, .. } => check_events(events),
            Self::Backup(_) => Ok(()),
            Self::BackupPage(page) => check_batch(&page.records, &BACKUP_NAMES),
            Self::History { key, depth, .. } => {
                check_request_key("History.key", key)?;
                check_len(
                    "History.depth",
                    "HISTORY_DEPTH_MAX",
                    usize_from(*depth),
                    HISTORY_DEPTH_MAX,
                )
            }
            Self::Scan { prefix, limit, .. } => {
                check_key("Scan.prefix", prefix)?;
                check_len(
                    "Scan.limit",
                    "SCAN_LIMIT_MAX",
                    usize_from(*limit),
                    SCAN_LIMIT_MAX,
                )
            }
            Self::Value { value, .. } => match value {
                Some((_, bytes)) => check_value("Value.value", bytes),
                None => Ok(()),
            },
            Self::Versions { versions, .. } => check_versions(versions),
            Self::ScanPage { keys, .. } => {
                check_len(
                    "ScanPage.keys",
                    "SCAN_LIMIT_MAX",
                    keys.len(),
                    SCAN_LIMIT_MAX,
                )?;
                keys.iter()
                    .try_for_each(|key| check_key("ScanPage.keys[]", key))
            }
            Self::WorkerList { workers, .. } => check_workers(workers),
            Self::Error { message, .. } => check_message_string("Error.message", message),
            Self::Records {
                first_seq, records, ..
            } => {
                check_batch(records, &RECORDS_NAMES)?;
                check_record_order(*first_seq, records)
            }
            Self::SnapshotChunk { records } => check_batch(records, &SNAPSHOT_NAMES),
            Self::Welcome(welcome) => check_terms(&welcome.terms),
            Self::MemberList { members, .. } => members.check().map_err(DecodeError::Invalid),
            Self::ChangeMembers { change, .. } => check_len(
                "ChangeMembers.change",
                "ADDR_BYTES_MAX",
                change.addr().len(),
                ADDR_BYTES_MAX,
            ),
            Self::Digest { .. }
            | Self::Status { .. }
            | Self::Workers { .. }
            | Self::Written { .. }
            | Self::Deleted { .. }
            | Self::DigestIs { .. }
            | Self::StatusIs { .. }
            | Self::Ack { .. }
            | Self::SnapshotBegin { .. }
            | Self::SnapshotEnd { .. }
            | Self::Ping { .. }
            | Self::Pong { .. }
            | Self::Compact { .. }
            | Self::CompactIs { .. }
            | Self::Challenge(_)
            | Self::Prove(_)
            | Self::Ballot(_)
            | Self::Members { .. } => Ok(()),
        }
    }
}

impl Message {
    /// [`Message::validate`] of a client's write.
    fn validate_write(&self) -> Result<(), DecodeError> {
        match self {
            Self::Put { key, value, .. } => {
                check_request_key("Put.key", key)?;
                check_value("Put.value", value)
            }
            Self::Delete { key, .. } => check_request_key("Delete.key", key),
            Self::PutOnce {
                key,
                value,
                request,
                ..
            } => {
                check_request_key("PutOnce.key", key)?;
                check_value("PutOnce.value", value)?;
                check_request_id(&request.id)
            }
            Self::DeleteOnce { key, request, .. } => {
                check_request_key("DeleteOnce.key", key)?;
                check_request_id(&request.id)
            }
            Self::PutIf {
                key,
                value,
                request,
                ..
            } => {
                check_request_key("PutIf.key", key)?;
                check_value("PutIf.value", value)?;
                request.map_or(Ok(()), |r| check_request_id(&r.id))
            }
            Self::DeleteIf { key, request, .. } => {
                check_request_key("DeleteIf.key", key)?;
                request.map_or(Ok(()), |r| check_request_id(&r.id))
            }
            _ => Ok(()),
        }
    }
}

/// A `WriteRequest` id is never all zero (a record's absent id is zero).
fn check_request_id(id: &[u8; REQUEST_ID_BYTES]) -> Result<(), DecodeError> {
    match *id == [0; REQUEST_ID_BYTES] {
        true => Err(DecodeError::Invalid("a WriteRequest's id is all zero")),
        false => Ok(()),
    }
}

/// `u32` to `usize` without a cast that could truncate on 16-bit targets.
fn usize_from(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

fn check_len(
    what: &'static str,
    limit: &'static str,
    len: usize,
    max: usize,
) -> Result<(), DecodeError> {
    if len > max {
        return Err(DecodeError::LimitExceeded {
            what,
            limit,
            len,
            max,
        });
    }
    Ok(())
}

fn check_key(what: &'static str, key: &[u8]) -> Result<(), DecodeError> {
    check_len(what, "KEY_BYTES_MAX", key.len(), KEY_BYTES_MAX)
}

/// The key of a request: at most `KEY_BYTES_MAX` bytes, and not empty (the
/// key API has no empty key; replicated records of the id API may have one).
fn check_request_key(what: &'static str, key: &[u8]) -> Result<(), DecodeError> {
    if key.is_empty() {
        return Err(DecodeError::Invalid(
            "the key of a Get, Put, Delete or History is empty",
        ));
    }
    check_key(what, key)
}

fn check_value(what: &'static str, value: &[u8]) -> Result<(), DecodeError> {
    check_len(what, "VALUE_BYTES_MAX", value.len(), VALUE_BYTES_MAX)
}

fn check_message_string(what: &'static str, text: &str) -> Result<(), DecodeError> {
    check_len(
        what,
        "MESSAGE_STRING_BYTES_MAX",
        text.len(),
        MESSAGE_STRING_BYTES_MAX,
    )
}

/// The `BATCH_BYTES_MAX` rule: the entries before the last hold at most
/// `BATCH_BYTES_MAX` bytes, so only the last entry may cross the target.
fn check_batch_bytes(
    what: &'static str,
    sizes: impl Iterator<Item = usize>,
) -> Result<(), DecodeError> {
    let mut before_last: usize = 0;
    let mut last: usize = 0;
    for size in sizes {
        before_last = before_last.saturating_add(last);
        last = size;
    }
    check_len(what, "BATCH_BYTES_MAX", before_last, BATCH_BYTES_MAX)
}

fn check_batch(records: &[WireRecord], names: &BatchNames) -> Result<(), DecodeError> {
    check_len(
        names.records,
        "BATCH_RECORDS_MAX",
        records.len(),
        BATCH_RECORDS_MAX,
    )?;
    for record in records {
        check_key(names.key, &record.key)?;
        check_value(names.value, &record.value)?;
        if record.kind == RecordKind::Delete && !record.value.is_empty() {
            return Err(DecodeError::Invalid("a Delete record carries a value"));
        }
        if record.meta.request_id == Some([0; REQUEST_ID_BYTES]) {
            return Err(DecodeError::Invalid(
                "a record's request_id is all zero (absent is None)",
            ));
        }
    }
    let sizes = records
        .iter()
        .map(|record| record.key.len().saturating_add(record.value.len()));
    check_batch_bytes(names.bytes, sizes)
}

/// Term boundaries ascend in term and first seq, start at seq 1 or later,
/// and are at most `TERMS_KEPT`.
fn check_terms(terms: &[TermStart]) -> Result<(), DecodeError> {
    check_len("Welcome.terms", "TERMS_KEPT", terms.len(), TERMS_KEPT)?;
    let mut prev: Option<TermStart> = None;
    for t in terms {
        if t.first_seq == 0 {
            return Err(DecodeError::Invalid(
                "Welcome.terms[].first_seq is 0 (seqs start at 1)",
            ));
        }
        if prev.is_some_and(|p| p.term >= t.term || p.first_seq >= t.first_seq) {
            return Err(DecodeError::Invalid(
                "Welcome.terms do not strictly ascend in term and first_seq",
            ));
        }
        prev = Some(*t);
    }
    Ok(())
}

fn check_record_order(first_seq: u64, records: &[WireRecord]) -> Result<(), DecodeError> {
    if let Some(first) = records.first() {
        if first.seq != first_seq {
            return Err(DecodeError::Invalid(
                "Records.first_seq differs from the seq of the first record",
            ));
        }
    }
    let increasing = records
        .iter()
        .zip(records.iter().skip(1))
        .all(|(before, after)| before.seq < after.seq);
    if !increasing {
        return Err(DecodeError::Invalid(
            "Records.records seqs are not strictly increasing",
        ));
    }
    Ok(())
}

fn check_versions(versions: &[Version]) -> Result<(), DecodeError> {
    check_len(
        "Versions.versions",
        "HISTORY_DEPTH_MAX",
        versions.len(),
        HISTORY_DEPTH_MAX,
    )?;
    for version in versions {
        if let Some(value) = &version.value {
            check_value("Versions.versions[].value", value)?;
        }
    }
    let sizes = versions
        .iter()
        .map(|version| version.value.as_ref().map_or(0, |value| value.len()));
    check_batch_bytes(
        "Versions.versions value bytes before the last version",
        sizes,
    )
}

fn check_workers(workers: &[WorkerInfo]) -> Result<(), DecodeError> {
    check_len(
        "WorkerList.workers",
        "WORKERS_MAX",
        workers.len(),
        WORKERS_MAX,
    )?;
    workers.iter().try_for_each(|worker| {
        check_len(
            "WorkerList.workers[].addr",
            "ADDR_BYTES_MAX",
            worker.addr.len(),
            ADDR_BYTES_MAX,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn record(seq: u64, value_len: usize) -> WireRecord {
        WireRecord {
            seq,
            id: 1,
            kind: RecordKind::Put,
            key: vec![b'k'],
            value: vec![0; value_len],
            meta: crate::WireMeta::default(),
        }
    }

    #[test]
    fn batch_may_cross_the_target_only_with_its_last_record() {
        // Target reached exactly, then one largest record: allowed.
        let mut records = vec![record(1, BATCH_BYTES_MAX - 1), record(2, VALUE_BYTES_MAX)];
        let message = Message::Records {
            term: 0,
            first_seq: 1,
            records: records.clone(),
        };
        assert_eq!(message.validate(), Ok(()));

        // One byte more before the last record: rejected.
        records.insert(0, record(0, 0));
        let message = Message::Records {
            term: 0,
            first_seq: 0,
            records,
        };
        assert!(matches!(
            message.validate(),
            Err(DecodeError::LimitExceeded {
                limit: "BATCH_BYTES_MAX",
                len,
                ..
            }) if len == BATCH_BYTES_MAX + 1
        ));
    }

    #[test]
    fn records_must_start_at_first_seq_and_increase() {
        let message = Message::Records {
            term: 0,
            first_seq: 5,
            records: vec![record(6, 1)],
        };
        assert!(matches!(message.validate(), Err(DecodeError::Invalid(_))));
        let message = Message::Records {
            term: 0,
            first_seq: 5,
            records: vec![record(5, 1), record(5, 1)],
        };
        assert!(matches!(message.validate(), Err(DecodeError::Invalid(_))));
        let message = Message::Records {
            term: 0,
            first_seq: 5,
            records: Vec::new(),
        };
        assert_eq!(message.validate(), Ok(()));
    }

    #[test]
    fn welcome_terms_must_ascend_and_stay_few() {
        let start = |term, first_seq| TermStart { term, first_seq };
        let welcome = |terms: Vec<TermStart>| {
            Message::Welcome(crate::Welcome {
                version: crate::PROTOCOL_VERSION,
                role: crate::Role::Master,
                node_id: 1,
                history_id: 2,
                commit_seq: 3,
                term: 4,
                terms,
            })
        };
        assert_eq!(welcome(vec![start(0, 1), start(4, 3)]).validate(), Ok(()));
        for bad in [
            vec![start(1, 0)],
            vec![start(2, 5), start(2, 6)],
            vec![start(2, 5), start(3, 5)],
            vec![start(3, 5), start(2, 6)],
        ] {
            assert!(matches!(
                welcome(bad).validate(),
                Err(DecodeError::Invalid(_))
            ));
        }
        let many = (1..=TERMS_KEPT as u64 + 1).map(|t| start(t, t)).collect();
        assert!(matches!(
            welcome(many).validate(),
            Err(DecodeError::LimitExceeded {
                limit: "TERMS_KEPT",
                ..
            })
        ));
    }

    #[test]
    fn a_request_id_is_never_all_zero() {
        let mut r = record(1, 1);
        r.meta.request_id = Some([0; REQUEST_ID_BYTES]);
        let message = Message::SnapshotChunk { records: vec![r] };
        assert!(matches!(message.validate(), Err(DecodeError::Invalid(_))));
        let write = |id| Message::DeleteOnce {
            req_id: 1,
            key: b"k".to_vec(),
            request: crate::WriteRequest {
                id,
                retry_after: None,
            },
        };
        assert!(matches!(
            write([0; REQUEST_ID_BYTES]).validate(),
            Err(DecodeError::Invalid(_))
        ));
        assert_eq!(write([1; REQUEST_ID_BYTES]).validate(), Ok(()));
    }

    #[test]
    fn snapshot_chunks_need_no_seq_order() {
        let message = Message::SnapshotChunk {
            records: vec![record(9, 1), record(3, 1)],
        };
        assert_eq!(message.validate(), Ok(()));
    }

    #[test]
    fn delete_records_carry_no_value() {
        let mut delete = record(1, 1);
        delete.kind = RecordKind::Delete;
        let message = Message::SnapshotChunk {
            records: vec![delete],
        };
        assert!(matches!(message.validate(), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn versions_follow_the_batch_rule() {
        let versions = vec![
            Version {
                seq: 3,
                value: Some(vec![0; BATCH_BYTES_MAX]),
            },
            Version {
                seq: 2,
                value: Some(vec![0; 1]),
            },
            Version {
                seq: 1,
                value: None,
            },
        ];
        let message = Message::Versions {
            req_id: 1,
            applied_seq: 3,
            versions,
            omitted: 0,
        };
        assert!(matches!(
            message.validate(),
            Err(DecodeError::LimitExceeded {
                limit: "BATCH_BYTES_MAX",
                ..
            })
        ));
    }
}
