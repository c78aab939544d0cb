/*
 * tnode_trplog.c: the trp_node_log adapter over the segmented log store
 * (trp_log.h), so a trp_node keeps its log, term and vote on disk.
 *
 * The one idea: the core's storage contract maps one to one onto trp_log:
 * reads through the index, buffered appends, durable truncation, one
 * trp_log_sync per batch reporting trp_log_durable_next, and term and vote
 * in the atomically replaced metadata file. The commit watermark is the
 * store's MANUAL commit (trp_log_set_commit), so readers (trp-tail) see
 * only what Raft committed, and a restarted node trusts only that: a log
 * opened without manual_commit would set the watermark to its durable end
 * and the node would take uncommitted entries for committed ones. The
 * chain hash the core computes must equal the one the store computes on
 * append, so the node's hash_entry must be trp_entry_hash (the default);
 * every append checks it.
 */
#include "trp_log.h"
#include "trp_node.h"

#include <stdlib.h>
#include <string.h>

struct trplog_adapter {
    trp_node_log node_log; /* first: the public handle points here */
    trp_log *log;
    bool owned; /* opened by trp_node_log_trp_open: closed by _free */
    trp_entry e; /* last entry read; its payload lives until the next read or append */
    mpz_t tmp;
};

static void a_bounds(void *u, mpz_t first, mpz_t next)
{
    struct trplog_adapter *a = u;
    trp_log_first(a->log, first);
    trp_log_next(a->log, next);
}

/* The hash before `first`: the head hash of an empty log, else the prev
 * field of the first entry (after a trim, the segment's anchor). */
static void a_anchor(void *u, uint8_t out[TRP_RAFT_HASH_LEN])
{
    struct trplog_adapter *a = u;
    if (trp_log_empty(a->log)) {
        memcpy(out, trp_log_head_hash(a->log), TRP_RAFT_HASH_LEN);
        return;
    }
    trp_log_first(a->log, a->tmp);
    if (trp_log_read(a->log, a->tmp, &a->e, NULL) == TRP_OK)
        memcpy(out, a->e.prev, TRP_RAFT_HASH_LEN);
    else /* an unreadable first entry: the core's first read fails it */
        memset(out, 0, TRP_RAFT_HASH_LEN);
}

static int a_read(void *u, const mpz_t seq, trp_raft_entry *e, trp_err *err)
{
    struct trplog_adapter *a = u;
    int rc = trp_log_read(a->log, seq, &a->e, err);
    if (rc)
        return rc;
    e->term = a->e.term;
    e->type = a->e.type;
    memcpy(e->hash, a->e.hash, TRP_RAFT_HASH_LEN);
    e->payload = a->e.payload; /* the core copies what it keeps before its next storage call */
    e->len = a->e.len;
    return TRP_OK;
}

static int a_append(void *u, const mpz_t seq, const trp_raft_entry *e, trp_err *err)
{
    struct trplog_adapter *a = u;
    trp_log_next(a->log, a->tmp);
    if (mpz_cmp(seq, a->tmp) != 0) {
        char s1[128], s2[128];
        return trp_err_set(err, TRP_ESTATE, "%s: append at seq %s, but the log's next is %s",
                           trp_log_dir(a->log), trp_seq_str(s1, sizeof s1, seq),
                           trp_seq_str(s2, sizeof s2, a->tmp));
    }
    uint8_t h[TRP_HASH_LEN];
    int rc = trp_log_append(a->log, e->term, e->type, e->payload, e->len, h, err);
    if (rc)
        return rc;
    if (memcmp(h, e->hash, TRP_HASH_LEN) != 0) {
        /* the entry is in the buffer but unsynced; the core fail-stops */
        char s1[128];
        return trp_err_set(err, TRP_ECORRUPT,
                           "%s: seq %s: the store's chain hash differs from the core's (the "
                           "node's hash_entry must be trp_entry_hash)",
                           trp_log_dir(a->log), trp_seq_str(s1, sizeof s1, seq));
    }
    return TRP_OK;
}

/* trp_log_truncate syncs pending appends first, then removes [from, next)
 * durably, lowering the watermark first if needed (Raft never truncates
 * below its commit, so it is not). */
static int a_truncate(void *u, const mpz_t from, trp_err *err)
{
    struct trplog_adapter *a = u;
    return trp_log_truncate(a->log, from, err);
}

static int a_sync(void *u, mpz_t durable_next, trp_err *err)
{
    struct trplog_adapter *a = u;
    int rc = trp_log_sync(a->log, err); /* an fsync error is fatal for the handle */
    trp_log_durable_next(a->log, durable_next);
    return rc;
}

static int a_meta_get(void *u, uint64_t *term, uint64_t *vote, mpz_t commit, trp_err *err)
{
    struct trplog_adapter *a = u;
    trp_meta m = {0};
    int rc = trp_log_meta_get(a->log, &m);
    if (rc)
        return trp_err_set(err, rc, "%s: cannot read term and vote", trp_log_dir(a->log));
    *term = m.term;
    *vote = m.vote;
    trp_log_commit_next(a->log, commit); /* the manual watermark: what Raft committed */
    return TRP_OK;
}

static int a_meta_set(void *u, uint64_t term, uint64_t vote, trp_err *err)
{
    struct trplog_adapter *a = u;
    trp_meta m = {.term = term, .vote = vote};
    return trp_log_meta_set(a->log, &m, err);
}

/* The store clamps the watermark to its durable end and never moves it
 * back; the core only reports a commit it holds durably. */
static int a_commit_set(void *u, const mpz_t commit, trp_err *err)
{
    struct trplog_adapter *a = u;
    return trp_log_set_commit(a->log, commit, err);
}

int trp_node_log_trp(trp_node_log **out, trp_log *log, trp_err *err)
{
    *out = NULL;
    if (!log)
        return trp_err_set(err, TRP_EINVAL, "node log: no trp_log given");
    struct trplog_adapter *a = calloc(1, sizeof *a);
    if (!a)
        return trp_err_set(err, TRP_ENOMEM, "%s: out of memory", trp_log_dir(log));
    a->log = log;
    trp_entry_init(&a->e);
    mpz_init(a->tmp);
    trp_log_set_manual_commit(log, true);
    a->node_log.st = (trp_raft_storage){a, a_bounds, a_anchor, a_read, a_append, a_truncate};
    a->node_log.sync = a_sync;
    a->node_log.meta_get = a_meta_get;
    a->node_log.meta_set = a_meta_set;
    a->node_log.commit_set = a_commit_set;
    *out = &a->node_log;
    return TRP_OK;
}

int trp_node_log_trp_open(trp_node_log **out, const char *dir, const trp_log_options *opts,
                          trp_err *err)
{
    *out = NULL;
    trp_log_options o = {0};
    if (opts)
        o = *opts;
    if (o.read_only)
        return trp_err_set(err, TRP_EINVAL, "%s: a node's log cannot be read-only", dir);
    o.manual_commit = true;
    trp_log *log;
    int rc = trp_log_open(&log, dir, &o, err);
    if (rc)
        return rc;
    if ((rc = trp_node_log_trp(out, log, err))) {
        trp_log_close(log);
        return rc;
    }
    ((struct trplog_adapter *)*out)->owned = true;
    return TRP_OK;
}

trp_log *trp_node_log_trp_log(trp_node_log *nl)
{
    return nl ? ((struct trplog_adapter *)nl)->log : NULL;
}

void trp_node_log_trp_free(trp_node_log *nl)
{
    if (!nl)
        return;
    struct trplog_adapter *a = (struct trplog_adapter *)nl;
    if (a->owned)
        trp_log_close(a->log); /* unsynced appends are dropped, as after a crash */
    trp_entry_clear(&a->e);
    mpz_clear(a->tmp);
    free(a);
}
