/*
 * logfmt.h: the on-disk format of a trp log directory, shared by the store
 * (log.c) and the verifier (verify.c). man/trp-log.5 is the prose version
 * of this file; keep the two in step (test_format checks the page's example).
 *
 * The one idea: every structure on disk is fixed-layout, little-endian,
 * 8-byte aligned and CRC32C-protected, and a record whose first 8 bytes are
 * zero is "nothing written here yet", so zeroed space after the end reads as
 * the end of the log.
 */
#ifndef TRP_LOGFMT_H
#define TRP_LOGFMT_H

#include "hash.h"
#include "trp_log.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define FMT_VERSION 1
#define MARKER_NAME "trp-log" /* "trp-log <version>\n" */
#define LOCK_NAME "lock"      /* flock()ed by the writer; holds its pid */
#define COMMIT_NAME "commit"  /* the commit watermark */
#define META_NAME "meta"      /* Raft term and vote */
#define META_TMP_NAME "meta.tmp"
#define SEG_EXT ".seg"
#define IDX_EXT ".idx"
#define SEG_NAME_DIGITS 20 /* base seq, zero-padded to at least this */

/* Segment header: 128 bytes at offset 0 of every .seg file. */
#define SEG_HDR_SIZE 128
#define SEG_MAGIC "TRPSEG\0\0"
#define SEG_OFF_MAGIC 0    /* 8 bytes */
#define SEG_OFF_VERSION 8  /* u32 */
#define SEG_OFF_HDRSIZE 12 /* u32 = 128 */
#define SEG_OFF_ANCHOR 16  /* 32: hash of entry base-1, zeros for genesis */
#define SEG_OFF_BASE 48    /* 64: base seq, big-endian */
#define SEG_OFF_CRC 124    /* u32: CRC32C of bytes [0, 124) */

/* Record: 64-byte header, payload, zero padding to a multiple of 8. */
#define REC_HDR_SIZE 64
#define REC_OFF_HCRC 0   /* u32: CRC32C of bytes [4, 64) */
#define REC_OFF_TYPE 4   /* u8: 1..4; 0 means unwritten space */
#define REC_OFF_FLAGS 5  /* u8: bit 0 = COMMIT (last record of a synced batch) */
#define REC_OFF_RSVD 6   /* u16: 0 */
#define REC_OFF_SEQOFF 8 /* u64: seq - segment base */
#define REC_OFF_TERM 16  /* u64 */
#define REC_OFF_LEN 24   /* u32: payload length */
#define REC_OFF_PCRC 28  /* u32: CRC32C of the payload */
#define REC_OFF_PREV 32  /* 32: hash of the previous entry */
#define REC_FLAG_COMMIT 0x01

/* Commit watermark file: 128 bytes. */
#define COMMIT_SIZE 128
#define COMMIT_MAGIC "TRPCMT\0\0"
#define COMMIT_OFF_SEQ 16 /* 64: commit_next, big-endian */
#define COMMIT_OFF_CRC 124

/* Meta file: 64 bytes. */
#define META_SIZE 64
#define META_MAGIC "TRPMETA\0"
#define META_OFF_TERM 16
#define META_OFF_VOTE 24
#define META_OFF_CRC 60

static inline uint64_t rec_size(uint64_t len)
{
    return REC_HDR_SIZE + ((len + 7) & ~(uint64_t)7);
}

static inline uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}
static inline void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

/* A decoded record header (pointers into the mapped record). */
typedef struct rec_view {
    int type;
    int flags;
    uint64_t seq_off;
    uint64_t term;
    uint32_t len;
    const uint8_t *prev;
    const uint8_t *payload;
    uint64_t size; /* header + payload + padding */
} rec_view;

/* Check the record at p (avail bytes readable) that should be entry
 * expect_off of its segment. Returns NULL when valid, else a short kind:
 * "end" (zero header: nothing written), "truncated", "header-crc", "type",
 * "seq", "payload-crc", "padding". */
const char *rec_check(const uint8_t *p, uint64_t avail, uint64_t expect_off, rec_view *out);
/* Encode a record header (payload already in place after it). */
void rec_encode(uint8_t *p, int type, int flags, uint64_t seq_off, uint64_t term,
                const uint8_t prev[TRP_HASH_LEN], const void *payload, uint32_t len);
/* Set flags on an encoded header and fix its CRC. */
void rec_set_flags(uint8_t *p, int flags);
/* True if p holds a valid record header with the COMMIT flag (CRC only). */
bool rec_is_commit_header(const uint8_t *p);

typedef struct seg_hdr {
    uint8_t anchor[TRP_HASH_LEN];
    uint8_t base[SEQ_BYTES_MAX];
} seg_hdr;

void seg_hdr_encode(uint8_t p[SEG_HDR_SIZE], const seg_hdr *h);
/* NULL when valid, else a short kind ("segment-header", "version", ...);
 * *version gets the version field when the magic matched. */
const char *seg_hdr_decode(const uint8_t *p, uint64_t avail, seg_hdr *h, uint32_t *version);

/* What a scan of one segment found (records checked by CRC, not hash). */
typedef struct seg_scan {
    uint64_t count;        /* valid records from the start */
    uint64_t end;          /* offset just after them */
    uint64_t commit_count; /* records up to and including the last COMMIT one */
    uint64_t commit_end;
    const char *stop; /* NULL: reached the end of the file cleanly */
    uint64_t stop_off;
} seg_scan;

/* Walk the records of a mapped segment from the header on, appending each
 * record's offset to *offs (grown with realloc; may be NULL to skip),
 * stopping at max_count records or the first invalid one. Returns -1 only
 * when memory runs out. */
int seg_scan_records(const uint8_t *map, uint64_t size, uint64_t max_count, uint64_t **offs,
                     size_t *offs_cap, seg_scan *out);
/* Is there a valid COMMIT record header at an 8-aligned offset >= from?
 * (A damaged record followed by one means synced data was damaged.) */
bool seg_commit_after(const uint8_t *map, uint64_t size, uint64_t from, uint64_t *where);

/* Segment file name: base zero-padded to 20 digits + ext. */
void seg_name(char *out, size_t size, const mpz_t base, const char *ext);
/* If name is "<digits>.seg" (at least 20 digits), set base and return true. */
bool seg_name_parse(const char *name, mpz_t base);

/* Commit watermark file contents. */
void commit_encode(uint8_t p[COMMIT_SIZE], const uint8_t seq_field[SEQ_BYTES_MAX]);
bool commit_decode(const uint8_t *p, size_t len, uint8_t seq_field[SEQ_BYTES_MAX]);

/* The marker file in an open directory: TRP_OK, TRP_ENOENT (absent; err
 * untouched), TRP_EFORMAT (not a trp log / newer version) or TRP_EIO. */
int marker_check(int dirfd, const char *dir, trp_err *err);

#endif
