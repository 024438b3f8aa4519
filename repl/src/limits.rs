//! The replication core's time unit and limits, in one place.

/// Milliseconds on the driver's monotonic clock.
pub type Millis = u64;

/// How long a worker holds back the `Ack` of records it applied, so that one
/// `Ack` covers every batch applied meanwhile. A master that waits for acks
/// (`--sync N`) asks for one at once with a `Ping` after the records.
pub const ACK_DELAY_MS: Millis = 50;
/// Wait before reconnecting to the master after a failure.
pub const RECONNECT_MS: Millis = 200;
/// Wait before retrying a master that holds another history.
pub const HISTORY_RETRY_MS: Millis = 5_000;
/// For this many heartbeat timeouts after start the master keeps every
/// delete: workers it knew before a restart have time to reconnect.
pub const FLOOR_GRACE_TIMEOUTS: u64 = 10;
/// Pongs a worker may owe while an apply is in flight (the master sends one
/// `Ping` per batch and a worker reads no further while it applies).
pub const PONGS_OWED_MAX: usize = 16;
