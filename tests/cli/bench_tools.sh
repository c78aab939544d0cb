#!/bin/sh
# tests/cli/bench_tools.sh: the machine-limit probes `make bench` prints
# beside its figures run and report in the form the bench reads (a rate,
# a round trip), and the bare echo counts every datagram it was sent.
# Small runs, no timing asserted.
. "$(dirname "$0")/lib.sh"
CL=$T/cluster_load

out=$("$CL" - udpecho 4 400 2>&1)
case "$out" in
"udpecho clients 4 n 400 rate "[0-9]*) pass bench_udpecho_reports ;;
*) fail bench_udpecho_reports "got: $out" ;;
esac
rate=$(echo "$out" | sed -n 's/.* rate \([0-9]*\).*/\1/p')
[ "${rate:-0}" -gt 0 ] && pass bench_udpecho_rate_positive || fail bench_udpecho_rate_positive "rate '$rate'"

out=$("$CL" - udprtt 200 2>&1)
case "$out" in
"udprtt n 200 p50_us "[0-9]*) pass bench_udprtt_reports ;;
*) fail bench_udprtt_reports "got: $out" ;;
esac
