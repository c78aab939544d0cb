#!/bin/sh
# tests/cli/payloads.sh: any bytes are an entry and come back exactly:
# binary and invalid UTF-8 through -o raw and through -o json (base64),
# text with control characters, quotes and NULs through -o json (text).
. tests/cli/lib.sh
D=$TMP/log

# roundtrip NAME FILE FIELD: append FILE whole, read it back raw and via
# JSON, compare bytes; FIELD is the JSON field that must carry it.
roundtrip() {
    trp-append -d "$D" -q --whole < "$2" || { fail "$1" "append failed"; return; }
    { cat "$2"; printf '\n'; } > "$TMP/want"
    trp-tail -d "$D" -n 1 -o raw > "$TMP/raw"
    trp-tail -d "$D" -n 1 -o json > "$TMP/json"
    if [ "$3" = base64 ]; then
        jf -j base64 < "$TMP/json" | base64 -d > "$TMP/back"
    else
        jf -j text < "$TMP/json" > "$TMP/back"
    fi
    if ! cmp -s "$TMP/want" "$TMP/raw"; then
        fail "$1" "-o raw differs"
    elif ! cmp -s "$2" "$TMP/back"; then
        fail "$1" "-o json .$3 differs"
    elif [ "$(jf "?$3" < "$TMP/json")" != true ]; then
        fail "$1" "no .$3 field: $(head -c 200 "$TMP/json")"
    elif [ "$(jf len < "$TMP/json")" != "$(wc -c < "$2" | tr -d ' ')" ]; then
        fail "$1" ".len is not the byte count"
    else
        pass "$1"
    fi
}

head -c 65536 /dev/urandom > "$TMP/random"
printf '\000\001\002\377\376\n\r\000binary' >> "$TMP/random"
roundtrip binary-random "$TMP/random" base64
i=0
for bad in '\303\050' '\355\240\200' '\300\257' '\364\220\200\200' 'ok\200' '\342\202' 'a\377b'; do
    i=$((i + 1))
    printf "$bad" > "$TMP/bad"
    roundtrip "invalid-utf8-$i" "$TMP/bad" base64
done
printf 'tab\there "quote" back\\slash \000nul \001\037 del\177 \303\251t\303\251 \360\237\231\202 \342\200\250' > "$TMP/text"
roundtrip utf8-controls "$TMP/text" text
: > "$TMP/empty"
roundtrip empty "$TMP/empty" text
printf '{"k": "v\\n", "n": [1, 2.5, true, null]}\n' > "$TMP/jsondoc"
roundtrip json-doc "$TMP/jsondoc" text
same json-doc-data "$(trp-tail -d "$D" -n 1 -o json | jf data)" '{"k":"v\n","n":[1,2.5,true,null]}'
printf '{"k": 1} trailing' > "$TMP/notjson"
roundtrip json-trailing "$TMP/notjson" text
same json-trailing-no-data "$(trp-tail -d "$D" -n 1 -o json | jf '?data')" "false"

# "data" only for exactly one RFC 8259 value, copied as written without
# the whitespace between tokens (numbers and escapes unchanged)
n=0
for t in '0123' '-01' '00' '[01]' '{"a":01}' '1.' '1.e5' '.5' '+1' '1e' '"\x"' '"\u12"' \
    '[1,]' '{"a":1,}' '{1:2}' 'nul' 'True' '1 2' '-' "$(printf '"a\tb"')" "$(printf '"a\nb"')" \
    '"\ud800"' '"\udc00"' '"\ud83dx"' '"\ud83d\u0041"'; do
    n=$((n + 1))
    printf '%s' "$t" | trp-append -d "$TMP/strict" --whole -q
    same "json-strict-no-data-$n" "$(trp-tail -d "$TMP/strict" -n 1 -o json | jf '?data')" "false"
done
n=0
for t in '0' '-0' '0.5' '1E+2' '1e999' '[]' '{}' '"a\u0000b"' '"\ud83d\ude00"' '"\/\b\f\n\r\t"' \
    ' { "a" : [ 1 , 2.50e-3 , true , null , "x\"y" ] } ' "$(printf '\n[\t"\303\251" ,{}]\r\n')"; do
    n=$((n + 1))
    printf '%s' "$t" | trp-append -d "$TMP/strict" --whole -q
    want=$(printf '%s' "$t" | tr -d ' \t\r\n')
    case "$t" in *'"x\"y"'*) want='{"a":[1,2.50e-3,true,null,"x\"y"]}' ;; esac
    check "json-strict-data-$n" grep -qF ",\"data\":$want}" "$(trp-tail -d "$TMP/strict" -n 1 -o json > "$TMP/sj"; echo "$TMP/sj")"
done

# Lines with binary bytes through the line splitter and -z.
printf 'a\377\n\000b\nc' > "$TMP/lines"
trp-append -d "$TMP/l" -q < "$TMP/lines"
trp-tail -d "$TMP/l" > "$TMP/back"
printf 'a\377\n\000b\nc\n' > "$TMP/lines.want"
check lines-binary cmp -s "$TMP/back" "$TMP/lines.want"
same lines-binary-count "$(trp-verify -q --json "$TMP/l" | jf entries)" "3"

exit 0
