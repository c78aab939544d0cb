/*
 * test_tnode_trplog.c: trp_node over the real log store (tnode_trplog.c).
 * The original's example ({"a":1}, {"b":2}, {"c":3} through nodes 1, 2, 3
 * get seqs 0, 1, 2, same head everywhere) on three log directories; then
 * every node is stopped, its log closed and reopened, and the node started
 * again: term, vote, entries and commit watermark must have survived, the
 * cluster must go on appending, and trp_verify_dir / trp_verify_agree must
 * accept the three directories.
 *
 * The one idea: the transport is direct calls (as in test_tnode_example),
 * so the whole run is deterministic; only the storage differs.
 */
#include "../check.h"
#include "logtest.h"
#include "trp.h"
#include "trp_node.h"

#include <inttypes.h>
#include <stdint.h>

#define N 3

static trp_node *nodes[N];
static int seqs[4] = {-1, -1, -1, -1};
static int statuses[4] = {-1, -1, -1, -1};

static void send_cb(void *user, uint64_t to, const uint8_t *bytes, size_t len)
{
    trp_node_receive(nodes[to - 1], (uint64_t)(uintptr_t)user, bytes, len);
}

static void appended(void *arg, int status, const mpz_t seq, const uint8_t *hash)
{
    int i = (int)(intptr_t)arg;
    (void)hash;
    statuses[i] = status;
    if (status == TRP_OK)
        seqs[i] = (int)mpz_get_si(seq);
}

static uint64_t now_ms;

static void tick_all(int rounds)
{
    for (int k = 0; k < rounds; k++)
        for (int i = 0; i < N; i++)
            trp_node_tick(nodes[i], now_ms += 5);
}

static bool all_know_leader(void)
{
    for (int i = 0; i < N; i++)
        if (!trp_node_leader(nodes[i]))
            return false;
    return true;
}

static int open_and_start(trp_node_log **logs, const char *const *dirs, bool create, trp_err *err)
{
    uint64_t ids[N] = {1, 2, 3};
    for (int i = 0; i < N; i++) {
        /* small segments, so the three entries and the restart roll */
        trp_log_options o = {.create = create, .segment_bytes = 256};
        int rc = trp_node_log_trp_open(&logs[i], dirs[i], &o, err);
        if (!rc)
            rc = trp_node_new(&nodes[i], ids[i], ids, N, send_cb, (void *)(uintptr_t)ids[i],
                              logs[i], NULL, err);
        if (rc)
            return rc;
    }
    for (int i = 0; i < N; i++) {
        int rc = trp_node_start(nodes[i], now_ms, err);
        if (rc)
            return rc;
    }
    return 0;
}

static void stop_and_close(trp_node_log **logs)
{
    for (int i = 0; i < N; i++) {
        trp_node_free(nodes[i]);
        nodes[i] = NULL;
        trp_node_log_trp_free(logs[i]);
        logs[i] = NULL;
    }
}

static void test_three_nodes_real_store_restart(void)
{
    const char *dirs[N];
    static char dbuf[N][512];
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "node%d", i + 1);
        snprintf(dbuf[i], sizeof dbuf[i], "%s", lt_dir(name));
        dirs[i] = dbuf[i];
    }
    trp_node_log *logs[N] = {0};
    trp_err err = {0};
    int rc = open_and_start(logs, dirs, true, &err);
    REQUIRE(rc == 0 || (printf("# %s\n", err.msg), 0));
    for (int k = 0; k < 400 && !all_know_leader(); k++)
        tick_all(1);
    REQUIRE(all_know_leader());
    const char *data[4] = {"{\"a\":1}", "{\"b\":2}", "{\"c\":3}", "{\"d\":4}"};
    for (int i = 0; i < N; i++) /* through nodes 1, 2 and 3 */
        trp_node_append(nodes[i], data[i], strlen(data[i]), appended, (void *)(intptr_t)i);
    tick_all(40); /* heartbeats carry the commit to the followers */
    for (int i = 0; i < N; i++)
        CHECKF(statuses[i] == TRP_OK && seqs[i] == i, "append %d: status %d seq %d", i,
               statuses[i], seqs[i]);
    uint8_t head[TRP_RAFT_HASH_LEN];
    memcpy(head, trp_node_head(nodes[0]), sizeof head);
    uint64_t term[N], vote[N];
    mpz_t x;
    mpz_init(x);
    for (int i = 0; i < N; i++) {
        trp_log *lg = trp_node_log_trp_log(logs[i]);
        CHECK(!memcmp(trp_node_head(nodes[i]), head, sizeof head));
        CHECK(!memcmp(trp_log_head_hash(lg), head, sizeof head)); /* the store agrees */
        trp_log_durable_next(lg, x);
        CHECK(mpz_cmp_ui(x, 3) == 0);
        trp_log_commit_next(lg, x); /* the Raft commit reached every store */
        CHECKF(mpz_cmp_ui(x, 3) == 0, "node %d: commit watermark %ld", i + 1, mpz_get_si(x));
        term[i] = trp_node_term(nodes[i]);
        vote[i] = trp_raft_vote(trp_node_raft(nodes[i]));
        trp_meta m;
        CHECK(trp_log_meta_get(lg, &m) == 0 && m.term == term[i] && m.vote == vote[i]);
        /* the stored payload is the envelope plus the user's bytes */
        trp_entry e;
        trp_entry_init(&e);
        for (int k = 0; k < 3; k++) {
            const uint8_t *d;
            size_t len;
            mpz_set_ui(x, (unsigned long)k);
            CHECK(trp_log_read(lg, x, &e, NULL) == 0 && e.type == TRP_ENTRY_DATA &&
                  trp_raft_envelope_get(e.payload, e.len, NULL, NULL, &d, &len) == 0 &&
                  len == strlen(data[k]) && !memcmp(d, data[k], len));
        }
        trp_entry_clear(&e);
    }
    CHECK(vote[0] || vote[1] || vote[2]);

    /* restart: every node stopped, every log closed and opened again */
    stop_and_close(logs);
    now_ms += 1000;
    rc = open_and_start(logs, dirs, false, &err);
    REQUIRE(rc == 0 || (printf("# %s\n", err.msg), 0));
    for (int i = 0; i < N; i++) {
        trp_log *lg = trp_node_log_trp_log(logs[i]);
        trp_meta m;
        CHECK(trp_log_meta_get(lg, &m) == 0 && m.term == term[i] && m.vote == vote[i]);
        CHECKF(trp_node_term(nodes[i]) == term[i], "node %d: term %" PRIu64 " after restart, was %" PRIu64,
               i + 1, trp_node_term(nodes[i]), term[i]);
        CHECK(trp_raft_vote(trp_node_raft(nodes[i])) == vote[i]);
        CHECK(!memcmp(trp_node_head(nodes[i]), head, sizeof head));
        trp_log_next(lg, x);
        CHECK(mpz_cmp_ui(x, 3) == 0);
        trp_node_commit_next(nodes[i], x);
        CHECKF(mpz_cmp_ui(x, 3) == 0, "node %d: commit %ld after restart", i + 1, mpz_get_si(x));
    }
    for (int k = 0; k < 400 && !all_know_leader(); k++)
        tick_all(1);
    REQUIRE(all_know_leader());
    for (int i = 0; i < N; i++)
        CHECK(trp_node_term(nodes[i]) > term[i]);
    /* the commit watermark survived, so the new leader needs no no-op */
    trp_node_append(nodes[1], data[3], strlen(data[3]), appended, (void *)(intptr_t)3);
    tick_all(40);
    CHECKF(statuses[3] == TRP_OK && seqs[3] == 3, "append after restart: status %d seq %d",
           statuses[3], seqs[3]);
    memcpy(head, trp_node_head(nodes[0]), sizeof head);
    for (int i = 1; i < N; i++)
        CHECK(!memcmp(trp_node_head(nodes[i]), head, sizeof head));
    stop_and_close(logs);

    /* the three directories verify, and agree */
    trp_verify_report r[N];
    char diverge[128] = "";
    for (int i = 0; i < N; i++) {
        trp_verify_report_init(&r[i]);
        rc = trp_verify_dir(dirs[i], NULL, NULL, &r[i], &err);
        CHECKF(rc == 0 && r[i].ok, "%s: %s", dirs[i], r[i].ok ? err.msg : r[i].message);
        CHECK(r[i].entries == 4 && !memcmp(r[i].head, head, sizeof head));
        CHECKF(r[i].segments > 1, "%s: %" PRIu64 " segments", dirs[i], r[i].segments);
        trp_verify_report_clear(&r[i]);
        trp_verify_report_init(&r[i]);
    }
    rc = trp_verify_agree(dirs, N, NULL, NULL, r, diverge, sizeof diverge, &err);
    CHECKF(rc == 0 && diverge[0] == '\0', "verify_agree: %s (diverge at '%s')", err.msg, diverge);
    for (int i = 0; i < N; i++)
        trp_verify_report_clear(&r[i]);
    mpz_clear(x);
}

/* The adapter refuses what would corrupt the log: an append not at the
 * log's next, an entry whose hash is not the store's, and a read-only log. */
static void test_adapter_refusals(void)
{
    const char *dir = lt_dir("refuse");
    trp_node_log *nl;
    trp_err err = {0};
    trp_log_options o = {.create = true, .start_seq = "18446744073709551613"};
    REQUIRE(trp_node_log_trp_open(&nl, dir, &o, &err) == 0);
    trp_raft_storage *st = &nl->st;
    mpz_t first, next;
    mpz_inits(first, next, NULL);
    st->bounds(st->user, first, next);
    char fs[64];
    CHECK(mpz_cmp(first, next) == 0 && !strcmp(trp_seq_str(fs, sizeof fs, first), o.start_seq));
    uint8_t anchor[TRP_RAFT_HASH_LEN], zero[TRP_RAFT_HASH_LEN] = {0};
    st->anchor(st->user, anchor);
    CHECK(!memcmp(anchor, zero, sizeof zero));
    trp_raft_entry e = {.term = 1, .type = TRP_RAFT_ENTRY_DATA, .payload = (const uint8_t *)"x",
                        .len = 1};
    trp_entry_hash(e.hash, next, 1, TRP_RAFT_ENTRY_DATA, anchor, "x", 1);
    mpz_add_ui(first, next, 1);
    CHECK(st->append(st->user, first, &e, &err) == TRP_ESTATE); /* not at next */
    e.hash[0] ^= 1;
    CHECK(st->append(st->user, next, &e, &err) == TRP_ECORRUPT); /* another hash */
    trp_node_log_trp_free(nl); /* the bad entry was never synced: gone */
    REQUIRE(trp_node_log_trp_open(&nl, dir, NULL, &err) == 0);
    st = &nl->st;
    st->bounds(st->user, first, next);
    CHECK(mpz_cmp(first, next) == 0);
    e.hash[0] ^= 1;
    CHECK(st->append(st->user, next, &e, &err) == 0);
    mpz_t d;
    mpz_init(d);
    CHECK(nl->sync(st->user, d, &err) == 0 && mpz_cmp(d, next) > 0);
    trp_raft_entry got;
    CHECK(st->read(st->user, next, &got, &err) == 0 && got.len == 1 && got.payload[0] == 'x' &&
          !memcmp(got.hash, e.hash, sizeof got.hash));
    CHECK(nl->meta_set(st->user, 7, 2, &err) == 0);
    uint64_t t = 0, v = 0;
    mpz_t c;
    mpz_init(c);
    CHECK(nl->meta_get(st->user, &t, &v, c, &err) == 0 && t == 7 && v == 2 && mpz_cmp(c, next) == 0);
    CHECK(nl->commit_set(st->user, d, &err) == 0);
    trp_node_log_trp_free(nl);
    /* a reopened log keeps the manual watermark, term and vote */
    REQUIRE(trp_node_log_trp_open(&nl, dir, NULL, &err) == 0);
    st = &nl->st;
    CHECK(nl->meta_get(st->user, &t, &v, c, &err) == 0 && t == 7 && v == 2 && mpz_cmp(c, d) == 0);
    trp_node_log_trp_free(nl);
    trp_log_options ro = {.read_only = true};
    CHECK(trp_node_log_trp_open(&nl, dir, &ro, &err) == TRP_EINVAL && nl == NULL);
    mpz_clears(first, next, d, c, NULL);
}

int main(void)
{
    RUN(test_three_nodes_real_store_restart);
    RUN(test_adapter_refusals);
    lt_cleanup();
    return check_done();
}
