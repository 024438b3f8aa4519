//! Asking a member about the member list over the wire (a connection of
//! purpose `Members`): what `hypha members`, a new member's `--join` and an
//! edge's `/admin/members` do.

use crate::wire::{self, Keys};
use hypha_net::{Message, Purpose, Role};
use std::net::SocketAddr;
use std::time::Duration;

/// Sends `request` to the member at `addr` and returns its answer (a
/// `MemberList`, or an `Error` saying why not). `wait_ms` bounds the whole
/// exchange: an `Add` waits for the new member to catch up.
pub async fn ask_member(
    addr: SocketAddr,
    cluster: &str,
    keys: &Keys,
    request: Message,
    wait_ms: u64,
) -> std::io::Result<Message> {
    let node_id = hypha_engine::random_u64();
    let hello = wire::hello(cluster, Role::Client, node_id, Purpose::Members)?;
    let keys = wire::current_keys(keys);
    let exchange = async {
        let (mut r, mut w, answer, _) = wire::connect(addr, hello, &keys).await?;
        match answer {
            Message::Welcome(_) => {}
            Message::Refuse(refusal) => return Err(wire::refusal(addr, &refusal)),
            other => {
                return Err(std::io::Error::other(format!(
                    "{addr} answered {} to a Hello",
                    other.name()
                )))
            }
        }
        w.send(&request).await?;
        match r.recv().await? {
            Some(answer) => Ok(answer),
            None => Err(std::io::Error::other(format!(
                "{addr} closed the connection without an answer"
            ))),
        }
    };
    smol::future::or(exchange, async {
        smol::Timer::after(Duration::from_millis(wait_ms)).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{addr} did not answer within {wait_ms} ms"),
        ))
    })
    .await
}
