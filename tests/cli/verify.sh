#!/bin/sh
# tests/cli/verify.sh: trp-verify on intact logs, --json, --anchor, several
# replicas (agreeing and diverging), single flipped bytes at each kind of
# place in a segment, and the exit statuses for usage, missing, not-a-log
# and newer-format directories.
. tests/cli/lib.sh
D=$TMP/log
# Ten batches of one 10-byte entry each: every record is 64 + 16 bytes, so
# record k starts at 128 + 80 k (segment header, then records: trp-log(5)).
for i in 0 1 2 3 4 5 6 7 8 9; do trp-append -d "$D" -q "entry-000$i"; done

expect help 0 "" trp-verify --help
expect version 0 "" trp-verify --version
expect no-dirs 64 "no log directory" trp-verify
expect bad-flag 64 "unknown option" trp-verify --frobnicate "$D"
expect bad-anchor 64 "not SEQ:HASH" trp-verify --anchor 12 "$D"
expect bad-anchor-hash 64 "anchor hash" trp-verify --anchor 1:xyz "$D"
expect missing 66 "nothere" trp-verify "$TMP/nothere"
mkdir "$TMP/other" && echo x > "$TMP/other/f"
expect not-a-log 65 "not a trp log" trp-verify "$TMP/other"

expect ok 0 "PASS .*log: 10 entries, seq 0\.\.9" trp-verify "$D"
same ok-stdout "$(cat "$TMP/out")" ""
expect quiet 0 "" trp-verify -q "$D"
expect json 0 "" trp-verify -q --json "$D"
same json-summary "$(jf ok first last entries bytes < "$TMP/out")" 'true 0 9 10 100'
check json-seqs-strings grep -q '"first":"0","last":"9"' "$TMP/out"
head=$(jf head < "$TMP/out")
same json-head "$head" "$(trp-tail -d "$D" -n 1 -o json | jf hash)"
h3=$(trp-tail -d "$D" --from 3 --count 1 -o json | jf hash)
expect anchor-ok 0 "" trp-verify -q --anchor "3:$h3" "$D"
expect anchor-wrong 1 "FAIL" trp-verify -q --anchor "4:$h3" "$D"

# Replicas: identical ones agree; one that took a different entry at seq 5
# diverges there; a shorter prefix agrees.
cp -a "$D" "$TMP/r2"
for i in 0 1 2 3 4; do trp-append -d "$TMP/r3" -q "entry-000$i"; done
trp-append -d "$TMP/r3" -q other-5 other-6
for i in 0 1 2; do trp-append -d "$TMP/r4" -q "entry-000$i"; done
expect replicas-agree 0 "PASS 3 replicas agree" trp-verify "$D" "$TMP/r2" "$TMP/r4"
expect replicas-diverge 1 "diverge at seq 5" trp-verify -q "$D" "$TMP/r2" "$TMP/r3"
expect replicas-json 1 "diverge at seq 5" trp-verify -q --json "$D" "$TMP/r3"
same replicas-json-agree "$(tail -1 "$TMP/out" | jf agree diverge)" 'false 5'
expect replicas-json-ok 0 "" trp-verify -q --json "$D" "$TMP/r4"
same replicas-json-ok-agree "$(tail -1 "$TMP/out" | jf replicas agree diverge)" '2 true null'
expect replicas-missing 66 "nothere" trp-verify -q "$D" "$TMP/nothere"

# Damage: flip one byte at a time in a copy; trp-verify must exit 1 and
# name the segment file and an offset inside the damaged structure.
damage() { # name offset record-start record-end
    rm -rf "$TMP/dmg" && cp -a "$D" "$TMP/dmg"
    seg=$(seg_file "$TMP/dmg")
    flipbyte "$seg" "$2"
    run trp-verify --json "$TMP/dmg"
    off=$(head -1 "$TMP/out" | jf offset 2>/dev/null)
    if [ "$RC" -ne 1 ]; then
        fail "damage-$1" "exit $RC, want 1: $(head -c 300 "$TMP/err")"
    elif ! grep -q "FAIL .*$(basename "$seg").*offset $off" "$TMP/err"; then
        fail "damage-$1" "stderr does not name $(basename "$seg") at offset $off: $(cat "$TMP/err")"
    elif [ "$off" -lt "$3" ] || [ "$off" -ge "$4" ]; then
        fail "damage-$1" "reported offset $off is outside [$3, $4) (flipped byte $2)"
    else
        pass "damage-$1"
    fi
}
damage seg-header-anchor 20 0 128
damage seg-header-base 100 0 128
damage seg-header-crc 125 0 128
damage entry-header-seq $((128 + 80 * 2 + 8)) $((128 + 80 * 2)) $((128 + 80 * 3))
damage entry-header-term $((128 + 80 * 4 + 16)) $((128 + 80 * 4)) $((128 + 80 * 5))
damage entry-header-len $((128 + 80 * 5 + 24)) $((128 + 80 * 5)) $((128 + 80 * 6))
damage entry-header-crc $((128 + 80 * 1 + 1)) $((128 + 80 * 1)) $((128 + 80 * 2))
damage payload-first $((128 + 80 * 3 + 64)) $((128 + 80 * 3)) $((128 + 80 * 4))
damage payload-last $((128 + 80 * 6 + 73)) $((128 + 80 * 6)) $((128 + 80 * 7))
damage prev-hash $((128 + 80 * 7 + 40)) $((128 + 80 * 7)) $((128 + 80 * 8))
damage last-entry-payload $((128 + 80 * 9 + 66)) $((128 + 80 * 9)) $((128 + 80 * 10))
# The damaged copy must not have hurt the original.
expect original-intact 0 "" trp-verify -q "$D"

# A newer format version is refused as unsupported (65), by every tool.
cp -a "$D" "$TMP/newer"
sed -i 's/^trp-log [0-9]*/trp-log 99/' "$TMP/newer/trp-log"
expect newer-verify 65 "version" trp-verify "$TMP/newer"
expect newer-tail 65 "version" trp-tail -d "$TMP/newer"
expect newer-append 65 "version" trp-append -d "$TMP/newer" x

# Long option spellings.
expect long-quiet 0 "" trp-verify --quiet "$D"

# a torn, never-synced tail after the newest segment's last record passes,
# with a note line (and "note" in JSON); a writer opening the log cuts it
trp-append -d "$TMP/torn" a b c > /dev/null
printf 'not a record, a torn write %.0s' 1 2 3 4 | dd of="$TMP/torn/00000000000000000000.seg" bs=1 seek=344 conv=notrunc 2>/dev/null
expect torn-tail-passes 0 "note $TMP/torn: .*offset 344: unsynced torn tail" trp-verify "$TMP/torn"
same torn-tail-json-note "$(trp-verify --json "$TMP/torn" 2>/dev/null | jf ok note)" "true $TMP/torn/00000000000000000000.seg: offset 344: unsynced torn tail (header-crc); a writer cuts it at open"
trp-append -d "$TMP/torn" d > /dev/null
expect torn-tail-cut-by-writer 0 "PASS" trp-verify "$TMP/torn"
same torn-tail-no-note "$(trp-verify --json "$TMP/torn" 2>/dev/null | jf entries ?note)" "4 false"

# a damaged record inside a synced batch: the writer refuses the log and
# names the same record as trp-verify (not the first record of its batch)
seq 1 1000 | trp-append -d "$TMP/wdmg" -q
echo x | trp-append -d "$TMP/wdmg" -q
printf '\377' | dd of="$TMP/wdmg/00000000000000000000.seg" bs=1 seek=$((128 + 72 * 500 + 10)) conv=notrunc 2>/dev/null
expect writer-names-damaged-record 1 "offset 36128: seq 500: header-crc; synced data is damaged" trp-append -d "$TMP/wdmg" y
expect verify-names-same-record 1 "offset 36128: seq 500: header-crc" trp-verify "$TMP/wdmg"

# trp-log(5)'s worked example is what trp-append writes, byte for byte
log_example "$TMP/example" > /dev/null
trp-append -d "$TMP/byhand" a > /dev/null
printf 'b\nc\n' | trp-append -d "$TMP/byhand" > /dev/null
for f in 00000000000000000000.seg 00000000000000000000.idx commit; do
    check "man-example-$f" cmp -s "$TMP/example/$f" "$TMP/byhand/$f"
done

# several directories: one that cannot be read does not hide the others;
# each is reported (JSON too), and the status is the first failure's
cp -a "$D" "$TMP/dmg1"
printf 'Z' | dd of="$TMP/dmg1/00000000000000000000.seg" bs=1 seek=$((128 + 80 + 70)) conv=notrunc 2>/dev/null
expect multi-first-failure-wins 1 "FAIL $TMP/dmg1: .*seq 1: payload-crc" trp-verify -q "$TMP/dmg1" "$TMP/nothere"
check multi-second-reported grep -q "FAIL $TMP/nothere: no such directory" "$TMP/err"
mkdir "$TMP/emptydir"
run trp-verify --json "$D" "$TMP/emptydir" "$TMP/nothere"
same multi-json-status "$RC" 65
same multi-json-objects "$(jf ok problem < "$TMP/out" | tr '\n' ' ')" "true null false format false missing null null "
same multi-json-replicas "$(tail -1 "$TMP/out")" '{"replicas":3,"agree":null,"diverge":null}'
check multi-json-unreadable-nulls grep -q '"dir":"'"$TMP"'/nothere","ok":false,"first":null,"last":null,"head":null' "$TMP/out"
# a failed directory's summary: the entries verified before the damage
h0=$(trp-tail -d "$D" -o json --from 0 --count 1 | jf hash)
same failed-summary "$(trp-verify --json "$TMP/dmg1" 2>/dev/null | jf last entries head seq)" "0 1 $h0 1"

exit 0
