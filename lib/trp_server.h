/*
 * trp_server.h: trp-node's daemon: one member of a cluster, running the Raft
 * core over the log store and UDP, and serving clients on the same port.
 *
 * The one idea: one event loop thread owns the core, the wire, the socket
 * and the log handle; a disk thread only runs fdatasync (and the term/vote
 * file's fsync) on descriptors handed to it, and posts back through the
 * loop's eventfd. So heartbeats and elections never wait on the disk, and a
 * leader sends its appends before its own fsync completes. Term and vote are
 * durable before any message of the same ready leaves (the loop stops
 * reading the socket meanwhile). Nothing here prints: state changes and
 * notes go to the caller's log function, one line each.
 */
#ifndef TRP_SERVER_H
#define TRP_SERVER_H

#include "trp_base.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum trp_server_level {
    TRP_SERVER_ERROR = 0, /* fatal problems */
    TRP_SERVER_STATE = 1, /* role, term and leader changes (default on) */
    TRP_SERVER_INFO = 2,  /* with -v: start, stop, peers restarting, clients */
};

typedef void (*trp_server_log_fn)(void *ctx, int level, const char *line);

typedef struct trp_server_options {
    const char *config_path;
    uint64_t id;
    trp_server_log_fn log; /* may be NULL */
    void *log_ctx;
} trp_server_options;

typedef struct trp_server trp_server;

/* Load the config and key, open (or create) the node's log, bind its
 * address. Errors: TRP_ECONFIG, TRP_ELOCKED ("DIR is in use by trp-node pid
 * N"), TRP_EIO naming the address or file, ... */
int trp_server_open(trp_server **out, const trp_server_options *o, trp_err *err);
/* Run until SIGTERM or SIGINT (TRP_OK), or a fatal storage error. */
int trp_server_run(trp_server *s, trp_err *err);
void trp_server_close(trp_server *s);

#ifdef __cplusplus
}
#endif
#endif
