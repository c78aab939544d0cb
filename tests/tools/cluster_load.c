/*
 * cluster_load.c: load driver for `make bench` (tests/bench/cluster.sh),
 * over the client library (trp_client.h).
 *
 *   cluster_load CONFIG seq N              one client, one append at a time:
 *                                          p50/p99 latency and rate
 *   cluster_load CONFIG conc CLIENTS N     CLIENTS clients, each its own session and
 *                                          socket appending one at a time, driven
 *                                          by one epoll thread: total rate
 *   cluster_load CONFIG failover BIN TRIALS   starts the nodes itself, then per
 *                                          trial kill -9s the leader and times
 *                                          until the next append commits
 *                                          (FAILOVER_VERBOSE=1: each trial's time on
 *                                          stderr, and the nodes' state lines)
 *   cluster_load - udprtt N                loopback UDP round trip (median us)
 *   cluster_load - udpecho CLIENTS N       CLIENTS sockets driven as conc drives its
 *                                          clients, one 128-byte datagram in flight
 *                                          each, against a bare echo process
 *                                          (recvmmsg/sendmmsg): the rate this
 *                                          machine allows the conc workload with no
 *                                          Raft, crypto or disk at all
 *   cluster_load - etcd PORT seq N | etcd PORT conc CLIENTS N
 *                                          the same workloads as puts through
 *                                          etcd's v3 HTTP gateway (keep-alive)
 *
 * The one idea: it measures what a user's client sees (commit acknowledged
 * at the client), and reports; it asserts nothing about time.
 */
#include "trp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct one {
    int done, status;
};

static void on_done(void *arg, int status, const mpz_t seq, const uint8_t hash[TRP_HASH_LEN])
{
    (void)seq;
    (void)hash;
    struct one *o = arg;
    o->done = 1;
    o->status = status;
}

/* Append one entry and wait for it; its latency in us, or 0 on failure. */
static uint64_t append_one(trp_client *c, const char *data, size_t len)
{
    trp_err err;
    struct one o = {0};
    uint64_t t0 = now_us();
    if (trp_client_submit(c, data, len, NULL, &err))
        return 0;
    while (!o.done)
        if (trp_client_pump(c, -1, -1, on_done, &o, &err))
            return 0;
    return o.status == TRP_OK ? now_us() - t0 : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int run_seq(const char *config, long n)
{
    trp_client *c;
    trp_err err;
    if (trp_client_open(&c, config, 0, 10000, &err)) {
        fprintf(stderr, "cluster_load: %s\n", err.msg);
        return 1;
    }
    uint64_t *lat = calloc((size_t)n, sizeof *lat);
    char entry[100];
    memset(entry, 'x', sizeof entry);
    append_one(c, entry, sizeof entry); /* find the leader first */
    uint64_t t0 = now_us();
    for (long i = 0; i < n; i++)
        if (!(lat[i] = append_one(c, entry, sizeof entry))) {
            fprintf(stderr, "cluster_load: append failed\n");
            return 1;
        }
    double secs = (double)(now_us() - t0) / 1e6;
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    printf("seq n %ld p50_us %llu p99_us %llu rate %.0f\n", n, (unsigned long long)lat[n / 2],
           (unsigned long long)lat[n * 99 / 100], (double)n / secs);
    free(lat);
    trp_client_close(c);
    return 0;
}

/* CLIENTS independent clients (each its own session and socket, one append
 * in flight), all driven by one thread through epoll, as load generators
 * such as wrk do: a thread per client would measure the machine's thread
 * wakeups (two vCPUs) more than the cluster. */
struct lclient {
    trp_client *c;
    long left;
    bool busy;
};

static void on_done_conc(void *arg, int status, const mpz_t seq, const uint8_t hash[TRP_HASH_LEN])
{
    (void)seq;
    (void)hash;
    struct lclient *l = arg;
    l->busy = false;
    l->left = status == TRP_OK ? l->left - 1 : -1;
}

static int conc_step(struct lclient *l, const char *entry, size_t len)
{
    trp_err err;
    if (trp_client_pump(l->c, 0, -1, on_done_conc, l, &err))
        return -1;
    if (l->left > 0 && !l->busy) { /* the answer came: the next append goes out */
        if (trp_client_submit(l->c, entry, len, NULL, &err))
            return -1;
        l->busy = true;
        trp_client_flush(l->c); /* its answer is at least a round trip away */
    }
    return l->left < 0 ? -1 : 0;
}

static int run_conc(const char *config, int clients, long n)
{
    struct lclient *l = calloc((size_t)clients, sizeof *l);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    char entry[100];
    memset(entry, 'y', sizeof entry);
    trp_err err;
    for (int i = 0; i < clients; i++) {
        if (trp_client_open(&l[i].c, config, 0, 10000, &err)) {
            fprintf(stderr, "cluster_load: %s\n", err.msg);
            return 1;
        }
        l[i].left = n / clients;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, trp_client_fd(l[i].c), &ev);
    }
    int failed = 0, active = clients;
    uint64_t t0 = now_us(), all_at = 0;
    for (int i = 0; i < clients; i++)
        failed += conc_step(&l[i], entry, sizeof entry) != 0;
    while (active > 0 && !failed) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 20);
        for (int e = 0; e < k; e++)
            failed += conc_step(&l[evs[e].data.u32], entry, sizeof entry) != 0;
        if (now_us() - all_at > 20000) { /* retries are due on the clock, not on input */
            all_at = now_us();
            for (int i = 0; i < clients; i++)
                if (l[i].busy || l[i].left > 0)
                    failed += conc_step(&l[i], entry, sizeof entry) != 0;
        }
        active = 0;
        for (int i = 0; i < clients; i++)
            active += l[i].left > 0 || l[i].busy;
    }
    double secs = (double)(now_us() - t0) / 1e6;
    printf("conc clients %d n %ld rate %.0f failed %d\n", clients, n / clients * clients,
           (double)(n / clients * clients) / secs, failed);
    for (int i = 0; i < clients; i++)
        trp_client_close(l[i].c);
    close(ep);
    free(l);
    return failed != 0;
}

/* ---- failover ---------------------------------------------------------------- */

static pid_t start_node(const char *bin, const char *config, uint64_t id)
{
    pid_t p = fork();
    if (p == 0) {
        char path[4096], ids[32];
        snprintf(path, sizeof path, "%s/trp-node", bin);
        snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
        if (getenv("FAILOVER_VERBOSE"))
            execl(path, "trp-node", "-c", config, "-i", ids, (char *)NULL);
        execl(path, "trp-node", "-q", "-c", config, "-i", ids, (char *)NULL);
        _exit(127);
    }
    return p;
}

static uint64_t find_leader(trp_client *c)
{
    const uint64_t *ids;
    size_t n = trp_client_nodes(c, &ids);
    for (int round = 0; round < 100; round++) {
        for (size_t i = 0; i < n; i++) {
            char *json = NULL;
            trp_err err;
            if (trp_client_status(c, ids[i], &json, &err) == 0) {
                bool leader = strstr(json, "\"role\":\"leader\"") != NULL;
                free(json);
                if (leader)
                    return ids[i];
            }
        }
        usleep(50000);
    }
    return 0;
}

static int run_failover(const char *config, const char *bin, int trials)
{
    trp_client *c, *probe;
    trp_err err;
    if (trp_client_open(&c, config, 0, 20000, &err) ||
        trp_client_open(&probe, config, 0, 200, &err)) {
        fprintf(stderr, "cluster_load: %s\n", err.msg);
        return 1;
    }
    const uint64_t *ids;
    size_t n = trp_client_nodes(c, &ids);
    pid_t *pids = calloc(n, sizeof *pids);
    for (size_t i = 0; i < n; i++)
        pids[i] = start_node(bin, config, ids[i]);
    uint64_t *ms = calloc((size_t)trials, sizeof *ms);
    char entry[100];
    memset(entry, 'f', sizeof entry);
    int done = 0, rc = 0;
    for (int t = 0; t < trials; t++) {
        uint64_t leader = find_leader(probe);
        if (!leader || !append_one(c, entry, sizeof entry)) {
            fprintf(stderr, "cluster_load: no leader before trial %d\n", t);
            rc = 1;
            break;
        }
        size_t li = 0;
        while (ids[li] != leader)
            li++;
        uint64_t t0 = now_us();
        kill(pids[li], SIGKILL);
        waitpid(pids[li], NULL, 0);
        if (!append_one(c, entry, sizeof entry)) {
            fprintf(stderr, "cluster_load: no commit after killing the leader\n");
            rc = 1;
            break;
        }
        ms[done++] = (now_us() - t0) / 1000;
        if (getenv("FAILOVER_VERBOSE"))
            fprintf(stderr, "trial %d: leader %llu killed, next commit after %llu ms\n", t,
                    (unsigned long long)leader, (unsigned long long)ms[done - 1]);
        pids[li] = start_node(bin, config, leader);
        usleep(300000); /* let it rejoin before the next trial */
    }
    for (size_t i = 0; i < n; i++) {
        kill(pids[i], SIGTERM);
        waitpid(pids[i], NULL, 0);
    }
    if (done) {
        qsort(ms, (size_t)done, sizeof *ms, cmp_u64);
        printf("failover trials %d median_ms %llu max_ms %llu min_ms %llu\n", done,
               (unsigned long long)ms[done / 2], (unsigned long long)ms[done - 1],
               (unsigned long long)ms[0]);
    }
    free(ms);
    free(pids);
    trp_client_close(c);
    trp_client_close(probe);
    return rc;
}

/* ---- machine limit: UDP round trip ---------------------------------------------- */

static void *echo_main(void *arg)
{
    int fd = *(int *)arg;
    char b[64];
    struct sockaddr_in from;
    for (;;) {
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fd, b, sizeof b, 0, (struct sockaddr *)&from, &fl);
        if (n <= 0 || b[0] == 'q')
            return NULL;
        sendto(fd, b, (size_t)n, 0, (struct sockaddr *)&from, fl);
    }
}

/* The echo process of udpecho: batches of datagrams in, the same out. */
static void echo_batches(int fd)
{
    enum { BATCH = 64 };
    static char bufs[BATCH][256];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_in from[BATCH];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){bufs[i], sizeof bufs[i]};
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &from[i],
                                              .msg_namelen = sizeof from[i],
                                              .msg_iov = &iov[i],
                                              .msg_iovlen = 1};
        }
        int k = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (k <= 0)
            _exit(1);
        for (int i = 0; i < k; i++) {
            if (bufs[i][0] == 'q')
                _exit(0);
            iov[i].iov_len = msgs[i].msg_len;
        }
        sendmmsg(fd, msgs, (unsigned)k, 0);
    }
}

static int run_udpecho(int clients, long n)
{
    int srv = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (clients < 1 || bind(srv, (struct sockaddr *)&a, sizeof a) ||
        getsockname(srv, (struct sockaddr *)&a, &al))
        return 1;
    pid_t echo = fork();
    if (echo == 0)
        echo_batches(srv);
    close(srv);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int *fds = calloc((size_t)clients, sizeof *fds);
    long *left = calloc((size_t)clients, sizeof *left);
    char b[256];
    memset(b, 'e', 128);
    for (int i = 0; i < clients; i++) {
        fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        connect(fds[i], (struct sockaddr *)&a, sizeof a);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
        left[i] = n / clients;
    }
    uint64_t t0 = now_us();
    for (int i = 0; i < clients; i++)
        send(fds[i], b, 128, 0);
    long done = 0, want = n / clients * clients;
    while (done < want) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 1000);
        if (k <= 0)
            break; /* a datagram lost: report what was done */
        for (int e = 0; e < k; e++) {
            int i = (int)evs[e].data.u32;
            while (recv(fds[i], b, sizeof b, 0) > 0) {
                done++;
                if (--left[i] > 0)
                    send(fds[i], b, 128, 0);
            }
        }
    }
    double secs = (double)(now_us() - t0) / 1e6;
    b[0] = 'q';
    send(fds[0], b, 1, 0);
    waitpid(echo, NULL, 0);
    printf("udpecho clients %d n %ld rate %.0f\n", clients, done, (double)done / secs);
    for (int i = 0; i < clients; i++)
        close(fds[i]);
    close(ep);
    free(fds);
    free(left);
    return done == want ? 0 : 1;
}

static int run_udprtt(long n)
{
    int srv = socket(AF_INET, SOCK_DGRAM, 0), cli = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(srv, (struct sockaddr *)&a, sizeof a) || getsockname(srv, (struct sockaddr *)&a, &al))
        return 1;
    pthread_t t;
    pthread_create(&t, NULL, echo_main, &srv);
    uint64_t *lat = calloc((size_t)n, sizeof *lat);
    char b[64] = "p";
    for (long i = 0; i < n; i++) {
        uint64_t t0 = now_us();
        sendto(cli, b, 32, 0, (struct sockaddr *)&a, sizeof a);
        if (recv(cli, b, sizeof b, 0) <= 0)
            return 1;
        lat[i] = now_us() - t0;
    }
    b[0] = 'q';
    sendto(cli, b, 1, 0, (struct sockaddr *)&a, sizeof a);
    pthread_join(t, NULL);
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    printf("udprtt n %ld p50_us %llu\n", n, (unsigned long long)lat[n / 2]);
    free(lat);
    close(srv);
    close(cli);
    return 0;
}

/* ---- etcd through its v3 HTTP gateway ----------------------------------------------- */

static int etcd_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One put of a 100-byte value; its latency in us, 0 on failure. */
static uint64_t etcd_put(int fd, long i)
{
    char body[256], req[512], resp[4096];
    char val[137]; /* base64 of 100 bytes: 136 chars */
    memset(val, 'e', 136);
    val[136] = 0;
    int bl = snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"%s\"}",
                      i % 2 ? "a2V5MQ==" : "a2V5Mg==", val);
    int rl =
        snprintf(req, sizeof req,
                 "POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 "Content-Length: %d\r\n\r\n%s",
                 bl, body);
    uint64_t t0 = now_us();
    if (write(fd, req, (size_t)rl) != rl)
        return 0;
    size_t have = 0;
    for (;;) { /* headers, then Content-Length bytes of body */
        ssize_t n = read(fd, resp + have, sizeof resp - 1 - have);
        if (n <= 0)
            return 0;
        have += (size_t)n;
        resp[have] = 0;
        char *end = strstr(resp, "\r\n\r\n"), *cl = strcasestr(resp, "Content-Length:");
        if (end && cl && have >= (size_t)(end + 4 - resp) + (size_t)atol(cl + 15))
            break;
        if (have >= sizeof resp - 1)
            return 0;
    }
    return strncmp(resp, "HTTP/1.1 200", 12) == 0 ? now_us() - t0 : 0;
}

struct eworker {
    int port;
    long n;
    int failed;
    pthread_t t;
};

static void *eworker_main(void *arg)
{
    struct eworker *w = arg;
    int fd = etcd_connect(w->port);
    if (fd < 0) {
        w->failed = 1;
        return NULL;
    }
    for (long i = 0; i < w->n; i++)
        if (!etcd_put(fd, i)) {
            w->failed = 1;
            break;
        }
    close(fd);
    return NULL;
}

static int run_etcd(int port, const char *mode, int clients, long n)
{
    if (strcmp(mode, "seq") == 0) {
        int fd = etcd_connect(port);
        if (fd < 0)
            return 1;
        uint64_t *lat = calloc((size_t)n, sizeof *lat);
        uint64_t t0 = now_us();
        for (long i = 0; i < n; i++)
            if (!(lat[i] = etcd_put(fd, i)))
                return 1;
        double secs = (double)(now_us() - t0) / 1e6;
        qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
        printf("etcd seq n %ld p50_us %llu p99_us %llu rate %.0f\n", n,
               (unsigned long long)lat[n / 2], (unsigned long long)lat[n * 99 / 100],
               (double)n / secs);
        free(lat);
        close(fd);
        return 0;
    }
    struct eworker *w = calloc((size_t)clients, sizeof *w);
    uint64_t t0 = now_us();
    for (int i = 0; i < clients; i++) {
        w[i].port = port;
        w[i].n = n / clients;
        pthread_create(&w[i].t, NULL, eworker_main, &w[i]);
    }
    int failed = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(w[i].t, NULL);
        failed += w[i].failed;
    }
    double secs = (double)(now_us() - t0) / 1e6;
    printf("etcd conc clients %d rate %.0f failed %d\n", clients,
           (double)(n / clients * clients) / secs, failed);
    free(w);
    return failed != 0;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[2], "udpecho") == 0)
        return run_udpecho(atoi(argv[3]), atol(argv[4]));
    if (argc >= 4 && strcmp(argv[2], "udprtt") == 0)
        return run_udprtt(atol(argv[3]));
    if (argc >= 6 && strcmp(argv[2], "etcd") == 0 && strcmp(argv[4], "seq") == 0)
        return run_etcd(atoi(argv[3]), "seq", 1, atol(argv[5]));
    if (argc >= 7 && strcmp(argv[2], "etcd") == 0)
        return run_etcd(atoi(argv[3]), "conc", atoi(argv[5]), atol(argv[6]));
    if (argc >= 4 && strcmp(argv[2], "seq") == 0)
        return run_seq(argv[1], atol(argv[3]));
    if (argc >= 5 && strcmp(argv[2], "conc") == 0)
        return run_conc(argv[1], atoi(argv[3]), atol(argv[4]));
    if (argc >= 5 && strcmp(argv[2], "failover") == 0)
        return run_failover(argv[1], argv[3], atoi(argv[4]));
    fprintf(stderr, "usage: cluster_load CONFIG seq N | conc CLIENTS N | failover BIN TRIALS\n"
                    "       cluster_load - udprtt N | udpecho CLIENTS N | etcd PORT seq N | "
                    "etcd PORT conc CLIENTS N\n");
    return 64;
}
