/*
 * tnode.c: the embeddable tinyraft-style node (trp_node.h) and an
 * in-memory log for tests and examples.
 *
 * The one idea: one loop, node_process(), owns the core. It drains queued
 * inputs, then each ready in the order the core's contract demands: term
 * and vote to the log's metadata first, then the messages out, replies to
 * callbacks, and a log sync whose durable end goes back to the core. Any
 * input that arrives while the loop runs (a send callback that delivers
 * straight into another node that answers at once, an append callback that
 * appends again) is queued and handled by the same loop, so the core never
 * sees re-entrant calls.
 */
#include "trp_log.h"
#include "trp_node.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define NODE_INBOX_MAX 65536
#define NODE_PROCESS_ROUNDS 100000

/* ---- in-memory log -------------------------------------------------------- */

struct mem_entry {
    uint64_t term;
    int type;
    uint8_t hash[TRP_RAFT_HASH_LEN];
    uint8_t *payload;
    size_t len;
};

struct memlog {
    trp_node_log log; /* first: the public handle points here */
    mpz_t first, tmp;
    struct mem_entry *e;
    size_t n, cap;
    uint64_t term, vote;
    mpz_t commit;
};

static size_t mem_index(struct memlog *m, const mpz_t seq)
{
    mpz_sub(m->tmp, seq, m->first);
    return mpz_sgn(m->tmp) < 0 || !mpz_fits_ulong_p(m->tmp) ? (size_t)-1
                                                            : (size_t)mpz_get_ui(m->tmp);
}

static void mem_bounds(void *u, mpz_t first, mpz_t next)
{
    struct memlog *m = u;
    mpz_set(first, m->first);
    mpz_add_ui(next, m->first, m->n);
}

static void mem_anchor(void *u, uint8_t out[TRP_RAFT_HASH_LEN])
{
    (void)u;
    memset(out, 0, TRP_RAFT_HASH_LEN);
}

static int mem_read(void *u, const mpz_t seq, trp_raft_entry *e, trp_err *err)
{
    struct memlog *m = u;
    size_t i = mem_index(m, seq);
    if (i >= m->n)
        return trp_err_set(err, TRP_ERANGE, "memory log: seq outside the log");
    e->term = m->e[i].term;
    e->type = m->e[i].type;
    memcpy(e->hash, m->e[i].hash, TRP_RAFT_HASH_LEN);
    e->payload = m->e[i].payload;
    e->len = m->e[i].len;
    return 0;
}

static int mem_append(void *u, const mpz_t seq, const trp_raft_entry *e, trp_err *err)
{
    struct memlog *m = u;
    if (mem_index(m, seq) != m->n)
        return trp_err_set(err, TRP_EINVAL, "memory log: append not at the end");
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct mem_entry *ne = realloc(m->e, cap * sizeof *ne);
        if (!ne)
            return trp_err_set(err, TRP_ENOMEM, "memory log: out of memory");
        m->e = ne;
        m->cap = cap;
    }
    struct mem_entry *me = &m->e[m->n];
    me->payload = malloc(e->len ? e->len : 1);
    if (!me->payload)
        return trp_err_set(err, TRP_ENOMEM, "memory log: out of memory");
    if (e->len)
        memcpy(me->payload, e->payload, e->len);
    me->len = e->len;
    me->term = e->term;
    me->type = e->type;
    memcpy(me->hash, e->hash, TRP_RAFT_HASH_LEN);
    m->n++;
    return 0;
}

static int mem_truncate(void *u, const mpz_t from, trp_err *err)
{
    struct memlog *m = u;
    size_t i = mem_index(m, from);
    if (i > m->n)
        return trp_err_set(err, TRP_ERANGE, "memory log: truncate past the end");
    while (m->n > i)
        free(m->e[--m->n].payload);
    return 0;
}

static int mem_sync(void *u, mpz_t durable_next, trp_err *err)
{
    struct memlog *m = u;
    (void)err;
    mpz_add_ui(durable_next, m->first, m->n);
    return 0;
}

static int mem_meta_get(void *u, uint64_t *term, uint64_t *vote, mpz_t commit, trp_err *err)
{
    struct memlog *m = u;
    (void)err;
    *term = m->term;
    *vote = m->vote;
    mpz_set(commit, m->commit);
    return 0;
}

static int mem_meta_set(void *u, uint64_t term, uint64_t vote, trp_err *err)
{
    struct memlog *m = u;
    (void)err;
    m->term = term;
    m->vote = vote;
    return 0;
}

static int mem_commit_set(void *u, const mpz_t commit, trp_err *err)
{
    struct memlog *m = u;
    (void)err;
    if (mpz_cmp(commit, m->commit) > 0)
        mpz_set(m->commit, commit);
    return 0;
}

int trp_node_memlog_new(trp_node_log **out, const char *start_seq, trp_err *err)
{
    struct memlog *m = calloc(1, sizeof *m);
    if (!m)
        return trp_err_set(err, TRP_ENOMEM, "memory log: out of memory");
    mpz_inits(m->first, m->tmp, m->commit, NULL);
    if (start_seq && (mpz_set_str(m->first, start_seq, 10) != 0 || mpz_sgn(m->first) < 0 ||
                      start_seq[0] == '+' || start_seq[0] == '-' || start_seq[0] == ' ')) {
        mpz_clears(m->first, m->tmp, m->commit, NULL);
        free(m);
        return trp_err_set(err, TRP_EINVAL, "memory log: start seq \"%s\" is not a decimal number",
                           start_seq);
    }
    mpz_set(m->commit, m->first);
    m->log.st = (trp_raft_storage){m, mem_bounds, mem_anchor, mem_read, mem_append, mem_truncate};
    m->log.sync = mem_sync;
    m->log.meta_get = mem_meta_get;
    m->log.meta_set = mem_meta_set;
    m->log.commit_set = mem_commit_set;
    *out = &m->log;
    return 0;
}

void trp_node_memlog_free(trp_node_log *log)
{
    if (!log)
        return;
    struct memlog *m = (struct memlog *)log;
    while (m->n)
        free(m->e[--m->n].payload);
    free(m->e);
    mpz_clears(m->first, m->tmp, m->commit, NULL);
    free(m);
}

/* ---- the node ------------------------------------------------------------- */

struct pending {
    int kind; /* TRP_RAFT_REPLY_APPEND or _READ */
    uint64_t client, req;
    trp_node_append_cb cb;
    trp_node_read_cb read_cb;
    void *arg;
    uint64_t deadline_ms;
};

enum { ITEM_MSG = 1, ITEM_APPEND = 2, ITEM_READ = 3 };

struct inbox_item {
    int kind; /* ITEM_* */
    uint64_t from, client, req;
    uint8_t *bytes;
    size_t len;
    bool has_if;
    uint8_t if_head[TRP_RAFT_HASH_LEN];
};

struct trp_node {
    uint64_t id;
    trp_raft_node *nodes;
    char **groups; /* distinct group names */
    size_t n, n_groups;
    trp_node_send_fn send;
    void *user;
    trp_node_log *log;
    trp_node_options opts;
    uint64_t rng;
    uint64_t client, next_req;
    trp_raft *r;
    uint64_t now_ms;
    struct pending *pending;
    size_t n_pending, cap_pending;
    struct inbox_item *inbox;
    size_t n_inbox, cap_inbox, inbox_head;
    bool busy;
};

static uint64_t node_rand(void *u)
{
    trp_node *node = u;
    uint64_t z = (node->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int trp_node_new(trp_node **out, uint64_t id, const uint64_t *ids, size_t n, trp_node_send_fn send,
                 void *user, trp_node_log *log, const trp_node_options *opts, trp_err *err)
{
    *out = NULL;
    if (!ids || !n || !send || !log)
        return trp_err_set(err, TRP_EINVAL, "node %llu: ids, send and log are required",
                           (unsigned long long)id);
    trp_node *node = calloc(1, sizeof *node);
    if (!node)
        return trp_err_set(err, TRP_ENOMEM, "node: out of memory");
    node->id = id;
    node->n = n;
    node->send = send;
    node->user = user;
    node->log = log;
    if (opts)
        node->opts = *opts;
    node->nodes = calloc(n, sizeof *node->nodes);
    node->groups = calloc(n, sizeof *node->groups);
    if (!node->nodes || !node->groups) {
        trp_node_free(node);
        return trp_err_set(err, TRP_ENOMEM, "node: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        node->nodes[i].id = ids[i];
        node->nodes[i].priority = opts && opts->priorities ? opts->priorities[i] : 0;
        const char *g = opts && opts->groups ? opts->groups[i] : NULL;
        if (!g)
            continue;
        size_t k = 0;
        while (k < node->n_groups && strcmp(node->groups[k], g) != 0)
            k++;
        if (k == node->n_groups)
            node->groups[node->n_groups++] = strdup(g);
        node->nodes[i].group = node->groups[k];
    }
    node->opts.priorities = NULL;
    node->opts.groups = NULL;
    if (!node->opts.hash_entry)
        node->opts.hash_entry = trp_entry_hash;
    node->rng = node->opts.seed ? node->opts.seed : id * 0x2545f4914f6cdd1dull + 1;
    /* A client id for this node's own appends that its previous life over
     * the same log never used: its request numbers start at 1 again, and
     * under an old id the core would answer a new append as a retry of the
     * old one (same id and number) without storing it. So not derived from
     * the id or the seed, which a restart repeats. */
    node->client = node->opts.client_id;
    while (!node->client)
        if (RAND_bytes((unsigned char *)&node->client, sizeof node->client) != 1) {
            trp_node_free(node);
            return trp_err_set(err, TRP_EIO, "node %llu: no randomness for a client id",
                               (unsigned long long)id);
        }
    trp_raft_config c = {.self = id,
                         .nodes = node->nodes,
                         .n_nodes = n,
                         .groups = (const char *const *)node->groups,
                         .n_groups = node->n_groups,
                         .election_timeout_ms = node->opts.election_timeout_ms,
                         .heartbeat_ms = node->opts.heartbeat_ms};
    int rc = trp_raft_config_check(&c, err);
    if (rc) {
        trp_node_free(node);
        return rc;
    }
    *out = node;
    return 0;
}

/* Call (once) and forget the callback of request (kind, client, req). */
static void answer(trp_node *node, int kind, uint64_t client, uint64_t req, int status,
                   const mpz_t seq, const uint8_t *hash)
{
    for (size_t i = 0; i < node->n_pending; i++) {
        struct pending p = node->pending[i];
        if (p.req != req || p.client != client || p.kind != kind)
            continue;
        node->pending[i] = node->pending[--node->n_pending];
        if (p.kind == TRP_RAFT_REPLY_READ)
            p.read_cb(p.arg, status, seq);
        else
            p.cb(p.arg, status, seq, hash);
        return;
    }
}

static void answer_pending(trp_node *node, size_t i, int status)
{
    mpz_t zero;
    mpz_init(zero);
    struct pending p = node->pending[i];
    answer(node, p.kind, p.client, p.req, status, zero, NULL);
    mpz_clear(zero);
}

void trp_node_stop(trp_node *node)
{
    if (!node->r)
        return;
    trp_raft_free(node->r);
    node->r = NULL;
    for (size_t i = node->inbox_head; i < node->n_inbox; i++)
        free(node->inbox[i].bytes);
    node->n_inbox = node->inbox_head = 0;
    while (node->n_pending)
        answer_pending(node, 0, TRP_ESTATE);
}

void trp_node_free(trp_node *node)
{
    if (!node)
        return;
    trp_node_stop(node);
    for (size_t i = 0; i < node->n_groups; i++)
        free(node->groups[i]);
    free(node->groups);
    free(node->nodes);
    free(node->pending);
    free(node->inbox);
    free(node);
}

int trp_node_start(trp_node *node, uint64_t now_ms, trp_err *err)
{
    if (node->r)
        return trp_err_set(err, TRP_ESTATE, "node %llu: already started",
                           (unsigned long long)node->id);
    uint64_t term = 0, vote = 0;
    mpz_t commit, next;
    mpz_inits(commit, next, NULL);
    node->log->st.bounds(node->log->st.user, commit, next);
    int rc = node->log->meta_get(node->log->st.user, &term, &vote, commit, err);
    if (!rc) {
        const mpz_t *cp = (const mpz_t *)&commit;
        trp_raft_restart rs = {term, vote, cp, false};
        trp_raft_config c = {.self = node->id,
                             .nodes = node->nodes,
                             .n_nodes = node->n,
                             .groups = (const char *const *)node->groups,
                             .n_groups = node->n_groups,
                             .election_timeout_ms = node->opts.election_timeout_ms,
                             .heartbeat_ms = node->opts.heartbeat_ms};
        trp_raft_env env = {node, node_rand, node->opts.hash_entry};
        rc = trp_raft_new(&node->r, &c, &node->log->st, &env, &rs, now_ms, err);
    }
    mpz_clears(commit, next, NULL);
    node->now_ms = now_ms;
    return rc;
}

static void inbox_push(trp_node *node, struct inbox_item it)
{
    if (node->n_inbox - node->inbox_head >= NODE_INBOX_MAX) {
        free(it.bytes); /* overloaded: drop, as a network would */
        if (it.kind != ITEM_MSG)
            for (size_t i = 0; i < node->n_pending; i++)
                if (node->pending[i].client == it.client && node->pending[i].req == it.req) {
                    answer_pending(node, i, TRP_EUNAVAIL);
                    break;
                }
        return;
    }
    if (node->inbox_head && node->inbox_head == node->n_inbox)
        node->inbox_head = node->n_inbox = 0;
    if (node->n_inbox == node->cap_inbox) {
        size_t cap = node->cap_inbox ? node->cap_inbox * 2 : 32;
        struct inbox_item *p = realloc(node->inbox, cap * sizeof *p);
        if (!p)
            abort();
        node->inbox = p;
        node->cap_inbox = cap;
    }
    node->inbox[node->n_inbox++] = it;
}

static int handle_ready(trp_node *node)
{
    trp_raft_ready rd;
    trp_raft_ready_take(node->r, &rd);
    trp_err err;
    trp_err_clear(&err);
    void *u = node->log->st.user;
    if (rd.hard_state && node->log->meta_set(u, rd.term, rd.vote, &err)) {
        /* cannot persist the vote: send nothing that depends on it */
        for (size_t i = 0; i < rd.n_msgs; i++)
            trp_raft_msg_clear(&rd.msgs[i]);
        rd.n_msgs = 0;
        rd.hard_state = false;
        trp_raft_advance(node->r, &rd);
        return TRP_EIO;
    }
    if (rd.commit_changed && node->log->commit_set)
        node->log->commit_set(u, rd.commit_next, &err);
    for (size_t i = 0; i < rd.n_msgs; i++) {
        uint8_t *buf;
        size_t len;
        if (trp_raft_msg_encode(&rd.msgs[i], &buf, &len, &err) == 0) {
            node->send(node->user, rd.msgs[i].to, buf, len);
            free(buf);
        }
    }
    for (size_t i = 0; i < rd.n_replies; i++) {
        trp_raft_reply *rep = &rd.replies[i];
        answer(node, rep->kind, rep->client, rep->req, rep->status, rep->seq, rep->hash);
    }
    bool sync = rd.sync;
    trp_raft_advance(node->r, &rd);
    if (sync) {
        mpz_t durable;
        mpz_init(durable);
        int rc = node->log->sync(u, durable, &err);
        if (!rc && node->r)
            trp_raft_persisted(node->r, durable);
        mpz_clear(durable);
        if (rc)
            return rc;
    }
    return 0;
}

static void handle_item(trp_node *node, struct inbox_item *it)
{
    if (it->kind == ITEM_MSG) {
        trp_raft_msg m;
        trp_raft_msg_init(&m);
        if (trp_raft_msg_decode(it->bytes, it->len, &m, NULL) == 0 && m.from == it->from)
            trp_raft_step(node->r, &m);
        trp_raft_msg_clear(&m);
    } else if (it->kind == ITEM_APPEND) {
        trp_raft_propose(node->r, it->client, it->req, it->bytes, it->len,
                         it->has_if ? it->if_head : NULL);
    } else {
        trp_raft_read(node->r, it->client, it->req);
    }
    free(it->bytes);
}

/* The one loop that owns the core (see the file comment). */
static int node_process(trp_node *node)
{
    if (node->busy)
        return 0;
    node->busy = true;
    int rc = 0;
    for (int round = 0; round < NODE_PROCESS_ROUNDS && node->r; round++) {
        if (node->inbox_head < node->n_inbox) {
            struct inbox_item it = node->inbox[node->inbox_head++];
            handle_item(node, &it);
            continue;
        }
        if (!trp_raft_has_ready(node->r))
            break;
        if ((rc = handle_ready(node)))
            break;
    }
    node->busy = false;
    return rc;
}

int trp_node_tick(trp_node *node, uint64_t now_ms)
{
    if (!node->r)
        return TRP_ESTATE;
    node->now_ms = now_ms;
    if (!node->busy)
        trp_raft_tick(node->r, now_ms);
    /* requests whose answer was lost on the way */
    for (size_t i = 0; i < node->n_pending;) {
        if (node->pending[i].deadline_ms <= now_ms)
            answer_pending(node, i, TRP_EUNAVAIL);
        else
            i++;
    }
    return node_process(node);
}

int trp_node_receive(trp_node *node, uint64_t from, const void *bytes, size_t len)
{
    if (!node->r)
        return TRP_ESTATE;
    struct inbox_item it = {.kind = ITEM_MSG, .from = from, .len = len};
    it.bytes = malloc(len ? len : 1);
    if (!it.bytes)
        return TRP_ENOMEM;
    memcpy(it.bytes, bytes, len);
    inbox_push(node, it);
    return node_process(node);
}

/* Remember the callback, queue the request, run the loop. */
static uint64_t submit(trp_node *node, const struct pending *pd, const void *data, size_t len,
                       const uint8_t *if_head)
{
    if (!node->r) {
        mpz_t zero;
        mpz_init(zero);
        if (pd->kind == TRP_RAFT_REPLY_READ)
            pd->read_cb(pd->arg, TRP_ESTATE, zero);
        else
            pd->cb(pd->arg, TRP_ESTATE, zero, NULL);
        mpz_clear(zero);
        return 0;
    }
    if (node->n_pending == node->cap_pending) {
        size_t cap = node->cap_pending ? node->cap_pending * 2 : 16;
        struct pending *p = realloc(node->pending, cap * sizeof *p);
        if (!p)
            abort();
        node->pending = p;
        node->cap_pending = cap;
    }
    uint64_t et = node->opts.election_timeout_ms ? node->opts.election_timeout_ms
                                                 : TRP_RAFT_ELECTION_TIMEOUT_MS;
    struct pending p = *pd;
    p.deadline_ms = node->now_ms + 4 * et; /* then TRP_EUNAVAIL: retry */
    node->pending[node->n_pending++] = p;
    struct inbox_item it = {.kind = pd->kind == TRP_RAFT_REPLY_READ ? ITEM_READ : ITEM_APPEND,
                            .client = pd->client,
                            .req = pd->req,
                            .len = len,
                            .has_if = if_head != NULL};
    if (if_head)
        memcpy(it.if_head, if_head, TRP_RAFT_HASH_LEN);
    it.bytes = malloc(len ? len : 1);
    if (!it.bytes)
        abort();
    if (len)
        memcpy(it.bytes, data, len);
    inbox_push(node, it);
    node_process(node);
    return pd->req;
}

static uint64_t submit_append(trp_node *node, uint64_t client, uint64_t req, const void *data,
                              size_t len, const uint8_t *if_head, trp_node_append_cb cb, void *arg)
{
    struct pending pd = {
        .kind = TRP_RAFT_REPLY_APPEND, .client = client, .req = req, .cb = cb, .arg = arg};
    return submit(node, &pd, data, len, if_head);
}

uint64_t trp_node_append(trp_node *node, const void *data, size_t len, trp_node_append_cb cb,
                         void *arg)
{
    return submit_append(node, node->client, ++node->next_req, data, len, NULL, cb, arg);
}

uint64_t trp_node_append_if(trp_node *node, const void *data, size_t len,
                            const uint8_t if_head[TRP_RAFT_HASH_LEN], trp_node_append_cb cb,
                            void *arg)
{
    return submit_append(node, node->client, ++node->next_req, data, len, if_head, cb, arg);
}

int trp_node_append_retry(trp_node *node, uint64_t req, const void *data, size_t len,
                          trp_node_append_cb cb, void *arg)
{
    if (!req || req > node->next_req)
        return TRP_EINVAL;
    return submit_append(node, node->client, req, data, len, NULL, cb, arg) ? 0 : TRP_ESTATE;
}

int trp_node_append_as(trp_node *node, uint64_t client, uint64_t req, const void *data, size_t len,
                       const uint8_t *if_head, trp_node_append_cb cb, void *arg)
{
    if (!client || client == node->client)
        return TRP_EINVAL;
    return submit_append(node, client, req, data, len, if_head, cb, arg) ? 0 : TRP_ESTATE;
}

uint64_t trp_node_read(trp_node *node, trp_node_read_cb cb, void *arg)
{
    struct pending pd = {.kind = TRP_RAFT_REPLY_READ,
                         .client = node->client,
                         .req = ++node->next_req,
                         .read_cb = cb,
                         .arg = arg};
    return submit(node, &pd, NULL, 0, NULL);
}

bool trp_node_is_leader(const trp_node *node)
{
    return node->r && trp_raft_role(node->r) == TRP_RAFT_LEADER;
}

uint64_t trp_node_leader(const trp_node *node)
{
    return node->r ? trp_raft_leader(node->r) : 0;
}
uint64_t trp_node_term(const trp_node *node)
{
    return node->r ? trp_raft_term(node->r) : 0;
}
const uint8_t *trp_node_head(const trp_node *node)
{
    return node->r ? trp_raft_head_hash(node->r) : NULL;
}
void trp_node_commit_next(const trp_node *node, mpz_t out)
{
    if (node->r)
        trp_raft_commit_next(node->r, out);
}
trp_raft *trp_node_raft(trp_node *node)
{
    return node->r;
}
