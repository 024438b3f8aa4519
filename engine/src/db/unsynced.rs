//! Writes that leave the fdatasync to the caller: group commit for callers
//! that cannot park a thread per write.
//!
//! [`Db::put`] under `Fsync::Always` blocks its thread until an fdatasync
//! covers the write; concurrent writers share that fdatasync, but only if
//! each has a thread of its own waiting. A server that receives many writes
//! on one thread appends them all with these, then makes them durable with
//! one [`Db::sync`] and answers them together: one fdatasync and one thread
//! hand-off per batch instead of per write.
//!
//! Until that sync returned, such a write is as durable as under
//! `Fsync::Never`: readers see it at once (as they see a `put` waiting for
//! its fdatasync), and a crash may lose it. [`Db::sync`] makes every write
//! appended before it durable, whatever the fsync mode.

use super::*;

impl Db {
    /// Stores `value` under `key` like [`Db::put`], but returns without
    /// waiting for an fdatasync, whatever the fsync mode: the write is
    /// durable once a [`Db::sync`] called after this returned has returned.
    pub fn put_unsynced(&self, key: &[u8], value: &[u8]) -> Result<Seq> {
        Self::check_key(key)?;
        self.check_value(value)?;
        let ids_max = self.inner.opts.ids_max;
        let (seq, _end) = self.inner.mutate(|core| {
            let id = match core.find_key(key)? {
                Some((id, _)) => id,
                None => core.new_key_id(key, ids_max)?,
            };
            core.append(Write {
                id,
                key,
                kind: RecordKind::Put,
                value,
                seq: None,
            })
        })?;
        Ok(seq)
    }

    /// Deletes `key` like [`Db::delete`], but returns without waiting for an
    /// fdatasync (see [`Db::put_unsynced`]); `None` if it was absent.
    pub fn delete_unsynced(&self, key: &[u8]) -> Result<Option<Seq>> {
        Self::check_key(key)?;
        let done = self.inner.mutate(|core| {
            let Some((id, _)) = core.find_key(key)? else {
                return Ok(None);
            };
            if !matches!(core.current(id)?, Some((_, h, _)) if h.kind == RecordKind::Put) {
                return Ok(None);
            }
            core.append(Write {
                id,
                key,
                kind: RecordKind::Delete,
                value: &[],
                seq: None,
            })
            .map(Some)
        })?;
        Ok(done.map(|(seq, _end)| seq))
    }
}
