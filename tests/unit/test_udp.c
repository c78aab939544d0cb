/* test_udp.c: two real sockets on 127.0.0.1 carry a 1 MiB message
 * fragmented at 1400 and at 65000 bytes; a client and a node recover lost
 * fragments both ways; the event loop dispatches fds, timers and
 * cross-thread wake-ups. */
#include "../check.h"
#include "trp.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

/* Two distinct ports the kernel just gave us, both held until both are
 * known (tiny race with other processes after closing: acceptable). */
static bool free_ports(unsigned *p1, unsigned *p2)
{
    int fds[2] = {-1, -1};
    unsigned ports[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t l = sizeof a;
        fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
        if (fds[i] >= 0 && bind(fds[i], (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(fds[i], (struct sockaddr *)&a, &l) == 0)
            ports[i] = ntohs(a.sin_port);
    }
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    *p1 = ports[0];
    *p2 = ports[1];
    return ports[0] && ports[1];
}

static trp_config *two_node_config(unsigned max_datagram)
{
    char text[512];
    unsigned p1, p2;
    if (!free_ports(&p1, &p2))
        return NULL;
    snprintf(text, sizeof text,
             "{\"cluster\":\"udptest\",\"max_datagram\":%u,\"nodes\":["
             "{\"id\":1,\"address\":\"127.0.0.1:%u\"},{\"id\":2,\"address\":\"127.0.0.1:%u\"}]}",
             max_datagram, p1, p2);
    trp_config *c = NULL;
    trp_err e;
    if (trp_config_parse(&c, text, strlen(text), "/tmp", &e) != TRP_OK ||
        trp_config_resolve(c, &e) != TRP_OK) {
        printf("# %s\n", e.msg);
        trp_config_free(c);
        return NULL;
    }
    return c;
}

struct receiver {
    trp_wire *w;
    int messages;
    size_t last_len;
    uint64_t last_from;
    const uint8_t *want;
    bool equal;
};

static void on_datagram(void *ctx, const uint8_t *d, size_t len, const struct sockaddr *from,
                        socklen_t fromlen)
{
    struct receiver *r = ctx;
    (void)from;
    (void)fromlen;
    uint64_t id;
    const uint8_t *msg;
    size_t mlen;
    if (trp_wire_open(r->w, d, len, &id, &msg, &mlen) == 1) {
        r->messages++;
        r->last_len = mlen;
        r->last_from = id;
        r->equal = r->want && memcmp(msg, r->want, mlen) == 0;
    }
}

struct sender {
    trp_udp *u, *rx_sock;
    struct receiver *rx;
    int since_flush;
};

/* Queue each datagram; every 32, flush and let the receiver drain, so the
 * test does not depend on how big the kernel lets socket buffers be. */
static int queue_and_pace(void *ctx, uint64_t to, const uint8_t *d, size_t len)
{
    struct sender *s = ctx;
    trp_err e;
    int rc = trp_udp_queue(s->u, to, d, len, &e);
    if (rc)
        return rc;
    if (++s->since_flush == 32) {
        s->since_flush = 0;
        unsigned n;
        if ((rc = trp_udp_flush(s->u, &e)) ||
            (rc = trp_udp_recv(s->rx_sock, on_datagram, s->rx, 100000, &n, &e)))
            return rc;
    }
    return 0;
}

static void drain_until(trp_udp *u, struct receiver *r, int messages)
{
    for (int i = 0; i < 200 && r->messages < messages; i++) {
        struct pollfd p = {.fd = trp_udp_fd(u), .events = POLLIN};
        poll(&p, 1, 10);
        unsigned n;
        trp_err e;
        CHECK(trp_udp_recv(u, on_datagram, r, 100000, &n, &e) == TRP_OK);
    }
}

static void one_mib_over_loopback_at(unsigned max_datagram)
{
    trp_config *cfg = two_node_config(max_datagram);
    REQUIRE(cfg);
    uint8_t key[TRP_KEY_LEN];
    memset(key, 0x42, sizeof key);
    uint64_t ids1[2], ids2[2];
    trp_wire_params p1, p2;
    trp_err e;
    trp_wire *w1 = NULL, *w2 = NULL;
    trp_udp *u1 = NULL, *u2 = NULL;
    CHECK(trp_wire_params_from_config(&p1, cfg, key, 1, 4096, ids1, &e) == TRP_OK);
    CHECK(trp_wire_params_from_config(&p2, cfg, key, 2, 4096, ids2, &e) == TRP_OK);
    CHECK(trp_wire_new(&w1, &p1, &e) == TRP_OK);
    CHECK(trp_wire_new(&w2, &p2, &e) == TRP_OK);
    int rc1 = trp_udp_open(&u1, cfg, 1, &e);
    CHECKF(rc1 == TRP_OK, "%s", e.msg);
    int rc2 = trp_udp_open(&u2, cfg, 2, &e);
    CHECKF(rc2 == TRP_OK, "%s", e.msg);
    if (w1 && w2 && u1 && u2) {
        CHECK(trp_udp_local_port(u2) == cfg->nodes[1].port);
        size_t len = 1u << 20;
        uint8_t *m = malloc(len);
        for (size_t i = 0; i < len; i++)
            m[i] = (uint8_t)(i ^ (i >> 9));
        struct receiver r = {.w = w2, .want = m};
        struct sender s = {.u = u1, .rx_sock = u2, .rx = &r};
        CHECK(trp_wire_seal(w1, 2, m, len, queue_and_pace, &s, &e) == TRP_OK);
        CHECK(trp_udp_flush(u1, &e) == TRP_OK);
        drain_until(u2, &r, 1);
        CHECKF(r.messages == 1,
               "at %u: %d messages, udp sent %llu dropped %llu, wire accepted "
               "%llu",
               max_datagram, r.messages,
               (unsigned long long)trp_udp_counters_get(u1)->sent_datagrams,
               (unsigned long long)trp_udp_counters_get(u1)->send_dropped,
               (unsigned long long)trp_wire_counters_get(w2)->accepted_datagrams);
        CHECK(r.last_len == len && r.equal && r.last_from == 1);
        const trp_udp_counters *c1 = trp_udp_counters_get(u1), *c2 = trp_udp_counters_get(u2);
        CHECK(c1->sent_datagrams == trp_wire_fragments(w1, len));
        CHECK(c2->recv_datagrams == c1->sent_datagrams);
        CHECK(c2->recv_truncated == 0);
        CHECK(c1->rcvbuf > 0 && c1->sndbuf > 0);
        cJSON *j = trp_udp_counters_json(c2);
        CHECK(j && cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "recv_datagrams")) ==
                       (double)c2->recv_datagrams);
        cJSON_Delete(j);

        /* the other direction, through trp_udp_send_message */
        struct receiver r1 = {.w = w1, .want = m};
        CHECK(trp_udp_send_message(u2, w2, 1, m, 5000, &e) == TRP_OK);
        CHECK(trp_udp_flush(u2, &e) == TRP_OK);
        drain_until(u1, &r1, 1);
        CHECK(r1.messages == 1 && r1.last_len == 5000 && r1.equal && r1.last_from == 2);

        /* an oversized datagram is reported one byte over, for wire to drop */
        uint8_t big[65507] = {0};
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (max_datagram < sizeof big && fd >= 0) {
            sendto(fd, big, max_datagram + 10, 0, (const struct sockaddr *)&cfg->nodes[1].addr,
                   cfg->nodes[1].addr_len);
            uint64_t before = trp_wire_counters_get(w2)->drop_oversized;
            for (int i = 0; i < 200 && trp_wire_counters_get(w2)->drop_oversized == before; i++) {
                unsigned n;
                struct pollfd pf = {.fd = trp_udp_fd(u2), .events = POLLIN};
                poll(&pf, 1, 10);
                trp_udp_recv(u2, on_datagram, &r, 10, &n, &e);
            }
            CHECK(trp_wire_counters_get(w2)->drop_oversized == before + 1);
            CHECK(c2->recv_truncated == 1);
        }
        if (fd >= 0)
            close(fd);
        /* refusals */
        CHECK(trp_udp_queue(u1, 9, m, 10, &e) == TRP_EINVAL);
        CHECK(trp_udp_queue(u1, 2, m, max_datagram + 1, &e) == TRP_EINVAL);
        free(m);
    }
    /* a second bind of the same address fails with a message naming it */
    trp_udp *dup = NULL;
    CHECK(trp_udp_open(&dup, cfg, 2, &e) != TRP_OK);
    CHECKF(strstr(e.msg, "bind 127.0.0.1:") != NULL, "%s", e.msg);
    trp_udp_close(u1);
    trp_udp_close(u2);
    trp_wire_free(w1);
    trp_wire_free(w2);
    trp_config_free(cfg);
}

static void one_mib_at_1400(void)
{
    one_mib_over_loopback_at(1400);
}

static void one_mib_at_65000(void)
{
    one_mib_over_loopback_at(65000);
}

/* A client (not in the config) talks to node 1, which replies to the
 * address the request came from. */
struct node_side {
    trp_wire *w;
    trp_udp *u;
    int requests;
    uint64_t client;
};

static void node_on_datagram(void *ctx, const uint8_t *d, size_t len, const struct sockaddr *from,
                             socklen_t fromlen)
{
    struct node_side *n = ctx;
    uint64_t id;
    const uint8_t *msg;
    size_t mlen;
    trp_err e;
    if (trp_wire_open(n->w, d, len, &id, &msg, &mlen) != 1)
        return;
    n->requests++;
    n->client = id;
    /* echo it back: msg may be sealed again as it is (separate buffers) */
    CHECK(trp_udp_send_message_to(n->u, n->w, id, from, fromlen, msg, mlen, &e) == TRP_OK);
    CHECK(trp_udp_flush(n->u, &e) == TRP_OK);
}

static void client_talks_to_node(void)
{
    trp_config *cfg = two_node_config(1400);
    REQUIRE(cfg);
    uint8_t key[TRP_KEY_LEN];
    memset(key, 0x42, sizeof key);
    uint64_t ids_n[2], ids_c[2], cid = trp_wire_new_client_id();
    trp_wire_params pn, pc;
    trp_err e;
    struct node_side n = {0};
    trp_wire *wc = NULL;
    trp_udp *uc = NULL;
    CHECK(trp_wire_params_from_config(&pn, cfg, key, 1, 4096, ids_n, &e) == TRP_OK);
    pn.clients_max = 8;
    CHECK(trp_wire_params_from_config(&pc, cfg, key, cid, 4096, ids_c, &e) == TRP_OK);
    CHECK(trp_wire_new(&n.w, &pn, &e) == TRP_OK && trp_wire_new(&wc, &pc, &e) == TRP_OK);
    CHECK(trp_udp_open(&n.u, cfg, 1, &e) == TRP_OK);
    int rc = trp_udp_open_client(&uc, cfg, &e);
    CHECKF(rc == TRP_OK, "%s", e.msg);
    if (n.w && wc && n.u && uc) {
        struct sockaddr_in local;
        socklen_t ll = sizeof local;
        CHECK(getsockname(trp_udp_fd(uc), (struct sockaddr *)&local, &ll) == 0);
        CHECK(local.sin_addr.s_addr == htonl(INADDR_LOOPBACK) && trp_udp_local_port(uc) != 0);
        uint8_t req[4000];
        for (size_t i = 0; i < sizeof req; i++)
            req[i] = (uint8_t)i;
        CHECK(trp_udp_send_message(uc, wc, 1, req, sizeof req, &e) == TRP_OK);
        CHECK(trp_udp_flush(uc, &e) == TRP_OK);
        for (int i = 0; i < 200 && n.requests == 0; i++) {
            struct pollfd pf = {.fd = trp_udp_fd(n.u), .events = POLLIN};
            unsigned cnt;
            poll(&pf, 1, 10);
            CHECK(trp_udp_recv(n.u, node_on_datagram, &n, 100, &cnt, &e) == TRP_OK);
        }
        CHECK(n.requests == 1 && n.client == cid);
        struct receiver r = {.w = wc, .want = req};
        drain_until(uc, &r, 1);
        CHECK(r.messages == 1 && r.last_from == 1 && r.last_len == sizeof req && r.equal);
    }
    trp_udp_close(uc);
    trp_udp_close(n.u);
    trp_wire_free(wc);
    trp_wire_free(n.w);
    trp_config_free(cfg);
}

/* Both ends lose every 5th datagram they receive (answers included): the
 * wire's NACKs, resends and probes, through trp_udp_open_message and
 * trp_udp_wire_tick, still carry a 150 kB request from a client to node 1
 * and node 1's 150 kB reply back to the client's address. */
struct lossy_end {
    trp_wire *w;
    trp_udp *u;
    unsigned seen;
    int messages;
    bool intact;
    const uint8_t *want;
    size_t want_len;
    bool echo; /* the node: answer each message to where it came from */
};

static void lossy_on_datagram(void *ctx, const uint8_t *d, size_t len, const struct sockaddr *from,
                              socklen_t fromlen)
{
    struct lossy_end *x = ctx;
    if (++x->seen % 5 == 0)
        return; /* lost */
    uint64_t id;
    const uint8_t *msg;
    size_t mlen;
    if (trp_udp_open_message(x->u, x->w, d, len, from, fromlen, &id, &msg, &mlen) != 1)
        return;
    x->messages++;
    x->intact = mlen == x->want_len && memcmp(msg, x->want, mlen) == 0;
    trp_err e;
    if (x->echo)
        CHECK(trp_udp_send_message_to(x->u, x->w, id, from, fromlen, msg, mlen, &e) == TRP_OK);
}

static void lossy_client_and_node(void)
{
    trp_config *cfg = two_node_config(1400);
    REQUIRE(cfg);
    uint8_t key[TRP_KEY_LEN];
    memset(key, 0x43, sizeof key);
    uint64_t ids_n[2], ids_c[2], cid = trp_wire_new_client_id();
    trp_wire_params pn, pc;
    trp_err e;
    static uint8_t req[150000];
    for (size_t i = 0; i < sizeof req; i++)
        req[i] = (uint8_t)(i * 7 + (i >> 8));
    struct lossy_end node = {.want = req, .want_len = sizeof req, .echo = true};
    struct lossy_end client = {.want = req, .want_len = sizeof req};
    CHECK(trp_wire_params_from_config(&pn, cfg, key, 1, 4096, ids_n, &e) == TRP_OK);
    pn.clients_max = 8;
    CHECK(trp_wire_params_from_config(&pc, cfg, key, cid, 4096, ids_c, &e) == TRP_OK);
    CHECK(trp_wire_new(&node.w, &pn, &e) == TRP_OK && trp_wire_new(&client.w, &pc, &e) == TRP_OK);
    CHECK(trp_udp_open(&node.u, cfg, 1, &e) == TRP_OK);
    CHECK(trp_udp_open_client(&client.u, cfg, &e) == TRP_OK);
    if (node.w && client.w && node.u && client.u) {
        CHECK(trp_udp_send_message(client.u, client.w, 1, req, sizeof req, &e) == TRP_OK);
        CHECK(trp_udp_flush(client.u, &e) == TRP_OK);
        for (int i = 0; i < 1000 && client.messages == 0; i++) {
            struct pollfd pf[2] = {{.fd = trp_udp_fd(node.u), .events = POLLIN},
                                   {.fd = trp_udp_fd(client.u), .events = POLLIN}};
            poll(pf, 2, 5);
            unsigned cnt;
            CHECK(trp_udp_recv(node.u, lossy_on_datagram, &node, 1000, &cnt, &e) == TRP_OK);
            CHECK(trp_udp_flush(node.u, &e) == TRP_OK);
            CHECK(trp_udp_recv(client.u, lossy_on_datagram, &client, 1000, &cnt, &e) == TRP_OK);
            CHECK(trp_udp_flush(client.u, &e) == TRP_OK);
            trp_udp_wire_tick(node.u, node.w);
            trp_udp_wire_tick(client.u, client.w);
        }
        CHECK(node.messages == 1 && node.intact);
        CHECK(client.messages == 1 && client.intact);
        const trp_wire_counters *cn = trp_wire_counters_get(node.w),
                                *cc = trp_wire_counters_get(client.w);
        CHECK(cn->nacks_sent > 0 && cc->resent_datagrams > 0); /* client -> node recovered */
        CHECK(cc->nacks_sent > 0 && cn->resent_datagrams > 0); /* node -> client recovered */
    }
    trp_udp_close(client.u);
    trp_udp_close(node.u);
    trp_wire_free(client.w);
    trp_wire_free(node.w);
    trp_config_free(cfg);
}

/* ---- the loop ------------------------------------------------------------- */

struct loop_state {
    trp_loop *loop;
    int timer_fired, wakes, readable, last_signal;
    int timer_id;
    int pipe_r;
};

static void on_timer(void *ctx, int id, uint64_t now)
{
    struct loop_state *s = ctx;
    (void)now;
    s->timer_fired++;
    CHECK(id == s->timer_id);
}

static void on_signal(void *ctx, int signo)
{
    struct loop_state *s = ctx;
    s->last_signal = signo;
}

static void on_wake(void *ctx)
{
    struct loop_state *s = ctx;
    s->wakes++;
}

static void on_readable(void *ctx, int fd, uint32_t events)
{
    struct loop_state *s = ctx;
    char buf[16];
    CHECK(events & EPOLLIN);
    if (read(fd, buf, sizeof buf) > 0)
        s->readable++;
}

static void *waker(void *arg)
{
    struct loop_state *s = arg;
    usleep(20000);
    trp_loop_wake(s->loop);
    usleep(20000);
    trp_loop_stop(s->loop);
    return NULL;
}

static void loop_timers_fds_and_wakeups(void)
{
    struct loop_state s = {0};
    trp_err e;
    REQUIRE(trp_loop_new(&s.loop, on_wake, &s, &e) == TRP_OK);
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    CHECK(trp_loop_add(s.loop, fds[0], EPOLLIN, on_readable, &s, &e) == TRP_OK);
    CHECK(trp_loop_add(s.loop, fds[0], EPOLLIN, on_readable, &s, &e) == TRP_EINVAL);
    CHECK(trp_loop_timer_new(s.loop, on_timer, &s, &s.timer_id, &e) == TRP_OK);

    /* a timer fires once per arm, and not before its deadline */
    trp_loop_timer_arm(s.loop, s.timer_id, trp_loop_now_ms() + 5);
    for (int i = 0; i < 100 && !s.timer_fired; i++)
        CHECK(trp_loop_run_once(s.loop, 1000, &e) == TRP_OK);
    CHECK(s.timer_fired == 1);
    CHECK(trp_loop_run_once(s.loop, 0, &e) == TRP_OK);
    CHECK(s.timer_fired == 1);
    trp_loop_timer_arm(s.loop, s.timer_id, trp_loop_now_ms() + 100000);
    trp_loop_timer_disarm(s.loop, s.timer_id);
    CHECK(trp_loop_run_once(s.loop, 0, &e) == TRP_OK);
    CHECK(s.timer_fired == 1);

    /* an fd becomes readable */
    CHECK(write(fds[1], "x", 1) == 1);
    for (int i = 0; i < 100 && !s.readable; i++)
        CHECK(trp_loop_run_once(s.loop, 1000, &e) == TRP_OK);
    CHECK(s.readable == 1);

    /* another thread wakes the loop, then stops it; run() returns */
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, waker, &s) == 0);
    CHECK(trp_loop_run(s.loop, &e) == TRP_OK);
    pthread_join(t, NULL);
    CHECK(s.wakes >= 1);

    /* signals arrive as callbacks, not as a handler interrupting us */
    static const int sigs[] = {SIGUSR1, SIGUSR2};
    CHECK(trp_loop_add_signals(s.loop, sigs, 2, on_signal, &s, &e) == TRP_OK);
    CHECK(trp_loop_add_signals(s.loop, sigs, 2, on_signal, &s, &e) == TRP_ESTATE);
    CHECK(raise(SIGUSR2) == 0);
    for (int i = 0; i < 100 && !s.last_signal; i++)
        CHECK(trp_loop_run_once(s.loop, 1000, &e) == TRP_OK);
    CHECK(s.last_signal == SIGUSR2);

    CHECK(trp_loop_del(s.loop, fds[0]) == TRP_OK);
    CHECK(trp_loop_del(s.loop, fds[0]) == TRP_EINVAL);
    close(fds[0]);
    close(fds[1]);
    trp_loop_free(s.loop);
}

int main(void)
{
    RUN(one_mib_at_1400);
    RUN(one_mib_at_65000);
    RUN(client_talks_to_node);
    RUN(lossy_client_and_node);
    RUN(loop_timers_fds_and_wakeups);
    return check_done();
}
