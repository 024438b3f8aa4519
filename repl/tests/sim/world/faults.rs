//! The faults a run injects: partitions in either direction, crashes of
//! workers and of the master (each losing what its storage had not
//! synced), connection resets, and compaction.

use super::{Ev, World};

impl World {
    /// Starts partitions and crashes while clients write; heals and
    /// restarts everything after.
    pub(super) fn fault(&mut self) {
        if !self.busy() {
            self.cut.clear();
            if self.master.is_none() {
                self.at(self.now, Ev::MasterUp);
            }
            for w in 0..self.workers.len() {
                if !self.workers[w].up {
                    self.at(self.now, Ev::WorkerUp(w));
                }
            }
            return;
        }
        self.at(self.now + 100, Ev::Fault);
        for w in 0..self.workers.len() {
            if self.rng.chance(self.setup.partition) {
                let to_master = self.rng.chance(500);
                let until = self.now + self.rng.range(50, 1_500);
                self.cut.insert((w, to_master), until);
            }
            if self.workers[w].up && self.rng.chance(self.setup.crash) {
                self.crash_worker(w);
            }
        }
        if self.master.is_some() && self.rng.chance(self.setup.crash / 2) {
            self.crash_master();
        }
        if self.setup.compaction && self.master.is_some() && self.rng.chance(100) {
            self.store.compact();
        }
    }

    fn crash_worker(&mut self, w: usize) {
        let node = &mut self.workers[w];
        node.up = false;
        node.incarnation += 1;
        node.pending = None;
        node.tmp = None;
        if let Some(conn) = node.conn.take() {
            self.reset(conn);
        }
        let back = self.now + self.rng.range(50, 1_000);
        self.at(back, Ev::WorkerUp(w));
    }

    fn crash_master(&mut self) {
        self.master = None;
        self.incarnation += 1;
        self.store.crash();
        self.waiting.clear();
        let conns: Vec<u64> = self.conns.keys().copied().collect();
        for conn in conns {
            self.reset(conn);
        }
        let back = self.now + self.rng.range(50, 1_000);
        self.at(back, Ev::MasterUp);
    }

    /// A connection reset: what is in flight is lost; each live side
    /// learns it after a delay.
    pub(super) fn reset(&mut self, conn: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.open {
            return;
        }
        c.open = false;
        c.m2w.clear();
        c.w2m.clear();
        let w = c.w;
        let t = self.now + self.delay();
        self.at(
            t,
            Ev::Closed {
                conn,
                to_master: true,
            },
        );
        let t = self.now + self.delay();
        self.at(
            t,
            Ev::Closed {
                conn,
                to_master: false,
            },
        );
        let _ = w;
    }

    /// An orderly close by one side: the other learns it once what was
    /// sent before arrived.
    pub(super) fn close_conn(&mut self, conn: u64) {
        let Some(w) = self.conns.get(&conn).filter(|c| c.open).map(|c| c.w) else {
            return;
        };
        let (tm, tw) = (self.arrival(w, true), self.arrival(w, false));
        if let Some(c) = self.conns.get_mut(&conn) {
            c.open = false;
        }
        self.at(
            tm + 1,
            Ev::Closed {
                conn,
                to_master: true,
            },
        );
        self.at(
            tw + 1,
            Ev::Closed {
                conn,
                to_master: false,
            },
        );
    }
}
