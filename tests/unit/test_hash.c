/* test_hash.c: CRC32C known vectors, hardware and table agree; the entry
 * hash is exactly SHA-256 over the documented input; hex round-trips. */
#include "../check.h"
#include "hash.h"
#include "trp.h"

#include <openssl/evp.h>

static void crc32c_known_vectors(void)
{
    CHECK(trp_crc32c(0, "123456789", 9) == 0xE3069283u);
    CHECK(crc32c_sw(0, "123456789", 9) == 0xE3069283u);
    CHECK(trp_crc32c(0, "", 0) == 0);
    uint8_t zeros[32] = {0}, ones[32];
    memset(ones, 0xff, sizeof ones);
    CHECK(trp_crc32c(0, zeros, 32) == 0x8A9136AAu); /* RFC 3720 B.4 */
    CHECK(trp_crc32c(0, ones, 32) == 0x62A8AB43u);
    /* chaining continues a checksum */
    CHECK(trp_crc32c(trp_crc32c(0, "12345", 5), "6789", 4) == 0xE3069283u);
}

static void crc32c_hw_and_table_agree(void)
{
    if (!crc32c_have_hw()) {
        printf("# no SSE4.2 here: only the table is tested\n");
        return;
    }
    static uint8_t buf[9000 + 16];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    for (size_t start = 0; start < 9; start++)
        for (size_t len = 0; len < 300; len += 7)
            CHECKF(crc32c_hw(0, buf + start, len) == crc32c_sw(0, buf + start, len),
                   "start %zu len %zu", start, len);
    /* long buffers take the three-stream path: around its block sizes */
    size_t lens[] = {767, 768, 769, 775, 776, 1535, 1536, 1537, 2304, 4096, 4100, 9000};
    for (size_t start = 0; start < 9; start += 3)
        for (size_t i = 0; i < sizeof lens / sizeof *lens; i++)
            CHECKF(crc32c_hw(0, buf + start, lens[i]) == crc32c_sw(0, buf + start, lens[i]),
                   "start %zu len %zu", start, lens[i]);
    CHECK(crc32c_hw(7, buf, 4096) == crc32c_sw(7, buf, 4096));
    CHECK(crc32c_hw(crc32c_hw(0, buf, 1000), buf + 1000, 3000) == crc32c_sw(0, buf, 4000));
}

/* The documented input, built independently of hash.c. */
static void reference_hash(uint8_t out[32], const uint8_t *seq, size_t seq_len, uint64_t term,
                           int type, const uint8_t prev[32], const void *p, size_t len)
{
    static uint8_t in[12 + 1 + 64 + 8 + 1 + 32 + 8 + 70000];
    size_t n = 0;
    memcpy(in, "trp-entry-v1", 12);
    n = 12;
    in[n++] = (uint8_t)seq_len;
    if (seq_len)
        memcpy(in + n, seq, seq_len);
    n += seq_len;
    for (int i = 7; i >= 0; i--)
        in[n++] = (uint8_t)(term >> (8 * i));
    in[n++] = (uint8_t)type;
    memcpy(in + n, prev, 32);
    n += 32;
    for (int i = 7; i >= 0; i--)
        in[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    memcpy(in + n, p, len);
    n += len;
    unsigned int olen;
    EVP_Digest(in, n, out, &olen, EVP_sha256(), NULL);
}

static void entry_hash_matches_the_documented_input(void)
{
    uint8_t prev[32] = {0}, a[32], b[32];
    mpz_t seq;
    mpz_init_set_ui(seq, 0);
    trp_entry_hash(a, seq, 1, TRP_ENTRY_DATA, prev, "a", 1);
    reference_hash(b, NULL, 0, 1, 1, prev, "a", 1);
    CHECK(memcmp(a, b, 32) == 0);
    /* a seq past 2^64: 9 bytes 01 00 .. 00 */
    mpz_set_str(seq, "18446744073709551616", 10);
    uint8_t s9[9] = {1, 0, 0, 0, 0, 0, 0, 0, 0};
    memset(prev, 0xab, 32);
    trp_entry_hash(a, seq, 0xfffffffffULL, TRP_ENTRY_NOOP, prev, "", 0);
    reference_hash(b, s9, 9, 0xfffffffffULL, 2, prev, "", 0);
    CHECK(memcmp(a, b, 32) == 0);
    /* every field matters */
    uint8_t c[32];
    trp_entry_hash(c, seq, 0xfffffffffULL, TRP_ENTRY_DATA, prev, "", 0);
    CHECK(memcmp(a, c, 32) != 0);
    mpz_add_ui(seq, seq, 1);
    trp_entry_hash(c, seq, 0xfffffffffULL, TRP_ENTRY_NOOP, prev, "", 0);
    CHECK(memcmp(a, c, 32) != 0);
    mpz_clear(seq);
}

static void chain_of_three(void)
{
    /* the man page's example chain: "a", "b", "c" at seqs 0..2, term 1 */
    uint8_t h[3][32], prev[32] = {0};
    mpz_t seq;
    mpz_init(seq);
    const char *p[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        mpz_set_ui(seq, (unsigned long)i);
        trp_entry_hash(h[i], seq, 1, TRP_ENTRY_DATA, prev, p[i], 1);
        uint8_t ref[32];
        uint8_t sb = (uint8_t)i;
        reference_hash(ref, &sb, i ? 1 : 0, 1, 1, prev, p[i], 1);
        CHECK(memcmp(ref, h[i], 32) == 0);
        memcpy(prev, h[i], 32);
    }
    CHECK(memcmp(h[0], h[1], 32) != 0 && memcmp(h[1], h[2], 32) != 0);
    mpz_clear(seq);
}

/* The CPU's SHA extensions and OpenSSL's EVP give the same entry hash, for
 * every total length across several block boundaries (the padding's cases)
 * and seqs of every width, both equal to SHA-256 of the documented input. */
static void entry_hash_same_on_both_paths(void)
{
    bool ni = hash_use_evp(false);
    if (!ni)
        printf("# no SHA extensions here: EVP serves both runs\n");
    static uint8_t payload[70000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 131 + (i >> 9));
    uint8_t prev[32], seqb[64];
    for (int i = 0; i < 32; i++)
        prev[i] = (uint8_t)(200 - i);
    mpz_t seq;
    mpz_init(seq);
    const size_t seq_lens[] = {0, 1, 8, 9, 33, 64};
    const size_t big[] = {1000, 4095, 4096, 65536, 65536 + 13, 70000};
    for (size_t s = 0; s < sizeof seq_lens / sizeof *seq_lens && !check_failed_now; s++) {
        /* a seq of exactly seq_lens[s] bytes: 0x80 then 0x01s */
        for (size_t i = 0; i < seq_lens[s]; i++)
            seqb[i] = i ? 0x01 : 0x80;
        mpz_import(seq, seq_lens[s], 1, 1, 1, 0, seqb);
        for (size_t k = 0; k < 300 + sizeof big / sizeof *big && !check_failed_now; k++) {
            size_t len = k < 300 ? k : big[k - 300];
            uint8_t a[32], b[32], ref[32];
            hash_use_evp(false);
            trp_entry_hash(a, seq, 77 + k, TRP_ENTRY_DATA, prev, payload, len);
            hash_use_evp(true);
            trp_entry_hash(b, seq, 77 + k, TRP_ENTRY_DATA, prev, payload, len);
            reference_hash(ref, seqb, seq_lens[s], 77 + k, TRP_ENTRY_DATA, prev, payload, len);
            CHECKF(memcmp(a, ref, 32) == 0 && memcmp(b, ref, 32) == 0,
                   "seq of %zu bytes, payload of %zu bytes", seq_lens[s], len);
        }
    }
    hash_use_evp(false);
    mpz_clear(seq);
}

static void hex_round_trip(void)
{
    uint8_t h[32], g[32];
    for (int i = 0; i < 32; i++)
        h[i] = (uint8_t)(i * 37 + 5);
    char hex[65];
    trp_hash_hex(hex, h);
    CHECK(strlen(hex) == 64);
    CHECK(trp_hash_parse(g, hex, "hash", NULL) == TRP_OK && memcmp(g, h, 32) == 0);
    for (int i = 0; hex[i]; i++)
        if (hex[i] >= 'a')
            hex[i] = (char)(hex[i] - 32);
    CHECK(trp_hash_parse(g, hex, "hash", NULL) == TRP_OK && memcmp(g, h, 32) == 0);
    trp_err e;
    CHECK(trp_hash_parse(g, "abc", "--if-prev", &e) == TRP_EINVAL && strstr(e.msg, "--if-prev"));
    hex[10] = 'g';
    CHECK(trp_hash_parse(g, hex, "--if-prev", &e) == TRP_EINVAL);
    CHECK(strcmp(trp_entry_type_name(TRP_ENTRY_NOOP), "noop") == 0);
}

int main(void)
{
    RUN(crc32c_known_vectors);
    RUN(crc32c_hw_and_table_agree);
    RUN(entry_hash_matches_the_documented_input);
    RUN(chain_of_three);
    RUN(entry_hash_same_on_both_paths);
    RUN(hex_round_trip);
    return check_done();
}
