#!/bin/sh
# tests/sim/run.sh: randomized simulator seeds for `make test`.
#
# Runs a fixed set of regression seeds, then SIM_SEEDS (default 2000; 200
# under TRP_ASAN=1) fresh seeds from a base taken from the clock and printed,
# so every CI run tries new schedules and any failure replays with
# `make sim SEED=<seed> TRACE=1`. Two processes share the seeds (2 cores).
# Then SIM_REAL_SEEDS (default 200; 40 under TRP_ASAN=1) seeds from another
# clock base run with --real-disk: every node's log is the real log store
# in a temporary directory (/dev/shm when there is one), crashed and
# recovered on the same schedules; replay with `make sim SEED=<seed>
# REAL_DISK=1 TRACE=1`.
T=${T:-build/t}
sim=$T/sim
if [ ! -x "$sim" ]; then
    echo "FAIL sim: $sim not built (make check-tools)"
    exit 1
fi
n=${SIM_SEEDS:-2000}
[ -n "$TRP_ASAN" ] && n=${SIM_SEEDS:-200}
base=${SIM_BASE:-$(date +%s)}
out=${TMPDIR:-/tmp}/trp-sim-$$
trap 'rm -f "$out".*' EXIT INT TERM

# regression seeds: fixed, always the same schedules
if "$sim" --seeds 200 --base 1 > "$out.reg" 2>&1; then
    echo "PASS sim_regression_seeds_1_to_200"
else
    grep -m 3 '^FAIL' "$out.reg" | sed 's/^FAIL /FAIL sim_regression: /'
    tail -1 "$out.reg"
fi

half=$((n / 2))
"$sim" --seeds "$half" --base "$base" > "$out.a" 2>&1 &
pa=$!
"$sim" --seeds "$((n - half))" --base "$((base + half))" > "$out.b" 2>&1 &
pb=$!
wait $pa; ra=$?
wait $pb; rb=$?
echo "# sim: base seed $base, $n seeds"
tail -1 "$out.a" | sed 's/^/# /'
tail -1 "$out.b" | sed 's/^/# /'
if [ $ra -eq 0 ] && [ $rb -eq 0 ]; then
    echo "PASS sim_random_${n}_seeds_from_$base"
else
    grep -h -A1 '^FAIL' "$out.a" "$out.b" | head -20 | sed 's/^FAIL sim /FAIL sim_random: /'
fi

# the same schedules over the real log store
rn=${SIM_REAL_SEEDS:-200}
[ -n "$TRP_ASAN" ] && rn=${SIM_REAL_SEEDS:-40}
rbase=$((base + 1000003))
rhalf=$((rn / 2))
"$sim" --real-disk --seeds "$rhalf" --base "$rbase" > "$out.ra" 2>&1 &
pa=$!
"$sim" --real-disk --seeds "$((rn - rhalf))" --base "$((rbase + rhalf))" > "$out.rb" 2>&1 &
pb=$!
wait $pa; ra=$?
wait $pb; rb=$?
echo "# sim: real disk, base seed $rbase, $rn seeds"
tail -2 "$out.ra" | sed 's/^/# /'
tail -2 "$out.rb" | sed 's/^/# /'
if [ $ra -eq 0 ] && [ $rb -eq 0 ]; then
    echo "PASS sim_real_disk_${rn}_seeds_from_$rbase"
else
    grep -h -A1 '^FAIL' "$out.ra" "$out.rb" | head -20 | sed 's/^FAIL sim /FAIL sim_real_disk: /'
fi
