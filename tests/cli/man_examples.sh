#!/bin/sh
# tests/cli/man_examples.sh: the pages of the local tools render without
# warnings, keep the man-pages(7) section order, name every long option
# their command accepts, and their EXAMPLES work when pasted (each page's
# examples run in order, in a fresh directory, and must succeed).
. tests/cli/lib.sh
export MANWIDTH=1000

order="NAME SYNOPSIS DESCRIPTION OPTIONS EXIT_STATUS ENVIRONMENT FILES EXAMPLES SEE_ALSO"
for page in man/trp-append.1 man/trp-tail.1 man/trp-verify.1 man/trp.7; do
    name=$(basename "$page")
    if command -v man >/dev/null 2>&1 && command -v groff >/dev/null 2>&1; then
        warn=$(man --warnings -l -E UTF-8 "$page" 2>&1 >/dev/null)
        same "man-renders-$name" "$warn" ""
    else
        # No renderer here: at least the page must be well-formed roff.
        check "man-has-th-$name" grep -q '^\.TH ' "$page"
    fi
    # Section order: the known sections appear in man-pages(7) order.
    got=$(sed -n 's/^\.SH //p' "$page" | tr ' ' _ | tr -d '"' |
        while read -r s; do case " $order " in *" $s "*) printf '%s ' "$s" ;; esac; done)
    want=$(for s in $order; do case " $got " in *" $s "*) printf '%s ' "$s" ;; esac; done)
    same "man-order-$name" "$got" "$want"
    case "$name" in *.1)
        check "man-exit-status-$name" grep -q '^\.SH EXIT STATUS' "$page" ;;
    esac
    # Every long option in the command's source is documented.
    src=cmd/${name%.*}.c
    if [ -f "$src" ]; then
        bs=$(printf '\b')
        text=$(man -l -E UTF-8 "$page" 2>/dev/null | sed "s/.$bs//g")
        missing=""
        for opt in $(sed -n 's/^ *{"\([a-z][a-z-]*\)", [a-z_]*argument.*/\1/p' "$src"); do
            printf '%s' "$text" | grep -q -- "--$opt" || missing="$missing --$opt"
        done
        same "man-options-$name" "$missing" ""
    fi
    # EXAMPLES: the .EX blocks of that section, roff escapes undone.
    awk '/^\.SH /{ex = ($0 ~ /^\.SH EXAMPLES/)} ex && /^\.EE/{inb = 0} ex && inb {print} ex && /^\.EX/{inb = 1}' "$page" |
        sed -e 's/\\e/\\/g' -e 's/\\-/-/g' -e "s/\\\\(aq/'/g" -e 's/\\(dq/"/g' > "$TMP/ex-$name.sh"
    if [ ! -s "$TMP/ex-$name.sh" ]; then
        fail "man-examples-$name" "no EXAMPLES found"
        continue
    fi
    if grep -q 'jq' "$TMP/ex-$name.sh" && ! command -v jq >/dev/null 2>&1; then
        echo "# jq is not installed here: the EXAMPLES of $name (which use jq) were not run"
        continue
    fi
    mkdir "$TMP/run-$name"
    (cd "$TMP/run-$name" && timeout 60 sh -e "$TMP/ex-$name.sh") > "$TMP/ex.out" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ]; then pass "man-examples-$name"; else fail "man-examples-$name" "exit $rc: $(tail -5 "$TMP/ex.out")"; fi
done

exit 0
