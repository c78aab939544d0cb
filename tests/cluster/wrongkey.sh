#!/bin/sh
# tests/cluster/wrongkey.sh: node 3 runs with a different cluster key: nodes
# 1 and 2 elect a leader without it, count its datagrams as forged (visible
# in status), and keep committing; node 3 never joins. Then a hostile
# datagram corpus (tests/tools/hostile_dgrams) sent at live node 1 leaves
# it serving. One "PASS name" / "FAIL name: reason" each.
. tests/cluster/lib.sh

make_cluster 3 || { fail init "trp-node init failed"; exit 0; }
# node 3's own copy of the config, with another key
mkdir -p "$tmp/w"
cp "$C" "$tmp/w/cluster.json"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$tmp/w/cluster.key"
echo >> "$tmp/w/cluster.key"
chmod 600 "$tmp/w/cluster.key"
start_node 1
start_node 2
start_node 3 "$tmp/w/cluster.json"
leader=$(wait_leader)
[ "$leader" = 1 ] || [ "$leader" = 2 ] && pass leader_without_wrong_key_node \
    || fail leader_without_wrong_key_node "leader '$leader'"
s=$("$BIN/trp-append" -c "$C" -i 1 one)
[ "$s" = 0 ] && pass append_with_wrong_key_node_present || fail append_with_wrong_key_node_present "got '$s'"
sleep 0.5
forged=$(status_of 1 | sed -n 's/.*"forged":\([0-9]*\).*/\1/p')
[ -n "$forged" ] && [ "$forged" -gt 0 ] && pass wrong_key_counted_forged || fail wrong_key_counted_forged "forged '$forged'"
[ ! -s "$tmp/w/3/00000000000000000000.seg" ] || [ "$("$BIN/trp-tail" -d "$tmp/w/3" -n 5 | wc -l)" = 0 ] \
    && pass wrong_key_node_gets_nothing || fail wrong_key_node_gets_nothing "it has entries"
stop_node 3

# hostile datagrams at node 1: it drops them and keeps serving
before=$(status_of 1 | sed -n 's/.*"dropped":{\([^}]*\)}.*/\1/p')
"$T/hostile_dgrams" "$C" 1 2000 > "$tmp/sent" 2> "$tmp/sent.err"
rc=$?
[ $rc -eq 0 ] && pass hostile_sent || fail hostile_sent "exit $rc: $(cat "$tmp/sent.err")"
s=$("$BIN/trp-append" -c "$C" -i 1 after-hostile)
[ -n "$s" ] && [ "$s" -ge 1 ] && pass node_serves_after_hostile || fail node_serves_after_hostile "got '$s'"
after=$(status_of 1 | sed -n 's/.*"dropped":{\([^}]*\)}.*/\1/p')
[ -n "$after" ] && [ "$after" != "$before" ] && pass hostile_counted || fail hostile_counted "before '$before' after '$after'"
kill -0 "$pid_1" 2>/dev/null && pass node_alive_after_hostile || fail node_alive_after_hostile "node 1 exited"
exit 0
