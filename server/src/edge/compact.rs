//! `POST /admin/compact` through the edge: each node compacts over a
//! connection of its own.

use super::{Edge, COMPACT_TIMEOUT_MS};
use crate::wire;
use hypha_net::{Message, Purpose, Role};
use serde_json::json;
use std::net::SocketAddr;

impl Edge {
    /// Runs a compaction on the node at `addr` over its own connection (it
    /// may take minutes; pooled connections serve requests meanwhile).
    pub(super) async fn compact_node(&self, addr: SocketAddr) -> serde_json::Value {
        let run = async {
            let hello = wire::hello(&self.cfg.cluster, Role::Edge, 0, Purpose::Request)?;
            let keys = wire::current_keys(&self.cfg.keys);
            let (mut r, mut w, answer, _) = wire::connect(addr, hello, &keys).await?;
            match answer {
                Message::Welcome(_) => {}
                Message::Refuse(refuse) => return Err(wire::refusal(addr, &refuse)),
                other => {
                    return Err(std::io::Error::other(format!(
                        "{addr} answered {} instead of Welcome",
                        other.name()
                    )))
                }
            }
            let m = Message::Compact {
                req_id: self.req_id(),
                run: true,
            };
            wire::timeout(COMPACT_TIMEOUT_MS, async {
                w.send(&m).await?;
                r.recv()
                    .await?
                    .ok_or_else(|| std::io::Error::other("connection closed"))
            })
            .await
        };
        match run.await {
            Ok(Message::CompactIs { info, .. }) => json!({
                "addr": addr.to_string(),
                "bytes_before": info.last_bytes_before,
                "bytes_after": info.last_bytes_after,
                "millis": info.last_millis,
                "compactions": info.compactions,
            }),
            Ok(Message::Error { message, .. }) => {
                json!({"addr": addr.to_string(), "error": message})
            }
            Ok(other) => {
                json!({"addr": addr.to_string(), "error": format!("unexpected {}", other.name())})
            }
            Err(e) => json!({"addr": addr.to_string(), "error": e.to_string()}),
        }
    }
}
