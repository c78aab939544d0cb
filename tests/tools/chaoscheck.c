/*
 * chaoscheck: the history checker of the chaos tests. Run after the faults
 * stopped, the cluster healed and every node was stopped.
 *
 * Usage: chaoscheck [--bound-ms MS] [--quiet] DIR
 *
 * DIR holds (as tests/chaos/lib.sh writes them):
 *   hist.*        client histories, one append per line:
 *                 CLIENT N INVOKE_US COMPLETE_US OUTCOME SEQ PAYLOAD
 *                 OUTCOME is ok (SEQ acknowledged), unknown (timed out or the
 *                 client died: SEQ is -) or refused (definitely not applied)
 *   final.ID.json every node's final log, JSON Lines (trp-tail -o json)
 *   tail.*.json   what each tailer printed while the test ran
 *   events        harness events, "TIME_US KIND [text]"; KIND heal (all
 *                 faults gone) or avail (faults go on, but a quorum can
 *                 talk) starts a liveness clock: an append must be
 *                 acknowledged within --bound-ms
 *
 * Rules (each violation is printed as one "VIOLATION rule: detail" line):
 *   agree     every node's final log is the same entries (seq, hash, payload)
 *   chain     the final log's seqs are consecutive
 *   lost      an acknowledged append is in the log once, at its acked seq
 *   dup       no payload is in the log twice, whatever its outcome
 *   refused   a refused append is not in the log
 *   phantom   every data entry was appended by some client (or the harness:
 *             payloads starting "barrier-")
 *   order     if A was acknowledged before B was invoked, seq(A) < seq(B)
 *   tail      each tailer saw a contiguous run of the final log, in order,
 *             with the same seqs, hashes and payloads
 *   live      after each heal or avail event an append is acknowledged
 *             within the bound
 * Then the figures: attempted, acknowledged, unknown, refused, lost,
 * duplicated, longest unavailability, slowest recovery after a heal.
 * Exit 0 if no rule was broken, 1 if one was, 2 on unreadable input.
 *
 * The one idea: everything is decided from the recorded files alone, so a
 * failed run can be re-checked, and the checker itself is tested on
 * synthetic histories that break each rule (tests/chaos/checker.sh).
 * Seqs are GMP integers, as everywhere in trp.
 */
#include <cjson/cJSON.h>
#include <glob.h>
#include <stdarg.h>
#include <gmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIOLATIONS_SHOWN 20 /* per rule; the count is always exact */

enum outcome { OK, UNKNOWN, REFUSED };

struct op {
    unsigned long client, n;
    long long invoke_us, complete_us;
    enum outcome outcome;
    mpz_t seq; /* valid when outcome == OK */
    char *payload;
    unsigned found;     /* times the payload is in the final log */
    size_t found_index; /* where (the first time) */
};

struct entry {
    mpz_t seq;
    char *type, *hash, *payload;
};

struct log {
    char *name;
    struct entry *e;
    size_t n, cap;
};

static struct op *ops;
static size_t nops, ops_cap;
static struct log *logs;
static size_t nlogs;
static bool quiet;

static const char *rule_names[] = {"agree", "chain", "lost", "dup", "refused", "phantom", "order", "tail", "live"};
enum rule { R_AGREE, R_CHAIN, R_LOST, R_DUP, R_REFUSED, R_PHANTOM, R_ORDER, R_TAIL, R_LIVE, R_COUNT };
static unsigned long violations[R_COUNT];

static void violation(enum rule r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(enum rule r, const char *fmt, ...)
{
    if (violations[r]++ >= VIOLATIONS_SHOWN)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("VIOLATION %s: ", rule_names[r]);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "chaoscheck: out of memory\n");
        exit(2);
    }
    return q;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) {
        fprintf(stderr, "chaoscheck: out of memory\n");
        exit(2);
    }
    return d;
}

/* ---- payload index: open addressing, payload -> op index ---- */
static size_t *slots, nslots;

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void index_build(void)
{
    nslots = 16;
    while (nslots < 2 * nops + 16)
        nslots *= 2;
    slots = xrealloc(NULL, nslots * sizeof *slots);
    for (size_t i = 0; i < nslots; i++)
        slots[i] = SIZE_MAX;
    for (size_t i = 0; i < nops; i++) {
        size_t s = fnv(ops[i].payload) & (nslots - 1);
        while (slots[s] != SIZE_MAX) {
            if (strcmp(ops[slots[s]].payload, ops[i].payload) == 0) {
                fprintf(stderr, "chaoscheck: payload %s appended twice by the clients; payloads must be unique\n",
                        ops[i].payload);
                exit(2);
            }
            s = (s + 1) & (nslots - 1);
        }
        slots[s] = i;
    }
}

static struct op *index_find(const char *payload)
{
    for (size_t s = fnv(payload) & (nslots - 1); slots[s] != SIZE_MAX; s = (s + 1) & (nslots - 1))
        if (strcmp(ops[slots[s]].payload, payload) == 0)
            return &ops[slots[s]];
    return NULL;
}

/* ---- input ---- */
static void read_history(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(2);
    }
    char line[8192], outcome[32], seq[256], payload[4096];
    unsigned long lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        struct op o = {0};
        if (sscanf(line, "%lu %lu %lld %lld %31s %255s %4095s", &o.client, &o.n, &o.invoke_us, &o.complete_us,
                   outcome, seq, payload) != 7) {
            fprintf(stderr, "chaoscheck: %s:%lu: malformed history line\n", path, lineno);
            exit(2);
        }
        if (strcmp(outcome, "ok") == 0)
            o.outcome = OK;
        else if (strcmp(outcome, "unknown") == 0)
            o.outcome = UNKNOWN;
        else if (strcmp(outcome, "refused") == 0)
            o.outcome = REFUSED;
        else {
            fprintf(stderr, "chaoscheck: %s:%lu: outcome '%s'\n", path, lineno, outcome);
            exit(2);
        }
        mpz_init(o.seq);
        if (o.outcome == OK && mpz_set_str(o.seq, seq, 10) != 0) {
            fprintf(stderr, "chaoscheck: %s:%lu: seq '%s'\n", path, lineno, seq);
            exit(2);
        }
        o.payload = xstrdup(payload);
        if (nops == ops_cap) {
            ops_cap = ops_cap ? 2 * ops_cap : 1024;
            ops = xrealloc(ops, ops_cap * sizeof *ops);
        }
        ops[nops++] = o;
    }
    fclose(f);
}

/* Parse one JSON Lines entry; false if it is not one. */
static bool parse_entry(const char *line, struct entry *e)
{
    cJSON *j = cJSON_Parse(line);
    if (!j)
        return false;
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(j, "hash");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text");
    const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(j, "base64");
    bool ok = cJSON_IsString(seq) && cJSON_IsString(hash);
    if (ok) {
        mpz_init(e->seq);
        ok = mpz_set_str(e->seq, seq->valuestring, 10) == 0;
        if (!ok)
            mpz_clear(e->seq);
    }
    if (ok) {
        e->type = xstrdup(cJSON_IsString(type) ? type->valuestring : "data");
        e->hash = xstrdup(hash->valuestring);
        e->payload = xstrdup(cJSON_IsString(text) ? text->valuestring
                             : cJSON_IsString(b64) ? b64->valuestring
                                                   : "");
    }
    cJSON_Delete(j);
    return ok;
}

/* Read JSON Lines; a last line without its newline (a tailer killed while
 * writing) is not an entry. Returns false on a malformed complete line. */
static bool read_log(const char *path, struct log *l)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(2);
    }
    l->name = xstrdup(path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    bool ok = true;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n')
            break;
        if (len == 1)
            continue;
        if (l->n == l->cap) {
            l->cap = l->cap ? 2 * l->cap : 1024;
            l->e = xrealloc(l->e, l->cap * sizeof *l->e);
        }
        if (!parse_entry(line, &l->e[l->n])) {
            ok = false;
            break;
        }
        l->n++;
    }
    free(line);
    fclose(f);
    return ok;
}

static void log_free(struct log *l)
{
    for (size_t i = 0; i < l->n; i++) {
        mpz_clear(l->e[i].seq);
        free(l->e[i].type);
        free(l->e[i].hash);
        free(l->e[i].payload);
    }
    free(l->e);
    free(l->name);
}

static bool same_entry(const struct entry *a, const struct entry *b)
{
    return mpz_cmp(a->seq, b->seq) == 0 && strcmp(a->hash, b->hash) == 0 && strcmp(a->payload, b->payload) == 0 &&
           strcmp(a->type, b->type) == 0;
}

/* ---- checks ---- */
static void check_agreement(void)
{
    const struct log *ref = &logs[0];
    for (size_t k = 1; k < nlogs; k++) {
        const struct log *l = &logs[k];
        size_t n = l->n < ref->n ? l->n : ref->n;
        for (size_t i = 0; i < n; i++) {
            if (!same_entry(&l->e[i], &ref->e[i])) {
                gmp_printf("VIOLATION %s: %s and %s differ at entry %zu (seq %Zd / %Zd, hash %.16s / %.16s)\n",
                           rule_names[R_AGREE], ref->name, l->name, i, ref->e[i].seq, l->e[i].seq,
                           ref->e[i].hash, l->e[i].hash);
                violations[R_AGREE]++;
                goto next;
            }
        }
        if (l->n != ref->n)
            violation(R_AGREE, "%s has %zu entries, %s has %zu (head hashes differ)", ref->name, ref->n, l->name,
                      l->n);
    next:;
    }
    mpz_t want;
    mpz_init(want);
    for (size_t i = 1; i < ref->n; i++) {
        mpz_add_ui(want, ref->e[i - 1].seq, 1);
        if (mpz_cmp(want, ref->e[i].seq) != 0) {
            gmp_printf("VIOLATION %s: %s: seq %Zd follows seq %Zd\n", rule_names[R_CHAIN], ref->name, ref->e[i].seq,
                       ref->e[i - 1].seq);
            violations[R_CHAIN]++;
            break;
        }
    }
    mpz_clear(want);
}

static unsigned long lost, duplicated;

static void check_presence(void)
{
    const struct log *ref = &logs[0];
    for (size_t i = 0; i < ref->n; i++) {
        const struct entry *e = &ref->e[i];
        if (strcmp(e->type, "data") != 0)
            continue;
        struct op *o = index_find(e->payload);
        if (!o) {
            if (strncmp(e->payload, "barrier-", 8) != 0)
                gmp_printf("VIOLATION %s: seq %Zd holds '%.60s', which no client appended\n", rule_names[R_PHANTOM],
                           e->seq, e->payload),
                    violations[R_PHANTOM]++;
            continue;
        }
        if (o->found++ == 0)
            o->found_index = i;
        else
            gmp_printf("VIOLATION %s: '%s' (client %lu, %s) is at seq %Zd and again at seq %Zd\n", rule_names[R_DUP],
                       o->payload, o->client, o->outcome == OK ? "acknowledged" : "unknown",
                       ref->e[o->found_index].seq, e->seq),
                violations[R_DUP]++;
    }
    for (size_t k = 0; k < nops; k++) {
        struct op *o = &ops[k];
        if (o->found > 1)
            duplicated++;
        if (o->outcome == OK) {
            if (o->found == 0) {
                lost++;
                gmp_printf("VIOLATION %s: '%s' was acknowledged at seq %Zd and is not in the log\n", rule_names[R_LOST],
                           o->payload, o->seq);
                violations[R_LOST]++;
            } else if (mpz_cmp(o->seq, ref->e[o->found_index].seq) != 0) {
                lost++;
                gmp_printf("VIOLATION %s: '%s' was acknowledged at seq %Zd but is at seq %Zd\n", rule_names[R_LOST],
                           o->payload, o->seq, ref->e[o->found_index].seq);
                violations[R_LOST]++;
            }
        } else if (o->outcome == REFUSED && o->found) {
            gmp_printf("VIOLATION %s: '%s' was refused but is at seq %Zd\n", rule_names[R_REFUSED], o->payload,
                       ref->e[o->found_index].seq);
            violations[R_REFUSED]++;
        }
    }
}

static int cmp_invoke(const void *a, const void *b)
{
    const struct op *x = *(const struct op *const *)a, *y = *(const struct op *const *)b;
    return (x->invoke_us > y->invoke_us) - (x->invoke_us < y->invoke_us);
}

static int cmp_complete(const void *a, const void *b)
{
    const struct op *x = *(const struct op *const *)a, *y = *(const struct op *const *)b;
    return (x->complete_us > y->complete_us) - (x->complete_us < y->complete_us);
}

/* Real-time order: sweep the acknowledged appends by invocation time,
 * keeping the highest seq among those completed strictly before. */
static void check_order(void)
{
    size_t n = 0;
    struct op **by_inv = xrealloc(NULL, (nops + 1) * sizeof *by_inv);
    struct op **by_done = xrealloc(NULL, (nops + 1) * sizeof *by_done);
    for (size_t i = 0; i < nops; i++)
        if (ops[i].outcome == OK)
            by_inv[n] = by_done[n] = &ops[i], n++;
    qsort(by_inv, n, sizeof *by_inv, cmp_invoke);
    qsort(by_done, n, sizeof *by_done, cmp_complete);
    const struct op *max = NULL;
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        const struct op *b = by_inv[i];
        for (; d < n && by_done[d]->complete_us < b->invoke_us; d++)
            if (!max || mpz_cmp(by_done[d]->seq, max->seq) > 0)
                max = by_done[d];
        if (max && mpz_cmp(max->seq, b->seq) >= 0) {
            if (violations[R_ORDER] < VIOLATIONS_SHOWN)
                gmp_printf("VIOLATION %s: '%s' acknowledged at seq %Zd (done %lld us) before '%s' was invoked "
                           "(%lld us), which got the lower seq %Zd\n",
                           rule_names[R_ORDER], max->payload, max->seq, max->complete_us, b->payload, b->invoke_us,
                           b->seq);
            violations[R_ORDER]++;
        }
    }
    free(by_inv);
    free(by_done);
}

/* A tailer's view must be a contiguous run of the final log. */
static void check_tail(const struct log *t)
{
    const struct log *ref = &logs[0];
    if (t->n == 0)
        return;
    size_t start = SIZE_MAX;
    for (size_t i = 0; i < ref->n; i++)
        if (mpz_cmp(ref->e[i].seq, t->e[0].seq) == 0) {
            start = i;
            break;
        }
    if (start == SIZE_MAX) {
        gmp_printf("VIOLATION %s: %s starts at seq %Zd, which is not in the final log\n", rule_names[R_TAIL], t->name,
                   t->e[0].seq);
        violations[R_TAIL]++;
        return;
    }
    for (size_t k = 0; k < t->n; k++) {
        if (start + k >= ref->n) {
            gmp_printf("VIOLATION %s: %s shows seq %Zd beyond the final log's end\n", rule_names[R_TAIL], t->name,
                       t->e[k].seq);
            violations[R_TAIL]++;
            return;
        }
        if (!same_entry(&t->e[k], &ref->e[start + k])) {
            gmp_printf("VIOLATION %s: %s line %zu shows seq %Zd '%.40s' where the log has seq %Zd '%.40s'\n",
                       rule_names[R_TAIL], t->name, k + 1, t->e[k].seq, t->e[k].payload, ref->e[start + k].seq,
                       ref->e[start + k].payload);
            violations[R_TAIL]++;
            return;
        }
    }
}

/* Availability figures from the acknowledgement times. */
static long long longest_gap_us, slowest_recovery_us = -1;
static unsigned long heals;

static void check_liveness(const char *dir, long long bound_ms)
{
    size_t n = 0;
    struct op **done = xrealloc(NULL, (nops + 1) * sizeof *done);
    long long first_invoke = 0;
    for (size_t i = 0; i < nops; i++) {
        if (i == 0 || ops[i].invoke_us < first_invoke)
            first_invoke = ops[i].invoke_us;
        if (ops[i].outcome == OK)
            done[n++] = &ops[i];
    }
    qsort(done, n, sizeof *done, cmp_complete);
    long long prev = first_invoke;
    for (size_t i = 0; i < n; i++) {
        if (done[i]->complete_us - prev > longest_gap_us)
            longest_gap_us = done[i]->complete_us - prev;
        prev = done[i]->complete_us;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/events", dir);
    FILE *f = fopen(path, "r");
    if (f) {
        char line[1024], kind[64];
        long long t;
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = 0;
            if (sscanf(line, "%lld %63s", &t, kind) != 2 || (strcmp(kind, "heal") != 0 && strcmp(kind, "avail") != 0))
                continue;
            heals++;
            size_t lo = 0, hi = n; /* first acknowledgement after t */
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (done[mid]->complete_us <= t)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo == n) {
                violation(R_LIVE, "no append was acknowledged after the %s at %lld us", kind, t);
                continue;
            }
            long long rec = done[lo]->complete_us - t;
            if (rec > slowest_recovery_us)
                slowest_recovery_us = rec;
            if (rec > bound_ms * 1000)
                violation(R_LIVE, "first acknowledgement %lld ms after the %s at %lld us, bound %lld ms: %s",
                          rec / 1000, kind, t, bound_ms, strchr(line, ' ') ? strchr(line, ' ') + 1 : line);
        }
        fclose(f);
    }
    free(done);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    long long bound_ms = 10000;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--bound-ms") == 0 && i + 1 < argc)
            bound_ms = atoll(argv[++i]);
        else if (strcmp(argv[i], "--quiet") == 0)
            quiet = true;
        else
            break;
    }
    if (i != argc - 1) {
        fprintf(stderr, "usage: chaoscheck [--bound-ms MS] [--quiet] DIR\n");
        return 2;
    }
    const char *dir = argv[i];
    char pat[4096];
    glob_t g;

    snprintf(pat, sizeof pat, "%s/hist.*", dir);
    if (glob(pat, 0, NULL, &g) == 0)
        for (size_t k = 0; k < g.gl_pathc; k++)
            read_history(g.gl_pathv[k]);
    globfree(&g);
    index_build();

    snprintf(pat, sizeof pat, "%s/final.*.json", dir);
    if (glob(pat, 0, NULL, &g) != 0) {
        fprintf(stderr, "chaoscheck: %s: no final.*.json (the nodes' final logs)\n", dir);
        return 2;
    }
    qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, cmp_str);
    nlogs = g.gl_pathc;
    logs = xrealloc(NULL, nlogs * sizeof *logs);
    memset(logs, 0, nlogs * sizeof *logs);
    for (size_t k = 0; k < nlogs; k++)
        if (!read_log(g.gl_pathv[k], &logs[k])) {
            fprintf(stderr, "chaoscheck: %s: line %zu is not an entry\n", g.gl_pathv[k], logs[k].n + 1);
            return 2;
        }
    globfree(&g);
    /* the longest log is the reference: a shorter one is reported as behind */
    for (size_t k = 1; k < nlogs; k++)
        if (logs[k].n > logs[0].n) {
            struct log t = logs[0];
            logs[0] = logs[k];
            logs[k] = t;
        }

    check_agreement();
    check_presence();
    check_order();

    snprintf(pat, sizeof pat, "%s/tail.*.json", dir);
    size_t tails = 0, tail_entries = 0;
    if (glob(pat, 0, NULL, &g) == 0)
        for (size_t k = 0; k < g.gl_pathc; k++) {
            struct log t = {0};
            if (!read_log(g.gl_pathv[k], &t))
                violation(R_TAIL, "%s: line %zu is not an entry", g.gl_pathv[k], t.n + 1);
            check_tail(&t);
            tails++;
            tail_entries += t.n;
            log_free(&t);
        }
    globfree(&g);
    check_liveness(dir, bound_ms);

    unsigned long acked = 0, unknown = 0, refused = 0, unknown_in = 0;
    for (size_t k = 0; k < nops; k++) {
        acked += ops[k].outcome == OK;
        refused += ops[k].outcome == REFUSED;
        if (ops[k].outcome == UNKNOWN) {
            unknown++;
            unknown_in += ops[k].found > 0;
        }
    }
    unsigned long total = 0;
    for (int r = 0; r < R_COUNT; r++)
        total += violations[r];
    printf("attempted %zu\nacknowledged %lu\nunknown %lu (%lu of them applied)\nrefused %lu\nlost %lu\n"
           "duplicated %lu\nlog_entries %zu\ntailers %zu (%zu entries seen)\n"
           "longest_unavailability_ms %lld\nheals %lu\nslowest_recovery_ms %lld\nviolations %lu\n",
           nops, acked, unknown, unknown_in, refused, lost, duplicated, logs[0].n, tails, tail_entries,
           longest_gap_us / 1000, heals, slowest_recovery_us < 0 ? -1 : slowest_recovery_us / 1000, total);
    if (total && !quiet)
        for (int r = 0; r < R_COUNT; r++)
            if (violations[r])
                printf("rule %s broken %lu times\n", rule_names[r], violations[r]);
    for (size_t k = 0; k < nlogs; k++)
        log_free(&logs[k]);
    free(logs);
    for (size_t k = 0; k < nops; k++) {
        mpz_clear(ops[k].seq);
        free(ops[k].payload);
    }
    free(ops);
    free(slots);
    return total ? 1 : 0;
}
