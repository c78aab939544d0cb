/*
 * sim.c: a deterministic simulator for the Raft core (included, unity-build
 * style, by tests/tools/sim.c and tests/unit/test_sim_scenarios.c).
 *
 * The one idea: one process, one seeded PRNG (xoshiro256**), virtual time
 * in 1 ms steps. Nodes are real trp_raft cores over an in-memory disk that
 * keeps a durable prefix and a volatile tail (lost, partly kept or torn on
 * a crash; syncs take time and can stall). Every message between nodes
 * goes through the real codec as bytes, over a network that drops,
 * duplicates, delays, reorders, corrupts and partitions (also one way).
 * After EVERY step the invariants are checked; the first violation stops
 * the run with the seed and the command that replays it.
 *
 * Invariants: at most one leader per term; committed prefixes identical
 * (seq, term, hash) on every node; every acknowledged append present in
 * the committed log at its acknowledged seq with its hash, and no client
 * request stored twice; a conditional append only where the head was the
 * one named; a read index never below an append acknowledged before the
 * read began; commit and term never go back (also across restarts, for
 * the durable values); and once faults stop, a leader and a new commit
 * within SIM_LIVENESS_MS.
 */
#include "../rng.h"
#include "trp_log.h"
#include "trp_node.h"
#include "trp_raft.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_API static __attribute__((unused))
#define SIM_MAXN 7
#define SIM_MAXC 8
#define SIM_LIVENESS_MS 10000 /* stated bound: leader + new commit after faults stop */
#define SIM_CLIENT_TIMEOUT_MS 1500
#define SIM_IN_FLIGHT_MAX 200000

/* ---- PRNG ---------------------------------------------------------------- */

typedef struct {
    uint64_t s[4];
} sim_rng;

static void rng_seed(sim_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(sim_rng *r)
{
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

static uint64_t rng_below(sim_rng *r, uint64_t n)
{
    return n ? rng_next(r) % n : 0;
}
static bool rng_chance(sim_rng *r, double p)
{
    return (double)(rng_next(r) >> 11) / 9007199254740992.0 < p;
}
static uint64_t rng_range(sim_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + rng_below(r, hi - lo + 1);
}

/* ---- configuration -------------------------------------------------------- */

typedef struct sim_cfg {
    int n;
    int n_groups; /* 0 = plain majority */
    int group_of[SIM_MAXN];
    uint32_t priority[SIM_MAXN];
    uint32_t election_ms, heartbeat_ms, max_msg_bytes, max_inflight;
    uint32_t max_inflight_trickle; /* 0: max_inflight */
    uint32_t spare_ms; /* leaders mark spares, which defer syncs this long; 0: no spares */
    int base_kind; /* 0: seq 0, 1: 2^64-3, 2: 10^30 */
    double drop, dup, corrupt, stale;
    uint32_t delay_min, delay_max;
    uint32_t think_ms_max; /* client pause between requests */
    int client_depth;      /* requests in flight per client id (slots share an id) */
    uint32_t disk_ms_max;  /* sync latency */
    int n_clients;
    bool faults; /* random fault events during the fault phase */
    uint64_t fault_ms, heal_ms;
    bool real_disk;     /* the log store in a temporary directory (disk_real.c) */
    uint64_t seg_bytes; /* its segment size (small, so segments roll) */
} sim_cfg;

/* ---- the in-memory disk -------------------------------------------------- */

typedef struct sim_entry {
    uint64_t term;
    int type;
    uint8_t hash[TRP_RAFT_HASH_LEN];
    uint8_t *payload;
    size_t len;
} sim_entry;

struct sim;

typedef struct sim_node {
    struct sim *sim;
    int idx;
    uint64_t id;
    trp_raft *r;
    sim_rng rng;
    /* disk */
    sim_entry *e;
    size_t n, cap, durable; /* entries [0, durable) are durable */
    uint64_t hs_term, hs_vote;
    size_t commit; /* persisted commit watermark (count) */
    bool rejoining; /* lost its disk (sim_wipe) and has not caught up since */
    bool syncing, sync_again;
    size_t sync_target;
    uint64_t sync_done_ms;
    uint64_t stall_until;
    /* state */
    bool up;
    uint64_t down_until, paused_until;
    /* invariant memory */
    uint64_t seen_term;
    size_t seen_commit, checked;
    uint64_t incarnation;
    bool crash_pending;  /* crash at the end of the current persistence step */
    bool fail_appends;   /* the disk refuses writes (EIO) */
    uint64_t fail_until; /* then it works again and a supervisor restarts the node */
    /* real disk (disk_real.c): the store under the adapter, its directory */
    trp_node_log *nl;
    trp_log *log;
    char dir[300];
} sim_node;

typedef struct sim_msg {
    uint64_t at, order;
    int from, to;
    uint8_t *bytes;
    size_t len;
} sim_msg;

typedef struct sim_hist {
    uint64_t term;
    int type;
    uint8_t hash[TRP_RAFT_HASH_LEN];
    uint64_t client, req;
} sim_hist;

/* A client slot: one request at a time. Slots that share an id model one
 * client with several requests in flight (cfg.client_depth). */
typedef struct sim_client {
    uint64_t id, req;
    int lead; /* first slot of this client id: owns the request counter */
    uint64_t req_counter;
    bool busy, is_read, conditional;
    int target;
    uint64_t deadline, next_at;
    uint8_t if_head[TRP_RAFT_HASH_LEN];
    size_t read_floor;
    uint64_t acked;
    size_t last_seq; /* seq+1 of its last acknowledged append */
} sim_client;

typedef struct sim_stats {
    uint64_t msgs, dropped, duplicated, corrupted, rejected, cut, stale;
    uint64_t crashes, torn, pauses, stalls, partitions, oneway, nontransitive, flaps, heals;
    uint64_t disk_errors, fail_stops;
    uint64_t acks, conflicts, reads, elections, commits_end, truncations;
    uint64_t spare_syncs; /* syncs a spare deferred */
    uint64_t recovery_ms_max, recovery_ms_sum, recoveries, too_old;
    uint64_t sim_ms;
    uint64_t real_seeds, real_opens, real_kept, real_partial; /* real disk */
} sim_stats;

typedef struct sim {
    uint64_t seed;
    int trace;
    sim_rng rng;
    sim_cfg cfg;
    uint64_t now;
    trp_raft_node nodes_cfg[SIM_MAXN];
    const char *groups[3];
    mpz_t base, tmp;
    uint8_t anchor[TRP_RAFT_HASH_LEN];
    sim_node node[SIM_MAXN];
    /* network */
    sim_msg *heap;
    size_t heap_n, heap_cap;
    uint64_t order;
    bool link[SIM_MAXN][SIM_MAXN]; /* link[a][b]: a's messages reach b */
    uint64_t flap_until[SIM_MAXN][SIM_MAXN], flap_next[SIM_MAXN][SIM_MAXN];
    bool faults_on;
    uint64_t next_fault;
    /* clients and history */
    sim_client client[SIM_MAXC];
    sim_hist *hist;
    size_t hist_len, hist_cap;
    size_t **req_seq; /* per client: seq+1 of each stored req (0 = none) */
    size_t *req_cap;
    size_t acked_max; /* max acked seq + 1 */
    uint64_t *leader_of_term;
    size_t terms_cap;
    uint64_t last_commit_ms;
    bool failed;
    char why[1024];
    sim_stats st;
    uint64_t acks_by[SIM_MAXN]; /* successful append replies, per node */
    uint64_t persist_events;    /* appends, truncations, metadata writes, syncs */
    uint64_t crash_at_event;    /* crash the node at this persistence event */
    uint64_t crash_down_ms;
    char real_root[256]; /* real disk: the run's scratch directory */
} sim;

/* Count a persistence event; true when the node must crash right after it. */
static bool persist_point(sim *s, sim_node *nd)
{
    s->persist_events++;
    if (s->crash_at_event && s->persist_events == s->crash_at_event) {
        nd->crash_pending = true;
        return true;
    }
    return false;
}

static void sim_trace(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sim_trace(sim *s, const char *fmt, ...)
{
    if (!s->trace)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("%8" PRIu64 " ms  ", s->now);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static void sim_violation(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sim_violation(sim *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = true;
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(s->why, sizeof s->why, "t=%" PRIu64 " ms: ", s->now);
    vsnprintf(s->why + n, sizeof s->why - (size_t)n, fmt, ap);
    va_end(ap);
    if (s->trace)
        printf("VIOLATION %s\n", s->why);
}

/* ---- storage callbacks ---------------------------------------------------- */

static size_t seq_index(sim_node *nd, const mpz_t seq)
{
    mpz_sub(nd->sim->tmp, seq, nd->sim->base);
    assert(mpz_sgn(nd->sim->tmp) >= 0 && mpz_fits_ulong_p(nd->sim->tmp));
    return (size_t)mpz_get_ui(nd->sim->tmp);
}

static void st_bounds(void *u, mpz_t first, mpz_t next)
{
    sim_node *nd = u;
    mpz_set(first, nd->sim->base);
    mpz_add_ui(next, nd->sim->base, nd->n);
    if (nd->nl) { /* real disk: the store's answer, which must be the shadow's */
        mpz_t f, x;
        mpz_inits(f, x, NULL);
        nd->nl->st.bounds(nd->nl->st.user, f, x);
        if (mpz_cmp(f, first) || mpz_cmp(x, next))
            sim_violation(nd->sim, "node %" PRIu64 ": the store's bounds are not the log's",
                          nd->id);
        mpz_set(first, f);
        mpz_set(next, x);
        mpz_clears(f, x, NULL);
    }
}

static void st_anchor(void *u, uint8_t out[TRP_RAFT_HASH_LEN])
{
    sim_node *nd = u;
    memcpy(out, nd->sim->anchor, TRP_RAFT_HASH_LEN);
    if (nd->nl) {
        nd->nl->st.anchor(nd->nl->st.user, out);
        if (memcmp(out, nd->sim->anchor, TRP_RAFT_HASH_LEN))
            sim_violation(nd->sim, "node %" PRIu64 ": the store's anchor hash is wrong", nd->id);
    }
}

static int st_read(void *u, const mpz_t seq, trp_raft_entry *e, trp_err *err)
{
    sim_node *nd = u;
    size_t i = seq_index(nd, seq);
    if (i >= nd->n)
        return trp_err_set(err, TRP_ERANGE, "sim disk: read past the end");
    if (nd->nl) { /* real disk: read the store, check it against the shadow */
        int rc = nd->nl->st.read(nd->nl->st.user, seq, e, err);
        if (rc)
            sim_violation(nd->sim, "node %" PRIu64 ": the store cannot read entry %zu: %s",
                          nd->id, i, err ? err->msg : "");
        else if (e->term != nd->e[i].term || e->type != nd->e[i].type || e->len != nd->e[i].len ||
                 memcmp(e->hash, nd->e[i].hash, TRP_RAFT_HASH_LEN) ||
                 (e->len && memcmp(e->payload, nd->e[i].payload, e->len)))
            sim_violation(nd->sim, "node %" PRIu64 ": the store returns another entry %zu",
                          nd->id, i);
        return rc;
    }
    e->term = nd->e[i].term;
    e->type = nd->e[i].type;
    memcpy(e->hash, nd->e[i].hash, TRP_RAFT_HASH_LEN);
    e->payload = nd->e[i].payload;
    e->len = nd->e[i].len;
    return 0;
}

static int st_append(void *u, const mpz_t seq, const trp_raft_entry *e, trp_err *err)
{
    sim_node *nd = u;
    size_t i = seq_index(nd, seq);
    if (nd->fail_appends)
        return trp_err_set(err, TRP_EIO, "sim disk of node %" PRIu64 ": write failed", nd->id);
    if (i != nd->n) {
        sim_violation(nd->sim, "node %" PRIu64 ": append at %zu but log has %zu", nd->id, i, nd->n);
        return trp_err_set(err, TRP_EINVAL, "sim disk: append not at the end");
    }
    /* Check the chain right before it is written (TigerBeetle's pair). */
    const uint8_t *prev = i ? nd->e[i - 1].hash : nd->sim->anchor;
    uint8_t h[TRP_RAFT_HASH_LEN];
    trp_entry_hash(h, seq, e->term, e->type, prev, e->payload, e->len);
    if (memcmp(h, e->hash, TRP_RAFT_HASH_LEN))
        sim_violation(nd->sim, "node %" PRIu64 ": appended entry %zu does not extend the chain",
                      nd->id, i);
    if (nd->nl) {
        int rc = nd->nl->st.append(nd->nl->st.user, seq, e, err);
        if (rc) {
            sim_violation(nd->sim, "node %" PRIu64 ": the store refuses entry %zu: %s", nd->id, i,
                          err ? err->msg : "");
            return rc;
        }
    }
    if (nd->n == nd->cap) {
        nd->cap = nd->cap ? nd->cap * 2 : 64;
        nd->e = realloc(nd->e, nd->cap * sizeof *nd->e);
        if (!nd->e)
            abort();
    }
    sim_entry *se = &nd->e[nd->n++];
    se->term = e->term;
    se->type = e->type;
    memcpy(se->hash, e->hash, TRP_RAFT_HASH_LEN);
    se->len = e->len;
    se->payload = malloc(e->len ? e->len : 1);
    if (!se->payload)
        abort();
    if (e->len)
        memcpy(se->payload, e->payload, e->len);
    persist_point(nd->sim, nd);
    return 0;
}

static void disk_cut(sim_node *nd, size_t from)
{
    while (nd->n > from)
        free(nd->e[--nd->n].payload);
    if (nd->durable > from)
        nd->durable = from;
    if (nd->sync_target > from)
        nd->sync_target = from;
}

#include "disk_real.c"

static int st_truncate(void *u, const mpz_t from, trp_err *err)
{
    sim_node *nd = u;
    size_t i = seq_index(nd, from);
    if (i < nd->commit || i < nd->sim->hist_len) {
        /* Below the persisted commit, or below what the cluster committed
         * (if this node holds it, it is the committed entry). */
        bool committed_here = i < nd->commit;
        for (size_t k = i; !committed_here && k < nd->n && k < nd->sim->hist_len; k++)
            if (nd->e[k].term == nd->sim->hist[k].term &&
                !memcmp(nd->e[k].hash, nd->sim->hist[k].hash, TRP_RAFT_HASH_LEN))
                committed_here = true;
        if (committed_here)
            sim_violation(nd->sim, "node %" PRIu64 ": truncates a committed entry at %zu", nd->id,
                          i);
    }
    nd->sim->st.truncations++;
    sim_trace(nd->sim, "node %" PRIu64 " truncates its log from %zu (had %zu)", nd->id, i, nd->n);
    if (nd->nl) { /* the store syncs what is pending, then cuts, durably */
        int rc = nd->nl->st.truncate(nd->nl->st.user, from, err);
        if (rc) {
            sim_violation(nd->sim, "node %" PRIu64 ": the store cannot truncate at %zu: %s",
                          nd->id, i, err ? err->msg : "");
            return rc;
        }
    }
    disk_cut(nd, i);
    if (nd->nl)
        nd->durable = nd->n;
    persist_point(nd->sim, nd);
    (void)err;
    return 0;
}

static uint64_t env_rand(void *u)
{
    return rng_next(&((sim_node *)u)->rng);
}

/* ---- nodes ---------------------------------------------------------------- */

static void node_start(sim *s, sim_node *nd)
{
    trp_raft_config c = {0};
    c.self = nd->id;
    c.nodes = s->nodes_cfg;
    c.n_nodes = (size_t)s->cfg.n;
    c.groups = s->cfg.n_groups ? s->groups : NULL;
    c.n_groups = (size_t)s->cfg.n_groups;
    c.election_timeout_ms = s->cfg.election_ms;
    c.heartbeat_ms = s->cfg.heartbeat_ms;
    c.max_msg_bytes = s->cfg.max_msg_bytes;
    c.max_inflight_msgs = s->cfg.max_inflight;
    c.max_inflight_trickle = s->cfg.max_inflight_trickle;
    c.spares = s->cfg.spare_ms > 0;
    trp_raft_storage st = {nd, st_bounds, st_anchor, st_read, st_append, st_truncate};
    trp_raft_env env = {nd, env_rand, trp_entry_hash};
    mpz_t commit;
    mpz_init(commit);
    mpz_add_ui(commit, s->base, nd->commit);
    const mpz_t *cp = (const mpz_t *)&commit;
    trp_raft_restart rs = {nd->hs_term, nd->hs_vote, cp, nd->rejoining};
    trp_err err = {0};
    if (s->cfg.real_disk) { /* what the store kept (real_open checked it) */
        if (!nd->nl) {
            mpz_clear(commit);
            return;
        }
        nd->nl->meta_get(nd->nl->st.user, &rs.term, &rs.vote, commit, &err);
    }
    int rc = trp_raft_new(&nd->r, &c, &st, &env, &rs, s->now, &err);
    mpz_clear(commit);
    if (rc) {
        sim_violation(s, "node %" PRIu64 " cannot start: %s", nd->id, err.msg);
        return;
    }
    nd->up = true;
    nd->syncing = nd->sync_again = false;
    nd->incarnation++;
    /* Durable values never go back across a restart. */
    if (trp_raft_term(nd->r) < nd->hs_term)
        sim_violation(s,
                      "node %" PRIu64 " restarted at term %" PRIu64 " below its durable %" PRIu64,
                      nd->id, trp_raft_term(nd->r), nd->hs_term);
    nd->seen_term = trp_raft_term(nd->r);
    nd->seen_commit = nd->commit;
    nd->checked = 0;
}

static size_t node_commit(sim *s, sim_node *nd)
{
    trp_raft_commit_next(nd->r, s->tmp);
    mpz_sub(s->tmp, s->tmp, s->base);
    return (size_t)mpz_get_ui(s->tmp);
}

static void node_check_commit(sim *s, sim_node *nd);

/* A crash loses the volatile tail; some of it may have reached the disk
 * anyway (kept), and the last kept write may be torn (cut by recovery,
 * which re-checks the chain as the real store does). */
static void node_crash(sim *s, sim_node *nd, uint64_t down_ms)
{
    nd->crash_pending = false;
    if (!nd->up)
        return;
    node_check_commit(s, nd);
    trp_raft_free(nd->r);
    nd->r = NULL;
    nd->up = false;
    nd->down_until = s->now + down_ms;
    if (s->cfg.real_disk) {
        const char *how;
        size_t had = nd->n;
        real_crash(s, nd, &how);
        nd->syncing = false;
        nd->stall_until = 0;
        s->st.crashes++;
        sim_trace(s, "node %" PRIu64 " CRASHES (%s; the store recovered %zu of %zu entries), down %" PRIu64 " ms", nd->id,
                  how, nd->n, had, down_ms);
        return;
    }
    size_t keep = nd->durable + (size_t)rng_below(&s->rng, nd->n - nd->durable + 1);
    bool torn = keep > nd->durable && rng_chance(&s->rng, 0.5);
    if (torn) {
        sim_entry *e = &nd->e[keep - 1];
        if (e->len)
            e->payload[rng_below(&s->rng, e->len)] ^= 0x5a;
        else
            e->term ^= 1;
        s->st.torn++;
    }
    disk_cut(nd, keep);
    /* recovery: verify the chain of the non-durable part, cut at the first
     * entry that does not hash right */
    for (size_t i = nd->durable; i < nd->n; i++) {
        uint8_t h[TRP_RAFT_HASH_LEN];
        mpz_add_ui(s->tmp, s->base, i);
        trp_entry_hash(h, s->tmp, nd->e[i].term, nd->e[i].type,
                              i ? nd->e[i - 1].hash : s->anchor, nd->e[i].payload, nd->e[i].len);
        if (memcmp(h, nd->e[i].hash, TRP_RAFT_HASH_LEN)) {
            disk_cut(nd, i);
            break;
        }
    }
    nd->durable = nd->n;
    nd->syncing = false;
    nd->stall_until = 0;
    s->st.crashes++;
    sim_trace(s, "node %" PRIu64 " CRASHES (kept %zu entries%s), down %" PRIu64 " ms", nd->id,
              nd->n, torn ? ", torn tail" : "", down_ms);
}

static void net_send(sim *s, int from, int to, uint8_t *bytes, size_t len);

static sim_client *client_by_req(sim *s, uint64_t id, uint64_t req)
{
    for (int i = 0; i < s->cfg.n_clients; i++)
        if (s->client[i].id == id && s->client[i].req == req)
            return &s->client[i];
    return NULL;
}

static void client_reply(sim *s, sim_node *nd, const trp_raft_reply *rep);
static void node_check_commit(sim *s, sim_node *nd);

/* TRACE=2: one line per message sent, seqs relative to the log's base. */
static void trace_msg(sim *s, const trp_raft_msg *m)
{
    char detail[160] = "";
    mpz_sub(s->tmp, m->seq, s->base);
    long seq = mpz_get_si(s->tmp);
    mpz_sub(s->tmp, m->commit, s->base);
    long commit = mpz_get_si(s->tmp);
    switch (m->type) {
    case TRP_RAFT_PREVOTE:
    case TRP_RAFT_VOTE:
        snprintf(detail, sizeof detail, "log next %ld, last term %" PRIu64 ", priority %u", seq,
                 m->log_term, m->priority);
        break;
    case TRP_RAFT_PREVOTE_RESP:
    case TRP_RAFT_VOTE_RESP:
        snprintf(detail, sizeof detail, "%s", m->flag ? "granted" : "refused");
        break;
    case TRP_RAFT_APPEND:
        snprintf(detail, sizeof detail, "from %ld (prev term %" PRIu64 "), %zu entries, commit %ld",
                 seq, m->log_term, m->n_entries, commit);
        break;
    case TRP_RAFT_APPEND_RESP:
        mpz_sub(s->tmp, m->hint, s->base);
        if (m->flag)
            snprintf(detail, sizeof detail, "ok, match %ld", seq);
        else
            snprintf(detail, sizeof detail, "rejects start %ld, hint %ld", seq, mpz_get_si(s->tmp));
        break;
    case TRP_RAFT_HEARTBEAT:
        snprintf(detail, sizeof detail, "commit %ld, ctx %" PRIu64, commit, m->ctx);
        break;
    default:
        snprintf(detail, sizeof detail, "client %" PRIu64 " req %" PRIu64 " status %d", m->client,
                 m->req, m->status);
    }
    sim_trace(s, "  %" PRIu64 " -> %" PRIu64 " %s term %" PRIu64 ": %s", m->from, m->to,
              trp_raft_msg_type_name(m->type), m->term, detail);
}

/* A spare defers its sync (as trp-node does for spare_sync_ms). */
static uint64_t spare_delay(sim *s, const sim_node *nd)
{
    if (!s->cfg.spare_ms || !trp_raft_spare(nd->r))
        return 0;
    s->st.spare_syncs++;
    return s->cfg.spare_ms;
}

static void node_drain(sim *s, sim_node *nd)
{
    if (nd->up && nd->rejoining && !trp_raft_rejoining(nd->r))
        nd->rejoining = false; /* caught up: trp-node removes its file */
    for (int guard = 0; guard < 4 && nd->up && trp_raft_has_ready(nd->r); guard++) {
        if (trp_raft_ready_needs_hard_state(nd->r) && s->now < nd->stall_until)
            return; /* the metadata write waits for the stalled disk */
        trp_raft_ready rd;
        trp_raft_ready_take(nd->r, &rd);
        if (rd.hard_state) {
            if (rd.term < nd->hs_term)
                sim_violation(s, "node %" PRIu64 ": durable term goes back %" PRIu64 " -> %" PRIu64,
                              nd->id, nd->hs_term, rd.term);
            if (rd.term == nd->hs_term && nd->hs_vote && rd.vote != nd->hs_vote)
                sim_violation(s, "node %" PRIu64 ": votes twice in term %" PRIu64, nd->id, rd.term);
            nd->hs_term = rd.term;
            nd->hs_vote = rd.vote;
            trp_err err = {0};
            if (nd->nl && nd->nl->meta_set(nd->nl->st.user, rd.term, rd.vote, &err))
                sim_violation(s, "node %" PRIu64 ": the store cannot write term and vote: %s",
                              nd->id, err.msg);
            if (persist_point(s, nd)) { /* crash before any message leaves */
                trp_raft_advance(nd->r, &rd);
                node_crash(s, nd, s->crash_down_ms);
                return;
            }
        }
        if (rd.commit_changed) {
            mpz_sub(s->tmp, rd.commit_next, s->base);
            size_t c = (size_t)mpz_get_ui(s->tmp);
            if (c > nd->durable)
                sim_violation(s, "node %" PRIu64 ": commit %zu beyond durable %zu", nd->id, c,
                              nd->durable);
            if (c > nd->commit)
                nd->commit = c;
            trp_err err = {0};
            if (nd->nl && nd->nl->commit_set(nd->nl->st.user, rd.commit_next, &err))
                sim_violation(s, "node %" PRIu64 ": the store cannot write its watermark: %s",
                              nd->id, err.msg);
        }
        for (size_t i = 0; i < rd.n_msgs; i++) {
            uint8_t *buf;
            size_t len;
            trp_err err = {0};
            if (trp_raft_msg_encode(&rd.msgs[i], &buf, &len, &err)) {
                sim_violation(s, "encode failed: %s", err.msg);
                continue;
            }
            int to = -1;
            for (int k = 0; k < s->cfg.n; k++)
                if (s->node[k].id == rd.msgs[i].to)
                    to = k;
            if (s->trace > 1)
                trace_msg(s, &rd.msgs[i]);
            if (to < 0) {
                free(buf);
                continue;
            }
            net_send(s, nd->idx, to, buf, len);
        }
        for (size_t i = 0; i < rd.n_replies; i++)
            client_reply(s, nd, &rd.replies[i]);
        if (rd.sync) {
            if (nd->syncing) {
                nd->sync_again = true;
            } else {
                nd->syncing = true;
                nd->sync_target = nd->n;
                nd->sync_done_ms = s->now + spare_delay(s, nd) +
                                   rng_range(&s->rng, 0, s->cfg.disk_ms_max);
            }
        }
        trp_raft_advance(nd->r, &rd);
    }
}

static void node_disk_step(sim *s, sim_node *nd)
{
    if (!nd->up || !nd->syncing || s->now < nd->sync_done_ms || s->now < nd->stall_until)
        return;
    nd->syncing = false;
    if (nd->sync_target > nd->durable)
        nd->durable = nd->sync_target;
    if (nd->nl) { /* the store syncs everything appended so far */
        trp_err err = {0};
        if (nd->nl->sync(nd->nl->st.user, s->tmp, &err))
            sim_violation(s, "node %" PRIu64 ": the store cannot sync: %s", nd->id, err.msg);
        mpz_sub(s->tmp, s->tmp, s->base);
        nd->durable = (size_t)mpz_get_ui(s->tmp);
    }
    if (persist_point(s, nd)) { /* durable, but the node dies before it says so */
        node_crash(s, nd, s->crash_down_ms);
        return;
    }
    if (nd->sync_again) {
        nd->sync_again = false;
        nd->syncing = true;
        nd->sync_target = nd->n;
        nd->sync_done_ms =
            s->now + spare_delay(s, nd) + rng_range(&s->rng, 0, s->cfg.disk_ms_max);
    }
    mpz_add_ui(s->tmp, s->base, nd->durable);
    mpz_t d;
    mpz_init_set(d, s->tmp);
    trp_raft_persisted(nd->r, d);
    mpz_clear(d);
}

/* ---- network -------------------------------------------------------------- */

static bool msg_less(const sim_msg *a, const sim_msg *b)
{
    return a->at != b->at ? a->at < b->at : a->order < b->order;
}

static void heap_push(sim *s, sim_msg m)
{
    if (s->heap_n == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 256;
        s->heap = realloc(s->heap, s->heap_cap * sizeof *s->heap);
        if (!s->heap)
            abort();
    }
    size_t i = s->heap_n++;
    s->heap[i] = m;
    while (i && msg_less(&s->heap[i], &s->heap[(i - 1) / 2])) {
        sim_msg t = s->heap[i];
        s->heap[i] = s->heap[(i - 1) / 2];
        s->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static sim_msg heap_pop(sim *s)
{
    sim_msg top = s->heap[0];
    s->heap[0] = s->heap[--s->heap_n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->heap_n && msg_less(&s->heap[l], &s->heap[m]))
            m = l;
        if (r < s->heap_n && msg_less(&s->heap[r], &s->heap[m]))
            m = r;
        if (m == i)
            break;
        sim_msg t = s->heap[i];
        s->heap[i] = s->heap[m];
        s->heap[m] = t;
        i = m;
    }
    return top;
}

static bool link_up(sim *s, int from, int to)
{
    if (!s->link[from][to])
        return false;
    if (s->now < s->flap_until[from][to])
        return (s->now / s->flap_next[from][to]) % 2 == 0;
    return true;
}

static void net_send(sim *s, int from, int to, uint8_t *bytes, size_t len)
{
    s->st.msgs++;
    if (s->heap_n > SIM_IN_FLIGHT_MAX) { /* a message storm is a bug, not a schedule */
        sim_violation(s, "message storm: %zu messages in flight", s->heap_n);
        free(bytes);
        return;
    }
    if (!link_up(s, from, to)) {
        s->st.cut++;
        free(bytes);
        return;
    }
    if (s->faults_on && rng_chance(&s->rng, s->cfg.drop)) {
        s->st.dropped++;
        free(bytes);
        return;
    }
    int copies = s->faults_on && rng_chance(&s->rng, s->cfg.dup) ? 2 : 1;
    for (int c = 0; c < copies; c++) {
        sim_msg m = {.from = from, .to = to, .len = len, .order = s->order++};
        m.at = s->now + rng_range(&s->rng, s->cfg.delay_min, s->cfg.delay_max);
        if (s->faults_on && rng_chance(&s->rng, s->cfg.stale)) {
            m.at = s->now + rng_range(&s->rng, 100, 5000); /* a stale datagram, replayed late */
            s->st.stale++;
        }
        if (c) {
            m.bytes = malloc(len);
            if (!m.bytes)
                abort();
            memcpy(m.bytes, bytes, len);
            s->st.duplicated++;
        } else {
            m.bytes = bytes;
        }
        if (s->faults_on && rng_chance(&s->rng, s->cfg.corrupt)) {
            int flips = (int)rng_range(&s->rng, 1, 3);
            for (int f = 0; f < flips; f++)
                m.bytes[rng_below(&s->rng, len)] ^= (uint8_t)(1u << rng_below(&s->rng, 8));
            s->st.corrupted++;
        }
        heap_push(s, m);
    }
}

static void net_deliver(sim *s)
{
    trp_raft_msg m;
    trp_raft_msg_init(&m);
    for (int guard = 0; guard < 100000 && s->heap_n && s->heap[0].at <= s->now; guard++) {
        sim_msg sm = heap_pop(s);
        sim_node *nd = &s->node[sm.to];
        if (nd->up && s->now < nd->paused_until) {
            sm.at = nd->paused_until; /* queued in its socket buffer */
            heap_push(s, sm);
            continue;
        }
        if (!nd->up) {
            free(sm.bytes);
            continue;
        }
        trp_err err = {0};
        if (trp_raft_msg_decode(sm.bytes, sm.len, &m, &err)) {
            s->st.rejected++;
            free(sm.bytes);
            continue;
        }
        free(sm.bytes);
        trp_raft_step(nd->r, &m);
        node_drain(s, nd);
    }
    if (s->heap_n && s->heap[0].at <= s->now)
        sim_violation(s, "message storm: over 100000 deliveries in one millisecond");
    trp_raft_msg_clear(&m);
}

/* ---- clients -------------------------------------------------------------- */

static int pick_target(sim *s, uint64_t hint)
{
    for (int i = 0; i < s->cfg.n; i++)
        if (hint && s->node[i].id == hint)
            return i;
    return (int)rng_below(&s->rng, (uint64_t)s->cfg.n);
}

static void client_send(sim *s, sim_client *c)
{
    c->deadline = s->now + SIM_CLIENT_TIMEOUT_MS;
    sim_node *nd = &s->node[c->target];
    if (!nd->up || s->now < nd->paused_until)
        return; /* times out */
    if (c->is_read) {
        trp_raft_read(nd->r, c->id, c->req);
    } else {
        char payload[64];
        int len = snprintf(payload, sizeof payload, "c%" PRIu64 "r%" PRIu64, c->id, c->req);
        trp_raft_propose(nd->r, c->id, c->req, payload, (size_t)len,
                         c->conditional ? c->if_head : NULL);
    }
    node_drain(s, nd);
}

static void client_start(sim *s, sim_client *c)
{
    c->req = ++s->client[c->lead].req_counter;
    c->busy = true;
    uint64_t k = rng_below(&s->rng, 10);
    c->is_read = k == 0;
    c->conditional = k == 1 && s->hist_len > 0;
    if (c->conditional) /* name the head we last saw committed */
        memcpy(c->if_head, s->hist[s->hist_len - 1].hash, TRP_RAFT_HASH_LEN);
    c->read_floor = s->acked_max;
    c->target = pick_target(s, 0);
    client_send(s, c);
}

static void client_reply(sim *s, sim_node *nd, const trp_raft_reply *rep)
{
    sim_client *c = client_by_req(s, rep->client, rep->req);
    if (!c || !c->busy)
        return; /* a late answer to something already settled */
    if (rep->status == TRP_EUNAVAIL) {
        c->target = pick_target(s, rep->leader_hint);
        c->next_at = s->now + 20; /* retry shortly, same request number */
        c->deadline = UINT64_MAX;
        return;
    }
    c->busy = false;
    c->next_at = s->now + rng_range(&s->rng, 0, s->cfg.think_ms_max);
    mpz_sub(s->tmp, rep->seq, s->base);
    size_t seq = (size_t)mpz_get_ui(s->tmp);
    if (rep->kind == TRP_RAFT_REPLY_READ) {
        if (rep->status)
            return;
        s->st.reads++;
        if (seq < c->read_floor)
            sim_violation(s, "read index %zu is below an append acknowledged before the read (%zu)",
                          seq, c->read_floor);
        return;
    }
    if (rep->status == TRP_ECONFLICT) {
        s->st.conflicts++;
        return;
    }
    if (rep->status == TRP_EINVAL && s->cfg.client_depth > 1) {
        /* retried after 64 newer requests of the same client were stored:
         * the outcome cannot be told (documented bound); the history check
         * still proves it is stored at most once */
        s->st.too_old++;
        return;
    }
    if (rep->status) {
        sim_violation(s, "client %" PRIu64 " req %" PRIu64 ": unexpected status %s", c->id, c->req,
                      trp_status_name(rep->status));
        return;
    }
    s->st.acks++;
    s->acks_by[nd->idx]++;
    c->acked++;
    /* the reply follows the commit it reports (on whichever node) */
    for (int k = 0; k < s->cfg.n; k++)
        if (s->node[k].up)
            node_check_commit(s, &s->node[k]);
    sim_trace(s, "client %" PRIu64 " req %" PRIu64 " acknowledged at seq %zu by node %" PRIu64,
              c->id, c->req, seq, nd->id);
    if (seq >= s->hist_len) {
        sim_violation(s, "append acknowledged at %zu but only %zu entries are committed", seq,
                      s->hist_len);
        return;
    }
    sim_hist *h = &s->hist[seq];
    if (memcmp(h->hash, rep->hash, TRP_RAFT_HASH_LEN) || h->client != c->id || h->req != c->req)
        sim_violation(s,
                      "client %" PRIu64 " req %" PRIu64 " acknowledged at %zu, which holds "
                      "client %" PRIu64 " req %" PRIu64,
                      c->id, c->req, seq, h->client, h->req);
    if (c->conditional) {
        const uint8_t *prev = seq ? s->hist[seq - 1].hash : s->anchor;
        if (memcmp(prev, c->if_head, TRP_RAFT_HASH_LEN))
            sim_violation(s, "conditional append at %zu does not follow the head it named", seq);
    }
    if (s->cfg.client_depth <= 1 && seq + 1 <= c->last_seq)
        sim_violation(s,
                      "client %" PRIu64 ": req %" PRIu64 " acknowledged at %zu, before its "
                      "previous append at %zu",
                      c->id, c->req, seq, c->last_seq - 1);
    c->last_seq = seq + 1;
    if (seq + 1 > s->acked_max)
        s->acked_max = seq + 1;
}

static void clients_step(sim *s, bool workload)
{
    for (int i = 0; i < s->cfg.n_clients; i++) {
        sim_client *c = &s->client[i];
        if (c->busy && (s->now >= c->deadline || (c->next_at && s->now >= c->next_at))) {
            if (s->now >= c->deadline)
                c->target = pick_target(s, 0);
            c->next_at = 0;
            client_send(s, c); /* retry: same client id, same request number */
        } else if (!c->busy && workload && s->now >= c->next_at) {
            client_start(s, c);
        }
    }
}

/* ---- invariants ----------------------------------------------------------- */

static void note_history(sim *s, size_t i, const sim_entry *e)
{
    if (s->hist_len == s->hist_cap) {
        s->hist_cap = s->hist_cap ? s->hist_cap * 2 : 256;
        s->hist = realloc(s->hist, s->hist_cap * sizeof *s->hist);
        if (!s->hist)
            abort();
    }
    assert(i == s->hist_len);
    sim_hist *h = &s->hist[s->hist_len++];
    memset(h, 0, sizeof *h);
    h->term = e->term;
    h->type = e->type;
    memcpy(h->hash, e->hash, TRP_RAFT_HASH_LEN);
    if (e->type != TRP_RAFT_ENTRY_DATA ||
        trp_raft_envelope_get(e->payload, e->len, &h->client, &h->req, NULL, NULL) || !h->client)
        return;
    int ci = -1;
    for (int k = 0; k < s->cfg.n_clients; k++)
        if (s->client[k].id == h->client)
            ci = k;
    if (ci < 0)
        return;
    if (h->req >= s->req_cap[ci]) {
        size_t cap = h->req * 2 + 16;
        s->req_seq[ci] = realloc(s->req_seq[ci], cap * sizeof **s->req_seq);
        memset(s->req_seq[ci] + s->req_cap[ci], 0, (cap - s->req_cap[ci]) * sizeof **s->req_seq);
        s->req_cap[ci] = cap;
    }
    if (s->req_seq[ci][h->req])
        sim_violation(s, "client %" PRIu64 " req %" PRIu64 " stored twice: at %zu and %zu",
                      h->client, h->req, s->req_seq[ci][h->req] - 1, i);
    s->req_seq[ci][h->req] = i + 1;
}

/* Compare a node's newly committed entries with the cluster's history, or
 * extend the history with them. */
static void node_check_commit(sim *s, sim_node *nd)
{
    size_t commit = node_commit(s, nd);
    if (commit < nd->seen_commit)
        sim_violation(s, "node %" PRIu64 ": commit goes back %zu -> %zu", nd->id, nd->seen_commit,
                      commit);
    if (commit > nd->n)
        sim_violation(s, "node %" PRIu64 ": commit %zu beyond its log %zu", nd->id, commit, nd->n);
    nd->seen_commit = commit;
    for (size_t k = nd->checked; k < commit && k < nd->n && !s->failed; k++) {
        if (k < s->hist_len) {
            if (s->hist[k].term != nd->e[k].term ||
                memcmp(s->hist[k].hash, nd->e[k].hash, TRP_RAFT_HASH_LEN))
                sim_violation(s,
                              "node %" PRIu64 ": committed entry %zu (term %" PRIu64
                              ") differs from the cluster's (term %" PRIu64 ")",
                              nd->id, k, nd->e[k].term, s->hist[k].term);
        } else {
            note_history(s, k, &nd->e[k]);
            s->last_commit_ms = s->now;
        }
    }
    if (commit > nd->checked)
        nd->checked = commit;
}

static void check_invariants(sim *s)
{
    for (int i = 0; i < s->cfg.n && !s->failed; i++) {
        sim_node *nd = &s->node[i];
        if (!nd->up)
            continue;
        uint64_t term = trp_raft_term(nd->r);
        if (term < nd->seen_term)
            sim_violation(s, "node %" PRIu64 ": term goes back %" PRIu64 " -> %" PRIu64, nd->id,
                          nd->seen_term, term);
        if (term != nd->seen_term)
            sim_trace(s, "node %" PRIu64 " term %" PRIu64 " (%s)", nd->id, term,
                      trp_raft_role_name(trp_raft_role(nd->r)));
        nd->seen_term = term;
        if (trp_raft_role(nd->r) == TRP_RAFT_LEADER) {
            if (term >= s->terms_cap) {
                size_t cap = term * 2 + 64;
                s->leader_of_term = realloc(s->leader_of_term, cap * sizeof *s->leader_of_term);
                memset(s->leader_of_term + s->terms_cap, 0,
                       (cap - s->terms_cap) * sizeof(uint64_t));
                s->terms_cap = cap;
            }
            if (!s->leader_of_term[term]) {
                s->leader_of_term[term] = nd->id;
                s->st.elections++;
                sim_trace(s, "node %" PRIu64 " is LEADER of term %" PRIu64, nd->id, term);
            } else if (s->leader_of_term[term] != nd->id) {
                sim_violation(s, "two leaders in term %" PRIu64 ": %" PRIu64 " and %" PRIu64, term,
                              s->leader_of_term[term], nd->id);
            }
        }
        node_check_commit(s, nd);
    }
}

/* ---- faults --------------------------------------------------------------- */

static void heal_links(sim *s)
{
    for (int a = 0; a < SIM_MAXN; a++)
        for (int b = 0; b < SIM_MAXN; b++) {
            s->link[a][b] = true;
            s->flap_until[a][b] = 0;
        }
}

SIM_API void sim_set_link(sim *s, int a, int b, bool up)
{
    s->link[a][b] = up;
}

/* Cut node set A (bitmask) from the rest, both ways. */
SIM_API void sim_partition(sim *s, unsigned mask)
{
    for (int a = 0; a < s->cfg.n; a++)
        for (int b = 0; b < s->cfg.n; b++)
            if (((mask >> a) & 1) != ((mask >> b) & 1))
                s->link[a][b] = false;
}

SIM_API void sim_isolate(sim *s, int i)
{
    sim_partition(s, 1u << i);
}

SIM_API void sim_heal(sim *s)
{
    heal_links(s);
}

static void fault_event(sim *s)
{
    int n = s->cfg.n;
    int i = (int)rng_below(&s->rng, (uint64_t)n);
    sim_node *nd = &s->node[i];
    uint64_t et = s->cfg.election_ms;
    switch (rng_below(&s->rng, 12)) {
    case 0:
        node_crash(s, nd, rng_range(&s->rng, 0, 3 * et));
        break;
    case 1:
        if (nd->up && s->now >= nd->paused_until) {
            nd->paused_until = s->now + rng_range(&s->rng, et / 2, 3 * et);
            s->st.pauses++;
            sim_trace(s, "node %" PRIu64 " PAUSED until %" PRIu64, nd->id, nd->paused_until);
        }
        break;
    case 2:
        nd->stall_until = s->now + rng_range(&s->rng, et, 4 * et);
        s->st.stalls++;
        sim_trace(s, "node %" PRIu64 " disk STALLS until %" PRIu64, nd->id, nd->stall_until);
        break;
    case 3: {
        unsigned mask = (unsigned)rng_below(&s->rng, 1u << n);
        sim_partition(s, mask);
        s->st.partitions++;
        sim_trace(s, "PARTITION %x", mask);
        break;
    }
    case 4: {
        int j = (int)rng_below(&s->rng, (uint64_t)n);
        s->link[i][j] = false;
        s->st.oneway++;
        sim_trace(s, "ONE-WAY cut %d -> %d", i + 1, j + 1);
        break;
    }
    case 5: {
        /* non-transitive: i sees j, j sees k, i does not see k */
        int k = (int)rng_below(&s->rng, (uint64_t)n);
        s->link[i][k] = s->link[k][i] = false;
        s->st.nontransitive++;
        sim_trace(s, "NON-TRANSITIVE cut %d <-> %d", i + 1, k + 1);
        break;
    }
    case 6: {
        int j = (int)rng_below(&s->rng, (uint64_t)n);
        s->flap_until[i][j] = s->flap_until[j][i] = s->now + rng_range(&s->rng, 1000, 5000);
        s->flap_next[i][j] = s->flap_next[j][i] = rng_range(&s->rng, 50, 500);
        s->st.flaps++;
        sim_trace(s, "FLAPPING link %d <-> %d", i + 1, j + 1);
        break;
    }
    case 7:
    case 8:
        heal_links(s);
        s->st.heals++;
        sim_trace(s, "HEAL links");
        break;
    case 10:
        if (nd->up && !nd->fail_appends) {
            nd->fail_appends = true;
            nd->fail_until = s->now + rng_range(&s->rng, 0, 3 * et);
            s->st.disk_errors++;
            sim_trace(s, "node %" PRIu64 " disk FAILS writes until %" PRIu64, nd->id,
                      nd->fail_until);
        }
        break;
    case 9:
        /* crash whichever node performs the k-th next persistence step
         * (append, truncate, metadata write or sync), right after it */
        s->crash_at_event = s->persist_events + rng_range(&s->rng, 1, 40);
        s->crash_down_ms = rng_range(&s->rng, 0, 2 * et);
        sim_trace(s, "CRASH armed at persistence event %" PRIu64, s->crash_at_event);
        break;
    default:
        break;
    }
}

/* ---- the run -------------------------------------------------------------- */

SIM_API void sim_random_cfg(sim_cfg *c, uint64_t seed)
{
    sim_rng r;
    rng_seed(&r, seed ^ 0x5eed5eed5eedull);
    static const int sizes[] = {1, 2, 3, 3, 3, 4, 5, 5, 5, 6, 7};
    memset(c, 0, sizeof *c);
    c->n = sizes[rng_below(&r, sizeof sizes / sizeof *sizes)];
    if (c->n >= 4 && rng_chance(&r, 0.4)) {
        c->n_groups = c->n >= 6 && rng_chance(&r, 0.3) ? 3 : 2;
        for (int i = 0; i < c->n; i++)
            c->group_of[i] = i * c->n_groups / c->n;
    }
    if (rng_chance(&r, 0.25))
        for (int i = 0; i < c->n; i++)
            c->priority[i] = (uint32_t)rng_below(&r, 4);
    c->election_ms = (uint32_t)rng_range(&r, 150, 600);
    c->heartbeat_ms = c->election_ms / (uint32_t)rng_range(&r, 3, 6);
    c->max_msg_bytes = rng_chance(&r, 0.3) ? 64 : 0;
    c->max_inflight = (uint32_t)rng_range(&r, 1, 8);
    c->max_inflight_trickle = (c->max_inflight + 1) / 2; /* no draw: seeds keep their runs */
    /* spares in three runs of four, deferring up to a third of a heartbeat
     * (trp-node: 5 of 50 ms); no draw either */
    c->spare_ms = c->election_ms % 4 ? c->heartbeat_ms / 3 : 0;
    c->base_kind = (int)rng_below(&r, 3);
    c->drop = rng_chance(&r, 0.7) ? (double)rng_below(&r, 30) / 100 : 0;
    c->dup = (double)rng_below(&r, 10) / 100;
    c->corrupt = (double)rng_below(&r, 5) / 100;
    c->delay_min = (uint32_t)rng_range(&r, 0, 5);
    c->delay_max = c->delay_min + (uint32_t)rng_range(&r, 0, 60);
    c->disk_ms_max = (uint32_t)rng_range(&r, 0, 10);
    c->n_clients = (int)rng_range(&r, 1, SIM_MAXC);
    c->think_ms_max = (uint32_t)rng_range(&r, 0, 200);
    c->client_depth = rng_chance(&r, 0.3) ? (int)rng_range(&r, 2, 4) : 1;
    c->stale = rng_chance(&r, 0.5) ? 0.01 : 0;
    c->faults = true;
    c->fault_ms = 30000;
    c->heal_ms = SIM_LIVENESS_MS + 2000;
}

/* Make a configuration use the real disk, with a segment size that rolls
 * often (from a few entries to a few hundred per segment). */
SIM_API void sim_use_real_disk(sim_cfg *c, uint64_t seed)
{
    static const uint64_t sizes[] = {512, 2048, 16384};
    c->real_disk = true;
    c->seg_bytes = sizes[seed % 3];
}

SIM_API void sim_init(sim *s, uint64_t seed, const sim_cfg *cfg, int trace)
{
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->trace = trace;
    s->cfg = *cfg;
    rng_seed(&s->rng, seed);
    mpz_inits(s->base, s->tmp, NULL);
    if (cfg->base_kind == 1) {
        mpz_ui_pow_ui(s->base, 2, 64);
        mpz_sub_ui(s->base, s->base, 3);
    } else if (cfg->base_kind == 2) {
        mpz_ui_pow_ui(s->base, 10, 30);
    }
    static const char *const names[3] = {"cloudA", "cloudB", "cloudC"};
    for (int g = 0; g < 3; g++)
        s->groups[g] = names[g];
    for (int i = 0; i < cfg->n; i++) {
        s->nodes_cfg[i].id = (uint64_t)i + 1;
        s->nodes_cfg[i].group = cfg->n_groups ? names[cfg->group_of[i]] : NULL;
        s->nodes_cfg[i].priority = cfg->priority[i];
    }
    heal_links(s);
    s->req_seq = calloc(SIM_MAXC, sizeof *s->req_seq);
    s->req_cap = calloc(SIM_MAXC, sizeof *s->req_cap);
    for (int i = 0; i < cfg->n_clients && i < SIM_MAXC; i++) {
        int depth = cfg->client_depth > 1 ? cfg->client_depth : 1;
        s->client[i].id = 1000 + (uint64_t)(i / depth);
        s->client[i].lead = i - i % depth;
    }
    if (cfg->real_disk) {
        s->st.real_seeds = 1;
        if (!real_root_make(s))
            s->cfg.real_disk = false;
    }
    for (int i = 0; i < cfg->n; i++) {
        sim_node *nd = &s->node[i];
        nd->sim = s;
        nd->idx = i;
        nd->id = (uint64_t)i + 1;
        rng_seed(&nd->rng, seed * 31 + (uint64_t)i);
        if (s->cfg.real_disk) {
            real_path(s, nd);
            real_open(s, nd, true);
        }
        node_start(s, nd);
    }
    s->faults_on = false;
    s->next_fault = 0;
}

SIM_API void sim_free(sim *s)
{
    if (s->cfg.real_disk)
        real_free(s);
    for (int i = 0; i < s->cfg.n; i++) {
        sim_node *nd = &s->node[i];
        trp_raft_free(nd->r);
        disk_cut(nd, 0);
        free(nd->e);
    }
    for (size_t i = 0; i < s->heap_n; i++)
        free(s->heap[i].bytes);
    free(s->heap);
    free(s->hist);
    for (int i = 0; i < SIM_MAXC; i++)
        free(s->req_seq[i]);
    free(s->req_seq);
    free(s->req_cap);
    free(s->leader_of_term);
    mpz_clears(s->base, s->tmp, NULL);
}

SIM_API void sim_crash(sim *s, int i, uint64_t down_ms)
{
    node_crash(s, &s->node[i], down_ms);
}

/* A down node's disk is replaced (model disk only): log, term, vote and
 * watermark gone. It restarts rejoining, as trp-node does when it finds
 * its data directory empty. */
SIM_API void sim_wipe(sim *s, int i)
{
    sim_node *nd = &s->node[i];
    disk_cut(nd, 0);
    nd->durable = 0;
    nd->hs_term = nd->hs_vote = 0;
    nd->commit = 0;
    nd->rejoining = true;
    sim_trace(s, "node %" PRIu64 " loses its disk", nd->id);
}

/* One millisecond of cluster time. */
SIM_API void sim_step(sim *s, bool workload)
{
    s->now++;
    for (int i = 0; i < s->cfg.n; i++) {
        sim_node *nd = &s->node[i];
        if (!nd->up && nd->r == NULL && s->now >= nd->down_until && nd->down_until != UINT64_MAX) {
            sim_trace(s,
                      "node %" PRIu64 " RESTARTS (term %" PRIu64 ", vote %" PRIu64 ", %zu entries, "
                      "commit %zu)",
                      nd->id, nd->hs_term, nd->hs_vote, nd->n, nd->commit);
            node_start(s, nd);
        }
    }
    for (int i = 0; i < s->cfg.n; i++) {
        sim_node *nd = &s->node[i];
        if (nd->fail_appends && s->now >= nd->fail_until) {
            nd->fail_appends = false;
            if (nd->up && trp_raft_failed(nd->r, NULL)) {
                s->st.fail_stops++;
                sim_trace(s, "node %" PRIu64 " fail-stopped on a disk error; restarted", nd->id);
                node_crash(s, nd, 0); /* a supervisor restarts it */
            }
        }
    }
    net_deliver(s);
    for (int i = 0; i < s->cfg.n; i++) {
        sim_node *nd = &s->node[i];
        if (!nd->up || s->now < nd->paused_until)
            continue;
        node_disk_step(s, nd);
        if (!nd->up)
            continue;
        trp_raft_tick(nd->r, s->now);
        node_drain(s, nd);
    }
    clients_step(s, workload);
    for (int i = 0; i < s->cfg.n; i++)
        if (s->node[i].crash_pending) {
            s->node[i].crash_pending = false;
            node_crash(s, &s->node[i], s->crash_down_ms);
        }
    check_invariants(s);
}

SIM_API bool sim_has_leader(sim *s, int *who)
{
    for (int i = 0; i < s->cfg.n; i++)
        if (s->node[i].up && s->now >= s->node[i].paused_until &&
            trp_raft_role(s->node[i].r) == TRP_RAFT_LEADER) {
            if (who)
                *who = i;
            return true;
        }
    return false;
}

/* Stop every fault: links healed, nodes up and running, disks unstalled. */
SIM_API void sim_stop_faults(sim *s)
{
    s->faults_on = false;
    heal_links(s);
    for (int i = 0; i < s->cfg.n; i++) {
        sim_node *nd = &s->node[i];
        nd->paused_until = 0;
        nd->stall_until = 0;
        if (nd->fail_appends)
            nd->fail_until = s->now;
        if (!nd->up)
            nd->down_until = s->now;
    }
}

/* A randomized run: fault phase with workload, then faults stop and the
 * cluster must elect a leader and commit a new append within
 * SIM_LIVENESS_MS. Returns true when no invariant was violated. */
SIM_API bool sim_run(sim *s)
{
    s->faults_on = s->cfg.faults;
    s->next_fault = 100;
    while (s->now < s->cfg.fault_ms && !s->failed) {
        if (s->faults_on && s->now >= s->next_fault) {
            fault_event(s);
            s->next_fault = s->now + rng_range(&s->rng, 50, 1000);
        }
        sim_step(s, true);
    }
    sim_stop_faults(s);
    sim_trace(s, "FAULTS STOP; liveness bound %d ms", SIM_LIVENESS_MS);
    uint64_t quiet = s->now;
    size_t hist_at_quiet = s->hist_len;
    /* one fresh append must commit: the clients keep working */
    while (!s->failed && s->now < quiet + s->cfg.heal_ms) {
        sim_step(s, true);
        if (s->hist_len > hist_at_quiet && s->acked_max > hist_at_quiet && sim_has_leader(s, NULL))
            break;
    }
    if (!s->failed && !(s->hist_len > hist_at_quiet && s->acked_max > hist_at_quiet))
        sim_violation(s,
                      "liveness: no new append acknowledged within %" PRIu64 " ms after faults "
                      "stopped (leader: %s)",
                      s->now - quiet, sim_has_leader(s, NULL) ? "yes" : "no");
    else if (!s->failed && s->now - quiet > SIM_LIVENESS_MS)
        sim_violation(s, "liveness: the first new commit took %" PRIu64 " ms", s->now - quiet);
    s->st.recovery_ms_max = s->now - quiet;
    s->st.recovery_ms_sum = s->now - quiet;
    s->st.recoveries = 1;
    s->st.sim_ms = s->now;
    s->st.commits_end = s->hist_len;
    if (s->cfg.real_disk && !s->failed)
        real_verify(s);
    return !s->failed;
}
