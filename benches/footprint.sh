#!/usr/bin/env bash
# Footprint of hypha beside redis-server and etcd: binary size, idle memory of
# each role, and memory at N keys (16-byte keys, 100-byte values).
#
#   bash benches/footprint.sh [--keys N] [--etcd-keys N] [--sample S] [--idle-secs S] [--dir DIR] [--hypha PATH]
#
# Builds `cargo build --profile deploy -p hypha-server` (unless --hypha) and
# benches' `footprint_load` (release), both into $CARGO_TARGET_DIR (default
# target/). Every process is started here on 127.0.0.1, measured from
# /proc/PID/status after --idle-secs of quiet, and stopped at the end (also on
# error or Ctrl-C). redis-server and etcd are measured when installed
# (apt-get install redis-server etcd-server etcd-client); otherwise a line says
# they were skipped.
set -euo pipefail

KEYS=1000000
ETCD_KEYS=
SAMPLE=100000
IDLE_SECS=5
# The big worker's address space (a 64 MiB router's worker: issue "32-bit routers").
AS_LIMIT_MIB=512
PARENT=/tmp
HYPHA=
while [ $# -gt 0 ]; do
  case "$1" in
    --keys) KEYS=$2; shift 2 ;;
    --etcd-keys) ETCD_KEYS=$2; shift 2 ;;
    --sample) SAMPLE=$2; shift 2 ;;
    --idle-secs) IDLE_SECS=$2; shift 2 ;;
    --dir) PARENT=$2; shift 2 ;;
    --hypha) HYPHA=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "footprint.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
ETCD_KEYS=${ETCD_KEYS:-$KEYS}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET" in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
export CARGO_TARGET_DIR=$TARGET CARGO_TERM_COLOR=never

if [ -z "$HYPHA" ]; then
  (cd "$ROOT" && cargo build -q --profile deploy -p hypha-server)
  HYPHA=$TARGET/deploy/hypha
fi
(cd "$ROOT/benches" && cargo build -q --release --bin footprint_load)
LOAD=$TARGET/release/footprint_load

WORK=$(mktemp -d "$PARENT/hypha-footprint-XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: runs CMD in the background, its output in $WORK/NAME.log;
# sets PID.
start() {
  local name=$1; shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
}

# stop PID: SIGTERM, waits for it, and forgets it (so cleanup never signals a
# reused pid).
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# wait_log NAME REGEX: waits up to 60 s for a line of NAME's log; prints it.
wait_log() {
  local i
  for i in $(seq 1 600); do
    if grep -m1 -E "$2" "$WORK/$1.log" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "footprint.sh: $1 did not log /$2/ within 60 s; its log:" >&2
  tail -20 "$WORK/$1.log" >&2
  exit 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }

ROWS=()
# measure LABEL STATE PID: one row of the memory table from /proc/PID/status.
measure() {
  local f=/proc/$3/status
  [ -r "$f" ] || { echo "footprint.sh: $1 (pid $3) is not running; see the logs in $WORK" >&2; trap - EXIT; exit 1; }
  local rss anon file hwm thr
  rss=$(awk '/^VmRSS:/ {print $2}' "$f")
  anon=$(awk '/^RssAnon:/ {print $2}' "$f")
  file=$(awk '/^RssFile:/ {print $2}' "$f")
  hwm=$(awk '/^VmHWM:/ {print $2}' "$f")
  thr=$(awk '/^Threads:/ {print $2}' "$f")
  ROWS+=("$(printf '| %-14s | %-44s | %8s | %8s | %8s | %8s | %7s |' "$1" "$2" \
    "$(mib $((rss * 1024)))" "$(mib $((anon * 1024)))" "$(mib $((file * 1024)))" \
    "$(mib $((hwm * 1024)))" "$thr")")
  LAST_RSS=$rss
  LAST_ANON=$anon
}

settle() { sleep "$IDLE_SECS"; }

echo "# hypha footprint"
echo "command: bash benches/footprint.sh --keys $KEYS --etcd-keys $ETCD_KEYS --sample $SAMPLE --idle-secs $IDLE_SECS"
date -u
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, $(uname -sr), $(df -T "$PARENT" | awk 'NR==2 {print $2}') under $PARENT"
echo "hypha: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo '+dirty'), $HYPHA"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# ---------------------------------------------------------------- sizes
SIZES=()
# size_row LABEL PATH: bytes on disk and the shared libraries it loads.
size_row() {
  local b libs
  b=$(stat -Lc %s "$2")
  libs=$(ldd "$2" 2>/dev/null | awk '/=>/ {print $1}' | sed 's/\.so.*//' | paste -sd, - || true)
  SIZES+=("$(printf '| %-32s | %10s | %8s | %-50s |' "$1" "$b" "$(mib "$b")" "${libs:-none (static)}")")
}
HYPHA_BYTES=$(stat -Lc %s "$HYPHA")
size_row "hypha (deploy profile)" "$HYPHA"

# ---------------------------------------------------------------- hypha, idle
start master "$HYPHA" master --data "$WORK/master" --listen 127.0.0.1:0
MASTER_PID=$PID
MASTER_ADDR=$(wait_log master 'master .* on ' | sed -E 's/.* on ([^ ]+) \(tcp\+udp\).*/\1/')
start worker "$HYPHA" worker --data "$WORK/worker" --master "$MASTER_ADDR" --listen 127.0.0.1:0
WORKER_PID=$PID
wait_log worker 'snapshot up to seq .* installed' >/dev/null
WORKER_ADDR=$(wait_log worker 'serving reads on' | sed -E 's/.*serving reads on ([^:]+:[0-9]+).*/\1/')
start edge "$HYPHA" http --listen 127.0.0.1:0 --master "$MASTER_ADDR" --workers "$WORKER_ADDR"
EDGE_PID=$PID
wait_log edge 'learned worker|listening on' >/dev/null
settle
measure "hypha master" "idle, empty, 1 worker following" "$MASTER_PID"; IDLE_MASTER=$LAST_RSS
measure "hypha worker" "idle, empty, following the master" "$WORKER_PID"; IDLE_WORKER=$LAST_RSS
measure "hypha http" "idle, master + 1 worker known" "$EDGE_PID"; IDLE_EDGE=$LAST_RSS
stop "$EDGE_PID"; stop "$WORKER_PID"; stop "$MASTER_PID"

start all "$HYPHA" --data "$WORK/all" --http "127.0.0.1:$(free_port)"
ALL_PID=$PID
wait_log all 'hypha: master' >/dev/null
settle
measure "hypha (all)" "idle, all-in-one: master + 2 workers + http" "$ALL_PID"
stop "$ALL_PID"

# ---------------------------------------------------------------- hypha, N keys
"$LOAD" hypha --dir "$WORK/big" --keys "$KEYS" 2>&1 | sed 's/^/loader: /'
start big "$HYPHA" master --data "$WORK/big" --listen 127.0.0.1:0
BIG_PID=$PID
BIG_ADDR=$(wait_log big 'master .* on ' | sed -E 's/.* on ([^ ]+) \(tcp\+udp\).*/\1/')
settle
measure "hypha master" "$KEYS keys, idle after start" "$BIG_PID"; BIG_ANON=$LAST_ANON
start bigedge "$HYPHA" http --listen 127.0.0.1:0 --master "$BIG_ADDR"
BIGEDGE_PID=$PID
EDGE_HTTP=$(wait_log bigedge 'listening on' | sed -E 's|.*http://([^ ]+).*|\1|')
"$LOAD" read --http "$EDGE_HTTP" --keys "$KEYS" --sample "$SAMPLE" 2>&1 | sed 's/^/reader: /'
settle
measure "hypha master" "$KEYS keys, after $SAMPLE GETs via http" "$BIG_PID"; BIG_ANON_READ=$LAST_ANON
measure "hypha http" "after $SAMPLE GETs (no worker: to master)" "$BIGEDGE_PID"
stop "$BIGEDGE_PID"
# The worker runs as on a 64 MiB router: its address space limited to
# AS_LIMIT_MIB (prlimit execs it, so PID is the worker's).
start bigworker prlimit --as=$((AS_LIMIT_MIB << 20)) "$HYPHA" worker --data "$WORK/bigworker" --master "$BIG_ADDR" --listen 127.0.0.1:0
BIGWORKER_PID=$PID
wait_log bigworker 'snapshot up to seq .* installed' | sed 's/^/worker: /'
BIGWORKER_ADDR=$(wait_log bigworker 'serving reads on' | sed -E 's/.*serving reads on ([^:]+:[0-9]+).*/\1/')
settle
measure "hypha worker" "$KEYS keys, idle after its snapshot" "$BIGWORKER_PID"
measure "hypha master" "$KEYS keys, after sending that snapshot" "$BIG_PID"; BIG_ANON_SNAP=$LAST_ANON
start bigedge2 "$HYPHA" http --listen 127.0.0.1:0 --master "$BIG_ADDR" --workers "$BIGWORKER_ADDR"
BIGEDGE2_PID=$PID
EDGE2_HTTP=$(wait_log bigedge2 'listening on' | sed -E 's|.*http://([^ ]+).*|\1|')
"$LOAD" write --http "$EDGE2_HTTP" --keys "$KEYS" --count "$SAMPLE" 2>&1 | sed 's/^/writer: /' &
WRITER=$!
"$LOAD" read --http "$EDGE2_HTTP" --keys "$KEYS" --sample "$SAMPLE" 2>&1 | sed 's/^/reader: /'
wait "$WRITER"
settle
measure "hypha worker" "$KEYS keys, after $SAMPLE GETs while following $SAMPLE PUTs, RLIMIT_AS $AS_LIMIT_MIB MiB" "$BIGWORKER_PID"
ROUTER_ANON=$LAST_ANON
ROUTER_VMPEAK=$(awk '/^VmPeak:/ {print $2}' "/proc/$BIGWORKER_PID/status")
ROUTER_VMSIZE=$(awk '/^VmSize:/ {print $2}' "/proc/$BIGWORKER_PID/status")
echo "worker under RLIMIT_AS $AS_LIMIT_MIB MiB: VmSize $(mib $((ROUTER_VMSIZE * 1024))) MiB, VmPeak $(mib $((ROUTER_VMPEAK * 1024))) MiB"
stop "$BIGEDGE2_PID"
stop "$BIGWORKER_PID"; stop "$BIG_PID"
rm -rf "$WORK/big" "$WORK/bigworker"

# ---------------------------------------------------------------- redis
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  REDIS=$(command -v redis-server)
  size_row "$("$REDIS" --version | awk '{print "redis-server " $3}' | sed 's/v=//')" "$REDIS"
  PORT=$(free_port)
  start redis "$REDIS" --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no --dir "$WORK"
  REDIS_PID=$PID
  wait_log redis 'Ready to accept connections' >/dev/null
  settle
  measure "redis-server" "idle, empty" "$REDIS_PID"
  "$LOAD" redis --keys "$KEYS" | redis-cli -p "$PORT" --pipe | tail -1 | sed 's/^/redis-cli: /'
  echo "redis: dbsize $(redis-cli -p "$PORT" dbsize)"
  settle
  measure "redis-server" "$KEYS keys (in RAM, no persistence)" "$REDIS_PID"
  stop "$REDIS_PID"
else
  echo "redis-server or redis-cli not installed: Redis skipped (apt-get install redis-server)"
fi

# ---------------------------------------------------------------- etcd
if command -v etcd >/dev/null; then
  ETCD=$(command -v etcd)
  size_row "etcd $("$ETCD" --version | awk '/etcd Version/ {print $3}')" "$ETCD"
  CPORT=$(free_port); PPORT=$(free_port)
  etcd_start() {
    start "etcd$1" "$ETCD" --name fp --data-dir "$WORK/etcd" \
      --listen-client-urls "http://127.0.0.1:$CPORT" --advertise-client-urls "http://127.0.0.1:$CPORT" \
      --listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT" \
      --initial-cluster "fp=http://127.0.0.1:$PPORT"
    ETCD_PID=$PID
    wait_log "etcd$1" 'ready to serve client requests' >/dev/null
  }
  etcd_start 1
  settle
  measure "etcd" "idle, empty" "$ETCD_PID"
  "$LOAD" etcd --endpoint "127.0.0.1:$CPORT" --keys "$ETCD_KEYS" 2>&1 | sed 's/^/loader: /'
  if command -v etcdctl >/dev/null; then
    echo "etcd: $(ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$CPORT" get "" --prefix --limit 1 -w json \
      | sed -E 's/.*"count":([0-9]+).*/\1/') keys"
  fi
  settle
  measure "etcd" "$ETCD_KEYS keys, right after loading" "$ETCD_PID"
  stop "$ETCD_PID"
  etcd_start 2
  settle
  measure "etcd" "$ETCD_KEYS keys, idle after a restart" "$ETCD_PID"
  stop "$ETCD_PID"
else
  echo "etcd not installed: etcd skipped (apt-get install etcd-server etcd-client)"
fi

# ---------------------------------------------------------------- report
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| binary                           |      bytes |      MiB | shared libraries (not counted in bytes)            |"
echo "| -------------------------------- | ---------: | -------: | -------------------------------------------------- |"
printf '%s\n' "${SIZES[@]}"
echo
echo "MiB from /proc/PID/status after $IDLE_SECS s idle; RssFile is mapped files (the binary, shared libraries, and hypha's mmapped data files: clean page cache the kernel can drop), RssAnon is heap and stacks."
echo
echo "| process        | state                                        |    VmRSS |  RssAnon |  RssFile |    VmHWM | threads |"
echo "| -------------- | -------------------------------------------- | -------: | -------: | -------: | -------: | ------: |"
printf '%s\n' "${ROWS[@]}"
echo
verdict() { if [ "$1" -le "$2" ]; then echo PASS; else echo MISS; fi; }
echo "targets:"
echo "  $(verdict "$HYPHA_BYTES" $((2 * 1048576))) hypha binary $(mib "$HYPHA_BYTES") MiB <= 2 MiB"
for r in "master $IDLE_MASTER" "worker $IDLE_WORKER" "http $IDLE_EDGE"; do
  set -- $r
  echo "  $(verdict "$2" 4096) idle VmRSS of hypha $1 $(mib $(($2 * 1024))) MiB <= 4 MiB"
done
echo "  $(verdict "$ROUTER_ANON" $((16 * 1024))) RssAnon of a worker holding $KEYS keys, serving reads and following, $(mib $((ROUTER_ANON * 1024))) MiB <= 16 MiB"
echo "  $(verdict "$ROUTER_VMPEAK" $((AS_LIMIT_MIB * 1024))) VmPeak of that worker $(mib $((ROUTER_VMPEAK * 1024))) MiB <= $AS_LIMIT_MIB MiB (it ran under RLIMIT_AS $AS_LIMIT_MIB MiB)"
for a in "$BIG_ANON idle" "$BIG_ANON_READ after-reads" "$BIG_ANON_SNAP after-snapshot"; do
  set -- $a
  echo "  $(verdict "$1" $((32 * 1024))) RssAnon of a master holding $KEYS keys ($2) $(mib $(($1 * 1024))) MiB <= 32 MiB"
done
