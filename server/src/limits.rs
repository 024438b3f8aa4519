//! The one table of limits that the HTTP edge, the wire and the engine
//! agree on. The wire's constants (`hypha_net::limits`, `net/WIRE.md` §7)
//! are the source; the engine's copies are checked against them at compile
//! time, the HTTP layer uses these names, and the flags that can lower a
//! limit are checked against them at startup. A request over a limit is
//! refused at the edge with 400/413 naming the limit (and the flag that sets it, if one does), before any
//! node sees it.
//!
//! | limit | value | HTTP | wire | engine |
//! | --- | --- | --- | --- | --- |
//! | [`KEY_BYTES_MAX`] | 4096 | 413 (body dialects), 414 (in the URL) | `LimitExceeded` | `KeyTooLong` |
//! | [`VALUE_BYTES_MAX`] | 16 MiB, lower with `--value-max` | 413 | `LimitExceeded` | `ValueTooLong` |
//! | [`HISTORY_DEPTH_MAX`] | 256 | 400 for `?history=` above it | `History.depth` | keeps up to 4096 |
//! | [`SCAN_LIMIT_MAX`] | 1000 | 400 for `?limit=` above it | `Scan.limit` | |
//! | [`FRAME_BYTES_MAX`] | 32 MiB | | frame length | |
//! | [`REQUEST_SCAN_RECORDS_MAX`] | 65,536 | 503 "outcome unknown" for a retry beyond it | `Error { OutcomeUnknown }` | `Once::Unknown` |
//!
//! Failover groups' bounds and waits (not limits of a request, but every
//! one named here so that none hides in a module):
//!
//! | constant | value | what |
//! | --- | --- | --- |
//! | [`LEADER_WAIT_MS`] | 5,000 | how long the edge looks for a leader before a write gets 503 |
//! | [`MEMBER_WATCH_MS`] | 250 | how often the edge asks each member whether it leads |
//! | [`APPLY_QUEUED_BYTES_MAX`] | 1 MiB | key and value bytes a follower queues behind the apply in flight before it stops reading from its master |
//! | [`ANSWER_LATE_MS`] | 1,000 | a member with a call unanswered this long is tried last for reads and is no reachable leader (`X-Hypha-Stale`) |
//! | [`STATUS_REFRESH_WAIT_MS`] | 500 | how long `/status` waits for a silent master |
//! | [`BALLOTS_QUEUED_MAX`] | 64 | ballots waiting for the election task or for one member's connection; more are dropped, as a lossy network would |
//! | [`READS_WAITING_MAX`] | 4,096 | linearizable reads waiting for a read-index round; more are refused and the edge tries again |
//! | [`MEMBERS_MAX`] | 64 | member ids over a group's life (ids are never reused) |
//! | [`MEMBER_CATCH_UP_MS`] | 120,000 | how long `hypha members add` waits for the new member to catch up before it answers how far it got |
//! | [`MEMBER_CHANGE_WAIT_MS`] | 150,000 | how long the edge's `POST /admin/members` waits for the leader's answer |
//! | [`MEMBERS_LEARN_MS`] | 5,000 | how often an edge asks the members for the member list |

pub use crate::edge::{ANSWER_LATE_MS, LEADER_WAIT_MS, MEMBER_WATCH_MS, STATUS_REFRESH_WAIT_MS};
pub use crate::edge::{MEMBERS_LEARN_MS, MEMBER_CHANGE_WAIT_MS};
pub use crate::member::{BALLOTS_QUEUED_MAX, MEMBER_CATCH_UP_MS, READS_WAITING_MAX};
pub use hypha_engine::limits::REQUEST_SCAN_RECORDS_MAX;
pub use hypha_net::{
    FRAME_BYTES_MAX, HISTORY_DEPTH_MAX, KEY_BYTES_MAX, MEMBERS_MAX, SCAN_LIMIT_MAX, VALUE_BYTES_MAX,
};
pub use hypha_repl::APPLY_QUEUED_BYTES_MAX;

// The engine stores what the wire carries, no more and no less.
const _: () = assert!(hypha_engine::limits::KEY_BYTES_MAX == KEY_BYTES_MAX);
const _: () = assert!(hypha_engine::limits::VALUE_BYTES_MAX_DEFAULT == VALUE_BYTES_MAX);
const _: () = assert!(hypha_engine::limits::HISTORY_DEPTH_MAX >= HISTORY_DEPTH_MAX);
// The HTTP layer's u32 parameters hold every limit.
const _: () = assert!(HISTORY_DEPTH_MAX <= u32::MAX as usize);
const _: () = assert!(SCAN_LIMIT_MAX <= u32::MAX as usize);

/// `--value-max` as given, or why it cannot be: above [`VALUE_BYTES_MAX`]
/// the wire could not carry such a value.
pub fn value_bytes_max(flag: u64) -> Result<usize, String> {
    match usize::try_from(flag) {
        Ok(bytes) if (1..=VALUE_BYTES_MAX).contains(&bytes) => Ok(bytes),
        _ => Err(format!(
            "--value-max {flag}: give 1 to {VALUE_BYTES_MAX} (VALUE_BYTES_MAX, the largest \
             value the wire protocol carries)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_max_above_the_wire_limit_is_refused() {
        assert_eq!(value_bytes_max(1024), Ok(1024));
        assert_eq!(value_bytes_max(VALUE_BYTES_MAX as u64), Ok(VALUE_BYTES_MAX));
        let refused = value_bytes_max(VALUE_BYTES_MAX as u64 + 1).unwrap_err();
        assert!(refused.contains("VALUE_BYTES_MAX"), "{refused}");
        assert!(value_bytes_max(0).is_err());
    }
}
