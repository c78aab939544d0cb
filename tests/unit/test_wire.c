/* test_wire.c: messages survive sealing, fragmentation, loss, duplication
 * and reordering; every hostile or misdirected datagram is dropped under the
 * right counter; reassembly memory stays bounded; counters always add up. */
#include "../check.h"
#include "trp.h"
#include "wiretest.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <time.h>

/* ---- fixtures (the clock, PRNG and wires: wiretest.h) ---------------------- */

static const uint64_t ids[] = {1, 2, 3};

static trp_wire *make_wire(uint64_t self, uint32_t max_datagram, uint32_t max_message,
                           uint8_t key_byte, uint8_t cluster_byte, uint64_t epoch)
{
    trp_err e;
    trp_wire *w = wiretest_new(self, max_datagram, max_message, key_byte, cluster_byte, epoch, 0, &e);
    CHECKF(w != NULL, "%s", e.msg);
    return w;
}

#define MSG_MAX ((1u << 20) + 64)
#define DGRAMS_MAX 8192

struct dgram {
    uint8_t *data;
    size_t len;
};

struct capture {
    struct dgram d[DGRAMS_MAX];
    size_t n;
    uint32_t max_len;
};

static int capture_emit(void *ctx, uint64_t to, const uint8_t *data, size_t len)
{
    struct capture *c = ctx;
    (void)to;
    if (c->n == DGRAMS_MAX)
        return TRP_ENOMEM;
    c->d[c->n].data = malloc(len ? len : 1);
    memcpy(c->d[c->n].data, data, len);
    c->d[c->n].len = len;
    if (len > c->max_len)
        c->max_len = (uint32_t)len;
    c->n++;
    return 0;
}

static void capture_clear(struct capture *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->d[i].data);
    c->n = 0;
    c->max_len = 0;
}

static struct capture cap;

static uint8_t *pattern(size_t len, uint8_t salt)
{
    uint8_t *m = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
        m[i] = (uint8_t)(i * 31 + salt + (i >> 8));
    return m;
}

static bool counters_add_up(const trp_wire *w)
{
    const trp_wire_counters *c = trp_wire_counters_get(w);
    return c->recv_datagrams == c->accepted_datagrams + c->drop_forged + c->drop_stale +
                                    c->drop_malformed + c->drop_oversized + c->drop_wrong_cluster +
                                    c->drop_unknown_sender + c->drop_wrong_receiver;
}

/* Feed capture[i] for i in order[]; returns delivered message count and
 * checks each delivered message equals want. */
static int feed(trp_wire *rx, const size_t *order, size_t n, const uint8_t *want, size_t want_len)
{
    int delivered = 0;
    for (size_t k = 0; k < n; k++) {
        const struct dgram *d = &cap.d[order ? order[k] : k];
        uint64_t from = 0;
        const uint8_t *msg = NULL;
        size_t len = 0;
        if (trp_wire_open(rx, d->data, d->len, &from, &msg, &len) == 1) {
            delivered++;
            CHECK(from == 1);
            CHECKF(len == want_len, "len %zu want %zu", len, want_len);
            CHECK(len != want_len || len == 0 || memcmp(msg, want, len) == 0);
        }
    }
    return delivered;
}

/* ---- tests ---------------------------------------------------------------- */

static void round_trip_sizes(void)
{
    static const uint32_t dgram_sizes[] = {1400, 65000, 256, 65507};
    static const size_t sizes[] = {0, 1, 1399, 1400, 65507, 1u << 20, MSG_MAX};
    for (size_t a = 0; a < sizeof dgram_sizes / sizeof dgram_sizes[0]; a++) {
        uint32_t md = dgram_sizes[a];
        trp_wire *tx = make_wire(1, md, MSG_MAX, 7, 1, 100);
        trp_wire *rx = make_wire(2, md, MSG_MAX, 7, 1, 200);
        REQUIRE(tx && rx);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t len = sizes[s];
            if (md == 256 && len > 65507)
                continue; /* 4,000+ fragments of a MiB at 180 bytes: covered below */
            uint8_t *m = pattern(len, (uint8_t)s);
            capture_clear(&cap);
            trp_err e;
            int rc = trp_wire_seal(tx, 2, m, len, capture_emit, &cap, &e);
            CHECKF(rc == TRP_OK, "%s", e.msg);
            CHECKF(cap.max_len <= md, "datagram of %u > max_datagram %u", cap.max_len, md);
            CHECK(cap.n == trp_wire_fragments(tx, len));
            CHECKF(feed(rx, NULL, cap.n, m, len) == 1, "size %zu at %u", len, md);
            free(m);
        }
        const trp_wire_counters *c = trp_wire_counters_get(rx);
        CHECK(c->drop_forged + c->drop_stale + c->drop_malformed == 0);
        CHECK(c->partial_messages == 0 && c->partial_bytes == 0);
        CHECK(counters_add_up(rx));
        trp_wire_free(tx);
        trp_wire_free(rx);
    }
    /* 1 MiB at the smallest datagram: 5,826 fragments of 180 bytes. */
    trp_wire *tx = make_wire(1, 256, MSG_MAX, 7, 1, 100);
    trp_wire *rx = make_wire(2, 256, MSG_MAX, 7, 1, 200);
    uint8_t *m = pattern(1u << 20, 3);
    capture_clear(&cap);
    trp_err e;
    CHECK(trp_wire_seal(tx, 2, m, 1u << 20, capture_emit, &cap, &e) == TRP_OK);
    CHECK(cap.max_len <= 256);
    CHECK(feed(rx, NULL, cap.n, m, 1u << 20) == 1);
    free(m);
    capture_clear(&cap);
    trp_wire_free(tx);
    trp_wire_free(rx);
}

static void fragments_reordered_duplicated_dropped(void)
{
    trp_wire *tx = make_wire(1, 1400, MSG_MAX, 7, 1, 100);
    trp_wire *rx = make_wire(2, 1400, MSG_MAX, 7, 1, 200);
    REQUIRE(tx && rx);
    size_t len = 200000;
    uint8_t *m = pattern(len, 9);
    trp_err e;
    capture_clear(&cap);
    REQUIRE(trp_wire_seal(tx, 2, m, len, capture_emit, &cap, &e) == TRP_OK);
    size_t n = cap.n, order[2 * DGRAMS_MAX];
    REQUIRE(n > 100 && 2 * n <= 2 * DGRAMS_MAX);
    /* shuffled, every fragment twice: delivered once, n duplicates stale */
    for (size_t i = 0; i < n; i++)
        order[i] = order[n + i] = i;
    for (size_t i = 2 * n - 1; i > 0; i--) {
        size_t j = prng() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    CHECK(feed(rx, order, 2 * n, m, len) == 1);
    const trp_wire_counters *c = trp_wire_counters_get(rx);
    CHECK(c->drop_stale == n);
    CHECK(c->accepted_datagrams == n);
    CHECK(counters_add_up(rx));

    /* one fragment lost: nothing delivered, the partial expires in time */
    capture_clear(&cap);
    REQUIRE(trp_wire_seal(tx, 2, m, len, capture_emit, &cap, &e) == TRP_OK);
    for (size_t i = 0; i < cap.n; i++)
        order[i] = i == 5 ? 0 : i; /* fragment 5 replaced by a duplicate of 0 */
    CHECK(feed(rx, order, cap.n, m, len) == 0);
    CHECK(c->partial_messages == 1 && c->partial_bytes >= len);
    fake_now_ms += 4999;
    trp_wire_expire(rx);
    CHECK(c->partial_messages == 1);
    fake_now_ms += 1;
    trp_wire_expire(rx);
    CHECK(c->partial_messages == 0 && c->partial_bytes == 0 && c->partial_expired == 1);
    /* the late fragment now starts a new partial that never completes alone */
    size_t late = 5;
    CHECK(feed(rx, &late, 1, m, len) == 0);
    CHECK(c->partial_messages == 1);
    fake_now_ms += 5000;

    /* the next message still gets through */
    capture_clear(&cap);
    REQUIRE(trp_wire_seal(tx, 2, m, 3000, capture_emit, &cap, &e) == TRP_OK);
    CHECK(feed(rx, NULL, cap.n, m, 3000) == 1);
    CHECK(c->partial_messages == 0); /* the stale partial expired on the way */
    CHECK(counters_add_up(rx));
    free(m);
    capture_clear(&cap);
    trp_wire_free(tx);
    trp_wire_free(rx);
}

static uint64_t deliver_one(trp_wire *rx, const struct dgram *d)
{
    uint64_t from = 0;
    const uint8_t *msg;
    size_t len;
    return trp_wire_open(rx, d->data, d->len, &from, &msg, &len) == 1 ? from : 0;
}

static void misdirected_and_forged(void)
{
    trp_wire *tx = make_wire(1, 1400, 4096, 7, 1, 100);
    trp_wire *rx2 = make_wire(2, 1400, 4096, 7, 1, 200);
    trp_wire *rx3 = make_wire(3, 1400, 4096, 7, 1, 300);
    trp_wire *other_key = make_wire(2, 1400, 4096, 8, 1, 200);
    trp_wire *other_cluster = make_wire(2, 1400, 4096, 7, 2, 200);
    REQUIRE(tx && rx2 && rx3 && other_key && other_cluster);
    trp_err e;
    uint8_t m[100];
    memset(m, 0x5a, sizeof m);
    capture_clear(&cap);
    REQUIRE(trp_wire_seal(tx, 2, m, sizeof m, capture_emit, &cap, &e) == TRP_OK);
    REQUIRE(cap.n == 1);
    struct dgram *d = &cap.d[0];

    CHECK(deliver_one(rx3, d) == 0);
    CHECK(trp_wire_counters_get(rx3)->drop_wrong_receiver == 1);
    CHECK(deliver_one(other_key, d) == 0);
    CHECK(trp_wire_counters_get(other_key)->drop_forged == 1);
    CHECK(deliver_one(other_cluster, d) == 0);
    CHECK(trp_wire_counters_get(other_cluster)->drop_wrong_cluster == 1);

    /* re-addressed to node 3 by editing the header: fails authentication */
    uint8_t copy[1400];
    memcpy(copy, d->data, d->len);
    copy[23] = 3; /* receiver id, low byte */
    struct dgram edited = {copy, d->len};
    CHECK(deliver_one(rx3, &edited) == 0);
    CHECK(trp_wire_counters_get(rx3)->drop_forged == 1);
    /* claiming another sender: forged too (the key is per sender) */
    memcpy(copy, d->data, d->len);
    copy[15] = 3;
    CHECK(deliver_one(rx2, &edited) == 0);
    CHECK(trp_wire_counters_get(rx2)->drop_forged == 1);
    /* claiming to be the receiver itself, or an unknown node */
    copy[15] = 2;
    CHECK(deliver_one(rx2, &edited) == 0);
    copy[15] = 9;
    CHECK(deliver_one(rx2, &edited) == 0);
    CHECK(trp_wire_counters_get(rx2)->drop_unknown_sender == 2);
    /* one flipped bit anywhere in ciphertext or tag */
    memcpy(copy, d->data, d->len);
    copy[d->len - 1] ^= 1;
    CHECK(deliver_one(rx2, &edited) == 0);
    memcpy(copy, d->data, d->len);
    copy[TRP_WIRE_HEADER_LEN] ^= 0x80;
    CHECK(deliver_one(rx2, &edited) == 0);
    CHECK(trp_wire_counters_get(rx2)->drop_forged == 3);

    /* the genuine one is accepted once; its replay is stale */
    CHECK(deliver_one(rx2, d) == 1);
    CHECK(deliver_one(rx2, d) == 0);
    CHECK(trp_wire_counters_get(rx2)->drop_stale == 1);

    /* truncated, padded, garbage, oversized */
    struct dgram t = {d->data, d->len - 1};
    CHECK(deliver_one(rx2, &t) == 0);
    t.len = 10;
    CHECK(deliver_one(rx2, &t) == 0);
    t.len = 0;
    CHECK(deliver_one(rx2, &t) == 0);
    memcpy(copy, d->data, d->len);
    copy[0] = 'X';
    CHECK(deliver_one(rx2, &edited) == 0);
    memcpy(copy, d->data, d->len);
    copy[2] = TRP_WIRE_VERSION + 1; /* a later version */
    CHECK(deliver_one(rx2, &edited) == 0);
    copy[2] = 1; /* version 1 (ChaCha20-Poly1305) */
    CHECK(deliver_one(rx2, &edited) == 0);
    CHECK(trp_wire_counters_get(rx2)->drop_malformed == 6);
    uint8_t big[1401] = {0};
    struct dgram b = {big, sizeof big};
    CHECK(deliver_one(rx2, &b) == 0);
    CHECK(trp_wire_counters_get(rx2)->drop_oversized == 1);
    CHECK(counters_add_up(rx2) && counters_add_up(rx3));
    /* the same figures as JSON, for trp-node status */
    cJSON *j = trp_wire_counters_json(trp_wire_counters_get(rx2));
    REQUIRE(j);
    cJSON *dropped = cJSON_GetObjectItemCaseSensitive(j, "dropped");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(dropped, "forged")) == 3);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(dropped, "malformed")) == 6);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(dropped, "unknown_sender")) == 2);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(
              cJSON_GetObjectItemCaseSensitive(j, "received"), "datagrams")) ==
          (double)trp_wire_counters_get(rx2)->recv_datagrams);
    cJSON_Delete(j);

    /* an empty message from a NULL pointer; forwarding a just-opened message */
    capture_clear(&cap);
    CHECK(trp_wire_seal(tx, 2, NULL, 0, capture_emit, &cap, &e) == TRP_OK);
    REQUIRE(cap.n == 1);
    uint64_t from;
    const uint8_t *got;
    size_t got_len = 99;
    CHECK(trp_wire_open(rx2, cap.d[0].data, cap.d[0].len, &from, &got, &got_len) == 1);
    CHECK(got_len == 0 && from == 1);
    capture_clear(&cap);
    REQUIRE(trp_wire_seal(tx, 2, m, sizeof m, capture_emit, &cap, &e) == TRP_OK);
    REQUIRE(trp_wire_open(rx2, cap.d[0].data, cap.d[0].len, &from, &got, &got_len) == 1);
    struct capture *fwd = calloc(1, sizeof *fwd);
    REQUIRE(fwd);
    CHECK(trp_wire_seal(rx2, 3, got, got_len, capture_emit, fwd, &e) == TRP_OK);
    REQUIRE(fwd->n == 1);
    CHECK(trp_wire_open(rx3, fwd->d[0].data, fwd->d[0].len, &from, &got, &got_len) == 1);
    CHECK(from == 2 && got_len == sizeof m && memcmp(got, m, sizeof m) == 0);
    capture_clear(fwd);
    free(fwd);

    /* sender side refusals */
    uint8_t huge[4097] = {0};
    CHECK(trp_wire_seal(tx, 2, huge, sizeof huge, capture_emit, &cap, &e) == TRP_ETOOBIG);
    CHECK(trp_wire_seal(tx, 9, m, 1, capture_emit, &cap, &e) == TRP_EINVAL);
    CHECK(trp_wire_seal(tx, 1, m, 1, capture_emit, &cap, &e) == TRP_EINVAL);
    capture_clear(&cap);
    trp_wire_free(tx);
    trp_wire_free(rx2);
    trp_wire_free(rx3);
    trp_wire_free(other_key);
    trp_wire_free(other_cluster);
}

static void replay_window_and_restart(void)
{
    trp_wire *tx = make_wire(1, 1400, 4096, 7, 1, 100);
    trp_wire *rx = make_wire(2, 1400, 4096, 7, 1, 200);
    REQUIRE(tx && rx);
    trp_err e;
    uint8_t m[10] = {1};
    capture_clear(&cap);
    for (int i = 0; i < 5000; i++)
        REQUIRE(trp_wire_seal(tx, 2, m, sizeof m, capture_emit, &cap, &e) == TRP_OK);
    /* delivered out of order within the window: all accepted */
    CHECK(deliver_one(rx, &cap.d[4999]) == 1);
    CHECK(deliver_one(rx, &cap.d[1000]) == 1); /* 3999 behind: inside the 4096 window */
    CHECK(deliver_one(rx, &cap.d[903]) == 0);  /* 4096 behind: too old to tell */
    CHECK(deliver_one(rx, &cap.d[4998]) == 1);
    CHECK(deliver_one(rx, &cap.d[4998]) == 0);
    const trp_wire_counters *c = trp_wire_counters_get(rx);
    CHECK(c->drop_stale == 2 && c->delivered_messages == 3);

    /* the sender restarts with a later boot epoch: accepted at once */
    trp_wire *tx2 = make_wire(1, 1400, 4096, 7, 1, 101);
    struct capture *old = malloc(sizeof *old);
    REQUIRE(old);
    old->n = 0;
    old->max_len = 0;
    REQUIRE(trp_wire_seal(tx, 2, m, sizeof m, capture_emit, old, &e) == TRP_OK);
    capture_clear(&cap);
    REQUIRE(trp_wire_seal(tx2, 2, m, sizeof m, capture_emit, &cap, &e) == TRP_OK);
    CHECK(deliver_one(rx, &cap.d[0]) == 1);
    /* a datagram of the old boot, even never seen before, is now stale */
    CHECK(deliver_one(rx, &old->d[0]) == 0);
    CHECK(c->drop_stale == 3);
    /* and a replay of an even older boot cannot roll the peer back */
    capture_clear(old);
    trp_wire *tx0 = make_wire(1, 1400, 4096, 7, 1, 99);
    REQUIRE(trp_wire_seal(tx0, 2, m, sizeof m, capture_emit, old, &e) == TRP_OK);
    CHECK(deliver_one(rx, &old->d[0]) == 0);
    CHECK(c->drop_stale == 4);
    CHECK(c->peer_restarts == 1);
    /* ... unless the current boot has been silent for boot_silence_ms: a
     * peer restarted with its clock set back is accepted after a while */
    fake_now_ms += 9999;
    CHECK(deliver_one(rx, &old->d[0]) == 0);
    CHECK(c->drop_stale == 5);
    fake_now_ms += 1;
    CHECK(deliver_one(rx, &old->d[0]) == 1);
    CHECK(c->peer_restarts == 2);
    capture_clear(old);
    free(old);
    CHECK(counters_add_up(rx));
    capture_clear(&cap);
    trp_wire_free(tx);
    trp_wire_free(tx0);
    trp_wire_free(tx2);
    trp_wire_free(rx);
}

static trp_wire *make_wire_clients(uint64_t self, uint32_t clients_max)
{
    trp_wire_params p;
    trp_wire_params_default(&p);
    memset(p.key, 7, sizeof p.key);
    memset(p.cluster_id, 1, sizeof p.cluster_id);
    p.self_id = self;
    p.peer_ids = ids;
    p.npeers = 3;
    p.max_message = 100000;
    p.clients_max = clients_max;
    p.rand = fake_rand;
    p.now_ms = fake_clock;
    trp_wire *w = NULL;
    trp_err e;
    int rc = trp_wire_new(&w, &p, &e);
    CHECKF(rc == TRP_OK, "%s", e.msg);
    return w;
}

/* Many more clients than slots, over many index rebuilds: every client a
 * node keeps is found again (its next datagram is neither a new client nor
 * a restart), a forgotten one takes a slot anew, and replies reach exactly
 * the kept ones. */
static void many_clients_found_again(void)
{
    enum { SLOTS = 8, CLIENTS = 100 };
    trp_wire *node = make_wire_clients(1, SLOTS);
    trp_wire *cl[CLIENTS];
    uint64_t base = trp_wire_new_client_id() & ~(uint64_t)0xffff;
    for (int i = 0; i < CLIENTS; i++)
        cl[i] = make_wire_clients(base + ((uint64_t)i << 8), 0); /* ids share their low bits */
    REQUIRE(node);
    trp_err e;
    const trp_wire_counters *nc = trp_wire_counters_get(node);
    int heard = 0;
    for (int i = 0; i < CLIENTS; i++) {
        fake_now_ms += 1;
        capture_clear(&cap);
        REQUIRE(trp_wire_seal(cl[i], 1, "hi", 2, capture_emit, &cap, &e) == TRP_OK);
        heard += deliver_one(node, &cap.d[0]) == base + ((uint64_t)i << 8);
    }
    CHECK(heard == CLIENTS && nc->clients_evicted == CLIENTS - SLOTS);
    int again = 0, replies = 0;
    for (int i = CLIENTS - SLOTS; i < CLIENTS; i++) {
        fake_now_ms += 1;
        capture_clear(&cap);
        REQUIRE(trp_wire_seal(cl[i], 1, "hi", 2, capture_emit, &cap, &e) == TRP_OK);
        again += deliver_one(node, &cap.d[0]) == base + ((uint64_t)i << 8);
    }
    for (int i = 0; i < CLIENTS; i++)
        replies += trp_wire_seal(node, base + ((uint64_t)i << 8), "ok", 2, capture_emit, &cap, &e) ==
                   TRP_OK;
    CHECKF(again == SLOTS && nc->clients_evicted == CLIENTS - SLOTS && nc->peer_restarts == 0,
           "%d found again, %llu evicted", again, (unsigned long long)nc->clients_evicted);
    CHECKF(replies == SLOTS, "%d clients reachable", replies);
    fake_now_ms += 1;
    capture_clear(&cap);
    REQUIRE(trp_wire_seal(cl[0], 1, "hi", 2, capture_emit, &cap, &e) == TRP_OK);
    CHECK(deliver_one(node, &cap.d[0]) == base && nc->clients_evicted == CLIENTS - SLOTS + 1);
    capture_clear(&cap);
    for (int i = 0; i < CLIENTS; i++)
        trp_wire_free(cl[i]);
    trp_wire_free(node);
}

/* Clients are not in the config: a node with client slots accepts their
 * authentic datagrams, replies to them, and evicts the quietest when full. */
static void clients_get_slots(void)
{
    trp_wire *node = make_wire_clients(1, 2), *closed = make_wire_clients(2, 0);
    uint64_t ida = trp_wire_new_client_id(), idb = ida ^ 1, idc = ida ^ 2;
    CHECK(trp_wire_is_client(ida) && trp_wire_is_client(idb) && !trp_wire_is_client(7));
    trp_wire *a = make_wire_clients(ida, 0), *b = make_wire_clients(idb, 0),
             *c = make_wire_clients(idc, 0);
    REQUIRE(node && closed && a && b && c);
    trp_err e;
    uint8_t req[3000];
    memset(req, 0x11, sizeof req);
    const trp_wire_counters *nc = trp_wire_counters_get(node);

    /* a node without client slots treats a client as an unknown sender */
    capture_clear(&cap);
    REQUIRE(trp_wire_seal(a, 2, req, 10, capture_emit, &cap, &e) == TRP_OK);
    CHECK(deliver_one(closed, &cap.d[0]) == 0);
    CHECK(trp_wire_counters_get(closed)->drop_unknown_sender == 1);
    /* a node cannot reply to a client it has not heard from */
    CHECK(trp_wire_seal(node, ida, req, 10, capture_emit, &cap, &e) == TRP_EINVAL);

    /* a two-fragment request from a, then a reply */
    capture_clear(&cap);
    REQUIRE(trp_wire_seal(a, 1, req, sizeof req, capture_emit, &cap, &e) == TRP_OK);
    REQUIRE(cap.n == 3);
    uint64_t from = 0;
    const uint8_t *msg;
    size_t len;
    int done = 0;
    for (size_t i = 0; i < cap.n; i++)
        done += trp_wire_open(node, cap.d[i].data, cap.d[i].len, &from, &msg, &len);
    CHECK(done == 1 && from == ida && len == sizeof req);
    CHECK(deliver_one(node, &cap.d[0]) == 0 && nc->drop_stale == 1); /* replay */
    capture_clear(&cap);
    REQUIRE(trp_wire_seal(node, ida, "ok", 2, capture_emit, &cap, &e) == TRP_OK);
    CHECK(trp_wire_open(a, cap.d[0].data, cap.d[0].len, &from, &msg, &len) == 1);
    CHECK(from == 1 && len == 2 && memcmp(msg, "ok", 2) == 0);

    /* a forged client datagram takes no slot */
    trp_wire_params p;
    trp_wire_params_default(&p);
    memset(p.key, 8, sizeof p.key);
    memset(p.cluster_id, 1, sizeof p.cluster_id);
    p.self_id = idc;
    p.peer_ids = ids;
    p.npeers = 3;
    p.max_message = 100000;
    trp_wire *forger = NULL;
    REQUIRE(trp_wire_new(&forger, &p, &e) == TRP_OK);
    capture_clear(&cap);
    REQUIRE(trp_wire_seal(forger, 1, req, 10, capture_emit, &cap, &e) == TRP_OK);
    CHECK(deliver_one(node, &cap.d[0]) == 0 && nc->drop_forged == 1);
    CHECK(trp_wire_seal(node, idc, req, 10, capture_emit, &cap, &e) == TRP_EINVAL);

    /* b then c: two slots, so a (the quietest) is evicted for c */
    fake_now_ms += 10;
    capture_clear(&cap);
    REQUIRE(trp_wire_seal(b, 1, req, 10, capture_emit, &cap, &e) == TRP_OK);
    CHECK(deliver_one(node, &cap.d[0]) == idb);
    fake_now_ms += 10;
    capture_clear(&cap);
    REQUIRE(trp_wire_seal(c, 1, req, 10, capture_emit, &cap, &e) == TRP_OK);
    CHECK(deliver_one(node, &cap.d[0]) == idc);
    CHECK(nc->clients_evicted == 1);
    CHECK(trp_wire_seal(node, ida, req, 10, capture_emit, &cap, &e) == TRP_EINVAL);
    CHECK(trp_wire_seal(node, idb, req, 10, capture_emit, &cap, &e) == TRP_OK);
    /* a comes back and gets a slot again (b is now the quietest) */
    fake_now_ms += 10;
    capture_clear(&cap);
    REQUIRE(trp_wire_seal(a, 1, req, 10, capture_emit, &cap, &e) == TRP_OK);
    CHECK(deliver_one(node, &cap.d[0]) == ida);
    CHECK(nc->clients_evicted == 2 && nc->peer_restarts == 0);
    CHECK(counters_add_up(node));
    capture_clear(&cap);
    trp_wire_free(node);
    trp_wire_free(closed);
    trp_wire_free(a);
    trp_wire_free(b);
    trp_wire_free(c);
    trp_wire_free(forger);
}

/* Only the first fragment of many large messages: memory stays within the
 * bounds, the oldest partials are evicted, and real traffic still flows. */
static void reassembly_memory_is_bounded(void)
{
    uint32_t max_message = 1u << 20;
    trp_wire *tx = make_wire(1, 1400, max_message, 7, 1, 100);
    trp_wire *rx = make_wire(2, 1400, max_message, 7, 1, 200);
    REQUIRE(tx && rx);
    uint8_t *m = pattern(max_message, 1);
    trp_err e;
    const trp_wire_counters *c = trp_wire_counters_get(rx);
    uint64_t peak_bytes = 0, peak_msgs = 0;
    for (int i = 0; i < 40; i++) {
        capture_clear(&cap);
        REQUIRE(trp_wire_seal(tx, 2, m, max_message - (size_t)i, capture_emit, &cap, &e) == TRP_OK);
        size_t first = 0;
        CHECK(feed(rx, &first, 1, m, 0) == 0);
        if (c->partial_bytes > peak_bytes)
            peak_bytes = c->partial_bytes;
        if (c->partial_messages > peak_msgs)
            peak_msgs = c->partial_messages;
    }
    CHECKF(peak_msgs <= 4, "%llu partial messages", (unsigned long long)peak_msgs);
    CHECKF(peak_bytes <= 4ull * max_message, "%llu partial bytes", (unsigned long long)peak_bytes);
    CHECK(c->partial_evicted >= 36 && c->partial_evicted + c->partial_messages == 40);
    /* a complete message still arrives */
    capture_clear(&cap);
    REQUIRE(trp_wire_seal(tx, 2, m, max_message, capture_emit, &cap, &e) == TRP_OK);
    CHECK(feed(rx, NULL, cap.n, m, max_message) == 1);
    CHECK(counters_add_up(rx));
    free(m);
    capture_clear(&cap);
    trp_wire_free(tx);
    trp_wire_free(rx);
}

/* Thousands of random and mutated datagrams: no crash, no delivery of
 * anything but genuine messages, counters add up. */
static void random_and_mutated_datagrams(void)
{
    trp_wire *tx = make_wire(1, 1400, 65536, 7, 1, 100);
    trp_wire *rx = make_wire(2, 1400, 65536, 7, 1, 200);
    REQUIRE(tx && rx);
    uint8_t *m = pattern(5000, 4);
    trp_err e;
    capture_clear(&cap);
    for (int i = 0; i < 20; i++)
        REQUIRE(trp_wire_seal(tx, 2, m, 5000, capture_emit, &cap, &e) == TRP_OK);
    size_t genuine = cap.n;
    uint8_t buf[1500];
    uint64_t from;
    const uint8_t *msg;
    size_t len;
    int delivered = 0;
    for (int i = 0; i < 5000; i++) {
        size_t n;
        if (i % 2 == 0) { /* pure garbage, sometimes with a valid-looking prefix */
            n = prng() % sizeof buf;
            for (size_t k = 0; k < n; k++)
                buf[k] = (uint8_t)prng();
            if (i % 4 == 0 && n >= 60)
                memcpy(buf, cap.d[0].data, 40);
        } else { /* a genuine datagram with 1-4 mutations (bytes, length) */
            const struct dgram *d = &cap.d[prng() % genuine];
            memcpy(buf, d->data, d->len);
            n = d->len;
            int muts = 1 + (int)(prng() % 4);
            for (int k = 0; k < muts; k++) {
                switch (prng() % 3) {
                case 0:
                    buf[prng() % n] ^= (uint8_t)(1 + prng() % 255);
                    break;
                case 1:
                    n = prng() % (n + 1);
                    break;
                default:
                    buf[prng() % n] = (uint8_t)prng();
                    break;
                }
                if (n == 0)
                    break;
            }
            if (n == d->len && memcmp(buf, d->data, n) == 0)
                buf[0] ^= 1; /* make sure it is a mutation */
        }
        delivered += trp_wire_open(rx, buf, n, &from, &msg, &len);
        CHECK(counters_add_up(rx));
    }
    CHECK(delivered == 0);
    const trp_wire_counters *c = trp_wire_counters_get(rx);
    CHECK(c->recv_datagrams == 5000);
    CHECK(c->accepted_datagrams == 0);
    /* the genuine ones still all work afterwards */
    CHECK(feed(rx, NULL, genuine, m, 5000) == 20);
    CHECK(counters_add_up(rx));
    free(m);
    capture_clear(&cap);
    trp_wire_free(tx);
    trp_wire_free(rx);
}

static int count_only(void *ctx, uint64_t to, const uint8_t *d, size_t len)
{
    (void)to;
    (void)d;
    *(size_t *)ctx += len;
    return 0;
}

/* Reports seal and open throughput (no assertion on speed). */
static void throughput_report(void)
{
    if (getenv("TRP_ASAN"))
        return;
    static const uint32_t sizes[] = {1400, 65000};
    uint32_t len = 1u << 20;
    uint8_t *m = pattern(len, 5);
    for (int s = 0; s < 2; s++) {
        trp_wire *tx = make_wire(1, sizes[s], len, 7, 1, 100);
        trp_wire *rx = make_wire(2, sizes[s], len, 7, 1, 200);
        REQUIRE(tx && rx);
        trp_err e;
        int rounds = 32;
        size_t bytes = 0;
        struct timespec t0, t1, t2;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < rounds; i++)
            CHECK(trp_wire_seal(tx, 2, m, len, count_only, &bytes, &e) == TRP_OK);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        capture_clear(&cap);
        CHECK(trp_wire_seal(tx, 2, m, len, capture_emit, &cap, &e) == TRP_OK);
        size_t n = cap.n;
        int got = 0;
        struct timespec t1b;
        clock_gettime(CLOCK_MONOTONIC, &t1b);
        for (int i = 0; i < rounds; i++) {
            /* re-seal between rounds (not timed) so datagrams are fresh */
            got += feed(rx, NULL, n, m, len);
            capture_clear(&cap);
            clock_gettime(CLOCK_MONOTONIC, &t2);
            trp_wire_seal(tx, 2, m, len, capture_emit, &cap, &e);
            struct timespec t3;
            clock_gettime(CLOCK_MONOTONIC, &t3);
            t1b.tv_sec += t3.tv_sec - t2.tv_sec;
            t1b.tv_nsec += t3.tv_nsec - t2.tv_nsec;
        }
        clock_gettime(CLOCK_MONOTONIC, &t2);
        CHECK(got == rounds);
        double seal_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        double open_s = (double)(t2.tv_sec - t1b.tv_sec) + (double)(t2.tv_nsec - t1b.tv_nsec) / 1e9;
        double mb = (double)rounds * len / 1e6;
        printf("# wire max_datagram %u: seal %.0f MB/s (%.0f datagrams/s), open+reassemble "
               "%.0f MB/s (%.0f datagrams/s)\n",
               sizes[s], mb / seal_s, (double)rounds * n / seal_s, mb / open_s,
               (double)rounds * n / open_s);
        capture_clear(&cap);
        trp_wire_free(tx);
        trp_wire_free(rx);
    }
    free(m);
}

/* An independent reader of the datagram format as trp.conf(5) documents it
 * (WIRE FORMAT): the header fields at their offsets, the per-boot key by
 * HKDF-SHA256, AES-256-GCM with the header as associated data. It uses
 * OpenSSL directly, none of wire.c. */
static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void a_datagram_opens_as_documented(void)
{
    trp_wire *tx = make_wire(1, 1400, MSG_MAX, 7, 1, 100);
    REQUIRE(tx);
    uint8_t *m = pattern(300, 5);
    capture_clear(&cap);
    trp_err e;
    REQUIRE(trp_wire_seal(tx, 2, m, 300, capture_emit, &cap, &e) == TRP_OK && cap.n == 1);
    const uint8_t *d = cap.d[0].data;
    size_t len = cap.d[0].len;
    REQUIRE(len == 60 + 300 + 16);
    uint8_t key[32], cluster_id[16], md[32];
    memset(key, 7, sizeof key);
    memset(cluster_id, 1, sizeof cluster_id);
    uint8_t tagin[16 + 16];
    memcpy(tagin, "trp cluster tag", 16); /* with its NUL */
    memcpy(tagin + 16, cluster_id, 16);
    unsigned mdlen = 0;
    REQUIRE(EVP_Digest(tagin, sizeof tagin, md, &mdlen, EVP_sha256(), NULL));
    CHECK(d[0] == 't' && d[1] == 'W' && d[2] == 2 && d[3] == 0);
    CHECK(memcmp(d + 4, md, 4) == 0);
    CHECK(be64(d + 8) == 1 && be64(d + 16) == 2);
    CHECK(be64(d + 24) == 100); /* boot epoch */
    uint64_t pn = be64(d + 40);
    CHECK(pn >= 1);
    CHECK(d[48] == 0 && d[49] == 0 && d[50] == 1 && d[51] == 44); /* length 300 */
    CHECK(be64(d + 52) == 1);                                      /* index 0, count 1 */
    uint8_t info[11 + 8 + 16], subkey[32];
    memcpy(info, "trp wire v2", 11);
    memcpy(info + 11, d + 8, 8);
    memcpy(info + 19, d + 24, 16);
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM kp[] = {
        OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string("key", key, sizeof key),
        OSSL_PARAM_construct_octet_string("salt", cluster_id, sizeof cluster_id),
        OSSL_PARAM_construct_octet_string("info", info, sizeof info),
        OSSL_PARAM_construct_end(),
    };
    REQUIRE(kctx && EVP_KDF_derive(kctx, subkey, sizeof subkey, kp) == 1);
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    uint8_t nonce[12] = {0}, out[300], tag[16];
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = (uint8_t)(pn >> (56 - 8 * i));
    memcpy(tag, d + len - 16, 16);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n1 = 0, n2 = 0, n3 = 0;
    bool ok = c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, subkey, nonce) == 1 &&
              EVP_DecryptUpdate(c, NULL, &n1, d, 60) == 1 &&
              EVP_DecryptUpdate(c, out, &n2, d + 60, 300) == 1 &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1 &&
              EVP_DecryptFinal_ex(c, out + n2, &n3) == 1;
    CHECK(ok && n2 + n3 == 300 && memcmp(out, m, 300) == 0);
    /* and the tag binds the header: another receiver id fails */
    uint8_t hdr[60];
    memcpy(hdr, d, 60);
    hdr[23] = 3;
    ok = EVP_DecryptInit_ex(c, NULL, NULL, NULL, nonce) == 1 &&
         EVP_DecryptUpdate(c, NULL, &n1, hdr, 60) == 1 &&
         EVP_DecryptUpdate(c, out, &n2, d + 60, 300) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1 &&
         EVP_DecryptFinal_ex(c, out + n2, &n3) == 1;
    CHECK(!ok);
    EVP_CIPHER_CTX_free(c);
    free(m);
    capture_clear(&cap);
    trp_wire_free(tx);
}

int main(void)
{
    prng_state = 0x9e3779b97f4a7c15ull;
    RUN(round_trip_sizes);
    RUN(fragments_reordered_duplicated_dropped);
    RUN(misdirected_and_forged);
    RUN(a_datagram_opens_as_documented);
    RUN(replay_window_and_restart);
    RUN(clients_get_slots);
    RUN(many_clients_found_again);
    RUN(reassembly_memory_is_bounded);
    RUN(random_and_mutated_datagrams);
    RUN(throughput_report);
    return check_done();
}
