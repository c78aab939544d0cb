#!/bin/sh
# tests/cluster/hostile.sh: a process bound as node 2 of a cluster made by
# `trp-node init` receives a corpus of hostile datagrams over real UDP
# (tests/tools/hostile_dgrams) and drops every one under the right counter
# (tests/tools/wire_sink prints them), at max_datagram 1400 and 65000.
# One "PASS name" or "FAIL name: reason" line per check.
BIN=${BIN:-build/bin}
T=${T:-build/t}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trp-hostile-XXXXXX") || exit 1
sink_pid=
cleanup() {
    [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

COUNT=3000
for size in 1400 65000; do
    name=hostile_$size
    ok=
    # a port range from our pid; retry elsewhere if another test holds it
    for attempt in 1 2 3; do
        base=$((20000 + ($$ * 7 + attempt * 1009 + size) % 40000))
        rm -rf "$tmp/c"
        "$BIN/trp-node" init --nodes 3 --dir "$tmp/c" --base-port $base --max-datagram $size \
            > /dev/null 2>&1 || { echo "FAIL ${name}_init: trp-node init failed"; continue 2; }
        "$T/wire_sink" "$tmp/c/cluster.json" 2 $COUNT 30 > "$tmp/sink" 2> "$tmp/sink.err" &
        sink_pid=$!
        i=0
        while [ $i -lt 200 ] && ! grep -q ready "$tmp/sink" 2>/dev/null && kill -0 $sink_pid 2>/dev/null; do
            sleep 0.05; i=$((i + 1))
        done
        if grep -q ready "$tmp/sink"; then ok=1; break; fi
        wait $sink_pid 2>/dev/null; sink_pid=
    done
    if [ -z "$ok" ]; then
        echo "FAIL ${name}_bind: $(cat "$tmp/sink.err")"
        continue
    fi
    "$T/hostile_dgrams" "$tmp/c/cluster.json" 2 $COUNT $size > "$tmp/sent" 2> "$tmp/sent.err"
    rc=$?
    [ $rc -eq 0 ] && echo "PASS ${name}_sent" || echo "FAIL ${name}_sent: $(cat "$tmp/sent.err")"
    wait $sink_pid
    src=$?
    sink_pid=
    [ $src -eq 0 ] && echo "PASS ${name}_sink_exit_0" || echo "FAIL ${name}_sink_exit_0: exit $src $(cat "$tmp/sink.err")"
    get() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }
    total=0
    for kind in forged wrong_cluster wrong_receiver unknown_sender malformed oversized; do
        s=$(awk -v k="$kind" '$1 == "sent" && $2 == k { print $3 }' "$tmp/sent")
        r=$(get "$tmp/sink" $kind)
        total=$((total + ${s:-0}))
        if [ -n "$s" ] && [ "$s" -gt 0 ] && [ "$s" = "$r" ]; then
            echo "PASS ${name}_counted_$kind"
        else
            echo "FAIL ${name}_counted_$kind: sent ${s:-?}, counted ${r:-?}"
        fi
    done
    recv=$(get "$tmp/sink" recv_datagrams)
    [ "$total" -eq $COUNT ] && [ "$recv" = $COUNT ] && echo "PASS ${name}_all_received" \
        || echo "FAIL ${name}_all_received: sent $total of $COUNT, received ${recv:-?} $(cat "$tmp/sink.err")"
    acc=$(get "$tmp/sink" accepted); stale=$(get "$tmp/sink" stale); nack=$(get "$tmp/sink" nack)
    [ "$acc" = 0 ] && [ "$stale" = 0 ] && [ "$nack" = 0 ] && echo "PASS ${name}_nothing_accepted" \
        || echo "FAIL ${name}_nothing_accepted: accepted $acc, stale $stale, nack ${nack:-?}"
done
exit 0
