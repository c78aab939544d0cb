#!/bin/sh
# tests/cli/crash.sh: kill -9 trp-append in the middle of a large pipe,
# then reopen: every seq it printed is there with the right payload, the
# seqs it printed are exactly 0..L in order, and the log verifies. Twice,
# so that the second run also recovers a log that already had a crash;
# a third time with trp-tail -f following, which must not have shown
# anything the recovered log lacks.
. tests/cli/lib.sh
D=$TMP/log

crash_once() { # name, lines-before-kill
    genlines 5000000 100 | trp-append -d "$D" > "$TMP/seqs" 2>"$TMP/aerr" &
    apid=$!
    BG_PIDS="$BG_PIDS $apid"
    if ! wait_for 30 sh -c "[ \$(wc -l < '$TMP/seqs') -ge $2 ]"; then
        fail "$1" "trp-append printed fewer than $2 seqs: $(cat "$TMP/aerr")"
        return
    fi
    kill -9 "$apid"
    wait "$apid" 2>/dev/null
    # Only whole lines count as printed: output is flushed in 64 KiB
    # blocks, so the kill may cut the last line (it then has no newline).
    if [ -n "$(tail -c 1 "$TMP/seqs")" ]; then sed '$d' "$TMP/seqs"; else cat "$TMP/seqs"; fi |
        sed -n '/^[0-9][0-9]*$/p' > "$TMP/printed"
    first=$(head -1 "$TMP/printed")
    last=$(tail -1 "$TMP/printed")
    n=$(wc -l < "$TMP/printed" | tr -d ' ')
    # Reopen as a writer (recovery), then check.
    trp-append -d "$D" -q < /dev/null || { fail "$1" "reopen failed"; return; }
    if [ "$(awk -v f="$first" 'NR == 1 { s = $1 } { if ($1 != s + NR - 1) bad = 1 } END { print bad + 0 }' "$TMP/printed")" != 0 ]; then
        fail "$1" "printed seqs are not consecutive"
    elif [ "$(trp-tail -d "$D" --from "$last" --count 1 | cut -c1-12)" != "$(printf '%sxxxxxxxxxxxx' $((last - first + 1)) | cut -c1-12)" ]; then
        fail "$1" "entry $last (the last printed) is missing or wrong: $(trp-tail -d "$D" --from "$last" --count 1 | head -c 40)"
    elif [ "$(trp-tail -d "$D" --from "$first" --count 1 | cut -c1-2)" != "1x" ]; then
        fail "$1" "entry $first (the first printed) is wrong"
    else
        pass "$1"
    fi
    expect "$1-verify" 0 "" trp-verify -q "$D"
    total=$(trp-verify -q --json "$D" | jf entries)
    check "$1-count" test "$total" -ge "$((last + 1))"
}

crash_once crash-first 20000
crash_once crash-second 50000

# A follower during a crash shows only committed (durable) entries: after
# recovery, what it printed is exactly the log's first entries from where
# it started.
start=$(( $(trp-verify -q --json "$D" | jf last) + 1 ))
trp-tail -d "$D" --from "$start" -f > "$TMP/followed" 2>&1 &
tpid=$!
BG_PIDS="$BG_PIDS $tpid"
genlines 5000000 100 | trp-append -d "$D" > "$TMP/seqs3" &
apid=$!
BG_PIDS="$BG_PIDS $apid"
wait_for 30 sh -c "[ \$(wc -l < '$TMP/followed') -ge 30000 ]"
kill -9 "$apid"
wait "$apid" 2>/dev/null
trp-append -d "$D" -q < /dev/null
kill "$tpid" 2>/dev/null
wait "$tpid" 2>/dev/null
# Only whole lines count: the follower goes on with what recovery kept
# and may be stopped in the middle of writing an entry.
n=$(wc -l < "$TMP/followed" | tr -d ' ')
head -n "$n" "$TMP/followed" > "$TMP/followed-whole"
trp-tail -d "$D" --from "$start" --count "$n" > "$TMP/stored"
if [ "$n" -lt 30000 ]; then
    fail follower-during-crash "the follower printed only $n entries"
elif ! cmp -s "$TMP/followed-whole" "$TMP/stored"; then
    fail follower-during-crash "the follower printed entries the recovered log does not hold"
else
    pass follower-during-crash
fi

exit 0
