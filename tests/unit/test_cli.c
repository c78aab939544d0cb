/*
 * test_cli.c: unit tests for lib/cli.c, the helpers the tools share:
 * UTF-8 validation, the JSON string and base64 encoders, the JSON form of
 * an entry, the decimal seq counter and the option-number parsers.
 *
 * The one idea: the encoders are checked against hand-computed bytes and
 * by decoding their output again (cJSON for strings), so "lossless" is a
 * tested property, not a claim.
 */
#include "../check.h"
#include "cli.h"
#include "trp.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Run fn writing into a cli_out backed by a temp file; return what it wrote
 * (NUL-terminated, caller frees). */
static char *capture(void (*fn)(cli_out *, const void *), const void *arg, size_t *len_out)
{
    char path[] = "/tmp/trp-test-cli.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    unlink(path);
    cli_out o;
    cli_out_init(&o, fd, 64); /* tiny buffer: exercises the flush paths */
    fn(&o, arg);
    cli_out_flush(&o);
    cli_out_free(&o);
    off_t len = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)len + 1);
    if (buf && pread(fd, buf, (size_t)len, 0) != len) {
        free(buf);
        buf = NULL;
    }
    close(fd);
    if (len_out)
        *len_out = (size_t)len;
    return buf;
}

struct bytes {
    const uint8_t *p;
    size_t len;
};

static void write_json_string(cli_out *o, const void *arg)
{
    const struct bytes *b = arg;
    cli_out_json_string(o, b->p, b->len);
}

static void write_base64(cli_out *o, const void *arg)
{
    const struct bytes *b = arg;
    cli_out_base64(o, b->p, b->len);
}

static void test_utf8(void)
{
    CHECK(cli_utf8_valid((const uint8_t *)"", 0));
    CHECK(cli_utf8_valid((const uint8_t *)"plain ascii text, long enough for words", 39));
    CHECK(cli_utf8_valid((const uint8_t *)"a\0b", 3));
    CHECK(cli_utf8_valid((const uint8_t *)"\xc3\xa9\xe2\x82\xac\xf0\x9f\x99\x82", 9));
    CHECK(cli_utf8_valid((const uint8_t *)"\xf4\x8f\xbf\xbf", 4));   /* U+10FFFF */
    CHECK(!cli_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4));  /* > U+10FFFF */
    CHECK(!cli_utf8_valid((const uint8_t *)"\xc0\xaf", 2));          /* overlong */
    CHECK(!cli_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3));      /* overlong */
    CHECK(!cli_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));      /* surrogate */
    CHECK(!cli_utf8_valid((const uint8_t *)"\x80", 1));              /* lone continuation */
    CHECK(!cli_utf8_valid((const uint8_t *)"abcdefgh\xe2\x82", 10)); /* truncated at end */
    CHECK(!cli_utf8_valid((const uint8_t *)"\xff", 1));
}

static void test_json_string(void)
{
    const char in[] = "q\"b\\n\n\t\x01\x1f\x7f \xc3\xa9\0end";
    struct bytes b = {(const uint8_t *)in, sizeof in - 1};
    size_t len;
    char *out = capture(write_json_string, &b, &len);
    REQUIRE(out);
    CHECKF(strcmp(out, "\"q\\\"b\\\\n\\n\\t\\u0001\\u001f\x7f \xc3\xa9\\u0000end\"") == 0, "%s",
           out);
    /* Decoding gives the bytes back (cJSON stops at NUL, so compare up to it). */
    cJSON *v = cJSON_Parse(out);
    CHECK(v && cJSON_IsString(v));
    if (v && cJSON_IsString(v))
        CHECK(memcmp(v->valuestring, in, strlen(in) + 1) == 0);
    cJSON_Delete(v);
    free(out);
    /* A long run bigger than the buffer goes through intact. */
    char longer[1000];
    memset(longer, 'x', sizeof longer);
    struct bytes l = {(const uint8_t *)longer, sizeof longer};
    out = capture(write_json_string, &l, &len);
    CHECK(out && len == sizeof longer + 2 && out[0] == '"' && out[len - 1] == '"');
    free(out);
}

static void test_base64(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
        {"\xff\xfe\xfd", "//79"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct bytes b = {(const uint8_t *)cases[i].in, strlen(cases[i].in)};
        char *out = capture(write_base64, &b, NULL);
        CHECKF(out && strcmp(out, cases[i].out) == 0, "'%s' -> '%s'", cases[i].in,
               out ? out : "(null)");
        free(out);
    }
    /* Longer than the encoder's chunk: length is 4 * ceil(n / 3). */
    uint8_t big[2000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    struct bytes b = {big, sizeof big};
    size_t len;
    char *out = capture(write_base64, &b, &len);
    CHECK(out && len == 4 * ((sizeof big + 2) / 3));
    free(out);
}

struct entry_case {
    const char *payload;
    size_t len;
};

static void write_entry(cli_out *o, const void *arg)
{
    const struct entry_case *c = arg;
    trp_entry e;
    trp_entry_init(&e);
    mpz_set_str(e.seq, "18446744073709551616", 10);
    e.term = 7;
    e.type = TRP_ENTRY_DATA;
    memset(e.prev, 0xab, sizeof e.prev);
    memset(e.hash, 0x01, sizeof e.hash);
    e.payload = (const uint8_t *)c->payload;
    e.len = c->len;
    cli_out_entry_json(o, &e, "18446744073709551616");
    trp_entry_clear(&e);
}

static cJSON *entry_json(const char *payload, size_t len)
{
    struct entry_case c = {payload, len};
    size_t n;
    char *out = capture(write_entry, &c, &n);
    if (!out)
        return NULL;
    /* One line, newline-terminated. */
    bool one_line = n > 0 && out[n - 1] == '\n' && memchr(out, '\n', n - 1) == NULL;
    cJSON *v = one_line ? cJSON_Parse(out) : NULL;
    free(out);
    return v;
}

static void test_entry_json(void)
{
    cJSON *v = entry_json("hello", 5);
    REQUIRE(v);
    CHECK(strcmp(cJSON_GetObjectItem(v, "seq")->valuestring, "18446744073709551616") == 0);
    CHECK(cJSON_GetObjectItem(v, "term")->valuedouble == 7);
    CHECK(strcmp(cJSON_GetObjectItem(v, "type")->valuestring, "data") == 0);
    CHECK(strlen(cJSON_GetObjectItem(v, "hash")->valuestring) == 64);
    CHECK(strncmp(cJSON_GetObjectItem(v, "prev")->valuestring, "abab", 4) == 0);
    CHECK(strcmp(cJSON_GetObjectItem(v, "text")->valuestring, "hello") == 0);
    CHECK(!cJSON_GetObjectItem(v, "data") && !cJSON_GetObjectItem(v, "base64"));
    cJSON_Delete(v);

    v = entry_json(" {\"a\": [1, 2]}\n", 15);
    REQUIRE(v);
    cJSON *data = cJSON_GetObjectItem(v, "data");
    CHECK(data && cJSON_IsObject(data) && cJSON_GetArraySize(cJSON_GetObjectItem(data, "a")) == 2);
    cJSON_Delete(v);

    v = entry_json("12 13", 5); /* two values: text, not data */
    REQUIRE(v);
    CHECK(!cJSON_GetObjectItem(v, "data"));
    cJSON_Delete(v);

    v = entry_json("[1e999]", 7); /* copied as written, not through a double */
    REQUIRE(v);
    data = cJSON_GetObjectItem(v, "data");
    CHECK(data && cJSON_IsArray(data) && cJSON_GetArraySize(data) == 1);
    cJSON_Delete(v);

    v = entry_json("[01]", 4); /* not RFC 8259 JSON (a leading zero): no data */
    REQUIRE(v);
    CHECK(!cJSON_GetObjectItem(v, "data"));
    cJSON_Delete(v);

    v = entry_json("\xff\x00\x01", 3);
    REQUIRE(v);
    CHECK(!cJSON_GetObjectItem(v, "text"));
    CHECK(strcmp(cJSON_GetObjectItem(v, "base64")->valuestring, "/wAB") == 0);
    CHECK(cJSON_GetObjectItem(v, "len")->valuedouble == 3);
    cJSON_Delete(v);

    v = entry_json(NULL, 0);
    REQUIRE(v);
    CHECK(strcmp(cJSON_GetObjectItem(v, "text")->valuestring, "") == 0);
    cJSON_Delete(v);
}

static void test_seqtext(void)
{
    cli_seqtext s;
    cli_seqtext_init(&s);
    mpz_t v, w;
    mpz_inits(v, w, NULL);
    const char *starts[] = {"0", "9", "18446744073709551610", "99999999999999999999999999999998",
                            "1000000000000000000000000000000"};
    for (size_t k = 0; k < sizeof starts / sizeof starts[0]; k++) {
        mpz_set_str(v, starts[k], 10);
        cli_seqtext_set(&s, v);
        for (int i = 0; i < 1500; i++) {
            char *want = mpz_get_str(NULL, 10, v);
            if (strcmp(cli_seqtext_str(&s), want) != 0 || cli_seqtext_len(&s) != strlen(want)) {
                CHECKF(0, "from %s step %d: got %s want %s", starts[k], i, cli_seqtext_str(&s),
                       want);
                free(want);
                break;
            }
            free(want);
            cli_seqtext_inc(&s);
            mpz_add_ui(v, v, 1);
        }
    }
    /* Growth far past the initial slack: all nines of many widths. */
    for (int digits = 1; digits < 80; digits += 13) {
        mpz_ui_pow_ui(w, 10, (unsigned long)digits);
        mpz_sub_ui(w, w, 1);
        cli_seqtext_set(&s, w);
        cli_seqtext_inc(&s);
        mpz_add_ui(w, w, 1);
        char *want = mpz_get_str(NULL, 10, w);
        CHECKF(strcmp(cli_seqtext_str(&s), want) == 0, "%d nines + 1", digits);
        free(want);
    }
    mpz_clears(v, w, NULL);
    cli_seqtext_free(&s);
}

static void test_parse_numbers(void)
{
    trp_err err = {0};
    uint64_t v = 0;
    CHECK(cli_parse_u64("42", "-n", 0, 100, &v, &err) == TRP_OK && v == 42);
    CHECK(cli_parse_u64("18446744073709551615", "-n", 0, UINT64_MAX, &v, &err) == TRP_OK &&
          v == UINT64_MAX);
    CHECK(cli_parse_u64("18446744073709551616", "-n", 0, UINT64_MAX, &v, &err) == TRP_EINVAL);
    CHECK(cli_parse_u64("-1", "-n", 0, 100, &v, &err) == TRP_EINVAL);
    CHECK(cli_parse_u64("", "-n", 0, 100, &v, &err) == TRP_EINVAL);
    CHECK(cli_parse_u64("1x", "-n", 0, 100, &v, &err) == TRP_EINVAL);
    CHECK(cli_parse_u64("101", "-n", 0, 100, &v, &err) == TRP_EINVAL && strstr(err.msg, "-n"));
    CHECK(cli_parse_size("1K", "--max-entry", 1, 1u << 30, &v, &err) == TRP_OK && v == 1024);
    CHECK(cli_parse_size("3m", "--max-entry", 1, 1u << 30, &v, &err) == TRP_OK && v == 3 << 20);
    CHECK(cli_parse_size("1G", "--max-entry", 1, 1u << 30, &v, &err) == TRP_OK && v == 1u << 30);
    CHECK(cli_parse_size("2G", "--max-entry", 1, 1u << 30, &v, &err) == TRP_EINVAL);
    CHECK(cli_parse_size("1KB", "--max-entry", 1, 1u << 30, &v, &err) == TRP_EINVAL);
    CHECK(cli_parse_size("0", "--max-entry", 1, 1u << 30, &v, &err) == TRP_EINVAL);
}

int main(void)
{
    RUN(test_utf8);
    RUN(test_json_string);
    RUN(test_base64);
    RUN(test_entry_json);
    RUN(test_seqtext);
    RUN(test_parse_numbers);
    return check_done();
}
