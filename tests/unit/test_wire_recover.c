/* test_wire_recover.c: lost fragments are recovered (NACK, resend, probe),
 * so a message of k fragments costs about k/(1-loss) datagrams through a
 * channel that drops, duplicates and reorders; and neither partial messages
 * nor floods of NACKs (replayed, duplicated, hostile) grow memory or make a
 * sender resend without bound. Deterministic: a fixed PRNG seed, a fake
 * clock. */
#include "../check.h"
#include "trp.h"
#include "wiretest.h"

/* ---- fixtures (the clock, PRNG and wires: wiretest.h) ---------------------- */

#define CLIENT_ID 0x8000000000000042ull
static const uint64_t ids[] = {1, 2, 3};

static trp_wire *make_wire(uint64_t self, uint32_t max_message, uint64_t epoch)
{
    trp_err e;
    trp_wire *w = wiretest_new(self, 1400, max_message, 9, 4, epoch, 4, &e);
    CHECKF(w != NULL, "%s", e.msg);
    return w;
}

static uint8_t *pattern(size_t len, uint32_t salt)
{
    uint8_t *b = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(i * 131 + salt * 7 + (i >> 9));
    return b;
}

static bool counters_add_up(const trp_wire *w)
{
    const trp_wire_counters *c = trp_wire_counters_get(w);
    return c->recv_datagrams == c->accepted_datagrams + c->drop_forged + c->drop_stale +
                                    c->drop_malformed + c->drop_oversized + c->drop_wrong_cluster +
                                    c->drop_unknown_sender + c->drop_wrong_receiver + c->drop_nack;
}

/* ---- a simulated network between two endpoints ------------------------------ */

#define NET_MAX 16384
#define REORDER_SPAN 8 /* a datagram may overtake up to this many */

struct dgram {
    uint8_t *data;
    size_t len;
    int to; /* endpoint index */
};

struct net {
    struct dgram q[NET_MAX];
    size_t n;
    double loss, dup;
    trp_wire *end[2];
    uint64_t delivered_len;
    const uint8_t *want;
    size_t want_len;
    int delivered, corrupt;
};

struct emit_ctx {
    struct net *net;
    int to;
};

static void net_push(struct net *n, int to, const uint8_t *d, size_t len)
{
    if (n->n == NET_MAX)
        return; /* a full network drops */
    n->q[n->n].data = malloc(len);
    memcpy(n->q[n->n].data, d, len);
    n->q[n->n].len = len;
    n->q[n->n].to = to;
    n->n++;
}

static int emit_net(void *ctx, uint64_t to_id, const uint8_t *d, size_t len)
{
    struct emit_ctx *e = ctx;
    (void)to_id;
    net_push(e->net, e->to, d, len);
    return 0;
}

/* Deliver (or drop, or duplicate) everything in flight, answers included. */
static void net_run(struct net *n)
{
    for (unsigned steps = 0; n->n && steps < 10 * NET_MAX; steps++) {
        size_t span = n->n < REORDER_SPAN ? n->n : REORDER_SPAN;
        size_t pick = (size_t)(prng() % span);
        struct dgram d = n->q[pick];
        memmove(&n->q[pick], &n->q[pick + 1], (n->n - pick - 1) * sizeof d);
        n->n--;
        if (chance() < n->loss) {
            free(d.data);
            continue;
        }
        if (chance() < n->dup)
            net_push(n, d.to, d.data, d.len);
        struct emit_ctx back = {n, 1 - d.to};
        uint64_t from;
        const uint8_t *msg;
        size_t len;
        if (trp_wire_open_ex(n->end[d.to], d.data, d.len, emit_net, &back, &from, &msg, &len) ==
            1) {
            if (len == n->want_len && memcmp(msg, n->want, len) == 0)
                n->delivered++;
            else
                n->corrupt++;
        }
        free(d.data);
    }
}

static uint64_t sent_total(const struct net *n)
{
    return trp_wire_counters_get(n->end[0])->sent_datagrams +
           trp_wire_counters_get(n->end[1])->sent_datagrams;
}

/* Send one message from end 0 to end 1 and run the network, with probes on
 * a fake clock, until it is delivered or nothing more happens. Returns the
 * datagrams it cost (both directions), 0 if it was not delivered. */
static uint64_t send_through(struct net *n, uint64_t to_id, const uint8_t *msg, size_t len)
{
    uint64_t before = sent_total(n);
    int delivered = n->delivered;
    n->want = msg;
    n->want_len = len;
    struct emit_ctx fwd = {n, 1};
    trp_err e;
    if (trp_wire_seal(n->end[0], to_id, msg, len, emit_net, &fwd, &e) != TRP_OK)
        return 0;
    for (int rounds = 0; rounds < 1000; rounds++) {
        net_run(n);
        if (n->delivered > delivered)
            break;
        struct emit_ctx to1 = {n, 1}, to0 = {n, 0};
        int next = trp_wire_tick(n->end[0], emit_net, &to1);
        trp_wire_tick(n->end[1], emit_net, &to0);
        if (next < 0 && !n->n)
            break;                                    /* the sender gave up: nothing left to try */
        fake_now_ms += next > 0 ? (uint64_t)next : 1; /* to the next probe */
    }
    net_run(n); /* the ack, and anything else in flight */
    fake_now_ms += 1;
    return n->delivered > delivered ? sent_total(n) - before : 0;
}

static void net_free(struct net *n)
{
    for (size_t i = 0; i < n->n; i++)
        free(n->q[i].data);
    n->n = 0;
}

/* ---- the tests ------------------------------------------------------------ */

/* Messages of 64 KiB (50 fragments) and 1 MiB (792) through 0, 5 and 20%
 * loss with reordering and 5% duplication: all arrive intact, each within
 * 2 k / (1 - loss) datagrams counted in both directions. */
static void lossy_channel_delivers(void)
{
    static struct net n;
    const double losses[] = {0, 0.05, 0.20};
    const size_t sizes[] = {64u << 10, 1u << 20};
    const unsigned per_size[] = {20, 2};
    for (size_t li = 0; li < 3; li++) {
        for (size_t si = 0; si < 2; si++) {
            prng_state = 0x5eed0000ull + li * 16 + si;
            memset(&n, 0, sizeof n);
            n.loss = losses[li];
            n.dup = 0.05;
            n.end[0] = make_wire(1, (1u << 20) + 64, 100);
            n.end[1] = make_wire(2, (1u << 20) + 64, 200);
            uint32_t k = trp_wire_fragments(n.end[0], sizes[si]);
            double bound = 2.0 * k / (1.0 - losses[li]);
            uint64_t worst = 0;
            unsigned ok = 0;
            for (unsigned m = 0; m < per_size[si]; m++) {
                uint8_t *msg = pattern(sizes[si], m + (uint32_t)li);
                uint64_t cost = send_through(&n, 2, msg, sizes[si]);
                ok += cost > 0;
                CHECKF(cost > 0, "loss %.2f size %zu message %u not delivered", losses[li],
                       sizes[si], m);
                CHECKF((double)cost <= bound, "loss %.2f size %zu: %llu datagrams > %.0f",
                       losses[li], sizes[si], (unsigned long long)cost, bound);
                worst = cost > worst ? cost : worst;
                free(msg);
            }
            CHECK(n.corrupt == 0);
            CHECK(counters_add_up(n.end[0]) && counters_add_up(n.end[1]));
            /* acked messages are let go at once */
            CHECK(trp_wire_counters_get(n.end[0])->kept_messages == 0);
            printf("# loss %.0f%% %zu KiB (k=%u): %u/%u delivered, worst %llu datagrams (bound "
                   "%.0f), sent %llu resent %llu nacks %llu\n",
                   losses[li] * 100, sizes[si] >> 10, k, ok, per_size[si],
                   (unsigned long long)worst, bound,
                   (unsigned long long)trp_wire_counters_get(n.end[0])->sent_datagrams,
                   (unsigned long long)trp_wire_counters_get(n.end[0])->resent_datagrams,
                   (unsigned long long)trp_wire_counters_get(n.end[1])->nacks_sent);
            net_free(&n);
            trp_wire_free(n.end[0]);
            trp_wire_free(n.end[1]);
        }
    }
}

/* A client (outside the config) and a node, both ways, at 20% loss. */
static void client_and_node_recover(void)
{
    static struct net n;
    memset(&n, 0, sizeof n);
    prng_state = 0xc11e47ull;
    n.loss = 0.2;
    n.dup = 0.05;
    n.end[0] = make_wire(CLIENT_ID, 1u << 20, 300);
    n.end[1] = make_wire(2, 1u << 20, 400);
    uint8_t *msg = pattern(200000, 5);
    CHECK(send_through(&n, 2, msg, 200000) > 0); /* client -> node (a big append) */
    /* node -> client (a read stream's entries), the node knowing the client now */
    trp_wire *t = n.end[0];
    n.end[0] = n.end[1];
    n.end[1] = t;
    CHECK(send_through(&n, CLIENT_ID, msg, 200000) > 0);
    CHECK(n.corrupt == 0);
    CHECK(counters_add_up(n.end[0]) && counters_add_up(n.end[1]));
    free(msg);
    net_free(&n);
    trp_wire_free(n.end[0]);
    trp_wire_free(n.end[1]);
}

struct capture {
    struct dgram d[4096];
    size_t n;
};

static int capture_emit(void *ctx, uint64_t to, const uint8_t *d, size_t len)
{
    struct capture *c = ctx;
    (void)to;
    if (c->n == 4096)
        return TRP_ENOMEM;
    c->d[c->n].data = malloc(len);
    memcpy(c->d[c->n].data, d, len);
    c->d[c->n].len = len;
    c->n++;
    return 0;
}

static void capture_clear(struct capture *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->d[i].data);
    c->n = 0;
}

static int open_into(trp_wire *w, const struct dgram *d, struct capture *answers)
{
    uint64_t from;
    const uint8_t *msg;
    size_t len;
    return trp_wire_open_ex(w, d->data, d->len, capture_emit, answers, &from, &msg, &len);
}

/* Partial messages and NACK floods stay within their bounds: the receiver's
 * partial bytes, the sender's kept bytes (per peer and in total), the resend
 * budget per message; replayed NACKs are stale, NACKs past the budget or
 * for unknown messages are counted as refused. */
static void memory_and_resends_bounded(void)
{
    static struct capture cap, ans, res;
    trp_wire_params p;
    trp_wire_params_default(&p);
    memset(p.key, 9, sizeof p.key);
    memset(p.cluster_id, 4, sizeof p.cluster_id);
    p.peer_ids = ids;
    p.npeers = 3;
    p.max_datagram = 1400;
    p.max_message = 64u << 10;
    p.rand = fake_rand;
    p.now_ms = fake_clock;
    p.partial_bytes_max = 128u << 10;
    p.kept_bytes_per_peer = 100u << 10;
    p.kept_bytes_max = 150u << 10;
    trp_wire *tx, *rx, *tx3;
    trp_err e;
    p.self_id = 1;
    p.boot_epoch = 10;
    REQUIRE(trp_wire_new(&tx, &p, &e) == TRP_OK);
    p.self_id = 3;
    REQUIRE(trp_wire_new(&tx3, &p, &e) == TRP_OK);
    p.self_id = 2;
    p.boot_epoch = 20;
    REQUIRE(trp_wire_new(&rx, &p, &e) == TRP_OK);
    uint8_t *msg = pattern(60000, 1);
    const trp_wire_counters *tc = trp_wire_counters_get(tx), *rc = trp_wire_counters_get(rx);
    /* many messages, never acked: kept bytes stay bounded, per peer too */
    for (int i = 0; i < 200; i++) {
        REQUIRE(trp_wire_seal(tx, i % 2 ? 2 : 3, msg, 40000 + (size_t)i * 97, capture_emit, &cap,
                              &e) == TRP_OK);
        CHECK(tc->kept_bytes <= p.kept_bytes_max);
        /* the receiver gets all but the last fragment: partial messages pile up */
        if (i % 2)
            for (size_t k = 0; k + 1 < cap.n; k++)
                open_into(rx, &cap.d[k], &ans);
        CHECK(rc->partial_bytes <= p.partial_bytes_max);
        capture_clear(&cap);
        capture_clear(&ans);
    }
    CHECK(tc->kept_given_up > 0);
    CHECK(rc->partial_evicted > 0);
    /* the same from two senders: the total holds */
    for (int i = 0; i < 50; i++) {
        REQUIRE(trp_wire_seal(tx3, 2, msg, 60000, capture_emit, &cap, &e) == TRP_OK);
        for (size_t k = 0; k + 1 < cap.n; k++)
            open_into(rx, &cap.d[k], &ans);
        CHECK(rc->partial_bytes <= p.partial_bytes_max);
        capture_clear(&cap);
    }
    CHECK(ans.n == 0); /* no last fragment, no NACK: NACKs only answer a burst's end */

    /* One message whose resends are all lost: NACK, resend, probe, ... The
     * sender stops within its budget however long the receiver asks. */
    fake_now_ms += 60000; /* the messages kept so far time out */
    trp_wire_tick(tx, capture_emit, &cap);
    capture_clear(&cap);
    REQUIRE(tc->kept_messages == 0);
    REQUIRE(trp_wire_seal(tx, 2, msg, 60000, capture_emit, &cap, &e) == TRP_OK);
    uint32_t k = trp_wire_fragments(tx, 60000);
    REQUIRE(cap.n == k);
    uint64_t resent0 = tc->resent_datagrams;
    open_into(rx, &cap.d[0], &ans);
    open_into(rx, &cap.d[k - 1], &ans); /* the last: the receiver NACKs */
    REQUIRE(ans.n == 1);
    struct dgram nack = ans.d[0];
    ans.n = 0;
    CHECK(open_into(tx, &nack, &res) == 0);
    CHECK(res.n == k - 2); /* exactly the missing ones */
    /* the same NACK again (a replay, or the network's duplicate): stale */
    uint64_t stale = trp_wire_counters_get(tx)->drop_stale;
    for (int i = 0; i < 1000; i++)
        open_into(tx, &nack, &res);
    CHECK(trp_wire_counters_get(tx)->drop_stale == stale + 1000);
    CHECK(res.n == k - 2);
    free(nack.data);
    for (int cycle = 0; cycle < 2000; cycle++) {
        /* only the last resent fragment gets through, so the receiver asks again */
        if (res.n) {
            open_into(rx, &res.d[res.n - 1], &ans);
            capture_clear(&res);
        } else {
            fake_now_ms += 30;
            trp_wire_tick(tx, capture_emit, &res); /* a probe */
            trp_wire_tick(rx, capture_emit, &ans);
        }
        for (size_t i = 0; i < ans.n; i++)
            open_into(tx, &ans.d[i], &res);
        capture_clear(&ans);
        CHECK(tc->kept_bytes <= p.kept_bytes_max && rc->partial_bytes <= p.partial_bytes_max);
    }
    capture_clear(&res);
    CHECKF(tc->resent_datagrams - resent0 <= 4ull * k + 6, "resent %llu for k=%u",
           (unsigned long long)(tc->resent_datagrams - resent0), k);
    CHECK(tc->drop_nack > 0 || tc->kept_given_up > 0);
    CHECK(counters_add_up(tx) && counters_add_up(rx));

    /* Authentic NACKs for messages never sent or long gone, hostile rounds:
     * refused or malformed, never answered. */
    REQUIRE(trp_wire_seal(tx, 2, msg, 3000, capture_emit, &cap, &e) == TRP_OK);
    for (size_t i = 0; i < cap.n; i++)
        if (i != 1)
            open_into(rx, &cap.d[i], &ans);
    REQUIRE(ans.n == 1);
    capture_clear(&cap);
    fake_now_ms += 60000; /* the kept message times out */
    trp_wire_tick(tx, capture_emit, &cap);
    CHECK(cap.n == 0 && tc->kept_messages == 0);
    uint64_t refused = tc->drop_nack;
    open_into(tx, &ans.d[0], &res);
    CHECK(tc->drop_nack == refused + 1 && res.n == 0);
    capture_clear(&ans);
    CHECK(counters_add_up(tx) && counters_add_up(rx));
    free(msg);
    trp_wire_free(tx);
    trp_wire_free(tx3);
    trp_wire_free(rx);
}

/* Resent fragments and NACKs whose fields are mutated fail authentication
 * or the public checks; the counters add up and nothing is delivered. */
static void mutated_control_datagrams(void)
{
    static struct capture cap, ans, res;
    trp_wire *tx = make_wire(1, 1u << 16, 10), *rx = make_wire(2, 1u << 16, 20);
    uint8_t *msg = pattern(5000, 3);
    trp_err e;
    REQUIRE(trp_wire_seal(tx, 2, msg, 5000, capture_emit, &cap, &e) == TRP_OK);
    open_into(rx, &cap.d[cap.n - 1], &ans); /* a NACK for the others */
    REQUIRE(ans.n == 1);
    open_into(tx, &ans.d[0], &res); /* resent fragments */
    REQUIRE(res.n == cap.n - 1);
    prng_state = 77;
    const trp_wire_counters *rc = trp_wire_counters_get(rx);
    uint64_t delivered = rc->delivered_messages;
    for (int i = 0; i < 3000; i++) {
        const struct dgram *d = i % 2 ? &res.d[prng() % res.n] : &ans.d[0];
        trp_wire *to = i % 2 ? rx : tx;
        uint8_t buf[1400];
        size_t len = d->len;
        memcpy(buf, d->data, len);
        int flips = 1 + (int)(prng() % 3);
        for (int f = 0; f < flips; f++)
            buf[prng() % len] ^= (uint8_t)(1 + prng() % 255);
        if (i % 7 == 0)
            len = (size_t)(prng() % len);
        struct dgram m = {buf, len, 0};
        static struct capture out;
        open_into(to, &m, &out);
        capture_clear(&out);
        CHECK(counters_add_up(to));
    }
    CHECK(rc->delivered_messages == delivered);
    /* the genuine ones still complete the message */
    int done = 0;
    for (size_t i = 0; i < res.n; i++)
        done += open_into(rx, &res.d[i], &ans);
    CHECK(done == 1);
    capture_clear(&cap);
    capture_clear(&ans);
    capture_clear(&res);
    free(msg);
    trp_wire_free(tx);
    trp_wire_free(rx);
}

/* On a slow link (acks after 200 ms) the sender learns the round trip and
 * does not probe before twice that; on a fast one it probes after 20 ms. */
static void probes_wait_for_the_round_trip(void)
{
    static struct capture frags, acks, probes;
    trp_wire *tx = make_wire(1, 1u << 16, 10), *rx = make_wire(2, 1u << 16, 20);
    uint8_t *msg = pattern(5000, 9);
    trp_err e;
    REQUIRE(trp_wire_seal(tx, 2, msg, 5000, capture_emit, &frags, &e) == TRP_OK);
    fake_now_ms += 30;
    trp_wire_tick(tx, capture_emit, &probes);
    CHECK(probes.n == 1); /* nothing heard for 30 ms: a probe (fast-link default) */
    capture_clear(&probes);
    for (size_t i = 0; i < frags.n; i++)
        open_into(rx, &frags.d[i], &acks);
    REQUIRE(acks.n == 1);
    open_into(tx, &acks.d[0], &probes); /* ack: no clean sample, it was probed */
    capture_clear(&frags);
    capture_clear(&acks);
    /* a slow round trip: the ack comes 200 ms after the send */
    REQUIRE(trp_wire_seal(tx, 2, msg, 5000, capture_emit, &frags, &e) == TRP_OK);
    for (size_t i = 0; i < frags.n; i++)
        open_into(rx, &frags.d[i], &acks);
    fake_now_ms += 200;
    REQUIRE(acks.n == 1);
    open_into(tx, &acks.d[0], &probes);
    CHECK(probes.n == 0 && trp_wire_counters_get(tx)->kept_messages == 0);
    capture_clear(&frags);
    capture_clear(&acks);
    /* the next message is not probed before twice that */
    REQUIRE(trp_wire_seal(tx, 2, msg, 5000, capture_emit, &frags, &e) == TRP_OK);
    fake_now_ms += 100;
    int next = trp_wire_tick(tx, capture_emit, &probes);
    CHECK(probes.n == 0 && next >= 250);
    fake_now_ms += 350;
    trp_wire_tick(tx, capture_emit, &probes);
    CHECK(probes.n == 1);
    capture_clear(&frags);
    capture_clear(&probes);
    free(msg);
    trp_wire_free(tx);
    trp_wire_free(rx);
}

int main(void)
{
    fake_now_ms = 1000;
    RUN(lossy_channel_delivers);
    RUN(client_and_node_recover);
    RUN(memory_and_resends_bounded);
    RUN(mutated_control_datagrams);
    RUN(probes_wait_for_the_round_trip);
    return check_done();
}
