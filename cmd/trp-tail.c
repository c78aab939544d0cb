/*
 * trp-tail: print the committed entries of a trp log, and with -f follow it.
 *
 * The one idea: trp-tail is a reader. It opens the log read-only (no lock,
 * and only entries below the commit watermark are visible), prints from a
 * start seq onwards, and in follow mode sleeps on inotify on the log's
 * watch path until the writer moves the watermark: no polling loop. Output
 * is buffered for speed and flushed whenever trp-tail has caught up, so a
 * consumer never waits for an entry that has been read. A reader that goes
 * away (EPIPE, or `| head -1`) is a normal, quiet end.
 *
 * main() parses options and hands over to tail_local(); a cluster mode
 * (-c CONFIG) can be added beside it as another function.
 */
#include "cli.h"
#include "cli_cluster.h"
#include "trp.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sysexits.h>
#include <unistd.h>

enum format { FMT_RAW, FMT_JSON };

struct tail_opts {
    cli_where w; /* -d DIR, or cluster mode: -c CONFIG (TRP_CONFIG), -i, --timeout */
    uint64_t lines;   /* -n: how many of the last entries */
    const char *from; /* --from SEQ instead of -n; NULL: use -n */
    bool follow;
    bool have_count;
    uint64_t count; /* --count: stop after this many */
    enum format format;
    char terminator; /* after each raw entry: '\n', or '\0' with -z */
    bool linearizable;
    bool envelope; /* local mode on a node's directory: strip the client envelope */
};

static void usage(FILE *to)
{
    fprintf(to,
            "Usage: %s -d DIR [OPTIONS]\n"
            "       %s -c CONFIG [-i ID] [--linearizable] [--timeout SECONDS] [OPTIONS]\n"
            "Print the last committed entries of the trp log in DIR.\n"
            "\n"
            "  -d, --dir DIR          the log directory\n"
            "  -c, --config CONFIG    read from a cluster (also $TRP_CONFIG)\n"
            "  -i, --id ID            read from node ID (default: the first node)\n"
            "      --linearizable     confirm the commit seq with the leader first\n"
            "      --timeout SECONDS  give up (exit 75) when no node answers (default 10)\n"
            "  -n, --lines N          the last N entries (default 10)\n"
            "      --from SEQ         every entry from SEQ on, instead of -n\n"
            "  -f, --follow           keep printing entries as they are committed\n"
            "      --count N          stop after N entries\n"
            "  -o, --output FORMAT    raw (the payload; default) or json (JSON Lines)\n"
            "  -z, --null             end each raw entry with NUL, not newline\n"
            "  -h, --help             show this help\n"
            "      --version          show the version\n"
            "\n"
            "Exit status: 0 done, 1 integrity violation while reading, 64 usage,\n"
            "65 not a trp log or SEQ before the first entry, 66 missing, 74 I/O error,\n"
            "75 no node answered.\n",
            cli_prog(), cli_prog());
}

enum { OPT_FROM = 256, OPT_COUNT, OPT_VERSION, OPT_LINEARIZABLE, OPT_TIMEOUT };

/* Parse argv into o. Returns -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, struct tail_opts *o)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},
        {"id", required_argument, NULL, 'i'},
        {"linearizable", no_argument, NULL, OPT_LINEARIZABLE},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"lines", required_argument, NULL, 'n'},
        {"from", required_argument, NULL, OPT_FROM},
        {"follow", no_argument, NULL, 'f'},
        {"count", required_argument, NULL, OPT_COUNT},
        {"output", required_argument, NULL, 'o'},
        {"null", no_argument, NULL, 'z'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->lines = 10;
    o->terminator = '\n';
    trp_err err = {0};
    mpz_t scratch;
    int c, rc;
    bool have_lines = false;
    opterr = 0;
    cli_where_init(&o->w);
    while ((c = getopt_long(argc, argv, ":d:c:i:n:fo:zh", longopts, NULL)) != -1) {
        if ((rc = cli_where_option(&o->w, c, OPT_TIMEOUT, optarg)) >= 0) {
            if (rc)
                return rc;
            continue;
        }
        switch (c) {
        case OPT_LINEARIZABLE:
            o->linearizable = true;
            break;
        case 'n':
            if (cli_parse_u64(optarg, "-n", 0, UINT64_MAX, &o->lines, &err))
                return cli_usage_fail("%s", err.msg);
            have_lines = true;
            break;
        case OPT_FROM:
            mpz_init(scratch);
            c = trp_seq_parse(scratch, optarg, "--from", &err);
            mpz_clear(scratch);
            if (c != TRP_OK)
                return cli_usage_fail("%s", err.msg);
            o->from = optarg;
            break;
        case 'f':
            o->follow = true;
            break;
        case OPT_COUNT:
            if (cli_parse_u64(optarg, "--count", 0, UINT64_MAX, &o->count, &err))
                return cli_usage_fail("%s", err.msg);
            o->have_count = true;
            break;
        case 'o':
            if (strcmp(optarg, "raw") == 0)
                o->format = FMT_RAW;
            else if (strcmp(optarg, "json") == 0)
                o->format = FMT_JSON;
            else
                return cli_usage_fail("-o: unknown format '%s' (raw or json)", optarg);
            break;
        case 'z':
            o->terminator = '\0';
            break;
        default:
            rc = cli_option_end(c, OPT_VERSION, argv, usage);
            return rc >= 0 ? rc : cli_usage_fail("unknown option '%s'", cli_bad_option(argv));
        }
    }
    if ((rc = cli_where_check(&o->w)))
        return rc;
    if (o->linearizable && !o->w.config)
        return cli_usage_fail("--linearizable needs a cluster (-c CONFIG)");
    if (have_lines && o->from)
        return cli_usage_fail("-n and --from exclude each other");
    if (optind < argc)
        return cli_usage_fail("unexpected argument '%s'", argv[optind]);
    return -1;
}

/* Raw output of a node's directory hides the leaders' no-ops, so "the last
 * N" must mean the last N data entries: move start back by one for every
 * no-op in [start, commit), as long as there are entries before it. No-ops
 * are one per leader change, so this reads a handful of entries. */
static int skip_back_over_noops(trp_log *log, const mpz_t first, const mpz_t commit, mpz_t start,
                                trp_err *err)
{
    trp_entry e;
    trp_entry_init(&e);
    mpz_t scanned_from;
    mpz_init_set(scanned_from, commit);
    int rc = TRP_OK;
    uint64_t missing = 0;
    /* Scan [start, scanned_from) backwards; each no-op asks for one more. */
    while (rc == TRP_OK && mpz_cmp(start, scanned_from) < 0) {
        mpz_sub_ui(scanned_from, scanned_from, 1);
        rc = trp_log_read(log, scanned_from, &e, err);
        if (rc == TRP_OK && e.type != TRP_ENTRY_DATA)
            missing++;
        if (mpz_cmp(start, scanned_from) == 0 && missing > 0 && mpz_cmp(start, first) > 0) {
            mpz_sub_ui(start, start, 1);
            missing--;
        }
    }
    mpz_clear(scanned_from);
    trp_entry_clear(&e);
    return rc;
}

/* The seq to start at: --from SEQ, or the last N committed entries. */
static int start_seq(trp_log *log, const struct tail_opts *o, mpz_t start, trp_err *err)
{
    mpz_t first, commit;
    mpz_inits(first, commit, NULL);
    trp_log_first(log, first);
    trp_log_commit_next(log, commit);
    int rc = TRP_OK;
    if (o->from) {
        trp_seq_parse(start, o->from, "--from", NULL);
        if (mpz_cmp(start, first) < 0) {
            char *f = mpz_get_str(NULL, 10, first);
            rc = trp_err_set(err, TRP_ERANGE,
                             "%s: --from %s is before the first stored entry, seq %s",
                             trp_log_dir(log), o->from, f);
            free(f);
        }
    } else {
        mpz_set(start, commit);
        if (mpz_cmp_ui(start, o->lines) >= 0)
            mpz_sub_ui(start, start, o->lines);
        else
            mpz_set_ui(start, 0);
        if (mpz_cmp(start, first) < 0)
            mpz_set(start, first);
        if (o->envelope && o->lines <= TRP_TAIL_SCAN_MAX) /* N data entries, as a node counts */
            rc = skip_back_over_noops(log, first, commit, start, err);
    }
    mpz_clears(first, commit, NULL);
    return rc;
}

struct printer {
    const struct tail_opts *opts;
    cli_out out;
    cli_seqtext seq; /* the seq of the next entry to print (for JSON) */
    uint64_t printed;
    bool done; /* nothing (more) to print: --from beyond the end, reader gone */
};

static void print_entry(struct printer *p, trp_entry *e)
{
    if (p->opts->envelope)
        cli_strip_envelope(e);
    if (p->opts->format == FMT_RAW) {
        if (p->opts->envelope && e->type != TRP_ENTRY_DATA)
            return; /* a Raft leader's no-op carries no user bytes */
        cli_out_write(&p->out, e->payload, e->len);
        cli_out_byte(&p->out, p->opts->terminator);
    } else {
        /* The iterator goes forward one seq at a time; keep the decimal
         * text in step rather than converting every seq. */
        if (p->printed == 0)
            cli_seqtext_set(&p->seq, e->seq);
        cli_out_entry_json(&p->out, e, cli_seqtext_str(&p->seq));
        cli_seqtext_inc(&p->seq);
    }
    p->printed++;
}

/* inotify on the log's watch path (its directory), so follow mode sleeps
 * until a writer writes there. */
static int watch_open(trp_log *log, trp_err *err)
{
    int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd < 0)
        return -trp_err_sys(err, TRP_EIO, errno, "inotify");
    const char *path = trp_log_watch_path(log);
    uint32_t mask = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ATTRIB | IN_DELETE;
    if (inotify_add_watch(fd, path, mask) < 0) {
        int e = errno;
        close(fd);
        return -trp_err_sys(err, TRP_EIO, e, "%s: inotify watch", path);
    }
    return fd;
}

/* Sleep until the log changes (1) or stdout's reader is gone (0). */
static int watch_wait(int ifd, trp_err *err)
{
    /* POLLERR on a pipe's write end means its reader has closed it:
     * `trp-tail -f | head -1` ends even if nothing more is appended. */
    struct pollfd p[2] = {{.fd = ifd, .events = POLLIN}, {.fd = STDOUT_FILENO, .events = 0}};
    for (;;) {
        int n = poll(p, 2, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -trp_err_sys(err, TRP_EIO, errno, "poll");
        }
        if (p[1].revents & (POLLERR | POLLHUP))
            return 0;
        if (p[1].revents & POLLNVAL)
            p[1].fd = -1; /* no stdout to watch (closed): only the log */
        if (p[0].revents & POLLIN) {
            char events[4096] __attribute__((aligned(8)));
            while (read(ifd, events, sizeof events) > 0)
                ; /* drain: one refresh covers them all */
            return 1;
        }
    }
}

static bool count_reached(const struct printer *p)
{
    return p->opts->have_count && p->printed >= p->opts->count;
}

/* An iterator can only start inside the visible log: for --from beyond
 * its end, print nothing (p->done) or, following, wait until the commit
 * point reaches start. */
static int wait_for_start(trp_log *log, struct printer *p, int ifd, const mpz_t start, trp_err *err)
{
    mpz_t visible;
    mpz_init(visible);
    int rc = TRP_OK;
    for (;;) {
        trp_log_commit_next(log, visible);
        if (mpz_cmp(start, visible) <= 0)
            break;
        if (!p->opts->follow) {
            p->done = true;
            break;
        }
        int w = watch_wait(ifd, err);
        if (w <= 0) {
            rc = w < 0 ? -w : TRP_OK;
            p->done = w == 0;
            break;
        }
        rc = trp_log_refresh(log, err);
        if (rc != TRP_OK)
            break;
    }
    mpz_clear(visible);
    return rc;
}

/* Print entries from start on; in follow mode, forever (or --count). */
static int tail_entries(trp_log *log, struct printer *p, const mpz_t start, trp_err *err)
{
    int ifd = -1;
    if (p->opts->follow) {
        ifd = watch_open(log, err);
        if (ifd < 0)
            return -ifd;
        /* Open read the watermark before the watch existed: a commit in
         * between would wake no one, so look again now that it does. */
        int rc = trp_log_refresh(log, err);
        if (rc != TRP_OK) {
            close(ifd);
            return rc;
        }
    }
    int rc = wait_for_start(log, p, ifd, start, err);
    if (rc != TRP_OK || p->done) {
        if (ifd >= 0)
            close(ifd);
        return rc;
    }
    trp_iter *it = NULL;
    rc = trp_iter_open(&it, log, start, err);
    if (rc == TRP_OK && p->opts->format == FMT_RAW)
        trp_iter_set_hash(it, false); /* raw shows no hash; CRCs still checked */
    trp_entry e;
    trp_entry_init(&e);
    while (rc == TRP_OK && !count_reached(p) && p->out.state == CLI_OUT_OK) {
        int got = trp_iter_next(it, &e, err);
        if (got < 0) {
            rc = -got;
            break;
        }
        if (got > 0) {
            print_entry(p, &e);
            continue;
        }
        if (cli_out_flush(&p->out) != CLI_OUT_OK || !p->opts->follow)
            break;
        int w = watch_wait(ifd, err);
        if (w < 0)
            rc = -w;
        else if (w == 0)
            break;
        else
            rc = trp_log_refresh(log, err);
    }
    cli_out_flush(&p->out);
    trp_entry_clear(&e);
    if (it)
        trp_iter_close(it);
    if (ifd >= 0)
        close(ifd);
    return rc;
}

static int tail_cluster(const struct tail_opts *o)
{
    cli_tail_cluster co = {.config = o->w.config,
                           .node = o->w.node,
                           .timeout_ms = (uint32_t)(o->w.timeout_s * 1000),
                           .lines = o->lines,
                           .from = o->from,
                           .follow = o->follow,
                           .linearizable = o->linearizable,
                           .json = o->format == FMT_JSON,
                           .have_count = o->have_count,
                           .count = o->count,
                           .terminator = o->terminator};
    if (o->have_count && o->count == 0)
        return 0;
    return cli_tail_cluster_run(&co);
}

static int tail_local(struct tail_opts *o)
{
    o->envelope = trp_dir_has_envelope(o->w.dir);
    trp_err err = {0};
    trp_log_options lo = {.read_only = true};
    trp_log *log = NULL;
    int rc = trp_log_open(&log, o->w.dir, &lo, &err);
    if (rc != TRP_OK)
        return cli_fail(&err);
    struct printer p = {.opts = o};
    cli_seqtext_init(&p.seq);
    if (cli_out_init(&p.out, STDOUT_FILENO, 1 << 18) != 0) {
        trp_log_close(log);
        cli_warn("out of memory");
        return EX_OSERR;
    }
    mpz_t start;
    mpz_init(start);
    rc = start_seq(log, o, start, &err);
    if (rc == TRP_OK && !(o->have_count && o->count == 0))
        rc = tail_entries(log, &p, start, &err);
    int status = rc == TRP_OK ? cli_out_status(&p.out) : cli_fail(&err);
    mpz_clear(start);
    cli_seqtext_free(&p.seq);
    cli_out_free(&p.out);
    trp_log_close(log);
    return status;
}

int main(int argc, char **argv)
{
    cli_keep_std_fds();
    struct tail_opts opts;
    int status = parse_args(argc, argv, &opts);
    if (status >= 0)
        return status;
    /* A reader that goes away is a normal end: see EPIPE, exit 0 quietly. */
    signal(SIGPIPE, SIG_IGN);
    return opts.w.config ? tail_cluster(&opts) : tail_local(&opts);
}
