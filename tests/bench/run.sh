#!/bin/sh
# tests/bench/run.sh: the log benchmarks behind `make bench`.
#
# Prints a table: each figure measured through the real tools (or the lib,
# for one-sync-per-entry), and beside it the machine's own limit measured
# in the same run (fdatasync rate, sequential write speed, SHA-256 speed).
# It reports; it never asserts. Runtime is a minute or two; it needs about
# 3 GB of free disk in BENCH_DIR (default: a temp dir under /var/tmp) and
# scales the large log down when there is less.
B=${B:-build}
BIN=$(cd "$B/bin" && pwd) || exit 1
T=$(cd "$B/t" && pwd) || exit 1
PATH=$BIN:$T:$PATH
base=${BENCH_DIR:-/var/tmp}
W=$(mktemp -d "$base/trp-bench.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
mbs() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / 1e6 / (b - a) }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else printf "-" }'; }
row() { printf '%-44s %20s %-34s %s\n' "$1" "$2" "$3" "$4"; }
segbytes() { cat "$1"/*.seg | wc -c | tr -d ' '; }

# Scale the large log to the free space (leave half of it free).
free_mb=$(df -Pm "$W" | awk 'NR == 2 { print $4 }')
big_mb=2400
[ "$free_mb" -lt $((big_mb * 3)) ] && big_mb=$((free_mb / 3))
n4k=$((big_mb * 1000000 / 4160))
n100=2000000

echo "# trp log benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, in $W ($free_mb MB free)"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine skews every figure)"
echo "# limits first (same disk, same run)"
fsync100=$(bench_limits fsync "$W/f" 100 2)
fsync4k=$(bench_limits fsync "$W/f" 4096 2)
seqw=$(bench_limits write "$W/w" 1024)
sha100=$(bench_limits sha256 100 1)
sha4k=$(bench_limits sha256 4096 1)
row "limit: write+fdatasync, 100 B" "$fsync100 /s" "" ""
row "limit: write+fdatasync, 4 KiB" "$fsync4k /s" "" ""
row "limit: sequential write + fdatasync" "$seqw MB/s" "" ""
row "limit: SHA-256 (EVP), 100 B messages" "$sha100 MB/s" "" ""
row "limit: SHA-256 (EVP), 4 KiB messages" "$sha4k MB/s" "" ""
echo
row "benchmark" "result" "" "vs limit"

# Durable append through trp-append from a pipe (seqs printed to /dev/null).
t0=$(now); genlines $n100 100 | trp-append -d "$W/a100" > /dev/null; t1=$(now)
r=$(rate $n100 "$t0" "$t1")
row "trp-append pipe, 100 B, durable" "$r entries/s" "$(mbs $((n100 * 100)) "$t0" "$t1") MB/s payload" "target >= 1000000/s"
t0=$(now); genlines $n4k 4096 | trp-append -d "$W/a4k" > /dev/null; t1=$(now)
b4k=$((n4k * 4096))
m=$(mbs $b4k "$t0" "$t1")
row "trp-append pipe, 4 KiB, durable" "$(rate $n4k "$t0" "$t1") entries/s" "$m MB/s payload" "$(pct "$m" "$seqw") of seq write"

# One fdatasync per entry (through the lib: append + trp_log_sync). The
# disk is shared and its fdatasync rate drifts, so the raw rate is measured
# again right before each, interleaved, and both are printed.
# The store keeps written zeros ahead of its data (trp-log(5)), so its
# fdatasyncs mostly overwrite: the "overwrite preallocated + fdatasync"
# rate is its real ceiling, printed beside it too.
for size in 100 4096; do
    raw=$(bench_limits fsync "$W/f" $size 1.5)
    over=$(bench_limits overwrite "$W/f" $size 1.5)
    got=$(bench_sync_append "$W/s$size" $size 1.5)
    raw2=$(bench_limits fsync "$W/f" $size 1.5)
    over2=$(bench_limits overwrite "$W/f" $size 1.5)
    lim=$(( (raw + raw2) / 2 ))
    olim=$(( (over + over2) / 2 ))
    row "append + sync per entry, $size B" "$got entries/s" "raw fdatasync $raw, $raw2 /s" "$(pct "$got" "$lim") of raw (target >= 80%)"
    row "  limit: overwrite preallocated + fdatasync" "$over, $over2 /s" "" "store at $(pct "$got" "$olim") of it"
    # The same through the tool: one line in, wait for its seq, next line.
    got=$(bench_trickle "$BIN/trp-append" "$W/t$size" $size 1.5)
    row "trp-append, one line per ack, $size B" "$got entries/s" "" "$(pct "$got" "$lim") of raw"
done

# trp-tail -o raw to /dev/null.
t0=$(now); trp-tail -d "$W/a100" --from 0 > /dev/null; t1=$(now)
row "trp-tail -o raw > /dev/null, 100 B" "$(rate $n100 "$t0" "$t1") entries/s" "" "target >= 2000000/s"
t0=$(now); trp-tail -d "$W/a4k" --from 0 > /dev/null; t1=$(now)
row "trp-tail -o raw > /dev/null, 4 KiB" "$(rate $n4k "$t0" "$t1") entries/s" "$(mbs $b4k "$t0" "$t1") MB/s" ""
t0=$(now); trp-tail -d "$W/a100" --from 0 --count 500000 -o json > /dev/null; t1=$(now)
row "trp-tail -o json > /dev/null, 100 B" "$(rate 500000 "$t0" "$t1") entries/s" "" ""

# trp-verify (files read, every CRC and hash recomputed).
# The CPU is shared too: SHA-256 speed is measured right before and after.
sb=$(segbytes "$W/a4k")
shaA=$(bench_limits sha256 4096 1)
t0=$(now); trp-verify -q "$W/a4k"; t1=$(now)
shaB=$(bench_limits sha256 4096 1)
m=$(mbs $b4k "$t0" "$t1")
lim=$(( (shaA + shaB) / 2 ))
row "trp-verify, 4 KiB entries" "$m MB/s payload" "$(mbs "$sb" "$t0" "$t1") MB/s of files; SHA $shaA, $shaB" "$(pct "$m" "$lim") of SHA-256 (target >= 70%)"
t0=$(now); trp-verify -q "$W/a100"; t1=$(now)
row "trp-verify, 100 B entries" "$(rate $n100 "$t0" "$t1") entries/s" "$(mbs $((n100 * 100)) "$t0" "$t1") MB/s payload" ""

# Open time of the large log (writer: lock + recovery; reader).
set -- $(bench_open "$W/a4k" 5)
row "open, $(awk -v b="$sb" 'BEGIN { printf "%.1f", b / 1e9 }') GB log, writer / reader" "$1 / $2 ms" "" "target < 100 ms"
set -- $(bench_open "$W/s100" 5)
row "open, small log, writer / reader" "$1 / $2 ms" "" ""

# The same pipe append and tail on a tmpfs (no disk at all), when this
# machine lets us mount in a private namespace: the CPU ceiling of the
# tools and the store, to tell it apart from the disk's.
if command -v unshare >/dev/null 2>&1 && unshare -m true 2>/dev/null; then
    mkdir "$W/tmpfs"
    unshare -m sh -c '
        mount -t tmpfs -o size=1g tmpfs "$1" || exit 0
        t0=$(date +%s.%N); genlines $2 100 | trp-append -d "$1/l" > /dev/null; t1=$(date +%s.%N)
        t2=$(date +%s.%N); trp-tail -d "$1/l" --from 0 > /dev/null; t3=$(date +%s.%N)
        awk -v n=$2 -v a=$t0 -v b=$t1 -v c=$t2 -v d=$t3 "BEGIN {
            printf \"%-44s %20s %-34s %s\n\", \"trp-append pipe, 100 B, on tmpfs\", sprintf(\"%.0f entries/s\", n / (b - a)), \"(no disk: CPU ceiling)\", \"\"
            printf \"%-44s %20s %-34s %s\n\", \"trp-tail -o raw, 100 B, on tmpfs\", sprintf(\"%.0f entries/s\", n / (d - c)), \"(page cache only)\", \"\" }"
    ' sh "$W/tmpfs" $n100
fi
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
sh tests/bench/cluster.sh
