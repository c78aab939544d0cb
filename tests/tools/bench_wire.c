/*
 * bench_wire.c: how fast the datagram layer seals and opens, alone and
 * through two real UDP sockets on 127.0.0.1, at max_datagram 1400 and 65000.
 *
 *   bench_wire [MESSAGES]        (default 64 messages of 1 MiB per figure)
 *
 * The one idea: report, never assert. The socket figure runs sender and
 * receiver in one thread, draining the receiver after every batch, so it
 * measures the CPU cost of the whole path (seal, sendmmsg, recvmmsg, open,
 * reassemble) without loss; it is not a network throughput test.
 */
#include "trp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct ring {
    uint8_t *buf;
    size_t *len;
    size_t n, cap, stride;
};

static int to_ring(void *ctx, uint64_t to, const uint8_t *d, size_t len)
{
    struct ring *r = ctx;
    (void)to;
    if (r->n == r->cap)
        return TRP_ENOMEM;
    memcpy(r->buf + r->n * r->stride, d, len);
    r->len[r->n++] = len;
    return 0;
}

static int discard(void *ctx, uint64_t to, const uint8_t *d, size_t len)
{
    (void)to;
    (void)d;
    *(size_t *)ctx += 1;
    (void)len;
    return 0;
}

static void die(const char *what, const trp_err *e)
{
    fprintf(stderr, "bench_wire: %s: %s\n", what, e ? e->msg : "failed");
    exit(1);
}

static trp_config *config_for(unsigned max_datagram)
{
    unsigned ports[2];
    for (int i = 0; i < 2; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t l = sizeof a;
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (void *)&a, &l))
            die("free port", NULL);
        ports[i] = ntohs(a.sin_port);
        close(fd);
    }
    char text[512];
    snprintf(text, sizeof text,
             "{\"cluster\":\"bench\",\"max_datagram\":%u,\"nodes\":[{\"id\":1,\"address\":"
             "\"127.0.0.1:%u\"},{\"id\":2,\"address\":\"127.0.0.1:%u\"}]}",
             max_datagram, ports[0], ports[1]);
    trp_config *c;
    trp_err e;
    if (trp_config_parse(&c, text, strlen(text), ".", &e) || trp_config_resolve(c, &e))
        die("config", &e);
    return c;
}

struct rx {
    trp_wire *w;
    int messages;
};

static void on_dgram(void *ctx, const uint8_t *d, size_t len, const struct sockaddr *from,
                     socklen_t fl)
{
    struct rx *r = ctx;
    uint64_t id;
    const uint8_t *m;
    size_t ml;
    (void)from;
    (void)fl;
    r->messages += trp_wire_open(r->w, d, len, &id, &m, &ml);
}

struct tx {
    trp_udp *u, *peer;
    struct rx *rx;
    unsigned since;
};

static int to_udp(void *ctx, uint64_t to, const uint8_t *d, size_t len)
{
    struct tx *t = ctx;
    trp_err e;
    if (trp_udp_queue(t->u, to, d, len, &e))
        die("queue", &e);
    if (++t->since == 32) {
        unsigned n;
        t->since = 0;
        if (trp_udp_flush(t->u, &e) || trp_udp_recv(t->peer, on_dgram, t->rx, 1u << 20, &n, &e))
            die("flush/recv", &e);
    }
    return 0;
}

static void bench(unsigned max_datagram, int messages)
{
    size_t len = 1u << 20;
    uint8_t *m = malloc(len);
    for (size_t i = 0; i < len; i++)
        m[i] = (uint8_t)(i * 7);
    trp_config *cfg = config_for(max_datagram);
    uint8_t key[TRP_KEY_LEN];
    memset(key, 9, sizeof key);
    uint64_t ids1[2], ids2[2];
    trp_wire_params p1, p2;
    trp_wire *w1 = NULL, *w2 = NULL;
    trp_err e;
    if (trp_wire_params_from_config(&p1, cfg, key, 1, 4096, ids1, &e) ||
        trp_wire_params_from_config(&p2, cfg, key, 2, 4096, ids2, &e) ||
        trp_wire_new(&w1, &p1, &e) || trp_wire_new(&w2, &p2, &e))
        die("wire", &e);

    /* seal only */
    size_t dgrams = 0;
    double t0 = now_s();
    for (int i = 0; i < messages; i++)
        if (trp_wire_seal(w1, 2, m, len, discard, &dgrams, &e))
            die("seal", &e);
    double seal_s = now_s() - t0;

    /* open only: seal one message into a ring, open it, repeat (sealing untimed) */
    struct ring r = {.stride = max_datagram, .cap = trp_wire_fragments(w1, len)};
    r.buf = malloc(r.cap * r.stride);
    r.len = malloc(r.cap * sizeof *r.len);
    double open_s = 0;
    int got = 0;
    for (int i = 0; i < messages; i++) {
        r.n = 0;
        if (trp_wire_seal(w1, 2, m, len, to_ring, &r, &e))
            die("seal", &e);
        double t1 = now_s();
        for (size_t k = 0; k < r.n; k++) {
            uint64_t id;
            const uint8_t *out;
            size_t ol;
            got += trp_wire_open(w2, r.buf + k * r.stride, r.len[k], &id, &out, &ol);
        }
        open_s += now_s() - t1;
    }
    if (got != messages)
        die("open lost messages", NULL);

    /* through two sockets */
    trp_udp *u1 = NULL, *u2 = NULL;
    if (trp_udp_open(&u1, cfg, 1, &e) || trp_udp_open(&u2, cfg, 2, &e))
        die("udp", &e);
    struct rx rx = {.w = w2};
    struct tx tx = {.u = u1, .peer = u2, .rx = &rx};
    double t2 = now_s();
    for (int i = 0; i < messages; i++) {
        if (trp_wire_seal(w1, 2, m, len, to_udp, &tx, &e))
            die("seal", &e);
        unsigned n;
        if (trp_udp_flush(u1, &e) || trp_udp_recv(u2, on_dgram, &rx, 1u << 20, &n, &e))
            die("flush/recv", &e);
    }
    double udp_s = now_s() - t2;
    double mb = (double)messages * (double)len / 1e6;
    double per = (double)dgrams / messages;
    printf("max_datagram %5u: %4.0f datagrams per MiB | seal %5.0f MB/s %7.0f dgram/s | "
           "open %5.0f MB/s %7.0f dgram/s | udp loopback %5.0f MB/s %7.0f dgram/s, "
           "%d/%d messages (rcvbuf %d)\n",
           max_datagram, per, mb / seal_s, dgrams / seal_s, mb / open_s, dgrams / open_s,
           mb / udp_s, (double)trp_udp_counters_get(u1)->sent_datagrams / udp_s, rx.messages,
           messages, trp_udp_counters_get(u2)->rcvbuf);
    trp_udp_close(u1);
    trp_udp_close(u2);
    trp_wire_free(w1);
    trp_wire_free(w2);
    trp_config_free(cfg);
    free(r.buf);
    free(r.len);
    free(m);
}

int main(int argc, char **argv)
{
    int messages = argc > 1 ? atoi(argv[1]) : 64;
    if (messages < 1)
        messages = 1;
    bench(1400, messages);
    bench(65000, messages);
    return 0;
}
