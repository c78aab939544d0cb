/*
 * client.c: the client library of trp's cluster mode (trp_client.h), used by
 * trp-append, trp-tail and `trp-node status`.
 *
 * The one idea: every request can be sent again safely. An append keeps its
 * (session, request number) across retries, so resending it to any node,
 * after a timeout, a lost datagram or a leader change, stores it at most
 * once; a read is a position and a credit, so asking again from the last
 * seq received loses nothing. The library therefore needs no connection
 * state: it resends what is unanswered, switches to the leader a node
 * names, moves on to the next node when one is silent, and gives up with
 * TRP_EUNAVAIL only when nothing has answered for the timeout.
 */
#include "trp_client.h"
#include "trp_config.h"
#include "trp_raft.h"
#include "trp_udp.h"
#include "trp_wire.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sessions: each holds TRP_CLIENT_SESSION_WINDOW open requests, so a pipe
 * has LANES x 64 = 16384 appends in flight. A pipe's rate is that window
 * over its round (the leader's and a follower's fsyncs of batches of
 * thousands of entries): one pipe of 100-byte entries did a mean 309k/s
 * with 16384 against 275k/s with 8192 (2 vCPUs, 6 runs each). 32768 made
 * two concurrent pipes slower (they fill the leader's max_pending).
 * The leader's max_pending (TRP_RAFT_MAX_PENDING) leaves room for four. */
#define LANES 256
/* Bytes of appends in flight at most (one entry may pass it): well within
 * a node's 8 MiB socket buffer. With 64 MiB, 16384 lines of 600 bytes lost
 * 4,700-8,700 datagrams a run to that buffer, and every loss a retry. */
#define WINDOW_BYTES (2u << 20)
#define RETRY_MS 100
#define ROTATE_MS 150 /* no answer from the node this long: try the next */
#define CLIENT_WIRE_EXTRA (2u << 20)
#define READ_WINDOW 8192 /* entries granted to a read stream at once */
#define READ_QUEUE_MAX 512
#define READ_KEEPALIVE_MS 1000

enum { P_UNSENT = 0, P_SENT = 1, P_DONE = 2 };

/* Payloads up to this size sit in the slot's part of a block beside the
 * queue (kept apart so that scans of the queue stay small): a piped
 * trp-append submits and frees hundreds of thousands a second, and a malloc
 * and a free each were 12% of its CPU. */
#define PEND_INLINE 256

struct pend {
    uint8_t *data; /* NULL: the payload is in the slot's part of q_inline */
    size_t len;
    int lane;
    uint64_t req;
    bool has_if;
    uint8_t if_head[TRP_HASH_LEN];
    int state;
    int status;
    mpz_t seq;
    uint8_t hash[TRP_HASH_LEN];
    uint64_t sent_ms, first_ms;
    uint64_t resend_at; /* P_UNSENT after a refusal: not before this */
    unsigned tries;
};

struct lane {
    uint64_t session;
    uint64_t base, next; /* open request numbers: [base, next) */
    bool done[TRP_CLIENT_SESSION_WINDOW];
    size_t slot[TRP_CLIENT_SESSION_WINDOW]; /* ring position of req % window */
};

struct rmsg {
    uint8_t *buf;
    size_t len;
};

struct trp_client {
    trp_config *cfg;
    uint8_t key[TRP_KEY_LEN];
    uint64_t self;
    trp_wire *wire;
    trp_udp *udp;
    uint64_t *ids;
    size_t n, target;
    uint32_t timeout_ms;
    size_t msg_max;
    trp_cmsg cm;
    trp_cbuf out;
    uint64_t heard_ms; /* last answer from the target */
    uint64_t answered_ms; /* last message from the target, whatever it said */
    uint64_t answered_by; /* ... and which node that was */
    bool leaderless;   /* the target is silent or knows no leader: ask every node */
    size_t q_bytes;    /* payload bytes held in q */
    uint64_t now_ms;
    uint64_t srtt_ms; /* smoothed time from send to answer (first tries only) */

    /* appends: a ring of submitted entries, in order */
    struct pend *q;
    uint8_t *q_inline; /* PEND_INLINE bytes per slot of q */
    size_t q_head, q_len, q_cap;
    struct lane lanes[LANES];
    size_t lane_hint; /* the lane an answer named last: answers come in runs */
    size_t lane_room; /* lanes below it are full (submit looks from here) */
    size_t open_reqs; /* open requests over all lanes: room while < LANES x window */
    size_t unsent_from; /* queue offset (from q_head) before which nothing is unsent */
    uint64_t retry_check_ms;
    bool cond_busy; /* a conditional append is in flight: nothing passes it */

    /* a synchronous request (status, read index) */
    int want_type;
    uint64_t want_id, want_from;
    uint8_t *got;
    size_t got_len;

    /* the read stream */
    uint64_t stream;
    bool r_started, r_tail, r_have_end;
    bool r_tail_at; /* the tail counts back from r_next (a read index) */
    uint64_t r_back;
    mpz_t r_next, r_until, r_end, r_commit;
    uint64_t r_asked_ms, r_heard_ms;
    bool r_error;
    int r_status;
    char r_text[TRP_CLIENT_MSG_TEXT_MAX];
    struct rmsg rq[READ_QUEUE_MAX];
    size_t rq_head, rq_len;
    trp_cmsg rcm;
    uint8_t *rcm_buf; /* the message rcm was decoded from */
    bool rcm_valid;
    size_t ridx;
};

static uint64_t rand64(void)
{
    uint64_t v = trp_wire_new_client_id();
    return v & ~TRP_WIRE_CLIENT_BIT ? v : 0x1234567;
}

int trp_client_open(trp_client **out, const char *config_path, uint64_t node, uint32_t timeout_ms,
                    trp_err *err)
{
    *out = NULL;
    trp_client *c = calloc(1, sizeof *c);
    if (!c)
        return trp_err_set(err, TRP_ENOMEM, "out of memory");
    trp_cmsg_init(&c->cm);
    trp_cmsg_init(&c->rcm);
    mpz_inits(c->r_next, c->r_until, c->r_end, c->r_commit, NULL);
    c->timeout_ms = timeout_ms ? timeout_ms : TRP_CLIENT_TIMEOUT_MS_DEFAULT;
    int rc = trp_config_load(&c->cfg, config_path, err);
    if (!rc && (rc = trp_config_resolve(c->cfg, err)))
        trp_err_prefix(err, "%s", config_path);
    if (!rc)
        rc = trp_key_load(c->key, c->cfg->key_file, err);
    if (!rc && node && trp_config_node_index(c->cfg, node) < 0)
        rc = trp_err_set(err, TRP_ECONFIG, "%s: no node with id %llu", config_path,
                         (unsigned long long)node);
    if (!rc) {
        c->self = trp_wire_new_client_id();
        c->ids = calloc(c->cfg->nnodes, sizeof *c->ids);
        if (!c->self || !c->ids)
            rc = trp_err_set(err, TRP_ENOMEM, "out of memory or no randomness");
    }
    trp_wire_params p;
    if (!rc)
        rc = trp_wire_params_from_config(&p, c->cfg, c->key, c->self, CLIENT_WIRE_EXTRA, c->ids,
                                         err);
    if (!rc)
        rc = trp_wire_new(&c->wire, &p, err);
    if (!rc)
        rc = trp_udp_open_client(&c->udp, c->cfg, err);
    if (rc) {
        trp_client_close(c);
        return rc;
    }
    c->n = c->cfg->nnodes;
    for (size_t i = 0; i < c->n; i++) {
        c->ids[i] = c->cfg->nodes[i].id;
        if (c->ids[i] == node)
            c->target = i;
    }
    c->msg_max = c->cfg->max_datagram > 16000 ? 60000 : 16000;
    for (size_t i = 0; i < LANES; i++) {
        c->lanes[i].session = rand64();
        c->lanes[i].base = c->lanes[i].next = 1;
    }
    *out = c;
    return 0;
}

static void read_close(trp_client *c);

void trp_client_close(trp_client *c)
{
    if (!c)
        return;
    if (c->r_asked_ms)
        read_close(c); /* a read was going on: the node may stop serving it now */
    for (size_t i = 0; i < c->q_len; i++) {
        struct pend *p = &c->q[(c->q_head + i) % c->q_cap];
        free(p->data);
    }
    for (size_t i = 0; i < c->q_cap; i++)
        mpz_clear(c->q[i].seq);
    free(c->q);
    free(c->q_inline);
    for (size_t i = 0; i < c->rq_len; i++)
        free(c->rq[(c->rq_head + i) % READ_QUEUE_MAX].buf);
    trp_udp_close(c->udp);
    trp_wire_free(c->wire);
    trp_config_free(c->cfg);
    trp_cmsg_clear(&c->cm);
    trp_cmsg_clear(&c->rcm);
    free(c->rcm_buf);
    trp_cbuf_free(&c->out);
    free(c->got);
    free(c->ids);
    mpz_clears(c->r_next, c->r_until, c->r_end, c->r_commit, NULL);
    free(c);
}

int trp_client_fd(const trp_client *c)
{
    return trp_udp_fd(c->udp);
}
uint32_t trp_client_max_entry(const trp_client *c)
{
    return c->cfg->max_entry;
}
const char *trp_client_start_seq(const trp_client *c)
{
    return c->cfg->start_seq;
}
size_t trp_client_nodes(const trp_client *c, const uint64_t **ids)
{
    *ids = c->ids;
    return c->n;
}

static void send_to(trp_client *c, uint64_t node, const trp_cbuf *b)
{
    if (b->oom)
        return;
    trp_err err;
    trp_err_clear(&err);
    trp_udp_send_message(c->udp, c->wire, node, b->p, b->len, &err);
}

static void set_target(trp_client *c, uint64_t node)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->ids[i] == node && c->target != i) {
            c->target = i;
            c->heard_ms = c->now_ms;
        }
}

/* ---- receiving ------------------------------------------------------------- */

static struct pend *pend_of(trp_client *c, uint64_t session, uint64_t req)
{
    for (size_t i = 0; i < LANES; i++) {
        size_t l = (c->lane_hint + i) % LANES;
        struct lane *ln = &c->lanes[l];
        if (ln->session != session)
            continue;
        c->lane_hint = l;
        if (req < ln->base || req >= ln->next || ln->done[req % TRP_CLIENT_SESSION_WINDOW])
            return NULL;
        return &c->q[ln->slot[req % TRP_CLIENT_SESSION_WINDOW]];
    }
    return NULL;
}

static void on_append_resp(trp_client *c, const trp_cmsg *m)
{
    if (m->leader_hint) {
        set_target(c, m->leader_hint);
        c->leaderless = false;
    }
    for (size_t i = 0; i < m->n_items; i++) {
        const trp_cmsg_item *it = &m->items[i];
        struct pend *p = pend_of(c, it->session, it->req);
        if (!p || p->state == P_DONE)
            continue;
        if (it->status == TRP_EUNAVAIL) { /* resent soon, at the leader if one was named */
            if (!m->leader_hint)
                c->leaderless = true;
            p->state = P_UNSENT;
            p->resend_at = c->now_ms + (m->leader_hint ? 0 : RETRY_MS / 4);
            size_t off = ((size_t)(p - c->q) + c->q_cap - c->q_head) % c->q_cap;
            if (off < c->unsent_from)
                c->unsent_from = off;
            continue;
        }
        if (p->tries == 1) {
            uint64_t sample = c->now_ms - p->sent_ms;
            c->srtt_ms = c->srtt_ms ? (7 * c->srtt_ms + sample) / 8 : sample + 1;
        }
        p->state = P_DONE;
        p->status = it->status;
        mpz_set(p->seq, it->seq);
        memcpy(p->hash, it->hash, TRP_HASH_LEN);
        struct lane *ln = &c->lanes[p->lane];
        ln->done[p->req % TRP_CLIENT_SESSION_WINDOW] = true;
        while (ln->base < ln->next && ln->done[ln->base % TRP_CLIENT_SESSION_WINDOW]) {
            ln->done[ln->base % TRP_CLIENT_SESSION_WINDOW] = false;
            ln->base++;
            c->open_reqs--;
            if (p->lane < (int)c->lane_room)
                c->lane_room = (size_t)p->lane;
        }
        if (p->has_if)
            c->cond_busy = false;
    }
}

static void keep_message(trp_client *c, uint8_t **buf, size_t *len, const uint8_t *msg, size_t n)
{
    free(*buf);
    *buf = malloc(n ? n : 1);
    if (*buf)
        memcpy(*buf, msg, n);
    *len = *buf ? n : 0;
}

static void on_message(void *ctx, const uint8_t *dgram, size_t len, const struct sockaddr *from,
                       socklen_t fromlen)
{
    trp_client *c = ctx;
    uint64_t sender;
    const uint8_t *msg;
    size_t mlen;
    if (trp_udp_open_message(c->udp, c->wire, dgram, len, from, fromlen, &sender, &msg, &mlen) != 1)
        return;
    if (trp_cmsg_decode(msg, mlen, &c->cm, NULL) != 0)
        return;
    if (sender == c->ids[c->target]) {
        c->answered_ms = c->now_ms;
        c->answered_by = sender;
    }
    if (sender == c->ids[c->target] && !(c->cm.type == TRP_CMSG_APPEND_RESP && !c->cm.leader_hint))
        c->heard_ms = c->now_ms;
    switch (c->cm.type) {
    case TRP_CMSG_APPEND_RESP:
        on_append_resp(c, &c->cm);
        break;
    case TRP_CMSG_ENTRIES:
        if (c->cm.id != c->stream || !c->stream)
            break;
        c->r_heard_ms = c->now_ms;
        if (c->rq_len < READ_QUEUE_MAX) {
            struct rmsg *r = &c->rq[(c->rq_head + c->rq_len) % READ_QUEUE_MAX];
            r->buf = NULL;
            keep_message(c, &r->buf, &r->len, msg, mlen);
            if (r->buf)
                c->rq_len++;
        }
        break;
    default:
        if (c->cm.type == c->want_type && c->cm.id == c->want_id &&
            (!c->want_from || sender == c->want_from)) {
            keep_message(c, &c->got, &c->got_len, msg, mlen);
            c->want_type = 0;
        }
        break;
    }
}

/* Wait up to wait_ms for datagrams (and extra_fd, if >= 0) and take them.
 * Returns 1 when extra_fd is ready or hung up, else 0. */
static int wait_and_receive(trp_client *c, int wait_ms, int extra_fd, short extra_events)
{
    struct pollfd p[2] = {{.fd = trp_udp_fd(c->udp), .events = POLLIN},
                          {.fd = extra_fd, .events = extra_events}};
    int probe_ms = trp_udp_wire_tick(c->udp, c->wire); /* lost fragments of big appends */
    if (probe_ms >= 0 && (wait_ms < 0 || probe_ms < wait_ms))
        wait_ms = probe_ms;
    int n;
    if (wait_ms == 0 && extra_fd < 0) { /* no wait: the socket is non-blocking, just read */
        p[0].revents = POLLIN;
        n = 1;
    } else {
        n = poll(p, extra_fd >= 0 ? 2 : 1, wait_ms);
    }
    c->now_ms = trp_loop_now_ms();
    if (n <= 0)
        return 0;
    if (p[0].revents & POLLIN) {
        unsigned count;
        trp_err err;
        trp_err_clear(&err);
        for (int i = 0; i < 64; i++) {
            count = 0;
            trp_udp_recv(c->udp, on_message, c, 256, &count, &err);
            if (count < 256)
                break;
        }
        trp_udp_flush(c->udp, &err); /* the wire's NACKs and acks */
    }
    return extra_fd >= 0 && p[1].revents != 0;
}

/* ---- appends ---------------------------------------------------------------- */

static uint8_t *pend_payload(const trp_client *c, const struct pend *p)
{
    return p->data ? p->data : c->q_inline + (size_t)(p - c->q) * PEND_INLINE;
}

bool trp_client_can_submit(const trp_client *c)
{
    if (c->cond_busy || (c->q_len && c->q_bytes >= WINDOW_BYTES))
        return false;
    return c->open_reqs < (size_t)LANES * TRP_CLIENT_SESSION_WINDOW;
}

size_t trp_client_pending(const trp_client *c)
{
    return c->q_len;
}

int trp_client_submit(trp_client *c, const void *data, size_t len, const uint8_t *if_head,
                      trp_err *err)
{
    if (len > c->cfg->max_entry)
        return trp_err_set(err, TRP_ETOOBIG,
                           "entry of %zu bytes is over the cluster's max_entry "
                           "of %u bytes",
                           len, c->cfg->max_entry);
    if (!trp_client_can_submit(c))
        return trp_err_set(err, TRP_ESTATE, "the append window is full");
    /* lowest lane with room: a client with few appends in flight uses one
     * session, which keeps the leader's session table small */
    size_t l = c->lane_room;
    while (c->lanes[l].next - c->lanes[l].base >= TRP_CLIENT_SESSION_WINDOW)
        l++;
    c->lane_room = l;
    if (c->q_len == c->q_cap) {
        size_t cap = c->q_cap ? c->q_cap * 2 : 256;
        struct pend *nq = malloc(cap * sizeof *nq);
        uint8_t *ni = malloc(cap * PEND_INLINE);
        if (!nq || !ni) {
            free(nq);
            free(ni);
            return trp_err_set(err, TRP_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < c->q_len; i++) {
            size_t from = (c->q_head + i) % c->q_cap;
            nq[i] = c->q[from];
            if (!nq[i].data && nq[i].len)
                memcpy(ni + i * PEND_INLINE, c->q_inline + from * PEND_INLINE, nq[i].len);
        }
        for (size_t i = c->q_len; i < cap; i++)
            mpz_init(nq[i].seq);
        free(c->q);
        free(c->q_inline);
        c->q = nq;
        c->q_inline = ni;
        c->q_cap = cap;
        c->q_head = 0;
        for (size_t i = 0; i < c->q_len; i++) { /* ring positions moved */
            struct pend *p = &c->q[i];
            c->lanes[p->lane].slot[p->req % TRP_CLIENT_SESSION_WINDOW] = i;
        }
    }
    size_t pos = (c->q_head + c->q_len) % c->q_cap;
    struct pend *p = &c->q[pos];
    p->data = NULL;
    if (len > PEND_INLINE && !(p->data = malloc(len)))
        return trp_err_set(err, TRP_ENOMEM, "out of memory");
    if (len)
        memcpy(pend_payload(c, p), data, len);
    p->len = len;
    c->q_bytes += len;
    p->lane = (int)l;
    p->req = c->lanes[l].next++;
    c->open_reqs++;
    c->lanes[l].slot[p->req % TRP_CLIENT_SESSION_WINDOW] = pos;
    c->lanes[l].done[p->req % TRP_CLIENT_SESSION_WINDOW] = false;
    p->has_if = if_head != NULL;
    if (if_head) {
        memcpy(p->if_head, if_head, TRP_HASH_LEN);
        c->cond_busy = true;
    }
    p->state = P_UNSENT;
    if (c->q_len < c->unsent_from)
        c->unsent_from = c->q_len;
    p->sent_ms = p->first_ms = p->resend_at = 0;
    p->tries = 0;
    c->q_len++;
    return 0;
}

/* Start an APPEND message in b (conditional on p's head when p has one);
 * returns where its item count goes. */
static size_t append_msg_start(trp_cbuf *b, const struct pend *p)
{
    b->len = 0;
    b->oom = false;
    trp_cbuf_header(b, TRP_CMSG_APPEND, 0);
    trp_cbuf_u8(b, p->has_if ? 1 : 0);
    if (p->has_if)
        trp_cbuf_bytes(b, p->if_head, TRP_HASH_LEN);
    size_t count_at = b->len;
    trp_cbuf_u32(b, 0);
    return count_at;
}

static void append_msg_item(const trp_client *c, trp_cbuf *b, const struct pend *p)
{
    trp_cbuf_u64(b, c->lanes[p->lane].session);
    trp_cbuf_u64(b, p->req);
    trp_cbuf_u32(b, (uint32_t)p->len);
    trp_cbuf_bytes(b, pend_payload(c, p), p->len);
}

/* Add entry p to the message being built for the target; send when full. */
static void pack(trp_client *c, struct pend *p, size_t *count_at, uint32_t *count)
{
    trp_cbuf *b = &c->out;
    if (*count && (p->has_if || b->len + p->len + 24 > c->msg_max)) {
        trp_cbuf_put_u32(b, *count_at, *count);
        send_to(c, c->ids[c->target], b);
        *count = 0;
    }
    if (*count == 0)
        *count_at = append_msg_start(b, p);
    append_msg_item(c, b, p);
    (*count)++;
    if (!p->first_ms)
        p->first_ms = c->now_ms;
    p->sent_ms = c->now_ms;
    p->state = P_SENT;
    p->tries++;
    if (p->has_if) { /* alone in its message: the condition is item 0's */
        trp_cbuf_put_u32(b, *count_at, *count);
        send_to(c, c->ids[c->target], b);
        *count = 0;
    }
}

/* How long an unanswered append waits before it is sent again: doubling
 * with each try, and never less than a few round trips as measured, so a
 * loaded cluster is not buried under copies of what it is working on. */
static uint64_t retry_after(const trp_client *c, const struct pend *p)
{
    /* the first tries stay at RETRY_MS: a leader change is over within a
     * few election timeouts, and a retry then should not wait long */
    unsigned shift = p->tries > 3 ? p->tries - 3 : 0;
    uint64_t t = (uint64_t)RETRY_MS << (shift > 5 ? 5 : shift);
    return t > 4 * c->srtt_ms ? t : 4 * c->srtt_ms;
}

static uint64_t rotate_after(const trp_client *c)
{
    return ROTATE_MS > 4 * c->srtt_ms ? ROTATE_MS : 4 * c->srtt_ms;
}

/* While no leader is known (the target fell silent, or answers that it
 * knows none), the oldest unanswered append also goes to every other node:
 * whichever first knows the new leader forwards it there and its answer
 * names the leader, so the client finds it as soon as one is elected
 * instead of trying the nodes one by one (a dead one costs rotate_after).
 * The copies are the same (session, request): stored at most once. */
static void ask_everyone(trp_client *c, const struct pend *p)
{
    trp_cbuf *b = &c->out;
    trp_cbuf_put_u32(b, append_msg_start(b, p), 1);
    append_msg_item(c, b, p);
    for (size_t i = 0; i < c->n; i++)
        if (i != c->target)
            send_to(c, c->ids[i], b);
}

static void send_appends(trp_client *c)
{
    size_t count_at = 0;
    uint32_t count = 0;
    bool scan = c->now_ms >= c->retry_check_ms;
    if (scan) {
        c->retry_check_ms = c->now_ms + RETRY_MS / 4;
        if (c->q_len && c->now_ms - c->heard_ms > rotate_after(c)) { /* silent node: next one */
            bool any_sent = false;
            for (size_t i = 0; i < c->q_len && !any_sent; i++) /* sent, or refused: EUNAVAIL */
                any_sent = c->q[(c->q_head + i) % c->q_cap].state != P_DONE && c->q[(c->q_head + i) % c->q_cap].tries;
            if (any_sent) {
                c->leaderless = true;
                c->target = (c->target + 1) % c->n;
                c->heard_ms = c->now_ms;
                for (size_t i = 0; i < c->q_len; i++) {
                    struct pend *p = &c->q[(c->q_head + i) % c->q_cap];
                    if (p->state != P_DONE) { /* a fresh start at the next node (refused ones too) */
                        p->state = P_UNSENT;
                        p->resend_at = 0;
                        p->tries = 0;
                    }
                }
                c->unsent_from = 0;
            }
        }
    }
    /* a scan (due every RETRY_MS / 4) looks at every append for retries;
     * between scans only the unsent tail can hold work */
    struct pend *head = NULL;
    size_t still_unsent = c->q_len;
    for (size_t i = scan ? 0 : c->unsent_from; i < c->q_len; i++) {
        struct pend *p = &c->q[(c->q_head + i) % c->q_cap];
        if ((p->state == P_UNSENT && c->now_ms >= p->resend_at) ||
            (scan && p->state == P_SENT && c->now_ms - p->sent_ms >= retry_after(c, p))) {
            if (!head && p->state != P_DONE)
                head = p;
            pack(c, p, &count_at, &count);
        }
        if (p->state == P_UNSENT && still_unsent == c->q_len)
            still_unsent = i;
    }
    c->unsent_from = still_unsent;
    if (count) {
        trp_cbuf_put_u32(&c->out, count_at, count);
        send_to(c, c->ids[c->target], &c->out);
    }
    if (head && c->leaderless)
        ask_everyone(c, head);
    trp_err err;
    trp_err_clear(&err);
    trp_udp_flush(c->udp, &err);
}

static void deliver(trp_client *c, trp_client_append_cb cb, void *arg)
{
    while (c->q_len && c->q[c->q_head].state == P_DONE) {
        struct pend *p = &c->q[c->q_head];
        cb(arg, p->status, p->seq, p->hash);
        c->q_bytes -= p->len;
        free(p->data);
        p->data = NULL;
        c->q_head = (c->q_head + 1) % c->q_cap;
        c->q_len--;
        if (c->unsent_from)
            c->unsent_from--;
    }
}

void trp_client_flush(trp_client *c)
{
    c->now_ms = trp_loop_now_ms();
    send_appends(c);
}

int trp_client_pump(trp_client *c, int wait_ms, int extra_fd, trp_client_append_cb cb, void *arg,
                    trp_err *err)
{
    c->now_ms = trp_loop_now_ms();
    if (!c->heard_ms)
        c->heard_ms = c->now_ms;
    send_appends(c);
    if (c->q_len && (wait_ms < 0 || wait_ms > RETRY_MS / 4))
        wait_ms = RETRY_MS / 4;
    wait_and_receive(c, wait_ms, extra_fd, POLLIN);
    deliver(c, cb, arg);
    send_appends(c);
    if (c->q_len) {
        struct pend *p = &c->q[c->q_head];
        if (p->first_ms && c->now_ms - p->first_ms > c->timeout_ms) {
            if (c->answered_ms > p->first_ms) /* answers came, the commit did not */
                return trp_err_set(err, TRP_EUNAVAIL,
                                   "an append was not committed within %u ms, though node %llu "
                                   "answers (no quorum? trp-node status -c CONFIG)",
                                   c->timeout_ms, (unsigned long long)c->answered_by);
            return trp_err_set(err, TRP_EUNAVAIL,
                               "no leader answered within %u ms (is the cluster running? "
                               "trp-node status -c CONFIG)",
                               c->timeout_ms);
        }
    }
    return 0;
}

/* ---- synchronous requests ------------------------------------------------------- */

/* Send b to node (0: the target, following leader hints) until a reply of
 * type `type` with id arrives or the timeout passes. */
static int request(trp_client *c, uint64_t node, int type, uint64_t id, const trp_cbuf *b,
                   trp_err *err)
{
    c->now_ms = trp_loop_now_ms();
    uint64_t start = c->now_ms, sent = 0;
    c->want_type = type;
    c->want_id = id;
    c->want_from = node;
    free(c->got);
    c->got = NULL;
    while (c->want_type) {
        if (c->now_ms - start > c->timeout_ms) {
            c->want_type = 0;
            return trp_err_set(err, TRP_EUNAVAIL, "node %llu did not answer within %u ms",
                               (unsigned long long)(node ? node : c->ids[c->target]),
                               c->timeout_ms);
        }
        if (!sent || c->now_ms - sent >= RETRY_MS) {
            if (!node && sent && c->now_ms - c->heard_ms > ROTATE_MS) {
                c->target = (c->target + 1) % c->n;
                c->heard_ms = c->now_ms;
            }
            send_to(c, node ? node : c->ids[c->target], b);
            trp_udp_flush(c->udp, err);
            sent = c->now_ms;
        }
        wait_and_receive(c, RETRY_MS / 5, -1, 0);
    }
    return trp_cmsg_decode(c->got, c->got_len, &c->cm, err);
}

int trp_client_status(trp_client *c, uint64_t node, char **json, trp_err *err)
{
    uint64_t id = rand64();
    trp_cbuf b = {0};
    trp_cbuf_header(&b, TRP_CMSG_STATUS, id);
    int rc = request(c, node, TRP_CMSG_STATUS_RESP, id, &b, err);
    trp_cbuf_free(&b);
    if (rc)
        return rc;
    *json = strndup(c->cm.text, c->cm.text_len);
    return *json ? 0 : trp_err_set(err, TRP_ENOMEM, "out of memory");
}

int trp_client_read_index(trp_client *c, mpz_t commit_next, trp_err *err)
{
    uint64_t start = trp_loop_now_ms();
    for (int attempt = 0; attempt < 1000; attempt++) {
        uint64_t id = rand64();
        trp_cbuf b = {0};
        trp_cbuf_header(&b, TRP_CMSG_READINDEX, id);
        int rc = request(c, 0, TRP_CMSG_READINDEX_RESP, id, &b, err);
        trp_cbuf_free(&b);
        if (rc)
            return rc;
        if (c->cm.status == TRP_OK) {
            mpz_set(commit_next, c->cm.seq);
            return 0;
        }
        if (c->cm.leader_hint)
            set_target(c, c->cm.leader_hint);
        if (trp_loop_now_ms() - start > c->timeout_ms)
            break;
        wait_and_receive(c, RETRY_MS / 2, -1, 0);
    }
    return trp_err_set(err, TRP_EUNAVAIL, "no leader confirmed a read within %u ms", c->timeout_ms);
}

/* ---- reading ---------------------------------------------------------------------- */

int trp_client_read_start(trp_client *c, const mpz_t from, uint64_t back, trp_err *err)
{
    (void)err;
    c->stream = rand64();
    c->r_started = false;
    c->r_have_end = false;
    c->r_tail = from == NULL;
    c->r_tail_at = false;
    c->r_back = back;
    mpz_set_ui(c->r_next, 0);
    if (from)
        mpz_set(c->r_next, from);
    c->r_asked_ms = 0;
    c->r_heard_ms = trp_loop_now_ms();
    return 0;
}

int trp_client_read_tail(trp_client *c, uint64_t back, const mpz_t end, trp_err *err)
{
    int rc = trp_client_read_start(c, NULL, back, err);
    c->r_tail_at = true;
    mpz_set(c->r_next, end);
    return rc;
}

/* Seqs on the wire have at most TRP_RAFT_CODEC_MAX_SEQ_BYTES bytes: one
 * larger (past any seq a log can hold) is sent as the largest there is. */
static void wire_seq_clamp(mpz_t seq)
{
    if (mpz_sizeinbase(seq, 2) > 8 * TRP_RAFT_CODEC_MAX_SEQ_BYTES) {
        mpz_set_ui(seq, 1);
        mpz_mul_2exp(seq, seq, 8 * TRP_RAFT_CODEC_MAX_SEQ_BYTES);
        mpz_sub_ui(seq, seq, 1);
    }
}

static void read_ask(trp_client *c, bool restart)
{
    trp_cbuf b = {0};
    mpz_add_ui(c->r_until, c->r_next, READ_WINDOW);
    wire_seq_clamp(c->r_until);
    mpz_t next;
    mpz_init_set(next, c->r_next);
    wire_seq_clamp(next);
    int flags = restart || !c->r_started ? TRP_CREAD_RESTART : 0;
    if (!c->r_started && c->r_tail)
        flags |= TRP_CREAD_TAIL | (c->r_tail_at ? TRP_CREAD_TAIL_AT : 0);
    trp_cbuf_header(&b, TRP_CMSG_READ, c->stream);
    trp_cbuf_u8(&b, (uint8_t)flags);
    trp_cbuf_seq(&b, next);
    trp_cbuf_u64(&b, c->r_back);
    trp_cbuf_seq(&b, c->r_until);
    mpz_clear(next);
    send_to(c, c->ids[c->target], &b);
    trp_err err;
    trp_err_clear(&err);
    trp_udp_flush(c->udp, &err);
    trp_cbuf_free(&b);
    c->r_asked_ms = c->now_ms;
}

/* Tell the node this read is over, so that it forgets the stream instead
 * of sending it what commits next until it expires (not waited for: if
 * both copies are lost, that only costs the node that much). */
static void read_close(trp_client *c)
{
    trp_cbuf b = {0};
    mpz_t next;
    mpz_init_set(next, c->r_next);
    wire_seq_clamp(next);
    trp_cbuf_header(&b, TRP_CMSG_READ, c->stream);
    trp_cbuf_u8(&b, TRP_CREAD_CLOSE);
    trp_cbuf_seq(&b, next);
    trp_cbuf_u64(&b, 0);
    trp_cbuf_seq(&b, next);
    send_to(c, c->ids[c->target], &b);
    send_to(c, c->ids[c->target], &b); /* twice: a busy node's socket may drop one */
    trp_err err;
    trp_err_clear(&err);
    trp_udp_flush(c->udp, &err);
    trp_cbuf_free(&b);
    mpz_clear(next);
}

/* Make the next useful queued ENTRIES message current (rcm, ridx).
 * 1: one is current; -status: an error reply; 0: none queued. */
static int read_take(trp_client *c, trp_err *err)
{
    while (c->rq_len) {
        struct rmsg r = c->rq[c->rq_head];
        c->rq_head = (c->rq_head + 1) % READ_QUEUE_MAX;
        c->rq_len--;
        free(c->rcm_buf);
        c->rcm_buf = r.buf; /* rcm points into it */
        c->rcm_valid = false;
        if (trp_cmsg_decode(r.buf, r.len, &c->rcm, NULL) != 0)
            continue;
        if (c->rcm.status) {
            int st = c->rcm.status;
            trp_err_set(err, st, "node %llu: %.*s", (unsigned long long)c->ids[c->target],
                        (int)c->rcm.text_len, c->rcm.text);
            return -st;
        }
        if (!c->r_started) { /* the first answer fixes where we start */
            c->r_started = true;
            if (c->r_tail)
                mpz_set(c->r_next, c->rcm.first);
        }
        if (mpz_cmp(c->rcm.seq, c->r_commit) > 0)
            mpz_set(c->r_commit, c->rcm.seq);
        if (!c->r_have_end) {
            c->r_have_end = true;
            mpz_set(c->r_end, c->rcm.seq);
        }
        /* where does r_next fall in this message? */
        mpz_t off;
        mpz_init(off);
        mpz_sub(off, c->r_next, c->rcm.first);
        bool inside = mpz_sgn(off) >= 0 && mpz_cmp_ui(off, c->rcm.n_entries) < 0;
        bool gap = mpz_sgn(off) < 0 && c->rcm.n_entries; /* starts past what we want: a loss */
        c->ridx = inside ? (size_t)mpz_get_ui(off) : 0;
        mpz_clear(off);
        if (inside) {
            c->rcm_valid = true;
            return 1;
        }
        if (gap)
            read_ask(c, true);
    }
    return 0;
}

/* Has a read without -f reached its end: the commit of the first answer,
 * or, when that is below until_commit (a linearizable read's index), that
 * index once the node's commit has reached it? */
static bool read_at_end(trp_client *c, const mpz_t until_commit)
{
    if (until_commit && mpz_cmp(c->r_end, until_commit) < 0 &&
        mpz_cmp(c->r_commit, until_commit) >= 0)
        mpz_set(c->r_end, until_commit);
    return mpz_cmp(c->r_next, c->r_end) >= 0 &&
           (!until_commit || mpz_cmp(c->r_next, until_commit) >= 0);
}

int trp_client_read_next(trp_client *c, bool follow, int watch_fd, const mpz_t until_commit,
                         trp_cmsg_entry *e, mpz_t seq, trp_err *err)
{
    for (;;) {
        c->now_ms = trp_loop_now_ms();
        if (c->rcm_valid && c->ridx < c->rcm.n_entries) {
            /* without -f, the end is the commit of the first answer (or
             * the read index): entries committed since are not ours */
            if (!follow && c->r_have_end && read_at_end(c, until_commit))
                return 0;
            *e = c->rcm.entries[c->ridx++];
            mpz_set(seq, c->r_next);
            mpz_add_ui(c->r_next, c->r_next, 1);
            if (c->ridx == c->rcm.n_entries)
                c->rcm_valid = false; /* freed at the next take */
            return 1;
        }
        int t = read_take(c, err);
        if (t < 0)
            return t;
        if (t > 0)
            continue;
        if (c->r_have_end && !follow && read_at_end(c, until_commit))
            return 0;
        /* ask for more: first time, credit running low, stalled, or keepalive */
        mpz_t half;
        mpz_init(half);
        mpz_add_ui(half, c->r_next, READ_WINDOW / 2);
        wire_seq_clamp(half); /* at the wire's last seq the window cannot grow */
        bool low = c->r_started && mpz_cmp(half, c->r_until) > 0;
        mpz_clear(half);
        bool stalled = c->now_ms - c->r_asked_ms >= (c->r_started ? READ_KEEPALIVE_MS : RETRY_MS);
        bool behind = c->r_started && mpz_cmp(c->r_next, c->r_commit) < 0 &&
                      c->now_ms - c->r_heard_ms >= RETRY_MS;
        if (!c->r_asked_ms || low || stalled || behind)
            read_ask(c, behind || !c->r_started);
        if (c->now_ms - c->r_heard_ms > c->timeout_ms) {
            if (c->n > 1 && !follow)
                return -trp_err_set(err, TRP_EUNAVAIL, "node %llu did not answer within %u ms",
                                    (unsigned long long)c->ids[c->target], c->timeout_ms);
            if (!follow)
                return -trp_err_set(err, TRP_EUNAVAIL, "no answer within %u ms", c->timeout_ms);
            c->r_heard_ms = c->now_ms; /* following: keep asking, the node may come back */
        }
        if (wait_and_receive(c, RETRY_MS, watch_fd, 0))
            return 0; /* the reader of our output went away */
    }
}
