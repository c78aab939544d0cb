#!/bin/sh
# tests/cluster/tailn.sh: `trp-tail -c -n N` (without -f) prints exactly the
# last N committed entries as of its first answer, however many entries
# commit while it reads: while a stream is appending, and from a follower
# that is catching up (stopped while the leader took 20000 entries, 4000
# under the sanitizers, then
# continued), where the node sends what it commits as it goes. A --from
# past any seq the wire can carry prints nothing, as in local mode. With
# stdin or stdout closed, trp-append and trp-tail do not read or write
# their own socket. One "PASS name" / "FAIL name: reason" each.
. tests/cluster/lib.sh

# under the sanitizers everything runs several times slower: fewer entries,
# and a longer wait for an answer (the checks are counts, not times)
if [ -n "${TRP_ASAN:-}" ]; then N=4000 R=100 TO=60; else N=20000 R=400 TO=10; fi

make_cluster 3 || { fail tailn_init "trp-node init failed"; exit 0; }
for i in 1 2 3; do start_node $i; done
leader=$(wait_leader)
[ -n "$leader" ] && pass tailn_leader_elected || { fail tailn_leader_elected "no leader"; exit 0; }
seq 1 $N | "$BIN/trp-append" -c "$C" --timeout $TO -q

# a follower stopped while N more are appended, then continued: it
# catches up by committing batch after batch while the tail reads
f=1; [ "$leader" = 1 ] && f=2
stop_node_sig() { eval "kill -$1 \$pid_$2"; }
stop_node_sig STOP $f
"$T/genlines" $N 50 | "$BIN/trp-append" -c "$C" -i "$leader" --timeout $TO -q
stop_node_sig CONT $f
"$BIN/trp-tail" -c "$C" -i $f -n 1 --timeout $TO > "$tmp/t1" 2> "$tmp/e1"
rc=$?
[ $rc -eq 0 ] && [ "$(wc -l < "$tmp/t1")" -eq 1 ] && pass tailn_catching_up_follower_n1 \
    || fail tailn_catching_up_follower_n1 "exit $rc, $(wc -l < "$tmp/t1") lines: $(head -c 200 "$tmp/e1")"

# while a stream appends: -n 3 from each node, raw and JSON, 10 times each
( i=0; while [ $i -lt $R ]; do seq 1 50; i=$((i + 1)); done ) | "$BIN/trp-append" -c "$C" --timeout $TO -q &
apid=$!
PIDS="$PIDS $apid"
bad=0
k=0
while [ $k -lt 10 ]; do
    for n in 1 2 3; do
        l=$("$BIN/trp-tail" -c "$C" -i $n -n 3 --timeout $TO | wc -l)
        [ "$l" -eq 3 ] || bad=$((bad + 1))
        l=$("$BIN/trp-tail" -c "$C" -i $n -n 3 -o json --timeout $TO | grep -c '"type":"data"')
        [ "$l" -eq 3 ] || bad=$((bad + 1))
    done
    k=$((k + 1))
done
wait $apid
[ $bad -eq 0 ] && pass tailn_exactly_n_while_appending || fail tailn_exactly_n_while_appending "$bad of 60 reads printed other than 3"
# a reader that is done says so: the nodes forget its stream at once
# (they kept serving each one what committed next, for 10 s; 61 were left
# here). The word is not waited for, so a busy node may miss one or two.
streams_on() { status_of "$1" | sed -n 's/.*"streams":\([0-9]*\).*/\1/p'; }
i=0
while [ $i -lt 20 ]; do
    left=$(( $(streams_on 1) + $(streams_on 2) + $(streams_on 3) ))
    [ "$left" -eq 0 ] && break
    sleep 0.1; i=$((i + 1))
done
[ "$left" -le 3 ] && pass tailn_finished_readers_leave_no_stream || fail tailn_finished_readers_leave_no_stream "$left streams left"

# a --from past any seq a log holds (and past the wire's 128-byte seqs)
big=1$(printf '%0400d' 0)
"$BIN/trp-tail" -c "$C" --from "$big" --timeout 3 > "$tmp/t2" 2> "$tmp/e2"
rc=$?
[ $rc -eq 0 ] && [ ! -s "$tmp/t2" ] && pass tailn_from_past_every_seq \
    || fail tailn_from_past_every_seq "exit $rc: $(head -c 200 "$tmp/e2")"
# ... and with -f it waits quietly: it does not ask again and again (it
# sent thousands of requests a second); counted at the node, over 2 s
recv() { status_of 1 | sed -n 's/.*"recv_datagrams":\([0-9]*\).*/\1/p' | head -1; }
r0=$(recv)
"$BIN/trp-tail" -c "$C" -i 1 -f --from "$big" > "$tmp/t5" 2>&1 &
fpid=$!
PIDS="$PIDS $fpid"
sleep 2
kill $fpid 2>/dev/null
wait $fpid 2>/dev/null
r1=$(recv)
[ -n "$r0" ] && [ -n "$r1" ] && [ $((r1 - r0)) -lt 500 ] && [ ! -s "$tmp/t5" ] && pass tailn_follow_past_every_seq_waits \
    || fail tailn_follow_past_every_seq_waits "the node received $((r1 - r0)) datagrams in 2 s: $(head -c 200 "$tmp/t5")"

# started with stdin or stdout closed, the tools do not mistake their own
# socket for it (it used to take descriptor 0 or 1)
( "$BIN/trp-append" -c "$C" --timeout 5 <&- > "$tmp/o3" 2> "$tmp/e3"; echo $? > "$tmp/rc3" ) &
w=$!
i=0; while kill -0 $w 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill $w 2>/dev/null
[ "$(cat "$tmp/rc3" 2>/dev/null)" = 0 ] && [ ! -s "$tmp/o3" ] && pass tailn_append_closed_stdin_ends \
    || fail tailn_append_closed_stdin_ends "exit '$(cat "$tmp/rc3" 2>/dev/null)' after ${i}00 ms: $(head -c 200 "$tmp/e3")"
"$BIN/trp-tail" -c "$C" -n 1 >&- 2> "$tmp/e4"
rc=$?
[ $rc -eq 74 ] && grep -q 'stdout: Bad file descriptor' "$tmp/e4" && pass tailn_tail_closed_stdout_74 \
    || fail tailn_tail_closed_stdout_74 "exit $rc: $(head -c 200 "$tmp/e4")"
exit 0
