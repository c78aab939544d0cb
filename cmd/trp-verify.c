/*
 * trp-verify: check that one or more trp log directories are intact and,
 * given several (replicas), that they agree.
 *
 * The one idea: each directory is verified on its own by trp_verify_dir
 * (every CRC, every chain link re-hashed, seq continuity, segment headers,
 * the index; nothing trusted). Agreement then needs no further scan: in two
 * verified chains, equal hashes at seq s imply equal entries at every seq
 * up to s, so the first divergent seq is found by a binary search over the
 * common range, a few reads per replica.
 *
 * Verdicts and diagnostics go to stderr; --json puts a summary on stdout.
 * main() parses options and hands over to verify_local(); a cluster mode
 * can be added beside it as another function.
 */
#include <stdio.h> /* before gmp.h (via trp.h), which then declares gmp_fprintf */

#include "cli.h"
#include "trp.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

struct verify_opts {
    char **dirs;
    int dir_count;
    bool have_anchor;
    const char *anchor_seq_text;
    uint8_t anchor_hash[TRP_HASH_LEN];
    bool json;
    bool quiet;
};

static void usage(FILE *to)
{
    fprintf(to,
            "Usage: %s [OPTIONS] DIR...\n"
            "Verify the trp log in each DIR: segment headers, checksums, seq\n"
            "continuity, every hash-chain link and the index. With several DIRs\n"
            "(replicas), also check that they agree on their common entries.\n"
            "\n"
            "      --anchor SEQ:HASH  the entry at SEQ must have hash HASH\n"
            "      --json             print a JSON summary per DIR on stdout\n"
            "  -q, --quiet            no PASS lines, only failures\n"
            "  -h, --help             show this help\n"
            "      --version          show the version\n"
            "\n"
            "Exit status: 0 verified, 1 integrity violation or replicas disagree,\n"
            "64 usage, 65 not a trp log or unsupported version, 66 missing, 74 I/O.\n",
            cli_prog());
}

enum { OPT_ANCHOR = 256, OPT_JSON, OPT_VERSION };

/* "SEQ:HASH" into o. Returns -1 to go on, or an exit status. */
static int parse_anchor(char *text, struct verify_opts *o)
{
    char *colon = strchr(text, ':');
    if (!colon)
        return cli_usage_fail("--anchor: '%s' is not SEQ:HASH", text);
    *colon = '\0';
    trp_err err = {0};
    mpz_t seq;
    mpz_init(seq);
    int rc = trp_seq_parse(seq, text, "--anchor seq", &err);
    mpz_clear(seq);
    if (rc == TRP_OK)
        rc = trp_hash_parse(o->anchor_hash, colon + 1, "--anchor hash", &err);
    if (rc != TRP_OK)
        return cli_usage_fail("%s", err.msg);
    o->anchor_seq_text = text;
    o->have_anchor = true;
    return -1;
}

static int parse_args(int argc, char **argv, struct verify_opts *o)
{
    static const struct option longopts[] = {
        {"anchor", required_argument, NULL, OPT_ANCHOR},
        {"json", no_argument, NULL, OPT_JSON},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_ANCHOR:
            c = parse_anchor(optarg, o);
            if (c >= 0)
                return c;
            break;
        case OPT_JSON: o->json = true; break;
        case 'q': o->quiet = true; break;
        case 'h': usage(stdout); return 0;
        case OPT_VERSION: cli_print_version(); return 0;
        case ':': return cli_usage_fail("option '%s' needs an argument", argv[optind - 1]);
        default: return cli_usage_fail("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind == argc)
        return cli_usage_fail("no log directory given");
    o->dirs = argv + optind;
    o->dir_count = argc - optind;
    return -1;
}

/* One directory's outcome. */
struct replica {
    const char *dir;
    int status; /* exit status for this directory */
    trp_verify_report report;
    trp_err err;
};

static void json_summary(cli_out *out, const struct replica *r)
{
    const trp_verify_report *v = &r->report;
    char hex[TRP_HASH_HEX_LEN + 1], num[160];
    cli_out_str(out, "{\"dir\":");
    cli_out_json_string(out, (const uint8_t *)r->dir, strlen(r->dir));
    bool read = r->err.code == TRP_OK;
    cli_out_str(out, r->status == 0 ? ",\"ok\":true" : ",\"ok\":false");
    if (read) {
        char *first = mpz_get_str(NULL, 10, v->first);
        mpz_t last;
        mpz_init(last);
        mpz_sub_ui(last, v->next, 1);
        char *last_text = mpz_cmp(v->next, v->first) > 0 ? mpz_get_str(NULL, 10, last) : NULL;
        trp_hash_hex(hex, v->head);
        cli_out_str(out, ",\"first\":\"");
        cli_out_str(out, first);
        cli_out_str(out, last_text ? "\",\"last\":\"" : "\",\"last\":null");
        if (last_text) {
            cli_out_str(out, last_text);
            cli_out_byte(out, '"');
        }
        snprintf(num, sizeof num, ",\"head\":\"%s\",\"entries\":%llu,\"bytes\":%llu,\"segments\":%llu",
                 hex, (unsigned long long)v->entries, (unsigned long long)v->bytes,
                 (unsigned long long)v->segments);
        cli_out_str(out, num);
        free(first);
        free(last_text);
        mpz_clear(last);
    }
    if (read && !v->ok) {
        cli_out_str(out, ",\"problem\":");
        cli_out_json_string(out, (const uint8_t *)v->problem, strlen(v->problem));
        cli_out_str(out, ",\"file\":");
        cli_out_json_string(out, (const uint8_t *)v->file, strlen(v->file));
        snprintf(num, sizeof num, ",\"offset\":%llu,\"seq\":", (unsigned long long)v->offset);
        cli_out_str(out, num);
        if (v->seq[0])
            cli_out_json_string(out, (const uint8_t *)v->seq, strlen(v->seq));
        else
            cli_out_str(out, "null");
    }
    if (!read || !v->ok) {
        const char *msg = read ? v->message : r->err.msg;
        cli_out_str(out, ",\"message\":");
        cli_out_json_string(out, (const uint8_t *)msg, strlen(msg));
    }
    cli_out_str(out, "}\n");
}

static void verify_one(struct replica *r, const struct verify_opts *o, const mpz_t anchor_seq)
{
    trp_verify_report *v = &r->report;
    int rc = trp_verify_dir(r->dir, o->have_anchor ? anchor_seq : NULL,
                            o->have_anchor ? o->anchor_hash : NULL, v, &r->err);
    if (rc != TRP_OK) {
        r->err.code = rc;
        r->status = cli_fail(&r->err);
        return;
    }
    if (!v->ok) {
        /* The first failure: where (file, offset, seq) and what kind. */
        if (strstr(v->message, v->problem) && (!v->file[0] || strstr(v->message, v->file)))
            cli_warn("FAIL %s: %s", r->dir, v->message); /* it already says where and what */
        else
            cli_warn("FAIL %s: %s: offset %llu: seq %s: %s: %s", r->dir,
                     v->file[0] ? v->file : "-", (unsigned long long)v->offset,
                     v->seq[0] ? v->seq : "-", v->problem, v->message);
        r->status = trp_exit_code(v->kind ? v->kind : TRP_ECORRUPT);
        return;
    }
    if (!o->quiet) {
        char hex[TRP_HASH_HEX_LEN + 1];
        trp_hash_hex(hex, v->head);
        if (mpz_cmp(v->next, v->first) > 0) {
            mpz_t last;
            mpz_init(last);
            mpz_sub_ui(last, v->next, 1);
            gmp_fprintf(stderr, "%s: PASS %s: %llu entries, seq %Zd..%Zd, head %s\n", cli_prog(),
                        r->dir, (unsigned long long)v->entries, v->first, last, hex);
            mpz_clear(last);
        } else {
            gmp_fprintf(stderr, "%s: PASS %s: empty, next seq %Zd, anchor %s\n", cli_prog(),
                        r->dir, v->next, hex);
        }
    }
}

/* The hash of the entry at seq in an open reader, into out. */
static int hash_at(trp_log *log, const mpz_t seq, trp_entry *e, uint8_t out[TRP_HASH_LEN],
                   trp_err *err)
{
    int rc = trp_log_read(log, seq, e, err);
    if (rc == TRP_OK)
        memcpy(out, e->hash, TRP_HASH_LEN);
    return rc;
}

/* The first seq in [lo, hi) where a and b hold different entries, by
 * binary search (see the header comment); *found false if none. */
static int first_divergence(trp_log *a, trp_log *b, mpz_t lo, mpz_t hi, mpz_t out, bool *found,
                            trp_err *err)
{
    trp_entry e;
    trp_entry_init(&e);
    uint8_t ha[TRP_HASH_LEN], hb[TRP_HASH_LEN];
    mpz_t last, mid;
    mpz_inits(last, mid, NULL);
    *found = false;
    int rc = TRP_OK;
    if (mpz_cmp(lo, hi) < 0) {
        mpz_sub_ui(last, hi, 1);
        rc = hash_at(a, last, &e, ha, err);
        if (rc == TRP_OK)
            rc = hash_at(b, last, &e, hb, err);
        *found = rc == TRP_OK && memcmp(ha, hb, TRP_HASH_LEN) != 0;
    }
    /* Invariant: entries below lo agree (or lo is the common start), the
     * entry at `last` differs. Bounded: the range halves every round. */
    mpz_set(out, last);
    while (*found && rc == TRP_OK && mpz_cmp(lo, out) < 0) {
        mpz_add(mid, lo, out);
        mpz_fdiv_q_2exp(mid, mid, 1);
        rc = hash_at(a, mid, &e, ha, err);
        if (rc == TRP_OK)
            rc = hash_at(b, mid, &e, hb, err);
        if (rc != TRP_OK)
            break;
        if (memcmp(ha, hb, TRP_HASH_LEN) != 0)
            mpz_set(out, mid);
        else
            mpz_add_ui(lo, mid, 1);
    }
    mpz_clears(last, mid, NULL);
    trp_entry_clear(&e);
    return rc;
}

/* Compare replica b against a. Returns an exit status (0 agree, 1 not). */
static int compare_pair(const struct replica *a, const struct replica *b)
{
    trp_err err = {0};
    trp_log_options lo = {.read_only = true};
    trp_log *la = NULL, *lb = NULL;
    int rc = trp_log_open(&la, a->dir, &lo, &err);
    if (rc == TRP_OK)
        rc = trp_log_open(&lb, b->dir, &lo, &err);
    int status = 0;
    if (rc == TRP_OK) {
        mpz_t low, high, other, at;
        mpz_inits(low, high, other, at, NULL);
        trp_log_first(la, low);
        trp_log_first(lb, other);
        if (mpz_cmp(other, low) > 0)
            mpz_set(low, other);
        trp_log_commit_next(la, high);
        trp_log_commit_next(lb, other);
        if (mpz_cmp(other, high) < 0)
            mpz_set(high, other);
        bool found = false;
        rc = first_divergence(la, lb, low, high, at, &found, &err);
        if (rc == TRP_OK && found) {
            gmp_fprintf(stderr, "%s: FAIL %s and %s diverge at seq %Zd\n", cli_prog(), a->dir,
                        b->dir, at);
            status = 1;
        }
        mpz_clears(low, high, other, at, NULL);
    }
    if (rc != TRP_OK)
        status = cli_fail(&err);
    if (la)
        trp_log_close(la);
    if (lb)
        trp_log_close(lb);
    return status;
}

static int verify_local(const struct verify_opts *o)
{
    struct replica *reps = calloc((size_t)o->dir_count, sizeof *reps);
    cli_out out;
    if (!reps || cli_out_init(&out, STDOUT_FILENO, 1 << 16) != 0) {
        free(reps);
        cli_warn("out of memory");
        return EX_OSERR;
    }
    mpz_t anchor_seq;
    mpz_init(anchor_seq);
    if (o->have_anchor)
        trp_seq_parse(anchor_seq, o->anchor_seq_text, "--anchor", NULL);
    int status = 0;
    for (int i = 0; i < o->dir_count; i++) {
        reps[i].dir = o->dirs[i];
        trp_verify_report_init(&reps[i].report);
        verify_one(&reps[i], o, anchor_seq);
        if (o->json)
            json_summary(&out, &reps[i]);
        if (status == 0)
            status = reps[i].status;
    }
    /* Agreement is only meaningful between replicas that verified. */
    int agree = 0;
    for (int i = 1; i < o->dir_count && status == 0; i++) {
        agree = compare_pair(&reps[0], &reps[i]);
        if (agree != 0)
            status = agree;
    }
    if (o->json && o->dir_count > 1) {
        char line[128];
        snprintf(line, sizeof line, "{\"replicas\":%d,\"agree\":%s}\n", o->dir_count,
                 status == 0 ? "true" : (agree ? "false" : "null"));
        cli_out_str(&out, line);
    }
    if (status == 0 && o->dir_count > 1 && !o->quiet)
        fprintf(stderr, "%s: PASS %d replicas agree on their common entries\n", cli_prog(),
                o->dir_count);
    cli_out_flush(&out);
    int out_status = cli_out_status(&out);
    for (int i = 0; i < o->dir_count; i++)
        trp_verify_report_clear(&reps[i].report);
    free(reps);
    mpz_clear(anchor_seq);
    cli_out_free(&out);
    return status ? status : out_status;
}

int main(int argc, char **argv)
{
    struct verify_opts opts;
    int status = parse_args(argc, argv, &opts);
    if (status >= 0)
        return status;
    return verify_local(&opts);
}
