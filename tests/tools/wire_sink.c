/*
 * wire_sink.c: be node ID of a cluster at the transport level only: bind
 * its socket, open every datagram, and print the counters. A stand-in for
 * trp-node until the Raft core is joined in, used by tests/cluster/hostile.sh.
 *
 *   wire_sink CONFIG ID EXPECTED [MAX_SECONDS]
 *
 * The one idea: it runs the real event loop (trp_loop) over the real socket
 * (trp_udp) and decoder (trp_wire), and stops once EXPECTED datagrams have
 * arrived (or after MAX_SECONDS, default 20, as a safety net), then prints
 * "ready" first (once bound) and "KEY VALUE" counter lines at the end.
 */
#include "trp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

struct sink {
    trp_loop *loop;
    trp_udp *udp;
    trp_wire *wire;
    uint64_t expected;
    uint64_t messages;
};

static void on_datagram(void *ctx, const uint8_t *d, size_t len, const struct sockaddr *from,
                        socklen_t fromlen)
{
    struct sink *s = ctx;
    uint64_t id;
    const uint8_t *msg;
    size_t mlen;
    (void)from;
    (void)fromlen;
    s->messages += (uint64_t)trp_wire_open(s->wire, d, len, &id, &msg, &mlen);
}

static void on_readable(void *ctx, int fd, uint32_t events)
{
    struct sink *s = ctx;
    unsigned n;
    trp_err e;
    (void)fd;
    (void)events;
    if (trp_udp_recv(s->udp, on_datagram, s, 256, &n, &e))
        fprintf(stderr, "wire_sink: %s\n", e.msg);
    if (trp_wire_counters_get(s->wire)->recv_datagrams >= s->expected)
        trp_loop_stop(s->loop);
}

static void on_deadline(void *ctx, int id, uint64_t now)
{
    struct sink *s = ctx;
    (void)id;
    (void)now;
    fprintf(stderr, "wire_sink: deadline reached\n");
    trp_loop_stop(s->loop);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: wire_sink CONFIG ID EXPECTED [MAX_SECONDS]\n");
        return 64;
    }
    struct sink s = {.expected = strtoull(argv[3], NULL, 10)};
    uint64_t self = strtoull(argv[2], NULL, 10);
    int max_s = argc > 4 ? atoi(argv[4]) : 20;
    trp_config *cfg;
    trp_err e;
    uint8_t key[TRP_KEY_LEN];
    trp_wire_params p;
    int timer;
    uint64_t *ids;
    if (trp_config_load(&cfg, argv[1], &e) || trp_config_resolve(cfg, &e) ||
        trp_key_load(key, cfg->key_file, &e) || !(ids = calloc(cfg->nnodes, sizeof *ids)) ||
        trp_wire_params_from_config(&p, cfg, key, self, 4096, ids, &e) ||
        trp_wire_new(&s.wire, &p, &e) || trp_udp_open(&s.udp, cfg, self, &e) ||
        trp_loop_new(&s.loop, NULL, NULL, &e) ||
        trp_loop_add(s.loop, trp_udp_fd(s.udp), EPOLLIN, on_readable, &s, &e) ||
        trp_loop_timer_new(s.loop, on_deadline, &s, &timer, &e)) {
        fprintf(stderr, "wire_sink: %s\n", e.msg);
        return trp_exit_code(e.code);
    }
    trp_loop_timer_arm(s.loop, timer, trp_loop_now_ms() + (uint64_t)max_s * 1000);
    printf("ready\n");
    fflush(stdout);
    if (trp_loop_run(s.loop, &e)) {
        fprintf(stderr, "wire_sink: %s\n", e.msg);
        return 1;
    }
    const trp_wire_counters *c = trp_wire_counters_get(s.wire);
    printf("recv_datagrams %llu\n", (unsigned long long)c->recv_datagrams);
    printf("accepted %llu\n", (unsigned long long)c->accepted_datagrams);
    printf("messages %llu\n", (unsigned long long)s.messages);
    printf("forged %llu\n", (unsigned long long)c->drop_forged);
    printf("stale %llu\n", (unsigned long long)c->drop_stale);
    printf("malformed %llu\n", (unsigned long long)c->drop_malformed);
    printf("oversized %llu\n", (unsigned long long)c->drop_oversized);
    printf("wrong_cluster %llu\n", (unsigned long long)c->drop_wrong_cluster);
    printf("unknown_sender %llu\n", (unsigned long long)c->drop_unknown_sender);
    printf("wrong_receiver %llu\n", (unsigned long long)c->drop_wrong_receiver);
    printf("nack %llu\n", (unsigned long long)c->drop_nack);
    trp_loop_free(s.loop);
    trp_udp_close(s.udp);
    trp_wire_free(s.wire);
    trp_config_free(cfg);
    free(ids);
    return 0;
}
