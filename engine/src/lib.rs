//! hypha-engine: an OurDB-style store done right.
//!
//! Dense u32 **ids** map through a **lookup table** to a **location** (data
//! file, offset) of the newest record of that id; records live in
//! **append-only data files** (`0.db`, `1.db`, …) with a CRC and a pointer to
//! the previous version of the same id, so history is a walk back.
//! On top of that sits a **key API** ([`Db::put`], [`Db::get`], …): a key
//! index on disk maps binary keys to ids. Every mutation gets a [`Seq`];
//! [`Db::read_from`] ships the log and [`Db::apply`] replays it on a replica.
//!
//! Durability is chosen per database ([`Fsync`]); concurrent writers share one
//! fdatasync (group commit). After a crash, [`Db::open`] replays the records
//! written since the last checkpoint, truncates a torn tail (keeping its bytes
//! aside), and rebuilds what the tables lack. The on-disk format is specified
//! in `FORMAT.md`.
//!
//! Without the default `std` feature only the encoding core builds
//! (`#![no_std]` + `alloc`): records, locations, tables, hashes.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

extern crate alloc;

pub mod error;
pub mod hash;
pub mod limits;
pub mod location;
pub mod record;
pub mod tables;
pub mod term_table;

#[cfg(feature = "std")]
mod background;
#[cfg(feature = "std")]
mod commit;
#[cfg(feature = "std")]
mod compact;
#[cfg(feature = "std")]
mod compact_copy;
#[cfg(feature = "std")]
mod cut;
#[cfg(feature = "std")]
mod datafile;
#[cfg(feature = "std")]
mod db;
#[cfg(feature = "std")]
mod dir;
#[cfg(feature = "std")]
mod files;
#[cfg(feature = "std")]
mod full;
#[cfg(feature = "std")]
mod guards;
#[cfg(feature = "std")]
mod ids;
#[cfg(feature = "std")]
mod inner;
#[cfg(feature = "std")]
pub mod io;
#[cfg(feature = "std")]
mod keyindex;
#[cfg(feature = "std")]
mod keys;
#[cfg(feature = "lock-stats")]
mod lock_stats;
#[cfg(feature = "std")]
mod log_iter;
#[cfg(feature = "std")]
mod log_read;
#[cfg(feature = "std")]
mod lookup;
#[cfg(feature = "std")]
mod maps;
#[cfg(feature = "std")]
mod marker;
#[cfg(feature = "std")]
mod options;
#[cfg(feature = "std")]
mod outbuf;
#[cfg(feature = "std")]
mod random;
#[cfg(feature = "std")]
mod recovery;
#[cfg(feature = "std")]
mod request;
#[cfg(feature = "std")]
mod seek;
#[cfg(feature = "std")]
mod shardmap;
#[cfg(feature = "std")]
mod state;
#[cfg(feature = "std")]
mod stats;
#[cfg(feature = "std")]
mod terms;
#[cfg(feature = "std")]
mod truncate;
#[cfg(feature = "std")]
mod ttl;
#[cfg(feature = "std")]
mod txn;
#[cfg(feature = "std")]
mod vote;
#[cfg(feature = "std")]
mod witness;
mod witness_file;

pub use error::CodecError;
pub use location::Location;
pub use record::{Record, RecordKind, RecordMeta, Seq, REQUEST_ID_BYTES};
pub use term_table::TermStart;

#[cfg(feature = "std")]
pub use crate::state::{CHECKPOINT_BYTES_MAX, CHECKPOINT_IDS_MAX};
#[cfg(feature = "std")]
pub use background::{CHECKPOINT_IDLE_MS, COMPACT_CHECK_MS};
#[cfg(feature = "std")]
pub use db::Db;
#[cfg(feature = "std")]
pub use error::Error;
#[cfg(feature = "std")]
pub use ids::Ids;
#[cfg(feature = "std")]
pub use keys::SCAN_IDS_PER_CALL_MAX;
#[cfg(feature = "std")]
pub use log_iter::LogIter;
#[cfg(feature = "std")]
pub use options::{Fsync, Options};
#[cfg(feature = "std")]
pub use outbuf::{PREALLOC_BYTES, WRITE_BUFFER_BYTES, WRITE_BUFFER_MAX};
#[cfg(feature = "std")]
pub use random::random_u64;
#[cfg(feature = "std")]
pub use recovery::Recovery;
#[cfg(feature = "std")]
pub use request::{Expect, Once, Request};
#[cfg(feature = "std")]
pub use stats::{CompactReport, ScanPage, Stats, Version};
#[cfg(feature = "std")]
pub use tables::Vote;
#[cfg(feature = "std")]
pub use ttl::LiveValue;
#[cfg(feature = "std")]
pub use txn::{BatchOp, Cond, Live, Test, Txn, TxnOutcome};
#[cfg(feature = "std")]
pub use vote::VOTE_FILE;
#[cfg(feature = "std")]
pub use witness::{WitnessStore, WITNESS_FILE};
pub use witness_file::{WitnessLast, WITNESS_BYTES};
