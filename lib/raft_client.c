/*
 * raft_client.c: client interaction (Raft dissertation ch. 6): forwarding
 * to the leader, exactly-once appends through sessions, conditional
 * appends, and linearizable reads of the commit seq (ReadIndex, §6.4).
 *
 * The one idea: a client's id and request number travel INSIDE the entry
 * (a 17-byte envelope before the user's bytes), so the table that makes
 * retries exactly-once is a function of the log: every node keeps it up to
 * date as entries are appended or truncated, and rebuilds it after a
 * restart by scanning back over the last session_window entries (at most
 * TRP_RAFT_SESSION_WINDOW_BYTES of payload). A retried request
 * that is already in the leader's log is not appended again; it is answered
 * with its original seq once that seq commits. Bounds: session_max clients
 * (the one with the oldest entry is forgotten first), the 64 highest
 * request numbers per client (a retry below all 64 is refused with
 * TRP_EINVAL rather than risk a second copy), and a retry is
 * recognised only while its original is within the last session_window
 * entries; max_pending requests wait at once.
 */
#include "raft.h"

#include <stdlib.h>

void trp_raft_envelope_put(uint8_t out[TRP_RAFT_ENVELOPE_LEN], uint64_t client, uint64_t req)
{
    out[0] = TRP_RAFT_ENVELOPE_VERSION;
    for (int i = 0; i < 8; i++) {
        out[1 + i] = (uint8_t)(client >> (56 - 8 * i));
        out[9 + i] = (uint8_t)(req >> (56 - 8 * i));
    }
}

int trp_raft_envelope_get(const uint8_t *payload, size_t len, uint64_t *client, uint64_t *req,
                          const uint8_t **data, size_t *data_len)
{
    if (len < TRP_RAFT_ENVELOPE_LEN || payload[0] != TRP_RAFT_ENVELOPE_VERSION)
        return -1;
    uint64_t c = 0, q = 0;
    for (int i = 0; i < 8; i++) {
        c = c << 8 | payload[1 + i];
        q = q << 8 | payload[9 + i];
    }
    if (client)
        *client = c;
    if (req)
        *req = q;
    if (data)
        *data = payload + TRP_RAFT_ENVELOPE_LEN;
    if (data_len)
        *data_len = len - TRP_RAFT_ENVELOPE_LEN;
    return 0;
}

/* ---- the session table -------------------------------------------------- */

/* Sessions are found through an index (idmap.h): every entry's append
 * looks up its client on every node, and a scan of a few hundred sessions
 * (1.6 KB each) per entry cost a piped trp-append a tenth of its rate once
 * earlier clients had filled the table. */
static uint64_t session_id_of(const void *sessions, size_t i)
{
    return ((const struct raft_session *)sessions)[i].client;
}

static void session_index_put(trp_raft *r, size_t i)
{
    idmap_add(&r->session_index, r->sessions[i].client, (uint32_t)i, r->sessions, 0, r->n_sessions,
              session_id_of);
}

static struct raft_session *session_find(trp_raft *r, uint64_t client)
{
    /* a client's appends come in runs on one session: try the last first */
    if (r->session_hint < r->n_sessions && r->sessions[r->session_hint].client == client)
        return &r->sessions[r->session_hint];
    uint32_t i = idmap_find(&r->session_index, client, r->sessions, r->n_sessions, session_id_of);
    if (i == IDMAP_NONE)
        return NULL;
    r->session_hint = i;
    return &r->sessions[i];
}

static void session_free(struct raft_session *s)
{
    for (size_t k = 0; k < RAFT_SESSION_REQS; k++)
        mpz_clear(s->seq[k]);
    mpz_clear(s->last);
}

static void sessions_clear(trp_raft *r)
{
    for (size_t i = 0; i < r->n_sessions; i++)
        session_free(&r->sessions[i]);
    r->n_sessions = 0;
    if (r->session_index.slot)
        idmap_clear(&r->session_index);
}

/* Index of req in the session, or -1. */
static int session_lookup(const struct raft_session *s, uint64_t req)
{
    if (s->n && req > s->max_req)
        return -1;
    for (size_t k = 0; k < s->n; k++)
        if (s->req[k] == req)
            return (int)k;
    return -1;
}

/* The session is full and req is below every request it remembers: we
 * cannot tell whether it was stored. */
static bool session_too_old(const struct raft_session *s, uint64_t req)
{
    if (s->n < RAFT_SESSION_REQS || req > s->max_req)
        return false;
    for (size_t k = 0; k < s->n; k++)
        if (s->req[k] < req)
            return false;
    return true;
}

static struct raft_session *session_new(trp_raft *r, uint64_t client)
{
    if (r->n_sessions == r->cap_sessions && r->cap_sessions < r->cfg.session_max) {
        size_t cap = r->cap_sessions ? r->cap_sessions * 2 : 8;
        if (cap > r->cfg.session_max)
            cap = r->cfg.session_max;
        struct raft_session *p = realloc(r->sessions, cap * sizeof *p);
        if (!p)
            abort();
        r->sessions = p;
        r->cap_sessions = cap;
    }
    if (r->n_sessions == r->cfg.session_max) {
        size_t oldest = 0; /* bounded: forget the client whose newest entry is oldest */
        for (size_t i = 1; i < r->n_sessions; i++)
            if (mpz_cmp(r->sessions[i].last, r->sessions[oldest].last) < 0)
                oldest = i;
        session_free(&r->sessions[oldest]);
        r->sessions[oldest] = r->sessions[--r->n_sessions];
        if (oldest < r->n_sessions)
            session_index_put(r, oldest); /* it moved */
    }
    if (!r->session_index.slot && !idmap_init(&r->session_index, r->cfg.session_max))
        abort();
    struct raft_session *s = &r->sessions[r->n_sessions++];
    s->client = client;
    s->n = 0;
    s->sorted = true;
    s->head = 0;
    s->max_req = 0;
    for (size_t k = 0; k < RAFT_SESSION_REQS; k++)
        mpz_init(s->seq[k]);
    mpz_init(s->last);
    session_index_put(r, r->n_sessions - 1);
    return s;
}

void client_session_note(trp_raft *r, const mpz_t seq, const uint8_t *payload, size_t len, int type)
{
    uint64_t client, req;
    if (type != TRP_RAFT_ENTRY_DATA ||
        trp_raft_envelope_get(payload, len, &client, &req, NULL, NULL) || client == 0)
        return;
    struct raft_session *s = session_find(r, client);
    if (!s)
        s = session_new(r, client);
    if (mpz_cmp(seq, s->last) > 0)
        mpz_set(s->last, seq);
    if (session_lookup(s, req) >= 0)
        return;
    bool grows = s->n == 0 || req > s->max_req;
    size_t k = s->n;
    if (s->n == RAFT_SESSION_REQS) { /* keep the highest request numbers */
        if (s->sorted && grows) {
            k = s->head; /* the smallest */
            s->head = (s->head + 1) % RAFT_SESSION_REQS;
        } else {
            k = 0;
            for (size_t i = 1; i < s->n; i++)
                if (s->req[i] < s->req[k])
                    k = i;
            if (s->req[k] > req)
                return;
            s->sorted = false;
        }
    } else {
        s->n++;
        if (!grows)
            s->sorted = false;
    }
    s->req[k] = req;
    if (grows)
        s->max_req = req;
    mpz_set(s->seq[k], seq);
}

/* Rebuild the table from the newest entries of the log, scanning back at
 * most session_window entries and TRP_RAFT_SESSION_WINDOW_BYTES of
 * payload (so a restart never reads more than that), newest first: the
 * first entry seen for a client is its latest request. */
int client_sessions_rebuild(trp_raft *r)
{
    sessions_clear(r);
    mpz_t seq;
    mpz_init_set(seq, r->next);
    uint64_t bytes = 0;
    int rc = 0;
    for (uint32_t i = 0; i < r->cfg.session_window && mpz_cmp(seq, r->first) > 0; i++) {
        mpz_sub_ui(seq, seq, 1);
        trp_raft_entry e;
        trp_err err;
        trp_err_clear(&err);
        if ((rc = r->st.read(r->st.user, seq, &e, &err)))
            break;
        uint64_t client, req;
        if (e.type == TRP_RAFT_ENTRY_DATA &&
            !trp_raft_envelope_get(e.payload, e.len, &client, &req, NULL, NULL) && client &&
            (session_find(r, client) || r->n_sessions < r->cfg.session_max))
            client_session_note(r, seq, e.payload, e.len, e.type);
        bytes += e.len;
        if (bytes >= TRP_RAFT_SESSION_WINDOW_BYTES)
            break;
    }
    mpz_clear(seq);
    return rc;
}

void client_sessions_truncated(trp_raft *r, const mpz_t from)
{
    (void)from;
    int rc = client_sessions_rebuild(r);
    if (rc)
        raft_fail(r, rc, NULL);
}

/* ---- waiters ------------------------------------------------------------ */

static struct raft_waiter *waiter_add(trp_raft *r, int kind, uint64_t origin, uint64_t client,
                                      uint64_t req)
{
    struct raft_waiter *w;
    if (kind == TRP_RAFT_REPLY_APPEND) {
        /* the ring's seqs stay initialized from first use to client_free,
         * so an append costs GMP no allocation */
        if (!r->appends) {
            if (!(r->appends = calloc(r->cfg.max_pending, sizeof *r->appends)))
                abort();
            for (size_t i = 0; i < r->cfg.max_pending; i++)
                mpz_init(r->appends[i].seq);
        }
        if (r->n_appends >= r->cfg.max_pending)
            return NULL;
        w = &r->appends[(r->appends_head + r->n_appends++) % r->cfg.max_pending];
    } else {
        if (!r->waiters && !(r->waiters = calloc(r->cfg.max_pending, sizeof *r->waiters)))
            abort();
        if (r->n_waiters >= r->cfg.max_pending)
            return NULL;
        w = &r->waiters[r->n_waiters++];
        mpz_init(w->seq);
    }
    mpz_set_ui(w->seq, 0);
    w->has_hash = false;
    w->read_id = 0;
    w->read_started = false;
    w->kind = kind;
    w->origin = origin;
    w->client = client;
    w->req = req;
    return w;
}

static void waiter_remove(trp_raft *r, size_t i)
{
    mpz_clear(r->waiters[i].seq);
    r->waiters[i] = r->waiters[--r->n_waiters];
}

/* Appends wait in the order the leader appended them, so each commit
 * answers from the front and stops at the first one not yet committed
 * (a retry of an older request may wait behind newer ones: a little
 * later, never wrong). */
void client_commit_advanced(trp_raft *r)
{
    if (r->role != TRP_RAFT_LEADER)
        return;
    while (r->n_appends) {
        struct raft_waiter *w = &r->appends[r->appends_head];
        if (mpz_cmp(w->seq, r->commit_next) >= 0)
            break;
        trp_raft_entry e;
        if (!w->has_hash) {
            if (raft_read_entry(r, w->seq, &e))
                return;
            memcpy(w->hash, e.hash, TRP_RAFT_HASH_LEN);
        }
        raft_reply(r, w->kind, w->origin, w->client, w->req, TRP_OK, w->seq, w->hash);
        r->appends_head = (r->appends_head + 1) % r->cfg.max_pending;
        r->n_appends--;
    }
}

void client_read_confirmed(trp_raft *r)
{
    for (size_t i = 0; i < r->n_waiters;) {
        struct raft_waiter *w = &r->waiters[i];
        if (w->kind != TRP_RAFT_REPLY_READ || !w->read_started ||
            !quorum_read_confirmed(r, w->read_id)) {
            i++;
            continue;
        }
        raft_reply(r, w->kind, w->origin, w->client, w->req, TRP_OK, w->seq, NULL);
        waiter_remove(r, i);
    }
}

/* ReadIndex step 2-3: take the commit as the read index and confirm we are
 * still leader with one heartbeat round to a quorum. */
void client_leader_can_read(trp_raft *r)
{
    bool any = false;
    for (size_t i = 0; i < r->n_waiters; i++) {
        struct raft_waiter *w = &r->waiters[i];
        if (w->kind == TRP_RAFT_REPLY_READ && !w->read_started) {
            if (!any)
                r->read_ctx++;
            any = true;
            w->read_started = true;
            w->read_id = r->read_ctx;
            mpz_set(w->seq, r->commit_next);
        }
    }
    if (any) {
        replication_heartbeat(r, r->read_ctx);
        client_read_confirmed(r);
    }
}

void client_lost_leadership(trp_raft *r)
{
    for (; r->n_appends; r->n_appends--) {
        struct raft_waiter *w = &r->appends[r->appends_head];
        /* Outcome unknown for appends: the client retries with the same
         * request number and the session table answers it exactly once. */
        raft_reply(r, w->kind, w->origin, w->client, w->req, TRP_EUNAVAIL, NULL, NULL);
        r->appends_head = (r->appends_head + 1) % r->cfg.max_pending;
    }
    for (size_t i = 0; i < r->n_waiters; i++) {
        struct raft_waiter *w = &r->waiters[i];
        raft_reply(r, w->kind, w->origin, w->client, w->req, TRP_EUNAVAIL, NULL, NULL);
        mpz_clear(w->seq);
    }
    r->n_waiters = 0;
}

void client_free(trp_raft *r)
{
    sessions_clear(r);
    for (size_t i = 0; i < r->n_waiters; i++)
        mpz_clear(r->waiters[i].seq);
    if (r->appends)
        for (size_t i = 0; i < r->cfg.max_pending; i++)
            mpz_clear(r->appends[i].seq);
    free(r->sessions);
    idmap_free(&r->session_index);
    free(r->waiters);
    free(r->appends);
    free(r->entry_buf);
}

/* ---- requests ----------------------------------------------------------- */

static void forward(trp_raft *r, int type, uint64_t client, uint64_t req, const void *payload,
                    size_t len, const uint8_t *if_head)
{
    trp_raft_msg *m = raft_msg_new(r, type, r->leader);
    m->client = client;
    m->req = req;
    if (type == TRP_RAFT_PROPOSE) {
        m->payload = malloc(len ? len : 1);
        if (!m->payload)
            abort();
        if (len)
            memcpy(m->payload, payload, len);
        m->len = len;
        if (if_head) {
            m->flag = true;
            memcpy(m->hash, if_head, TRP_RAFT_HASH_LEN);
        }
    }
}

int client_propose(trp_raft *r, uint64_t origin, uint64_t client, uint64_t req, const void *payload,
                   size_t len, const uint8_t *if_head)
{
    const int kind = TRP_RAFT_REPLY_APPEND;
    if (r->role != TRP_RAFT_LEADER) {
        if (!origin && r->leader) /* ours: forward to the leader */
            forward(r, TRP_RAFT_PROPOSE, client, req, payload, len, if_head);
        else /* no leader known, or a forward that reached a non-leader */
            raft_reply(r, kind, origin, client, req, TRP_EUNAVAIL, NULL, NULL);
        return 0;
    }
    if (len > r->cfg.max_entry - TRP_RAFT_ENVELOPE_LEN) {
        raft_reply(r, kind, origin, client, req, TRP_ETOOBIG, NULL, NULL);
        return 0;
    }
    struct raft_session *s = client ? session_find(r, client) : NULL;
    int k = s ? session_lookup(s, req) : -1;
    if (k >= 0) { /* a retry: answer with the original seq, once committed */
        if (mpz_cmp(s->seq[k], r->commit_next) < 0) {
            trp_raft_entry e;
            if (raft_read_entry(r, s->seq[k], &e) == 0)
                raft_reply(r, kind, origin, client, req, TRP_OK, s->seq[k], e.hash);
            return 0;
        }
        struct raft_waiter *w = waiter_add(r, kind, origin, client, req);
        if (!w) {
            raft_reply(r, kind, origin, client, req, TRP_EUNAVAIL, NULL, NULL);
            return 0;
        }
        mpz_set(w->seq, s->seq[k]);
        return 0;
    }
    if (s && session_too_old(s, req)) {
        raft_reply(r, kind, origin, client, req, TRP_EINVAL, NULL, NULL);
        return 0;
    }
    if (if_head && memcmp(if_head, r->head_hash, TRP_RAFT_HASH_LEN) != 0) {
        raft_reply(r, kind, origin, client, req, TRP_ECONFLICT, r->next, r->head_hash);
        return 0;
    }
    struct raft_waiter *w = waiter_add(r, kind, origin, client, req);
    if (!w) {
        raft_reply(r, kind, origin, client, req, TRP_EUNAVAIL, NULL, NULL);
        return 0;
    }
    size_t need = TRP_RAFT_ENVELOPE_LEN + len;
    if (need > r->entry_cap) {
        uint8_t *nb = realloc(r->entry_buf, need);
        if (!nb)
            abort();
        r->entry_buf = nb;
        r->entry_cap = need;
    }
    uint8_t *buf = r->entry_buf;
    trp_raft_envelope_put(buf, client, req);
    if (len)
        memcpy(buf + TRP_RAFT_ENVELOPE_LEN, payload, len);
    int rc = replication_leader_append(r, TRP_RAFT_ENTRY_DATA, buf, need, w->seq, w->hash);
    w->has_hash = rc == 0;
    if (rc)
        return rc;
    /* sent when the driver next takes a ready: every proposal of one
     * datagram (or one loop turn) goes out in the same append message,
     * instead of the first few filling the window one entry each */
    r->flush_wanted = true;
    return 0;
}

int client_read(trp_raft *r, uint64_t origin, uint64_t client, uint64_t req)
{
    const int kind = TRP_RAFT_REPLY_READ;
    if (r->role != TRP_RAFT_LEADER) {
        if (!origin && r->leader)
            forward(r, TRP_RAFT_READ, client, req, NULL, 0, NULL);
        else
            raft_reply(r, kind, origin, client, req, TRP_EUNAVAIL, NULL, NULL);
        return 0;
    }
    if (!waiter_add(r, kind, origin, client, req)) {
        raft_reply(r, kind, origin, client, req, TRP_EUNAVAIL, NULL, NULL);
        return 0;
    }
    if (r->leader_can_read)
        client_leader_can_read(r);
    return 0;
}

void client_receive(trp_raft *r, const trp_raft_msg *m)
{
    switch (m->type) {
    case TRP_RAFT_PROPOSE:
        client_propose(r, m->from, m->client, m->req, m->payload, m->len, m->flag ? m->hash : NULL);
        break;
    case TRP_RAFT_READ:
        client_read(r, m->from, m->client, m->req);
        break;
    case TRP_RAFT_PROPOSE_RESP:
    case TRP_RAFT_READ_RESP: {
        int kind = m->type == TRP_RAFT_PROPOSE_RESP ? TRP_RAFT_REPLY_APPEND : TRP_RAFT_REPLY_READ;
        raft_reply(r, kind, 0, m->client, m->req, m->status, m->seq, m->hash);
        r->replies[r->n_replies - 1].leader_hint = m->leader_hint;
        break;
    }
    default:
        break;
    }
}
