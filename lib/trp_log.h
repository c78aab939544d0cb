/*
 * trp_log.h: sequence numbers, the hash chain and the segmented log store.
 *
 * The one idea: a log is a directory of append-only segment files. Every
 * entry has a seq (an unbounded integer, GMP mpz_t), a Raft term, a type and
 * a payload, and carries the SHA-256 hash of the entry before it, so the
 * whole log is one hash chain. Appends are buffered until trp_log_sync(),
 * which issues one fdatasync for the whole batch (group commit); after a
 * crash a batch is either all there or not at all. The exact byte format is
 * in man/trp-log.5.
 */
#ifndef TRP_LOG_H
#define TRP_LOG_H

#include "trp_base.h"

#include <gmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- sequence numbers -------------------------------------------------- */

/* Parse a non-negative decimal integer (no sign, no spaces, no leading '+').
 * Returns TRP_EINVAL with a message naming `what` on anything else. */
int trp_seq_parse(mpz_t out, const char *text, const char *what, trp_err *err);
/* Decimal text of seq into buf (size >= trp_seq_strlen(seq)); returns buf. */
char *trp_seq_str(char *buf, size_t size, const mpz_t seq);
size_t trp_seq_strlen(const mpz_t seq); /* digits + 1 for the NUL */

/* ---- hashes and checksums ---------------------------------------------- */

#define TRP_HASH_LEN 32
#define TRP_HASH_HEX_LEN 64

enum trp_entry_type {
    TRP_ENTRY_DATA = 1,       /* a user's entry */
    TRP_ENTRY_NOOP = 2,       /* a new leader's no-op */
    TRP_ENTRY_CONFIG = 3,     /* reserved: cluster configuration */
    TRP_ENTRY_CHECKPOINT = 4, /* reserved: signed checkpoint */
};
const char *trp_entry_type_name(int type); /* "data", "noop", ... */

/* CRC32C (Castagnoli), hardware instruction where the CPU has it. Pass 0 as
 * crc for a fresh checksum; chaining calls continues one. */
uint32_t trp_crc32c(uint32_t crc, const void *data, size_t len);

/* The chain hash of one entry: SHA-256 over a domain tag, seq, term, type,
 * the previous entry's hash and the payload (exact layout in trp-log.5). */
void trp_entry_hash(uint8_t out[TRP_HASH_LEN], const mpz_t seq, uint64_t term, int type,
                    const uint8_t prev[TRP_HASH_LEN], const void *payload, size_t len);

/* Lower-case hex, NUL-terminated (out has TRP_HASH_HEX_LEN + 1 bytes). */
void trp_hash_hex(char *out, const uint8_t hash[TRP_HASH_LEN]);
/* Parse 64 hex digits (either case). TRP_EINVAL naming `what` otherwise. */
int trp_hash_parse(uint8_t out[TRP_HASH_LEN], const char *hex, const char *what, trp_err *err);

/* ---- the log store ----------------------------------------------------- */

#define TRP_MAX_ENTRY_DEFAULT (1u << 20)            /* 1 MiB */
#define TRP_SEGMENT_BYTES_DEFAULT (64ull << 20)     /* 64 MiB */

typedef struct trp_log trp_log;

typedef struct trp_log_options {
    bool create;            /* create the log if the directory holds none */
    const char *start_seq;  /* decimal seq of the first entry of a new log; NULL = "0" */
    bool read_only;         /* a reader: no lock, no recovery writes, sees
                               only entries up to the commit watermark */
    uint64_t segment_bytes; /* roll size; 0 = TRP_SEGMENT_BYTES_DEFAULT */
    uint32_t max_entry;     /* largest payload; 0 = TRP_MAX_ENTRY_DEFAULT */
    bool manual_commit;     /* as trp_log_set_manual_commit(log, true) from the
                               start: open keeps the stored watermark instead
                               of setting it to the durable end (trp-node) */
} trp_log_options;

/* Open (and with create, make) the log in dir. A writer takes an exclusive
 * flock on the directory (TRP_ELOCKED naming the holder's pid otherwise),
 * cuts a torn tail after the last durable batch, rebuilds a missing or
 * damaged index of the open segment, and refuses corruption of synced data
 * with TRP_ECORRUPT naming file, offset and seq. Open reads only the newest
 * segment, so its cost does not grow with the log.
 * Errors: TRP_ENOENT (no such dir, or no log and !create), TRP_EFORMAT (not
 * a trp log, or a newer format version), TRP_EPERM, TRP_ELOCKED, TRP_ECORRUPT,
 * TRP_EIO. */
int trp_log_open(trp_log **out, const char *dir, const trp_log_options *opts, trp_err *err);
/* Flush nothing, release the lock and free. Unsynced appends are dropped. */
void trp_log_close(trp_log *log);

/* The state of the log as this handle sees it.
 *   first: seq of the oldest entry still stored (after trims)
 *   next:  seq the next append gets; the log is empty when first == next
 *   head hash: hash of entry next-1, or the anchor (the prev of `first`)
 *              when empty: all zeros for a log that was never trimmed.
 * For a writer these include unsynced appends; durable_next is what the
 * last trp_log_sync made durable. */
void trp_log_first(const trp_log *log, mpz_t out);
void trp_log_next(const trp_log *log, mpz_t out);
void trp_log_durable_next(const trp_log *log, mpz_t out);
bool trp_log_empty(const trp_log *log);
const uint8_t *trp_log_head_hash(const trp_log *log);
uint64_t trp_log_head_term(const trp_log *log); /* 0 when empty */
uint32_t trp_log_max_entry(const trp_log *log);
const char *trp_log_dir(const trp_log *log);

/* Append one entry at seq `next`, chained to the head. Buffered: it is not
 * durable, and not visible to readers, until trp_log_sync returns.
 * If hash_out is not NULL it receives the new entry's hash.
 * TRP_ETOOBIG for a payload over max_entry; TRP_EINVAL for an unknown type. */
int trp_log_append(trp_log *log, uint64_t term, int type, const void *payload, size_t len,
                   uint8_t hash_out[TRP_HASH_LEN], trp_err *err);
/* The same, for a caller that has just computed the entry's hash with
 * trp_entry_hash over (the log's next seq, term, type, its head, payload),
 * as the Raft core does for every entry it creates or checks: the store
 * takes that hash instead of computing it a second time. A wrong hash
 * breaks the chain on disk, which trp_verify_dir reports. */
int trp_log_append_hashed(trp_log *log, uint64_t term, int type, const void *payload, size_t len,
                          const uint8_t hash[TRP_HASH_LEN], trp_err *err);
/* Make every append so far durable with one fdatasync (plus a directory
 * fsync if a segment was created), and mark the end of the batch so that a
 * crash keeps all of it or none. An fsync failure is fatal for the handle:
 * it returns TRP_EIO and every later call fails; close and reopen. */
int trp_log_sync(trp_log *log, trp_err *err);

/* Split sync (trp-node: fsync off the network thread). trp_log_write marks
 * the end of everything appended so far as a batch and write()s it without
 * syncing; trp_log_batch_fsync (safe on another thread: it uses only the
 * batch's duplicated descriptors) makes it durable; trp_log_mark_durable
 * (back on the handle's thread) records that, so durable_next becomes
 * batch->next. Appends may go on meanwhile; one batch in flight at a time,
 * and no trp_log_sync, truncate or trim until it is marked. An fsync
 * failure makes the handle unusable, as with trp_log_sync. */
typedef struct trp_log_batch {
    mpz_t next; /* durable_next once the batch is durable */
    bool empty; /* nothing to sync: mark_durable is a no-op */
    /* private */
    int fd, dir_fd;
    bool failed;
    int sys_errno;
    uint8_t head[TRP_HASH_LEN];
    uint64_t term;
    size_t nseg;
    uint64_t file_end, count;
} trp_log_batch;
void trp_log_batch_init(trp_log_batch *b);
void trp_log_batch_clear(trp_log_batch *b);
int trp_log_write(trp_log *log, trp_log_batch *b, trp_err *err);
int trp_log_batch_fsync(trp_log_batch *b, trp_err *err);
int trp_log_mark_durable(trp_log *log, trp_log_batch *b, trp_err *err);

/* Conditional append helper for `trp-append --if-prev`: TRP_ECONFLICT
 * (with the actual head hash in the message) unless head hash == expected. */
int trp_log_check_head(const trp_log *log, const uint8_t expected[TRP_HASH_LEN], trp_err *err);

/* remove: delete every entry with seq >= from (the original's remove()),
 * durably, before returning. from must be >= first. */
int trp_log_truncate(trp_log *log, const mpz_t from, trp_err *err);
/* trim: delete whole segments all of whose entries are < before, durably;
 * the next segment's header keeps the anchor hash, so the rest verifies.
 * Never deletes the segment holding the head. */
int trp_log_trim(trp_log *log, const mpz_t before, trp_err *err);

/* ---- reading ----------------------------------------------------------- */

typedef struct trp_entry {
    mpz_t seq;                  /* initialized by trp_entry_init */
    uint64_t term;
    int type;                   /* enum trp_entry_type */
    uint8_t prev[TRP_HASH_LEN]; /* hash of the entry before */
    uint8_t hash[TRP_HASH_LEN]; /* this entry's hash (computed on read) */
    const uint8_t *payload;     /* valid until the next read on the handle */
    size_t len;
} trp_entry;

void trp_entry_init(trp_entry *e);
void trp_entry_clear(trp_entry *e);

/* Read the entry at seq in O(1) through the index (CRC-checked; the hash is
 * recomputed). TRP_ERANGE if seq is outside [first, next). */
int trp_log_read(trp_log *log, const mpz_t seq, trp_entry *e, trp_err *err);

/* Forward iteration from a seq. The iterator sees entries up to the log's
 * visible end at each call (a reader: the commit watermark; refreshing it
 * is trp_log_refresh). trp_iter_next returns 1 with an entry, 0 at the end
 * (call again later to see more), or a negative -status on error. */
typedef struct trp_iter trp_iter;
int trp_iter_open(trp_iter **out, trp_log *log, const mpz_t from, trp_err *err);
int trp_iter_next(trp_iter *it, trp_entry *e, trp_err *err);
void trp_iter_close(trp_iter *it);
/* Whether trp_iter_next computes each entry's hash (default true). A
 * consumer that never looks at e->hash (trp-tail -o raw) turns it off:
 * SHA-256 is most of the cost of iterating small entries. Records are
 * still CRC-checked; e->hash is then all zeros. */
void trp_iter_set_hash(trp_iter *it, bool compute);

/* For a reader: pick up entries, segments and the commit watermark that a
 * writer has made visible since open. */
int trp_log_refresh(trp_log *log, trp_err *err);
/* What a reader can watch with inotify to be woken when the watermark
 * moves: the log's directory, which reports the writes to the "commit"
 * file (rewritten in place after each sync or set_commit) and to the
 * segments, and the commit file's creation or replacement (a log whose
 * commit file is missing shows what its COMMIT records say). */
const char *trp_log_watch_path(const trp_log *log);

/* The commit watermark: entries below it are committed (for a standalone
 * log, durable). A writer advances it itself on every trp_log_sync unless
 * trp_log_set_manual_commit(log, true) was called (trp-node does, and
 * calls trp_log_set_commit as Raft commits). Never goes back. */
void trp_log_set_manual_commit(trp_log *log, bool manual);
int trp_log_set_commit(trp_log *log, const mpz_t commit_next, trp_err *err);
void trp_log_commit_next(const trp_log *log, mpz_t out);

/* ---- metadata: Raft term and vote, replaced atomically ----------------- */

typedef struct trp_meta {
    uint64_t term;
    uint64_t vote; /* node id voted for in term; 0 = none */
} trp_meta;

int trp_log_meta_get(const trp_log *log, trp_meta *out);
/* write tmp + fsync + rename + fsync(dir); returns only once durable. */
int trp_log_meta_set(trp_log *log, const trp_meta *meta, trp_err *err);

/* ---- verification ------------------------------------------------------ */

typedef struct trp_verify_report {
    bool ok;
    int kind;                 /* status of the first failure (TRP_ECORRUPT...) */
    char problem[64];         /* short kind: "crc", "chain", "seq-gap", ... */
    char file[512];           /* where: file path, byte offset, seq */
    uint64_t offset;
    char seq[128];
    char message[TRP_ERR_MSG_MAX];
    /* summary (after a failure: what verified before it) */
    mpz_t first, next;        /* entries verified: [first, next) */
    uint8_t head[TRP_HASH_LEN];
    uint64_t entries;
    uint64_t bytes;           /* payload bytes */
    uint64_t segments;
} trp_verify_report;

void trp_verify_report_init(trp_verify_report *r);
void trp_verify_report_clear(trp_verify_report *r);

/* Check one log directory without trusting its index: segment headers,
 * every record's CRCs, seq continuity, every chain link (re-hashing every
 * entry), and that the index agrees. Takes no lock. Returns TRP_OK when the
 * directory could be read (the verdict is in r->ok), or an error status
 * (TRP_ENOENT, TRP_EFORMAT, TRP_EIO) when it could not. If anchor_seq is
 * not NULL, the entry at anchor_seq must have hash anchor_hash. */
int trp_verify_dir(const char *dir, const mpz_t anchor_seq, const uint8_t *anchor_hash,
                   trp_verify_report *r, trp_err *err);

/* Verify n replicas (each as trp_verify_dir, reports[i] for dirs[i]) and
 * check that they agree on their common prefix. Because each hash binds
 * the whole prefix before it, the first seq where they differ is found by
 * binary search over the overlap of their committed ranges.
 * Every directory gets its report, even after one fails: one that cannot
 * be read at all has ok false, kind its status (TRP_ENOENT, TRP_EFORMAT,
 * TRP_EIO...), problem that status's name, no file, and the error as its
 * message. Returns TRP_OK when every replica verifies and all agree; the
 * kind of the first failed report (err gets its message); TRP_ECORRUPT when
 * they diverge (diverge_seq gets the first differing seq in decimal, ""
 * otherwise; err names it); or another status (TRP_ENOMEM) when the check
 * itself could not be done. */
int trp_verify_agree(const char *const *dirs, size_t n, const mpz_t anchor_seq,
                     const uint8_t *anchor_hash, trp_verify_report *reports, char *diverge_seq,
                     size_t size, trp_err *err);

#ifdef __cplusplus
}
#endif
#endif
