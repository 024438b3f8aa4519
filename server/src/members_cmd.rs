//! `hypha members [list | add ADDR | remove ADDR] --member ADDR[,ADDR...]`:
//! shows or changes a failover group's member list through any of its
//! members (the change goes to whichever leads).

use hypha_net::{ErrorCode, MemberChange, Membership, Message, Standing};
use hypha_server::keys;
use hypha_server::member::{ask_member, MEMBER_CATCH_UP_MS};
use std::net::SocketAddr;

/// How long a list or a removal may take; an add waits longer (the new
/// member's catch-up).
const ANSWER_WAIT_MS: u64 = 30_000;

/// What went wrong, as the exit code a script can rely on: 2 a usage
/// error, 3 the group could not be reached or refused.
pub struct Failed(pub u8, pub String);

pub fn run(raw: &[String]) -> Result<(), Failed> {
    let usage = |why: String| Failed(2, why);
    let (change, flags) = match raw.first().map(String::as_str) {
        None | Some("list") => (None, raw.get(1..).unwrap_or_default()),
        Some(op @ ("add" | "remove")) => {
            let addr = raw
                .get(1)
                .filter(|a| !a.starts_with("--"))
                .ok_or_else(|| usage(format!("usage: hypha members {op} ADDR --member ADDR")))?;
            let change = match op {
                "add" => MemberChange::Add(addr.clone()),
                _ => MemberChange::Remove(addr.clone()),
            };
            (Some(change), &raw[2..])
        }
        Some(a) if a.starts_with("--") => (None, raw),
        Some(other) => {
            return Err(usage(format!(
                "unknown members command {other:?}: list, add ADDR or remove ADDR"
            )))
        }
    };
    let args = hypha_server::commands::get("members")
        .parse(flags)
        .map_err(usage)?;
    let members = args
        .need("member")
        .map_err(usage)?
        .split(',')
        .filter(|a| !a.is_empty())
        .map(|a| hypha_server::cli::addr("member", a.trim()))
        .collect::<Result<Vec<SocketAddr>, _>>()
        .map_err(usage)?;
    let (keys, _) = keys::node_keys(&args, &members, "members").map_err(usage)?;
    let cluster = args.get_or("cluster", "hypha").to_string();
    hypha_server::rt::run(async move {
        let ask = |addr, m| ask_member(addr, &cluster, &keys, m, ANSWER_WAIT_MS);
        let list = first_answer(&members, |a| ask(a, Message::Members { req_id: 1 })).await?;
        let Some(change) = change else {
            print!("{}", table(&list));
            return Ok(());
        };
        // Through whichever member leads: the list says where they are.
        let present: Vec<SocketAddr> = (list.slots.iter())
            .filter(|s| s.standing != Standing::Removed)
            .filter_map(|s| s.addr.parse().ok())
            .collect();
        let wait = ANSWER_WAIT_MS + MEMBER_CATCH_UP_MS;
        let request = Message::ChangeMembers { req_id: 2, change };
        let after = first_answer(&present, |a| {
            ask_member(a, &cluster, &keys, request.clone(), wait)
        })
        .await?;
        print!("{}", table(&after));
        Ok(())
    })
}

/// The first member list answered by one of `addrs`, asked in turn; a
/// member that does not lead passes the question on to the next.
async fn first_answer<F, Fut>(addrs: &[SocketAddr], ask: F) -> Result<Membership, Failed>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<Message>>,
{
    let mut why = Vec::new();
    for &addr in addrs {
        match ask(addr).await {
            Ok(Message::MemberList { members, .. }) => return Ok(members),
            Ok(Message::Error {
                code: ErrorCode::NotMaster,
                message,
                ..
            }) => why.push(format!("{addr}: {message}")),
            Ok(Message::Error { code, message, .. }) => {
                let code = if code == ErrorCode::BadRequest { 2 } else { 3 };
                return Err(Failed(code, format!("{addr}: {message}")));
            }
            Ok(other) => why.push(format!("{addr} answered {}", other.name())),
            Err(e) => why.push(format!("{addr}: {e}")),
        }
    }
    Err(Failed(3, format!("no member answered: {}", why.join("; "))))
}

/// The list as a terminal table.
fn table(list: &Membership) -> String {
    let mut out = format!(
        "group {:016x}, member list epoch {} (term {})\nID  STANDING  ADDRESS\n",
        list.group, list.epoch, list.term
    );
    for (id, s) in list.slots.iter().enumerate() {
        out += &format!("{id:<3} {:<9} {}\n", s.standing.name(), s.addr);
    }
    out
}
