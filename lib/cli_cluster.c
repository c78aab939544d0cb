/*
 * cli_cluster.c: trp-append and trp-tail in cluster mode, over the client
 * library (trp_client.h).
 *
 * The one idea: the same promise as local mode. trp-append prints a seq
 * only once the entry is committed, in input order, while many entries are
 * in flight (the client library reorders); trp-tail prints exactly the
 * local mode's forms, from whichever node it reads.
 */
#include "cli_cluster.h"
#include "trp_client.h"
#include "trp_raft.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

void cli_strip_envelope(trp_entry *e)
{
    const uint8_t *data;
    size_t len;
    if (e->type == TRP_ENTRY_DATA &&
        trp_raft_envelope_get(e->payload, e->len, NULL, NULL, &data, &len) == 0) {
        e->payload = data;
        e->len = len;
    }
}

/* ---- trp-append -c ------------------------------------------------------------ */

struct cappend {
    const cli_append_cluster *o;
    trp_client *c;
    cli_out out;
    int failed_status;    /* first failure reported by a reply */
    char failed_msg[512]; /* its message */
    bool conflict;
    uint8_t last_hash[TRP_HASH_LEN];
    mpz_t conflict_next;
    uint64_t submitted; /* entries handed to the client */
};

static void on_result(void *arg, int status, const mpz_t seq, const uint8_t hash[TRP_HASH_LEN])
{
    struct cappend *a = arg;
    if (a->failed_status || a->conflict)
        return; /* after a failure, later results are not printed */
    if (status == TRP_ECONFLICT) {
        a->conflict = true;
        mpz_set(a->conflict_next, seq);
        memcpy(a->last_hash, hash, TRP_HASH_LEN);
        return;
    }
    if (status != TRP_OK) {
        a->failed_status = status;
        snprintf(a->failed_msg, sizeof a->failed_msg, "%s",
                 status == TRP_ETOOBIG  ? "entry too large for the cluster (max_entry)"
                 : status == TRP_EINVAL ? "the cluster refused the request (stale request number)"
                                        : trp_status_name(status));
        return;
    }
    memcpy(a->last_hash, hash, TRP_HASH_LEN);
    if (a->o->output == CLI_OUT_NONE)
        return;
    char buf[256], *text = trp_seq_str(buf, sizeof buf, seq);
    char *big = NULL;
    if (!text[0] || trp_seq_strlen(seq) > sizeof buf)
        text = big = mpz_get_str(NULL, 10, seq);
    if (a->o->output == CLI_OUT_SEQ) {
        cli_out_str(&a->out, text);
        cli_out_byte(&a->out, '\n');
    } else {
        char hex[TRP_HASH_HEX_LEN + 1];
        trp_hash_hex(hex, hash);
        cli_out_str(&a->out, "{\"seq\":\"");
        cli_out_str(&a->out, text);
        cli_out_str(&a->out, "\",\"hash\":\"");
        cli_out_str(&a->out, hex);
        cli_out_str(&a->out, "\"}\n");
    }
    free(big);
}

static int pump(struct cappend *a, int wait_ms, int extra_fd, trp_err *err)
{
    int rc = trp_client_pump(a->c, wait_ms, extra_fd, on_result, a, err);
    if (a->out.len)
        cli_out_flush(&a->out);
    return rc;
}

/* Submit one entry, pumping while the window is full. */
static int submit(struct cappend *a, const void *data, size_t len, trp_err *err)
{
    a->submitted++;
    if (len > trp_client_max_entry(a->c))
        return trp_err_set(err, TRP_ETOOBIG,
                           "entry too large (%zu bytes; the cluster's max_entry is %u bytes); "
                           "entries before it were appended",
                           len, trp_client_max_entry(a->c));
    while (!trp_client_can_submit(a->c)) {
        int rc = pump(a, -1, -1, err);
        if (rc)
            return rc;
        if (a->failed_status || a->conflict)
            return 0;
    }
    const uint8_t *cond = a->o->have_if_prev ? a->last_hash : NULL;
    return trp_client_submit(a->c, data, len, cond, err);
}

static int drain(struct cappend *a, trp_err *err)
{
    while (trp_client_pending(a->c) && !a->failed_status) {
        int rc = pump(a, -1, -1, err);
        if (rc)
            return rc;
    }
    return 0;
}

static int read_stdin(char *buf, size_t len, trp_err *err)
{
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, len);
        if (n >= 0)
            return (int)n;
        if (errno == EAGAIN)
            return -2;
        if (errno != EINTR) {
            trp_err_sys(err, TRP_EIO, errno, "stdin");
            return -1;
        }
    }
}

/* Lines or NUL-separated records from stdin, pipelined. */
static int append_stream(struct cappend *a, trp_err *err)
{
    const char sep = a->o->input == CLI_IN_NUL ? '\0' : '\n';
    size_t max = trp_client_max_entry(a->c);
    size_t cap = max + 2 < (4u << 20) ? (4u << 20) : max + 2;
    char *buf = malloc(cap);
    if (!buf)
        return trp_err_set(err, TRP_ENOMEM, "out of memory");
    size_t have = 0, pos = 0;
    bool eof = false;
    int rc = 0;
    (void)fcntl(STDIN_FILENO, F_SETPIPE_SZ, 1 << 20);
    while (!rc && !a->failed_status && !a->conflict) {
        bool partial = false; /* what is left at pos is not a whole record yet */
        /* submit every complete record the window takes */
        while (!rc && pos < have && !a->failed_status && !a->conflict &&
               trp_client_can_submit(a->c)) {
            char *end = memchr(buf + pos, sep, have - pos);
            if (!end && !eof) {
                if (have - pos > max)
                    rc = trp_err_set(err, TRP_ETOOBIG,
                                     "entry too large (more than %zu bytes, the cluster's "
                                     "max_entry); entries before it were appended",
                                     max);
                partial = true;
                break;
            }
            size_t rec = end ? (size_t)(end - (buf + pos)) : have - pos;
            rc = submit(a, buf + pos, rec, err);
            pos += rec + (end ? 1 : 0);
        }
        if (rc)
            break;
        if (eof && pos >= have)
            break;
        /* Move the rest to the front only when reading needs the room: a
         * full buffer behind a full window would otherwise move megabytes
         * for each few records the window takes. */
        if (pos && (pos == have || (have == cap && (partial || pos >= cap / 2)))) {
            memmove(buf, buf + pos, have - pos);
            have -= pos;
            pos = 0;
        }
        bool want_input = !eof && have < cap;
        rc = pump(a, want_input && !trp_client_pending(a->c) ? -1 : 50,
                  want_input ? STDIN_FILENO : -1, err);
        if (rc || !want_input)
            continue;
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        if (poll(&p, 1, 0) <= 0)
            continue;
        int n = read_stdin(buf + have, cap - have, err);
        if (n == -1)
            rc = err->code;
        else if (n == 0)
            eof = true;
        else if (n > 0)
            have += (size_t)n;
    }
    free(buf);
    if (rc == TRP_ETOOBIG) {
        /* the records before the oversized one are submitted: see them
         * committed and their seqs printed, as the message says */
        trp_err derr;
        trp_err_clear(&derr);
        int drc = drain(a, &derr);
        if (drc) {
            *err = derr;
            rc = drc;
        }
    } else if (!rc) {
        rc = drain(a, err);
    }
    return rc;
}

static int append_whole(struct cappend *a, trp_err *err)
{
    size_t max = trp_client_max_entry(a->c), cap = 1 << 16, have = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            return trp_err_set(err, TRP_ENOMEM, "out of memory reading stdin");
        int n = read_stdin(buf + have, cap - have, err);
        if (n < 0) {
            free(buf);
            return n == -1 ? err->code : trp_err_set(err, TRP_EIO, "stdin: would block");
        }
        if (n == 0)
            break;
        have += (size_t)n;
        if (have > max) {
            free(buf);
            return trp_err_set(err, TRP_ETOOBIG,
                               "entry too large (more than %zu bytes, the cluster's max_entry)",
                               max);
        }
        if (have == cap) {
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(buf, cap);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    int rc = submit(a, buf, have, err);
    free(buf);
    return rc ? rc : drain(a, err);
}

static int report_conflict(struct cappend *a)
{
    char hex[TRP_HASH_HEX_LEN + 1], want[TRP_HASH_HEX_LEN + 1];
    trp_hash_hex(hex, a->last_hash);
    trp_hash_hex(want, a->o->if_prev);
    /* no entry yet: the next seq is still the cluster's first */
    mpz_t first;
    mpz_init_set_str(first, trp_client_start_seq(a->c), 10);
    bool none = mpz_cmp(a->conflict_next, first) <= 0;
    mpz_clear(first);
    if (!none)
        mpz_sub_ui(a->conflict_next, a->conflict_next, 1);
    char *seq = none ? NULL : mpz_get_str(NULL, 10, a->conflict_next);
    if (a->o->output == CLI_OUT_SEQ)
        printf("%s %s\n", none ? "-" : seq, hex);
    else if (a->o->output == CLI_OUT_JSON) {
        if (none)
            printf("{\"seq\":null,\"hash\":\"%s\"}\n", hex);
        else
            printf("{\"seq\":\"%s\",\"hash\":\"%s\"}\n", seq, hex);
    }
    fflush(stdout);
    cli_warn("%s: head is seq %s with hash %s, not as expected; nothing more appended",
             a->o->config, none ? "(none)" : seq, hex);
    free(seq);
    return 1;
}

/* --if-prev and nothing to append: compare HASH with the head as of a
 * linearizable read, as local mode compares it with its log's head; a
 * mismatch is reported as a conflict (printed head, exit 1). */
static int check_head(struct cappend *a, trp_err *err)
{
    mpz_t end, seq, first;
    mpz_inits(end, seq, NULL);
    mpz_init_set_str(first, trp_client_start_seq(a->c), 10);
    uint8_t head[TRP_HASH_LEN] = {0}; /* no entry yet: the zero hash */
    int rc = trp_client_read_index(a->c, end, err);
    if (!rc && mpz_cmp(end, first) > 0) {
        mpz_sub_ui(seq, end, 1);
        rc = trp_client_read_start(a->c, seq, 0, err);
        trp_cmsg_entry ce;
        int got = rc ? 0 : trp_client_read_next(a->c, false, -1, end, &ce, seq, err);
        if (got < 0)
            rc = -got;
        else if (!rc && got == 0) {
            char *at = mpz_get_str(NULL, 10, seq);
            rc = trp_err_set(err, TRP_EUNAVAIL,
                             "the node did not send the head entry (seq %s) for --if-prev to "
                             "compare with; try again",
                             at);
            free(at);
        }
        else if (!rc)
            memcpy(head, ce.hash, TRP_HASH_LEN);
    }
    if (!rc && memcmp(head, a->o->if_prev, TRP_HASH_LEN) != 0) {
        a->conflict = true;
        mpz_set(a->conflict_next, end);
        memcpy(a->last_hash, head, TRP_HASH_LEN);
    }
    mpz_clears(end, seq, first, NULL);
    return rc;
}

int cli_append_cluster_run(const cli_append_cluster *o)
{
    trp_err err;
    trp_err_clear(&err);
    struct cappend a = {.o = o};
    mpz_init(a.conflict_next);
    if (o->have_if_prev)
        memcpy(a.last_hash, o->if_prev, TRP_HASH_LEN);
    int rc = trp_client_open(&a.c, o->config, o->node, o->timeout_ms, &err);
    if (rc) {
        mpz_clear(a.conflict_next);
        return cli_fail(&err);
    }
    if (cli_out_init(&a.out, STDOUT_FILENO, 1 << 16) != 0) {
        trp_client_close(a.c);
        mpz_clear(a.conflict_next);
        cli_warn("out of memory");
        return EX_OSERR;
    }
    if (o->entries) {
        /* arguments are all known: one too large refuses them all, as
         * in local mode, instead of appending those before it */
        for (int i = 0; i < o->entry_count && !rc; i++)
            if (strlen(o->entries[i]) > trp_client_max_entry(a.c))
                rc = trp_err_set(&err, TRP_ETOOBIG,
                                 "entry %d too large (%zu bytes; the cluster's max_entry is %u "
                                 "bytes); nothing appended",
                                 i + 1, strlen(o->entries[i]), trp_client_max_entry(a.c));
        for (int i = 0; i < o->entry_count && !rc && !a.failed_status && !a.conflict; i++)
            rc = submit(&a, o->entries[i], strlen(o->entries[i]), &err);
        if (!rc)
            rc = drain(&a, &err);
    } else if (o->input == CLI_IN_WHOLE) {
        rc = append_whole(&a, &err);
    } else {
        rc = append_stream(&a, &err);
    }
    if (!rc && o->have_if_prev && !a.submitted && !a.conflict && !a.failed_status)
        rc = check_head(&a, &err);
    cli_out_flush(&a.out);
    int status;
    if (a.conflict)
        status = report_conflict(&a);
    else if (a.failed_status) {
        trp_err_set(&err, a.failed_status, "%s", a.failed_msg);
        status = cli_fail(&err);
    } else
        status = rc ? cli_fail(&err) : cli_out_status_all(&a.out);
    cli_out_free(&a.out);
    trp_client_close(a.c);
    mpz_clear(a.conflict_next);
    return status;
}

/* ---- trp-tail -c ---------------------------------------------------------------- */

int cli_tail_cluster_run(const cli_tail_cluster *o)
{
    trp_err err;
    trp_err_clear(&err);
    trp_client *c;
    int rc = trp_client_open(&c, o->config, o->node, o->timeout_ms, &err);
    if (rc)
        return cli_fail(&err);
    cli_out out;
    if (cli_out_init(&out, STDOUT_FILENO, 1 << 18) != 0) {
        trp_client_close(c);
        cli_warn("out of memory");
        return EX_OSERR;
    }
    mpz_t from, seq, until;
    mpz_inits(from, seq, until, NULL);
    bool have_until = false;
    if (o->linearizable) {
        rc = trp_client_read_index(c, until, &err);
        have_until = rc == 0;
    }
    if (!rc && o->from)
        trp_seq_parse(from, o->from, "--from", NULL);
    if (!rc && !o->from && have_until) /* the last lines as of the confirmed commit */
        rc = trp_client_read_tail(c, o->lines, until, &err);
    else if (!rc)
        rc = trp_client_read_start(c, o->from ? from : NULL, o->lines, &err);
    uint64_t printed = 0;
    cli_seqtext st;
    cli_seqtext_init(&st);
    while (!rc && !(o->have_count && printed >= o->count) && out.state == CLI_OUT_OK) {
        trp_cmsg_entry ce;
        int got = trp_client_read_next(c, o->follow, o->follow ? STDOUT_FILENO : -1,
                                       have_until ? until : NULL, &ce, seq, &err);
        if (got < 0) {
            rc = -got;
            break;
        }
        if (got == 0)
            break;
        if (!o->json) {
            if (ce.type != TRP_ENTRY_DATA)
                continue; /* a leader's no-op carries no user bytes */
            cli_out_write(&out, ce.data, ce.len);
            cli_out_byte(&out, o->terminator);
        } else {
            trp_entry e;
            trp_entry_init(&e);
            mpz_set(e.seq, seq);
            e.term = ce.term;
            e.type = ce.type;
            memcpy(e.prev, ce.prev, TRP_HASH_LEN);
            memcpy(e.hash, ce.hash, TRP_HASH_LEN);
            e.payload = ce.data;
            e.len = ce.len;
            cli_seqtext_set(&st, seq);
            cli_out_entry_json(&out, &e, cli_seqtext_str(&st));
            trp_entry_clear(&e);
        }
        printed++;
        /* caught up: let the reader see it now */
        if (o->follow)
            cli_out_flush(&out);
    }
    cli_out_flush(&out);
    int status = rc ? cli_fail(&err) : cli_out_status(&out);
    cli_seqtext_free(&st);
    mpz_clears(from, seq, until, NULL);
    cli_out_free(&out);
    trp_client_close(c);
    return status;
}
