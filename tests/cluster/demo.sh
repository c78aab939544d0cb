#!/bin/sh
# tests/cluster/demo.sh: `make demo` (tests/demo.sh) prints seqs 0, 1, 2 for
# the appends through nodes 1, 2 and 3, the same head on every node, the
# three entries from trp-tail, a passing trp-verify, and leaves nothing
# running. One "PASS name" or "FAIL name: reason" line per check.
BIN=${BIN:-build/bin}
out=$(mktemp "${TMPDIR:-/tmp}/trp-demo-test-XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT INT TERM
sh tests/demo.sh "$BIN" > "$out" 2>&1
rc=$?
[ $rc -eq 0 ] && echo "PASS demo_exit_0" || echo "FAIL demo_exit_0: exit $rc: $(tail -5 "$out")"
seqs=$(grep -A1 '| trp-append -c' "$out" | grep -E '^[0-9]+$' | tr '\n' ' ')
[ "$seqs" = "0 1 2 " ] && echo "PASS demo_seqs_0_1_2" || echo "FAIL demo_seqs_0_1_2: got '$seqs'"
heads=$(grep -E '^seq [0-9]+ hash [0-9a-f]{64}$' "$out" | sort -u | wc -l)
nheads=$(grep -cE '^seq 2 hash [0-9a-f]{64}$' "$out")
[ "$heads" -eq 1 ] && [ "$nheads" -eq 3 ] && echo "PASS demo_same_head_on_3_nodes" \
    || echo "FAIL demo_same_head_on_3_nodes: $(grep '^seq ' "$out")"
body=$(sed -n '/^\$ trp-tail -c cluster.json --from 0$/,/^$/p' "$out" | sed 1d | tr '\n' ' ')
[ "$body" = '{"a":1} {"b":2} {"c":3}  ' ] && echo "PASS demo_tail_shows_entries" \
    || echo "FAIL demo_tail_shows_entries: got '$body'"
grep -q 'PASS 3 replicas agree' "$out" && echo "PASS demo_verify_agree" \
    || echo "FAIL demo_verify_agree: $(grep trp-verify "$out")"
exit 0
