#!/bin/sh
# tests/chaos/run.sh: Jepsen-style fault scenarios against real trp-node
# clusters on 127.0.0.1 (see lib.sh for the harness, chaosproxy.c for the
# network faults, chaoscheck.c for the rules checked).
#
# Env: SCENARIO  one name, or a space-separated list (default: all)
#      DURATION  seconds of faults per scenario (default 6; 4 with TRP_ASAN)
#      SEED      fault-schedule seed (default 1); scenario i uses SEED + i
#      CHAOS_KEEP=1 keeps every run directory, not only failed ones
#      CHAOS_VERBOSE=1 narrates the faults on stderr
#      CHAOS_CLIENTS (3), CHAOS_RATE (40/s each; 15 under ASan), CHAOS_WINDOW
#      (16 appends in flight per client), CHAOS_BOUND_MS (5000; 10000 ASan)
# Prints per scenario "PASS chaos_NAME" or "FAIL chaos_NAME: why (kept in
# DIR)", preceded by a "# NAME: attempted ... acknowledged ... unknown ...
# lost ... duplicated ... elections ... longest_unavailability_ms ..." line.
#
# The one idea: every scenario ends the same way (heal, barrier append,
# convergence, checker), so a scenario is only its fault schedule.
BIN=${BIN:-build/bin}
T=${T:-build/t}
here=$(dirname "$0")
. "$here/lib.sh"
. "$here/../proxyconf.sh"

ALL="leader-kill minority-kill leader-isolate partition-swap flapping lossy leader-pause restart-all disk-full groups"
SCENARIO=${SCENARIO:-$ALL}
[ "$SCENARIO" = all ] && SCENARIO=$ALL
if [ -n "${TRP_ASAN:-}" ]; then DURATION=${DURATION:-4}; RATE=${CHAOS_RATE:-15}; else DURATION=${DURATION:-6}; RATE=${CHAOS_RATE:-40}; fi
SEED=${SEED:-1}
# Ports: scenario i uses CHAOS_PORT + 20 i .. + 19 (proxy, then nodes at +10).
# Picked from the PID so that two suites running at once rarely collide.
CHAOS_PORT=${CHAOS_PORT:-$((10000 + ($$ % 100) * 200))}
CLIENTS=${CHAOS_CLIENTS:-3}
SETTLE=3 # seconds of load after the final heal
# Liveness bound (chaoscheck --bound-ms): after a heal, or while a quorum can
# still talk, an append must be acknowledged within this many ms. The leader
# isolation and pause windows are longer than the bound so that a cluster
# that only recovers when the fault ends is caught.
window=$(( CHAOS_BOUND_MS / 1000 + 1 ))

if "$BIN/trp-node" -c /nonexistent/cluster.json -i 1 2>&1 | grep -q 'not yet implemented'; then
    echo "# chaos: trp-node has no run mode yet; scenarios not run"
    exit 0
fi

end_at=0
faults_until() { end_at=$(( $(date +%s) + $1 )); }
more() { [ "$(date +%s)" -lt "$end_at" ]; }
nap() { sleep "$1"; }

# ---- the scenarios: setup (nodes, groups) and fault schedule ----
setup_leader_kill() { make_cluster 3 "$port"; }
faults_leader_kill() {
    while more; do
        l=$(wait_leader 5) || continue
        say "kill -9 leader $l"; kill_node "$l"; event "avail leader $l killed, two of three up"
        nap 2; start_node "$l"; event "heal leader $l restarted"; nap 1.5
    done
}

setup_minority_kill() { make_cluster 5 "$port"; }
faults_minority_kill() {
    while more; do
        rand 5; a=$((R + 1)); rand 5; b=$((R + 1))
        rand 2; [ $R = 0 ] && b=$a
        say "kill -9 $a $b"; kill_node "$a"; [ "$b" != "$a" ] && kill_node "$b"; event "avail $a $b killed"
        rand 3; nap $((R + 1)); restart_dead; event "heal minority restarted"; nap 1
    done
}

setup_leader_isolate() { make_cluster 5 "$port"; }
faults_leader_isolate() {
    while more; do
        l=$(wait_leader 5) || continue
        say "isolate leader $l"; rules "$l * block" "* $l block"; event "avail leader $l isolated"
        nap "$window"; heal "leader $l reconnected"; nap 2
    done
}

setup_partition_swap() { make_cluster 5 "$port"; }
partition() { # partition "A..." "B...": block every link between the sides, both ways
    set -- "$1" "$2"; r=""
    for a in $1; do for b in $2; do r="$r|$a $b block|$b $a block"; done; done
    old_ifs=$IFS; IFS='|'; set -- ${r#|}; IFS=$old_ifs
    rules "$@"
}
faults_partition_swap() {
    # the leader always goes to the minority side, with one random other node
    while more; do
        l=$(wait_leader 5) || l=1
        rand 4; o=$(( (l + R) % 5 + 1 ))
        min="$l $o"; maj=""; for k in 1 2 3 4 5; do case " $min " in *" $k "*) ;; *) maj="$maj $k" ;; esac; done
        say "majority$maj | minority $min"; partition "$min" "$maj"; event "avail majority$maj"; nap 3
    done
    heal "partition over"
}

setup_flapping() { make_cluster 5 "$port"; }
faults_flapping() {
    while more; do
        set -- "1 3 block" "3 1 block" # always non-transitive: 1 and 3 talk only through 2, 4, 5
        for a in 1 2 3 4 5; do for b in 1 2 3 4 5; do
            rand 100; [ $a != $b ] && [ $R -lt 25 ] && set -- "$@" "$a $b block"
        done; done
        rules "$@"
        rand 4; nap "0.$((R + 2))"
    done
    heal "network stable"
}

setup_lossy() { make_cluster 3 "$port" "" "${CHAOS_LOSSY_DATAGRAM:-1400}"; }
faults_lossy() {
    rules "* * drop=0.2 dup=0.1 delay=1 jitter=20"; event "avail lossy network"
    while more; do nap 1; done
    heal "loss over"
}

setup_leader_pause() { make_cluster 3 "$port"; }
faults_leader_pause() {
    while more; do
        l=$(wait_leader 5) || continue
        say "SIGSTOP leader $l"; pause_node "$l"; event "avail leader $l paused"
        nap "$window"; resume_node "$l"; event "heal leader $l resumed"; nap 2
    done
}

setup_restart_all() { make_cluster 3 "$port"; }
faults_restart_all() {
    round=0
    while more; do
        if [ $((round % 2)) = 0 ]; then
            say "kill -9 every node at once"
            for k in 1 2 3; do kill -9 "$(node_pid $k)" 2>/dev/null; done
            for k in 1 2 3; do kill_node "$k"; done
            restart_dead; event "heal all restarted"
        else
            say "rolling restart"
            for k in 1 2 3; do kill_node "$k" TERM; start_node "$k"; nap 1; done
            event "heal rolling restart done"
        fi
        round=$((round + 1)); nap 2
    done
}

setup_disk_full() {
    mkdir -p "$run/probe"
    if ! mount -t tmpfs -o size=1m tmpfs "$run/probe" 2>/dev/null; then
        echo "# chaos_disk_full not run: cannot mount a tmpfs here (needs root)"
        return 2
    fi
    umount "$run/probe"; rmdir "$run/probe"
    disks_mb=8 make_cluster 3 "$port" # every data directory on its own 8 MiB tmpfs
}
faults_disk_full() {
    while more; do
        follower; f=$F
        say "fill node $f's disk"; fill_disk "$f"; event "avail disk $f full, two of three have space"
        nap 3; free_disk "$f"; restart_dead; event "heal disk $f freed"; nap 2
    done
}

setup_groups() { make_cluster 6 "$port" cloudA,cloudB; }
acks_between() { # acks_between FROM_US TO_US: acknowledgements completed in the window
    cat "$run"/hist.* 2>/dev/null | awk -v a="$1" -v b="$2" '$5 == "ok" && $4 >= a && $4 <= b' | wc -l
}
faults_groups() {
    while more; do
        rand 3; a=$((R + 1)); rand 3; b=$((R + 4))
        say "kill -9 $a (cloudA) and $b (cloudB): commits continue"
        kill_node "$a"; kill_node "$b"; event "avail $a and $b down, a majority of each group up"
        t1=$(now_us); nap 3; t2=$(now_us)
        n=$(acks_between $((t1 + 1500000)) "$t2")
        [ "$n" -gt 0 ] || group_verdict="no commit while only $a and $b were down"
        restart_dead; event "heal $a $b restarted"; nap 2
        a2=$(( a % 3 + 1 ))
        say "kill -9 $a and $a2 (two of cloudA): commits stop"
        kill_node "$a"; kill_node "$a2"; t1=$(now_us); nap 3; t2=$(now_us)
        n=$(acks_between $((t1 + 1000000)) "$t2")
        [ "$n" -eq 0 ] || group_verdict="$n appends acknowledged while two of cloudA ($a, $a2) were down"
        restart_dead; event "heal $a $a2 restarted"; nap 2
    done
}

# ---- the driver ----
fail_count=0
index=0
for scenario in $SCENARIO; do
    index=$((index + 1))
    fn=$(echo "$scenario" | tr - _)
    case " $ALL " in *" $scenario "*) ;; *) echo "FAIL chaos_$fn: no scenario '$scenario' (have: $ALL)"; fail_count=$((fail_count + 1)); continue ;; esac
    seed=$((SEED + index - 1)); rng_seed "$seed"
    port=$((CHAOS_PORT + 20 * index))
    run=$(mktemp -d "${TMPDIR:-/tmp}/trp-chaos-$scenario-XXXXXX")
    client_pids=""; tail_loops=""; proxy_pid=""; nodes=0; group_verdict=""
    trap 'cleanup_run; exit 130' INT TERM
    say "seed $seed, run dir $run"
    "setup_$fn"; rc=$?
    if [ $rc -eq 2 ]; then cleanup_run; rm -rf "$run"; continue; fi
    if [ $rc -ne 0 ] || ! wait_leader 15 > /dev/null; then
        echo "FAIL chaos_$fn: no leader at start (kept in $run)"
        fail_count=$((fail_count + 1)); cleanup_run; continue
    fi
    start_tailers
    start_clients "$CLIENTS" "$RATE"
    nap 1
    event "faults start seed $seed"
    faults_until "$DURATION"
    "faults_$fn"
    heal "faults over"
    finish > "$run/figures"
    echo "# $(cat "$run/figures")"
    v=$verdict
    [ -z "$v" ] && [ -n "$group_verdict" ] && v=$group_verdict
    cleanup_run
    if [ -z "$v" ]; then
        echo "PASS chaos_$fn"
        [ -n "${CHAOS_KEEP:-}" ] && echo "# kept in $run" || rm -rf "$run"
    else
        echo "FAIL chaos_$fn: $v (seed $seed; logs, data and history kept in $run)"
        fail_count=$((fail_count + 1))
    fi
done
trap - INT TERM
[ $fail_count -eq 0 ]
