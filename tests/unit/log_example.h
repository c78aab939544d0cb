/*
 * log_example.h: builds the worked example of man/trp-log.5 with the real
 * store and renders it as the roff text the page carries between its
 * "BEGIN GENERATED EXAMPLE" and "END GENERATED EXAMPLE" comment lines.
 * tests/tools/log_example prints it (to refresh the page); test_format
 * checks that the page still holds exactly this text.
 *
 * The one idea: the page's bytes and hashes come from the code, so the
 * page cannot drift from the format without a test failing.
 */
#ifndef TRP_LOG_EXAMPLE_H
#define TRP_LOG_EXAMPLE_H

#include "trp.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ex_buf {
    char *s;
    size_t len, cap;
} ex_buf;

static inline void ex_printf(ex_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void ex_printf(ex_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->s = realloc(b->s, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static inline void ex_hexdump(ex_buf *b, const uint8_t *p, size_t len)
{
    for (size_t off = 0; off < len; off += 16) {
        ex_printf(b, "%04zx ", off);
        for (size_t i = off; i < off + 16; i++) {
            if (i == off + 8)
                ex_printf(b, " ");
            if (i < len)
                ex_printf(b, " %02x", p[i]);
            else
                ex_printf(b, "   ");
        }
        ex_printf(b, "  |");
        for (size_t i = off; i < off + 16 && i < len; i++)
            ex_printf(b, "%c", p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' ? p[i] : '.');
        ex_printf(b, "|\n");
    }
}

static inline uint8_t *ex_slurp(const char *dir, const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc(n > 0 ? (size_t)n : 1);
    *len = d ? fread(d, 1, n > 0 ? (size_t)n : 0, f) : 0;
    fclose(f);
    return d;
}

/* Where a segment's records end, by the page's rule alone: records follow
 * the 128-byte header, each 64 + length (u32 LE at byte 24) rounded up to
 * 8 bytes, and eight zero bytes where one would start end the segment. */
static inline size_t ex_records_end(const uint8_t *p, size_t len)
{
    size_t off = 128;
    while (off + 64 <= len) {
        int nz = 0;
        for (int i = 0; i < 8; i++)
            nz |= p[off + i];
        if (!nz)
            break;
        size_t l = (size_t)p[off + 24] | (size_t)p[off + 25] << 8 | (size_t)p[off + 26] << 16 |
                   (size_t)p[off + 27] << 24;
        off += 64 + ((l + 7) & ~(size_t)7);
    }
    return off < len ? off : len;
}

/* Build the example log in dir (which must not exist) and render it.
 * Returns NULL on failure (with a message on stderr). */
static inline char *log_example_text(const char *dir)
{
    trp_err e;
    trp_log *log;
    trp_log_options o = {.create = true};
    if (trp_log_open(&log, dir, &o, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return NULL;
    }
    uint8_t h[3][TRP_HASH_LEN];
    /* two batches: "a", then "b" and "c" */
    if (trp_log_append(log, 0, TRP_ENTRY_DATA, "a", 1, h[0], &e) || trp_log_sync(log, &e) ||
        trp_log_append(log, 0, TRP_ENTRY_DATA, "b", 1, h[1], &e) ||
        trp_log_append(log, 0, TRP_ENTRY_DATA, "c", 1, h[2], &e) || trp_log_sync(log, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        trp_log_close(log);
        return NULL;
    }
    trp_log_close(log);
    ex_buf b = {0};
    const char *files[] = {"00000000000000000000.seg", "00000000000000000000.idx", "commit"};
    for (int i = 0; i < 3; i++) {
        size_t len = 0;
        uint8_t *d = ex_slurp(dir, files[i], &len);
        if (!d) {
            fprintf(stderr, "%s/%s: missing\n", dir, files[i]);
            free(b.s);
            return NULL;
        }
        size_t shown = i == 0 ? ex_records_end(d, len) : len;
        for (size_t z = shown; z < len; z++)
            if (d[z]) {
                fprintf(stderr, "%s/%s: byte %zu after the records is not zero\n", dir, files[i],
                        z);
                free(d);
                free(b.s);
                return NULL;
            }
        if (shown < len)
            ex_printf(&b,
                      ".PP\n%s (%zu bytes: the records, then zeros from byte %zu on):\n.PP\n.EX\n",
                      files[i], len, shown);
        else
            ex_printf(&b, ".PP\n%s (%zu bytes):\n.PP\n.EX\n", files[i], len);
        ex_hexdump(&b, d, shown);
        ex_printf(&b, ".EE\n");
        free(d);
    }
    /* the hash input of seq 1, built by hand from the documented layout,
     * must give the hash the store computed */
    uint8_t in[256];
    size_t n = 0;
    memcpy(in, "trp-entry-v1", 12);
    n = 12;
    in[n++] = 1; /* seq length */
    in[n++] = 1; /* seq 1 */
    for (int i = 7; i >= 0; i--)
        in[n++] = (uint8_t)((uint64_t)0 >> (8 * i)); /* term 0 */
    in[n++] = TRP_ENTRY_DATA;
    memcpy(in + n, h[0], TRP_HASH_LEN);
    n += TRP_HASH_LEN;
    for (int i = 7; i >= 0; i--)
        in[n++] = (uint8_t)((uint64_t)1 >> (8 * i)); /* payload length 1 */
    in[n++] = 'b';
    uint8_t check[TRP_HASH_LEN];
    unsigned int olen;
    EVP_Digest(in, n, check, &olen, EVP_sha256(), NULL);
    if (memcmp(check, h[1], TRP_HASH_LEN) != 0) {
        fprintf(stderr, "the documented hash input does not give the stored hash\n");
        free(b.s);
        return NULL;
    }
    ex_printf(&b, ".PP\nThe hash input of seq 1 (%zu bytes):\n.PP\n.EX\n", n);
    ex_hexdump(&b, in, n);
    ex_printf(&b, ".EE\n.PP\nThe entry hashes:\n.PP\n.EX\n");
    const char *pay[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        char hex[TRP_HASH_HEX_LEN + 1];
        trp_hash_hex(hex, h[i]);
        ex_printf(&b, "seq %d  \"%s\"  %s\n", i, pay[i], hex);
    }
    ex_printf(&b, ".EE\n");
    return b.s;
}

#endif
