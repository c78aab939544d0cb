/*
 * client_codec.c: the binary codec of the client protocol (trp_client.h)
 * and the envelope marker of a node's log directory.
 *
 * The one idea: the decoder reads through a cursor that refuses to move
 * past the bytes present, so every length and count in a message is
 * checked against what actually arrived before anything is allocated;
 * a malformed message is TRP_EFORMAT and nothing else.
 */
#include "trp_client.h"
#include "trp_raft.h"

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int trp_dir_has_envelope(const char *dir)
{
    char path[4096];
    struct stat st;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, TRP_NODE_MARKER_FILE) >= sizeof path)
        return 0;
    return stat(path, &st) == 0;
}

/* ---- encoding -------------------------------------------------------------- */

static void cbuf_grow(trp_cbuf *b, size_t n)
{
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

/* Room for n more bytes: where they go, or NULL once out of memory. The
 * common case (room already there) is inline: a leader encodes a few
 * fields for every answer it sends. */
static inline uint8_t *cbuf_room(trp_cbuf *b, size_t n)
{
    if (!b->oom && b->len + n > b->cap)
        cbuf_grow(b, n);
    if (b->oom)
        return NULL;
    uint8_t *at = b->p + b->len;
    b->len += n;
    return at;
}

static inline void put_be(uint8_t *d, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

void trp_cbuf_free(trp_cbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void trp_cbuf_bytes(trp_cbuf *b, const void *p, size_t n)
{
    uint8_t *d = cbuf_room(b, n);
    if (d && n)
        memcpy(d, p, n);
}

void trp_cbuf_u8(trp_cbuf *b, uint8_t v)
{
    uint8_t *d = cbuf_room(b, 1);
    if (d)
        d[0] = v;
}

void trp_cbuf_u32(trp_cbuf *b, uint32_t v)
{
    uint8_t *d = cbuf_room(b, 4);
    if (d)
        put_be(d, v, 4);
}

void trp_cbuf_put_u32(trp_cbuf *b, size_t at, uint32_t v)
{
    if (b->oom || at + 4 > b->len)
        return;
    put_be(b->p + at, v, 4);
}

void trp_cbuf_u64(trp_cbuf *b, uint64_t v)
{
    uint8_t *d = cbuf_room(b, 8);
    if (d)
        put_be(d, v, 8);
}

/* A seq: its length in bytes, then big-endian bytes without leading
 * zeros (none for 0). One that fits 64 bits skips GMP's export. */
void trp_cbuf_seq(trp_cbuf *b, const mpz_t seq)
{
    assert(mpz_sgn(seq) >= 0);
    if (mpz_sizeinbase(seq, 2) <= 64 && sizeof(unsigned long) >= 8) {
        uint64_t v = mpz_get_ui(seq);
        size_t n = 0;
        while (n < 8 && v >> (8 * n))
            n++;
        uint8_t *d = cbuf_room(b, 1 + n);
        if (d) {
            d[0] = (uint8_t)n;
            put_be(d + 1, v, n);
        }
        return;
    }
    uint8_t tmp[TRP_RAFT_CODEC_MAX_SEQ_BYTES];
    size_t n = 0;
    if ((mpz_sizeinbase(seq, 2) + 7) / 8 > sizeof tmp) {
        b->oom = true; /* cannot happen for a seq the store accepts */
        return;
    }
    mpz_export(tmp, &n, 1, 1, 1, 0, seq);
    trp_cbuf_u8(b, (uint8_t)n);
    trp_cbuf_bytes(b, tmp, n);
}

void trp_cbuf_header(trp_cbuf *b, int type, uint64_t id)
{
    trp_cbuf_u8(b, TRP_CLIENT_VERSION);
    trp_cbuf_u8(b, (uint8_t)type);
    trp_cbuf_u64(b, id);
}

/* ---- decoding -------------------------------------------------------------- */

typedef struct cur {
    const uint8_t *p;
    size_t len, pos;
    bool bad;
} cur;

static const uint8_t *take(cur *c, size_t n)
{
    if (c->bad || n > c->len - c->pos) {
        c->bad = true;
        return NULL;
    }
    const uint8_t *p = c->p + c->pos;
    c->pos += n;
    return p;
}

static uint64_t get_be(cur *c, size_t n)
{
    const uint8_t *p = take(c, n);
    uint64_t v = 0;
    for (size_t i = 0; p && i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void get_seq(cur *c, mpz_t out)
{
    size_t n = (size_t)get_be(c, 1);
    if (n > TRP_RAFT_CODEC_MAX_SEQ_BYTES) {
        c->bad = true;
        return;
    }
    const uint8_t *p = take(c, n);
    if (!p)
        return;
    if (n && p[0] == 0) { /* one encoding per value */
        c->bad = true;
        return;
    }
    if (n)
        mpz_import(out, n, 1, 1, 1, 0, p);
    else
        mpz_set_ui(out, 0);
}

static void get_hash(cur *c, uint8_t out[TRP_HASH_LEN])
{
    const uint8_t *p = take(c, TRP_HASH_LEN);
    if (p)
        memcpy(out, p, TRP_HASH_LEN);
}

void trp_cmsg_init(trp_cmsg *m)
{
    memset(m, 0, sizeof *m);
    mpz_inits(m->seq, m->first, NULL);
}

void trp_cmsg_reset(trp_cmsg *m)
{
    m->n_items = m->n_entries = 0;
    m->text = NULL;
    m->text_len = 0;
    m->flags = m->status = 0;
    m->has_if_head = false;
    m->leader_hint = m->back = 0;
}

void trp_cmsg_clear(trp_cmsg *m)
{
    for (size_t i = 0; i < m->cap_items; i++)
        mpz_clear(m->items[i].seq);
    free(m->items);
    free(m->entries);
    mpz_clears(m->seq, m->first, NULL);
    memset(m, 0, sizeof *m);
}

static trp_cmsg_item *item_add(trp_cmsg *m)
{
    if (m->n_items == m->cap_items) {
        size_t cap = m->cap_items ? m->cap_items * 2 : 64;
        trp_cmsg_item *p = realloc(m->items, cap * sizeof *p);
        if (!p)
            return NULL;
        for (size_t i = m->cap_items; i < cap; i++)
            mpz_init(p[i].seq);
        m->items = p;
        m->cap_items = cap;
    }
    trp_cmsg_item *it = &m->items[m->n_items++];
    it->session = it->req = 0;
    it->status = 0;
    it->data = NULL;
    it->len = 0;
    return it;
}

static trp_cmsg_entry *entry_add(trp_cmsg *m)
{
    if (m->n_entries == m->cap_entries) {
        size_t cap = m->cap_entries ? m->cap_entries * 2 : 64;
        trp_cmsg_entry *p = realloc(m->entries, cap * sizeof *p);
        if (!p)
            return NULL;
        m->entries = p;
        m->cap_entries = cap;
    }
    trp_cmsg_entry *e = &m->entries[m->n_entries++];
    memset(e, 0, sizeof *e);
    return e;
}

/* Items of APPEND (with data) or APPEND_RESP (with status, seq, hash). */
static int decode_items(cur *c, trp_cmsg *m, bool resp)
{
    uint32_t n = (uint32_t)get_be(c, 4);
    /* every item takes at least 17 bytes: the count cannot exceed that */
    if (c->bad || n > TRP_CLIENT_MAX_ITEMS || n > (c->len - c->pos) / 17)
        return -1;
    for (uint32_t i = 0; i < n && !c->bad; i++) {
        trp_cmsg_item *it = item_add(m);
        if (!it)
            return -2;
        it->session = get_be(c, 8);
        it->req = get_be(c, 8);
        if (resp) {
            it->status = (int)get_be(c, 1);
            get_seq(c, it->seq);
            get_hash(c, it->hash);
        } else {
            size_t len = (size_t)get_be(c, 4);
            it->data = take(c, len);
            it->len = len;
        }
    }
    return c->bad ? -1 : 0;
}

static int decode_entries(cur *c, trp_cmsg *m)
{
    uint32_t n = (uint32_t)get_be(c, 4);
    if (c->bad || n > TRP_CLIENT_MAX_ITEMS || n > (c->len - c->pos) / 93)
        return -1;
    for (uint32_t i = 0; i < n && !c->bad; i++) {
        trp_cmsg_entry *e = entry_add(m);
        if (!e)
            return -2;
        e->term = get_be(c, 8);
        e->type = (int)get_be(c, 1);
        e->session = get_be(c, 8);
        e->req = get_be(c, 8);
        get_hash(c, e->prev);
        get_hash(c, e->hash);
        size_t len = (size_t)get_be(c, 4);
        e->data = take(c, len);
        e->len = len;
    }
    return c->bad ? -1 : 0;
}

int trp_cmsg_decode(const uint8_t *buf, size_t len, trp_cmsg *m, trp_err *err)
{
    trp_cmsg_reset(m);
    cur c = {buf, len, 0, false};
    int version = (int)get_be(&c, 1);
    m->type = (int)get_be(&c, 1);
    m->id = get_be(&c, 8);
    if (c.bad || version != TRP_CLIENT_VERSION)
        return trp_err_set(err, TRP_EFORMAT, "client message: bad header or version");
    int rc = 0;
    switch (m->type) {
    case TRP_CMSG_APPEND:
        m->flags = (int)get_be(&c, 1);
        if (m->flags & ~1)
            return trp_err_set(err, TRP_EFORMAT, "client message: unknown APPEND flags");
        m->has_if_head = m->flags & 1;
        if (m->has_if_head)
            get_hash(&c, m->if_head);
        rc = decode_items(&c, m, false);
        break;
    case TRP_CMSG_APPEND_RESP:
        m->leader_hint = get_be(&c, 8);
        rc = decode_items(&c, m, true);
        break;
    case TRP_CMSG_READ:
        m->flags = (int)get_be(&c, 1);
        if (m->flags & ~(TRP_CREAD_TAIL | TRP_CREAD_RESTART | TRP_CREAD_TAIL_AT | TRP_CREAD_CLOSE))
            return trp_err_set(err, TRP_EFORMAT, "client message: unknown READ flags");
        get_seq(&c, m->seq);
        m->back = get_be(&c, 8);
        get_seq(&c, m->first);
        break;
    case TRP_CMSG_ENTRIES:
        m->status = (int)get_be(&c, 1);
        get_seq(&c, m->seq);
        get_seq(&c, m->first);
        if (m->status) {
            m->text_len = (size_t)get_be(&c, 2);
            m->text = (const char *)take(&c, m->text_len);
        } else {
            rc = decode_entries(&c, m);
        }
        break;
    case TRP_CMSG_STATUS:
    case TRP_CMSG_READINDEX:
        break;
    case TRP_CMSG_STATUS_RESP:
        m->text_len = (size_t)get_be(&c, 4);
        m->text = (const char *)take(&c, m->text_len);
        break;
    case TRP_CMSG_READINDEX_RESP:
        m->status = (int)get_be(&c, 1);
        m->leader_hint = get_be(&c, 8);
        get_seq(&c, m->seq);
        break;
    default:
        return trp_err_set(err, TRP_EFORMAT, "client message: unknown type %d", m->type);
    }
    if (rc == -2)
        return trp_err_set(err, TRP_ENOMEM, "client message: out of memory");
    if (rc || c.bad)
        return trp_err_set(err, TRP_EFORMAT, "client message: truncated or malformed (type %d)",
                           m->type);
    if (c.pos != len)
        return trp_err_set(err, TRP_EFORMAT, "client message: %zu trailing bytes", len - c.pos);
    if (m->status < 0 || m->status > TRP_ERANGE)
        return trp_err_set(err, TRP_EFORMAT, "client message: unknown status %d", m->status);
    for (size_t i = 0; i < m->n_items; i++)
        if (m->items[i].status > TRP_ERANGE)
            return trp_err_set(err, TRP_EFORMAT, "client message: unknown status");
    return TRP_OK;
}

int trp_cmsg_encode(const trp_cmsg *m, trp_cbuf *b)
{
    trp_cbuf_header(b, m->type, m->id);
    switch (m->type) {
    case TRP_CMSG_APPEND:
        trp_cbuf_u8(b, (uint8_t)(m->has_if_head ? 1 : 0));
        if (m->has_if_head)
            trp_cbuf_bytes(b, m->if_head, TRP_HASH_LEN);
        trp_cbuf_u32(b, (uint32_t)m->n_items);
        for (size_t i = 0; i < m->n_items; i++) {
            trp_cbuf_u64(b, m->items[i].session);
            trp_cbuf_u64(b, m->items[i].req);
            trp_cbuf_u32(b, (uint32_t)m->items[i].len);
            trp_cbuf_bytes(b, m->items[i].data, m->items[i].len);
        }
        break;
    case TRP_CMSG_APPEND_RESP:
        trp_cbuf_u64(b, m->leader_hint);
        trp_cbuf_u32(b, (uint32_t)m->n_items);
        for (size_t i = 0; i < m->n_items; i++) {
            trp_cbuf_u64(b, m->items[i].session);
            trp_cbuf_u64(b, m->items[i].req);
            trp_cbuf_u8(b, (uint8_t)m->items[i].status);
            trp_cbuf_seq(b, m->items[i].seq);
            trp_cbuf_bytes(b, m->items[i].hash, TRP_HASH_LEN);
        }
        break;
    case TRP_CMSG_READ:
        trp_cbuf_u8(b, (uint8_t)m->flags);
        trp_cbuf_seq(b, m->seq);
        trp_cbuf_u64(b, m->back);
        trp_cbuf_seq(b, m->first);
        break;
    case TRP_CMSG_ENTRIES:
        trp_cbuf_u8(b, (uint8_t)m->status);
        trp_cbuf_seq(b, m->seq);
        trp_cbuf_seq(b, m->first);
        if (m->status) {
            trp_cbuf_u8(b, (uint8_t)(m->text_len >> 8));
            trp_cbuf_u8(b, (uint8_t)m->text_len);
            trp_cbuf_bytes(b, m->text, m->text_len);
            break;
        }
        trp_cbuf_u32(b, (uint32_t)m->n_entries);
        for (size_t i = 0; i < m->n_entries; i++) {
            const trp_cmsg_entry *e = &m->entries[i];
            trp_cbuf_u64(b, e->term);
            trp_cbuf_u8(b, (uint8_t)e->type);
            trp_cbuf_u64(b, e->session);
            trp_cbuf_u64(b, e->req);
            trp_cbuf_bytes(b, e->prev, TRP_HASH_LEN);
            trp_cbuf_bytes(b, e->hash, TRP_HASH_LEN);
            trp_cbuf_u32(b, (uint32_t)e->len);
            trp_cbuf_bytes(b, e->data, e->len);
        }
        break;
    case TRP_CMSG_STATUS_RESP:
        trp_cbuf_u32(b, (uint32_t)m->text_len);
        trp_cbuf_bytes(b, m->text, m->text_len);
        break;
    case TRP_CMSG_READINDEX_RESP:
        trp_cbuf_u8(b, (uint8_t)m->status);
        trp_cbuf_u64(b, m->leader_hint);
        trp_cbuf_seq(b, m->seq);
        break;
    default:
        break;
    }
    return b->oom ? TRP_ENOMEM : TRP_OK;
}
