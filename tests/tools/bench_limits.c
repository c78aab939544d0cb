/*
 * bench_limits: the machine's own limits, measured so that benchmark
 * figures can be printed beside them (tests/bench/run.sh).
 *
 *   bench_limits fsync FILE SIZE SECONDS   appends of SIZE bytes, fdatasync each -> per s
 *   bench_limits overwrite FILE SIZE SECONDS
 *                                          the same over a file preallocated with written,
 *                                          synced zeros (pwrite, no growth) -> per s
 *   bench_limits write FILE MIB            sequential 1 MiB writes + one fdatasync -> MB/s
 *   bench_limits sha256 SIZE SECONDS       EVP SHA-256 over SIZE-byte messages -> MB/s
 *
 * Prints one number. It measures; it never asserts anything.
 */
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes of size bytes, each followed by fdatasync, for `seconds`; prints
 * the rate. span 0: appends at the file's end; otherwise pwrites from 0
 * onward over the first span bytes, wrapping around. */
static int timed_syncs(int fd, const char *buf, size_t size, size_t span, double seconds)
{
    unsigned long n = 0;
    size_t off = 0;
    double t0 = now(), t = t0;
    while (t - t0 < seconds && n < 10000000) {
        if (span && off + size > span)
            off = 0;
        ssize_t w = span ? pwrite(fd, buf, size, (off_t)off) : write(fd, buf, size);
        if (w != (ssize_t)size || fdatasync(fd) != 0)
            return -1;
        off += size;
        n++;
        if ((n & 15) == 0)
            t = now();
    }
    t = now();
    printf("%.0f\n", (double)n / (t - t0));
    return 0;
}

static int bench_fsync(const char *path, size_t size, double seconds)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return perror(path), 74;
    char *buf = calloc(1, size);
    if (timed_syncs(fd, buf, size, 0, seconds))
        return perror(path), 74;
    close(fd);
    unlink(path);
    free(buf);
    return 0;
}

/* The best a store that keeps written zeros ahead of its data can do:
 * 64 MiB of zeros written and synced first, then SIZE-byte pwrites over
 * them in order (wrapping around), one fdatasync each. */
static int bench_overwrite(const char *path, size_t size, double seconds)
{
    const size_t span = 64u << 20;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || size == 0 || size > span)
        return perror(path), 74;
    char *zero = calloc(1, 1 << 20), *buf = malloc(size);
    memset(buf, 'o', size);
    for (size_t off = 0; off < span; off += 1 << 20)
        if (pwrite(fd, zero, 1 << 20, (off_t)off) != 1 << 20)
            return perror(path), 74;
    if (fsync(fd) != 0)
        return perror(path), 74;
    if (timed_syncs(fd, buf, size, span, seconds))
        return perror(path), 74;
    close(fd);
    unlink(path);
    free(zero);
    free(buf);
    return 0;
}

static int bench_write(const char *path, long mib)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return perror(path), 74;
    size_t chunk = 1 << 20;
    char *buf = malloc(chunk);
    memset(buf, 'w', chunk);
    double t0 = now();
    for (long i = 0; i < mib; i++)
        if (write(fd, buf, chunk) != (ssize_t)chunk)
            return perror(path), 74;
    if (fdatasync(fd) != 0)
        return perror(path), 74;
    double t = now() - t0;
    printf("%.0f\n", (double)mib * chunk / 1e6 / t);
    close(fd);
    unlink(path);
    free(buf);
    return 0;
}

static int bench_sha(size_t size, double seconds)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *buf = calloc(1, size), md[32];
    unsigned long n = 0;
    double t0 = now(), t = t0;
    while (t - t0 < seconds) {
        for (int k = 0; k < 64; k++) {
            EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
            EVP_DigestUpdate(ctx, buf, size);
            EVP_DigestFinal_ex(ctx, md, NULL);
            buf[0] ^= md[0];
        }
        n += 64;
        t = now();
    }
    printf("%.0f\n", (double)n * size / 1e6 / (t - t0));
    EVP_MD_CTX_free(ctx);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "fsync") == 0)
        return bench_fsync(argv[2], strtoul(argv[3], NULL, 10), atof(argv[4]));
    if (argc == 5 && strcmp(argv[1], "overwrite") == 0)
        return bench_overwrite(argv[2], strtoul(argv[3], NULL, 10), atof(argv[4]));
    if (argc == 4 && strcmp(argv[1], "write") == 0)
        return bench_write(argv[2], atol(argv[3]));
    if (argc == 4 && strcmp(argv[1], "sha256") == 0)
        return bench_sha(strtoul(argv[2], NULL, 10), atof(argv[3]));
    fprintf(stderr, "usage: bench_limits fsync FILE SIZE SECONDS | overwrite FILE SIZE SECONDS | "
                    "write FILE MIB | sha256 SIZE SECONDS\n");
    return 64;
}
