#!/bin/sh
# tests/cli/seqs.sh: seqs are unbounded. A log starting at 2^64 - 6 crosses
# 2^64 and a log starting at 10^30 works, through every tool.
. tests/cli/lib.sh

D=$TMP/wrap
expect wrap-append 0 "" trp-append -d "$D" --start-seq 18446744073709551610 a b c d e f g h
same wrap-seqs "$(tr '\n' ' ' < "$TMP/out")" \
    "18446744073709551610 18446744073709551611 18446744073709551612 18446744073709551613 18446744073709551614 18446744073709551615 18446744073709551616 18446744073709551617 "
seq 1 20 | trp-append -d "$D" -q
same wrap-tail-from "$(trp-tail -d "$D" --from 18446744073709551615 --count 3 | tr '\n' ' ')" "f g h "
same wrap-tail-json "$(trp-tail -d "$D" -n 1 -o json | jf seq)" "18446744073709551637"
expect wrap-verify 0 "seq 18446744073709551610\.\.18446744073709551637" trp-verify "$D"
same wrap-verify-json "$(trp-verify -q --json "$D" | jf first last entries)" \
    '18446744073709551610 18446744073709551637 28'
h=$(trp-tail -d "$D" --from 18446744073709551616 --count 1 -o json | jf hash)
expect wrap-anchor 0 "" trp-verify -q --anchor "18446744073709551616:$h" "$D"
same wrap-json-append "$(trp-append -d "$D" --json z | jf seq)" "18446744073709551638"

D=$TMP/big
expect e30-append 0 "" trp-append -d "$D" --start-seq 1000000000000000000000000000000 x y
same e30-seqs "$(tr '\n' ' ' < "$TMP/out")" "1000000000000000000000000000000 1000000000000000000000000000001 "
genlines 3000 30 | trp-append -d "$D" > "$TMP/seqs"
same e30-batch-last "$(tail -1 "$TMP/seqs")" "1000000000000000000000000003001"
same e30-batch-first "$(head -1 "$TMP/seqs")" "1000000000000000000000000000002"
same e30-tail "$(trp-tail -d "$D" --from 1000000000000000000000000003000 -o json | jf seq text)" \
    "1000000000000000000000000003000 2999xxxxxxxxxxxxxxxxxxxxxxxxxx
1000000000000000000000000003001 3000xxxxxxxxxxxxxxxxxxxxxxxxxx"
expect e30-verify 0 "3002 entries" trp-verify "$D"
# 999...9 -> 1000...0: the decimal counter grows a digit.
expect nines 0 "" trp-append -d "$TMP/nines" --start-seq 99999999999999999999999999999998 a b c
same nines-seqs "$(tr '\n' ' ' < "$TMP/out")" "99999999999999999999999999999998 99999999999999999999999999999999 100000000000000000000000000000000 "
same nines-tail "$(trp-tail -d "$TMP/nines" -o json | jf seq | tr '\n' ' ')" "99999999999999999999999999999998 99999999999999999999999999999999 100000000000000000000000000000000 "

# the top of the format: 2^512-2 is the last seq (one past it must fit
# the 64-byte field); the next append is refused and the log stays sound
TOP=13407807929942597099574024998205846127479365820592393377723561443721764030073546976801874298166903427690031858186486050853753882811946569946433649006084094
expect top-append 0 "" trp-append -d "$TMP/top" --start-seq $TOP a
same top-seq "$(cat "$TMP/out")" "$TOP"
expect top-full 65 "no seq left: 2\\^512-2 is the largest seq" trp-append -d "$TMP/top" b
same top-tail "$(trp-tail -d "$TMP/top" -o json | jf seq text)" "$TOP a"
expect top-verify 0 "1 entr" trp-verify "$TMP/top"
# a start past it is bad usage, and nothing is created
TOP1=13407807929942597099574024998205846127479365820592393377723561443721764030073546976801874298166903427690031858186486050853753882811946569946433649006084095
TOP2=13407807929942597099574024998205846127479365820592393377723561443721764030073546976801874298166903427690031858186486050853753882811946569946433649006084096
expect start-past-top 64 "start-seq: too large" trp-append -d "$TMP/past1" --start-seq $TOP1 a
expect start-past-field 64 "start-seq: too large" trp-append -d "$TMP/past2" --start-seq $TOP2 a
check start-past-nothing-made test ! -e "$TMP/past1" -a ! -e "$TMP/past2"

exit 0
