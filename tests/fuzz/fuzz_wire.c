/*
 * fuzz_wire.c: libFuzzer target for the datagram decoder (trp_wire_open).
 *
 * The one idea: the input is a sequence of datagrams, not one, so the fuzzer
 * can reach reassembly, the replay window and boot changes. The first byte
 * picks the receiver's max_datagram; the rest is split into datagrams by
 * 2-byte big-endian length prefixes. A few genuine datagrams (sealed with the
 * same key, by node 1 and by a client) are mixed in, so mutations start
 * close to valid input, and so are genuine resent fragments and NACKs, so
 * that recovery is reached: the receiver's answers go to a callback that
 * checks their size. The invariants checked after every datagram: the
 * counters add up; at the end: the answers are bounded by the input.
 */
#include "trp.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static uint64_t clock_ms;
static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return clock_ms;
}

static int fixed_rand(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    memset(buf, 0xA5, len);
    return 1;
}

static trp_wire *make(uint64_t self, uint32_t max_datagram, uint64_t epoch)
{
    static const uint64_t ids[] = {1, 2, 3};
    trp_wire_params p;
    trp_wire_params_default(&p);
    memset(p.key, 7, sizeof p.key);
    memset(p.cluster_id, 1, sizeof p.cluster_id);
    p.self_id = self;
    p.peer_ids = ids;
    p.npeers = 3;
    p.max_datagram = max_datagram;
    p.max_message = 1u << 16;
    p.partial_per_peer = 2;
    p.clients_max = 2;
    p.boot_epoch = epoch;
    p.rand = fixed_rand;
    p.now_ms = fake_clock;
    trp_wire *w = NULL;
    trp_err e;
    if (trp_wire_new(&w, &p, &e) != TRP_OK)
        abort();
    return w;
}

#define SEEDS_MAX 64

struct seed {
    uint8_t d[SEEDS_MAX][1400];
    size_t len[SEEDS_MAX];
    size_t n;
};

static int keep(void *ctx, uint64_t to, const uint8_t *d, size_t len)
{
    struct seed *s = ctx;
    (void)to;
    if (s->n < SEEDS_MAX) {
        memcpy(s->d[s->n], d, len);
        s->len[s->n++] = len;
    }
    return 0;
}

static void check_counters(const trp_wire *w)
{
    const trp_wire_counters *c = trp_wire_counters_get(w);
    if (c->recv_datagrams != c->accepted_datagrams + c->drop_forged + c->drop_stale +
                                 c->drop_malformed + c->drop_oversized + c->drop_wrong_cluster +
                                 c->drop_unknown_sender + c->drop_wrong_receiver + c->drop_nack)
        abort();
}

/* What the receiver answers (NACKs, acks, resent fragments, probes): only
 * looked at, never sent anywhere. Each must fit a datagram. */
struct answers {
    uint32_t max_datagram;
    uint64_t n;
};

static int answer(void *ctx, uint64_t to, const uint8_t *d, size_t len)
{
    struct answers *a = ctx;
    (void)to;
    if (len > a->max_datagram || len < 76 || !d)
        abort();
    a->n++;
    return 0;
}

/* Seal a message of len bytes from `from` to `to`, let a stand-in for `to`
 * (same id, another boot) see its first and last fragments and NACK, and let
 * `from` answer: genuine NACKs and resent fragments for the seed set. */
static void recovery_seeds(trp_wire *from, uint64_t to, uint32_t max_datagram, size_t len,
                           struct seed *out, bool keep_nack)
{
    static struct seed frags, nacks;
    static uint8_t msg[3000];
    memset(msg, 0x5c, sizeof msg);
    frags.n = nacks.n = 0;
    trp_err e;
    if (trp_wire_seal(from, to, msg, len, keep, &frags, &e) || frags.n < 2)
        return;
    trp_wire *twin = make(to, max_datagram, 150);
    uint64_t id;
    const uint8_t *m;
    size_t ml;
    trp_wire_open_ex(twin, frags.d[0], frags.len[0], keep, &nacks, &id, &m, &ml);
    trp_wire_open_ex(twin, frags.d[frags.n - 1], frags.len[frags.n - 1], keep, &nacks, &id, &m,
                     &ml);
    if (nacks.n == 1) {
        if (keep_nack)
            keep(out, to, nacks.d[0], nacks.len[0]);
        else
            trp_wire_open_ex(from, nacks.d[0], nacks.len[0], keep, out, &id, &m, &ml);
    }
    trp_wire_free(twin);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t max_datagram = data[0] & 1 ? 1400 : 300;
    trp_wire *rx = make(2, max_datagram, 200);
    trp_wire *tx = make(1, max_datagram, 100 + (data[0] >> 4));
    static struct seed s;
    s.n = 0;
    uint8_t msg[2000];
    memset(msg, 0x33, sizeof msg);
    trp_err e;
    trp_wire_seal(tx, 2, msg, (size_t)(data[0] >> 1) * 13, keep, &s, &e);
    /* and from a client (not in the config), which the receiver gives a slot */
    trp_wire *client = make(0x8000000000000005ull, max_datagram, 300);
    trp_wire_seal(client, 2, msg, (size_t)(data[0] >> 3) * 7, keep, &s, &e);
    trp_wire_free(client);
    /* resent fragments from node 1 (of a message whose originals are seeds
     * too), and a NACK from node 1 about a message the receiver sent */
    recovery_seeds(tx, 2, max_datagram, 1000, &s, false);
    recovery_seeds(rx, 1, max_datagram, 900, &s, true);
    struct answers a = {max_datagram, 0};
    size_t pos = 1;
    unsigned genuine = 0;
    while (pos + 2 <= size) {
        size_t len = (size_t)data[pos] << 8 | data[pos + 1];
        pos += 2;
        uint64_t from;
        const uint8_t *out;
        size_t out_len;
        if (len >= 0xFFF0 && s.n) { /* "insert genuine datagram k" */
            size_t k = (len - 0xFFF0 + (size_t)genuine * 16) % s.n;
            trp_wire_open_ex(rx, s.d[k], s.len[k], answer, &a, &from, &out, &out_len);
            genuine++;
        } else {
            if (len > size - pos)
                len = size - pos;
            if (trp_wire_open_ex(rx, data + pos, len, answer, &a, &from, &out, &out_len) == 1) {
                if (out_len > 0 && !out)
                    abort();
                if (out_len) /* touch every byte so ASan sees a bad pointer */
                    for (volatile size_t i = 0; i < out_len; i++)
                        (void)out[i];
            }
            pos += len;
        }
        check_counters(rx);
        clock_ms += 97;                /* probes come due, partial messages expire */
        trp_wire_tick(rx, answer, &a); /* probes for what rx sent */
    }
    /* resends are bounded: a few per datagram received, whatever the input */
    if (a.n > 8 * (trp_wire_counters_get(rx)->recv_datagrams + 1) + 64)
        abort();
    trp_wire_free(tx);
    trp_wire_free(rx);
    return 0;
}
