//! Conditional writes through the edge (`If-Match`, `If-None-Match`):
//! sent where writes are ordered (the master, or the leader with a request
//! id like any write), which decides with the append.

use super::{to_error, Edge};
use crate::http::{BackendError, TxnAnswer};
use hypha_net::{ErrorCode, Expect, Message};

impl Edge {
    /// `PutIf`: the write's seq, or the key's live seq when it is not as
    /// `expect` says.
    pub(super) async fn cas_put(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        expect: Expect,
    ) -> Result<Result<u64, Option<u64>>, BackendError> {
        let m = Message::PutIf {
            req_id: self.req_id(),
            key,
            value,
            expect,
            request: None,
        };
        match self.write(m).await? {
            Message::Written { seq, .. } => Ok(Ok(seq)),
            other => conflict(other).map(Err),
        }
    }

    /// `DeleteIf` (see [`Edge::cas_put`]).
    pub(super) async fn cas_delete(
        &self,
        key: Vec<u8>,
        expect: Expect,
    ) -> Result<Result<Option<u64>, Option<u64>>, BackendError> {
        let m = Message::DeleteIf {
            req_id: self.req_id(),
            key,
            expect,
            request: None,
        };
        match self.write(m).await? {
            Message::Deleted { seq, .. } => Ok(Ok(seq)),
            other => conflict(other).map(Err),
        }
    }
}

impl Edge {
    /// A transaction, sent where writes are ordered like any write.
    pub(super) async fn send_txn(&self, txn: hypha_net::Txn) -> Result<TxnAnswer, BackendError> {
        let m = Message::Txn {
            req_id: self.req_id(),
            txn,
            request: None,
        };
        match self.write(m).await? {
            Message::Written { seq, .. } => Ok(TxnAnswer::Applied { seq }),
            Message::TxnFailed {
                seq, failed, reads, ..
            } => Ok(TxnAnswer::Failed {
                seq,
                failed,
                reads: reads.into_iter().map(|r| r.value).collect(),
            }),
            other => Err(to_error(other)),
        }
    }
}

/// A conditional write's `Conflict` answer: the key's live seq; any other
/// answer is an error.
fn conflict(answer: Message) -> Result<Option<u64>, BackendError> {
    match answer {
        Message::Error {
            code: ErrorCode::Conflict { seq },
            ..
        } => Ok(seq),
        other => Err(to_error(other)),
    }
}
