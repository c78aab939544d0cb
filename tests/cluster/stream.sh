#!/bin/sh
# tests/cluster/stream.sh: long piped streams through `trp-append -c`: more
# input than trp-append reads at once (4 MiB) and more entries than it
# keeps in flight (16384), with line lengths from 0 to 599 bytes (payloads
# kept beside the queue and payloads of their own allocation alike): one
# seq per line, each line stored once at the seq printed for it (a retried
# entry may commit after a later one: trp-append(1)), nothing else in
# between; a line over max_entry in the middle of a stream stops it with
# exit 65 after every line before it was appended (their seqs printed),
# and none after. One "PASS name" / "FAIL name: reason" each.
. tests/cluster/lib.sh

make_cluster 3 || { fail stream_init "trp-node init failed"; exit 0; }
for i in 1 2 3; do start_node $i; done
leader=$(wait_leader)
[ -n "$leader" ] && pass stream_leader_elected || { fail stream_leader_elected "no leader"; exit 0; }

# 30000 lines, line i: "i:" then (i * 7919) % 600 letters; about 9 MB
awk 'BEGIN { s = ""; for (k = 0; k < 600; k++) s = s sprintf("%c", 97 + k % 26);
             for (i = 1; i <= 30000; i++) print i ":" substr(s, 1, (i * 7919) % 600) }' > "$tmp/in"
"$BIN/trp-append" -c "$C" < "$tmp/in" > "$tmp/seqs" 2> "$tmp/err"
rc=$?
n=$(wc -l < "$tmp/seqs")
[ $rc -eq 0 ] && [ "$n" -eq 30000 ] && [ "$(sort -n "$tmp/seqs" | uniq | wc -l)" -eq 30000 ] &&
    pass stream_30000_seqs_each_once || fail stream_30000_seqs_each_once "exit $rc, $n seqs: $(head -3 "$tmp/err")"
# the lines in seq order, against the log from the lowest seq to the
# highest (no-op entries of a leader change are not shown by trp-tail)
paste -d ' ' "$tmp/seqs" "$tmp/in" | sort -n -k1,1 | cut -d ' ' -f 2- > "$tmp/byseq"
first=$(sort -n "$tmp/seqs" | head -1)
last=$(sort -n "$tmp/seqs" | tail -1)
"$BIN/trp-tail" -c "$C" --linearizable --from "$first" --count $((last - first + 1)) > "$tmp/tail" 2> "$tmp/err"
cmp -s "$tmp/byseq" "$tmp/tail" && pass stream_each_line_at_its_seq \
    || fail stream_each_line_at_its_seq "$(wc -l < "$tmp/tail") lines back; $(cmp "$tmp/byseq" "$tmp/tail" 2>&1 | head -1)"

# 5000 lines, one of 1.1 MB (over max_entry, 1 MiB), then 100 more
{
    head -5000 "$tmp/in"
    head -c 1100000 /dev/zero | tr '\0' x
    echo
    sed -n '5001,5100p' "$tmp/in"
} > "$tmp/in2"
"$BIN/trp-append" -c "$C" < "$tmp/in2" > "$tmp/seqs2" 2> "$tmp/err2"
rc=$?
n=$(wc -l < "$tmp/seqs2")
[ $rc -eq 65 ] && grep -q 'too large' "$tmp/err2" && [ "$n" -eq 5000 ] &&
    pass stream_oversized_line_stops_after_the_rest \
    || fail stream_oversized_line_stops_after_the_rest "exit $rc, $n seqs: $(cat "$tmp/err2")"
first=$(sort -n "$tmp/seqs2" | head -1)
paste -d ' ' "$tmp/seqs2" "$tmp/in2" | head -5000 | sort -n -k1,1 | cut -d ' ' -f 2- > "$tmp/byseq2"
"$BIN/trp-tail" -c "$C" --linearizable --from "$first" > "$tmp/tail2" 2>/dev/null
cmp -s "$tmp/byseq2" "$tmp/tail2" && pass stream_nothing_after_the_oversized_line \
    || fail stream_nothing_after_the_oversized_line "$(wc -l < "$tmp/tail2") lines from seq $first"

# a damaged record on a follower: trp-tail -c from it prints the entries
# before the damage, then the node's error, and exits 1 (it used to wait
# forever); the stream does not stay open on the node
f=1; [ "$leader" = 1 ] && f=2
streams() { status_of $f | sed -n 's/.*"streams":\([0-9]*\).*/\1/p'; }
s0=$(streams)
seg=$(ls "$tmp/c/$f"/*.seg | head -1)
printf '\377\377\377\377' | dd of="$seg" bs=1 seek=4000000 conv=notrunc 2>/dev/null
timeout 30 "$BIN/trp-tail" -c "$C" -i $f --from 0 --timeout 3 > "$tmp/dmg" 2> "$tmp/dmgerr"
rc=$?
n=$(wc -l < "$tmp/dmg")
[ $rc -eq 1 ] && [ "$n" -gt 1000 ] && [ "$n" -lt 30000 ] && grep -q "node $f: .*00000000000000000000.seg" "$tmp/dmgerr" &&
    pass stream_damaged_record_ends_the_read || fail stream_damaged_record_ends_the_read "exit $rc, $n lines: $(head -2 "$tmp/dmgerr")"
head -1000 "$tmp/byseq" > "$tmp/first1000"
head -1000 "$tmp/dmg" | cmp -s - "$tmp/first1000" &&
    pass stream_entries_before_the_damage || fail stream_entries_before_the_damage "first lines differ"
s1=$(streams)
[ -n "$s1" ] && [ "$s1" -le "${s0:-0}" ] && pass stream_no_stream_left_open \
    || fail stream_no_stream_left_open "streams on node $f: $s0 before, $s1 after"
