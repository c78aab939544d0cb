/*
 * hash.h: internal side of the hash module: the two CRC32C implementations
 * (so tests can check that they agree) and a reusable SHA-256 entry hasher.
 *
 * The one idea: the append path hashes millions of entries a second, so it
 * fetches the digest and allocates the EVP context once per log handle and
 * feeds each entry as two updates (a small fixed prefix, then the payload).
 */
#ifndef TRP_HASH_INTERNAL_H
#define TRP_HASH_INTERNAL_H

#include "trp_log.h"

#include <openssl/evp.h>
#include <stdbool.h>

uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len);
uint32_t crc32c_hw(uint32_t crc, const void *data, size_t len); /* needs crc32c_have_hw() */
bool crc32c_have_hw(void);

/* Longest seq the format holds, as big-endian bytes (seqs < 2^512). */
#define SEQ_BYTES_MAX 64

typedef struct hasher {
    EVP_MD *md;
    EVP_MD_CTX *ctx;
    EVP_MD_CTX *start; /* SHA-256 with the domain tag absorbed, copied per entry */
} hasher;

int hasher_init(hasher *h, trp_err *err);
void hasher_free(hasher *h);
/* The entry hash (trp-log.5 "Entry hash"). seq is its minimal big-endian
 * magnitude: seq_len bytes, no leading zero byte (0 bytes for seq 0). */
void hasher_entry(hasher *h, uint8_t out[TRP_HASH_LEN], const uint8_t *seq, size_t seq_len,
                  uint64_t term, int type, const uint8_t prev[TRP_HASH_LEN], const void *payload,
                  size_t len);

/* Tests: make hasher_entry use OpenSSL's EVP even where the CPU's SHA
 * extensions would serve (on), or not (off). Returns whether the CPU has
 * them. */
bool hash_use_evp(bool on);

/* Seq <-> fixed 64-byte big-endian field. seq_to_field fails (returns -1) for
 * a seq of 2^512 or more. */
int seq_to_field(const mpz_t seq, uint8_t field[SEQ_BYTES_MAX]);
void seq_from_field(mpz_t seq, const uint8_t field[SEQ_BYTES_MAX]);
/* Minimal big-endian bytes of a 64-byte field: pointer into field, length. */
const uint8_t *seq_field_min(const uint8_t field[SEQ_BYTES_MAX], size_t *len);
/* field += 1; returns -1 on overflow past 2^512 - 1. */
int seq_field_inc(uint8_t field[SEQ_BYTES_MAX]);
/* field = base + off. */
int seq_field_add(uint8_t field[SEQ_BYTES_MAX], const uint8_t base[SEQ_BYTES_MAX], uint64_t off);

#endif
