/*
 * trp_client.h: the client protocol of a trp cluster (append, read,
 * status, linearizable read index) and the client library the tools use.
 *
 * The one idea: a client is a sender outside the config (an id with
 * TRP_WIRE_CLIENT_BIT) holding the cluster key; its messages travel through
 * the same authenticated wire as Raft's, on the same port. Every append
 * carries a (session, request number) pair that the Raft core stores in
 * the entry's envelope, so a retry of the same pair is stored at most once,
 * whichever node it reaches. The library keeps a window of appends in
 * flight (several sessions, each with at most TRP_CLIENT_SESSION_WINDOW
 * consecutive request numbers open, which is what the core's session table
 * remembers) and hands results back in submission order. Reads are
 * streamed with credit: the node sends committed entries up to a seq the
 * client granted, and pushes new commits while credit remains.
 *
 * Codec (version 1, big-endian, every length bounded by the bytes present):
 *   header: version u8 = 1, type u8, id u64 (stream / request id)
 *   seq:    u8 n (<= 128), n bytes big-endian magnitude
 * See man/trp-node.8 (CLIENT PROTOCOL).
 */
#ifndef TRP_CLIENT_H
#define TRP_CLIENT_H

#include "trp_base.h"
#include "trp_log.h"

#include <gmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TRP_CLIENT_VERSION 1
#define TRP_CLIENT_SESSION_WINDOW 64 /* open request numbers per session (the core remembers 64)   \
                                      */
#define TRP_CLIENT_MAX_ITEMS 65536   /* entries per message */
#define TRP_CLIENT_MSG_TEXT_MAX 1024

/* A file in a log directory written by trp-node: data entries there carry
 * the 17-byte client envelope (trp_raft.h) before the user's bytes. */
#define TRP_NODE_MARKER_FILE "envelope"
#define TRP_NODE_MARKER_TEXT                                                                       \
    "trp-node 1\n"                                                                                 \
    "Data entries here begin with a 17-byte client envelope (see trp-log(5)).\n"
/* A file in a node's data directory while the node rejoins after losing its
 * state (it found the directory empty): it neither votes nor campaigns
 * until it has caught up with a leader (trp_raft_restart.rejoining). */
#define TRP_NODE_REJOIN_FILE "rejoining"
/* `trp-tail -n N` on a node's log counts data entries only (no-ops are
 * skipped) for N up to this; beyond it, every entry, so that a tail never
 * scans more than about this many entries (both modes alike). */
#define TRP_TAIL_SCAN_MAX 65536
/* 1 when dir holds that marker, 0 when not. */
int trp_dir_has_envelope(const char *dir);

enum trp_cmsg_type {
    TRP_CMSG_APPEND = 1,      /* flags (1: if_head), [if_head], items {session, req, data} */
    TRP_CMSG_APPEND_RESP = 2, /* leader_hint, items {session, req, status, seq, hash} */
    TRP_CMSG_READ = 3,        /* flags, from, back, until: stream id = header id */
    TRP_CMSG_ENTRIES = 4,     /* status, commit, first, entries | text when status != 0 */
    TRP_CMSG_STATUS = 5,
    TRP_CMSG_STATUS_RESP = 6, /* JSON text */
    TRP_CMSG_READINDEX = 7,
    TRP_CMSG_READINDEX_RESP = 8, /* status, leader_hint, seq = commit next */
};

#define TRP_CREAD_TAIL 1    /* start at max(first, commit - back) instead of from */
#define TRP_CREAD_RESTART 2 /* (re)start the stream at from / the tail */
#define TRP_CREAD_TAIL_AT 4 /* with TAIL: count back from `from` (a confirmed commit next),
                               once the node's own commit has reached it */
#define TRP_CREAD_CLOSE 8   /* the reader is done: forget the stream, send nothing more */

typedef struct trp_cmsg_item {
    uint64_t session, req;
    int status;                 /* APPEND_RESP */
    mpz_t seq;                  /* APPEND_RESP */
    uint8_t hash[TRP_HASH_LEN]; /* APPEND_RESP */
    const uint8_t *data;        /* APPEND: points into the decoded buffer */
    size_t len;
} trp_cmsg_item;

typedef struct trp_cmsg_entry {
    uint64_t term;
    int type;
    uint64_t session, req; /* from the envelope; 0 when none */
    uint8_t prev[TRP_HASH_LEN], hash[TRP_HASH_LEN];
    const uint8_t *data; /* the user's bytes (envelope removed) */
    size_t len;
} trp_cmsg_entry;

typedef struct trp_cmsg {
    int type;
    uint64_t id;
    int flags;
    int status;
    uint64_t leader_hint;
    bool has_if_head;
    uint8_t if_head[TRP_HASH_LEN];
    mpz_t seq;   /* READ: from; ENTRIES: commit; READINDEX_RESP: commit */
    mpz_t first; /* ENTRIES: seq of entries[0]; READ: until (exclusive) */
    uint64_t back;
    trp_cmsg_item *items;
    size_t n_items, cap_items;
    trp_cmsg_entry *entries;
    size_t n_entries, cap_entries;
    const char *text; /* STATUS_RESP JSON, ENTRIES error; points into the buffer */
    size_t text_len;
} trp_cmsg;

void trp_cmsg_init(trp_cmsg *m);
void trp_cmsg_clear(trp_cmsg *m);
void trp_cmsg_reset(trp_cmsg *m); /* empty the lists, keep the memory */
/* Decode never trusts its input: TRP_EFORMAT for anything malformed. The
 * message's pointers refer into buf, which must outlive its use. */
int trp_cmsg_decode(const uint8_t *buf, size_t len, trp_cmsg *m, trp_err *err);

/* A growable output buffer for encoding. */
struct trp_cbuf;

typedef struct trp_cbuf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} trp_cbuf;
void trp_cbuf_free(trp_cbuf *b);
void trp_cbuf_u8(trp_cbuf *b, uint8_t v);
void trp_cbuf_u32(trp_cbuf *b, uint32_t v);
void trp_cbuf_u64(trp_cbuf *b, uint64_t v);
void trp_cbuf_bytes(trp_cbuf *b, const void *p, size_t n);
void trp_cbuf_seq(trp_cbuf *b, const mpz_t seq);
void trp_cbuf_header(trp_cbuf *b, int type, uint64_t id);
void trp_cbuf_put_u32(trp_cbuf *b, size_t at, uint32_t v); /* patch a count */
/* Append the encoding of m to b (what trp_cmsg_decode reads back). */
int trp_cmsg_encode(const trp_cmsg *m, trp_cbuf *b);

/* ---- the client library --------------------------------------------------- */

typedef struct trp_client trp_client;

#define TRP_CLIENT_TIMEOUT_MS_DEFAULT 10000u

/* Load the config and key, open a socket. node: the node to talk to first
 * (0 = the first in the config); timeout_ms: how long without an answer
 * before an operation fails with TRP_EUNAVAIL (0 = default). */
int trp_client_open(trp_client **out, const char *config_path, uint64_t node, uint32_t timeout_ms,
                    trp_err *err);
void trp_client_close(trp_client *c);
int trp_client_fd(const trp_client *c);
uint32_t trp_client_max_entry(const trp_client *c);
/* The cluster's first seq (the config's start_seq), in decimal. */
const char *trp_client_start_seq(const trp_client *c);
/* Node ids of the config, in order. */
size_t trp_client_nodes(const trp_client *c, const uint64_t **ids);

/* Appends. submit copies data; returns TRP_OK, or TRP_EAGAIN-like TRP_ESTATE
 * when the window is full (pump first). Results come from pump, in
 * submission order, through cb: status TRP_OK with seq and hash,
 * TRP_ECONFLICT with seq = the head's next and hash = the head's hash,
 * TRP_ETOOBIG, or TRP_EINVAL. */
typedef void (*trp_client_append_cb)(void *arg, int status, const mpz_t seq,
                                     const uint8_t hash[TRP_HASH_LEN]);
bool trp_client_can_submit(const trp_client *c);
int trp_client_submit(trp_client *c, const void *data, size_t len, const uint8_t *if_head,
                      trp_err *err);
size_t trp_client_pending(const trp_client *c); /* submitted, not yet reported */
/* Send, receive (waiting at most wait_ms, -1: until something happens or a
 * retry is due), retransmit, report. TRP_EUNAVAIL when the oldest append has
 * had no answer for the timeout. */
int trp_client_pump(trp_client *c, int wait_ms, int extra_fd, trp_client_append_cb cb, void *arg,
                    trp_err *err);
/* Send what was submitted, without reading: for a caller that just pumped
 * and knows no answer can be waiting yet (one receive call fewer). */
void trp_client_flush(trp_client *c);

/* Status JSON of one node (malloc'd text; free it). */
int trp_client_status(trp_client *c, uint64_t node, char **json, trp_err *err);
/* Linearizable read index: the commit next confirmed by the leader. */
int trp_client_read_index(trp_client *c, mpz_t commit_next, trp_err *err);

/* Reading: start a stream at from (or the last `back` entries when from is
 * NULL), then take entries one by one. */
int trp_client_read_start(trp_client *c, const mpz_t from, uint64_t back, trp_err *err);
/* Or the last `back` entries before end (a read index from
 * trp_client_read_index): the node counts back from end, not from its own
 * commit, which may lag behind it. */
int trp_client_read_tail(trp_client *c, uint64_t back, const mpz_t end, trp_err *err);
/* 1: an entry in *e (valid until the next call); 0: caught up with the
 * node's commit (and, with !follow, the end); negative -status on error.
 * In follow mode it waits for new commits; watch_fd (or -1) ending
 * (POLLERR/POLLHUP: the reader of stdout went away) returns 0. until_commit:
 * without follow, go on at least until this commit next (linearizable). */
int trp_client_read_next(trp_client *c, bool follow, int watch_fd, const mpz_t until_commit,
                         trp_cmsg_entry *e, mpz_t seq, trp_err *err);

#ifdef __cplusplus
}
#endif
#endif
