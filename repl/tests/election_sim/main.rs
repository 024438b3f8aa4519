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

#[path = "../simkit/mod.rs"]
mod simkit;
mod world;

use std::collections::BTreeMap;
use world::World;

fn run_seed(seed: u64) -> Result<World, String> {
    let mut w = World::new(seed);
    match w.run() {
        Ok(()) => Ok(w),
        Err(e) => Err(format!("at {} ms: {e}\nsetup: {}", w.now, w.setup)),
    }
}

/// Totals over the seeds run.
#[derive(Default)]
struct Totals {
    elections: u64,
    committed: usize,
    /// Leader crash to next leader, in ms, by timing and loudness.
    failovers: BTreeMap<(u64, bool), Vec<u64>>,
}

#[test]
fn elections_keep_every_invariant() {
    let (n, t) = simkit::run_seeds(
        "election_sim",
        2_000,
        run_seed,
        |w| {
            format!(
                "{} elections, {} entries committed",
                w.elections,
                w.committed.len()
            )
        },
        |t: &mut Totals, w| {
            t.elections += w.elections;
            t.committed += w.committed.len();
            let timing = w.params.election_min_ms * 1000 + w.params.heartbeat_ms;
            for &(ms, loud) in &w.failovers {
                t.failovers.entry((timing, loud)).or_default().push(ms);
            }
        },
    );
    if n == 0 {
        return;
    }
    println!(
        "{n} seeds: {} elections, {} entries committed",
        t.elections, t.committed
    );
    for ((timing, loud), mut times) in t.failovers {
        times.sort_unstable();
        let pct = |p: usize| times.get(times.len() * p / 100).copied().unwrap_or(0);
        println!(
            "{} leader crash to next leader (election_min {} ms, heartbeat {} ms, no other \
             fault): {} crashes, p50 {} ms, p99 {} ms, max {} ms",
            if loud {
                "process (connections closed)"
            } else {
                "silent"
            },
            timing / 1000,
            timing % 1000,
            times.len(),
            pct(50),
            pct(99),
            times.last().copied().unwrap_or(0)
        );
    }
    assert!(
        t.elections >= n,
        "hardly any elections: the simulator tests nothing"
    );
    assert!(
        t.committed as u64 > n,
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
