/*
 * bench_trickle: one entry at a time through trp-append from a pipe,
 * waiting for each seq before writing the next line, so every entry costs
 * one full durable round (read, append, fdatasync, print). For
 * tests/bench/run.sh; it measures, never asserts.
 *
 * Usage: bench_trickle TRP-APPEND DIR SIZE SECONDS   -> prints entries per second
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_trickle TRP-APPEND DIR SIZE SECONDS\n");
        return 64;
    }
    size_t size = strtoul(argv[3], NULL, 10);
    double seconds = atof(argv[4]);
    int to_child[2], from_child[2];
    if (size < 1 || pipe(to_child) != 0 || pipe(from_child) != 0)
        return 71;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(to_child[0], 0);
        dup2(from_child[1], 1);
        close(to_child[1]);
        close(from_child[0]);
        execl(argv[1], argv[1], "-d", argv[2], (char *)NULL);
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    char *line = malloc(size + 1);
    memset(line, 't', size);
    line[size] = '\n';
    char ack[256];
    unsigned long n = 0;
    double t0 = now(), t = t0;
    while (t - t0 < seconds && n < 10000000) {
        if (write(to_child[1], line, size + 1) != (ssize_t)(size + 1))
            break;
        /* Wait for the whole seq line: that is the durability promise. */
        size_t got = 0;
        while (got == 0 || ack[got - 1] != '\n') {
            ssize_t r = read(from_child[0], ack + got, sizeof ack - got);
            if (r <= 0 || got + (size_t)r >= sizeof ack) {
                fprintf(stderr, "bench_trickle: trp-append stopped\n");
                return 74;
            }
            got += (size_t)r;
        }
        n++;
        t = now();
    }
    printf("%.0f\n", (double)n / (t - t0));
    close(to_child[1]);
    int status;
    waitpid(pid, &status, 0);
    free(line);
    return 0;
}
