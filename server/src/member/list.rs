//! The member list a member uses, and what follows from it: where each
//! member listens, whose ballots it sends where, and which acknowledgements
//! count toward a leader's majority.
//!
//! A data member uses the newest list its log holds (`MEMBERS_KEY`,
//! written by a leader; committed or not, as Raft's single-server changes
//! require), else the first list. A witness keeps no log: it keeps the
//! newest list a member told it (`DIR/members`), which it needs only to
//! know where members listen.

use super::{lock, Active, Member, MemberConfig, Outbox, BALLOTS_QUEUED_MAX};
use crate::master::Master;
use hypha_engine::Db;
use hypha_net::{Membership, Message, Standing, MEMBERS_KEY, MEMBERS_MAX};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The list `db`'s log holds, if any (`Err`: a value that does not decode,
/// which no hypha wrote).
pub(super) fn list_in(db: &Db) -> Result<Option<Membership>, String> {
    let Some(bytes) = db.get(MEMBERS_KEY).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    Membership::from_value(&bytes)
        .map(Some)
        .map_err(|e| format!("the member list in the database does not decode: {e}"))
}

/// This member's id in `list`, or why it cannot take part.
pub(super) fn me_in(cfg: &MemberConfig, list: &Membership) -> std::io::Result<usize> {
    if list.group != cfg.first.group {
        return Err(std::io::Error::other(format!(
            "{} holds group {:016x}, but --peers names group {:016x}: start it with the \
             --peers list the group was created with, or with an empty --data directory",
            cfg.data.display(),
            list.group,
            cfg.first.group
        )));
    }
    let addr = cfg.listen().to_string();
    let any = list.slots.iter().position(|s| s.addr == addr);
    match (list.find(&addr), any) {
        (Some(id), _) => Ok(id),
        (None, Some(id)) => {
            // It idles: the others refuse its ballots. (A removal no
            // majority took is undone when a leader that kept it in its
            // list makes it follow and cut its log.)
            log::warn!("{}", removed_message(cfg, id, list));
            Ok(id)
        }
        (None, None) => Err(std::io::Error::other(format!(
            "--listen {addr} is not in the group's member list ({}); add it first with `hypha \
             members add {addr}`",
            addrs(list)
        ))),
    }
}

/// What a member the list marks removed says.
pub(super) fn removed_message(cfg: &MemberConfig, id: usize, list: &Membership) -> String {
    format!(
        "member {id} at {} was removed from the group (member list epoch {}): it takes no \
         further part and only answers reads from its old data. To bring this device back, \
         stop it, empty {} and add it again: `hypha members add {}`, then start it with --join",
        cfg.listen(),
        list.epoch,
        cfg.data.display(),
        cfg.listen()
    )
}

/// The list's members, for messages: `0=addr (voter), ...`.
pub fn addrs(list: &Membership) -> String {
    let slots = list.slots.iter().enumerate();
    let shown: Vec<String> = slots
        .filter(|(_, s)| s.standing != Standing::Removed)
        .map(|(i, s)| format!("{i}={} ({})", s.addr, s.standing.name()))
        .collect();
    shown.join(", ")
}

fn witness_file(cfg: &MemberConfig) -> PathBuf {
    cfg.data.join("members")
}

/// Whether a witness was told a list before (it keeps one).
pub(super) fn witness_told(cfg: &MemberConfig) -> bool {
    witness_file(cfg).exists()
}

/// How long a new member waits between attempts to fetch the list.
const JOIN_RETRY_MS: u64 = 2_000;

/// A new member's list, fetched from one of `--join`'s members: it waits
/// (saying why) until one answers with a list that names it.
pub(super) async fn fetch(cfg: &MemberConfig) -> Membership {
    let me = cfg.listen().to_string();
    loop {
        for &addr in &cfg.join {
            let asked = super::ask_member(
                addr,
                &cfg.cluster,
                &cfg.keys,
                Message::Members { req_id: 1 },
                cfg.handshake_timeout_ms.max(1_000),
            )
            .await;
            match asked {
                Ok(Message::MemberList { members, .. }) if members.find(&me).is_some() => {
                    log::info!(
                        "member at {me}: joins group {:016x} (member list epoch {}: {})",
                        members.group,
                        members.epoch,
                        addrs(&members)
                    );
                    return members;
                }
                Ok(Message::MemberList { members, .. }) => log::warn!(
                    "member at {me}: {addr}'s member list ({}) does not name {me} yet: add it \
                     with `hypha members add {me} --member {addr}`; waiting",
                    addrs(&members)
                ),
                Ok(other) => log::warn!(
                    "member at {me}: {addr} answered {} to Members; trying again",
                    other.name()
                ),
                Err(e) => log::warn!("member at {me}: cannot ask {addr} for the member list: {e}"),
            }
        }
        smol::Timer::after(std::time::Duration::from_millis(JOIN_RETRY_MS)).await;
    }
}

/// A witness's list: the newest it was told, else the first.
pub(super) fn witness_list(cfg: &MemberConfig) -> Result<Membership, String> {
    let path = witness_file(cfg);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let told = Membership::from_value(&bytes)
                .map_err(|e| format!("{} does not decode: {e}", path.display()))?;
            Ok(match told.newer_than(&cfg.first) {
                true => told,
                false => cfg.first.clone(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(cfg.first.clone()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

impl Member {
    /// The member list in use.
    pub fn list(&self) -> Membership {
        lock(&self.list).clone()
    }

    /// Whether an address belongs to a member of the list (not removed):
    /// the member's port admits it whatever `--allow` says.
    pub(super) fn listed(self: &Arc<Self>) -> crate::gate::Listed {
        let me = Arc::downgrade(self);
        Arc::new(move |ip| {
            me.upgrade().is_some_and(|m| {
                let list = lock(&m.list);
                let present = list
                    .slots
                    .iter()
                    .filter(|s| s.standing != Standing::Removed);
                present
                    .filter_map(|s| s.addr.parse::<SocketAddr>().ok())
                    .any(|a| a.ip() == ip)
            })
        })
    }

    /// Where member `id` listens (`None`: no such member, or removed).
    pub(super) fn addr_of(&self, id: usize) -> Option<SocketAddr> {
        let list = lock(&self.list);
        let slot = list.slots.get(id)?;
        (slot.standing != Standing::Removed).then(|| slot.addr.parse().ok())?
    }

    /// Re-reads the list the log holds and uses it if it changed.
    pub(super) fn refresh_list(self: &Arc<Self>) {
        if let Some(db) = self.db() {
            self.refresh_list_from(&db);
        }
    }

    /// Re-reads the list `db`'s log holds and uses it if it changed (a role
    /// switch holds the database outside `active`).
    pub(super) fn refresh_list_from(self: &Arc<Self>, db: &Db) {
        match list_in(db) {
            Ok(list) => self.adopt(list.unwrap_or_else(|| self.cfg.first.clone())),
            Err(e) => log::error!("member {}: {e}", self.me),
        }
    }

    /// Uses `list` from now on (if it differs from the one in use): ballots
    /// go to its members, a leader counts its voters, and the members are
    /// told where everybody listens. The election task is woken to take it.
    pub(super) fn adopt(self: &Arc<Self>, list: Membership) {
        {
            let mut current = lock(&self.list);
            if *current == list {
                return;
            }
            log::info!(
                "member {}: member list epoch {} (term {}): {}",
                self.me,
                list.epoch,
                list.term,
                addrs(&list)
            );
            *current = list.clone();
        }
        self.ensure_dialers();
        if let Some(master) = self.leading() {
            self.push_voters(&master);
        }
        let told = Message::MemberList {
            req_id: 0,
            members: list,
        };
        for out in lock(&self.outboxes).iter().flatten() {
            let _ = out.tx.try_send(told.clone());
        }
        self.poke.notify(1);
    }

    /// A witness was told `list` by a member: kept (durably) if newer.
    pub(super) fn told(self: &Arc<Self>, list: Membership) {
        if list.group != self.group || !list.newer_than(&self.list()) {
            return;
        }
        let path = witness_file(&self.cfg);
        let tmp = path.with_extension("tmp");
        let wrote = std::fs::write(&tmp, list.to_value())
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .and_then(|()| std::fs::File::open(&self.cfg.data)?.sync_all());
        if let Err(e) = wrote {
            log::warn!(
                "witness {}: cannot keep the member list in {}: {e}",
                self.me,
                path.display()
            );
        }
        self.adopt(list);
    }

    /// The master driver, if this member leads.
    pub(super) fn leading(&self) -> Option<Arc<Master>> {
        match &*lock(&self.active) {
            Active::Leading { master, .. } => Some(master.clone()),
            _ => None,
        }
    }

    /// Tells a leading master which acknowledgements count: those of the
    /// list's voters, by the node id each named in its `Elect` hello (a
    /// witness by its id).
    pub(super) fn push_voters(&self, master: &Master) {
        let list = self.list();
        let voters = list.voters();
        let others = (0..MEMBERS_MAX)
            .filter(|&id| id != self.me && voters & (1 << id) != 0)
            .filter_map(|id| match self.witnesses[id].load(Ordering::Relaxed) {
                true => Some(u64::MAX - id as u64),
                false => Some(self.node_of[id].load(Ordering::Relaxed)).filter(|&n| n != 0),
            })
            .collect();
        master.set_voters(voters.count_ones(), voters & (1 << self.me) != 0, others);
    }

    /// Starts a ballot sender for every member of the list that has none,
    /// and ends those of members removed.
    pub(super) fn ensure_dialers(self: &Arc<Self>) {
        let present = self.list().present();
        let mut outboxes = lock(&self.outboxes);
        for (id, out) in outboxes.iter_mut().enumerate() {
            let wanted = id != self.me && present & (1 << id) != 0;
            if !wanted {
                *out = None;
            } else if out.is_none() {
                let (tx, rx) = smol::channel::bounded(BALLOTS_QUEUED_MAX);
                let task = crate::rt::spawn(self.clone().dial(id, rx));
                *out = Some(Outbox { tx, _task: task });
            }
        }
    }

    /// Queues `msg` for member `to` (dropped if its queue is full or it is
    /// not in the list: the election repeats what matters).
    pub(super) fn send_to(&self, to: usize, msg: Message) {
        if let Some(Some(out)) = lock(&self.outboxes).get(to) {
            let _ = out.tx.try_send(msg);
        }
    }
}
