//! The MAC state of an authenticated connection: sealing and opening
//! frames in order (`net/WIRE.md` §2) and heartbeats with a replay window
//! (§8). The keys come from the handshake in [`auth`](crate::auth).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::DecodeError;
use crate::limits::{FRAME_MAC_BYTES, HEARTBEAT_MAC_BYTES, HEARTBEAT_REPLAY_WINDOW};

/// The MAC of frames, heartbeats and handshake proofs.
pub(crate) type HmacSha256 = Hmac<Sha256>;

fn frame_tag(mac: &HmacSha256, counter: u64, frame: &[u8]) -> [u8; FRAME_MAC_BYTES] {
    let mut mac = mac.clone();
    mac.update(&counter.to_le_bytes());
    mac.update(frame);
    let full = mac.finalize().into_bytes();
    let mut tag = [0u8; FRAME_MAC_BYTES];
    tag.copy_from_slice(full.get(..FRAME_MAC_BYTES).unwrap_or(&[0; FRAME_MAC_BYTES]));
    tag
}

/// Seals the frames one side sends (a clone repeats the counter stream, so
/// only tests and fuzzers clone one): after each frame, the MAC of its
/// counter (0, 1, 2, ... per direction, never sent) and its bytes.
#[derive(Clone)]
pub struct Sealer {
    mac: HmacSha256,
    counter: u64,
}

impl core::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Sealer {{ counter: {} }}", self.counter)
    }
}

impl Sealer {
    pub(crate) fn new(mac: HmacSha256) -> Self {
        Self { mac, counter: 0 }
    }

    /// Appends the MAC of `frame` (a whole frame: header and payload) to
    /// `out`, and counts the frame.
    pub fn seal(&mut self, frame: &[u8], out: &mut alloc::vec::Vec<u8>) {
        out.extend_from_slice(&frame_tag(&self.mac, self.counter, frame));
        self.counter = self.counter.wrapping_add(1);
    }

    /// Frames sealed so far.
    pub fn counter(&self) -> u64 {
        self.counter
    }
}

/// Checks the frames one side receives, in order.
#[derive(Clone)]
pub struct Opener {
    mac: HmacSha256,
    counter: u64,
}

impl core::fmt::Debug for Opener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Opener {{ counter: {} }}", self.counter)
    }
}

impl PartialEq for Opener {
    fn eq(&self, other: &Self) -> bool {
        self.counter == other.counter
    }
}

impl Eq for Opener {}

impl Opener {
    pub(crate) fn new(mac: HmacSha256) -> Self {
        Self { mac, counter: 0 }
    }

    /// Checks `tag` against the next frame's expected MAC: a frame that was
    /// injected, replayed, reordered, dropped before it or changed fails.
    pub fn open(&mut self, frame: &[u8], tag: &[u8]) -> Result<(), DecodeError> {
        let mut mac = self.mac.clone();
        mac.update(&self.counter.to_le_bytes());
        mac.update(frame);
        mac.verify_truncated_left(tag)
            .map_err(|_| DecodeError::BadMac {
                counter: self.counter,
            })?;
        self.counter = self.counter.wrapping_add(1);
        Ok(())
    }

    /// Frames opened so far.
    pub fn counter(&self) -> u64 {
        self.counter
    }
}

/// Seals the heartbeats one side of a session sends.
#[derive(Clone)]
pub struct BeatSealer {
    mac: HmacSha256,
    session: u64,
    counter: u64,
}

impl core::fmt::Debug for BeatSealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "BeatSealer {{ session: {:#x}, counter: {} }}",
            self.session, self.counter
        )
    }
}

impl BeatSealer {
    pub(crate) fn new(mac: HmacSha256, session: u64) -> Self {
        Self {
            mac,
            session,
            counter: 0,
        }
    }

    /// The session id and the next counter for a heartbeat; counts it.
    pub fn next_beat(&mut self) -> (u64, u64) {
        self.counter = self.counter.wrapping_add(1);
        (self.session, self.counter)
    }

    /// The MAC of a heartbeat's CRC and payload.
    pub fn tag(&self, signed: &[u8]) -> [u8; HEARTBEAT_MAC_BYTES] {
        let mut mac = self.mac.clone();
        mac.update(signed);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; HEARTBEAT_MAC_BYTES];
        tag.copy_from_slice(
            full.get(..HEARTBEAT_MAC_BYTES)
                .unwrap_or(&[0; HEARTBEAT_MAC_BYTES]),
        );
        tag
    }
}

/// Checks the heartbeats the other side of a session sends: the session
/// id, the MAC, and the counter against a sliding replay window.
#[derive(Clone)]
pub struct BeatOpener {
    mac: HmacSha256,
    session: u64,
    window: ReplayWindow,
}

impl core::fmt::Debug for BeatOpener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "BeatOpener {{ session: {:#x}, {:?} }}",
            self.session, self.window
        )
    }
}

impl BeatOpener {
    pub(crate) fn new(mac: HmacSha256, session: u64) -> Self {
        Self {
            mac,
            session,
            window: ReplayWindow::default(),
        }
    }

    /// The session whose beats this checks.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Checks a beat of `session` with `counter`, whose CRC and payload are
    /// `signed`, against `tag`. Accepts each counter at most once.
    pub fn open(
        &mut self,
        session: u64,
        counter: u64,
        signed: &[u8],
        tag: &[u8],
    ) -> Result<(), DecodeError> {
        if session != self.session {
            return Err(DecodeError::Invalid("heartbeat of another session"));
        }
        let mut mac = self.mac.clone();
        mac.update(signed);
        mac.verify_truncated_left(tag)
            .map_err(|_| DecodeError::BadMac { counter })?;
        if !self.window.accept(counter) {
            return Err(DecodeError::Replayed { counter });
        }
        Ok(())
    }
}

/// A sliding window over counters (as in IPsec): the newest counter seen
/// and a bit per each of the [`HEARTBEAT_REPLAY_WINDOW`] before it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    newest: u64,
    /// Bit `i` set: counter `newest - i` was seen.
    seen: u64,
}

const _: () = assert!(HEARTBEAT_REPLAY_WINDOW == u64::BITS as u64);

impl ReplayWindow {
    /// Whether `counter` is new (and then records it). Counter 0 is never
    /// accepted: senders start at 1.
    pub fn accept(&mut self, counter: u64) -> bool {
        if counter == 0 {
            return false;
        }
        if counter > self.newest {
            let shift = counter - self.newest;
            self.seen = match shift >= HEARTBEAT_REPLAY_WINDOW {
                true => 1,
                false => self.seen << shift | 1,
            };
            self.newest = counter;
            return true;
        }
        let behind = self.newest - counter;
        if behind >= HEARTBEAT_REPLAY_WINDOW {
            return false;
        }
        let bit = 1u64 << behind;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_window_accepts_each_counter_once() {
        let mut window = ReplayWindow::default();
        assert!(!window.accept(0));
        assert!(window.accept(5));
        assert!(!window.accept(5));
        assert!(window.accept(3), "late but inside the window");
        assert!(!window.accept(3));
        assert!(window.accept(100));
        assert!(window.accept(100 - 63));
        assert!(!window.accept(100 - 64), "older than the window");
        assert!(!window.accept(5));
        assert!(window.accept(u64::MAX));
        assert!(!window.accept(u64::MAX));
    }
}
