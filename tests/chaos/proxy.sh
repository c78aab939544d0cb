#!/bin/sh
# tests/chaos/proxy.sh: chaosproxy against plain UDP endpoints (no trp-node):
# a clean link delivers everything in order, block is per direction, drop
# and dup change the counts, delay with jitter reorders without loss, a
# non-transitive partition cuts only the named pair, and SIGHUP changes the
# rules of a running proxy. One "PASS name" / "FAIL name: reason" per check.
T=${T:-build/t}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trp-chaosproxy-XXXXXX") || exit 1
proxy_pid=
cleanup() { [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }

p=${CHAOS_PROXY_TEST_PORT:-$((30000 + ($$ % 130) * 20))} # from the PID: concurrent suites rarely collide
(umask 077; printf '%064d\n' 0 > "$tmp/cluster.key")
cat > "$tmp/cluster.json" <<JSON
{ "cluster": "proxytest", "nodes": [
  { "id": 1, "address": "127.0.0.1:$p", "bind": "127.0.0.1:$((p + 10))" },
  { "id": 2, "address": "127.0.0.1:$((p + 1))", "bind": "127.0.0.1:$((p + 11))" },
  { "id": 3, "address": "127.0.0.1:$((p + 2))", "bind": "127.0.0.1:$((p + 12))" } ] }
JSON
: > "$tmp/rules"
"$T/chaosproxy" -c "$tmp/cluster.json" -r "$tmp/rules" -s 42 -S "$tmp/stats" 2> "$tmp/proxy.err" &
proxy_pid=$!
sleep 0.3

rules() { printf '%s\n' "$@" > "$tmp/rules"; kill -HUP "$proxy_pid"; sleep 0.2; }
# through FROM TO COUNT [GAP_US] [QUIET_MS]: send FROM->TO via the proxy, print what TO's bind got
through() {
    "$T/chaosudp" recv "127.0.0.1:$(($p + 9 + $2))" "${5:-400}" > "$tmp/recv" &
    r=$!
    sleep 0.1
    "$T/chaosudp" send "127.0.0.1:$(($p - 1 + $2))" "$1" "$2" "$3" "${4:-100}"
    wait "$r"
    cat "$tmp/recv"
}

out=$(through 1 2 500)
[ "$out" = "received 500 distinct 500 inversions 0" ] && pass proxy_clean_link || fail proxy_clean_link "$out"

rules "1 2 block"
out=$(through 1 2 200)
[ "$out" = "received 0 distinct 0 inversions 0" ] && pass proxy_block || fail proxy_block "$out"
out=$(through 2 1 200)
[ "$out" = "received 200 distinct 200 inversions 0" ] && pass proxy_block_is_one_way || fail proxy_block_is_one_way "$out"

rules "* * drop=0.5"
out=$(through 1 3 1000)
n=$(echo "$out" | awk '{print $2}')
[ "$n" -gt 350 ] && [ "$n" -lt 650 ] && pass proxy_drop_half || fail proxy_drop_half "$out"

rules "* * clear" "2 3 dup=1"
out=$(through 2 3 300)
[ "$out" = "received 600 distinct 300 inversions 0" ] && pass proxy_dup_all || fail proxy_dup_all "$out"

rules "* * clear" "* * delay=5 jitter=40"
out=$(through 3 1 300 200 600)
set -- $out
[ "$2" = 300 ] && [ "$4" = 300 ] && [ "$6" -gt 0 ] && pass proxy_jitter_reorders_without_loss \
    || fail proxy_jitter_reorders_without_loss "$out"

# a slow link: 512 kbit/s moves one 64-byte datagram per ms, in order; with
# 5 KB of buffer a burst of 500 in 50 ms loses what does not fit (about 78
# wait, 50 leave meanwhile); with 100 KB all arrive, still in order
rules "* * clear" "* * rate=512 queue=5"
out=$(through 1 2 500 100)
set -- $out
[ "$2" -ge 90 ] && [ "$2" -le 220 ] && [ "$6" = 0 ] && pass proxy_rate_drops_what_does_not_fit \
    || fail proxy_rate_drops_what_does_not_fit "$out"
rules "* * clear" "* * rate=512 queue=100"
out=$(through 1 2 500 100)
[ "$out" = "received 500 distinct 500 inversions 0" ] && pass proxy_rate_queues_in_order \
    || fail proxy_rate_queues_in_order "$out"

# non-transitive: 1 and 3 cannot talk, both still reach 2 and 2 reaches both
rules "* * clear" "1 3 block" "3 1 block"
ok=1
for l in "1 2" "2 1" "2 3" "3 2"; do
    set -- $l
    out=$(through "$1" "$2" 50)
    [ "$out" = "received 50 distinct 50 inversions 0" ] || { ok=0; fail proxy_nontransitive "$l: $out"; }
done
for l in "1 3" "3 1"; do
    set -- $l
    out=$(through "$1" "$2" 50)
    [ "$out" = "received 0 distinct 0 inversions 0" ] || { ok=0; fail proxy_nontransitive "$l: $out"; }
done
[ $ok = 1 ] && pass proxy_nontransitive

# clients (top bit set in the sender id) are never judged
rules "* * block"
out=$(through 9223372036854775809 2 50)
[ "$out" = "received 50 distinct 50 inversions 0" ] && pass proxy_clients_pass || fail proxy_clients_pass "$out"

# a bad rules file is refused and the old rules stay
printf '1 2 drop=7\n' > "$tmp/rules"; kill -HUP "$proxy_pid"; sleep 0.2
out=$(through 1 2 20)
[ "$out" = "received 0 distinct 0 inversions 0" ] && grep -q "bad setting 'drop=7'" "$tmp/proxy.err" \
    && pass proxy_bad_rules_keep_old || fail proxy_bad_rules_keep_old "$out / $(cat "$tmp/proxy.err")"

kill -USR1 "$proxy_pid"; sleep 0.2
awk '$1 == 1 && $2 == 2 { r = $3; b = $6 } $1 == 3 && $2 == 1 { f = $4 }
     END { exit !(r >= 720 && b >= 220 && f == 300) }' "$tmp/stats" \
    && pass proxy_stats || fail proxy_stats "$(cat "$tmp/stats")"
kill "$proxy_pid"; wait "$proxy_pid"; rc=$?; proxy_pid=
[ $rc -eq 0 ] && pass proxy_sigterm_clean_exit || fail proxy_sigterm_clean_exit "exit $rc"
