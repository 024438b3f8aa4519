//! Admission on the master's and workers' node ports: a cap on open
//! connections and a smaller one on connections still in their handshake,
//! so strangers on the overlay cannot hold every slot (each handshake is
//! also bounded in time, `wire::HANDSHAKE_TIMEOUT_MS`, and in memory, one
//! Hello-sized buffer).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Default of `--max-connections`: connections a master or worker holds
/// open at once (edges, workers, clients).
pub const NODE_CONNECTIONS_MAX_DEFAULT: usize = 256;
/// Connections that may be in their handshake at once, whoever they come
/// from; the rest are closed at once. Strangers can fill these slots for at
/// most `HANDSHAKE_TIMEOUT_MS` each, never the authenticated ones.
pub const NODE_HANDSHAKES_MAX: usize = 32;
/// Default of `--idle-timeout-ms`: a request connection that sends nothing
/// for this long is closed (the edge's connections carry a refresh every
/// `--heartbeat-ms`).
pub const NODE_IDLE_TIMEOUT_MS_DEFAULT: u64 = 300_000;

const _: () = assert!(NODE_HANDSHAKES_MAX < NODE_CONNECTIONS_MAX_DEFAULT);

/// Counts a port's connections.
#[derive(Debug)]
pub struct Gate {
    open: AtomicUsize,
    handshaking: AtomicUsize,
    open_max: usize,
    refused: AtomicU64,
}

/// One admitted connection; gives its slots back when dropped.
#[derive(Debug)]
pub struct Pass {
    gate: Arc<Gate>,
    handshaking: bool,
}

impl Gate {
    /// A gate for at most `open_max` connections.
    pub fn new(open_max: usize) -> Arc<Gate> {
        Arc::new(Gate {
            open: AtomicUsize::new(0),
            handshaking: AtomicUsize::new(0),
            open_max: open_max.max(NODE_HANDSHAKES_MAX + 1),
            refused: AtomicU64::new(0),
        })
    }

    /// A pass for a new connection, or why not (to log).
    pub fn admit(self: &Arc<Self>) -> Result<Pass, String> {
        let refuse = |what: String| {
            let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
            Err(format!("{what}; {n} connections refused so far"))
        };
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.open_max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return refuse(format!(
                "{} connections open (--max-connections)",
                self.open_max
            ));
        }
        if self.handshaking.fetch_add(1, Ordering::AcqRel) >= NODE_HANDSHAKES_MAX {
            self.handshaking.fetch_sub(1, Ordering::AcqRel);
            self.open.fetch_sub(1, Ordering::AcqRel);
            return refuse(format!(
                "{NODE_HANDSHAKES_MAX} handshakes in progress (NODE_HANDSHAKES_MAX)"
            ));
        }
        Ok(Pass {
            gate: self.clone(),
            handshaking: true,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

impl Pass {
    /// The peer authenticated: it no longer holds a handshake slot.
    pub fn authenticated(&mut self) {
        if std::mem::take(&mut self.handshaking) {
            self.gate.handshaking.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.authenticated();
        self.gate.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_and_connections_are_capped_and_given_back() {
        let gate = Gate::new(NODE_HANDSHAKES_MAX + 2);
        let mut passes: Vec<Pass> = (0..NODE_HANDSHAKES_MAX)
            .map(|_| gate.admit().unwrap())
            .collect();
        assert!(gate.admit().unwrap_err().contains("NODE_HANDSHAKES_MAX"));
        for p in &mut passes {
            p.authenticated();
        }
        let extra = [gate.admit().unwrap(), gate.admit().unwrap()];
        assert!(gate.admit().unwrap_err().contains("--max-connections"));
        drop(extra);
        passes.truncate(0);
        assert_eq!(gate.open(), 0);
        assert!(gate.admit().is_ok());
    }
}
