/*
 * logtest.h: helpers the log-store unit tests share: scratch directories
 * (removed again), opening with options, appending numbered entries and
 * reading files whole.
 *
 * The one idea: every test builds its own small log from scratch in its
 * own directory, so tests are independent and deterministic.
 */
#ifndef TRP_LOGTEST_H
#define TRP_LOGTEST_H

#include "trp.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char lt_root[256];

static inline int lt_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static inline void lt_rmrf(const char *p)
{
    nftw(p, lt_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory path under the scratch root (not created). */
static inline const char *lt_dir(const char *name)
{
    static char buf[8][512];
    static int slot;
    if (!lt_root[0]) {
        /* TMPDIR if set; else /dev/shm: these tests are about logic, not
         * the disk, and thousands of fsyncs on a busy disk take minutes */
        const char *t = getenv("TMPDIR");
        if (!t || !*t)
            t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(lt_root, sizeof lt_root, "%s/trp-unit-XXXXXX", t);
        if (!mkdtemp(lt_root)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    char *b = buf[slot++ % 8];
    snprintf(b, 512, "%s/%s", lt_root, name);
    lt_rmrf(b);
    return b;
}

static inline void lt_cleanup(void)
{
    if (lt_root[0])
        lt_rmrf(lt_root);
}

static inline trp_log *lt_open(const char *dir, bool create, const char *start, uint64_t seg_bytes,
                               trp_err *e)
{
    trp_log_options o = {.create = create, .start_seq = start, .segment_bytes = seg_bytes};
    trp_log *log = NULL;
    int rc = trp_log_open(&log, dir, &o, e);
    return rc ? NULL : log;
}

static inline trp_log *lt_reader(const char *dir, trp_err *e)
{
    trp_log_options o = {.read_only = true};
    trp_log *log = NULL;
    return trp_log_open(&log, dir, &o, e) ? NULL : log;
}

/* Append entries "e<i>" for i in [from, to) and sync once. */
static inline int lt_batch(trp_log *log, int from, int to)
{
    trp_err e;
    for (int i = from; i < to; i++) {
        char p[32];
        int n = snprintf(p, sizeof p, "e%d", i);
        if (trp_log_append(log, 1, TRP_ENTRY_DATA, p, (size_t)n, NULL, &e)) {
            fprintf(stderr, "append: %s\n", e.msg);
            return -1;
        }
    }
    if (trp_log_sync(log, &e)) {
        fprintf(stderr, "sync: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static inline uint64_t lt_next_u64(trp_log *log)
{
    mpz_t n;
    mpz_init(n);
    trp_log_next(log, n);
    uint64_t v = mpz_get_ui(n);
    mpz_clear(n);
    return v;
}

static inline uint64_t lt_first_u64(trp_log *log)
{
    mpz_t n;
    mpz_init(n);
    trp_log_first(log, n);
    uint64_t v = mpz_get_ui(n);
    mpz_clear(n);
    return v;
}

/* Read a whole file; *len gets its size. NULL if unreadable. */
static inline uint8_t *lt_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static inline int lt_spit(const char *path, const uint8_t *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int rc = fwrite(b, 1, len, f) == len ? 0 : -1;
    fclose(f);
    return rc;
}

/* Where the records of a segment file's bytes end, found the way
 * man/trp-log.5 tells an independent reader: records follow the 128-byte
 * header, each 64 + length rounded up to 8 bytes (length: u32 LE at 24),
 * and eight zero bytes where a record would start end the segment. What
 * follows (the writer's preallocated space) is not records. */
static inline size_t lt_seg_data_end(const uint8_t *b, size_t len)
{
    size_t off = 128;
    while (off + 8 <= len) {
        bool zero = true;
        for (int i = 0; i < 8; i++)
            zero = zero && b[off + i] == 0;
        if (zero || off + 64 > len)
            break;
        uint32_t l = (uint32_t)b[off + 24] | (uint32_t)b[off + 25] << 8 |
                     (uint32_t)b[off + 26] << 16 | (uint32_t)b[off + 27] << 24;
        off += 64 + (((size_t)l + 7) & ~(size_t)7);
    }
    return off < len ? off : len;
}

/* Are bytes [from, len) of b all zero? */
static inline bool lt_all_zero(const uint8_t *b, size_t from, size_t len)
{
    for (size_t i = from; i < len; i++)
        if (b[i])
            return false;
    return true;
}

/* Copy a directory's regular files (flat) from src to dst. */
static inline int lt_copydir(const char *src, const char *dst)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", dst, src, dst);
    return system(cmd);
}

/* Is entry seq i of log equal to "e<i>"? */
static inline bool lt_entry_is(trp_log *log, uint64_t i)
{
    trp_entry e;
    trp_entry_init(&e);
    mpz_t s;
    mpz_init_set_ui(s, i);
    trp_err err;
    bool ok = trp_log_read(log, s, &e, &err) == TRP_OK;
    char want[32];
    int n = snprintf(want, sizeof want, "e%llu", (unsigned long long)i);
    ok = ok && e.len == (size_t)n && memcmp(e.payload, want, (size_t)n) == 0;
    mpz_clear(s);
    trp_entry_clear(&e);
    return ok;
}

#endif
