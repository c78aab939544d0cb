/*
 * disk_real.c: the simulator's real disk (included by sim.c): a node's
 * storage is the log store (trp_log.h) in a temporary directory, reached
 * through the trp_node adapter (tnode_trplog.c), so the storage code meets
 * the same schedules as the core. `sim --real-disk` selects it.
 *
 * The one idea: the store is the truth and the in-memory entries of the
 * node (nd->e) become a shadow that every store call is checked against
 * and that the invariant checker keeps reading. A crash is what a process
 * crash does to the store: trp_log_close drops the appends it has not
 * synced; sometimes the unsynced batch is first written out (trp_log_write,
 * no fsync) and then kept whole, or torn: the newest segment file is cut
 * at a random byte past the records it held before that write (a segment
 * the batch created may be cut anywhere, even inside its header), or the
 * records from that byte on are zeroed and the file keeps its length (the
 * writer's zeroed space was durable, the batch's records were not). Then
 * the log is opened again
 * (recovery must succeed), and what it holds must be the durable prefix,
 * unchanged, plus at most some of the entries that were not yet synced;
 * term, vote and commit watermark must be the ones last written.
 */
#include "trp_node.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

static void real_path(sim *s, sim_node *nd)
{
    snprintf(nd->dir, sizeof nd->dir, "%s/n%" PRIu64, s->real_root, nd->id);
}

static int real_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* A scratch root: /dev/shm when writable (a sync is then a cheap syscall,
 * which is all the simulator needs: the crash model is its own), else
 * TMPDIR or /tmp. */
static bool real_root_make(sim *s)
{
    const char *t = getenv("TRP_SIM_DIR");
    if (!t || !*t)
        t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (!t || !*t)
        t = "/tmp";
    snprintf(s->real_root, sizeof s->real_root, "%s/trp-sim-%" PRIu64 "-XXXXXX", t, s->seed);
    if (!mkdtemp(s->real_root)) {
        sim_violation(s, "real disk: cannot make a directory under %s", t);
        s->real_root[0] = '\0';
        return false;
    }
    return true;
}

static void real_root_remove(sim *s)
{
    if (s->real_root[0])
        nftw(s->real_root, real_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    s->real_root[0] = '\0';
}

/* The newest segment file (the largest base) and where its records end
 * (by trp-log(5): records follow the 128-byte header, each 64 + length
 * rounded up to 8, until the file ends or 8 zero bytes start one; the
 * writer's zeroed space after them is not counted). */
static bool real_newest_segment(sim_node *nd, char *name, size_t size, uint64_t *bytes)
{
    DIR *d = opendir(nd->dir);
    if (!d)
        return false;
    mpz_t best, b;
    mpz_inits(best, b, NULL);
    bool found = false;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || len >= size || strcmp(de->d_name + len - 4, ".seg"))
            continue;
        char base[256];
        snprintf(base, sizeof base, "%.*s", (int)(len - 4), de->d_name);
        if (mpz_set_str(b, base, 10))
            continue;
        if (!found || mpz_cmp(b, best) > 0) {
            mpz_set(best, b);
            snprintf(name, size, "%s", de->d_name);
            found = true;
        }
    }
    closedir(d);
    mpz_clears(best, b, NULL);
    if (!found)
        return false;
    char path[600];
    snprintf(path, sizeof path, "%s/%s", nd->dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    uint64_t off = 128, len = 0;
    uint8_t h[64];
    if (fseek(f, 0, SEEK_END) == 0)
        len = (uint64_t)ftell(f);
    while (off + 8 <= len && fseek(f, (long)off, SEEK_SET) == 0) {
        size_t got = fread(h, 1, sizeof h, f);
        uint64_t nz = 0;
        for (size_t i = 0; i < 8 && i < got; i++)
            nz |= h[i];
        if (got < sizeof h || !nz)
            break;
        uint64_t l =
            (uint64_t)h[24] | (uint64_t)h[25] << 8 | (uint64_t)h[26] << 16 | (uint64_t)h[27] << 24;
        off += 64 + ((l + 7) & ~(uint64_t)7);
    }
    fclose(f);
    *bytes = off < len ? off : len;
    return true;
}

/* Open (or create) the node's log and bring the shadow in line with it:
 * the store must hold the durable prefix of the shadow, unchanged, and at
 * most the shadow's entries beyond it. */
static bool real_open(sim *s, sim_node *nd, bool create)
{
    char start[200];
    trp_log_options o = {.create = create,
                         .start_seq = trp_seq_str(start, sizeof start, s->base),
                         .segment_bytes = s->cfg.seg_bytes};
    trp_err err = {0};
    int rc = trp_node_log_trp_open(&nd->nl, nd->dir, &o, &err);
    if (rc) {
        nd->nl = NULL;
        sim_violation(s, "node %" PRIu64 ": the log store does not open (recover): %s", nd->id,
                      err.msg);
        return false;
    }
    nd->log = trp_node_log_trp_log(nd->nl);
    s->st.real_opens++;
    mpz_t first, next;
    mpz_inits(first, next, NULL);
    trp_log_first(nd->log, first);
    trp_log_next(nd->log, next);
    mpz_sub(next, next, s->base);
    size_t n = (size_t)mpz_get_ui(next);
    bool ok = true;
    if (mpz_cmp(first, s->base) != 0) {
        sim_violation(s, "node %" PRIu64 ": the reopened log starts at another seq", nd->id);
        ok = false;
    } else if (n < nd->durable || n > nd->n) {
        sim_violation(s,
                      "node %" PRIu64 ": the reopened log holds %zu entries; %zu were synced and "
                      "%zu appended",
                      nd->id, n, nd->durable, nd->n);
        ok = false;
    }
    trp_entry e;
    trp_entry_init(&e);
    for (size_t i = 0; ok && i < n; i++) {
        mpz_add_ui(first, s->base, i);
        rc = trp_log_read(nd->log, first, &e, &err);
        if (rc || e.term != nd->e[i].term || e.type != nd->e[i].type ||
            memcmp(e.hash, nd->e[i].hash, TRP_RAFT_HASH_LEN)) {
            sim_violation(s, "node %" PRIu64 ": entry %zu of the reopened log differs (%s)",
                          nd->id, i, rc ? err.msg : "term, type or hash");
            ok = false;
        }
    }
    trp_entry_clear(&e);
    mpz_clears(first, next, NULL);
    if (ok) {
        if (n > nd->durable && n < nd->n)
            s->st.real_partial++; /* a batch that spans a roll: its synced part stays */
        else if (n > nd->durable)
            s->st.real_kept++;
        disk_cut(nd, n);
        nd->durable = n;
        /* term, vote and watermark as last written */
        trp_meta m;
        mpz_t c;
        mpz_init(c);
        trp_log_meta_get(nd->log, &m);
        trp_log_commit_next(nd->log, c);
        mpz_sub(c, c, s->base);
        if (m.term != nd->hs_term || m.vote != nd->hs_vote)
            sim_violation(s,
                          "node %" PRIu64 ": the store's term/vote %" PRIu64 "/%" PRIu64
                          " are not the last written %" PRIu64 "/%" PRIu64,
                          nd->id, m.term, m.vote, nd->hs_term, nd->hs_vote);
        else if (mpz_get_ui(c) != nd->commit)
            sim_violation(s,
                          "node %" PRIu64 ": the store's commit watermark %lu is not the last "
                          "written %zu",
                          nd->id, mpz_get_ui(c), nd->commit);
        mpz_clear(c);
    }
    return ok;
}

static void real_close(sim_node *nd)
{
    trp_node_log_trp_free(nd->nl); /* closes the log: unsynced appends are dropped */
    nd->nl = NULL;
    nd->log = NULL;
}

/* The crash, for the real disk (see the file comment). */
static void real_crash(sim *s, sim_node *nd, const char **how)
{
    *how = "unsynced appends dropped";
    uint64_t k = rng_below(&s->rng, 3);
    if (k && nd->n > nd->durable && nd->log) {
        /* What the newest segment holds before the write is synced data
         * (or, after a roll, the new segment's start), so every byte past
         * it belongs to the unsynced batch. */
        char name0[256] = "";
        uint64_t size0 = 0;
        real_newest_segment(nd, name0, sizeof name0, &size0);
        trp_log_batch b;
        trp_log_batch_init(&b);
        trp_err err = {0};
        if (trp_log_write(nd->log, &b, &err))
            sim_violation(s, "node %" PRIu64 ": trp_log_write: %s", nd->id, err.msg);
        trp_log_batch_clear(&b);
        *how = "unsynced batch written, not synced";
        char name[256];
        uint64_t size;
        if (k == 2 && real_newest_segment(nd, name, sizeof name, &size)) {
            uint64_t from = strcmp(name, name0) == 0 ? size0 : 0;
            if (size > from) {
                char path[600];
                snprintf(path, sizeof path, "%s/%s", nd->dir, name);
                uint64_t cut = from + rng_below(&s->rng, size - from);
                bool zero = rng_below(&s->rng, 2);
                if (zero) { /* zeros over the records from cut on */
                    int fd = open(path, O_WRONLY);
                    uint8_t z[4096] = {0};
                    bool ok = fd >= 0;
                    for (uint64_t o = cut; ok && o < size; o += sizeof z) {
                        size_t n = size - o < sizeof z ? (size_t)(size - o) : sizeof z;
                        ok = pwrite(fd, z, n, (off_t)o) == (ssize_t)n;
                    }
                    if (fd >= 0)
                        close(fd);
                    if (!ok)
                        sim_violation(s, "node %" PRIu64 ": cannot zero %s", nd->id, path);
                } else if (truncate(path, (off_t)cut)) {
                    sim_violation(s, "node %" PRIu64 ": cannot cut %s", nd->id, path);
                }
                s->st.torn++;
                *how = zero ? "unsynced batch written and torn (zeroed)"
                            : "unsynced batch written and torn";
                sim_trace(s, "node %" PRIu64 ": %s %s at byte %" PRIu64 " (durable end %" PRIu64
                             ", records end %" PRIu64 ")",
                          nd->id, name, zero ? "zeroed" : "cut", cut, from, size);
            }
        }
    }
    real_close(nd);
    real_open(s, nd, false);
}

static void real_free(sim *s)
{
    for (int i = 0; i < s->cfg.n; i++)
        real_close(&s->node[i]);
    real_root_remove(s);
}

/* At the end of a run: every directory verifies (trp_verify_dir) and all
 * agree on their committed prefixes (trp_verify_agree). */
static void real_verify(sim *s)
{
    const char *dirs[SIM_MAXN];
    trp_verify_report r[SIM_MAXN];
    trp_err err = {0};
    for (int i = 0; i < s->cfg.n; i++) {
        sim_node *nd = &s->node[i];
        dirs[i] = nd->dir;
        if (nd->log && trp_log_sync(nd->log, &err))
            sim_violation(s, "node %" PRIu64 ": final sync: %s", nd->id, err.msg);
        trp_verify_report_init(&r[i]);
    }
    char diverge[200] = "";
    int rc = trp_verify_agree(dirs, (size_t)s->cfg.n, NULL, NULL, r, diverge, sizeof diverge, &err);
    if (rc)
        sim_violation(s, "trp_verify_agree over the nodes' directories: %s", err.msg);
    for (int i = 0; i < s->cfg.n; i++) {
        if (!rc && !r[i].ok)
            sim_violation(s, "node %d: trp_verify_dir: %s", i + 1, r[i].message);
        trp_verify_report_clear(&r[i]);
    }
}
