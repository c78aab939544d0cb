#!/bin/sh
# tests/cli/tail.sh: every flag and exit status of trp-tail: -n, --from,
# --count, -o raw|json, -z, -f (woken by new appends; quiet end when its
# reader goes away), and the errors.
. tests/cli/lib.sh
D=$TMP/log
seq 1 30 | trp-append -d "$D" -q

expect help 0 "" trp-tail --help
check help-usage grep -q '^Usage: trp-tail -d DIR' "$TMP/out"
expect version 0 "" trp-tail --version
expect bad-flag 64 "unknown option" trp-tail -d "$D" -x
expect no-dir-flag 64 "no log directory" trp-tail
expect bad-n 64 "-n: 'ten' is not" trp-tail -d "$D" -n ten
expect bad-from 64 "from" trp-tail -d "$D" --from 1e5
expect bad-count 64 "count" trp-tail -d "$D" --count -1
expect bad-format 64 "unknown format 'xml'" trp-tail -d "$D" -o xml
expect extra-arg 64 "unexpected argument" trp-tail -d "$D" extra
expect missing 66 "nothere" trp-tail -d "$TMP/nothere"
mkdir "$TMP/other" && echo x > "$TMP/other/f"
expect not-a-log 65 "not a trp log" trp-tail -d "$TMP/other"

expect default-10 0 "" trp-tail -d "$D"
same default-10-lines "$(tr '\n' ' ' < "$TMP/out")" "21 22 23 24 25 26 27 28 29 30 "
same n3 "$(trp-tail -d "$D" -n 3 | tr '\n' ' ')" "28 29 30 "
same n0 "$(trp-tail -d "$D" -n 0)" ""
same n-more-than-log "$(trp-tail -d "$D" -n 1000 | wc -l | tr -d ' ')" "30"
same from "$(trp-tail -d "$D" --from 27 | tr '\n' ' ')" "28 29 30 "
same from-count "$(trp-tail -d "$D" --from 0 --count 2 | tr '\n' ' ')" "1 2 "
expect from-end 0 "" trp-tail -d "$D" --from 30
same from-end-out "$(cat "$TMP/out")" ""
expect from-beyond 0 "" trp-tail -d "$D" --from 99999999999999999999999
same from-beyond-out "$(cat "$TMP/out")" ""
same count-0 "$(trp-tail -d "$D" --count 0)" ""
same null "$(trp-tail -d "$D" -n 2 -z | od -An -c | tr -s ' ')" "$(printf '29\00030\000' | od -An -c | tr -s ' ')"

# JSON Lines: the documented fields, seq a string, hash chain linked.
trp-tail -d "$D" -n 2 -o json > "$TMP/j"
same json-lines "$(wc -l < "$TMP/j" | tr -d ' ')" "2"
same json-fields "$(head -1 "$TMP/j" | jf seq term type len text data)" '28 0 data 2 29 29'
check json-seq-string grep -q '^{"seq":"28","term":0,"type":"data","hash":"[0-9a-f]\{64\}","prev":"[0-9a-f]\{64\}","len":2,"text":"29","data":29}$' "$TMP/j"
same json-chain "$(sed -n 1p "$TMP/j" | jf hash)" "$(sed -n 2p "$TMP/j" | jf prev)"
trp-append -d "$D" -q '{"a": [1, "x"]}' 'not json' '"str"'
same json-data-object "$(trp-tail -d "$D" -n 3 -o json | jf data)" "$(printf '{"a":[1,"x"]}\nnull\nstr')"
check json-data-string sh -c "trp-tail -d '$D' -n 1 -o json | grep -q '\"text\":\"\\\\\"str\\\\\"\",\"data\":\"str\"}'"
same json-text-exact "$(trp-tail -d "$D" -n 3 -o json | head -1 | jf text)" '{"a": [1, "x"]}'

# From a log that starts at 100: --from before it is an error.
trp-append -d "$TMP/s" --start-seq 100 -q a b
expect from-before-first 65 "before the first stored entry, seq 100" trp-tail -d "$TMP/s" --from 5
same from-first "$(trp-tail -d "$TMP/s" --from 100 -o json | jf seq | tr '\n' ' ')" "100 101 "

# -f: prints what is there, then wakes up for each new append.
F=$TMP/follow
trp-tail -d "$D" -n 1 -f > "$F" 2>"$TMP/ferr" &
fpid=$!
BG_PIDS="$BG_PIDS $fpid"
check follow-initial wait_for 10 grep -qx '"str"' "$F"
trp-append -d "$D" -q woken1
check follow-wakes wait_for 10 grep -qx woken1 "$F"
printf 'w2\nw3\n' | trp-append -d "$D" -q
check follow-wakes-again wait_for 10 grep -qx w3 "$F"
kill "$fpid" 2>/dev/null
wait "$fpid" 2>/dev/null
same follow-no-stderr "$(cat "$TMP/ferr")" ""

expect n-and-from 64 "-n and --from exclude each other" trp-tail -d "$D" -n 2 --from 5
expect from-and-n 64 "-n and --from exclude each other" trp-tail -d "$D" --from 5 -n 2
expect n-too-large 64 "-n: 99999999999999999999999 is out of range" trp-tail -d "$D" -n 99999999999999999999999
expect count-too-large 64 "--count: 18446744073709551616 is out of range" trp-tail -d "$D" --count 18446744073709551616
expect tail-i-with-d 64 "-i and --timeout are for a cluster" trp-tail -d "$D" -i 1

expect grouped-unknown-option 64 "unknown option '-Z'" trp-tail -Zf -d "$D"

# -f on a log whose commit file is missing (a crash can leave it so; the
# COMMIT records then say what is synced), and when the file is replaced
trp-append -d "$TMP/nc" -q a b
rm "$TMP/nc/commit"
F2=$TMP/follow-nc
trp-tail -d "$TMP/nc" -n 1 -f > "$F2" 2>"$TMP/ferr2" &
npid=$!
BG_PIDS="$BG_PIDS $npid"
check follow-no-commit-initial wait_for 10 grep -qx b "$F2"
trp-append -d "$TMP/nc" -q c
check follow-no-commit-wakes wait_for 10 grep -qx c "$F2"
rm "$TMP/nc/commit"
trp-append -d "$TMP/nc" -q d
check follow-commit-replaced wait_for 10 grep -qx d "$F2"
trp-append -d "$TMP/nc" -q e
check follow-commit-replaced-again wait_for 10 grep -qx e "$F2"
kill "$npid" 2>/dev/null
wait "$npid" 2>/dev/null
same follow-no-commit-out "$(tr '\n' ' ' < "$F2")$(cat "$TMP/ferr2")" "b c d e "

# -f --count: ends by itself after N entries.
next=$(( $(trp-tail -d "$D" -n 1 -o json | jf seq) + 1 ))
trp-tail -d "$D" --from "$next" -f --count 2 > "$TMP/fc" &
cpid=$!
BG_PIDS="$BG_PIDS $cpid"
trp-append -d "$D" -q c1 c2 c3
check follow-count-ends wait_for 10 sh -c "! kill -0 $cpid 2>/dev/null"
kill "$cpid" 2>/dev/null # only if the check above failed: never hang here
wait "$cpid"
same follow-count-status "$?" "0"
same follow-count-out "$(tr '\n' ' ' < "$TMP/fc")" "c1 c2 "

# -f | head -1: trp-tail ends quietly (status 0, no message) once head
# exits, even when nothing more is appended.
( trp-tail -d "$D" -f 2>"$TMP/herr" & echo $! > "$TMP/hpid"; wait $!; echo "$?" > "$TMP/hrc" ) |
    head -1 > "$TMP/hout" &
wait_for 10 test -s "$TMP/hpid" && BG_PIDS="$BG_PIDS $(cat "$TMP/hpid")"
check follow-head-ends wait_for 20 test -s "$TMP/hrc"
same follow-head-status "$(cat "$TMP/hrc" 2>/dev/null)" "0"
same follow-head-quiet "$(cat "$TMP/herr")" ""
same follow-head-line "$(cat "$TMP/hout")" "$(trp-tail -d "$D" -n 10 | head -1)"

# Large output to a closed pipe: EPIPE is a quiet end too.
seq 1 200000 | trp-append -d "$TMP/big" -q
( trp-tail -d "$TMP/big" -n 200000 2>"$TMP/perr"; echo "$?" > "$TMP/prc" ) | head -c 10 > /dev/null
same epipe-status "$(cat "$TMP/prc")" "0"
same epipe-quiet "$(cat "$TMP/perr")" ""

# --from a seq not yet written, with -f: waits for exactly that entry.
next=$(( $(trp-tail -d "$D" -n 1 -o json | jf seq) + 1 ))
trp-tail -d "$D" --from $((next + 1)) -f --count 1 > "$TMP/ahead" &
apid=$!
BG_PIDS="$BG_PIDS $apid"
trp-append -d "$D" -q skip-me want-me
check follow-from-ahead wait_for 10 sh -c "! kill -0 $apid 2>/dev/null"
same follow-from-ahead-out "$(cat "$TMP/ahead")" "want-me"

# Damage met while reading is reported (status 1), not printed.
rm -rf "$TMP/dmg" && cp -a "$D" "$TMP/dmg"
seg=$(seg_file "$TMP/dmg")
off=$(grep -boa 'woken1' "$seg" | head -1 | cut -d: -f1)
flipbyte "$seg" "$off"
expect damage-while-reading 1 "crc|corrupt|damage" trp-tail -d "$TMP/dmg" -n 100

# Long option spellings.
same long-lines "$(trp-tail --dir "$D" --lines 1 --output json | jf text)" "$(trp-tail -d "$D" -n 1)"
next=$(( $(trp-tail -d "$D" -n 1 -o json | jf seq) + 1 ))
trp-tail --dir "$D" --from "$next" --follow --count 1 > "$TMP/lf" &
lpid=$!
BG_PIDS="$BG_PIDS $lpid"
trp-append -d "$D" -q long-follow
check long-follow wait_for 10 grep -qx long-follow "$TMP/lf"
kill "$lpid" 2>/dev/null

# a damaged segment header is named by file, offset and the segment's seq
trp-append -d "$TMP/bh" -q a
printf 'X' | dd of="$TMP/bh/00000000000000000000.seg" bs=1 seek=3 conv=notrunc 2>/dev/null
expect bad-seg-header-names-seq 1 "00000000000000000000.seg: offset 0: seq 0: bad segment header \(segment-magic\)" trp-tail -d "$TMP/bh"

exit 0
