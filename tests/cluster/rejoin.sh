#!/bin/sh
# tests/cluster/rejoin.sh: a node whose data directory comes back missing
# or empty (a disk replaced) rejoins: until it has caught up it votes only
# with other rejoining nodes, so it cannot elect a node that lacks an entry
# committed with the copy it lost. E commits on the leader L and F while G is stopped; F's disk is
# replaced and L stops; F and G alone must not elect anyone (G lacks E).
# With L back, L leads, F catches up and votes again, and every replica
# holds E at its seq. A new cluster on empty directories (every node
# rejoining) elects among itself. One "PASS name" / "FAIL name: reason" each.
. tests/cluster/lib.sh

make_cluster 3 || { fail rejoin_init "trp-node init failed"; exit 0; }
for i in 1 2 3; do
    [ -f "$tmp/c/$i/envelope" ] || { fail rejoin_init_marker "init left no marker in $i"; exit 0; }
done
pass rejoin_init_marker
# a first start cut short while creating the log (here: the marker's rename
# fails) leaves init's marker beside the half-made log; the next start
# finishes the job instead of taking the directory for a foreign one
"$T/errinject" EIO rename "$BIN/trp-node" -c "$C" -i 1 > "$tmp/out" 2>&1
rc=$?
timeout 2 "$BIN/trp-node" -c "$C" -i 1 > "$tmp/out2" 2>&1
rc2=$?
[ $rc = 74 ] && [ $rc2 = 124 ] && [ -f "$tmp/c/1/trp-log" ] && pass rejoin_interrupted_first_start \
    || fail rejoin_interrupted_first_start "exit $rc then $rc2: $(cat "$tmp/out" "$tmp/out2")"
for i in 1 2 3; do start_node $i; done
l=$(wait_leader)
[ -n "$l" ] || { fail rejoin_leader "no leader"; exit 0; }
f=$((l % 3 + 1))
g=$((f % 3 + 1))
seq 1 100 | "$BIN/trp-append" -c "$C" -q || fail rejoin_first "exit $?"

stop_node $g
e=$("$BIN/trp-append" -c "$C" -i "$l" --timeout 5 E 2> "$tmp/err")
[ -n "$e" ] || { fail rejoin_commit_e "exit $?: $(cat "$tmp/err")"; exit 0; }
stop_node $l
stop_node $f
rm -rf "$tmp/c/$f" # gone (a new disk mounted above it); lostdata.sh empties one
start_node $f
start_node $g
# long enough for several elections (timeouts of 300-450 ms)
sleep 3
st=$("$BIN/trp-node" status -c "$C" --timeout 1 2>/dev/null)
echo "$st" | grep -q '"role":"leader"' && fail rejoin_no_stale_leader "a leader without E: $st" \
    || pass rejoin_no_stale_leader
status_of $f | grep -q '"rejoining":true' && [ -f "$tmp/c/$f/rejoining" ] \
    && grep -q 'rejoining' "$tmp/node$f.log" && pass rejoin_reported \
    || fail rejoin_reported "status $(status_of $f), files $(ls "$tmp/c/$f" | tr '\n' ' ')"
# a restart before catching up does not forget it
stop_node $f
start_node $f
sleep 1
status_of $f | grep -q '"rejoining":true' && pass rejoin_survives_restart \
    || fail rejoin_survives_restart "$(status_of $f)"

start_node $l
l2=$(wait_leader)
[ "$l2" = "$l" ] && pass rejoin_leader_has_e || fail rejoin_leader_has_e "leader '$l2', not $l"
a=$(echo after | "$BIN/trp-append" -c "$C" --timeout 10 2> "$tmp/err")
[ -n "$a" ] && pass rejoin_appends_again || fail rejoin_appends_again "$(cat "$tmp/err")"
n=0
until status_of $f | grep -q '"rejoining":false'; do
    sleep 0.1; n=$((n + 1)); [ $n -gt 100 ] && break
done
status_of $f | grep -q '"rejoining":false' && [ ! -e "$tmp/c/$f/rejoining" ] \
    && grep -q 'votes again' "$tmp/node$f.log" && pass rejoin_caught_up \
    || fail rejoin_caught_up "status $(status_of $f), files $(ls "$tmp/c/$f" | tr '\n' ' ')"
# F's copy counts again: with L stopped, F and G elect a leader and commit
stop_node $l
b=$(echo with-f-and-g | "$BIN/trp-append" -c "$C" -i $g --timeout 10 2> "$tmp/err")
[ -n "$b" ] && pass rejoin_votes_again || fail rejoin_votes_again "$(cat "$tmp/err")"
start_node $l
sleep 1
for i in 1 2 3; do stop_node $i; done
kept=0
for i in 1 2 3; do
    got=$("$BIN/trp-tail" -d "$tmp/c/$i" --from "$e" 2>&1 | head -1)
    [ "$got" = E ] && kept=$((kept + 1)) || fail rejoin_e_kept "node $i holds '$got' at $e"
done
[ $kept = 3 ] && pass rejoin_e_kept
"$BIN/trp-verify" "$tmp/c/1" "$tmp/c/2" "$tmp/c/3" > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q 'PASS 3 replicas agree' "$tmp/out" && pass rejoin_replicas_agree \
    || fail rejoin_replicas_agree "exit $rc: $(tail -3 "$tmp/out")"

# a new cluster whose data directories are missing or empty (mount points,
# or made by hand): every node rejoins, they elect among themselves,
# commit, and all stop rejoining
attempt=1
make_cluster 3 || { fail rejoin_fresh_init "trp-node init failed"; exit 0; }
rm -rf "$tmp/c/1"                                  # missing
rm -f "$tmp/c/2/envelope" && mkdir "$tmp/c/2/lost+found" # a new file system's top
rm -f "$tmp/c/3/envelope"                          # empty
for i in 1 2 3; do : > "$tmp/node$i.log"; done
for i in 1 2 3; do start_node $i; done
l=$(wait_leader)
s=$(echo first | "$BIN/trp-append" -c "$C" --timeout 10 2> "$tmp/err")
[ -n "$l" ] && [ "$s" = 0 ] && pass rejoin_fresh_empty_dirs_elect \
    || fail rejoin_fresh_empty_dirs_elect "leader '$l', seq '$s': $(cat "$tmp/err")"
n=0
while [ $n -lt 50 ]; do
    r=$("$BIN/trp-node" status -c "$C" --timeout 1 2>/dev/null | grep -c '"rejoining":false')
    [ "$r" = 3 ] && break
    sleep 0.1; n=$((n + 1))
done
[ "$r" = 3 ] && grep -q 'rejoining' "$tmp/node1.log" && pass rejoin_fresh_all_caught_up \
    || fail rejoin_fresh_all_caught_up "$r of 3 done"
