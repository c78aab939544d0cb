/*
 * chaosclient: one recording client of the chaos tests. It feeds unique
 * payloads, one per line, to a pipelined appender (normally
 * `trp-append -c CONFIG`), reads the seq printed for each (in input order,
 * once committed), and writes one history line per append:
 *
 *     CLIENT N INVOKE_US COMPLETE_US OUTCOME SEQ PAYLOAD
 *
 * (times in microseconds of CLOCK_REALTIME, comparable across processes and
 * with the harness's `date +%s%N`; OUTCOME ok with the seq, or unknown
 * with "-": the appender died, exited, or the append waited too long).
 *
 * Usage: chaosclient -n CLIENT -o HISTORY -t SECONDS [-r RATE] [-w WINDOW]
 *                    [-u UNKNOWN_MS] [-s SEED] -- COMMAND [ARG...]
 *   -r  appends per second (default 100)    -w  most appends in flight (32)
 *   -u  an append still unanswered after this long is given up: the
 *       appender is killed and everything in flight becomes unknown (15000)
 * After SECONDS (or SIGTERM) it stops issuing, closes the appender's input,
 * lets it finish what is in flight (at most UNKNOWN_MS), and exits.
 * The appender is restarted whenever it exits, after a short pause.
 *
 * The one idea: an append is acknowledged only by its seq on stdout; every
 * other end is "unknown", never "failed", because an append that was sent
 * may still commit. The checker then allows it at most once.
 */
#include "../rng.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WINDOW_MAX 256
#define PAYLOAD_MAX 160 /* WINDOW_MAX lines fit in a pipe buffer: writes never block */

struct pending {
    unsigned long n;
    long long invoke_us;
    char payload[PAYLOAD_MAX];
};

static volatile sig_atomic_t got_term;
static void on_term(int sig)
{
    (void)sig;
    got_term = 1;
}

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t rng;
static uint64_t rng_next(void)
{
    return splitmix64(&rng);
}

static struct {
    unsigned long client;
    FILE *hist;
    struct pending q[WINDOW_MAX];
    size_t head, count; /* ring of appends in flight, oldest first */
    pid_t pid;
    int in_fd, out_fd;
    char line[512];
    size_t line_len;
    unsigned long spawned, acked, unknown, exits_nonzero, exits_75, killed;
} c;

static void record(const struct pending *p, long long done_us, const char *seq)
{
    fprintf(c.hist, "%lu %lu %lld %lld %s %s %s\n", c.client, p->n, p->invoke_us, done_us, seq ? "ok" : "unknown",
            seq ? seq : "-", p->payload);
}

static void spawn(char **cmd)
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        perror("chaosclient: pipe");
        exit(71);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("chaosclient: fork");
        exit(71);
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execvp(cmd[0], cmd);
        fprintf(stderr, "chaosclient: %s: %s\n", cmd[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c.pid = pid;
    c.in_fd = in[1];
    c.out_fd = out[0];
    fcntl(c.out_fd, F_SETFL, O_NONBLOCK);
    c.line_len = 0;
    c.spawned++;
}

/* The appender is gone (or was killed): reap it, and everything in flight
 * becomes unknown. */
static void child_gone(bool kill_it)
{
    if (c.pid <= 0)
        return;
    if (kill_it) {
        kill(c.pid, SIGKILL);
        c.killed++;
    }
    if (c.in_fd >= 0)
        close(c.in_fd);
    close(c.out_fd);
    c.in_fd = c.out_fd = -1;
    int st;
    waitpid(c.pid, &st, 0);
    c.pid = 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
        c.exits_nonzero++;
        c.exits_75 += WEXITSTATUS(st) == 75;
    }
    long long t = now_us();
    for (; c.count > 0; c.count--, c.head = (c.head + 1) % WINDOW_MAX) {
        record(&c.q[c.head], t, NULL);
        c.unknown++;
    }
}

static bool is_seq(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Read what the appender printed; each full line answers the oldest append.
 * Returns false at end of file. */
static bool read_output(void)
{
    char buf[4096];
    for (;;) {
        ssize_t n = read(c.out_fd, buf, sizeof buf);
        if (n == 0)
            return false;
        if (n < 0)
            return errno == EAGAIN || errno == EINTR;
        long long t = now_us();
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (c.line_len < sizeof c.line - 1)
                    c.line[c.line_len++] = buf[i];
                continue;
            }
            c.line[c.line_len] = 0;
            c.line_len = 0;
            if (c.count == 0) {
                fprintf(stderr, "chaosclient %lu: output '%s' answers no append\n", c.client, c.line);
                continue;
            }
            struct pending *p = &c.q[c.head];
            if (is_seq(c.line)) {
                record(p, t, c.line);
                c.acked++;
            } else {
                fprintf(stderr, "chaosclient %lu: '%s' is not a seq; append %s counted unknown\n", c.client, c.line,
                        p->payload);
                record(p, t, NULL);
                c.unknown++;
            }
            c.head = (c.head + 1) % WINDOW_MAX;
            c.count--;
        }
    }
}

int main(int argc, char **argv)
{
    const char *hist_path = NULL;
    double seconds = 10, rate = 100;
    long window = 32, unknown_ms = 15000;
    unsigned long long seed = 1;
    int opt;
    while ((opt = getopt(argc, argv, "n:o:t:r:w:u:s:")) != -1) {
        switch (opt) {
        case 'n': c.client = strtoul(optarg, NULL, 10); break;
        case 'o': hist_path = optarg; break;
        case 't': seconds = atof(optarg); break;
        case 'r': rate = atof(optarg); break;
        case 'w': window = atol(optarg); break;
        case 'u': unknown_ms = atol(optarg); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        default: goto usage;
        }
    }
    if (!hist_path || optind >= argc || window < 1 || window > WINDOW_MAX || rate <= 0)
        goto usage;
    char **cmd = argv + optind;
    rng = seed * 1000003u + c.client;
    c.hist = fopen(hist_path, "w");
    if (!c.hist) {
        perror(hist_path);
        return 73;
    }
    setvbuf(c.hist, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_term};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    long long start = now_us(), stop_at = start + (long long)(seconds * 1e6);
    long long gap_us = (long long)(1e6 / rate), next_issue = start, respawn_at = 0, drain_until = 0;
    unsigned long next_n = 0;
    bool stopping = false;
    c.in_fd = c.out_fd = -1;
    for (;;) {
        long long t = now_us();
        if (!stopping && (got_term || t >= stop_at)) {
            stopping = true;
            drain_until = t + unknown_ms;
            if (c.in_fd >= 0) {
                close(c.in_fd); /* end of input: the appender finishes and exits */
                c.in_fd = -1;
            }
        }
        if (stopping && (c.pid <= 0 || c.count == 0 || t >= drain_until)) {
            if (c.pid > 0) {
                if (c.count == 0 && t < drain_until) {
                    /* input closed, nothing in flight: give it a moment to exit */
                    struct pollfd p = {.fd = c.out_fd, .events = POLLIN};
                    if (poll(&p, 1, (int)((drain_until - t) / 1000) + 1) > 0 && read_output())
                        continue;
                }
                child_gone(c.count > 0 || t >= drain_until);
            }
            break;
        }
        if (c.pid <= 0 && !stopping && t >= respawn_at)
            spawn(cmd);
        /* issue appends that are due */
        while (c.pid > 0 && !stopping && c.in_fd >= 0 && c.count < (size_t)window && t >= next_issue) {
            struct pending *p = &c.q[(c.head + c.count) % WINDOW_MAX];
            p->n = next_n++;
            int fill = (int)(rng_next() % 48);
            int len = snprintf(p->payload, sizeof p->payload, "c%lu-%lu-", c.client, p->n);
            for (int i = 0; i < fill; i++)
                p->payload[len++] = (char)('a' + rng_next() % 26);
            p->payload[len] = 0;
            char line[PAYLOAD_MAX + 1];
            memcpy(line, p->payload, (size_t)len);
            line[len] = '\n';
            p->invoke_us = now_us();
            ssize_t w = write(c.in_fd, line, (size_t)len + 1);
            c.count++;
            if (w != len + 1) { /* the appender is gone: this one may not even have been sent */
                child_gone(true);
                respawn_at = t + 200000;
                break;
            }
            next_issue += gap_us;
            if (next_issue < t - 1000000)
                next_issue = t; /* do not burst to catch up after a long stall */
        }
        /* give up on an append that waits too long */
        if (c.count > 0 && t - c.q[c.head].invoke_us > unknown_ms * 1000) {
            fprintf(stderr, "chaosclient %lu: append %s unanswered for %ld ms; restarting the appender\n", c.client,
                    c.q[c.head].payload, unknown_ms);
            child_gone(true);
            respawn_at = t + 200000;
            continue;
        }
        long long wake = stopping ? drain_until : stop_at;
        if (c.pid > 0 && c.count < (size_t)window && next_issue < wake)
            wake = next_issue;
        if (c.pid <= 0 && respawn_at < wake)
            wake = respawn_at;
        if (c.count > 0 && c.q[c.head].invoke_us + unknown_ms * 1000 < wake)
            wake = c.q[c.head].invoke_us + unknown_ms * 1000;
        int timeout = wake > t ? (int)((wake - t + 999) / 1000) : 0;
        struct pollfd p = {.fd = c.pid > 0 ? c.out_fd : -1, .events = POLLIN};
        int r = poll(&p, 1, timeout);
        if (r > 0 && c.pid > 0 && !read_output()) {
            child_gone(false); /* it exited (75: no leader within its timeout) */
            respawn_at = now_us() + 200000;
        }
    }
    fclose(c.hist);
    fprintf(stderr,
            "chaosclient %lu: attempted %lu acknowledged %lu unknown %lu; appender started %lu times, "
            "exited non-zero %lu (75: %lu), killed %lu\n",
            c.client, next_n, c.acked, c.unknown, c.spawned, c.exits_nonzero, c.exits_75, c.killed);
    return 0;
usage:
    fprintf(stderr, "usage: chaosclient -n CLIENT -o HISTORY -t SECONDS [-r RATE] [-w WINDOW] [-u UNKNOWN_MS] "
                    "[-s SEED] -- COMMAND [ARG...]\n");
    return 64;
}
