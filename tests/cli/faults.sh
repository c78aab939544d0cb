#!/bin/sh
# tests/cli/faults.sh: the environment fails, nothing stored is lost:
# a second writer (75, naming the holder), a read-only directory (real
# read-only bind mount when mounting works here, and injected EROFS and
# EACCES always), a full disk (a small tmpfs when mounting works, and
# injected ENOSPC always), a failing fdatasync.
. tests/cli/lib.sh
D=$TMP/log
seq 1 100 | trp-append -d "$D" -q
base_head=$(head_hash "$D")

intact() { # name: the 100 first entries are all there and the log verifies
    if ! trp-verify -q "$D"; then
        fail "$1" "log no longer verifies"
    elif [ "$(trp-tail -d "$D" --from 0 --count 100 | tail -1)" != 100 ]; then
        fail "$1" "entries lost"
    else
        pass "$1"
    fi
}

# A second writer: the first holds the lock while it waits on stdin.
mkfifo "$TMP/fifo"
trp-append -d "$D" < "$TMP/fifo" > "$TMP/w1" &
w1=$!
BG_PIDS="$BG_PIDS $w1"
exec 9> "$TMP/fifo"
check writer1-holds wait_for 10 grep -q "$w1" "$D/lock"
expect second-writer 75 "pid $w1" trp-append -d "$D" second
expect reader-while-writing 0 "" trp-tail -d "$D" -n 1
echo via-fifo >&9
check writer1-appends wait_for 10 grep -qx 100 "$TMP/w1"
exec 9>&-
wait "$w1"
same writer1-status "$?" "0"
same writer1-entry "$(trp-tail -d "$D" -n 1)" "via-fifo"

# Injected faults (seccomp): work everywhere, root or not.
expect erofs-inject 77 "Read-only file system" errinject EROFS open-write,mkdir trp-append -d "$D" x
expect eacces-inject 77 "Permission denied" errinject EACCES open-write,mkdir trp-append -d "$D" x
expect erofs-new-log 77 "Read-only file system" errinject EROFS open-write,mkdir trp-append -d "$TMP/newlog" x
expect erofs-reader-ok 0 "" errinject EROFS open-write,mkdir trp-tail -d "$D" -n 1
expect erofs-verify-ok 0 "" errinject EROFS open-write,mkdir trp-verify -q "$D"
expect enospc-write 74 "No space left on device" errinject ENOSPC write,pwrite,fallocate trp-append -d "$D" full
same enospc-write-out "$(cat "$TMP/out")" ""
seq 1 1000 > "$TMP/thousand"
expect enospc-segment-write 74 "\.seg: write: No space left on device" errinject ENOSPC bigwrite trp-append -d "$D" < "$TMP/thousand"
same enospc-segment-write-out "$(cat "$TMP/out")" ""
expect enospc-sync 74 "fdatasync: No space left on device" errinject ENOSPC fdatasync,fsync trp-append -d "$D" full
same enospc-sync-out "$(cat "$TMP/out")" ""
expect eio-sync 74 "Input/output error" errinject EIO fdatasync,fsync trp-append -d "$D" eio
same eio-sync-out "$(cat "$TMP/out")" ""
# A stream with more input waiting has its fdatasync run on a helper
# thread while the next batch is read (a file is always ready, so this one
# does): its failure is just as fatal, and no seq of the batch is printed.
genlines 20000 100 > "$TMP/lines"
expect eio-sync-stream 74 "fdatasync: Input/output error" errinject EIO fdatasync,fsync trp-append -d "$D" < "$TMP/lines"
same eio-sync-stream-out "$(cat "$TMP/out")" ""
expect after-faults-reopen 0 "" trp-append -d "$D" -q after-faults
intact after-injected-faults

# Real read-only bind mount and a real full tmpfs, in a private mount
# namespace (nothing leaks out of it), when this machine allows mounting.
if can_mount; then
    cat > "$TMP/ro.sh" <<EOS
mount --bind '$D' '$D' && mount -o remount,bind,ro '$D' || exit 99
trp-append -d '$D' x; echo "append=\$?"
trp-tail -d '$D' -n 1; echo "tail=\$?"
trp-verify -q '$D'; echo "verify=\$?"
EOS
    unshare -m sh "$TMP/ro.sh" > "$TMP/ro.out" 2> "$TMP/ro.err"
    check ro-mount-append grep -qx 'append=77' "$TMP/ro.out"
    check ro-mount-message grep -q 'Read-only file system' "$TMP/ro.err"
    check ro-mount-tail grep -qx 'tail=0' "$TMP/ro.out"
    check ro-mount-verify grep -qx 'verify=0' "$TMP/ro.out"
    intact after-ro-mount

    M=$TMP/mnt
    mkdir "$M"
    cat > "$TMP/full.sh" <<EOS
mount -t tmpfs -o size=8m tmpfs '$M' || exit 99
genlines 3000 4000 | trp-append -d '$M/log' > '$TMP/full.seqs' 2> '$TMP/full.err'
echo "append=\$?"
last=\$(tail -1 '$TMP/full.seqs')
echo "last=\$last"
trp-tail -d '$M/log' --from "\${last:-0}" --count 1 | cut -c1-8
trp-verify -q '$M/log'; echo "verify=\$?"
trp-append -d '$M/log' small; echo "again=\$?"
trp-verify -q '$M/log'; echo "verify2=\$?"
EOS
    unshare -m sh "$TMP/full.sh" > "$TMP/full.out" 2>&1
    check tmpfs-full-status grep -qx 'append=74' "$TMP/full.out"
    check tmpfs-full-message grep -q 'No space left on device' "$TMP/full.err"
    last=$(sed -n 's/^last=//p' "$TMP/full.out")
    if [ -n "$last" ]; then
        check tmpfs-full-last-present grep -qx "$(printf '%sxxxxxxxx' $((last + 1)) | cut -c1-8)" "$TMP/full.out"
    else
        pass tmpfs-full-last-present # nothing was acknowledged, so nothing can be missing
    fi
    check tmpfs-full-verifies grep -qx 'verify=0' "$TMP/full.out"
    check tmpfs-full-verifies-after-retry grep -qx 'verify2=0' "$TMP/full.out"
else
    echo "# mounting is not allowed here: read-only and full-disk checks ran via errinject only"
fi

# started with stdin, stdout and stderr closed: no log file takes their
# place, so no message or seq lands in the log (it stays sound and usable)
trp-append -d "$TMP/closed" -q a b
trp-append -d "$TMP/closed" --max-entry 1 abc <&- >&- 2>&-
same closed-fds-too-big "$?" 65
trp-append -d "$TMP/closed" --if-prev 0000000000000000000000000000000000000000000000000000000000000000 x <&- >&- 2>&-
same closed-fds-if-prev "$?" 1
trp-append -d "$TMP/closed" c >&- 2>/dev/null
same closed-stdout-is-an-error "$?" 74
trp-tail -d "$TMP/closed" -n 1 >&- 2>&-
same closed-fds-tail "$?" 74
trp-verify "$TMP/closed" <&- >&- 2>&-
same closed-fds-verify "$?" 0
expect closed-fds-log-sound 0 "PASS .*3 entries" trp-verify "$TMP/closed"
same closed-fds-lock-holds-pid "$(grep -c '^[0-9]*$' "$TMP/closed/lock")" 1

# a directory with segments holding entries but no trp-log, commit or
# index files is not taken for an interrupted create: nothing is deleted
seq 1 100 | trp-append -d "$TMP/nomarker" -q
rm "$TMP/nomarker/trp-log" "$TMP/nomarker/commit" "$TMP/nomarker/"*.idx
cp "$TMP/nomarker/00000000000000000000.seg" "$TMP/nomarker.seg"
expect no-marker-refused 65 "not a trp log" trp-append -d "$TMP/nomarker" x
check no-marker-segment-kept cmp -s "$TMP/nomarker/00000000000000000000.seg" "$TMP/nomarker.seg"
echo 'trp-log 1' > "$TMP/nomarker/trp-log"
expect no-marker-restored 0 "PASS .*100 entries" trp-verify "$TMP/nomarker"

# ... also when the first record's header is zeroed (damage): records
# after it still make it a log's segment, not an interrupted create's
seq 1 100 | trp-append -d "$TMP/nomarker2" -q
rm "$TMP/nomarker2/trp-log" "$TMP/nomarker2/commit" "$TMP/nomarker2/"*.idx
dd if=/dev/zero of="$TMP/nomarker2/00000000000000000000.seg" bs=1 seek=128 count=8 conv=notrunc 2>/dev/null
expect no-marker-zeroed-first-refused 65 "not a trp log" trp-append -d "$TMP/nomarker2" x
check no-marker-zeroed-first-kept grep -q 100 "$TMP/nomarker2/00000000000000000000.seg"

exit 0
