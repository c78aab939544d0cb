/*
 * hostile_dgrams.c: send a corpus of hostile datagrams at a node of a
 * cluster, for tests that check a live node survives them and counts them.
 *
 *   hostile_dgrams CONFIG TARGET_ID [COUNT [SEED]]
 *
 * The one idea: every datagram is of a known kind, and none can be
 * authentic, so the target must drop each one and count it under the
 * matching reason: forged (wrong key, flipped bits, claimed sender),
 * wrong_cluster, wrong_receiver, unknown_sender, malformed (garbage,
 * truncated, bad version, bad kind, a resent fragment or NACK with
 * impossible ids), oversized; forged resent fragments too. The tool prints
 * how many of each it
 * sent ("sent KIND N"), so a test can compare with the node's counters.
 * Genuine datagrams are sealed with the real key as another node and then
 * altered; the unaltered original is never sent.
 */
#include "../rng.h"
#include "trp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum kind { FORGED, WRONG_CLUSTER, WRONG_RECEIVER, UNKNOWN_SENDER, MALFORMED, OVERSIZED, NKINDS };
static const char *const kind_names[] = {"forged",         "wrong_cluster", "wrong_receiver",
                                         "unknown_sender", "malformed",     "oversized"};

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    return xorshift64(&rng);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

struct one {
    uint8_t buf[65536];
    size_t len;
};

static int keep_first(void *ctx, uint64_t to, const uint8_t *d, size_t len)
{
    struct one *o = ctx;
    (void)to;
    if (!o->len) {
        memcpy(o->buf, d, len);
        o->len = len;
    }
    return 0;
}

static trp_wire *wire_as(const trp_config *cfg, const uint8_t key[TRP_KEY_LEN], uint64_t self,
                         const uint8_t *cluster_id, uint64_t *ids)
{
    trp_wire_params p;
    trp_err e;
    if (trp_wire_params_from_config(&p, cfg, key, self, 4096, ids, &e)) {
        fprintf(stderr, "hostile_dgrams: %s\n", e.msg);
        exit(1);
    }
    if (cluster_id)
        memcpy(p.cluster_id, cluster_id, TRP_CLUSTER_ID_LEN);
    trp_wire *w;
    if (trp_wire_new(&w, &p, &e)) {
        fprintf(stderr, "hostile_dgrams: %s\n", e.msg);
        exit(1);
    }
    return w;
}

/* Seal a random message of up to max bytes and keep its first datagram. */
static void genuine(trp_wire *w, uint64_t to, struct one *o, size_t max)
{
    uint8_t msg[1024];
    size_t len = next_rand() % (max < sizeof msg ? max : sizeof msg);
    for (size_t i = 0; i < len; i++)
        msg[i] = (uint8_t)next_rand();
    trp_err e;
    o->len = 0;
    if (trp_wire_seal(w, to, msg, len, keep_first, o, &e)) {
        fprintf(stderr, "hostile_dgrams: seal: %s\n", e.msg);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: hostile_dgrams CONFIG TARGET_ID [COUNT [SEED]]\n");
        return 64;
    }
    uint64_t target = strtoull(argv[2], NULL, 10);
    long count = argc > 3 ? atol(argv[3]) : 1000;
    if (argc > 4)
        rng ^= strtoull(argv[4], NULL, 10) * 0x9e3779b97f4a7c15ull;
    trp_config *cfg;
    trp_err e;
    uint8_t key[TRP_KEY_LEN], bad_key[TRP_KEY_LEN];
    if (trp_config_load(&cfg, argv[1], &e) || trp_config_resolve(cfg, &e) ||
        trp_key_load(key, cfg->key_file, &e)) {
        fprintf(stderr, "hostile_dgrams: %s\n", e.msg);
        return 1;
    }
    const trp_node_config *t = trp_config_node(cfg, target);
    if (!t || cfg->nnodes < 2) {
        fprintf(stderr, "hostile_dgrams: need a target id in a config of 2 or more nodes\n");
        return 64;
    }
    uint64_t other = cfg->nodes[0].id == target ? cfg->nodes[1].id : cfg->nodes[0].id;
    uint64_t third = 0; /* a node that is neither, for wrong_receiver */
    for (size_t i = 0; i < cfg->nnodes; i++)
        if (cfg->nodes[i].id != target && cfg->nodes[i].id != other)
            third = cfg->nodes[i].id;
    memcpy(bad_key, key, sizeof key);
    bad_key[0] ^= 0xff;
    uint8_t other_cluster[TRP_CLUSTER_ID_LEN];
    memcpy(other_cluster, cfg->cluster_id, sizeof other_cluster);
    other_cluster[0] ^= 0xff;
    uint64_t *ids = calloc(cfg->nnodes, sizeof *ids);
    trp_wire *good = wire_as(cfg, key, other, NULL, ids);
    trp_wire *wrong_key = wire_as(cfg, bad_key, other, NULL, ids);
    trp_wire *wrong_cluster = wire_as(cfg, key, other, other_cluster, ids);
    int fd = socket(t->addr.ss_family, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("hostile_dgrams: socket");
        return 1;
    }
    long sent[NKINDS] = {0};
    static struct one o;
    size_t maxd = cfg->max_datagram, paced_bytes = 0;
    for (long n = 0; n < count; n++) {
        enum kind k = (enum kind)(next_rand() % NKINDS);
        switch (k) {
        case FORGED:
            switch (next_rand() % 4) {
            case 3: /* a resent fragment (kind 1 or 2) of message 1, under a new packet number */
                genuine(good, target, &o, maxd);
                if (o.len < 77)
                    o.buf[o.len++] = 0; /* a fragment is never empty */
                o.buf[3] = (uint8_t)(1 + next_rand() % 2);
                put_be64(o.buf + 40, 2 + next_rand() % 1000000);
                put_be64(o.buf + 48, 1);
                break;
            case 0:
                genuine(wrong_key, target, &o, maxd);
                break;
            case 1: /* flip a bit of ciphertext or tag: only authentication notices */
                genuine(good, target, &o, maxd);
                o.buf[60 + next_rand() % (o.len - 60)] ^= (uint8_t)(1u << (next_rand() % 8));
                break;
            default: /* claim to be another configured node */
                genuine(good, target, &o, maxd);
                if (third)
                    put_be64(o.buf + 8, third);
                else
                    o.buf[o.len - 1] ^= 1;
                break;
            }
            break;
        case WRONG_CLUSTER:
            genuine(wrong_cluster, target, &o, maxd);
            break;
        case WRONG_RECEIVER:
            genuine(good, target, &o, maxd);
            put_be64(o.buf + 16, target + 1000);
            break;
        case UNKNOWN_SENDER:
            genuine(good, target, &o, maxd);
            put_be64(o.buf + 8, 1ull << 62); /* above any configurable id (2^53 - 1) */
            break;
        case MALFORMED:
            switch (next_rand() % 5) {
            case 3: /* a kind no version 1 sender uses */
                genuine(good, target, &o, maxd);
                o.buf[3] = (uint8_t)(4 + next_rand() % 252);
                break;
            case 4: /* a NACK about message 0, or a resent fragment older than its message */
                genuine(good, target, &o, maxd);
                if (next_rand() % 2) {
                    o.buf[3] = 3;
                    put_be64(o.buf + 48, 0);
                } else {
                    o.buf[3] = 1;
                    put_be64(o.buf + 48, UINT64_MAX);
                }
                break;
            case 0: /* garbage shorter than a header, or with a wrong magic */
                o.len = next_rand() % (maxd + 1);
                for (size_t i = 0; i < o.len; i++)
                    o.buf[i] = (uint8_t)next_rand();
                if (o.len > 0)
                    o.buf[0] = 'X';
                break;
            case 1: /* truncated */
                genuine(good, target, &o, maxd);
                o.len = next_rand() % o.len;
                if (o.len >= 2)
                    o.buf[2] = 99; /* and a wrong version, so it is malformed whatever its length */
                break;
            default:
                genuine(good, target, &o, maxd);
                o.buf[2] = 99;
                break;
            }
            break;
        case OVERSIZED:
            o.len = maxd + 1 + next_rand() % 64;
            if (o.len > 65507)
                o.len = 65507;
            memset(o.buf, 0, o.len);
            if (o.len <= maxd) { /* max_datagram 65507: cannot exceed it over UDP */
                k = MALFORMED;
                o.len = 3;
            }
            break;
        case NKINDS:
            break;
        }
        /* A datagram the kernel refuses for lack of buffer (ENOBUFS) is sent
         * again after a pause, so the receiver can expect exactly COUNT. */
        for (int tries = 0; tries < 1000; tries++) {
            ssize_t r = sendto(fd, o.buf, o.len, 0, (const struct sockaddr *)&t->addr, t->addr_len);
            if (r == (ssize_t)o.len) {
                sent[k]++;
                break;
            }
            if (r < 0 && errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
                fprintf(stderr, "hostile_dgrams: sendto: %s\n", strerror(errno));
                break;
            }
            usleep(1000);
        }
        /* Pace at about 64 datagrams or 64 KiB per millisecond: this tests the
         * decoder, not the receiver's socket buffer, which then holds over
         * 100 ms of traffic if the receiver is not scheduled for a while. */
        paced_bytes += o.len;
        if (n % 64 == 63 || paced_bytes >= 65536) {
            usleep(1000);
            paced_bytes = 0;
        }
    }
    for (int k = 0; k < NKINDS; k++)
        printf("sent %s %ld\n", kind_names[k], sent[k]);
    close(fd);
    trp_wire_free(good);
    trp_wire_free(wrong_key);
    trp_wire_free(wrong_cluster);
    free(ids);
    trp_config_free(cfg);
    return 0;
}
