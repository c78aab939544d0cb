/*
 * cli.c: error lines, option parsing, buffered output and the JSON form of
 * an entry, shared by trp-append, trp-tail and trp-verify.
 *
 * The one idea: anything two tools would otherwise write twice lives here,
 * and nothing here keeps mutable global state (the program name comes from
 * glibc's program_invocation_short_name), so it can sit inside libtrp.
 */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

const char *cli_prog(void)
{
    return program_invocation_short_name;
}

void cli_keep_std_fds(void)
{
    /* A descriptor 0, 1 or 2 left closed by the caller would be reused by
     * the next open: a log file would then receive our messages. Fill each
     * closed one with /dev/null opened read-only, so that reading it ends at
     * once and writing it fails (EBADF) like any broken output. */
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int n = open("/dev/null", O_RDONLY);
        if (n < 0)
            _exit(EX_OSERR); /* cannot even do that: nothing safe is left to do */
        if (n != fd) { /* a lower one was closed too and is now taken: keep going */
            dup2(n, fd);
            close(n);
        }
    }
}

void cli_warn(const char *fmt, ...)
{
    char line[TRP_ERR_MSG_MAX + 256];
    int n = snprintf(line, sizeof line, "%s: ", cli_prog());
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write, so lines from concurrent tools do not interleave. */
    fprintf(stderr, "%s\n", line);
}

int cli_fail(const trp_err *err)
{
    cli_warn("%s", err->msg[0] ? err->msg : trp_status_name(err->code));
    return trp_exit_code(err->code);
}

int cli_usage_fail(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\nTry '%s --help'.\n", cli_prog(), msg, cli_prog());
    return EX_USAGE;
}

void cli_print_version(void)
{
    printf("%s (trp) %s\n", cli_prog(), trp_version());
}

int cli_option_end(int c, int version_opt, char *const argv[], void (*usage)(FILE *))
{
    if (c == 'h') {
        usage(stdout);
        return 0;
    }
    if (c == version_opt) {
        cli_print_version();
        return 0;
    }
    if (c == ':')
        return cli_usage_fail("option '%s' needs an argument", cli_bad_option(argv));
    if (c == '?')
        return cli_usage_fail("unknown option '%s'", cli_bad_option(argv));
    return -1;
}

const char *cli_bad_option(char *const argv[])
{
    /* a long option is the argument itself; a short one may sit inside a
     * group (-xf), where optind has not moved past it: optopt names it */
    static char name[8];
    const char *arg = argv[optind - 1];
    if (strncmp(arg, "--", 2) == 0 || optopt <= 0 || optopt > 127)
        return arg;
    snprintf(name, sizeof name, "-%c", optopt);
    return name;
}

void cli_where_init(cli_where *w)
{
    memset(w, 0, sizeof *w);
    w->config = getenv("TRP_CONFIG");
    if (w->config && !w->config[0])
        w->config = NULL;
}

int cli_where_option(cli_where *w, int c, int timeout_opt, const char *arg)
{
    trp_err err;
    trp_err_clear(&err);
    if (c == 'd') {
        if (!*arg)
            return cli_usage_fail("-d: empty directory name");
        w->dir = arg;
    } else if (c == 'c') {
        if (!*arg)
            return cli_usage_fail("-c: empty config file name");
        w->config = arg;
        w->explicit_config = true;
    } else if (c == 'i') {
        if (cli_parse_u64(arg, "-i", 1, 9007199254740991ull, &w->node, &err))
            return cli_usage_fail("%s", err.msg);
        w->cluster_only = true;
    } else if (c == timeout_opt) {
        if (cli_parse_u64(arg, "--timeout", 1, 86400, &w->timeout_s, &err))
            return cli_usage_fail("%s", err.msg);
        w->cluster_only = true;
    } else {
        return -1;
    }
    return 0;
}

int cli_where_check(cli_where *w)
{
    if (w->dir && w->explicit_config)
        return cli_usage_fail("-d DIR and -c CONFIG exclude each other");
    if (w->dir && w->cluster_only)
        return cli_usage_fail("-i and --timeout are for a cluster (-c CONFIG), not -d DIR");
    if (w->dir)
        w->config = NULL; /* -d wins over TRP_CONFIG */
    if (!w->dir && !w->config)
        return cli_usage_fail("no log directory (-d DIR) or cluster (-c CONFIG)");
    return 0;
}

static int parse_digits(const char *text, uint64_t *out)
{
    if (!text || !*text)
        return -1;
    uint64_t v = 0;
    const char *p = text;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return (int)(p - text);
}

int cli_parse_u64(const char *text, const char *what, uint64_t min, uint64_t max, uint64_t *out,
                  trp_err *err)
{
    uint64_t v;
    int n = parse_digits(text, &v);
    if (n < 0 && text && *text && strspn(text, "0123456789") == strlen(text))
        return trp_err_set(err, TRP_EINVAL, "%s: %.40s%s is out of range [%llu, %llu]", what, text,
                           strlen(text) > 40 ? "..." : "", (unsigned long long)min,
                           (unsigned long long)max);
    if (n <= 0 || text[n] != '\0')
        return trp_err_set(err, TRP_EINVAL, "%s: '%s' is not a non-negative integer", what,
                           text ? text : "");
    if (v < min || v > max)
        return trp_err_set(err, TRP_EINVAL, "%s: %s is out of range [%llu, %llu]", what, text,
                           (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return TRP_OK;
}

int cli_parse_size(const char *text, const char *what, uint64_t min, uint64_t max, uint64_t *out,
                   trp_err *err)
{
    uint64_t v;
    int n = parse_digits(text, &v);
    if (n <= 0)
        return trp_err_set(err, TRP_EINVAL, "%s: '%s' is not a size", what, text ? text : "");
    unsigned shift = 0;
    switch (text[n]) {
    case '\0':
        break;
    case 'K':
    case 'k':
        shift = 10;
        break;
    case 'M':
    case 'm':
        shift = 20;
        break;
    case 'G':
    case 'g':
        shift = 30;
        break;
    default:
        return trp_err_set(err, TRP_EINVAL, "%s: '%s' is not a size (bytes, or K, M, G)", what,
                           text);
    }
    if (shift && text[n + 1] != '\0')
        return trp_err_set(err, TRP_EINVAL, "%s: '%s' is not a size (bytes, or K, M, G)", what,
                           text);
    if (shift && v > (UINT64_MAX >> shift))
        return trp_err_set(err, TRP_EINVAL, "%s: %s is too large", what, text);
    v <<= shift;
    if (v < min || v > max)
        return trp_err_set(err, TRP_EINVAL, "%s: %s is out of range [%llu, %llu] bytes", what, text,
                           (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return TRP_OK;
}

/* ---- buffered output --------------------------------------------------- */

int cli_out_init(cli_out *o, int fd, size_t cap)
{
    o->fd = fd;
    o->len = 0;
    o->cap = cap < 256 ? 256 : cap;
    o->state = CLI_OUT_OK;
    o->sys_errno = 0;
    o->buf = malloc(o->cap);
    return o->buf ? 0 : -1;
}

void cli_out_free(cli_out *o)
{
    free(o->buf);
    o->buf = NULL;
}

static int out_write_all(cli_out *o, const char *p, size_t n)
{
    while (n > 0 && o->state == CLI_OUT_OK) {
        ssize_t w = write(o->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            o->sys_errno = errno;
            o->state = errno == EPIPE ? CLI_OUT_CLOSED : CLI_OUT_ERROR;
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    return o->state;
}

int cli_out_flush(cli_out *o)
{
    if (o->state == CLI_OUT_OK && o->len)
        out_write_all(o, o->buf, o->len);
    o->len = 0;
    return o->state;
}

int cli_out_write(cli_out *o, const void *data, size_t len)
{
    if (o->state != CLI_OUT_OK)
        return o->state;
    if (o->len + len > o->cap) {
        cli_out_flush(o);
        if (len >= o->cap) /* large payloads go straight out, no copy */
            return out_write_all(o, data, len);
    }
    memcpy(o->buf + o->len, data, len);
    o->len += len;
    return o->state;
}

int cli_out_str(cli_out *o, const char *s)
{
    return cli_out_write(o, s, strlen(s));
}

int cli_out_byte(cli_out *o, char c)
{
    if (o->len < o->cap && o->state == CLI_OUT_OK) {
        o->buf[o->len++] = c;
        return CLI_OUT_OK;
    }
    return cli_out_write(o, &c, 1);
}

int cli_out_status(const cli_out *o)
{
    if (o->state == CLI_OUT_OK || o->state == CLI_OUT_CLOSED)
        return 0;
    cli_warn("stdout: %s", strerror(o->sys_errno));
    return EX_IOERR;
}

int cli_out_status_all(const cli_out *o)
{
    if (o->state == CLI_OUT_CLOSED) {
        cli_warn("stdout: %s (the seqs after that were not printed)", strerror(EPIPE));
        return EX_IOERR;
    }
    return cli_out_status(o);
}

/* ---- decimal seq text -------------------------------------------------- */

void cli_seqtext_init(cli_seqtext *s)
{
    s->buf = NULL;
    s->cap = 0;
    s->start = 0;
}

void cli_seqtext_free(cli_seqtext *s)
{
    free(s->buf);
    cli_seqtext_init(s);
}

/* Room for `digits` digits plus slack to grow on the left, and the NUL. */
static void seqtext_alloc(cli_seqtext *s, size_t digits)
{
    size_t cap = digits + 32;
    char *nb = malloc(cap);
    if (!nb)
        abort(); /* a few dozen bytes: nothing sensible to do without them */
    free(s->buf);
    s->buf = nb;
    s->cap = cap;
}

void cli_seqtext_set(cli_seqtext *s, const mpz_t seq)
{
    size_t need = trp_seq_strlen(seq);
    seqtext_alloc(s, need);
    trp_seq_str(s->buf + s->cap - need, need, seq);
    s->start = s->cap - need;
    /* trp_seq_strlen may count one more digit than printed (mpz_sizeinbase
     * can overestimate): move the digits to end right before the NUL. */
    size_t got = strlen(s->buf + s->start);
    if (got + 1 < need) {
        memmove(s->buf + s->cap - 1 - got, s->buf + s->start, got + 1);
        s->start = s->cap - 1 - got;
    }
}

void cli_seqtext_inc(cli_seqtext *s)
{
    size_t i = s->cap - 1;
    while (i > s->start) {
        i--;
        if (s->buf[i] != '9') {
            s->buf[i]++;
            return;
        }
        s->buf[i] = '0';
    }
    /* All nines: one more digit on the left. */
    if (s->start == 0) {
        size_t digits = s->cap - 1;
        char *old = s->buf;
        s->buf = NULL;
        seqtext_alloc(s, digits + 1);
        memcpy(s->buf + s->cap - 1 - digits, old, digits + 1);
        free(old);
        s->start = s->cap - 1 - digits;
    }
    s->buf[--s->start] = '1';
}

/* ---- JSON -------------------------------------------------------------- */

bool cli_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* ASCII runs dominate: check 8 bytes at a time. */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= len)
            break;
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false; /* continuation byte, overlong lead, or > U+10FFFF */
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

int cli_out_json_string(cli_out *o, const uint8_t *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    cli_out_byte(o, '"');
    size_t run = 0; /* start of the pending run that needs no escaping */
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        cli_out_write(o, p + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0};
        size_t n = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        cli_out_write(o, esc, n);
    }
    cli_out_write(o, p + run, len - run);
    return cli_out_byte(o, '"');
}

int cli_out_base64(cli_out *o, const uint8_t *p, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char chunk[4 * 256];
    size_t k = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        chunk[k++] = tab[v >> 18];
        chunk[k++] = tab[(v >> 12) & 63];
        chunk[k++] = tab[(v >> 6) & 63];
        chunk[k++] = tab[v & 63];
        if (k == sizeof chunk) {
            cli_out_write(o, chunk, k);
            k = 0;
        }
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        chunk[k++] = tab[v >> 18];
        chunk[k++] = tab[(v >> 12) & 63];
        chunk[k++] = '=';
        chunk[k++] = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        chunk[k++] = tab[v >> 18];
        chunk[k++] = tab[(v >> 12) & 63];
        chunk[k++] = tab[(v >> 6) & 63];
        chunk[k++] = '=';
    }
    return cli_out_write(o, chunk, k);
}

/* A strict RFC 8259 reader that copies the value it reads without the
 * whitespace between tokens: numbers, strings and their escapes exactly
 * as written (so nothing passes through a double or a C string). */
struct jscan {
    const uint8_t *p;
    size_t len, i;
    uint8_t *out;
    size_t n;
    int depth;
};

#define JSON_DEPTH_MAX 512

static void js_ws(struct jscan *j)
{
    while (j->i < j->len &&
           (j->p[j->i] == ' ' || j->p[j->i] == '\t' || j->p[j->i] == '\n' || j->p[j->i] == '\r'))
        j->i++;
}

static bool js_take(struct jscan *j, uint8_t c)
{
    if (j->i >= j->len || j->p[j->i] != c)
        return false;
    j->out[j->n++] = c;
    j->i++;
    return true;
}

static bool js_digits(struct jscan *j)
{
    size_t from = j->i;
    while (j->i < j->len && j->p[j->i] >= '0' && j->p[j->i] <= '9')
        j->out[j->n++] = j->p[j->i++];
    return j->i > from;
}

static bool js_number(struct jscan *j)
{
    js_take(j, '-');
    if (j->i < j->len && j->p[j->i] == '0')
        j->out[j->n++] = j->p[j->i++]; /* no digit may follow a leading 0 */
    else if (j->i >= j->len || j->p[j->i] < '1' || j->p[j->i] > '9' || !js_digits(j))
        return false;
    if (js_take(j, '.') && !js_digits(j))
        return false;
    if (js_take(j, 'e') || js_take(j, 'E')) {
        if (!js_take(j, '+'))
            js_take(j, '-');
        if (!js_digits(j))
            return false;
    }
    return true;
}

/* Four hex digits (copied): their value, or -1. */
static int js_hex4(struct jscan *j)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        if (j->i >= j->len || !isxdigit(j->p[j->i]))
            return -1;
        uint8_t c = j->p[j->i];
        v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        j->out[j->n++] = j->p[j->i++];
    }
    return v;
}

/* A string; its \u escapes must not leave a surrogate unpaired (RFC 8259
 * allows that, but many readers refuse it: "data" is for readers). */
static bool js_string(struct jscan *j)
{
    if (!js_take(j, '"'))
        return false;
    while (j->i < j->len) {
        uint8_t c = j->p[j->i];
        if (c == '"')
            return js_take(j, '"');
        if (c < 0x20)
            return false; /* control characters must be escaped */
        j->out[j->n++] = c;
        j->i++;
        if (c != '\\')
            continue; /* (the whole text is already known to be UTF-8) */
        if (j->i >= j->len || !strchr("\"\\/bfnrtu", j->p[j->i]) || !j->p[j->i])
            return false;
        c = j->p[j->i];
        j->out[j->n++] = c;
        j->i++;
        if (c != 'u')
            continue;
        int u = js_hex4(j);
        if (u >= 0xdc00 && u <= 0xdfff)
            return false; /* a low surrogate alone */
        if (u >= 0xd800 && u <= 0xdbff) { /* must be followed by its low half */
            if (!js_take(j, '\\') || !js_take(j, 'u'))
                return false;
            u = js_hex4(j);
            if (u < 0xdc00 || u > 0xdfff)
                return false;
        }
        if (u < 0)
            return false;
    }
    return false;
}

static bool js_word(struct jscan *j, const char *w)
{
    size_t n = strlen(w);
    if (j->len - j->i < n || memcmp(j->p + j->i, w, n) != 0)
        return false;
    memcpy(j->out + j->n, w, n);
    j->n += n;
    j->i += n;
    return true;
}

static bool js_value(struct jscan *j);

/* An object's members or an array's elements, after its opening bracket. */
static bool js_members(struct jscan *j, uint8_t close, bool keys)
{
    js_ws(j);
    if (js_take(j, close))
        return true;
    for (;;) {
        js_ws(j);
        if (keys) {
            if (!js_string(j))
                return false;
            js_ws(j);
            if (!js_take(j, ':'))
                return false;
            js_ws(j);
        }
        if (!js_value(j))
            return false;
        js_ws(j);
        if (js_take(j, close))
            return true;
        if (!js_take(j, ','))
            return false;
    }
}

static bool js_value(struct jscan *j)
{
    if (j->i >= j->len)
        return false;
    switch (j->p[j->i]) {
    case '{':
    case '[': {
        if (++j->depth > JSON_DEPTH_MAX)
            return false;
        bool object = j->p[j->i] == '{';
        js_take(j, j->p[j->i]);
        bool ok = js_members(j, object ? '}' : ']', object);
        j->depth--;
        return ok;
    }
    case '"':
        return js_string(j);
    case 't':
        return js_word(j, "true");
    case 'f':
        return js_word(j, "false");
    case 'n':
        return js_word(j, "null");
    default:
        return js_number(j);
    }
}

/* The payload (valid UTF-8) as one JSON value without its insignificant
 * whitespace, when it is exactly one JSON value (RFC 8259, surrounding
 * whitespace allowed), else NULL. Caller frees. */
static char *json_value_of(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    if (i == len || !strchr("{[\"-0123456789tfn", p[i]) || !p[i])
        return NULL; /* cheap refusal for the common plain-text case */
    struct jscan j = {.p = p, .len = len, .i = i, .out = malloc(len + 1)};
    if (!j.out)
        return NULL;
    bool ok = js_value(&j);
    js_ws(&j);
    if (!ok || j.i != len) {
        free(j.out);
        return NULL;
    }
    j.out[j.n] = '\0';
    return (char *)j.out;
}

int cli_out_entry_json(cli_out *o, const trp_entry *e, const char *seq_text)
{
    char hash[TRP_HASH_HEX_LEN + 1], prev[TRP_HASH_HEX_LEN + 1], num[64];
    trp_hash_hex(hash, e->hash);
    trp_hash_hex(prev, e->prev);
    cli_out_str(o, "{\"seq\":\"");
    cli_out_str(o, seq_text);
    snprintf(num, sizeof num, "\",\"term\":%llu,\"type\":\"", (unsigned long long)e->term);
    cli_out_str(o, num);
    cli_out_str(o, trp_entry_type_name(e->type));
    cli_out_str(o, "\",\"hash\":\"");
    cli_out_str(o, hash);
    cli_out_str(o, "\",\"prev\":\"");
    cli_out_str(o, prev);
    snprintf(num, sizeof num, "\",\"len\":%zu,", e->len);
    cli_out_str(o, num);
    const uint8_t *p = e->len ? e->payload : (const uint8_t *)"";
    if (cli_utf8_valid(p, e->len)) {
        cli_out_str(o, "\"text\":");
        cli_out_json_string(o, p, e->len);
        char *value = json_value_of(p, e->len);
        if (value) {
            cli_out_str(o, ",\"data\":");
            cli_out_str(o, value);
            free(value);
        }
    } else {
        cli_out_str(o, "\"base64\":\"");
        cli_out_base64(o, p, e->len);
        cli_out_byte(o, '"');
    }
    return cli_out_str(o, "}\n");
}
