//! Recorded histories of register operations on a few keys, checked for
//! linearizability with stateright's `LinearizabilityTester`
//! (linearizability is local: a history is linearizable iff each key's is).
//! An operation whose outcome is unknown (a 503, a timeout, a connection
//! cut) stays in flight forever: the checker lets it take effect or not.
#![allow(dead_code)]

use stateright::semantics::register::{Register, RegisterOp, RegisterRet};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub type Value = Option<String>;
pub type Tester = LinearizabilityTester<(usize, usize), Register<Value>>;
pub type Testers = Arc<Mutex<BTreeMap<String, Tester>>>;
#[allow(unused_imports)] // each test binary uses a different part
pub use stateright::semantics::register::{RegisterOp as Op, RegisterRet as Ret};

/// Keys written and read at a time.
const KEYS: usize = 12;
/// Clients move to a fresh set of keys this often: the checker's search
/// grows with a key's history, so each history stays a few dozen ops.
const EPOCH_MS: u128 = 1_000;

/// What one operation came to.
pub enum Outcome {
    Done(RegisterRet<Value>),
    /// Refused before it could act, or not answered: it may take effect.
    Unknown,
}

/// Client `client`'s loop: random reads and writes of unique values until
/// `stop`, each recorded in its key's tester; after an unknown outcome the
/// client goes on under a new thread id (the old op stays in flight).
/// Returns (answered, unknown).
pub fn run_client(
    client: usize,
    testers: Testers,
    stop: Arc<AtomicBool>,
    seed: u64,
    start: Instant,
    mut perform: impl FnMut(&str, &RegisterOp<Value>) -> Outcome,
) -> (u64, u64) {
    let mut rng = seed | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut generation, mut n, mut done, mut unknown) = (0usize, 0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let key = format!(
            "lin{}-{}",
            start.elapsed().as_millis() / EPOCH_MS,
            next() % KEYS as u64
        );
        n += 1;
        let op = match next() % 2 {
            0 => RegisterOp::Write(Some(format!("c{client}-{n}"))),
            _ => RegisterOp::Read,
        };
        let id = (client, generation);
        testers
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_insert_with(|| Tester::new(Register(None)))
            .on_invoke(id, op.clone())
            .expect("a valid history");
        match perform(&key, &op) {
            Outcome::Done(ret) => {
                testers
                    .lock()
                    .unwrap()
                    .get_mut(&key)
                    .expect("invoked")
                    .on_return(id, ret)
                    .expect("a valid history");
                done += 1;
            }
            Outcome::Unknown => {
                generation += 1;
                unknown += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    (done, unknown)
}

/// Panics naming the first key whose history is not linearizable; the
/// number of keys checked.
pub fn check(testers: &Testers) -> usize {
    let testers = std::mem::take(&mut *testers.lock().unwrap());
    let keys = testers.len();
    // The checker recurses once per operation of a history.
    let checker = std::thread::Builder::new().stack_size(256 << 20);
    let check = checker
        .spawn(move || {
            for (key, t) in &testers {
                assert!(
                    t.serialized_history().is_some(),
                    "the history of key {key} is not linearizable: {t:?}"
                );
            }
        })
        .expect("checker thread");
    if let Err(panic) = check.join() {
        std::panic::resume_unwind(panic);
    }
    keys
}
