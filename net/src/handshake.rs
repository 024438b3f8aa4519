//! The handshake that opens every TCP connection: the connecting side sends
//! [`Hello`], the accepting side answers [`Welcome`] or [`Refuse`] and, after
//! a `Refuse`, closes. Between them the two sides prove the cluster key with
//! [`Challenge`] and [`Prove`], whose proofs [`auth`](crate::auth) computes.
//!
//! `Hello` is message tag 0 and its first two fields, `magic` and `version`,
//! are frozen across every protocol version: whatever else changes, a node
//! can always read them and refuse a peer of another version politely.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::failover::TermStart;
use crate::limits::{CLUSTER_NAME_BYTES_MAX, MESSAGE_STRING_BYTES_MAX, NONCE_BYTES, PROOF_BYTES};

/// First field of every [`Hello`] and heartbeat: "HYPH" in ASCII, read
/// big-endian. Encoded as a varint like any `u32` (5 bytes on the wire).
pub const HELLO_MAGIC: u32 = 0x4859_5048;

/// The protocol version this crate speaks. See the version rule in
/// `net/WIRE.md`: anything but appending a message variant, or a variant to
/// a nested enum, bumps it.
pub const PROTOCOL_VERSION: u16 = 3;

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Takes writes, orders them, replicates them to workers. Tag 0.
    Master,
    /// Holds a replica and serves reads. Tag 1.
    Worker,
    /// The HTTP edge: forwards client requests to master and workers. Tag 2.
    Edge,
    /// A tool speaking the protocol directly (tests, admin CLI). Tag 3.
    Client,
    /// A data member of a failover group (`hypha member`, protocol 3): it
    /// votes, may lead, and follows the leader as a worker does. Tag 4.
    Member,
    /// A witness of a failover group (`hypha witness`, protocol 3): it
    /// votes and counts toward a majority, keeps no data, never leads. It
    /// opens only `Elect` connections. Tag 5.
    Witness,
}

/// Why a connection is opened; fixed for the life of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Purpose {
    /// A worker pulling the replication stream from the master. Tag 0.
    Replicate,
    /// Requests (`Get`, `Put`, ...) and their responses. Tag 1.
    Request,
    /// Election messages ([`Message::Ballot`](crate::Message::Ballot))
    /// between members of a failover group (protocol 3). Tag 2.
    Elect {
        /// The connector's index in the group's member list (the same list,
        /// in the same order, on every member).
        member: u16,
        /// [`group_id`](crate::group_id) of the connector's member list: a
        /// member started with another list is refused, naming both.
        group: u64,
    },
    /// Reading and changing a failover group's member list
    /// ([`Message::Members`](crate::Message::Members),
    /// [`Message::ChangeMembers`](crate::Message::ChangeMembers)), from
    /// `hypha members` or an edge. Tag 3.
    Members,
}

/// The first message on every connection, sent by the side that connects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`HELLO_MAGIC`]; anything else is not a hypha peer.
    pub magic: u32,
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// Cluster name; nodes of different clusters never talk.
    pub cluster: heapless::String<CLUSTER_NAME_BYTES_MAX>,
    /// The sender's role.
    pub role: Role,
    /// The sender's node id, unique in the cluster.
    pub node_id: u64,
    /// Identity of the write history the sender holds; 0 = none (empty node).
    pub history_id: u64,
    /// Highest seq the sender has applied (0 if none).
    pub applied_seq: u64,
    /// What the connection is for.
    pub purpose: Purpose,
    /// The connector's fresh handshake nonce (protocol 2): see
    /// [`Challenge`].
    pub nonce: [u8; NONCE_BYTES],
    /// The sender's current term (protocol 3; 0 outside failover groups).
    /// An acceptor in a higher term refuses with
    /// [`RefuseReason::StaleTerm`].
    pub term: u64,
    /// Term of the newest record the sender holds (with `applied_seq`, its
    /// last log id).
    pub last_term: u64,
}

impl Hello {
    /// A `Hello` with this crate's magic and version.
    pub fn new(
        cluster: heapless::String<CLUSTER_NAME_BYTES_MAX>,
        role: Role,
        node_id: u64,
        purpose: Purpose,
    ) -> Self {
        Self {
            magic: HELLO_MAGIC,
            version: PROTOCOL_VERSION,
            cluster,
            role,
            node_id,
            history_id: 0,
            applied_seq: 0,
            purpose,
            nonce: [0; NONCE_BYTES],
            term: 0,
            last_term: 0,
        }
    }
}

/// The acceptor's answer to a `Hello`: its nonce and its proof of the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The acceptor's fresh nonce.
    pub nonce: [u8; NONCE_BYTES],
    /// HMAC(key, "hypha/2 acceptor proof" ‖ th).
    pub proof: [u8; PROOF_BYTES],
}

/// The connector's proof of the key, the last plain frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prove {
    /// HMAC(key, "hypha/2 connector proof" ‖ th).
    pub proof: [u8; PROOF_BYTES],
}

/// The accepting side's yes to a [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The accepting side's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// The accepting side's role.
    pub role: Role,
    /// The accepting side's node id.
    pub node_id: u64,
    /// Identity of the history the accepting side holds; 0 = none.
    pub history_id: u64,
    /// Highest seq the accepting side knows to be committed.
    pub commit_seq: u64,
    /// The accepting side's term (protocol 3; 0 outside failover groups).
    pub term: u64,
    /// A master's newest term boundaries, oldest first, at most
    /// `TERMS_KEPT` (protocol 3; empty outside failover groups): a follower
    /// finds with them where its log agrees with the master's.
    pub terms: Vec<TermStart>,
}

/// The accepting side's no to a [`Hello`]; it closes the connection after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refuse {
    /// Why, for the peer's logic.
    pub reason: RefuseReason,
    /// Why, for the peer's operator; at most `MESSAGE_STRING_BYTES_MAX` bytes.
    pub message: String,
}

impl Refuse {
    /// A `Refuse` whose message is cut to `MESSAGE_STRING_BYTES_MAX` bytes on
    /// a character boundary, so it always passes validation.
    pub fn new(reason: RefuseReason, message: &str) -> Self {
        Self {
            reason,
            message: String::from(truncate_str(message, MESSAGE_STRING_BYTES_MAX)),
        }
    }
}

/// Why a [`Hello`] was refused. Variants are append-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RefuseReason {
    /// `magic` is not [`HELLO_MAGIC`]. Tag 0.
    BadMagic,
    /// `version` is not ours. Tag 1.
    VersionMismatch {
        /// Our [`PROTOCOL_VERSION`].
        ours: u16,
    },
    /// `cluster` is not ours. Tag 2.
    WrongCluster,
    /// The peer's address, role or purpose is not allowed here. Tag 3.
    NotAllowed,
    /// The peer's history cannot continue from ours (and a snapshot is not
    /// possible from this node). Tag 4.
    HistoryMismatch {
        /// Our history id.
        ours: u64,
    },
    /// The peer asked for something only the master does. Tag 5.
    NotMaster,
    /// Too many connections; retry later. Tag 6.
    Busy,
    /// The first frame was not a `Hello`, or a second `Hello` came. Tag 7.
    Unexpected,
    /// The peer did not prove it holds this cluster's key. Tag 8.
    NotAuthenticated,
    /// The peer's term is lower than ours: it follows a deposed master or
    /// missed an election (protocol 3). Tag 9.
    StaleTerm {
        /// Our term.
        current: u64,
    },
    /// The peer was removed from the failover group's member list (at
    /// `epoch`): it takes no further part. Tag 10.
    Removed {
        /// The member list's epoch that removed it.
        epoch: u64,
    },
}

/// The checks every node makes on a [`Hello`] before anything else: magic,
/// protocol version and cluster name. Role, purpose and history checks depend
/// on the node and are the caller's.
pub fn check_hello(hello: &Hello, cluster: &str) -> Result<(), RefuseReason> {
    if hello.magic != HELLO_MAGIC {
        return Err(RefuseReason::BadMagic);
    }
    if hello.version != PROTOCOL_VERSION {
        return Err(RefuseReason::VersionMismatch {
            ours: PROTOCOL_VERSION,
        });
    }
    if hello.cluster.as_str() != cluster {
        return Err(RefuseReason::WrongCluster);
    }
    Ok(())
}

/// The check a connecting node makes on the [`Welcome`] it gets: the protocol
/// version. Returns the reason to log and close with.
pub fn check_welcome(welcome: &Welcome) -> Result<(), RefuseReason> {
    if welcome.version != PROTOCOL_VERSION {
        return Err(RefuseReason::VersionMismatch {
            ours: PROTOCOL_VERSION,
        });
    }
    Ok(())
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
pub(crate) fn truncate_str(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        let cluster = heapless::String::try_from("edge-lab").unwrap();
        Hello::new(cluster, Role::Worker, 7, Purpose::Replicate)
    }

    #[test]
    fn check_hello_accepts_our_cluster() {
        assert_eq!(check_hello(&hello(), "edge-lab"), Ok(()));
    }

    #[test]
    fn check_hello_refuses_bad_magic_version_and_cluster() {
        let mut bad = hello();
        bad.magic = 0x4854_5450;
        assert_eq!(check_hello(&bad, "edge-lab"), Err(RefuseReason::BadMagic));

        let mut bad = hello();
        bad.version = PROTOCOL_VERSION + 1;
        assert_eq!(
            check_hello(&bad, "edge-lab"),
            Err(RefuseReason::VersionMismatch {
                ours: PROTOCOL_VERSION
            })
        );

        assert_eq!(
            check_hello(&hello(), "prod"),
            Err(RefuseReason::WrongCluster)
        );
    }

    #[test]
    fn check_welcome_refuses_other_versions() {
        let mut welcome = Welcome {
            version: PROTOCOL_VERSION,
            role: Role::Master,
            node_id: 1,
            history_id: 9,
            commit_seq: 100,
            term: 0,
            terms: Vec::new(),
        };
        assert_eq!(check_welcome(&welcome), Ok(()));
        welcome.version = 0;
        assert!(check_welcome(&welcome).is_err());
    }

    #[test]
    fn refuse_new_cuts_on_a_char_boundary() {
        let long = "é".repeat(MESSAGE_STRING_BYTES_MAX);
        let refuse = Refuse::new(RefuseReason::Busy, &long);
        assert_eq!(refuse.message.len(), MESSAGE_STRING_BYTES_MAX);
        let odd = alloc::format!("x{long}");
        let refuse = Refuse::new(RefuseReason::Busy, &odd);
        assert_eq!(refuse.message.len(), MESSAGE_STRING_BYTES_MAX - 1);
        assert_eq!(Refuse::new(RefuseReason::Busy, "short").message, "short");
    }

    #[test]
    fn magic_spells_hyph() {
        assert_eq!(&HELLO_MAGIC.to_be_bytes(), b"HYPH");
    }
}
