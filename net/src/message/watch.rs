//! The fields of a watch's answer ([`Message::Events`](crate::Message::Events)):
//! the changes under a prefix after a seq, one event per write or per
//! atomic batch.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// One write, or one atomic batch, under a watched prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The write's seq; a batch's last seq (its cursor).
    pub seq: u64,
    /// Its changes under the prefix, in log order (at least one).
    pub changes: Vec<Change>,
}

/// One key's change in a [`WatchEvent`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What happened to the key.
    pub kind: ChangeKind,
    /// The key, at most `KEY_BYTES_MAX` bytes.
    #[serde(with = "crate::bytes::vec")]
    pub key: Vec<u8>,
    /// The value written (a put or refresh, when the watch asked for
    /// values); `None` otherwise.
    #[serde(with = "crate::bytes::option")]
    pub value: Option<Vec<u8>>,
}

/// What a [`Change`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeKind {
    /// A put. Tag 0.
    Put,
    /// A delete. Tag 1.
    Delete,
    /// The master expired the key (a delete carrying its deadline). Tag 2.
    Expire,
    /// A put that only moved the key's deadline. Tag 3.
    Refresh,
}

impl WatchEvent {
    /// Key and value bytes of its changes.
    pub fn bytes(&self) -> usize {
        let each = |c: &Change| c.key.len() + c.value.as_ref().map_or(0, Vec::len);
        self.changes.iter().map(each).fold(0, usize::saturating_add)
    }
}
