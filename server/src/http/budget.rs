//! Bounds on what clients can make the edge hold: a process-wide budget of
//! body bytes (request bodies while they are read and served, large
//! response bodies while they are written) and a cap on connections per
//! client address.
//!
//! A request whose body does not fit the budget gets 503 with
//! `Retry-After` at once, before its body is read; a large response that
//! does not fit becomes the same 503. So the bodies in memory never exceed
//! the budget, whatever the number of connections or their speed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::gate::Source;

/// The body bytes the server holds, against their budget.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    max: usize,
}

/// Bytes reserved from a [`Budget`]; given back when dropped.
#[derive(Debug)]
pub struct Reserved<'b> {
    budget: &'b Budget,
    bytes: usize,
}

impl Budget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// The budget in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Reserves `bytes`, or `None` if that would exceed the budget.
    pub fn reserve(&self, bytes: usize) -> Option<Reserved<'_>> {
        let mut reserved = Reserved {
            budget: self,
            bytes: 0,
        };
        reserved.grow_to(bytes).then_some(reserved)
    }
}

impl Reserved<'_> {
    /// Bytes held by this reservation.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Grows the reservation to `bytes`; false (and unchanged) if the
    /// budget cannot give that much.
    pub fn grow_to(&mut self, bytes: usize) -> bool {
        let Some(more) = bytes.checked_sub(self.bytes) else {
            return true;
        };
        let budget = self.budget;
        let grown = budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(more).filter(|&total| total <= budget.max)
            });
        if grown.is_ok() {
            self.bytes = bytes;
        }
        grown.is_ok()
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Open connections per client source: an IPv4 address, or an IPv6 /64
/// (on Mycelium one node holds a whole /64).
#[derive(Debug)]
pub struct PerAddr {
    open: Mutex<HashMap<Source, usize>>,
    max: usize,
}

/// One connection of a source; counted until dropped.
#[derive(Debug)]
pub struct AddrSlot {
    per_addr: Arc<PerAddr>,
    addr: Source,
}

impl PerAddr {
    /// At most `max` connections per address.
    pub fn new(max: usize) -> PerAddr {
        PerAddr {
            open: Mutex::new(HashMap::new()),
            max: max.max(1),
        }
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for one more connection from `addr`, or `None` at the cap.
    pub fn admit(self: &Arc<Self>, addr: IpAddr) -> Option<AddrSlot> {
        let addr = Source::of(addr);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(addr).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddrSlot {
            per_addr: self.clone(),
            addr,
        })
    }
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        let mut open = self.per_addr.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.addr) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_exceed_the_budget_and_are_given_back() {
        let budget = Budget::new(100);
        let Some(a) = budget.reserve(60) else {
            panic!("60 of 100 bytes fit")
        };
        assert!(budget.reserve(41).is_none());
        let Some(mut b) = budget.reserve(40) else {
            panic!("the last 40 bytes fit")
        };
        assert!(!b.grow_to(41));
        assert_eq!((b.bytes(), budget.used()), (40, 100));
        drop(a);
        assert!(b.grow_to(100));
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn each_address_has_its_own_cap() {
        let per_addr = Arc::new(PerAddr::new(2));
        let one: IpAddr = [127, 0, 0, 1].into();
        let two: IpAddr = [127, 0, 0, 2].into();
        let held = [per_addr.admit(one), per_addr.admit(one)];
        assert!(held.iter().all(Option::is_some));
        assert!(per_addr.admit(one).is_none());
        assert!(per_addr.admit(two).is_some());
        drop(held);
        assert!(per_addr.admit(one).is_some());
        // One Mycelium node holds a /64: its addresses share a cap.
        let per_addr = Arc::new(PerAddr::new(1));
        let a = IpAddr::from([0x4a0, 0x1234, 0xabcd, 1, 0, 0, 0, 1]);
        let b = IpAddr::from([0x4a0, 0x1234, 0xabcd, 1, 0, 0, 0, 2]);
        let _held = per_addr.admit(a);
        assert!(per_addr.admit(b).is_none());
    }
}
