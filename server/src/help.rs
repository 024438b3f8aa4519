//! The text of `hypha --help`: every command and flag, with its default.

/// What `hypha --help` prints.
pub const HELP: &str = "\
hypha — a replicated key-value store for edge devices

USAGE:
    hypha [--workers N] [--data DIR] [--http ADDR] [--fsync MODE] [--sync MODE]
        Runs everything on this machine: a master, N workers (default 2) and the
        HTTP edge, talking over loopback. Data under ./hypha-data, HTTP on
        localhost:8080 (127.0.0.1 and ::1).
    hypha --failover [--data DIR] [--http ADDR]
        Runs a failover group on this machine: three members (DIR/member-0..2,
        on loopback ports chosen at each start) that elect a leader, and the
        HTTP edge in front of them. For trying failover; for surviving a
        device's failure run `hypha member` on three devices.
    hypha master --data DIR --listen ADDR [--fsync always|never|MSms] [--allow CIDR,...]
                 [--sync async|N] [--sync-timeout-ms MS]
        Takes every write and streams it to the workers. TCP and UDP on ADDR.
    hypha worker --data DIR --master ADDR --listen ADDR [--allow CIDR,...]
                 [--accept-new-history] [--fsync MODE]
        Follows the master and answers reads.
    hypha member --data DIR --listen ADDR --peers ADDR,ADDR,... [--heartbeat-ms MS]
                 [--election-timeout-ms MS] [--sync-timeout-ms MS]
        A data member of a failover group: members elect a leader among themselves
        (Raft's rules with pre-vote), the leader takes writes and acknowledges one
        once a majority of members hold it durably; when it dies another member
        leads within a heartbeat interval (process crash) or 1-2 election timeouts
        (silent failure). --peers lists every member, this one's --listen
        included, the same list in the same order on every member (3 members
        survive one failure, 5 two). --heartbeat-ms (default 250) and
        --election-timeout-ms (default 1000; each election waits a random
        1-2x) suit Mycelium; etcd's timing is 100 and 1000. TCP and UDP on ADDR.
    hypha member --data DIR --listen ADDR --join ADDR,ADDR,...
        A new member of a running group (a replacement device): it asks the
        members at --join for the group's member list and waits, saying so,
        until `hypha members add` names its --listen address; then it copies
        the data (snapshot, then log) and votes once it has caught up. Its
        --data starts empty. After that it restarts from its own data.
    hypha members [list | add ADDR | remove ADDR] --member ADDR,ADDR,...
        Shows or changes a failover group's member list through any of the
        members given (a change goes to whichever leads), one member at a time:
        `remove` a dead device, then start its replacement with --join and `add`
        it; add answers once the new member caught up and votes (it waits up to
        120 s; running it again goes on waiting). The leader is not removed:
        stop it, another member takes over, then remove it. A removed member
        never comes back on its old data. Exit codes: 0 done, 2 usage error or
        a change that makes no sense, 3 no member answered or it refused.
        Also through the edge: GET /admin/members, POST
        /admin/members?add=ADDR|remove=ADDR (token-protected like writes).
    hypha witness --data DIR --listen ADDR --peers ADDR,ADDR,... (or --join ADDR,...)
        A witness of a failover group: it votes and counts toward the majority
        that acknowledges a write, keeps only its term, vote and the newest log
        id a leader told it (a few hundred bytes), and never leads or serves
        data. Two data members and a witness survive any one failure; if the
        leader dies while the other data member is behind what the witness
        vouched for, writes stall until the leader is back (nothing
        acknowledged is lost). List it in --peers like any member.
    hypha http --listen ADDR --members ADDR,ADDR,... [--token-file PATH]
        The HTTP edge of a failover group: writes go to whichever member leads
        (found, and found again after a failover, by asking the members), reads
        to any member; ?consistency=linearizable GETs are confirmed by the
        leader with a majority. Writes carry a request id: one in flight when
        its leader died is sent again to the next leader, which answers with
        the first attempt's outcome if it was applied (never applying it
        twice). Only a write whose outcome cannot be told is a 503 that says
        so (read the key before writing it again).
    hypha http --listen ADDR --master ADDR [--workers ADDR,ADDR,...] [--token-file PATH]
               [--token-reads]
        The HTTP edge: writes to the master, reads to workers (learned from the
        master too). --token-file PATH (or HYPHA_TOKEN_FILE; --token T also works
        but shows in ps): writes need the header Authorization: Bearer <token>
        (--token-reads: reads, /status and /metrics too). --lag-max N: skip
        workers N records behind. --body-budget-mb MB: request and response
        bodies held at once (default 64; beyond it 503 + Retry-After).
        --connections-per-addr N: connections one client address may hold
        (default 64). --http-connections N: connections open at once (default
        1024; each open watch holds one; the open-file limit is raised to fit
        when the hard limit allows). --body-total-timeout-ms MS: the longest a whole request
        body may take (default 120000). --json-values-max N: most values in one
        JSON body of the curl dialects, counted before parsing (default 16384).
        POST /admin/compact compacts the master and every worker now.
    hypha keygen PATH
        Writes a new random cluster key to PATH (mode 0600; never overwrites).
        Copy it to every node and give it as --cluster-key-file PATH.
    hypha compact --data DIR [--history N]
        Compacts a stopped node's data (the DIR given to master or worker)
        offline and prints what it reclaimed. Deletes are dropped: a worker
        that had not applied them takes a snapshot when it reconnects.

COMMON FLAGS:
    --cluster-key-file PATH    the cluster key (from `hypha keygen`): every connection
                               between nodes proves it and every frame and heartbeat
                               carries a MAC. Required when a node listens on, or
                               talks to, a non-loopback address. The file may hold
                               two keys, current then next (rotation); SIGHUP reads
                               it again. Env: HYPHA_CLUSTER_KEY_FILE.
    --insecure-no-auth         run without a key on a non-loopback address (logged;
                               anyone who reaches the port can read and write)
    --cluster NAME             cluster name every node must share (default: hypha)
    --heartbeat-ms MS          UDP heartbeat interval (default 1000)
    --heartbeat-timeout-ms MS  a peer silent this long is down (default 3000)

FLAGS OF master:
    --fsync always|never|MSms  when writes reach the disk (default always: a write
                               is acknowledged after fdatasync; concurrent writes
                               share one). MSms: every MS milliseconds.
    --sync async|N             acknowledge after the local commit (async, default)
                               or after N workers applied the write
    --sync-timeout-ms MS       how long --sync N waits before failing (default 5000)
    --allow CIDR,...           only these peers may connect, e.g. 400::/7,127.0.0.1
                               (a second layer: the cluster key is the first)
    --value-max BYTES          largest value accepted (default 16777216)
    --max-connections N        connections open at once on the node port (default
                               256; at most 32 of them in their handshake, each for
                               at most 5 s). Also for worker.
    --idle-timeout-ms MS       close a request connection silent this long (default
                               300000). Also for worker.
    --handshake-timeout-ms MS  close a connection that has not proved the cluster key
                               this long after it was accepted (default 5000; at most
                               4 handshakes per address or /64 at once). Also for
                               worker.
    --forget-after MS          a worker neither connected nor heard this long leaves
                               the worker list, and compaction may drop deletes it
                               has not applied (default 3600000 = 1 h)

COMPACTION (master and worker; data files are append-only, so overwritten and
deleted records take space until compaction copies the live ones into new files
and removes the old, while reads and writes go on):
    --history N                versions of each key compaction keeps (default 1:
                               the newest; ?history= reaches back to the last
                               compaction)
    --compact-garbage PERCENT  compact when garbage is at least PERCENT of the
                               data files (default 50) ...
    --compact-min-mb MB        ... and at least MB megabytes (default 64)

FLAGS OF worker:
    --accept-new-history       if the master holds another history (it was replaced
                               or came back empty), replace local data with its
                               snapshot instead of refusing to follow it
    --fsync ...                as for master (default 200ms)

Every flag can also come from the environment: --sync-timeout-ms is
HYPHA_SYNC_TIMEOUT_MS. Addresses are HOST:PORT, IPv6 as [ADDR]:PORT
(e.g. a Mycelium address [4a0:1234::1]:7000). Logs: RUST_LOG=info|debug.
";
