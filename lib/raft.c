/*
 * raft.c: the core's lifecycle, its inputs and its outbox (Raft §5.1 "Raft
 * basics": terms, roles, and the rule that a higher term wins).
 *
 * The one idea: every input (tick, message, persisted, proposal) changes
 * state and may queue messages and client replies; nothing leaves until the
 * caller takes a ready. A ready's messages may depend on the term and vote
 * in the same ready, so the caller persists that hard state first; the
 * core counts its own vote only after trp_raft_advance says it is durable.
 */
#include "raft.h"

#include <stdlib.h>

static void fill_defaults(trp_raft_config *c)
{
    if (!c->election_timeout_ms)
        c->election_timeout_ms = TRP_RAFT_ELECTION_TIMEOUT_MS;
    if (!c->election_timeout_max_ms)
        c->election_timeout_max_ms = 2 * c->election_timeout_ms;
    if (!c->heartbeat_ms)
        c->heartbeat_ms = TRP_RAFT_HEARTBEAT_MS;
    if (!c->max_msg_bytes)
        c->max_msg_bytes = TRP_RAFT_MAX_MSG_BYTES;
    if (!c->max_inflight_msgs)
        c->max_inflight_msgs = TRP_RAFT_MAX_INFLIGHT_MSGS;
    if (!c->max_inflight_trickle || c->max_inflight_trickle > c->max_inflight_msgs)
        c->max_inflight_trickle = c->max_inflight_msgs;
    if (!c->max_inflight_bytes)
        c->max_inflight_bytes = TRP_RAFT_MAX_INFLIGHT_BYTES;
    if (!c->max_entry)
        c->max_entry = TRP_RAFT_MAX_ENTRY;
    if (!c->session_max)
        c->session_max = TRP_RAFT_SESSION_MAX;
    if (!c->session_window)
        c->session_window = TRP_RAFT_SESSION_WINDOW;
    if (!c->max_pending)
        c->max_pending = TRP_RAFT_MAX_PENDING;
}

void trp_raft_config_defaults(trp_raft_config *cfg)
{
    fill_defaults(cfg);
}

const char *trp_raft_role_name(int role)
{
    switch (role) {
    case TRP_RAFT_FOLLOWER:
        return "follower";
    case TRP_RAFT_PRECANDIDATE:
        return "pre-candidate";
    case TRP_RAFT_CANDIDATE:
        return "candidate";
    case TRP_RAFT_LEADER:
        return "leader";
    default:
        return "?";
    }
}

/* ---- small helpers shared by the raft_*.c files ------------------------- */

uint64_t raft_random(trp_raft *r, uint64_t below)
{
    assert(below > 0);
    return r->env.rand(r->env.user) % below;
}

/* Raft §5.2: a randomized election timeout in [min, max). */
void raft_reset_election_timer(trp_raft *r)
{
    uint64_t t = r->cfg.election_timeout_ms;
    uint64_t spread = r->cfg.election_timeout_max_ms - t;
    r->election_due_ms = r->now_ms + t + (spread ? raft_random(r, spread) : 0);
}

struct raft_peer *raft_peer_by_id(trp_raft *r, uint64_t id)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->peers[i].id == id)
            return &r->peers[i];
    return NULL;
}

/* A new term forgets the vote; the caller must persist before sending. */
void raft_set_term(trp_raft *r, uint64_t term)
{
    assert(term >= r->term);
    if (term == r->term)
        return;
    r->term = term;
    r->vote = 0;
    r->hard_state_dirty = true;
}

int raft_fail(trp_raft *r, int code, const trp_err *err)
{
    if (!r->failed) {
        r->failed = true;
        if (err)
            r->fail = *err;
        else
            trp_err_set(&r->fail, code, "raft node %llu: storage failed",
                        (unsigned long long)r->cfg.self);
        if (!r->fail.code)
            r->fail.code = code ? code : TRP_EIO;
        if (r->role == TRP_RAFT_LEADER)
            client_lost_leadership(r);
        r->role = TRP_RAFT_FOLLOWER;
        r->leader = 0;
    }
    return r->fail.code;
}

int raft_read_entry(trp_raft *r, const mpz_t seq, trp_raft_entry *e)
{
    trp_err err;
    trp_err_clear(&err);
    assert(mpz_cmp(seq, r->first) >= 0 && mpz_cmp(seq, r->next) < 0);
    int rc = r->st.read(r->st.user, seq, e, &err);
    if (rc)
        return raft_fail(r, rc, &err);
    return 0;
}

/* Term of the entry at seq; seq == first - 1 (the anchor) has term 0. */
int raft_term_at(trp_raft *r, const mpz_t seq, uint64_t *term)
{
    if (mpz_cmp(seq, r->first) < 0) {
        *term = 0;
        return 0;
    }
    if (mpz_cmp(seq, r->next) >= 0) {
        *term = 0;
        return -1;
    }
    mpz_add_ui(r->tmp2, seq, 1);
    if (mpz_cmp(r->tmp2, r->next) == 0) {
        *term = r->head_term;
        return 0;
    }
    trp_raft_entry e;
    if (raft_read_entry(r, seq, &e))
        return -1;
    *term = e.term;
    return 0;
}

/* The commit seq only moves forward (Raft §5.3, Leader Completeness). A
 * leader's commit may run ahead of its own durable log (a quorum of
 * followers has the entries); the watermark a ready reports never does. */
void raft_set_commit(trp_raft *r, const mpz_t commit)
{
    if (mpz_cmp(commit, r->commit_next) <= 0)
        return;
    assert(mpz_cmp(commit, r->next) <= 0);
    mpz_set(r->commit_next, commit);
    if (mpz_cmp(r->verified_next, r->commit_next) < 0)
        mpz_set(r->verified_next, r->commit_next);
    r->commit_changed = true;
    client_commit_advanced(r);
}

trp_raft_msg *raft_msg_new(trp_raft *r, int type, uint64_t to)
{
    if (r->n_msgs == r->cap_msgs) {
        if (r->n_msgs >= RAFT_OUTBOX_MAX) {
            /* The caller is not draining (a stalled disk): drop the oldest,
             * as a lossy network would. Raft tolerates any message loss. */
            trp_raft_msg_clear(&r->msgs[0]);
            memmove(r->msgs, r->msgs + 1, (r->n_msgs - 1) * sizeof *r->msgs);
            r->n_msgs--;
        } else {
            size_t cap = r->cap_msgs ? r->cap_msgs * 2 : 16;
            trp_raft_msg *m = realloc(r->msgs, cap * sizeof *m);
            if (!m)
                abort();
            r->msgs = m;
            r->cap_msgs = cap;
        }
    }
    trp_raft_msg *m = &r->msgs[r->n_msgs++];
    trp_raft_msg_init(m);
    m->type = type;
    m->from = r->cfg.self;
    m->to = to;
    m->term = r->term;
    return m;
}

/* Queue an answer to a client: local (origin 0) as a reply, remote as a
 * message to the node that forwarded the request. */
void raft_reply(trp_raft *r, int kind, uint64_t origin, uint64_t client, uint64_t req, int status,
                const mpz_t seq, const uint8_t *hash)
{
    uint64_t hint = r->leader;
    if (origin && origin != r->cfg.self) {
        trp_raft_msg *m = raft_msg_new(
            r, kind == TRP_RAFT_REPLY_APPEND ? TRP_RAFT_PROPOSE_RESP : TRP_RAFT_READ_RESP, origin);
        m->client = client;
        m->req = req;
        m->status = status;
        m->leader_hint = hint;
        if (seq)
            mpz_set(m->seq, seq);
        if (hash)
            memcpy(m->hash, hash, TRP_RAFT_HASH_LEN);
        return;
    }
    if (r->n_replies == r->cap_replies) {
        size_t cap = r->cap_replies ? r->cap_replies * 2 : 16;
        trp_raft_reply *p = realloc(r->replies, cap * sizeof *p);
        if (!p)
            abort();
        r->replies = p;
        r->cap_replies = cap;
    }
    trp_raft_reply *rep = &r->replies[r->n_replies++];
    memset(rep, 0, sizeof *rep);
    mpz_init(rep->seq);
    rep->kind = kind;
    rep->client = client;
    rep->req = req;
    rep->status = status;
    rep->leader_hint = hint;
    if (seq)
        mpz_set(rep->seq, seq);
    if (hash)
        memcpy(rep->hash, hash, TRP_RAFT_HASH_LEN);
}

/* ---- lifecycle ---------------------------------------------------------- */

static int load_log(trp_raft *r)
{
    r->st.bounds(r->st.user, r->first, r->next);
    r->st.anchor(r->st.user, r->anchor);
    mpz_set(r->durable_next, r->next);
    if (mpz_cmp(r->first, r->next) == 0) {
        memcpy(r->head_hash, r->anchor, TRP_RAFT_HASH_LEN);
        r->head_term = 0;
        return 0;
    }
    mpz_sub_ui(r->tmp, r->next, 1);
    trp_raft_entry e;
    trp_err err;
    trp_err_clear(&err);
    int rc = r->st.read(r->st.user, r->tmp, &e, &err);
    if (rc)
        return rc;
    memcpy(r->head_hash, e.hash, TRP_RAFT_HASH_LEN);
    r->head_term = e.term;
    return 0;
}

int trp_raft_new(trp_raft **out, const trp_raft_config *cfg_in, const trp_raft_storage *st,
                 const trp_raft_env *env, const trp_raft_restart *rs, uint64_t now_ms, trp_err *err)
{
    *out = NULL;
    trp_raft_config cfg = *cfg_in;
    fill_defaults(&cfg);
    int rc = trp_raft_config_check(&cfg, err);
    if (rc)
        return rc;
    if (!st || !st->bounds || !st->anchor || !st->read || !st->append || !st->truncate || !env ||
        !env->rand || !env->hash_entry)
        return trp_err_set(err, TRP_EINVAL, "raft: storage and environment callbacks are required");
    trp_raft *r = calloc(1, sizeof *r);
    if (!r)
        return trp_err_set(err, TRP_ENOMEM, "raft: out of memory");
    r->cfg = cfg;
    r->st = *st;
    r->env = *env;
    r->n = cfg.n_nodes;
    r->nodes = calloc(r->n, sizeof *r->nodes);
    r->peers = calloc(r->n, sizeof *r->peers);
    r->group_names = calloc(cfg.n_groups + 1, sizeof *r->group_names);
    r->group_size = calloc(cfg.n_groups + 1, sizeof *r->group_size);
    if (!r->nodes || !r->peers || !r->group_names || !r->group_size)
        abort();
    for (size_t g = 0; g < cfg.n_groups; g++)
        r->group_names[g] = strdup(cfg.groups[g]);
    r->cfg.groups = (const char *const *)r->group_names;
    for (size_t i = 0; i < r->n; i++) {
        struct raft_peer *p = &r->peers[i];
        r->nodes[i] = cfg.nodes[i];
        r->nodes[i].group = NULL;
        p->id = cfg.nodes[i].id;
        p->priority = cfg.nodes[i].priority;
        p->group = -1;
        for (size_t g = 0; g < cfg.n_groups && cfg.nodes[i].group; g++)
            if (strcmp(cfg.nodes[i].group, cfg.groups[g]) == 0) {
                p->group = (int)g;
                r->nodes[i].group = r->group_names[g];
                r->group_size[g]++;
            }
        mpz_init(p->next);
        mpz_init(p->match);
        p->inflight_end = calloc(cfg.max_inflight_msgs, sizeof *p->inflight_end);
        p->inflight_bytes = calloc(cfg.max_inflight_msgs, sizeof *p->inflight_bytes);
        if (!p->inflight_end || !p->inflight_bytes)
            abort();
        for (size_t k = 0; k < cfg.max_inflight_msgs; k++)
            mpz_init(p->inflight_end[k]);
        if (p->id == cfg.self)
            r->self = i;
    }
    r->cfg.nodes = r->nodes;
    mpz_inits(r->first, r->next, r->durable_next, r->commit_next, r->verified_next, r->term_start,
              r->leader_commit, r->acked_next, r->rejoin_target, r->tmp, r->tmp2, NULL);
    mpz_set_si(r->acked_next, -1);
    r->now_ms = now_ms;
    rc = load_log(r);
    if (rc) {
        trp_err_set(err, rc, "raft node %llu: cannot read the log head",
                    (unsigned long long)cfg.self);
        trp_raft_free(r);
        return rc;
    }
    /* Persisted hard state; a log entry of a later term proves the term
     * moved on even if the metadata write was lost (we never voted in it
     * visibly: votes leave only after their hard state is durable). */
    r->term = rs ? rs->term : 0;
    r->vote = rs ? rs->vote : 0;
    r->durable_term = r->term;
    r->durable_vote = r->vote;
    if (r->head_term > r->term) {
        r->term = r->head_term;
        r->vote = 0;
        r->hard_state_dirty = true;
    }
    mpz_set(r->commit_next, r->first);
    if (rs && rs->commit_next && mpz_cmp(*rs->commit_next, r->first) > 0) {
        if (mpz_cmp(*rs->commit_next, r->next) > 0)
            mpz_set(r->commit_next, r->next);
        else
            mpz_set(r->commit_next, *rs->commit_next);
    }
    mpz_set(r->verified_next, r->commit_next);
    /* alone, a node has no one to catch up from, and no quorum to protect */
    r->rejoining = rs && rs->rejoining && r->n > 1;
    r->role = TRP_RAFT_FOLLOWER;
    raft_reset_election_timer(r);
    if (r->n == 1)
        r->election_due_ms = now_ms; /* alone: nobody to wait for */
    rc = client_sessions_rebuild(r);
    if (rc) {
        trp_err_set(err, rc, "raft node %llu: cannot rebuild client sessions from the log",
                    (unsigned long long)cfg.self);
        trp_raft_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void trp_raft_free(trp_raft *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        struct raft_peer *p = &r->peers[i];
        mpz_clears(p->next, p->match, NULL);
        for (size_t k = 0; k < r->cfg.max_inflight_msgs; k++)
            mpz_clear(p->inflight_end[k]);
        free(p->inflight_end);
        free(p->inflight_bytes);
    }
    for (size_t i = 0; i < r->n_msgs; i++)
        trp_raft_msg_clear(&r->msgs[i]);
    for (size_t i = 0; i < r->n_replies; i++)
        mpz_clear(r->replies[i].seq);
    free(r->msgs);
    free(r->replies);
    client_free(r);
    for (size_t g = 0; g < r->cfg.n_groups; g++)
        free(r->group_names[g]);
    free(r->group_names);
    free(r->group_size);
    free(r->nodes);
    free(r->peers);
    mpz_clears(r->first, r->next, r->durable_next, r->commit_next, r->verified_next, r->term_start,
               r->leader_commit, r->acked_next, r->rejoin_target, r->tmp, r->tmp2, NULL);
    free(r);
}

/* ---- inputs ------------------------------------------------------------- */

int trp_raft_tick(trp_raft *r, uint64_t now_ms)
{
    if (r->failed)
        return r->fail.code;
    if (now_ms > r->now_ms)
        r->now_ms = now_ms;
    if (r->role == TRP_RAFT_LEADER)
        replication_tick(r);
    else
        election_tick(r);
    return r->failed ? r->fail.code : 0;
}

static bool is_client_msg(int type)
{
    return type == TRP_RAFT_PROPOSE || type == TRP_RAFT_PROPOSE_RESP || type == TRP_RAFT_READ ||
           type == TRP_RAFT_READ_RESP;
}

/* Raft §5.1: a message from a higher term moves us to that term as a
 * follower, except vote requests we withhold (§4.2.3 of the dissertation:
 * a node that heard a live leader within the minimum election timeout does
 * not let another node disrupt it) and pre-votes, which never change terms. */
static void step_term(trp_raft *r, const trp_raft_msg *m)
{
    if (m->term <= r->term)
        return;
    switch (m->type) {
    case TRP_RAFT_PREVOTE:
        return;
    case TRP_RAFT_PREVOTE_RESP:
        if (m->flag)
            return; /* a grant carries the proposed term */
        election_become_follower(r, m->term, 0);
        return;
    case TRP_RAFT_VOTE:
        if (election_withholding(r))
            return; /* withheld; election_receive_request ignores it too */
        election_become_follower(r, m->term, 0);
        return;
    case TRP_RAFT_APPEND:
    case TRP_RAFT_HEARTBEAT:
        election_become_follower(r, m->term, m->from);
        return;
    default:
        election_become_follower(r, m->term, 0);
    }
}

int trp_raft_step(trp_raft *r, const trp_raft_msg *m)
{
    if (r->failed)
        return r->fail.code;
    if (m->to != r->cfg.self || m->from == r->cfg.self || !raft_peer_by_id(r, m->from))
        return 0; /* not for us, or from outside the cluster: drop */
    if (is_client_msg(m->type)) {
        client_receive(r, m);
        return r->failed ? r->fail.code : 0;
    }
    step_term(r, m);
    switch (m->type) {
    case TRP_RAFT_PREVOTE:
    case TRP_RAFT_VOTE:
        election_receive_request(r, m);
        break;
    case TRP_RAFT_PREVOTE_RESP:
    case TRP_RAFT_VOTE_RESP:
        election_receive_response(r, m);
        break;
    case TRP_RAFT_APPEND:
        replication_receive_append(r, m);
        break;
    case TRP_RAFT_APPEND_RESP:
        replication_receive_append_resp(r, m);
        break;
    case TRP_RAFT_HEARTBEAT:
        replication_receive_heartbeat(r, m);
        break;
    case TRP_RAFT_HEARTBEAT_RESP:
        replication_receive_heartbeat_resp(r, m);
        break;
    default:
        break;
    }
    return r->failed ? r->fail.code : 0;
}

int trp_raft_persisted(trp_raft *r, const mpz_t durable_next)
{
    if (r->failed)
        return r->fail.code;
    /* Never beyond what is stored. A sync started before a truncation
     * cannot vouch for entries appended after it, and this check alone
     * cannot tell such a report once the log has grown back past it: the
     * driver must not report one (trp_raft.h). */
    if (mpz_cmp(durable_next, r->next) <= 0 && mpz_cmp(durable_next, r->durable_next) > 0) {
        mpz_set(r->durable_next, durable_next);
        if (mpz_cmp(r->commit_next, r->durable_next) >= 0)
            r->commit_changed = true; /* the reported watermark moves */
        replication_persisted(r);
    }
    return r->failed ? r->fail.code : 0;
}

int trp_raft_propose(trp_raft *r, uint64_t client, uint64_t req, const void *payload, size_t len,
                     const uint8_t *if_head)
{
    if (r->failed) {
        raft_reply(r, TRP_RAFT_REPLY_APPEND, 0, client, req, TRP_EUNAVAIL, NULL, NULL);
        return r->fail.code;
    }
    client_propose(r, 0, client, req, payload, len, if_head);
    return r->failed ? r->fail.code : 0;
}

int trp_raft_read(trp_raft *r, uint64_t client, uint64_t req)
{
    if (r->failed) {
        raft_reply(r, TRP_RAFT_REPLY_READ, 0, client, req, TRP_EUNAVAIL, NULL, NULL);
        return r->fail.code;
    }
    client_read(r, 0, client, req);
    return r->failed ? r->fail.code : 0;
}

/* ---- outputs ------------------------------------------------------------ */

bool trp_raft_has_ready(const trp_raft *r)
{
    return r->hard_state_dirty || r->sync_wanted || r->commit_changed || r->n_msgs ||
           r->n_replies || r->flush_wanted;
}

bool trp_raft_ready_needs_hard_state(const trp_raft *r)
{
    return r->hard_state_dirty;
}

void trp_raft_ready_take(trp_raft *r, trp_raft_ready *rd)
{
    if (r->flush_wanted) {
        r->flush_wanted = false;
        replication_flush(r);
    }
    memset(rd, 0, sizeof *rd);
    /* the watermark to persist: committed AND durable here */
    if (mpz_cmp(r->commit_next, r->durable_next) <= 0)
        mpz_init_set(rd->commit_next, r->commit_next);
    else
        mpz_init_set(rd->commit_next, r->durable_next);
    rd->hard_state = r->hard_state_dirty;
    rd->term = r->term;
    rd->vote = r->vote;
    rd->sync = r->sync_wanted;
    rd->commit_changed = r->commit_changed;
    rd->msgs = r->msgs;
    rd->n_msgs = r->n_msgs;
    rd->replies = r->replies;
    rd->n_replies = r->n_replies;
    r->msgs = NULL;
    r->n_msgs = r->cap_msgs = 0;
    r->replies = NULL;
    r->n_replies = r->cap_replies = 0;
    r->hard_state_dirty = false;
    r->sync_wanted = false;
    r->commit_changed = false;
}

void trp_raft_advance(trp_raft *r, trp_raft_ready *rd)
{
    if (rd->hard_state) {
        r->durable_term = rd->term;
        r->durable_vote = rd->vote;
    }
    for (size_t i = 0; i < rd->n_msgs; i++)
        trp_raft_msg_clear(&rd->msgs[i]);
    for (size_t i = 0; i < rd->n_replies; i++)
        mpz_clear(rd->replies[i].seq);
    free(rd->msgs);
    free(rd->replies);
    mpz_clear(rd->commit_next);
    memset(rd, 0, sizeof *rd);
    /* Our own vote may now count (it is durable). */
    if (!r->failed && (r->role == TRP_RAFT_CANDIDATE || r->role == TRP_RAFT_PRECANDIDATE))
        election_tally(r);
}

/* ---- introspection ------------------------------------------------------ */

int trp_raft_role(const trp_raft *r)
{
    return r->role;
}
uint64_t trp_raft_term(const trp_raft *r)
{
    return r->term;
}
uint64_t trp_raft_leader(const trp_raft *r)
{
    return r->leader;
}
bool trp_raft_spare(const trp_raft *r)
{
    return r->role == TRP_RAFT_FOLLOWER && r->spare;
}
uint64_t trp_raft_vote(const trp_raft *r)
{
    return r->vote;
}

bool trp_raft_rejoining(const trp_raft *r)
{
    return r->rejoining;
}
uint64_t trp_raft_id(const trp_raft *r)
{
    return r->cfg.self;
}
void trp_raft_commit_next(const trp_raft *r, mpz_t out)
{
    mpz_set(out, r->commit_next);
}
void trp_raft_log_next(const trp_raft *r, mpz_t out)
{
    mpz_set(out, r->next);
}
const uint8_t *trp_raft_head_hash(const trp_raft *r)
{
    return r->head_hash;
}

bool trp_raft_failed(const trp_raft *r, trp_err *err)
{
    if (r->failed && err)
        *err = r->fail;
    return r->failed;
}
