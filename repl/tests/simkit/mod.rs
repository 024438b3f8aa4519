//! What the group simulators (`election_sim`, `failover_sim`) share: the
//! one random source of a run, the network faults between members, and the
//! loop that runs many seeds and says how to replay a failing one.

/// An environment variable as a number.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// splitmix64: every choice of a run comes from one of these, seeded once.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `percent / 100`.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// `link[from][to]`: whether what `from` sends reaches `to`.
pub type Links = Vec<Vec<bool>>;

/// Every link up.
pub fn healed(n: usize) -> Links {
    vec![vec![true; n]; n]
}

/// A network fault between `n` members: a partition into two random sides
/// (both ways, or one way 30 % of the time), or one link flapped. `None`
/// for the other kinds the caller draws itself (`kind` 3 and up).
pub fn link_fault(rng: &mut Rng, link: &mut Links, kind: u64) -> Option<()> {
    let n = link.len();
    match kind {
        0 => {
            let side: Vec<bool> = (0..n).map(|_| rng.chance(50)).collect();
            let one_way = rng.chance(30);
            for a in 0..n {
                for b in 0..n {
                    if side[a] != side[b] && (!one_way || side[a]) {
                        link[a][b] = false;
                    }
                }
            }
        }
        1 | 2 => {
            let (a, b) = (rng.below(n as u64) as usize, rng.below(n as u64) as usize);
            link[a][b] = !link[a][b];
        }
        _ => return None,
    }
    Some(())
}

/// Runs `run` for seed `SIM_SEED` (printing what it returns), or for
/// `SIM_SEEDS` seeds from `SIM_FIRST` (default `seeds` from 0), folding
/// each run's result with `add`. A failing or panicking seed fails the test
/// with the command that replays it.
pub fn run_seeds<W, T: Default>(
    test: &str,
    seeds: u64,
    run: impl Fn(u64) -> Result<W, String> + std::panic::RefUnwindSafe,
    show: impl Fn(&W) -> String,
    mut add: impl FnMut(&mut T, &W),
) -> (u64, T) {
    let replay = |seed: u64| {
        format!("replay: SIM_SEED={seed} cargo test -p hypha-repl --test {test} -- --nocapture")
    };
    if let Some(seed) = env_u64("SIM_SEED") {
        match run(seed) {
            Ok(w) => println!("seed {seed}: {}", show(&w)),
            Err(e) => panic!("seed {seed}: {e}\n{}", replay(seed)),
        }
        return (0, T::default());
    }
    let first = env_u64("SIM_FIRST").unwrap_or(0);
    let n = env_u64("SIM_SEEDS").unwrap_or(seeds);
    let mut total = T::default();
    for seed in first..first + n {
        match std::panic::catch_unwind(|| run(seed)) {
            Ok(Ok(w)) => add(&mut total, &w),
            Ok(Err(e)) => panic!("seed {seed} failed: {e}\n{}", replay(seed)),
            Err(_) => panic!("seed {seed} panicked; {}", replay(seed)),
        }
    }
    (n, total)
}
