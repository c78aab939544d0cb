#!/bin/sh
# tests/cluster/edges.sh: small promises of the tools in cluster mode, on a
# one-node cluster that starts at seq 100: `init` words a one-node cluster
# right; --if-prev against a cluster log that holds no entry prints "-" (or
# a null seq in JSON), not the seq before start_seq; an ENTRY argument over
# max_entry refuses them all before any is sent; `status` with a stray
# argument names it; -v with -q is bad usage. One "PASS name" / "FAIL name:
# reason" each. Last, a node whose meta file (term and vote) is damaged
# refuses to start.
. tests/cluster/lib.sh

"$BIN/trp-node" init --nodes 1 --dir "$tmp/words" --base-port 7300 > "$tmp/init.out"
grep -q 'cluster.json: 1 node, 127.0.0.1:[0-9]*$' "$tmp/init.out" &&
    grep -q 'start: trp-node -c .*/cluster.json -i 1$' "$tmp/init.out" &&
    pass edges_init_one_node_words || fail edges_init_one_node_words "$(cat "$tmp/init.out")"
make_cluster 1 || { fail edges_init "trp-node init failed"; exit 0; }
sed 's/"start_seq":[[:space:]]*"0"/"start_seq": "100"/' "$C" > "$tmp/c/x.json" && mv "$tmp/c/x.json" "$C"
grep -q '"start_seq": "100"' "$C" || { fail edges_start_seq "could not set start_seq"; exit 0; }
start_node 1
[ -n "$(wait_leader)" ] && pass edges_leader || { fail edges_leader "no leader: $(cat "$tmp/node1.log")"; exit 0; }

Z=0000000000000000000000000000000000000000000000000000000000000000
O=1111111111111111111111111111111111111111111111111111111111111111
"$BIN/trp-append" -c "$C" --if-prev $O x > "$tmp/out" 2> "$tmp/err"
rc=$?
[ $rc -eq 1 ] && [ "$(cat "$tmp/out")" = "- $Z" ] && grep -q 'head is seq (none)' "$tmp/err" &&
    pass edges_if_prev_no_entry_dash || fail edges_if_prev_no_entry_dash "exit $rc: $(cat "$tmp/out" "$tmp/err")"
"$BIN/trp-append" -c "$C" --json --if-prev $O x > "$tmp/out" 2>/dev/null
[ "$(cat "$tmp/out")" = "{\"seq\":null,\"hash\":\"$Z\"}" ] && pass edges_if_prev_no_entry_json_null \
    || fail edges_if_prev_no_entry_json_null "$(cat "$tmp/out")"

# a copy of the config with max_entry 10: the client refuses before sending
sed 's/"max_entry":[[:space:]]*[0-9]*/"max_entry": 10/' "$C" > "$tmp/c/small.json"
"$BIN/trp-append" -c "$tmp/c/small.json" first 12345678901 third > "$tmp/out" 2> "$tmp/err"
rc=$?
[ $rc -eq 65 ] && [ ! -s "$tmp/out" ] && grep -q 'entry 2 too large.*nothing appended' "$tmp/err" &&
    pass edges_oversized_argument_refuses_all || fail edges_oversized_argument_refuses_all "exit $rc: $(cat "$tmp/out" "$tmp/err")"
s=$("$BIN/trp-append" -c "$C" after)
[ "$s" = 100 ] && pass edges_nothing_before_it_appended || fail edges_nothing_before_it_appended "next seq '$s'"
[ "$("$BIN/trp-tail" -c "$C" --from 100)" = after ] && pass edges_first_entry_at_start_seq \
    || fail edges_first_entry_at_start_seq "$("$BIN/trp-tail" -c "$C" --from 100 2>&1)"

"$BIN/trp-node" status -c "$C" stray > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 64 ] && grep -q "unexpected argument 'stray'" "$tmp/out" && pass edges_status_stray_argument \
    || fail edges_status_stray_argument "exit $rc: $(head -1 "$tmp/out")"
"$BIN/trp-node" -c "$C" -i 1 -v -q > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 64 ] && grep -q -- '-v and -q exclude each other' "$tmp/out" && pass edges_v_and_q_64 \
    || fail edges_v_and_q_64 "exit $rc: $(head -1 "$tmp/out")"

# a node whose meta (term and vote) is damaged refuses to start: it could
# vote twice in a term
stop_node 1
printf '\377' | dd of="$tmp/c/1/meta" bs=1 seek=61 conv=notrunc 2>/dev/null
"$BIN/trp-node" -c "$C" -i 1 > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q 'meta: damaged (bad CRC).*vote twice' "$tmp/out" && pass edges_damaged_meta_refused \
    || fail edges_damaged_meta_refused "exit $rc: $(tail -2 "$tmp/out")"

# a data directory holding a standalone log (trp-append -d: entries without
# the client envelope) is refused, not adopted and marked as a node's
rm -rf "$tmp/c/1"
"$BIN/trp-append" -d "$tmp/c/1" -q --start-seq 100 plain
"$BIN/trp-node" -c "$C" -i 1 > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 65 ] && grep -q 'holds a standalone log' "$tmp/out" && [ ! -e "$tmp/c/1/envelope" ] &&
    pass edges_standalone_log_refused || fail edges_standalone_log_refused "exit $rc: $(tail -2 "$tmp/out")"
"$BIN/trp-append" -d "$tmp/c/1" -q still-mine && pass edges_standalone_log_still_appendable \
    || fail edges_standalone_log_still_appendable "trp-append -d refused it"
