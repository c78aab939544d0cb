#!/bin/sh
# tests/cluster/basic.sh: a 3-node cluster from `trp-node init`: a leader is
# elected; appends through each node get consecutive seqs; a piped stream
# commits in order; every node tails the same entries (also -f, and
# --linearizable); status shows the commit and each peer's match; a second
# node on the same data dir is refused; trp-append -d refuses a node's dir,
# trp-tail -d reads it without the client envelope; --if-prev works; an
# oversized entry is refused; SIGTERM stops every node cleanly and a restart
# loses nothing; trp-verify passes over all three directories; with every
# node down trp-append exits 75. One "PASS name" / "FAIL name: reason" each.
. tests/cluster/lib.sh

make_cluster 3 || { fail init "trp-node init failed"; exit 0; }
for i in 1 2 3; do start_node $i; done
leader=$(wait_leader)
[ -n "$leader" ] && pass leader_elected || { fail leader_elected "no leader: $(cat "$tmp"/node*.log)"; exit 0; }

# appends through each node
s1=$("$BIN/trp-append" -c "$C" -i 1 a1)
s2=$(echo a2 | "$BIN/trp-append" -c "$C" -i 2)
s3=$(printf 'a3' | "$BIN/trp-append" -c "$C" -i 3 --whole)
[ "$s1 $s2 $s3" = "0 1 2" ] && pass append_each_node_seqs || fail append_each_node_seqs "got '$s1 $s2 $s3'"

# a piped stream: 2000 lines, increasing seqs after the first three (not
# fixed numbers from here on: a leader change may add a no-op entry)
seq 1 2000 | "$BIN/trp-append" -c "$C" -i 2 > "$tmp/seqs"
rc=$?
[ $rc -eq 0 ] && [ "$(head -1 "$tmp/seqs")" -ge 3 ] &&
    [ "$(sort -n "$tmp/seqs" | uniq | wc -l)" = 2000 ] && [ "$(sort -n "$tmp/seqs" | tr '\n' ' ')" = "$(tr '\n' ' ' < "$tmp/seqs")" ] \
    && pass append_stream_in_order || fail append_stream_in_order "exit $rc, $(wc -l < "$tmp/seqs") seqs"
js=$(echo '{"json":true}' | "$BIN/trp-append" -c "$C" --json)
jseq=$(echo "$js" | json_field seq)
echo "$js" | grep -q '^{"seq":"[0-9]*","hash":"[0-9a-f]\{64\}"}$' \
    && pass append_json_output || fail append_json_output "no JSON seq/hash"

# tail from every node: the same 2004 entries
for i in 1 2 3; do
    "$BIN/trp-tail" -c "$C" -i $i --linearizable --from 0 > "$tmp/tail$i"
done
n1=$(wc -l < "$tmp/tail1")
[ "$n1" = 2004 ] && cmp -s "$tmp/tail1" "$tmp/tail2" && cmp -s "$tmp/tail1" "$tmp/tail3" \
    && pass tail_each_node_same || fail tail_each_node_same "$n1 lines; $(wc -l "$tmp"/tail?)"
[ "$(head -3 "$tmp/tail1" | tr '\n' ' ')" = "a1 a2 a3 " ] && pass tail_shows_user_bytes \
    || fail tail_shows_user_bytes "$(head -3 "$tmp/tail1")"
[ "$("$BIN/trp-tail" -c "$C" -n 2 | tr '\n' ' ')" = '2000 {"json":true} ' ] && pass tail_last_n \
    || fail tail_last_n "$("$BIN/trp-tail" -c "$C" -n 2)"
"$BIN/trp-tail" -c "$C" --from "$jseq" --count 1 -o json | grep -q "\"seq\":\"$jseq\".*\"data\":{\"json\":true}" \
    && pass tail_json || fail tail_json "$("$BIN/trp-tail" -c "$C" --from "$jseq" --count 1 -o json)"
"$BIN/trp-tail" -c "$C" --from 0 --count 1 > /dev/null 2>&1 && pass tail_count || fail tail_count "exit $?"

# follow: a new commit shows up in a running trp-tail -f
"$BIN/trp-tail" -c "$C" -i 3 -f --from 2004 > "$tmp/follow" 2>&1 &
fpid=$!
PIDS="$PIDS $fpid"
"$BIN/trp-append" -c "$C" -i 1 live-entry > /dev/null
n=0
while [ $n -lt 100 ] && ! grep -q live-entry "$tmp/follow"; do sleep 0.05; n=$((n + 1)); done
grep -q '^live-entry$' "$tmp/follow" && pass tail_follow_sees_commit || fail tail_follow_sees_commit "$(cat "$tmp/follow")"
kill $fpid 2>/dev/null; wait $fpid 2>/dev/null

# status: commit, head and the leader's view of each peer
"$BIN/trp-tail" -c "$C" --linearizable -n 0 > /dev/null
leader=$(wait_leader) # it may have changed on a busy machine
st=$(status_of "$leader")
[ -n "$(echo "$st" | json_field commit)" ] && [ "$(echo "$st" | json_field commit)" = "$(echo "$st" | json_field next)" ] && echo "$st" | grep -q '"peers":\[{"id":1,"match":"' \
    && pass status_leader_commit_and_match || fail status_leader_commit_and_match "$st"
"$BIN/trp-node" status -c "$C" > "$tmp/status" 2>&1
[ "$(grep -c '"role":"leader"' "$tmp/status")" = 1 ] && [ "$(grep -c '"role":"follower"' "$tmp/status")" = 2 ] \
    && pass status_all_nodes_one_leader || fail status_all_nodes_one_leader "$(cut -c1-120 "$tmp/status")"
grep -q '"dropped":{"forged":0' "$tmp/status" && pass status_has_drop_counters || fail status_has_drop_counters "$(head -c 300 "$tmp/status")"

# the data directories of live nodes
"$BIN/trp-node" -c "$C" -i 1 > "$tmp/second" 2>&1
rc=$?
[ $rc -eq 75 ] && grep -q 'in use' "$tmp/second" && pass second_node_same_dir_refused \
    || fail second_node_same_dir_refused "exit $rc: $(cat "$tmp/second")"
"$BIN/trp-append" -d "$tmp/c/1" x > "$tmp/out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q -- '-c CONFIG' "$tmp/out" && pass append_d_refuses_node_dir \
    || fail append_d_refuses_node_dir "exit $rc: $(cat "$tmp/out")"
[ "$("$BIN/trp-tail" -d "$tmp/c/2" --from 0 --count 3 | tr '\n' ' ')" = "a1 a2 a3 " ] \
    && pass tail_d_live_node_dir || fail tail_d_live_node_dir "$("$BIN/trp-tail" -d "$tmp/c/2" --from 0 --count 3)"

# trp-verify reads live replicas (while appends go on) without complaint
seq 1 3000 | "$BIN/trp-append" -c "$C" -q &
apid=$!
"$BIN/trp-verify" "$tmp/c/1" "$tmp/c/2" "$tmp/c/3" > "$tmp/out" 2>&1
rc=$?
wait $apid
[ $rc -eq 0 ] && pass verify_live_replicas || fail verify_live_replicas "exit $rc: $(cat "$tmp/out")"

# --if-prev: the right head appends, a wrong one is refused with exit 1
hj=$("$BIN/trp-tail" -c "$C" --linearizable -n 1 -o json | tail -n 1) # the head: a no-op may follow
head=$(echo "$hj" | json_field hash)
hseq=$(echo "$hj" | json_field seq)
s=$("$BIN/trp-append" -c "$C" --if-prev "$head" cond-ok 2>&1)
[ "$s" = $((hseq + 1)) ] && pass if_prev_match_appends || fail if_prev_match_appends "got '$s'"
"$BIN/trp-append" -c "$C" --if-prev "$head" cond-bad > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q 'not as expected' "$tmp/out" && pass if_prev_mismatch_exit_1 \
    || fail if_prev_mismatch_exit_1 "exit $rc: $(cat "$tmp/out")"
# with nothing to append, --if-prev only checks the head, as in local mode:
# the right one exits 0 printing nothing, a wrong one prints the head, exit 1
hj=$("$BIN/trp-tail" -c "$C" --linearizable -n 1 -o json | tail -n 1)
head=$(echo "$hj" | json_field hash)
out=$("$BIN/trp-append" -c "$C" --if-prev "$head" < /dev/null 2>&1)
rc=$?
[ $rc -eq 0 ] && [ -z "$out" ] && pass if_prev_empty_input_matches || fail if_prev_empty_input_matches "exit $rc: $out"
"$BIN/trp-append" -c "$C" --if-prev "$(printf '1%.0s' $(seq 64))" < /dev/null > "$tmp/out" 2> "$tmp/err"
rc=$?
[ $rc -eq 1 ] && [ "$(cat "$tmp/out")" = "$(echo "$hj" | json_field seq) $head" ] \
    && pass if_prev_empty_input_mismatch_exit_1 \
    || fail if_prev_empty_input_mismatch_exit_1 "exit $rc: $(cat "$tmp/out" "$tmp/err")"

# an entry over max_entry (1 MiB) is refused with a clear error
head -c 1100000 /dev/zero | tr '\0' x | "$BIN/trp-append" -c "$C" --whole > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 65 ] && grep -q 'too large' "$tmp/out" && pass oversized_entry_refused \
    || fail oversized_entry_refused "exit $rc: $(cat "$tmp/out")"

# SIGTERM every node (clean exit 0), restart, nothing lost
codes=
for i in 1 2 3; do stop_node $i; codes="$codes$stopped"; done
[ "$codes" = 000 ] && pass sigterm_exits_0 || fail sigterm_exits_0 "exit codes $codes"
"$BIN/trp-append" -c "$C" --timeout 1 nobody > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 75 ] && grep -q 'no leader answered' "$tmp/out" && pass no_leader_exit_75 \
    || fail no_leader_exit_75 "exit $rc: $(cat "$tmp/out")"
for i in 1 2 3; do start_node $i; done
wait_leader > /dev/null || fail restart_leader "no leader after restart"
s=$("$BIN/trp-append" -c "$C" after-restart)
[ "$s" -gt $((hseq + 1)) ] && pass restart_next_seq || fail restart_next_seq "got '$s'"
for i in 1 2 3; do
    "$BIN/trp-tail" -c "$C" -i $i --linearizable --from 0 > "$tmp/tail$i"
done
[ "$(wc -l < "$tmp/tail1")" = 5007 ] && cmp -s "$tmp/tail1" "$tmp/tail2" && cmp -s "$tmp/tail1" "$tmp/tail3" \
    && pass restart_nothing_lost || fail restart_nothing_lost "$(wc -l "$tmp"/tail?)"
"$BIN/trp-verify" "$tmp/c/1" "$tmp/c/2" "$tmp/c/3" > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q 'PASS 3 replicas agree' "$tmp/out" && pass verify_all_replicas \
    || fail verify_all_replicas "exit $rc: $(cat "$tmp/out")"
grep -q 'node 1: follower in term' "$tmp/node1.log" && pass state_lines_on_stderr \
    || fail state_lines_on_stderr "$(cat "$tmp/node1.log")"

# one node left of three: it answers, but nothing commits; the message
# says so rather than that no leader answered
stop_node 1
stop_node 2
"$BIN/trp-append" -c "$C" -i 3 --timeout 2 minority > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 75 ] && grep -q 'not committed within 2000 ms, though node 3 answers' "$tmp/out" \
    && pass minority_exit_75_says_why || fail minority_exit_75_says_why "exit $rc: $(cat "$tmp/out")"
exit 0
