/*
 * udp.c: one node's UDP socket (batched with sendmmsg/recvmmsg) and the
 * epoll event loop with timers and an eventfd wake-up.
 *
 * The one idea: nothing here blocks or grows without bound. The socket is
 * non-blocking, the send batch has a fixed size and drops what the kernel
 * refuses, receives are read in bounded bursts, and the loop sleeps in
 * epoll_wait until an fd, the nearest timer or a wake-up needs it.
 */
#include "trp_udp.h"

#include <arpa/inet.h>
#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define BATCH_MAX 64
#define BATCH_BYTES (1u << 20) /* buffer memory per direction */
#define ROUTES 256             /* client addresses remembered for the wire's probes */

struct udp_peer {
    uint64_t id;
    struct sockaddr_storage addr;
    socklen_t len;
};

/* Where a client was last sent a message: the wire's probes for a kept
 * message to a client go there. Direct-mapped by id, so bounded. */
struct route {
    uint64_t id;
    struct sockaddr_storage addr;
    socklen_t len;
};

struct trp_udp {
    int fd;
    uint64_t self_id;
    uint32_t max_datagram;
    uint16_t port;
    struct udp_peer *peers;
    size_t npeers;
    unsigned batch; /* datagrams per sendmmsg/recvmmsg */
    /* send side */
    uint8_t *sbuf; /* batch * max_datagram */
    struct mmsghdr *smsg;
    struct iovec *siov;
    struct sockaddr_storage *saddr;
    unsigned squeued;
    /* receive side */
    uint8_t *rbuf; /* batch * (max_datagram + 1): one more byte shows truncation */
    struct mmsghdr *rmsg;
    struct iovec *riov;
    struct sockaddr_storage *raddr;
    struct route routes[ROUTES];
    trp_udp_counters c;
};

static void addr_text(char *out, size_t n, const struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        port = ntohs(s4->sin_port);
        snprintf(out, n, "%s:%u", host, port);
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        port = ntohs(s6->sin6_port);
        snprintf(out, n, "[%s]:%u", host, port);
    }
}

/* An IPv6 socket reaches IPv4 peers through v4-mapped addresses. */
static void map_v4_to_v6(struct sockaddr_storage *ss, socklen_t *len)
{
    if (ss->ss_family != AF_INET)
        return;
    struct sockaddr_in v4 = *(struct sockaddr_in *)ss;
    struct sockaddr_in6 v6;
    memset(&v6, 0, sizeof v6);
    v6.sin6_family = AF_INET6;
    v6.sin6_port = v4.sin_port;
    v6.sin6_addr.s6_addr[10] = 0xff;
    v6.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&v6.sin6_addr.s6_addr[12], &v4.sin_addr, 4);
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &v6, sizeof v6);
    *len = sizeof v6;
}

static int udp_buffers(trp_udp *u, trp_err *err)
{
    u->batch = BATCH_BYTES / u->max_datagram;
    if (u->batch > BATCH_MAX)
        u->batch = BATCH_MAX;
    if (u->batch < 8)
        u->batch = 8;
    size_t b = u->batch;
    u->sbuf = malloc(b * u->max_datagram);
    u->smsg = calloc(b, sizeof *u->smsg);
    u->siov = calloc(b, sizeof *u->siov);
    u->saddr = calloc(b, sizeof *u->saddr);
    u->rbuf = malloc(b * (u->max_datagram + 1));
    u->rmsg = calloc(b, sizeof *u->rmsg);
    u->riov = calloc(b, sizeof *u->riov);
    u->raddr = calloc(b, sizeof *u->raddr);
    if (!u->sbuf || !u->smsg || !u->siov || !u->saddr || !u->rbuf || !u->rmsg || !u->riov ||
        !u->raddr)
        return trp_err_set(err, TRP_ENOMEM, "udp: out of memory");
    size_t slot = (size_t)u->max_datagram + 1;
    for (size_t i = 0; i < b; i++) { /* the receive headers point at their slots for good */
        u->riov[i].iov_base = u->rbuf + i * slot;
        u->riov[i].iov_len = slot;
        u->rmsg[i].msg_hdr.msg_name = &u->raddr[i];
        u->rmsg[i].msg_hdr.msg_iov = &u->riov[i];
        u->rmsg[i].msg_hdr.msg_iovlen = 1;
    }
    return TRP_OK;
}

/* Ask for big buffers. The kernel caps them at net.core.[rw]mem_max (208 KiB
 * on a fresh Debian), which a privileged process may pass with the FORCE
 * options; otherwise we take what we get, and report it. */
static void udp_sockbufs(trp_udp *u)
{
    int want = TRP_UDP_BUFFER_BYTES;
    socklen_t sl = sizeof(int);
    if (setsockopt(u->fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) < 0)
        setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    if (setsockopt(u->fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want) < 0)
        setsockopt(u->fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
    getsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &u->c.rcvbuf, &sl);
    sl = sizeof(int);
    getsockopt(u->fd, SOL_SOCKET, SO_SNDBUF, &u->c.sndbuf, &sl);
}

/* Socket, peers and buffers for `self_id` (0 for a client) bound to bind_addr. */
static int udp_open_at(trp_udp **out, const trp_config *cfg, uint64_t self_id,
                       const struct sockaddr_storage *bind_addr, socklen_t bind_len, trp_err *err)
{
    *out = NULL;
    trp_udp *u = calloc(1, sizeof *u);
    if (!u)
        return trp_err_set(err, TRP_ENOMEM, "udp: out of memory");
    u->fd = -1;
    u->self_id = self_id;
    u->max_datagram = cfg->max_datagram;
    int rc = udp_buffers(u, err);
    if (!rc && !(u->peers = calloc(cfg->nnodes, sizeof *u->peers)))
        rc = trp_err_set(err, TRP_ENOMEM, "udp: out of memory");
    for (size_t i = 0; !rc && i < cfg->nnodes; i++) {
        if (!cfg->nodes[i].addr_len)
            rc = trp_err_set(err, TRP_EINVAL, "udp: config addresses not resolved");
        u->peers[i].id = cfg->nodes[i].id;
        u->peers[i].addr = cfg->nodes[i].addr;
        u->peers[i].len = cfg->nodes[i].addr_len;
    }
    u->npeers = cfg->nnodes;
    if (!rc && bind_addr->ss_family == AF_INET6)
        for (size_t i = 0; i < u->npeers; i++)
            map_v4_to_v6(&u->peers[i].addr, &u->peers[i].len);
    char where[80];
    addr_text(where, sizeof where, bind_addr);
    if (!rc) {
        u->fd = socket(bind_addr->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (u->fd < 0)
            rc = trp_err_sys(err, TRP_EIO, errno, "socket for %s", where);
    }
    if (!rc) {
        udp_sockbufs(u);
        if (bind_addr->ss_family == AF_INET6) {
            int off = 0; /* dual stack, so IPv4 peers are reachable (as ::ffff:a.b.c.d) */
            setsockopt(u->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
        }
        if (bind(u->fd, (const struct sockaddr *)bind_addr, bind_len) != 0)
            rc = trp_err_sys(err, TRP_EIO, errno, "bind %s", where);
    }
    if (!rc) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(u->fd, (struct sockaddr *)&ss, &sl) != 0)
            rc = trp_err_sys(err, TRP_EIO, errno, "getsockname %s", where);
        else
            u->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    if (rc) {
        trp_udp_close(u);
        return rc;
    }
    *out = u;
    return TRP_OK;
}

int trp_udp_open(trp_udp **out, const trp_config *cfg, uint64_t self_id, trp_err *err)
{
    *out = NULL;
    const trp_node_config *self = trp_config_node(cfg, self_id);
    if (!self)
        return trp_err_set(err, TRP_EINVAL, "node id %llu is not in the config",
                           (unsigned long long)self_id);
    if (!self->addr_len || !self->bind_addr_len)
        return trp_err_set(err, TRP_EINVAL, "udp: config addresses not resolved");
    return udp_open_at(out, cfg, self_id, &self->bind_addr, self->bind_addr_len, err);
}

int trp_udp_open_client(trp_udp **out, const trp_config *cfg, trp_err *err)
{
    *out = NULL;
    bool v6 = false, all_v6 = true, loopback = true;
    for (size_t i = 0; i < cfg->nnodes; i++) {
        const struct sockaddr_storage *a = &cfg->nodes[i].addr;
        if (!cfg->nodes[i].addr_len)
            return trp_err_set(err, TRP_EINVAL, "udp: config addresses not resolved");
        if (a->ss_family == AF_INET6) {
            v6 = true;
            loopback =
                loopback && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
        } else {
            all_v6 = false;
            loopback =
                loopback && (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
        }
    }
    /* Port 0: what an unbound UDP socket gets on its first send anyway, made
     * explicit so the port is known before sending. A cluster all on this
     * machine is reached from loopback only; otherwise any address. */
    struct sockaddr_storage any;
    socklen_t len;
    memset(&any, 0, sizeof any);
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&any;
        a->sin6_family = AF_INET6;
        /* ::1 cannot reach 127.0.0.1, so only an all-IPv6 loopback cluster gets it */
        a->sin6_addr = loopback && all_v6 ? in6addr_loopback : in6addr_any;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&any;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(loopback ? INADDR_LOOPBACK : INADDR_ANY);
        len = sizeof *a;
    }
    return udp_open_at(out, cfg, 0, &any, len, err);
}

void trp_udp_close(trp_udp *u)
{
    if (!u)
        return;
    if (u->fd >= 0)
        close(u->fd);
    free(u->peers);
    free(u->sbuf);
    free(u->smsg);
    free(u->siov);
    free(u->saddr);
    free(u->rbuf);
    free(u->rmsg);
    free(u->riov);
    free(u->raddr);
    free(u);
}

int trp_udp_fd(const trp_udp *u)
{
    return u->fd;
}

uint16_t trp_udp_local_port(const trp_udp *u)
{
    return u->port;
}

const trp_udp_counters *trp_udp_counters_get(const trp_udp *u)
{
    return &u->c;
}

cJSON *trp_udp_counters_json(const trp_udp_counters *c)
{
    static const char *const names[] = {"sent_datagrams", "sent_bytes",     "send_dropped",
                                        "send_errors",    "recv_datagrams", "recv_bytes",
                                        "recv_truncated", "rcvbuf",         "sndbuf"};
    const double values[] = {
        (double)c->sent_datagrams, (double)c->sent_bytes,     (double)c->send_dropped,
        (double)c->send_errors,    (double)c->recv_datagrams, (double)c->recv_bytes,
        (double)c->recv_truncated, (double)c->rcvbuf,         (double)c->sndbuf};
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && i < sizeof names / sizeof names[0]; i++)
        if (!cJSON_AddNumberToObject(o, names[i], values[i])) {
            cJSON_Delete(o);
            return NULL;
        }
    return o;
}

/* ---- sending --------------------------------------------------------------- */

int trp_udp_flush(trp_udp *u, trp_err *err)
{
    unsigned done = 0;
    unsigned rounds = 0;
    while (done < u->squeued) {
        assert(++rounds <= 2 * BATCH_MAX + 2); /* each round consumes at least one */
        int n = sendmmsg(u->fd, u->smsg + done, u->squeued - done, MSG_DONTWAIT);
        if (n > 0) {
            for (unsigned i = done; i < done + (unsigned)n; i++) {
                u->c.sent_datagrams++;
                u->c.sent_bytes += u->smsg[i].msg_len;
            }
            done += (unsigned)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        int e = n < 0 ? errno : EIO;
        if (e == EBADF || e == ENOTSOCK || e == EFAULT) {
            u->squeued = 0;
            return trp_err_sys(err, TRP_EIO, e, "udp send");
        }
        /* The failing datagram is dropped (kernel full, unreachable, too big);
         * the rest of the batch still gets its chance. */
        if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS || e == ENOMEM)
            u->c.send_dropped++;
        else
            u->c.send_errors++;
        done++;
    }
    u->squeued = 0;
    return TRP_OK;
}

int trp_udp_queue_addr(trp_udp *u, const struct sockaddr *to, socklen_t tolen, const void *dgram,
                       size_t len, trp_err *err)
{
    if (len > u->max_datagram)
        return trp_err_set(err, TRP_EINVAL, "datagram of %zu bytes exceeds max_datagram %u", len,
                           u->max_datagram);
    if (tolen > sizeof(struct sockaddr_storage))
        return trp_err_set(err, TRP_EINVAL, "udp: address too long");
    if (u->squeued == u->batch) {
        int rc = trp_udp_flush(u, err);
        if (rc)
            return rc;
    }
    unsigned i = u->squeued++;
    uint8_t *slot = u->sbuf + (size_t)i * u->max_datagram;
    memcpy(slot, dgram, len);
    memcpy(&u->saddr[i], to, tolen);
    u->siov[i].iov_base = slot;
    u->siov[i].iov_len = len;
    memset(&u->smsg[i], 0, sizeof u->smsg[i]);
    u->smsg[i].msg_hdr.msg_name = &u->saddr[i];
    u->smsg[i].msg_hdr.msg_namelen = tolen;
    u->smsg[i].msg_hdr.msg_iov = &u->siov[i];
    u->smsg[i].msg_hdr.msg_iovlen = 1;
    return TRP_OK;
}

int trp_udp_queue(trp_udp *u, uint64_t peer_id, const void *dgram, size_t len, trp_err *err)
{
    for (size_t i = 0; i < u->npeers; i++)
        if (u->peers[i].id == peer_id)
            return trp_udp_queue_addr(u, (const struct sockaddr *)&u->peers[i].addr,
                                      u->peers[i].len, dgram, len, err);
    return trp_err_set(err, TRP_EINVAL, "udp: node %llu is not in the config",
                       (unsigned long long)peer_id);
}

struct emit_ctx {
    trp_udp *u;
    trp_err *err;
    const struct sockaddr *to; /* or NULL: the peer's configured address */
    socklen_t tolen;
};

static int emit_to_udp(void *ctx, uint64_t to_id, const uint8_t *dgram, size_t len)
{
    struct emit_ctx *e = ctx;
    if (e->to)
        return trp_udp_queue_addr(e->u, e->to, e->tolen, dgram, len, e->err);
    return trp_udp_queue(e->u, to_id, dgram, len, e->err);
}

int trp_udp_send_message(trp_udp *u, trp_wire *w, uint64_t peer_id, const void *msg, size_t len,
                         trp_err *err)
{
    struct emit_ctx e = {u, err, NULL, 0};
    return trp_wire_seal(w, peer_id, msg, len, emit_to_udp, &e, err);
}

static struct route *route_of(trp_udp *u, uint64_t id)
{
    return &u->routes[(id * 0x9e3779b97f4a7c15ull) >> 56 & (ROUTES - 1)];
}

int trp_udp_send_message_to(trp_udp *u, trp_wire *w, uint64_t to_id, const struct sockaddr *to,
                            socklen_t tolen, const void *msg, size_t len, trp_err *err)
{
    struct emit_ctx e = {u, err, to, tolen};
    if (tolen <= sizeof(struct sockaddr_storage) &&
        len > trp_wire_max_datagram(w) - TRP_WIRE_OVERHEAD) { /* kept: remember the way */
        struct route *r = route_of(u, to_id);
        r->id = to_id;
        memcpy(&r->addr, to, tolen);
        r->len = tolen;
    }
    return trp_wire_seal(w, to_id, msg, len, emit_to_udp, &e, err);
}

/* ---- the wire's own datagrams: NACKs, acks, resent fragments ------------------ */

struct answer_ctx {
    trp_udp *u;
    const struct sockaddr *from;
    socklen_t fromlen;
};

/* A node at its configured address, anyone else where the datagram came from. */
static int emit_answer(void *ctx, uint64_t to_id, const uint8_t *dgram, size_t len)
{
    struct answer_ctx *a = ctx;
    trp_err err;
    for (size_t i = 0; i < a->u->npeers; i++)
        if (a->u->peers[i].id == to_id)
            return trp_udp_queue(a->u, to_id, dgram, len, &err);
    return trp_udp_queue_addr(a->u, a->from, a->fromlen, dgram, len, &err);
}

int trp_udp_open_message(trp_udp *u, trp_wire *w, const uint8_t *dgram, size_t len,
                         const struct sockaddr *from, socklen_t fromlen, uint64_t *sender,
                         const uint8_t **msg, size_t *msg_len)
{
    struct answer_ctx a = {u, from, fromlen};
    return trp_wire_open_ex(w, dgram, len, emit_answer, &a, sender, msg, msg_len);
}

struct probe_ctx {
    trp_udp *u;
    unsigned queued;
};

static int emit_probe(void *ctx, uint64_t to_id, const uint8_t *dgram, size_t len)
{
    struct probe_ctx *pc = ctx;
    trp_udp *u = pc->u;
    trp_err err;
    int rc;
    if (trp_wire_is_client(to_id)) {
        struct route *r = route_of(u, to_id);
        if (r->id != to_id)
            return TRP_EINVAL; /* no way to it: the wire gives the message up */
        rc = trp_udp_queue_addr(u, (const struct sockaddr *)&r->addr, r->len, dgram, len, &err);
    } else {
        rc = trp_udp_queue(u, to_id, dgram, len, &err);
    }
    pc->queued += rc == 0;
    return rc;
}

int trp_udp_wire_tick(trp_udp *u, trp_wire *w)
{
    struct probe_ctx pc = {u, 0};
    int next = trp_wire_tick(w, emit_probe, &pc);
    if (pc.queued) {
        trp_err err;
        trp_udp_flush(u, &err);
    }
    return next;
}

/* ---- receiving ------------------------------------------------------------- */

int trp_udp_recv(trp_udp *u, trp_udp_recv_fn fn, void *ctx, unsigned max_datagrams, unsigned *count,
                 trp_err *err)
{
    *count = 0;
    size_t slot = (size_t)u->max_datagram + 1;
    while (*count < max_datagrams) {
        unsigned want = max_datagrams - *count;
        if (want > u->batch)
            want = u->batch;
        for (unsigned i = 0; i < want; i++) /* the kernel wrote the last lengths here */
            u->rmsg[i].msg_hdr.msg_namelen = sizeof u->raddr[i];
        int n = recvmmsg(u->fd, u->rmsg, want, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNREFUSED)
                return TRP_OK;
            return trp_err_sys(err, TRP_EIO, errno, "udp receive");
        }
        if (n == 0)
            return TRP_OK;
        for (int i = 0; i < n; i++) {
            size_t len = u->rmsg[i].msg_len;
            if (u->rmsg[i].msg_hdr.msg_flags & MSG_TRUNC)
                u->c.recv_truncated++;
            u->c.recv_datagrams++;
            u->c.recv_bytes += len;
            fn(ctx, u->rbuf + (size_t)i * slot, len, (const struct sockaddr *)&u->raddr[i],
               u->rmsg[i].msg_hdr.msg_namelen);
        }
        *count += (unsigned)n;
        if ((unsigned)n < want)
            return TRP_OK; /* drained */
    }
    return TRP_OK;
}

/* ---- the event loop --------------------------------------------------------- */

struct loop_fd {
    bool used;
    int fd;
    trp_loop_io_fn fn;
    void *ctx;
};

struct loop_timer {
    bool used, armed;
    uint64_t deadline_ms;
    trp_loop_timer_fn fn;
    void *ctx;
};

struct trp_loop {
    int epfd, evfd;
    int sigfd; /* signalfd, or -1 */
    trp_loop_signal_fn on_signal;
    void *signal_ctx;
    atomic_int stop;
    trp_loop_wake_fn on_wake;
    void *wake_ctx;
    struct loop_fd fds[TRP_LOOP_FDS_MAX];
    struct loop_timer timers[TRP_LOOP_TIMERS_MAX];
};

#define WAKE_SLOT UINT32_MAX

uint64_t trp_loop_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int trp_loop_new(trp_loop **out, trp_loop_wake_fn on_wake, void *wake_ctx, trp_err *err)
{
    *out = NULL;
    trp_loop *l = calloc(1, sizeof *l);
    if (!l)
        return trp_err_set(err, TRP_ENOMEM, "loop: out of memory");
    l->on_wake = on_wake;
    l->wake_ctx = wake_ctx;
    l->sigfd = -1;
    atomic_init(&l->stop, 0);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int rc = TRP_OK;
    if (l->epfd < 0 || l->evfd < 0) {
        rc = trp_err_sys(err, TRP_EIO, errno, "loop: epoll/eventfd");
    } else {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_SLOT};
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) != 0)
            rc = trp_err_sys(err, TRP_EIO, errno, "loop: epoll_ctl eventfd");
    }
    if (rc) {
        trp_loop_free(l);
        return rc;
    }
    *out = l;
    return TRP_OK;
}

void trp_loop_free(trp_loop *l)
{
    if (!l)
        return;
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->evfd >= 0)
        close(l->evfd);
    if (l->sigfd >= 0)
        close(l->sigfd);
    free(l);
}

static int loop_find(const trp_loop *l, int fd)
{
    for (int i = 0; i < TRP_LOOP_FDS_MAX; i++)
        if (l->fds[i].used && l->fds[i].fd == fd)
            return i;
    return -1;
}

int trp_loop_add(trp_loop *l, int fd, uint32_t events, trp_loop_io_fn fn, void *ctx, trp_err *err)
{
    if (loop_find(l, fd) >= 0)
        return trp_err_set(err, TRP_EINVAL, "loop: fd %d already added", fd);
    for (int i = 0; i < TRP_LOOP_FDS_MAX; i++) {
        if (l->fds[i].used)
            continue;
        struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)i};
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
            return trp_err_sys(err, TRP_EIO, errno, "loop: add fd %d", fd);
        l->fds[i] = (struct loop_fd){.used = true, .fd = fd, .fn = fn, .ctx = ctx};
        return TRP_OK;
    }
    return trp_err_set(err, TRP_EINVAL, "loop: more than %d fds", TRP_LOOP_FDS_MAX);
}

int trp_loop_mod(trp_loop *l, int fd, uint32_t events, trp_err *err)
{
    int i = loop_find(l, fd);
    if (i < 0)
        return trp_err_set(err, TRP_EINVAL, "loop: fd %d not added", fd);
    struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)i};
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
        return trp_err_sys(err, TRP_EIO, errno, "loop: modify fd %d", fd);
    return TRP_OK;
}

int trp_loop_del(trp_loop *l, int fd)
{
    int i = loop_find(l, fd);
    if (i < 0)
        return TRP_EINVAL;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    memset(&l->fds[i], 0, sizeof l->fds[i]);
    return TRP_OK;
}

int trp_loop_timer_new(trp_loop *l, trp_loop_timer_fn fn, void *ctx, int *timer_id, trp_err *err)
{
    for (int i = 0; i < TRP_LOOP_TIMERS_MAX; i++) {
        if (l->timers[i].used)
            continue;
        l->timers[i] = (struct loop_timer){.used = true, .fn = fn, .ctx = ctx};
        *timer_id = i;
        return TRP_OK;
    }
    return trp_err_set(err, TRP_EINVAL, "loop: more than %d timers", TRP_LOOP_TIMERS_MAX);
}

void trp_loop_timer_arm(trp_loop *l, int id, uint64_t deadline_ms)
{
    assert(id >= 0 && id < TRP_LOOP_TIMERS_MAX && l->timers[id].used);
    l->timers[id].armed = true;
    l->timers[id].deadline_ms = deadline_ms;
}

void trp_loop_timer_disarm(trp_loop *l, int id)
{
    assert(id >= 0 && id < TRP_LOOP_TIMERS_MAX && l->timers[id].used);
    l->timers[id].armed = false;
}

int trp_loop_wake(trp_loop *l)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: a wake-up is pending. */
    if (write(l->evfd, &one, sizeof one) < 0 && errno != EAGAIN)
        return TRP_EIO;
    return TRP_OK;
}

void trp_loop_stop(trp_loop *l)
{
    atomic_store(&l->stop, 1);
    trp_loop_wake(l);
}

/* Milliseconds until the nearest armed timer, or -1 with none armed. */
static int loop_timeout(const trp_loop *l, uint64_t now)
{
    int best = -1;
    for (int i = 0; i < TRP_LOOP_TIMERS_MAX; i++) {
        const struct loop_timer *t = &l->timers[i];
        if (!t->used || !t->armed)
            continue;
        uint64_t d = t->deadline_ms > now ? t->deadline_ms - now : 0;
        if (d > INT32_MAX)
            d = INT32_MAX;
        if (best < 0 || (int)d < best)
            best = (int)d;
    }
    return best;
}

static void loop_fire_timers(trp_loop *l)
{
    uint64_t now = trp_loop_now_ms();
    for (int i = 0; i < TRP_LOOP_TIMERS_MAX; i++) {
        struct loop_timer *t = &l->timers[i];
        if (t->used && t->armed && t->deadline_ms <= now) {
            t->armed = false; /* before the call, so the callback can re-arm */
            t->fn(t->ctx, i, now);
        }
    }
}

int trp_loop_run_once(trp_loop *l, int max_wait_ms, trp_err *err)
{
    int timeout = loop_timeout(l, trp_loop_now_ms());
    if (max_wait_ms >= 0 && (timeout < 0 || max_wait_ms < timeout))
        timeout = max_wait_ms;
    struct epoll_event evs[TRP_LOOP_FDS_MAX + 1];
    int n = epoll_wait(l->epfd, evs, TRP_LOOP_FDS_MAX + 1, timeout);
    if (n < 0) {
        if (errno == EINTR)
            return TRP_OK;
        return trp_err_sys(err, TRP_EIO, errno, "loop: epoll_wait");
    }
    for (int i = 0; i < n; i++) {
        uint64_t slot = evs[i].data.u64;
        if (slot == WAKE_SLOT) {
            uint64_t v;
            if (read(l->evfd, &v, sizeof v) < 0 && errno != EAGAIN)
                return trp_err_sys(err, TRP_EIO, errno, "loop: eventfd read");
            if (l->on_wake)
                l->on_wake(l->wake_ctx);
            continue;
        }
        assert(slot < TRP_LOOP_FDS_MAX);
        struct loop_fd *f = &l->fds[slot];
        if (f->used) /* an earlier callback in this batch may have removed it */
            f->fn(f->ctx, f->fd, evs[i].events);
    }
    loop_fire_timers(l);
    return TRP_OK;
}

static void loop_on_signalfd(void *ctx, int fd, uint32_t events)
{
    trp_loop *l = ctx;
    (void)events;
    struct signalfd_siginfo si[8];
    ssize_t n = read(fd, si, sizeof si); /* bounded: at most 8 per wake-up */
    for (ssize_t i = 0; n > 0 && i < n / (ssize_t)sizeof si[0]; i++)
        l->on_signal(l->signal_ctx, (int)si[i].ssi_signo);
}

int trp_loop_add_signals(trp_loop *l, const int *signals, size_t nsignals, trp_loop_signal_fn fn,
                         void *ctx, trp_err *err)
{
    if (l->sigfd >= 0)
        return trp_err_set(err, TRP_ESTATE, "loop: signals already added");
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < nsignals; i++)
        if (sigaddset(&set, signals[i]) != 0)
            return trp_err_set(err, TRP_EINVAL, "loop: bad signal %d", signals[i]);
    /* Blocked, so they queue for the signalfd instead of running a handler;
     * threads created afterwards inherit the mask and leave them to us. */
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc != 0)
        return trp_err_sys(err, TRP_EIO, rc, "loop: pthread_sigmask");
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return trp_err_sys(err, TRP_EIO, errno, "loop: signalfd");
    l->on_signal = fn;
    l->signal_ctx = ctx;
    if ((rc = trp_loop_add(l, fd, EPOLLIN, loop_on_signalfd, l, err))) {
        close(fd);
        return rc;
    }
    l->sigfd = fd;
    return TRP_OK;
}

int trp_loop_run(trp_loop *l, trp_err *err)
{
    while (!atomic_load(&l->stop)) {
        int rc = trp_loop_run_once(l, -1, err);
        if (rc)
            return rc;
    }
    return TRP_OK;
}
