/*
 * server_client.c: trp-node's side of the client protocol (trp_client.h):
 * appends proposed to the core, replies grouped per client, read streams
 * with credit, the read index, and the status JSON.
 *
 * The one idea: the node keeps no per-request state of its own. An append's
 * (session, request) pair goes into the core, which forwards, deduplicates
 * and answers it; the node only remembers which client (wire id and
 * address) a session's answers go to. A read stream is two seqs, next and
 * until: entries below both the commit and until are sent, so a client
 * controls how much is in flight by how far it moves until.
 */
#include "server.h"
#include "raft.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMAP_CAP 65536 /* sessions remembered; a full map is cleared */

/* ---- who to answer ------------------------------------------------------------ */

/* Found through an index (idmap.h): once earlier clients had filled the
 * table, a scan per datagram and per reply cost more than the reply. */
static uint64_t client_id_of(const void *clients, size_t i)
{
    return ((const struct peer_addr *)clients)[i].id;
}

static struct peer_addr *client_find(trp_server *s, uint64_t id)
{
    uint32_t i = idmap_find(&s->client_index, id, s->clients, s->n_clients, client_id_of);
    return i == IDMAP_NONE ? NULL : &s->clients[i];
}

static void client_note(trp_server *s, uint64_t id, const struct sockaddr *addr, socklen_t alen)
{
    struct peer_addr *p = client_find(s, id);
    uint64_t now = trp_loop_now_ms();
    bool is_new = !p;
    if (!p) {
        if (!s->client_index.slot && !idmap_init(&s->client_index, SERVER_ADDRS_MAX))
            return;
        if (s->n_clients == s->cap_clients) {
            if (s->cap_clients >= SERVER_ADDRS_MAX) { /* bounded: reuse the quietest */
                p = &s->clients[0];
                for (size_t i = 1; i < s->n_clients; i++)
                    if (s->clients[i].seen_ms < p->seen_ms)
                        p = &s->clients[i];
                goto fill;
            }
            size_t cap = s->cap_clients ? s->cap_clients * 2 : 16;
            struct peer_addr *n = realloc(s->clients, cap * sizeof *n);
            if (!n)
                return;
            s->clients = n;
            s->cap_clients = cap;
        }
        p = &s->clients[s->n_clients++];
    }
fill:
    p->id = id;
    if (alen > sizeof p->addr)
        alen = sizeof p->addr;
    memcpy(&p->addr, addr, alen);
    p->len = alen;
    p->seen_ms = now;
    if (is_new)
        idmap_add(&s->client_index, id, (uint32_t)(p - s->clients), s->clients, 0, s->n_clients,
                  client_id_of);
}

void server_send_client(trp_server *s, uint64_t client, const void *msg, size_t len)
{
    struct peer_addr *p = client_find(s, client);
    if (!p)
        return;
    trp_err err;
    trp_err_clear(&err);
    trp_udp_send_message_to(s->udp, s->wire, client, (const struct sockaddr *)&p->addr, p->len, msg,
                            len, &err);
}

static size_t smap_slot(const trp_server *s, uint64_t key)
{
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 16) & (s->smap_cap - 1);
}

static void smap_put(trp_server *s, uint64_t session, uint64_t client)
{
    if (!s->smap_keys) {
        s->smap_keys = calloc(SMAP_CAP, sizeof *s->smap_keys);
        s->smap_vals = calloc(SMAP_CAP, sizeof *s->smap_vals);
        if (!s->smap_keys || !s->smap_vals) {
            free(s->smap_keys);
            free(s->smap_vals);
            s->smap_keys = s->smap_vals = NULL;
            return;
        }
        s->smap_cap = SMAP_CAP;
    }
    if (s->smap_n >= s->smap_cap / 2) { /* bounded: forget everyone; clients retry */
        memset(s->smap_keys, 0, s->smap_cap * sizeof *s->smap_keys);
        s->smap_n = 0;
    }
    size_t i = smap_slot(s, session);
    while (s->smap_keys[i] && s->smap_keys[i] != session)
        i = (i + 1) & (s->smap_cap - 1);
    if (!s->smap_keys[i])
        s->smap_n++;
    s->smap_keys[i] = session;
    s->smap_vals[i] = client;
}

static uint64_t smap_get(const trp_server *s, uint64_t session)
{
    if (!s->smap_keys || !session)
        return 0;
    size_t i = smap_slot(s, session);
    while (s->smap_keys[i]) {
        if (s->smap_keys[i] == session)
            return s->smap_vals[i];
        i = (i + 1) & (s->smap_cap - 1);
    }
    return 0;
}

/* ---- appends ------------------------------------------------------------------- */

static void append_refuse(trp_server *s, uint64_t client, const trp_cmsg_item *it, int status)
{
    trp_cbuf b = {0};
    mpz_t zero;
    mpz_init(zero);
    uint8_t hash[TRP_HASH_LEN] = {0};
    trp_cbuf_header(&b, TRP_CMSG_APPEND_RESP, 0);
    trp_cbuf_u64(&b, trp_raft_leader(s->raft));
    trp_cbuf_u32(&b, 1);
    trp_cbuf_u64(&b, it->session);
    trp_cbuf_u64(&b, it->req);
    trp_cbuf_u8(&b, (uint8_t)status);
    trp_cbuf_seq(&b, zero);
    trp_cbuf_bytes(&b, hash, TRP_HASH_LEN);
    if (!b.oom)
        server_send_client(s, client, b.p, b.len);
    trp_cbuf_free(&b);
    mpz_clear(zero);
}

static void on_append(trp_server *s, uint64_t client, const trp_cmsg *m)
{
    for (size_t i = 0; i < m->n_items; i++) {
        const trp_cmsg_item *it = &m->items[i];
        if (!it->session) {
            append_refuse(s, client, it, TRP_EINVAL);
            continue;
        }
        if (it->len > s->cfg->max_entry) {
            append_refuse(s, client, it, TRP_ETOOBIG);
            continue;
        }
        if (i == 0 || it->session != m->items[i - 1].session)
            smap_put(s, it->session, client);
        trp_raft_propose(s->raft, it->session, it->req, it->data, it->len,
                         i == 0 && m->has_if_head ? m->if_head : NULL);
    }
}

/* An APPEND_RESP being filled for one client. */
struct outmsg {
    uint64_t client;
    trp_cbuf b;
    size_t count_at;
    uint32_t count;
};

static void outmsg_flush(trp_server *s, struct outmsg *o)
{
    if (o->count && !o->b.oom) {
        trp_cbuf_put_u32(&o->b, o->count_at, o->count);
        server_send_client(s, o->client, o->b.p, o->b.len);
    }
    o->b.len = 0;
    o->b.oom = false;
    o->count = 0;
}

static void outmsg_start(trp_server *s, struct outmsg *o)
{
    trp_cbuf_header(&o->b, TRP_CMSG_APPEND_RESP, 0);
    trp_cbuf_u64(&o->b, trp_raft_leader(s->raft));
    o->count_at = o->b.len;
    trp_cbuf_u32(&o->b, 0);
}

static void readindex_reply(trp_server *s, const trp_raft_reply *r)
{
    trp_cbuf b = {0};
    trp_cbuf_header(&b, TRP_CMSG_READINDEX_RESP, r->req);
    trp_cbuf_u8(&b, (uint8_t)r->status);
    trp_cbuf_u64(&b, r->leader_hint ? r->leader_hint : trp_raft_leader(s->raft));
    trp_cbuf_seq(&b, r->seq);
    if (!b.oom)
        server_send_client(s, r->client, b.p, b.len); /* session = the client's id */
    trp_cbuf_free(&b);
}

#define OUTMSG_MAX 64

void server_client_replies(trp_server *s, const trp_raft_reply *r, size_t n)
{
    struct outmsg out[OUTMSG_MAX];
    size_t n_out = 0;
    for (size_t i = 0; i < n; i++) {
        if (r[i].kind == TRP_RAFT_REPLY_READ) {
            readindex_reply(s, &r[i]);
            continue;
        }
        uint64_t client = smap_get(s, r[i].client);
        if (!client)
            continue;
        struct outmsg *o = NULL;
        for (size_t k = 0; k < n_out && !o; k++)
            if (out[k].client == client)
                o = &out[k];
        if (!o) {
            if (n_out == OUTMSG_MAX) {
                for (size_t k = 0; k < n_out; k++) {
                    outmsg_flush(s, &out[k]);
                    trp_cbuf_free(&out[k].b);
                }
                n_out = 0;
            }
            o = &out[n_out++];
            memset(o, 0, sizeof *o);
            o->client = client;
        }
        if (o->count == 0) {
            o->b.len = 0;
            outmsg_start(s, o);
        }
        trp_cbuf_u64(&o->b, r[i].client);
        trp_cbuf_u64(&o->b, r[i].req);
        trp_cbuf_u8(&o->b, (uint8_t)r[i].status);
        trp_cbuf_seq(&o->b, r[i].seq);
        trp_cbuf_bytes(&o->b, r[i].hash, TRP_HASH_LEN);
        o->count++;
        if (o->b.len > SERVER_READ_MSG_BYTES)
            outmsg_flush(s, o);
    }
    for (size_t k = 0; k < n_out; k++) {
        outmsg_flush(s, &out[k]);
        trp_cbuf_free(&out[k].b);
    }
}

/* ---- read streams ----------------------------------------------------------------- */

static void entries_error(trp_server *s, uint64_t client, uint64_t id, int status, const char *text)
{
    trp_cbuf b = {0};
    size_t len = strlen(text);
    if (len > 60000)
        len = 60000;
    trp_cbuf_header(&b, TRP_CMSG_ENTRIES, id);
    trp_cbuf_u8(&b, (uint8_t)status);
    trp_cbuf_seq(&b, s->commit);
    trp_cbuf_seq(&b, s->commit);
    trp_cbuf_u8(&b, (uint8_t)(len >> 8));
    trp_cbuf_u8(&b, (uint8_t)len);
    trp_cbuf_bytes(&b, text, len);
    if (!b.oom)
        server_send_client(s, client, b.p, b.len);
    trp_cbuf_free(&b);
}


/* Where `trp-tail -n back` starts: back data entries before end (our
 * commit, or a linearizable reader's read index once our commit reached
 * it); a leader's no-ops, which raw output does not show, are not counted;
 * for a large back only the arithmetic is done. */
static void tail_start(trp_server *s, mpz_t start, const mpz_t end, uint64_t back)
{
    mpz_t first;
    mpz_init(first);
    trp_log_first(s->log, first);
    mpz_set(start, end);
    if (back > TRP_TAIL_SCAN_MAX) {
        if (mpz_cmp_ui(start, back) >= 0)
            mpz_sub_ui(start, start, back);
        else
            mpz_set_ui(start, 0);
    } else {
        trp_entry e;
        trp_entry_init(&e);
        /* room for the no-ops among them: one per leader change */
        uint64_t scan_max = TRP_TAIL_SCAN_MAX + 4096;
        for (uint64_t scanned = 0; back && mpz_cmp(start, first) > 0 && scanned < scan_max;
             scanned++) {
            mpz_sub_ui(start, start, 1);
            if (trp_log_read(s->log, start, &e, NULL) != 0 || e.type == TRP_ENTRY_DATA)
                back--;
        }
        trp_entry_clear(&e);
    }
    if (mpz_cmp(start, first) < 0)
        mpz_set(start, first);
    mpz_clear(first);
}

/* Send what the stream may have now; with `always`, at least one message
 * (possibly empty) so that the client learns the commit. */
static void stream_serve(trp_server *s, struct stream *st, bool always)
{
    if (st->waiting) {
        if (mpz_cmp(s->commit, st->next) < 0)
            return; /* the reader's read index is ahead of our commit: not yet */
        tail_start(s, st->next, st->next, st->back);
        st->waiting = false;
        always = true;
    }
    trp_cbuf *b = &s->out;
    trp_entry e;
    trp_entry_init(&e);
    for (int msgs = 0; msgs < 64; msgs++) {
        mpz_t end;
        mpz_init_set(end, s->commit);
        if (mpz_cmp(st->until, end) < 0)
            mpz_set(end, st->until);
        bool have = mpz_cmp(st->next, end) < 0;
        if (!have && !always) {
            mpz_clear(end);
            break;
        }
        always = false;
        b->len = 0;
        b->oom = false;
        trp_cbuf_header(b, TRP_CMSG_ENTRIES, st->id);
        trp_cbuf_u8(b, 0);
        trp_cbuf_seq(b, s->commit);
        trp_cbuf_seq(b, st->next);
        size_t count_at = b->len;
        trp_cbuf_u32(b, 0);
        uint32_t count = 0;
        int rc = 0;
        trp_err err;
        trp_err_clear(&err);
        while (mpz_cmp(st->next, end) < 0 && b->len < SERVER_READ_MSG_BYTES &&
               count < TRP_CLIENT_MAX_ITEMS) {
            if ((rc = trp_log_read(s->log, st->next, &e, &err)))
                break;
            uint64_t session = 0, req = 0;
            const uint8_t *data = e.payload;
            size_t len = e.len;
            if (e.type == TRP_ENTRY_DATA)
                trp_raft_envelope_get(e.payload, e.len, &session, &req, &data, &len);
            trp_cbuf_u64(b, e.term);
            trp_cbuf_u8(b, (uint8_t)e.type);
            trp_cbuf_u64(b, session);
            trp_cbuf_u64(b, req);
            trp_cbuf_bytes(b, e.prev, TRP_HASH_LEN);
            trp_cbuf_bytes(b, e.hash, TRP_HASH_LEN);
            trp_cbuf_u32(b, (uint32_t)len);
            trp_cbuf_bytes(b, data, len);
            count++;
            mpz_add_ui(st->next, st->next, 1);
        }
        mpz_clear(end);
        trp_cbuf_put_u32(b, count_at, count);
        if (!b->oom && (count || !rc))
            server_send_client(s, st->client, b->p, b->len);
        if (rc) {
            /* a damaged entry (or a failed read): the reader gets what came
             * before it, then the error, and the stream ends; asking again
             * would only meet the same damage */
            entries_error(s, st->client, st->id, rc, err.msg);
            st->used = false;
            break;
        }
        if (!count)
            break;
    }
    trp_entry_clear(&e);
}

static struct stream *stream_get(trp_server *s, uint64_t client, uint64_t id, bool *created)
{
    struct stream *free_slot = NULL, *oldest = NULL;
    *created = false;
    for (size_t i = 0; i < s->n_streams; i++) {
        struct stream *st = &s->streams[i];
        if (st->used && st->client == client && st->id == id)
            return st;
        if (!st->used && !free_slot)
            free_slot = st;
        if (st->used && (!oldest || st->seen_ms < oldest->seen_ms))
            oldest = st;
    }
    if (!free_slot) {
        if (!s->streams) {
            s->streams = calloc(SERVER_STREAMS_MAX, sizeof *s->streams);
            if (!s->streams)
                return NULL;
            for (size_t i = 0; i < SERVER_STREAMS_MAX; i++)
                mpz_inits(s->streams[i].next, s->streams[i].until, NULL);
        }
        free_slot = s->n_streams < SERVER_STREAMS_MAX ? &s->streams[s->n_streams++] : oldest;
    }
    free_slot->used = true;
    free_slot->client = client;
    free_slot->id = id;
    *created = true;
    return free_slot;
}

static void on_read(trp_server *s, uint64_t client, const trp_cmsg *m)
{
    if (m->flags & TRP_CREAD_CLOSE) { /* the reader is done with it */
        for (size_t i = 0; i < s->n_streams; i++)
            if (s->streams[i].used && s->streams[i].client == client && s->streams[i].id == m->id)
                s->streams[i].used = false;
        return;
    }
    bool created;
    struct stream *st = stream_get(s, client, m->id, &created);
    if (!st)
        return;
    st->seen_ms = trp_loop_now_ms();
    mpz_t first;
    mpz_init(first);
    trp_log_first(s->log, first);
    if (created || (m->flags & TRP_CREAD_RESTART)) {
        st->waiting = false;
        if ((m->flags & TRP_CREAD_TAIL) && (m->flags & TRP_CREAD_TAIL_AT)) {
            mpz_set(st->next, m->seq);
            st->back = m->back;
            st->waiting = true; /* stream_serve starts it once our commit is there */
        } else if (m->flags & TRP_CREAD_TAIL) {
            tail_start(s, st->next, s->commit, m->back);
        } else if (mpz_cmp(m->seq, first) < 0) {
            char a[200], f[200], text[512];
            snprintf(text, sizeof text, "--from %s is before the first stored entry, seq %s",
                     trp_seq_str(a, sizeof a, m->seq), trp_seq_str(f, sizeof f, first));
            entries_error(s, client, m->id, TRP_ERANGE, text);
            st->used = false;
            mpz_clear(first);
            return;
        } else {
            mpz_set(st->next, m->seq);
        }
    } else if (mpz_cmp(m->seq, st->next) > 0) {
        mpz_set(st->next, m->seq); /* the client has these already */
    }
    mpz_clear(first);
    if ((m->flags & TRP_CREAD_TAIL) && !(m->flags & TRP_CREAD_TAIL_AT) &&
        (created || (m->flags & TRP_CREAD_RESTART)) && mpz_cmp(m->first, m->seq) >= 0) {
        /* a tail's client does not know where it starts yet: its window
         * counts from where the tail starts */
        mpz_sub(st->until, m->first, m->seq);
        mpz_add(st->until, st->until, st->next);
    } else {
        mpz_set(st->until, m->first);
    }
    stream_serve(s, st, true);
}

void server_client_commit(trp_server *s)
{
    for (size_t i = 0; i < s->n_streams; i++)
        if (s->streams[i].used)
            stream_serve(s, &s->streams[i], false);
}

void server_client_expire(trp_server *s, uint64_t now_ms)
{
    for (size_t i = 0; i < s->n_streams; i++)
        if (s->streams[i].used && now_ms - s->streams[i].seen_ms > SERVER_STREAM_IDLE_MS)
            s->streams[i].used = false;
}

/* ---- status ------------------------------------------------------------------------- */

static void add_seq(cJSON *o, const char *name, const mpz_t seq)
{
    char buf[200];
    cJSON_AddStringToObject(o, name, trp_seq_str(buf, sizeof buf, seq));
}

static char *status_json(trp_server *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    mpz_t a, b;
    mpz_inits(a, b, NULL);
    uint64_t leader = trp_raft_leader(s->raft);
    cJSON_AddNumberToObject(o, "id", (double)s->self);
    cJSON_AddStringToObject(o, "cluster", s->cfg->cluster);
    cJSON_AddStringToObject(o, "role", trp_raft_role_name(trp_raft_role(s->raft)));
    cJSON_AddNumberToObject(o, "term", (double)trp_raft_term(s->raft));
    if (leader)
        cJSON_AddNumberToObject(o, "leader", (double)leader);
    else
        cJSON_AddNullToObject(o, "leader");
    add_seq(o, "commit", s->commit);
    trp_log_first(s->log, a);
    add_seq(o, "first", a);
    trp_log_next(s->log, b);
    add_seq(o, "next", b);
    trp_log_durable_next(s->log, a);
    add_seq(o, "durable", a);
    cJSON_AddBoolToObject(o, "spare", trp_raft_spare(s->raft));
    cJSON_AddBoolToObject(o, "rejoining", trp_raft_rejoining(s->raft));
    cJSON *head = cJSON_AddObjectToObject(o, "head");
    char hex[TRP_HASH_HEX_LEN + 1];
    if (head) {
        if (trp_log_empty(s->log)) {
            cJSON_AddNullToObject(head, "seq");
        } else {
            mpz_sub_ui(a, b, 1);
            add_seq(head, "seq", a);
        }
        trp_hash_hex(hex, trp_log_head_hash(s->log));
        cJSON_AddStringToObject(head, "hash", hex);
    }
    cJSON *peers = cJSON_AddArrayToObject(o, "peers");
    const trp_raft *r = s->raft;
    bool is_leader = trp_raft_role(r) == TRP_RAFT_LEADER;
    for (size_t i = 0; peers && i < r->n; i++) {
        cJSON *p = cJSON_CreateObject();
        if (!p)
            break;
        cJSON_AddNumberToObject(p, "id", (double)r->peers[i].id);
        if (is_leader) {
            add_seq(p, "match", i == r->self ? r->durable_next : r->peers[i].match);
            add_seq(p, "next", i == r->self ? r->next : r->peers[i].next);
            cJSON_AddBoolToObject(p, "spare", r->peers[i].spare);
        } else {
            cJSON_AddNullToObject(p, "match");
        }
        cJSON_AddItemToArray(peers, p);
    }
    cJSON *w = trp_wire_counters_json(trp_wire_counters_get(s->wire));
    if (w)
        cJSON_AddItemToObject(o, "wire", w);
    cJSON *u = trp_udp_counters_json(trp_udp_counters_get(s->udp));
    if (u)
        cJSON_AddItemToObject(o, "udp", u);
    size_t streams = 0;
    for (size_t i = 0; i < s->n_streams; i++)
        streams += s->streams[i].used;
    cJSON_AddNumberToObject(o, "streams", (double)streams);
    mpz_clears(a, b, NULL);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static void on_status(trp_server *s, uint64_t client, uint64_t id)
{
    char *text = status_json(s);
    if (!text)
        return;
    trp_cbuf b = {0};
    size_t len = strlen(text);
    trp_cbuf_header(&b, TRP_CMSG_STATUS_RESP, id);
    trp_cbuf_u32(&b, (uint32_t)len);
    trp_cbuf_bytes(&b, text, len);
    if (!b.oom)
        server_send_client(s, client, b.p, b.len);
    trp_cbuf_free(&b);
    free(text);
}

/* ---- dispatch ------------------------------------------------------------------------ */

void server_client_message(trp_server *s, uint64_t from, const struct sockaddr *addr,
                           socklen_t alen, const uint8_t *msg, size_t len)
{
    if (trp_cmsg_decode(msg, len, &s->cm, NULL) != 0)
        return; /* authentic but malformed: a buggy client; nothing to answer */
    client_note(s, from, addr, alen);
    switch (s->cm.type) {
    case TRP_CMSG_APPEND:
        on_append(s, from, &s->cm);
        break;
    case TRP_CMSG_READ:
        on_read(s, from, &s->cm);
        break;
    case TRP_CMSG_STATUS:
        on_status(s, from, s->cm.id);
        break;
    case TRP_CMSG_READINDEX:
        smap_put(s, from, from);
        trp_raft_read(s->raft, from, s->cm.id);
        break;
    default:
        break; /* replies are for clients, not for us */
    }
}

void server_client_free(trp_server *s)
{
    if (s->streams)
        for (size_t i = 0; i < SERVER_STREAMS_MAX; i++)
            mpz_clears(s->streams[i].next, s->streams[i].until, NULL);
    free(s->streams);
    free(s->clients);
    idmap_free(&s->client_index);
    free(s->smap_keys);
    free(s->smap_vals);
}
