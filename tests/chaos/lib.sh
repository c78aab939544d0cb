# tests/chaos/lib.sh: the chaos harness, sourced by tests/chaos/run.sh.
#
# One scenario = a fresh cluster from `trp-node init`, a chaosproxy in front
# of every node, recording clients (chaosclient around `trp-append -c`), one
# tailer per node (`trp-tail -c -i K -f -o json`), a fault schedule, a heal,
# a final barrier append, and then the checks: chaoscheck over the recorded
# files, trp-verify over every data directory, equal head hashes.
#
# The one idea: the nodes' config (cluster.json) gives every node an
# `address` that is the proxy and a `bind` where the node really listens,
# so all node-to-node datagrams cross the proxy and can be dropped,
# duplicated, delayed or blocked per directed link. Clients use a second
# config (client.json: same cluster and key, addresses = the bind
# addresses) and talk to the nodes directly: a client's request forwarded
# by a follower to the leader still crosses the proxy, but the client's own
# datagrams are not faulted, so "unknown" outcomes come from the cluster,
# not from the client's link. Routing replies back through the proxy would
# need NAT-like state in it for no extra coverage.
#
# Layout of a run directory (kept on failure, removed on success):
#   c/cluster.json c/client.json c/cluster.key c/K/   config, key, data dirs
#   node.K.log     each node's stderr (state changes)
#   hist.C         client histories      tail.K.R.json  tailer outputs
#   final.K.json   each node's committed log at the end
#   events         harness events (faults, heals), TIME_US KIND text
#   rules          the proxy's current rules; proxy.stats its counters
#   verify.out check.out   trp-verify and chaoscheck outputs

: "${BIN:=build/bin}" "${T:=build/t}"
CHAOS_BOUND_MS=${CHAOS_BOUND_MS:-5000}
[ -n "${TRP_ASAN:-}" ] && CHAOS_BOUND_MS=${CHAOS_BOUND_MS_ASAN:-10000}

now_us() { echo $(($(date +%s%N) / 1000)); }
event() { echo "$(now_us) $*" >> "$run/events"; }
say() { [ -n "${CHAOS_VERBOSE:-}" ] && echo "# $(date +%T.%N | cut -c1-12) $scenario: $*" >&2; return 0; }

# Deterministic choices from SEED (an LCG in shell arithmetic).
rng_state=1
rng_seed() { rng_state=$(( ($1 * 2654435761 + 12345) % 2147483647 )); [ $rng_state -gt 0 ] || rng_state=7; }
rand() { # rand N: sets R to 0..N-1 (a variable, not output: $(rand) would run in a subshell and lose the state)
    rng_state=$(( (rng_state * 48271) % 2147483647 ))
    R=$(( rng_state % $1 ))
}

# ---- the cluster ----
# make_cluster N BASE_PORT [GROUPS] [MAX_DATAGRAM]: init, then the two configs
make_cluster() {
    nodes=$1; base=$2
    "$BIN/trp-node" init --nodes "$1" --dir "$run/c" --base-port "$2" ${3:+--groups "$3"} \
        ${4:+--max-datagram "$4"} > "$run/init.out" 2>&1 || { echo "init failed: $(cat "$run/init.out")"; return 1; }
    proxy_configs "$run/c" || return 1
    cfg=$run/c/cluster.json
    ccfg=$run/c/client.json
    : > "$run/rules"
    "$T/chaosproxy" -c "$cfg" -r "$run/rules" -s "$seed" -S "$run/proxy.stats" 2> "$run/proxy.err" &
    proxy_pid=$!
    sleep 0.2
    kill -0 "$proxy_pid" 2>/dev/null || { echo "chaosproxy did not start: $(cat "$run/proxy.err")"; return 1; }
    if [ -n "${disks_mb:-}" ]; then
        for k in $(seq 1 "$nodes"); do tmpfs_disk "$k" "$disks_mb" || { echo "cannot mount a tmpfs on $run/c/$k"; return 1; }; done
    fi
    for k in $(seq 1 "$nodes"); do start_node "$k"; done
}

node_pid() { cat "$run/pid.$1" 2>/dev/null; }
start_node() {
    "$BIN/trp-node" -c "$cfg" -i "$1" -v >> "$run/node.$1.log" 2>&1 &
    echo $! > "$run/pid.$1"
    echo "$(now_us) start $1 pid $!" >> "$run/events"
}
running() { # a live process, not a zombie waiting to be reaped
    [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null
}
kill_node() { # kill_node K [SIGNAL]: default -9; waits for the process to go
    p=$(node_pid "$1"); [ -n "$p" ] || return 0
    kill -CONT "$p" 2>/dev/null
    kill "-${2:-9}" "$p" 2>/dev/null
    n=0
    while running "$p"; do
        n=$((n + 1))
        [ $n -gt 100 ] && break
        sleep 0.1
    done
    if [ $n -gt 100 ]; then # SIGTERM must stop a node cleanly: this is a finding
        echo "node $1 did not exit within 10 s of SIG${2:-KILL}" >> "$run/anomalies"
        kill -9 "$p" 2>/dev/null
    fi
    wait "$p" 2>/dev/null
    rm -f "$run/pid.$1"
    event "kill $1 ${2:-9}"
}
node_alive() { p=$(node_pid "$1"); [ -n "$p" ] && running "$p"; }
# reap_exited: a node process that ended without being killed by us exited
# on its own: a non-zero status is logged, a crash (signal) is a finding
reap_exited() {
    for k in $(seq 1 "$nodes"); do
        p=$(node_pid "$k"); [ -n "$p" ] || continue
        running "$p" && continue
        wait "$p"; rc=$?
        rm -f "$run/pid.$k"
        event "exit $k status $rc"
        [ $rc -gt 128 ] && echo "node $k died by signal $((rc - 128)) (see $run/node.$k.log)" >> "$run/anomalies"
    done
    return 0
}
restart_dead() { reap_exited; for k in $(seq 1 "$nodes"); do node_alive "$k" || start_node "$k"; done; }
pause_node() { kill -STOP "$(node_pid "$1")" 2>/dev/null; event "pause $1"; }
resume_node() { kill -CONT "$(node_pid "$1")" 2>/dev/null; event "resume $1"; }

# rules LINE...: replace the proxy's rules (see chaosproxy.c)
rules() {
    printf '%s\n' "$@" > "$run/rules.tmp" && mv "$run/rules.tmp" "$run/rules"
    kill -HUP "$proxy_pid" 2>/dev/null
    event "rules $(printf '%s; ' "$@")"
}
heal() { # everything back: network clear, paused nodes resumed, dead nodes restarted
    rules "* * clear"
    for k in $(seq 1 "$nodes"); do p=$(node_pid "$k"); [ -n "$p" ] && kill -CONT "$p" 2>/dev/null; done
    restart_dead
    event "heal $*"
}

# status K: one node's status JSON (empty if it does not answer in 2 s)
status() { timeout 2 "$BIN/trp-node" status -c "$ccfg" -i "$1" 2>/dev/null; }
field() { "$T/jf" "$1" 2>/dev/null; }
# leader: the id the live nodes agree is leader (empty if none)
leader() {
    for k in $(seq 1 "$nodes"); do
        node_alive "$k" || continue
        s=$(status "$k")
        [ "$(echo "$s" | field role)" = leader ] && { echo "$k"; return 0; }
    done
    return 1
}
wait_leader() { # wait_leader SECONDS
    w=0
    while [ $w -lt $(($1 * 10)) ]; do
        l=$(leader) && { echo "$l"; return 0; }
        sleep 0.1; w=$((w + 1))
    done
    return 1
}
# an id other than the leader, chosen from SEED
follower() { # sets F
    l=$(leader)
    while :; do rand "$nodes"; F=$((R + 1)); [ "$F" != "$l" ] && return; done
}

# ---- clients and tailers ----
start_clients() { # start_clients COUNT RATE: until finish stops them
    client_pids=""
    for c in $(seq 1 "$1"); do
        "$T/chaosclient" -n "$c" -o "$run/hist.$c" -t 100000 -r "$2" -w "${CHAOS_WINDOW:-16}" -u "${CHAOS_UNKNOWN_MS:-8000}" -s "$seed" \
            -- "$BIN/trp-append" -c "$ccfg" --timeout "${CHAOS_APPEND_TIMEOUT:-5}" 2>> "$run/client.$c.err" &
        client_pids="$client_pids $!"
    done
}
start_tailers() {
    tail_loops=""
    for k in $(seq 1 "$nodes"); do
        (
            r=0
            while [ ! -e "$run/stop-tailers" ] && [ $r -lt 200 ]; do
                "$BIN/trp-tail" -c "$ccfg" -i "$k" -f -o json --from 0 > "$run/tail.$k.$r.json" 2>> "$run/tail.$k.err" &
                echo $! > "$run/tailpid.$k"
                wait $!
                r=$((r + 1))
                sleep 0.3
            done
        ) 2>/dev/null &
        tail_loops="$tail_loops $!"
    done
}
stop_tailers() {
    touch "$run/stop-tailers"
    for k in $(seq 1 "$nodes"); do p=$(cat "$run/tailpid.$k" 2>/dev/null); [ -n "$p" ] && kill "$p" 2>/dev/null; done
    for p in $tail_loops; do wait "$p" 2>/dev/null; done
}

# ---- disks ----
# tmpfs_disk K MB: node K's data directory on a tmpfs of MB megabytes
tmpfs_disk() {
    d=$run/c/$1
    mount -t tmpfs -o "size=${2}m" tmpfs "$d" 2>/dev/null || return 1
    echo "$d" >> "$run/mounts"
}
fill_disk() { dd if=/dev/zero of="$run/c/$1/balloon" bs=64k 2>/dev/null; event "disk $1 full"; }
free_disk() { rm -f "$run/c/$1/balloon"; event "disk $1 freed"; }

# ---- the end of a scenario ----
# finish: barrier append, convergence, final logs, stop, verify, check.
# Sets $verdict (empty = pass) and prints the figures line.
finish() {
    verdict=""
    sleep "${SETTLE:-3}" # load goes on after the heal: the liveness check needs it
    for p in $client_pids; do kill -TERM "$p" 2>/dev/null; done
    for p in $client_pids; do wait "$p"; done
    client_pids=""
    barrier_seq=$("$BIN/trp-append" -c "$ccfg" --timeout 20 "barrier-$scenario" 2>> "$run/barrier.err" | tail -1)
    [ -n "$barrier_seq" ] || verdict="no commit after the final heal (barrier append failed: $(tail -1 "$run/barrier.err"))"
    event "barrier $barrier_seq"
    # convergence: every node has committed the barrier
    n=0
    while [ -z "$verdict" ]; do
        behind=""
        for k in $(seq 1 "$nodes"); do
            cs=$(status "$k" | field commit) # the next seq to commit
            case "$cs" in ''|null) behind="$behind $k" ;; *) [ "$cs" -gt "$barrier_seq" ] 2>/dev/null || behind="$behind $k" ;; esac
        done
        [ -z "$behind" ] && break
        n=$((n + 1))
        [ $n -ge 300 ] && verdict="nodes$behind did not commit the barrier seq $barrier_seq within 30 s" && break
        sleep 0.1
    done
    sleep 0.3
    reap_exited
    stop_tailers
    for k in $(seq 1 "$nodes"); do
        timeout 20 "$BIN/trp-tail" -c "$ccfg" -i "$k" --from 0 -o json > "$run/final.$k.json" 2>> "$run/final.err" \
            || { [ -n "$verdict" ] || verdict="could not read node $k's final log: $(tail -1 "$run/final.err")"; }
    done
    for k in $(seq 1 "$nodes"); do kill_node "$k" TERM; done
    kill "$proxy_pid" 2>/dev/null; wait "$proxy_pid" 2>/dev/null
    dirs=""; for k in $(seq 1 "$nodes"); do dirs="$dirs $run/c/$k"; done
    "$BIN/trp-verify" $dirs > "$run/verify.out" 2>&1 || { [ -n "$verdict" ] || verdict="trp-verify failed: $(tail -2 "$run/verify.out" | tr '\n' ' ')"; }
    heads=$(for k in $(seq 1 "$nodes"); do tail -1 "$run/final.$k.json" | field hash; done | sort -u | wc -l)
    [ "$heads" -eq 1 ] || { [ -n "$verdict" ] || verdict="the nodes' head hashes differ"; }
    [ -s "$run/anomalies" ] && { [ -n "$verdict" ] || verdict=$(head -1 "$run/anomalies"); }
    "$T/chaoscheck" --bound-ms "$CHAOS_BOUND_MS" "$run" > "$run/check.out" 2>&1
    rc=$?
    [ $rc -eq 0 ] || { [ -n "$verdict" ] || verdict="chaoscheck: $(grep -m3 -E '^VIOLATION|chaoscheck' "$run/check.out" | tr '\n' ' ')"; }
    elections=$(cat "$run"/node.*.log 2>/dev/null | grep -E ': leader in term [0-9]+' \
        | grep -Eo 'term [0-9]+' | sort -u | wc -l)
    g() { awk -v k="$1" '$1 == k { print $2 }' "$run/check.out"; }
    printf '%s: attempted %s acknowledged %s unknown %s lost %s duplicated %s elections %s longest_unavailability_ms %s slowest_recovery_ms %s\n' \
        "$scenario" "$(g attempted)" "$(g acknowledged)" "$(g unknown)" "$(g lost)" "$(g duplicated)" "$elections" \
        "$(g longest_unavailability_ms)" "$(g slowest_recovery_ms)"
}

cleanup_run() {
    for p in $client_pids; do kill "$p" 2>/dev/null; done
    [ -n "${tail_loops:-}" ] && stop_tailers
    for k in $(seq 1 "${nodes:-0}"); do p=$(node_pid "$k"); [ -n "$p" ] && { kill -CONT "$p"; kill -9 "$p"; wait "$p"; } 2>/dev/null; done
    [ -n "${proxy_pid:-}" ] && { kill "$proxy_pid"; wait "$proxy_pid"; } 2>/dev/null
    proxy_pid=""
    # tmpfs data directories: keep their contents (for a failed run) on disk
    [ -f "$run/mounts" ] && while read -r m; do
        cp -a "$m" "$m.kept" 2>/dev/null && umount "$m" 2>/dev/null && cp -a "$m.kept/." "$m/" && rm -rf "$m.kept"
    done < "$run/mounts"
    rm -f "$run/mounts"
    wait 2>/dev/null
}
