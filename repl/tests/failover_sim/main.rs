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
//! whichever member believes it leads, stale ones included. Members crash
//! and restart from what they persisted; clocks run up to 5 % apart. Then
//! everything heals and the group must settle.
//!
//! Checked as it runs (`check.rs`): at most one leader per term; a new
//! leader holds every acknowledged write; a write is acknowledged only when
//! a majority holds it durably; committed records never change on any
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
mod net;
mod world;

use world::{env_u64, World};

fn run_seed(seed: u64) -> Result<World, String> {
    let mut w = World::new(seed);
    match w.run() {
        Ok(()) => Ok(w),
        Err(e) => Err(format!(
            "seed {seed} failed at {} ms: {e}\nsetup: {}\nreplay: SIM_SEED={seed} cargo test -p \
             hypha-repl --test failover_sim -- --nocapture",
            w.now, w.setup
        )),
    }
}

#[test]
fn failover_keeps_every_acknowledged_write() {
    if let Some(seed) = env_u64("SIM_SEED") {
        let w = run_seed(seed).unwrap_or_else(|e| panic!("{e}"));
        println!("seed {seed}: {}", w.stats);
        return;
    }
    let first = env_u64("SIM_FIRST").unwrap_or(0);
    let n = env_u64("SIM_SEEDS").unwrap_or(1_000);
    let mut total = world::Stats::default();
    for seed in first..first + n {
        let w = match std::panic::catch_unwind(|| run_seed(seed)) {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!(
                "seed {seed} panicked; replay: SIM_SEED={seed} cargo test -p hypha-repl --test \
                 failover_sim -- --nocapture"
            ),
        };
        total.add(&w.stats);
    }
    println!("{n} seeds: {total}");
    assert!(total.acked > 10 * n, "few writes acknowledged: {total}");
    assert!(total.elections > n, "few elections: {total}");
    assert!(total.truncations > 0, "no log was ever cut back: {total}");
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
