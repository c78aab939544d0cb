#!/bin/sh
# tests/cluster/spare.sh: spare followers with real processes. In a 3-node
# cluster the leader needs one follower for a quorum (the first to
# replicate) and calls the other a spare (it batches its syncs); both sides
# say so in their status. Kill -9
# the needed follower: appends go on through the spare, which the leader
# then needs. The spare's batched entries survive a clean stop (every
# replica verifies and agrees), and with timeouts.spare_sync_ms 0 nobody is
# a spare. One "PASS name" / "FAIL name: reason" each.
. tests/cluster/lib.sh

# peer_spare ID PEER: what node ID (the leader) says of PEER's spare flag
peer_spare() {
    status_of "$1" | jq -r ".peers[] | select(.id == $2) | .spare"
}
# own_spare ID: what node ID says of itself
own_spare() {
    status_of "$1" | jq -r '.spare'
}
# wait_until SECONDS COMMAND...: until the command succeeds (polls 10/s)
wait_until() {
    left=$(($1 * 10)); shift
    while [ $left -gt 0 ]; do
        "$@" && return 0
        sleep 0.1
        left=$((left - 1))
    done
    return 1
}
spare_is() { [ "$(peer_spare "$1" "$2")" = "$3" ] && [ "$(own_spare "$2")" = "$3" ]; }

make_cluster 3 || { fail init "trp-node init failed"; exit 0; }
for i in 1 2 3; do start_node $i; done
leader=$(wait_leader)
[ -n "$leader" ] && pass spare_leader_elected || { fail spare_leader_elected "no leader"; exit 0; }
seq 1 100 | "$BIN/trp-append" -c "$C" > "$tmp/seqs"
[ "$(wc -l < "$tmp/seqs")" = 100 ] && pass spare_append_100 || fail spare_append_100 "$(wc -l < "$tmp/seqs") seqs"

# one follower is needed (f1), the other (f2) a spare; both sides agree
f1= f2=
one_spare() {
    f1= f2=
    for i in 1 2 3; do
        [ "$i" = "$leader" ] && continue
        case "$(peer_spare "$leader" "$i")" in
        true) [ -z "$f2" ] && f2=$i || return 1 ;;
        false) [ -z "$f1" ] && f1=$i || return 1 ;;
        *) return 1 ;;
        esac
    done
    [ -n "$f1" ] && [ -n "$f2" ] && spare_is "$leader" "$f2" true && spare_is "$leader" "$f1" false
}
if wait_until 3 one_spare; then
    pass one_spare_of_two_followers
else
    fail one_spare_of_two_followers "$(status_of "$leader" | jq -c '[.peers[] | {id, spare}]')"
    exit 0
fi
# a spare still commits what it has (at most spare_sync_ms late)
c=$(status_of "$f2" | jq -r '.commit')
[ "$c" -ge 100 ] 2>/dev/null && pass spare_commits || fail spare_commits "commit '$c'"
# a linearizable tail from the spare, right after appends: its own commit
# lags, yet -n 1 is the last entry the leader confirmed, and only it
bad=
for k in 1 2 3 4 5; do
    seq $((k * 1000 + 1)) $((k * 1000 + 20)) | "$BIN/trp-append" -c "$C" > /dev/null
    got=$("$BIN/trp-tail" -c "$C" -i "$f2" --linearizable -n 1 --timeout 10 | tr '\n' ' ')
    [ "$got" = "$((k * 1000 + 20)) " ] || bad="$bad round $k: '$got';"
done
[ -z "$bad" ] && pass linearizable_tail_from_a_lagging_spare || fail linearizable_tail_from_a_lagging_spare "$bad"

# kill -9 the needed follower: the spare carries the quorum
stop_node "$f1" 9
seq 101 200 | "$BIN/trp-append" -c "$C" --timeout 10 > "$tmp/seqs2"
rc=$?
[ $rc -eq 0 ] && [ "$(sort -nu "$tmp/seqs2" | wc -l)" = 100 ] \
    && pass appends_go_on_through_the_spare || fail appends_go_on_through_the_spare "exit $rc, $(wc -l < "$tmp/seqs2") seqs"
wait_until 3 spare_is "$leader" "$f2" false \
    && pass spare_becomes_needed || fail spare_becomes_needed "leader says $(peer_spare "$leader" "$f2"), $f2 says $(own_spare "$f2")"

# the needed follower comes back and catches up; a clean stop of all keeps
# every entry on every replica, the spare's batched ones included
start_node "$f1"
"$BIN/trp-tail" -c "$C" -i "$f1" --linearizable --from 0 --timeout 20 > "$tmp/t1"
seq 201 300 | "$BIN/trp-append" -c "$C" --timeout 10 > /dev/null
"$BIN/trp-tail" -c "$C" -i "$leader" --linearizable --from 0 --timeout 20 > "$tmp/tl"
# every node holds every entry (the spare's may wait for its batched sync)
same_next() {
    a=$(status_of 1 | jq -r .next) b=$(status_of 2 | jq -r .next) c=$(status_of 3 | jq -r .next)
    [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$c" ]
}
wait_until 5 same_next || fail all_nodes_hold_everything "next: $a $b $c"
for i in 1 2 3; do stop_node $i; done
"$BIN/trp-verify" "$tmp/c/1" "$tmp/c/2" "$tmp/c/3" > "$tmp/out" 2>&1
rc=$?
n=$(wc -l < "$tmp/tl")
[ $rc -eq 0 ] && grep -q 'PASS 3 replicas agree' "$tmp/out" && [ "$n" -ge 300 ] \
    && pass spare_replicas_agree_after_stop || fail spare_replicas_agree_after_stop "exit $rc, $n entries: $(cat "$tmp/out")"
# ... and keeps it through a clean stop: the same head on every disk
for i in 1 2 3; do
    "$BIN/trp-verify" --json "$tmp/c/$i" 2>/dev/null | jq -r .head > "$tmp/h$i"
done
[ -s "$tmp/h1" ] && cmp -s "$tmp/h1" "$tmp/h2" && cmp -s "$tmp/h1" "$tmp/h3" \
    && pass spare_keeps_everything_on_stop || fail spare_keeps_everything_on_stop "heads $(cat "$tmp"/h?)"

# spare_sync_ms 0: no spares
jq '.timeouts.spare_sync_ms = 0' "$C" > "$tmp/nospare.json" && mv "$tmp/nospare.json" "$C"
for i in 1 2 3; do start_node $i; done
leader=$(wait_leader)
seq 1 10 | "$BIN/trp-append" -c "$C" --timeout 10 > /dev/null
spares=$(status_of "$leader" | jq '[.peers[] | select(.spare == true)] | length')
[ "$spares" = 0 ] && pass no_spares_when_disabled || fail no_spares_when_disabled "$spares spares"
exit 0
