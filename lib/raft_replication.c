/*
 * raft_replication.c: log replication and commit (Raft §5.3, §5.4.2 and
 * figure 8; etcd-style progress tracking with a bounded pipeline).
 *
 * The one idea: an append carries the seq, term and chain hash of the entry
 * before it, the entries' (term, type, payload), and the hash the last one
 * must have. A follower recomputes the chain and accepts the message only
 * if it extends its own log exactly; it truncates only where a term really
 * differs (never a matching suffix, never below its commit), and it
 * acknowledges only entries that are both verified against this leader and
 * durable. The leader's own copy counts once durable, and the commit moves
 * only to an entry of the leader's current term (figure 8).
 */
#include "raft.h"

#include <stdlib.h>

#define HINT_SCAN_MAX 1024 /* entries scanned back for a fast-backtrack hint */

static void inflight_clear(trp_raft *r, struct raft_peer *p)
{
    (void)r;
    p->inflight_head = p->inflight_count = 0;
    p->inflight_bytes_total = 0;
}

static bool inflight_full(const trp_raft *r, const struct raft_peer *p)
{
    return p->inflight_count >= r->cfg.max_inflight_msgs || p->inflight_bytes_total >= p->window;
}

static void inflight_add(trp_raft *r, struct raft_peer *p, const mpz_t end, uint32_t bytes)
{
    assert(p->inflight_count < r->cfg.max_inflight_msgs);
    size_t k = (p->inflight_head + p->inflight_count) % r->cfg.max_inflight_msgs;
    mpz_set(p->inflight_end[k], end);
    p->inflight_bytes[k] = bytes;
    p->inflight_count++;
    p->inflight_bytes_total += bytes;
}

/* Free every in-flight append the peer has acknowledged up to match. */
static void inflight_free_to(trp_raft *r, struct raft_peer *p, const mpz_t match)
{
    while (p->inflight_count && mpz_cmp(p->inflight_end[p->inflight_head], match) <= 0) {
        p->inflight_bytes_total -= p->inflight_bytes[p->inflight_head];
        p->inflight_head = (p->inflight_head + 1) % r->cfg.max_inflight_msgs;
        p->inflight_count--;
    }
}

void replication_reset_peer(trp_raft *r, struct raft_peer *p)
{
    mpz_set(p->next, r->next);
    mpz_set(p->match, r->first);
    p->progress = PROGRESS_PROBE;
    p->probe_sent = false;
    p->stall_ticks = 0;
    p->stall_limit = RAFT_STALL_TICKS;
    p->window = r->cfg.max_inflight_bytes;
    p->last_heard_ms = r->now_ms;
    p->read_ctx = 0;
    p->spare = false;
    inflight_clear(r, p);
}

/* Append one entry to our own log (leader: a new entry; follower: one
 * received and verified); keeps the head and the sessions current. */
static int log_append(trp_raft *r, uint64_t term, int type, const uint8_t *payload, size_t len,
                      const uint8_t hash[TRP_RAFT_HASH_LEN])
{
    trp_raft_entry e = {.term = term, .type = type, .payload = payload, .len = len};
    memcpy(e.hash, hash, TRP_RAFT_HASH_LEN);
    trp_err err;
    trp_err_clear(&err);
    int rc = r->st.append(r->st.user, r->next, &e, &err);
    if (rc)
        return raft_fail(r, rc, &err);
    client_session_note(r, r->next, payload, len, type);
    mpz_add_ui(r->next, r->next, 1);
    memcpy(r->head_hash, hash, TRP_RAFT_HASH_LEN);
    r->head_term = term;
    r->sync_wanted = true;
    return 0;
}

/* Remove our entries >= from (a real conflict with the leader). */
static int log_truncate(trp_raft *r, const mpz_t from)
{
    assert(mpz_cmp(from, r->commit_next) >= 0);
    assert(mpz_cmp(from, r->verified_next) >= 0);
    trp_err err;
    trp_err_clear(&err);
    int rc = r->st.truncate(r->st.user, from, &err);
    if (rc)
        return raft_fail(r, rc, &err);
    mpz_set(r->next, from);
    if (mpz_cmp(r->durable_next, from) > 0)
        mpz_set(r->durable_next, from);
    if (mpz_cmp(from, r->first) == 0) {
        memcpy(r->head_hash, r->anchor, TRP_RAFT_HASH_LEN);
        r->head_term = 0;
    } else {
        mpz_sub_ui(r->tmp, from, 1);
        trp_raft_entry e;
        if (raft_read_entry(r, r->tmp, &e))
            return -1;
        memcpy(r->head_hash, e.hash, TRP_RAFT_HASH_LEN);
        r->head_term = e.term;
    }
    client_sessions_truncated(r, from);
    return 0;
}

int replication_leader_append(trp_raft *r, int type, const void *payload, size_t len, mpz_t seq_out,
                              uint8_t hash_out[TRP_RAFT_HASH_LEN])
{
    assert(r->role == TRP_RAFT_LEADER);
    uint8_t hash[TRP_RAFT_HASH_LEN];
    r->env.hash_entry(hash, r->next, r->term, type, r->head_hash, payload, len);
    if (seq_out)
        mpz_set(seq_out, r->next);
    if (hash_out)
        memcpy(hash_out, hash, TRP_RAFT_HASH_LEN);
    return log_append(r, r->term, type, payload, len, hash);
}

/* Raft §5.2/§8: a new leader. It appends a no-op only when its log holds
 * entries it does not know to be committed: that entry of its own term is
 * what lets it commit them (figure 8) and serve reads. */
/* Spares (trp_raft_spare): the followers a commit does not wait for. The
 * leader keeps the followers it needed that still answer (within two
 * heartbeats) and replicate (a new leader: the first whose probe is
 * answered, as it is the first to replicate), then adds, in config order,
 * spares that also hold everything committed, until they and it form a
 * quorum, and drops any it can do without; the rest are spares. If those
 * cannot form a quorum, no follower is a spare. Safety does not depend on
 * the choice (every follower acknowledges only what is durable); only
 * which acks come late does. Recomputed every heartbeat and when a probe
 * succeeds, so a needed follower that falls silent is replaced within
 * about two heartbeats, and meanwhile the spares' batched syncs still
 * commit. */
void replication_pick_spares(trp_raft *r)
{
    bool in[TRP_RAFT_MAX_NODES] = {false};
    in[r->self] = true;
    bool q = quorum_of(r, in);
    uint64_t window = 2 * (uint64_t)r->cfg.heartbeat_ms;
    uint64_t since = r->now_ms > window ? r->now_ms - window : 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < r->n && !q; i++) {
            const struct raft_peer *p = &r->peers[i];
            if (i == r->self || in[i] || p->last_heard_ms < since ||
                p->progress != PROGRESS_REPLICATE)
                continue;
            if (pass == 0 ? p->spare : mpz_cmp(p->match, r->commit_next) < 0)
                continue;
            in[i] = true;
            q = quorum_of(r, in);
        }
    }
    /* with groups, config order may have taken more than needed (a second
     * node of a group that already had its majority): drop those */
    for (size_t i = r->n; q && i-- > 0;) {
        if (i == r->self || !in[i])
            continue;
        in[i] = false;
        if (!quorum_of(r, in))
            in[i] = true;
    }
    for (size_t i = 0; i < r->n; i++)
        r->peers[i].spare = r->cfg.spares && q && !in[i];
}

void replication_become_leader(trp_raft *r)
{
    /* elected: its log is the cluster's now (rejoining voters elect only a
     * rejoining node, so this one was rejoining only if a quorum was) */
    r->rejoining = false;
    r->role = TRP_RAFT_LEADER;
    r->leader = r->cfg.self;
    r->leader_heard = false;
    for (size_t i = 0; i < r->n; i++)
        replication_reset_peer(r, &r->peers[i]);
    mpz_set(r->peers[r->self].match, r->durable_next);
    mpz_set(r->term_start, r->next);
    r->leader_can_read = mpz_cmp(r->commit_next, r->next) == 0;
    r->read_ctx = 0;
    if (!r->leader_can_read &&
        replication_leader_append(r, TRP_RAFT_ENTRY_NOOP, NULL, 0, NULL, NULL))
        return;
    r->heartbeat_due_ms = r->now_ms + r->cfg.heartbeat_ms;
    replication_pick_spares(r);
    replication_flush(r);
    replication_maybe_commit(r);
    if (r->leader_can_read)
        client_leader_can_read(r);
}

/* Build and queue one append for p starting at `from`, with up to
 * max_bytes of entries (the first one whatever its size if first_always,
 * else none then); returns the next seq after its last entry in end, and
 * its entry bytes. */
static int send_append(trp_raft *r, struct raft_peer *p, const mpz_t from, mpz_t end,
                       uint32_t *bytes_out, uint64_t max_bytes, bool first_always)
{
    trp_raft_msg *m = raft_msg_new(r, TRP_RAFT_APPEND, p->id);
    mpz_set(m->seq, from);
    mpz_set(m->commit, r->commit_next);
    m->flag = p->spare;
    m->commit_current = r->leader_can_read;
    if (mpz_cmp(from, r->first) > 0) {
        mpz_sub_ui(r->tmp, from, 1);
        trp_raft_entry e;
        if (raft_read_entry(r, r->tmp, &e))
            return -1;
        m->log_term = e.term;
        memcpy(m->hash, e.hash, TRP_RAFT_HASH_LEN);
    } else {
        m->log_term = 0;
        memcpy(m->hash, r->anchor, TRP_RAFT_HASH_LEN);
    }
    memcpy(m->last_hash, m->hash, TRP_RAFT_HASH_LEN);
    /* the payloads go into one block, as decoding makes them: offsets
     * first (the block may move as it grows), pointers at the end. Both
     * start at the size the waiting entries suggest (at most all of them,
     * 128 bytes each, within max_msg_bytes), so a backlog's message is
     * not built by doubling and copying (realloc was 2.8% of a leader's
     * time under a piped trp-append) */
    mpz_sub(r->tmp, r->next, from);
    size_t avail = mpz_fits_ulong_p(r->tmp) && mpz_get_ui(r->tmp) < TRP_RAFT_CODEC_MAX_ENTRIES
                       ? (size_t)mpz_get_ui(r->tmp)
                       : TRP_RAFT_CODEC_MAX_ENTRIES;
    size_t cap = avail ? avail : 1, block_cap = avail * 128;
    if (block_cap > max_bytes)
        block_cap = (size_t)max_bytes;
    if (block_cap < 4096)
        block_cap = 4096;
    trp_raft_msg_entry *ne = realloc(m->entries, cap * sizeof *ne);
    uint8_t *nb = realloc(m->block, block_cap);
    if (!ne || !nb)
        abort();
    m->entries = ne;
    m->block = nb;
    size_t bytes = 0, count = 0;
    mpz_set(end, from);
    int rc = 0;
    while (mpz_cmp(end, r->next) < 0 && count < TRP_RAFT_CODEC_MAX_ENTRIES) {
        trp_raft_entry e;
        if ((rc = raft_read_entry(r, end, &e)))
            break;
        if (bytes + e.len > max_bytes && (count || !first_always))
            break; /* batching by bytes */
        if (count == cap) {
            cap *= 2;
            if (!(ne = realloc(m->entries, cap * sizeof *ne)))
                abort();
            m->entries = ne;
        }
        trp_raft_msg_entry *me = &m->entries[count++];
        m->n_entries = count;
        me->term = e.term;
        me->type = e.type;
        me->len = e.len;
        if (bytes + e.len > block_cap) {
            while (block_cap < bytes + e.len)
                block_cap *= 2;
            if (!(nb = realloc(m->block, block_cap)))
                abort();
            m->block = nb;
        }
        if (e.len)
            memcpy(m->block + bytes, e.payload, e.len);
        me->payload = (uint8_t *)(uintptr_t)bytes; /* an offset until the block is final */
        memcpy(m->last_hash, e.hash, TRP_RAFT_HASH_LEN);
        bytes += e.len;
        mpz_add_ui(end, end, 1);
    }
    for (size_t i = 0; i < count; i++)
        m->entries[i].payload = m->block + (uintptr_t)m->entries[i].payload;
    *bytes_out = (uint32_t)(bytes > UINT32_MAX ? UINT32_MAX : bytes);
    return rc ? -1 : 0;
}

/* Send what the peer's progress allows: one probe, or a pipeline of
 * batches bounded by max_inflight_msgs and max_inflight_bytes. */
static void send_appends(trp_raft *r, struct raft_peer *p)
{
    mpz_t end;
    mpz_init(end);
    uint32_t bytes = 0;
    uint64_t max = p->window < r->cfg.max_msg_bytes ? p->window : r->cfg.max_msg_bytes;
    if (p->progress == PROGRESS_PROBE) {
        if (!p->probe_sent && !send_append(r, p, p->next, end, &bytes,
                                           max < RAFT_PROBE_BYTES ? max : RAFT_PROBE_BYTES, false))
            p->probe_sent = true;
    } else {
        for (unsigned i = 0; i < r->cfg.max_inflight_msgs; i++) {
            if (inflight_full(r, p) || mpz_cmp(p->next, r->next) >= 0)
                break;
            if (p->inflight_count >= r->cfg.max_inflight_trickle) {
                mpz_sub(r->tmp2, r->next, p->next); /* the backlog */
                if (mpz_cmp_ui(r->tmp2, TRP_RAFT_BACKLOG_ENTRIES) < 0)
                    break;
            }
            if (send_append(r, p, p->next, end, &bytes, max, true))
                break;
            inflight_add(r, p, end, bytes);
            mpz_set(p->next, end);
        }
    }
    mpz_clear(end);
}

void replication_flush(trp_raft *r)
{
    if (r->role != TRP_RAFT_LEADER)
        return;
    for (size_t i = 0; i < r->n && !r->failed; i++)
        if (i != r->self)
            send_appends(r, &r->peers[i]);
}

/* Heartbeats carry the commit, clamped to what the peer is known to hold,
 * and a context a ReadIndex waits to see echoed by a quorum. */
void replication_heartbeat(trp_raft *r, uint64_t ctx)
{
    for (size_t i = 0; i < r->n; i++) {
        if (i == r->self)
            continue;
        struct raft_peer *p = &r->peers[i];
        trp_raft_msg *m = raft_msg_new(r, TRP_RAFT_HEARTBEAT, p->id);
        if (mpz_cmp(p->match, r->commit_next) < 0)
            mpz_set(m->commit, p->match);
        else
            mpz_set(m->commit, r->commit_next);
        m->ctx = ctx;
        m->flag = p->spare;
    }
}

void replication_maybe_commit(trp_raft *r)
{
    if (r->role != TRP_RAFT_LEADER)
        return;
    mpz_set(r->peers[r->self].match, r->durable_next);
    mpz_t cand;
    mpz_init(cand);
    quorum_commit_candidate(r, cand);
    /* Figure 8: only an entry of our own term commits by counting; every
     * entry >= term_start is ours. */
    if (mpz_cmp(cand, r->term_start) > 0 && mpz_cmp(cand, r->commit_next) > 0) {
        raft_set_commit(r, cand);
        if (!r->leader_can_read) {
            r->leader_can_read = true;
            client_leader_can_read(r);
        }
    }
    mpz_clear(cand);
}

void replication_tick(trp_raft *r)
{
    /* Check-quorum / leader expiration: runs on every tick, independent of
     * the disk, so a leader cut off or stalled steps down in time. */
    uint64_t et = r->cfg.election_timeout_ms;
    if (r->now_ms >= et && !quorum_heard_since(r, r->now_ms - et)) {
        election_become_follower(r, r->term, 0);
        return;
    }
    if (r->now_ms < r->heartbeat_due_ms)
        return;
    r->heartbeat_due_ms = r->now_ms + r->cfg.heartbeat_ms;
    replication_pick_spares(r);
    replication_heartbeat(r, r->read_ctx);
    for (size_t i = 0; i < r->n; i++) {
        struct raft_peer *p = &r->peers[i];
        if (i == r->self)
            continue;
        if (p->progress == PROGRESS_PROBE) {
            p->probe_sent = false; /* the probe or its answer may be lost */
        } else if (mpz_cmp(p->match, r->next) == 0 && !p->inflight_count) {
            /* Caught up and idle: nothing would be sent to it again, so a
             * follower that lost entries since it acknowledged them (a
             * disk replaced, a directory emptied or restored from an older
             * copy while it was down) would not be found until the next
             * append. Now and then an empty append asks it to match our
             * end; it rejects it then, and the rejection repairs it. */
            if (++p->idle_ticks >= RAFT_IDLE_CHECK_TICKS) {
                p->idle_ticks = 0;
                mpz_t end;
                mpz_init(end);
                uint32_t bytes = 0;
                send_append(r, p, r->next, end, &bytes, 0, false);
                mpz_clear(end);
            }
        } else if (mpz_cmp(p->match, r->next) < 0 && ++p->stall_ticks >= p->stall_limit) {
            /* Behind and no progress for a few heartbeats: appends were
             * lost; fall back to probing from what it has, with less in
             * flight, or, at the least, more time (RAFT_STALL_TICKS). */
            p->progress = PROGRESS_PROBE;
            p->probe_sent = false;
            mpz_set(p->next, p->match);
            inflight_clear(r, p);
            p->stall_ticks = 0;
            if (p->window > RAFT_MIN_WINDOW)
                p->window = p->window / 2 > RAFT_MIN_WINDOW ? p->window / 2 : RAFT_MIN_WINDOW;
            else
                p->stall_limit = p->stall_limit * 2 < RAFT_STALL_TICKS_MAX ? p->stall_limit * 2
                                                                           : RAFT_STALL_TICKS_MAX;
        }
        send_appends(r, p);
    }
}

static void reply_append(trp_raft *r, uint64_t to, bool ok, const mpz_t seq, const mpz_t hint)
{
    trp_raft_msg *m = raft_msg_new(r, TRP_RAFT_APPEND_RESP, to);
    m->flag = ok;
    mpz_set(m->seq, seq);
    if (hint)
        mpz_set(m->hint, hint);
}

/* Where a rejected leader should retry: the first seq of our term at
 * seq (bounded scan), never below our commit. */
static void backtrack_hint(trp_raft *r, const mpz_t seq, uint64_t term, mpz_t hint)
{
    mpz_set(hint, seq);
    for (int i = 0; i < HINT_SCAN_MAX; i++) {
        if (mpz_cmp(hint, r->commit_next) <= 0 || mpz_cmp(hint, r->first) <= 0)
            break;
        mpz_sub_ui(r->tmp, hint, 1);
        uint64_t t;
        if (raft_term_at(r, r->tmp, &t) || t != term)
            break;
        mpz_set(hint, r->tmp);
    }
}

/* Acknowledge what is verified against this leader AND durable. An ack
 * that would repeat the last one to this leader (new entries, none of them
 * durable yet) is not sent: it tells the leader nothing (its in-flight
 * appends are freed only by what is durable), and it cost a datagram each
 * way, sent, on a node that shares a disk, before the fsync is started.
 * The ack for the new entries follows once they are durable. */
static void follower_ack(trp_raft *r)
{
    if (!r->leader)
        return;
    bool partial = mpz_cmp(r->verified_next, r->durable_next) > 0;
    mpz_srcptr match = partial ? r->durable_next : r->verified_next;
    r->ack_pending = partial;
    if (partial && mpz_cmp(match, r->acked_next) == 0)
        return;
    mpz_set(r->acked_next, match);
    reply_append(r, r->leader, true, match, NULL);
}

static void follower_commit(trp_raft *r)
{
    mpz_t c;
    mpz_init_set(c, r->leader_commit);
    if (mpz_cmp(c, r->verified_next) > 0)
        mpz_set(c, r->verified_next);
    if (mpz_cmp(c, r->durable_next) > 0)
        mpz_set(c, r->durable_next);
    raft_set_commit(r, c);
    mpz_clear(c);
    /* Our log holds, verified and durable, every entry below a commit of a
     * leader that had committed in its own term: every entry committed
     * before that term, so our copy counts again. */
    if (r->rejoining && r->rejoin_target_set && mpz_cmp(r->commit_next, r->rejoin_target) >= 0)
        r->rejoining = false;
}

/* A message from the leader of our term: follow it, restart the timer. */
static bool accept_leader(trp_raft *r, const trp_raft_msg *m)
{
    if (m->term < r->term)
        return false;
    assert(m->term == r->term);
    if (r->role == TRP_RAFT_LEADER)
        return false; /* impossible: two leaders in one term */
    if (r->role != TRP_RAFT_FOLLOWER || r->leader != m->from)
        election_become_follower(r, r->term, m->from);
    r->leader_heard = true;
    r->leader_heard_ms = r->now_ms;
    raft_reset_election_timer(r);
    if (mpz_cmp(m->commit, r->leader_commit) > 0)
        mpz_set(r->leader_commit, m->commit);
    return true;
}

/* Verify the message's chain: every entry's hash from the previous one,
 * ending at the hash the leader says the last entry has. */
static bool verify_chain(trp_raft *r, const trp_raft_msg *m, uint8_t (*hashes)[TRP_RAFT_HASH_LEN])
{
    const uint8_t *prev = m->hash;
    mpz_set(r->tmp2, m->seq);
    uint64_t last_term = m->log_term;
    for (size_t i = 0; i < m->n_entries; i++) {
        const trp_raft_msg_entry *e = &m->entries[i];
        if (e->term < last_term || e->term > m->term || e->len > r->cfg.max_entry ||
            (e->type != TRP_RAFT_ENTRY_DATA && e->type != TRP_RAFT_ENTRY_NOOP))
            return false;
        last_term = e->term;
        r->env.hash_entry(hashes[i], r->tmp2, e->term, e->type, prev, e->payload, e->len);
        prev = hashes[i];
        mpz_add_ui(r->tmp2, r->tmp2, 1);
    }
    return memcmp(prev, m->last_hash, TRP_RAFT_HASH_LEN) == 0;
}

/* Does our entry before m->seq match the message's prev (term and hash)? */
static int check_prev(trp_raft *r, const trp_raft_msg *m, mpz_t hint)
{
    if (mpz_cmp(m->seq, r->first) == 0)
        return m->log_term == 0 && memcmp(m->hash, r->anchor, TRP_RAFT_HASH_LEN) == 0 ? 0 : -2;
    mpz_sub_ui(r->tmp, m->seq, 1);
    trp_raft_entry e;
    uint8_t ours[TRP_RAFT_HASH_LEN];
    uint64_t term;
    if (mpz_cmp(m->seq, r->next) == 0) {
        term = r->head_term;
        memcpy(ours, r->head_hash, TRP_RAFT_HASH_LEN);
    } else {
        if (raft_read_entry(r, r->tmp, &e))
            return -2;
        term = e.term;
        memcpy(ours, e.hash, TRP_RAFT_HASH_LEN);
    }
    if (term != m->log_term) {
        mpz_t at;
        mpz_init_set(at, r->tmp);
        backtrack_hint(r, at, term, hint);
        mpz_clear(at);
        return -1;
    }
    /* Same term, different hash: the chains disagree where Raft says they
     * cannot. Refuse the message rather than corrupt the log. */
    return memcmp(ours, m->hash, TRP_RAFT_HASH_LEN) == 0 ? 0 : -2;
}

/* Apply verified entries: skip the ones we hold (same term), truncate at
 * the first real conflict, append the rest. */
static int apply_entries(trp_raft *r, const trp_raft_msg *m, uint8_t (*hashes)[TRP_RAFT_HASH_LEN])
{
    mpz_t seq;
    mpz_init_set(seq, m->seq);
    int rc = 0;
    for (size_t i = 0; i < m->n_entries && !rc; i++, mpz_add_ui(seq, seq, 1)) {
        const trp_raft_msg_entry *e = &m->entries[i];
        if (mpz_cmp(seq, r->next) < 0) {
            uint64_t term;
            if ((rc = raft_term_at(r, seq, &term)))
                break;
            if (term == e->term)
                continue; /* Log Matching: same seq and term, same entry */
            if (mpz_cmp(seq, r->commit_next) < 0 || mpz_cmp(seq, r->verified_next) < 0) {
                rc = -2; /* would remove a committed/verified entry: refuse */
                break;
            }
            if ((rc = log_truncate(r, seq)))
                break;
        }
        rc = log_append(r, e->term, e->type, e->payload, e->len, hashes[i]);
    }
    mpz_clear(seq);
    return rc;
}

void replication_receive_append(trp_raft *r, const trp_raft_msg *m)
{
    mpz_t hint;
    mpz_init(hint);
    if (!accept_leader(r, m)) {
        if (m->term < r->term)
            reply_append(r, m->from, false, m->seq, r->next); /* tells it our term */
        goto out;
    }
    r->spare = m->flag;
    if (r->rejoining && m->commit_current && !r->rejoin_target_set) {
        mpz_set(r->rejoin_target, m->commit);
        r->rejoin_target_set = true;
    }
    if (mpz_cmp(m->seq, r->first) < 0)
        goto out; /* below our log: needs a snapshot (not supported) */
    if (mpz_cmp(m->seq, r->next) > 0) {
        reply_append(r, m->from, false, m->seq, r->next); /* gap: we lack entries */
        goto out;
    }
    int rc = check_prev(r, m, hint);
    if (rc == -1) {
        reply_append(r, m->from, false, m->seq, hint);
        goto out;
    }
    if (rc || r->failed)
        goto out;
    uint8_t(*hashes)[TRP_RAFT_HASH_LEN] = malloc((m->n_entries + 1) * TRP_RAFT_HASH_LEN);
    if (!hashes)
        abort();
    if (!verify_chain(r, m, hashes) || apply_entries(r, m, hashes)) {
        free(hashes);
        goto out; /* corrupt or unsafe: dropped; the leader will retry */
    }
    free(hashes);
    mpz_add_ui(hint, m->seq, m->n_entries);
    if (mpz_cmp(hint, r->verified_next) > 0)
        mpz_set(r->verified_next, hint);
    follower_commit(r);
    follower_ack(r);
out:
    mpz_clear(hint);
}

void replication_persisted(trp_raft *r)
{
    if (r->role == TRP_RAFT_LEADER) {
        replication_maybe_commit(r);
        return;
    }
    follower_commit(r);
    if (r->ack_pending)
        follower_ack(r);
}

void replication_receive_append_resp(trp_raft *r, const trp_raft_msg *m)
{
    if (r->role != TRP_RAFT_LEADER || m->term != r->term)
        return;
    struct raft_peer *p = raft_peer_by_id(r, m->from);
    p->last_heard_ms = r->now_ms;
    if (m->flag) {
        if (mpz_cmp(m->seq, r->next) > 0 || mpz_cmp(m->seq, p->match) < 0)
            return; /* impossible or stale */
        if (mpz_cmp(m->seq, p->match) > 0) {
            p->stall_ticks = 0;
            if (p->stall_limit > RAFT_STALL_TICKS)
                p->stall_limit--;
        }
        mpz_set(p->match, m->seq);
        uint64_t before = p->inflight_bytes_total;
        inflight_free_to(r, p, p->match);
        p->window += (before - p->inflight_bytes_total) / 4;
        if (p->window > r->cfg.max_inflight_bytes)
            p->window = r->cfg.max_inflight_bytes;
        if (p->progress == PROGRESS_PROBE) {
            p->progress = PROGRESS_REPLICATE;
            p->probe_sent = false;
            mpz_set(p->next, p->match);
            inflight_clear(r, p);
            replication_pick_spares(r);
        } else if (mpz_cmp(p->next, p->match) < 0) {
            mpz_set(p->next, p->match);
        }
        replication_maybe_commit(r);
        send_appends(r, p);
        return;
    }
    if (mpz_cmp(m->seq, p->match) < 0)
        return; /* stale rejection of something since acknowledged */
    if (mpz_cmp(m->hint, p->match) < 0) {
        /* Its log now ends below what it acknowledged: it lost entries
         * (a disk replaced, a file cut back), or this answer is older than
         * the ack. What it holds is unknown again: from the start, as for a
         * new leader, and the probe finds out. Lowering a match only delays
         * commits; left as it was, the follower would never be repaired. */
        mpz_set(p->match, r->first);
        p->stall_ticks = 0;
        replication_pick_spares(r);
    }
    /* Fast backtracking: jump to the follower's hint, never below match. */
    const mpz_t *to = mpz_cmp(m->hint, m->seq) < 0 ? &m->hint : &m->seq;
    mpz_set(p->next, *to);
    if (mpz_cmp(p->next, p->match) < 0)
        mpz_set(p->next, p->match);
    if (mpz_cmp(p->next, r->next) > 0)
        mpz_set(p->next, r->next);
    p->progress = PROGRESS_PROBE;
    p->probe_sent = false;
    inflight_clear(r, p);
    send_appends(r, p);
}

void replication_receive_heartbeat(trp_raft *r, const trp_raft_msg *m)
{
    if (!accept_leader(r, m)) {
        if (m->term < r->term) {
            trp_raft_msg *resp = raft_msg_new(r, TRP_RAFT_HEARTBEAT_RESP, m->from);
            resp->ctx = m->ctx;
        }
        return;
    }
    r->spare = m->flag;
    follower_commit(r);
    trp_raft_msg *resp = raft_msg_new(r, TRP_RAFT_HEARTBEAT_RESP, m->from);
    resp->ctx = m->ctx;
}

void replication_receive_heartbeat_resp(trp_raft *r, const trp_raft_msg *m)
{
    if (r->role != TRP_RAFT_LEADER || m->term != r->term)
        return;
    struct raft_peer *p = raft_peer_by_id(r, m->from);
    p->last_heard_ms = r->now_ms;
    if (m->ctx > p->read_ctx && m->ctx <= r->read_ctx) {
        p->read_ctx = m->ctx;
        client_read_confirmed(r);
    }
}
