//! A failover group's member list (protocol 3, appended messages): who may
//! vote, who is catching up, who was removed.
//!
//! A member's **id** is its index in [`Membership::slots`]; slots are only
//! ever appended, and a removed member keeps its slot (standing
//! [`Standing::Removed`]), so an id names one member for the group's whole
//! life and a vote recorded for it stays meaningful. The first list is the
//! `--peers` every member was started with, every slot a voter, epoch 0.
//!
//! Changes go one member at a time (Raft's single-server changes: any
//! majority of the list before and any majority of the list after share a
//! member). The leader writes the new list into its log under
//! [`MEMBERS_KEY`]; every member uses the newest list its log holds,
//! committed or not, so a cut log goes back to the list before.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::limits::{ADDR_BYTES_MAX, MEMBERS_MAX};

/// The key under which a failover group's leader writes the member list
/// (value: [`Membership::to_value`]).
pub const MEMBERS_KEY: &[u8] = b"\xffhypha/members";

/// The first byte of a [`MEMBERS_KEY`] value: the encoding of the rest
/// (postcard of [`Membership`]). Another byte is refused, naming both.
pub const MEMBERS_FORMAT: u8 = 1;

/// What a member may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Standing {
    /// Votes, counts toward every majority, may lead (unless a witness).
    /// Tag 0.
    Voter,
    /// Receives the log (a snapshot first) but neither votes nor counts:
    /// a new member until it has caught up. Tag 1.
    Learner,
    /// Left the group; its slot stays so its id is never reused. Tag 2.
    Removed,
}

impl Standing {
    /// The standing as `hypha members`, `/status` and `/admin/members`
    /// show it.
    pub fn name(self) -> &'static str {
        match self {
            Standing::Voter => "voter",
            Standing::Learner => "learner",
            Standing::Removed => "removed",
        }
    }
}

/// One member's slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Slot {
    /// Where it listens (`host:port`, at most `ADDR_BYTES_MAX` bytes).
    pub addr: String,
    /// What it may do.
    pub standing: Standing,
}

/// A group's member list at one point of its log.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// [`group_id`](crate::group_id) of the first list: the group's
    /// identity, unchanged by later changes.
    pub group: u64,
    /// Term of the leader that wrote this list (0: the first list).
    pub term: u64,
    /// Changes since the first list.
    pub epoch: u64,
    /// Every member ever, by id; at most `MEMBERS_MAX`.
    pub slots: Vec<Slot>,
}

/// One change of a group's member list, in
/// [`Message::ChangeMembers`](crate::Message::ChangeMembers).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberChange {
    /// Add the member listening at this address: a learner until it has
    /// caught up, then a voter. Tag 0.
    Add(String),
    /// Remove the member listening at this address. Tag 1.
    Remove(String),
}

impl MemberChange {
    /// The address the change names.
    pub fn addr(&self) -> &str {
        match self {
            MemberChange::Add(a) | MemberChange::Remove(a) => a,
        }
    }
}

impl Membership {
    /// The first list of a group: every address a voter, epoch 0.
    pub fn first<S: AsRef<str>>(addrs: &[S]) -> Membership {
        Membership {
            group: crate::group_id(addrs),
            term: 0,
            epoch: 0,
            slots: addrs
                .iter()
                .map(|a| Slot {
                    addr: String::from(a.as_ref()),
                    standing: Standing::Voter,
                })
                .collect(),
        }
    }

    /// Members (by id bit) that vote.
    pub fn voters(&self) -> u64 {
        self.mask(|s| s == Standing::Voter)
    }

    /// Members (by id bit) not removed: voters and learners.
    pub fn present(&self) -> u64 {
        self.mask(|s| s != Standing::Removed)
    }

    fn mask(&self, f: impl Fn(Standing) -> bool) -> u64 {
        self.slots
            .iter()
            .take(MEMBERS_MAX)
            .enumerate()
            .filter(|(_, s)| f(s.standing))
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    /// The id of the member (not removed) listening at `addr`.
    pub fn find(&self, addr: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.standing != Standing::Removed && s.addr == addr)
    }

    /// Member `id`'s standing (`Removed` past the list).
    pub fn standing(&self, id: usize) -> Standing {
        self.slots.get(id).map_or(Standing::Removed, |s| s.standing)
    }

    /// Whether this list was written after `other` (a higher term, or the
    /// same term and a later change). Lists of one log always compare so;
    /// the order lets a witness, which keeps no log, keep the newest it
    /// was told.
    pub fn newer_than(&self, other: &Membership) -> bool {
        (self.term, self.epoch) > (other.term, other.epoch)
    }

    /// The list after `change`, written by the leader of `term`; `Err`
    /// says why the change makes no sense. Adding an address already a
    /// learner is allowed (it resumes a catch-up that timed out).
    pub fn changed(&self, change: &MemberChange, term: u64) -> Result<Membership, &'static str> {
        let mut next = Membership {
            term,
            epoch: self.epoch + 1,
            ..self.clone()
        };
        match change {
            MemberChange::Add(addr) => match self.find(addr) {
                Some(id) if self.standing(id) == Standing::Voter => {
                    return Err("that address is a voting member already")
                }
                Some(_) => return Err("that address is a learner already; it is catching up"),
                None if self.slots.len() >= MEMBERS_MAX => {
                    return Err("the group has used all MEMBERS_MAX member ids")
                }
                None => next.slots.push(Slot {
                    addr: addr.clone(),
                    standing: Standing::Learner,
                }),
            },
            MemberChange::Remove(addr) => {
                let id = self.find(addr).ok_or("no member listens at that address")?;
                if self.voters() == 1 << id {
                    return Err("it is the last voting member; add another first");
                }
                if let Some(s) = next.slots.get_mut(id) {
                    s.standing = Standing::Removed;
                }
            }
        }
        next.check()?;
        Ok(next)
    }

    /// Learner `id` becomes a voter (its catch-up is done), in `term`.
    pub fn promoted(&self, id: usize, term: u64) -> Membership {
        let mut next = Membership {
            term,
            epoch: self.epoch + 1,
            ..self.clone()
        };
        if let Some(s) = next.slots.get_mut(id) {
            s.standing = Standing::Voter;
        }
        next
    }

    /// The rules of a list: at most `MEMBERS_MAX` slots, addresses of at
    /// most `ADDR_BYTES_MAX` bytes, not empty, unique among members not
    /// removed, and at least one voter.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.slots.len() > MEMBERS_MAX {
            return Err("more than MEMBERS_MAX member slots");
        }
        for (i, s) in self.slots.iter().enumerate() {
            if s.addr.is_empty() || s.addr.len() > ADDR_BYTES_MAX {
                return Err("a member address is empty or longer than ADDR_BYTES_MAX");
            }
            let taken = s.standing != Standing::Removed
                && self
                    .slots
                    .iter()
                    .take(i)
                    .any(|o| o.standing != Standing::Removed && o.addr == s.addr);
            if taken {
                return Err("two members listen at one address");
            }
        }
        if self.voters() == 0 {
            return Err("a member list without a voter");
        }
        Ok(())
    }

    /// The value stored under [`MEMBERS_KEY`]: [`MEMBERS_FORMAT`], then
    /// postcard.
    pub fn to_value(&self) -> Vec<u8> {
        let mut out = alloc::vec![MEMBERS_FORMAT];
        // Encoding into a Vec cannot fail for these types.
        if let Ok(body) = postcard::to_allocvec(self) {
            out.extend_from_slice(&body);
        }
        out
    }

    /// Reads a [`MEMBERS_KEY`] value back, checking its rules: it comes
    /// from disk or from a peer's log.
    pub fn from_value(bytes: &[u8]) -> Result<Membership, DecodeError> {
        let (&format, body) = bytes
            .split_first()
            .ok_or(DecodeError::Invalid("an empty member list value"))?;
        if format != MEMBERS_FORMAT {
            return Err(DecodeError::Invalid(
                "a member list of another format (this version reads MEMBERS_FORMAT 1)",
            ));
        }
        let (m, rest): (Membership, &[u8]) =
            postcard::take_from_bytes(body).map_err(DecodeError::Malformed)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes { extra: rest.len() });
        }
        m.check().map_err(DecodeError::Invalid)?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first() -> Membership {
        Membership::first(&["[400::1]:7000", "[400::2]:7000", "[400::3]:7000"])
    }

    #[test]
    fn a_value_round_trips_and_garbage_is_refused() {
        let m = first();
        assert_eq!(Membership::from_value(&m.to_value()), Ok(m.clone()));
        let mut v = m.to_value();
        v[0] = 2;
        assert!(Membership::from_value(&v).is_err());
        let mut v = m.to_value();
        v.push(0);
        assert_eq!(
            Membership::from_value(&v),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
        assert!(Membership::from_value(&[]).is_err());
    }

    #[test]
    fn ids_are_never_reused_and_changes_go_one_at_a_time() {
        let m = first();
        assert_eq!(m.voters(), 0b111);
        let removed = m
            .changed(&MemberChange::Remove("[400::3]:7000".into()), 4)
            .unwrap();
        assert_eq!((removed.voters(), removed.present()), (0b011, 0b011));
        assert_eq!((removed.term, removed.epoch), (4, 1));
        assert!(removed.newer_than(&m));
        // The same address comes back as a new member, with a new id.
        let added = removed
            .changed(&MemberChange::Add("[400::3]:7000".into()), 4)
            .unwrap();
        assert_eq!(added.find("[400::3]:7000"), Some(3));
        assert_eq!((added.voters(), added.present()), (0b0011, 0b1011));
        let promoted = added.promoted(3, 5);
        assert_eq!(promoted.voters(), 0b1011);
        assert!(promoted
            .changed(&MemberChange::Add("[400::1]:7000".into()), 5)
            .is_err());
        assert!(promoted
            .changed(&MemberChange::Remove("[400::9]:7000".into()), 5)
            .is_err());
    }

    #[test]
    fn the_last_voter_stays_and_the_list_is_bounded() {
        let one = Membership::first(&["a:1"]);
        assert!(one.changed(&MemberChange::Remove("a:1".into()), 1).is_err());
        let mut m = one.clone();
        for i in 1..MEMBERS_MAX {
            m = m
                .changed(&MemberChange::Add(alloc::format!("b:{i}")), 1)
                .unwrap();
        }
        assert_eq!(m.slots.len(), MEMBERS_MAX);
        assert!(m.changed(&MemberChange::Add("c:1".into()), 1).is_err());
        let mut twice = one.clone();
        twice.slots.push(twice.slots[0].clone());
        assert!(twice.check().is_err());
    }
}
