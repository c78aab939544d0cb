/*
 * chaosproxy: a userspace UDP fault injector in front of every node of a
 * trp cluster, for the Jepsen-style tests in tests/chaos.
 *
 * Usage: chaosproxy -c CONFIG -r RULES [-s SEED] [-S STATS] [-p PIDFILE]
 *
 * For every node of CONFIG that has a `bind` address, the proxy listens on
 * the node's `address` (where its peers send) and forwards to its `bind`
 * (where the node really listens). The clear, authenticated wire header
 * (man/trp.conf.5, WIRE FORMAT) names the sender, so each datagram belongs
 * to one directed link "sender -> the node behind this socket", and each
 * link has its own rule: drop probability, duplicate probability, a fixed
 * delay plus uniform jitter (so datagrams overtake each other), or block.
 * Datagrams from clients (ids with the top bit) and ones too short to carry
 * a header pass untouched: the node decides what to do with those.
 *
 * RULES is re-read on SIGHUP, so tests change the network while the cluster
 * runs. One rule per line, applied in order to every link it matches; each
 * line sets only the fields it names, so later lines refine earlier ones:
 *
 *     # FROM TO  settings...      (FROM, TO: a node id or *)
 *     *   *   drop=0.2 dup=0.05 delay=2 jitter=30
 *     1   3   block               (one way: 3 still reaches 1)
 *     *   *   clear               (back to a perfect network)
 *
 * settings: drop=P dup=P (0..1), delay=MS jitter=MS, block, pass, clear,
 * rate=KBIT (a link of that many kbit/s: datagrams leave it one after the
 * other, each taking its size's time) and queue=KB (what waits for such a
 * link at most, default 100; more is dropped, as a router's full buffer).
 *
 *     *   *   rate=10000 queue=200    (a 10 Mbit/s link, 200 KB of buffer)
 * SIGUSR1 writes per-link counters to STATS; SIGTERM writes them and exits.
 *
 * The one idea: the product never knows the proxy is there. It only sees
 * datagrams late, twice, or never, exactly as a real network may deliver
 * them. The random choices come from one seeded generator consumed in
 * arrival order, so a seed fixes the decisions for a given arrival order
 * (real timing still varies between runs; the seed is printed to replay
 * the fault schedule, not the interleaving).
 */
#include "../rng.h"
#include "trp.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_MAX 200000               /* datagrams held for delay */
#define QUEUE_BYTES_MAX (256u << 20)   /* bytes held for delay */
#define RECV_BATCH 64                  /* datagrams read per socket per wakeup */
#define DGRAM_MAX 65536

struct rule {
    double drop, dup;
    unsigned delay_ms, jitter_ms;
    unsigned rate_kbit, queue_kb; /* 0: no rate limit */
    bool block;
};

struct counters {
    uint64_t received, forwarded, dropped, blocked, duplicated, overflow;
    uint64_t busy_ns; /* a rate-limited link: when it has sent what waits */
};

struct held {
    uint64_t due_ns, order; /* order breaks ties: equal due times keep arrival order */
    int to;                 /* index of the receiving node */
    struct counters *link;  /* the link's counters: forwarded when sent */
    size_t len;
    uint8_t *data;
};

static volatile sig_atomic_t got_hup, got_usr1, got_term;

static struct {
    const trp_config *cfg;
    size_t n;
    int *fd;          /* per node: the socket on its address, or -1 if not proxied */
    struct rule *rules; /* n * n, [from * n + to] */
    struct counters *count; /* n * n, plus clients at index n*n */
    struct counters other;  /* clients and malformed datagrams */
    uint64_t rng;
    struct held *heap;
    size_t nheld, bytes_held;
    uint64_t order;
    const char *rules_path, *stats_path;
} px;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        got_hup = 1;
    else if (sig == SIGUSR1)
        got_usr1 = 1;
    else
        got_term = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64: small, seedable, good enough to pick faults. */
static uint64_t rng_next(void)
{
    return splitmix64(&px.rng);
}

static double rng_unit(void)
{
    return (double)(rng_next() >> 11) / 9007199254740992.0; /* [0, 1) */
}

static int node_index(uint64_t id)
{
    for (size_t i = 0; i < px.n; i++)
        if (px.cfg->nodes[i].id == id)
            return (int)i;
    return -1;
}

/* Parse "ID" or "*" into a node index, -1 for "*"; -2 if unknown. */
static int parse_end(const char *s)
{
    if (strcmp(s, "*") == 0)
        return -1;
    char *end;
    unsigned long long id = strtoull(s, &end, 10);
    if (*end || !*s)
        return -2;
    int i = node_index(id);
    return i < 0 ? -2 : i;
}

static int apply_setting(struct rule *r, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq) {
        if (strcmp(kv, "block") == 0)
            r->block = true;
        else if (strcmp(kv, "pass") == 0)
            r->block = false;
        else if (strcmp(kv, "clear") == 0)
            *r = (struct rule){0};
        else
            return -1;
        return 0;
    }
    size_t klen = (size_t)(eq - kv);
    char *end;
    double v = strtod(eq + 1, &end);
    if (*end || end == eq + 1 || v < 0 || isnan(v))
        return -1;
    if (klen == 4 && strncmp(kv, "drop", 4) == 0 && v <= 1)
        r->drop = v;
    else if (klen == 3 && strncmp(kv, "dup", 3) == 0 && v <= 1)
        r->dup = v;
    else if (klen == 5 && strncmp(kv, "delay", 5) == 0 && v <= 60000)
        r->delay_ms = (unsigned)v;
    else if (klen == 6 && strncmp(kv, "jitter", 6) == 0 && v <= 60000)
        r->jitter_ms = (unsigned)v;
    else if (klen == 4 && strncmp(kv, "rate", 4) == 0 && v <= 100000000)
        r->rate_kbit = (unsigned)v;
    else if (klen == 5 && strncmp(kv, "queue", 5) == 0 && v <= 1000000)
        r->queue_kb = (unsigned)v;
    else
        return -1;
    return 0;
}

/* Read the rules file into a fresh table; on any error keep the old one. */
static void load_rules(void)
{
    FILE *f = fopen(px.rules_path, "r");
    struct rule *t = calloc(px.n * px.n, sizeof *t);
    if (!t) {
        fprintf(stderr, "chaosproxy: out of memory\n");
        if (f)
            fclose(f);
        return;
    }
    if (!f) { /* no file: a perfect network */
        free(px.rules);
        px.rules = t;
        return;
    }
    char line[1024];
    unsigned lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *save, *tok[32];
        int nt = 0;
        for (char *w = strtok_r(line, " \t\r\n", &save); w && nt < 32; w = strtok_r(NULL, " \t\r\n", &save))
            tok[nt++] = w;
        if (nt == 0 || tok[0][0] == '#')
            continue;
        int from = nt >= 2 ? parse_end(tok[0]) : -2, to = nt >= 2 ? parse_end(tok[1]) : -2;
        if (from == -2 || to == -2) {
            fprintf(stderr, "chaosproxy: %s:%u: expected FROM TO settings (ids of nodes or *)\n",
                    px.rules_path, lineno);
            goto bad;
        }
        for (size_t a = 0; a < px.n; a++) {
            for (size_t b = 0; b < px.n; b++) {
                if ((from >= 0 && (size_t)from != a) || (to >= 0 && (size_t)to != b))
                    continue;
                for (int k = 2; k < nt; k++) {
                    if (apply_setting(&t[a * px.n + b], tok[k]) != 0) {
                        fprintf(stderr, "chaosproxy: %s:%u: bad setting '%s'\n", px.rules_path,
                                lineno, tok[k]);
                        goto bad;
                    }
                }
            }
        }
    }
    fclose(f);
    free(px.rules);
    px.rules = t;
    return;
bad:
    fclose(f);
    free(t);
}

static void write_stats(void)
{
    if (!px.stats_path)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", px.stats_path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "# from to received forwarded dropped blocked duplicated overflow\n");
    for (size_t a = 0; a < px.n; a++)
        for (size_t b = 0; b < px.n; b++) {
            const struct counters *c = &px.count[a * px.n + b];
            if (c->received)
                fprintf(f, "%llu %llu %llu %llu %llu %llu %llu %llu\n",
                        (unsigned long long)px.cfg->nodes[a].id,
                        (unsigned long long)px.cfg->nodes[b].id, (unsigned long long)c->received,
                        (unsigned long long)c->forwarded, (unsigned long long)c->dropped,
                        (unsigned long long)c->blocked, (unsigned long long)c->duplicated,
                        (unsigned long long)c->overflow);
        }
    fprintf(f, "other - %llu %llu 0 0 0 %llu\n", (unsigned long long)px.other.received,
            (unsigned long long)px.other.forwarded, (unsigned long long)px.other.overflow);
    fclose(f);
    rename(tmp, px.stats_path);
}

static bool held_before(const struct held *x, const struct held *y)
{
    return x->due_ns != y->due_ns ? x->due_ns < y->due_ns : x->order < y->order;
}

static void heap_swap(size_t i, size_t j)
{
    struct held t = px.heap[i];
    px.heap[i] = px.heap[j];
    px.heap[j] = t;
}

static void heap_push(struct held h)
{
    size_t i = px.nheld++;
    px.heap[i] = h;
    while (i > 0 && held_before(&px.heap[i], &px.heap[(i - 1) / 2])) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static struct held heap_pop(void)
{
    struct held top = px.heap[0];
    px.heap[0] = px.heap[--px.nheld];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < px.nheld && held_before(&px.heap[l], &px.heap[m]))
            m = l;
        if (r < px.nheld && held_before(&px.heap[r], &px.heap[m]))
            m = r;
        if (m == i)
            break;
        heap_swap(i, m);
        i = m;
    }
    return top;
}

static bool forward(int to, const uint8_t *d, size_t len)
{
    const trp_node_config *nc = &px.cfg->nodes[to];
    ssize_t w = sendto(px.fd[to], d, len, 0, (const struct sockaddr *)&nc->bind_addr, nc->bind_addr_len);
    /* ECONNREFUSED (node down), ENOBUFS, EAGAIN: the datagram is lost, as on a
     * real network; nothing to retry. */
    return w == (ssize_t)len;
}

/* Hold a copy until due, or send it now when there is no delay. */
static void schedule(int to, const uint8_t *d, size_t len, const struct rule *r, struct counters *c,
                     uint64_t now)
{
    uint64_t delay_ns = (uint64_t)r->delay_ms * 1000000u;
    if (r->jitter_ms)
        delay_ns += (uint64_t)(rng_unit() * (double)r->jitter_ms * 1e6);
    if (r->rate_kbit) {
        /* bytes * 8 / (kbit/s * 1000) seconds */
        uint64_t tx_ns = (uint64_t)((double)len * 8e6 / r->rate_kbit);
        uint64_t start = c->busy_ns > now ? c->busy_ns : now;
        double waiting = (double)(start - now) * r->rate_kbit / 8e6; /* bytes ahead of it */
        if (waiting + (double)len > (r->queue_kb ? r->queue_kb : 100) * 1000.0) {
            c->dropped++;
            return;
        }
        c->busy_ns = start + tx_ns;
        delay_ns += c->busy_ns - now;
    }
    if (delay_ns == 0 && px.nheld == 0) {
        if (forward(to, d, len))
            c->forwarded++;
        return;
    }
    if (px.nheld >= QUEUE_MAX || px.bytes_held + len > QUEUE_BYTES_MAX) {
        c->overflow++;
        return;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        c->overflow++;
        return;
    }
    memcpy(copy, d, len);
    px.bytes_held += len;
    heap_push((struct held){
        .due_ns = now + delay_ns, .order = px.order++, .to = to, .link = c, .len = len, .data = copy});
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void on_datagram(int to, const uint8_t *d, size_t len, uint64_t now)
{
    int from = -1;
    if (len >= TRP_WIRE_HEADER_LEN && d[0] == 't' && d[1] == 'W')
        from = node_index(be64(d + 8));
    if (from < 0) { /* a client, or not a trp datagram: not ours to judge */
        px.other.received++;
        if (forward(to, d, len))
            px.other.forwarded++;
        return;
    }
    struct counters *c = &px.count[(size_t)from * px.n + (size_t)to];
    const struct rule *r = &px.rules[(size_t)from * px.n + (size_t)to];
    c->received++;
    if (r->block) {
        c->blocked++;
        return;
    }
    if (r->drop > 0 && rng_unit() < r->drop) {
        c->dropped++;
        return;
    }
    schedule(to, d, len, r, c, now);
    if (r->dup > 0 && rng_unit() < r->dup) {
        c->duplicated++;
        schedule(to, d, len, r, c, now);
    }
}

static void release_due(uint64_t now)
{
    while (px.nheld > 0 && px.heap[0].due_ns <= now) {
        struct held h = heap_pop();
        if (forward(h.to, h.data, h.len))
            h.link->forwarded++;
        px.bytes_held -= h.len;
        free(h.data);
    }
}

static int open_socket(const trp_node_config *nc)
{
    int fd = socket(nc->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1, buf = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    if (bind(fd, (const struct sockaddr *)&nc->addr, nc->addr_len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL, *pid_path = NULL;
    unsigned long long seed = 1;
    int c;
    while ((c = getopt(argc, argv, "c:r:s:S:p:")) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'r': px.rules_path = optarg; break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'S': px.stats_path = optarg; break;
        case 'p': pid_path = optarg; break;
        default:
            fprintf(stderr, "usage: chaosproxy -c CONFIG -r RULES [-s SEED] [-S STATS] [-p PIDFILE]\n");
            return 64;
        }
    }
    if (!config_path || !px.rules_path) {
        fprintf(stderr, "usage: chaosproxy -c CONFIG -r RULES [-s SEED] [-S STATS] [-p PIDFILE]\n");
        return 64;
    }
    trp_err err = {0};
    trp_config *cfg;
    if (trp_config_load(&cfg, config_path, &err) != TRP_OK || trp_config_resolve(cfg, &err) != TRP_OK) {
        fprintf(stderr, "chaosproxy: %s\n", err.msg);
        return 78;
    }
    px.cfg = cfg;
    px.n = cfg->nnodes;
    px.rng = seed;
    px.fd = calloc(px.n, sizeof *px.fd);
    px.count = calloc(px.n * px.n, sizeof *px.count);
    px.heap = calloc(QUEUE_MAX, sizeof *px.heap);
    struct pollfd *pfd = calloc(px.n, sizeof *pfd);
    uint8_t *buf = malloc(DGRAM_MAX);
    if (!px.fd || !px.count || !px.heap || !pfd || !buf) {
        fprintf(stderr, "chaosproxy: out of memory\n");
        return 71;
    }
    size_t proxied = 0;
    for (size_t i = 0; i < px.n; i++) {
        px.fd[i] = -1;
        pfd[i] = (struct pollfd){.fd = -1, .events = POLLIN};
        if (!cfg->nodes[i].bind)
            continue;
        px.fd[i] = pfd[i].fd = open_socket(&cfg->nodes[i]);
        if (px.fd[i] < 0) {
            fprintf(stderr, "chaosproxy: node %llu: cannot listen on %s: %s\n",
                    (unsigned long long)cfg->nodes[i].id, cfg->nodes[i].address, strerror(errno));
            return 71;
        }
        proxied++;
    }
    if (proxied == 0) {
        fprintf(stderr, "chaosproxy: %s: no node has a separate bind address; nothing to proxy\n", config_path);
        return 78;
    }
    load_rules();
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (pid_path) {
        FILE *f = fopen(pid_path, "w");
        if (f) {
            fprintf(f, "%ld\n", (long)getpid());
            fclose(f);
        }
    }
    while (!got_term) {
        if (got_hup) {
            got_hup = 0;
            load_rules();
        }
        if (got_usr1) {
            got_usr1 = 0;
            write_stats();
        }
        uint64_t now = now_ns();
        release_due(now);
        int timeout_ms = -1;
        if (px.nheld > 0) {
            uint64_t wait = px.heap[0].due_ns > now ? px.heap[0].due_ns - now : 0;
            timeout_ms = (int)((wait + 999999) / 1000000);
        }
        int r = poll(pfd, px.n, timeout_ms);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "chaosproxy: poll: %s\n", strerror(errno));
            return 71;
        }
        now = now_ns();
        for (size_t i = 0; i < px.n && r > 0; i++) {
            if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLERR)))
                continue;
            for (int k = 0; k < RECV_BATCH; k++) {
                ssize_t got = recv(pfd[i].fd, buf, DGRAM_MAX, 0);
                if (got < 0) {
                    if (errno == EAGAIN || errno == EWOULDBLOCK)
                        break;
                    continue; /* ECONNREFUSED from an earlier send to a dead node */
                }
                on_datagram((int)i, buf, (size_t)got, now);
            }
        }
    }
    write_stats();
    while (px.nheld > 0)
        free(heap_pop().data);
    for (size_t i = 0; i < px.n; i++)
        if (px.fd[i] >= 0)
            close(px.fd[i]);
    free(px.fd);
    free(px.count);
    free(px.heap);
    free(px.rules);
    free(pfd);
    free(buf);
    trp_config_free(cfg);
    return 0;
}
