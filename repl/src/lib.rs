//! hypha-repl: the replication protocol as plain state machines.
//!
//! A master keeps one [`MasterCore`]; a worker keeps one [`Follower`]; a
//! member of a failover group will keep an [`election::Election`] (leader
//! election; not wired to the server yet, tested by `tests/election_sim/`). All
//! are fed `(event, now)` — a decoded message, a timer firing, the result of
//! engine work their driver did — and return actions: frames to send, log
//! ranges to read, records to apply, snapshots to begin, confirmations for
//! `--sync N` waiters. Nothing in here touches a socket, a clock, a thread or
//! the engine: `server/` drives them over TCP and `hypha-engine`, and
//! `tests/sim.rs` drives them over a simulated network and a model of the
//! engine's durability contract, with thousands of seeded interleavings.
//!
//! Time is [`Millis`]: milliseconds on the driver's monotonic clock.
//!
//! The invariants both sides keep (docs/design.md, "Replication"):
//! - a worker's contents are always a prefix of the master's log (by seq);
//! - a record is streamed only once the master reported it committed
//!   ([`MasterEvent::Committed`]): under `--fsync always` that is after its
//!   fdatasync, so a master crash never takes back what a worker holds;
//! - a write waiting for `--sync N` is confirmed only when N workers
//!   acknowledged its seq on their current sessions;
//! - every queue is bounded: one log read or one send in flight per worker
//!   session, one apply in flight per worker.

#![deny(missing_docs)]

pub mod election;
mod events;
mod follower;
mod limits;
mod master;
pub mod terms;
mod workers;

pub use follower::{Follower, FollowerAction, FollowerEvent, FollowerParams, Phase};
pub use master::{Conn, Join, MasterAction, MasterCore, MasterEvent, MasterParams, SyncMode};
pub use workers::WorkerEntry;

pub use limits::*;
