/*
 * flipbyte: damage one byte of a file in place, for the corruption tests.
 *
 * Usage: flipbyte FILE OFFSET [XOR]   (XOR defaults to 0xff)
 * The one idea: exactly one byte changes and nothing else (no truncation,
 * no size change), so trp-verify must find damage at that very spot.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: flipbyte FILE OFFSET [XOR]\n");
        return 64;
    }
    char *end;
    long long off = strtoll(argv[2], &end, 0);
    unsigned long mask = argc == 4 ? strtoul(argv[3], NULL, 0) : 0xff;
    if (*end || off < 0 || mask == 0 || mask > 0xff) {
        fprintf(stderr, "flipbyte: bad offset or mask\n");
        return 64;
    }
    int fd = open(argv[1], O_RDWR);
    if (fd < 0) {
        fprintf(stderr, "flipbyte: %s: %s\n", argv[1], strerror(errno));
        return 66;
    }
    unsigned char c;
    if (pread(fd, &c, 1, off) != 1) {
        fprintf(stderr, "flipbyte: %s: no byte at offset %lld\n", argv[1], off);
        return 65;
    }
    c ^= (unsigned char)mask;
    if (pwrite(fd, &c, 1, off) != 1 || close(fd) != 0) {
        fprintf(stderr, "flipbyte: %s: %s\n", argv[1], strerror(errno));
        return 74;
    }
    return 0;
}
