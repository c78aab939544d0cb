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

int main(void)
{
    RUN(test_three_nodes_direct_calls);
    RUN(test_one_node_and_bad_config);
    return check_done();
}
