#!/bin/sh
# tests/cluster/init.sh: `trp-node init` writes a ready cluster (config, key
# with mode 0600, data directories), refuses to overwrite one without
# --force, assigns groups in blocks, and rejects bad options with exit 64.
# One "PASS name" or "FAIL name: reason" line per check.
BIN=${BIN:-build/bin}
node="$BIN/trp-node"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trp-init-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
check() { # name, reason, command...
    n=$1; r=$2; shift 2
    if "$@" >/dev/null 2>&1; then pass "$n"; else fail "$n" "$r"; fi
}

# 1. a three-node cluster
"$node" init --nodes 3 --dir "$tmp/c" --base-port 7450 > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 0 ] && pass init_exit_0 || fail init_exit_0 "exit $rc: $(cat "$tmp/out")"
check init_writes_config "no cluster.json" test -s "$tmp/c/cluster.json"
check init_makes_data_dirs "missing data dirs" test -d "$tmp/c/1" -a -d "$tmp/c/2" -a -d "$tmp/c/3"
check init_no_extra_dir "made a 4th dir" test ! -e "$tmp/c/4"
mode=$(stat -c %a "$tmp/c/cluster.key" 2>/dev/null)
[ "$mode" = 600 ] && pass init_key_mode_0600 || fail init_key_mode_0600 "mode $mode"
key=$(cat "$tmp/c/cluster.key" 2>/dev/null)
if printf '%s' "$key" | grep -Eq '^[0-9a-f]{64}$' && [ "$(wc -c < "$tmp/c/cluster.key")" -eq 65 ]; then
    pass init_key_is_64_hex_and_newline
else
    fail init_key_is_64_hex_and_newline "got '$key'"
fi
check init_ports_from_base "ports" grep -q '"127.0.0.1:7452"' "$tmp/c/cluster.json"
ls "$tmp/c" | grep -q '\.tmp\.' && fail init_no_tmp_files "temporary files left" || pass init_no_tmp_files

# 2. refuses to overwrite, leaves the key alone
"$node" init --nodes 3 --dir "$tmp/c" > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 64 ] && pass init_refuses_overwrite_64 || fail init_refuses_overwrite_64 "exit $rc"
grep -q 'cluster.json exists; refusing to overwrite' "$tmp/out" && pass init_refusal_says_why \
    || fail init_refusal_says_why "$(cat "$tmp/out")"
[ "$(cat "$tmp/c/cluster.key")" = "$key" ] && pass init_refusal_keeps_key \
    || fail init_refusal_keeps_key "key changed"
"$node" init --nodes 3 --dir "$tmp/c" --force > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 0 ] && [ "$(cat "$tmp/c/cluster.key")" != "$key" ] && pass init_force_new_key \
    || fail init_force_new_key "exit $rc"

# 3. groups in blocks: 1,2,3 cloudA; 4,5,6 cloudB; 7 nodes over 3 groups: 3,2,2
"$node" init --nodes 6 --dir "$tmp/g" --groups cloudA,cloudB > "$tmp/out" 2>&1
groups=$(grep '"group"' "$tmp/g/cluster.json" | sed 's/.*"group":[^"]*"\([^"]*\)".*/\1/' | tr '\n' ' ')
[ "$groups" = "cloudA cloudA cloudA cloudB cloudB cloudB " ] && pass init_groups_in_blocks \
    || fail init_groups_in_blocks "got '$groups'"
"$node" init --nodes 7 --dir "$tmp/g3" --groups a,b,c > "$tmp/out" 2>&1
groups=$(grep '"group"' "$tmp/g3/cluster.json" | sed 's/.*"group":[^"]*"\([^"]*\)".*/\1/' | tr '\n' ' ')
[ "$groups" = "a a a b b c c " ] && pass init_groups_uneven_blocks || fail init_groups_uneven_blocks "got '$groups'"

# 4. bad options: exit 64 and a message naming the option
bad() { # name, expected text, args...
    n=$1; want=$2; shift 2
    "$node" init "$@" > "$tmp/out" 2>&1
    rc=$?
    if [ $rc -eq 64 ] && grep -q -- "$want" "$tmp/out"; then pass "$n"
    else fail "$n" "exit $rc: $(cat "$tmp/out")"; fi
}
bad init_needs_nodes "--nodes and --dir are required" --dir "$tmp/x"
bad init_nodes_range "--nodes: 0 out of range" --nodes 0 --dir "$tmp/x"
bad init_nodes_number "--nodes: 'three' is not a number" --nodes three --dir "$tmp/x"
bad init_port_overflow "past port 65535" --nodes 3 --dir "$tmp/x" --base-port 65534
bad init_groups_more_than_nodes "more groups than nodes" --nodes 2 --dir "$tmp/x" --groups a,b,c
bad init_group_name "must be characters" --nodes 2 --dir "$tmp/x" --groups 'a b'
bad init_datagram_range "--max-datagram: 100 out of range" --nodes 2 --dir "$tmp/x" --max-datagram 100
check init_bad_leaves_nothing "wrote files after refusing" test ! -e "$tmp/x/cluster.json"

# 5. --max-datagram and --name end up in the config
"$node" init --nodes 1 --dir "$tmp/s" --max-datagram 1400 --name solo > "$tmp/out" 2>&1
grep -q '"max_datagram":[[:space:]]*1400' "$tmp/s/cluster.json" && grep -q '"cluster":[[:space:]]*"solo"' "$tmp/s/cluster.json" \
    && pass init_max_datagram_and_name || fail init_max_datagram_and_name "$(cat "$tmp/s/cluster.json")"

# -v: the node reports the address it listens on and the log it uses
"$node" -v -c "$tmp/c/cluster.json" -i 1 > "$tmp/vout" 2>&1 &
vpid=$!
i=0
until grep -q 'listening on' "$tmp/vout" || [ $i -ge 50 ]; do sleep 0.1; i=$((i + 1)); done
kill "$vpid" 2>/dev/null
wait "$vpid" 2>/dev/null
grep -q "node 1: listening on 127.0.0.1:[0-9][0-9]*, log .*c/1$" "$tmp/vout" && pass node_verbose_address \
    || fail node_verbose_address "$(head -3 "$tmp/vout")"

# an error found while resolving addresses names the config file too
if getent ahosts localhost 2>/dev/null | head -1 | grep -q '^127\.0\.0\.1 '; then
    sed 's/"127.0.0.1:7101"/"localhost:7100"/' "$tmp/c/cluster.json" > "$tmp/c/dup.json"
    "$node" -c "$tmp/c/dup.json" -i 1 > "$tmp/out" 2>&1
    rc=$?
    [ $rc -eq 78 ] && grep -q "dup.json: nodes\[1\].address: localhost:7100 resolves to the same address" "$tmp/out" &&
        pass node_resolve_error_names_file || fail node_resolve_error_names_file "exit $rc: $(cat "$tmp/out")"
fi

# 6. run mode argument checks: a node id not in the config is refused (78)
"$node" -c "$tmp/c/cluster.json" -i 9 > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 78 ] && grep -q 'no node with id 9' "$tmp/out" && pass node_run_unknown_id_78 \
    || fail node_run_unknown_id_78 "exit $rc: $(cat "$tmp/out")"
"$node" --version | grep -q '^trp-node (trp) [0-9]' && pass node_version || fail node_version "no version"
"$node" --help | grep -q 'init --nodes N --dir DIR' && pass node_help || fail node_help "no usage"
"$node" bogus > /dev/null 2>&1
rc=$?
[ $rc -eq 64 ] && pass node_unknown_command_64 || fail node_unknown_command_64 "exit $rc"
# bad usage says what is wrong, then the usage; exit 64
n=0
for args in "init --bogus|init: unknown option '--bogus'" "init --nodes|init: option '--nodes' needs an argument" \
    "status --frob|status: unknown option '--frob'" "-x|unknown option '-x'" "-c $tmp/c/cluster.json|-i ID is required" "init -xf|init: unknown option '-x'" "-Zv|unknown option '-Z'"; do
    a=${args%%|*} want=${args#*|} n=$((n + 1))
    # shellcheck disable=SC2086
    TRP_CONFIG= "$BIN/trp-node" $a > "$tmp/out" 2>&1
    rc=$?
    [ $rc -eq 64 ] && head -1 "$tmp/out" | grep -qF "trp-node: $want" && grep -q '^usage: ' "$tmp/out" &&
        pass "node_usage_$n" || fail "node_usage_$n" "exit $rc: $(head -1 "$tmp/out")"
done

exit 0
