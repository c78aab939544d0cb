/*
 * trp_raft.h: the Raft consensus core, a pure state machine.
 *
 * The one idea: trp_raft does no I/O of its own. The caller feeds it inputs
 * (trp_raft_tick with the time, trp_raft_step with a decoded message,
 * trp_raft_persisted when the log became durable, trp_raft_propose and
 * trp_raft_read from clients) and drains its outputs with trp_raft_ready_take
 * / trp_raft_advance: the hard state (term, vote) to persist, messages to
 * send, whether the log needs a sync, the commit seq, and client replies.
 * The rule that keeps votes safe: the caller persists the ready's hard state
 * BEFORE it sends the ready's messages. Randomness and the chain hash come
 * from the injected environment; the log is reached through
 * trp_raft_storage (reads and buffered appends, synchronous; syncs are the
 * caller's, reported back with trp_raft_persisted). The same code runs in
 * trp-node and in the deterministic simulator (tests/sim).
 *
 * Seqs are GMP integers everywhere; terms and node ids are uint64 (ids >= 1).
 */
#ifndef TRP_RAFT_H
#define TRP_RAFT_H

#include "trp_base.h"

#include <gmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TRP_RAFT_HASH_LEN 32
#define TRP_RAFT_MAX_NODES 256

/* Entry types, identical to enum trp_entry_type in trp_log.h. */
#define TRP_RAFT_ENTRY_DATA 1
#define TRP_RAFT_ENTRY_NOOP 2

/* Defaults (documented in man/trp-raft.7). */
#define TRP_RAFT_ELECTION_TIMEOUT_MS 400 /* randomized in [t, 2t) */
#define TRP_RAFT_HEARTBEAT_MS 100
#define TRP_RAFT_MAX_MSG_BYTES (256u << 10)
#define TRP_RAFT_MAX_INFLIGHT_MSGS 32
#define TRP_RAFT_MAX_INFLIGHT_BYTES (8u << 20)
#define TRP_RAFT_BACKLOG_ENTRIES 256
#define TRP_RAFT_MAX_ENTRY (1u << 20)
#define TRP_RAFT_SESSION_MAX 4096
#define TRP_RAFT_SESSION_WINDOW 65536
#define TRP_RAFT_SESSION_WINDOW_BYTES (64ull << 20)
#define TRP_RAFT_MAX_PENDING 65536

/* ---- configuration ----------------------------------------------------- */

typedef struct trp_raft_node {
    uint64_t id;       /* >= 1, unique */
    const char *group; /* one of trp_raft_config.groups, or NULL without groups */
    uint32_t priority; /* 0 = none; higher wins elections among up-to-date nodes */
} trp_raft_node;

typedef struct trp_raft_config {
    uint64_t self;              /* this node's id; must be in nodes */
    const trp_raft_node *nodes; /* every voter, self included */
    size_t n_nodes;             /* 1..TRP_RAFT_MAX_NODES */
    const char *const *groups;  /* declared group names; NULL/0: plain majority */
    size_t n_groups;
    uint32_t election_timeout_ms;     /* 0 = default; the minimum election timeout */
    uint32_t election_timeout_max_ms; /* 0 = 2 x minimum; randomized in [min, max) */
    uint32_t heartbeat_ms;            /* 0 = default; must be < election_timeout_ms / 2 */
    uint32_t max_msg_bytes;           /* entry bytes per append message (>= 1 entry) */
    uint32_t max_inflight_msgs;       /* pipelined appends per follower */
    uint32_t max_inflight_trickle;    /* 0 = max_inflight_msgs; the pipeline's depth
                                         while fewer than TRP_RAFT_BACKLOG_ENTRIES
                                         entries wait for a follower: a trickle of
                                         proposals batches while these fly, a
                                         backlog streams through the whole depth */
    uint32_t max_inflight_bytes;      /* entry bytes in flight per follower */
    uint32_t max_entry;               /* largest payload accepted */
    uint32_t session_max;             /* clients remembered for exactly-once */
    uint32_t session_window;          /* entries scanned back to rebuild sessions */
    uint32_t max_pending;             /* proposals/reads waiting at once */
    bool spares;                      /* leader: mark spare followers (see
                                         trp_raft_spare) */
} trp_raft_config;

/* Fill every 0 field of cfg with its default. */
void trp_raft_config_defaults(trp_raft_config *cfg);
/* Refuse unsafe or inconsistent configurations (zero nodes, id 0, duplicate
 * ids, self not listed, unknown or empty groups, nodes outside every group,
 * bad timeouts) with TRP_ECONFIG and a message naming the node or group. */
int trp_raft_config_check(const trp_raft_config *cfg, trp_err *err);

/* ---- the storage the core reads and appends to -------------------------- */

typedef struct trp_raft_entry {
    uint64_t term;
    int type;                        /* TRP_RAFT_ENTRY_* */
    uint8_t hash[TRP_RAFT_HASH_LEN]; /* chain hash of this entry */
    const uint8_t *payload;          /* valid until the next storage call */
    size_t len;
} trp_raft_entry;

typedef struct trp_raft_storage {
    void *user;
    /* Stored entries are [first, next), unsynced appends included. */
    void (*bounds)(void *user, mpz_t first, mpz_t next);
    /* The hash before `first` (all zeros for a log that was never trimmed). */
    void (*anchor)(void *user, uint8_t out[TRP_RAFT_HASH_LEN]);
    /* Read the entry at seq, first <= seq < next. */
    int (*read)(void *user, const mpz_t seq, trp_raft_entry *e, trp_err *err);
    /* Buffered append at seq == next (not durable until the caller syncs).
     * e->hash is already computed; the storage may check it. */
    int (*append)(void *user, const mpz_t seq, const trp_raft_entry *e, trp_err *err);
    /* Remove every entry >= from, durably, before returning. */
    int (*truncate)(void *user, const mpz_t from, trp_err *err);
} trp_raft_storage;

/* The injected environment: randomness and the chain hash function
 * (trp_entry_hash from trp_log.h in production). */
typedef struct trp_raft_env {
    void *user;
    uint64_t (*rand)(void *user);
    void (*hash_entry)(uint8_t out[TRP_RAFT_HASH_LEN], const mpz_t seq, uint64_t term, int type,
                       const uint8_t prev[TRP_RAFT_HASH_LEN], const void *payload, size_t len);
} trp_raft_env;

/* What survived on disk: the persisted term and vote, and the persisted
 * commit watermark (entries below it are known committed; NULL = first). */
typedef struct trp_raft_restart {
    uint64_t term;
    uint64_t vote;
    const mpz_t *commit_next; /* may be NULL */
    /* The node lost its state (a disk replaced, a directory emptied): until
     * it holds every entry the cluster had committed when a leader of a term
     * with a commit of its own told it its commit (trp_raft_rejoining), it
     * votes only for rejoining candidates, and only those get votes from
     * others, where its vote could be the only overlap of two quorums (one
     * group of odd size). Ignored with one node. */
    bool rejoining;
} trp_raft_restart;

/* ---- messages (encoded by trp_raft_msg_encode) -------------------------- */

enum trp_raft_msg_type {
    TRP_RAFT_PREVOTE = 1,  /* term = proposed term; seq = log next; log_term; priority */
    TRP_RAFT_PREVOTE_RESP, /* term = proposed term (granted) or own term; granted */
    TRP_RAFT_VOTE,         /* as PREVOTE, term = candidate's term */
    TRP_RAFT_VOTE_RESP,
    TRP_RAFT_APPEND,         /* seq = first entry's seq; log_term/hash = prev; entries;
                                last_hash = hash of the last entry; commit */
    TRP_RAFT_APPEND_RESP,    /* success: seq = match next; reject: seq = rejected start, hint */
    TRP_RAFT_HEARTBEAT,      /* commit (clamped to the follower's match); ctx */
    TRP_RAFT_HEARTBEAT_RESP, /* ctx echoed */
    TRP_RAFT_PROPOSE,        /* forwarded client append: client, req, payload, if_head */
    TRP_RAFT_PROPOSE_RESP,   /* client, req, status, seq, hash, leader_hint */
    TRP_RAFT_READ,           /* forwarded ReadIndex: client, req */
    TRP_RAFT_READ_RESP,      /* client, req, status, seq = read index (commit next), leader_hint */
    TRP_RAFT_MSG_TYPE_MAX = TRP_RAFT_READ_RESP
};

typedef struct trp_raft_msg_entry {
    uint64_t term;
    int type;
    uint8_t *payload; /* owned by the message (malloc), or in its block */
    size_t len;
} trp_raft_msg_entry;

typedef struct trp_raft_msg {
    int type;
    uint64_t from, to, term;
    mpz_t seq;         /* meaning by type, see enum trp_raft_msg_type */
    mpz_t commit;      /* APPEND, HEARTBEAT */
    mpz_t hint;        /* APPEND_RESP when rejected: where the leader should retry */
    uint64_t log_term; /* PREVOTE/VOTE: last log term; APPEND: prev entry's term */
    uint32_t priority;
    bool flag; /* *VOTE_RESP: granted; APPEND_RESP: success; PROPOSE: has if_head;
                  PREVOTE, VOTE: the candidate is rejoining (trp_raft_rejoining);
                  APPEND, HEARTBEAT: the receiver is a spare (trp_raft_spare) */
    bool commit_current; /* APPEND: the sender's commit covers an entry of its
                            own term, so every entry committed before its term */
    uint8_t hash[TRP_RAFT_HASH_LEN];      /* APPEND: prev hash; PROPOSE: if_head;
                                             PROPOSE_RESP: the entry's hash */
    uint8_t last_hash[TRP_RAFT_HASH_LEN]; /* APPEND: hash of the last entry */
    uint64_t ctx;
    uint64_t client, req;
    int status; /* *_RESP to clients: enum trp_status */
    uint64_t leader_hint;
    trp_raft_msg_entry *entries; /* APPEND */
    size_t n_entries;
    uint8_t *block; /* APPEND: when set, every entry's payload points into
                       this one allocation (owned), and is not freed alone */
    uint8_t *payload; /* PROPOSE (owned) */
    size_t len;
} trp_raft_msg;

void trp_raft_msg_init(trp_raft_msg *m);
void trp_raft_msg_clear(trp_raft_msg *m); /* frees owned data; m can be reused after init */
const char *trp_raft_msg_type_name(int type);

/* Codec: version 1, compact binary, CRC32C-protected (see raft_codec.c).
 * Encode allocates *out (free with free()). Decode never trusts its input:
 * lengths and counts are bounded by the bytes present and by
 * TRP_RAFT_CODEC_MAX_*; anything malformed is TRP_EFORMAT / TRP_ECORRUPT. */
#define TRP_RAFT_CODEC_MAX_ENTRIES 65536
#define TRP_RAFT_CODEC_MAX_SEQ_BYTES 128
int trp_raft_msg_encode(const trp_raft_msg *m, uint8_t **out, size_t *len, trp_err *err);
int trp_raft_msg_decode(const uint8_t *buf, size_t len, trp_raft_msg *m, trp_err *err);

/* ---- client payload envelope --------------------------------------------
 * Every data entry proposed through Raft stores a 17-byte header before the
 * user's bytes: version (1 byte, = 1), client id (8 bytes big-endian),
 * request number (8 bytes big-endian). It is what lets a new leader rebuild
 * the exactly-once table from the log. Client id 0 means "no session". */
#define TRP_RAFT_ENVELOPE_LEN 17
#define TRP_RAFT_ENVELOPE_VERSION 1
void trp_raft_envelope_put(uint8_t out[TRP_RAFT_ENVELOPE_LEN], uint64_t client, uint64_t req);
/* 0 with client/req/user data on success; -1 if payload is no envelope. */
int trp_raft_envelope_get(const uint8_t *payload, size_t len, uint64_t *client, uint64_t *req,
                          const uint8_t **data, size_t *data_len);

/* ---- the core ----------------------------------------------------------- */

enum trp_raft_role {
    TRP_RAFT_FOLLOWER = 0,
    TRP_RAFT_PRECANDIDATE,
    TRP_RAFT_CANDIDATE,
    TRP_RAFT_LEADER,
};
const char *trp_raft_role_name(int role);

enum trp_raft_reply_kind { TRP_RAFT_REPLY_APPEND = 1, TRP_RAFT_REPLY_READ = 2 };

typedef struct trp_raft_reply {
    int kind; /* TRP_RAFT_REPLY_* */
    uint64_t client, req;
    int status;                      /* TRP_OK, TRP_EUNAVAIL (not leader / lost leadership:
                                        retry, at leader_hint if not 0), TRP_ECONFLICT,
                                        TRP_ETOOBIG, TRP_EINVAL (stale request number) */
    mpz_t seq;                       /* APPEND: the entry's seq; READ: commit next */
    uint8_t hash[TRP_RAFT_HASH_LEN]; /* APPEND: the entry's chain hash */
    uint64_t leader_hint;
} trp_raft_reply;

typedef struct trp_raft_ready {
    bool hard_state; /* persist (term, vote) durably BEFORE sending msgs */
    uint64_t term, vote;
    bool sync;           /* entries were appended: sync the log, then call
                            trp_raft_persisted with the durable next */
    bool commit_changed; /* commit_next moved: persist the watermark if wanted */
    mpz_t commit_next;   /* entries below are committed and durable here */
    trp_raft_msg *msgs;  /* to send, each to msgs[i].to */
    size_t n_msgs;
    trp_raft_reply *replies; /* to local clients */
    size_t n_replies;
} trp_raft_ready;

typedef struct trp_raft trp_raft;

/* Create a node from a checked config, its storage, environment and the
 * persisted state. Reads the log's bounds and head through storage. */
int trp_raft_new(trp_raft **out, const trp_raft_config *cfg, const trp_raft_storage *st,
                 const trp_raft_env *env, const trp_raft_restart *rs, uint64_t now_ms,
                 trp_err *err);
void trp_raft_free(trp_raft *r);

/* Inputs. Each may queue output; all return TRP_OK unless the node failed
 * (a storage error: then TRP_EIO etc. and the node is fail-stopped). */
int trp_raft_tick(trp_raft *r, uint64_t now_ms);
int trp_raft_step(trp_raft *r, const trp_raft_msg *m);
/* durable_next: entries below it are durable. It must come from a sync
 * that started after the core's last call of storage.truncate: a driver
 * that syncs in the background waits for (or forgets the result of) a
 * sync in flight before it truncates (trp-node's disk thread does). */
int trp_raft_persisted(trp_raft *r, const mpz_t durable_next);
/* Append payload (user bytes; the core adds the envelope). if_head: the
 * head hash the log must still have, or NULL. The answer comes as a reply. */
int trp_raft_propose(trp_raft *r, uint64_t client, uint64_t req, const void *payload, size_t len,
                     const uint8_t *if_head);
/* Linearizable read of the commit seq (ReadIndex). */
int trp_raft_read(trp_raft *r, uint64_t client, uint64_t req);

/* Outputs. */
bool trp_raft_has_ready(const trp_raft *r);
bool trp_raft_ready_needs_hard_state(const trp_raft *r);
void trp_raft_ready_take(trp_raft *r, trp_raft_ready *rd);
/* The caller persisted rd's hard state (if any) and is sending rd's msgs. */
void trp_raft_advance(trp_raft *r, trp_raft_ready *rd);

/* Introspection (the simulator and trp-node status). */
int trp_raft_role(const trp_raft *r);
uint64_t trp_raft_term(const trp_raft *r);
uint64_t trp_raft_leader(const trp_raft *r); /* 0 = unknown */
/* A follower whose leader counts a quorum without it (config.spares): the
 * leader waits for the healthy followers it needs, in config order, and
 * tells the others, in the flag of their appends and heartbeats, that
 * they are spares.
 * A spare may defer its syncs (trp-node batches them for spare_sync_ms):
 * it still acknowledges only what is durable, so only its acks are late. */
bool trp_raft_spare(const trp_raft *r);
uint64_t trp_raft_vote(const trp_raft *r);
/* Still rejoining after lost state (trp_raft_restart.rejoining): false
 * once its commit has reached a commit that a leader, with a commit in its
 * own term, sent it. The caller may then forget that the node lost its
 * state (trp-node removes its rejoining file). */
bool trp_raft_rejoining(const trp_raft *r);
uint64_t trp_raft_id(const trp_raft *r);
/* Entries below it are committed (a leader's may pass its own durable log). */
void trp_raft_commit_next(const trp_raft *r, mpz_t out);
void trp_raft_log_next(const trp_raft *r, mpz_t out);
const uint8_t *trp_raft_head_hash(const trp_raft *r);
bool trp_raft_failed(const trp_raft *r, trp_err *err);

/* Quorum test exposed for tests: members[i] says whether config node i is
 * in the set. */
bool trp_raft_config_quorum(const trp_raft_config *cfg, const bool *members);

#ifdef __cplusplus
}
#endif
#endif
