/*
 * bench_open: how long trp_log_open takes on an existing log, as a writer
 * (lock, recovery of the open segment) and as a reader, for
 * tests/bench/run.sh. The log's size should not matter.
 *
 * Usage: bench_open DIR ROUNDS   -> prints "writer_ms reader_ms" (medians)
 */
#include "trp.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_open(const char *dir, bool read_only, int rounds)
{
    double *t = calloc((size_t)rounds, sizeof *t);
    for (int i = 0; i < rounds; i++) {
        trp_err err = {0};
        trp_log_options lo = {.read_only = read_only};
        trp_log *log;
        double t0 = now_ms();
        if (trp_log_open(&log, dir, &lo, &err) != TRP_OK) {
            fprintf(stderr, "bench_open: %s\n", err.msg);
            exit(trp_exit_code(err.code));
        }
        t[i] = now_ms() - t0;
        trp_log_close(log);
    }
    qsort(t, (size_t)rounds, sizeof *t, cmp_double);
    double m = t[rounds / 2];
    free(t);
    return m;
}

int main(int argc, char **argv)
{
    if (argc != 3 || atoi(argv[2]) < 1) {
        fprintf(stderr, "usage: bench_open DIR ROUNDS\n");
        return 64;
    }
    int rounds = atoi(argv[2]);
    double w = median_open(argv[1], false, rounds);
    double r = median_open(argv[1], true, rounds);
    printf("%.2f %.2f\n", w, r);
    return 0;
}
