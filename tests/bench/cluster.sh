#!/bin/sh
# tests/bench/cluster.sh: the cluster part of `make bench`: three trp-node
# processes on loopback (config from `trp-node init`), measured from the
# client's side with tests/tools/cluster_load and trp-append, each figure
# beside the machine's limits measured in the same run (fdatasync latency,
# UDP round trip). When Debian's etcd-server is installed, etcd 3.4 with
# three members on the same machine runs the same workloads (puts through
# its v3 HTTP gateway). Each throughput workload runs RUNS times (3 by
# default; the machine is shared and noisy): the row shows the run with the
# median rate, and every run's rate after it. It reports; it asserts nothing.
B=${B:-build}
BIN=$(cd "$B/bin" && pwd) || exit 1
T=$(cd "$B/t" && pwd) || exit 1
PATH=$BIN:$T:$PATH
base=${BENCH_DIR:-/var/tmp}
W=$(mktemp -d "$base/trp-cbench.XXXXXX") || exit 1
PIDS=
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
row() { printf '%-44s %20s %-34s %s\n' "$1" "$2" "$3" "$4"; }
field() { sed -n "s/.* $1 \([0-9]*\).*/\1/p"; }
# runs CMD...: run a workload RUNS times; R is the result line of the run
# with the median rate, RATES every run's rate in order ("a, b, c").
runs() {
    all=; RATES=; i=0
    while [ $i -lt "$RUNS" ]; do
        l=$("$@")
        all="$all$l
"
        RATES="$RATES${RATES:+, }$(echo "$l" | field rate)"
        i=$((i + 1))
    done
    med=$(echo "$RATES" | tr -d ' ' | tr ',' '\n' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    R=$(printf '%s' "$all" | grep " rate $med\( \|$\)" | head -1)
}
pipe_once() {
    t0=$(now)
    genlines "$PIPE_N" 100 | trp-append -c "$C" > /dev/null
    t1=$(now)
    echo "pipe rate $(rate "$PIPE_N" "$t0" "$t1")"
}

SEQ_N=${SEQ_N:-3000}
CONC_N=${CONC_N:-40000}
PIPE_N=${PIPE_N:-1000000}
TRIALS=${TRIALS:-20}
RUNS=${RUNS:-3}
port=$((20000 + ($$ * 41) % 39000))

echo
echo "# trp cluster benchmarks: 3 nodes on loopback, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, in $W"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
fs=$(bench_limits fsync "$W/f" 100 2)
rtt=$(cluster_load - udprtt 5000 | field p50_us)
fs_us=$(awk -v r="$fs" 'BEGIN { printf "%.0f", 1e6 / r }')
row "limit: write+fdatasync, 100 B" "$fs_us us" "($fs /s, one process)" ""
# three nodes share this disk: what each gets when all three sync at once
for i in 1 2 3; do bench_limits fsync "$W/f$i" 100 2 > "$W/fs$i" & done
wait
fs3=$(cat "$W/fs1" "$W/fs2" "$W/fs3" | awk '{ s += $1 } END { printf "%.0f", s / 3 }')
row "limit: write+fdatasync, 3 at once" "$(awk -v r="$fs3" 'BEGIN { printf "%.0f", 1e6 / r }') us" "($fs3 /s each)" ""
row "limit: UDP round trip, loopback" "$rtt us" "(p50)" ""
echo_rate=$(cluster_load - udpecho 64 200000 | field rate)
row "limit: 64 clients' datagrams, bare echo" "$echo_rate /s" "(no Raft, crypto or disk)" ""
row "limit: fdatasync + 2 round trips" "$((fs_us + 2 * rtt)) us" "$(awk -v u=$((fs_us + 2 * rtt)) 'BEGIN { printf "= %.0f appends/s sequential", 1e6 / u }')" ""
echo

trp-node init --nodes 3 --dir "$W/c" --base-port $port > /dev/null || exit 1
C=$W/c/cluster.json
start_nodes() {
    for i in 1 2 3; do
        trp-node -q -c "$C" -i $i 2>> "$W/node$i.log" &
        PIDS="$PIDS $!"
    done
    n=0
    until trp-node status -c "$C" --timeout 1 2>/dev/null | grep -q '"role":"leader"'; do
        sleep 0.1; n=$((n + 1)); [ $n -gt 100 ] && break
    done
}
stop_nodes() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    PIDS=
}
echo "# throughput rows: the median of $RUNS runs, then each run's rate"
start_nodes
runs cluster_load "$C" seq "$SEQ_N"
row "trp sequential append, 1 client, 100 B" "$(echo "$R" | field rate) /s" \
    "p50 $(echo "$R" | field p50_us) us, p99 $(echo "$R" | field p99_us) us" "target >= 2000/s (runs: $RATES)"
for c in 16 64; do
    runs cluster_load "$C" conc $c "$CONC_N"
    row "trp appends, $c clients (1 in flight each)" "$(echo "$R" | field rate) /s" "(one epoll thread drives them)" \
        "$([ $c = 64 ] && echo 'target >= 50000/s ')(runs: $RATES)"
done
runs pipe_once
row "trp-append -c pipe, 100 B lines" "$(echo "$R" | field rate) entries/s" "(each seq printed once committed)" "target >= 300000/s (runs: $RATES)"
stop_nodes
# failover: cluster_load starts and kills the nodes itself
et=$(sed -n 's/.*"election_timeout_ms":[[:space:]]*\([0-9]*\).*/\1/p' "$C")
etmax=$(sed -n 's/.*"election_timeout_max_ms":[[:space:]]*\([0-9]*\).*/\1/p' "$C")
r=$(cluster_load "$C" failover "$BIN" "$TRIALS")
row "kill -9 leader -> next commit ($TRIALS trials)" "median $(echo "$r" | field median_ms) ms" \
    "max $(echo "$r" | field max_ms) ms, min $(echo "$r" | field min_ms) ms" "target <= 2 x election timeout = $((2 * ${et:-300})) ms (timeout ${et:-300}-${etmax:-450} ms)"

# etcd 3.4, three members, same machine, same workloads
if command -v etcd > /dev/null 2>&1; then
    ep=$((port + 100))
    cl="e1=http://127.0.0.1:$((ep + 1)),e2=http://127.0.0.1:$((ep + 2)),e3=http://127.0.0.1:$((ep + 3))"
    for i in 1 2 3; do
        etcd --name e$i --data-dir "$W/etcd$i" --listen-peer-urls http://127.0.0.1:$((ep + i)) \
            --initial-advertise-peer-urls http://127.0.0.1:$((ep + i)) \
            --listen-client-urls http://127.0.0.1:$((ep + 10 + i)) \
            --advertise-client-urls http://127.0.0.1:$((ep + 10 + i)) \
            --initial-cluster "$cl" --initial-cluster-state new --log-level error \
            > "$W/etcd$i.log" 2>&1 &
        PIDS="$PIDS $!"
    done
    n=0
    until etcdctl --endpoints=127.0.0.1:$((ep + 11)) put warm up > /dev/null 2>&1; do
        sleep 0.2; n=$((n + 1)); [ $n -gt 50 ] && break
    done
    echo
    echo "# etcd $(etcd --version | sed -n 's/etcd Version: //p'), 3 members, puts of 100 B through the v3 HTTP gateway"
    runs cluster_load - etcd $((ep + 11)) seq "$SEQ_N"
    row "etcd sequential put, 1 client" "$(echo "$R" | field rate) /s" \
        "p50 $(echo "$R" | field p50_us) us, p99 $(echo "$R" | field p99_us) us" "(runs: $RATES)"
    for c in 16 64; do
        runs cluster_load - etcd $((ep + 11)) conc $c $((CONC_N / 4))
        row "etcd puts, $c clients" "$(echo "$R" | field rate) /s" "" "(runs: $RATES)"
    done
    stop_nodes
else
    echo "# etcd: skipped (not installed; Debian: apt-get install etcd-server etcd-client)"
fi
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
