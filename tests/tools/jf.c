/*
 * jf: print fields of JSON Lines read from stdin, so that the CLI tests
 * need no jq (not installed on a fresh machine).
 *
 * Usage: jf FIELD...     per input line: the fields, space-separated;
 *                        strings raw, other values compact JSON, a missing
 *                        field "null"; ?FIELD prints true/false for presence
 *        jf -j FIELD     the string field's exact bytes, no newline, NULs
 *                        included (for byte-exact round trips)
 *
 * The one idea: cJSON is the reference decoder, except for -j, where a
 * string may hold NUL bytes that cJSON's C strings would cut, so the
 * string literal is decoded here (RFC 8259 escapes, surrogate pairs).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static void put_utf8(unsigned long cp)
{
    if (cp < 0x80) {
        putchar((int)cp);
    } else if (cp < 0x800) {
        putchar((int)(0xC0 | (cp >> 6)));
        putchar((int)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        putchar((int)(0xE0 | (cp >> 12)));
        putchar((int)(0x80 | ((cp >> 6) & 0x3F)));
        putchar((int)(0x80 | (cp & 0x3F)));
    } else {
        putchar((int)(0xF0 | (cp >> 18)));
        putchar((int)(0x80 | ((cp >> 12) & 0x3F)));
        putchar((int)(0x80 | ((cp >> 6) & 0x3F)));
        putchar((int)(0x80 | (cp & 0x3F)));
    }
}

/* Decode the string literal starting at p (just after the opening quote)
 * to stdout. Returns 0, or -1 on a malformed literal. */
static int decode_string(const char *p)
{
    for (;;) {
        unsigned char c = (unsigned char)*p++;
        if (c == '"')
            return 0;
        if (c == '\0')
            return -1;
        if (c != '\\') {
            putchar(c);
            continue;
        }
        c = (unsigned char)*p++;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            putchar(c);
            break;
        case 'b':
            putchar('\b');
            break;
        case 'f':
            putchar('\f');
            break;
        case 'n':
            putchar('\n');
            break;
        case 'r':
            putchar('\r');
            break;
        case 't':
            putchar('\t');
            break;
        case 'u': {
            long cp = hex4(p);
            if (cp < 0)
                return -1;
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && p[0] == '\\' && p[1] == 'u') {
                long lo = hex4(p + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            put_utf8((unsigned long)cp);
            break;
        }
        default:
            return -1;
        }
    }
}

/* -j: find "FIELD":" in our compact output and decode that string. */
static int raw_field(const char *line, const char *field)
{
    char key[256];
    snprintf(key, sizeof key, "\"%s\":\"", field);
    const char *at = strstr(line, key);
    if (!at)
        return 1;
    return decode_string(at + strlen(key)) == 0 ? 0 : 2;
}

static void print_field(const cJSON *obj, const char *field)
{
    if (field[0] == '?') {
        fputs(cJSON_GetObjectItemCaseSensitive(obj, field + 1) ? "true" : "false", stdout);
        return;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!v) {
        fputs("null", stdout);
    } else if (cJSON_IsString(v)) {
        fputs(v->valuestring, stdout);
    } else {
        char *s = cJSON_PrintUnformatted(v);
        fputs(s ? s : "?", stdout);
        cJSON_free(s);
    }
}

int main(int argc, char **argv)
{
    int raw = argc > 1 && strcmp(argv[1], "-j") == 0;
    if (argc < 2 + raw || (raw && argc != 3)) {
        fprintf(stderr, "usage: jf FIELD... | jf -j FIELD\n");
        return 64;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int status = 0;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        if (raw) {
            if (raw_field(line, argv[2]) != 0)
                status = 1;
            continue;
        }
        cJSON *obj = cJSON_ParseWithLength(line, (size_t)len);
        if (!obj) {
            fprintf(stderr, "jf: not JSON: %.80s\n", line);
            status = 1;
            continue;
        }
        for (int i = 1; i < argc; i++) {
            if (i > 1)
                putchar(' ');
            print_field(obj, argv[i]);
        }
        putchar('\n');
        cJSON_Delete(obj);
    }
    free(line);
    return status;
}
