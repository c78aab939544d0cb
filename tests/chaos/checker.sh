#!/bin/sh
# tests/chaos/checker.sh: chaoscheck on synthetic histories. A clean
# history passes with the right figures; each history that breaks one rule
# (lost, dup, refused, phantom, order, agree, chain, tail, live) is caught
# under that rule. One "PASS name" / "FAIL name: reason" line per check.
T=${T:-build/t}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trp-chaoscheck-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }

# entries "SEQ PAYLOAD" on stdin -> JSON Lines as trp-tail -o json prints
tojson() {
    awk '{ printf "{\"seq\":\"%s\",\"term\":1,\"type\":\"%s\",\"hash\":\"h%s-%s\",\"prev\":\"x\",\"len\":%d,\"text\":\"%s\"}\n",
           $1, ($2 == "-" ? "noop" : "data"), $1, $2, length($2), ($2 == "-" ? "" : $2) }'
}
# base DIR: a clean run; 3 nodes, 2 clients, 2 tailers
base() {
    d=$1; rm -rf "$d"; mkdir -p "$d"
    cat > "$d/hist.1" <<H
1 0 1000 2000 ok 1 c1-0
1 1 2100 3000 ok 3 c1-1
1 2 3100 9000 unknown - c1-2
H
    cat > "$d/hist.2" <<H
2 0 1500 2500 ok 2 c2-0
2 1 2600 3500 ok 4 c2-1
2 2 3600 4000 refused - c2-2
2 3 5000 6000 ok 6 c2-3
H
    printf '0 -\n1 c1-0\n2 c2-0\n3 c1-1\n4 c2-1\n5 c1-2\n6 c2-3\n7 barrier-1\n' > "$d/entries"
    for n in 1 2 3; do tojson < "$d/entries" > "$d/final.$n.json"; done
    sed -n 1,4p "$d/entries" | tojson > "$d/tail.1.0.json"
    sed -n 3,6p "$d/entries" | tojson > "$d/tail.2.0.json"
    printf '{"seq":"6","ty' >> "$d/tail.2.0.json" # killed mid-line: ignored
    echo "4500 heal partition healed" > "$d/events"
}
finals() { for n in 1 2 3; do tojson < "$1/entries" > "$1/final.$n.json"; done; }
# expect NAME RULE DIR [args]: chaoscheck exits 1 and names RULE
expect() {
    name=$1; rule=$2; d=$3; shift 3
    out=$("$T/chaoscheck" "$@" "$d" 2>&1); rc=$?
    if [ $rc -eq 1 ] && echo "$out" | grep -q "^VIOLATION $rule:"; then pass "$name"
    else fail "$name" "exit $rc, wanted a $rule violation: $(echo "$out" | tr '\n' '|')"; fi
}
d=$tmp/run

base "$d"
out=$("$T/chaoscheck" "$d" 2>&1); rc=$?
want='attempted 7|acknowledged 5|unknown 1 (1 of them applied)|refused 1|lost 0|duplicated 0|log_entries 8|tailers 2 (8 entries seen)|longest_unavailability_ms 2|heals 1|slowest_recovery_ms 1|violations 0|'
[ $rc -eq 0 ] && [ "$(echo "$out" | tr '\n' '|')" = "$want" ] && pass check_clean_history \
    || fail check_clean_history "exit $rc: $(echo "$out" | tr '\n' '|')"

base "$d"; sed -i 's/ok 4 c2-1/ok 5 c2-1/' "$d/hist.2"
expect check_lost_wrong_seq lost "$d"
base "$d"; sed -i 's/^4 c2-1/4 barrier-2/' "$d/entries"; finals "$d"; rm "$d"/tail.*
expect check_lost_missing lost "$d"
out=$("$T/chaoscheck" "$d" 2>&1); echo "$out" | grep -q '^lost 1$' && pass check_lost_counted || fail check_lost_counted "$out"

base "$d"; sed -i 's/^5 c1-2/5 c1-0/' "$d/entries"; finals "$d"; rm "$d"/tail.*
expect check_dup_acknowledged dup "$d"
base "$d"; sed -i 's/^7 barrier-1/7 c1-2/' "$d/entries"; finals "$d"; rm "$d"/tail.*
expect check_dup_unknown dup "$d"
out=$("$T/chaoscheck" "$d" 2>&1); echo "$out" | grep -q '^duplicated 1$' && pass check_dup_counted || fail check_dup_counted "$out"

base "$d"; sed -i 's/^5 c1-2/5 c2-2/' "$d/entries"; finals "$d"; rm "$d"/tail.*
expect check_refused_present refused "$d"
base "$d"; sed -i 's/^5 c1-2/5 zzz/' "$d/entries"; finals "$d"; rm "$d"/tail.*
expect check_phantom phantom "$d"

# order: c2-3 invoked at 5000, after c1-1 (seq 3) was acknowledged, gets seq 2
base "$d"; sed -i -e 's/^2 c2-0/2 c2-3/' -e 's/^6 c2-3/6 c2-0/' "$d/entries"; finals "$d"; rm "$d"/tail.*
sed -i -e 's/ok 2 c2-0/ok 6 c2-0/' -e 's/ok 6 c2-3/ok 2 c2-3/' "$d/hist.2"
expect check_realtime_order order "$d"
# but concurrent appends may commit in either order: c2-1 (invoked 2600)
# and c1-1 (acknowledged 3000) overlap, so swapping their seqs is legal
base "$d"; sed -i -e 's/^3 c1-1/3 c2-1/' -e 's/^4 c2-1/4 c1-1/' "$d/entries"; finals "$d"; rm "$d"/tail.*
sed -i 's/ok 3 c1-1/ok 4 c1-1/' "$d/hist.1"; sed -i 's/ok 4 c2-1/ok 3 c2-1/' "$d/hist.2"
"$T/chaoscheck" "$d" > "$tmp/out" 2>&1 && pass check_concurrent_either_order \
    || fail check_concurrent_either_order "$(tr '\n' '|' < "$tmp/out")"

base "$d"; sed -i '$d' "$d/final.3.json"
expect check_node_behind agree "$d"
base "$d"; sed -i 's/h3-c1-1/h3-forked/' "$d/final.2.json"
expect check_node_diverged agree "$d"
base "$d"; sed -i -e 's/^6 c2-3/7 c2-3/' -e 's/^7 barrier-1/8 barrier-1/' "$d/entries"; finals "$d"; rm "$d"/tail.*
expect check_seq_gap chain "$d"

base "$d"; printf '0 -\n1 c1-0\n3 c1-1\n' | tojson > "$d/tail.1.0.json"
expect check_tail_gap tail "$d"
base "$d"; printf '2 c2-0\n1 c1-0\n' | tojson > "$d/tail.1.0.json"
expect check_tail_reordered tail "$d"
base "$d"; printf '7 barrier-1\n8 c1-9\n' | tojson > "$d/tail.1.0.json"
expect check_tail_beyond_log tail "$d"
base "$d"; printf '1 c1-0\n2 c2-1\n' | tojson > "$d/tail.1.0.json"
expect check_tail_wrong_entry tail "$d"

base "$d"; echo "7000 heal" >> "$d/events"
expect check_no_commit_after_heal live "$d"
base "$d"
expect check_recovery_over_bound live "$d" --bound-ms 0
# avail: faults go on but a quorum can talk; the same bound applies
base "$d"; echo "3700 avail leader isolated" >> "$d/events"
"$T/chaoscheck" --bound-ms 3 "$d" > "$tmp/out" 2>&1 && pass check_avail_within_bound \
    || fail check_avail_within_bound "$(tr '\n' '|' < "$tmp/out")"
expect check_avail_over_bound live "$d" --bound-ms 2

base "$d"; echo "1 x 1 1 ok 0" > "$d/hist.3"
"$T/chaoscheck" "$d" > "$tmp/out" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q 'hist.3:1: malformed history line' "$tmp/out" && pass check_bad_input_exit_2 \
    || fail check_bad_input_exit_2 "exit $rc: $(cat "$tmp/out")"
