# tests/cli/lib.sh: helpers shared by the CLI tests (sourced, never run by
# tests/run.sh on its own).
#
# The one idea: every check is one line, "PASS name" or "FAIL name: why",
# and every test runs real binaries on real files in a private temp dir
# that is removed, with every background process, however the test ends.

B=${B:-build}
BIN=${BIN:-$(pwd)/$B/bin}
T=${T:-$(pwd)/$B/t}
PATH=$BIN:$T:$PATH
export PATH LC_ALL=C
TMP=$(mktemp -d "${TMPDIR:-/tmp}/trp-cli.XXXXXX") || exit 1
BG_PIDS=""

cleanup() {
    for p in $BG_PIDS; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
trap 'exit 141' PIPE # a dead peer on a fifo must not skip the cleanup

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }

# check NAME CMD...: PASS when CMD succeeds.
check() {
    _n=$1; shift
    if "$@"; then pass "$_n"; else fail "$_n" "'$*' failed"; fi
}

# run CMD...: run with stdout in $TMP/out, stderr in $TMP/err, status in $RC.
run() {
    "$@" >"$TMP/out" 2>"$TMP/err"
    RC=$?
}

# expect NAME STATUS STDERR-ERE CMD...: the exit status must be STATUS and
# stderr must match STDERR-ERE (empty: stderr must be empty).
expect() {
    _n=$1 _want=$2 _pat=$3; shift 3
    run "$@"
    if [ "$RC" -ne "$_want" ]; then
        fail "$_n" "exit $RC, want $_want; stderr: $(head -c 400 "$TMP/err")"
    elif [ -z "$_pat" ] && [ -s "$TMP/err" ]; then
        fail "$_n" "unexpected stderr: $(head -c 400 "$TMP/err")"
    elif [ -n "$_pat" ] && ! grep -Eq -- "$_pat" "$TMP/err"; then
        fail "$_n" "stderr does not match /$_pat/: $(head -c 400 "$TMP/err")"
    else
        pass "$_n"
    fi
}

# same NAME GOT WANT: string equality, with both shown on failure.
same() {
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got '$(printf %s "$2" | head -c 300)', want '$(printf %s "$3" | head -c 300)'"; fi
}

# count DIR: how many committed entries the log in DIR holds.
count() {
    trp-tail -d "$1" --from "$(first_seq "$1")" | wc -l | tr -d ' '
}

# first_seq DIR: the seq of the oldest entry (from trp-verify --json).
first_seq() {
    trp-verify -q --json "$1" | jf first
}

# head_hash DIR: the head hash (from trp-verify --json).
head_hash() {
    trp-verify -q --json "$1" | jf head
}

# wait_for SECONDS CMD...: retry CMD every 0.05 s until it succeeds or the
# generous deadline passes (never a timing assertion, only a bound).
wait_for() {
    _limit=$(($1 * 20)); shift
    _i=0
    while [ "$_i" -lt "$_limit" ]; do
        "$@" && return 0
        sleep 0.05
        _i=$((_i + 1))
    done
    return 1
}

# can_mount: true when this process may mount in a private namespace.
can_mount() {
    command -v unshare >/dev/null 2>&1 &&
        unshare -m sh -c "mount -t tmpfs -o size=1m tmpfs '$TMP' && umount '$TMP'" 2>/dev/null
}

# log_file DIR: the first segment file of the log in DIR.
seg_file() {
    ls "$1"/*.seg 2>/dev/null | head -1
}
