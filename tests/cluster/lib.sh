# tests/cluster/lib.sh: helpers for the real-process cluster tests (sourced).
#
# The one idea: every test makes its own cluster in a temp dir on a port
# range derived from its pid (retrying elsewhere when a port is taken),
# remembers the pid of every process it starts, and kills exactly those on
# exit, so tests can run side by side and never leave a node behind.
BIN=${BIN:-build/bin}
T=${T:-build/t}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trp-cluster-XXXXXX") || exit 1
C=$tmp/c/cluster.json
PIDS=
proxy_pid=
stop_proxy() { [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null; proxy_pid=; }
cleanup() {
    stop_proxy
    for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
# check NAME REASON COMMAND...: PASS when the command succeeds
check() {
    n=$1; r=$2; shift 2
    if "$@" >/dev/null 2>&1; then pass "$n"; else fail "$n" "$r"; fi
}

# make_cluster N [init options...]: init into $tmp/c on a free-looking port
# range (from our pid; another try elsewhere if init or a bind fails later)
make_cluster() {
    nodes=$1; shift
    attempt=${attempt:-0}
    BASE=$((20000 + ($$ * 37 + attempt * 4099) % 40000))
    rm -rf "$tmp/c"
    "$BIN/trp-node" init --nodes "$nodes" --dir "$tmp/c" --base-port $BASE "$@" > /dev/null
}

# proxied_cluster RULES SEED: make_cluster 3 with 1400-byte datagrams behind
# tests/tools/chaosproxy with RULES (one line; the caller sources
# tests/proxyconf.sh): nodes use $tmp/c/cluster.json, clients
# $tmp/c/client.json; the proxy's pid in proxy_pid (stop_proxy). 1 if the
# proxy would not start (its stderr in $tmp/proxy.err)
proxied_cluster() {
    for attempt in 0 1 2; do
        make_cluster 3 --max-datagram 1400 || continue
        proxy_configs "$tmp/c" || continue
        printf '%s\n' "$1" > "$tmp/rules"
        "$T/chaosproxy" -c "$tmp/c/cluster.json" -r "$tmp/rules" -s "$2" -S "$tmp/stats" 2> "$tmp/proxy.err" &
        proxy_pid=$!
        sleep 0.2
        kill -0 "$proxy_pid" 2>/dev/null && return 0
        proxy_pid=
    done
    return 1
}

# start_node ID [CONFIG]: run node ID in the background; its pid in pid_ID
start_node() {
    cfg=${2:-$C}
    "$BIN/trp-node" -c "$cfg" -i "$1" 2>> "$tmp/node$1.log" &
    eval "pid_$1=$!"
    PIDS="$PIDS $!"
}

# stop_node ID [SIGNAL]: signal it (default TERM) and wait; its exit status
# in $stopped (not a subshell: only this shell can wait for its children)
stop_node() {
    eval "p=\$pid_$1"
    kill "-${2:-TERM}" "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    stopped=$?
}

# status_of ID: the node's status JSON (one line), empty when it does not answer
status_of() {
    "$BIN/trp-node" status -c "$C" -i "$1" --timeout 1 2>/dev/null
}

# wait_leader: until some node reports itself leader (at most ~15 s); prints its id
wait_leader() {
    n=0
    while [ $n -lt 150 ]; do
        l=$("$BIN/trp-node" status -c "$C" --timeout 1 2>/dev/null |
            grep '"role":"leader"' | sed 's/^{"id":\([0-9]*\),.*/\1/' | head -1)
        if [ -n "$l" ]; then echo "$l"; return 0; fi
        sleep 0.1
        n=$((n + 1))
    done
    return 1
}

# json_field FIELD: the top-level FIELD of stdin's first JSON line (strings unquoted)
json_field() {
    head -1 | "$T/jf" "$1"
}
