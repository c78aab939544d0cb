#!/bin/sh
# tests/cli/prealloc.sh: the local tools on logs whose segments end in the
# writer's zeroed, preallocated space (trp-log(5)): trp-append -d leaves
# the newest segment longer than its records with only zeros after them,
# trp-tail -d and trp-verify read it as the end of the records, also for a
# sealed segment, and a reopen keeps appending over the zeros.
. "$(dirname "$0")/lib.sh"

D=$TMP/log
SEG=$D/00000000000000000000.seg
# Ten 10-byte entries: records of 64 + 16 bytes after the 128-byte header.
for i in 0 1 2 3 4; do trp-append -d "$D" -q "entry-000$i"; done
trp-append -d "$D" -q entry-0005 entry-0006 entry-0007 entry-0008 entry-0009
end=$((128 + 10 * 80))
size=$(wc -c < "$SEG" | tr -d ' ')
nonzero=$(tail -c +$((end + 1)) "$SEG" | tr -d '\000' | wc -c | tr -d ' ')
[ "$size" -gt "$end" ] && [ "$nonzero" = 0 ] && pass prealloc_zeros_after_records \
    || fail prealloc_zeros_after_records "file $size bytes, records end at $end, $nonzero non-zero bytes after"
last=$(dd if="$SEG" bs=1 skip=$((end - 80 + 64)) count=10 2>/dev/null)
same prealloc_last_record_where_the_page_says "$last" entry-0009

run trp-tail -d "$D" --from 0
same prealloc_tail_reads_all "$(tr '\n' ' ' < "$TMP/out")" \
    "entry-0000 entry-0001 entry-0002 entry-0003 entry-0004 entry-0005 entry-0006 entry-0007 entry-0008 entry-0009 "
expect prealloc_verify 0 "PASS .*10 entries" trp-verify "$D"
if grep -q "torn" "$TMP/err"; then fail prealloc_verify_no_note "$(cat "$TMP/err")"; else pass prealloc_verify_no_note; fi

# Reopen: the zeros stay, and the next append writes over them.
trp-append -d "$D" -q entry-0010
size2=$(wc -c < "$SEG" | tr -d ' ')
same prealloc_reopen_keeps_length "$size2" "$size"
same prealloc_tail_after_reopen "$(trp-tail -d "$D" -n 1)" entry-0010

# A sealed segment: fill the 64 MiB default segment with 1000-byte entries
# (records of 1064 bytes). The pipe's big batches leave no zeroed space;
# the entries around the segment's end go one per run, small batches that
# extend the file with zeros, capped at the segment size: so the sealed
# file is exactly 64 MiB with zeros after its last record, and both tools
# read across it.
L=$TMP/big
n=64000
genlines $n 1000 > "$TMP/lines"
head -n 63000 "$TMP/lines" | trp-append -d "$L" -q
sed -n '63001,63080p' "$TMP/lines" | while IFS= read -r line; do trp-append -d "$L" -q "$line"; done
tail -n +63081 "$TMP/lines" | trp-append -d "$L" -q
rm -f "$TMP/lines"
s0=$L/00000000000000000000.seg
in0=$(( (67108864 - 128) / 1064 ))
s1=$(printf '%s/%020d.seg' "$L" $in0)
end0=$((128 + in0 * 1064))
nz0=$(tail -c +$((end0 + 1)) "$s0" | tr -d '\000' | wc -c | tr -d ' ')
[ -f "$s1" ] && [ "$(wc -c < "$s0" | tr -d ' ')" = 67108864 ] && [ "$nz0" = 0 ] \
    && pass prealloc_sealed_segment_zero_tail \
    || fail prealloc_sealed_segment_zero_tail "$(ls -l "$L")"
expect prealloc_verify_sealed 0 "PASS .*$n entries" trp-verify "$L"
if grep -q "torn" "$TMP/err"; then fail prealloc_verify_sealed_no_note "$(cat "$TMP/err")"; else pass prealloc_verify_sealed_no_note; fi
run trp-tail -d "$L" --from $((in0 - 1)) --count 2
same prealloc_tail_across_sealed "$(cut -c1-6 "$TMP/out" | tr -d x | tr '\n' ' ')" "$in0 $((in0 + 1)) "
same prealloc_tail_count "$(trp-tail -d "$L" --from 0 | wc -l | tr -d ' ')" $n

# trp-tail -d and trp-verify on a log while trp-append -d writes it: every
# run ends normally (a file shortened under a reader's mapping would kill
# it with SIGBUS, exit status 135).
V=$TMP/live
trp-append -d "$V" -q first
genlines 100000 100 | trp-append -d "$V" -q &
wpid=$!
BG_PIDS="$BG_PIDS $wpid"
bad=""
i=0
while [ $i -lt 8 ]; do
    trp-tail -d "$V" --from 0 > /dev/null 2>"$TMP/tail.err" || bad="$bad tail:$?"
    trp-verify -q "$V" 2>"$TMP/verify.err" || bad="$bad verify:$?"
    i=$((i + 1))
done
wait $wpid
wrc=$?
[ -z "$bad" ] && [ "$wrc" = 0 ] && pass prealloc_readers_while_appending \
    || fail prealloc_readers_while_appending "writer $wrc;$bad $(head -c 300 "$TMP/tail.err" "$TMP/verify.err")"
same prealloc_live_count "$(trp-tail -d "$V" --from 0 | wc -l | tr -d ' ')" 100001
