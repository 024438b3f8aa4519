//! The fields of a transaction ([`Message::Txn`](crate::Message::Txn)) and
//! of its failed answer ([`Message::TxnFailed`](crate::Message::TxnFailed)):
//! conditions on keys, writes applied as one atomic batch when every
//! condition holds, and reads answered when one does not.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::Expect;

/// A transaction: if every condition holds, the writes, as one atomic batch
/// at consecutive seqs; else nothing is written and the reads are answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    /// At most `TXN_ITEMS_MAX` conditions.
    pub conds: Vec<TxnCond>,
    /// At most `TXN_ITEMS_MAX` writes, in order.
    pub ops: Vec<TxnOp>,
    /// At most `TXN_ITEMS_MAX` keys read when a condition fails.
    #[serde(with = "crate::bytes::list")]
    pub reads: Vec<Vec<u8>>,
}

/// One condition of a [`Txn`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnCond {
    /// The key, 1..=`KEY_BYTES_MAX` bytes.
    #[serde(with = "crate::bytes::vec")]
    pub key: Vec<u8>,
    /// What it must hold.
    pub test: TxnTest,
}

/// What a [`TxnCond`] asks of its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnTest {
    /// As a conditional write's [`Expect`]. Tag 0.
    Expect(Expect),
    /// It holds exactly this value. Tag 1.
    Value(#[serde(with = "crate::bytes::vec")] Vec<u8>),
}

/// One write of a [`Txn`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// Store the value under the key. Tag 0.
    Put {
        /// The key, 1..=`KEY_BYTES_MAX` bytes.
        #[serde(with = "crate::bytes::vec")]
        key: Vec<u8>,
        /// The value, at most `VALUE_BYTES_MAX` bytes.
        #[serde(with = "crate::bytes::vec")]
        value: Vec<u8>,
        /// Time to live in ms, at most `TTL_MS_MAX`: the master expires
        /// the key this long after it writes it by its clock. 0: never.
        ttl_ms: u64,
    },
    /// Delete the key (nothing is written if it is absent by then). Tag 1.
    Delete {
        /// The key, 1..=`KEY_BYTES_MAX` bytes.
        #[serde(with = "crate::bytes::vec")]
        key: Vec<u8>,
    },
    /// Give the key a new time to live, keeping its value: a write (new
    /// seq) marked as a refresh; nothing is written if the key is absent
    /// by then. Tag 2.
    Refresh {
        /// The key, 1..=`KEY_BYTES_MAX` bytes.
        #[serde(with = "crate::bytes::vec")]
        key: Vec<u8>,
        /// Time to live in ms, 1..=`TTL_MS_MAX`.
        ttl_ms: u64,
    },
}

impl TxnOp {
    /// The key written.
    pub fn key(&self) -> &[u8] {
        match self {
            TxnOp::Put { key, .. } | TxnOp::Delete { key } | TxnOp::Refresh { key, .. } => key,
        }
    }

    /// Key and value bytes.
    pub fn bytes(&self) -> usize {
        match self {
            TxnOp::Put { key, value, .. } => key.len() + value.len(),
            TxnOp::Delete { key } | TxnOp::Refresh { key, .. } => key.len(),
        }
    }
}

impl TxnCond {
    /// Key and value bytes.
    pub fn bytes(&self) -> usize {
        self.key.len()
            + match &self.test {
                TxnTest::Expect(_) => 0,
                TxnTest::Value(v) => v.len(),
            }
    }
}

impl Txn {
    /// Key and value bytes of everything in it (at most `TXN_BYTES_MAX`).
    pub fn bytes(&self) -> usize {
        let conds = self.conds.iter().map(TxnCond::bytes);
        let ops = self.ops.iter().map(TxnOp::bytes);
        let reads = self.reads.iter().map(Vec::len);
        conds.chain(ops).chain(reads).fold(0, usize::saturating_add)
    }
}

/// A key read by a failed [`Txn`]: its live version, or absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRead {
    /// `(seq of the live version, value)`, or `None` if the key is absent.
    #[serde(with = "crate::bytes::option_seq")]
    pub value: Option<(u64, Vec<u8>)>,
}
