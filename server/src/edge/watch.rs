//! Watches through the edge: each page is a `Watch` sent to a worker (a
//! failover group's follower), on a connection of its own per worker so a
//! watch waiting for changes never makes the reads' connection look stuck.
//! Workers are tried in the reads' rotation; a cursor is the same on every
//! node of a history, so a watcher moves between workers without loss.

use super::{to_error, Edge};
use crate::http::{BackendError, WatchPage};
use crate::peer::Peer;
use hypha_net::{ErrorCode, Message};
use std::sync::Arc;

impl Edge {
    /// The connection watches use to `peer`'s address.
    fn watch_peer(&self, peer: &Peer) -> Arc<Peer> {
        let mut peers = self.watch_peers.lock().unwrap_or_else(|p| p.into_inner());
        peers
            .entry(peer.addr)
            .or_insert_with(|| Peer::new(peer.addr))
            .clone()
    }

    /// One page of a watch (see [`crate::http::Backend::watch`]).
    pub(super) async fn watch_page(
        &self,
        prefix: Vec<u8>,
        after: Option<u64>,
        values: bool,
        wait_ms: u32,
    ) -> Result<WatchPage, BackendError> {
        let candidates = self.candidates(0);
        let mut why = String::from("no worker is known");
        for p in candidates {
            let peer = self.watch_peer(&p);
            let m = Message::Watch {
                req_id: self.req_id(),
                prefix: prefix.clone(),
                after,
                values,
                wait_ms,
            };
            match self.call(&peer, &m).await {
                Ok(Message::Events { upto, events, .. }) => return Ok(WatchPage { upto, events }),
                Ok(Message::Error {
                    code: ErrorCode::Compacted { earliest },
                    message,
                    ..
                }) => {
                    return Err(BackendError::Compacted {
                        earliest,
                        why: message,
                    })
                }
                // The leader of a group, a worker installing a snapshot.
                Ok(other) => why = format!("{}: {}", p.addr, to_error(other)),
                Err(e) => why = format!("{}: {e}", p.addr),
            }
        }
        Err(BackendError::Unavailable(format!(
            "no worker could serve the watch ({why})"
        )))
    }
}
