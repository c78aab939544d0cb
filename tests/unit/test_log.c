/* test_log.c: the log store's API: append, sync, read, iterate, roll,
 * truncate, trim, meta, the commit watermark, readers, locking, bad
 * directories, huge seqs and a full disk. */
#include "../check.h"
#include "logtest.h"
#include "logfmt.h"

#include <dirent.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <signal.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

static int count_files(const char *dir, const char *ext)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name), e = strlen(ext);
        if (l > e && strcmp(de->d_name + l - e, ext) == 0)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* Every entry from `from` on, by iteration: payloads and chain links. */
static bool chain_ok(trp_log *log, uint64_t from, uint64_t to)
{
    trp_iter *it;
    mpz_t s;
    mpz_init_set_ui(s, from);
    trp_err e;
    bool ok = trp_iter_open(&it, log, s, &e) == TRP_OK;
    mpz_clear(s);
    if (!ok)
        return false;
    trp_entry en;
    trp_entry_init(&en);
    uint8_t prev[32];
    bool have = false;
    uint64_t i = from;
    int r;
    while (ok && (r = trp_iter_next(it, &en, &e)) == 1) {
        char want[32];
        int n = snprintf(want, sizeof want, "e%llu", (unsigned long long)i);
        ok = mpz_cmp_ui(en.seq, i) == 0 && en.len == (size_t)n &&
             !memcmp(en.payload, want, (size_t)n);
        if (have)
            ok = ok && memcmp(en.prev, prev, 32) == 0;
        memcpy(prev, en.hash, 32);
        have = true;
        i++;
    }
    ok = ok && r == 0 && i == to;
    if (ok && to > from)
        ok = memcmp(prev, trp_log_head_hash(log), 32) == 0;
    trp_entry_clear(&en);
    trp_iter_close(it);
    return ok;
}

static void verify_ok(const char *dir, bool *ok)
{
    trp_verify_report r;
    trp_verify_report_init(&r);
    trp_err e;
    *ok = trp_verify_dir(dir, NULL, NULL, &r, &e) == TRP_OK && r.ok;
    if (!*ok)
        printf("# verify %s: %s\n", dir, r.ok ? e.msg : r.message);
    trp_verify_report_clear(&r);
}

static void append_read_iterate_across_segments(void)
{
    const char *d = lt_dir("basic");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 1024, &e);
    REQUIRE(log);
    CHECK(trp_log_empty(log));
    uint8_t zero[32] = {0};
    CHECK(memcmp(trp_log_head_hash(log), zero, 32) == 0);
    for (int b = 0; b < 10; b++)
        REQUIRE(lt_batch(log, b * 20, b * 20 + 20) == 0);
    CHECK(lt_next_u64(log) == 200);
    CHECK(count_files(d, ".seg") > 5);
    for (uint64_t i = 0; i < 200; i++)
        CHECKF(lt_entry_is(log, i), "seq %llu", (unsigned long long)i);
    CHECK(chain_ok(log, 0, 200));
    CHECK(chain_ok(log, 57, 200));
    CHECK(chain_ok(log, 200, 200));
    CHECK(trp_log_head_term(log) == 1);
    uint8_t head[32];
    memcpy(head, trp_log_head_hash(log), 32);
    mpz_t s;
    mpz_init_set_ui(s, 200);
    trp_entry en;
    trp_entry_init(&en);
    CHECK(trp_log_read(log, s, &en, &e) == TRP_ERANGE);
    trp_log_close(log);
    /* reopen: same content, same head; indexes of closed segments are used */
    log = lt_open(d, false, NULL, 1024, &e);
    REQUIRE(log);
    CHECK(lt_next_u64(log) == 200);
    CHECK(memcmp(head, trp_log_head_hash(log), 32) == 0);
    CHECK(chain_ok(log, 0, 200));
    /* a missing index of a closed segment is rebuilt when needed */
    char p[600];
    snprintf(p, sizeof p, "%s/00000000000000000000.idx", d);
    CHECK(unlink(p) == 0);
    trp_log_close(log);
    log = lt_open(d, false, NULL, 1024, &e);
    REQUIRE(log);
    CHECK(lt_entry_is(log, 3));
    CHECK(access(p, F_OK) == 0);
    mpz_clear(s);
    trp_entry_clear(&en);
    trp_log_close(log);
    bool ok;
    verify_ok(d, &ok);
    CHECK(ok);
}

static void unsynced_entries_are_readable_by_the_writer_only(void)
{
    const char *d = lt_dir("unsynced");
    trp_err e;
    trp_log *w = lt_open(d, true, NULL, 0, &e);
    REQUIRE(w);
    REQUIRE(lt_batch(w, 0, 5) == 0);
    trp_log *r = lt_reader(d, &e);
    REQUIRE(r);
    CHECK(lt_next_u64(r) == 5);
    for (int i = 5; i < 9; i++) {
        char p[16];
        int n = snprintf(p, sizeof p, "e%d", i);
        CHECK(trp_log_append(w, 1, TRP_ENTRY_DATA, p, (size_t)n, NULL, &e) == TRP_OK);
    }
    CHECK(lt_entry_is(w, 7));
    CHECK(chain_ok(w, 0, 9));
    mpz_t c;
    mpz_init(c);
    trp_log_durable_next(w, c);
    CHECK(mpz_cmp_ui(c, 5) == 0);
    CHECK(trp_log_refresh(r, &e) == TRP_OK);
    CHECK(lt_next_u64(r) == 5); /* not synced: not visible */
    CHECK(chain_ok(r, 0, 5));
    CHECK(trp_log_sync(w, &e) == TRP_OK);
    CHECK(trp_log_refresh(r, &e) == TRP_OK);
    CHECK(lt_next_u64(r) == 9);
    CHECK(chain_ok(r, 0, 9));
    CHECK(memcmp(trp_log_head_hash(r), trp_log_head_hash(w), 32) == 0);
    /* unsynced appends are dropped by close */
    CHECK(trp_log_append(w, 1, TRP_ENTRY_DATA, "x", 1, NULL, &e) == TRP_OK);
    trp_log_close(w);
    w = lt_open(d, false, NULL, 0, &e);
    REQUIRE(w);
    CHECK(lt_next_u64(w) == 9);
    mpz_clear(c);
    trp_log_close(w);
    trp_log_close(r);
}

static void manual_commit_watermark(void)
{
    const char *d = lt_dir("manual");
    trp_err e;
    trp_log_options o = {.create = true, .manual_commit = true};
    trp_log *w;
    REQUIRE(trp_log_open(&w, d, &o, &e) == TRP_OK);
    REQUIRE(lt_batch(w, 0, 10) == 0);
    trp_log *r = lt_reader(d, &e);
    REQUIRE(r);
    CHECK(lt_next_u64(r) == 0); /* durable but not committed */
    mpz_t c;
    mpz_init_set_ui(c, 4);
    CHECK(trp_log_set_commit(w, c, &e) == TRP_OK);
    CHECK(trp_log_refresh(r, &e) == TRP_OK);
    CHECK(lt_next_u64(r) == 4);
    CHECK(chain_ok(r, 0, 4));
    mpz_set_ui(c, 2);
    CHECK(trp_log_set_commit(w, c, &e) == TRP_OK); /* never back */
    trp_log_commit_next(w, c);
    CHECK(mpz_cmp_ui(c, 4) == 0);
    mpz_set_ui(c, 1000);
    CHECK(trp_log_set_commit(w, c, &e) == TRP_OK); /* never past durable */
    trp_log_commit_next(w, c);
    CHECK(mpz_cmp_ui(c, 10) == 0);
    trp_log_close(w);
    /* reopened in manual mode: the watermark stays where Raft left it */
    REQUIRE(trp_log_open(&w, d, &o, &e) == TRP_OK);
    trp_log_commit_next(w, c);
    CHECK(mpz_cmp_ui(c, 10) == 0);
    mpz_clear(c);
    trp_log_close(w);
    trp_log_close(r);
}

static void truncate_removes_durably(void)
{
    const char *d = lt_dir("truncate");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 1024, &e);
    REQUIRE(log);
    REQUIRE(lt_batch(log, 0, 100) == 0);
    int segs = count_files(d, ".seg");
    mpz_t s;
    mpz_init_set_ui(s, 73);
    CHECK(trp_log_truncate(log, s, &e) == TRP_OK);
    CHECK(lt_next_u64(log) == 73);
    CHECK(count_files(d, ".seg") < segs);
    CHECK(chain_ok(log, 0, 73));
    trp_log_close(log);
    log = lt_open(d, false, NULL, 1024, &e);
    REQUIRE(log);
    CHECK(lt_next_u64(log) == 73); /* durable, and recovery kept all 73 */
    REQUIRE(lt_batch(log, 73, 90) == 0);
    CHECK(chain_ok(log, 0, 90));
    /* from a segment base: find one by truncating until the count drops */
    mpz_set_ui(s, 10);
    CHECK(trp_log_truncate(log, s, &e) == TRP_OK);
    CHECK(lt_next_u64(log) == 10);
    CHECK(chain_ok(log, 0, 10));
    mpz_set_ui(s, 11);
    CHECK(trp_log_truncate(log, s, &e) == TRP_ERANGE);
    mpz_set_ui(s, 0);
    CHECK(trp_log_truncate(log, s, &e) == TRP_OK);
    CHECK(trp_log_empty(log));
    CHECK(count_files(d, ".seg") == 1);
    trp_log_close(log);
    log = lt_open(d, false, NULL, 1024, &e);
    REQUIRE(log);
    CHECK(trp_log_empty(log));
    REQUIRE(lt_batch(log, 0, 30) == 0);
    CHECK(chain_ok(log, 0, 30));
    trp_log_close(log);
    bool ok;
    verify_ok(d, &ok);
    CHECK(ok);
    mpz_clear(s);
}

static void truncate_at_every_point_then_reopen(void)
{
    const char *d = lt_dir("truncate-all");
    trp_err e;
    for (int from = 0; from <= 40; from += 3) {
        trp_log *log = lt_open(d, true, NULL, 600, &e);
        REQUIRE(log);
        if (lt_next_u64(log) == 0)
            REQUIRE(lt_batch(log, 0, 40) == 0);
        mpz_t s;
        mpz_init_set_ui(s, (unsigned long)from);
        CHECKF(trp_log_truncate(log, s, &e) == TRP_OK, "from %d: %s", from, e.msg);
        mpz_clear(s);
        trp_log_close(log);
        log = lt_open(d, false, NULL, 600, &e);
        REQUIRE(log);
        CHECKF(lt_next_u64(log) == (uint64_t)from, "from %d: next %llu", from,
               (unsigned long long)lt_next_u64(log));
        REQUIRE(lt_batch(log, from, 40) == 0);
        CHECK(chain_ok(log, 0, 40));
        trp_log_close(log);
    }
    bool ok;
    verify_ok(d, &ok);
    CHECK(ok);
}

static void trim_drops_whole_segments_and_keeps_the_anchor(void)
{
    const char *d = lt_dir("trim");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 1024, &e);
    REQUIRE(log);
    REQUIRE(lt_batch(log, 0, 100) == 0);
    trp_entry en;
    trp_entry_init(&en);
    mpz_t s;
    mpz_init_set_ui(s, 49);
    REQUIRE(trp_log_read(log, s, &en, &e) == TRP_OK);
    uint8_t h49[32];
    memcpy(h49, en.hash, 32);
    mpz_set_ui(s, 50);
    int before = count_files(d, ".seg");
    CHECK(trp_log_trim(log, s, &e) == TRP_OK);
    uint64_t first = lt_first_u64(log);
    CHECK(first > 0 && first <= 50);
    CHECK(count_files(d, ".seg") < before);
    CHECK(chain_ok(log, first, 100));
    mpz_set_ui(s, first - 1);
    CHECK(trp_log_read(log, s, &en, &e) == TRP_ERANGE);
    /* trimming everything keeps the newest segment */
    mpz_set_ui(s, 1000);
    CHECK(trp_log_trim(log, s, &e) == TRP_OK);
    CHECK(count_files(d, ".seg") == 1);
    CHECK(lt_next_u64(log) == 100);
    trp_log_close(log);
    log = lt_open(d, false, NULL, 1024, &e);
    REQUIRE(log);
    first = lt_first_u64(log);
    CHECK(chain_ok(log, first, 100));
    REQUIRE(lt_batch(log, 100, 120) == 0);
    trp_log_close(log);
    /* the rest verifies, and an anchor inside it checks */
    trp_verify_report r;
    trp_verify_report_init(&r);
    CHECK(trp_verify_dir(d, NULL, NULL, &r, &e) == TRP_OK && r.ok);
    CHECK(mpz_cmp_ui(r.first, first) == 0 && mpz_cmp_ui(r.next, 120) == 0);
    /* an anchor before what is kept cannot be checked: reported */
    mpz_set_ui(s, 49);
    CHECK(trp_verify_dir(d, s, h49, &r, &e) == TRP_OK && !r.ok);
    CHECK(strcmp(r.problem, "anchor-trimmed") == 0);
    trp_verify_report_clear(&r);
    trp_entry_clear(&en);
    mpz_clear(s);
}

static void append_hashed_takes_the_callers_hash(void)
{
    const char *d = lt_dir("hashed");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 0, &e);
    REQUIRE(log);
    mpz_t seq;
    mpz_init(seq);
    uint8_t h[32];
    for (int i = 0; i < 20; i++) { /* what the Raft core hands over */
        char p[32];
        int n = snprintf(p, sizeof p, "entry %d", i);
        trp_log_next(log, seq);
        trp_entry_hash(h, seq, 1, TRP_ENTRY_DATA, trp_log_head_hash(log), p, (size_t)n);
        CHECK(trp_log_append_hashed(log, 1, TRP_ENTRY_DATA, p, (size_t)n, h, &e) == TRP_OK);
        CHECK(memcmp(trp_log_head_hash(log), h, 32) == 0);
    }
    CHECK(trp_log_sync(log, &e) == TRP_OK);
    trp_log_close(log);
    trp_verify_report r;
    trp_verify_report_init(&r);
    CHECK(trp_verify_dir(d, NULL, NULL, &r, &e) == TRP_OK && r.ok);
    /* a wrong hash is taken as given, and verification finds the break */
    log = lt_open(d, false, NULL, 0, &e);
    REQUIRE(log);
    memset(h, 0x5a, sizeof h);
    CHECK(trp_log_append_hashed(log, 1, TRP_ENTRY_DATA, "bad", 3, h, &e) == TRP_OK);
    CHECK(trp_log_append(log, 1, TRP_ENTRY_DATA, "next", 4, NULL, &e) == TRP_OK);
    CHECK(trp_log_sync(log, &e) == TRP_OK);
    trp_log_close(log);
    CHECK(trp_verify_dir(d, NULL, NULL, &r, &e) == TRP_OK && !r.ok);
    trp_verify_report_clear(&r);
    mpz_clear(seq);
}

static void meta_is_replaced_atomically(void)
{
    const char *d = lt_dir("meta");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 0, &e);
    REQUIRE(log);
    trp_meta m;
    CHECK(trp_log_meta_get(log, &m) == TRP_OK && m.term == 0 && m.vote == 0);
    trp_meta set = {.term = 7, .vote = 3};
    CHECK(trp_log_meta_set(log, &set, &e) == TRP_OK);
    set.term = 0xffffffffffULL;
    set.vote = 2;
    CHECK(trp_log_meta_set(log, &set, &e) == TRP_OK);
    trp_log_close(log);
    log = lt_open(d, false, NULL, 0, &e);
    REQUIRE(log);
    CHECK(trp_log_meta_get(log, &m) == TRP_OK && m.term == 0xffffffffffULL && m.vote == 2);
    char p[600];
    snprintf(p, sizeof p, "%s/meta.tmp", d);
    CHECK(access(p, F_OK) != 0);
    trp_log_close(log);
    /* a damaged meta refuses the writer (a forgotten vote could be cast
     * twice), not readers; a missing one is a node that never voted */
    snprintf(p, sizeof p, "%s/meta", d);
    int fd = open(p, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t byte = 0;
    CHECK(pread(fd, &byte, 1, 61) == 1);
    byte ^= 0x40;
    CHECK(pwrite(fd, &byte, 1, 61) == 1);
    close(fd);
    log = lt_open(d, false, NULL, 0, &e);
    CHECK(log == NULL && e.code == TRP_ECORRUPT);
    CHECKF(strstr(e.msg, "meta: damaged (bad CRC)") && strstr(e.msg, "vote"), "message: %s", e.msg);
    trp_log_close(log);
    trp_log *r = lt_reader(d, &e);
    CHECK(r != NULL);
    trp_log_close(r);
    /* an intact meta of another version is a format this trp does not
     * read: refused by name, not taken as damage, ignored by readers */
    uint8_t b[64];
    fd = open(p, O_RDWR);
    REQUIRE(fd >= 0);
    CHECK(pread(fd, b, sizeof b, 0) == (ssize_t)sizeof b);
    b[61] ^= 0x40; /* the CRC as it was */
    b[8] = 2;
    uint32_t crc = trp_crc32c(0, b, 60);
    for (int i = 0; i < 4; i++)
        b[60 + i] = (uint8_t)(crc >> (8 * i));
    CHECK(pwrite(fd, b, sizeof b, 0) == (ssize_t)sizeof b);
    close(fd);
    log = lt_open(d, false, NULL, 0, &e);
    CHECK(log == NULL && e.code == TRP_EFORMAT);
    CHECKF(strstr(e.msg, "meta: unsupported format version 2"), "message: %s", e.msg);
    trp_log_close(log);
    r = lt_reader(d, &e);
    CHECK(r != NULL);
    trp_log_close(r);
    CHECK(unlink(p) == 0);
    log = lt_open(d, false, NULL, 0, &e);
    REQUIRE(log);
    CHECK(trp_log_meta_get(log, &m) == TRP_OK && m.term == 0 && m.vote == 0);
    trp_log_close(log);
}

/* Clear the COMMIT flag of every record of dir's segments from seq `from`
 * on (fixing their header CRCs): as if that batch was never synced. */
static int unsync_from(const char *dir, uint64_t from)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *de;
    int cleared = 0;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".seg") != 0)
            continue;
        uint64_t base = strtoull(de->d_name, NULL, 10);
        char p[800];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        int fd = open(p, O_RDWR);
        if (fd < 0)
            continue;
        uint8_t h[REC_HDR_SIZE];
        for (uint64_t off = SEG_HDR_SIZE; pread(fd, h, sizeof h, (off_t)off) == (ssize_t)sizeof h &&
                                          h[REC_OFF_TYPE] != 0;
             off += rec_size(get_le32(h + REC_OFF_LEN))) {
            if (base + get_le64(h + REC_OFF_SEQOFF) < from || !(h[REC_OFF_FLAGS] & REC_FLAG_COMMIT))
                continue;
            h[REC_OFF_FLAGS] &= (uint8_t)~REC_FLAG_COMMIT;
            put_le32(h + REC_OFF_HCRC, trp_crc32c(0, h + 4, REC_HDR_SIZE - 4));
            if (pwrite(fd, h, sizeof h, (off_t)off) == (ssize_t)sizeof h)
                cleared++;
        }
        close(fd);
    }
    closedir(d);
    return cleared;
}

/* Without a commit file, readers take the watermark from the COMMIT
 * records as a writer's recovery does: a batch that spans segments and
 * was never synced is left out in the older segment too. */
static void no_commit_file_readers_agree_with_recovery(void)
{
    const char *d = lt_dir("nocommit");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 1024, &e);
    REQUIRE(log);
    REQUIRE(lt_batch(log, 0, 3) == 0);
    REQUIRE(lt_batch(log, 3, 40) == 0); /* over several segments */
    trp_log_close(log);
    CHECK(count_files(d, ".seg") > 2);
    CHECK(unsync_from(d, 3) == 1);
    char p[600];
    snprintf(p, sizeof p, "%s/commit", d);
    CHECK(unlink(p) == 0);
    trp_log *r = lt_reader(d, &e);
    REQUIRE(r);
    mpz_t c;
    mpz_init(c);
    trp_log_commit_next(r, c);
    CHECKF(mpz_cmp_ui(c, 3) == 0, "reader's watermark %lu", mpz_get_ui(c));
    trp_log_close(r);
    log = lt_open(d, false, NULL, 1024, &e);
    REQUIRE(log);
    CHECK(lt_next_u64(log) == 3);
    trp_log_close(log);
    r = lt_reader(d, &e);
    REQUIRE(r);
    trp_log_commit_next(r, c);
    CHECK(mpz_cmp_ui(c, 3) == 0);
    trp_log_close(r);
    mpz_clear(c);
}

/* A sealed segment's index cut short (a crash after the roll, before its
 * index reached the disk) is not damage: trp-verify passes with a note,
 * readers read every entry, and a writer's open makes it whole again. */
static void a_short_sealed_index_passes_with_a_note(void)
{
    const char *d = lt_dir("shortidx");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 1024, &e);
    REQUIRE(log);
    REQUIRE(lt_batch(log, 0, 40) == 0);
    trp_log_close(log);
    char p[600];
    snprintf(p, sizeof p, "%s/00000000000000000000.idx", d);
    struct stat sb;
    REQUIRE(stat(p, &sb) == 0 && sb.st_size >= 16);
    off_t full = sb.st_size;
    CHECK(truncate(p, 8) == 0);
    trp_verify_report r;
    trp_verify_report_init(&r);
    CHECK(trp_verify_dir(d, NULL, NULL, &r, &e) == TRP_OK && r.ok);
    CHECKF(strstr(r.message, "short index (1 of "), "note: %s", r.message);
    trp_log *rd = lt_reader(d, &e);
    REQUIRE(rd);
    for (uint64_t i = 0; i < 40; i++)
        CHECKF(lt_entry_is(rd, i), "seq %llu", (unsigned long long)i);
    trp_log_close(rd);
    log = lt_open(d, false, NULL, 1024, &e);
    REQUIRE(log);
    CHECK(lt_entry_is(log, 1));
    trp_log_close(log);
    CHECK(stat(p, &sb) == 0 && sb.st_size == full);
    CHECK(trp_verify_dir(d, NULL, NULL, &r, &e) == TRP_OK && r.ok && !r.message[0]);
    /* longer than the segment, or wrong: still a failure */
    FILE *f = fopen(p, "ab");
    REQUIRE(f);
    uint64_t junk = 12345;
    CHECK(fwrite(&junk, 8, 1, f) == 1);
    fclose(f);
    CHECK(trp_verify_dir(d, NULL, NULL, &r, &e) == TRP_OK && !r.ok && !strcmp(r.problem, "index"));
    trp_verify_report_clear(&r);
}

/* An intact segment header of another format version is not damage but a
 * format this trp does not read: trp-verify's kind is TRP_EFORMAT (65). */
static void a_newer_segment_version_is_a_format_error(void)
{
    const char *d = lt_dir("segver");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 0, &e);
    REQUIRE(log);
    REQUIRE(lt_batch(log, 0, 3) == 0);
    trp_log_close(log);
    char p[600];
    snprintf(p, sizeof p, "%s/00000000000000000000.seg", d);
    int fd = open(p, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t h[SEG_HDR_SIZE];
    REQUIRE(pread(fd, h, sizeof h, 0) == (ssize_t)sizeof h);
    put_le32(h + SEG_OFF_VERSION, 2);
    put_le32(h + SEG_OFF_CRC, trp_crc32c(0, h, SEG_OFF_CRC));
    REQUIRE(pwrite(fd, h, sizeof h, 0) == (ssize_t)sizeof h);
    close(fd);
    trp_verify_report r;
    trp_verify_report_init(&r);
    CHECK(trp_verify_dir(d, NULL, NULL, &r, &e) == TRP_OK && !r.ok);
    CHECKF(r.kind == TRP_EFORMAT && !strcmp(r.problem, "segment-version") &&
               strstr(r.message, "unsupported format version 2"),
           "kind %d problem %s: %s", r.kind, r.problem, r.message);
    trp_verify_report_clear(&r);
    CHECK(lt_reader(d, &e) == NULL && e.code == TRP_EFORMAT);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* A segment missing just before the newest: the writer refuses the log
 * and names the newest segment's anchor and the segment before it. */
static void a_missing_segment_is_named(void)
{
    const char *d = lt_dir("missingseg");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 1024, &e);
    REQUIRE(log);
    for (int b = 0; b < 8; b++)
        REQUIRE(lt_batch(log, b * 10, b * 10 + 10) == 0);
    trp_log_close(log);
    /* the names of the last two segments */
    char names[64][64];
    int n = 0;
    DIR *dir = opendir(d);
    REQUIRE(dir);
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && n < 64)
        if (strstr(de->d_name, ".seg"))
            snprintf(names[n++], sizeof names[0], "%.60s", de->d_name);
    closedir(dir);
    REQUIRE(n >= 3);
    qsort(names, (size_t)n, sizeof names[0], cmp_names);
    char p[800];
    snprintf(p, sizeof p, "%s/%s", d, names[n - 2]);
    CHECK(unlink(p) == 0);
    snprintf(p, sizeof p, "%s/%.20s.idx", d, names[n - 2]);
    unlink(p);
    log = lt_open(d, false, NULL, 1024, &e);
    CHECK(log == NULL && e.code == TRP_ECORRUPT);
    CHECKF(strstr(e.msg, names[n - 1]) && strstr(e.msg, "anchor is not the hash of the entry before") &&
               strstr(e.msg, names[n - 3]),
           "message: %s", e.msg);
    trp_log_close(log);
}

static void one_writer_and_its_pid(void)
{
    const char *d = lt_dir("lock");
    trp_err e;
    trp_log *w = lt_open(d, true, NULL, 0, &e);
    REQUIRE(w);
    trp_log *w2 = NULL;
    trp_log_options o = {0};
    CHECK(trp_log_open(&w2, d, &o, &e) == TRP_ELOCKED);
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    CHECKF(strstr(e.msg, pid) != NULL, "message: %s", e.msg);
    trp_log *r = lt_reader(d, &e); /* readers take no lock */
    CHECK(r != NULL);
    trp_log_close(r);
    trp_log_close(w);
    w = lt_open(d, false, NULL, 0, &e);
    CHECK(w != NULL);
    trp_log_close(w);
}

static void bad_directories(void)
{
    trp_err e;
    trp_log *log = NULL;
    trp_log_options o = {0};
    const char *missing = lt_dir("missing");
    CHECK(trp_log_open(&log, missing, &o, &e) == TRP_ENOENT);
    CHECK(strstr(e.msg, "missing") != NULL);
    /* a directory with other files is not a log, and is never made one */
    const char *foreign = lt_dir("foreign");
    mkdir(foreign, 0755);
    char p[600];
    snprintf(p, sizeof p, "%s/notes.txt", foreign);
    lt_spit(p, (const uint8_t *)"hi\n", 3);
    CHECK(trp_log_open(&log, foreign, &o, &e) == TRP_EFORMAT);
    CHECK(strstr(e.msg, "not a trp log") != NULL);
    o.create = true;
    CHECK(trp_log_open(&log, foreign, &o, &e) == TRP_EFORMAT);
    o.create = false;
    /* a newer format version */
    const char *newer = lt_dir("newer");
    log = lt_open(newer, true, NULL, 0, &e);
    REQUIRE(log);
    trp_log_close(log);
    snprintf(p, sizeof p, "%s/trp-log", newer);
    lt_spit(p, (const uint8_t *)"trp-log 2\n", 10);
    CHECK(trp_log_open(&log, newer, &o, &e) == TRP_EFORMAT);
    CHECKF(strstr(e.msg, "unsupported format version 2 (this trp reads 1)") != NULL, "%s", e.msg);
    trp_verify_report r;
    trp_verify_report_init(&r);
    CHECK(trp_verify_dir(newer, NULL, NULL, &r, &e) == TRP_EFORMAT);
    CHECK(trp_verify_dir(missing, NULL, NULL, &r, &e) == TRP_ENOENT);
    CHECK(trp_verify_dir(foreign, NULL, NULL, &r, &e) == TRP_EFORMAT);
    trp_verify_report_clear(&r);
    /* an empty directory: no log yet (ENOENT) unless created */
    const char *empty = lt_dir("empty");
    mkdir(empty, 0755);
    CHECK(trp_log_open(&log, empty, &o, &e) == TRP_ENOENT);
    o.read_only = true;
    CHECK(trp_log_open(&log, empty, &o, &e) == TRP_ENOENT);
    CHECK(trp_log_open(&log, missing, &o, &e) == TRP_ENOENT);
}

static void bad_entries(void)
{
    const char *d = lt_dir("entries");
    trp_err e;
    trp_log_options o = {.create = true, .max_entry = 1000};
    trp_log *log;
    REQUIRE(trp_log_open(&log, d, &o, &e) == TRP_OK);
    CHECK(trp_log_max_entry(log) == 1000);
    static uint8_t big[1001];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    CHECK(trp_log_append(log, 1, TRP_ENTRY_DATA, big, 1001, NULL, &e) == TRP_ETOOBIG);
    CHECK(trp_log_append(log, 1, 9, "x", 1, NULL, &e) == TRP_EINVAL);
    CHECK(trp_log_append(log, 1, TRP_ENTRY_DATA, big, 1000, NULL, &e) == TRP_OK);
    CHECK(trp_log_append(log, 2, TRP_ENTRY_NOOP, "", 0, NULL, &e) == TRP_OK);
    CHECK(trp_log_append(log, 2, TRP_ENTRY_CONFIG, "\0\xff\n", 3, NULL, &e) == TRP_OK);
    uint8_t h[32];
    CHECK(trp_log_append(log, 3, TRP_ENTRY_CHECKPOINT, "cp", 2, h, &e) == TRP_OK);
    CHECK(trp_log_sync(log, &e) == TRP_OK);
    CHECK(memcmp(h, trp_log_head_hash(log), 32) == 0);
    CHECK(trp_log_head_term(log) == 3);
    CHECK(trp_log_check_head(log, h, &e) == TRP_OK);
    h[0] ^= 1;
    CHECK(trp_log_check_head(log, h, &e) == TRP_ECONFLICT);
    trp_log_close(log);
    log = lt_reader(d, &e);
    REQUIRE(log);
    trp_entry en;
    trp_entry_init(&en);
    mpz_t s;
    mpz_init_set_ui(s, 0);
    CHECK(trp_log_read(log, s, &en, &e) == TRP_OK && en.len == 1000 &&
          !memcmp(en.payload, big, 1000) && en.type == TRP_ENTRY_DATA && en.term == 1);
    mpz_set_ui(s, 1);
    CHECK(trp_log_read(log, s, &en, &e) == TRP_OK && en.len == 0 && en.type == TRP_ENTRY_NOOP);
    mpz_set_ui(s, 2);
    CHECK(trp_log_read(log, s, &en, &e) == TRP_OK && en.len == 3 &&
          !memcmp(en.payload, "\0\xff\n", 3));
    mpz_set_ui(s, 3);
    CHECK(trp_log_read(log, s, &en, &e) == TRP_OK && en.type == TRP_ENTRY_CHECKPOINT);
    CHECK(trp_log_append(log, 1, TRP_ENTRY_DATA, "x", 1, NULL, &e) != TRP_OK); /* reader */
    mpz_clear(s);
    trp_entry_clear(&en);
    trp_log_close(log);
}

static void big_seqs(const char *name, const char *start, int n)
{
    const char *d = lt_dir(name);
    trp_err e;
    trp_log *log = lt_open(d, true, start, 700, &e);
    REQUIRE(log);
    for (int b = 0; b < n; b += 4)
        REQUIRE(lt_batch(log, b, b + 4) == 0);
    mpz_t s, st, nx;
    mpz_inits(s, nx, NULL);
    mpz_init_set_str(st, start, 10);
    trp_log_first(log, s);
    CHECK(mpz_cmp(s, st) == 0);
    trp_log_next(log, nx);
    mpz_sub(s, nx, st);
    CHECK(mpz_cmp_ui(s, (unsigned long)n) == 0);
    trp_log_close(log);
    log = lt_reader(d, &e);
    REQUIRE(log);
    trp_iter *it;
    REQUIRE(trp_iter_open(&it, log, st, &e) == TRP_OK);
    trp_entry en;
    trp_entry_init(&en);
    int i = 0;
    mpz_set(s, st);
    while (trp_iter_next(it, &en, &e) == 1) {
        char want[16];
        int l = snprintf(want, sizeof want, "e%d", i);
        CHECK(mpz_cmp(en.seq, s) == 0 && en.len == (size_t)l &&
              !memcmp(en.payload, want, (size_t)l));
        trp_entry rd;
        trp_entry_init(&rd);
        CHECK(trp_log_read(log, s, &rd, &e) == TRP_OK && !memcmp(rd.hash, en.hash, 32));
        uint8_t h[32];
        trp_entry_hash(h, s, 1, TRP_ENTRY_DATA, en.prev, en.payload, en.len);
        CHECK(memcmp(h, en.hash, 32) == 0);
        trp_entry_clear(&rd);
        mpz_add_ui(s, s, 1);
        i++;
    }
    CHECK(i == n);
    trp_iter_close(it);
    trp_entry_clear(&en);
    trp_log_close(log);
    bool ok;
    verify_ok(d, &ok);
    CHECK(ok);
    CHECK(count_files(d, ".seg") > 3);
    mpz_clears(s, st, nx, NULL);
}

static void seqs_cross_2_64(void)
{
    big_seqs("two64", "18446744073709551610", 40);
}
static void seqs_at_10_30(void)
{
    big_seqs("ten30", "1000000000000000000000000000000", 24);
}

/* In a child: sync works, then a file-size limit (EFBIG, as a full disk)
 * fails a batch, which leaves the log exactly as at the last sync. */
static int full_disk_child(const char *d)
{
    signal(SIGXFSZ, SIG_IGN);
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 1u << 20, &e);
    if (!log || lt_batch(log, 0, 10))
        return 10;
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    struct rlimit tiny = {.rlim_cur = 2000, .rlim_max = rl.rlim_max};
    setrlimit(RLIMIT_FSIZE, &tiny);
    static char big[200];
    memset(big, 'z', sizeof big);
    int rc = 0;
    for (int i = 0; i < 40 && rc == 0; i++)
        rc = trp_log_append(log, 1, TRP_ENTRY_DATA, big, sizeof big, NULL, &e);
    if (rc == 0)
        rc = trp_log_sync(log, &e);
    if (rc == 0)
        return 11;
    if (lt_next_u64(log) != 10)
        return 12;
    /* a batch big enough to be written out while it is appended (the
     * buffer is flushed every MiB): the failure comes from an append */
    rc = 0;
    for (int i = 0; i < 8000 && rc == 0; i++)
        rc = trp_log_append(log, 1, TRP_ENTRY_DATA, big, sizeof big, NULL, &e);
    if (rc == 0)
        return 16;
    if (lt_next_u64(log) != 10 || trp_log_sync(log, &e) != TRP_OK || lt_next_u64(log) != 10)
        return 17;
    setrlimit(RLIMIT_FSIZE, &rl);
    if (lt_batch(log, 10, 15)) /* the handle still works */
        return 13;
    trp_log_close(log);
    return 0;
}

static void full_disk_loses_nothing(void)
{
    const char *d = lt_dir("full");
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
        _exit(full_disk_child(d));
    int st;
    waitpid(pid, &st, 0);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", WEXITSTATUS(st));
    trp_err e;
    trp_log *log = lt_open(d, false, NULL, 1u << 20, &e);
    REQUIRE(log);
    CHECK(lt_next_u64(log) == 15);
    CHECK(chain_ok(log, 0, 15));
    trp_log_close(log);
}

static void iterating_without_hashes(void)
{
    const char *d = lt_dir("nohash");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 0, &e);
    REQUIRE(log);
    REQUIRE(lt_batch(log, 0, 3) == 0);
    trp_iter *it;
    mpz_t s;
    mpz_init(s);
    REQUIRE(trp_iter_open(&it, log, s, &e) == TRP_OK);
    trp_iter_set_hash(it, false);
    trp_entry en;
    trp_entry_init(&en);
    uint8_t zero[32] = {0};
    CHECK(trp_iter_next(it, &en, &e) == 1 && memcmp(en.hash, zero, 32) == 0 && en.len == 2);
    trp_iter_set_hash(it, true);
    CHECK(trp_iter_next(it, &en, &e) == 1 && memcmp(en.hash, zero, 32) != 0);
    CHECK(trp_iter_next(it, &en, &e) == 1 && memcmp(en.hash, trp_log_head_hash(log), 32) == 0);
    CHECK(trp_iter_next(it, &en, &e) == 0);
    trp_entry_clear(&en);
    trp_iter_close(it);
    mpz_clear(s);
    trp_log_close(log);
}

static void a_reader_follows_rolls_and_removals(void)
{
    const char *d = lt_dir("follow");
    trp_err e;
    trp_log *w = lt_open(d, true, NULL, 600, &e);
    REQUIRE(w);
    REQUIRE(lt_batch(w, 0, 1) == 0);
    trp_log *r = lt_reader(d, &e);
    REQUIRE(r);
    int next = 1;
    for (int round = 0; round < 30; round++) {
        int n = 1 + round % 4;
        REQUIRE(lt_batch(w, next, next + n) == 0);
        next += n;
        if (round % 7 == 6) { /* remove a few and append them again */
            mpz_t f;
            mpz_init_set_ui(f, (unsigned long)(next - 3));
            REQUIRE(trp_log_truncate(w, f, &e) == TRP_OK);
            mpz_clear(f);
            REQUIRE(lt_batch(w, next - 3, next) == 0);
        }
        REQUIRE(trp_log_refresh(r, &e) == TRP_OK);
        CHECKF(lt_next_u64(r) == (uint64_t)next, "round %d: %llu", round,
               (unsigned long long)lt_next_u64(r));
        CHECK(memcmp(trp_log_head_hash(r), trp_log_head_hash(w), 32) == 0);
        for (int i = next - 6 > 0 ? next - 6 : 0; i < next; i++)
            CHECKF(lt_entry_is(r, (uint64_t)i), "round %d seq %d", round, i);
    }
    CHECK(chain_ok(r, 0, (uint64_t)next));
    trp_log_close(r);
    trp_log_close(w);
}

#if defined(__x86_64__)
/* From now on, fdatasync(2) fails with EIO in this process (seccomp). */
static int fail_fdatasync(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fdatasync, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EIO),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static int fsync_failure_child(const char *d)
{
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 0, &e);
    if (!log || lt_batch(log, 0, 5))
        return 10;
    if (fail_fdatasync() < 0)
        return 0; /* no seccomp here: nothing to test */
    if (trp_log_append(log, 1, TRP_ENTRY_DATA, "x", 1, NULL, &e) != TRP_OK)
        return 11;
    if (trp_log_sync(log, &e) != TRP_EIO)
        return 12;
    /* fatal: every later call fails, even ones that would not fsync */
    if (trp_log_append(log, 1, TRP_ENTRY_DATA, "y", 1, NULL, &e) == TRP_OK)
        return 13;
    if (trp_log_sync(log, &e) == TRP_OK || !strstr(e.msg, "unusable"))
        return 14;
    mpz_t s;
    mpz_init_set_ui(s, 2);
    int rc = trp_log_truncate(log, s, &e);
    mpz_clear(s);
    if (rc == TRP_OK)
        return 15;
    trp_log_close(log);
    return 0;
}
#endif

static void fsync_failure_is_fatal(void)
{
#if defined(__x86_64__)
    const char *d = lt_dir("fsyncfail");
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
        _exit(fsync_failure_child(d));
    int st;
    waitpid(pid, &st, 0);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", WEXITSTATUS(st));
    /* reopened: the synced batch is there */
    trp_err e;
    trp_log *log = lt_open(d, false, NULL, 0, &e);
    REQUIRE(log);
    /* the failed batch may or may not have reached the disk; never part */
    uint64_t n = lt_next_u64(log);
    CHECK(n == 5 || n == 6);
    for (uint64_t i = 0; i < 5; i++)
        CHECK(lt_entry_is(log, i));
    trp_log_close(log);
#endif
}

static void entries_bigger_than_a_segment(void)
{
    const char *d = lt_dir("bigentries");
    trp_err e;
    trp_log_options o = {.create = true, .segment_bytes = 4096};
    trp_log *log;
    REQUIRE(trp_log_open(&log, d, &o, &e) == TRP_OK);
    static uint8_t big[TRP_MAX_ENTRY_DEFAULT];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 31 + 7);
    size_t lens[] = {TRP_MAX_ENTRY_DEFAULT, 0, 5000, 1, TRP_MAX_ENTRY_DEFAULT - 3};
    for (int i = 0; i < 5; i++)
        REQUIRE(trp_log_append(log, 1, TRP_ENTRY_DATA, big, lens[i], NULL, &e) == TRP_OK);
    REQUIRE(trp_log_sync(log, &e) == TRP_OK);
    CHECK(trp_log_append(log, 1, TRP_ENTRY_DATA, big, TRP_MAX_ENTRY_DEFAULT + 1, NULL, &e) ==
          TRP_ETOOBIG);
    trp_log_close(log);
    CHECK(count_files(d, ".seg") >= 4); /* one record a segment, mostly */
    log = lt_reader(d, &e);
    REQUIRE(log);
    trp_entry en;
    trp_entry_init(&en);
    mpz_t s;
    mpz_init(s);
    for (int i = 0; i < 5; i++) {
        mpz_set_ui(s, (unsigned long)i);
        CHECKF(trp_log_read(log, s, &en, &e) == TRP_OK && en.len == lens[i] &&
                   (lens[i] == 0 || memcmp(en.payload, big, lens[i]) == 0),
               "seq %d: %s", i, e.msg);
    }
    mpz_clear(s);
    trp_entry_clear(&en);
    trp_log_close(log);
    bool ok;
    verify_ok(d, &ok);
    CHECK(ok);
}

/* The newest segment file of dir, read whole (len NULL: only its name
 * to *name, and a non-NULL return); NULL if none. */
static uint8_t *newest_segment(const char *dir, size_t *len, char *name, size_t name_size)
{
    DIR *dd = opendir(dir);
    char best[300] = "";
    struct dirent *de;
    while (dd && (de = readdir(dd)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".seg") && strcmp(de->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", de->d_name);
    }
    if (dd)
        closedir(dd);
    if (!best[0])
        return NULL;
    if (name)
        snprintf(name, name_size, "%s", best);
    if (!len)
        return (uint8_t *)dir;
    char p[900];
    snprintf(p, sizeof p, "%.500s/%s", dir, best);
    return lt_slurp(p, len);
}

/* After appends the newest segment is longer than its records, and the
 * rest is zeros; a reopen after a close, or of a copy taken while the
 * writer still had it open (a crash), has every synced entry. */
static void the_newest_segment_keeps_zeroed_space(void)
{
    const char *d = lt_dir("zeros");
    char crash[300], lock[400];
    snprintf(crash, sizeof crash, "%.250s-crash", d);
    snprintf(lock, sizeof lock, "%s/lock", crash);
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 0, &e);
    REQUIRE(log);
    size_t len = 0;
    uint8_t *b = newest_segment(d, &len, NULL, 0);
    /* created already extended */
    CHECKF(b && len == 1u << 20 && lt_seg_data_end(b, len) == 128 && lt_all_zero(b, 128, len),
           "len %zu", len);
    free(b);
    int next = 0;
    for (int round = 0; round < 40; round++) {
        REQUIRE(lt_batch(log, next, next + 200) == 0); /* ~15 KB a batch */
        next += 200;
        b = newest_segment(d, &len, NULL, 0);
        size_t end = b ? lt_seg_data_end(b, len) : 0;
        CHECKF(b && end > 128 && end < len && len % (1u << 20) == 0 && lt_all_zero(b, end, len),
               "round %d: records end at %zu, file %zu", round, end, len);
        free(b);
    }
    /* 8000 entries of ~72 bytes: the file grew past one chunk */
    REQUIRE(lt_copydir(d, crash) == 0); /* a crash: the writer never closed */
    REQUIRE(lt_batch(log, next, next + 5) == 0);
    trp_log_close(log);
    log = lt_open(d, false, NULL, 0, &e);
    CHECKF(log && lt_next_u64(log) == (uint64_t)next + 5, "%s", log ? "" : e.msg);
    CHECK(log && chain_ok(log, 0, (uint64_t)next + 5));
    trp_log_close(log);
    unlink(lock);
    log = lt_open(crash, false, NULL, 0, &e);
    CHECKF(log && lt_next_u64(log) == (uint64_t)next, "%s", log ? "" : e.msg);
    CHECK(log && chain_ok(log, 0, (uint64_t)next));
    trp_log_close(log);
    bool ok;
    verify_ok(crash, &ok);
    CHECK(ok);
    lt_rmrf(crash);
}

/* A big batch (a piped stream) is not followed by zeros: the file ends at
 * its records; the next small batch extends it to a chunk boundary again.
 * Both sync paths (trp_log_sync, and write + batch fsync on a thread). */
static void a_big_batch_leaves_no_zeroed_space(void)
{
    const char *d = lt_dir("bigbatch");
    trp_err e;
    trp_log *log = lt_open(d, true, NULL, 0, &e);
    REQUIRE(log);
    size_t len = 0, end = 0;
    /* 20000 records of 72 bytes: 1.4 MB, past the first 1 MiB chunk */
    REQUIRE(lt_batch(log, 0, 20000) == 0);
    uint8_t *b = newest_segment(d, &len, NULL, 0);
    end = b ? lt_seg_data_end(b, len) : 0;
    CHECKF(b && end == 128 + 20000 * 72 && len == end, "records end at %zu, file %zu", end, len);
    free(b);
    REQUIRE(lt_batch(log, 20000, 20005) == 0);
    b = newest_segment(d, &len, NULL, 0);
    end = b ? lt_seg_data_end(b, len) : 0;
    CHECKF(b && end == 128 + 20005 * 72 && len == 2u << 20 && lt_all_zero(b, end, len),
           "small batch: records end at %zu, file %zu", end, len);
    free(b);
    /* the split path: 1 MiB more in one batch, then a small one */
    for (int i = 20005; i < 40005; i++) {
        char p[32];
        int n = snprintf(p, sizeof p, "e%d", i);
        REQUIRE(trp_log_append(log, 1, TRP_ENTRY_DATA, p, (size_t)n, NULL, &e) == 0);
    }
    trp_log_batch batch;
    trp_log_batch_init(&batch);
    REQUIRE(trp_log_write(log, &batch, &e) == 0 && trp_log_batch_fsync(&batch, &e) == 0 &&
            trp_log_mark_durable(log, &batch, &e) == 0);
    b = newest_segment(d, &len, NULL, 0);
    end = b ? lt_seg_data_end(b, len) : 0;
    CHECKF(b && end == 128 + 40005 * 72 && len == end, "split: records end at %zu, file %zu", end,
           len);
    free(b);
    REQUIRE(lt_batch(log, 40005, 40006) == 0);
    b = newest_segment(d, &len, NULL, 0);
    end = b ? lt_seg_data_end(b, len) : 0;
    CHECKF(b && len == 3u << 20 && lt_all_zero(b, end, len), "records end at %zu, file %zu", end,
           len);
    free(b);
    trp_log_batch_clear(&batch);
    trp_log_close(log);
    log = lt_open(d, false, NULL, 0, &e);
    CHECKF(log && lt_next_u64(log) == 40006, "%s", log ? "" : e.msg);
    CHECK(log && chain_ok(log, 0, 40006));
    trp_log_close(log);
}

/* Entry i of the mapping test: "e<i>" padded with 'p' to a size between
 * 1000 and 7000 bytes, so a sealed segment's zeroed tail often spans
 * whole pages (a shrink under a mapping only faults on whole pages). */
static size_t map_entry(uint64_t i, char *buf)
{
    size_t n = 1000 + (size_t)(i * 2654435761u % 6000);
    memset(buf, 'p', n);
    int h = snprintf(buf, 32, "e%llu", (unsigned long long)i);
    buf[h] = 'p';
    return n;
}

static bool map_entry_is(trp_log *log, uint64_t i)
{
    static char want[8000];
    size_t n = map_entry(i, want);
    trp_entry en;
    trp_entry_init(&en);
    mpz_t s;
    mpz_init_set_ui(s, i);
    trp_err e;
    bool ok =
        trp_log_read(log, s, &en, &e) == TRP_OK && en.len == n && memcmp(en.payload, want, n) == 0;
    mpz_clear(s);
    trp_entry_clear(&en);
    return ok;
}

/* A reader that maps the newest segment (whole, zeroed space included)
 * while a writer appends and rolls is never cut short under its mapping
 * (SIGBUS), and reads every entry. Both run as children. */
static int mapping_reader_child(const char *d, int done_fd, int ready_fd)
{
    trp_err e;
    trp_log *r = lt_reader(d, &e);
    if (!r)
        return 20;
    if (write(ready_fd, "r", 1) != 1) /* the writer starts now */
        return 26;
    close(ready_fd);
    fcntl(done_fd, F_SETFL, O_NONBLOCK); /* EOF once the writer exits */
    uint64_t seen = 0;
    unsigned long sum = 0;
    long loops = 0;
    for (long loop = 0; loop < 1000000; loop++, loops++) {
        char c;
        bool done = read(done_fd, &c, 1) == 0; /* the writer exited */
        char name[300], p[900];
        if (newest_segment(d, NULL, name, sizeof name) == NULL)
            return 21;
        snprintf(p, sizeof p, "%.500s/%s", d, name);
        int fd = open(p, O_RDONLY);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0) {
            volatile uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
            if (m != MAP_FAILED) {
                for (int pass = 0; pass < 4; pass++) { /* touch every page, a few times */
                    for (off_t o = 0; o < st.st_size; o += 4096)
                        sum += m[o];
                    sum += m[st.st_size - 1];
                    sched_yield();
                }
                munmap((void *)m, (size_t)st.st_size);
            }
        }
        if (fd >= 0)
            close(fd);
        if (trp_log_refresh(r, &e) != TRP_OK)
            return 22;
        uint64_t n = lt_next_u64(r);
        if (n < seen)
            return 23;
        for (uint64_t i = seen; i < n; i++)
            if (!map_entry_is(r, i))
                return 24;
        seen = n;
        if (done && seen == 6000)
            break;
    }
    trp_log_close(r);
    (void)sum;
    if (loops < 10) /* the test did not overlap reading and writing */
        return 27;
    return seen == 6000 ? 0 : 25;
}

static void a_mapping_reader_survives_appends_and_rolls(void)
{
    const char *d = lt_dir("mapping");
    int pfd[2], rfd[2];
    REQUIRE(pipe(pfd) == 0 && pipe(rfd) == 0);
    trp_err e;
    trp_log *w = lt_open(d, true, NULL, 64u << 10, &e); /* rolls every ~16 entries */
    static char pay[8000];
    REQUIRE(w && trp_log_append(w, 1, TRP_ENTRY_DATA, pay, map_entry(0, pay), NULL, &e) == 0 &&
            trp_log_sync(w, &e) == 0);
    fflush(stdout);
    pid_t wr = fork();
    REQUIRE(wr >= 0);
    if (wr == 0) {
        close(pfd[0]);
        close(rfd[1]);
        char c;
        if (read(rfd[0], &c, 1) != 1) /* wait for the reader */
            _exit(11);
        int rc = 0;
        for (uint64_t i = 1; i < 6000 && rc == 0; i++) {
            rc = trp_log_append(w, 1, TRP_ENTRY_DATA, pay, map_entry(i, pay), NULL, &e);
            if (rc == 0 && (i % 3 == 0 || i == 5999)) {
                rc = trp_log_sync(w, &e);
                usleep(50); /* let the reader run between batches */
            }
        }
        trp_log_close(w);
        _exit(rc ? 10 : 0);
    }
    trp_log_close(w); /* the parent's copy: the child writes */
    close(pfd[1]);
    close(rfd[0]);
    pid_t rd = fork();
    REQUIRE(rd >= 0);
    if (rd == 0)
        _exit(mapping_reader_child(d, pfd[0], rfd[1]));
    close(pfd[0]);
    close(rfd[1]);
    int sw, sr;
    waitpid(wr, &sw, 0);
    waitpid(rd, &sr, 0);
    CHECKF(WIFEXITED(sw) && WEXITSTATUS(sw) == 0, "writer status %d", sw);
    CHECKF(WIFEXITED(sr) && WEXITSTATUS(sr) == 0, "reader %s %d",
           WIFSIGNALED(sr) ? "killed by signal" : "exit",
           WIFSIGNALED(sr) ? WTERMSIG(sr) : WEXITSTATUS(sr));
    CHECK(count_files(d, ".seg") > 100);
}

int main(void)
{
    RUN(append_read_iterate_across_segments);
    RUN(unsynced_entries_are_readable_by_the_writer_only);
    RUN(manual_commit_watermark);
    RUN(truncate_removes_durably);
    RUN(truncate_at_every_point_then_reopen);
    RUN(trim_drops_whole_segments_and_keeps_the_anchor);
    RUN(append_hashed_takes_the_callers_hash);
    RUN(meta_is_replaced_atomically);
    RUN(no_commit_file_readers_agree_with_recovery);
    RUN(a_short_sealed_index_passes_with_a_note);
    RUN(a_newer_segment_version_is_a_format_error);
    RUN(a_missing_segment_is_named);
    RUN(one_writer_and_its_pid);
    RUN(bad_directories);
    RUN(bad_entries);
    RUN(seqs_cross_2_64);
    RUN(seqs_at_10_30);
    RUN(full_disk_loses_nothing);
    RUN(iterating_without_hashes);
    RUN(a_reader_follows_rolls_and_removals);
    RUN(fsync_failure_is_fatal);
    RUN(entries_bigger_than_a_segment);
    RUN(the_newest_segment_keeps_zeroed_space);
    RUN(a_big_batch_leaves_no_zeroed_space);
    RUN(a_mapping_reader_survives_appends_and_rolls);
    lt_cleanup();
    return check_done();
}
