/*
 * wiretest.h: what the wire's tests and tools share: a fake clock, a
 * seedable PRNG that also serves as the wire's randomness, and a wire for
 * one of nodes 1..3 on them. Each program sets fake_now_ms and prng_state
 * where its runs start.
 */
#ifndef TRP_WIRETEST_H
#define TRP_WIRETEST_H

#include "../rng.h"
#include "trp.h"

#include <string.h>

static uint64_t fake_now_ms;
static inline uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now_ms;
}

static uint64_t prng_state;
static inline uint64_t prng(void)
{
    return xorshift64(&prng_state);
}

/* Uniform in [0, 1). */
static inline double chance(void)
{
    return (double)(prng() >> 11) / (double)(1ull << 53);
}

static inline int fake_rand(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++)
        ((uint8_t *)buf)[i] = (uint8_t)prng();
    return 1;
}

/* A wire for self (a node of 1..3, or a client id) on the fake clock and
 * PRNG: key and cluster id filled with key_byte and cluster_byte;
 * clients_max 0 keeps the default. NULL, with err filled, if refused. */
static inline trp_wire *wiretest_new(uint64_t self, uint32_t max_datagram, uint32_t max_message,
                                     uint8_t key_byte, uint8_t cluster_byte, uint64_t epoch,
                                     uint32_t clients_max, trp_err *err)
{
    static const uint64_t nodes[] = {1, 2, 3};
    trp_wire_params p;
    trp_wire_params_default(&p);
    memset(p.key, key_byte, sizeof p.key);
    memset(p.cluster_id, cluster_byte, sizeof p.cluster_id);
    p.self_id = self;
    p.peer_ids = nodes;
    p.npeers = 3;
    if (clients_max)
        p.clients_max = clients_max;
    p.max_datagram = max_datagram;
    p.max_message = max_message;
    p.boot_epoch = epoch;
    p.rand = fake_rand;
    p.now_ms = fake_clock;
    trp_wire *w = NULL;
    return trp_wire_new(&w, &p, err) == TRP_OK ? w : NULL;
}

#endif
