/*
 * wire_loss.c: datagrams a message costs through a lossy channel, with and
 * without the wire's recovery of lost fragments.
 *
 *   wire_loss [MESSAGES [SEED [REORDER]]]
 *
 * For 16 KiB and 1 MiB messages at 0, 5 and 20% loss (datagrams also
 * reordered: each may overtake up to REORDER - 1 others; default 8), prints the datagrams sent per
 * delivered message (both directions: fragments, resent fragments, NACKs, acks): "after":  the
 * receiver answers (trp_wire_open_ex) and the sender probes (trp_wire_tick), as trp-node and the
 * client library do; "before": nobody answers, and the sender seals the whole message again after
 * each silence, as Raft's or the client's retransmission did, up to 200 transmissions (then "not
 * delivered"). The one idea: same channel, same seed, only the recovery differs.
 */
#include "../unit/wiretest.h" /* the fake clock and PRNG */
#include "trp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NET_MAX 8192

struct dgram {
    uint8_t *data;
    size_t len;
    int to;
};

static struct dgram q[NET_MAX];
static size_t qn;
static double loss;
static trp_wire *ends[2];
static int delivered;
static size_t reorder = 8;

struct to {
    int end;
};

static int push(void *ctx, uint64_t to_id, const uint8_t *d, size_t len)
{
    (void)to_id;
    if (qn == NET_MAX)
        return 0;
    q[qn].data = malloc(len);
    memcpy(q[qn].data, d, len);
    q[qn].len = len;
    q[qn].to = ((struct to *)ctx)->end;
    qn++;
    return 0;
}

static void run(int answer)
{
    while (qn) {
        size_t pick = (size_t)(prng() % (qn < reorder ? qn : reorder));
        struct dgram d = q[pick];
        memmove(&q[pick], &q[pick + 1], (qn - pick - 1) * sizeof d);
        qn--;
        if (chance() >= loss) {
            struct to back = {1 - d.to};
            uint64_t from;
            const uint8_t *m;
            size_t ml;
            delivered += trp_wire_open_ex(ends[d.to], d.data, d.len, answer ? push : NULL, &back,
                                          &from, &m, &ml);
        }
        free(d.data);
    }
}

static trp_wire *make(uint64_t self, uint64_t epoch)
{
    static const uint64_t ids[] = {1, 2};
    trp_wire_params p;
    trp_wire_params_default(&p);
    memset(p.key, 1, sizeof p.key);
    p.self_id = self;
    p.peer_ids = ids;
    p.npeers = 2;
    p.max_message = (1u << 20) + 4096;
    p.boot_epoch = epoch;
    p.rand = fake_rand;
    p.now_ms = fake_clock;
    trp_wire *w;
    trp_err e;
    if (trp_wire_new(&w, &p, &e)) {
        fprintf(stderr, "wire_loss: %s\n", e.msg);
        exit(1);
    }
    return w;
}

/* Datagrams per delivered message, or -1 when none was delivered. */
static double measure(size_t size, double l, int recover, int messages, int *lost)
{
    loss = l;
    ends[0] = make(1, 10);
    ends[1] = make(2, 20);
    uint8_t *msg = calloc(1, size);
    delivered = 0;
    *lost = 0;
    struct to fwd = {1}, back = {0};
    trp_err e;
    for (int m = 0; m < messages; m++) {
        int before = delivered;
        for (int tx = 0; delivered == before && tx < 200; tx++) {
            if (!recover || tx == 0)
                trp_wire_seal(ends[0], 2, msg, size, push, &fwd, &e);
            run(recover);
            for (int probe = 0; recover && delivered == before && probe < 64; probe++) {
                int next = trp_wire_tick(ends[0], push, &fwd);
                trp_wire_tick(ends[1], push, &back);
                if (next < 0 && !qn)
                    break;
                fake_now_ms += next > 0 ? (uint64_t)next : 1;
                run(recover);
            }
            fake_now_ms += 100; /* the upper layer's retransmission timeout */
            if (recover)
                break;
        }
        *lost += delivered == before;
    }
    uint64_t sent = trp_wire_counters_get(ends[0])->sent_datagrams +
                    trp_wire_counters_get(ends[1])->sent_datagrams;
    free(msg);
    trp_wire_free(ends[0]);
    trp_wire_free(ends[1]);
    return delivered ? (double)sent / delivered : -1;
}

int main(int argc, char **argv)
{
    fake_now_ms = 1000;
    int messages = argc > 1 ? atoi(argv[1]) : 20;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    if (argc > 3 && atoi(argv[3]) > 0)
        reorder = (size_t)atoi(argv[3]);
    const size_t sizes[] = {16u << 10, 1u << 20};
    const double losses[] = {0, 0.05, 0.20};
    for (size_t si = 0; si < 2; si++)
        for (size_t li = 0; li < 3; li++)
            for (int recover = 1; recover >= 0; recover--) {
                prng_state = 0x9e3779b97f4a7c15ull ^ seed;
                int lost;
                int n =
                    si ? (messages + 3) / 4 : messages; /* 1 MiB: fewer, they are slow to lose */
                double per = measure(sizes[si], losses[li], recover, n, &lost);
                printf("%-6s %4zu KiB loss %2.0f%% k=%u: ", recover ? "after" : "before",
                       sizes[si] >> 10, losses[li] * 100, (unsigned)((sizes[si] + 1323) / 1324));
                if (per < 0)
                    printf("not delivered (%d of %d messages, 200 transmissions each)\n", lost, n);
                else
                    printf("%.1f datagrams per delivered message (k/(1-loss) = %.1f), %d of %d "
                           "lost\n",
                           per, (double)((sizes[si] + 1323) / 1324) / (1 - losses[li]), lost, n);
            }
    return 0;
}
