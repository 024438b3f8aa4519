//! The simulated network: election datagrams (lost, duplicated, delayed)
//! and ordered connections whose bytes wait while their link is cut, as
//! TCP's do, and whose end (FIN or RST) reaches the other side in order.

use hypha_net::Message;
use std::collections::{BTreeMap, VecDeque};

/// One side of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The member that connected (a follower).
    Follower,
    /// The member that accepted (the one it believed led).
    Leader,
}

/// What travels on a connection.
#[derive(Debug)]
pub enum Item {
    Msg(Message),
    /// The sender closed (or crashed: the kernel resets).
    Fin,
}

/// A replication connection between a follower and a leader.
pub struct Conn {
    pub follower: usize,
    pub leader: usize,
    /// The incarnations of both members when it opened: a restarted member
    /// has none of its old connections.
    pub follower_inc: u64,
    pub leader_inc: u64,
    /// Items in flight to the leader and to the follower, with the time each
    /// may arrive (in order).
    pub to_leader: VecDeque<(u64, Item)>,
    pub to_follower: VecDeque<(u64, Item)>,
    /// Which sides closed.
    pub closed_by_follower: bool,
    pub closed_by_leader: bool,
}

impl Conn {
    pub fn queue(&mut self, to: Side) -> &mut VecDeque<(u64, Item)> {
        match to {
            Side::Leader => &mut self.to_leader,
            Side::Follower => &mut self.to_follower,
        }
    }

    /// The member on side `to`.
    pub fn member(&self, side: Side) -> usize {
        match side {
            Side::Leader => self.leader,
            Side::Follower => self.follower,
        }
    }

    pub fn closed_by(&self, side: Side) -> bool {
        match side {
            Side::Leader => self.closed_by_leader,
            Side::Follower => self.closed_by_follower,
        }
    }
}

/// Every connection, by id.
#[derive(Default)]
pub struct Conns {
    pub map: BTreeMap<u64, Conn>,
    next: u64,
}

impl Conns {
    pub fn open(&mut self, conn: Conn) -> u64 {
        self.next += 1;
        self.map.insert(self.next, conn);
        self.next
    }

    /// Items queued on every connection.
    pub fn in_flight(&self) -> usize {
        self.map
            .values()
            .map(|c| c.to_leader.len() + c.to_follower.len())
            .sum()
    }

    /// Drops connections both sides closed and nothing is left on.
    pub fn reap(&mut self) {
        self.map.retain(|_, c| {
            !(c.closed_by_follower
                && c.closed_by_leader
                && c.to_leader.is_empty()
                && c.to_follower.is_empty())
        });
    }
}
