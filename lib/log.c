/*
 * log.c: the segmented, hash-chained log store (trp_log.h; format in
 * logfmt.h and man/trp-log.5).
 *
 * The one idea: appends are encoded straight into one big user-space buffer
 * and written with one write() per batch; trp_log_sync sets the COMMIT flag
 * on the batch's last record, writes, and issues one fdatasync. Recovery
 * keeps records up to the last COMMIT record of the newest segment and cuts
 * the rest, unless something shows that the damaged part was synced (a
 * valid COMMIT record after it, or a commit watermark beyond it): then it
 * refuses with TRP_ECORRUPT instead of truncating.
 *
 * Invariants kept by the writer:
 *  - the last record appended is always still in the buffer, so sync can
 *    flag it (the buffer is flushed *before* a record that does not fit);
 *  - a roll fdatasyncs the old segment before the new one gets a byte, so
 *    recovery never needs to look further back than the newest segment
 *    (and the one entry its anchor names);
 *  - the segment list is sorted by base, contiguous, and only the newest
 *    segment is ever written; older ones are immutable until trim/truncate;
 *  - the "durable_*" fields describe the state at the last successful sync,
 *    and a failed batch is rolled back to exactly that;
 *  - the newest segment's file goes on after its records with zero bytes
 *    the writer wrote (file_end <= alloc_end = file size), up to the next
 *    MiB boundary or the segment size, so most small batches' fdatasyncs
 *    only overwrite (a big batch leaves none: PREALLOC_BATCH_MAX); no
 *    file is shortened in normal operation (only recovery, the rollback
 *    of a failed write and trp_log_truncate cut files).
 */
#include "logfmt.h"
#include "trp_client.h"

#include <assert.h>
#include <stdatomic.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUF_MIN (8u << 20)  /* the write buffer (or one record, if larger) */
#define FLUSH_AT (1u << 20) /* within a batch, write and start writeback per MiB */
/* Zeroed space kept ahead of the data in the newest segment. An fdatasync
 * that must also commit a new file size (and new blocks) to the journal is
 * about 1.6x slower here than one over blocks already written and synced,
 * so the writer extends the file with real zero bytes (write(), not
 * fallocate(): unwritten extents would need converting, a journal commit
 * again) a chunk at a time: one slower sync per chunk, the rest fast.
 * Only small batches pay for it, though: the zeros are a second write of
 * every byte, and a stream of big batches (a piped trp-append) crosses a
 * chunk every few syncs. Three processes syncing 560 KB batches at once:
 * 5.5-6.0 ms a sync when each crossing wrote the next chunk, 3.8-4.3 ms
 * when the file just grew with the records; at 4 KB batches the zeros win
 * (470 against 675 us), at 64 KB still narrowly (1.01-1.13 against
 * 1.05-1.30 ms), at 256 KB they lose (2.9-3.2 against 2.3-2.8). So a batch
 * of PREALLOC_BATCH_MAX or more leaves the file ending at its records. */
#define PREALLOC_CHUNK ((uint64_t)1 << 20)
#define PREALLOC_BATCH_MAX ((uint64_t)128 << 10)
/* Read-only zeros to write from (not mutable state). */
static const uint8_t zero_block[64 << 10];

typedef struct seg {
    mpz_t base;
    uint8_t base_field[SEQ_BYTES_MAX];
    char name[264];
    uint64_t count; /* entries (closed: from the next base; newest: scanned/appended) */
    uint64_t *offs; /* record offsets, loaded lazily for closed segments */
    size_t offs_cap;
    bool offs_loaded;
    uint64_t offs_n;      /* offs[0, offs_n) are known good (readers extend them) */
    uint64_t idx_written; /* entries of offs already in the .idx file (writer) */
    int fd;               /* writer: open for writing while part of an unsynced batch */
    int idx_fd;           /* writer: the newest segment's .idx, kept open */
} seg;

/* A read-only mapping of one segment file. */
typedef struct view {
    size_t seg;
    unsigned gen;
    int fd;
    uint8_t *map;
    size_t len;
} view;

struct trp_log {
    char *dir;
    char *watch;
    bool read_only;
    /* an fsync failed: the handle is dead. Atomic: trp-node's disk thread
     * writes the term/vote file (trp_log_meta_set) while the loop thread
     * appends, and either may find the handle dead. */
    atomic_bool failed;
    bool manual_commit;
    uint64_t segment_bytes;
    uint32_t max_entry;
    int dirfd, lockfd, commitfd;

    seg *segs;
    size_t nseg, segcap;
    unsigned gen; /* bumped when the segment list changes (invalidates views) */

    mpz_t first, next, commit;
    uint8_t next_field[SEQ_BYTES_MAX];
    uint8_t anchor[TRP_HASH_LEN]; /* prev of `first` */
    uint8_t head[TRP_HASH_LEN];
    uint64_t head_term;

    /* writer: the newest segment's file and the unwritten buffer */
    uint64_t file_end;  /* bytes of records (and header) of the newest segment written */
    uint64_t alloc_end; /* its file size: [file_end, alloc_end) is zero bytes */
    uint64_t batch_bytes; /* written since the batch began (flush_buf) */
    uint8_t *buf;
    size_t buf_len, buf_cap;
    size_t last_rec; /* offset in buf of the last record's header; SIZE_MAX: none */
    bool dir_dirty;

    /* writer: state at the last sync */
    mpz_t durable_next;
    uint8_t durable_head[TRP_HASH_LEN];
    uint64_t durable_term;
    size_t durable_nseg;
    uint64_t durable_file_end, durable_count;

    trp_meta meta;
    hasher h;
    view rv; /* the view trp_log_read uses */
};

struct trp_iter {
    trp_log *log;
    bool no_hash; /* trp_iter_set_hash(it, false): skip SHA-256 per entry */
    mpz_t seq;
    uint8_t seq_field[SEQ_BYTES_MAX];
    bool located;
    unsigned gen;
    size_t seg;
    uint64_t k, off;
    view v;
};

/* ---- small helpers ----------------------------------------------------- */

static int dead(const trp_log *log, trp_err *err)
{
    return trp_err_set(err, TRP_EIO,
                       "%s: an earlier fsync or truncate failed; this handle is unusable (close "
                       "and reopen)",
                       log->dir);
}

static int write_all(int fd, const void *data, size_t len, uint64_t off)
{
    const uint8_t *p = data;
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static ssize_t read_all(int fd, void *data, size_t len, uint64_t off)
{
    uint8_t *p = data;
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, p + got, len - got, (off_t)(off + got));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Write zero bytes over [from, to); returns the offset reached (== to
 * unless a write failed: zeroed space is only an optimisation). */
static uint64_t write_zeros(int fd, uint64_t from, uint64_t to)
{
    while (from < to) {
        uint64_t n = to - from < sizeof zero_block ? to - from : sizeof zero_block;
        if (write_all(fd, zero_block, (size_t)n, from) < 0)
            break;
        from += n;
    }
    return from;
}

/* The file size to extend the newest segment to once its data reaches
 * `end`: the next chunk boundary, but never past the segment size (unless
 * the data already is: a record bigger than a segment). */
static uint64_t prealloc_target(const trp_log *log, uint64_t end)
{
    uint64_t t = (end + PREALLOC_CHUNK - 1) / PREALLOC_CHUNK * PREALLOC_CHUNK;
    uint64_t cap = log->segment_bytes > end ? log->segment_bytes : end;
    return t < cap ? t : cap;
}

static void view_close(view *v)
{
    if (v->map)
        munmap(v->map, v->len);
    if (v->fd >= 0)
        close(v->fd);
    v->map = NULL;
    v->len = 0;
    v->fd = -1;
    v->seg = SIZE_MAX;
}

/* Map segment i so that at least `need` bytes are visible. */
static int view_get(trp_log *log, view *v, size_t i, uint64_t need, trp_err *err)
{
    if (v->seg != i || v->gen != log->gen)
        view_close(v);
    if (v->map && v->len >= need)
        return TRP_OK;
    if (v->fd < 0) {
        v->fd = openat(log->dirfd, log->segs[i].name, O_RDONLY | O_CLOEXEC);
        if (v->fd < 0 && errno == ENOENT) /* a reader's list is older than a trim */
            return trp_err_set(err, TRP_ERANGE,
                               "%s/%s: no longer there (trimmed or removed by the writer)",
                               log->dir, log->segs[i].name);
        if (v->fd < 0)
            return trp_err_sys(err, TRP_EIO, errno, "%s/%s", log->dir, log->segs[i].name);
        v->seg = i;
        v->gen = log->gen;
    }
    struct stat st;
    if (fstat(v->fd, &st) < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s", log->dir, log->segs[i].name);
    if ((uint64_t)st.st_size < need)
        return trp_err_set(err, TRP_ECORRUPT,
                           "%s/%s: file ends at byte %lld, expected at least %llu", log->dir,
                           log->segs[i].name, (long long)st.st_size, (unsigned long long)need);
    if (v->map)
        munmap(v->map, v->len);
    v->map = NULL;
    v->len = (size_t)st.st_size;
    if (v->len == 0)
        return TRP_OK;
    void *m = mmap(NULL, v->len, PROT_READ, MAP_SHARED, v->fd, 0);
    if (m == MAP_FAILED) {
        v->len = 0;
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s: mmap", log->dir, log->segs[i].name);
    }
    madvise(m, v->len, MADV_SEQUENTIAL);
    v->map = m;
    return TRP_OK;
}

static int fsync_dir(trp_log *log, trp_err *err)
{
    if (fsync(log->dirfd) < 0) {
        log->failed = true;
        return trp_err_sys(err, TRP_EIO, errno, "%s: fsync of the directory", log->dir);
    }
    return TRP_OK;
}

static int seg_push(trp_log *log, const mpz_t base)
{
    if (log->nseg == log->segcap) {
        size_t cap = log->segcap ? log->segcap * 2 : 16;
        seg *n = realloc(log->segs, cap * sizeof *n);
        if (!n)
            return -1;
        log->segs = n;
        log->segcap = cap;
    }
    seg *s = &log->segs[log->nseg++];
    memset(s, 0, sizeof *s);
    mpz_init_set(s->base, base);
    if (seq_to_field(base, s->base_field) < 0) {
        mpz_clear(s->base);
        log->nseg--;
        return -2;
    }
    seg_name(s->name, sizeof s->name, base, SEG_EXT);
    s->fd = -1;
    s->idx_fd = -1;
    return 0;
}

static void seg_free(seg *s)
{
    mpz_clear(s->base);
    free(s->offs);
    if (s->fd >= 0)
        close(s->fd);
    if (s->idx_fd >= 0)
        close(s->idx_fd);
    s->offs = NULL;
    s->fd = -1;
    s->idx_fd = -1;
}

static void idx_name(char *out, size_t size, const seg *s)
{
    size_t n = strlen(s->name) - strlen(SEG_EXT);
    snprintf(out, size, "%.*s%s", (int)n, s->name, IDX_EXT);
}

static int cmp_base(const void *a, const void *b)
{
    return mpz_cmp(((const seg *)a)->base, ((const seg *)b)->base);
}

/* Read the directory's segment names (not their contents), sorted by base.
 * With carry, offsets already loaded for a segment that is still there are
 * kept (a following reader then reads only the new part of an index). */
static int list_segments(trp_log *log, bool carry, trp_err *err)
{
    seg *old = log->segs;
    size_t nold = log->nseg;
    if (!carry) {
        for (size_t i = 0; i < nold; i++)
            seg_free(&old[i]);
        nold = 0;
    } else {
        log->segs = NULL;
        log->segcap = 0;
    }
    log->nseg = 0;
    log->gen++;
    int fd = openat(log->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s", log->dir);
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return trp_err_sys(err, TRP_EIO, errno, "%s", log->dir);
    }
    mpz_t base;
    mpz_init(base);
    int rc = TRP_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!seg_name_parse(de->d_name, base))
            continue;
        int p = seg_push(log, base);
        if (p == -1) {
            rc = trp_err_set(err, TRP_ENOMEM, "%s: out of memory listing segments", log->dir);
            break;
        }
        if (p == -2) {
            rc = trp_err_set(err, TRP_ECORRUPT, "%s/%s: base seq too large for the format",
                             log->dir, de->d_name);
            break;
        }
        /* keep the name as found on disk (it may be padded differently) */
        snprintf(log->segs[log->nseg - 1].name, sizeof log->segs[0].name, "%s", de->d_name);
    }
    closedir(d);
    mpz_clear(base);
    if (log->nseg > 1)
        qsort(log->segs, log->nseg, sizeof *log->segs, cmp_base);
    for (size_t i = 0, j = 0; i < log->nseg && j < nold;) {
        int c = mpz_cmp(log->segs[i].base, old[j].base);
        if (c == 0) {
            seg *s = &log->segs[i];
            free(s->offs);
            s->offs = old[j].offs;
            s->offs_cap = old[j].offs_cap;
            s->offs_n = old[j].offs_n;
            old[j].offs = NULL;
            old[j].offs_n = 0;
        }
        if (c <= 0)
            i++;
        if (c >= 0)
            j++;
    }
    for (size_t j = 0; j < nold; j++)
        seg_free(&old[j]);
    if (carry)
        free(old);
    if (rc)
        return rc;
    for (size_t i = 0; i + 1 < log->nseg; i++) {
        seg *s = &log->segs[i];
        if (mpz_cmp(s->base, log->segs[i + 1].base) == 0)
            return trp_err_set(err, TRP_ECORRUPT, "%s: two segment files for base %s", log->dir,
                               s->name);
        mpz_t d2;
        mpz_init(d2);
        mpz_sub(d2, log->segs[i + 1].base, s->base);
        bool fits = mpz_fits_ulong_p(d2) && sizeof(unsigned long) == 8;
        s->count = fits ? mpz_get_ui(d2) : 0;
        s->offs_loaded = s->offs && s->offs_n >= s->count;
        mpz_clear(d2);
        if (!fits)
            return trp_err_set(err, TRP_ECORRUPT, "%s/%s: next segment starts too far away",
                               log->dir, s->name);
    }
    return TRP_OK;
}

/* Read and check one segment header through pread. */
static int read_seg_hdr(trp_log *log, size_t i, seg_hdr *h, trp_err *err)
{
    seg *s = &log->segs[i];
    int fd = openat(log->dirfd, s->name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s", log->dir, s->name);
    uint8_t b[SEG_HDR_SIZE];
    ssize_t n = read_all(fd, b, sizeof b, 0);
    int e = errno;
    close(fd);
    if (n < 0)
        return trp_err_sys(err, TRP_EIO, e, "%s/%s", log->dir, s->name);
    uint32_t version;
    const char *bad = seg_hdr_decode(b, (uint64_t)n, h, &version);
    if (bad && !strcmp(bad, "segment-version"))
        return trp_err_set(err, TRP_EFORMAT,
                           "%s/%s: unsupported format version %u (this trp reads %d)", log->dir,
                           s->name, version, FMT_VERSION);
    if (bad) {
        char seq[200];
        trp_seq_str(seq, sizeof seq, s->base);
        return trp_err_set(err, TRP_ECORRUPT, "%s/%s: offset 0: seq %s: bad segment header (%s)",
                           log->dir, s->name, seq, bad);
    }
    if (memcmp(h->base, s->base_field, SEQ_BYTES_MAX) != 0)
        return trp_err_set(err, TRP_ECORRUPT,
                           "%s/%s: offset 48: segment header base seq differs from the file name",
                           log->dir, s->name);
    return TRP_OK;
}

/* Load the record offsets of a closed segment: from its .idx when that
 * looks right, else by scanning the segment (and, for a writer, rewriting
 * the .idx). Each lookup still checks the record it lands on. */
/* Offsets of closed segments are a cache: keep a few, so memory does not
 * grow with the log (8 bytes an entry). The newest segment's stay. */
#define OFFS_CACHED_MAX 4

static void drop_offsets(seg *s)
{
    free(s->offs);
    s->offs = NULL;
    s->offs_cap = 0;
    s->offs_n = 0;
    s->offs_loaded = false;
}

static void evict_offsets(trp_log *log, size_t keep)
{
    size_t loaded = 0;
    for (size_t j = 0; j + 1 < log->nseg; j++)
        loaded += log->segs[j].offs_loaded && j != keep;
    for (size_t j = 0; j + 1 < log->nseg && loaded >= OFFS_CACHED_MAX; j++)
        if (j != keep && log->segs[j].offs_loaded && log->segs[j].fd < 0 &&
            (log->read_only || log->segs[j].idx_written >= log->segs[j].count)) {
            drop_offsets(&log->segs[j]);
            loaded--;
        }
}

static int load_offsets(trp_log *log, size_t i, bool force_scan, trp_err *err)
{
    seg *s = &log->segs[i];
    if (s->offs_loaded && !force_scan)
        return TRP_OK;
    if (i + 1 < log->nseg)
        evict_offsets(log, i);
    uint64_t count = s->count;
    if (count > SIZE_MAX / 8)
        return trp_err_set(err, TRP_ECORRUPT, "%s/%s: too many entries", log->dir, s->name);
    if (!force_scan) {
        char iname[280];
        idx_name(iname, sizeof iname, s);
        int fd = openat(log->dirfd, iname, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            struct stat st;
            /* only the part not loaded yet (a reader following a writer) */
            uint64_t from = s->offs && s->offs_n <= count ? s->offs_n : 0;
            if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= count * 8) {
                uint64_t *o = s->offs;
                if (!o || s->offs_cap < count) {
                    o = realloc(s->offs, (count ? count : 1) * 8);
                    if (o) {
                        s->offs = o;
                        s->offs_cap = count ? count : 1;
                    }
                }
                if (o) {
                    ssize_t n = read_all(fd, o + from, (count - from) * 8, from * 8);
                    bool ok = n == (ssize_t)((count - from) * 8);
                    for (uint64_t k = from; ok && k < count; k++) {
                        o[k] = get_le64((uint8_t *)&o[k]);
                        ok = (o[k] & 7) == 0 && o[k] >= SEG_HDR_SIZE &&
                             (k == 0 ? o[k] == SEG_HDR_SIZE : o[k] > o[k - 1]);
                    }
                    if (ok) {
                        close(fd);
                        s->offs_loaded = true;
                        s->offs_n = count;
                        s->idx_written = count;
                        return TRP_OK;
                    }
                    s->offs_n = 0;
                }
            }
            close(fd);
        }
    }
    /* rebuild by scanning */
    view v = {.seg = SIZE_MAX, .fd = -1};
    int rc = view_get(log, &v, i, SEG_HDR_SIZE, err);
    if (rc) {
        view_close(&v);
        return rc;
    }
    seg_scan sc;
    if (seg_scan_records(v.map, v.len, count, &s->offs, &s->offs_cap, &sc) < 0) {
        view_close(&v);
        return trp_err_set(err, TRP_ENOMEM, "%s/%s: out of memory", log->dir, s->name);
    }
    view_close(&v);
    if (sc.count < count) {
        char seqs[200];
        mpz_t q;
        mpz_init_set(q, s->base);
        mpz_add_ui(q, q, sc.count);
        trp_seq_str(seqs, sizeof seqs, q);
        mpz_clear(q);
        return trp_err_set(err, TRP_ECORRUPT, "%s/%s: offset %llu: seq %s: bad record (%s)",
                           log->dir, s->name, (unsigned long long)sc.stop_off, seqs,
                           sc.stop ? sc.stop : "end");
    }
    s->offs_loaded = true;
    s->offs_n = count;
    if (!log->read_only) {
        char iname[280];
        idx_name(iname, sizeof iname, s);
        int fd = openat(log->dirfd, iname, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            uint8_t *tmp = malloc(count ? count * 8 : 1);
            if (tmp) {
                for (uint64_t k = 0; k < count; k++)
                    put_le64(tmp + 8 * k, s->offs[k]);
                if (write_all(fd, tmp, count * 8, 0) == 0)
                    s->idx_written = count;
                free(tmp);
            }
            close(fd);
        }
    }
    return TRP_OK;
}

/* Find the segment holding seq (which must be in [first, next)). */
static size_t find_seg(const trp_log *log, const mpz_t seq, uint64_t *k)
{
    size_t lo = 0, hi = log->nseg; /* answer in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (mpz_cmp(log->segs[mid].base, seq) <= 0)
            lo = mid;
        else
            hi = mid;
    }
    mpz_t d;
    mpz_init(d);
    mpz_sub(d, seq, log->segs[lo].base);
    *k = mpz_get_ui(d);
    mpz_clear(d);
    return lo;
}

static void seq_of(char *out, size_t size, const seg *s, uint64_t k)
{
    mpz_t q;
    mpz_init_set(q, s->base);
    mpz_add_ui(q, q, k);
    trp_seq_str(out, size, q);
    mpz_clear(q);
}

/* ---- commit watermark and meta ---------------------------------------- */

static bool read_commit_file(trp_log *log, mpz_t out)
{
    if (log->commitfd >= 0) { /* replaced (deleted, made again) since: read the new one */
        struct stat a, b;
        if (fstat(log->commitfd, &a) < 0 || fstatat(log->dirfd, COMMIT_NAME, &b, 0) < 0 ||
            a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
            close(log->commitfd);
            log->commitfd = -1;
        }
    }
    if (log->commitfd < 0) {
        log->commitfd = openat(log->dirfd, COMMIT_NAME, O_RDONLY | O_CLOEXEC);
        if (log->commitfd < 0)
            return false;
    }
    /* A read racing the writer's pwrite may be torn: the CRC shows it. */
    for (int attempt = 0; attempt < 100; attempt++) {
        uint8_t b[COMMIT_SIZE], field[SEQ_BYTES_MAX];
        ssize_t n = read_all(log->commitfd, b, sizeof b, 0);
        if (n == (ssize_t)sizeof b && commit_decode(b, sizeof b, field)) {
            seq_from_field(out, field);
            return true;
        }
        if (n < (ssize_t)sizeof b && n >= 0 && attempt > 2)
            return false;
    }
    return false;
}

static int write_commit_file(trp_log *log, bool durable, trp_err *err)
{
    uint8_t b[COMMIT_SIZE], field[SEQ_BYTES_MAX];
    if (seq_to_field(log->commit, field) < 0)
        return trp_err_set(err, TRP_ERANGE, "%s: commit seq too large", log->dir);
    commit_encode(b, field);
    if (log->commitfd < 0)
        return TRP_OK;
    if (write_all(log->commitfd, b, sizeof b, 0) < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s", log->dir, COMMIT_NAME);
    if (durable && fdatasync(log->commitfd) < 0) {
        log->failed = true;
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s: fdatasync", log->dir, COMMIT_NAME);
    }
    return TRP_OK;
}

/* The term and vote. A missing file is a node that never voted (term 0);
 * a damaged one refuses the writer: it is replaced atomically, so it can
 * only be damage, and a node that forgot its vote could vote twice in a
 * term. Readers, which do not use it, ignore it. */
static int read_meta(trp_log *log, bool read_only, trp_err *err)
{
    memset(&log->meta, 0, sizeof log->meta);
    int fd = openat(log->dirfd, META_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || read_only)
            return TRP_OK;
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s", log->dir, META_NAME);
    }
    uint8_t b[META_SIZE];
    ssize_t n = read_all(fd, b, sizeof b, 0);
    close(fd);
    bool ok = n == META_SIZE && memcmp(b, META_MAGIC, 8) == 0 &&
              get_le32(b + META_OFF_CRC) == trp_crc32c(0, b, META_OFF_CRC);
    if (ok && get_le32(b + 8) != FMT_VERSION) {
        if (read_only)
            return TRP_OK;
        return trp_err_set(err, TRP_EFORMAT, "%s/%s: unsupported format version %u (this trp reads %d)",
                           log->dir, META_NAME, (unsigned)get_le32(b + 8), FMT_VERSION);
    }
    if (ok) {
        log->meta.term = get_le64(b + META_OFF_TERM);
        log->meta.vote = get_le64(b + META_OFF_VOTE);
        return TRP_OK;
    }
    if (read_only)
        return TRP_OK;
    return trp_err_set(err, TRP_ECORRUPT,
                       "%s/%s: damaged (%s): the node's Raft term and vote are lost, and a node "
                       "that forgot its vote could vote twice in a term; refusing to open. "
                       "To recover, once the cluster has a leader (a later term than any this "
                       "node voted in), empty this data directory: the node then copies the "
                       "log from that leader",
                       log->dir, META_NAME,
                       n != META_SIZE                      ? "wrong size"
                       : memcmp(b, META_MAGIC, 8) != 0     ? "bad magic"
                                                           : "bad CRC");
}

int trp_log_meta_get(const trp_log *log, trp_meta *out)
{
    *out = log->meta;
    return TRP_OK;
}

int trp_log_meta_set(trp_log *log, const trp_meta *meta, trp_err *err)
{
    if (log->failed)
        return dead(log, err);
    if (log->read_only)
        return trp_err_set(err, TRP_ESTATE, "%s: opened read-only", log->dir);
    uint8_t b[META_SIZE];
    memset(b, 0, sizeof b);
    memcpy(b, META_MAGIC, 8);
    put_le32(b + 8, FMT_VERSION);
    put_le64(b + META_OFF_TERM, meta->term);
    put_le64(b + META_OFF_VOTE, meta->vote);
    put_le32(b + META_OFF_CRC, trp_crc32c(0, b, META_OFF_CRC));
    int fd = openat(log->dirfd, META_TMP_NAME, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s", log->dir, META_TMP_NAME);
    if (write_all(fd, b, sizeof b, 0) < 0) {
        int e = errno;
        close(fd);
        unlinkat(log->dirfd, META_TMP_NAME, 0);
        return trp_err_sys(err, TRP_EIO, e, "%s/%s", log->dir, META_TMP_NAME);
    }
    if (fsync(fd) < 0) {
        int e = errno;
        close(fd);
        log->failed = true;
        return trp_err_sys(err, TRP_EIO, e, "%s/%s: fsync", log->dir, META_TMP_NAME);
    }
    close(fd);
    if (renameat(log->dirfd, META_TMP_NAME, log->dirfd, META_NAME) < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s: rename", log->dir, META_NAME);
    int rc = fsync_dir(log, err);
    if (rc)
        return rc;
    log->meta = *meta;
    return TRP_OK;
}

/* ---- opening ----------------------------------------------------------- */

static int check_marker(trp_log *log, trp_err *err)
{
    return marker_check(log->dirfd, log->dir, err);
}

/* Files a directory may hold besides a log's, or before one is made: a
 * trp-node's marker and rejoining file (trp-node init leaves its marker in
 * each new node's directory), and a file system's lost+found at its top. */
static bool not_the_logs(const char *name)
{
    return !strcmp(name, ".") || !strcmp(name, "..") || !strcmp(name, TRP_NODE_MARKER_FILE) ||
           !strcmp(name, TRP_NODE_REJOIN_FILE) || !strcmp(name, "lost+found");
}

static bool dir_is_empty(trp_log *log)
{
    int fd = openat(log->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return false;
    }
    bool empty = true;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (!not_the_logs(de->d_name) && strcmp(de->d_name, LOCK_NAME))
            empty = false;
    closedir(d);
    return empty;
}

static int take_lock(trp_log *log, trp_err *err)
{
    log->lockfd = openat(log->dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (log->lockfd < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s", log->dir, LOCK_NAME);
    if (flock(log->lockfd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK)
            return trp_err_sys(err, TRP_EIO, errno, "%s/%s: flock", log->dir, LOCK_NAME);
        /* The holder writes its pid just after taking the lock: until
         * then the file is empty or names the previous holder, gone. Look
         * a few times (up to about 50 ms) for a live process. */
        for (int tries = 0; tries < 25; tries++) {
            char b[32] = "";
            ssize_t n = read_all(log->lockfd, b, sizeof b - 1, 0);
            b[n > 0 ? n : 0] = '\0';
            long pid = strtol(b, NULL, 10);
            if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
                return trp_err_set(err, TRP_ELOCKED, "%s: locked by another writer (pid %ld)",
                                   log->dir, pid);
            struct timespec ts = {0, 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        return trp_err_set(err, TRP_ELOCKED, "%s: locked by another writer (pid unknown)",
                           log->dir);
    }
    /* the pid first, then cut what is left of a longer one: never empty */
    char b[32];
    int n = snprintf(b, sizeof b, "%ld\n", (long)getpid());
    if (write_all(log->lockfd, b, (size_t)n, 0) < 0 || ftruncate(log->lockfd, n) < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s", log->dir, LOCK_NAME);
    return TRP_OK;
}

/* Write a new segment file (header only) durably: for create. */
static int create_first_segment(trp_log *log, const mpz_t start, trp_err *err)
{
    seg_hdr h;
    memset(&h, 0, sizeof h);
    if (seq_to_field(start, h.base) < 0)
        return trp_err_set(err, TRP_EINVAL,
                           "start seq too large (the format holds seqs below 2^512)");
    char name[264];
    seg_name(name, sizeof name, start, SEG_EXT);
    uint8_t b[SEG_HDR_SIZE];
    seg_hdr_encode(b, &h);
    int fd = openat(log->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s", log->dir, name);
    /* created already extended (best effort), so that the first batch's
     * sync is a fast one */
    bool ok = write_all(fd, b, sizeof b, 0) == 0;
    if (ok)
        (void)write_zeros(fd, SEG_HDR_SIZE, prealloc_target(log, SEG_HDR_SIZE));
    if (!ok || fdatasync(fd) < 0) {
        int e = errno;
        close(fd);
        unlinkat(log->dirfd, name, 0);
        return trp_err_sys(err, TRP_EIO, e, "%s/%s", log->dir, name);
    }
    close(fd);
    return TRP_OK;
}

static int create_log(trp_log *log, const char *start_text, trp_err *err)
{
    mpz_t start;
    mpz_init(start);
    int rc = trp_seq_parse(start, start_text ? start_text : "0", "start seq", err);
    if (rc == TRP_OK)
        rc = create_first_segment(log, start, err);
    mpz_clear(start);
    if (rc)
        return rc;
    /* the marker last: a directory without it is not (yet) a log */
    char b[32];
    int n = snprintf(b, sizeof b, "trp-log %d\n", FMT_VERSION);
    int fd = openat(log->dirfd, MARKER_NAME ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s", log->dir, MARKER_NAME);
    if (write_all(fd, b, (size_t)n, 0) < 0 || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        return trp_err_sys(err, TRP_EIO, e, "%s/%s", log->dir, MARKER_NAME);
    }
    close(fd);
    if (renameat(log->dirfd, MARKER_NAME ".tmp", log->dirfd, MARKER_NAME) < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s", log->dir, MARKER_NAME);
    return fsync_dir(log, err);
}

/* Does segment file name hold no record (only a header, then nothing or
 * zeros: a create preallocates, and writes no record before the marker)? */
static bool seg_is_blank(trp_log *log, const char *name)
{
    int fd = openat(log->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    /* all of it: a damaged first record must not hide records after it */
    uint8_t b[65536];
    bool blank = true;
    for (off_t at = SEG_HDR_SIZE; blank;) {
        ssize_t n = pread(fd, b, sizeof b, at);
        if (n <= 0) {
            blank = n == 0;
            break;
        }
        for (ssize_t i = 0; i < n && blank; i++)
            blank = b[i] == 0;
        at += n;
    }
    close(fd);
    return blank;
}

/* A directory holding only what an interrupted create leaves: the lock,
 * the marker's temporary file, and one segment without records. */
static bool only_trp_files(trp_log *log)
{
    int fd = openat(log->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return false;
    }
    bool only = true;
    int segs = 0;
    mpz_t b;
    mpz_init(b);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (not_the_logs(n) || !strcmp(n, LOCK_NAME) || !strcmp(n, MARKER_NAME ".tmp"))
            continue;
        /* a create writes one segment, with a header and no record yet:
         * a segment holding records is a log's, whatever file is missing */
        if (seg_name_parse(n, b) && ++segs == 1 && seg_is_blank(log, n))
            continue;
        only = false;
    }
    mpz_clear(b);
    closedir(d);
    return only;
}

static int unlink_seg_files(trp_log *log, const seg *s, trp_err *err)
{
    char iname[280];
    idx_name(iname, sizeof iname, s);
    if (unlinkat(log->dirfd, s->name, 0) < 0 && errno != ENOENT)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s: unlink", log->dir, s->name);
    if (unlinkat(log->dirfd, iname, 0) < 0 && errno != ENOENT)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s: unlink", log->dir, iname);
    return TRP_OK;
}

static int corrupt_at(trp_log *log, const seg *s, uint64_t off, uint64_t k, const char *what,
                      trp_err *err)
{
    char seqs[200];
    seq_of(seqs, sizeof seqs, s, k);
    return trp_err_set(err, TRP_ECORRUPT,
                       "%s/%s: offset %llu: seq %s: %s; synced data is damaged, refusing to "
                       "truncate it (trp-verify %s shows more)",
                       log->dir, s->name, (unsigned long long)off, seqs, what, log->dir);
}

/* What recovery decided about the newest segment. */
typedef struct tail_plan {
    bool drop;                    /* the whole segment is an unsynced roll: delete it */
    uint64_t keep;                /* else: records to keep ... */
    uint64_t cut;                 /* ... and the file size after them */
    uint8_t anchor[TRP_HASH_LEN]; /* the segment header's anchor */
} tail_plan;

static int entry_hash_at(trp_log *log, view *v, size_t i, uint64_t k, uint8_t out[TRP_HASH_LEN],
                         uint64_t *term, trp_err *err);
static const uint8_t *bytes_at(trp_log *log, view *v, size_t i, uint64_t off, uint64_t *avail,
                               trp_err *err, int *rc);

/* Does the last entry of segment i hash to `anchor` (the next segment's
 * header)? Tries the one .idx entry needed first, then the full lookup. */
static bool boundary_ok(trp_log *log, size_t i, const uint8_t anchor[TRP_HASH_LEN])
{
    seg *s = &log->segs[i];
    if (s->count == 0)
        return false;
    uint64_t k = s->count - 1;
    char iname[280];
    idx_name(iname, sizeof iname, s);
    uint8_t b[8], h[TRP_HASH_LEN];
    int ifd = openat(log->dirfd, iname, O_RDONLY | O_CLOEXEC);
    bool quick = ifd >= 0 && read_all(ifd, b, 8, k * 8) == 8;
    if (ifd >= 0)
        close(ifd);
    view v = {.seg = SIZE_MAX, .fd = -1};
    if (quick) {
        uint64_t off = get_le64(b), avail;
        int rc;
        rec_view r;
        uint8_t field[SEQ_BYTES_MAX];
        const uint8_t *p = bytes_at(log, &v, i, off, &avail, NULL, &rc);
        if (p && !rec_check(p, avail, k, &r) && seq_field_add(field, s->base_field, k) == 0) {
            size_t n;
            const uint8_t *m = seq_field_min(field, &n);
            hasher_entry(&log->h, h, m, n, r.term, r.type, r.prev, r.payload, r.len);
            view_close(&v);
            if (memcmp(h, anchor, TRP_HASH_LEN) == 0)
                return true;
        }
    }
    bool ok = entry_hash_at(log, &v, i, k, h, NULL, NULL) == TRP_OK &&
              memcmp(h, anchor, TRP_HASH_LEN) == 0;
    view_close(&v);
    return ok;
}

/* Decide, from the mapped newest segment i alone (and the watermark),
 * what is synced and what is a torn tail; TRP_ECORRUPT when damage lies
 * in synced data. Fills s->offs with the records found. */
static int plan_tail(trp_log *log, size_t i, const uint8_t *map, uint64_t size,
                     const mpz_t commit_hint, bool have_hint, tail_plan *plan, trp_err *err)
{
    seg *s = &log->segs[i];
    memset(plan, 0, sizeof *plan);
    seg_hdr h;
    uint32_t version;
    const char *bad = seg_hdr_decode(map, size, &h, &version);
    if (bad && !strcmp(bad, "segment-version"))
        return trp_err_set(err, TRP_EFORMAT,
                           "%s/%s: unsupported format version %u (this trp reads %d)", log->dir,
                           s->name, version, FMT_VERSION);
    if (bad || memcmp(h.base, s->base_field, SEQ_BYTES_MAX) != 0) {
        /* A header never synced (crash right after a roll) is a torn tail
         * only if nothing after it was synced either. */
        if (i > 0 && !(have_hint && mpz_cmp(commit_hint, s->base) > 0) &&
            !seg_commit_after(map, size, SEG_HDR_SIZE, NULL)) {
            plan->drop = true;
            return TRP_OK;
        }
        return corrupt_at(log, s, 0, 0, bad ? bad : "segment base differs from its name", err);
    }
    seg_scan sc;
    if (seg_scan_records(map, size, UINT64_MAX, &s->offs, &s->offs_cap, &sc) < 0)
        return trp_err_set(err, TRP_ENOMEM, "out of memory");
    mpz_t kept_end;
    mpz_init(kept_end);
    mpz_add_ui(kept_end, s->base, sc.commit_count);
    bool hint_beyond = have_hint && mpz_cmp(commit_hint, kept_end) > 0;
    mpz_clear(kept_end);
    if (hint_beyond && (sc.stop || sc.count > sc.commit_count)) {
        /* the watermark says entries past the last COMMIT record were
         * synced: name the damaged record itself, or else the first entry
         * past the last batch end */
        if (sc.stop)
            return corrupt_at(log, s, sc.stop_off, sc.count, sc.stop, err);
        return corrupt_at(log, s, s->offs[sc.commit_count], sc.commit_count,
                          "entries past the last batch end", err);
    }
    if (sc.stop && seg_commit_after(map, size, sc.stop_off + 8, NULL))
        return corrupt_at(log, s, sc.stop_off, sc.count, sc.stop, err);
    if (sc.commit_count == 0 && i > 0) {
        plan->drop = true;
        return TRP_OK;
    }
    memcpy(plan->anchor, h.anchor, TRP_HASH_LEN);
    plan->keep = sc.commit_count;
    plan->cut = sc.commit_end;
    return TRP_OK;
}

/*
 * Recovery of the newest segment for a writer. Keeps records up to the last
 * COMMIT record; cuts the rest when it is an unsynced tail; refuses when the
 * damage is in synced data. A newest segment with no COMMIT record belongs
 * wholly to an unsynced batch that crossed a roll: it is removed and the
 * segment before it recovered the same way (bounded by the segment count).
 */
static int recover_tail(trp_log *log, const mpz_t commit_hint, bool have_hint, trp_err *err)
{
    while (log->nseg > 0) {
        size_t i = log->nseg - 1;
        seg *s = &log->segs[i];
        int fd = openat(log->dirfd, s->name, O_RDWR | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return trp_err_sys(err, TRP_EIO, e, "%s/%s", log->dir, s->name);
        }
        uint64_t size = (uint64_t)st.st_size;
        uint8_t *map = NULL;
        if (size > 0) {
            map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
            if (map == MAP_FAILED) {
                int e = errno;
                close(fd);
                return trp_err_sys(err, TRP_EIO, e, "%s/%s: mmap", log->dir, s->name);
            }
        }
        tail_plan plan;
        int rc = plan_tail(log, i, map, size, commit_hint, have_hint, &plan, err);
        /* Zeroed space after the kept records (the writer's preallocation)
         * is kept as it is: only a tail holding something else is cut. */
        bool zero_tail = rc == TRP_OK && !plan.drop && plan.cut <= size;
        for (uint64_t z = plan.cut; zero_tail && z < size; z++)
            zero_tail = map[z] == 0;
        if (map)
            munmap(map, size);
        /* The segment before was synced before this one was written (see
         * roll), so it must end in the entry this one's anchor names. */
        if (rc == TRP_OK && !plan.drop && i > 0 && !boundary_ok(log, i - 1, plan.anchor)) {
            char seq[200];
            trp_seq_str(seq, sizeof seq, s->base);
            rc = trp_err_set(err, TRP_ECORRUPT,
                             "%s/%s: offset 16: seq %s: the segment's anchor is not the hash of "
                             "the entry before it in %s (a segment missing or damaged); synced "
                             "data is damaged, refusing to truncate it (trp-verify %s shows more)",
                             log->dir, s->name, seq, log->segs[i - 1].name, log->dir);
        }
        if (rc == TRP_OK && plan.drop) {
            close(fd);
            if ((rc = unlink_seg_files(log, s, err)) || (rc = fsync_dir(log, err)))
                return rc;
            seg_free(s);
            log->nseg--;
            log->gen++;
            continue;
        }
        if (rc == TRP_OK && plan.cut < size && !zero_tail &&
            (ftruncate(fd, (off_t)plan.cut) < 0 || fdatasync(fd) < 0))
            rc =
                trp_err_sys(err, TRP_EIO, errno, "%s/%s: cutting the torn tail", log->dir, s->name);
        if (rc) {
            close(fd);
            return rc;
        }
        s->count = plan.keep;
        s->offs_loaded = true;
        s->offs_n = plan.keep;
        log->file_end = plan.cut;
        log->alloc_end = zero_tail ? size : plan.cut;
        s->fd = fd;
        return TRP_OK;
    }
    return trp_err_set(err, TRP_ECORRUPT, "%s: no segment left after recovery", log->dir);
}

/* Make the newest segment's .idx match the offsets found by the scan. */
static void sync_tail_index(trp_log *log)
{
    seg *s = &log->segs[log->nseg - 1];
    char iname[280];
    idx_name(iname, sizeof iname, s);
    int fd = openat(log->dirfd, iname, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    uint64_t n = s->count;
    uint8_t *want = malloc(n ? n * 8 : 1), *have = malloc(n ? n * 8 : 1);
    struct stat st;
    if (want && have && fstat(fd, &st) == 0) {
        for (uint64_t k = 0; k < n; k++)
            put_le64(want + 8 * k, s->offs[k]);
        bool same = (uint64_t)st.st_size == n * 8 &&
                    read_all(fd, have, n * 8, 0) == (ssize_t)(n * 8) &&
                    memcmp(want, have, n * 8) == 0;
        if (!same && ftruncate(fd, 0) == 0)
            (void)write_all(fd, want, n * 8, 0);
        s->idx_written = n;
    }
    free(want);
    free(have);
    close(fd);
}

/* Hash of entry k of segment i, read through the mapping. */
static int entry_hash_at(trp_log *log, view *v, size_t i, uint64_t k, uint8_t out[TRP_HASH_LEN],
                         uint64_t *term, trp_err *err);

/* Set first/anchor from the oldest segment and next/head from the newest. */
static int load_ends(trp_log *log, trp_err *err)
{
    seg_hdr h;
    int rc = read_seg_hdr(log, 0, &h, err);
    if (rc)
        return rc;
    memcpy(log->anchor, h.anchor, TRP_HASH_LEN);
    mpz_set(log->first, log->segs[0].base);
    size_t last = log->nseg - 1;
    seg *s = &log->segs[last];
    mpz_set(log->next, s->base);
    mpz_add_ui(log->next, log->next, s->count);
    if (seq_to_field(log->next, log->next_field) < 0)
        return trp_err_set(err, TRP_ERANGE, "%s: seq too large", log->dir);
    if (s->count == 0) {
        if (last > 0) {
            rc = read_seg_hdr(log, last, &h, err);
            if (rc)
                return rc;
        }
        memcpy(log->head, h.anchor, TRP_HASH_LEN);
        log->head_term = 0;
        if (last > 0) { /* the head term lives in the previous segment */
            view v = {.seg = SIZE_MAX, .fd = -1};
            rc = load_offsets(log, last - 1, false, err);
            if (rc == TRP_OK && log->segs[last - 1].count)
                rc = entry_hash_at(log, &v, last - 1, log->segs[last - 1].count - 1, log->head,
                                   &log->head_term, err);
            view_close(&v);
            return rc;
        }
        return TRP_OK;
    }
    view v = {.seg = SIZE_MAX, .fd = -1};
    rc = entry_hash_at(log, &v, last, s->count - 1, log->head, &log->head_term, err);
    view_close(&v);
    return rc;
}

static void snapshot_durable(trp_log *log)
{
    mpz_set(log->durable_next, log->next);
    memcpy(log->durable_head, log->head, TRP_HASH_LEN);
    log->durable_term = log->head_term;
    log->durable_nseg = log->nseg;
    log->durable_file_end = log->file_end;
    log->durable_count = log->segs[log->nseg - 1].count;
}

/* Reader: find the visible end from the commit watermark (or, without
 * one, the newest segment's last COMMIT record). */
static int reader_load(trp_log *log, bool carry, trp_err *err)
{
    mpz_t c;
    mpz_init(c);
    bool have = read_commit_file(log, c);
    /* carry loaded offsets over only while the log only grew */
    int rc = list_segments(log, carry && have && mpz_cmp(c, log->commit) >= 0, err);
    if (rc == TRP_OK && log->nseg == 0)
        rc = trp_err_set(err, TRP_ECORRUPT, "%s: a trp log without segment files", log->dir);
    if (rc) {
        mpz_clear(c);
        return rc;
    }
    if (!have) {
        /* No watermark: up to the last COMMIT record, as a writer's
         * recovery keeps. A batch may span segments, so a newest segment
         * without one leaves the older segment's unsynced tail out too. */
        for (size_t i = log->nseg; i-- > 0;) {
            view v = {.seg = SIZE_MAX, .fd = -1};
            seg_scan sc = {0};
            rc = view_get(log, &v, i, 0, err);
            if (rc == TRP_OK)
                seg_scan_records(v.map, v.len, UINT64_MAX, NULL, NULL, &sc);
            view_close(&v);
            if (rc) {
                mpz_clear(c);
                return rc;
            }
            mpz_add_ui(c, log->segs[i].base, sc.commit_count);
            if (sc.commit_count > 0)
                break;
        }
    }
    /* segments starting at or past the watermark are not visible yet */
    while (log->nseg > 1 && mpz_cmp(log->segs[log->nseg - 1].base, c) >= 0) {
        seg_free(&log->segs[log->nseg - 1]);
        log->nseg--;
    }
    seg *s = &log->segs[log->nseg - 1];
    if (mpz_cmp(c, s->base) < 0)
        mpz_set(c, s->base);
    mpz_t d;
    mpz_init(d);
    mpz_sub(d, c, s->base);
    s->count = mpz_get_ui(d);
    mpz_clear(d);
    s->offs_loaded = s->offs && s->offs_n >= s->count;
    mpz_set(log->commit, c);
    mpz_clear(c);
    return load_ends(log, err);
}

/* A handle with nothing opened yet; NULL when out of memory. */
static trp_log *log_alloc(const char *dir, const trp_log_options *o)
{
    trp_log *log = calloc(1, sizeof *log);
    if (!log)
        return NULL;
    log->dir = strdup(dir);
    size_t wl = strlen(dir) + sizeof(COMMIT_NAME) + 2;
    log->watch = malloc(wl);
    if (!log->dir || !log->watch) {
        free(log->dir);
        free(log->watch);
        free(log);
        return NULL;
    }
    snprintf(log->watch, wl, "%s", dir);
    log->dirfd = log->lockfd = log->commitfd = -1;
    log->read_only = o->read_only;
    log->segment_bytes = o->segment_bytes ? o->segment_bytes : TRP_SEGMENT_BYTES_DEFAULT;
    if (log->segment_bytes < SEG_HDR_SIZE + REC_HDR_SIZE)
        log->segment_bytes = SEG_HDR_SIZE + REC_HDR_SIZE;
    log->max_entry = o->max_entry ? o->max_entry : TRP_MAX_ENTRY_DEFAULT;
    log->last_rec = SIZE_MAX;
    log->rv.fd = -1;
    log->rv.seg = SIZE_MAX;
    mpz_inits(log->first, log->next, log->commit, log->durable_next, NULL);
    return log;
}

/* Open the directory (making it for a creating writer), check the marker,
 * take the writer's lock, and create the log if asked and absent. */
static int open_dir(trp_log *log, const trp_log_options *o, trp_err *err)
{
    const char *dir = log->dir;
    bool creating = o->create && !o->read_only;
    if (creating && o->start_seq) { /* before anything is made */
        mpz_t s;
        mpz_init(s);
        bool ok = o->start_seq[0] && strspn(o->start_seq, "0123456789") == strlen(o->start_seq) &&
                  mpz_set_str(s, o->start_seq, 10) == 0;
        if (ok) {
            mpz_add_ui(s, s, 1); /* the next seq must fit the commit file's field */
            ok = mpz_sizeinbase(s, 2) <= 8 * SEQ_BYTES_MAX;
        }
        mpz_clear(s);
        if (!ok)
            return trp_err_set(err, TRP_EINVAL,
                               "start seq %.40s%s: not a seq a log can start at (0 to 2^512-2)",
                               o->start_seq, strlen(o->start_seq) > 40 ? "..." : "");
    }
    log->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (log->dirfd < 0 && errno == ENOENT && creating) {
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return trp_err_sys(err, TRP_EIO, errno, "%s: cannot create the directory", dir);
        log->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (log->dirfd < 0) {
        if (errno == ENOENT)
            return trp_err_set(err, TRP_ENOENT, "%s: no such directory", dir);
        if (errno == ENOTDIR)
            return trp_err_set(err, TRP_EFORMAT, "%s: not a trp log (not a directory)", dir);
        return trp_err_sys(err, TRP_EIO, errno, "%s", dir);
    }
    int rc = check_marker(log, err);
    if (rc == TRP_ENOENT && creating) {
        if (!dir_is_empty(log) && !only_trp_files(log))
            return trp_err_set(err, TRP_EFORMAT,
                               "%s: not a trp log, and not empty: refusing to create one here",
                               dir);
        /* two creators: the lock serializes them, then look again */
        if ((rc = take_lock(log, err)))
            return rc;
        rc = check_marker(log, err);
    }
    if (rc == TRP_ENOENT && !creating) {
        if (dir_is_empty(log))
            return trp_err_set(err, TRP_ENOENT, "%s: no trp log here (empty directory)", dir);
        return trp_err_set(err, TRP_EFORMAT, "%s: not a trp log (no %s file)", dir, MARKER_NAME);
    }
    if (rc == TRP_ENOENT) {
        /* an interrupted create leaves segment files without a marker */
        if ((rc = list_segments(log, false, err)))
            return rc;
        for (size_t i = 0; i < log->nseg; i++)
            if ((rc = unlink_seg_files(log, &log->segs[i], err)))
                return rc;
        return create_log(log, o->start_seq, err);
    }
    if (rc)
        return rc;
    if (!o->read_only && log->lockfd < 0)
        return take_lock(log, err);
    return TRP_OK;
}

/* Set the watermark a writer starts with. The watermark only ever names
 * synced entries (it is written after the fdatasync, and lowered durably
 * before a truncate), so one past the end means synced entries are gone. */
static int writer_commit(trp_log *log, const trp_log_options *o, const mpz_t hint, bool have_hint,
                         trp_err *err)
{
    if (have_hint && mpz_cmp(hint, log->next) > 0) {
        char a[200], b[200];
        return trp_err_set(err, TRP_ECORRUPT,
                           "%s/%s: the log ends before seq %s, but the commit watermark says "
                           "entries up to seq %s were synced: synced entries are missing",
                           log->dir, log->segs[log->nseg - 1].name,
                           trp_seq_str(a, sizeof a, log->next), trp_seq_str(b, sizeof b, hint));
    }
    log->commitfd = openat(log->dirfd, COMMIT_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (log->commitfd < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s", log->dir, COMMIT_NAME);
    /* standalone: everything durable is committed; manual (trp-node):
     * keep what Raft committed */
    log->manual_commit = o->manual_commit;
    if (o->manual_commit && have_hint)
        mpz_set(log->commit, hint);
    else if (o->manual_commit)
        mpz_set(log->commit, log->first);
    else
        mpz_set(log->commit, log->next);
    if (!have_hint || mpz_cmp(hint, log->commit) != 0)
        return write_commit_file(log, false, err);
    return TRP_OK;
}

/* The writer's part of open: recover the newest segment, find the ends,
 * fix the index, set the watermark, get the write buffer. */
static int open_writer(trp_log *log, const trp_log_options *o, trp_err *err)
{
    int rc = list_segments(log, false, err);
    if (rc)
        return rc;
    if (log->nseg == 0)
        return trp_err_set(err, TRP_ECORRUPT, "%s: a trp log without segment files", log->dir);
    mpz_t hint;
    mpz_init(hint);
    bool have_hint = read_commit_file(log, hint);
    if (log->commitfd >= 0) { /* reopened read-write below */
        close(log->commitfd);
        log->commitfd = -1;
    }
    rc = recover_tail(log, hint, have_hint, err);
    if (rc == TRP_OK)
        rc = load_ends(log, err);
    if (rc == TRP_OK) {
        sync_tail_index(log);
        rc = writer_commit(log, o, hint, have_hint, err);
    }
    mpz_clear(hint);
    if (rc)
        return rc;
    size_t rmax = (size_t)rec_size(log->max_entry) + SEG_HDR_SIZE;
    log->buf_cap = rmax > BUF_MIN ? rmax : BUF_MIN;
    log->buf = malloc(log->buf_cap);
    if (!log->buf)
        return trp_err_set(err, TRP_ENOMEM, "out of memory for the write buffer");
    snapshot_durable(log);
    return TRP_OK;
}

int trp_log_open(trp_log **out, const char *dir, const trp_log_options *opts, trp_err *err)
{
    *out = NULL;
    trp_log_options o = {0};
    if (opts)
        o = *opts;
    trp_log *log = log_alloc(dir, &o);
    if (!log)
        return trp_err_set(err, TRP_ENOMEM, "out of memory");
    int rc = hasher_init(&log->h, err);
    if (rc == TRP_OK)
        rc = open_dir(log, &o, err);
    if (rc == TRP_OK)
        rc = read_meta(log, o.read_only, err);
    if (rc == TRP_OK)
        rc = o.read_only ? reader_load(log, false, err) : open_writer(log, &o, err);
    if (rc) {
        trp_log_close(log);
        return rc;
    }
    *out = log;
    return TRP_OK;
}

void trp_log_close(trp_log *log)
{
    if (!log)
        return;
    view_close(&log->rv);
    for (size_t i = 0; i < log->nseg; i++)
        seg_free(&log->segs[i]);
    free(log->segs);
    if (log->commitfd >= 0)
        close(log->commitfd);
    if (log->lockfd >= 0)
        close(log->lockfd); /* releases the flock */
    if (log->dirfd >= 0)
        close(log->dirfd);
    hasher_free(&log->h);
    mpz_clears(log->first, log->next, log->commit, log->durable_next, NULL);
    free(log->buf);
    free(log->dir);
    free(log->watch);
    free(log);
}

/* ---- state ------------------------------------------------------------- */

void trp_log_first(const trp_log *log, mpz_t out)
{
    mpz_set(out, log->first);
}
void trp_log_next(const trp_log *log, mpz_t out)
{
    mpz_set(out, log->next);
}
void trp_log_durable_next(const trp_log *log, mpz_t out)
{
    mpz_set(out, log->read_only ? log->next : log->durable_next);
}
bool trp_log_empty(const trp_log *log)
{
    return mpz_cmp(log->first, log->next) == 0;
}
const uint8_t *trp_log_head_hash(const trp_log *log)
{
    return log->head;
}
uint64_t trp_log_head_term(const trp_log *log)
{
    return log->head_term;
}
uint32_t trp_log_max_entry(const trp_log *log)
{
    return log->max_entry;
}
const char *trp_log_dir(const trp_log *log)
{
    return log->dir;
}
const char *trp_log_watch_path(const trp_log *log)
{
    return log->watch;
}
void trp_log_commit_next(const trp_log *log, mpz_t out)
{
    mpz_set(out, log->commit);
}
void trp_log_set_manual_commit(trp_log *log, bool manual)
{
    log->manual_commit = manual;
}

int trp_log_set_commit(trp_log *log, const mpz_t commit_next, trp_err *err)
{
    if (log->failed)
        return dead(log, err);
    if (log->read_only)
        return trp_err_set(err, TRP_ESTATE, "%s: opened read-only", log->dir);
    /* never back, never past what is durable */
    if (mpz_cmp(commit_next, log->commit) <= 0)
        return TRP_OK;
    mpz_set(log->commit, commit_next);
    if (mpz_cmp(log->commit, log->durable_next) > 0)
        mpz_set(log->commit, log->durable_next);
    return write_commit_file(log, false, err);
}

int trp_log_check_head(const trp_log *log, const uint8_t expected[TRP_HASH_LEN], trp_err *err)
{
    if (memcmp(log->head, expected, TRP_HASH_LEN) == 0)
        return TRP_OK;
    char have[TRP_HASH_HEX_LEN + 1], want[TRP_HASH_HEX_LEN + 1], seqs[200];
    trp_hash_hex(have, log->head);
    trp_hash_hex(want, expected);
    mpz_t last;
    mpz_init(last);
    if (mpz_sgn(log->next) > 0)
        mpz_sub_ui(last, log->next, 1);
    trp_seq_str(seqs, sizeof seqs, last);
    mpz_clear(last);
    return trp_err_set(err, TRP_ECONFLICT, "%s: head is %s %s, not %s", log->dir,
                       trp_log_empty(log) ? "(empty log; anchor)" : seqs, have, want);
}

/* ---- appending --------------------------------------------------------- */

/* Put the failed batch back to the last sync: drop segments created since,
 * cut the newest durable one to its durable end. */
static void rollback(trp_log *log)
{
    while (log->nseg > log->durable_nseg) {
        seg *s = &log->segs[log->nseg - 1];
        unlink_seg_files(log, s, NULL);
        seg_free(s);
        log->nseg--;
    }
    for (size_t i = 0; i + 1 < log->nseg; i++)
        if (log->segs[i].fd >= 0) {
            close(log->segs[i].fd);
            log->segs[i].fd = -1;
        }
    log->gen++;
    seg *s = &log->segs[log->nseg - 1];
    if (s->fd < 0)
        s->fd = openat(log->dirfd, s->name, O_RDWR | O_CLOEXEC);
    /* Cut back to the durable end (this may shrink the file under a
     * reader's mapping; only after a failed write, as before). */
    if (s->fd < 0 || ftruncate(s->fd, (off_t)log->durable_file_end) < 0)
        log->failed = true; /* cannot restore the file: give up on the handle */
    log->alloc_end = log->durable_file_end;
    s->count = log->durable_count;
    if (s->idx_written > s->count)
        s->idx_written = s->count;
    log->file_end = log->durable_file_end;
    log->buf_len = 0;
    log->last_rec = SIZE_MAX;
    mpz_set(log->next, log->durable_next);
    seq_to_field(log->next, log->next_field);
    memcpy(log->head, log->durable_head, TRP_HASH_LEN);
    log->head_term = log->durable_term;
    if (log->dir_dirty) {
        (void)fsync(log->dirfd);
        log->dir_dirty = false;
    }
}

/* Write the buffer to the newest segment (no sync): part of a batch
 * (kick) or its end. */
static int flush_buf(trp_log *log, bool kick, trp_err *err)
{
    if (!log->buf_len) {
        if (!kick)
            log->batch_bytes = 0;
        return TRP_OK;
    }
    seg *s = &log->segs[log->nseg - 1];
    assert(s->fd >= 0);
    if (write_all(s->fd, log->buf, log->buf_len, log->file_end) < 0) {
        int code = trp_err_sys(err, TRP_EIO, errno, "%s/%s: write", log->dir, s->name);
        rollback(log);
        return code;
    }
    /* Mid-batch: let the disk start on this part while the rest is being
     * encoded, so the batch's fdatasync has less left to wait for. Only a
     * hint: the fdatasync reports any error. */
    if (kick)
        (void)sync_file_range(s->fd, (off_t)log->file_end, (off_t)log->buf_len,
                              SYNC_FILE_RANGE_WRITE);
    log->file_end += log->buf_len;
    log->batch_bytes += log->buf_len;
    log->buf_len = 0;
    /* The records grew the file: after a small batch, add the next chunk
     * of zeros now, so that this batch's fdatasync (slow anyway: the size
     * changed) also makes them durable, and the next batches only
     * overwrite. Best effort: a failed extension (full disk) leaves the
     * records as they are. */
    if (log->file_end > log->alloc_end)
        log->alloc_end = log->batch_bytes < PREALLOC_BATCH_MAX
                             ? write_zeros(s->fd, log->file_end, prealloc_target(log, log->file_end))
                             : log->file_end;
    if (!kick)
        log->batch_bytes = 0;
    log->last_rec = SIZE_MAX;
    return TRP_OK;
}

/* Start a new segment at `next`, chained to the head. */
static int roll(trp_log *log, trp_err *err)
{
    int rc = flush_buf(log, true, err);
    if (rc)
        return rc;
    /* The old segment's part of the batch goes to disk before anything of
     * the new one is written, so a crash can never leave the new segment
     * (and its COMMIT record) without the old tail: recovery then only
     * ever has to look at the newest segment's own records. */
    seg *old = &log->segs[log->nseg - 1];
    if (old->fd >= 0 && fdatasync(old->fd) < 0) {
        log->failed = true;
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s: fdatasync", log->dir, old->name);
    }
    int p = seg_push(log, log->next);
    if (p < 0)
        return p == -1 ? trp_err_set(err, TRP_ENOMEM, "out of memory")
                       : trp_err_set(err, TRP_ERANGE, "%s: seq too large for the format", log->dir);
    log->gen++;
    seg *s = &log->segs[log->nseg - 1];
    s->offs_loaded = true;
    s->fd = openat(log->dirfd, s->name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        int e = errno;
        seg_free(s);
        log->nseg--;
        return trp_err_sys(err, TRP_EIO, e, "%s/%s: create", log->dir, s->name);
    }
    log->dir_dirty = true;
    seg_hdr h;
    memcpy(h.anchor, log->head, TRP_HASH_LEN);
    memcpy(h.base, log->next_field, SEQ_BYTES_MAX);
    seg_hdr_encode(log->buf, &h);
    log->buf_len = SEG_HDR_SIZE;
    log->file_end = 0;
    log->alloc_end = 0; /* extended when the header is written */
    return TRP_OK;
}

static int log_append_rec(trp_log *log, uint64_t term, int type, const void *payload, size_t len,
                          const uint8_t *known_hash, uint8_t hash_out[TRP_HASH_LEN],
                          trp_err *err);

int trp_log_append(trp_log *log, uint64_t term, int type, const void *payload, size_t len,
                   uint8_t hash_out[TRP_HASH_LEN], trp_err *err)
{
    return log_append_rec(log, term, type, payload, len, NULL, hash_out, err);
}

int trp_log_append_hashed(trp_log *log, uint64_t term, int type, const void *payload, size_t len,
                          const uint8_t hash[TRP_HASH_LEN], trp_err *err)
{
    return log_append_rec(log, term, type, payload, len, hash, NULL, err);
}

static int log_append_rec(trp_log *log, uint64_t term, int type, const void *payload, size_t len,
                          const uint8_t *known_hash, uint8_t hash_out[TRP_HASH_LEN],
                          trp_err *err)
{
    if (log->failed)
        return dead(log, err);
    if (log->read_only)
        return trp_err_set(err, TRP_ESTATE, "%s: opened read-only", log->dir);
    if (type < TRP_ENTRY_DATA || type > TRP_ENTRY_CHECKPOINT)
        return trp_err_set(err, TRP_EINVAL, "unknown entry type %d", type);
    if (len > log->max_entry)
        return trp_err_set(err, TRP_ETOOBIG, "entry of %zu bytes is over the limit of %u bytes",
                           len, log->max_entry);
    /* seq 2^512-1 would need a next seq (the commit file's commit_next)
     * past the format's 64-byte field: 2^512-2 is the last */
    bool last = true;
    for (size_t i = 0; i < SEQ_BYTES_MAX && last; i++)
        last = log->next_field[i] == 0xff;
    if (last)
        return trp_err_set(err, TRP_ERANGE,
                           "%s: no seq left: 2^512-2 is the largest seq the format holds",
                           log->dir);
    uint64_t size = rec_size(len);
    seg *s = &log->segs[log->nseg - 1];
    uint64_t seg_end = log->file_end + log->buf_len;
    if (s->count > 0 && seg_end + size > log->segment_bytes) {
        int rc = roll(log, err);
        if (rc)
            return rc;
        s = &log->segs[log->nseg - 1];
        seg_end = log->file_end + log->buf_len;
    }
    if (log->buf_len >= FLUSH_AT || log->buf_len + size > log->buf_cap) {
        int rc = flush_buf(log, true, err);
        if (rc)
            return rc;
        s = &log->segs[log->nseg - 1];
        seg_end = log->file_end;
    }
    if (s->count >= s->offs_cap) {
        size_t cap = s->offs_cap ? s->offs_cap * 2 : 4096;
        uint64_t *n = realloc(s->offs, cap * sizeof *n);
        if (!n)
            return trp_err_set(err, TRP_ENOMEM, "out of memory for the index");
        s->offs = n;
        s->offs_cap = cap;
    }
    uint8_t *p = log->buf + log->buf_len;
    size_t seq_len;
    const uint8_t *seq_min = seq_field_min(log->next_field, &seq_len);
    uint8_t hash[TRP_HASH_LEN];
    if (known_hash)
        memcpy(hash, known_hash, TRP_HASH_LEN);
    else
        hasher_entry(&log->h, hash, seq_min, seq_len, term, type, log->head, payload, len);
    if (len)
        memcpy(p + REC_HDR_SIZE, payload, len);
    memset(p + REC_HDR_SIZE + len, 0, (size_t)(size - REC_HDR_SIZE - len));
    rec_encode(p, type, 0, s->count, term, log->head, p + REC_HDR_SIZE, (uint32_t)len);
    s->offs[s->count++] = seg_end;
    log->last_rec = log->buf_len;
    log->buf_len += (size_t)size;
    memcpy(log->head, hash, TRP_HASH_LEN);
    log->head_term = term;
    mpz_add_ui(log->next, log->next, 1);
    if (seq_field_inc(log->next_field) < 0) {
        log->failed = true;
        return trp_err_set(err, TRP_ERANGE, "%s: seq past the format's limit (2^512)", log->dir);
    }
    if (hash_out)
        memcpy(hash_out, hash, TRP_HASH_LEN);
    return TRP_OK;
}

/* Append new .idx entries of every segment touched since the last sync. */
static void write_indexes(trp_log *log)
{
    size_t from = log->durable_nseg ? log->durable_nseg - 1 : 0;
    for (size_t i = from; i < log->nseg; i++) {
        seg *s = &log->segs[i];
        if (s->idx_written >= s->count) {
            if (i + 1 < log->nseg && s->idx_fd >= 0) {
                close(s->idx_fd);
                s->idx_fd = -1;
            }
            continue;
        }
        if (s->idx_fd < 0) {
            char iname[280];
            idx_name(iname, sizeof iname, s);
            s->idx_fd = openat(log->dirfd, iname, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (s->idx_fd < 0)
                continue; /* the index is a cache: rebuilt when missing */
        }
        int fd = s->idx_fd;
        uint64_t n = s->count - s->idx_written;
        uint64_t k = s->idx_written;
        bool ok = true;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* the in-memory offsets already are the file's little-endian u64s */
        ok = write_all(fd, s->offs + k, n * 8, k * 8) == 0;
        n = 0;
#endif
        uint8_t tmp[8192];
        while (ok && n) {
            uint64_t m = n < sizeof tmp / 8 ? n : sizeof tmp / 8;
            for (uint64_t j = 0; j < m; j++)
                put_le64(tmp + 8 * j, s->offs[k + j]);
            ok = write_all(fd, tmp, m * 8, k * 8) == 0;
            k += m;
            n -= m;
        }
        if (ok)
            s->idx_written = s->count;
        if (i + 1 < log->nseg) { /* closed: done with it */
            close(fd);
            s->idx_fd = -1;
        }
    }
}

int trp_log_sync(trp_log *log, trp_err *err)
{
    if (log->failed)
        return dead(log, err);
    if (log->read_only)
        return trp_err_set(err, TRP_ESTATE, "%s: opened read-only", log->dir);
    if (mpz_cmp(log->next, log->durable_next) == 0 && !log->buf_len)
        return TRP_OK;
    if (log->last_rec != SIZE_MAX)
        rec_set_flags(log->buf + log->last_rec, REC_FLAG_COMMIT);
    int rc = flush_buf(log, false, err);
    if (rc)
        return rc;
    size_t from = log->durable_nseg ? log->durable_nseg - 1 : 0;
    for (size_t i = from; i < log->nseg; i++) {
        seg *s = &log->segs[i];
        if (s->fd < 0)
            continue;
        if (fdatasync(s->fd) < 0) {
            log->failed = true;
            return trp_err_sys(err, TRP_EIO, errno, "%s/%s: fdatasync", log->dir, s->name);
        }
        if (i + 1 < log->nseg) {
            close(s->fd);
            s->fd = -1;
        }
    }
    if (log->dir_dirty) {
        if ((rc = fsync_dir(log, err)))
            return rc;
        log->dir_dirty = false;
    }
    write_indexes(log);
    evict_offsets(log, SIZE_MAX);
    snapshot_durable(log);
    if (!log->manual_commit) {
        mpz_set(log->commit, log->next);
        return write_commit_file(log, false, err);
    }
    return TRP_OK;
}

/* ---- reading ----------------------------------------------------------- */

/* Pointer to `need` bytes at offset off of segment i (buffer or mapping). */
static const uint8_t *bytes_at(trp_log *log, view *v, size_t i, uint64_t off, uint64_t *avail,
                               trp_err *err, int *rc)
{
    *rc = TRP_OK;
    if (!log->read_only && i == log->nseg - 1 && off >= log->file_end) {
        *avail = log->file_end + log->buf_len - off;
        return log->buf + (off - log->file_end);
    }
    uint64_t need = off + REC_HDR_SIZE;
    if (!(v->seg == i && v->gen == log->gen && v->map && v->len >= need)) {
        *rc = view_get(log, v, i, need, err);
        if (*rc)
            return NULL;
    }
    if (v->len < need) {
        *rc = trp_err_set(err, TRP_ECORRUPT, "%s/%s: offset %llu is past the end of the file",
                          log->dir, log->segs[i].name, (unsigned long long)off);
        return NULL;
    }
    /* the record may extend past the current mapping (a growing segment);
     * if the file is really short, the record check reports it */
    uint64_t full = off + rec_size(get_le32(v->map + off + REC_OFF_LEN));
    if (full > v->len)
        (void)view_get(log, v, i, full, NULL);
    *avail = v->len - off;
    return v->map + off;
}

/* The record of entry k of segment i, checked. */
static int record_at(trp_log *log, view *v, size_t i, uint64_t k, rec_view *r, uint64_t *offp,
                     trp_err *err)
{
    seg *s = &log->segs[i];
    int rc;
    if (!s->offs_loaded && (rc = load_offsets(log, i, false, err)))
        return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (k >= s->count)
            break;
        uint64_t off = s->offs[k], avail;
        const uint8_t *p = bytes_at(log, v, i, off, &avail, err, &rc);
        const char *bad = p ? rec_check(p, avail, k, r) : "unreadable";
        if (!bad) {
            if (offp)
                *offp = off;
            return TRP_OK;
        }
        if (attempt == 0 && (log->read_only || i + 1 < log->nseg)) {
            /* a stale or damaged .idx: rebuild it from the segment */
            if ((rc = load_offsets(log, i, true, err)))
                return rc;
            continue;
        }
        char seqs[200];
        seq_of(seqs, sizeof seqs, s, k);
        return trp_err_set(err, TRP_ECORRUPT, "%s/%s: offset %llu: seq %s: bad record (%s)",
                           log->dir, s->name, (unsigned long long)off, seqs, bad);
    }
    char seqs[200];
    seq_of(seqs, sizeof seqs, s, k);
    return trp_err_set(err, TRP_ECORRUPT, "%s/%s: seq %s: missing from the segment", log->dir,
                       s->name, seqs);
}

static int entry_hash_at(trp_log *log, view *v, size_t i, uint64_t k, uint8_t out[TRP_HASH_LEN],
                         uint64_t *term, trp_err *err)
{
    rec_view r;
    int rc = record_at(log, v, i, k, &r, NULL, err);
    if (rc)
        return rc;
    uint8_t field[SEQ_BYTES_MAX];
    if (seq_field_add(field, log->segs[i].base_field, k) < 0)
        return trp_err_set(err, TRP_ERANGE, "seq too large");
    size_t n;
    const uint8_t *m = seq_field_min(field, &n);
    hasher_entry(&log->h, out, m, n, r.term, r.type, r.prev, r.payload, r.len);
    if (term)
        *term = r.term;
    return TRP_OK;
}

void trp_entry_init(trp_entry *e)
{
    memset(e, 0, sizeof *e);
    mpz_init(e->seq);
}

void trp_entry_clear(trp_entry *e)
{
    mpz_clear(e->seq);
}

static void fill_entry(trp_log *log, trp_entry *e, const rec_view *r, const uint8_t *field,
                       bool hash)
{
    size_t n;
    const uint8_t *m = seq_field_min(field, &n);
    e->term = r->term;
    e->type = r->type;
    memcpy(e->prev, r->prev, TRP_HASH_LEN);
    e->payload = r->payload;
    e->len = r->len;
    if (hash)
        hasher_entry(&log->h, e->hash, m, n, r->term, r->type, r->prev, r->payload, r->len);
    else
        memset(e->hash, 0, TRP_HASH_LEN);
}

int trp_log_read(trp_log *log, const mpz_t seq, trp_entry *e, trp_err *err)
{
    if (mpz_cmp(seq, log->first) < 0 || mpz_cmp(seq, log->next) >= 0) {
        char a[200], b[200], c[200];
        return trp_err_set(err, TRP_ERANGE, "%s: seq %s is outside the log [%s, %s)", log->dir,
                           trp_seq_str(a, sizeof a, seq), trp_seq_str(b, sizeof b, log->first),
                           trp_seq_str(c, sizeof c, log->next));
    }
    uint64_t k;
    size_t i = find_seg(log, seq, &k);
    rec_view r;
    int rc = record_at(log, &log->rv, i, k, &r, NULL, err);
    if (rc)
        return rc;
    uint8_t field[SEQ_BYTES_MAX];
    seq_to_field(seq, field);
    mpz_set(e->seq, seq);
    fill_entry(log, e, &r, field, true);
    return TRP_OK;
}

/* ---- iteration --------------------------------------------------------- */

int trp_iter_open(trp_iter **out, trp_log *log, const mpz_t from, trp_err *err)
{
    *out = NULL;
    if (mpz_cmp(from, log->first) < 0 || mpz_cmp(from, log->next) > 0) {
        char a[200], b[200], c[200];
        return trp_err_set(err, TRP_ERANGE, "%s: seq %s is outside the log [%s, %s]", log->dir,
                           trp_seq_str(a, sizeof a, from), trp_seq_str(b, sizeof b, log->first),
                           trp_seq_str(c, sizeof c, log->next));
    }
    trp_iter *it = calloc(1, sizeof *it);
    if (!it)
        return trp_err_set(err, TRP_ENOMEM, "out of memory");
    it->log = log;
    mpz_init_set(it->seq, from);
    if (seq_to_field(from, it->seq_field) < 0) {
        trp_iter_close(it);
        return trp_err_set(err, TRP_ERANGE, "seq too large");
    }
    it->v.fd = -1;
    it->v.seg = SIZE_MAX;
    *out = it;
    return TRP_OK;
}

int trp_iter_next(trp_iter *it, trp_entry *e, trp_err *err)
{
    trp_log *log = it->log;
    if (mpz_cmp(it->seq, log->next) >= 0)
        return 0;
    if (mpz_cmp(it->seq, log->first) < 0) {
        char a[200];
        return -trp_err_set(err, TRP_ERANGE, "%s: seq %s was trimmed away while iterating",
                            log->dir, trp_seq_str(a, sizeof a, it->seq));
    }
    if (!it->located || it->gen != log->gen || it->k >= log->segs[it->seg].count) {
        if (it->located && it->gen == log->gen && it->k >= log->segs[it->seg].count &&
            it->seg + 1 < log->nseg) {
            it->seg++;
            it->k = 0;
        } else {
            it->seg = find_seg(log, it->seq, &it->k);
        }
        it->gen = log->gen;
        it->located = true;
        /* the first record of a segment follows the header: no index
         * needed to stream through segments */
        it->off = it->k == 0 ? SEG_HDR_SIZE : 0;
    }
    seg *s = &log->segs[it->seg];
    rec_view r;
    int rc;
    const char *bad = "unknown";
    if (it->off) {
        /* sequential: the next record follows the previous one */
        uint64_t avail;
        const uint8_t *p = bytes_at(log, &it->v, it->seg, it->off, &avail, err, &rc);
        if (p)
            bad = rec_check(p, avail, it->k, &r);
    }
    if (bad) {
        uint64_t off;
        rc = record_at(log, &it->v, it->seg, it->k, &r, &off, err);
        if (rc)
            return -rc;
        it->off = off;
    }
    mpz_set(e->seq, it->seq);
    fill_entry(log, e, &r, it->seq_field, !it->no_hash);
    (void)s;
    it->off += r.size;
    it->k++;
    mpz_add_ui(it->seq, it->seq, 1);
    seq_field_inc(it->seq_field);
    return 1;
}

void trp_iter_set_hash(trp_iter *it, bool compute)
{
    it->no_hash = !compute;
}

void trp_iter_close(trp_iter *it)
{
    if (!it)
        return;
    view_close(&it->v);
    mpz_clear(it->seq);
    free(it);
}

int trp_log_refresh(trp_log *log, trp_err *err)
{
    if (!log->read_only)
        return TRP_OK;
    mpz_t c;
    mpz_init(c);
    bool have = read_commit_file(log, c);
    bool moved = !have || mpz_cmp(c, log->commit) != 0;
    mpz_clear(c);
    if (!moved)
        return TRP_OK;
    view_close(&log->rv);
    /* A writer may trim or remove between our listing and our reads: the
     * files we listed are gone. Then look again (a bounded number of times). */
    int rc = TRP_OK;
    for (int attempt = 0; attempt < 3; attempt++) {
        rc = reader_load(log, attempt == 0, err);
        if (rc != TRP_ENOENT && rc != TRP_ERANGE)
            break;
    }
    return rc;
}

/* ---- truncate and trim ------------------------------------------------- */

/* Truncate step 1: set COMMIT on entry from-1 (found as entry k of segment
 * *t), durably, so that recovery keeps it once the rest is gone. */
static int truncate_flag_last(trp_log *log, const mpz_t from, size_t *t, uint64_t *k, trp_err *err)
{
    mpz_t last;
    mpz_init(last);
    mpz_sub_ui(last, from, 1);
    *t = find_seg(log, last, k);
    mpz_clear(last);
    seg *s = &log->segs[*t];
    int rc = load_offsets(log, *t, false, err);
    if (rc)
        return rc;
    uint64_t off = s->offs[*k];
    int fd = openat(log->dirfd, s->name, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s", log->dir, s->name);
    uint8_t h[REC_HDR_SIZE];
    if (read_all(fd, h, sizeof h, off) != REC_HDR_SIZE || get_le64(h + REC_OFF_SEQOFF) != *k) {
        close(fd);
        return trp_err_set(err, TRP_ECORRUPT, "%s/%s: offset %llu: record header unreadable",
                           log->dir, s->name, (unsigned long long)off);
    }
    if (!(h[REC_OFF_FLAGS] & REC_FLAG_COMMIT)) {
        rec_set_flags(h, h[REC_OFF_FLAGS] | REC_FLAG_COMMIT);
        if (write_all(fd, h, sizeof h, off) < 0 || fdatasync(fd) < 0) {
            int e = errno;
            close(fd);
            return trp_err_sys(err, TRP_EIO, e, "%s/%s", log->dir, s->name);
        }
    }
    close(fd);
    return TRP_OK;
}

/* Truncate step 3: cut segment t after its first `keep` entries, durably,
 * and make it the newest segment of the handle. */
static int truncate_cut(trp_log *log, size_t t, uint64_t keep, trp_err *err)
{
    seg *s = &log->segs[t];
    int rc = load_offsets(log, t, false, err);
    if (rc)
        return rc;
    uint64_t cut = keep < s->count ? s->offs[keep] : SEG_HDR_SIZE;
    if (keep >= s->count && s->count) { /* keep it all: cut after its last record */
        uint8_t h[REC_HDR_SIZE];
        uint64_t off = s->offs[s->count - 1];
        int fd = openat(log->dirfd, s->name, O_RDONLY | O_CLOEXEC);
        ssize_t got = fd >= 0 ? read_all(fd, h, sizeof h, off) : -1;
        if (fd >= 0)
            close(fd);
        if (got != REC_HDR_SIZE)
            return trp_err_set(err, TRP_ECORRUPT, "%s/%s: offset %llu: record header unreadable",
                               log->dir, s->name, (unsigned long long)off);
        cut = off + rec_size(get_le32(h + REC_OFF_LEN));
    }
    if (s->fd < 0)
        s->fd = openat(log->dirfd, s->name, O_RDWR | O_CLOEXEC);
    if (s->fd < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s", log->dir, s->name);
    if (ftruncate(s->fd, (off_t)cut) < 0 || fdatasync(s->fd) < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s: truncate", log->dir, s->name);
    s->count = keep;
    s->offs_loaded = true;
    s->offs_n = keep;
    s->idx_written = 0;
    log->file_end = cut;
    log->alloc_end = cut;
    log->gen++;
    sync_tail_index(log);
    return TRP_OK;
}

int trp_log_truncate(trp_log *log, const mpz_t from, trp_err *err)
{
    if (log->failed)
        return dead(log, err);
    if (log->read_only)
        return trp_err_set(err, TRP_ESTATE, "%s: opened read-only", log->dir);
    char a[200], b[200], c[200];
    if (mpz_cmp(from, log->first) < 0 || mpz_cmp(from, log->next) > 0)
        return trp_err_set(err, TRP_ERANGE, "%s: cannot remove from seq %s: the log holds [%s, %s)",
                           log->dir, trp_seq_str(a, sizeof a, from),
                           trp_seq_str(b, sizeof b, log->first),
                           trp_seq_str(c, sizeof c, log->next));
    int rc = trp_log_sync(log, err); /* start from a clean, durable state */
    if (rc || mpz_cmp(from, log->next) == 0)
        return rc;
    assert(log->buf_len == 0);
    /* 0. the watermark first, durably, so recovery never sees it ahead */
    if (mpz_cmp(log->commit, from) > 0) {
        mpz_set(log->commit, from);
        if ((rc = write_commit_file(log, true, err)))
            return rc;
    }
    view_close(&log->rv);
    /* From here on a failure leaves the files in a state recovery handles
     * but the handle's picture of them stale: it becomes unusable. */
    log->file_end = UINT64_MAX; /* nothing is read from the buffer */
    size_t t = 0;
    uint64_t keep = 0;
    /* 1. flag the new last entry as a batch end */
    if (mpz_cmp(from, log->first) > 0) {
        rc = truncate_flag_last(log, from, &t, &keep, err);
        keep++; /* entries kept in segment t */
    }
    /* 2. delete later segments, newest first */
    while (rc == TRP_OK && log->nseg > t + 1) {
        seg *s = &log->segs[log->nseg - 1];
        if ((rc = unlink_seg_files(log, s, err)) || (rc = fsync_dir(log, err)))
            break;
        seg_free(s);
        log->nseg--;
        log->gen++;
    }
    /* 3. cut segment t */
    if (rc == TRP_OK)
        rc = truncate_cut(log, t, keep, err);
    if (rc == TRP_OK)
        rc = load_ends(log, err);
    if (rc) {
        log->failed = true;
        return rc;
    }
    snapshot_durable(log);
    if (!log->manual_commit && mpz_cmp(log->commit, log->next) != 0) {
        mpz_set(log->commit, log->next);
        rc = write_commit_file(log, false, err);
    }
    return rc;
}

int trp_log_trim(trp_log *log, const mpz_t before, trp_err *err)
{
    if (log->failed)
        return dead(log, err);
    if (log->read_only)
        return trp_err_set(err, TRP_ESTATE, "%s: opened read-only", log->dir);
    size_t drop = 0;
    while (drop + 1 < log->nseg && mpz_cmp(log->segs[drop + 1].base, before) <= 0)
        drop++;
    if (drop == 0)
        return TRP_OK;
    /* a segment still part of an unsynced batch is not trimmed */
    if (drop >= log->durable_nseg)
        drop = log->durable_nseg ? log->durable_nseg - 1 : 0;
    view_close(&log->rv);
    int rc;
    for (size_t i = 0; i < drop; i++) {
        if ((rc = unlink_seg_files(log, &log->segs[i], err)) || (rc = fsync_dir(log, err))) {
            /* keep the in-memory list matching what is left on disk */
            for (size_t j = 0; j < i; j++)
                seg_free(&log->segs[j]);
            memmove(log->segs, log->segs + i, (log->nseg - i) * sizeof *log->segs);
            log->nseg -= i;
            log->durable_nseg -= i;
            log->gen++;
            return rc;
        }
    }
    for (size_t j = 0; j < drop; j++)
        seg_free(&log->segs[j]);
    memmove(log->segs, log->segs + drop, (log->nseg - drop) * sizeof *log->segs);
    log->nseg -= drop;
    log->durable_nseg -= drop;
    log->gen++;
    seg_hdr h;
    if ((rc = read_seg_hdr(log, 0, &h, err)))
        return rc;
    memcpy(log->anchor, h.anchor, TRP_HASH_LEN);
    mpz_set(log->first, log->segs[0].base);
    return TRP_OK;
}

/* ---- split sync: write on one thread, fdatasync on another ------------- */

/* trp-node keeps fsync off its network thread: trp_log_write() marks the
 * batch end and write()s the buffer (no sync), trp_log_batch_fsync() runs
 * the fdatasync on any thread using duplicated descriptors (it touches
 * nothing else of the handle), and trp_log_mark_durable() moves the durable
 * state to what the batch covered. Appends may continue in between; only
 * one batch may be in flight, and no trp_log_sync/truncate/trim meanwhile.
 * A roll during the flight fdatasyncs the old segment itself, so the
 * batch's newest segment is the only file the batch must sync. */

void trp_log_batch_init(trp_log_batch *b)
{
    memset(b, 0, sizeof *b);
    b->fd = b->dir_fd = -1;
    mpz_init(b->next);
}

static void batch_close_fds(trp_log_batch *b)
{
    if (b->fd >= 0)
        close(b->fd);
    if (b->dir_fd >= 0)
        close(b->dir_fd);
    b->fd = b->dir_fd = -1;
}

void trp_log_batch_clear(trp_log_batch *b)
{
    batch_close_fds(b);
    mpz_clear(b->next);
}

int trp_log_write(trp_log *log, trp_log_batch *b, trp_err *err)
{
    if (log->failed)
        return dead(log, err);
    if (log->read_only)
        return trp_err_set(err, TRP_ESTATE, "%s: opened read-only", log->dir);
    batch_close_fds(b);
    b->empty = true;
    b->failed = false;
    b->sys_errno = 0;
    mpz_set(b->next, log->next);
    if (mpz_cmp(log->next, log->durable_next) == 0 && !log->buf_len)
        return TRP_OK;
    if (log->last_rec != SIZE_MAX)
        rec_set_flags(log->buf + log->last_rec, REC_FLAG_COMMIT);
    int rc = flush_buf(log, false, err);
    if (rc)
        return rc;
    seg *s = &log->segs[log->nseg - 1];
    assert(s->fd >= 0);
    b->fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
    if (b->fd < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s: dup", log->dir, s->name);
    if (log->dir_dirty) {
        b->dir_fd = fcntl(log->dirfd, F_DUPFD_CLOEXEC, 0);
        if (b->dir_fd < 0) {
            batch_close_fds(b);
            return trp_err_sys(err, TRP_EIO, errno, "%s: dup", log->dir);
        }
        log->dir_dirty = false;
    }
    b->empty = false;
    memcpy(b->head, log->head, TRP_HASH_LEN);
    b->term = log->head_term;
    b->nseg = log->nseg;
    b->file_end = log->file_end;
    b->count = s->count;
    return TRP_OK;
}

int trp_log_batch_fsync(trp_log_batch *b, trp_err *err)
{
    if (b->empty)
        return TRP_OK;
    if (fdatasync(b->fd) < 0 || (b->dir_fd >= 0 && fsync(b->dir_fd) < 0)) {
        b->failed = true;
        b->sys_errno = errno;
        return trp_err_sys(err, TRP_EIO, errno, "log segment: fdatasync");
    }
    return TRP_OK;
}

int trp_log_mark_durable(trp_log *log, trp_log_batch *b, trp_err *err)
{
    if (log->failed)
        return dead(log, err);
    if (b->empty)
        return TRP_OK;
    batch_close_fds(b);
    if (b->failed) {
        log->failed = true;
        return trp_err_sys(err, TRP_EIO, b->sys_errno, "%s: fdatasync", log->dir);
    }
    assert(b->nseg >= 1 && b->nseg <= log->nseg);
    size_t from = log->durable_nseg ? log->durable_nseg - 1 : 0;
    for (size_t i = from; i + 1 < b->nseg; i++)
        if (log->segs[i].fd >= 0) { /* synced by the roll away from it */
            close(log->segs[i].fd);
            log->segs[i].fd = -1;
        }
    /* index only what the batch made durable */
    size_t real_nseg = log->nseg;
    seg *s = &log->segs[b->nseg - 1];
    uint64_t real_count = s->count;
    if (b->nseg == real_nseg)
        s->count = b->count;
    log->nseg = b->nseg;
    write_indexes(log);
    log->nseg = real_nseg;
    s->count = real_count;
    evict_offsets(log, SIZE_MAX);
    mpz_set(log->durable_next, b->next);
    memcpy(log->durable_head, b->head, TRP_HASH_LEN);
    log->durable_term = b->term;
    log->durable_nseg = b->nseg;
    log->durable_file_end = b->file_end;
    log->durable_count = b->count;
    b->empty = true;
    if (!log->manual_commit) {
        mpz_set(log->commit, log->durable_next);
        return write_commit_file(log, false, err);
    }
    return TRP_OK;
}
