#!/bin/sh
# tests/cluster/clients.sh: more clients than a node keeps slots and
# addresses for (1,024 each). 1,300 clients, each its own session and
# socket, append twice through one epoll thread: every append is
# acknowledged, the leader evicted the quietest slots to make room, and the
# log holds exactly the appends (plus a leader's no-op at most).
. tests/cluster/lib.sh
# one socket per client: lift the usual soft limit of 1,024 descriptors
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 1400 ] || ulimit -n 4096 2>/dev/null ||
    ulimit -n "$(ulimit -Hn)" 2>/dev/null

make_cluster 3 || { fail init "trp-node init failed"; exit 0; }
for i in 1 2 3; do start_node $i; done
leader=$(wait_leader)
[ -n "$leader" ] && pass clients_leader_elected || { fail clients_leader_elected "no leader"; exit 0; }
out=$("$T/cluster_load" "$C" conc 1300 2600 2>&1)
case "$out" in
*"n 2600 "*"failed 0"*) pass clients_1300_each_acknowledged ;;
*) fail clients_1300_each_acknowledged "$out" ;;
esac
ev=$(status_of "$leader" | jq -r '.wire.clients_evicted')
[ "${ev:-0}" -ge 276 ] 2>/dev/null && pass clients_past_the_slots_evicted || fail clients_past_the_slots_evicted "evicted '$ev'"
n=$("$BIN/trp-tail" -c "$C" --linearizable --from 0 --timeout 10 | wc -l)
[ "$n" -ge 2600 ] && [ "$n" -le 2601 ] && pass clients_log_holds_each_once || fail clients_log_holds_each_once "$n entries"
exit 0
