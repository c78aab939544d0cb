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
 * the next read would block instead of waiting for a full buffer.
 *
 * main() parses options and hands over to append_local(); a cluster mode
 * (-c CONFIG) can be added beside it as another function.
 */
#include "cli.h"
#include "cli_cluster.h"
#include "trp.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

enum output { OUT_SEQ, OUT_JSON, OUT_NONE };
enum input { IN_LINES, IN_NUL, IN_WHOLE };

struct append_opts {
    const char *dir;
    enum input input;
    enum output output;
    const char *start_seq; /* NULL: the log's default (0) */
    bool have_if_prev;
    uint8_t if_prev[TRP_HASH_LEN];
    uint64_t max_entry; /* 0: the library default */
    char **entries;     /* from the command line; NULL: read stdin */
    int entry_count;
    const char *config; /* cluster mode: -c CONFIG or TRP_CONFIG */
    uint64_t node;      /* -i ID: the node to send to first */
    uint64_t timeout_s; /* --timeout */
};

/* Smallest stdin buffer; a fast pipe's batch is at most this big. */
#define READ_BUF_MIN (4u << 20)
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
            "  -i, --id ID            send to node ID first (default: any; follows the leader)\n"
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
    int c;
    opterr = 0;
    o->config = getenv("TRP_CONFIG");
    if (o->config && !o->config[0])
        o->config = NULL;
    bool explicit_config = false;
    while ((c = getopt_long(argc, argv, ":d:c:i:zqh", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o->dir = optarg;
            break;
        case 'c':
            o->config = optarg;
            explicit_config = true;
            break;
        case 'i':
            if (cli_parse_u64(optarg, "-i", 1, 9007199254740991ull, &o->node, &err))
                return cli_usage_fail("%s", err.msg);
            break;
        case OPT_TIMEOUT:
            if (cli_parse_u64(optarg, "--timeout", 1, 86400, &o->timeout_s, &err))
                return cli_usage_fail("%s", err.msg);
            break;
        case 'z':
            o->input = IN_NUL;
            break;
        case OPT_WHOLE:
            o->input = IN_WHOLE;
            break;
        case 'q':
            o->output = OUT_NONE;
            break;
        case OPT_JSON:
            o->output = OUT_JSON;
            break;
        case OPT_START_SEQ:
            mpz_init(scratch);
            c = trp_seq_parse(scratch, optarg, "--start-seq", &err);
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
        case 'h':
            usage(stdout);
            return 0;
        case OPT_VERSION:
            cli_print_version();
            return 0;
        case ':':
            return cli_usage_fail("option '%s' needs an argument", argv[optind - 1]);
        default:
            return cli_usage_fail("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (o->dir && explicit_config)
        return cli_usage_fail("-d DIR and -c CONFIG exclude each other");
    if (o->dir)
        o->config = NULL; /* -d wins over TRP_CONFIG */
    if (!o->dir && !o->config)
        return cli_usage_fail("no log directory (-d DIR) or cluster (-c CONFIG)");
    if (o->config && (o->start_seq || o->max_entry))
        return cli_usage_fail("--start-seq and --max-entry are set by the cluster's config");
    if (optind < argc) {
        if (o->input != IN_LINES)
            return cli_usage_fail("-z and --whole read stdin; they take no ENTRY arguments");
        o->entries = argv + optind;
        o->entry_count = argc - optind;
    }
    return -1;
}

/* What is appended but not yet printed: the batch since the last sync. */
struct batch {
    trp_log *log;
    const struct append_opts *opts;
    uint64_t term;
    size_t count;
    size_t hash_cap;
    uint8_t (*hashes)[TRP_HASH_LEN]; /* only for --json */
    cli_seqtext next_seq;            /* seq of the first entry of the batch */
    cli_out out;
};

static int batch_add(struct batch *b, const void *data, size_t len, trp_err *err)
{
    uint8_t *hash_out = NULL;
    if (b->opts->output == OUT_JSON) {
        if (b->count == b->hash_cap) {
            size_t cap = b->hash_cap ? b->hash_cap * 2 : 4096;
            void *nh = realloc(b->hashes, cap * TRP_HASH_LEN);
            if (!nh)
                return trp_err_set(err, TRP_ENOMEM, "out of memory for %zu entries", cap);
            b->hashes = nh;
            b->hash_cap = cap;
        }
        hash_out = b->hashes[b->count];
    }
    int rc = trp_log_append(b->log, b->term, TRP_ENTRY_DATA, data, len, hash_out, err);
    if (rc == TRP_OK)
        b->count++;
    return rc;
}

/* Make the batch durable, then (and only then) print its seqs. */
static int batch_commit(struct batch *b, trp_err *err)
{
    if (b->count == 0)
        return TRP_OK;
    int rc = trp_log_sync(b->log, err);
    if (rc != TRP_OK)
        return rc;
    char hex[TRP_HASH_HEX_LEN + 1];
    for (size_t i = 0; i < b->count && b->opts->output != OUT_NONE; i++) {
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
    b->count = 0;
    cli_out_flush(&b->out);
    return TRP_OK;
}

static int too_big(const struct batch *b, size_t len, trp_err *err)
{
    (void)len; /* for a record still arriving, only a lower bound */
    return trp_err_set(err, TRP_ETOOBIG,
                       "%s: entry too large (more than %u bytes, see --max-entry); "
                       "nothing of this batch was appended",
                       b->opts->dir, trp_log_max_entry(b->log));
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
 * at_eof a final unterminated one counts too) as one batch, sizes checked
 * first so that an oversized entry appends nothing of the batch.
 * *used is how many bytes were consumed. */
static int append_records(struct batch *b, const char *buf, size_t len, char sep, bool at_eof,
                          size_t *used, trp_err *err)
{
    size_t max = trp_log_max_entry(b->log), pos = 0;
    for (;;) {
        const char *end = memchr(buf + pos, sep, len - pos);
        size_t rec = end ? (size_t)(end - buf) - pos : len - pos;
        if (rec > max)
            return too_big(b, rec, err);
        if (!end)
            break;
        pos += rec + 1;
    }
    pos = 0;
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
    return batch_commit(b, err);
}

static int append_stream(struct batch *b, trp_err *err)
{
    const char sep = b->opts->input == IN_NUL ? '\0' : '\n';
    /* A full buffer without a separator then means an oversized entry. */
    size_t cap = (size_t)trp_log_max_entry(b->log) + 2;
    if (cap < READ_BUF_MIN)
        cap = READ_BUF_MIN;
    char *buf = malloc(cap);
    if (!buf)
        return trp_err_set(err, TRP_ENOMEM, "out of memory for a %zu-byte buffer", cap);
    /* A bigger pipe lets a fast producer run ahead while we fdatasync. */
    (void)fcntl(STDIN_FILENO, F_SETPIPE_SZ, 1 << 20);
    size_t have = 0;
    bool eof = false;
    int rc = TRP_OK;
    while (!eof && rc == TRP_OK) {
        /* Block for the first bytes, then take only what is already there. */
        ssize_t n = read_some(STDIN_FILENO, buf + have, cap - have, err);
        while (n > 0) {
            have += (size_t)n;
            if (have == cap || !input_ready(STDIN_FILENO))
                break;
            n = read_some(STDIN_FILENO, buf + have, cap - have, err);
        }
        if (n < 0) {
            rc = err->code;
            break;
        }
        eof = n == 0;
        size_t used = 0;
        rc = append_records(b, buf, have, sep, eof, &used, err);
        memmove(buf, buf + used, have - used);
        have -= used;
    }
    free(buf);
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
    bool none = mpz_sgn(head) == 0;
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
    cli_warn("%s: head is seq %s with hash %s, not %s; nothing appended", b->opts->dir,
             none ? "(none)" : seq, hex, want);
    free(seq);
    mpz_clear(head);
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
    cli_append_cluster co = {.config = o->config,
                             .node = o->node,
                             .timeout_ms = (uint32_t)(o->timeout_s * 1000),
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
    if (trp_dir_has_envelope(o->dir)) {
        cli_warn("%s: this directory belongs to a trp-node cluster member; append through the "
                 "cluster with -c CONFIG",
                 o->dir);
        return EX_USAGE;
    }
    trp_log_options lo = {
        .create = true,
        .start_seq = o->start_seq,
        .max_entry = (uint32_t)o->max_entry,
    };
    trp_log *log = NULL;
    int rc = trp_log_open(&log, o->dir, &lo, &err);
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
    int out_status = cli_out_status(&b.out);
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
    struct append_opts opts;
    int status = parse_args(argc, argv, &opts);
    if (status >= 0)
        return status;
    return opts.config ? append_cluster(&opts) : append_local(&opts);
}
