/*
 * cli.h: what the trp command-line tools share (internal; used by cmd/).
 *
 * The one idea: the tools differ in what they do, not in how they talk to a
 * person. Errors are one "prog: thing: reason" line on stderr with a
 * sysexits(3) status; data goes to stdout through one buffered writer that
 * turns a vanished reader (EPIPE) into a quiet end; an entry has exactly one
 * JSON form, defined here, so trp-tail in local and in cluster mode print
 * the same thing.
 */
#ifndef TRP_CLI_H
#define TRP_CLI_H

#include "trp_base.h"
#include "trp_log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The program's name as invoked (basename of argv[0]). */
const char *cli_prog(void);
/* First thing in main: descriptors 0-2 that are closed get /dev/null
 * (read-only), so that no file the tool opens takes their place. */
void cli_keep_std_fds(void);
/* "prog: message" on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print err's message ("prog: msg") and return the exit status for it. */
int cli_fail(const trp_err *err);
/* A usage error: "prog: message" + "Try 'prog --help'."; returns 64. */
int cli_usage_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "prog (trp) VERSION" on stdout. */
void cli_print_version(void);
/* getopt_long's result c when it is -h, --version (version_opt) or one of
 * getopt's complaints (':' missing argument, anything else unknown): what
 * the tool prints, and the exit status it returns; -1 for any other c. */
int cli_option_end(int c, int version_opt, char *const argv[], void (*usage)(FILE *));
/* The option getopt just refused ('?' or ':'), as the user wrote it. */
const char *cli_bad_option(char *const argv[]);

/* Where a tool finds the log: a local directory (-d DIR) or a cluster
 * (-c CONFIG, else TRP_CONFIG from the environment), with -i ID (the node
 * to ask first; 0: any) and --timeout SECONDS (0: the default). */
typedef struct cli_where {
    const char *dir;
    const char *config;
    uint64_t node;
    uint64_t timeout_s;
    bool explicit_config; /* -c given (TRP_CONFIG alone yields to -d) */
    bool cluster_only;    /* -i or --timeout given: refused with -d */
} cli_where;

/* Start with TRP_CONFIG (when set and not empty). */
void cli_where_init(cli_where *w);
/* Take c when it is -d, -c, -i or --timeout (timeout_opt): 0; an exit
 * status for a bad value (usage error printed); -1 for any other c. */
int cli_where_option(cli_where *w, int c, int timeout_opt, const char *arg);
/* After the options: -d and -c exclude each other, -d wins over
 * TRP_CONFIG, and one of them is needed. 0, or the exit status. */
int cli_where_check(cli_where *w);

/* A decimal integer in [min, max] for option `what`; TRP_EINVAL otherwise. */
int cli_parse_u64(const char *text, const char *what, uint64_t min, uint64_t max, uint64_t *out,
                  trp_err *err);
/* Like cli_parse_u64 but accepting a K, M or G suffix (powers of 1024). */
int cli_parse_size(const char *text, const char *what, uint64_t min, uint64_t max, uint64_t *out,
                   trp_err *err);

/* ---- buffered output to a file descriptor ------------------------------ */

enum { CLI_OUT_OK = 0, CLI_OUT_CLOSED = 1, CLI_OUT_ERROR = -1 };

typedef struct cli_out {
    int fd;
    char *buf;
    size_t len, cap;
    int state;     /* CLI_OUT_OK, or the first failure (sticky) */
    int sys_errno; /* errno of a CLI_OUT_ERROR */
} cli_out;

/* cap is the buffer size; a flush happens whenever it would overflow. */
int cli_out_init(cli_out *o, int fd, size_t cap);
void cli_out_free(cli_out *o);
/* Each returns o->state: CLI_OUT_CLOSED once the reader is gone (EPIPE,
 * with SIGPIPE ignored), CLI_OUT_ERROR for any other write failure. */
int cli_out_flush(cli_out *o);
int cli_out_write(cli_out *o, const void *data, size_t len);
int cli_out_str(cli_out *o, const char *s);
int cli_out_byte(cli_out *o, char c);
/* Report a failed writer as "prog: stdout: reason"; returns the status
 * (0 for a closed reader, which is a normal end; 74 for an error). */
int cli_out_status(const cli_out *o);
/* For output every line of which matters (trp-append's seqs): a closed
 * reader is a failure too (74), since what followed was not printed. */
int cli_out_status_all(const cli_out *o);

/* ---- decimal seq text that counts up without bignum division ---------- */

/* A seq's decimal digits kept as text: incrementing is a carry over the
 * last digits, so printing a million consecutive seqs costs no mpz_get_str
 * per entry. Unbounded like the seq itself. */
typedef struct cli_seqtext {
    char *buf;
    size_t cap;
    size_t start; /* digits are buf[start .. cap-1), NUL at buf[cap-1] */
} cli_seqtext;

void cli_seqtext_init(cli_seqtext *s);
void cli_seqtext_free(cli_seqtext *s);
void cli_seqtext_set(cli_seqtext *s, const mpz_t seq);
void cli_seqtext_inc(cli_seqtext *s);
static inline const char *cli_seqtext_str(const cli_seqtext *s)
{
    return s->buf + s->start;
}
static inline size_t cli_seqtext_len(const cli_seqtext *s)
{
    return s->cap - 1 - s->start;
}

/* ---- JSON ------------------------------------------------------------- */

/* True when p[0..len) is well-formed UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF). NUL bytes are valid. */
bool cli_utf8_valid(const uint8_t *p, size_t len);
/* Write p[0..len) (valid UTF-8) as a JSON string literal, quotes included. */
int cli_out_json_string(cli_out *o, const uint8_t *p, size_t len);
/* Write p[0..len) as standard base64 (RFC 4648, padded), no quotes. */
int cli_out_base64(cli_out *o, const uint8_t *p, size_t len);
/* Write one entry as one JSON Lines record (with the newline):
 *   {"seq":"S","term":T,"type":"data","hash":"H","prev":"P","len":N,
 *    "text":"..."                   when the payload is valid UTF-8,
 *    "base64":"..."                 otherwise,
 *    "data":<value>}                also, when the text is one JSON value.
 * seq_text is the entry's decimal seq. The form is documented in trp-tail(1). */
int cli_out_entry_json(cli_out *o, const trp_entry *e, const char *seq_text);

#endif
