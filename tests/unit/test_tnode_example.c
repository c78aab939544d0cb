/*
 * test_tnode_example.c: the original's usage example, in C (libtrp.3
 * EXAMPLES): three trp_node's in one process with direct calls as the
 * transport; {"a":1}, {"b":2}, {"c":3} appended through nodes 1, 2 and 3
 * get seqs 0, 1, 2, and every node ends with the same head.
 *
 * The one idea: send_cb calls the other node's trp_node_receive straight
 * away, re-entrantly; trp_node queues what arrives while it is busy, so
 * the whole exchange of one append completes inside trp_node_append.
 */
#include "../check.h"
#include "trp.h"
#include "trp_node.h"

#include <inttypes.h>
#include <stdint.h>

static trp_node *nodes[3];
static int seqs[3] = {-1, -1, -1};
static int statuses[3] = {-1, -1, -1};

static void send_cb(void *user, uint64_t to, const uint8_t *bytes, size_t len)
{
    uint64_t from = (uint64_t)(uintptr_t)user;
    trp_node_receive(nodes[to - 1], from, bytes, len);
}

static void appended(void *arg, int status, const mpz_t seq, const uint8_t *hash)
{
    int i = (int)(intptr_t)arg;
    (void)hash;
    statuses[i] = status;
    if (status == TRP_OK)
        seqs[i] = (int)mpz_get_si(seq);
}

static int read_status = -1, read_seq = -1;
static void read_done(void *arg, int status, const mpz_t commit_next)
{
    (void)arg;
    read_status = status;
    read_seq = status == TRP_OK ? (int)mpz_get_si(commit_next) : -1;
}

static void test_three_nodes_direct_calls(void)
{
    uint64_t ids[3] = {1, 2, 3};
    trp_node_log *logs[3];
    trp_err err = {0};
    for (int i = 0; i < 3; i++) {
        REQUIRE(trp_node_memlog_new(&logs[i], NULL, &err) == 0);
        REQUIRE(trp_node_new(&nodes[i], ids[i], ids, 3, send_cb, (void *)(uintptr_t)ids[i], logs[i],
                             NULL, &err) == 0);
    }
    for (int i = 0; i < 3; i++)
        REQUIRE(trp_node_start(nodes[i], 0, &err) == 0);
    uint64_t now = 0;
    for (int k = 0; k < 1000 && !(trp_node_leader(nodes[0]) && trp_node_leader(nodes[1]) &&
                                  trp_node_leader(nodes[2]));
         k++)
        for (int i = 0; i < 3; i++)
            trp_node_tick(nodes[i], now += 5);
    CHECK(trp_node_leader(nodes[0]) && trp_node_leader(nodes[0]) == trp_node_leader(nodes[2]));
    CHECKF(now < 2000, "a leader took %llu ms",
           (unsigned long long)now); /* within a second or two */
    const char *data[3] = {"{\"a\":1}", "{\"b\":2}", "{\"c\":3}"};
    for (int i = 0; i < 3; i++)
        trp_node_append(nodes[i], data[i], strlen(data[i]), appended, (void *)(intptr_t)i);
    for (int k = 0; k < 40; k++)
        for (int i = 0; i < 3; i++)
            trp_node_tick(nodes[i], now += 5);
    for (int i = 0; i < 3; i++)
        CHECKF(statuses[i] == TRP_OK && seqs[i] == i, "append %d: status %d seq %d", i, statuses[i],
               seqs[i]);
    for (int i = 1; i < 3; i++)
        CHECK(!memcmp(trp_node_head(nodes[0]), trp_node_head(nodes[i]), TRP_RAFT_HASH_LEN));
    mpz_t c;
    mpz_init(c);
    for (int i = 0; i < 3; i++) {
        trp_node_commit_next(nodes[i], c);
        CHECK(mpz_cmp_ui(c, 3) == 0); /* committed everywhere after a heartbeat */
    }
    mpz_clear(c);
    /* a retry of the first append is answered with its seq, not stored again */
    statuses[0] = -1;
    trp_node_append_retry(nodes[0], 1, data[0], strlen(data[0]), appended, (void *)(intptr_t)0);
    for (int k = 0; k < 10; k++)
        for (int i = 0; i < 3; i++)
            trp_node_tick(nodes[i], now += 5);
    CHECK(statuses[0] == TRP_OK && seqs[0] == 0);
    /* a linearizable read through a follower returns the commit next */
    int follower = trp_node_is_leader(nodes[0]) ? 1 : 0;
    read_status = -1;
    trp_node_read(nodes[follower], read_done, NULL);
    for (int k = 0; k < 40 && read_status < 0; k++)
        for (int i = 0; i < 3; i++)
            trp_node_tick(nodes[i], now += 5);
    CHECK(read_status == TRP_OK && read_seq == 3);
    /* appends on behalf of another client: a retry is stored once */
    statuses[1] = -1;
    CHECK(trp_node_append_as(nodes[2], 4242, 1, "z", 1, NULL, appended, (void *)(intptr_t)1) == 0);
    int first = seqs[1];
    statuses[1] = -1;
    trp_node_append_as(nodes[0], 4242, 1, "z", 1, NULL, appended, (void *)(intptr_t)1);
    for (int k = 0; k < 10; k++)
        for (int i = 0; i < 3; i++)
            trp_node_tick(nodes[i], now += 5);
    CHECK(statuses[1] == TRP_OK && seqs[1] == first && first == 3);
    /* stop answers nothing pending, restart keeps the log and term */
    uint64_t term = trp_node_term(nodes[1]);
    trp_node_stop(nodes[1]);
    REQUIRE(trp_node_start(nodes[1], now, &err) == 0);
    CHECK(trp_node_term(nodes[1]) == term);
    for (int i = 0; i < 3; i++) {
        trp_node_free(nodes[i]);
        trp_node_memlog_free(logs[i]);
    }
}

static void test_one_node_and_bad_config(void)
{
    uint64_t ids[1] = {7};
    trp_node_log *log;
    trp_err err = {0};
    trp_node *n;
    REQUIRE(trp_node_memlog_new(&log, "18446744073709551615", &err) == 0);
    REQUIRE(trp_node_new(&n, 7, ids, 1, send_cb, NULL, log, NULL, &err) == 0);
    REQUIRE(trp_node_start(n, 0, &err) == 0);
    trp_node_tick(n, 1);
    CHECK(trp_node_is_leader(n));
    statuses[0] = -1;
    trp_node_append(n, "x", 1, appended, (void *)(intptr_t)0);
    CHECK(statuses[0] == TRP_OK);
    trp_node_free(n);
    trp_node_memlog_free(log);
    uint64_t dup[2] = {1, 1};
    CHECK(trp_node_new(&n, 1, dup, 2, send_cb, NULL, log, NULL, &err) == TRP_ECONFIG);
    CHECK(strstr(err.msg, "listed twice") != NULL);
}

/* ---- a lossy transport: five nodes, loss, duplication, delay, restarts ---- */

#define CN 5
#define CA 150
static trp_node *cn[CN];
static struct cmsg {
    uint64_t at, from, to;
    uint8_t *b;
    size_t len;
} cq[1 << 16];
static size_t cq_n;
static uint64_t c_now, c_rng = 99;
static uint64_t c_rand(void)
{
    c_rng ^= c_rng << 13;
    c_rng ^= c_rng >> 7;
    c_rng ^= c_rng << 17;
    return c_rng;
}

static void c_send(void *user, uint64_t to, const uint8_t *bytes, size_t len)
{
    int copies = c_rand() % 100 < 10 ? 0 : c_rand() % 100 < 5 ? 2 : 1; /* drop / duplicate */
    for (int k = 0; k < copies && cq_n < sizeof cq / sizeof *cq; k++) {
        struct cmsg *m = &cq[cq_n++];
        m->at = c_now + c_rand() % 20;
        m->from = (uint64_t)(uintptr_t)user;
        m->to = to;
        m->b = malloc(len);
        memcpy(m->b, bytes, len);
        m->len = len;
    }
}

static struct capp {
    int status, seq, node;
    uint64_t req;
    char text[16];
    uint64_t retry_at;
} ca[CA];

static void c_done(void *arg, int status, const mpz_t seq, const uint8_t *hash)
{
    struct capp *a = arg;
    (void)hash;
    a->status = status;
    if (status == TRP_OK) { /* seqs count from 10^30 */
        mpz_t off;
        mpz_init(off);
        mpz_ui_pow_ui(off, 10, 30);
        mpz_sub(off, seq, off);
        a->seq = (int)mpz_get_si(off);
        mpz_clear(off);
    } else {
        a->retry_at = c_now + 50;
    }
}

static void c_deliver(void)
{
    for (size_t i = 0; i < cq_n;) {
        if (cq[i].at > c_now) {
            i++;
            continue;
        }
        struct cmsg m = cq[i];
        cq[i] = cq[--cq_n];
        if (trp_node_raft(cn[m.to - 1]))
            trp_node_receive(cn[m.to - 1], m.from, m.b, m.len);
        free(m.b);
    }
}

static void test_lossy_transport_restarts_and_retries(void)
{
    uint64_t ids[CN] = {1, 2, 3, 4, 5};
    trp_node_log *logs[CN];
    trp_err err = {0};
    for (int i = 0; i < CN; i++) {
        REQUIRE(trp_node_memlog_new(&logs[i], "1000000000000000000000000000000", &err) == 0);
        trp_node_options o = {.election_timeout_ms = 200, .heartbeat_ms = 40};
        REQUIRE(trp_node_new(&cn[i], ids[i], ids, CN, c_send, (void *)(uintptr_t)ids[i], logs[i],
                             &o, &err) == 0);
        REQUIRE(trp_node_start(cn[i], 0, &err) == 0);
    }
    int next = 0;
    for (c_now = 1; c_now < 120000; c_now++) {
        c_deliver();
        for (int i = 0; i < CN; i++)
            if (trp_node_raft(cn[i]))
                trp_node_tick(cn[i], c_now);
        if (c_now % 300 == 0) { /* restart a random node (its log survives) */
            int v = (int)(c_rand() % CN);
            trp_node_stop(cn[v]);
            trp_node_start(cn[v], c_now, &err);
        }
        if (next < CA && c_now % 20 == 0) {
            struct capp *a = &ca[next];
            a->node = next % CN;
            a->status = -1;
            snprintf(a->text, sizeof a->text, "e%d", next);
            a->req = trp_node_append(cn[a->node], a->text, strlen(a->text), c_done, a);
            next++;
        }
        bool all = next == CA;
        for (int k = 0; k < next; k++) {
            struct capp *a = &ca[k];
            if (a->status > 0 && a->status != TRP_EINVAL &&
                c_now >= a->retry_at) { /* retry: same request number */
                a->status = -1;
                trp_node_append_retry(cn[a->node], a->req, a->text, strlen(a->text), c_done, a);
            }
            all = all && (a->status == TRP_OK || a->status == TRP_EINVAL);
        }
        if (all)
            break;
    }
    int ok = 0;
    static char seen[4 * CA];
    memset(seen, 0, sizeof seen);
    for (int k = 0; k < CA; k++) {
        if (ca[k].status != TRP_OK)
            continue;
        ok++;
        CHECKF(ca[k].seq >= 0 && ca[k].seq < 4 * CA && !seen[ca[k].seq],
               "seq %d acknowledged twice", ca[k].seq);
        if (ca[k].seq >= 0 && ca[k].seq < 4 * CA)
            seen[ca[k].seq] = 1;
    }
    /* TRP_EINVAL: retried so late that the outcome cannot be told (below the
     * 64 newest requests of its client); allowed, but then stored at most once */
    CHECKF(ok >= CA - 3, "%d of %d appends acknowledged", ok, CA);
    for (int k = 0; k < CA; k++)
        if (ca[k].status != TRP_OK)
            printf("# append %d (node %d, req %" PRIu64 "): %s\n", k, ca[k].node + 1, ca[k].req,
                   ca[k].status < 0 ? "pending" : trp_status_name(ca[k].status));
    /* let commits settle, then: same head everywhere, every acked entry at its seq */
    for (uint64_t end = c_now + 2000; c_now < end; c_now++) {
        c_deliver();
        for (int i = 0; i < CN; i++)
            trp_node_tick(cn[i], c_now);
    }
    for (int i = 1; i < CN; i++)
        CHECK(!memcmp(trp_node_head(cn[0]), trp_node_head(cn[i]), TRP_RAFT_HASH_LEN));
    mpz_t seq;
    mpz_init(seq);
    mpz_t first, lnext;
    mpz_inits(first, lnext, NULL);
    logs[2]->st.bounds(logs[2]->st.user, first, lnext);
    mpz_sub(lnext, lnext, first);
    size_t n_log = (size_t)mpz_get_ui(lnext);
    for (int k = 0; k < CA; k++) { /* every append at most once in the log */
        int copies = 0;
        for (size_t i = 0; i < n_log; i++) {
            trp_raft_entry e;
            const uint8_t *d;
            size_t len;
            mpz_add_ui(seq, first, i);
            if (logs[2]->st.read(logs[2]->st.user, seq, &e, NULL) == 0 &&
                trp_raft_envelope_get(e.payload, e.len, NULL, NULL, &d, &len) == 0 &&
                len == strlen(ca[k].text) && !memcmp(d, ca[k].text, len))
                copies++;
        }
        CHECKF(copies <= 1, "append %d stored %d times", k, copies);
    }
    mpz_clears(first, lnext, NULL);
    for (int k = 0; k < CA; k++) {
        if (ca[k].status != TRP_OK)
            continue;
        mpz_ui_pow_ui(seq, 10, 30);
        mpz_add_ui(seq, seq, (unsigned long)ca[k].seq); /* seqs count from 10^30 */
        trp_raft_entry e;
        const uint8_t *d;
        size_t len;
        CHECK(logs[2]->st.read(logs[2]->st.user, seq, &e, NULL) == 0 &&
              trp_raft_envelope_get(e.payload, e.len, NULL, NULL, &d, &len) == 0 &&
              len == strlen(ca[k].text) && !memcmp(d, ca[k].text, len));
    }
    mpz_clear(seq);
    for (int i = 0; i < CN; i++) {
        trp_node_free(cn[i]);
        trp_node_memlog_free(logs[i]);
    }
    for (size_t i = 0; i < cq_n; i++)
        free(cq[i].b);
    cq_n = 0;
}

int main(void)
{
    RUN(test_three_nodes_direct_calls);
    RUN(test_one_node_and_bad_config);
    RUN(test_lossy_transport_restarts_and_retries);
    return check_done();
}
