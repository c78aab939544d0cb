#!/bin/sh
# tests/cluster/lostdata.sh: a follower that lost entries it had
# acknowledged (its data directory emptied: a disk replaced) is repaired by
# the same leader: it catches up, and then it and the leader are a majority
# that commits while the third node is stopped; so is one that comes back
# empty while nothing is appended; all three directories verify and agree
# afterwards. One "PASS name" / "FAIL name: reason" each.
. tests/cluster/lib.sh

make_cluster 3 || { fail lost_init "trp-node init failed"; exit 0; }
for i in 1 2 3; do start_node $i; done
leader=$(wait_leader)
[ -n "$leader" ] && pass lost_leader_elected || { fail lost_leader_elected "no leader"; exit 0; }
seq 1 1000 | "$BIN/trp-append" -c "$C" -q || fail lost_first_appends "exit $?"
f=$((leader % 3 + 1))
o=$((f % 3 + 1)); [ $o = "$leader" ] && o=$((o % 3 + 1))

# wait_commit ID MIN: until node ID's commit is at least MIN (at most ~10 s);
# the last one seen in $c
wait_commit() {
    n=0
    while [ $n -lt 100 ]; do
        c=$(status_of "$1" | sed -n 's/.*"commit":"\([0-9]*\)".*/\1/p')
        [ -n "$c" ] && [ "$c" -ge "$2" ] && return 0
        sleep 0.1; n=$((n + 1))
    done
    return 1
}

# f's disk is replaced: an empty data directory, same node id
stop_node $f
rm -rf "$tmp/c/$f" && mkdir "$tmp/c/$f"
start_node $f
echo after-loss | "$BIN/trp-append" -c "$C" -i "$leader" -q || fail lost_append_after_loss "exit $?"
wait_commit $f 1001
[ -n "$c" ] && [ "$c" -ge 1001 ] && pass lost_follower_repaired \
    || fail lost_follower_repaired "node $f commit '$c'; leader sees $(status_of "$leader" | grep -o '"peers":[^]]*')"

# the other follower loses its data the same way, and nothing is appended
# after it comes back: the leader still finds and repairs it (it checks
# an idle follower's end about once a second), and says so in status
stop_node $o
rm -rf "$tmp/c/$o" && mkdir "$tmp/c/$o"
start_node $o
wait_commit $o 1001
[ -n "$c" ] && [ "$c" -ge 1001 ] && pass lost_idle_follower_repaired \
    || fail lost_idle_follower_repaired "node $o commit '$c'; leader sees $(status_of "$leader" | grep -o '"peers":[^]]*')"

# the leader and the repaired follower alone must commit
eval "po=\$pid_$o"
kill -STOP "$po"
s=$(echo with-two | "$BIN/trp-append" -c "$C" -i "$leader" --timeout 5 2> "$tmp/err")
rc=$?
kill -CONT "$po"
[ $rc -eq 0 ] && [ -n "$s" ] && pass lost_majority_with_repaired_follower \
    || fail lost_majority_with_repaired_follower "exit $rc: $(cat "$tmp/err")"

for i in 1 2 3; do stop_node $i; done
"$BIN/trp-verify" "$tmp/c/1" "$tmp/c/2" "$tmp/c/3" > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q 'PASS 3 replicas agree' "$tmp/out" && pass lost_replicas_agree \
    || fail lost_replicas_agree "exit $rc: $(tail -3 "$tmp/out")"
