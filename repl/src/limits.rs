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
/// `Ping` per batch); past it a new ping's pong stands for the newest owed.
pub const PONGS_OWED_MAX: usize = 16;
/// Key and value bytes a worker queues behind the apply in flight before it
/// stops reading from the master: what arrives during one fdatasync is
/// applied next with one fdatasync, and memory stays bounded (at most this
/// plus one batch, `hypha_net::BATCH_BYTES_MAX`).
pub const APPLY_QUEUED_BYTES_MAX: usize = 1024 * 1024;
