/*
 * server_disk.c: trp-node's storage: the core's storage adapter over the
 * log store, and the disk thread that runs the fsyncs.
 *
 * The one idea: the loop thread does every write() (trp_log_append buffers,
 * trp_log_write writes a batch); the disk thread only waits in fdatasync on
 * duplicated descriptors, and in the term/vote file's fsync, then wakes the
 * loop through its eventfd. One log batch and one term/vote write are in
 * flight at most; what is appended meanwhile becomes the next batch (group
 * commit). A truncation (rare: a follower's conflicting tail) first waits
 * for the batch in flight, then runs synchronously.
 *
 * The newest entries (up to SERVER_CACHE_ENTRIES / _BYTES) are also kept in
 * memory: a leader reads each new entry back once per follower and once to
 * answer its client, and the store's read re-checks and re-hashes it.
 */
#include "server.h"

#include <stdlib.h>
#include <string.h>

/* ---- the storage adapter (trp_raft_storage) ------------------------------- */

static void st_bounds(void *u, mpz_t first, mpz_t next)
{
    trp_server *s = u;
    trp_log_first(s->log, first);
    trp_log_next(s->log, next);
}

static void st_anchor(void *u, uint8_t out[TRP_RAFT_HASH_LEN])
{
    trp_server *s = u;
    if (trp_log_empty(s->log)) {
        memcpy(out, trp_log_head_hash(s->log), TRP_RAFT_HASH_LEN);
        return;
    }
    mpz_t first;
    mpz_init(first);
    trp_log_first(s->log, first);
    if (trp_log_read(s->log, first, &s->e, NULL) == 0)
        memcpy(out, s->e.prev, TRP_RAFT_HASH_LEN);
    else
        memset(out, 0, TRP_RAFT_HASH_LEN);
    mpz_clear(first);
}

/* ---- the cache of the newest entries --------------------------------------------- */

/* The entries sit in a ring of SERVER_CACHE_ENTRIES records; their payloads
 * sit in cache_ring, a ring of bytes filled in the same order: an entry
 * goes at the tail, or at offset 0 when the tail has too little room left
 * (its span then counts the skipped end). Entries leave from the head
 * (oldest) or, on a truncation, from the tail, so the bytes in use are
 * always ring_used bytes from ring_start. The byte ring starts small and
 * doubles up to SERVER_CACHE_BYTES; no entry costs a malloc. */

static struct cached *cache_at(trp_server *s, size_t i)
{
    return &s->cache[(s->cache_head + i) % SERVER_CACHE_ENTRIES];
}

static void cache_drop_oldest(trp_server *s)
{
    struct cached *c = cache_at(s, 0);
    s->ring_start = (c->off + c->len) % (s->ring_cap ? s->ring_cap : 1);
    s->ring_used -= c->span;
    s->cache_head = (s->cache_head + 1) % SERVER_CACHE_ENTRIES;
    s->cache_count--;
    mpz_add_ui(s->cache_base, s->cache_base, 1);
    if (!s->cache_count)
        s->ring_start = s->ring_used = 0;
}

static void cache_clear(trp_server *s)
{
    while (s->cache_count)
        cache_drop_oldest(s);
}

/* Room for len payload bytes at the ring's tail: the offset, and the span
 * it uses, or false. */
static bool ring_fit(const trp_server *s, size_t len, size_t *off, size_t *span)
{
    size_t cap = s->ring_cap;
    if (!cap)
        return false;
    size_t tail = (s->ring_start + s->ring_used) % cap;
    bool wrapped = s->ring_used && tail <= s->ring_start;
    size_t room = wrapped ? s->ring_start - tail : cap - tail;
    if (len <= room && s->ring_used + len <= cap) {
        *off = tail;
        *span = len;
        return true;
    }
    /* skip the end of the ring and start again at 0, before ring_start */
    if (wrapped || len > (s->ring_used ? s->ring_start : cap))
        return false;
    *off = 0;
    *span = (cap - tail) + len;
    return s->ring_used + *span <= cap;
}

/* Double the byte ring (up to SERVER_CACHE_BYTES) to hold at least need
 * more bytes, moving the cached payloads to its start, in order. */
static bool ring_grow(trp_server *s, size_t need)
{
    size_t cap = s->ring_cap ? s->ring_cap : SERVER_CACHE_FIRST_BYTES;
    while (cap < s->ring_used + need && cap < SERVER_CACHE_BYTES)
        cap *= 2;
    if (cap <= s->ring_cap)
        cap = s->ring_cap * 2;
    if (cap > SERVER_CACHE_BYTES || cap < s->ring_used + need)
        return false;
    uint8_t *n = malloc(cap);
    if (!n)
        return false;
    size_t at = 0;
    for (size_t i = 0; i < s->cache_count; i++) {
        struct cached *c = cache_at(s, i);
        if (c->len)
            memcpy(n + at, s->cache_ring + c->off, c->len);
        c->off = at;
        c->span = c->len;
        at += c->len;
    }
    free(s->cache_ring);
    s->cache_ring = n;
    s->ring_cap = cap;
    s->ring_start = 0;
    s->ring_used = at;
    return true;
}

/* Keep entry seq (just appended at the log's end) in the cache. */
void server_cache_put(trp_server *s, const mpz_t seq, const trp_raft_entry *e)
{
    if (!s->cache) {
        s->cache = calloc(SERVER_CACHE_ENTRIES, sizeof *s->cache);
        if (!s->cache)
            return;
    }
    mpz_add_ui(s->cache_tmp, s->cache_base, s->cache_count);
    if (mpz_cmp(s->cache_tmp, seq) != 0) { /* not contiguous (first use, or after a gap): restart */
        cache_clear(s);
        mpz_set(s->cache_base, seq);
    }
    if (e->len > SERVER_CACHE_BYTES / 4) { /* too big to keep: leave a gap */
        cache_clear(s);
        return;
    }
    if (s->cache_count == SERVER_CACHE_ENTRIES)
        cache_drop_oldest(s);
    size_t off, span;
    while (!ring_fit(s, e->len, &off, &span)) {
        if (!ring_grow(s, e->len)) {
            if (!s->cache_count) {
                mpz_add_ui(s->cache_base, s->cache_base, 1); /* left out: the cache starts after it */
                return;
            }
            cache_drop_oldest(s);
        }
    }
    if (e->len)
        memcpy(s->cache_ring + off, e->payload, e->len);
    struct cached *c = cache_at(s, s->cache_count);
    *c = (struct cached){e->term, e->type, {0}, off, e->len, span};
    memcpy(c->hash, e->hash, TRP_HASH_LEN);
    s->cache_count++;
    s->ring_used += span;
}

/* Forget cached entries >= from (a truncation). */
void server_cache_cut(trp_server *s, const mpz_t from)
{
    for (;;) {
        mpz_add_ui(s->cache_tmp, s->cache_base, s->cache_count);
        if (!s->cache_count || mpz_cmp(s->cache_tmp, from) <= 0)
            break;
        struct cached *c = cache_at(s, s->cache_count - 1);
        s->ring_used -= c->span;
        s->cache_count--;
    }
    if (!s->cache_count)
        s->ring_start = s->ring_used = 0;
}

void server_cache_free(trp_server *s)
{
    cache_clear(s);
    free(s->cache);
    s->cache = NULL;
    free(s->cache_ring);
    s->cache_ring = NULL;
    s->ring_cap = 0;
}

bool server_cache_get(trp_server *s, const mpz_t seq, trp_raft_entry *e)
{
    if (!s->cache_count || mpz_cmp(seq, s->cache_base) < 0)
        return false;
    mpz_sub(s->cache_tmp, seq, s->cache_base);
    if (mpz_cmp_ui(s->cache_tmp, s->cache_count) >= 0)
        return false;
    const struct cached *c = cache_at(s, (size_t)mpz_get_ui(s->cache_tmp));
    e->term = c->term;
    e->type = c->type;
    memcpy(e->hash, c->hash, TRP_RAFT_HASH_LEN);
    e->payload = s->cache_ring + c->off;
    e->len = c->len;
    return true;
}

static int st_read(void *u, const mpz_t seq, trp_raft_entry *e, trp_err *err)
{
    trp_server *s = u;
    if (server_cache_get(s, seq, e))
        return 0;
    int rc = trp_log_read(s->log, seq, &s->e, err);
    if (rc)
        return rc;
    e->term = s->e.term;
    e->type = s->e.type;
    memcpy(e->hash, s->e.hash, TRP_RAFT_HASH_LEN);
    e->payload = s->e.payload;
    e->len = s->e.len;
    return 0;
}

static int st_append(void *u, const mpz_t seq, const trp_raft_entry *e, trp_err *err)
{
    trp_server *s = u;
    /* the store appends at its next; the core keeps them equal */
    /* the core hashed the entry with trp_entry_hash (its env): not twice */
    int rc = trp_log_append_hashed(s->log, e->term, e->type, e->payload, e->len, e->hash, err);
    if (rc)
        return rc;
    server_cache_put(s, seq, e);
    s->sync_wanted = true;
    return 0;
}

/* Wait for the batch in flight and mark it durable (loop thread). */
static int disk_drain(trp_server *s, trp_err *err)
{
    if (!s->batch_inflight)
        return 0;
    pthread_mutex_lock(&s->d.mu);
    while (!s->d.batch_done)
        pthread_cond_wait(&s->d.done_cv, &s->d.mu);
    s->d.batch_done = false;
    pthread_mutex_unlock(&s->d.mu);
    s->batch_inflight = false;
    return trp_log_mark_durable(s->log, &s->d.batch, err);
}

static int st_truncate(void *u, const mpz_t from, trp_err *err)
{
    trp_server *s = u;
    int rc = disk_drain(s, err);
    server_cache_cut(s, from);
    if (!rc)
        rc = trp_log_truncate(s->log, from, err);
    if (!rc) {
        /* everything left is durable now (truncate syncs first) */
        trp_log_durable_next(s->log, s->persisted_next);
        s->persisted_pending = true;
    }
    return rc;
}

void server_storage(trp_server *s, trp_raft_storage *st)
{
    *st = (trp_raft_storage){s, st_bounds, st_anchor, st_read, st_append, st_truncate};
}

/* ---- the disk thread -------------------------------------------------------- */

static void *disk_main(void *arg)
{
    trp_server *s = arg;
    struct disk *d = &s->d;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->stop && !d->meta_req && !d->batch_req)
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->stop)
            break;
        if (d->meta_req) {
            trp_meta m = d->meta;
            d->meta_req = false;
            pthread_mutex_unlock(&d->mu);
            trp_err e = {0};
            int rc = trp_log_meta_set(s->log, &m, &e);
            pthread_mutex_lock(&d->mu);
            d->meta_rc = rc;
            d->meta_err = e;
            d->meta_done = true;
        } else {
            d->batch_req = false;
            pthread_mutex_unlock(&d->mu);
            trp_err e = {0};
            int rc = trp_log_batch_fsync(&d->batch, &e); /* touches only the batch */
            pthread_mutex_lock(&d->mu);
            d->batch_rc = rc;
            d->batch_done = true;
        }
        pthread_cond_broadcast(&d->done_cv);
        trp_loop_wake(s->loop);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

int server_disk_open(trp_server *s, trp_err *err)
{
    pthread_mutex_init(&s->d.mu, NULL);
    pthread_cond_init(&s->d.cv, NULL);
    pthread_cond_init(&s->d.done_cv, NULL);
    trp_log_batch_init(&s->d.batch);
    if (pthread_create(&s->d.thread, NULL, disk_main, s) != 0)
        return trp_err_set(err, TRP_EIO, "cannot start the disk thread");
    s->d.started = true;
    return 0;
}

void server_disk_close(trp_server *s)
{
    if (s->d.started) {
        pthread_mutex_lock(&s->d.mu);
        s->d.stop = true;
        pthread_cond_broadcast(&s->d.cv);
        pthread_mutex_unlock(&s->d.mu);
        pthread_join(s->d.thread, NULL);
        s->d.started = false;
        trp_log_batch_clear(&s->d.batch);
        pthread_mutex_destroy(&s->d.mu);
        pthread_cond_destroy(&s->d.cv);
        pthread_cond_destroy(&s->d.done_cv);
    }
}

void server_disk_post_meta(trp_server *s, uint64_t term, uint64_t vote)
{
    pthread_mutex_lock(&s->d.mu);
    s->d.meta = (trp_meta){.term = term, .vote = vote};
    s->d.meta_req = true;
    pthread_cond_signal(&s->d.cv);
    pthread_mutex_unlock(&s->d.mu);
}

/* A spare (trp_raft_spare: a follower the leader's commits do not wait
 * for) defers its sync up to spare_sync_ms after the first entry it holds
 * unsynced, and then syncs them all at once. Its acknowledgements (and its
 * own commit) come that much later; nothing else changes, since it still
 * acknowledges only what is durable. What it saves is fdatasyncs: where
 * the nodes share a disk, the quorum's syncs no longer queue behind the
 * spare's (this machine, 100 B writes: one fdatasync alone 173 us,
 * two at once 273 us, three 435 us). */
static bool spare_defers(trp_server *s)
{
    if (!s->cfg->spare_sync_ms || s->stopping || !trp_raft_spare(s->raft)) {
        s->spare_since_ms = 0;
        return false;
    }
    uint64_t now = trp_loop_now_ms();
    if (!s->spare_since_ms)
        s->spare_since_ms = now ? now : 1;
    uint64_t due = s->spare_since_ms + s->cfg->spare_sync_ms;
    if (now >= due) {
        s->spare_since_ms = 0;
        return false;
    }
    trp_loop_timer_arm(s->loop, s->spare_timer, due);
    return true;
}

/* Write what was appended as a batch and hand its fsync to the thread. */
void server_disk_kick(trp_server *s)
{
    if (s->batch_inflight || !s->sync_wanted || s->failed || spare_defers(s))
        return;
    s->sync_wanted = false;
    trp_err err;
    trp_err_clear(&err);
    int rc = trp_log_write(s->log, &s->d.batch, &err);
    if (rc) {
        server_fail(s, &err);
        return;
    }
    if (s->d.batch.empty) {
        mpz_set(s->persisted_next, s->d.batch.next);
        s->persisted_pending = true;
        return;
    }
    s->batch_inflight = true;
    pthread_mutex_lock(&s->d.mu);
    s->d.batch_req = true;
    pthread_cond_signal(&s->d.cv);
    pthread_mutex_unlock(&s->d.mu);
}

void server_disk_collect(trp_server *s, bool *meta_done, int *meta_rc, trp_err *meta_err)
{
    bool batch_done;
    pthread_mutex_lock(&s->d.mu);
    *meta_done = s->d.meta_done;
    *meta_rc = s->d.meta_rc;
    *meta_err = s->d.meta_err;
    s->d.meta_done = false;
    batch_done = s->d.batch_done;
    s->d.batch_done = false;
    pthread_mutex_unlock(&s->d.mu);
    if (batch_done && s->batch_inflight) {
        s->batch_inflight = false;
        trp_err err;
        trp_err_clear(&err);
        if (trp_log_mark_durable(s->log, &s->d.batch, &err)) {
            server_fail(s, &err);
            return;
        }
        mpz_set(s->persisted_next, s->d.batch.next);
        s->persisted_pending = true;
    }
}
