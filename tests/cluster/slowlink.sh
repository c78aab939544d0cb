#!/bin/sh
# tests/cluster/slowlink.sh: replication over slow links. Every link between
# nodes is 10 Mbit/s with 200 KB of buffer (tests/tools/chaosproxy rate=,
# queue=), datagrams of 1400 bytes, as on a WAN. A piped trp-append of 4 MB
# (20,000 lines of 200 bytes) commits every line, and a third node started
# afterwards catches up, though the leader can put far more in flight than
# the links carry or buffer. Before flow control, a follower that fell
# behind was sent its backlog again every 150 ms and never caught up, and
# the pipe timed out. The bounds are liveness bounds (the data needs about
# 4 s at link speed), not timings. One "PASS name" / "FAIL name: reason" each.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../proxyconf.sh"

proxied_cluster '* * rate=10000 queue=200' 11 ||
    { fail slowlink_proxy "chaosproxy did not start: $(cat "$tmp/proxy.err")"; exit 0; }
for k in 1 2; do start_node $k "$tmp/c/cluster.json"; done
C=$tmp/c/client.json # status and appends: straight to the nodes
leader=$(wait_leader) && pass slowlink_leader || { fail slowlink_leader "no leader"; exit 0; }

"$T/genlines" 20000 200 > "$tmp/lines"
"$BIN/trp-append" -c "$C" --timeout 120 < "$tmp/lines" > "$tmp/seqs" 2> "$tmp/append.err"
rc=$?
[ $rc = 0 ] && [ "$(sort -u "$tmp/seqs" | wc -l)" = 20000 ] && pass slowlink_pipe_commits \
    || fail slowlink_pipe_commits "exit $rc, $(wc -l < "$tmp/seqs") seqs: $(head -3 "$tmp/append.err")"

head_of() { status_of "$1" | sed -n 's/.*"head":{"seq":"\{0,1\}\([0-9]*\)"\{0,1\},"hash":"\([0-9a-f]*\)".*/\1:\2/p'; }
start_node 3 "$tmp/c/cluster.json"
want=$(head_of "$leader")
n=0
while [ "$(head_of 3)" != "$want" ] && [ $n -lt 240 ]; do sleep 0.5; n=$((n + 1)); done
[ -n "$want" ] && [ "$(head_of 3)" = "$want" ] && pass slowlink_follower_catches_up \
    || fail slowlink_follower_catches_up "leader head $want, node 3 $(head_of 3) after $((n / 2)) s"

stop_proxy
for k in 1 2 3; do stop_node $k; done
"$BIN/trp-verify" "$tmp/c/1" "$tmp/c/2" "$tmp/c/3" > "$tmp/out" 2>&1 && grep -q 'PASS 3 replicas agree' "$tmp/out" \
    && pass slowlink_replicas_agree || fail slowlink_replicas_agree "$(tail -3 "$tmp/out")"
