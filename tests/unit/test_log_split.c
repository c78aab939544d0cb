/*
 * test_log_split.c: the store's split sync (trp_log_write on the handle's
 * thread, trp_log_batch_fsync on a disk thread, trp_log_mark_durable back on
 * the handle's thread), which trp-node uses to keep fsync off its network
 * thread: durable_next moves only when a batch is marked, appends made
 * during the flight are not counted durable, batches survive a reopen
 * intact (across segment rolls too), and a close before the mark loses at
 * most what was never marked.
 */
#include "../check.h"
#include "logtest.h"

#include <pthread.h>

static int add(trp_log *log, int from, int to)
{
    trp_err e;
    for (int i = from; i < to; i++) {
        char p[64];
        int n = snprintf(p, sizeof p, "entry-%d-%s", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        if (trp_log_append(log, 1, TRP_ENTRY_DATA, p, (size_t)n, NULL, &e))
            return -1;
    }
    return 0;
}

static void *fsync_thread(void *arg)
{
    trp_err e;
    return (void *)(intptr_t)trp_log_batch_fsync(arg, &e);
}

static void durable_moves_on_mark(void)
{
    trp_err e;
    const char *dir = lt_dir("split1");
    trp_log *log = lt_open(dir, true, NULL, 0, &e);
    REQUIRE(log);
    trp_log_set_manual_commit(log, true);
    trp_log_batch b;
    trp_log_batch_init(&b);
    CHECK(add(log, 0, 10) == 0);
    CHECK(trp_log_write(log, &b, &e) == TRP_OK && !b.empty);
    CHECK(mpz_cmp_ui(b.next, 10) == 0);
    CHECK(add(log, 10, 15) == 0); /* appended while the batch flies */
    pthread_t t;
    pthread_create(&t, NULL, fsync_thread, &b);
    void *rc;
    pthread_join(t, &rc);
    CHECK(rc == NULL);
    CHECK(lt_next_u64(log) == 15);
    mpz_t d;
    mpz_init(d);
    trp_log_durable_next(log, d);
    CHECK(mpz_cmp_ui(d, 0) == 0); /* not yet marked */
    CHECK(trp_log_mark_durable(log, &b, &e) == TRP_OK);
    trp_log_durable_next(log, d);
    CHECK(mpz_cmp_ui(d, 10) == 0); /* the five appended during the flight are not */
    CHECK(trp_log_set_commit(log, d, &e) == TRP_OK);
    /* nothing new: an empty batch */
    CHECK(trp_log_write(log, &b, &e) == TRP_OK && !b.empty);
    CHECK(trp_log_batch_fsync(&b, &e) == TRP_OK && trp_log_mark_durable(log, &b, &e) == TRP_OK);
    CHECK(trp_log_write(log, &b, &e) == TRP_OK && b.empty);
    trp_log_durable_next(log, d);
    CHECK(mpz_cmp_ui(d, 15) == 0);
    trp_log_close(log);
    /* everything marked is there after a reopen and verifies */
    log = lt_open(dir, false, NULL, 0, &e);
    REQUIRE(log);
    CHECK(lt_next_u64(log) == 15);
    trp_log_close(log);
    trp_verify_report r;
    trp_verify_report_init(&r);
    CHECK(trp_verify_dir(dir, NULL, NULL, &r, &e) == TRP_OK && r.ok);
    trp_verify_report_clear(&r);
    trp_log_batch_clear(&b);
    mpz_clear(d);
}

static void batches_across_rolls(void)
{
    trp_err e;
    const char *dir = lt_dir("split2");
    trp_log *log = lt_open(dir, true, NULL, 4096, &e); /* tiny segments: many rolls */
    REQUIRE(log);
    trp_log_batch b;
    trp_log_batch_init(&b);
    int n = 0;
    for (int round = 0; round < 20; round++) {
        CHECK(add(log, n, n + 37) == 0);
        n += 37;
        CHECK(trp_log_write(log, &b, &e) == TRP_OK);
        CHECK(add(log, n, n + 11) == 0); /* rolls during the flight */
        n += 11;
        CHECK(trp_log_batch_fsync(&b, &e) == TRP_OK);
        CHECK(trp_log_mark_durable(log, &b, &e) == TRP_OK);
    }
    CHECK(trp_log_write(log, &b, &e) == TRP_OK && trp_log_batch_fsync(&b, &e) == TRP_OK &&
          trp_log_mark_durable(log, &b, &e) == TRP_OK);
    trp_log_close(log);
    trp_verify_report r;
    trp_verify_report_init(&r);
    CHECK(trp_verify_dir(dir, NULL, NULL, &r, &e) == TRP_OK && r.ok);
    CHECKF(r.entries == (uint64_t)n, "%llu entries, want %d", (unsigned long long)r.entries, n);
    trp_verify_report_clear(&r);
    trp_log_batch_clear(&b);
}

static void close_before_mark(void)
{
    trp_err e;
    const char *dir = lt_dir("split3");
    trp_log *log = lt_open(dir, true, NULL, 0, &e);
    REQUIRE(log);
    trp_log_batch b;
    trp_log_batch_init(&b);
    CHECK(add(log, 0, 5) == 0);
    CHECK(trp_log_write(log, &b, &e) == TRP_OK && trp_log_batch_fsync(&b, &e) == TRP_OK &&
          trp_log_mark_durable(log, &b, &e) == TRP_OK);
    CHECK(add(log, 5, 9) == 0);
    CHECK(trp_log_write(log, &b, &e) == TRP_OK); /* written, never synced or marked */
    trp_log_close(log);
    log = lt_open(dir, false, NULL, 0, &e);
    REQUIRE(log);
    uint64_t next = lt_next_u64(log);
    CHECKF(next == 5 || next == 9, "next %llu", (unsigned long long)next); /* whole or nothing */
    trp_log_close(log);
    trp_log_batch_clear(&b);
}

int main(void)
{
    RUN(durable_moves_on_mark);
    RUN(batches_across_rolls);
    RUN(close_before_mark);
    lt_cleanup();
    return check_done();
}
