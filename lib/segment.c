/*
 * segment.c: encoding and checking of the fixed-layout structures in a log
 * directory (segment header, record, commit watermark) and the scan of one
 * segment's records. No file I/O here: callers map the files.
 *
 * The one idea: a record is accepted only if its header CRC, its seq offset
 * (position in the segment), its payload CRC and its zero padding all
 * check, so a record can never be mistaken for one written elsewhere.
 */
#include "logfmt.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

const char *rec_check(const uint8_t *p, uint64_t avail, uint64_t expect_off, rec_view *out)
{
    if (avail < 8)
        return avail == 0 || all_zero(p, (size_t)avail) ? "end" : "truncated";
    if (all_zero(p, 8))
        return "end";
    if (avail < REC_HDR_SIZE)
        return "truncated";
    if (get_le32(p + REC_OFF_HCRC) != trp_crc32c(0, p + 4, REC_HDR_SIZE - 4))
        return "header-crc";
    int type = p[REC_OFF_TYPE];
    if (type < TRP_ENTRY_DATA || type > TRP_ENTRY_CHECKPOINT ||
        (p[REC_OFF_FLAGS] & ~REC_FLAG_COMMIT) || p[REC_OFF_RSVD] || p[REC_OFF_RSVD + 1])
        return "type";
    uint64_t seq_off = get_le64(p + REC_OFF_SEQOFF);
    if (seq_off != expect_off)
        return "seq";
    uint32_t len = get_le32(p + REC_OFF_LEN);
    uint64_t size = rec_size(len);
    if (size > avail)
        return "truncated";
    if (get_le32(p + REC_OFF_PCRC) != trp_crc32c(0, p + REC_HDR_SIZE, len))
        return "payload-crc";
    if (!all_zero(p + REC_HDR_SIZE + len, (size_t)(size - REC_HDR_SIZE - len)))
        return "padding";
    if (out) {
        out->type = type;
        out->flags = p[REC_OFF_FLAGS];
        out->seq_off = seq_off;
        out->term = get_le64(p + REC_OFF_TERM);
        out->len = len;
        out->prev = p + REC_OFF_PREV;
        out->payload = p + REC_HDR_SIZE;
        out->size = size;
    }
    return NULL;
}

void rec_encode(uint8_t *p, int type, int flags, uint64_t seq_off, uint64_t term,
                const uint8_t prev[TRP_HASH_LEN], const void *payload, uint32_t len)
{
    p[REC_OFF_TYPE] = (uint8_t)type;
    p[REC_OFF_FLAGS] = (uint8_t)flags;
    p[REC_OFF_RSVD] = 0;
    p[REC_OFF_RSVD + 1] = 0;
    put_le64(p + REC_OFF_SEQOFF, seq_off);
    put_le64(p + REC_OFF_TERM, term);
    put_le32(p + REC_OFF_LEN, len);
    put_le32(p + REC_OFF_PCRC, trp_crc32c(0, payload, len));
    memcpy(p + REC_OFF_PREV, prev, TRP_HASH_LEN);
    put_le32(p + REC_OFF_HCRC, trp_crc32c(0, p + 4, REC_HDR_SIZE - 4));
}

void rec_set_flags(uint8_t *p, int flags)
{
    p[REC_OFF_FLAGS] = (uint8_t)flags;
    put_le32(p + REC_OFF_HCRC, trp_crc32c(0, p + 4, REC_HDR_SIZE - 4));
}

bool rec_is_commit_header(const uint8_t *p)
{
    return p[REC_OFF_TYPE] >= TRP_ENTRY_DATA && p[REC_OFF_TYPE] <= TRP_ENTRY_CHECKPOINT &&
           (p[REC_OFF_FLAGS] & REC_FLAG_COMMIT) &&
           get_le32(p + REC_OFF_HCRC) == trp_crc32c(0, p + 4, REC_HDR_SIZE - 4);
}

void seg_hdr_encode(uint8_t p[SEG_HDR_SIZE], const seg_hdr *h)
{
    memset(p, 0, SEG_HDR_SIZE);
    memcpy(p + SEG_OFF_MAGIC, SEG_MAGIC, 8);
    put_le32(p + SEG_OFF_VERSION, FMT_VERSION);
    put_le32(p + SEG_OFF_HDRSIZE, SEG_HDR_SIZE);
    memcpy(p + SEG_OFF_ANCHOR, h->anchor, TRP_HASH_LEN);
    memcpy(p + SEG_OFF_BASE, h->base, SEQ_BYTES_MAX);
    put_le32(p + SEG_OFF_CRC, trp_crc32c(0, p, SEG_OFF_CRC));
}

const char *seg_hdr_decode(const uint8_t *p, uint64_t avail, seg_hdr *h, uint32_t *version)
{
    if (version)
        *version = 0;
    if (avail < SEG_HDR_SIZE)
        return "segment-header-truncated";
    if (memcmp(p + SEG_OFF_MAGIC, SEG_MAGIC, 8) != 0)
        return "segment-magic";
    if (version)
        *version = get_le32(p + SEG_OFF_VERSION);
    if (get_le32(p + SEG_OFF_CRC) != trp_crc32c(0, p, SEG_OFF_CRC))
        return "segment-header-crc";
    if (get_le32(p + SEG_OFF_VERSION) != FMT_VERSION)
        return "segment-version";
    if (get_le32(p + SEG_OFF_HDRSIZE) != SEG_HDR_SIZE || !all_zero(p + 112, 12))
        return "segment-header";
    memcpy(h->anchor, p + SEG_OFF_ANCHOR, TRP_HASH_LEN);
    memcpy(h->base, p + SEG_OFF_BASE, SEQ_BYTES_MAX);
    return NULL;
}

int seg_scan_records(const uint8_t *map, uint64_t size, uint64_t max_count, uint64_t **offs,
                     size_t *offs_cap, seg_scan *out)
{
    memset(out, 0, sizeof *out);
    uint64_t off = SEG_HDR_SIZE;
    out->end = out->commit_end = off;
    while (out->count < max_count) {
        if (off >= size) {
            out->stop = NULL;
            return 0;
        }
        rec_view r;
        const char *bad = rec_check(map + off, size - off, out->count, &r);
        if (bad) {
            out->stop = bad;
            out->stop_off = off;
            /* Zeroed space to the end of the file is a clean end. */
            if (!strcmp(bad, "end")) {
                uint64_t i = off;
                while (i < size && map[i] == 0)
                    i++;
                if (i == size)
                    out->stop = NULL;
            }
            return 0;
        }
        if (offs) {
            if (out->count >= *offs_cap) {
                size_t cap = *offs_cap ? *offs_cap * 2 : 1024;
                uint64_t *n = realloc(*offs, cap * sizeof **offs);
                if (!n)
                    return -1;
                *offs = n;
                *offs_cap = cap;
            }
            (*offs)[out->count] = off;
        }
        out->count++;
        off += r.size;
        out->end = off;
        if (r.flags & REC_FLAG_COMMIT) {
            out->commit_count = out->count;
            out->commit_end = off;
        }
    }
    return 0;
}

bool seg_commit_after(const uint8_t *map, uint64_t size, uint64_t from, uint64_t *where)
{
    for (uint64_t off = (from + 7) & ~(uint64_t)7; off + REC_HDR_SIZE <= size; off += 8) {
        if (!(map[off + REC_OFF_FLAGS] & REC_FLAG_COMMIT))
            continue;
        if (rec_is_commit_header(map + off)) {
            if (where)
                *where = off;
            return true;
        }
    }
    return false;
}

void seg_name(char *out, size_t size, const mpz_t base, const char *ext)
{
    char digits[200];
    size_t n = mpz_sizeinbase(base, 10) + 2;
    assert(n <= sizeof digits);
    (void)n;
    mpz_get_str(digits, 10, base);
    int pad = SEG_NAME_DIGITS - (int)strlen(digits);
    if (pad < 0)
        pad = 0;
    snprintf(out, size, "%.*s%s%s", pad, "00000000000000000000", digits, ext);
}

bool seg_name_parse(const char *name, mpz_t base)
{
    size_t n = strlen(name), e = strlen(SEG_EXT);
    if (n < SEG_NAME_DIGITS + e || n > 190 || strcmp(name + n - e, SEG_EXT) != 0)
        return false;
    char digits[200];
    memcpy(digits, name, n - e);
    digits[n - e] = '\0';
    for (size_t i = 0; i < n - e; i++)
        if (digits[i] < '0' || digits[i] > '9')
            return false;
    return mpz_set_str(base, digits, 10) == 0;
}

void commit_encode(uint8_t p[COMMIT_SIZE], const uint8_t seq_field[SEQ_BYTES_MAX])
{
    memset(p, 0, COMMIT_SIZE);
    memcpy(p, COMMIT_MAGIC, 8);
    put_le32(p + 8, FMT_VERSION);
    memcpy(p + COMMIT_OFF_SEQ, seq_field, SEQ_BYTES_MAX);
    put_le32(p + COMMIT_OFF_CRC, trp_crc32c(0, p, COMMIT_OFF_CRC));
}

bool commit_decode(const uint8_t *p, size_t len, uint8_t seq_field[SEQ_BYTES_MAX])
{
    if (len < COMMIT_SIZE || memcmp(p, COMMIT_MAGIC, 8) != 0 ||
        get_le32(p + COMMIT_OFF_CRC) != trp_crc32c(0, p, COMMIT_OFF_CRC))
        return false;
    memcpy(seq_field, p + COMMIT_OFF_SEQ, SEQ_BYTES_MAX);
    return true;
}

/* The marker file: TRP_OK, TRP_ENOENT (absent) or TRP_EFORMAT. */
int marker_check(int dirfd, const char *dir, trp_err *err)
{
    int fd = openat(dirfd, MARKER_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return TRP_ENOENT;
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s", dir, MARKER_NAME);
    }
    char b[64];
    ssize_t n = pread(fd, b, sizeof b - 1, 0);
    close(fd);
    if (n < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s/%s", dir, MARKER_NAME);
    b[n] = '\0';
    unsigned long version = 0;
    char *end = NULL;
    if (strncmp(b, "trp-log ", 8) == 0)
        version = strtoul(b + 8, &end, 10);
    if (!end || end == b + 8 || *end != '\n')
        return trp_err_set(err, TRP_EFORMAT, "%s: not a trp log (%s is not a trp-log marker)", dir,
                           MARKER_NAME);
    if (version != FMT_VERSION)
        return trp_err_set(err, TRP_EFORMAT,
                           "%s: unsupported format version %lu (this trp reads %d)", dir, version,
                           FMT_VERSION);
    return TRP_OK;
}
