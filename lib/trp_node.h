/*
 * trp_node.h: an embeddable Raft node in the style of tinyraft: give it an
 * id, the list of ids, a send callback, a log and options; then start,
 * stop, append, receive and tick. The transport is the caller's.
 *
 * The one idea: trp_node wraps the pure core (trp_raft.h) and does the
 * plumbing a caller would otherwise repeat: it persists term and vote
 * before any message leaves, syncs the log and reports it durable, encodes
 * and decodes messages (trp_raft_msg_encode), turns client replies into
 * callbacks, and queues anything that arrives while it is busy, so a
 * transport that calls trp_node_receive re-entrantly from inside a send
 * callback (three nodes in one process, direct calls) is safe.
 *
 * Appends through any node reach the leader (forwarded); each carries this
 * node's client id and a request number, so retrying the same append with
 * trp_node_append_retry never stores it twice.
 */
#ifndef TRP_NODE_H
#define TRP_NODE_H

#include "trp_raft.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The log a node writes to: the core's storage (reads, buffered appends,
 * durable truncation) plus sync and the metadata record. The integrator's
 * adapter over trp_log (trp_log_read/append/truncate/sync/durable_next,
 * trp_log_meta_get/set, trp_log_set_commit) fills this in. */
typedef struct trp_node_log {
    trp_raft_storage st;
    /* make every append durable; set durable_next to the log's durable end */
    int (*sync)(void *user, mpz_t durable_next, trp_err *err);
    /* the persisted term, vote and commit watermark (commit_next may be left
     * at the log's first seq when unknown) */
    int (*meta_get)(void *user, uint64_t *term, uint64_t *vote, mpz_t commit_next, trp_err *err);
    /* persist term and vote durably before returning */
    int (*meta_set)(void *user, uint64_t term, uint64_t vote, trp_err *err);
    /* optional (may be NULL): persist the commit watermark */
    int (*commit_set)(void *user, const mpz_t commit_next, trp_err *err);
} trp_node_log;

/* An in-memory log (tests, examples): entries from start_seq (decimal, NULL
 * = "0"). Everything is "durable" at once; it does not survive the process. */
int trp_node_memlog_new(trp_node_log **out, const char *start_seq, trp_err *err);
void trp_node_memlog_free(trp_node_log *log);

typedef struct trp_node_options {
    uint32_t election_timeout_ms; /* 0 = TRP_RAFT_ELECTION_TIMEOUT_MS */
    uint32_t heartbeat_ms;        /* 0 = TRP_RAFT_HEARTBEAT_MS */
    const uint32_t *priorities;   /* per id (parallel to ids), or NULL */
    const char *const *groups;    /* per id group name (parallel to ids), or NULL */
    uint64_t seed;                /* randomness; 0 = derived from the id */
    /* chain hash; NULL = trp_entry_hash (the log store's chain) */
    void (*hash_entry)(uint8_t out[TRP_RAFT_HASH_LEN], const mpz_t seq, uint64_t term, int type,
                       const uint8_t prev[TRP_RAFT_HASH_LEN], const void *payload, size_t len);
} trp_node_options;

typedef struct trp_node trp_node;

/* Called by the node to send bytes to node `to` (best effort, any order). */
typedef void (*trp_node_send_fn)(void *user, uint64_t to, const uint8_t *bytes, size_t len);
/* The outcome of an append: TRP_OK with its seq and chain hash, or
 * TRP_EUNAVAIL (no leader now: retry), TRP_ECONFLICT (head moved),
 * TRP_ETOOBIG, TRP_ESTATE (node stopped). seq/hash only valid with TRP_OK. */
typedef void (*trp_node_append_cb)(void *arg, int status, const mpz_t seq,
                                   const uint8_t hash[TRP_RAFT_HASH_LEN]);

/* A linearizable read: the commit next (entries below it are committed)
 * as confirmed by the leader with a quorum round (ReadIndex). */
typedef void (*trp_node_read_cb)(void *arg, int status, const mpz_t commit_next);

int trp_node_new(trp_node **out, uint64_t id, const uint64_t *ids, size_t n, trp_node_send_fn send,
                 void *user, trp_node_log *log, const trp_node_options *opts, trp_err *err);
void trp_node_free(trp_node *node); /* stops it first */

/* Read term, vote and log, and begin as a follower at time now_ms. */
int trp_node_start(trp_node *node, uint64_t now_ms, trp_err *err);
/* Stop: pending appends are answered TRP_ESTATE; start may be called again. */
void trp_node_stop(trp_node *node);

/* Drive time (call every few ms with a monotonic clock). */
int trp_node_tick(trp_node *node, uint64_t now_ms);
/* Bytes from node `from` (as the transport received them). */
int trp_node_receive(trp_node *node, uint64_t from, const void *bytes, size_t len);

/* Append data; cb is called exactly once. Returns the request number that
 * trp_node_append_retry takes (0 if cb was already called with an error). */
uint64_t trp_node_append(trp_node *node, const void *data, size_t len, trp_node_append_cb cb,
                         void *arg);
/* Only if the log's head hash is still if_head (conditional append). */
uint64_t trp_node_append_if(trp_node *node, const void *data, size_t len,
                            const uint8_t if_head[TRP_RAFT_HASH_LEN], trp_node_append_cb cb,
                            void *arg);
/* Retry request req after TRP_EUNAVAIL: stored at most once in all. */
int trp_node_append_retry(trp_node *node, uint64_t req, const void *data, size_t len,
                          trp_node_append_cb cb, void *arg);

/* For a server relaying other clients (trp-node): append on behalf of
 * client id `client` (not 0, not this node's own) with its request number;
 * retries with the same pair are stored at most once. */
int trp_node_append_as(trp_node *node, uint64_t client, uint64_t req, const void *data, size_t len,
                       const uint8_t *if_head, trp_node_append_cb cb, void *arg);
/* Linearizable read of the commit seq; cb is called exactly once. */
uint64_t trp_node_read(trp_node *node, trp_node_read_cb cb, void *arg);

bool trp_node_is_leader(const trp_node *node);
uint64_t trp_node_leader(const trp_node *node); /* 0 = none known */
uint64_t trp_node_term(const trp_node *node);
const uint8_t *trp_node_head(const trp_node *node); /* head hash of the local log */
void trp_node_commit_next(const trp_node *node, mpz_t out);
trp_raft *trp_node_raft(trp_node *node); /* the core, for status */

#ifdef __cplusplus
}
#endif
#endif
