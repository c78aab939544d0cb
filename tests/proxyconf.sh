# tests/proxyconf.sh: configs for a cluster behind tests/tools/chaosproxy,
# sourced by the cluster and chaos tests.
#
# proxy_configs DIR: from DIR/cluster.json as `trp-node init` wrote it (kept
# as DIR/init.json), write DIR/cluster.json for the nodes (each node's
# address is the proxy's port, base+i-1; it binds to base+10+i-1) and
# DIR/client.json for clients, which talk to the nodes directly.
proxy_configs() {
    cp "$1/cluster.json" "$1/init.json" || return 1
    awk '/"address":/ { match($0, /:[0-9]+"/); p = substr($0, RSTART + 1, RLENGTH - 2);
                        print; printf "\t\t\t\"bind\":\t\"127.0.0.1:%d\",\n", p + 10; next } { print }' \
        "$1/init.json" > "$1/cluster.json" &&
    awk '/"address":/ { match($0, /:[0-9]+"/); p = substr($0, RSTART + 1, RLENGTH - 2);
                        sub(/:[0-9]+"/, ":" (p + 10) "\""); } { print }' \
        "$1/init.json" > "$1/client.json"
}
