/*
 * cli_cluster.h: the cluster mode (-c CONFIG) of trp-append and trp-tail
 * (internal; used by cmd/). The tools parse their options and call these;
 * output has exactly the forms of local mode (cli.h).
 */
#ifndef TRP_CLI_CLUSTER_H
#define TRP_CLI_CLUSTER_H

#include "cli.h"

#include <stdbool.h>
#include <stdint.h>

enum { CLI_IN_LINES = 0, CLI_IN_NUL = 1, CLI_IN_WHOLE = 2 };
enum { CLI_OUT_SEQ = 0, CLI_OUT_JSON = 1, CLI_OUT_NONE = 2 };

typedef struct cli_append_cluster {
    const char *config;
    uint64_t node;       /* 0: any */
    uint32_t timeout_ms; /* 0: default */
    int input, output;
    bool have_if_prev;
    uint8_t if_prev[TRP_HASH_LEN];
    char **entries; /* from the command line, or NULL: stdin */
    int entry_count;
} cli_append_cluster;

/* Returns the exit status. */
int cli_append_cluster_run(const cli_append_cluster *o);

typedef struct cli_tail_cluster {
    const char *config;
    uint64_t node;
    uint32_t timeout_ms;
    uint64_t lines;
    const char *from;
    bool follow, linearizable, json, have_count;
    uint64_t count;
    char terminator;
} cli_tail_cluster;

int cli_tail_cluster_run(const cli_tail_cluster *o);

/* For local mode: a node's directory has the client envelope on data
 * entries; strip it from e (payload/len) when present. */
void cli_strip_envelope(trp_entry *e);

#endif
