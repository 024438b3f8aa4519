//! The invariants, checked after every step and at the end of a run.

use crate::world::World;

/// After every step:
/// - no worker is ahead of what the master committed, and none holds a
///   version the master never wrote at that seq;
/// - until the first compaction, each worker's contents are exactly the
///   master's state at the worker's seq (a prefix of the master's log);
///   after it, compaction may have skipped superseded versions, so each
///   version a worker holds must be the master's record of that seq;
/// - every queue stays bounded.
pub fn step(world: &World) -> Result<(), String> {
    let store = &world.store;
    for (w, ws, _) in world.worker_views() {
        // Against the log as it is: compaction drops superseded records of
        // a batch and unmarks the rest (as the engine's copy does).
        let at = store.log.binary_search_by_key(&ws.applied, |r| r.seq);
        if at.is_ok_and(|i| store.log[i].meta.batch_more) {
            return Err(format!(
                "worker {w} stands at seq {} inside an atomic batch (it applied half of it)",
                ws.applied
            ));
        }
        if ws.applied > store.committed {
            return Err(format!(
                "worker {w} applied seq {} but the master committed only {}",
                ws.applied, store.committed
            ));
        }
        for (key, (seq, value)) in &ws.kv {
            let truth = store.truth.get(*seq as usize - 1);
            let same = truth.is_some_and(|r| &r.key == key && &r.value == value && r.seq == *seq);
            if !same || *seq > ws.applied {
                return Err(format!(
                    "worker {w} holds key {key:?} at seq {seq} (applied {}), which the master \
                     did not write",
                    ws.applied
                ));
            }
        }
        if !store.compacted {
            let want = store.digests[ws.applied as usize];
            if crate::model::digest(&ws.kv) != want {
                return Err(format!(
                    "worker {w} at seq {} is not the master's state at that seq",
                    ws.applied
                ));
            }
        }
    }
    let (events, conns, waits) = world.queue_lens();
    if events > 100_000 || conns > crate::world::QUEUE_MAX || waits > crate::world::QUEUE_MAX {
        return Err(format!(
            "a queue grew: events {events}, connection {conns}, waiting writes {waits}"
        ));
    }
    Ok(())
}

/// At the end, with the network healed and every node up for the settle
/// time: every worker holds exactly what the master holds.
pub fn converged(world: &World) -> Result<(), String> {
    if !world.master_up() {
        return Err("the master is still down after the settle time".into());
    }
    let want = world.digest_of_master();
    for (w, ws, up) in world.worker_views() {
        if !up {
            return Err(format!("worker {w} is still down after the settle time"));
        }
        if ws.applied != world.store.committed || crate::model::digest(&ws.kv) != want {
            return Err(format!(
                "worker {w} did not converge: applied {} of {}, digest {:016x} vs {want:016x}",
                ws.applied,
                world.store.committed,
                crate::model::digest(&ws.kv)
            ));
        }
    }
    Ok(())
}
