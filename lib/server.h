/*
 * server.h: internals of trp-node's daemon shared by server.c (the loop and
 * the core), server_disk.c (the storage adapter and the disk thread) and
 * server_client.c (the client protocol service and status).
 */
#ifndef SERVER_H
#define SERVER_H

#include "idmap.h"
#include "trp_client.h"
#include "trp_config.h"
#include "trp_log.h"
#include "trp_raft.h"
#include "trp_server.h"
#include "trp_udp.h"
#include "trp_wire.h"

#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#define SERVER_STREAMS_MAX 1024
#define SERVER_STREAM_IDLE_MS 10000
#define SERVER_READ_MSG_BYTES (48u << 10)
#define SERVER_ADDRS_MAX 1024 /* clients we remember an address for */
#define SERVER_RECV_BATCH 256

/* A client we can answer: its id and the address it last wrote from. */
struct peer_addr {
    uint64_t id;
    struct sockaddr_storage addr;
    socklen_t len;
    uint64_t seen_ms;
};

/* A read stream (trp-tail): committed entries in [next, until). */
struct stream {
    uint64_t client, id;
    mpz_t next, until;
    uint64_t seen_ms;
    bool used;
    bool waiting; /* a tail counted back from next, once our commit reaches it */
    uint64_t back;
};

/* A recently appended entry, kept so that replication and replies do not
 * read it back from the store (a read re-checks and re-hashes it). */
struct cached {
    uint64_t term;
    int type;
    uint8_t hash[TRP_HASH_LEN];
    size_t off, len; /* payload at bytes + off */
    size_t span;     /* len plus the unused end of the ring skipped before it */
};
#define SERVER_CACHE_ENTRIES 65536
#define SERVER_CACHE_BYTES (64u << 20)
#define SERVER_CACHE_FIRST_BYTES (1u << 20)

/* The disk thread's mailbox, under mu. */
struct disk {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* work for the disk thread */
    pthread_cond_t done_cv; /* work done (for a loop thread that must wait) */
    bool stop;
    bool meta_req, meta_done;
    trp_meta meta;
    int meta_rc;
    trp_err meta_err;
    bool batch_req, batch_done;
    trp_log_batch batch;
    int batch_rc;
};

struct trp_server {
    trp_server_options opts;
    trp_config *cfg;
    uint64_t self;
    uint8_t key[TRP_KEY_LEN];
    trp_log *log;
    trp_raft *raft;
    trp_wire *wire;
    trp_udp *udp;
    trp_loop *loop;
    uint64_t *ids;
    trp_raft_node *rnodes;
    uint64_t rng;
    trp_err fatal;
    bool failed, stopping;
    bool rejoining; /* lost its state: the core neither votes nor runs yet */
    int tick_timer, expire_timer, spare_timer;

    /* storage adapter */
    trp_entry e;
    struct cached *cache; /* ring of the newest entries (see server_disk.c) */
    size_t cache_head, cache_count;
    uint8_t *cache_ring; /* their payloads, in the same order */
    size_t ring_cap, ring_start, ring_used;
    mpz_t cache_base; /* seq of the oldest cached entry */
    mpz_t cache_tmp;
    bool persisted_pending; /* report persisted_next to the core */
    mpz_t persisted_next;

    /* disk */
    struct disk d;
    bool batch_inflight, sync_wanted;
    size_t unpumped; /* message bytes taken in since the last server_pump */
    uint64_t spare_since_ms; /* a spare's first deferred sync (0: none; server_disk.c) */
    bool holding; /* a ready waits for its term/vote to be durable */
    trp_raft_ready held;

    /* what the last state line said */
    int last_role;
    uint64_t last_term, last_leader;
    mpz_t commit; /* committed and durable here */

    /* clients */
    struct peer_addr *clients;
    size_t n_clients, cap_clients;
    idmap client_index; /* client id -> index in clients */
    struct stream *streams;
    size_t n_streams;
    trp_cmsg cm;
    trp_cbuf out;
    /* which client (wire id) a session's replies go to */
    uint64_t *smap_keys, *smap_vals;
    size_t smap_cap, smap_n;
};

/* server.c */
void server_log(trp_server *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void server_fail(trp_server *s, const trp_err *err);
void server_pump(trp_server *s);
void server_send_client(trp_server *s, uint64_t client, const void *msg, size_t len);

/* server_disk.c */
int server_disk_open(trp_server *s, trp_err *err);
void server_disk_close(trp_server *s);
void server_storage(trp_server *s, trp_raft_storage *st);
/* The cache of the newest entries: put keeps seq (the entry after the
 * newest cached, or the cache restarts at seq); get finds a cached entry
 * (its payload stays valid until the next put or cut); cut forgets the
 * entries >= from. */
void server_cache_put(trp_server *s, const mpz_t seq, const trp_raft_entry *e);
bool server_cache_get(trp_server *s, const mpz_t seq, trp_raft_entry *e);
void server_cache_cut(trp_server *s, const mpz_t from);
void server_cache_free(trp_server *s);
void server_disk_post_meta(trp_server *s, uint64_t term, uint64_t vote);
void server_disk_kick(trp_server *s);
/* On the loop's wake: take finished disk work. Sets *meta_done. */
void server_disk_collect(trp_server *s, bool *meta_done, int *meta_rc, trp_err *meta_err);

/* server_client.c */
void server_client_message(trp_server *s, uint64_t from, const struct sockaddr *addr,
                           socklen_t alen, const uint8_t *msg, size_t len);
void server_client_replies(trp_server *s, const trp_raft_reply *r, size_t n);
void server_client_commit(trp_server *s);
void server_client_expire(trp_server *s, uint64_t now_ms);
void server_client_free(trp_server *s);

#endif
