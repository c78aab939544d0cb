/*
 * trp-verify: check that one or more trp log directories are intact and,
 * given several (replicas), that they agree.
 *
 * The one idea: all checking lives in the library (trp_verify_agree: each
 * directory verified by trp_verify_dir, trusting nothing, then the first
 * divergent seq found by binary search, since equal hashes at a seq imply
 * equal prefixes); this file only turns its reports into PASS/FAIL lines
 * on stderr, an optional JSON summary on stdout, and an exit status.
 *
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
        case OPT_JSON:
            o->json = true;
            break;
        case 'q':
            o->quiet = true;
            break;
        default: {
            int rc = cli_option_end(c, OPT_VERSION, argv, usage);
            return rc >= 0 ? rc : cli_usage_fail("unknown option '%s'", cli_bad_option(argv));
        }
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
    int status;                      /* exit status for this directory */
    const trp_verify_report *report; /* filled by trp_verify_agree */
};

/* A directory that could not be read as a log at all (missing, not a log,
 * another version, unreadable): no summary, only the reason. */
static bool unreadable(const trp_verify_report *v)
{
    return !v->ok && v->kind != TRP_ECORRUPT && !v->file[0];
}

static void json_summary(cli_out *out, const struct replica *r)
{
    const trp_verify_report *v = r->report;
    char hex[TRP_HASH_HEX_LEN + 1], num[200];
    cli_out_str(out, "{\"dir\":");
    cli_out_json_string(out, (const uint8_t *)r->dir, strlen(r->dir));
    cli_out_str(out, v->ok ? ",\"ok\":true" : ",\"ok\":false");
    if (unreadable(v)) {
        cli_out_str(out, ",\"first\":null,\"last\":null,\"head\":null,\"entries\":0,\"bytes\":0,"
                         "\"segments\":0,\"problem\":");
        cli_out_json_string(out, (const uint8_t *)v->problem, strlen(v->problem));
        cli_out_str(out, ",\"file\":null,\"offset\":null,\"seq\":null,\"message\":");
        cli_out_json_string(out, (const uint8_t *)v->message, strlen(v->message));
        cli_out_str(out, "}\n");
        return;
    }
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
    if (!v->ok) {
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
        cli_out_str(out, ",\"message\":");
        cli_out_json_string(out, (const uint8_t *)v->message, strlen(v->message));
    } else if (v->message[0]) {
        cli_out_str(out, ",\"note\":");
        cli_out_json_string(out, (const uint8_t *)v->message, strlen(v->message));
    }
    cli_out_str(out, "}\n");
}

/* The verdict line for one verified directory, and its exit status. */
static int report_one(const struct replica *r, bool quiet)
{
    const trp_verify_report *v = r->report;
    if (!v->ok && unreadable(v)) {
        if (strncmp(v->message, r->dir, strlen(r->dir)) == 0)
            cli_warn("FAIL %s", v->message); /* it names the directory */
        else
            cli_warn("FAIL %s: %s", r->dir, v->message);
        return trp_exit_code(v->kind);
    }
    if (!v->ok) {
        /* The first failure: where (file, offset, seq) and what kind. */
        if (strstr(v->message, v->problem) && (!v->file[0] || strstr(v->message, v->file)))
            cli_warn("FAIL %s: %s", r->dir, v->message); /* it already says where and what */
        else
            cli_warn("FAIL %s: %s: offset %llu: seq %s: %s: %s", r->dir, v->file[0] ? v->file : "-",
                     (unsigned long long)v->offset, v->seq[0] ? v->seq : "-", v->problem,
                     v->message);
        return trp_exit_code(v->kind ? v->kind : TRP_ECORRUPT);
    }
    if (quiet)
        return 0;
    char hex[TRP_HASH_HEX_LEN + 1];
    trp_hash_hex(hex, v->head);
    if (mpz_cmp(v->next, v->first) > 0) {
        mpz_t last;
        mpz_init(last);
        mpz_sub_ui(last, v->next, 1);
        gmp_fprintf(stderr, "%s: PASS %s: %llu %s, seq %Zd..%Zd, head %s\n", cli_prog(), r->dir,
                    (unsigned long long)v->entries, v->entries == 1 ? "entry" : "entries", v->first,
                    last, hex);
        mpz_clear(last);
    } else {
        gmp_fprintf(stderr, "%s: PASS %s: empty, next seq %Zd, anchor %s\n", cli_prog(), r->dir,
                    v->next, hex);
    }
    if (v->message[0]) /* passed, with something worth knowing (a torn tail) */
        cli_warn("note %s: %s", r->dir, v->message);
    return 0;
}

static int verify_local(const struct verify_opts *o)
{
    size_t n = (size_t)o->dir_count;
    struct replica *reps = calloc(n, sizeof *reps);
    trp_verify_report *reports = calloc(n, sizeof *reports);
    cli_out out;
    if (!reps || !reports || cli_out_init(&out, STDOUT_FILENO, 1 << 16) != 0) {
        free(reps);
        free(reports);
        cli_warn("out of memory");
        return EX_OSERR;
    }
    for (size_t i = 0; i < n; i++)
        trp_verify_report_init(&reports[i]);
    mpz_t anchor_seq;
    mpz_init(anchor_seq);
    if (o->have_anchor)
        trp_seq_parse(anchor_seq, o->anchor_seq_text, "--anchor", NULL);
    char diverge[256] = "";
    trp_err err = {0};
    int rc = trp_verify_agree((const char *const *)o->dirs, n, o->have_anchor ? anchor_seq : NULL,
                              o->have_anchor ? o->anchor_hash : NULL, reports, diverge,
                              sizeof diverge, &err);
    int status = 0;
    bool any_failed = false;
    for (size_t i = 0; i < n; i++)
        any_failed = any_failed || !reports[i].ok;
    if (rc != TRP_OK && rc != TRP_ECORRUPT && !any_failed) {
        /* The check itself could not be done (out of memory). */
        status = cli_fail(&err);
        if (o->json) {
            cli_out_str(&out, "{\"ok\":false,\"message\":");
            cli_out_json_string(&out, (const uint8_t *)err.msg, strlen(err.msg));
            cli_out_str(&out, "}\n");
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            reps[i].dir = o->dirs[i];
            reps[i].report = &reports[i];
            reps[i].status = report_one(&reps[i], o->quiet);
            if (o->json)
                json_summary(&out, &reps[i]);
            if (status == 0)
                status = reps[i].status;
        }
        if (status == 0 && rc == TRP_ECORRUPT) {
            cli_warn("FAIL %s", err.msg); /* the replicas diverge */
            status = 1;
        }
        if (o->json && n > 1) {
            cli_out_str(&out, "{\"replicas\":");
            char num[32];
            snprintf(num, sizeof num, "%zu", n);
            cli_out_str(&out, num);
            cli_out_str(&out, status == 0  ? ",\"agree\":true"
                              : diverge[0] ? ",\"agree\":false"
                                           : ",\"agree\":null");
            cli_out_str(&out, ",\"diverge\":");
            if (diverge[0]) {
                cli_out_byte(&out, '"');
                cli_out_str(&out, diverge);
                cli_out_byte(&out, '"');
            } else {
                cli_out_str(&out, "null");
            }
            cli_out_str(&out, "}\n");
        }
        if (status == 0 && n > 1 && !o->quiet)
            fprintf(stderr, "%s: PASS %zu replicas agree on their common entries\n", cli_prog(), n);
    }
    cli_out_flush(&out);
    int out_status = cli_out_status(&out);
    for (size_t i = 0; i < n; i++)
        trp_verify_report_clear(&reports[i]);
    free(reports);
    free(reps);
    mpz_clear(anchor_seq);
    cli_out_free(&out);
    return status ? status : out_status;
}

int main(int argc, char **argv)
{
    cli_keep_std_fds();
    struct verify_opts opts;
    int status = parse_args(argc, argv, &opts);
    if (status >= 0)
        return status;
    return verify_local(&opts);
}
