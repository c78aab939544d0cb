/*
 * raft_codec.c: the byte form of Raft messages (version 1).
 *
 * The one idea: a message is a version byte, a type byte, LEB128 varints
 * for every uint64, seqs as a length byte plus big-endian magnitude bytes
 * (canonical: no leading zero byte, at most TRP_RAFT_CODEC_MAX_SEQ_BYTES),
 * fixed 32-byte hashes, length-prefixed payloads, and a CRC32C of all of it
 * at the end. The decoder trusts nothing: every read is bounds-checked,
 * every count and length is capped by the bytes actually present before
 * anything is allocated, flags must be 0 or 1, and trailing bytes are an
 * error. The CRC is belt and braces under the transport's AEAD; in the
 * simulator it is what turns a flipped bit into a dropped message.
 *
 * Layout after "version type from to term" (all varints but the bytes):
 *   PREVOTE/VOTE      seq log_term priority
 *   *VOTE_RESP        flag
 *   APPEND            seq commit log_term hash[32] last_hash[32] count
 *                     count x (term type:1 len bytes)
 *   APPEND_RESP       flag seq hint
 *   HEARTBEAT         commit ctx
 *   HEARTBEAT_RESP    ctx
 *   PROPOSE           client req flag [hash[32] if flag] len bytes
 *   PROPOSE_RESP      client req status seq hash[32] leader_hint
 *   READ              client req
 *   READ_RESP         client req status seq leader_hint
 *   then crc32c:4 (big-endian) over everything before it.
 */
#include "trp_raft.h"

#include <stdlib.h>
#include <string.h>

#define CODEC_VERSION 1

/* CRC32C (Castagnoli, reflected 0x82F63B78), table-driven. */
static const uint32_t crc_table[256] = {
    0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu, 0x35f1141cu, 0x26a1e7e8u,
    0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu, 0x4d43cfd0u, 0xbf284cd3u,
    0xac78bf27u, 0x5e133c24u, 0x105ec76fu, 0xe235446cu, 0xf165b798u, 0x030e349bu, 0xd7c45070u,
    0x25afd373u, 0x36ff2087u, 0xc494a384u, 0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u,
    0x5d1d08bfu, 0xaf768bbcu, 0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u,
    0x33ed7d2au, 0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u, 0xaa64d611u, 0x580f5512u,
    0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau, 0x30e349b1u,
    0xc288cab2u, 0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu, 0x1642ae59u, 0xe4292d5au,
    0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au, 0x7da08661u, 0x8fcb0562u, 0x9c9bf696u,
    0x6ef07595u, 0x417b1dbcu, 0xb3109ebfu, 0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u,
    0x67dafa54u, 0x95b17957u, 0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u, 0x0c38d26cu,
    0xfe53516fu, 0xed03a29bu, 0x1f682198u, 0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
    0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu, 0x3ac7f2ebu,
    0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u, 0x61c69362u, 0x93ad1061u,
    0x80fde395u, 0x72966096u, 0xa65c047du, 0x5437877eu, 0x4767748au, 0xb50cf789u, 0xeb1fcbadu,
    0x197448aeu, 0x0a24bb5au, 0xf84f3859u, 0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u,
    0x7198540du, 0x83f3d70eu, 0x90a324fau, 0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u,
    0xa55230e6u, 0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu, 0xceb018deu,
    0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu, 0x456cac67u,
    0xb7072f64u, 0xa457dc90u, 0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u, 0xe9141340u, 0x1b7f9043u,
    0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu, 0x92a8fc17u, 0x60c37f14u, 0x73938ce0u,
    0x81f80fe3u, 0x55326b08u, 0xa759e80bu, 0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu,
    0xf94ad42fu, 0x0b21572cu, 0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u, 0xa24bb5a6u,
    0x502036a5u, 0x4370c551u, 0xb11b4652u, 0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
    0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u, 0x0e330a81u,
    0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du, 0x758fe5d6u, 0x87e466d5u,
    0x94b49521u, 0x66df1622u, 0x38cc2a06u, 0xcaa7a905u, 0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u,
    0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu, 0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u,
    0x0417b1dbu, 0xf67c32d8u, 0xe52cc12cu, 0x1747422fu, 0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu,
    0x5a048dffu, 0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
    0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u, 0x590ab964u,
    0xab613a67u, 0xb831c993u, 0x4a5a4a90u, 0x9e902e7bu, 0x6cfbad78u, 0x7fab5e8cu, 0x8dc0dd8fu,
    0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu, 0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u,
    0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u, 0x88d28022u, 0x7ab90321u, 0xae7367cau, 0x5c18e4c9u,
    0x4f48173du, 0xbd23943eu, 0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au,
    0xc69f7b69u, 0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
    0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u};

static uint32_t crc32c(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    while (n--)
        c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

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
        break;
    case TRP_RAFT_PREVOTE_RESP:
    case TRP_RAFT_VOTE_RESP:
        put_u8(&w, m->flag ? 1 : 0);
        break;
    case TRP_RAFT_APPEND:
        bad |= put_seq(&w, m->seq);
        bad |= put_seq(&w, m->commit);
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
    uint32_t c = crc32c(w.p, w.len);
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
    if (!m->entries)
        abort();
    for (uint64_t i = 0; i < count && !r->bad; i++) {
        trp_raft_msg_entry *e = &m->entries[i];
        e->term = get_var(r);
        e->type = get_u8(r);
        if (e->type < 1 || e->type > 4)
            r->bad = true;
        if (r->bad)
            break;
        e->payload = get_bytes(r, &e->len);
        if (e->payload)
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
    if (crc32c(buf, len - 4) != want)
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
        break;
    }
    case TRP_RAFT_PREVOTE_RESP:
    case TRP_RAFT_VOTE_RESP:
        m->flag = get_flag(&r);
        break;
    case TRP_RAFT_APPEND:
        get_seq(&r, m->seq);
        get_seq(&r, m->commit);
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
