#!/bin/sh
# tests/cli/nodedir.sh: the local tools on a trp-node data directory (built
# by tests/tools/mknodelog, no cluster needed): trp-tail strips the client
# envelope, hides no-ops in raw output, and -n N means the last N data
# entries even when no-ops sit among them; trp-append -d refuses the
# directory.
. "$(dirname "$0")/lib.sh"

D=$TMP/node
mknodelog "$D" a b n c n d e n || { fail nodedir_setup "mknodelog failed"; exit 1; }

run trp-tail -d "$D" -n 3
[ "$RC" = 0 ] && [ "$(tr '\n' ' ' < "$TMP/out")" = "c d e " ] && pass nodedir_last_3_skip_noops \
    || fail nodedir_last_3_skip_noops "exit $RC, got '$(tr '\n' ' ' < "$TMP/out")'"

run trp-tail -d "$D" -n 5
[ "$(tr '\n' ' ' < "$TMP/out")" = "a b c d e " ] && pass nodedir_last_5_all_data \
    || fail nodedir_last_5_all_data "got '$(tr '\n' ' ' < "$TMP/out")'"

run trp-tail -d "$D" -n 100
[ "$(tr '\n' ' ' < "$TMP/out")" = "a b c d e " ] && pass nodedir_more_than_stored \
    || fail nodedir_more_than_stored "got '$(tr '\n' ' ' < "$TMP/out")'"

run trp-tail -d "$D" -n 1
[ "$(cat "$TMP/out")" = "e" ] && pass nodedir_last_1_after_noop \
    || fail nodedir_last_1_after_noop "got '$(cat "$TMP/out")'"

run trp-tail -d "$D" --from 0 -o json
[ "$(grep -c '"type":"noop"' "$TMP/out")" = 3 ] && [ "$(grep -c '"text":"[a-e]"' "$TMP/out")" = 5 ] \
    && pass nodedir_json_shows_envelope_free_text || fail nodedir_json_shows_envelope_free_text "$(cat "$TMP/out")"

# -n N counts data entries in JSON too (as trp-tail -c does): the last 3
# data entries, with the no-ops among and after them
run trp-tail -d "$D" -n 3 -o json
same nodedir_json_last_3_counts_data "$(jf type < "$TMP/out" | tr '\n' ' ')" \
    "data noop data data noop "
same nodedir_json_last_3_texts "$(jf text < "$TMP/out" | tr '\n' ' ')" "c  d e  "

run trp-append -d "$D" x
[ "$RC" -ne 0 ] && grep -q -- '-c' "$TMP/err" && pass nodedir_append_refused \
    || fail nodedir_append_refused "exit $RC: $(cat "$TMP/err")"

run trp-verify "$D"
[ "$RC" = 0 ] && pass nodedir_verifies || fail nodedir_verifies "exit $RC: $(cat "$TMP/err")"
exit 0
