/*
 * trp-append: append entries to a trp log and print each one's seq once it
 * is durable.
 *
 * The one idea: a seq on stdout is a promise. Entries come from arguments
 * or stdin (lines, NUL-separated records, or all of stdin as one entry); we
 * append whatever input is already available as one batch, make it durable
 * with one trp_log_sync (one fdatasync), and only then print the batch's
 * seqs. A fast pipe therefore gets big batches and a trickling one gets
 * every line acknowledged as soon as it arrives, because we sync whenever
 * the next read would block instead of waiting for a full buffer. From a
 * stream, batch N's fdatasync runs on a helper thread while batch N+1 is
 * read and encoded (the store's split sync: trp_log_write, then
 * trp_log_batch_fsync there, then trp_log_mark_durable here); N's seqs are
 * printed after the mark, and before any read that could block. A trickle
 * (nothing in flight, nothing more to read) still syncs in place.
 *
 * main() parses options and hands over to append_local(); a cluster mode
 * (-c CONFIG) can be added beside it as another function.
 */
#include "cli.h"
#include "cli_cluster.h"
#include "trp.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

enum output { OUT_SEQ, OUT_JSON, OUT_NONE };
enum input { IN_LINES, IN_NUL, IN_WHOLE };

struct append_opts {
    cli_where w; /* -d DIR, or cluster mode: -c CONFIG (TRP_CONFIG), -i, --timeout */
    enum input input;
    enum output output;
    const char *start_seq; /* NULL: the log's default (0) */
    bool have_if_prev;
    uint8_t if_prev[TRP_HASH_LEN];
    uint64_t max_entry; /* 0: the library default */
    char **entries;     /* from the command line; NULL: read stdin */
    int entry_count;
};

/* Smallest stdin buffer: the most one read of a stream takes. */
#define READ_BUF_MIN (4u << 20)
/* A stream's batch stops growing at this much input while the previous
 * batch's fsync runs, to bound the wait for its seqs. */
#define STREAM_BATCH_MAX (32u << 20)
/* Record ends a stream remembers per read (more are searched for again). */
#define RECORD_ENDS_MAX 65536u
/* Largest --max-entry we accept: one entry must fit in memory twice over. */
#define MAX_ENTRY_LIMIT (1ull << 30)

static void usage(FILE *to)
{
    fprintf(to,
            "Usage: %s -d DIR [OPTIONS] [ENTRY...]\n"
            "       %s -c CONFIG [-i ID] [--timeout SECONDS] [OPTIONS] [ENTRY...]\n"
            "Append entries to the trp log in DIR (created when missing) and print\n"
            "each entry's seq once it is durable. Without ENTRY arguments, entries\n"
            "are read from stdin, one per line.\n"
            "\n"
            "  -d, --dir DIR          the log directory\n"
            "  -c, --config CONFIG    append to a cluster (also $TRP_CONFIG); each seq is\n"
            "                         printed once the entry is committed\n"
            "  -i, --id ID            send to node ID first (default: the first node; follows the leader)\n"
            "      --timeout SECONDS  give up (exit 75) when no leader answers (default 10)\n"
            "  -z, --null             stdin entries are separated by NUL, not newline\n"
            "      --whole            all of stdin is one entry\n"
            "      --start-seq N      seq of the first entry of a new log (default 0)\n"
            "      --if-prev HASH     append only if the head entry's hash is HASH\n"
            "      --max-entry SIZE   largest entry in bytes (K, M, G suffixes; default 1M)\n"
            "      --json             print {\"seq\":\"N\",\"hash\":\"...\"} per entry\n"
            "  -q, --quiet            print nothing\n"
            "  -h, --help             show this help\n"
            "      --version          show the version\n"
            "\n"
            "Exit status: 0 appended, 1 --if-prev did not match, 64 usage, 65 entry\n"
            "too large or not a trp log, 66 missing, 74 I/O error or disk full,\n"
            "75 another writer holds the log (or no leader answered), 77 permission denied.\n",
            cli_prog(), cli_prog());
}

enum {
    OPT_WHOLE = 256,
    OPT_START_SEQ,
    OPT_IF_PREV,
    OPT_MAX_ENTRY,
    OPT_JSON,
    OPT_VERSION,
    OPT_TIMEOUT
};

/* Parse argv into o. Returns -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, struct append_opts *o)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},
        {"id", required_argument, NULL, 'i'},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"null", no_argument, NULL, 'z'},
        {"whole", no_argument, NULL, OPT_WHOLE},
        {"start-seq", required_argument, NULL, OPT_START_SEQ},
        {"if-prev", required_argument, NULL, OPT_IF_PREV},
        {"max-entry", required_argument, NULL, OPT_MAX_ENTRY},
        {"json", no_argument, NULL, OPT_JSON},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    trp_err err = {0};
    mpz_t scratch;
    int c, rc;
    opterr = 0;
    cli_where_init(&o->w);
    while ((c = getopt_long(argc, argv, ":d:c:i:zqh", longopts, NULL)) != -1) {
        if ((rc = cli_where_option(&o->w, c, OPT_TIMEOUT, optarg)) >= 0) {
            if (rc)
                return rc;
            continue;
        }
        switch (c) {
        case 'z':
            if (o->input == IN_WHOLE)
                return cli_usage_fail("-z and --whole exclude each other");
            o->input = IN_NUL;
            break;
        case OPT_WHOLE:
            if (o->input == IN_NUL)
                return cli_usage_fail("-z and --whole exclude each other");
            o->input = IN_WHOLE;
            break;
        case 'q':
            if (o->output == OUT_JSON)
                return cli_usage_fail("--json and -q exclude each other");
            o->output = OUT_NONE;
            break;
        case OPT_JSON:
            if (o->output == OUT_NONE)
                return cli_usage_fail("--json and -q exclude each other");
            o->output = OUT_JSON;
            break;
        case OPT_START_SEQ:
            mpz_init(scratch);
            c = trp_seq_parse(scratch, optarg, "--start-seq", &err);
            if (c == TRP_OK) {
                mpz_add_ui(scratch, scratch, 1); /* its next must fit: 2^512-2 is the last */
                if (mpz_sizeinbase(scratch, 2) > 512)
                    c = trp_err_set(&err, TRP_EINVAL,
                                    "--start-seq: too large: the last seq a log holds is 2^512-2");
            }
            mpz_clear(scratch);
            if (c != TRP_OK)
                return cli_usage_fail("%s", err.msg);
            o->start_seq = optarg;
            break;
        case OPT_IF_PREV:
            if (trp_hash_parse(o->if_prev, optarg, "--if-prev", &err) != TRP_OK)
                return cli_usage_fail("%s", err.msg);
            o->have_if_prev = true;
            break;
        case OPT_MAX_ENTRY:
            if (cli_parse_size(optarg, "--max-entry", 1, MAX_ENTRY_LIMIT, &o->max_entry, &err))
                return cli_usage_fail("%s", err.msg);
            break;
        default:
            rc = cli_option_end(c, OPT_VERSION, argv, usage);
            return rc >= 0 ? rc : cli_usage_fail("unknown option '%s'", cli_bad_option(argv));
        }
    }
    if ((rc = cli_where_check(&o->w)))
        return rc;
    if (o->w.config && (o->start_seq || o->max_entry))
        return cli_usage_fail("--start-seq and --max-entry are set by the cluster's config");
    if (optind < argc) {
        if (o->input != IN_LINES)
            return cli_usage_fail("-z and --whole read stdin; they take no ENTRY arguments");
        o->entries = argv + optind;
        o->entry_count = argc - optind;
    }
    return -1;
}

/* The fsync helper thread of a stream: it runs trp_log_batch_fsync for one
 * written batch at a time while the main thread reads and encodes the next.
 * `lb` belongs to the helper from hand-over (busy) until `done`, and to the
 * main thread otherwise; the mutex orders the two. */
struct syncer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool busy; /* a batch was handed over and not yet taken back */
    bool done; /* its fsync has returned (the outcome is in lb) */
    bool quit;
    trp_log_batch lb;
};

static void *syncer_main(void *arg)
{
    struct syncer *sy = arg;
    pthread_mutex_lock(&sy->mu);
    for (;;) {
        while (!sy->quit && !(sy->busy && !sy->done))
            pthread_cond_wait(&sy->cv, &sy->mu);
        if (sy->quit)
            break;
        pthread_mutex_unlock(&sy->mu);
        trp_err ignored = {0}; /* trp_log_mark_durable reports a failure */
        (void)trp_log_batch_fsync(&sy->lb, &ignored);
        pthread_mutex_lock(&sy->mu);
        sy->done = true;
        pthread_cond_broadcast(&sy->cv);
    }
    pthread_mutex_unlock(&sy->mu);
    return NULL;
}

static int syncer_start(struct syncer *sy, trp_err *err)
{
    memset(sy, 0, sizeof *sy);
    trp_log_batch_init(&sy->lb);
    pthread_mutex_init(&sy->mu, NULL);
    pthread_cond_init(&sy->cv, NULL);
    int e = pthread_create(&sy->thread, NULL, syncer_main, sy);
    if (e != 0) {
        pthread_cond_destroy(&sy->cv);
        pthread_mutex_destroy(&sy->mu);
        trp_log_batch_clear(&sy->lb);
        return trp_err_sys(err, TRP_ENOMEM, e, "fsync thread");
    }
    return TRP_OK;
}

/* Block until the handed-over batch's fsync has returned. */
static void syncer_wait(struct syncer *sy)
{
    pthread_mutex_lock(&sy->mu);
    while (sy->busy && !sy->done)
        pthread_cond_wait(&sy->cv, &sy->mu);
    sy->busy = false;
    pthread_mutex_unlock(&sy->mu);
}

static bool syncer_idle(struct syncer *sy)
{
    pthread_mutex_lock(&sy->mu);
    bool idle = !sy->busy || sy->done;
    pthread_mutex_unlock(&sy->mu);
    return idle;
}

static void syncer_hand_over(struct syncer *sy)
{
    pthread_mutex_lock(&sy->mu);
    assert(!sy->busy);
    sy->busy = true;
    sy->done = false;
    pthread_cond_broadcast(&sy->cv);
    pthread_mutex_unlock(&sy->mu);
}

/* Wait out any fsync still running (its batch is then never printed), and
 * end the thread. */
static void syncer_stop(struct syncer *sy)
{
    syncer_wait(sy);
    pthread_mutex_lock(&sy->mu);
    sy->quit = true;
    pthread_cond_broadcast(&sy->cv);
    pthread_mutex_unlock(&sy->mu);
    pthread_join(sy->thread, NULL);
    pthread_cond_destroy(&sy->cv);
    pthread_mutex_destroy(&sy->mu);
    trp_log_batch_clear(&sy->lb);
}

/* What is appended but not yet printed. Arguments and --whole make one
 * batch and trp_log_sync it. A stream keeps up to two: `flying` entries
 * written and being fsynced by the helper (sy), then `count` entries
 * appended after them, not yet written. Seqs are printed in that order,
 * each batch only after trp_log_mark_durable. */
struct batch {
    trp_log *log;
    const struct append_opts *opts;
    uint64_t term;
    size_t flying;
    size_t count;
    size_t hash_cap;
    uint8_t (*hashes)[TRP_HASH_LEN]; /* only for --json: flying, then count */
    cli_seqtext next_seq;            /* seq of the first entry not yet printed */
    cli_out out;
    struct syncer *sy; /* a stream's fsync helper; NULL: sync in place */
    bool store_failed; /* a store call failed: print nothing more */
    size_t *ends;      /* a stream's record ends found by the size check */
};

static int batch_add(struct batch *b, const void *data, size_t len, trp_err *err)
{
    uint8_t *hash_out = NULL;
    size_t n = b->flying + b->count;
    if (b->opts->output == OUT_JSON) {
        if (n == b->hash_cap) {
            size_t cap = b->hash_cap ? b->hash_cap * 2 : 4096;
            void *nh = realloc(b->hashes, cap * TRP_HASH_LEN);
            if (!nh)
                return trp_err_set(err, TRP_ENOMEM, "out of memory for %zu entries", cap);
            b->hashes = nh;
            b->hash_cap = cap;
        }
        hash_out = b->hashes[n];
    }
    int rc = trp_log_append(b->log, b->term, TRP_ENTRY_DATA, data, len, hash_out, err);
    if (rc != TRP_OK) {
        b->store_failed = true;
        return rc;
    }
    b->count++;
    return TRP_OK;
}

/* Print the seqs (and hashes) of the first n unprinted entries, which the
 * caller has just seen made durable. */
static void print_durable(struct batch *b, size_t n)
{
    char hex[TRP_HASH_HEX_LEN + 1];
    for (size_t i = 0; i < n && b->opts->output != OUT_NONE; i++) {
        if (b->opts->output == OUT_SEQ) {
            cli_out_write(&b->out, cli_seqtext_str(&b->next_seq), cli_seqtext_len(&b->next_seq));
            cli_out_byte(&b->out, '\n');
        } else {
            trp_hash_hex(hex, b->hashes[i]);
            cli_out_str(&b->out, "{\"seq\":\"");
            cli_out_write(&b->out, cli_seqtext_str(&b->next_seq), cli_seqtext_len(&b->next_seq));
            cli_out_str(&b->out, "\",\"hash\":\"");
            cli_out_write(&b->out, hex, TRP_HASH_HEX_LEN);
            cli_out_str(&b->out, "\"}\n");
        }
        cli_seqtext_inc(&b->next_seq);
    }
    if (b->opts->output == OUT_JSON && b->flying + b->count > n)
        memmove(b->hashes, b->hashes + n, (b->flying + b->count - n) * TRP_HASH_LEN);
    cli_out_flush(&b->out);
}

/* Make the batch durable in place (nothing may be in flight), then (and
 * only then) print its seqs. */
static int batch_commit(struct batch *b, trp_err *err)
{
    assert(b->flying == 0);
    if (b->count == 0)
        return TRP_OK;
    int rc = trp_log_sync(b->log, err);
    if (rc != TRP_OK) {
        b->store_failed = true;
        return rc;
    }
    print_durable(b, b->count);
    b->count = 0;
    return TRP_OK;
}

/* Stream: wait for the flying batch's fsync, record it as durable, and
 * only then print its seqs. A failed fsync is fatal: nothing printed. */
static int batch_land(struct batch *b, trp_err *err)
{
    if (b->flying == 0)
        return TRP_OK;
    syncer_wait(b->sy);
    int rc = trp_log_mark_durable(b->log, &b->sy->lb, err);
    if (rc != TRP_OK) {
        b->store_failed = true;
        return rc;
    }
    print_durable(b, b->flying);
    b->flying = 0;
    return TRP_OK;
}

/* Stream: write the appended entries as one batch and hand its fsync to
 * the helper. The previous batch must have landed. */
static int batch_launch(struct batch *b, trp_err *err)
{
    assert(b->flying == 0);
    if (b->count == 0)
        return TRP_OK;
    int rc = trp_log_write(b->log, &b->sy->lb, err);
    if (rc != TRP_OK) {
        b->store_failed = true;
        return rc;
    }
    b->flying = b->count;
    b->count = 0;
    if (b->sy->lb.empty) /* cannot happen after appends; nothing to wait for */
        return batch_land(b, err);
    syncer_hand_over(b->sy);
    return TRP_OK;
}

/* Stream: land the flying batch, then launch and land what is appended. */
static int batch_drain(struct batch *b, trp_err *err)
{
    int rc = batch_land(b, err);
    if (rc == TRP_OK)
        rc = batch_launch(b, err);
    if (rc == TRP_OK)
        rc = batch_land(b, err);
    return rc;
}

static int too_big(const struct batch *b, size_t len, trp_err *err)
{
    (void)len; /* for a record still arriving, only a lower bound */
    return trp_err_set(err, TRP_ETOOBIG,
                       "%s: entry too large (more than %u bytes, see --max-entry); "
                       "nothing of this batch was appended",
                       b->opts->w.dir, trp_log_max_entry(b->log));
}

static int append_args(struct batch *b, trp_err *err)
{
    const struct append_opts *o = b->opts;
    for (int i = 0; i < o->entry_count; i++)
        if (strlen(o->entries[i]) > trp_log_max_entry(b->log))
            return too_big(b, strlen(o->entries[i]), err);
    for (int i = 0; i < o->entry_count; i++) {
        int rc = batch_add(b, o->entries[i], strlen(o->entries[i]), err);
        if (rc != TRP_OK)
            return rc;
    }
    return batch_commit(b, err);
}

/* True when a read of fd would not block (data, EOF or an error waits). */
static bool input_ready(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* read(2) that retries EINTR; -1 with err filled on failure. */
static ssize_t read_some(int fd, char *buf, size_t len, trp_err *err)
{
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR) {
            trp_err_sys(err, TRP_EIO, errno, "stdin");
            return -1;
        }
    }
}

/* Append the complete records of buf[0..len) (each ends with sep; with
 * at_eof a final unterminated one counts too), sizes checked first so that
 * an oversized entry appends nothing of this read. The check remembers
 * where the first RECORD_ENDS_MAX records end, so that the append pass does
 * not search for them again. *used is how many bytes were consumed. */
static int append_records(struct batch *b, const char *buf, size_t len, char sep, bool at_eof,
                          size_t *used, trp_err *err)
{
    size_t max = trp_log_max_entry(b->log), pos = 0, known = 0;
    for (;;) {
        const char *end = memchr(buf + pos, sep, len - pos);
        size_t rec = end ? (size_t)(end - buf) - pos : len - pos;
        if (rec > max)
            return too_big(b, rec, err);
        if (!end)
            break;
        if (known < RECORD_ENDS_MAX)
            b->ends[known++] = (size_t)(end - buf);
        pos += rec + 1;
    }
    pos = 0;
    for (size_t i = 0; i < known; i++) {
        int rc = batch_add(b, buf + pos, b->ends[i] - pos, err);
        if (rc != TRP_OK)
            return rc;
        pos = b->ends[i] + 1;
    }
    for (;;) {
        const char *end = memchr(buf + pos, sep, len - pos);
        if (!end && !(at_eof && pos < len))
            break;
        size_t rec = end ? (size_t)(end - buf) - pos : len - pos;
        int rc = batch_add(b, buf + pos, rec, err);
        if (rc != TRP_OK)
            return rc;
        pos += rec + (end ? 1 : 0);
        if (!end)
            break;
    }
    *used = pos;
    return TRP_OK;
}

/* Read into buf[*have..cap): block for the first bytes, then take only what
 * is already there. Returns bytes read (0 at EOF) or -1 with err filled. */
static ssize_t fill(char *buf, size_t cap, size_t *have, trp_err *err)
{
    ssize_t n = read_some(STDIN_FILENO, buf + *have, cap - *have, err), total = 0;
    while (n > 0) {
        *have += (size_t)n;
        total += n;
        if (*have == cap || !input_ready(STDIN_FILENO))
            return total;
        n = read_some(STDIN_FILENO, buf + *have, cap - *have, err);
    }
    return n < 0 ? -1 : total;
}

/* The stream loop. Batch N is fdatasync'd by the helper while batch N+1 is
 * read and appended here; N+1 is written only once N has landed (one batch
 * in flight, as the split-sync API requires). Before any read that could
 * block, the flying batch lands first, so a line that arrives alone is
 * acknowledged without waiting for more input. */
static int stream_loop(struct batch *b, char *buf, size_t cap, char sep, trp_err *err)
{
    size_t have = 0, taken = 0; /* taken: input bytes appended since the last launch */
    for (;;) {
        assert(have < cap); /* a full buffer without a separator is too_big */
        if (b->flying && !input_ready(STDIN_FILENO)) {
            int rc = batch_land(b, err);
            if (rc != TRP_OK)
                return rc;
        }
        ssize_t n = fill(buf, cap, &have, err);
        if (n < 0)
            return err->code;
        bool eof = n == 0;
        size_t used = 0;
        int rc = append_records(b, buf, have, sep, eof, &used, err);
        if (rc != TRP_OK)
            return rc;
        memmove(buf, buf + used, have - used);
        have -= used;
        taken += used;
        if (eof)
            return TRP_OK;
        /* While the fsync runs and more input waits, make the next batch
         * bigger instead of waiting: the disk is the bottleneck. */
        if (b->flying && taken < STREAM_BATCH_MAX && !syncer_idle(b->sy) &&
            input_ready(STDIN_FILENO))
            continue;
        /* Nothing in flight and nothing more to read: a trickle. Sync in
         * place, which saves the hand-over to the helper and back. */
        if (!b->flying && !input_ready(STDIN_FILENO))
            rc = batch_commit(b, err);
        else if ((rc = batch_land(b, err)) == TRP_OK)
            rc = batch_launch(b, err);
        if (rc != TRP_OK)
            return rc;
        taken = 0;
    }
}

static int append_stream(struct batch *b, trp_err *err)
{
    const char sep = b->opts->input == IN_NUL ? '\0' : '\n';
    /* A full buffer without a separator then means an oversized entry. */
    size_t cap = (size_t)trp_log_max_entry(b->log) + 2;
    if (cap < READ_BUF_MIN)
        cap = READ_BUF_MIN;
    char *buf = malloc(cap);
    b->ends = malloc(RECORD_ENDS_MAX * sizeof *b->ends);
    if (!buf || !b->ends) {
        free(buf);
        free(b->ends);
        b->ends = NULL;
        return trp_err_set(err, TRP_ENOMEM, "out of memory for a %zu-byte buffer", cap);
    }
    struct syncer sy;
    int rc = syncer_start(&sy, err);
    if (rc != TRP_OK) {
        free(buf);
        free(b->ends);
        b->ends = NULL;
        return rc;
    }
    b->sy = &sy;
    /* A bigger pipe lets a fast producer run ahead while we fdatasync. */
    (void)fcntl(STDIN_FILENO, F_SETPIPE_SZ, 1 << 20);
    rc = stream_loop(b, buf, cap, sep, err);
    if (!b->store_failed) {
        /* EOF, or bad input (an oversized entry, a read error): what came
         * before it is appended and made durable, as it would have been had
         * it arrived a little earlier. Should that fail too, the store's
         * error decides the exit status and the input's is still shown. */
        trp_err drain_err = {0};
        int drc = batch_drain(b, rc == TRP_OK ? err : &drain_err);
        if (rc == TRP_OK) {
            rc = drc;
        } else if (drc != TRP_OK) {
            cli_warn("%s", err->msg);
            *err = drain_err;
            rc = drc;
        }
    }
    syncer_stop(&sy);
    b->sy = NULL;
    free(buf);
    free(b->ends);
    b->ends = NULL;
    return rc;
}

static int append_whole(struct batch *b, trp_err *err)
{
    size_t max = trp_log_max_entry(b->log), cap = 1 << 16, have = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            return trp_err_set(err, TRP_ENOMEM, "out of memory reading stdin");
        ssize_t n = read_some(STDIN_FILENO, buf + have, cap - have, err);
        if (n < 0) {
            free(buf);
            return err->code;
        }
        if (n == 0)
            break;
        have += (size_t)n;
        if (have > max) {
            free(buf);
            return too_big(b, have, err);
        }
        if (have == cap) {
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(buf, cap);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    int rc = batch_add(b, buf, have, err);
    free(buf);
    return rc == TRP_OK ? batch_commit(b, err) : rc;
}

/* --if-prev: print the actual head and explain, when it is not the one
 * the caller expected. Returns the exit status (1). */
static int report_head_mismatch(const struct batch *b)
{
    char hex[TRP_HASH_HEX_LEN + 1], want[TRP_HASH_HEX_LEN + 1];
    trp_hash_hex(hex, trp_log_head_hash(b->log));
    trp_hash_hex(want, b->opts->if_prev);
    mpz_t head;
    mpz_init(head);
    trp_log_next(b->log, head);
    bool none = trp_log_empty(b->log); /* the head is then the anchor */
    if (!none)
        mpz_sub_ui(head, head, 1);
    char *seq = none ? NULL : mpz_get_str(NULL, 10, head);
    if (b->opts->output == OUT_SEQ)
        printf("%s %s\n", none ? "-" : seq, hex);
    else if (b->opts->output == OUT_JSON) {
        if (none)
            printf("{\"seq\":null,\"hash\":\"%s\"}\n", hex);
        else
            printf("{\"seq\":\"%s\",\"hash\":\"%s\"}\n", seq, hex);
    }
    fflush(stdout);
    cli_warn("%s: head is seq %s with hash %s, not %s; nothing appended", b->opts->w.dir,
             none ? "(none)" : seq, hex, want);
    free(seq);
    mpz_clear(head);
    return 1;
}

/* Does the directory DIR would be made in exist? */
static bool parent_exists(const char *dir)
{
    char *copy = strdup(dir);
    if (!copy)
        return false;
    size_t n = strlen(copy);
    while (n > 1 && copy[n - 1] == '/')
        copy[--n] = '\0';
    char *slash = strrchr(copy, '/');
    bool ok = !slash || (slash == copy ? access("/", F_OK) == 0
                                       : (*slash = '\0', access(copy, F_OK) == 0));
    free(copy);
    return ok;
}

/* --if-prev HASH (not the zero hash) where there is no log yet: the head
 * of the log this would make is the zero hash; report as for an empty log,
 * without making it. */
static int report_no_log_mismatch(const struct append_opts *o)
{
    char want[TRP_HASH_HEX_LEN + 1], zero[TRP_HASH_HEX_LEN + 1];
    static const uint8_t z[TRP_HASH_LEN];
    trp_hash_hex(want, o->if_prev);
    trp_hash_hex(zero, z);
    if (o->output == OUT_SEQ)
        printf("- %s\n", zero);
    else if (o->output == OUT_JSON)
        printf("{\"seq\":null,\"hash\":\"%s\"}\n", zero);
    fflush(stdout);
    cli_warn("%s: no log yet (a new log's head is hash %s), not %s; nothing appended or created",
             o->w.dir, zero, want);
    return 1;
}

/* --start-seq names the first seq of a new log; on an existing log that
 * starts elsewhere it would be silently ignored, so refuse instead. */
static int check_start_seq(trp_log *log, const char *start_seq, trp_err *err)
{
    if (!start_seq)
        return TRP_OK;
    mpz_t want, first;
    mpz_inits(want, first, NULL);
    trp_seq_parse(want, start_seq, "--start-seq", NULL);
    trp_log_first(log, first);
    int rc = TRP_OK;
    if (mpz_cmp(want, first) != 0) {
        char *have = mpz_get_str(NULL, 10, first);
        rc = trp_err_set(err, TRP_EFORMAT,
                         "%s: the log already exists and starts at seq %s; --start-seq %s "
                         "applies only to a new log",
                         trp_log_dir(log), have, start_seq);
        free(have);
    }
    mpz_clears(want, first, NULL);
    return rc;
}

static int append_cluster(const struct append_opts *o)
{
    cli_append_cluster co = {.config = o->w.config,
                             .node = o->w.node,
                             .timeout_ms = (uint32_t)(o->w.timeout_s * 1000),
                             .input = o->input == IN_NUL     ? CLI_IN_NUL
                                      : o->input == IN_WHOLE ? CLI_IN_WHOLE
                                                             : CLI_IN_LINES,
                             .output = o->output == OUT_JSON   ? CLI_OUT_JSON
                                       : o->output == OUT_NONE ? CLI_OUT_NONE
                                                               : CLI_OUT_SEQ,
                             .have_if_prev = o->have_if_prev,
                             .entries = o->entries,
                             .entry_count = o->entry_count};
    memcpy(co.if_prev, o->if_prev, TRP_HASH_LEN);
    return cli_append_cluster_run(&co);
}

static int append_local(const struct append_opts *o)
{
    trp_err err = {0};
    /* a node's replica changes only through Raft: appending here would fork it */
    if (trp_dir_has_envelope(o->w.dir)) {
        cli_warn("%s: this directory belongs to a trp-node cluster member; append through the "
                 "cluster with -c CONFIG",
                 o->w.dir);
        return EX_USAGE;
    }
    trp_log_options lo = {
        .create = true,
        .start_seq = o->start_seq,
        .max_entry = (uint32_t)o->max_entry,
    };
    trp_log *log = NULL;
    static const uint8_t zero[TRP_HASH_LEN];
    if (o->have_if_prev && memcmp(o->if_prev, zero, TRP_HASH_LEN) != 0) {
        /* a log made now would have the zero hash as its head, and so not
         * match: look without creating, so that a refusal makes nothing */
        trp_log_options look = lo;
        look.create = false;
        int rc = trp_log_open(&log, o->w.dir, &look, &err);
        if (rc == TRP_ENOENT && parent_exists(o->w.dir))
            return report_no_log_mismatch(o);
        /* anything else (an interrupted create, a foreign directory): the
         * open below decides, as without --if-prev */
    }
    int rc = log ? TRP_OK : trp_log_open(&log, o->w.dir, &lo, &err);
    if (rc != TRP_OK)
        return cli_fail(&err);
    rc = check_start_seq(log, o->start_seq, &err);
    if (rc != TRP_OK) {
        trp_log_close(log);
        return cli_fail(&err);
    }
    struct batch b = {.log = log, .opts = o, .term = trp_log_head_term(log)};
    cli_seqtext_init(&b.next_seq);
    if (cli_out_init(&b.out, STDOUT_FILENO, 1 << 20) != 0) {
        trp_log_close(log);
        cli_warn("out of memory");
        return EX_OSERR;
    }
    if (o->have_if_prev && memcmp(trp_log_head_hash(log), o->if_prev, TRP_HASH_LEN) != 0) {
        int status = report_head_mismatch(&b);
        cli_out_free(&b.out);
        trp_log_close(log);
        return status;
    }
    mpz_t next;
    mpz_init(next);
    trp_log_next(log, next);
    cli_seqtext_set(&b.next_seq, next);
    mpz_clear(next);

    if (o->entries)
        rc = append_args(&b, &err);
    else if (o->input == IN_WHOLE)
        rc = append_whole(&b, &err);
    else
        rc = append_stream(&b, &err);

    int status = rc == TRP_OK ? 0 : cli_fail(&err);
    int out_status = cli_out_status_all(&b.out);
    if (status == 0)
        status = out_status;
    cli_out_free(&b.out);
    cli_seqtext_free(&b.next_seq);
    free(b.hashes);
    trp_log_close(log);
    return status;
}

int main(int argc, char **argv)
{
    cli_keep_std_fds();
    struct append_opts opts;
    int status = parse_args(argc, argv, &opts);
    if (status >= 0)
        return status;
    return opts.w.config ? append_cluster(&opts) : append_local(&opts);
}
