//! Backups through the edge: every page of one copy comes from the node
//! that served its first (a worker, a group's follower, or the master when
//! no reader answers), since a copy is the store at one seq *on that node*.

use super::{to_error, Edge};
use crate::http::{BackendError, BackupAnswer, BackupAsk};
use hypha_net::{ErrorCode, Message};

impl Edge {
    /// One page of a backup (see [`crate::http::Backend::backup`]).
    pub(super) async fn backup_page(&self, ask: BackupAsk) -> Result<BackupAnswer, BackendError> {
        let mut peers = self.candidates(0);
        peers.push(self.master());
        if let Some(node) = &ask.node {
            peers.retain(|p| p.addr.to_string() == *node);
            peers.truncate(1);
            if peers.is_empty() {
                return Err(BackendError::Unavailable(format!(
                    "{node}, which began this backup, is no longer a node of this edge: start \
                     the backup again"
                )));
            }
        }
        let mut why = String::from("no node is known");
        for peer in peers {
            let m = Message::Backup(hypha_net::BackupAsk {
                req_id: self.req_id(),
                upto: ask.upto,
                after: ask.after,
                generation: ask.generation,
            });
            match self.call(&peer, &m).await {
                Ok(Message::BackupPage(page)) => {
                    let node = peer.addr.to_string();
                    return Ok(BackupAnswer { node, page });
                }
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
                Ok(other) => why = format!("{}: {}", peer.addr, to_error(other)),
                Err(e) => why = format!("{}: {e}", peer.addr),
            }
        }
        Err(BackendError::Unavailable(format!(
            "no node could serve the backup ({why})"
        )))
    }
}
