#!/bin/sh
# tests/cli/install.sh: `make install PREFIX=... DESTDIR=...` puts the
# binaries, both libraries, the public headers, trp.pc and every man page
# where they belong, and a program builds against the installed header and
# library through the installed trp.pc.
. "$(dirname "$0")/lib.sh"

D=$TMP/dest
make -s install PREFIX=/opt/trp DESTDIR="$D" > "$TMP/out" 2>&1
[ $? = 0 ] && pass install_runs || { fail install_runs "$(tail -5 "$TMP/out")"; exit 0; }

missing=
for f in bin/trp-append bin/trp-tail bin/trp-verify bin/trp-node lib/libtrp.a lib/libtrp.so.0 \
    lib/libtrp.so include/trp.h include/trp_log.h lib/pkgconfig/trp.pc \
    share/man/man1/trp-append.1 share/man/man1/trp-tail.1 share/man/man1/trp-verify.1 \
    share/man/man5/trp-log.5 share/man/man5/trp.conf.5 share/man/man7/trp.7 share/man/man8/trp-node.8 \
    share/man/man3/libtrp.3; do
    [ -e "$D/opt/trp/$f" ] || missing="$missing $f"
done
[ -z "$missing" ] && pass install_files || fail install_files "missing:$missing"

grep -q '^prefix=/opt/trp$' "$D/opt/trp/lib/pkgconfig/trp.pc" && pass install_pc_prefix \
    || fail install_pc_prefix "$(cat "$D/opt/trp/lib/pkgconfig/trp.pc")"

cat > "$TMP/prog.c" <<'C'
#include <trp.h>
#include <stdio.h>
int main(void) { printf("%s\n", trp_version()); return 0; }
C
cc -std=c11 -c -I"$D/opt/trp/include" $(pkg-config --cflags libcjson) -o "$TMP/prog.o" "$TMP/prog.c" \
    2> "$TMP/err" && pass install_header_compiles || fail install_header_compiles "$(cat "$TMP/err")"
if [ -z "${TRP_ASAN:-}" ]; then
    # With the sanitizer build the archive needs the sanitizer runtime; the
    # plain build links as a user would.
    # Flags from the installed trp.pc (prefix rewritten to DESTDIR), shared
    # library found through LD_LIBRARY_PATH, as a user of a staged install.
    sed "s|^prefix=.*|prefix=$D/opt/trp|; s|=/opt/trp/|=$D/opt/trp/|" "$D/opt/trp/lib/pkgconfig/trp.pc" \
        > "$TMP/trp.pc"
    flags=$(PKG_CONFIG_PATH="$TMP" pkg-config --static --cflags --libs trp)
    cc -o "$TMP/prog" "$TMP/prog.c" $flags -lpthread 2> "$TMP/err" \
        && [ "$(LD_LIBRARY_PATH="$D/opt/trp/lib" "$TMP/prog")" = "$(trp-append --version | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)" ] \
        && pass install_links_and_runs || fail install_links_and_runs "$flags: $(cat "$TMP/err")"
fi
exit 0
