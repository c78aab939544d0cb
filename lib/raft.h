/*
 * raft.h: the inside of the consensus core, shared by lib/raft*.c.
 *
 * The one idea: struct trp_raft is the whole state of one node; each
 * raft_*.c file owns one part of the algorithm (election, replication,
 * quorum, client sessions) and names its functions after itself, as
 * canonical/raft does. Everything leaves the core through the outbox
 * (messages and client replies) drained by trp_raft_ready_take.
 */
#ifndef RAFT_H
#define RAFT_H

#include "idmap.h"
#include "trp_raft.h"

#include <assert.h>
#include <string.h>

enum { PROGRESS_PROBE = 0, PROGRESS_REPLICATE = 1 };

struct raft_peer {
    uint64_t id;
    int group; /* index into groups, -1 without groups */
    uint32_t priority;
    /* leader side (Raft §5.3 nextIndex/matchIndex; match is a "next") */
    mpz_t next;
    mpz_t match;         /* entries < match are durable on the peer and match ours */
    int progress;        /* PROGRESS_* */
    bool probe_sent;     /* PROBE: one append out, wait for its answer or a heartbeat */
    mpz_t *inflight_end; /* ring of in-flight appends: end (next) of each */
    uint32_t *inflight_bytes;
    size_t inflight_head, inflight_count;
    uint64_t inflight_bytes_total;
    uint64_t last_heard_ms; /* last response in this term (check-quorum) */
    uint64_t read_ctx;      /* highest heartbeat ctx echoed this term */
    bool granted;           /* granted our (pre)vote in this election */
    unsigned stall_ticks;   /* heartbeats without progress while behind */
    unsigned stall_limit;   /* ... after which appends count as lost (RAFT_STALL_*) */
    uint64_t window;        /* entry bytes in flight, and per message, at most: halved
                               when appends are lost, grown as they are acknowledged */
    unsigned idle_ticks;    /* heartbeats since its log was last checked while caught up */
    bool spare;             /* a quorum does not wait for it (replication_pick_spares) */
};

/* One client's recent requests: the RAFT_SESSION_REQS highest request
 * numbers stored in the log, with their seqs, so a client with several
 * requests in flight still gets exactly-once retries. */
#define RAFT_SESSION_REQS 64
struct raft_session {
    uint64_t client;
    size_t n;
    /* While request numbers have only grown (the usual case), req[] is a
     * ring from head in increasing order: the smallest is at head and a
     * new number above max_req is known not to be there. */
    bool sorted;
    size_t head;
    uint64_t max_req;
    uint64_t req[RAFT_SESSION_REQS];
    mpz_t seq[RAFT_SESSION_REQS];
    mpz_t last; /* newest seq of this client (which session to forget first) */
};

struct raft_waiter {
    int kind; /* TRP_RAFT_REPLY_* */
    uint64_t client, req;
    uint64_t origin;   /* node to answer (0 = local) */
    mpz_t seq;         /* APPEND: entry's seq; READ: read index */
    bool has_hash;     /* APPEND: hash holds the entry's hash (it was appended
                          for this waiter, in this term; a retry reads it) */
    uint8_t hash[TRP_RAFT_HASH_LEN];
    uint64_t read_id;  /* READ: heartbeat ctx that must be confirmed */
    bool read_started; /* READ: index taken (leader had a current-term commit) */
};

struct trp_raft {
    trp_raft_config cfg;
    trp_raft_node *nodes; /* copy of cfg.nodes */
    char **group_names;   /* copy of cfg.groups */
    int *group_size;
    trp_raft_storage st;
    trp_raft_env env;
    size_t n;                /* nodes */
    size_t self;             /* index of this node */
    struct raft_peer *peers; /* one per node, self included */

    int role;
    uint64_t term, vote, leader;
    uint64_t durable_term, durable_vote; /* what the caller has persisted */
    bool hard_state_dirty;

    /* the log as we see it */
    mpz_t first, next, durable_next;
    uint8_t anchor[TRP_RAFT_HASH_LEN];
    uint8_t head_hash[TRP_RAFT_HASH_LEN];
    uint64_t head_term;
    mpz_t commit_next;
    mpz_t verified_next; /* prefix known to match the current leader's log */
    mpz_t leader_commit; /* follower: highest commit the leader told us */
    bool ack_pending;    /* follower: an append ack waits for durability */
    mpz_t acked_next;    /* follower: the match of its last ack to this leader
                            (-1: none yet, with a new leader or term) */
    bool spare;          /* follower: the leader's last append called us a spare */
    bool rejoining;      /* lost its state: votes only with rejoining nodes (trp_raft_restart) */
    bool rejoin_target_set;
    mpz_t rejoin_target; /* a current leader's commit: reached, rejoining ends */
    bool sync_wanted;
    bool flush_wanted; /* leader: new entries wait to be sent (at the next ready) */
    bool commit_changed;

    /* time */
    uint64_t now_ms;
    uint64_t election_due_ms; /* follower/candidate: start an election */
    uint64_t yield_term;      /* we pre-voted for a node that outranks us, for this term, */
    uint64_t yield_until_ms;  /* ... this recently: let it run instead of us */
    uint64_t leader_heard_ms; /* last contact from a live leader (vote withholding) */
    bool leader_heard;
    uint64_t heartbeat_due_ms;
    uint64_t quorum_check_due_ms;

    /* leader */
    bool leader_can_read; /* commit is known current (ReadIndex allowed) */
    mpz_t term_start;     /* first seq appended in this leadership */
    uint64_t read_ctx;    /* last heartbeat ctx issued */

    /* clients */
    struct raft_session *sessions;
    size_t n_sessions, cap_sessions;
    size_t session_hint;         /* index of the session found last */
    idmap session_index;         /* client id -> index in sessions (idmap.h) */
    struct raft_waiter *waiters; /* reads (any order) */
    size_t n_waiters;
    struct raft_waiter *appends; /* appends, a ring in the order they were added */
    size_t appends_head, n_appends;
    uint8_t *entry_buf; /* a proposal's envelope and payload, reused */
    size_t entry_cap;

    /* outbox */
    trp_raft_msg *msgs;
    size_t n_msgs, cap_msgs;
    trp_raft_reply *replies;
    size_t n_replies, cap_replies;

    bool failed;
    trp_err fail;

    /* scratch */
    mpz_t tmp, tmp2;
};

#define RAFT_OUTBOX_MAX 4096
/* Heartbeats between checks that an idle, caught-up follower still holds
 * the leader's end (20 x the default 50 ms: once a second). */
#define RAFT_IDLE_CHECK_TICKS 20
/* Flow control towards a follower on a slow link. A follower behind that
 * acknowledges nothing for RAFT_STALL_TICKS heartbeats is probed again
 * (appends were lost), and its window of bytes in flight is halved, down
 * to RAFT_MIN_WINDOW; once there, each further stall doubles the wait (up
 * to RAFT_STALL_TICKS_MAX), so one message that takes longer than that to
 * cross still gets across. Acknowledgements grow the window again by a
 * quarter of what they free, and shorten the wait by one heartbeat. A
 * probe carries at most RAFT_PROBE_BYTES of entries (none if the first is
 * larger): it is sent again every heartbeat until answered. */
#define RAFT_STALL_TICKS 3
#define RAFT_STALL_TICKS_MAX 32
#define RAFT_MIN_WINDOW (64u << 10)
#define RAFT_PROBE_BYTES 4096

/* raft.c */
trp_raft_msg *raft_msg_new(trp_raft *r, int type, uint64_t to);
void raft_reply(trp_raft *r, int kind, uint64_t origin, uint64_t client, uint64_t req, int status,
                const mpz_t seq, const uint8_t *hash);
int raft_fail(trp_raft *r, int code, const trp_err *err);
int raft_read_entry(trp_raft *r, const mpz_t seq, trp_raft_entry *e);
int raft_term_at(trp_raft *r, const mpz_t seq, uint64_t *term);
void raft_set_commit(trp_raft *r, const mpz_t commit);
uint64_t raft_random(trp_raft *r, uint64_t below);
void raft_reset_election_timer(trp_raft *r);
void raft_set_term(trp_raft *r, uint64_t term);
struct raft_peer *raft_peer_by_id(trp_raft *r, uint64_t id);

/* raft_quorum.c */
bool quorum_of(const trp_raft *r, const bool *members);
bool quorum_rejoin_may_vote(const trp_raft *r);
bool quorum_granted(const trp_raft *r);
bool quorum_heard_since(const trp_raft *r, uint64_t since_ms);
bool quorum_read_confirmed(const trp_raft *r, uint64_t ctx);
void quorum_commit_candidate(const trp_raft *r, mpz_t out);

/* raft_election.c */
void election_tick(trp_raft *r);
void election_start(trp_raft *r, bool pre_vote);
void election_become_follower(trp_raft *r, uint64_t term, uint64_t leader);
void election_receive_request(trp_raft *r, const trp_raft_msg *m);
void election_receive_response(trp_raft *r, const trp_raft_msg *m);
void election_tally(trp_raft *r);
bool election_withholding(const trp_raft *r);
bool election_log_up_to_date(const trp_raft *r, uint64_t last_term, const mpz_t log_next);

/* raft_replication.c */
void replication_become_leader(trp_raft *r);
int replication_leader_append(trp_raft *r, int type, const void *payload, size_t len, mpz_t seq_out,
                              uint8_t hash_out[TRP_RAFT_HASH_LEN]);
void replication_flush(trp_raft *r);
void replication_heartbeat(trp_raft *r, uint64_t ctx);
void replication_receive_append(trp_raft *r, const trp_raft_msg *m);
void replication_receive_append_resp(trp_raft *r, const trp_raft_msg *m);
void replication_receive_heartbeat(trp_raft *r, const trp_raft_msg *m);
void replication_receive_heartbeat_resp(trp_raft *r, const trp_raft_msg *m);
void replication_maybe_commit(trp_raft *r);
void replication_persisted(trp_raft *r);
void replication_tick(trp_raft *r);
void replication_reset_peer(trp_raft *r, struct raft_peer *p);
void replication_pick_spares(trp_raft *r);

/* raft_client.c */
int client_sessions_rebuild(trp_raft *r);
void client_session_note(trp_raft *r, const mpz_t seq, const uint8_t *payload, size_t len,
                         int type);
void client_sessions_truncated(trp_raft *r, const mpz_t from);
void client_receive(trp_raft *r, const trp_raft_msg *m);
void client_commit_advanced(trp_raft *r);
void client_read_confirmed(trp_raft *r);
void client_lost_leadership(trp_raft *r);
void client_leader_can_read(trp_raft *r);
int client_propose(trp_raft *r, uint64_t origin, uint64_t client, uint64_t req, const void *payload,
                   size_t len, const uint8_t *if_head);
int client_read(trp_raft *r, uint64_t origin, uint64_t client, uint64_t req);
void client_free(trp_raft *r);

#endif
