/* test_recovery.c: what a writer's open makes of a crashed log. A torn
 * tail, cut at every byte of the last batches, opens to the last whole
 * synced batch (never part of a batch), verifies and takes appends again;
 * damage to synced data is refused with TRP_ECORRUPT, never truncated. */
#include "../check.h"
#include "logtest.h"

#include <dirent.h>

/* A directory's regular files held in memory, to restore between cases. */
typedef struct snap {
    int n;
    char name[16][64];
    uint8_t *data[16];
    size_t len[16];
} snap;

static void snap_take(snap *s, const char *dir)
{
    memset(s, 0, sizeof *s);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL && s->n < 16) {
        if (de->d_name[0] == '.')
            continue;
        char p[700];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        snprintf(s->name[s->n], 64, "%.63s", de->d_name);
        s->data[s->n] = lt_slurp(p, &s->len[s->n]);
        s->n++;
    }
    if (d)
        closedir(d);
}

static void snap_restore(const snap *s, const char *dir)
{
    lt_rmrf(dir);
    mkdir(dir, 0755);
    for (int i = 0; i < s->n; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", dir, s->name[i]);
        lt_spit(p, s->data[i], s->len[i]);
    }
}

static void snap_free(snap *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->data[i]);
}

static const uint8_t *snap_get(const snap *s, const char *name, size_t *len)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->name[i], name)) {
            *len = s->len[i];
            return s->data[i];
        }
    return NULL;
}

static bool verifies(const char *dir)
{
    trp_verify_report r;
    trp_verify_report_init(&r);
    trp_err e;
    bool ok = trp_verify_dir(dir, NULL, NULL, &r, &e) == TRP_OK && r.ok;
    if (!ok)
        printf("# %s\n", r.ok ? e.msg : r.message);
    trp_verify_report_clear(&r);
    return ok;
}

#define SEG0 "00000000000000000000.seg"

/* The cut-at-every-byte tests use 16 KiB segments: the writer's zeroed
 * space is capped at the segment size, so each case rewrites 16 KiB, not
 * the 1 MiB a default segment starts with (zeroed_space_survives_reopen
 * uses the default). */
#define SMALL_SEG (16u << 10)

/* Batches end at these seqs (exclusive). */
static const int batch_end[] = {10, 15, 16, 20};
#define NBATCH 4

/* Open as writer after a simulated crash; expect one of the batch ends
 * <= the last whole batch; append again; verify. Returns next or -1. */
static int reopen_and_check(const char *dir, int max_next, bool append_again)
{
    trp_err e;
    trp_log *log = lt_open(dir, false, NULL, SMALL_SEG, &e);
    if (!log) {
        printf("# open: %s\n", e.msg);
        return -1;
    }
    int next = (int)lt_next_u64(log);
    bool boundary = false;
    for (int b = 0; b < NBATCH; b++)
        boundary = boundary || next == batch_end[b];
    bool ok = boundary && next <= max_next;
    for (int i = 0; ok && i < next; i++)
        ok = lt_entry_is(log, (uint64_t)i);
    int added = append_again ? 3 : 0;
    ok = ok && (!append_again || lt_batch(log, next, next + added) == 0);
    trp_log_close(log);
    ok = ok && verifies(dir);
    if (append_again) {
        log = lt_open(dir, false, NULL, SMALL_SEG, &e);
        ok = ok && log && lt_next_u64(log) == (uint64_t)(next + added);
        trp_log_close(log);
    }
    return ok ? next : -1;
}

/* Build the log: 4 batches in one segment; keep snapshots after each. */
static void build(const char *dir, snap *after, uint64_t seg_bytes)
{
    trp_err e;
    trp_log *log = lt_open(dir, true, NULL, seg_bytes, &e);
    int from = 0;
    for (int b = 0; b < NBATCH; b++) {
        lt_batch(log, from, batch_end[b]);
        from = batch_end[b];
        snap_take(&after[b], dir);
    }
    trp_log_close(log);
}

/* The data end (records) of a snapshot's first segment, and its file
 * length (records plus the writer's zeroed, preallocated space). */
static size_t snap_data_end(const snap *s, size_t *file_len)
{
    size_t len = 0;
    const uint8_t *b = snap_get(s, SEG0, &len);
    if (file_len)
        *file_len = len;
    return b ? lt_seg_data_end(b, len) : 0;
}

/* Write seg as the first `cut` bytes of full, then `tail` (0 none, 1
 * zeros, 2 junk) up to file_len. */
static void write_torn(const char *seg, const uint8_t *full, size_t cut, size_t file_len, int tail)
{
    size_t len = tail ? file_len : cut;
    uint8_t *z = malloc(len > 0 ? len : 1);
    memcpy(z, full, cut);
    uint32_t x = (uint32_t)cut;
    for (size_t i = cut; i < len; i++) {
        x = x * 1103515245u + 12345u;
        z[i] = tail == 2 ? (uint8_t)(x >> 16) : 0;
    }
    lt_spit(seg, z, len);
    free(z);
}

static void torn_tail_at_every_byte(void)
{
    const char *d = lt_dir("torn");
    snap after[NBATCH];
    build(d, after, SMALL_SEG);
    size_t file_len = 0;
    size_t full_len = snap_data_end(&after[NBATCH - 1], &file_len);
    const uint8_t *full = snap_get(&after[NBATCH - 1], SEG0, &(size_t){0});
    size_t b1_len = snap_data_end(&after[1], NULL); /* the end of batch 2 (seq 15) */
    size_t b2_len = snap_data_end(&after[2], NULL);
    /* the writer keeps zeroed space after the records */
    REQUIRE(full && b1_len < b2_len && b2_len < full_len && full_len < file_len);
    CHECK(lt_all_zero(full, full_len, file_len));
    size_t commit_len = 0;
    const uint8_t *old_commit = snap_get(&after[1], "commit", &commit_len);
    REQUIRE(old_commit);
    char seg[700], cpath[700];
    snprintf(seg, sizeof seg, "%s/%s", d, SEG0);
    snprintf(cpath, sizeof cpath, "%s/commit", d);
    /* the crash hit the last two batches: the watermark still says 15;
     * the file is cut there, or the zeroed space it had goes on after the
     * cut (the extension was durable, the records not), or junk does */
    for (int tail = 0; tail < 3; tail++) {
        int failures = 0;
        for (size_t cut = b1_len; cut <= full_len && failures < 3; cut++) {
            snap_restore(&after[NBATCH - 1], d);
            write_torn(seg, full, cut, file_len, tail);
            lt_spit(cpath, old_commit, commit_len);
            /* zeros over the last record's padding leave it whole */
            int want_max = cut == full_len || (tail == 1 && cut >= full_len - 5) ? 20 : 16;
            int next = reopen_and_check(d, want_max, cut % 4 == 0);
            /* every batch wholly before the cut is kept */
            int want_min = cut >= full_len ? 20 : cut >= b2_len ? 16 : 15;
            if (next < want_min) {
                printf("# tail %d, cut at %zu: next %d, want %d..%d\n", tail, cut, next, want_min,
                       want_max);
                failures++;
            }
        }
        CHECKF(failures == 0, "tail %d", tail);
    }
    /* the same with no watermark at all, and with zeros over the records
     * from some point on (the file keeps its length) */
    int failures = 0;
    for (size_t cut = b1_len; cut < full_len && failures < 3; cut += 3) {
        snap_restore(&after[NBATCH - 1], d);
        write_torn(seg, full, cut, file_len, 1);
        unlink(cpath);
        /* zeros over the last record's padding leave it whole: 20 */
        int next = reopen_and_check(d, cut >= full_len - 5 ? 20 : 16, cut % 2 == 0);
        if (next < 15) {
            printf("# zeroed from %zu: next %d\n", cut, next);
            failures++;
        }
    }
    CHECK(failures == 0);
    for (int b = 0; b < NBATCH; b++)
        snap_free(&after[b]);
}

/* A clean zero tail is the writer's space, not damage: reopening (after a
 * close or a crash) keeps it, and only cuts what is not zero. */
static void zeroed_space_survives_reopen(void)
{
    const char *d = lt_dir("zspace");
    snap after[NBATCH];
    build(d, after, 0);
    size_t file_len = 0, data = snap_data_end(&after[NBATCH - 1], &file_len);
    REQUIRE(data < file_len);
    char seg[700];
    snprintf(seg, sizeof seg, "%s/%s", d, SEG0);
    /* after the close: same length, all entries */
    CHECK(reopen_and_check(d, 20, false) == 20);
    size_t now = 0;
    uint8_t *b = lt_slurp(seg, &now);
    CHECK(b && now == file_len && lt_seg_data_end(b, now) == data && lt_all_zero(b, data, now));
    free(b);
    /* appending again writes over the zeros, the length stays */
    CHECK(reopen_and_check(d, 20, true) == 20);
    b = lt_slurp(seg, &now);
    CHECK(b && now == file_len && lt_seg_data_end(b, now) > data);
    CHECK(b && lt_all_zero(b, lt_seg_data_end(b, now), now));
    free(b);
    /* a crash that tore the last batch inside the zeroed space: the torn
     * part goes (the file may be cut), every synced entry stays */
    snap_restore(&after[NBATCH - 1], d);
    const uint8_t *full = snap_get(&after[NBATCH - 1], SEG0, &(size_t){0});
    size_t b2 = snap_data_end(&after[2], NULL);
    write_torn(seg, full, b2 + 70, file_len, 1);
    size_t clen = 0;
    const uint8_t *c = snap_get(&after[2], "commit", &clen);
    char cpath[700];
    snprintf(cpath, sizeof cpath, "%s/commit", d);
    lt_spit(cpath, c, clen);
    CHECK(reopen_and_check(d, 16, false) == 16);
    b = lt_slurp(seg, &now);
    CHECK(b && lt_seg_data_end(b, now) == b2 && lt_all_zero(b, b2, now));
    free(b);
    for (int i = 0; i < NBATCH; i++)
        snap_free(&after[i]);
}

static void garbage_after_a_cut_is_cut_too(void)
{
    const char *d = lt_dir("garbage");
    snap after[NBATCH];
    build(d, after, SMALL_SEG);
    size_t file_len = 0;
    size_t full_len = snap_data_end(&after[NBATCH - 1], &file_len);
    size_t b2_len = snap_data_end(&after[2], NULL), clen = 0;
    const uint8_t *full = snap_get(&after[NBATCH - 1], SEG0, &(size_t){0});
    const uint8_t *c2 = snap_get(&after[2], "commit", &clen);
    snap_restore(&after[NBATCH - 1], d);
    char seg[700], cpath[700];
    snprintf(seg, sizeof seg, "%s/%s", d, SEG0);
    snprintf(cpath, sizeof cpath, "%s/commit", d);
    uint8_t *g = malloc(file_len);
    memcpy(g, full, file_len);
    uint32_t x = 99;
    /* a torn write: junk over the last batch and into the zeroed space */
    for (size_t i = b2_len + 40; i < full_len + 300 && i < file_len; i++) {
        x = x * 1103515245u + 12345u;
        g[i] = (uint8_t)(x >> 16);
    }
    lt_spit(seg, g, file_len);
    lt_spit(cpath, c2, clen);
    free(g);
    CHECK(reopen_and_check(d, 16, true) == 16);
    /* the junk is gone from the file, not just skipped */
    size_t now = 0;
    uint8_t *b = lt_slurp(seg, &now);
    CHECK(b && lt_all_zero(b, lt_seg_data_end(b, now), now));
    free(b);
    for (int i = 0; i < NBATCH; i++)
        snap_free(&after[i]);
}

static void synced_damage_is_refused_not_cut(void)
{
    const char *d = lt_dir("refuse");
    snap after[NBATCH];
    build(d, after, SMALL_SEG);
    size_t file_len = 0;
    size_t full_len = snap_data_end(&after[NBATCH - 1], &file_len);
    size_t b1_len = snap_data_end(&after[1], NULL);
    const uint8_t *full = snap_get(&after[NBATCH - 1], SEG0, &(size_t){0});
    char seg[700];
    snprintf(seg, sizeof seg, "%s/%s", d, SEG0);
    /* 1. the watermark says everything was synced: any cut is data loss,
     * whether the file ends there or zeroed space follows */
    for (int tail = 0; tail < 2; tail++)
        for (size_t cut = b1_len; cut < (tail ? full_len - 7 : full_len); cut += 5) {
            snap_restore(&after[NBATCH - 1], d);
            write_torn(seg, full, cut, file_len, tail);
            trp_err e;
            trp_log *log = lt_open(d, false, NULL, 0, &e);
            CHECKF(!log, "cut at %zu opened", cut);
            CHECKF(e.code == TRP_ECORRUPT && strstr(e.msg, SEG0), "cut at %zu: %s", cut, e.msg);
            trp_log_close(log);
            size_t now = 0;
            uint8_t *b = lt_slurp(seg, &now);
            CHECK(now == (tail ? file_len : cut)); /* refused, and nothing was cut */
            free(b);
        }
    /* 2. damage inside an early batch, a later batch end intact: refused
     * even without a watermark, naming file, offset and seq */
    snap_restore(&after[NBATCH - 1], d);
    char cpath[700];
    snprintf(cpath, sizeof cpath, "%s/commit", d);
    unlink(cpath);
    uint8_t *g = malloc(file_len);
    memcpy(g, full, file_len);
    size_t b0_len = snap_data_end(&after[0], NULL);
    g[b0_len + 70] ^= 0x40; /* payload of seq 10 */
    lt_spit(seg, g, file_len);
    free(g);
    trp_err e;
    trp_log *log = lt_open(d, false, NULL, 0, &e);
    CHECK(!log && e.code == TRP_ECORRUPT);
    char off[64];
    snprintf(off, sizeof off, "offset %zu", b0_len);
    CHECKF(strstr(e.msg, off) && strstr(e.msg, "seq 10") && strstr(e.msg, SEG0), "%s", e.msg);
    for (int i = 0; i < NBATCH; i++)
        snap_free(&after[i]);
}

static void batch_across_a_roll_is_atomic(void)
{
    const char *d = lt_dir("roll");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 400, &e); /* ~3 entries a segment */
    REQUIRE(log);
    REQUIRE(lt_batch(log, 0, 5) == 0);
    snap before;
    snap_take(&before, d);
    REQUIRE(lt_batch(log, 5, 17) == 0); /* spans several segments */
    trp_log_close(log);
    snap full;
    snap_take(&full, d);
    /* crash: the new segments are lost or torn; the old tail may be torn
     * too; the watermark is the old one */
    /* the newest and second-newest segment files */
    int newest = -1, second = -1;
    for (int i = 0; i < full.n; i++) {
        if (!strstr(full.name[i], ".seg"))
            continue;
        if (newest < 0 || strcmp(full.name[i], full.name[newest]) > 0) {
            second = newest;
            newest = i;
        } else if (second < 0 || strcmp(full.name[i], full.name[second]) > 0) {
            second = i;
        }
    }
    REQUIRE(newest >= 0 && second >= 0);
    for (int variant = 0; variant < 5; variant++) {
        snap_restore(&full, d);
        size_t clen = 0;
        /* the watermark of before the batch */
        const uint8_t *c = snap_get(&before, "commit", &clen);
        char p[700];
        snprintf(p, sizeof p, "%s/commit", d);
        lt_spit(p, c, clen);
        for (int i = 0; i < full.n && variant != 3; i++) {
            size_t l = 0;
            if (snap_get(&before, full.name[i], &l) || !strstr(full.name[i], ".seg"))
                continue;
            snprintf(p, sizeof p, "%s/%s", d, full.name[i]);
            if (variant == 0) /* the new segments lost, */
                unlink(p);
            else if (variant == 1) /* cut, */
                lt_spit(p, full.data[i], full.len[i] / 2);
            else if (variant == 2) /* with a torn header, */
                lt_spit(p, full.data[i], 50);
            else { /* or zeroed from the middle on (the extension was durable) */
                uint8_t *z = calloc(1, full.len[i]);
                memcpy(z, full.data[i], full.len[i] / 2);
                lt_spit(p, z, full.len[i]);
                free(z);
            }
        }
        if (variant == 3) {
            /* the segment before the newest does not end in the entry the
             * newest one's anchor names: a roll syncs the old segment
             * first, so no crash does that; it is damage, refused */
            snprintf(p, sizeof p, "%s/%s", d, full.name[second]);
            size_t end = lt_seg_data_end(full.data[second], full.len[second]);
            full.data[second][end - 8] ^= 1; /* last payload */
            lt_spit(p, full.data[second], full.len[second]);
            full.data[second][end - 8] ^= 1;
            log = lt_open(d, false, NULL, 400, &e);
            CHECKF(!log && e.code == TRP_ECORRUPT && strstr(e.msg, full.name[second]),
                   "variant 3: %s", log ? "opened" : e.msg);
            trp_log_close(log);
            continue;
        }
        log = lt_open(d, false, NULL, 400, &e);
        CHECKF(log != NULL, "variant %d: %s", variant, e.msg);
        if (log) {
            CHECKF(lt_next_u64(log) == 5, "variant %d: next %llu", variant,
                   (unsigned long long)lt_next_u64(log));
            CHECK(lt_batch(log, 5, 9) == 0);
            trp_log_close(log);
            CHECK(verifies(d));
        }
    }
    snap_free(&before);
    snap_free(&full);
}

static void index_of_the_open_segment_is_rebuilt(void)
{
    const char *d = lt_dir("idx");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 0, &e);
    REQUIRE(log);
    REQUIRE(lt_batch(log, 0, 50) == 0);
    trp_log_close(log);
    char p[700];
    snprintf(p, sizeof p, "%s/00000000000000000000.idx", d);
    uint8_t junk[80];
    memset(junk, 0x5a, sizeof junk);
    lt_spit(p, junk, sizeof junk); /* damaged */
    log = lt_open(d, false, NULL, 0, &e);
    REQUIRE(log);
    for (uint64_t i = 0; i < 50; i++)
        CHECK(lt_entry_is(log, i));
    trp_log_close(log);
    size_t len;
    uint8_t *b = lt_slurp(p, &len);
    CHECK(b && len == 50 * 8);
    free(b);
    CHECK(verifies(d));
    /* a reader copes with a stale index too, without writing it */
    lt_spit(p, junk, sizeof junk);
    log = lt_reader(d, &e);
    REQUIRE(log);
    CHECK(lt_entry_is(log, 42));
    trp_log_close(log);
    unlink(p);
    log = lt_reader(d, &e);
    REQUIRE(log);
    CHECK(lt_entry_is(log, 49));
    trp_log_close(log);
}

int main(void)
{
    RUN(torn_tail_at_every_byte);
    RUN(zeroed_space_survives_reopen);
    RUN(garbage_after_a_cut_is_cut_too);
    RUN(synced_damage_is_refused_not_cut);
    RUN(batch_across_a_roll_is_atomic);
    RUN(index_of_the_open_segment_is_rebuilt);
    lt_cleanup();
    return check_done();
}
