/* test_server_cache.c: trp-node's cache of the newest entries (server_disk.c)
 * keeps their payloads in one ring of bytes. Against a model of the log,
 * through random sizes, wraps, growth, eviction and truncations: every
 * entry the cache returns is the entry at that seq, byte for byte, and the
 * cached entries are always the newest ones, without a hole. */
#include "../check.h"
#include "../rng.h"
#include "server.h"

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
    return xorshift64(&rng);
}

struct model {
    uint8_t **p;
    size_t *len;
    size_t n, cap;
};

static void fill(uint8_t *p, size_t len, size_t seq)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seq * 31 + i * 7 + (i >> 8));
}

static trp_server *new_server(void)
{
    trp_server *s = calloc(1, sizeof *s);
    if (s)
        mpz_inits(s->cache_base, s->cache_tmp, NULL);
    return s;
}

static void free_server(trp_server *s)
{
    server_cache_free(s);
    mpz_clears(s->cache_base, s->cache_tmp, NULL);
    free(s);
}

/* The cached entries are a suffix of the model with nothing missing, and
 * each reads back as the model has it. Returns how many are cached. */
static size_t check_against(trp_server *s, const struct model *m)
{
    mpz_t seq;
    mpz_init(seq);
    size_t cached = 0;
    bool seen = false;
    for (size_t i = 0; i < m->n; i++) {
        mpz_set_ui(seq, i);
        trp_raft_entry e;
        bool hit = server_cache_get(s, seq, &e);
        CHECKF(!seen || hit, "seq %zu is missing after a cached one", i);
        if (!hit)
            continue;
        seen = true;
        cached++;
        CHECKF(e.len == m->len[i] && e.term == i + 1 && e.type == 1 &&
                   (!e.len || memcmp(e.payload, m->p[i], e.len) == 0) && e.hash[0] == (uint8_t)i,
               "seq %zu reads back wrong (len %zu, want %zu)", i, e.len, m->len[i]);
    }
    mpz_set_ui(seq, m->n);
    trp_raft_entry e;
    CHECK(!server_cache_get(s, seq, &e));
    CHECK(s->ring_used <= s->ring_cap);
    CHECK(s->ring_cap <= SERVER_CACHE_BYTES);
    mpz_clear(seq);
    return cached;
}

static void put(trp_server *s, struct model *m, size_t len)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 256;
        m->p = realloc(m->p, m->cap * sizeof *m->p);
        m->len = realloc(m->len, m->cap * sizeof *m->len);
        if (!m->p || !m->len)
            abort();
    }
    uint8_t *p = malloc(len ? len : 1);
    if (!p)
        abort();
    fill(p, len, m->n);
    trp_raft_entry e = {.term = m->n + 1, .type = 1, .payload = p, .len = len};
    e.hash[0] = (uint8_t)m->n;
    mpz_t seq;
    mpz_init_set_ui(seq, m->n);
    server_cache_put(s, seq, &e);
    mpz_clear(seq);
    m->p[m->n] = p;
    m->len[m->n++] = len;
}

static void cut(trp_server *s, struct model *m, size_t from)
{
    mpz_t f;
    mpz_init_set_ui(f, from);
    server_cache_cut(s, f);
    mpz_clear(f);
    while (m->n > from)
        free(m->p[--m->n]);
}

static void model_free(struct model *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->p[i]);
    free(m->p);
    free(m->len);
}

static size_t random_len(void)
{
    switch (next_rand() % 8) {
    case 0:
        return 0;
    case 1:
        return 100 * 1024 + next_rand() % (400 * 1024); /* a large entry: wraps soon */
    case 2:
        return 4096 + next_rand() % 60000;
    default:
        return 1 + next_rand() % 300;
    }
}

static void random_entries_read_back_exactly(void)
{
    trp_server *s = new_server();
    REQUIRE(s);
    struct model m = {0};
    for (int round = 0; round < 3000 && !check_failed_now; round++) {
        unsigned what = (unsigned)(next_rand() % 100);
        if (what < 3 && m.n) /* a truncation of the newest few */
            cut(s, &m, m.n - 1 - next_rand() % (m.n < 20 ? m.n : 20));
        else
            put(s, &m, random_len());
        if (round % 50 == 0 || what < 3)
            check_against(s, &m);
    }
    size_t cached = check_against(s, &m);
    CHECKF(cached > 0, "the newest entries are cached");
    model_free(&m);
    free_server(s);
}

static void fills_then_evicts_the_oldest(void)
{
    trp_server *s = new_server();
    REQUIRE(s);
    struct model m = {0};
    /* 96 MiB of 1 MiB entries through a 64 MiB cache */
    for (int i = 0; i < 96; i++)
        put(s, &m, 1u << 20);
    size_t cached = check_against(s, &m);
    CHECKF(cached >= 32 && cached <= 64, "%zu of 96 cached", cached);
    CHECK(s->ring_cap == SERVER_CACHE_BYTES);
    /* a small entry after them still goes in, evicting what it must */
    put(s, &m, 10);
    CHECK(check_against(s, &m) >= 32);
    model_free(&m);
    free_server(s);
}

static void too_big_and_gaps_restart_the_cache(void)
{
    trp_server *s = new_server();
    REQUIRE(s);
    struct model m = {0};
    for (int i = 0; i < 10; i++)
        put(s, &m, 100);
    put(s, &m, SERVER_CACHE_BYTES / 4 + 1); /* not kept, and the cache starts over */
    CHECK(check_against(s, &m) == 0);
    put(s, &m, 50);
    CHECK(check_against(s, &m) == 1);
    /* a put that is not the next seq restarts the cache at it */
    mpz_t seq;
    mpz_init_set_ui(seq, 1000);
    uint8_t b[3] = {1, 2, 3};
    trp_raft_entry e = {.term = 7, .type = 1, .payload = b, .len = 3};
    server_cache_put(s, seq, &e);
    trp_raft_entry got;
    CHECK(server_cache_get(s, seq, &got) && got.len == 3 && memcmp(got.payload, b, 3) == 0);
    mpz_set_ui(seq, 11);
    CHECK(!server_cache_get(s, seq, &got));
    mpz_clear(seq);
    model_free(&m);
    free_server(s);
}

int main(void)
{
    RUN(random_entries_read_back_exactly);
    RUN(fills_then_evicts_the_oldest);
    RUN(too_big_and_gaps_restart_the_cache);
    return check_done();
}
