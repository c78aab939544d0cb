#!/bin/sh
# tests/cluster/bigloss.sh: 1 MiB entries (about 800 fragments of 1400-byte
# datagrams) appended with `trp-append -c` replicate to every node of a
# 3-node cluster while the chaos proxy (tests/tools/chaosproxy) drops 8% and
# duplicates 2% of the datagrams between nodes. Without recovery of lost
# fragments an entry would need all ~800 to arrive in one transmission
# (0.92^800, never); with it each costs about 800/0.92 datagrams.
# One "PASS name" or "FAIL name: reason" line per check.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../proxyconf.sh"

ENTRIES=3
proxied_cluster '* * drop=0.08 dup=0.02' 7 ||
    { fail bigloss_proxy "chaosproxy did not start: $(cat "$tmp/proxy.err")"; exit 0; }
for k in 1 2 3; do start_node $k "$tmp/c/cluster.json"; done
C=$tmp/c/client.json # status and appends: straight to the nodes
leader=$(wait_leader) && pass bigloss_leader || { fail bigloss_leader "no leader"; exit 0; }

i=0
: > "$tmp/seqs"
while [ $i -lt $ENTRIES ]; do
    head -c 1048576 /dev/urandom > "$tmp/entry$i"
    "$BIN/trp-append" -c "$C" --timeout 60 --whole < "$tmp/entry$i" >> "$tmp/seqs" 2> "$tmp/append.err" ||
        { fail bigloss_append "entry $i: $(cat "$tmp/append.err")"; exit 0; }
    i=$((i + 1))
done
[ "$(wc -l < "$tmp/seqs")" = $ENTRIES ] && pass bigloss_appended || fail bigloss_appended "$(cat "$tmp/seqs")"
last=$(tail -1 "$tmp/seqs")

# every node gets every entry: its head reaches the last seq, same hash everywhere
n=0
while :; do
    heads=
    for k in 1 2 3; do
        heads="$heads $(status_of $k | sed -n 's/.*"head":{"seq":"\{0,1\}\([0-9]*\)"\{0,1\},"hash":"\([0-9a-f]*\)".*/\1:\2/p')"
    done
    set -- $heads
    if [ "${1%%:*}" = "$last" ] && [ "$1" = "$2" ] && [ "$2" = "$3" ]; then break; fi
    n=$((n + 1))
    [ $n -ge 120 ] && break
    sleep 0.5
done
[ "${1%%:*}" = "$last" ] && [ "$1" = "$2" ] && [ "$2" = "$3" ] && pass bigloss_replicated_everywhere \
    || fail bigloss_replicated_everywhere "last seq $last, heads$heads"

# the entries are intact on a follower's disk
f=1; [ "$leader" = 1 ] && f=2
i=0; intact=1
for s in $(cat "$tmp/seqs"); do
    # equal heads say the follower holds the entry; it may learn that the
    # entry is committed (what trp-tail serves) a heartbeat later
    n=0
    while :; do
        "$BIN/trp-tail" -c "$C" -i $f --from "$s" --count 1 -o raw > "$tmp/got" 2>/dev/null
        [ -s "$tmp/got" ] || [ $n -ge 40 ] && break
        n=$((n + 1))
        sleep 0.25
    done
    head -c 1048576 "$tmp/got" | cmp -s - "$tmp/entry$i" || intact=
    i=$((i + 1))
done
[ -n "$intact" ] && pass bigloss_entries_intact || fail bigloss_entries_intact "a follower's copy differs"

# the network really lost datagrams, and the nodes really recovered fragments
kill -USR1 "$proxy_pid"; sleep 0.3
dropped=$(awk '!/^#/ && $1 != "other" { d += $5 } END { print d + 0 }' "$tmp/stats")
resent=0
for k in 1 2 3; do
    r=$(status_of $k | sed -n 's/.*"recovery":{[^}]*"resent":\([0-9]*\).*/\1/p')
    resent=$((resent + ${r:-0}))
done
echo "# proxy dropped $dropped datagrams between nodes; nodes resent $resent fragments"
[ "${dropped:-0}" -gt 0 ] && [ "$resent" -gt 0 ] && pass bigloss_recovered_losses \
    || fail bigloss_recovered_losses "proxy dropped ${dropped:-?}, nodes resent $resent"
for k in 1 2 3; do
    eval "p=\$pid_$k"
    kill -0 "$p" 2>/dev/null || { fail bigloss_nodes_alive "node $k exited"; exit 0; }
done
pass bigloss_nodes_alive
exit 0
