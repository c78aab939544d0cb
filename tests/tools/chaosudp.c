/*
 * chaosudp: plain UDP endpoints that speak just enough of the trp wire
 * header to test chaosproxy without real nodes.
 *
 *   chaosudp send ADDR FROM TO COUNT [GAP_US]
 *       send COUNT datagrams to host:port ADDR, each a 60-byte header naming
 *       sender FROM and receiver TO (magic "tW") and a 4-byte counter
 *   chaosudp recv ADDR QUIET_MS
 *       bind host:port ADDR, count what arrives until nothing came for
 *       QUIET_MS (at most 30 s), then print
 *       "received N distinct D inversions I" (I: datagrams whose counter is
 *       below one already seen, i.e. reordered)
 *
 * The one idea: the proxy reads only the clear header, so a fake header is
 * enough to exercise every rule; what the counters show is what a node
 * behind the proxy would have been given.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define COUNT_MAX 1000000

static int parse_addr(const char *s, struct sockaddr_in *a)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static int do_send(const char *addr, uint64_t from, uint64_t to, long count, long gap_us)
{
    struct sockaddr_in a;
    if (parse_addr(addr, &a) != 0 || count < 0 || count > COUNT_MAX)
        return 64;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    uint8_t d[64] = {'t', 'W', 1, 0};
    put64(d + 8, from);
    put64(d + 16, to);
    for (long i = 0; i < count; i++) {
        d[60] = (uint8_t)(i >> 24);
        d[61] = (uint8_t)(i >> 16);
        d[62] = (uint8_t)(i >> 8);
        d[63] = (uint8_t)i;
        sendto(fd, d, sizeof d, 0, (struct sockaddr *)&a, sizeof a);
        if (gap_us > 0)
            usleep((useconds_t)gap_us);
    }
    close(fd);
    return 0;
}

static int do_recv(const char *addr, int quiet_ms)
{
    struct sockaddr_in a;
    if (parse_addr(addr, &a) != 0)
        return 64;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1, buf = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("chaosudp: bind");
        return 71;
    }
    uint8_t *seen = calloc(COUNT_MAX, 1);
    long received = 0, distinct = 0, inversions = 0, highest = -1;
    time_t start = time(NULL);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (time(NULL) - start < 30 && poll(&p, 1, quiet_ms) > 0) {
        uint8_t d[128];
        ssize_t n = recv(fd, d, sizeof d, 0);
        if (n != 64)
            continue;
        long i = (long)d[60] << 24 | (long)d[61] << 16 | (long)d[62] << 8 | d[63];
        if (i < 0 || i >= COUNT_MAX)
            continue;
        received++;
        if (!seen[i]++)
            distinct++;
        if (i < highest)
            inversions++;
        else
            highest = i;
    }
    printf("received %ld distinct %ld inversions %ld\n", received, distinct, inversions);
    free(seen);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "send") == 0)
        return do_send(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10),
                       atol(argv[5]), argc > 6 ? atol(argv[6]) : 0);
    if (argc == 4 && strcmp(argv[1], "recv") == 0)
        return do_recv(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: chaosudp send ADDR FROM TO COUNT [GAP_US] | recv ADDR QUIET_MS\n");
    return 64;
}
