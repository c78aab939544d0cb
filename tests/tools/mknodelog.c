/*
 * mknodelog.c: build a log laid out as a trp-node data directory, for
 * tests of the tools on node directories without running a cluster.
 *
 *   mknodelog DIR ITEM...    ITEM is "n" (a leader's no-op, term 1) or any
 *                            other text (a data entry, term 1, with the
 *                            17-byte client envelope before the text)
 *
 * All entries are committed. The "envelope" marker file is written as
 * trp-node writes it.
 */
#include "trp.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: mknodelog DIR ITEM...\n");
        return 64;
    }
    trp_err err;
    trp_log *log;
    trp_log_options o = {.create = true};
    if (trp_log_open(&log, argv[1], &o, &err) != TRP_OK) {
        fprintf(stderr, "mknodelog: %s\n", err.msg);
        return 1;
    }
    uint64_t req = 0;
    for (int i = 2; i < argc; i++) {
        int rc;
        if (strcmp(argv[i], "n") == 0) {
            rc = trp_log_append(log, 1, TRP_ENTRY_NOOP, "", 0, NULL, &err);
        } else {
            uint8_t buf[TRP_RAFT_ENVELOPE_LEN + 256];
            size_t n = strlen(argv[i]);
            if (n > 256)
                n = 256;
            trp_raft_envelope_put(buf, 42, ++req);
            memcpy(buf + TRP_RAFT_ENVELOPE_LEN, argv[i], n);
            rc = trp_log_append(log, 1, TRP_ENTRY_DATA, buf, TRP_RAFT_ENVELOPE_LEN + n, NULL, &err);
        }
        if (rc != TRP_OK) {
            fprintf(stderr, "mknodelog: %s\n", err.msg);
            return 1;
        }
    }
    if (trp_log_sync(log, &err) != TRP_OK) {
        fprintf(stderr, "mknodelog: %s\n", err.msg);
        return 1;
    }
    trp_log_close(log);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", argv[1], TRP_NODE_MARKER_FILE);
    FILE *f = fopen(path, "w");
    if (!f || fputs("trp-node 1\n", f) < 0 || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}
