#!/bin/sh
# tests/cluster/diskfail.sh: a node whose disk fails stops by itself with
# one line naming the file and the reason, exit 74 (sysexits EX_IOERR), and
# the others go on. Two places: the write of its term and vote (meta, with
# fsync failing: it used to wait for ever, deaf to SIGTERM, holding its
# port and lock) and its log's segment writes (a full disk).
# One "PASS name" / "FAIL name: reason" each.
. tests/cluster/lib.sh

# exits_by_itself PID: it ends within 10 s (its status in rc), or is killed
exits_by_itself() {
    n=0
    while kill -0 "$1" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
    if kill -0 "$1" 2>/dev/null; then
        kill -9 "$1"
        return 1
    fi
    wait "$1"
    rc=$?
}

make_cluster 3 || { fail diskfail_init "trp-node init failed"; exit 0; }
# node 1's log exists before the fault (its creation syncs the directory)
timeout 1 "$BIN/trp-node" -q -c "$C" -i 1 2> /dev/null
start_node 2
start_node 3
# every fsync fails: only the meta write uses fsync (the log uses fdatasync)
"$T/errinject" EIO fsync "$BIN/trp-node" -c "$C" -i 1 2> "$tmp/n1.err" &
p1=$!
PIDS="$PIDS $p1"
if ! exits_by_itself $p1; then
    fail diskfail_meta_exits "still running after 10 s: $(cat "$tmp/n1.err")"
else
    lines=$(grep -c 'meta' "$tmp/n1.err")
    [ $rc = 74 ] && [ "$lines" = 1 ] && grep -q 'meta.*Input/output error' "$tmp/n1.err" \
        && pass diskfail_meta_exits \
        || fail diskfail_meta_exits "exit $rc, $lines lines: $(cat "$tmp/n1.err")"
fi
l=$(wait_leader)
s=$(echo after-meta | "$BIN/trp-append" -c "$C" --timeout 10 2> "$tmp/err")
[ -n "$l" ] && [ -n "$s" ] && pass diskfail_others_go_on || fail diskfail_others_go_on "$(cat "$tmp/err")"

# node 1 again, now with a full disk for its segment writes
"$T/errinject" ENOSPC bigwrite "$BIN/trp-node" -c "$C" -i 1 2> "$tmp/n1b.err" &
p1=$!
PIDS="$PIDS $p1"
seq 1 200 | "$BIN/trp-append" -c "$C" -q --timeout 10 || fail diskfail_full_appends "exit $?"
if ! exits_by_itself $p1; then
    fail diskfail_full_exits "still running after 10 s: $(cat "$tmp/n1b.err")"
else
    [ $rc = 74 ] && [ "$(wc -l < "$tmp/n1b.err")" -le 3 ] &&
        grep -q 'No space left on device' "$tmp/n1b.err" && pass diskfail_full_exits \
        || fail diskfail_full_exits "exit $rc: $(cat "$tmp/n1b.err")"
fi
# back on a working disk it catches up, and all three agree
start_node 1
echo last | "$BIN/trp-append" -c "$C" -q --timeout 10 || fail diskfail_last "exit $?"
commit_of() { status_of "$1" | sed -n 's/.*"commit":"\([0-9]*\)".*/\1/p'; }
n=0
until [ -n "$(commit_of 1)" ] && [ "$(commit_of 1)" = "$(commit_of 2)" ]; do
    sleep 0.1; n=$((n + 1)); [ $n -gt 100 ] && break
done
for i in 1 2 3; do stop_node $i; done
"$BIN/trp-verify" "$tmp/c/1" "$tmp/c/2" "$tmp/c/3" > "$tmp/out" 2>&1 && grep -q 'PASS 3 replicas agree' "$tmp/out" \
    && pass diskfail_replicas_agree || fail diskfail_replicas_agree "$(tail -3 "$tmp/out")"
