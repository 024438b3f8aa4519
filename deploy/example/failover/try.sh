#!/usr/bin/env bash
# Runs the failover example of this folder for real: members A, B and C and
# the edge D, each in a network namespace holding its Mycelium address from
# the .env files, on one bridge (MTU 1400, like the overlay). Each process
# reads its .env file exactly as systemd's EnvironmentFile= would hand it
# over, then the script checks:
#   1. a PUT with the token through the edge is acknowledged (201) once the
#      members elected a leader, and a linearizable GET answers it;
#   2. /status names one leader among three members;
#   3. SIGKILL of the leader: the next PUT is acknowledged by a new leader;
#   4. the killed member restarts and follows; then the new leader's link
#      goes down without a FIN (a power cut as the others see it): the next
#      PUT is acknowledged by another leader;
#   5. the link comes back: the cut-off member follows again, and all three
#      are healthy at one seq.
#
#   sudo bash deploy/example/failover/try.sh [PATH-TO-hypha]   (default target/deploy/hypha)
#
# Needs root, iproute2, curl and python3; leaves nothing behind.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
HYPHA=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/deploy/hypha}
[ -x "$HYPHA" ] || { echo "try.sh: no hypha binary at $HYPHA (cargo build --profile deploy -p hypha-server)" >&2; exit 2; }

TAG=hyfo$$
WORK=$(mktemp -d /tmp/hypha-failover-XXXXXX)
declare -A PID
cleanup() {
  for pid in "${PID[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${PID[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in sw A B C D; do ip netns del "$TAG$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

env_value() { sed -n "s/^$2=//p" "$HERE/$1.env"; }
host_of() { sed -E 's/^\[([^]]+)\]:[0-9]+$/\1/'; }
declare -A ADDR FILE PORT
FILE[A]=member-a FILE[B]=member-b FILE[C]=member-c FILE[D]=http
for n in A B C D; do ADDR[$n]=$(env_value "${FILE[$n]}" HYPHA_LISTEN | host_of); done
"$HYPHA" keygen "$WORK/cluster.key" >/dev/null
head -c 18 /dev/urandom | base64 >"$WORK/token"
TOKEN=$(cat "$WORK/token")
EDGE=$(env_value http HYPHA_LISTEN)

ip netns add "${TAG}sw"
ip -n "${TAG}sw" link add br0 type bridge
ip -n "${TAG}sw" link set br0 up
i=0
for n in A B C D; do
  ns=$TAG$n
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" link add v0 mtu 1400 type veth peer name "p$i" mtu 1400 netns "${TAG}sw"
  ip -n "${TAG}sw" link set "p$i" master br0 up
  PORT[$n]=p$i
  ip -n "$ns" addr add "${ADDR[$n]}/7" dev v0 nodad
  ip -n "$ns" link set v0 up
  i=$((i + 1))
done

# start NODE ROLE: hypha ROLE in NODE's namespace with only its .env file's
# variables (plus the credentials the unit would hand over).
start() {
  local n=$1 role=$2
  ( set -a; . "$HERE/${FILE[$n]}.env"; set +a
    exec ip netns exec "$TAG$n" env HYPHA_DATA="$WORK/$n" \
      HYPHA_CLUSTER_KEY_FILE="$WORK/cluster.key" HYPHA_TOKEN_FILE="$WORK/token" \
      "$HYPHA" "$role" ) >>"$WORK/$n.log" 2>&1 &
  PID[$n]=$!
}

in_d() { ip netns exec "${TAG}D" "$@"; }
put() { in_d curl -s -o /dev/null -w '%{http_code}' -m 10 -X PUT -H "Authorization: Bearer $TOKEN" --data-binary "$2" "http://$EDGE/kv/$1"; }
get() { in_d curl -s -m 10 "http://$EDGE/kv/$1?consistency=linearizable"; }
# The letter of the member /status names as leader ("" if none or several).
leader() {
  in_d curl -s -m 5 "http://$EDGE/status" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
leads = [m["addr"] for m in doc.get("members", []) if m["role"] == "leader"]
print(leads[0] if len(leads) == 1 else "")' | host_of | while read -r a; do
    for n in A B C; do if [ "${ADDR[$n]}" = "$a" ]; then echo "$n"; fi; done
  done
}
fail() { echo "FAIL: $*" >&2; [ -n "${KEEP:-}" ] && cp -r "$WORK" "$KEEP"; for n in A B C D; do echo "--- $n" >&2; tail -20 "$WORK/$n.log" >&2; done; exit 1; }
ms() { date +%s%3N; }
# put_within KEY VALUE SECONDS: the first 201, retrying; prints the ms taken.
put_within() {
  local t0 status; t0=$(ms)
  while :; do
    status=$(put "$1" "$2") || true
    [ "$status" = 201 ] && { echo $(( $(ms) - t0 )); return 0; }
    if [ $(( $(ms) - t0 )) -gt $(( $3 * 1000 )) ]; then return 1; fi
    sleep 0.05
  done
}

for n in A B C; do start $n member; done
start D http
ms_first=$(put_within greeting hello 20) || fail "no PUT was acknowledged within 20 s"
[ "$(get greeting)" = hello ] || fail "GET greeting: $(get greeting)"
echo "ok 1: PUT with the token through the edge: 201 after ${ms_first} ms (first election); linearizable GET: hello"

L=""; for _ in $(seq 1 50); do L=$(leader); [ -n "$L" ] && break; sleep 0.1; done
[ -n "$L" ] || fail "/status names no single leader"
echo "ok 2: /status names member $L (${ADDR[$L]}) the leader of three"

kill -9 "${PID[$L]}"; wait "${PID[$L]}" 2>/dev/null || true
# The process group's ip-netns-exec wrapper execs hypha, so this was hypha.
took=$(put_within after-kill one 10) || fail "no PUT acknowledged within 10 s of the leader's SIGKILL"
[ "$(get after-kill)" = one ] || fail "GET after-kill"
L2=""; for _ in $(seq 1 50); do L2=$(leader); [ -n "$L2" ] && [ "$L2" != "$L" ] && break; sleep 0.1; done
[ -n "$L2" ] && [ "$L2" != "$L" ] || fail "no new leader after killing $L"
echo "ok 3: leader $L killed (SIGKILL): the next PUT was acknowledged after ${took} ms; member $L2 leads"

start "$L" member
for _ in $(seq 1 100); do grep -q "follows member" "$WORK/$L.log" && break; sleep 0.1; done
grep -q "follows member" "$WORK/$L.log" || fail "member $L did not rejoin as a follower"
# Off the bridge: both ends keep carrier and addresses (an interface set
# down would drop its IPv6 addresses), frames just go nowhere.
ip -n "${TAG}sw" link set "${PORT[$L2]}" nomaster
took=$(put_within after-cut two 15) || fail "no PUT acknowledged within 15 s of cutting leader $L2's link"
[ "$(get after-cut)" = two ] || fail "GET after-cut"
echo "ok 4: member $L rejoined; leader $L2's link cut (no FIN): the next PUT was acknowledged after ${took} ms"

before=$(wc -l <"$WORK/$L2.log")
ip -n "${TAG}sw" link set "${PORT[$L2]}" master br0
for _ in $(seq 1 150); do
  tail -n +"$before" "$WORK/$L2.log" | grep -q "follows member" && break
  sleep 0.1
done
tail -n +"$before" "$WORK/$L2.log" | grep -q "follows member" || fail "member $L2 did not follow within 15 s of its link coming back"
for _ in $(seq 1 150); do
  seqs=$(in_d curl -s -m 5 "http://$EDGE/status" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
ms = doc.get("members", [])
print(" ".join(str(m.get("applied_seq")) + ("" if m.get("healthy") else "!") for m in ms))')
  # Three healthy members at one seq.
  [ "$(echo "$seqs" | tr ' ' '\n' | sort -u | wc -l)" = 1 ] && ! echo "$seqs" | grep -q '!' && [ "$(echo "$seqs" | wc -w)" = 3 ] && break
  sleep 0.1
done
[ "$(echo "$seqs" | tr ' ' '\n' | sort -u | wc -l)" = 1 ] || fail "members did not converge: $seqs; /status: $(in_d curl -s -m 5 "http://$EDGE/status")"

echo "ok 5: link back: member $L2 follows again; all three members at seq ${seqs%% *}"
echo "5 passed, 0 failed"
