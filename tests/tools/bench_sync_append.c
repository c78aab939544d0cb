/*
 * bench_sync_append: append entries one at a time through libtrp with a
 * trp_log_sync (one fdatasync) after each, the slowest durable path, for
 * tests/bench/run.sh to print beside the raw fdatasync rate.
 *
 * Usage: bench_sync_append DIR SIZE SECONDS [-v]
 *   prints entries per second; with -v also the p50 and p99 latency of
 *   one append + sync in microseconds ("RATE P50 P99").
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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define MAX_N 10000000ul

int main(int argc, char **argv)
{
    if (argc != 4 && !(argc == 5 && !strcmp(argv[4], "-v"))) {
        fprintf(stderr, "usage: bench_sync_append DIR SIZE SECONDS [-v]\n");
        return 64;
    }
    bool verbose = argc == 5;
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
    /* latencies only with -v (a clock read per entry) */
    size_t lat_cap = verbose ? 1u << 20 : 0;
    double *lat = verbose ? malloc(lat_cap * sizeof *lat) : NULL;
    unsigned long n = 0;
    double t0 = now(), t = t0;
    while (t - t0 < seconds && n < MAX_N) {
        double a = verbose ? now() : 0;
        if (trp_log_append(log, 0, TRP_ENTRY_DATA, payload, size, NULL, &err) != TRP_OK ||
            trp_log_sync(log, &err) != TRP_OK) {
            fprintf(stderr, "bench_sync_append: %s\n", err.msg);
            return trp_exit_code(err.code);
        }
        if (verbose) {
            t = now();
            if (n < lat_cap)
                lat[n] = t - a;
        }
        n++;
        if (!verbose && (n & 15) == 0)
            t = now();
    }
    t = now();
    if (verbose) {
        size_t m = n < lat_cap ? n : lat_cap;
        qsort(lat, m, sizeof *lat, cmp_double);
        printf("%.0f %.0f %.0f\n", (double)n / (t - t0), m ? lat[m / 2] * 1e6 : 0,
               m ? lat[m * 99 / 100] * 1e6 : 0);
    } else {
        printf("%.0f\n", (double)n / (t - t0));
    }
    trp_log_close(log);
    free(payload);
    free(lat);
    return 0;
}
