//! Admission on the master's and workers' node ports: a cap on open
//! connections, a smaller one on connections still in their handshake, and
//! a cap on handshakes per source, so strangers on the overlay cannot hold
//! every slot. Each handshake is also bounded in time
//! (`wire::HANDSHAKE_TIMEOUT_MS`) and in memory (one Hello-sized buffer).
//!
//! A source is an IPv4 address or an IPv6 /64: Mycelium gives every node a
//! /64, so one stranger can use many addresses but only one /64.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Default of `--max-connections`: connections a master or worker holds
/// open at once (edges, workers, clients).
pub const NODE_CONNECTIONS_MAX_DEFAULT: usize = 256;
/// Connections that may be in their handshake at once. A new connection
/// beyond it takes the slot of the oldest one still in its handshake, which
/// is closed: a stranger cannot hold the slots, only churn them.
pub const NODE_HANDSHAKES_MAX: usize = 32;
/// Handshakes in progress from one source (an IPv4 address or an IPv6
/// /64): one stranger can hold at most this many of the
/// [`NODE_HANDSHAKES_MAX`] slots.
pub const NODE_HANDSHAKES_PER_SOURCE_MAX: usize = 4;
/// Default of `--idle-timeout-ms`: a request connection that sends nothing
/// for this long is closed (the edge's connections carry a refresh every
/// `--heartbeat-ms`).
pub const NODE_IDLE_TIMEOUT_MS_DEFAULT: u64 = 300_000;

const _: () = assert!(NODE_HANDSHAKES_MAX < NODE_CONNECTIONS_MAX_DEFAULT);
const _: () = assert!(NODE_HANDSHAKES_PER_SOURCE_MAX * 4 <= NODE_HANDSHAKES_MAX);

/// Where a connection comes from, as far as the caps are concerned: an
/// IPv4 address or an IPv6 /64 (the node ports' handshake cap and the
/// edge's per-address cap both count by it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    V4(u32),
    /// The upper 64 bits.
    V6(u64),
}

impl Source {
    /// The source of a connection from `ip`.
    pub(crate) fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(u32::from(v4)),
                None => Source::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Lets a pending handshake know it gave its slot to a newer one.
#[derive(Debug, Default)]
struct Evict {
    evicted: AtomicBool,
    event: event_listener::Event,
}

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    /// Handshakes in progress by ticket (oldest first), with their source.
    pending: BTreeMap<u64, (Source, Arc<Evict>)>,
    by_source: HashMap<Source, usize>,
    next_ticket: u64,
    refused: u64,
    evicted: u64,
}

impl Counts {
    /// Frees the handshake slot of `ticket`, if it still holds one.
    fn release(&mut self, ticket: u64) -> Option<Arc<Evict>> {
        let (source, evict) = self.pending.remove(&ticket)?;
        if let Some(n) = self.by_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.by_source.remove(&source);
            }
        }
        Some(evict)
    }
}

/// Counts a port's connections.
#[derive(Debug)]
pub struct Gate {
    counts: Mutex<Counts>,
    open_max: usize,
}

/// One admitted connection; gives its slots back when dropped.
#[derive(Debug)]
pub struct Pass {
    gate: Arc<Gate>,
    /// The handshake slot this holds, until authenticated or evicted.
    ticket: Option<u64>,
    evict: Arc<Evict>,
}

impl Gate {
    /// A gate for at most `open_max` connections.
    pub fn new(open_max: usize) -> Arc<Gate> {
        Arc::new(Gate {
            counts: Mutex::new(Counts::default()),
            open_max: open_max.max(NODE_HANDSHAKES_MAX + 1),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A pass for a new connection from `ip`, or why not (to log). When
    /// every handshake slot is taken, the oldest pending handshake gives its
    /// slot up (see [`Pass::evicted`]): strangers that hold slots without
    /// finishing make room for whoever comes next instead of locking
    /// everyone out.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Pass, String> {
        let source = Source::of(ip);
        let mut counts = self.counts();
        let full = if counts.open >= self.open_max {
            Some(format!(
                "{} connections open (--max-connections)",
                self.open_max
            ))
        } else if counts.by_source.get(&source).copied().unwrap_or(0)
            >= NODE_HANDSHAKES_PER_SOURCE_MAX
        {
            Some(format!(
                "{NODE_HANDSHAKES_PER_SOURCE_MAX} handshakes in progress from its address or /64 \
                 (NODE_HANDSHAKES_PER_SOURCE_MAX)"
            ))
        } else {
            None
        };
        if let Some(why) = full {
            counts.refused += 1;
            return Err(format!(
                "{why}; {} connections refused so far",
                counts.refused
            ));
        }
        if counts.pending.len() >= NODE_HANDSHAKES_MAX {
            let oldest = counts.pending.keys().next().copied();
            if let Some(evict) = oldest.and_then(|ticket| counts.release(ticket)) {
                counts.evicted += 1;
                evict.evicted.store(true, Ordering::Release);
                evict.event.notify(usize::MAX);
            }
        }
        let ticket = counts.next_ticket;
        counts.next_ticket += 1;
        let evict = Arc::new(Evict::default());
        counts.open += 1;
        counts.pending.insert(ticket, (source, evict.clone()));
        *counts.by_source.entry(source).or_insert(0) += 1;
        Ok(Pass {
            gate: self.clone(),
            ticket: Some(ticket),
            evict,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts().open
    }

    /// Pending handshakes that gave their slot to a newer one, so far.
    pub fn evicted(&self) -> u64 {
        self.counts().evicted
    }
}

impl Pass {
    /// The peer authenticated: it no longer holds a handshake slot.
    pub fn authenticated(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.gate.counts().release(ticket);
        }
    }

    /// Completes when this connection's handshake slot was given to a newer
    /// connection: the handshake must end.
    pub async fn evicted(&self) {
        loop {
            if self.evict.evicted.load(Ordering::Acquire) {
                return;
            }
            let listener = self.evict.event.listen();
            if self.evict.evicted.load(Ordering::Acquire) {
                return;
            }
            listener.await;
        }
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.authenticated();
        self.gate.counts().open -= 1;
    }
}

/// What a node port needs to admit a connection: the allowlist, the caps
/// and the handshake.
pub struct Port {
    /// The role, for log lines.
    pub who: &'static str,
    /// Peers allowed to connect (all when `None`).
    pub allow: Option<hypha_net::Allowlist>,
    /// Peers allowed besides `allow`: a failover member admits the members
    /// its member list names (one added since it started, whose address
    /// `--allow` may not cover).
    pub listed: Option<Listed>,
    /// The cluster keys a peer must prove.
    pub keys: crate::wire::Keys,
    /// The cluster name a peer must give.
    pub cluster: String,
    /// Time a peer has to prove the key.
    pub handshake_ms: u64,
    /// The caps.
    pub gate: Arc<Gate>,
}

/// Whether an address is one a node admits besides its `--allow`.
pub type Listed = Arc<dyn Fn(std::net::IpAddr) -> bool + Send + Sync>;

/// Accepts connections on `listener` forever: each one that passes the
/// allowlist and the caps gets a task that runs the handshake and, once
/// the peer proved the key, `session` with the authenticated connection.
/// What strangers cause is logged through [`crate::wire::stranger`]; a
/// session's error is logged when it ends.
pub async fn serve_port<F, Fut>(listener: &smol::net::TcpListener, port: Port, session: F)
where
    F: Fn(crate::wire::Accepted, std::net::SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let (port, session) = (Arc::new(port), Arc::new(session));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                log::warn!("{}: accept failed: {e}", port.who);
                smol::Timer::after(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let who = port.who;
        let listed = port.listed.as_ref().is_some_and(|f| f(peer.ip()));
        if !listed && !crate::wire::allowed(&port.allow, peer, who) {
            continue;
        }
        let mut pass = match port.gate.admit(peer.ip()) {
            Ok(pass) => pass,
            Err(why) => {
                crate::wire::stranger(|| format!("{who}: closed a connection from {peer}: {why}"));
                continue;
            }
        };
        let (port, session) = (port.clone(), session.clone());
        crate::rt::spawn(async move {
            let keys = crate::wire::current_keys(&port.keys);
            let handshake =
                crate::wire::accept(stream, peer, &keys, &port.cluster, who, port.handshake_ms);
            let evicted = async {
                pass.evicted().await;
                Err(std::io::Error::other(
                    "its handshake slot went to a newer connection (NODE_HANDSHAKES_MAX)",
                ))
            };
            let accepted = smol::future::or(handshake, evicted).await;
            let accepted = match accepted {
                Ok(Some(accepted)) => accepted,
                Ok(None) => return,
                Err(e) => {
                    crate::wire::stranger(|| format!("{who}: {peer} broke off the handshake: {e}"));
                    return;
                }
            };
            pass.authenticated();
            // A session ends when the key it proved is taken out of the
            // key file (SIGHUP), e.g. the old key after a rotation.
            let key_id = accepted.key_id;
            let revoked = async {
                crate::wire::key_removed(&port.keys, key_id).await;
                Err(std::io::Error::other(
                    "the cluster key it proved was removed from the key file; session ended",
                ))
            };
            if let Err(e) = smol::future::or(session(accepted, peer), revoked).await {
                log::info!("{who}: connection from {peer} ended: {e}");
            }
            drop(pass);
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn connections_and_handshakes_per_source_are_capped_and_given_back() {
        let gate = Gate::new(NODE_HANDSHAKES_MAX + 2);
        let four: Vec<Pass> = (0..4).map(|_| gate.admit(ip(7)).unwrap()).collect();
        assert!(gate
            .admit(ip(7))
            .unwrap_err()
            .contains("NODE_HANDSHAKES_PER_SOURCE_MAX"));
        assert!(gate.admit(ip(8)).is_ok());
        drop(four);
        let mut passes: Vec<Pass> = (0..NODE_HANDSHAKES_MAX + 2)
            .map(|n| gate.admit(ip(n as u8)).unwrap())
            .collect();
        assert!(gate
            .admit(ip(200))
            .unwrap_err()
            .contains("--max-connections"));
        passes.iter_mut().for_each(Pass::authenticated);
        passes.truncate(0);
        assert_eq!(gate.open(), 0);
    }

    #[test]
    fn a_full_set_of_handshakes_gives_the_oldest_slot_to_a_newcomer() {
        let gate = Gate::new(NODE_CONNECTIONS_MAX_DEFAULT);
        let strangers: Vec<Pass> = (0..NODE_HANDSHAKES_MAX)
            .map(|n| {
                gate.admit(ip((n / NODE_HANDSHAKES_PER_SOURCE_MAX) as u8))
                    .unwrap()
            })
            .collect();
        let mut node = gate.admit(ip(100)).expect("a newcomer is let in");
        assert_eq!(gate.evicted(), 1);
        // The oldest stranger is told to go; the others are not.
        smol::block_on(strangers[0].evicted());
        assert!(!strangers[1].evict.evicted.load(Ordering::Acquire));
        node.authenticated();
        // Its slot is free again: the next one evicts nobody.
        drop(strangers);
        assert!(gate.admit(ip(101)).is_ok());
        assert_eq!(gate.evicted(), 1);
    }

    #[test]
    fn an_ipv6_source_is_its_64() {
        let a: IpAddr = "4a0:1234:abcd:1::1".parse().unwrap();
        let b: IpAddr = "4a0:1234:abcd:1:ffff::9".parse().unwrap();
        let c: IpAddr = "4a0:1234:abcd:2::1".parse().unwrap();
        assert_eq!(Source::of(a), Source::of(b));
        assert_ne!(Source::of(a), Source::of(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(Source::of(mapped), Source::of(ip(1)));
    }
}
