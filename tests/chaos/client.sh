#!/bin/sh
# tests/chaos/client.sh: chaosclient against fake appenders (shell loops):
# every answered append is recorded ok with its seq, an appender that exits
# leaves its appends in flight unknown and is restarted, and one that stops
# answering is killed after -u. One "PASS name" / "FAIL name: reason" line each.
T=${T:-build/t}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trp-chaosclient-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }

printf '#!/bin/sh\nn=0; while read l; do echo $n; n=$((n+1)); done\n' > "$tmp/ok"
printf '#!/bin/sh\nn=0; while read l; do n=$((n+1)); [ $n -le 3 ] && echo $n; [ $n -ge 5 ] && exit 75; done\n' > "$tmp/quits"
printf '#!/bin/sh\nn=0; while read l; do [ $n -lt 3 ] && echo $n; n=$((n+1)); done\n' > "$tmp/hangs"
chmod +x "$tmp/ok" "$tmp/quits" "$tmp/hangs"
outcomes() { awk '{ c[$5]++ } END { printf "ok=%d unknown=%d", c["ok"], c["unknown"] }' "$1"; }

"$T/chaosclient" -n 1 -o "$tmp/h1" -t 0.5 -r 100 -- "$tmp/ok" 2> "$tmp/err"
n=$(wc -l < "$tmp/h1")
awk -v n="$n" '$5 != "ok" || $6 != $2 || $4 < $3 || index($7, "c1-" $2 "-") != 1 { bad = 1 } END { exit bad || n < 20 }' "$tmp/h1" \
    && pass client_records_acks || fail client_records_acks "$n lines: $(head -3 "$tmp/h1" | tr '\n' '|')"
[ "$(cut -d' ' -f7 "$tmp/h1" | sort -u | wc -l)" -eq "$n" ] && pass client_payloads_unique || fail client_payloads_unique "dups"

"$T/chaosclient" -n 2 -o "$tmp/h2" -t 1 -r 50 -- "$tmp/quits" 2> "$tmp/err"
o=$(outcomes "$tmp/h2")
case "$o" in ok=0*) ok=0 ;; *) ok=1 ;; esac
[ $ok = 1 ] && grep -q 'started [2-9][0-9]* times, exited non-zero [1-9][0-9]* (75: [1-9]' "$tmp/err" \
    && [ "$(awk '$5 == "unknown" && $6 != "-"' "$tmp/h2" | wc -l)" -eq 0 ] \
    && pass client_exit_means_unknown_and_restart || fail client_exit_means_unknown_and_restart "$o: $(cat "$tmp/err")"

"$T/chaosclient" -n 3 -o "$tmp/h3" -t 1 -r 20 -u 300 -- "$tmp/hangs" 2> "$tmp/err"
o=$(outcomes "$tmp/h3")
grep -q 'unanswered for 300 ms' "$tmp/err" && grep -q 'killed [1-9]' "$tmp/err" && case "$o" in ok=0*|*unknown=0) false ;; esac \
    && pass client_gives_up_after_timeout || fail client_gives_up_after_timeout "$o: $(cat "$tmp/err")"
