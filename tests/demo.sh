#!/bin/sh
# tests/demo.sh BINDIR: `make demo`. A three-node trp cluster on this
# machine, from nothing: init, start, append through each node, show each
# node's head, tail the log, verify the three replicas, stop, clean up.
# Prints what it runs ("$ ...") and what that printed, like the README.
set -u
BIN=$(cd "${1:-build/bin}" && pwd) || exit 1
PATH=$BIN:$PATH
dir=$(mktemp -d "${TMPDIR:-/tmp}/trp-demo-XXXXXX") || exit 1
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run() { # show the command, then run it
    echo "\$ $*"
    "$@"
}

# a free-looking port range from our pid, away from the usual ones
port=$((20000 + ($$ * 13) % 40000))
cd "$dir" || exit 1
run trp-node init --nodes 3 --dir . --base-port $port || exit 1
echo
for i in 1 2 3; do
    echo "\$ trp-node -c cluster.json -i $i &"
    trp-node -c cluster.json -i $i 2> node$i.log &
    pids="$pids $!"
done
# wait for a leader (at most 10 s)
n=0
while [ $n -lt 100 ]; do
    trp-node status -c cluster.json --timeout 1 2>/dev/null | grep -q '"role":"leader"' && break
    sleep 0.1
    n=$((n + 1))
done
sed -n 's/^trp-node: \(node [0-9]*: leader in term [0-9]*\)$/# \1/p' node*.log
echo
for pair in '1 {"a":1}' '2 {"b":2}' '3 {"c":3}'; do
    i=${pair%% *}
    e=${pair#* }
    echo "\$ echo '$e' | trp-append -c cluster.json -i $i"
    echo "$e" | trp-append -c cluster.json -i $i || exit 1
done
echo
for i in 1 2 3; do
    echo "\$ trp-tail -c cluster.json -i $i --linearizable -n 1 -o json   # node $i's head"
    trp-tail -c cluster.json -i $i --linearizable -n 1 -o json |
        sed 's/.*"seq":"\([0-9]*\)".*"hash":"\([0-9a-f]*\)".*/seq \1 hash \2/'
done
echo
run trp-tail -c cluster.json --from 0
echo
run trp-tail -c cluster.json --from 0 -o json
echo
run trp-verify 1 2 3
status=$?
echo
echo "# stopping the nodes (SIGTERM)"
exit $status
