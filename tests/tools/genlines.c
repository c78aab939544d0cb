/*
 * genlines: write COUNT lines of exactly SIZE payload bytes (plus '\n') to
 * stdout, fast, for throughput tests and benchmarks.
 *
 * Usage: genlines COUNT SIZE
 * Each line starts with its 1-based number in decimal and is padded with
 * 'x', so every line is distinct and a reader can check which one it got.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: genlines COUNT SIZE\n");
        return 64;
    }
    unsigned long long count = strtoull(argv[1], NULL, 10);
    size_t size = strtoul(argv[2], NULL, 10);
    if (size < 20 || size > (1u << 20)) {
        fprintf(stderr, "genlines: SIZE must be 20..1048576\n");
        return 64;
    }
    size_t cap = 1 << 20;
    if (cap < 2 * (size + 1))
        cap = 2 * (size + 1);
    char *buf = malloc(cap);
    if (!buf)
        return 71;
    size_t len = 0;
    for (unsigned long long i = 1; i <= count; i++) {
        if (len + size + 1 > cap) {
            if (fwrite(buf, 1, len, stdout) != len)
                return 74;
            len = 0;
        }
        char *line = buf + len;
        int n = snprintf(line, size + 1, "%llu", i);
        memset(line + n, 'x', size - (size_t)n);
        line[size] = '\n';
        len += size + 1;
    }
    if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0)
        return 74;
    free(buf);
    return 0;
}
