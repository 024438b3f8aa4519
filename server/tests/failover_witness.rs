//! Two data members and a witness (`hypha witness`) on loopback: which
//! single failures keep the group writable, and that none loses an
//! acknowledged write.
//!
//! - the witness dies: the two data members are a majority; writes go on;
//! - the follower dies: leader and witness are a majority; writes go on;
//! - the leader dies while the follower holds everything the witness
//!   vouched for: the follower is elected with the witness's vote; writes
//!   go on without the old leader.
//!
//! (When the leader dies while the follower is behind what the witness
//! vouched for, the witness refuses it its vote: writes stall until the
//! leader is back, and nothing acknowledged is lost. The failover
//! simulator covers that case.)

mod common;

use common::group::{start_group, Group};
use std::collections::BTreeMap;
use std::time::Duration;

const WITNESS: usize = 2;
const WITHIN: Duration = Duration::from_secs(20);

fn write_some(g: &Group, tag: &str, n: usize, acked: &mut BTreeMap<String, String>) -> usize {
    let mut leader = None;
    for i in 0..n {
        let (k, v) = (format!("{tag}-{i}"), format!("v{i}"));
        // No failure happens while these run: each is acknowledged.
        let l = g.try_put_via_leader(&k, &v, WITHIN, acked);
        leader = Some(l.unwrap_or_else(|why| panic!("write {k} unanswered: {why}\n{}", g.logs())));
    }
    leader.expect("n > 0")
}

#[test]
fn two_data_members_and_a_witness_survive_any_one_failure() {
    let mut g = start_group(3, &[WITNESS]);
    let mut acked = BTreeMap::new();
    let leader = write_some(&g, "start", 20, &mut acked);
    assert_ne!(leader, WITNESS, "a witness never leads");
    let follower = 1 - leader;

    // The witness dies: leader and follower are a majority.
    g.nodes[WITNESS].kill9();
    write_some(&g, "no-witness", 20, &mut acked);
    g.nodes[WITNESS].restart();

    // The follower dies: leader and witness are a majority.
    g.nodes[follower].kill9();
    let l = write_some(&g, "no-follower", 20, &mut acked);
    assert_eq!(l, leader, "the leader kept leading");
    g.nodes[follower].restart();

    // The follower catches up (it holds all the witness vouched for), then
    // the leader dies: the follower is elected with the witness's vote.
    g.converge(&[leader, follower], WITHIN);
    g.nodes[leader].kill9();
    let l = write_some(&g, "no-leader", 20, &mut acked);
    assert_eq!(l, follower, "the follower took over without the old leader");

    g.nodes[leader].restart();
    write_some(&g, "all-back", 5, &mut acked);
    g.converge(&[0, 1], WITHIN);
    g.holds_all(&[0, 1], &acked);
    let witness_dir = g.dir.join("m2");
    let bytes: u64 = std::fs::read_dir(&witness_dir)
        .expect("witness dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(bytes <= 4096, "the witness keeps {bytes} bytes");
    println!(
        "{} acknowledged writes through a witness, a follower and a leader failure; the \
         witness keeps {bytes} bytes",
        acked.len()
    );
}
