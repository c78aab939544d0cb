/*
 * test_client.c: the client protocol codec (lib/client_codec.c): every
 * message type round-trips, every truncation and trailing byte is refused,
 * a count that claims more items than the bytes hold is refused before any
 * allocation, and random bytes never crash the decoder (the fuzz target
 * tests/fuzz/fuzz_client.c does this at scale). And trp_client_flush sends
 * a submitted append without a pump.
 */
#include "../check.h"
#include "trp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static trp_cbuf enc;

/* Encode m, decode it back into d, and re-encode: same bytes both times. */
static int roundtrip(const trp_cmsg *m, trp_cmsg *d)
{
    trp_cbuf_free(&enc);
    if (trp_cmsg_encode(m, &enc) != TRP_OK)
        return -1;
    if (trp_cmsg_decode(enc.p, enc.len, d, NULL) != TRP_OK)
        return -2;
    trp_cbuf again = {0};
    int rc = trp_cmsg_encode(d, &again) == TRP_OK && again.len == enc.len &&
                     memcmp(again.p, enc.p, enc.len) == 0
                 ? 0
                 : -3;
    trp_cbuf_free(&again);
    return rc;
}

static void append_roundtrip(void)
{
    trp_cmsg m, d;
    trp_cmsg_init(&m);
    trp_cmsg_init(&d);
    trp_cmsg_item items[2] = {{.session = 7, .req = 1, .data = (const uint8_t *)"abc", .len = 3},
                              {.session = 7, .req = 2, .data = (const uint8_t *)"", .len = 0}};
    m.type = TRP_CMSG_APPEND;
    m.has_if_head = true;
    memset(m.if_head, 0xab, sizeof m.if_head);
    m.items = items;
    m.n_items = 2;
    CHECK(roundtrip(&m, &d) == 0);
    CHECK(d.n_items == 2 && d.items[0].len == 3 && memcmp(d.items[0].data, "abc", 3) == 0);
    CHECK(d.has_if_head && d.items[1].req == 2);
    /* every proper prefix is refused, and so is a trailing byte */
    for (size_t n = 0; n < enc.len; n++)
        CHECKF(trp_cmsg_decode(enc.p, n, &d, NULL) == TRP_EFORMAT, "prefix %zu", n);
    trp_cbuf_u8(&enc, 0);
    CHECK(trp_cmsg_decode(enc.p, enc.len, &d, NULL) == TRP_EFORMAT);
    m.items = NULL;
    m.n_items = 0;
    trp_cmsg_clear(&m);
    trp_cmsg_clear(&d);
}

static void resp_and_read_roundtrip(void)
{
    trp_cmsg m, d;
    trp_cmsg_init(&m);
    trp_cmsg_init(&d);
    m.type = TRP_CMSG_READ;
    m.id = 99;
    m.flags = TRP_CREAD_TAIL | TRP_CREAD_RESTART;
    mpz_set_str(m.seq, "1000000000000000000000000000000", 10); /* 10^30: past 64 bits */
    mpz_set_str(m.first, "1000000000000000000000000008192", 10);
    m.back = 5;
    CHECK(roundtrip(&m, &d) == 0);
    CHECK(mpz_cmp(d.seq, m.seq) == 0 && d.back == 5 && d.flags == m.flags);
    m.flags = TRP_CREAD_TAIL | TRP_CREAD_RESTART | TRP_CREAD_TAIL_AT;
    CHECK(roundtrip(&m, &d) == 0 && d.flags == m.flags);
    m.flags = TRP_CREAD_CLOSE;
    CHECK(roundtrip(&m, &d) == 0 && d.flags == TRP_CREAD_CLOSE);
    m.flags = 16; /* unknown */
    CHECK(roundtrip(&m, &d) != 0);
    m.flags = TRP_CREAD_TAIL | TRP_CREAD_RESTART;
    m.type = TRP_CMSG_READINDEX_RESP;
    m.status = TRP_EUNAVAIL;
    m.leader_hint = 3;
    CHECK(roundtrip(&m, &d) == 0 && d.status == TRP_EUNAVAIL && d.leader_hint == 3);
    m.type = TRP_CMSG_STATUS_RESP;
    m.text = "{\"id\":1}";
    m.text_len = 8;
    CHECK(roundtrip(&m, &d) == 0 && d.text_len == 8 && memcmp(d.text, "{\"id\":1}", 8) == 0);
    m.type = TRP_CMSG_ENTRIES;
    m.status = TRP_ERANGE;
    m.text = "before the first";
    m.text_len = 16;
    CHECK(roundtrip(&m, &d) == 0 && d.status == TRP_ERANGE && d.text_len == 16);
    trp_cmsg_clear(&m);
    trp_cmsg_clear(&d);
}

static void entries_roundtrip(void)
{
    trp_cmsg m, d;
    trp_cmsg_init(&m);
    trp_cmsg_init(&d);
    trp_cmsg_entry es[3];
    memset(es, 0, sizeof es);
    for (int i = 0; i < 3; i++) {
        es[i].term = 4;
        es[i].type = i == 1 ? TRP_ENTRY_NOOP : TRP_ENTRY_DATA;
        es[i].session = 11;
        es[i].req = (uint64_t)i;
        memset(es[i].hash, i, TRP_HASH_LEN);
        es[i].data = (const uint8_t *)"xyz";
        es[i].len = i == 1 ? 0 : 3;
    }
    m.type = TRP_CMSG_ENTRIES;
    m.entries = es;
    m.n_entries = 3;
    mpz_set_ui(m.seq, 12);
    mpz_set_ui(m.first, 9);
    CHECK(roundtrip(&m, &d) == 0);
    CHECK(d.n_entries == 3 && d.entries[1].type == TRP_ENTRY_NOOP && d.entries[2].len == 3);
    CHECK(mpz_cmp_ui(d.first, 9) == 0 && mpz_cmp_ui(d.seq, 12) == 0);
    m.entries = NULL;
    m.n_entries = 0;
    trp_cmsg_clear(&m);
    trp_cmsg_clear(&d);
}

static void hostile_counts_and_seqs(void)
{
    trp_cmsg d;
    trp_cmsg_init(&d);
    /* an APPEND claiming 65536 items in 4 bytes */
    const uint8_t many[] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0};
    CHECK(trp_cmsg_decode(many, sizeof many, &d, NULL) == TRP_EFORMAT);
    CHECK(d.cap_items == 0); /* nothing allocated for the claim */
    /* a seq with a leading zero byte (two encodings of one value) */
    const uint8_t lead0[] = {1, 7 + 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 5};
    CHECK(trp_cmsg_decode(lead0, sizeof lead0, &d, NULL) == TRP_EFORMAT);
    /* wrong version, unknown type */
    const uint8_t v2[] = {2, 5, 0, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t t99[] = {1, 99, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK(trp_cmsg_decode(v2, sizeof v2, &d, NULL) == TRP_EFORMAT);
    CHECK(trp_cmsg_decode(t99, sizeof t99, &d, NULL) == TRP_EFORMAT);
    /* random bytes: refused or round-tripping, never a crash */
    uint64_t x = 88172645463325252ull;
    uint8_t buf[256];
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n = 0;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        n = x % sizeof buf;
        for (size_t k = 0; k < n; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[k] = (uint8_t)x;
        }
        if (n >= 2) { /* aim at real types half the time */
            buf[0] = 1;
            buf[1] = (uint8_t)(1 + x % 8);
        }
        if (trp_cmsg_decode(buf, n, &d, NULL) == TRP_OK) {
            trp_cbuf b = {0};
            CHECK(trp_cmsg_encode(&d, &b) == TRP_OK && b.len == n && memcmp(b.p, buf, n) == 0);
            trp_cbuf_free(&b);
            accepted++;
        }
    }
    CHECK(accepted > 0); /* some random inputs are valid STATUS/READINDEX messages */
    trp_cmsg_clear(&d);
}

/* A datagram within ms on fd? */
static bool datagram_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return false;
    uint8_t buf[65536];
    return recv(fd, buf, sizeof buf, 0) > 0;
}

/* A submitted append stays queued until a pump or a flush; the flush sends
 * it at once. The "node" is a bare UDP socket of the test's own. */
static void flush_sends_what_was_submitted(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    char dir[] = "/tmp/trp-test-client-XXXXXX", path[256];
    REQUIRE(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/cluster.key", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fprintf(f, "%064d\n", 7);
    fclose(f);
    chmod(path, 0600);
    snprintf(path, sizeof path, "%s/cluster.json", dir);
    f = fopen(path, "w");
    REQUIRE(f);
    fprintf(f, "{\"cluster\":\"t\",\"key_file\":\"cluster.key\",\"nodes\":"
               "[{\"id\":1,\"address\":\"127.0.0.1:%u\"}]}\n",
            (unsigned)ntohs(a.sin_port));
    fclose(f);
    trp_client *c = NULL;
    trp_err err;
    trp_err_clear(&err);
    CHECKF(trp_client_open(&c, path, 0, 1000, &err) == 0, "%s", err.msg);
    if (c) {
        CHECK(trp_client_submit(c, "x", 1, NULL, &err) == 0);
        CHECK(!datagram_within(fd, 50)); /* submitting alone sends nothing */
        trp_client_flush(c);
        CHECK(datagram_within(fd, 1000));
        trp_client_close(c);
    }
    close(fd);
    unlink(path);
    snprintf(path, sizeof path, "%s/cluster.key", dir);
    unlink(path);
    rmdir(dir);
}

/* A seq's encoding: a length byte, then big-endian bytes without leading
 * zeros, on both sides of 64 bits (the fast path and GMP's). */
static void seq_encoding_at_the_edges(void)
{
    static const struct {
        const char *dec;
        size_t n;
        uint8_t bytes[10];
    } cases[] = {
        {"0", 0, {0}},
        {"1", 1, {1}},
        {"255", 1, {0xff}},
        {"256", 2, {1, 0}},
        {"18446744073709551615", 8, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
        {"18446744073709551616", 9, {1, 0, 0, 0, 0, 0, 0, 0, 0}},
    };
    mpz_t v;
    mpz_init(v);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        trp_cbuf b = {0};
        mpz_set_str(v, cases[i].dec, 10);
        trp_cbuf_seq(&b, v);
        CHECKF(!b.oom && b.len == 1 + cases[i].n && b.p[0] == cases[i].n &&
                   memcmp(b.p + 1, cases[i].bytes, cases[i].n) == 0,
               "seq %s: %zu bytes", cases[i].dec, b.len);
        trp_cbuf_free(&b);
    }
    mpz_clear(v);
}

int main(void)
{
    RUN(append_roundtrip);
    RUN(seq_encoding_at_the_edges);
    RUN(resp_and_read_roundtrip);
    RUN(entries_roundtrip);
    RUN(hostile_counts_and_seqs);
    RUN(flush_sends_what_was_submitted);
    trp_cbuf_free(&enc);
    return check_done();
}
