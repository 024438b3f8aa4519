//! The simulator's pieces that are not the protocol: its one random source,
//! and models of the master's and the workers' storage with the engine's
//! durability contract.

use hypha_net::{RecordKind, WireMeta, WireRecord};
use std::collections::BTreeMap;

/// splitmix64: every choice of a run comes from one of these, seeded once.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

/// A key's state: (seq of the version, value).
pub type Kv = BTreeMap<Vec<u8>, (u64, Vec<u8>)>;

/// Applies one record to a key-value state.
pub fn apply(kv: &mut Kv, r: &WireRecord) {
    match r.kind {
        RecordKind::Put => {
            kv.insert(r.key.clone(), (r.seq, r.value.clone()));
        }
        RecordKind::Delete => {
            kv.remove(&r.key);
        }
    }
}

/// Order-independent digest of a state.
pub fn digest(kv: &Kv) -> u64 {
    kv.iter().fold(0u64, |acc, (k, (seq, v))| {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in k.iter().chain(&seq.to_le_bytes()).chain(v.iter()) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
        acc.wrapping_add(h)
    })
}

/// The master's storage: a log whose records are visible when appended and
/// durable when committed (`--fsync always`: a write is acknowledged after
/// its fdatasync, which covers every record before it); a crash loses what
/// was appended but not committed. Compaction drops superseded versions
/// and, at or below the tombstone floor, deletes with everything older.
pub struct MasterStore {
    /// Every record ever committed or appended, by seq (`truth[s - 1]`
    /// has seq `s`): what the log would hold without compaction.
    pub truth: Vec<WireRecord>,
    /// `digests[s]`: the digest of the state after seq `s`.
    pub digests: Vec<u64>,
    state: Kv,
    /// The records compaction left, in seq order.
    pub log: Vec<WireRecord>,
    pub committed: u64,
    pub horizon: u64,
    pub floor: u64,
    pub compacted: bool,
}

impl MasterStore {
    pub fn new() -> Self {
        MasterStore {
            truth: Vec::new(),
            digests: vec![0],
            state: Kv::new(),
            log: Vec::new(),
            committed: 0,
            horizon: 0,
            floor: 0,
            compacted: false,
        }
    }

    pub fn appended(&self) -> u64 {
        self.truth.len() as u64
    }

    /// Appends a put (`Some`) or delete (`None`); the seq it got, or `None`
    /// for a delete of an absent key (nothing is written).
    pub fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) -> Option<u64> {
        if value.is_none() && !self.state.contains_key(&key) {
            return None;
        }
        Some(self.append(key, value, false))
    }

    /// Appends puts as one atomic batch (`Db::batch`): every record but the
    /// last marked `batch_more`; the seq of the last.
    pub fn write_batch(&mut self, puts: Vec<(Vec<u8>, Vec<u8>)>) -> u64 {
        let n = puts.len();
        let mut seq = self.appended();
        for (i, (key, value)) in puts.into_iter().enumerate() {
            seq = self.append(key, Some(value), i + 1 < n);
        }
        seq
    }

    fn append(&mut self, key: Vec<u8>, value: Option<Vec<u8>>, more: bool) -> u64 {
        let seq = self.appended() + 1;
        let r = WireRecord {
            seq,
            id: u32::from(key[0]) + 1,
            kind: if value.is_some() {
                RecordKind::Put
            } else {
                RecordKind::Delete
            },
            key,
            value: value.unwrap_or_default(),
            meta: WireMeta {
                term: 7,
                batch_more: more,
                ..WireMeta::default()
            },
        };
        apply(&mut self.state, &r);
        self.digests.push(digest(&self.state));
        self.log.push(r.clone());
        self.truth.push(r);
        seq
    }

    /// A crash: what was not committed is gone.
    pub fn crash(&mut self) {
        let keep = self.committed as usize;
        self.truth.truncate(keep);
        self.digests.truncate(keep + 1);
        self.log.retain(|r| r.seq <= self.committed);
        self.state = self.state_at(self.committed);
    }

    /// The state after seq `upto`, from the uncompacted truth.
    pub fn state_at(&self, upto: u64) -> Kv {
        let mut kv = Kv::new();
        for r in self.truth.iter().take_while(|r| r.seq <= upto) {
            apply(&mut kv, r);
        }
        kv
    }

    /// The surviving records with `after < seq <= upto`, at most `max`;
    /// `Err` when `after` is below the horizon (the engine refuses that).
    pub fn read(&self, after: u64, upto: u64, max: usize) -> Result<Vec<WireRecord>, u64> {
        if after < self.horizon {
            return Err(self.horizon);
        }
        Ok(self
            .log
            .iter()
            .filter(|r| r.seq > after && r.seq <= upto)
            .take(max)
            .cloned()
            .collect())
    }

    /// Compacts the committed part of the log, as the engine does with
    /// `history` 1: a version superseded by a newer committed one goes, and
    /// a delete at or below the floor goes when it is its key's newest.
    pub fn compact(&mut self) {
        let upto = self.committed;
        let mut newest: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for r in self.log.iter().filter(|r| r.seq <= upto) {
            newest.insert(r.key.clone(), r.seq);
        }
        let floor = self.floor;
        let mut horizon = self.horizon;
        self.log.retain_mut(|r| {
            if r.seq > upto {
                return true;
            }
            // As the engine's copy: superseded records of a batch go, so
            // the kept ones no longer mark one.
            r.meta.batch_more = false;
            let is_newest = newest.get(&r.key) == Some(&r.seq);
            if !is_newest {
                return false;
            }
            if r.kind == RecordKind::Delete && r.seq <= floor {
                horizon = horizon.max(r.seq);
                return false;
            }
            true
        });
        self.horizon = horizon;
        self.compacted = true;
    }
}

/// A worker's storage: applied records and the seq and history it stands
/// at; `--fsync every 200 ms`, so a crash returns to the last sync.
#[derive(Clone, Default)]
pub struct WorkerStore {
    pub kv: Kv,
    pub applied: u64,
    pub followed: u64,
}

impl WorkerStore {
    /// Applies records in order; those at or below `applied` change
    /// nothing (as `Db::apply`).
    pub fn apply(&mut self, records: &[WireRecord]) {
        for r in records {
            if r.seq > self.applied {
                apply(&mut self.kv, r);
                self.applied = r.seq;
            }
        }
    }
}
