//! Membership changes, as the server's leader makes them: one member at a
//! time, each written into the log as a member-list record that every
//! member uses as soon as its log holds it (Raft's single-server changes).
//! A leader changes the list only once the previous change and a record of
//! its own term are committed; it adds a member as a learner and promotes it
//! once it has caught up; it never removes itself.

use crate::member::{Conf, Rec};
use crate::world::World;
use hypha_repl::election::ElectionEvent;
use hypha_repl::MasterEvent;

impl World {
    /// The member list `m`'s log holds now (its newest list record).
    pub fn conf_of(&self, m: usize) -> Conf {
        self.last_conf(m).map_or(self.first_conf, |(_, c)| c)
    }

    /// The newest member-list record of `m`'s log: its seq and list.
    fn last_conf(&self, m: usize) -> Option<(u64, Conf)> {
        let log = &self.members[m].store.log;
        log.iter().rev().find_map(|r| r.conf.map(|c| (r.seq, c)))
    }

    /// Tells `m`'s election (and its master core, if it leads) the list its
    /// log holds, if that changed. A witness keeps no log: the first list.
    pub fn conf_changed(&mut self, m: usize) -> Result<(), String> {
        let conf = match self.members[m].witness {
            true => self.first_conf,
            false => self.conf_of(m),
        };
        if self.members[m].fed_conf == Some(conf) {
            return Ok(());
        }
        if self.trace {
            println!("{:>6} ms  member {m} uses {conf:?}", self.now);
        }
        self.members[m].fed_conf = Some(conf);
        let now = self.local(m);
        if let Some(e) = self.members[m].election.as_mut() {
            let ev = ElectionEvent::Members {
                voters: conf.voters,
                present: conf.present,
            };
            let acts = e.handle(ev, now);
            self.election_actions(m, acts)?;
        }
        self.feed_voters(m)
    }

    /// A leader's master core counts the acknowledgements of its list's
    /// voters only.
    pub fn feed_voters(&mut self, m: usize) -> Result<(), String> {
        let conf = self.conf_of(m);
        let now = self.local(m);
        let others = (0..self.members.len())
            .filter(|&o| o != m && conf.votes(o))
            .map(|o| o as u64 + 1)
            .collect();
        let Some(lead) = self.members[m].lead.as_mut() else {
            return Ok(());
        };
        let ev = MasterEvent::Voters {
            count: conf.voters.count_ones(),
            leader_votes: conf.votes(m),
            others,
        };
        let acts = lead.core.handle(ev, now);
        self.master_actions(m, acts)
    }

    /// Leader `m` changes its group's list by one member, if it may: the
    /// previous change and a record of its term are committed.
    pub fn propose(&mut self, m: usize) -> Result<(), String> {
        let Some(lead) = self.members[m].lead.as_ref() else {
            return Ok(());
        };
        let commit = lead.core.majority_commit();
        let pending = self.last_conf(m).is_some_and(|(seq, _)| seq > commit);
        if commit == 0 || pending {
            return Ok(());
        }
        let conf = self.conf_of(m);
        let n = self.members.len();
        // A learner that holds everything committed becomes a voter.
        let caught_up = |o: usize| {
            lead.core.workers().any(|(&node, w)| {
                node == o as u64 + 1 && w.conn.is_some() && w.applied_seq >= commit
            })
        };
        let learners: Vec<usize> = (0..n)
            .filter(|&o| conf.is_present(o) && !conf.votes(o))
            .collect();
        let next = if let Some(&l) = learners.iter().find(|&&l| caught_up(l)) {
            Conf {
                voters: conf.voters | 1 << l,
                ..conf
            }
        } else if !learners.is_empty() {
            return Ok(());
        } else {
            // Remove a data voter (keeping two voters), or add an absent
            // member as a learner.
            let removable: Vec<usize> = (0..n)
                .filter(|&o| o != m && conf.votes(o) && !self.members[o].witness)
                .collect();
            let absent: Vec<usize> = (0..n).filter(|&o| !conf.is_present(o)).collect();
            let remove = conf.voters.count_ones() > 2
                && !removable.is_empty()
                && (absent.is_empty() || self.rng.chance(50));
            if remove {
                let o = removable[self.rng.below(removable.len() as u64) as usize];
                Conf {
                    voters: conf.voters & !(1 << o),
                    present: conf.present & !(1 << o),
                }
            } else if let Some(&o) = absent.get(self.rng.below(absent.len().max(1) as u64) as usize)
            {
                Conf {
                    present: conf.present | 1 << o,
                    ..conf
                }
            } else {
                return Ok(());
            }
        };
        self.stats.changes += 1;
        let term = self.members[m].lead.as_ref().expect("leads").term;
        let seq = self.members[m].store.log.len() as u64 + 1;
        let rec = Rec {
            seq,
            term,
            key: 0,
            conf: Some(next),
            more: false,
        };
        if self.trace {
            println!("{:>6} ms  member {m} proposes {next:?}", self.now);
        }
        self.members[m].store.append(rec)?;
        self.log_changed(m)?;
        self.appended(m, seq)?;
        self.commit_later(m, seq);
        Ok(())
    }
}
