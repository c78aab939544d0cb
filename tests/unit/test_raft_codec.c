/*
 * test_raft_codec.c: the Raft message codec: every type round-trips (seqs
 * past 2^64 and 10^30 included), and hostile bytes never crash it.
 *
 * The one idea: the decoder must reject or accept every byte string
 * without crashing or over-allocating, and whatever it accepts must
 * re-encode to exactly the same bytes (the form is canonical). Mutated
 * inputs get their CRC fixed up so the structural checks are exercised,
 * not just the checksum.
 */
#include "../check.h"
#include "trp_raft.h"

#include <stdlib.h>

static uint64_t rng_state = 0x1234567;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void fill(trp_raft_msg *m, int type)
{
    trp_raft_msg_init(m);
    m->type = type;
    m->from = 3;
    m->to = 1ull << 40;
    m->term = UINT64_MAX - 1;
    mpz_ui_pow_ui(m->seq, 10, 30);
    mpz_ui_pow_ui(m->commit, 2, 64);
    mpz_add_ui(m->commit, m->commit, 7);
    mpz_set_ui(m->hint, 12345);
    m->log_term = 99;
    m->priority = 7;
    m->flag = true;
    for (int i = 0; i < 32; i++) {
        m->hash[i] = (uint8_t)i;
        m->last_hash[i] = (uint8_t)(255 - i);
    }
    m->ctx = 1ull << 50;
    m->client = 42;
    m->req = 1ull << 33;
    m->status = TRP_ECONFLICT;
    m->leader_hint = 2;
    if (type == TRP_RAFT_APPEND) {
        m->n_entries = 3;
        m->entries = calloc(3, sizeof *m->entries);
        for (int i = 0; i < 3; i++) {
            m->entries[i].term = 90 + (uint64_t)i;
            m->entries[i].type = i == 1 ? TRP_RAFT_ENTRY_NOOP : TRP_RAFT_ENTRY_DATA;
            m->entries[i].len = (size_t)i * 100;
            m->entries[i].payload = malloc(m->entries[i].len + 1);
            memset(m->entries[i].payload, 'a' + i, m->entries[i].len);
        }
    }
    if (type == TRP_RAFT_PROPOSE) {
        m->len = 5;
        m->payload = (uint8_t *)strdup("hello");
    }
}

static void test_roundtrip_every_type(void)
{
    for (int type = 1; type <= TRP_RAFT_MSG_TYPE_MAX; type++) {
        trp_raft_msg a, b;
        fill(&a, type);
        uint8_t *buf, *buf2;
        size_t len, len2;
        trp_err err = {0};
        REQUIRE(trp_raft_msg_encode(&a, &buf, &len, &err) == 0);
        trp_raft_msg_init(&b);
        CHECKF(trp_raft_msg_decode(buf, len, &b, &err) == 0, "%s: %s", trp_raft_msg_type_name(type),
               err.msg);
        CHECK(b.type == type && b.from == a.from && b.to == a.to && b.term == a.term);
        REQUIRE(trp_raft_msg_encode(&b, &buf2, &len2, &err) == 0);
        CHECKF(len == len2 && !memcmp(buf, buf2, len), "%s", trp_raft_msg_type_name(type));
        if (type == TRP_RAFT_APPEND) {
            CHECK(mpz_cmp(a.seq, b.seq) == 0 && mpz_cmp(a.commit, b.commit) == 0);
            CHECK(b.n_entries == 3 && b.entries[2].len == 200 && b.entries[2].payload[199] == 'c');
            CHECK(!memcmp(a.last_hash, b.last_hash, 32));
            CHECK(b.flag); /* the spare flag */
            CHECK(!b.commit_current);
        }
        if (type == TRP_RAFT_APPEND_RESP)
            CHECK(mpz_cmp(a.hint, b.hint) == 0 && b.flag);
        if (type == TRP_RAFT_HEARTBEAT)
            CHECK(b.ctx == a.ctx && b.flag); /* the spare flag */
        if (type == TRP_RAFT_PROPOSE)
            CHECK(b.len == 5 && !memcmp(b.payload, "hello", 5) && !memcmp(b.hash, a.hash, 32));
        if (type == TRP_RAFT_PROPOSE_RESP)
            CHECK(b.status == TRP_ECONFLICT && b.client == 42 && b.req == 1ull << 33);
        free(buf);
        free(buf2);
        trp_raft_msg_clear(&a);
        trp_raft_msg_clear(&b);
    }
}

static void test_zero_seq_and_empty(void)
{
    trp_raft_msg a, b;
    trp_raft_msg_init(&a);
    trp_raft_msg_init(&b);
    a.type = TRP_RAFT_APPEND;
    a.from = 1;
    a.to = 2;
    uint8_t *buf;
    size_t len;
    REQUIRE(trp_raft_msg_encode(&a, &buf, &len, NULL) == 0);
    CHECK(trp_raft_msg_decode(buf, len, &b, NULL) == 0);
    CHECK(mpz_sgn(b.seq) == 0 && b.n_entries == 0);
    free(buf);
    trp_raft_msg_clear(&a);
    trp_raft_msg_clear(&b);
}

/* CRC32C, bitwise, to fix up mutated buffers. */
static uint32_t crc(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static void fix_crc(uint8_t *b, size_t len)
{
    if (len < 4)
        return;
    uint32_t c = crc(b, len - 4);
    b[len - 4] = (uint8_t)(c >> 24);
    b[len - 3] = (uint8_t)(c >> 16);
    b[len - 2] = (uint8_t)(c >> 8);
    b[len - 1] = (uint8_t)c;
}

/* Decode; if accepted, the re-encoding must be byte-identical. */
/* APPEND's flags byte: bit 0 spare, bit 1 commit_current (rejoining nodes
 * wait for it); each alone and both survive, any other bit is refused. */
static void test_append_flags(void)
{
    for (int bits = 0; bits < 4; bits++) {
        trp_raft_msg a, b;
        fill(&a, TRP_RAFT_APPEND);
        a.flag = bits & 1;
        a.commit_current = (bits & 2) != 0;
        uint8_t *buf;
        size_t len;
        trp_err err = {0};
        REQUIRE(trp_raft_msg_encode(&a, &buf, &len, &err) == 0);
        trp_raft_msg_init(&b);
        CHECKF(trp_raft_msg_decode(buf, len, &b, &err) == 0, "%s", err.msg);
        CHECK(b.flag == a.flag && b.commit_current == a.commit_current);
        trp_raft_msg_clear(&b);
        if (bits == 3) {
            /* the flags byte follows version, type, from, to, term, seq and
             * commit: find it as the byte that differs from bits 0 */
            trp_raft_msg z;
            fill(&z, TRP_RAFT_APPEND);
            z.flag = false;
            uint8_t *zb;
            size_t zl;
            REQUIRE(trp_raft_msg_encode(&z, &zb, &zl, &err) == 0 && zl == len);
            size_t at = 0;
            while (at < len && buf[at] == zb[at])
                at++;
            REQUIRE(at < len && buf[at] == 3 && zb[at] == 0);
            zb[at] = 4;
            fix_crc(zb, zl);
            trp_raft_msg_init(&b);
            CHECK(trp_raft_msg_decode(zb, zl, &b, &err) != 0);
            trp_raft_msg_clear(&b);
            free(zb);
            trp_raft_msg_clear(&z);
        }
        free(buf);
        trp_raft_msg_clear(&a);
    }
}

static int hostile(const uint8_t *b, size_t len)
{
    trp_raft_msg m;
    trp_raft_msg_init(&m);
    int accepted = 0;
    if (trp_raft_msg_decode(b, len, &m, NULL) == 0) {
        accepted = 1;
        uint8_t *out;
        size_t olen;
        if (trp_raft_msg_encode(&m, &out, &olen, NULL) == 0) {
            if (olen != len || memcmp(out, b, len))
                accepted = -1;
            free(out);
        }
    }
    trp_raft_msg_clear(&m);
    return accepted;
}

static void test_random_and_mutated_buffers(void)
{
    int accepted = 0, mismatched = 0, total = 0;
    uint8_t buf[2048];
    for (int i = 0; i < 3000; i++, total++) { /* random, CRC fixed */
        size_t len = (size_t)(rnd() % sizeof buf);
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)rnd();
        if (len > 2) {
            buf[0] = 1;
            buf[1] = (uint8_t)(1 + rnd() % TRP_RAFT_MSG_TYPE_MAX);
        }
        fix_crc(buf, len);
        int r = hostile(buf, len);
        accepted += r == 1;
        mismatched += r < 0;
    }
    for (int i = 0; i < 4000; i++, total++) { /* mutations of valid messages */
        trp_raft_msg a;
        fill(&a, (int)(1 + rnd() % TRP_RAFT_MSG_TYPE_MAX));
        uint8_t *enc;
        size_t len;
        trp_raft_msg_encode(&a, &enc, &len, NULL);
        trp_raft_msg_clear(&a);
        if (len > sizeof buf)
            len = sizeof buf;
        memcpy(buf, enc, len);
        free(enc);
        int kind = (int)(rnd() % 4);
        if (kind == 0) { /* flip bits */
            for (int f = 0; f < 1 + (int)(rnd() % 4); f++)
                buf[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
        } else if (kind == 1) { /* truncate */
            len = (size_t)(rnd() % len);
        } else if (kind == 2) { /* huge varint or length byte */
            size_t at = 2 + (size_t)(rnd() % (len - 2));
            buf[at] = 0xff;
        } else { /* random run of bytes */
            size_t at = (size_t)(rnd() % len);
            for (size_t k = at; k < len && k < at + 8; k++)
                buf[k] = (uint8_t)rnd();
        }
        bool unfixed = rnd() % 4 == 0;
        if (!unfixed)
            fix_crc(buf, len);
        int r = hostile(buf, len);
        accepted += r == 1;
        mismatched += r < 0;
    }
    CHECKF(mismatched == 0, "%d accepted inputs re-encoded differently", mismatched);
    CHECK(accepted < total); /* most hostile inputs are refused */
    printf("# codec: %d hostile buffers, %d accepted (all canonical)\n", total, accepted);
}

static void test_caps(void)
{
    /* an APPEND claiming 2^32 entries in a few bytes: refused, no huge alloc */
    uint8_t b[128] = {1, TRP_RAFT_APPEND, 1, 2, 3, 0, 0, 0, 0}; /* ... commit flag log_term */
    size_t n = 9;
    memset(b + n, 0, 64);
    n += 64; /* hashes */
    b[n++] = 0xff;
    b[n++] = 0xff;
    b[n++] = 0xff;
    b[n++] = 0xff;
    b[n++] = 0x0f;
    uint8_t full[128];
    memcpy(full, b, n);
    n += 4;
    fix_crc(full, n);
    trp_raft_msg m;
    trp_raft_msg_init(&m);
    trp_err err = {0};
    CHECK(trp_raft_msg_decode(full, n, &m, &err) == TRP_EFORMAT);
    trp_raft_msg_clear(&m);
    /* a seq longer than the cap is refused at encode time */
    trp_raft_msg_init(&m);
    m.type = TRP_RAFT_HEARTBEAT;
    mpz_ui_pow_ui(m.commit, 2, 8 * TRP_RAFT_CODEC_MAX_SEQ_BYTES + 1);
    uint8_t *out;
    size_t len;
    CHECK(trp_raft_msg_encode(&m, &out, &len, &err) == TRP_EINVAL);
    trp_raft_msg_clear(&m);
}

int main(void)
{
    RUN(test_roundtrip_every_type);
    RUN(test_append_flags);
    RUN(test_zero_seq_and_empty);
    RUN(test_random_and_mutated_buffers);
    RUN(test_caps);
    return check_done();
}
