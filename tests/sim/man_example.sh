#!/bin/sh
# tests/sim/man_example.sh: the EXAMPLES program of man/libtrp.3 compiles
# against the built library and prints what the page says it prints.
B=${B:-build}
CC=${CC:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trp-manex.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
# the first literal block after .Sh EXAMPLES, with roff escapes undone
awk '/^\.Sh EXAMPLES/ {ex=1} ex && /^\.Bd -literal/ && !done {inb=1; next}
     inb && /^\.Ed/ {inb=0; done=1} inb {print}' man/libtrp.3 |
    sed -e 's/\\&//g' -e 's/\\e/\\/g' > "$tmp/example.c"
if ! grep -q 'int main' "$tmp/example.c"; then
    echo "FAIL man_libtrp_example: no program found in man/libtrp.3 EXAMPLES"
    exit 0
fi
san=
[ -n "$TRP_ASAN" ] && san="-fsanitize=address,undefined"
if ! $CC -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -Ilib $san "$tmp/example.c" "$B/libtrp.a" \
        $(pkg-config --libs libcrypto gmp 2>/dev/null || echo -lcrypto -lgmp) -o "$tmp/example" \
        > "$tmp/cc.out" 2>&1; then
    echo "FAIL man_libtrp_example: does not compile: $(head -3 "$tmp/cc.out" | tr '\n' ' ')"
    exit 0
fi
"$tmp/example" > "$tmp/out" 2>&1
heads=$(grep '^node [123] head ' "$tmp/out" | awk '{print $4}' | sort -u | wc -l)
if grep -qx '{"a":1}: seq = 0' "$tmp/out" && grep -qx '{"b":2}: seq = 1' "$tmp/out" &&
   grep -qx '{"c":3}: seq = 2' "$tmp/out" && [ "$heads" -eq 1 ] &&
   [ "$(grep -c '^node [123] head [0-9a-f]\{64\}$' "$tmp/out")" -eq 3 ]; then
    echo "PASS man_libtrp_example"
else
    echo "FAIL man_libtrp_example: unexpected output: $(tr '\n' '|' < "$tmp/out")"
fi
