#!/usr/bin/env bash
# Runs the three-node example of this folder for real: nodes A (master), B
# (worker) and C (edge) each in a network namespace holding its Mycelium
# address from the .env files, plus a stranger D (5ff:1:2:3::1) outside every
# allowlist, all on one bridge (MTU 1400, like the overlay). Each role reads
# its .env file exactly as systemd's EnvironmentFile= would hand it over, then
# the script checks:
#   1. a PUT with the token through the edge is acknowledged (201);
#   2. a GET through the edge answers the value;
#   3. a PUT without the token is refused (401);
#   4. the stranger's connection to the master is refused and logged;
#      a node inside the allowlist but without the cluster key is refused too;
#   5. with the master stopped, the GET still answers the value: the worker
#      (node B) applied the write and serves the edge across the allowlist.
#
#   sudo bash deploy/example/try.sh [PATH-TO-hypha]   (default target/deploy/hypha)
#
# Needs root and iproute2; leaves nothing behind (namespaces and temp dir are
# removed on exit).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
HYPHA=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/deploy/hypha}
[ -x "$HYPHA" ] || { echo "try.sh: no hypha binary at $HYPHA (cargo build --profile deploy -p hypha-server)" >&2; exit 2; }

TAG=hyex$$
WORK=$(mktemp -d /tmp/hypha-example-XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in sw A B C D; do ip netns del "$TAG$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# The overlay address of a node, read from its .env file (the address part of
# HYPHA_LISTEN), so this script tests the files as written.
env_value() { sed -n "s/^$2=//p" "$HERE/$1.env"; }
host_of() { sed -E 's/^\[([^]]+)\]:[0-9]+$/\1/'; }
ADDR_A=$(env_value master HYPHA_LISTEN | host_of)
ADDR_B=$(env_value worker HYPHA_LISTEN | host_of)
ADDR_C=$(env_value http HYPHA_LISTEN | host_of)
ADDR_D=5ff:1:2:3::1
# The secrets systemd would hand over as credentials (deploy/*.service).
"$HYPHA" keygen "$WORK/cluster.key" >/dev/null
head -c 18 /dev/urandom | base64 >"$WORK/token"
TOKEN=$(cat "$WORK/token")
EDGE=$(env_value http HYPHA_LISTEN)
MASTER=$(env_value master HYPHA_LISTEN)

ip netns add "${TAG}sw"
ip -n "${TAG}sw" link add br0 type bridge
ip -n "${TAG}sw" link set br0 up
i=0
for node in A B C D; do
  eval "addr=\$ADDR_$node"
  ns=$TAG$node
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" link add "v$i" mtu 1400 type veth peer name "p$i" mtu 1400 netns "${TAG}sw"
  ip -n "${TAG}sw" link set "p$i" master br0 up
  # /7: the whole overlay is on-link, as Mycelium's tun route makes it.
  ip -n "$ns" addr add "$addr/7" dev "v$i" nodad
  ip -n "$ns" link set "v$i" up
  i=$((i + 1))
done

# run NODE ROLE ENVFILE ARGS...: starts hypha ROLE in NODE's namespace with
# only the variables of ENVFILE (plus PATH), as EnvironmentFile= would.
run() {
  local node=$1 role=$2 file=$3; shift 3
  ( set -a; . "$HERE/$file.env"; set +a
    exec ip netns exec "$TAG$node" env HYPHA_DATA="$WORK/$node" \
      HYPHA_CLUSTER_KEY_FILE="${KEY_FILE:-$WORK/cluster.key}" HYPHA_TOKEN_FILE="$WORK/token" \
      "$HYPHA" "$role" "$@" ) \
    >"$WORK/$node.log" 2>&1 &
  PIDS+=("$!")
}

wait_log() {
  local i
  for i in $(seq 1 100); do
    grep -q -E "$2" "$WORK/$1.log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "FAIL: node $1 did not log /$2/ within 10 s; its log:" >&2
  cat "$WORK/$1.log" >&2
  exit 1
}

run A master master
wait_log A 'master .* on '
run B worker worker
wait_log B 'snapshot up to seq .* installed'
run C http http
wait_log C 'listening on'
sleep 1.5 # one worker-list refresh from the master (HYPHA_HEARTBEAT_MS, 1 s)

in_c() { ip netns exec "${TAG}C" "$@"; }
url="http://$EDGE/kv/greeting"

status=$(in_c curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" --data-binary hello "$url")
[ "$status" = 201 ] || { echo "FAIL: PUT with the token: $status, expected 201" >&2; exit 1; }
echo "ok 1: PUT with the token through the edge: 201"

body=$(in_c curl -s "$url")
[ "$body" = hello ] || { echo "FAIL: GET: $body" >&2; exit 1; }
echo "ok 2: GET through the edge: hello"

status=$(in_c curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary nope "$url")
[ "$status" = 401 ] || { echo "FAIL: PUT without the token: $status, expected 401" >&2; exit 1; }
echo "ok 3: PUT without the token: 401"

ip netns exec "${TAG}D" bash -c "exec 3<>/dev/tcp/$ADDR_A/${MASTER##*:}; sleep 0.5" 2>/dev/null || true
wait_log A "refused connection from \[$ADDR_D\]"
echo "ok 4: the stranger $ADDR_D was refused by the master: $(grep -o 'refused connection from [^ ]*' "$WORK/A.log" | head -1)"
# A second worker on node C (inside the allowlist) holding another key.
"$HYPHA" keygen "$WORK/other.key" >/dev/null
KEY_FILE="$WORK/other.key" run C worker worker --listen "[$ADDR_C]:7009"
wait_log A "refused \[$ADDR_C\].*another cluster key"
echo "ok 4b: a worker on an allowed address without the cluster key was refused"
kill "${PIDS[0]}"
wait "${PIDS[0]}" 2>/dev/null || true
body=$(in_c curl -s "$url")
[ "$body" = hello ] || { echo "FAIL: GET with the master stopped: $body; worker log:" >&2; cat "$WORK/B.log" >&2; exit 1; }
echo "ok 5: master stopped; GET through the edge still answers hello (from the worker)"
echo "6 passed, 0 failed"
