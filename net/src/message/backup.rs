//! A consistent copy of a node's live keys, page by page
//! ([`Message::Backup`](crate::Message::Backup) and
//! [`Message::BackupPage`](crate::Message::BackupPage)): what `hypha backup`
//! reads through an edge.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::WireRecord;

/// Tag 43's fields: the next page of the store as it was after seq `upto`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupAsk {
    /// Request id.
    pub req_id: u64,
    /// The seq the copy is of; `None` on the first page: the node's seq now.
    pub upto: Option<u64>,
    /// Resume after this record's seq (0 on the first page).
    pub after: u64,
    /// The `generation` of the first page: a node whose compactions moved
    /// on since refuses with `Error { Compacted }` (versions live at `upto`
    /// may be gone) and the copy starts again.
    pub generation: Option<u64>,
}

/// Tag 44's fields: answers [`BackupAsk`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPage {
    /// Request id of the ask.
    pub req_id: u64,
    /// The seq the copy is of.
    pub upto: u64,
    /// The node's compaction count when the copy began.
    pub generation: u64,
    /// The next live records at `upto` (puts only, system keys left out), in
    /// seq order, under the `BATCH_BYTES_MAX` rule.
    pub records: Vec<WireRecord>,
    /// No record follows the last one.
    pub done: bool,
}
