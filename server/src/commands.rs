//! Every command of the `hypha` binary and every flag it takes, in one
//! table: the parser accepts exactly these flags ([`Command::parse`]), and
//! `--help`, `hypha help COMMAND`, the man page and the shell completion
//! are all drawn from it (`help.rs`), so they cannot disagree.

use crate::cli::Args;

/// One flag: `--name VALUE` (or a switch when `value` is empty).
pub struct Flag {
    /// Without the dashes.
    pub name: &'static str,
    /// What the value looks like (`DIR`, `MS`), empty for a switch.
    pub value: &'static str,
    /// What it does, with its default.
    pub help: &'static str,
}

/// One command.
pub struct Command {
    /// As typed after `hypha` (empty: `hypha` alone, everything in one process).
    pub name: &'static str,
    /// The usage line after `hypha`.
    pub usage: &'static str,
    /// One line for the command list.
    pub summary: &'static str,
    /// What it does, in a paragraph or two.
    pub about: &'static str,
    /// Its flags (the shared groups below included).
    pub flags: &'static [&'static [Flag]],
}

impl Command {
    /// Whether this command talks to an edge (takes [`CLIENT`]).
    pub fn is_client(&self) -> bool {
        self.flags.iter().any(|group| std::ptr::eq(*group, CLIENT))
    }

    /// Every flag, in order.
    pub fn all_flags(&self) -> impl Iterator<Item = &'static Flag> + '_ {
        self.flags.iter().flat_map(|group| group.iter())
    }

    /// Parses `raw` against this command's flags.
    pub fn parse(&self, raw: &[String]) -> Result<Args, String> {
        let values: Vec<&str> = self
            .all_flags()
            .filter(|f| !f.value.is_empty())
            .map(|f| f.name)
            .collect();
        let switches: Vec<&str> = self
            .all_flags()
            .filter(|f| f.value.is_empty())
            .map(|f| f.name)
            .collect();
        let help = match self.name {
            "" => "see hypha --help".to_string(),
            name => format!("see hypha {name} --help"),
        };
        Args::parse(raw, &values, &switches).map_err(|e| e.replace("see --help", &help))
    }
}

/// The command called `name` (`""`: the all-in-one).
pub fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// The command called `name`, which the table holds.
pub fn get(name: &str) -> &'static Command {
    match find(name) {
        Some(command) => command,
        None => unreachable!("no command {name:?} in the table"),
    }
}

const fn flag(name: &'static str, value: &'static str, help: &'static str) -> Flag {
    Flag { name, value, help }
}

/// Flags every node takes.
pub const NODE: &[Flag] = &[
    flag("cluster-key-file", "PATH", "the cluster key (from `hypha keygen`): every connection between nodes proves it and every frame and heartbeat carries a MAC. Required when a node listens on, or talks to, a non-loopback address. The file may hold two keys, current then next (rotation); SIGHUP reads it again."),
    flag("insecure-no-auth", "", "run without a key on a non-loopback address (logged; anyone who reaches the port can read and write)"),
    flag("cluster", "NAME", "cluster name every node must share (default hypha)"),
];

/// Heartbeats of fixed roles and edges.
pub const HEARTBEAT: &[Flag] = &[
    flag(
        "heartbeat-ms",
        "MS",
        "UDP heartbeat interval (default 1000)",
    ),
    flag(
        "heartbeat-timeout-ms",
        "MS",
        "a peer silent this long is down (default 3000)",
    ),
];

/// Compaction, for every role that stores data.
pub const COMPACTION: &[Flag] = &[
    flag("history", "N", "versions of each key compaction keeps (default 1: the newest; ?history= reaches back to the last compaction)"),
    flag("compact-garbage", "PERCENT", "compact when garbage is at least PERCENT of the data files (default 50) ..."),
    flag("compact-min-mb", "MB", "... and at least MB megabytes (default 64)"),
];

/// The node port's guards.
pub const PORT: &[Flag] = &[
    flag("allow", "CIDR,...", "only these peers may connect, e.g. 400::/7,127.0.0.1 (a second layer: the cluster key is the first)"),
    flag("max-connections", "N", "connections open at once on the node port (default 256; at most 32 of them in their handshake)"),
    flag("idle-timeout-ms", "MS", "close a request connection silent this long (default 300000)"),
    flag("handshake-timeout-ms", "MS", "close a connection that has not proved the cluster key this long after it was accepted (default 5000; at most 4 handshakes per address or /64 at once)"),
];

/// What a data node stores.
pub const STORE: &[Flag] = &[
    flag("data", "DIR", "where the data lives (created if missing)"),
    flag(
        "value-max",
        "BYTES",
        "largest value accepted (default 16777216)",
    ),
];

/// The HTTP edge's settings.
pub const EDGE: &[Flag] = &[
    flag("token-file", "PATH", "writes need the header Authorization: Bearer <token> with the token in PATH (SIGHUP reads it again)"),
    flag("token", "TOKEN", "the token itself (shows in ps: prefer --token-file or HYPHA_TOKEN)"),
    flag("token-reads", "", "reads, /status and /metrics need the token too (the status page asks for it once)"),
    flag("lag-max", "N", "skip workers N records behind for reads (default 100000)"),
    flag("body-budget-mb", "MB", "request and response bodies held at once (default 64; beyond it 503 + Retry-After)"),
    flag("connections-per-addr", "N", "connections one client address may hold (default 64)"),
    flag("http-connections", "N", "connections open at once (default 1024; each open watch holds one; the open-file limit is raised to fit when the hard limit allows)"),
    flag("body-total-timeout-ms", "MS", "the longest a whole request body may take (default 120000)"),
    flag("json-values-max", "N", "most values in one JSON body of the curl dialects, counted before parsing (default 16384)"),
];

/// How a client reaches an edge.
pub const CLIENT: &[Flag] = &[
    flag(
        "edge",
        "URL",
        "the edge to talk to (default http://localhost:8080)",
    ),
    flag(
        "token-file",
        "PATH",
        "the edge's token, for writes (and reads under --token-reads)",
    ),
    flag(
        "token",
        "TOKEN",
        "the token itself (shows in ps: prefer --token-file or HYPHA_TOKEN)",
    ),
];

/// What a client command's exit code means (its help ends with this).
pub const CLIENT_EXITS: &str = "Exit codes: 0 done, 1 not found, 2 usage error (the command or the request it makes is wrong), 3 cannot reach the edge or it refused (the message says why), 4 a condition (--if-match, --if-absent) did not hold.";

const FSYNC: Flag = flag("fsync", "MODE", "when writes reach the disk: always (a write is acknowledged after fdatasync; concurrent writes share one), never, or MSms (every MS milliseconds)");
const SYNC: Flag = flag(
    "sync",
    "async|N",
    "acknowledge after the local commit (async, default) or after N workers applied the write",
);
const SYNC_TIMEOUT: Flag = flag(
    "sync-timeout-ms",
    "MS",
    "how long --sync N, or a majority, may take before the write fails (default 5000)",
);
const ELECTION: &[Flag] = &[
    flag("listen", "ADDR", "where this member listens (TCP and UDP); list it in --peers too"),
    flag("peers", "ADDR,...", "every member of the group, this one included, the same list in the same order on every member (3 members survive one failure, 5 two)"),
    flag("join", "ADDR,...", "instead of --peers, for a new device: ask these members for the group's list and wait until `hypha members add` names this member"),
    flag("heartbeat-ms", "MS", "the leader's heartbeat interval (default 250)"),
    flag("election-timeout-ms", "MS", "a follower that hears no leader this long (a random 1-2x) stands for election (default 1000)"),
];

/// Every command, the all-in-one first.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "",
        usage: "[--data DIR] [--http ADDR] [--workers N] [--failover] [FLAGS]",
        summary: "everything on this machine: a master, N workers and the HTTP edge (or a failover group with --failover)",
        about: "Runs a master, N workers (default 2) and the HTTP edge in one process, talking over loopback. Data under ./hypha-data, HTTP on localhost:8080 (127.0.0.1 and ::1). With --failover: three members (DIR/member-0..2) that elect a leader, and the edge in front of them — for trying failover; to survive a device's failure run `hypha member` on three devices.",
        flags: &[
            &[
                flag("data", "DIR", "where the data lives (default ./hypha-data)"),
                flag("http", "ADDR", "where the edge answers HTTP (default localhost:8080)"),
                flag("workers", "N", "how many workers (default 2)"),
                flag("failover", "", "run a failover group of three members instead of a master and workers"),
                FSYNC,
                SYNC,
                SYNC_TIMEOUT,
                flag("value-max", "BYTES", "largest value accepted (default 16777216)"),
                flag("cluster-key-file", "PATH", "the cluster key (default: DIR/cluster.key, made at the first start)"),
                flag("cluster", "NAME", "cluster name (default hypha)"),
            ],
            HEARTBEAT,
            EDGE,
            COMPACTION,
        ],
    },
    Command {
        name: "master",
        usage: "master --data DIR --listen ADDR [FLAGS]",
        summary: "takes every write and streams it to the workers",
        about: "Takes every write and streams it to the workers. TCP and UDP on ADDR.",
        flags: &[
            STORE,
            &[
                flag("listen", "ADDR", "where workers and edges reach it (TCP and UDP)"),
                FSYNC,
                SYNC,
                SYNC_TIMEOUT,
                flag("forget-after", "MS", "a worker neither connected nor heard this long leaves the worker list, and compaction may drop deletes it has not applied (default 3600000 = 1 h)"),
            ],
            PORT,
            NODE,
            HEARTBEAT,
            COMPACTION,
        ],
    },
    Command {
        name: "worker",
        usage: "worker --data DIR --master ADDR --listen ADDR [FLAGS]",
        summary: "follows the master and answers reads",
        about: "Follows the master (a snapshot first when it is new or too far behind, then the log) and answers reads.",
        flags: &[
            STORE,
            &[
                flag("master", "ADDR", "the master's --listen address"),
                flag("listen", "ADDR", "where edges reach it (TCP and UDP)"),
                flag("fsync", "MODE", "as for master (default 200ms)"),
                flag("accept-new-history", "", "if the master holds another history (it was replaced or came back empty), replace local data with its snapshot instead of refusing to follow it"),
            ],
            PORT,
            NODE,
            HEARTBEAT,
            COMPACTION,
        ],
    },
    Command {
        name: "member",
        usage: "member --data DIR --listen ADDR (--peers ADDR,... | --join ADDR,...) [FLAGS]",
        summary: "a data member of a failover group",
        about: "A data member of a failover group: members elect a leader among themselves (Raft's rules with pre-vote), the leader takes writes and acknowledges one once a majority of members hold it durably; when it dies another member leads within a heartbeat interval (process crash) or 1-2 election timeouts (silent failure). A new device starts with --join and an empty --data, waits until `hypha members add` names it, copies the data, then votes. Defaults suit Mycelium; etcd's timing is 100 and 1000.",
        flags: &[STORE, ELECTION, &[SYNC_TIMEOUT], PORT, NODE, COMPACTION],
    },
    Command {
        name: "witness",
        usage: "witness --data DIR --listen ADDR (--peers ADDR,... | --join ADDR,...) [FLAGS]",
        summary: "votes in a failover group and keeps no data",
        about: "A witness of a failover group: it votes and counts toward the majority that acknowledges a write, keeps only its term, vote and the newest log id a leader told it (a few hundred bytes), and never leads or serves data. Two data members and a witness survive any one failure; if the leader dies while the other data member is behind what the witness vouched for, writes stall until the leader is back (nothing acknowledged is lost). List it in --peers like any member.",
        flags: &[
            &[flag("data", "DIR", "where its term, vote and member list live")],
            ELECTION,
            &[
                flag("allow", "CIDR,...", "only these peers may connect"),
                flag("max-connections", "N", "connections open at once (default 256)"),
                flag("handshake-timeout-ms", "MS", "close a connection that has not proved the cluster key this long (default 5000)"),
            ],
            NODE,
        ],
    },
    Command {
        name: "members",
        usage: "members [list | add ADDR | remove ADDR] --member ADDR,... [FLAGS]",
        summary: "shows or changes a failover group's member list",
        about: "Shows or changes a failover group's member list through any of the members given (a change goes to whichever leads), one member at a time: `remove` a dead device, then start its replacement with --join and `add` it; add answers once the new member caught up and votes (it waits up to 120 s; running it again goes on waiting). The leader is not removed: stop it, another member takes over, then remove it. A removed member never comes back on its old data. Also through the edge: GET /admin/members, POST /admin/members?add=ADDR|remove=ADDR (token-protected like writes). Exit codes: 0 done, 2 usage error or a change that makes no sense, 3 no member answered or it refused.",
        flags: &[
            &[flag("member", "ADDR,...", "members to ask (any of them)")],
            NODE,
        ],
    },
    Command {
        name: "http",
        usage: "http --listen ADDR (--master ADDR [--workers ADDR,...] | --members ADDR,...) [FLAGS]",
        summary: "the HTTP edge: curl's way in, and the status page",
        about: "The HTTP edge: writes to the master, reads to workers (learned from the master too); the status page at /. With --members, the edge of a failover group: writes go to whichever member leads (found again after a failover), reads to any member; ?consistency=linearizable GETs are confirmed by the leader with a majority. Writes carry a request id: one in flight when its leader died is sent again to the next leader, which answers with the first attempt's outcome if it was applied. POST /admin/compact compacts every node now.",
        flags: &[
            &[
                flag("listen", "ADDR", "where it answers HTTP (localhost:PORT: both loopbacks)"),
                flag("master", "ADDR", "the master's --listen address (fixed roles)"),
                flag("workers", "ADDR,...", "workers to read from (more are learned from the master)"),
                flag("members", "ADDR,...", "a failover group's members, instead of --master and --workers"),
                flag("value-max", "BYTES", "largest value accepted (default 16777216)"),
            ],
            EDGE,
            NODE,
            HEARTBEAT,
        ],
    },
    Command {
        name: "get",
        usage: "get KEY [--edge URL]",
        summary: "prints a key's value (raw bytes)",
        about: "Prints the value of KEY as stored, byte for byte, read from a worker with read-your-writes.",
        flags: &[CLIENT],
    },
    Command {
        name: "put",
        usage: "put KEY [VALUE | --file PATH | -] [--ttl 30s] [--if-match SEQ | --if-absent] [--edge URL]",
        summary: "stores a value (from the argument, a file or stdin) and prints its seq",
        about: "Stores VALUE under KEY (without VALUE, or with -, the value is standard input, binary-safe) and prints the write's seq, which is the key's version: give it to --if-match to update only if nobody wrote in between.",
        flags: &[
            &[
                flag("file", "PATH", "the value is this file's content"),
                flag("ttl", "DURATION", "the key vanishes this long after the write (30s, 10m, 2h)"),
                flag("if-match", "SEQ", "write only if the key's seq is SEQ (else exit 4)"),
                flag("if-absent", "", "write only if the key does not exist (else exit 4)"),
            ],
            CLIENT,
        ],
    },
    Command {
        name: "del",
        usage: "del KEY [--if-match SEQ] [--edge URL]",
        summary: "deletes a key and prints the delete's seq",
        about: "Deletes KEY and prints the delete's seq; exit 1 when there was no such key.",
        flags: &[
            &[flag("if-match", "SEQ", "delete only if the key's seq is SEQ (else exit 4)")],
            CLIENT,
        ],
    },
    Command {
        name: "ls",
        usage: "ls [PREFIX] [--edge URL]",
        summary: "lists the keys under a prefix, one per line",
        about: "Prints every key that starts with PREFIX (all keys without it), one per line, as raw bytes, in the order the keys were first written, reading page after page.",
        flags: &[CLIENT],
    },
    Command {
        name: "watch",
        usage: "watch PREFIX [--from CURSOR] [--no-values] [--edge URL]",
        summary: "prints every change under a prefix as it happens",
        about: "Prints every change under PREFIX (puts, deletes, expiries, refreshes; the writes of one batch together) as one JSON line each, until interrupted. Each line's seq is a cursor: --from SEQ resumes after it. Exit 1 when the cursor is older than what compaction kept (the message names the earliest cursor).",
        flags: &[
            &[
                flag("from", "CURSOR", "resume after this cursor (an event's id) instead of starting now"),
                flag("no-values", "", "leave the values out of the events"),
            ],
            CLIENT,
        ],
    },
    Command {
        name: "status",
        usage: "status [--edge URL]",
        summary: "the cluster's nodes as a table",
        about: "Prints what the edge's /status says, a line per node: role, term, health, seq and lag (and why the master refuses writes, if it does).",
        flags: &[CLIENT],
    },
    Command {
        name: "backup",
        usage: "backup FILE [--edge URL]",
        summary: "writes a consistent copy of every key to FILE",
        about: "Copies every key and value as they were at one seq (writes go on meanwhile) from one node through the edge into FILE (newline-delimited JSON with a digest; written to FILE.partial and renamed when whole; an existing FILE is not overwritten). Needs the token like writes. If the node compacts during the copy, the copy starts again (up to 5 times).",
        flags: &[CLIENT],
    },
    Command {
        name: "restore",
        usage: "restore FILE [--edge URL]",
        summary: "loads a backup into a cluster without keys and checks its digest",
        about: "Checks FILE whole (every record, its digest), refuses a cluster that already holds keys (exit 4), writes every key in batches (keys whose time to live ran out since the backup are left out; the others keep their deadline), then compares the master's digest with the one expected.",
        flags: &[CLIENT],
    },
    Command {
        name: "compact",
        usage: "compact (--data DIR [--history N] | [--edge URL])",
        summary: "compacts a stopped node's data offline, or every node online",
        about: "With --data: compacts a stopped node's data (the DIR given to master or worker) offline and prints what it reclaimed; deletes are dropped, and a worker that had not applied them takes a snapshot when it reconnects. Without --data: asks the edge to compact the master and every worker now (POST /admin/compact), while reads and writes go on.",
        flags: &[
            &[
                flag("data", "DIR", "the stopped node's --data"),
                flag("history", "N", "versions of each key to keep (default 1)"),
            ],
            CLIENT,
        ],
    },
    Command {
        name: "keygen",
        usage: "keygen PATH",
        summary: "writes a new cluster key",
        about: "Writes a new random cluster key to PATH (mode 0600; never overwrites). Copy it to every node and give it as --cluster-key-file PATH.",
        flags: &[],
    },
    Command {
        name: "help",
        usage: "help [COMMAND]",
        summary: "this text, or one command's",
        about: "Prints what a command does and every flag it takes; the same as `hypha COMMAND --help`.",
        flags: &[],
    },
    Command {
        name: "completions",
        usage: "completions bash",
        summary: "a bash completion script (deploy/ installs it)",
        about: "Prints a bash completion script for every command and flag: `hypha completions bash > /usr/share/bash-completion/completions/hypha`.",
        flags: &[],
    },
    Command {
        name: "man",
        usage: "man",
        summary: "the man page, in roff (deploy/ installs it)",
        about: "Prints hypha(1) in roff: `hypha man > /usr/share/man/man1/hypha.1`.",
        flags: &[],
    },
];
