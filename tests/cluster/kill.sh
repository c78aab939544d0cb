#!/bin/sh
# tests/cluster/kill.sh: a 5-node cluster at max_datagram 1400 (so a 100 KB
# entry travels in fragments): kill -9 the leader and one follower, appends
# go on through the three left; the two come back, catch up, and all five
# replicas verify and agree. One "PASS name" / "FAIL name: reason" each.
. tests/cluster/lib.sh

make_cluster 5 --max-datagram 1400 || { fail init "trp-node init failed"; exit 0; }
for i in 1 2 3 4 5; do start_node $i; done
leader=$(wait_leader)
[ -n "$leader" ] && pass leader_elected_5 || { fail leader_elected_5 "no leader"; exit 0; }
seq 1 500 | "$BIN/trp-append" -c "$C" > "$tmp/seqs"
[ "$(wc -l < "$tmp/seqs")" = 500 ] && pass append_500 || fail append_500 "$(wc -l < "$tmp/seqs") seqs"
big=$(head -c 100000 /dev/zero | tr '\0' b)
s=$(printf '%s' "$big" | "$BIN/trp-append" -c "$C" --whole)
# 500 unless a leader change on a busy machine added a no-op
[ -n "$s" ] && [ "$s" -ge 500 ] && pass append_100k_entry_fragmented || fail append_100k_entry_fragmented "got '$s'"

# kill -9 the leader and another node
other=$((leader % 5 + 1))
stop_node "$leader" 9
stop_node "$other" 9
seq 501 700 | "$BIN/trp-append" -c "$C" --timeout 20 > "$tmp/seqs2"
rc=$?
# 200 distinct seqs after the 501 before; a new leader may add a no-op, and a
# retry after the failover may commit later than the next line
[ $rc -eq 0 ] && [ "$(sort -nu "$tmp/seqs2" | wc -l)" = 200 ] && [ "$(sort -n "$tmp/seqs2" | head -1)" -ge 501 ] \
    && pass appends_continue_after_2_killed || fail appends_continue_after_2_killed "exit $rc, $(wc -l < "$tmp/seqs2") seqs"
newleader=$(wait_leader)
[ -n "$newleader" ] && [ "$newleader" != "$leader" ] && pass new_leader_elected \
    || fail new_leader_elected "leader '$newleader' (old $leader)"

# bring them back: they catch up
start_node "$leader"
start_node "$other"
for i in $leader $other; do
    "$BIN/trp-tail" -c "$C" -i $i --linearizable --from 0 --timeout 20 > "$tmp/t$i"
done
[ "$(wc -l < "$tmp/t$leader")" = 701 ] && cmp -s "$tmp/t$leader" "$tmp/t$other" \
    && pass killed_nodes_catch_up || fail killed_nodes_catch_up "$(wc -l "$tmp"/t*)"
"$BIN/trp-tail" -c "$C" -i "$other" --from "$s" --count 1 | cmp -s - "$(printf '%s\n' "$big" > "$tmp/big"; echo "$tmp/big")" \
    && pass big_entry_replicated_intact || fail big_entry_replicated_intact "differs"
for i in 1 2 3 4 5; do stop_node $i; done
"$BIN/trp-verify" "$tmp/c/1" "$tmp/c/2" "$tmp/c/3" "$tmp/c/4" "$tmp/c/5" > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q 'PASS 5 replicas agree' "$tmp/out" && pass verify_5_replicas \
    || fail verify_5_replicas "exit $rc: $(cat "$tmp/out")"
exit 0
