//! hypha's wire protocol: the bytes that master, workers and the HTTP edge
//! exchange over TCP and UDP on the Mycelium overlay.
//!
//! This crate is sans-IO: it turns [`Message`]s into bytes and bytes back
//! into messages, and never touches a socket. The byte layouts, the limits
//! and the versioning rule are specified in `net/WIRE.md`; the code follows
//! that file, and golden-byte tests pin both together.
//!
//! * **TCP frames** — `[len u32 LE][crc32 u32 LE][postcard payload]`, built by
//!   [`encode_frame`] and taken apart by [`decode_frame`] or the buffering
//!   [`FrameDecoder`]. Partial input is [`Decoded::NeedMore`], not an error.
//!   Every decoded message has passed [`Message::validate`], so the limits in
//!   [`limits`] hold for anything this crate hands out.
//! * **Handshake** — the first frame on a connection is a [`Hello`], answered
//!   by a [`Welcome`] or a [`Refuse`]; [`check_hello`] does the checks every
//!   node makes.
//! * **UDP heartbeats** — a [`Heartbeat`] fits one 1352-byte datagram
//!   ([`HEARTBEAT_BYTES_MAX`]); see [`encode_heartbeat`] and [`decode_heartbeat`].
//! * **Allowlists** — [`Allowlist`] and [`Cidr`] decide which peer addresses may
//!   connect at all.
//!
//! Without the default `std` feature the crate is `no_std` + `alloc`; `std`
//! only adds `std::error::Error` impls and conversions of [`DecodeError`] and
//! [`EncodeError`] into `std::io::Error`.
//!
//! ```
//! use hypha_net::{decode_frame, encode_frame, Decoded, Message};
//!
//! let mut wire = Vec::new();
//! encode_frame(&Message::Digest { req_id: 7 }, &mut wire)?;
//! match decode_frame(&wire)? {
//!     Decoded::Frame { message, consumed } => {
//!         assert_eq!(message, Message::Digest { req_id: 7 });
//!         assert_eq!(consumed, wire.len());
//!     }
//!     Decoded::NeedMore(_) => unreachable!("a whole frame was given"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

extern crate alloc;

mod allowlist;
mod auth;
mod bytes;
mod error;
mod failover;
mod frame;
mod handshake;
mod heartbeat;
pub mod limits;
mod members;
mod message;
mod session;
mod validate;

pub use allowlist::{Allowlist, Cidr, CidrError};
pub use auth::{
    connector_finish, Acceptor, ClusterKey, ClusterKeys, Session, CLUSTER_KEYS_MAX,
    CLUSTER_KEY_BYTES,
};
pub use error::{AuthError, DecodeError, EncodeError};
pub use failover::{
    group_id, is_system_key, Ballot, LogId, TermStart, WriteRequest, MIN_SEQ_LINEARIZABLE,
    SYSTEM_KEY_PREFIX, TERM_START_KEY,
};
pub use frame::{
    decode_frame, encode_frame, encode_frame_to_vec, seal_frame, Decoded, FrameDecoder,
};
pub use handshake::{
    check_hello, check_welcome, Challenge, Hello, Prove, Purpose, Refuse, RefuseReason, Role,
    Welcome, HELLO_MAGIC, PROTOCOL_VERSION,
};
pub use heartbeat::{
    decode_heartbeat, encode_heartbeat, open_heartbeat, Heartbeat, HeartbeatBytes,
};
pub use limits::*;
pub use members::{MemberChange, Membership, Slot, Standing, MEMBERS_FORMAT, MEMBERS_KEY};
pub use message::{
    BackupAsk, BackupPage, Change, ChangeKind, CompactInfo, ErrorCode, Expect, Message, NodeStatus,
    RecordKind, Txn, TxnCond, TxnOp, TxnRead, TxnTest, Version, WatchEvent, WireMeta, WireRecord,
    WorkerInfo,
};
pub use session::{BeatOpener, BeatSealer, Opener, ReplayWindow, Sealer};
