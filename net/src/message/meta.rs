//! What every [`Message`] can say about itself: its tag, its name, its
//! request id.

use alloc::string::String;

use super::{ErrorCode, Message};
use crate::handshake::truncate_str;
use crate::limits::MESSAGE_STRING_BYTES_MAX;

impl Message {
    /// The message's tag: its postcard variant index, the first byte of its
    /// payload. Pinned; see `net/WIRE.md`.
    pub fn tag(&self) -> u32 {
        match self {
            Self::Hello(_) => 0,
            Self::Welcome(_) => 1,
            Self::Refuse(_) => 2,
            Self::Get { .. } => 3,
            Self::Put { .. } => 4,
            Self::Delete { .. } => 5,
            Self::History { .. } => 6,
            Self::Scan { .. } => 7,
            Self::Digest { .. } => 8,
            Self::Status { .. } => 9,
            Self::Workers { .. } => 10,
            Self::Value { .. } => 11,
            Self::Written { .. } => 12,
            Self::Deleted { .. } => 13,
            Self::Versions { .. } => 14,
            Self::ScanPage { .. } => 15,
            Self::DigestIs { .. } => 16,
            Self::StatusIs { .. } => 17,
            Self::WorkerList { .. } => 18,
            Self::Error { .. } => 19,
            Self::Records { .. } => 20,
            Self::Ack { .. } => 21,
            Self::SnapshotBegin { .. } => 22,
            Self::SnapshotChunk { .. } => 23,
            Self::SnapshotEnd { .. } => 24,
            Self::Ping { .. } => 25,
            Self::Pong { .. } => 26,
            Self::Compact { .. } => 27,
            Self::CompactIs { .. } => 28,
            Self::Challenge(_) => 29,
            Self::Prove(_) => 30,
            Self::Ballot(_) => 31,
            Self::PutOnce { .. } => 32,
            Self::DeleteOnce { .. } => 33,
            Self::Members { .. } => 34,
            Self::MemberList { .. } => 35,
            Self::ChangeMembers { .. } => 36,
            Self::PutIf { .. } => 37,
            Self::DeleteIf { .. } => 38,
            Self::Txn { .. } => 39,
            Self::TxnFailed { .. } => 40,
            Self::Watch { .. } => 41,
            Self::Events { .. } => 42,
            Self::Backup(_) => 43,
            Self::BackupPage(_) => 44,
        }
    }

    /// The variant's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello(_) => "Hello",
            Self::Welcome(_) => "Welcome",
            Self::Refuse(_) => "Refuse",
            Self::Get { .. } => "Get",
            Self::Put { .. } => "Put",
            Self::Delete { .. } => "Delete",
            Self::History { .. } => "History",
            Self::Scan { .. } => "Scan",
            Self::Digest { .. } => "Digest",
            Self::Status { .. } => "Status",
            Self::Workers { .. } => "Workers",
            Self::Value { .. } => "Value",
            Self::Written { .. } => "Written",
            Self::Deleted { .. } => "Deleted",
            Self::Versions { .. } => "Versions",
            Self::ScanPage { .. } => "ScanPage",
            Self::DigestIs { .. } => "DigestIs",
            Self::StatusIs { .. } => "StatusIs",
            Self::WorkerList { .. } => "WorkerList",
            Self::Error { .. } => "Error",
            Self::Records { .. } => "Records",
            Self::Ack { .. } => "Ack",
            Self::SnapshotBegin { .. } => "SnapshotBegin",
            Self::SnapshotChunk { .. } => "SnapshotChunk",
            Self::SnapshotEnd { .. } => "SnapshotEnd",
            Self::Ping { .. } => "Ping",
            Self::Pong { .. } => "Pong",
            Self::Compact { .. } => "Compact",
            Self::CompactIs { .. } => "CompactIs",
            Self::Challenge(_) => "Challenge",
            Self::Prove(_) => "Prove",
            Self::Ballot(_) => "Ballot",
            Self::PutOnce { .. } => "PutOnce",
            Self::DeleteOnce { .. } => "DeleteOnce",
            Self::Members { .. } => "Members",
            Self::MemberList { .. } => "MemberList",
            Self::ChangeMembers { .. } => "ChangeMembers",
            Self::PutIf { .. } => "PutIf",
            Self::DeleteIf { .. } => "DeleteIf",
            Self::Txn { .. } => "Txn",
            Self::TxnFailed { .. } => "TxnFailed",
            Self::Watch { .. } => "Watch",
            Self::Events { .. } => "Events",
            Self::Backup(_) => "Backup",
            Self::BackupPage(_) => "BackupPage",
        }
    }

    /// The request id of a request or response; `None` for handshake,
    /// replication and ping messages.
    pub fn req_id(&self) -> Option<u64> {
        match self {
            Self::Get { req_id, .. }
            | Self::Put { req_id, .. }
            | Self::Delete { req_id, .. }
            | Self::PutOnce { req_id, .. }
            | Self::DeleteOnce { req_id, .. }
            | Self::History { req_id, .. }
            | Self::Scan { req_id, .. }
            | Self::Digest { req_id }
            | Self::Status { req_id }
            | Self::Workers { req_id }
            | Self::Value { req_id, .. }
            | Self::Written { req_id, .. }
            | Self::Deleted { req_id, .. }
            | Self::Versions { req_id, .. }
            | Self::ScanPage { req_id, .. }
            | Self::DigestIs { req_id, .. }
            | Self::StatusIs { req_id, .. }
            | Self::WorkerList { req_id, .. }
            | Self::Compact { req_id, .. }
            | Self::CompactIs { req_id, .. }
            | Self::Members { req_id }
            | Self::MemberList { req_id, .. }
            | Self::ChangeMembers { req_id, .. }
            | Self::PutIf { req_id, .. }
            | Self::DeleteIf { req_id, .. }
            | Self::Txn { req_id, .. }
            | Self::TxnFailed { req_id, .. }
            | Self::Watch { req_id, .. }
            | Self::Events { req_id, .. }
            | Self::Error { req_id, .. } => Some(*req_id),
            Self::Backup(ask) => Some(ask.req_id),
            Self::BackupPage(page) => Some(page.req_id),
            Self::Hello(_)
            | Self::Welcome(_)
            | Self::Refuse(_)
            | Self::Records { .. }
            | Self::Ack { .. }
            | Self::SnapshotBegin { .. }
            | Self::SnapshotChunk { .. }
            | Self::SnapshotEnd { .. }
            | Self::Ping { .. }
            | Self::Pong { .. }
            | Self::Challenge(_)
            | Self::Prove(_)
            | Self::Ballot(_) => None,
        }
    }

    /// An `Error` response whose message is cut to `MESSAGE_STRING_BYTES_MAX`
    /// bytes on a character boundary, so it always passes validation.
    pub fn error(req_id: u64, code: ErrorCode, message: &str) -> Self {
        let message = truncate_str(message, MESSAGE_STRING_BYTES_MAX);
        Self::Error {
            req_id,
            code,
            message: String::from(message),
        }
    }
}

impl Message {
    /// The key a client's write changes (`Put`, `Delete`, `PutOnce`,
    /// `DeleteOnce`); `None` for every other message.
    pub fn written_key(&self) -> Option<&[u8]> {
        match self {
            Self::Put { key, .. }
            | Self::Delete { key, .. }
            | Self::PutOnce { key, .. }
            | Self::DeleteOnce { key, .. }
            | Self::PutIf { key, .. }
            | Self::DeleteIf { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Whether `m` is a client's write: one key's (`written_key`) or a
    /// `Txn` (which may write nothing, but is decided where writes are).
    pub fn is_write(&self) -> bool {
        self.written_key().is_some() || matches!(self, Self::Txn { .. })
    }

    /// Whether a client's write changes a system key
    /// ([`is_system_key`](crate::is_system_key)): refused by every node.
    pub fn writes_system_key(&self) -> bool {
        match self {
            Self::Txn { txn, .. } => txn.ops.iter().any(|o| crate::is_system_key(o.key())),
            m => m.written_key().is_some_and(crate::is_system_key),
        }
    }
}
