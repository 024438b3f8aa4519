//! Deterministic simulator of leader election: `cargo test -p hypha-repl
//! --test election_sim`.
//!
//! Each seed builds a group (1-5 members, sometimes one a witness that votes
//! but never leads; Mycelium or etcd timing) and runs the real `Election`
//! of every member over a simulated network (delay, jitter, loss,
//! duplication, partitions symmetric and one-way, flapping links), with
//! member crashes and restarts from what they persisted, and clocks that run
//! up to 5 % fast or slow. A leader appends entries to a model log that its
//! heartbeats carry (Raft's append rule: a follower keeps a matching prefix
//! and replaces what conflicts) and commits an entry of its term once a
//! majority holds it. After the chaos everything heals and the group must
//! settle.
//!
//! Checked after every step: at most one leader per term; a member that
//! becomes leader holds every committed entry; a committed entry never
//! changes; a vote is persisted before it is sent (a restarted member never
//! votes twice in a term, which the first check would catch); two leaders
//! (of different terms) never last together beyond two election timeouts
//! (check-quorum); the network's queue stays bounded. Checked at the
//! end: one leader, followed by every member, and no term change during the
//! last stretch (pre-vote and check-quorum keep a healed group stable).
//!
//! - `SIM_SEEDS=N` runs seeds `SIM_FIRST..SIM_FIRST+N` (default 2,000);
//! - `SIM_SEED=S` replays one seed with its trace.
//!
//! Long run: `SIM_SEEDS=200000 cargo test --release -p hypha-repl --test election_sim`.

mod world;

use std::collections::BTreeMap;
use world::{env_u64, World};

fn run_seed(seed: u64) -> Result<World, String> {
    let mut w = World::new(seed);
    match w.run() {
        Ok(()) => Ok(w),
        Err(e) => Err(format!(
            "seed {seed} failed at {} ms: {e}\nsetup: {}\nreplay: SIM_SEED={seed} cargo test -p \
             hypha-repl --test election_sim -- --nocapture",
            w.now, w.setup
        )),
    }
}

#[test]
fn elections_keep_every_invariant() {
    if let Some(seed) = env_u64("SIM_SEED") {
        let w = run_seed(seed).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "seed {seed}: {} elections, {} entries committed",
            w.elections,
            w.committed.len()
        );
        return;
    }
    let first = env_u64("SIM_FIRST").unwrap_or(0);
    let n = env_u64("SIM_SEEDS").unwrap_or(2_000);
    let (mut elections, mut committed) = (0, 0);
    let mut failovers: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for seed in first..first + n {
        let w = match std::panic::catch_unwind(|| run_seed(seed)) {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("seed {seed} panicked; replay: SIM_SEED={seed} cargo test -p hypha-repl --test election_sim -- --nocapture"),
        };
        elections += w.elections;
        committed += w.committed.len();
        failovers
            .entry(w.params.election_min_ms * 1000 + w.params.heartbeat_ms)
            .or_default()
            .extend(&w.failovers);
    }
    println!("{n} seeds: {elections} elections, {committed} entries committed");
    for (timing, mut times) in failovers {
        times.sort_unstable();
        let pct = |p: usize| times.get(times.len() * p / 100).copied().unwrap_or(0);
        println!(
            "silent leader crash to next leader (election_min {} ms, heartbeat {} ms, no other \
             fault): {} crashes, p50 {} ms, p99 {} ms, max {} ms",
            timing / 1000,
            timing % 1000,
            times.len(),
            pct(50),
            pct(99),
            times.last().copied().unwrap_or(0)
        );
    }
    assert!(
        elections >= n,
        "hardly any elections: the simulator tests nothing"
    );
    assert!(
        committed as u64 > n,
        "hardly anything committed: the simulator tests nothing"
    );
}

#[test]
fn a_seed_replays_bit_for_bit() {
    for seed in [3, 11, 99] {
        let a = run_seed(seed).map(|w| (w.elections, w.committed.clone()));
        let b = run_seed(seed).map(|w| (w.elections, w.committed.clone()));
        assert_eq!(a, b, "seed {seed} ran differently twice");
    }
}
