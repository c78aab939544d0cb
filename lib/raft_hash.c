/*
 * raft_hash.c: an INTERIM chain hash for the Raft core until the log store
 * (trp_entry_hash in lib/hash.c, layout in trp-log.5) is merged.
 *
 * The one idea: the core never hashes by itself; it calls the hash_entry
 * function of its trp_raft_env. tnode and the simulator default to this
 * one today. TODO(merge): point those defaults at trp_entry_hash and delete
 * this file; nothing else depends on the exact layout below.
 *
 * SHA-256 over: "trp-raft-interim" NUL, len(seq):1, seq big-endian, term:8
 * big-endian, type:1, prev:32, payload.
 */
#include "trp_raft.h"

#include <openssl/evp.h>
#include <string.h>

void trp_raft_hash_interim(uint8_t out[TRP_RAFT_HASH_LEN], const mpz_t seq, uint64_t term, int type,
                           const uint8_t prev[TRP_RAFT_HASH_LEN], const void *payload, size_t len)
{
    static const char tag[] = "trp-raft-interim";
    uint8_t buf[1 + 255 + 8 + 1];
    size_t n = 0, count = 0;
    uint8_t sb[255];
    if (mpz_sgn(seq) && (mpz_sizeinbase(seq, 2) + 7) / 8 <= sizeof sb)
        mpz_export(sb, &count, 1, 1, 1, 0, seq);
    buf[n++] = (uint8_t)count;
    memcpy(buf + n, sb, count);
    n += count;
    for (int i = 7; i >= 0; i--)
        buf[n++] = (uint8_t)(term >> (8 * i));
    buf[n++] = (uint8_t)type;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int outlen = 0;
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(ctx, tag, sizeof tag) || !EVP_DigestUpdate(ctx, buf, n) ||
        !EVP_DigestUpdate(ctx, prev, TRP_RAFT_HASH_LEN) ||
        (len && !EVP_DigestUpdate(ctx, payload, len)) || !EVP_DigestFinal_ex(ctx, out, &outlen))
        memset(out, 0, TRP_RAFT_HASH_LEN);
    EVP_MD_CTX_free(ctx);
}
