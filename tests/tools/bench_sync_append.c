/*
 * bench_sync_append: append entries one at a time through libtrp with a
 * trp_log_sync (one fdatasync) after each, the slowest durable path, for
 * tests/bench/run.sh to print beside the raw fdatasync rate.
 *
 * Usage: bench_sync_append DIR SIZE SECONDS   -> prints entries per second
 */
#include "trp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_sync_append DIR SIZE SECONDS\n");
        return 64;
    }
    size_t size = strtoul(argv[2], NULL, 10);
    double seconds = atof(argv[3]);
    trp_err err = {0};
    trp_log_options lo = {.create = true};
    trp_log *log;
    if (trp_log_open(&log, argv[1], &lo, &err) != TRP_OK) {
        fprintf(stderr, "bench_sync_append: %s\n", err.msg);
        return trp_exit_code(err.code);
    }
    char *payload = malloc(size + 1);
    memset(payload, 'p', size);
    unsigned long n = 0;
    double t0 = now(), t = t0;
    while (t - t0 < seconds && n < 10000000) {
        if (trp_log_append(log, 0, TRP_ENTRY_DATA, payload, size, NULL, &err) != TRP_OK ||
            trp_log_sync(log, &err) != TRP_OK) {
            fprintf(stderr, "bench_sync_append: %s\n", err.msg);
            return trp_exit_code(err.code);
        }
        n++;
        if ((n & 15) == 0)
            t = now();
    }
    t = now();
    printf("%.0f\n", (double)n / (t - t0));
    trp_log_close(log);
    free(payload);
    return 0;
}
