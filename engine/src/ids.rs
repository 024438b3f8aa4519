//! The OurDB-style id API ([`Ids`], from `Db::ids`) on the same storage
//! as the key API: dense u32 ids, assigned from 1 upward in incremental
//! mode. An id written through this API holds no key; one bound to a key
//! cannot be set here (`Error::IdHasKey`).

use crate::db::Db;
use crate::error::{CodecError, Error, Result};
use crate::log_iter::walk_history;
use crate::record::{RecordKind, Seq};
use crate::state::Write;
use crate::stats::Version;

impl Db {
    /// The OurDB-style id API on the same storage.
    pub fn ids(&self) -> Ids<'_> {
        Ids { db: self }
    }
}

/// The OurDB-equivalent id API: `set`, `get`, `history`, `delete`, `next_id`.
pub struct Ids<'a> {
    db: &'a Db,
}

impl Ids<'_> {
    fn check_id(&self, id: u32) -> Result<()> {
        let max = self.db.inner.opts.ids_max;
        if id == 0 || id > max {
            return Err(Error::IdOutOfRange { id, max });
        }
        Ok(())
    }

    /// Stores `data`. Incremental mode: `None` assigns the next id,
    /// `Some(id)` updates an assigned id. Caller-chosen mode: `Some(id)`.
    pub fn set(&self, id: Option<u32>, data: &[u8]) -> Result<u32> {
        self.db.check_value(data)?;
        if let Some(id) = id {
            self.check_id(id)?;
        }
        let ids_max = self.db.inner.opts.ids_max;
        let (id, end) = self.db.inner.mutate(data.len(), |core| {
            let id = match (core.meta.incremental, id) {
                (true, None) => {
                    if core.next_id > ids_max {
                        return Err(Error::IdOutOfRange {
                            id: core.next_id,
                            max: ids_max,
                        });
                    }
                    core.next_id
                }
                (true, Some(id)) if id >= core.next_id => {
                    return Err(Error::IdNotAssigned {
                        id,
                        next: core.next_id,
                    })
                }
                (false, None) => return Err(Error::NotIncremental),
                (_, Some(id)) => id,
            };
            if let Some((_, _, key)) = core.current(id)? {
                if !key.is_empty() {
                    return Err(Error::IdHasKey { id });
                }
            }
            let (_, end) = core.append(Write {
                id,
                key: &[],
                kind: RecordKind::Put,
                value: data,
                seq: None,
                meta: None,
            })?;
            Ok((id, end))
        })?;
        self.db.inner.durable(end)?;
        Ok(id)
    }

    /// The data of `id`, or `None` if it was never set or is deleted.
    pub fn get(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.check_id(id)?;
        let core = self.db.inner.read();
        let loc = core.lookup.get(id)?;
        if loc.is_none() {
            return Ok(None);
        }
        let r = core.log.record(loc)?;
        if r.header.id != id {
            // A damaged lookup entry pointing at another id's record.
            return Err(core.log.corrupted(
                loc,
                CodecError::BadField {
                    what: "record id (lookup disagrees)",
                },
            ));
        }
        Ok((r.header.kind == RecordKind::Put).then(|| r.value().to_vec()))
    }

    /// Up to `depth` versions of `id`, newest first (deletes included).
    pub fn history(&self, id: u32, depth: usize) -> Result<Vec<Version>> {
        self.check_id(id)?;
        let core = self.db.inner.read();
        let loc = core.lookup.get(id)?;
        walk_history(&core, id, loc, depth)
    }

    /// Makes `id` read as absent; `None` if it already did.
    pub fn delete(&self, id: u32) -> Result<Option<Seq>> {
        self.check_id(id)?;
        let done = self.db.inner.mutate(crate::limits::KEY_BYTES_MAX, |core| {
            let Some((_, h, key)) = core.current(id)? else {
                return Ok(None);
            };
            if h.kind != RecordKind::Put {
                return Ok(None);
            }
            let key = key.to_vec();
            core.append(Write {
                id,
                key: &key,
                kind: RecordKind::Delete,
                value: &[],
                seq: None,
                meta: None,
            })
            .map(Some)
        })?;
        match done {
            Some((seq, end)) => {
                self.db.inner.durable(end)?;
                Ok(Some(seq))
            }
            None => Ok(None),
        }
    }

    /// The id `set(None, …)` assigns next (incremental mode only).
    pub fn next_id(&self) -> Result<u32> {
        let core = self.db.inner.read();
        if !core.meta.incremental {
            return Err(Error::NotIncremental);
        }
        Ok(core.next_id)
    }
}
