#!/bin/sh
# tests/cli/append.sh: every flag and exit status of trp-append on a local
# log: arguments, lines, -z, --whole, --json, -q, --if-prev, --start-seq,
# --max-entry, usage errors, and what a bad directory does.
. tests/cli/lib.sh
D=$TMP/log

expect help 0 "" trp-append --help
check help-usage grep -q '^Usage: trp-append -d DIR' "$TMP/out"
expect help-short 0 "" trp-append -h
expect version 0 "" trp-append --version
check version-text grep -Eq '^trp-append \(trp\) [0-9]+\.[0-9]+' "$TMP/out"
expect bad-flag 64 "unknown option '--bogus'" trp-append -d "$D" --bogus
expect no-dir-flag 64 "no log directory" trp-append x
expect missing-arg 64 "needs an argument" trp-append -d
expect bad-start-seq 64 "start-seq" trp-append -d "$D" --start-seq -5 x
expect bad-if-prev 64 "if-prev" trp-append -d "$D" --if-prev abc x
expect bad-max-entry 64 "max-entry" trp-append -d "$D" --max-entry 0 x
expect z-with-args 64 "take no ENTRY" trp-append -d "$D" -z x
check usage-created-nothing test ! -e "$D"

# Arguments: one entry each, seqs from 0, one per line.
expect args 0 "" trp-append -d "$D" alpha beta gamma
same args-seqs "$(cat "$TMP/out")" "$(printf '0\n1\n2')"
same args-stored "$(trp-tail -d "$D")" "$(printf 'alpha\nbeta\ngamma')"

# stdin lines; an unterminated last line is an entry too; empty lines are
# empty entries.
printf 'one\n\nthree' > "$TMP/in"
expect stdin-lines 0 "" trp-append -d "$D" < "$TMP/in"
same stdin-seqs "$(cat "$TMP/out")" "$(printf '3\n4\n5')"
same stdin-stored "$(trp-tail -d "$D" -n 3 | od -An -c | tr -s ' ')" "$(printf 'one\n\nthree\n' | od -An -c | tr -s ' ')"

# -z: NUL-separated, newlines are payload.
printf 'a\nb\000c\000' > "$TMP/in"
expect null-input 0 "" trp-append -d "$D" -z < "$TMP/in"
same null-seqs "$(cat "$TMP/out")" "$(printf '6\n7')"
trp-tail -d "$D" -n 2 -z > "$TMP/got"
check null-roundtrip cmp -s "$TMP/in" "$TMP/got"

# --whole: all of stdin, newlines and all, is one entry.
printf 'line1\nline2\n' > "$TMP/in"
expect whole 0 "" trp-append -d "$D" --whole < "$TMP/in"
same whole-seq "$(cat "$TMP/out")" "8"
trp-tail -d "$D" -n 1 -o json | jf -j text > "$TMP/got"
check whole-roundtrip cmp -s "$TMP/in" "$TMP/got"

# --json: seq as a string, the entry's hash, the same hash trp-tail shows.
expect json 0 "" trp-append -d "$D" --json j1 j2
same json-seq "$(grep -c '^{"seq":"[0-9]*","hash":"[0-9a-f]\{64\}"}$' "$TMP/out")" "2"
same json-seqs "$(jf seq < "$TMP/out" | tr '\n' ' ')" "9 10 "
h=$(tail -1 "$TMP/out" | jf hash)
same json-hash "$(trp-tail -d "$D" -n 1 -o json | jf hash)" "$h"

# -q: nothing printed, still appended.
expect quiet 0 "" trp-append -d "$D" -q q1
same quiet-out "$(cat "$TMP/out")" ""
same quiet-stored "$(trp-tail -d "$D" -n 1)" "q1"

# --if-prev: the right head appends, a wrong one appends nothing, prints
# the actual head and exits 1.
h=$(head_hash "$D")
expect if-prev-match 0 "" trp-append -d "$D" --if-prev "$h" ok1
same if-prev-match-seq "$(cat "$TMP/out")" "12"
h2=$(head_hash "$D")
expect if-prev-mismatch 1 "head is seq 12 with hash $h2, not $h; nothing appended" \
    trp-append -d "$D" --if-prev "$h" stale
same if-prev-head "$(cat "$TMP/out")" "12 $h2"
same if-prev-nothing "$(trp-tail -d "$D" -n 1)" "ok1"
expect if-prev-json 1 "nothing appended" trp-append -d "$D" --json --if-prev "$h" stale
same if-prev-json-head "$(jf seq hash < "$TMP/out")" "12 $h2"
Z=0000000000000000000000000000000000000000000000000000000000000000
expect if-prev-empty 0 "" trp-append -d "$TMP/fresh" --if-prev "$Z" first
expect if-prev-empty-stale 1 "not $Z" trp-append -d "$TMP/fresh" --if-prev "$Z" second
same if-prev-upper 0 "$(trp-append -d "$TMP/fresh" -q --if-prev "$(head_hash "$TMP/fresh" | tr a-f A-F)" third; echo $?)"

# a new log that starts at 100 holds no entry: its head is "-", not 99
O=1111111111111111111111111111111111111111111111111111111111111111
expect if-prev-none-start-seq 1 "no log yet \(a new log.s head is hash $Z\)" trp-append -d "$TMP/s50" --start-seq 50 --if-prev "$O" x
same if-prev-none-start-seq-head "$(cat "$TMP/out")" "- $Z"
expect if-prev-none-json 1 "nothing appended" trp-append -d "$TMP/s50" --start-seq 50 --json --if-prev "$O" x
same if-prev-none-json-head "$(cat "$TMP/out")" "{\"seq\":null,\"hash\":\"$Z\"}"

# --start-seq on a new log; refused on a log that starts elsewhere.
expect start-seq 0 "" trp-append -d "$TMP/s100" --start-seq 100 x y
same start-seq-seqs "$(cat "$TMP/out")" "$(printf '100\n101')"
expect start-seq-same 0 "" trp-append -d "$TMP/s100" --start-seq 100 z
expect start-seq-existing 65 "already exists and starts at seq 100" \
    trp-append -d "$TMP/s100" --start-seq 7 w
same start-seq-nothing "$(count "$TMP/s100")" "3"

# --max-entry: exactly the limit is fine; one byte more fails the whole
# batch with 65 and appends nothing of it.
before=$(count "$D")
expect max-entry-ok 0 "" trp-append -d "$D" --max-entry 10 0123456789
printf 'short\n0123456789A\nshort2\n' > "$TMP/in"
expect max-entry-over 65 "entry too large \(more than 10 bytes" trp-append -d "$D" --max-entry 10 < "$TMP/in"
same max-entry-no-output "$(cat "$TMP/out")" ""
same max-entry-nothing "$(count "$D")" "$((before + 1))"
# From a pipe: lines acknowledged before an oversized one arrives stay
# acknowledged and stored; the oversized one ends the stream with 65.
mkfifo "$TMP/maxfifo"
want=$(( $(trp-verify -q --json "$D" | jf last) + 1 ))
trp-append -d "$D" --max-entry 10 < "$TMP/maxfifo" > "$TMP/maxout" 2> "$TMP/maxerr" &
mpid=$!
BG_PIDS="$BG_PIDS $mpid"
exec 8> "$TMP/maxfifo"
echo before-big >&8
check max-entry-pipe-acked wait_for 10 grep -qx "$want" "$TMP/maxout"
echo 0123456789AB >&8
exec 8>&-
wait "$mpid"
same max-entry-pipe-status "$?" "65"
same max-entry-pipe-out "$(cat "$TMP/maxout")" "$want"
same max-entry-pipe-stored "$(trp-tail -d "$D" -n 1)" "before-big"
before=$((before + 1))
expect max-entry-args 65 "too large" trp-append -d "$D" --max-entry 1K a "$(head -c 1025 /dev/zero | tr '\0' x)"
expect max-entry-suffix 0 "" trp-append -d "$D" --max-entry 1K "$(head -c 1024 /dev/zero | tr '\0' x)"
head -c 1048577 /dev/zero > "$TMP/big"
expect default-max-whole 65 "more than 1048576 bytes" trp-append -d "$D" --whole < "$TMP/big"
head -c 1048576 /dev/zero > "$TMP/big"
expect default-max-exact 0 "" trp-append -d "$D" --whole < "$TMP/big"
same after-errors-verify "$(trp-verify -q "$D"; echo $?)" "0"

# Not a log: an existing directory holding something else; a file.
mkdir "$TMP/other" && echo hello > "$TMP/other/notes.txt"
expect not-a-log 65 "other.*not a trp log" trp-append -d "$TMP/other" x
same not-a-log-untouched "$(ls "$TMP/other")" "notes.txt"
echo plain > "$TMP/file"
run trp-append -d "$TMP/file" x
check file-not-dir test "$RC" -ne 0 -a -s "$TMP/err"
expect missing-parent 66 "nope" trp-append -d "$TMP/nope/deeper/log" x

# A trickling pipe: each line is acknowledged before the next is written
# (the writer waits for the seq), so trp-append must sync when input would
# block rather than wait for a full buffer.
mkfifo "$TMP/in.fifo" "$TMP/out.fifo"
trp-append -d "$TMP/trickle" < "$TMP/in.fifo" > "$TMP/out.fifo" &
tpid=$!
BG_PIDS="$BG_PIDS $tpid"
exec 7> "$TMP/in.fifo" 8< "$TMP/out.fifo"
ok=yes
for i in 1 2 3 4 5; do
    echo "drip $i" >&7
    # read blocks until the seq arrives; the timeout bounds a hang.
    if ! got=$(timeout 20 sh -c 'read -r l <&8 && echo "$l"'); then ok="no ack for line $i"; break; fi
    [ "$got" = $((i - 1)) ] || { ok="line $i acked as '$got'"; break; }
    # acknowledged means durable and visible: a reader sees it already.
    [ "$(trp-tail -d "$TMP/trickle" -n 1)" = "drip $i" ] || { ok="line $i not visible after ack"; break; }
done
exec 7>&- 8<&-
wait "$tpid"
same trickle-acks "$ok" yes

# Empty stdin: nothing to append, success.
expect empty-stdin 0 "" trp-append -d "$D" < /dev/null
same empty-stdin-out "$(cat "$TMP/out")" ""

# Long option spellings do the same as the short ones.
printf 'L1\000L2\000' > "$TMP/in"
expect long-forms 0 "" trp-append --dir "$TMP/long" --null --quiet < "$TMP/in"
same long-forms-out "$(cat "$TMP/out")" ""
same long-forms-stored "$(trp-tail --dir "$TMP/long" --lines 2 --output raw --null | tr '\0' ' ')" "L1 L2 "
expect long-version-help 0 "" trp-append --help --version

# the lock's holder is named only once it is known: a pid left by an
# earlier, dead writer is not taken for the holder's
if command -v flock > /dev/null 2>&1; then
    trp-append -d "$TMP/lk" -q a
    echo 4194303 > "$TMP/lk/lock" # no such process (above any pid_max default)
    flock "$TMP/lk/lock" sleep 5 &
    lkpid=$!
    BG_PIDS="$BG_PIDS $lkpid"
    sleep 0.3
    expect lock-stale-pid-not-named 75 "locked by another writer \(pid unknown\)" trp-append -d "$TMP/lk" b
    echo $$ > "$TMP/lk/lock"
    expect lock-live-pid-named 75 "locked by another writer \(pid $$\)" trp-append -d "$TMP/lk" b
    kill "$lkpid" 2>/dev/null
    wait "$lkpid" 2>/dev/null
fi

# options the synopsis gives as alternatives exclude each other; the
# cluster's options are refused with -d; an empty -d is bad usage
expect z-and-whole 64 "-z and --whole exclude each other" trp-append -d "$TMP/alt" -z --whole
expect whole-and-z 64 "-z and --whole exclude each other" trp-append -d "$TMP/alt" --whole -z
expect json-and-q 64 "--json and -q exclude each other" trp-append -d "$TMP/alt" --json -q x
expect i-with-d 64 "-i and --timeout are for a cluster" trp-append -d "$TMP/alt" -i 2 x
expect timeout-with-d 64 "-i and --timeout are for a cluster" trp-append -d "$TMP/alt" --timeout 5 x
expect empty-d 64 "-d: empty directory name" trp-append -d "" x
check alternatives-made-nothing test ! -e "$TMP/alt"

# --if-prev where there is no log yet: a new log's head is the zero hash;
# another hash is a mismatch that creates nothing, the zero hash appends
O=1111111111111111111111111111111111111111111111111111111111111111
Z=0000000000000000000000000000000000000000000000000000000000000000
expect if-prev-no-log-mismatch 1 "no log yet .*nothing appended or created" trp-append -d "$TMP/nolog" --if-prev $O x
same if-prev-no-log-head "$(cat "$TMP/out")" "- $Z"
check if-prev-no-log-made-nothing test ! -e "$TMP/nolog"
expect if-prev-no-log-zero-appends 0 "" trp-append -d "$TMP/nolog" --if-prev $Z x
same if-prev-no-log-zero-seq "$(cat "$TMP/out")" "0"

# --if-prev on an interrupted create (a blank segment, no marker): the
# create is finished and the head compared, as without --if-prev
trp-append -d "$TMP/ic" < /dev/null
rm -f "$TMP/ic/trp-log" "$TMP/ic/commit" "$TMP/ic/"*.idx
expect if-prev-interrupted-create 1 "head is seq \(none\)" trp-append -d "$TMP/ic" --if-prev $O x
check if-prev-interrupted-create-finished test -f "$TMP/ic/trp-log"

# a reader that goes away with SIGPIPE ignored: every line is still
# appended, and exit 74 says the later seqs were not printed
(
    trap '' PIPE
    seq 1 200000 | trp-append -d "$TMP/epipe" 2> "$TMP/epipe.err"
    echo $? > "$TMP/epipe.rc"
) | head -n 1 > /dev/null
same epipe-exit-74 "$(cat "$TMP/epipe.rc")" 74
check epipe-says-so grep -q 'stdout: Broken pipe' "$TMP/epipe.err"
same epipe-all-appended "$(trp-tail -d "$TMP/epipe" -n 1)" 200000

exit 0
