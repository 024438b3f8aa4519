//! Progress of a long transfer (a catch-up, a snapshot), logged every
//! [`PROGRESS_LOG_MS`].

use std::time::{Duration, Instant};

/// How often a long catch-up or snapshot logs its progress.
pub const PROGRESS_LOG_MS: u64 = 1_000;

/// Logs records, bytes, rate and time left of a long transfer every second.
pub struct Progress {
    what: &'static str,
    start: Instant,
    last_log: Instant,
    records: u64,
    bytes: u64,
    total: u64,
    logged: bool,
}

impl Progress {
    /// A transfer of about `total` records.
    pub fn new(what: &'static str, total: u64) -> Progress {
        let now = Instant::now();
        Progress {
            what,
            start: now,
            last_log: now,
            records: 0,
            bytes: 0,
            total,
            logged: false,
        }
    }

    /// Counts a batch; `left` is how many records remain (0: unknown, use total).
    pub fn add(&mut self, records: u64, bytes: u64, left: u64) {
        if self.records == 0 {
            // A new burst: time it from now, not from the last idle moment.
            self.start = Instant::now();
            self.last_log = self.start;
        }
        self.records += records;
        self.bytes += bytes;
        if self.last_log.elapsed() < Duration::from_millis(PROGRESS_LOG_MS) {
            return;
        }
        self.last_log = Instant::now();
        self.logged = true;
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = self.records as f64 / secs;
        let left = if left > 0 {
            left
        } else {
            self.total.saturating_sub(self.records)
        };
        log::info!(
            "{}: {} records, {:.1} MB, {:.0} records/s, about {:.0} s left",
            self.what,
            self.records,
            self.bytes as f64 / 1e6,
            rate,
            left as f64 / rate.max(1.0)
        );
    }

    /// Logs the total if anything was logged along the way.
    pub fn done(&mut self) {
        if self.logged {
            let secs = self.start.elapsed().as_secs_f64();
            log::info!(
                "{}: done, {} records, {:.1} MB in {secs:.1} s",
                self.what,
                self.records,
                self.bytes as f64 / 1e6
            );
            self.logged = false;
        }
        self.start = Instant::now();
        self.records = 0;
        self.bytes = 0;
    }
}
