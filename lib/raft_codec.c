/*
 * raft_codec.c: the byte form of Raft messages (version 1).
 *
 * The one idea: a message is a version byte, a type byte, LEB128 varints
 * for every uint64, seqs as a length byte plus big-endian magnitude bytes
 * (canonical: no leading zero byte, at most TRP_RAFT_CODEC_MAX_SEQ_BYTES),
 * fixed 32-byte hashes, length-prefixed payloads, and a CRC32C of all of it
 * at the end. The decoder trusts nothing: every read is bounds-checked,
 * every count and length is capped by the bytes actually present before
 * anything is allocated, flags must be 0 or 1 (APPEND's 0 to 3), and
 * trailing bytes are an error. The CRC is belt and braces under the transport's AEAD; in the
 * simulator it is what turns a flipped bit into a dropped message.
 *
 * Layout after "version type from to term" (all varints but the bytes):
 *   PREVOTE/VOTE      seq log_term priority flag (the candidate is rejoining)
 *   *VOTE_RESP        flag
 *   APPEND            seq commit flags log_term hash[32] last_hash[32] count
 *                     count x (term type:1 len bytes)
 *   APPEND_RESP       flag seq hint
 *   HEARTBEAT         commit ctx flag
 *   HEARTBEAT_RESP    ctx
 *   PROPOSE           client req flag [hash[32] if flag] len bytes
 *   PROPOSE_RESP      client req status seq hash[32] leader_hint
 *   READ              client req
 *   READ_RESP         client req status seq leader_hint
 *   then crc32c:4 (big-endian) over everything before it.
 * APPEND's flags byte: bit 0 flag (spare), bit 1 commit_current.
 */
#include "trp_raft.h"
#include "trp_log.h"

#include <stdlib.h>
#include <string.h>

#define CODEC_VERSION 1

const char *trp_raft_msg_type_name(int type)
{
    static const char *const names[] = {
        "?",           "prevote",   "prevote-resp",   "vote",    "vote-resp",    "append",
        "append-resp", "heartbeat", "heartbeat-resp", "propose", "propose-resp", "read",
        "read-resp"};
    return type >= 1 && type <= TRP_RAFT_MSG_TYPE_MAX ? names[type] : "?";
}

void trp_raft_msg_init(trp_raft_msg *m)
{
    memset(m, 0, sizeof *m);
    mpz_inits(m->seq, m->commit, m->hint, NULL);
}

void trp_raft_msg_clear(trp_raft_msg *m)
{
    if (m->block)
        free(m->block);
    else
        for (size_t i = 0; i < m->n_entries; i++)
            free(m->entries[i].payload);
    free(m->entries);
    free(m->payload);
    mpz_clears(m->seq, m->commit, m->hint, NULL);
    memset(m, 0, sizeof *m);
}

/* ---- encoding ----------------------------------------------------------- */

struct wbuf {
    uint8_t *p;
    size_t len, cap;
};

static void put(struct wbuf *w, const void *data, size_t n)
{
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *p = realloc(w->p, cap);
        if (!p)
            abort();
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->len, data, n);
    w->len += n;
}

static void put_u8(struct wbuf *w, uint8_t v)
{
    put(w, &v, 1);
}

static void put_var(struct wbuf *w, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = v & 0x7f;
        v >>= 7;
        if (v)
            b[n] |= 0x80;
        n++;
    } while (v);
    put(w, b, n);
}

static int put_seq(struct wbuf *w, const mpz_t z)
{
    size_t n = (mpz_sizeinbase(z, 2) + 7) / 8;
    if (mpz_sgn(z) < 0 || n > TRP_RAFT_CODEC_MAX_SEQ_BYTES)
        return -1;
    if (mpz_sgn(z) == 0) {
        put_u8(w, 0);
        return 0;
    }
    uint8_t b[TRP_RAFT_CODEC_MAX_SEQ_BYTES];
    size_t count = 0;
    mpz_export(b, &count, 1, 1, 1, 0, z);
    put_u8(w, (uint8_t)count);
    put(w, b, count);
    return 0;
}

int trp_raft_msg_encode(const trp_raft_msg *m, uint8_t **out, size_t *len, trp_err *err)
{
    struct wbuf w = {0};
    int bad = 0;
    if (m->type < 1 || m->type > TRP_RAFT_MSG_TYPE_MAX)
        return trp_err_set(err, TRP_EINVAL, "raft message: unknown type %d", m->type);
    if (m->type == TRP_RAFT_APPEND && m->n_entries) { /* one allocation, no regrowth */
        size_t cap = 256 + 2 * TRP_RAFT_HASH_LEN;
        for (size_t i = 0; i < m->n_entries; i++)
            cap += 22 + m->entries[i].len; /* term, type, length: at most 21 bytes */
        if (!(w.p = malloc(cap)))
            abort();
        w.cap = cap;
    }
    put_u8(&w, CODEC_VERSION);
    put_u8(&w, (uint8_t)m->type);
    put_var(&w, m->from);
    put_var(&w, m->to);
    put_var(&w, m->term);
    switch (m->type) {
    case TRP_RAFT_PREVOTE:
    case TRP_RAFT_VOTE:
        bad |= put_seq(&w, m->seq);
        put_var(&w, m->log_term);
        put_var(&w, m->priority);
        put_u8(&w, m->flag ? 1 : 0);
        break;
    case TRP_RAFT_PREVOTE_RESP:
    case TRP_RAFT_VOTE_RESP:
        put_u8(&w, m->flag ? 1 : 0);
        break;
    case TRP_RAFT_APPEND:
        bad |= put_seq(&w, m->seq);
        bad |= put_seq(&w, m->commit);
        put_u8(&w, (uint8_t)((m->flag ? 1 : 0) | (m->commit_current ? 2 : 0)));
        put_var(&w, m->log_term);
        put(&w, m->hash, TRP_RAFT_HASH_LEN);
        put(&w, m->last_hash, TRP_RAFT_HASH_LEN);
        if (m->n_entries > TRP_RAFT_CODEC_MAX_ENTRIES)
            bad = 1;
        put_var(&w, m->n_entries);
        for (size_t i = 0; i < m->n_entries; i++) {
            put_var(&w, m->entries[i].term);
            put_u8(&w, (uint8_t)m->entries[i].type);
            put_var(&w, m->entries[i].len);
            if (m->entries[i].len)
                put(&w, m->entries[i].payload, m->entries[i].len);
        }
        break;
    case TRP_RAFT_APPEND_RESP:
        put_u8(&w, m->flag ? 1 : 0);
        bad |= put_seq(&w, m->seq);
        bad |= put_seq(&w, m->hint);
        break;
    case TRP_RAFT_HEARTBEAT:
        bad |= put_seq(&w, m->commit);
        put_var(&w, m->ctx);
        put_u8(&w, m->flag ? 1 : 0);
        break;
    case TRP_RAFT_HEARTBEAT_RESP:
        put_var(&w, m->ctx);
        break;
    case TRP_RAFT_PROPOSE:
        put_var(&w, m->client);
        put_var(&w, m->req);
        put_u8(&w, m->flag ? 1 : 0);
        if (m->flag)
            put(&w, m->hash, TRP_RAFT_HASH_LEN);
        put_var(&w, m->len);
        if (m->len)
            put(&w, m->payload, m->len);
        break;
    case TRP_RAFT_PROPOSE_RESP:
    case TRP_RAFT_READ_RESP:
        put_var(&w, m->client);
        put_var(&w, m->req);
        put_var(&w, (uint64_t)m->status);
        bad |= put_seq(&w, m->seq);
        if (m->type == TRP_RAFT_PROPOSE_RESP)
            put(&w, m->hash, TRP_RAFT_HASH_LEN);
        put_var(&w, m->leader_hint);
        break;
    case TRP_RAFT_READ:
        put_var(&w, m->client);
        put_var(&w, m->req);
        break;
    }
    if (bad) {
        free(w.p);
        return trp_err_set(err, TRP_EINVAL, "raft %s message: a seq or count is out of range",
                           trp_raft_msg_type_name(m->type));
    }
    uint32_t c = trp_crc32c(0, w.p, w.len); /* hardware CRC32C, as the store */
    uint8_t cb[4] = {(uint8_t)(c >> 24), (uint8_t)(c >> 16), (uint8_t)(c >> 8), (uint8_t)c};
    put(&w, cb, 4);
    *out = w.p;
    *len = w.len;
    return 0;
}

/* ---- decoding ----------------------------------------------------------- */

struct rbuf {
    const uint8_t *p;
    size_t len, off;
    bool bad;
};

static const uint8_t *take(struct rbuf *r, size_t n)
{
    if (r->bad || n > r->len - r->off) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

static uint8_t get_u8(struct rbuf *r)
{
    const uint8_t *p = take(r, 1);
    return p ? *p : 0;
}

static uint64_t get_var(struct rbuf *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        const uint8_t *p = take(r, 1);
        if (!p)
            return 0;
        if (shift == 63 && (*p & 0x7e)) {
            r->bad = true; /* more than 64 bits */
            return 0;
        }
        v |= (uint64_t)(*p & 0x7f) << shift;
        if (!(*p & 0x80)) {
            if (shift && *p == 0)
                r->bad = true; /* non-canonical trailing zero group */
            return v;
        }
    }
    r->bad = true;
    return 0;
}

static bool get_flag(struct rbuf *r)
{
    uint8_t v = get_u8(r);
    if (v > 1)
        r->bad = true;
    return v == 1;
}

static void get_seq(struct rbuf *r, mpz_t z)
{
    uint8_t n = get_u8(r);
    if (n > TRP_RAFT_CODEC_MAX_SEQ_BYTES) {
        r->bad = true;
        return;
    }
    const uint8_t *p = take(r, n);
    if (!p)
        return;
    if (n && p[0] == 0) {
        r->bad = true; /* non-canonical */
        return;
    }
    if (n == 0)
        mpz_set_ui(z, 0);
    else
        mpz_import(z, n, 1, 1, 1, 0, p);
}

static void get_hash(struct rbuf *r, uint8_t out[TRP_RAFT_HASH_LEN])
{
    const uint8_t *p = take(r, TRP_RAFT_HASH_LEN);
    if (p)
        memcpy(out, p, TRP_RAFT_HASH_LEN);
}

/* A length-prefixed byte string, copied (never allocated past the input). */
static uint8_t *get_bytes(struct rbuf *r, size_t *len)
{
    uint64_t n = get_var(r);
    if (r->bad || n > r->len - r->off) {
        r->bad = true;
        return NULL;
    }
    uint8_t *p = malloc(n ? n : 1);
    if (!p)
        abort();
    memcpy(p, take(r, n) ? r->p + r->off - n : p, n);
    *len = n;
    return p;
}

static void get_entries(struct rbuf *r, trp_raft_msg *m)
{
    uint64_t count = get_var(r);
    /* Each entry takes at least 3 bytes: bound before allocating. */
    if (r->bad || count > TRP_RAFT_CODEC_MAX_ENTRIES || count > (r->len - r->off) / 3) {
        r->bad = true;
        return;
    }
    if (!count)
        return;
    m->entries = calloc(count, sizeof *m->entries);
    /* one copy of the rest of the message holds every payload */
    size_t base = r->off, rest = r->len - r->off;
    m->block = malloc(rest ? rest : 1);
    if (!m->entries || !m->block)
        abort();
    memcpy(m->block, r->p + base, rest);
    for (uint64_t i = 0; i < count && !r->bad; i++) {
        trp_raft_msg_entry *e = &m->entries[i];
        e->term = get_var(r);
        e->type = get_u8(r);
        if (e->type < 1 || e->type > 4)
            r->bad = true;
        uint64_t n = get_var(r);
        if (r->bad || n > r->len - r->off) {
            r->bad = true;
            break;
        }
        e->payload = m->block + (r->off - base);
        e->len = n;
        r->off += n;
        m->n_entries = i + 1;
    }
}

int trp_raft_msg_decode(const uint8_t *buf, size_t len, trp_raft_msg *m, trp_err *err)
{
    trp_raft_msg_clear(m);
    trp_raft_msg_init(m);
    if (len < 2 + 3 + 4)
        return trp_err_set(err, TRP_EFORMAT, "raft message: %zu bytes is too short", len);
    uint32_t want = (uint32_t)buf[len - 4] << 24 | (uint32_t)buf[len - 3] << 16 |
                    (uint32_t)buf[len - 2] << 8 | buf[len - 1];
    if (trp_crc32c(0, buf, len - 4) != want)
        return trp_err_set(err, TRP_ECORRUPT, "raft message: checksum mismatch");
    struct rbuf r = {.p = buf, .len = len - 4};
    if (get_u8(&r) != CODEC_VERSION)
        return trp_err_set(err, TRP_EFORMAT, "raft message: unsupported version %u", buf[0]);
    m->type = get_u8(&r);
    if (m->type < 1 || m->type > TRP_RAFT_MSG_TYPE_MAX)
        return trp_err_set(err, TRP_EFORMAT, "raft message: unknown type %d", m->type);
    m->from = get_var(&r);
    m->to = get_var(&r);
    m->term = get_var(&r);
    switch (m->type) {
    case TRP_RAFT_PREVOTE:
    case TRP_RAFT_VOTE: {
        get_seq(&r, m->seq);
        m->log_term = get_var(&r);
        uint64_t prio = get_var(&r);
        if (prio > UINT32_MAX)
            r.bad = true;
        m->priority = (uint32_t)prio;
        m->flag = get_flag(&r);
        break;
    }
    case TRP_RAFT_PREVOTE_RESP:
    case TRP_RAFT_VOTE_RESP:
        m->flag = get_flag(&r);
        break;
    case TRP_RAFT_APPEND:
        get_seq(&r, m->seq);
        get_seq(&r, m->commit);
        {
            uint8_t f = get_u8(&r);
            if (f > 3)
                r.bad = true;
            m->flag = f & 1;
            m->commit_current = (f & 2) != 0;
        }
        m->log_term = get_var(&r);
        get_hash(&r, m->hash);
        get_hash(&r, m->last_hash);
        get_entries(&r, m);
        break;
    case TRP_RAFT_APPEND_RESP:
        m->flag = get_flag(&r);
        get_seq(&r, m->seq);
        get_seq(&r, m->hint);
        break;
    case TRP_RAFT_HEARTBEAT:
        get_seq(&r, m->commit);
        m->ctx = get_var(&r);
        m->flag = get_flag(&r);
        break;
    case TRP_RAFT_HEARTBEAT_RESP:
        m->ctx = get_var(&r);
        break;
    case TRP_RAFT_PROPOSE:
        m->client = get_var(&r);
        m->req = get_var(&r);
        m->flag = get_flag(&r);
        if (m->flag)
            get_hash(&r, m->hash);
        if (!r.bad)
            m->payload = get_bytes(&r, &m->len);
        break;
    case TRP_RAFT_PROPOSE_RESP:
    case TRP_RAFT_READ_RESP: {
        m->client = get_var(&r);
        m->req = get_var(&r);
        uint64_t status = get_var(&r);
        if (status > TRP_ERANGE)
            r.bad = true;
        m->status = (int)status;
        get_seq(&r, m->seq);
        if (m->type == TRP_RAFT_PROPOSE_RESP)
            get_hash(&r, m->hash);
        m->leader_hint = get_var(&r);
        break;
    }
    case TRP_RAFT_READ:
        m->client = get_var(&r);
        m->req = get_var(&r);
        break;
    }
    if (!r.bad && r.off != r.len)
        r.bad = true;
    if (r.bad) {
        int type = m->type;
        trp_raft_msg_clear(m);
        trp_raft_msg_init(m);
        return trp_err_set(err, TRP_EFORMAT, "raft %s message: malformed or truncated",
                           trp_raft_msg_type_name(type));
    }
    return 0;
}
