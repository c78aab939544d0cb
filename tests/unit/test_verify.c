/* test_verify.c: trp_verify_dir finds every single-byte flip of a segment
 * (and names the file), chain breaks that keep every CRC valid, seq gaps
 * and index damage; a writer never silently drops synced data on open;
 * anchors check; replicas agree or diverge at the right seq. */
#include "../check.h"
#include "logfmt.h"
#include "logtest.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

static void report(const char *dir, const mpz_t aseq, const uint8_t *ahash, trp_verify_report *r)
{
    trp_err e;
    int rc = trp_verify_dir(dir, aseq, ahash, r, &e);
    if (rc) {
        r->ok = false;
        snprintf(r->message, sizeof r->message, "error: %.900s", e.msg);
    }
}

static void clean_log_verifies_with_summary(void)
{
    const char *d = lt_dir("clean");
    trp_err e;
    trp_log *log = lt_open(d, true, "5", 600, &e);
    REQUIRE(log);
    REQUIRE(lt_batch(log, 0, 30) == 0);
    uint8_t head[32];
    memcpy(head, trp_log_head_hash(log), 32);
    trp_log_close(log);
    trp_verify_report r;
    trp_verify_report_init(&r);
    report(d, NULL, NULL, &r);
    CHECKF(r.ok, "%s", r.message);
    CHECK(mpz_cmp_ui(r.first, 5) == 0 && mpz_cmp_ui(r.next, 35) == 0);
    CHECK(r.entries == 30 && r.segments > 3 && memcmp(r.head, head, 32) == 0);
    uint64_t bytes = 0;
    for (int i = 0; i < 30; i++)
        bytes += (uint64_t)snprintf(NULL, 0, "e%d", i);
    CHECK(r.bytes == bytes);
    trp_verify_report_clear(&r);
}

typedef struct file {
    char name[300];
    uint8_t *data;
    size_t len;
} file;

static int load_dir(const char *dir, file *f, int max)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL && n < max) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(f[n].name, sizeof f[n].name, "%s", de->d_name);
        char p[900];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        f[n].data = lt_slurp(p, &f[n].len);
        n++;
    }
    if (d)
        closedir(d);
    return n;
}

static void restore_dir(const char *dir, const file *f, int n)
{
    lt_rmrf(dir);
    mkdir(dir, 0755);
    for (int i = 0; i < n; i++) {
        char p[900];
        snprintf(p, sizeof p, "%.500s/%.290s", dir, f[i].name);
        lt_spit(p, f[i].data, f[i].len);
    }
}

static void every_flipped_byte_is_found(void)
{
    const char *d = lt_dir("flip");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 500, &e);
    REQUIRE(log);
    REQUIRE(lt_batch(log, 0, 4) == 0);
    REQUIRE(lt_batch(log, 4, 9) == 0);
    REQUIRE(lt_batch(log, 9, 12) == 0);
    trp_log_close(log);
    file f[32];
    int n = load_dir(d, f, 32);
    /* the newest segment is the one open reads: check open on all its
     * flips, and on a sample elsewhere (open does not read the rest) */
    char newest[300] = "";
    for (int i = 0; i < n; i++)
        if (strstr(f[i].name, ".seg") && strcmp(f[i].name, newest) > 0)
            memcpy(newest, f[i].name, sizeof newest);
    int segs = 0, flips = 0, misses = 0, silent_loss = 0, wrong_file = 0;
    for (int i = 0; i < n; i++) {
        bool is_seg = strstr(f[i].name, ".seg") != NULL, is_idx = strstr(f[i].name, ".idx") != NULL;
        if (!is_seg && !is_idx)
            continue;
        segs += is_seg;
        for (size_t off = 0; off < f[i].len; off++) {
            char path[900];
            snprintf(path, sizeof path, "%.500s/%.290s", d, f[i].name);
            f[i].data[off] ^= 0xff;
            lt_spit(path, f[i].data, f[i].len);
            f[i].data[off] ^= 0xff;
            flips++;
            trp_verify_report r;
            trp_verify_report_init(&r);
            report(d, NULL, NULL, &r);
            /* the newest segment's zeroed space after its records: junk
             * there is what a torn, never-synced write leaves, a note (a
             * sealed segment's zeroed space must stay zero: damage) */
            bool in_space =
                !strcmp(f[i].name, newest) && off >= lt_seg_data_end(f[i].data, f[i].len);
            if (in_space) {
                if (!r.ok || !strstr(r.message, "torn tail")) {
                    if (misses++ < 3)
                        printf("# flip %s+%zu in the zeroed space: %s\n", f[i].name, off,
                               r.ok ? r.message : "failed");
                }
            } else if (r.ok) {
                if (misses++ < 3)
                    printf("# flip %s+%zu not found\n", f[i].name, off);
            } else if (is_seg && !strstr(r.file, f[i].name)) {
                if (wrong_file++ < 3)
                    printf("# flip %s+%zu reported as %s\n", f[i].name, off, r.message);
            }
            trp_verify_report_clear(&r);
            /* a writer refuses, or opens with every synced entry there */
            if (strcmp(f[i].name, newest) != 0 && off % 7 != 0) {
                lt_spit(path, f[i].data, f[i].len);
                continue;
            }
            log = lt_open(d, false, NULL, 500, &e);
            if (log) {
                bool all = lt_next_u64(log) == 12;
                for (uint64_t s = 0; all && s < 12; s++)
                    all = lt_entry_is(log, s) || !is_idx;
                if (lt_next_u64(log) != 12 || (is_idx && !all)) {
                    if (silent_loss++ < 3)
                        printf("# flip %s+%zu: opened with next %llu\n", f[i].name, off,
                               (unsigned long long)lt_next_u64(log));
                }
                trp_log_close(log);
            } else if (e.code != TRP_ECORRUPT && e.code != TRP_EFORMAT) {
                if (silent_loss++ < 3)
                    printf("# flip %s+%zu: open: %s\n", f[i].name, off, e.msg);
            }
            if (log)
                restore_dir(d, f, n); /* open may have rewritten files */
            else
                lt_spit(path, f[i].data, f[i].len); /* a refusal writes nothing */
        }
    }
    printf("# %d flips over %d segments and their indexes\n", flips, segs);
    /* every segment file has zeroed space after its records (capped by the
     * 500-byte segment size), so flips landed there too */
    for (int i = 0; i < n; i++)
        if (strstr(f[i].name, ".seg"))
            CHECKF(lt_seg_data_end(f[i].data, f[i].len) < f[i].len &&
                       lt_all_zero(f[i].data, lt_seg_data_end(f[i].data, f[i].len), f[i].len),
                   "%s", f[i].name);
    CHECK(segs >= 3);
    CHECK(misses == 0);
    CHECK(wrong_file == 0);
    CHECK(silent_loss == 0);
    for (int i = 0; i < n; i++)
        free(f[i].data);
}

/* Rewrite record k of a segment file in place with valid CRCs. */
static void forge(const char *path, int k, const char *payload, bool break_prev)
{
    size_t len;
    uint8_t *b = lt_slurp(path, &len);
    size_t off = SEG_HDR_SIZE;
    for (int i = 0; i < k; i++)
        off += rec_size(get_le32(b + off + REC_OFF_LEN));
    uint8_t prev[32];
    memcpy(prev, b + off + REC_OFF_PREV, 32);
    if (break_prev)
        prev[5] ^= 1;
    uint32_t plen = get_le32(b + off + REC_OFF_LEN);
    if (payload && strlen(payload) != plen) { /* same length only */
        free(b);
        return;
    }
    if (payload)
        memcpy(b + off + REC_HDR_SIZE, payload, plen);
    rec_encode(b + off, b[off + REC_OFF_TYPE], b[off + REC_OFF_FLAGS],
               get_le64(b + off + REC_OFF_SEQOFF), get_le64(b + off + REC_OFF_TERM), prev,
               b + off + REC_HDR_SIZE, plen);
    lt_spit(path, b, len);
    free(b);
}

static void chain_breaks_with_valid_crcs(void)
{
    const char *d = lt_dir("forge");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 0, &e);
    REQUIRE(log);
    REQUIRE(lt_batch(log, 0, 10) == 0);
    trp_log_close(log);
    char p[700];
    snprintf(p, sizeof p, "%s/00000000000000000000.seg", d);
    size_t len;
    uint8_t *orig = lt_slurp(p, &len);
    /* an edited payload with fresh CRCs: the next entry's prev no longer fits */
    forge(p, 4, "E4", false);
    trp_verify_report r;
    trp_verify_report_init(&r);
    report(d, NULL, NULL, &r);
    CHECK(!r.ok && !strcmp(r.problem, "chain") && !strcmp(r.seq, "5"));
    /* a forged prev */
    lt_spit(p, orig, len);
    forge(p, 7, NULL, true);
    report(d, NULL, NULL, &r);
    CHECK(!r.ok && !strcmp(r.problem, "chain") && !strcmp(r.seq, "7"));
    CHECKF(strstr(r.message, "00000000000000000000.seg") != NULL, "%s", r.message);
    /* the last entry edited: only an anchor on it can tell */
    lt_spit(p, orig, len);
    trp_entry en;
    trp_entry_init(&en);
    log = lt_reader(d, &e);
    REQUIRE(log);
    mpz_t s;
    mpz_init_set_ui(s, 9);
    REQUIRE(trp_log_read(log, s, &en, &e) == TRP_OK);
    uint8_t h9[32];
    memcpy(h9, en.hash, 32);
    trp_log_close(log);
    forge(p, 9, "E9", false);
    report(d, NULL, NULL, &r);
    CHECK(r.ok);
    report(d, s, h9, &r);
    CHECK(!r.ok && !strcmp(r.problem, "anchor") && !strcmp(r.seq, "9"));
    lt_spit(p, orig, len);
    report(d, s, h9, &r);
    CHECKF(r.ok, "%s", r.message);
    /* an anchor past the end: the log was cut or rolled back */
    mpz_set_ui(s, 10);
    report(d, s, h9, &r);
    CHECK(!r.ok && !strcmp(r.problem, "anchor-missing"));
    trp_verify_report_clear(&r);
    trp_entry_clear(&en);
    mpz_clear(s);
    free(orig);
}

static void a_missing_segment_is_a_seq_gap(void)
{
    const char *d = lt_dir("gap");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 500, &e);
    REQUIRE(log);
    REQUIRE(lt_batch(log, 0, 20) == 0);
    trp_log_close(log);
    /* remove the second segment */
    DIR *dd = opendir(d);
    char names[64][300];
    int n = 0;
    struct dirent *de;
    while (dd && (de = readdir(dd)) != NULL && n < 64)
        if (strstr(de->d_name, ".seg"))
            snprintf(names[n++], 300, "%s", de->d_name);
    closedir(dd);
    REQUIRE(n >= 3);
    qsort(names, (size_t)n, 300, (int (*)(const void *, const void *))strcmp);
    char p[900];
    snprintf(p, sizeof p, "%s/%s", d, names[1]);
    unlink(p);
    trp_verify_report r;
    trp_verify_report_init(&r);
    report(d, NULL, NULL, &r);
    CHECK(!r.ok && !strcmp(r.problem, "seq-gap") && strstr(r.file, names[2]));
    trp_verify_report_clear(&r);
}

static void replicas_agree_or_diverge(void)
{
    const char *a = lt_dir("ra"), *b = lt_dir("rb"), *c = lt_dir("rc");
    trp_err e;
    trp_log *la = lt_open(a, true, NULL, 800, &e);
    REQUIRE(la);
    REQUIRE(lt_batch(la, 0, 60) == 0);
    trp_log_close(la);
    REQUIRE(lt_copydir(a, b) == 0 && lt_copydir(a, c) == 0);
    trp_log *lc = lt_open(c, false, NULL, 800, &e); /* c: a shorter prefix */
    REQUIRE(lc);
    mpz_t s;
    mpz_init_set_ui(s, 45);
    REQUIRE(trp_log_truncate(lc, s, &e) == TRP_OK);
    trp_log_close(lc);
    const char *dirs[3] = {a, b, c};
    trp_verify_report r[3];
    for (int i = 0; i < 3; i++)
        trp_verify_report_init(&r[i]);
    char div[64] = "x";
    CHECKF(trp_verify_agree(dirs, 3, NULL, NULL, r, div, sizeof div, &e) == TRP_OK, "%s", e.msg);
    CHECK(div[0] == '\0');
    /* b: a different suffix from seq 30 on */
    trp_log *lb = lt_open(b, false, NULL, 800, &e);
    REQUIRE(lb);
    mpz_set_ui(s, 30);
    REQUIRE(trp_log_truncate(lb, s, &e) == TRP_OK);
    for (int i = 30; i < 60; i++)
        REQUIRE(trp_log_append(lb, 2, TRP_ENTRY_DATA, "other", 5, NULL, &e) == TRP_OK);
    REQUIRE(trp_log_sync(lb, &e) == TRP_OK);
    trp_log_close(lb);
    CHECK(trp_verify_agree(dirs, 3, NULL, NULL, r, div, sizeof div, &e) == TRP_ECORRUPT);
    CHECKF(!strcmp(div, "30"), "diverge at %s", div);
    CHECKF(strstr(e.msg, b) != NULL, "%s", e.msg);
    for (int i = 0; i < 3; i++)
        CHECK(r[i].ok);
    /* every replica must verify first */
    char p[700];
    snprintf(p, sizeof p, "%s/00000000000000000000.seg", a);
    size_t len;
    uint8_t *data = lt_slurp(p, &len);
    data[200] ^= 1;
    lt_spit(p, data, len);
    free(data);
    CHECK(trp_verify_agree(dirs, 2, NULL, NULL, r, div, sizeof div, &e) == TRP_ECORRUPT);
    CHECK(!r[0].ok && r[1].ok);
    for (int i = 0; i < 3; i++)
        trp_verify_report_clear(&r[i]);
    mpz_clear(s);
}

static void a_segment_being_created_is_not_damage(void)
{
    const char *d = lt_dir("creating");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 500, &e);
    REQUIRE(log);
    REQUIRE(lt_batch(log, 0, 10) == 0);
    trp_log_close(log);
    /* a writer rolled to seq 10 and has not written the header yet */
    char p[700];
    snprintf(p, sizeof p, "%s/00000000000000000010.seg", d);
    REQUIRE(lt_spit(p, (const uint8_t *)"", 0) == 0);
    trp_verify_report r;
    trp_verify_report_init(&r);
    report(d, NULL, NULL, &r);
    CHECKF(r.ok && mpz_cmp_ui(r.next, 10) == 0, "%s", r.message);
    trp_log *rd = lt_reader(d, &e);
    CHECK(rd && lt_next_u64(rd) == 10);
    trp_log_close(rd);
    /* but if the watermark says entries from 10 on were synced, it is */
    log = lt_open(d, false, NULL, 500, &e); /* removes the empty segment */
    REQUIRE(log);
    CHECK(access(p, F_OK) != 0);
    REQUIRE(lt_batch(log, 10, 12) == 0);
    trp_log_close(log);
    snprintf(p, sizeof p, "%s/00000000000000000011.seg", d);
    REQUIRE(lt_spit(p, (const uint8_t *)"junk", 4) == 0);
    report(d, NULL, NULL, &r);
    CHECKF(!r.ok, "%s", r.message);
    trp_verify_report_clear(&r);
}

/* Damage in a log a writer holds open is still reported: the checks
 * again that a live log gets (a write caught in flight) do not hide it. */
static void damage_under_a_live_writer_is_reported(void)
{
    const char *d = lt_dir("livedamage");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 0, &e);
    REQUIRE(log);
    REQUIRE(lt_batch(log, 0, 20) == 0);
    char p[700];
    snprintf(p, sizeof p, "%s/00000000000000000000.seg", d);
    int fd = open(p, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t b;
    REQUIRE(pread(fd, &b, 1, SEG_HDR_SIZE + 40) == 1);
    b ^= 0x20;
    REQUIRE(pwrite(fd, &b, 1, SEG_HDR_SIZE + 40) == 1);
    close(fd);
    trp_verify_report r;
    trp_verify_report_init(&r);
    report(d, NULL, NULL, &r); /* the writer still holds the log */
    CHECKF(!r.ok && strstr(r.message, "00000000000000000000.seg"), "%s", r.message);
    trp_log_close(log);
    trp_verify_report_clear(&r);
}

/* Every segment file, sealed ones too, ends in the writer's zeroed space
 * (capped by the segment size); that is the end of the records, not
 * damage, and not a torn tail either. */
static void zeroed_space_of_sealed_segments_verifies_clean(void)
{
    const char *d = lt_dir("zsealed");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 3u << 20, &e);
    REQUIRE(log);
    static char pay[1000];
    memset(pay, 'x', sizeof pay);
    for (int i = 0; i < 8000; i++) { /* ~8.5 MB: two rolls, several extensions */
        REQUIRE(trp_log_append(log, 1, TRP_ENTRY_DATA, pay, sizeof pay, NULL, &e) == TRP_OK);
        if (i % 50 == 49)
            REQUIRE(trp_log_sync(log, &e) == TRP_OK);
    }
    trp_log_close(log);
    file f[16];
    int n = load_dir(d, f, 16), segs = 0;
    for (int i = 0; i < n; i++) {
        if (!strstr(f[i].name, ".seg"))
            continue;
        segs++;
        size_t end = lt_seg_data_end(f[i].data, f[i].len);
        CHECKF(end < f[i].len && lt_all_zero(f[i].data, end, f[i].len) && f[i].len <= 3u << 20,
               "%s: records end at %zu, file %zu", f[i].name, end, f[i].len);
    }
    CHECK(segs == 3);
    for (int i = 0; i < n; i++)
        free(f[i].data);
    trp_verify_report r;
    trp_verify_report_init(&r);
    report(d, NULL, NULL, &r);
    CHECKF(r.ok && r.entries == 8000 && r.segments == 3, "%s", r.message);
    CHECKF(!strstr(r.message, "torn"), "%s", r.message);
    trp_verify_report_clear(&r);
    /* and a reader reads them all */
    trp_log *rd = lt_reader(d, &e);
    CHECK(rd && lt_next_u64(rd) == 8000);
    trp_iter *it;
    mpz_t from;
    mpz_init(from);
    REQUIRE(rd && trp_iter_open(&it, rd, from, &e) == TRP_OK);
    trp_entry en;
    trp_entry_init(&en);
    int got = 0, rc;
    while ((rc = trp_iter_next(it, &en, &e)) == 1)
        got += en.len == sizeof pay;
    CHECKF(rc == 0 && got == 8000, "rc %d got %d", rc, got);
    trp_entry_clear(&en);
    trp_iter_close(it);
    mpz_clear(from);
    trp_log_close(rd);
    /* without the indexes: rebuilt from segments that end in zeros */
    DIR *dd = opendir(d);
    struct dirent *de;
    int gone = 0;
    while (dd && (de = readdir(dd)) != NULL)
        if (strstr(de->d_name, ".idx")) {
            char p[900];
            snprintf(p, sizeof p, "%.500s/%.300s", d, de->d_name);
            gone += unlink(p) == 0;
        }
    if (dd)
        closedir(dd);
    CHECK(gone == 3);
    rd = lt_reader(d, &e);
    REQUIRE(rd);
    for (int k = 0; k < 8000; k += 997) {
        trp_entry x;
        trp_entry_init(&x);
        mpz_t q;
        mpz_init_set_ui(q, (unsigned long)k);
        CHECKF(trp_log_read(rd, q, &x, &e) == TRP_OK && x.len == sizeof pay, "seq %d: %s", k,
               e.msg);
        mpz_clear(q);
        trp_entry_clear(&x);
    }
    trp_log_close(rd);
    log = lt_open(d, false, NULL, 3u << 20, &e);
    CHECK(log && lt_next_u64(log) == 8000);
    trp_log_close(log);
    trp_verify_report_init(&r);
    report(d, NULL, NULL, &r);
    CHECKF(r.ok && r.entries == 8000, "%s", r.message);
    trp_verify_report_clear(&r);
}

int main(void)
{
    RUN(clean_log_verifies_with_summary);
    RUN(every_flipped_byte_is_found);
    RUN(damage_under_a_live_writer_is_reported);
    RUN(chain_breaks_with_valid_crcs);
    RUN(a_missing_segment_is_a_seq_gap);
    RUN(replicas_agree_or_diverge);
    RUN(a_segment_being_created_is_not_damage);
    RUN(zeroed_space_of_sealed_segments_verifies_clean);
    lt_cleanup();
    return check_done();
}
