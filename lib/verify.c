/*
 * verify.c: check a log directory end to end without trusting anything the
 * store keeps for speed (the .idx files), and compare replicas.
 *
 * The one idea: walk every segment from its header, re-check every record's
 * CRCs and position, re-hash every entry and require each prev to equal the
 * hash just computed (and each segment header's anchor to equal the hash of
 * the entry before its base). The index is checked only against what the
 * walk found. Replicas agree on a prefix iff their hashes agree at its last
 * seq, so the first divergence is found by binary search.
 */
#include "logfmt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void trp_verify_report_init(trp_verify_report *r)
{
    memset(r, 0, sizeof *r);
    mpz_inits(r->first, r->next, NULL);
    r->ok = true;
}

void trp_verify_report_clear(trp_verify_report *r)
{
    mpz_clears(r->first, r->next, NULL);
}

typedef struct vseg {
    mpz_t base;
    char name[264];
} vseg;

typedef struct vstate {
    const char *dir;
    int dirfd;
    trp_verify_report *r;
    hasher h;
    uint8_t prev[TRP_HASH_LEN]; /* hash of the entry before the next one */
    uint64_t last_term;
    bool have_prev;
    mpz_t next; /* seq expected next */
    uint8_t next_field[SEQ_BYTES_MAX];
    const mpz_t *anchor_seq;
    const uint8_t *anchor_hash;
    bool anchor_seen;
    mpz_t hint;
    bool have_hint;
} vstate;

/* Record the first failure; later ones are not reported. */
static void fail(vstate *st, const char *file, uint64_t off, const mpz_t seq, const char *kind,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void fail(vstate *st, const char *file, uint64_t off, const mpz_t seq, const char *kind,
                 const char *fmt, ...)
{
    trp_verify_report *r = st->r;
    if (!r->ok)
        return;
    r->ok = false;
    r->kind = TRP_ECORRUPT;
    if (st->have_prev) { /* the summary: what verified before the failure */
        mpz_set(r->next, st->next);
        memcpy(r->head, st->prev, TRP_HASH_LEN);
        if (!strcmp(kind, "anchor") && seq && mpz_cmp(seq, st->next) == 0)
            mpz_add_ui(r->next, r->next, 1); /* that entry is intact; its hash is the head */
    }
    snprintf(r->problem, sizeof r->problem, "%s", kind);
    snprintf(r->file, sizeof r->file, "%s/%s", st->dir, file);
    r->offset = off;
    if (seq)
        trp_seq_str(r->seq, sizeof r->seq, seq);
    else
        r->seq[0] = '\0';
    char detail[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(r->message, sizeof r->message, "%.500s: offset %llu: seq %.130s: %.64s: %.300s",
             r->file, (unsigned long long)off, r->seq[0] ? r->seq : "-", kind, detail);
}

static int cmp_vseg(const void *a, const void *b)
{
    return mpz_cmp(((const vseg *)a)->base, ((const vseg *)b)->base);
}

static int list(vstate *st, vseg **out, size_t *n, trp_err *err)
{
    *out = NULL;
    *n = 0;
    int fd = openat(st->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return trp_err_sys(err, TRP_EIO, errno, "%s", st->dir);
    }
    size_t cap = 0;
    vseg *v = NULL;
    mpz_t base;
    mpz_init(base);
    struct dirent *de;
    int rc = TRP_OK;
    while ((de = readdir(d)) != NULL) {
        if (!seg_name_parse(de->d_name, base))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            vseg *m = realloc(v, cap * sizeof *m);
            if (!m) {
                rc = trp_err_set(err, TRP_ENOMEM, "out of memory");
                break;
            }
            v = m;
        }
        mpz_init_set(v[*n].base, base);
        snprintf(v[*n].name, sizeof v[*n].name, "%s", de->d_name);
        (*n)++;
    }
    mpz_clear(base);
    closedir(d);
    if (v)
        qsort(v, *n, sizeof *v, cmp_vseg);
    *out = v;
    return rc;
}

static void check_anchor_at(vstate *st, const mpz_t seq, const uint8_t hash[TRP_HASH_LEN],
                            const char *file, uint64_t off)
{
    if (!st->anchor_seq || st->anchor_seen || mpz_cmp(*st->anchor_seq, seq) != 0)
        return;
    st->anchor_seen = true;
    if (memcmp(hash, st->anchor_hash, TRP_HASH_LEN) != 0) {
        char want[TRP_HASH_HEX_LEN + 1], have[TRP_HASH_HEX_LEN + 1];
        trp_hash_hex(want, st->anchor_hash);
        trp_hash_hex(have, hash);
        fail(st, file, off, seq, "anchor", "hash is %s, the trusted anchor says %s", have, want);
    }
}

/* The .idx must agree with the offsets the walk found (a prefix of them
 * for the newest segment, whose index is written after each sync). */
static void check_index(vstate *st, const vseg *s, const uint64_t *offs, uint64_t count,
                        bool newest)
{
    char iname[280];
    size_t n = strlen(s->name) - strlen(SEG_EXT);
    snprintf(iname, sizeof iname, "%.*s%s", (int)n, s->name, IDX_EXT);
    int fd = openat(st->dirfd, iname, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return; /* missing: rebuilt when needed */
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        close(fd);
        return;
    }
    uint64_t have = (uint64_t)sb.st_size / 8;
    mpz_t seq;
    mpz_init(seq);
    if (!newest && have < count && !((uint64_t)sb.st_size % 8) && !st->r->message[0])
        /* A sealed segment's index is written after its last sync, without
         * one of its own: a crash can leave it short. It is a cache, rebuilt
         * by a writer at open; the part there is still checked below. */
        snprintf(st->r->message, sizeof st->r->message,
                 "%s/%s: short index (%llu of %llu entries, as a crash leaves it); a writer "
                 "rebuilds it at open",
                 st->dir, iname, (unsigned long long)have, (unsigned long long)count);
    if ((uint64_t)sb.st_size % 8 || (!newest && have > count)) {
        mpz_add_ui(seq, s->base, have < count ? have : count);
        fail(st, iname, (uint64_t)sb.st_size, seq, "index",
             "index holds %llu entries, the segment %llu", (unsigned long long)have,
             (unsigned long long)count);
    } else {
        uint64_t m = have < count ? have : count;
        uint8_t b[8192];
        for (uint64_t k = 0; k < m && st->r->ok;) {
            uint64_t chunk = m - k < sizeof b / 8 ? m - k : sizeof b / 8;
            ssize_t got = pread(fd, b, chunk * 8, (off_t)(k * 8));
            if (got != (ssize_t)(chunk * 8))
                break;
            for (uint64_t j = 0; j < chunk; j++)
                if (get_le64(b + 8 * j) != offs[k + j]) {
                    mpz_add_ui(seq, s->base, k + j);
                    fail(st, iname, (k + j) * 8, seq, "index",
                         "index says offset %llu, the record is at %llu",
                         (unsigned long long)get_le64(b + 8 * j), (unsigned long long)offs[k + j]);
                    break;
                }
            k += chunk;
        }
    }
    mpz_clear(seq);
    close(fd);
}

/* Map a segment file read-only; false (reported) when it cannot be read. */
static bool map_segment(vstate *st, const vseg *s, uint8_t **map, uint64_t *size)
{
    *map = NULL;
    *size = 0;
    int fd = openat(st->dirfd, s->name, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        fail(st, s->name, 0, s->base, "unreadable", "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    *size = (uint64_t)sb.st_size;
    if (*size) {
        void *m = mmap(NULL, *size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            fail(st, s->name, 0, s->base, "unreadable", "mmap: %s", strerror(errno));
            close(fd);
            return false;
        }
        madvise(m, *size, MADV_SEQUENTIAL);
        *map = m;
    }
    close(fd);
    return true;
}

/* Check a segment header and its place in the chain. Returns 1 to go on
 * to the records, 0 to stop without a failure (a segment being created),
 * -1 on a failure (reported). */
static int verify_header(vstate *st, const vseg *s, bool newest, const uint8_t *map, uint64_t size)
{
    trp_verify_report *r = st->r;
    seg_hdr h;
    uint32_t version;
    const char *bad = seg_hdr_decode(map, size, &h, &version);
    if (bad && !strcmp(bad, "segment-version")) { /* intact, of a format this trp does not read */
        fail(st, s->name, 8, s->base, bad, "unsupported format version %u (this trp reads %d)",
             version, FMT_VERSION);
        r->kind = TRP_EFORMAT;
        return -1;
    }
    if (bad && newest && st->have_prev && !(st->have_hint && mpz_cmp(st->hint, s->base) > 0) &&
        !seg_commit_after(map, size, 0, NULL)) {
        /* a segment a writer is creating right now (or a crash left
         * half-made): nothing in it was synced */
        snprintf(r->message, sizeof r->message,
                 "%s/%s: unsynced segment being created (%s); a writer removes it at open", st->dir,
                 s->name, bad);
        return 0;
    }
    if (bad) {
        fail(st, s->name, 0, s->base, bad, "bad segment header");
        return -1;
    }
    mpz_t seq;
    mpz_init(seq);
    seq_from_field(seq, h.base);
    int cmp_name = mpz_cmp(seq, s->base), cmp_prev = st->have_prev ? mpz_cmp(seq, st->next) : 0;
    mpz_clear(seq);
    if (cmp_name != 0) {
        fail(st, s->name, SEG_OFF_BASE, s->base, "segment-base",
             "header base seq differs from the file name");
        return -1;
    }
    if (cmp_prev != 0) {
        fail(st, s->name, SEG_OFF_BASE, st->next, "seq-gap",
             "segment starts at another seq than the previous one ends");
        return -1;
    }
    if (st->have_prev && memcmp(h.anchor, st->prev, TRP_HASH_LEN) != 0) {
        fail(st, s->name, SEG_OFF_ANCHOR, s->base, "chain",
             "segment anchor is not the hash of the entry before it");
        return -1;
    }
    if (!st->have_prev) { /* the oldest segment: its anchor starts the chain */
        mpz_set(r->first, s->base);
        mpz_set(st->next, s->base);
        memcpy(st->prev, h.anchor, TRP_HASH_LEN);
        memcpy(r->head, h.anchor, TRP_HASH_LEN);
        st->have_prev = true;
        if (st->anchor_seq && mpz_sgn(s->base) > 0) {
            mpz_t before;
            mpz_init(before);
            mpz_sub_ui(before, s->base, 1);
            check_anchor_at(st, before, h.anchor, s->name, SEG_OFF_ANCHOR);
            mpz_clear(before);
        }
    }
    return 1;
}

/* Walk a segment's records: CRCs, positions, terms, chain links, anchor.
 * Their offsets go to *offs for the index check; *count gets how many. */
static bool verify_records(vstate *st, const vseg *s, bool newest, const uint8_t *map,
                           uint64_t size, uint64_t **offs, size_t *offs_cap, uint64_t *count)
{
    trp_verify_report *r = st->r;
    uint64_t off = SEG_HDR_SIZE;
    *count = 0;
    seq_to_field(st->next, st->next_field);
    while (off < size) {
        rec_view rv;
        const char *bad = rec_check(map + off, size - off, *count, &rv);
        if (bad) {
            uint64_t i = off;
            while (!strcmp(bad, "end") && i < size && map[i] == 0)
                i++;
            if (i == size)
                return true; /* zeroed space: the end */
            /* A torn, never-synced tail of the newest segment is not
             * damage: nothing synced lies after it and the watermark does
             * not claim it. */
            if (newest && !seg_commit_after(map, size, off + 8, NULL) &&
                !(st->have_hint && mpz_cmp(st->hint, st->next) > 0)) {
                snprintf(r->message, sizeof r->message,
                         "%s/%s: offset %llu: unsynced torn tail (%s); a writer cuts it at open",
                         st->dir, s->name, (unsigned long long)off, bad);
                return true;
            }
            fail(st, s->name, off, st->next, bad, "bad record");
            return false;
        }
        if (memcmp(rv.prev, st->prev, TRP_HASH_LEN) != 0) {
            fail(st, s->name, off + REC_OFF_PREV, st->next, "chain",
                 "prev is not the hash of the entry before");
            return false;
        }
        if (rv.term < st->last_term) {
            fail(st, s->name, off + REC_OFF_TERM, st->next, "term",
                 "term %llu is below the previous entry's term %llu", (unsigned long long)rv.term,
                 (unsigned long long)st->last_term);
            return false;
        }
        size_t n;
        const uint8_t *m = seq_field_min(st->next_field, &n);
        hasher_entry(&st->h, st->prev, m, n, rv.term, rv.type, rv.prev, rv.payload, rv.len);
        check_anchor_at(st, st->next, st->prev, s->name, off);
        if (!r->ok) { /* the anchor differs: the entry itself is intact */
            r->entries++;
            r->bytes += rv.len;
            return false;
        }
        if (*count >= *offs_cap) {
            size_t cap = *offs_cap ? *offs_cap * 2 : 4096;
            uint64_t *o = realloc(*offs, cap * sizeof *o);
            if (!o) {
                fail(st, s->name, off, st->next, "memory", "out of memory");
                return false;
            }
            *offs = o;
            *offs_cap = cap;
        }
        (*offs)[(*count)++] = off;
        st->last_term = rv.term;
        r->entries++;
        r->bytes += rv.len;
        off += rv.size;
        mpz_add_ui(st->next, st->next, 1);
        seq_field_inc(st->next_field);
    }
    return true;
}

/* Verify one segment. Returns false to stop verifying. */
static bool verify_segment(vstate *st, const vseg *s, bool newest, uint64_t **offs,
                           size_t *offs_cap)
{
    uint8_t *map;
    uint64_t size, count = 0;
    if (!map_segment(st, s, &map, &size))
        return false;
    int go = verify_header(st, s, newest, map, size);
    bool ok =
        go == 1 && verify_records(st, s, newest, map, size, offs, offs_cap, &count) && st->r->ok;
    if (ok) {
        memcpy(st->r->head, st->prev, TRP_HASH_LEN);
        mpz_set(st->r->next, st->next);
        check_index(st, s, *offs, count, newest);
    }
    if (map)
        munmap(map, size);
    return ok && st->r->ok;
}

static int verify_dir_once(const char *dir, const mpz_t anchor_seq, const uint8_t *anchor_hash,
                           trp_verify_report *r, trp_err *err)
{
    r->ok = true;
    r->problem[0] = r->file[0] = r->seq[0] = r->message[0] = '\0';
    r->entries = r->bytes = r->segments = 0;
    r->offset = 0;
    memset(r->head, 0, sizeof r->head);
    mpz_set_ui(r->first, 0);
    mpz_set_ui(r->next, 0);
    vstate st;
    memset(&st, 0, sizeof st);
    st.dir = dir;
    st.r = r;
    st.anchor_seq = anchor_seq ? (const mpz_t *)anchor_seq : NULL;
    st.anchor_hash = anchor_hash;
    st.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (st.dirfd < 0) {
        if (errno == ENOENT)
            return trp_err_set(err, TRP_ENOENT, "%s: no such directory", dir);
        if (errno == ENOTDIR)
            return trp_err_set(err, TRP_EFORMAT, "%s: not a trp log (not a directory)", dir);
        return trp_err_sys(err, TRP_EIO, errno, "%s", dir);
    }
    int rc = marker_check(st.dirfd, dir, err);
    if (rc == TRP_ENOENT)
        rc = trp_err_set(err, TRP_EFORMAT, "%s: not a trp log (no %s file)", dir, MARKER_NAME);
    if (rc) {
        close(st.dirfd);
        return rc;
    }
    if ((rc = hasher_init(&st.h, err))) {
        close(st.dirfd);
        return rc;
    }
    mpz_inits(st.next, st.hint, NULL);
    int cfd = openat(st.dirfd, COMMIT_NAME, O_RDONLY | O_CLOEXEC);
    if (cfd >= 0) {
        uint8_t b[COMMIT_SIZE], field[SEQ_BYTES_MAX];
        for (int attempt = 0; attempt < 100 && !st.have_hint; attempt++)
            if (pread(cfd, b, sizeof b, 0) == (ssize_t)sizeof b &&
                commit_decode(b, sizeof b, field)) {
                seq_from_field(st.hint, field);
                st.have_hint = true;
            }
        close(cfd);
    }
    vseg *segs;
    size_t n;
    rc = list(&st, &segs, &n, err);
    if (rc == TRP_OK && n > 0) { /* by name, until the oldest header says so */
        mpz_set(r->first, segs[0].base);
        mpz_set(r->next, segs[0].base);
    }
    if (rc == TRP_OK) {
        if (n == 0) {
            fail(&st, MARKER_NAME, 0, NULL, "no-segments", "a trp log without segment files");
        } else {
            uint64_t *offs = NULL;
            size_t cap = 0;
            for (size_t i = 0; i < n; i++) {
                r->segments++;
                if (!verify_segment(&st, &segs[i], i + 1 == n, &offs, &cap))
                    break;
            }
            free(offs);
        }
        if (r->ok && st.anchor_seq && !st.anchor_seen) {
            if (mpz_cmp(*st.anchor_seq, r->next) >= 0)
                fail(&st, segs && n ? segs[n - 1].name : MARKER_NAME, 0, *st.anchor_seq,
                     "anchor-missing",
                     "the log ends before the trusted anchor (truncated or rolled back)");
            else
                fail(&st, segs && n ? segs[0].name : MARKER_NAME, 0, *st.anchor_seq,
                     "anchor-trimmed", "the trusted anchor lies before the oldest entry kept");
        }
        if (r->ok && st.have_hint && mpz_cmp(st.hint, r->next) > 0)
            fail(&st, COMMIT_NAME, 0, r->next, "missing-entries",
                 "the commit watermark says entries from here on were synced, but the log ends");
    }
    for (size_t i = 0; i < n; i++)
        mpz_clear(segs[i].base);
    free(segs);
    mpz_clears(st.next, st.hint, NULL);
    hasher_free(&st.h);
    close(st.dirfd);
    return rc;
}

/* Is a writer (trp-append, trp-node) holding dir's log open right now? */
static bool writer_live(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, LOCK_NAME);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool live = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd);
    return live;
}

/* A live writer's newest records can be caught half copied into the page
 * cache, with the rest of its batch already visible after them; a
 * "damage" found in a log a writer holds is checked again (a few times,
 * 20 ms apart) before it is reported. Damage on disk stays; a write in
 * flight does not. */
int trp_verify_dir(const char *dir, const mpz_t anchor_seq, const uint8_t *anchor_hash,
                   trp_verify_report *r, trp_err *err)
{
    int rc = verify_dir_once(dir, anchor_seq, anchor_hash, r, err);
    for (int again = 0; again < 3 && rc == TRP_OK && !r->ok && writer_live(dir); again++) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        rc = verify_dir_once(dir, anchor_seq, anchor_hash, r, err);
    }
    return rc;
}

/* ---- replicas ---------------------------------------------------------- */

static int hash_at(trp_log *log, const mpz_t seq, trp_entry *e, uint8_t out[TRP_HASH_LEN],
                   trp_err *err)
{
    int rc = trp_log_read(log, seq, e, err);
    if (rc == TRP_OK)
        memcpy(out, e->hash, TRP_HASH_LEN);
    return rc;
}

/* Do all logs have the same hash at seq? */
static int all_equal(trp_log **logs, size_t n, const mpz_t seq, trp_entry *e, bool *eq,
                     trp_err *err)
{
    uint8_t h0[TRP_HASH_LEN], h[TRP_HASH_LEN];
    int rc = hash_at(logs[0], seq, e, h0, err);
    *eq = true;
    for (size_t i = 1; rc == TRP_OK && i < n; i++) {
        rc = hash_at(logs[i], seq, e, h, err);
        if (rc == TRP_OK && memcmp(h, h0, TRP_HASH_LEN) != 0)
            *eq = false;
    }
    return rc;
}

int trp_verify_agree(const char *const *dirs, size_t n, const mpz_t anchor_seq,
                     const uint8_t *anchor_hash, trp_verify_report *reports, char *diverge_seq,
                     size_t size, trp_err *err)
{
    if (diverge_seq && size)
        diverge_seq[0] = '\0';
    bool all_ok = true;
    for (size_t i = 0; i < n; i++) {
        int rc = trp_verify_dir(dirs[i], anchor_seq, anchor_hash, &reports[i], err);
        if (rc) { /* not readable as a log: reported, and the others still checked */
            trp_verify_report *r = &reports[i];
            r->ok = false;
            r->kind = rc;
            snprintf(r->problem, sizeof r->problem, "%s", trp_status_name(rc));
            r->file[0] = r->seq[0] = '\0';
            r->offset = 0;
            snprintf(r->message, sizeof r->message, "%s", err->msg);
        }
        all_ok = all_ok && reports[i].ok;
    }
    if (!all_ok) {
        for (size_t i = 0; i < n; i++)
            if (!reports[i].ok)
                return trp_err_set(err, reports[i].kind, "%s", reports[i].message);
    }
    if (n < 2)
        return TRP_OK;
    trp_log **logs = calloc(n, sizeof *logs);
    if (!logs)
        return trp_err_set(err, TRP_ENOMEM, "out of memory");
    int rc = TRP_OK;
    trp_log_options o = {.read_only = true};
    for (size_t i = 0; i < n && rc == TRP_OK; i++)
        rc = trp_log_open(&logs[i], dirs[i], &o, err);
    mpz_t lo, hi, mid, x;
    mpz_inits(lo, hi, mid, x, NULL);
    trp_entry e;
    trp_entry_init(&e);
    if (rc == TRP_OK) {
        /* the overlap of the committed ranges: [lo, hi) */
        trp_log_first(logs[0], lo);
        trp_log_next(logs[0], hi);
        for (size_t i = 1; i < n; i++) {
            trp_log_first(logs[i], x);
            if (mpz_cmp(x, lo) > 0)
                mpz_set(lo, x);
            trp_log_next(logs[i], x);
            if (mpz_cmp(x, hi) < 0)
                mpz_set(hi, x);
        }
        bool eq = true;
        if (mpz_cmp(lo, hi) < 0) {
            mpz_sub_ui(x, hi, 1);
            rc = all_equal(logs, n, x, &e, &eq, err);
        }
        if (rc == TRP_OK && !eq) {
            /* smallest seq in [lo, hi-1] where they differ; hi-1 is one */
            mpz_sub_ui(hi, hi, 1);
            while (rc == TRP_OK && mpz_cmp(lo, hi) < 0) {
                mpz_add(mid, lo, hi);
                mpz_fdiv_q_2exp(mid, mid, 1);
                rc = all_equal(logs, n, mid, &e, &eq, err);
                if (eq)
                    mpz_add_ui(lo, mid, 1);
                else
                    mpz_set(hi, mid);
            }
            if (rc == TRP_OK) {
                char s[200];
                trp_seq_str(s, sizeof s, lo);
                if (diverge_seq && size)
                    snprintf(diverge_seq, size, "%s", s);
                rc = trp_err_set(err, TRP_ECORRUPT,
                                 "replicas diverge at seq %s (%s and %s differ there)", s, dirs[0],
                                 dirs[1]);
                /* name the first replica that differs from the first one */
                uint8_t h0[TRP_HASH_LEN], h[TRP_HASH_LEN];
                if (hash_at(logs[0], lo, &e, h0, NULL) == TRP_OK)
                    for (size_t i = 1; i < n; i++)
                        if (hash_at(logs[i], lo, &e, h, NULL) == TRP_OK &&
                            memcmp(h, h0, TRP_HASH_LEN) != 0) {
                            rc = trp_err_set(err, TRP_ECORRUPT,
                                             "replicas diverge at seq %s: %s and %s differ there",
                                             s, dirs[0], dirs[i]);
                            break;
                        }
            }
        }
    }
    trp_entry_clear(&e);
    mpz_clears(lo, hi, mid, x, NULL);
    for (size_t i = 0; i < n; i++)
        trp_log_close(logs[i]);
    free(logs);
    return rc;
}
