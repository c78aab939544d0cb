/*
 * trp_config.h: the cluster configuration (a JSON file, see trp.conf(5)),
 * the cluster key file, and `trp-node init`, which writes both.
 *
 * The one idea: parsing is pure and strict. trp_config_parse() turns JSON
 * text into a validated trp_config without touching the network or the
 * file system, and refuses anything doubtful (unknown fields, duplicate ids
 * or addresses, impossible groups) with an error that starts with the JSON
 * path of the field and gives the reason. Name resolution is a separate,
 * explicit step (trp_config_resolve) so that the parser can be fuzzed.
 */
#ifndef TRP_CONFIG_H
#define TRP_CONFIG_H

#include "trp_base.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TRP_CONFIG_NODES_MAX 256
#define TRP_CONFIG_ID_MAX 9007199254740991ull /* 2^53 - 1: exact in a JSON number */
#define TRP_CLUSTER_ID_LEN 16                 /* bytes; 32 hex digits in the file */
#define TRP_KEY_LEN 32                        /* bytes; 64 hex digits in the key file */
#define TRP_NAME_MAX 64                       /* cluster and group names */

/* Defaults (documented in trp.conf(5)). */
#define TRP_MAX_DATAGRAM_DEFAULT 1400u
#define TRP_MAX_DATAGRAM_MIN 256u
#define TRP_MAX_DATAGRAM_MAX 65507u      /* largest IPv4 UDP payload */
#define TRP_MAX_DATAGRAM_LOOPBACK 65000u /* what `init` writes: all nodes on 127.0.0.1 */
#define TRP_MAX_ENTRY_CONFIG_DEFAULT (1u << 20)
#define TRP_MAX_ENTRY_CONFIG_MAX (64u << 20)
#define TRP_HEARTBEAT_MS_DEFAULT 50u
#define TRP_ELECTION_TIMEOUT_MS_DEFAULT 300u /* randomized in [min, max] */
#define TRP_SPARE_SYNC_MS_DEFAULT 5u
#define TRP_PRIORITY_MAX 1000000u
#define TRP_TIMEOUT_MS_MAX 600000u

typedef struct trp_node_config {
    uint64_t id;   /* >= 1, unique */
    char *address; /* "host:port" where the other nodes send; as written */
    char *host;    /* host part of address, brackets removed */
    uint16_t port;
    char *bind;      /* "host:port" to bind locally, or NULL: bind `address` */
    char *bind_host; /* host part of bind, or NULL */
    uint16_t bind_port;
    char *group;       /* or NULL when the config uses no groups */
    uint32_t priority; /* 0..TRP_PRIORITY_MAX, default 0; higher prefers leadership */
    char *data_dir;    /* resolved: relative paths are joined to the config's dir */
    /* Filled by trp_config_resolve(); addr_len == 0 until then. */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    struct sockaddr_storage bind_addr;
    socklen_t bind_addr_len;
} trp_node_config;

typedef struct trp_config {
    char *dir;                              /* directory relative paths are resolved against */
    char *cluster;                          /* cluster name */
    uint8_t cluster_id[TRP_CLUSTER_ID_LEN]; /* from "cluster_id", or derived from the name */
    char *key_file;                         /* resolved path of the key file */
    uint32_t max_datagram;
    uint32_t max_entry;
    char *start_seq; /* decimal string, validated */
    uint32_t heartbeat_ms;
    uint32_t election_timeout_ms;     /* lower bound of the randomized election timeout */
    uint32_t election_timeout_max_ms; /* upper bound; default 1.5 * election_timeout_ms */
    uint32_t spare_sync_ms;           /* a spare follower's longest sync delay; 0: no spares */
    bool has_groups;
    size_t ngroups;
    char **groups; /* distinct group names in order of first appearance */
    size_t nnodes;
    trp_node_config *nodes; /* in file order */
} trp_config;

/* Parse and validate JSON text. `dir` is the directory relative paths in the
 * config are resolved against (the config file's directory; "." if NULL).
 * Errors: TRP_ECONFIG with "PATH: reason", e.g.
 * "nodes[2].address: port 70000 out of range 1..65535"; TRP_ENOMEM. */
int trp_config_parse(trp_config **out, const char *text, size_t len, const char *dir, trp_err *err);
/* Read and parse a config file (relative paths resolve against its dir).
 * Errors as trp_config_parse, prefixed with the file name, plus TRP_ENOENT,
 * TRP_EPERM, TRP_EIO for the file itself. */
int trp_config_load(trp_config **out, const char *path, trp_err *err);
void trp_config_free(trp_config *cfg);

/* The node with this id, or NULL. */
const trp_node_config *trp_config_node(const trp_config *cfg, uint64_t id);
/* Index of that node in cfg->nodes, or -1. */
int trp_config_node_index(const trp_config *cfg, uint64_t id);

/* Resolve every node's address (and bind address) with getaddrinfo, once.
 * Refuses two nodes resolving to the same socket address. TRP_ECONFIG naming
 * the node and the resolver's reason. */
int trp_config_resolve(trp_config *cfg, trp_err *err);

/* Read the cluster key: exactly 64 hex digits, optionally followed by one
 * newline. Refused (TRP_ECONFIG) when readable or writable by group or others,
 * of the wrong length or with a non-hex byte; TRP_ENOENT/TRP_EPERM/TRP_EIO for
 * the file itself. The message names the file. */
int trp_key_load(uint8_t key[TRP_KEY_LEN], const char *path, trp_err *err);

/* `trp-node init`: write DIR/cluster.json, DIR/cluster.key (0600) and data
 * directories DIR/1..N for a cluster of nodes on 127.0.0.1. */
typedef struct trp_init_options {
    const char *dir;       /* created if missing */
    unsigned nodes;        /* 1..TRP_CONFIG_NODES_MAX */
    unsigned base_port;    /* node i listens on base_port + i - 1; 0 = 7100 */
    const char *groups;    /* "A,B,..." assigned in blocks, or NULL */
    const char *name;      /* cluster name; NULL = "trp" */
    unsigned max_datagram; /* 0 = TRP_MAX_DATAGRAM_LOOPBACK */
    bool force;            /* overwrite an existing cluster.json and key */
} trp_init_options;

#define TRP_INIT_BASE_PORT_DEFAULT 7100u

/* Errors: TRP_EINVAL for bad options or when DIR/cluster.json or
 * DIR/cluster.key exists and !force; TRP_EIO/TRP_EPERM/TRP_ENOSPC naming the
 * file. The written config is parsed back and validated before returning. */
int trp_cluster_init(const trp_init_options *opts, trp_err *err);

#ifdef __cplusplus
}
#endif
#endif
