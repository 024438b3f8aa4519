//! The deterministic simulator: `cargo test -p hypha-repl --test sim`.
//!
//! Each seed builds a cluster (1-4 workers, `--sync` async or N, faults at
//! random rates) and runs the real `MasterCore` and `Follower` over a
//! simulated network and storage model for a few simulated seconds of
//! writes, then heals everything and lets it settle (`world.rs`). The
//! invariants of `check.rs` are checked after every step.
//!
//! - `SIM_SEEDS=N` runs seeds `SIM_FIRST..SIM_FIRST+N` (default 2,000 from 0);
//! - `SIM_SEED=S` replays one seed, bit for bit, with its log
//!   (`RUST_LOG` is not needed: the failure says what broke and when).
//!
//! Long run: `SIM_SEEDS=200000 cargo test --release -p hypha-repl --test sim`.

mod check;
mod model;
mod world;

use world::World;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn run_seed(seed: u64) -> Result<World, String> {
    let mut world = World::new(seed);
    match world.run() {
        Ok(()) => Ok(world),
        Err(e) => Err(format!(
            "seed {seed} failed at {} ms (step {}): {e}\nsetup: {:?}\nreplay: SIM_SEED={seed} \
             cargo test -p hypha-repl --test sim -- --nocapture",
            world.now, world.steps, world.setup
        )),
    }
}

#[test]
fn seeds_keep_every_invariant() {
    if let Some(seed) = env_u64("SIM_SEED") {
        let world = run_seed(seed).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "seed {seed}: {} steps, {} writes committed, {} acknowledged, {} sync timeouts",
            world.steps, world.store.committed, world.acked, world.sync_failed
        );
        return;
    }
    let first = env_u64("SIM_FIRST").unwrap_or(0);
    let n = env_u64("SIM_SEEDS").unwrap_or(2_000);
    let (mut acked, mut steps, mut snapshots_or_timeouts, mut batches) = (0, 0, 0, 0);
    for seed in first..first + n {
        let outcome = std::panic::catch_unwind(|| run_seed(seed));
        let world = match outcome {
            Ok(Ok(world)) => world,
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!(
                "seed {seed} panicked; replay: SIM_SEED={seed} cargo test -p hypha-repl --test \
                 sim -- --nocapture"
            ),
        };
        acked += world.acked;
        steps += world.steps;
        snapshots_or_timeouts += world.sync_failed;
        batches += world.batches;
    }
    println!(
        "{n} seeds: {steps} steps, {acked} writes acknowledged ({batches} atomic batches), \
         {snapshots_or_timeouts} sync timeouts"
    );
    assert!(batches > n, "few atomic batches: {batches}");
    assert!(
        acked > n,
        "the runs acknowledged almost no writes: the simulator tests nothing"
    );
}

/// The same seed replays the same run: every choice comes from its one
/// random source.
#[test]
fn a_seed_replays_bit_for_bit() {
    for seed in [1, 7, 42] {
        let a = run_seed(seed).map(|w| (w.steps, w.store.committed, w.acked));
        let b = run_seed(seed).map(|w| (w.steps, w.store.committed, w.acked));
        assert_eq!(a, b, "seed {seed} ran differently twice");
    }
}
