#!/bin/sh
# tests/run.sh: run the whole suite and count the checks.
#
# Every test program and script prints one line per check, "PASS name" or
# "FAIL name: why". This runner runs, in order: the unit programs
# ($B/t/test_*), then every executable-or-sh script in tests/cli,
# tests/cluster, tests/sim and tests/chaos (named *.sh). A program that
# exits non-zero without printing a FAIL line counts as one failure, so a
# crash is never silent. The last line is "N passed, N failed".
B=${B:-build}
export B
BIN=$(cd "$B/bin" 2>/dev/null && pwd)
T=$(cd "$B/t" 2>/dev/null && pwd)
export BIN T
passed=0
failed=0
only=${TESTS:-}

run_one() { # name, command...
    name=$1; shift
    out=${TMPDIR:-/tmp}/trp-one-$$.out
    start=$(date +%s)
    "$@" > "$out" 2>&1
    rc=$?
    end=$(date +%s)
    p=$(grep -c '^PASS ' "$out")
    f=$(grep -c '^FAIL ' "$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name: exited with status $rc" >> "$out"
        f=1
    fi
    grep -E '^(PASS|FAIL) ' "$out"
    if [ "$f" -ne 0 ]; then
        echo "--- output of $name (exit $rc) ---"
        grep -v '^PASS ' "$out" | tail -40
        echo "---"
    fi
    echo "# $name: $p passed, $f failed ($((end - start)) s)"
    passed=$((passed + p))
    failed=$((failed + f))
    rm -f "$out"
}

for t in "$B"/t/test_*; do
    [ -x "$t" ] || continue
    case " $only " in "  ") ;; *" $(basename "$t") "*) ;; *) continue ;; esac
    run_one "$(basename "$t")" "$t"
done
for dir in cli cluster sim chaos; do
    for s in tests/$dir/*.sh; do
        [ -f "$s" ] || continue
        case "$s" in */lib.sh) continue ;; esac
        case " $only " in "  ") ;; *" $(basename "$s") "*) ;; *) continue ;; esac
        run_one "$dir/$(basename "$s")" sh "$s"
    done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
