//! Deterministic simulator of failover: `cargo test -p hypha-repl --test
//! failover_sim`.
//!
//! Each seed builds a group of 1-5 members and runs, on every member, the
//! real `Election` and, by the role it gives, the real `MasterCore`
//! (majority commit, `SyncMode::Majority`) or the real `Follower`, over a
//! simulated network (ordered connections that stall while a link is cut,
//! election datagrams with loss and duplication, partitions symmetric and
//! one-way, flapping links) and a model of each member's engine (records
//! durable once applied or committed, the leader's unsynced tail lost in a
//! crash, term boundaries as the engine keeps them). Clients write through
//! whichever member believes it leads, stale ones included. In half the
//! seeds leaders also change the member list one member at a time
//! (`members.rs`): remove a voter, add an absent member as a learner,
//! promote a learner that caught up; some groups start with a member
//! outside the list. Members crash
//! and restart from what they persisted; clocks run up to 5 % apart. Then
//! everything heals and the group must settle.
//!
//! Checked as it runs (`check.rs`): at most one leader per term; a new
//! leader holds every acknowledged write; a write is acknowledged only when
//! a majority (of the leader's member list) holds it durably; committed records never change on any
//! member, and no member cuts one; every member's term boundaries match its
//! log. At the end: one leader, every log the same, every acknowledged
//! write in it, and writes acknowledged after healing.
//!
//! - `SIM_SEEDS=N` runs seeds `SIM_FIRST..SIM_FIRST+N` (default 1,000);
//! - `SIM_SEED=S` replays one seed with its trace.
//!
//! Long run: `SIM_SEEDS=100000 cargo test --release -p hypha-repl --test failover_sim`.

mod check;
mod follow;
mod lead;
mod member;
mod members;
mod net;
#[path = "../simkit/mod.rs"]
mod simkit;
mod world;

use world::World;

fn run_seed(seed: u64) -> Result<World, String> {
    let mut w = World::new(seed);
    match w.run() {
        Ok(()) => Ok(w),
        Err(e) => Err(format!("at {} ms: {e}\nsetup: {}", w.now, w.setup)),
    }
}

#[test]
fn failover_keeps_every_acknowledged_write() {
    let (n, total) = simkit::run_seeds(
        "failover_sim",
        1_000,
        run_seed,
        |w| w.stats.to_string(),
        |t: &mut world::Stats, w| t.add(&w.stats),
    );
    if n == 0 {
        return;
    }
    println!("{n} seeds: {total}");
    for line in total.failover_times() {
        println!("{line}");
    }
    assert!(total.acked > 10 * n, "few writes acknowledged: {total}");
    assert!(total.elections > n, "few elections: {total}");
    assert!(total.truncations > 0, "no log was ever cut back: {total}");
    assert!(total.changes > n / 10, "few member-list changes: {total}");
    assert!(total.batches > n, "few atomic batches: {total}");
    assert!(
        total.split_batches > 0,
        "no batch was split between log reads: {total}"
    );
    assert!(
        total.unknown > 0,
        "no write was ever left in doubt: {total}"
    );
}

#[test]
fn a_seed_replays_bit_for_bit() {
    for seed in [5, 17, 101] {
        let a = run_seed(seed).map(|w| w.stats.to_string());
        let b = run_seed(seed).map(|w| w.stats.to_string());
        assert_eq!(a, b, "seed {seed} ran differently twice");
    }
}
