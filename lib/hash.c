/*
 * hash.c: the SHA-256 hash chain and CRC32C.
 *
 * The one idea: an entry's hash binds everything the leader decides about
 * it (seq, term, type, previous hash, payload) behind a domain tag, so
 * comparing two hashes at one seq compares the whole prefixes up to it.
 * CRC32C only guards against accidental damage; it uses the SSE4.2 crc32
 * instruction when the CPU has it (checked at run time) and a table
 * otherwise, and both give the same value.
 */
#include "hash.h"

#include <assert.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

static const uint32_t crc32c_table[256] = {
    0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c, 0x26a1e7e8, 0xd4ca64eb,
    0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b, 0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24,
    0x105ec76f, 0xe235446c, 0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
    0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc, 0xbc267848, 0x4e4dfb4b,
    0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a, 0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35,
    0xaa64d611, 0x580f5512, 0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
    0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad, 0x1642ae59, 0xe4292d5a,
    0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a, 0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595,
    0x417b1dbc, 0xb3109ebf, 0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
    0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f, 0xed03a29b, 0x1f682198,
    0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927, 0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38,
    0xdbfc821c, 0x2997011f, 0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
    0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e, 0x4767748a, 0xb50cf789,
    0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859, 0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46,
    0x7198540d, 0x83f3d70e, 0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
    0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de, 0xdde0eb2a, 0x2f8b6829,
    0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c, 0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93,
    0x082f63b7, 0xfa44e0b4, 0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
    0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b, 0xb4091bff, 0x466298fc,
    0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c, 0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033,
    0xa24bb5a6, 0x502036a5, 0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
    0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975, 0x0e330a81, 0xfc588982,
    0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d, 0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622,
    0x38cc2a06, 0xcaa7a905, 0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
    0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8, 0xe52cc12c, 0x1747422f,
    0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff, 0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0,
    0xd3d3e1ab, 0x21b862a8, 0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
    0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78, 0x7fab5e8c, 0x8dc0dd8f,
    0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee, 0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1,
    0x69e9f0d5, 0x9b8273d6, 0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
    0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69, 0xd5cf889d, 0x27a40b9e,
    0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e, 0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351};

uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = crc32c_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32c_hw(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t c = ~crc & 0xffffffffu;
    while (len && ((uintptr_t)p & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        len -= 8;
    }
    while (len--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}

bool crc32c_have_hw(void)
{
    return __builtin_cpu_supports("sse4.2");
}
#else
uint32_t crc32c_hw(uint32_t crc, const void *data, size_t len)
{
    return crc32c_sw(crc, data, len);
}
bool crc32c_have_hw(void)
{
    return false;
}
#endif

uint32_t trp_crc32c(uint32_t crc, const void *data, size_t len)
{
    if (crc32c_have_hw())
        return crc32c_hw(crc, data, len);
    return crc32c_sw(crc, data, len);
}

const char *trp_entry_type_name(int type)
{
    switch (type) {
    case TRP_ENTRY_DATA:
        return "data";
    case TRP_ENTRY_NOOP:
        return "noop";
    case TRP_ENTRY_CONFIG:
        return "config";
    case TRP_ENTRY_CHECKPOINT:
        return "checkpoint";
    default:
        return "unknown";
    }
}

int hasher_init(hasher *h, trp_err *err)
{
    h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    h->ctx = EVP_MD_CTX_new();
    if (!h->md || !h->ctx) {
        hasher_free(h);
        return trp_err_set(err, TRP_ENOMEM, "cannot set up SHA-256 (OpenSSL EVP)");
    }
    return TRP_OK;
}

void hasher_free(hasher *h)
{
    EVP_MD_CTX_free(h->ctx);
    EVP_MD_free(h->md);
    h->ctx = NULL;
    h->md = NULL;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

#define ENTRY_TAG "trp-entry-v1"
#define ENTRY_TAG_LEN 12

void hasher_entry(hasher *h, uint8_t out[TRP_HASH_LEN], const uint8_t *seq, size_t seq_len,
                  uint64_t term, int type, const uint8_t prev[TRP_HASH_LEN], const void *payload,
                  size_t len)
{
    assert(seq_len <= SEQ_BYTES_MAX);
    /* tag | u8 seq_len | seq | be64 term | u8 type | prev | be64 len */
    uint8_t pre[ENTRY_TAG_LEN + 1 + SEQ_BYTES_MAX + 8 + 1 + TRP_HASH_LEN + 8];
    size_t n = 0;
    memcpy(pre, ENTRY_TAG, ENTRY_TAG_LEN);
    n += ENTRY_TAG_LEN;
    pre[n++] = (uint8_t)seq_len;
    if (seq_len)
        memcpy(pre + n, seq, seq_len);
    n += seq_len;
    put_be64(pre + n, term);
    n += 8;
    pre[n++] = (uint8_t)type;
    memcpy(pre + n, prev, TRP_HASH_LEN);
    n += TRP_HASH_LEN;
    put_be64(pre + n, (uint64_t)len);
    n += 8;
    unsigned int outlen = 0;
    int ok = EVP_DigestInit_ex2(h->ctx, h->md, NULL) && EVP_DigestUpdate(h->ctx, pre, n) &&
             (len == 0 || EVP_DigestUpdate(h->ctx, payload, len)) &&
             EVP_DigestFinal_ex(h->ctx, out, &outlen);
    /* SHA-256 over memory cannot fail once the context exists. */
    assert(ok && outlen == TRP_HASH_LEN);
    (void)ok;
}

int seq_to_field(const mpz_t seq, uint8_t field[SEQ_BYTES_MAX])
{
    assert(mpz_sgn(seq) >= 0);
    size_t bytes = (mpz_sizeinbase(seq, 2) + 7) / 8;
    memset(field, 0, SEQ_BYTES_MAX);
    if (mpz_sgn(seq) == 0)
        return 0;
    if (bytes > SEQ_BYTES_MAX)
        return -1;
    size_t count = 0;
    mpz_export(field + SEQ_BYTES_MAX - bytes, &count, 1, 1, 1, 0, seq);
    assert(count == bytes);
    return 0;
}

void seq_from_field(mpz_t seq, const uint8_t field[SEQ_BYTES_MAX])
{
    mpz_import(seq, SEQ_BYTES_MAX, 1, 1, 1, 0, field);
}

const uint8_t *seq_field_min(const uint8_t field[SEQ_BYTES_MAX], size_t *len)
{
    /* called per entry: skip zero words first (seqs are mostly small) */
    size_t i = 0;
    for (; i + 8 <= SEQ_BYTES_MAX; i += 8) {
        uint64_t w;
        memcpy(&w, field + i, 8);
        if (w)
            break;
    }
    while (i < SEQ_BYTES_MAX && field[i] == 0)
        i++;
    *len = SEQ_BYTES_MAX - i;
    return field + i;
}

int seq_field_inc(uint8_t field[SEQ_BYTES_MAX])
{
    for (int i = SEQ_BYTES_MAX - 1; i >= 0; i--)
        if (++field[i] != 0)
            return 0;
    return -1;
}

int seq_field_add(uint8_t field[SEQ_BYTES_MAX], const uint8_t base[SEQ_BYTES_MAX], uint64_t off)
{
    unsigned carry = 0;
    for (int i = SEQ_BYTES_MAX - 1; i >= 0; i--) {
        unsigned v = base[i] + (unsigned)(off & 0xff) + carry;
        field[i] = (uint8_t)v;
        carry = v >> 8;
        off >>= 8;
    }
    return carry || off ? -1 : 0;
}

void trp_entry_hash(uint8_t out[TRP_HASH_LEN], const mpz_t seq, uint64_t term, int type,
                    const uint8_t prev[TRP_HASH_LEN], const void *payload, size_t len)
{
    uint8_t field[SEQ_BYTES_MAX];
    int rc = seq_to_field(seq, field);
    assert(rc == 0); /* callers hold seqs the format can store */
    (void)rc;
    size_t n;
    const uint8_t *m = seq_field_min(field, &n);
    hasher h;
    if (hasher_init(&h, NULL) != TRP_OK) {
        memset(out, 0, TRP_HASH_LEN);
        return;
    }
    hasher_entry(&h, out, m, n, term, type, prev, payload, len);
    hasher_free(&h);
}

void trp_hash_hex(char *out, const uint8_t hash[TRP_HASH_LEN])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < TRP_HASH_LEN; i++) {
        out[2 * i] = digits[hash[i] >> 4];
        out[2 * i + 1] = digits[hash[i] & 15];
    }
    out[TRP_HASH_HEX_LEN] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int trp_hash_parse(uint8_t out[TRP_HASH_LEN], const char *hex, const char *what, trp_err *err)
{
    if (!hex || strlen(hex) != TRP_HASH_HEX_LEN)
        return trp_err_set(err, TRP_EINVAL, "%s: a hash is 64 hex digits, got \"%.80s\"", what,
                           hex ? hex : "");
    for (int i = 0; i < TRP_HASH_LEN; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return trp_err_set(err, TRP_EINVAL, "%s: not a hex digit at position %d in \"%s\"",
                               what, hi < 0 ? 2 * i + 1 : 2 * i + 2, hex);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return TRP_OK;
}
