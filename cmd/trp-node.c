/*
 * trp-node: run one member of a trp cluster, or set a cluster up.
 *
 *   trp-node init --nodes N --dir DIR [--base-port P] [--groups G1,G2,...]
 *   trp-node -c CONFIG -i ID [-v|-q]       run one node (lib/server.c)
 *   trp-node status -c CONFIG [-i ID]      each node's status JSON, one line each
 *
 * The one idea: this file only parses arguments and maps library statuses
 * to sysexits(3); everything else is libtrp (trp_cluster_init, ...). Each
 * mode has its own function so the run mode and status slot in beside init.
 */
#include "cli.h"
#include "trp.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

static const char *progname = "trp-node";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s init --nodes N --dir DIR [--base-port P] [--groups G1,G2,...]\n"
            "                [--name NAME] [--max-datagram BYTES] [--force]\n"
            "       %s -c CONFIG -i ID [-v | -q]\n"
            "       %s status -c CONFIG [-i ID] [--timeout SECONDS]\n"
            "       %s --help | --version\n",
            progname, progname, progname, progname);
}

/* getopt's '?' (unknown option) or ':' (no argument): say which, exit 64. */
static int bad_option(const char *cmd, int c, char **argv)
{
    const char *opt = cli_bad_option(argv);
    if (c == ':')
        fprintf(stderr, "%s: %soption '%s' needs an argument\n", progname, cmd, opt);
    else
        fprintf(stderr, "%s: %sunknown option '%s'\n", progname, cmd, opt);
    usage(stderr);
    return EX_USAGE;
}

/* Parse a decimal unsigned in [min, max] or exit 64 naming the option. */
static unsigned parse_unsigned(const char *opt, const char *s, unsigned min, unsigned max)
{
    char *end;
    if (!s[0] || s[0] == '-' || s[0] == '+') {
        fprintf(stderr, "%s: %s: '%s' is not a number\n", progname, opt, s);
        exit(EX_USAGE);
    }
    unsigned long v = strtoul(s, &end, 10);
    if (*end) {
        fprintf(stderr, "%s: %s: '%s' is not a number\n", progname, opt, s);
        exit(EX_USAGE);
    }
    if (v < min || v > max) {
        fprintf(stderr, "%s: %s: %s out of range %u..%u\n", progname, opt, s, min, max);
        exit(EX_USAGE);
    }
    return (unsigned)v;
}

static int cmd_init(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"nodes", required_argument, NULL, 'n'},
        {"dir", required_argument, NULL, 'd'},
        {"base-port", required_argument, NULL, 'p'},
        {"groups", required_argument, NULL, 'g'},
        {"name", required_argument, NULL, 'N'},
        {"max-datagram", required_argument, NULL, 'm'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    trp_init_options o = {0};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":n:d:p:g:N:m:fh", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            o.nodes = parse_unsigned("--nodes", optarg, 1, TRP_CONFIG_NODES_MAX);
            break;
        case 'd':
            o.dir = optarg;
            break;
        case 'p':
            o.base_port = parse_unsigned("--base-port", optarg, 1, 65535);
            break;
        case 'g':
            o.groups = optarg;
            break;
        case 'N':
            o.name = optarg;
            break;
        case 'm':
            o.max_datagram = parse_unsigned("--max-datagram", optarg, TRP_MAX_DATAGRAM_MIN,
                                            TRP_MAX_DATAGRAM_MAX);
            break;
        case 'f':
            o.force = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return bad_option("init: ", c, argv);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: init: unexpected argument '%s'\n", progname, argv[optind]);
        usage(stderr);
        return EX_USAGE;
    }
    if (!o.nodes || !o.dir) {
        fprintf(stderr, "%s: init: --nodes and --dir are required\n", progname);
        usage(stderr);
        return EX_USAGE;
    }
    trp_err err;
    int rc = trp_cluster_init(&o, &err);
    if (rc) {
        fprintf(stderr, "%s: init: %s\n", progname, err.msg);
        return trp_exit_code(rc);
    }
    unsigned port = o.base_port ? o.base_port : TRP_INIT_BASE_PORT_DEFAULT;
    if (o.nodes == 1)
        printf("%s/cluster.json: 1 node, 127.0.0.1:%u\n", o.dir, port);
    else
        printf("%s/cluster.json: %u nodes, 127.0.0.1:%u..%u\n", o.dir, o.nodes, port,
               port + o.nodes - 1);
    printf("%s/cluster.key: new key (mode 0600)\n", o.dir);
    printf("start: trp-node -c %s/cluster.json -i 1", o.dir);
    if (o.nodes == 2)
        printf("   (and -i 2)");
    else if (o.nodes > 2)
        printf("   (and -i 2 ... -i %u)", o.nodes);
    printf("\n");
    return 0;
}

/* Parse a node id or exit 64 naming the option. */
static uint64_t parse_id(const char *s)
{
    char *end;
    if (!s[0] || s[0] < '0' || s[0] > '9') {
        fprintf(stderr, "%s: -i: '%s' is not a node id\n", progname, s);
        exit(EX_USAGE);
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v == 0 || v > TRP_CONFIG_ID_MAX) {
        fprintf(stderr, "%s: -i: '%s' is not a node id (1..2^53-1)\n", progname, s);
        exit(EX_USAGE);
    }
    return (uint64_t)v;
}

/* Print one status line per node: the node's JSON, or an error object. */
static int cmd_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"id", required_argument, NULL, 'i'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = getenv("TRP_CONFIG");
    uint64_t id = 0;
    unsigned timeout_ms = 2000;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:i:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (!*optarg) {
                fprintf(stderr, "%s: -c: empty config file name\n", progname);
                return EX_USAGE;
            }
            config = optarg;
            break;
        case 'i':
            id = parse_id(optarg);
            break;
        case 't':
            timeout_ms = parse_unsigned("--timeout", optarg, 1, 86400) * 1000;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return bad_option("status: ", c, argv);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: status: unexpected argument '%s'\n", progname, argv[optind]);
        usage(stderr);
        return EX_USAGE;
    }
    if (!config) {
        fprintf(stderr, "%s: status: -c CONFIG is required (or TRP_CONFIG)\n", progname);
        usage(stderr);
        return EX_USAGE;
    }
    trp_err err;
    trp_client *cl;
    int rc = trp_client_open(&cl, config, id, timeout_ms, &err);
    if (rc) {
        fprintf(stderr, "%s: status: %s\n", progname, err.msg);
        return trp_exit_code(rc);
    }
    const uint64_t *ids;
    size_t n = trp_client_nodes(cl, &ids);
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        if (id && ids[i] != id)
            continue;
        char *json = NULL;
        rc = trp_client_status(cl, ids[i], &json, &err);
        if (rc) {
            printf("{\"id\":%llu,\"error\":\"no answer within %u ms\"}\n",
                   (unsigned long long)ids[i], timeout_ms);
            fprintf(stderr, "%s: status: node %llu: %s\n", progname, (unsigned long long)ids[i],
                    err.msg);
            status = trp_exit_code(rc);
        } else {
            printf("%s\n", json);
            free(json);
        }
        fflush(stdout);
    }
    trp_client_close(cl);
    return status;
}

static int verbosity = TRP_SERVER_STATE;

static void log_line(void *ctx, int level, const char *line)
{
    (void)ctx;
    if (level <= verbosity)
        fprintf(stderr, "%s: %s\n", progname, line);
}

/* `trp-node -c CONFIG -i ID [-v|-q]`: run one node until SIGTERM/SIGINT. */
static int cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"id", required_argument, NULL, 'i'},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = getenv("TRP_CONFIG");
    const char *id = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:i:vqhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (!*optarg) {
                fprintf(stderr, "%s: -c: empty config file name\n", progname);
                return EX_USAGE;
            }
            config = optarg;
            break;
        case 'i':
            id = optarg;
            break;
        case 'v':
        case 'q':
            if (verbosity != TRP_SERVER_STATE) {
                fprintf(stderr, "%s: -v and -q exclude each other\n", progname);
                usage(stderr);
                return EX_USAGE;
            }
            verbosity = c == 'v' ? TRP_SERVER_INFO : TRP_SERVER_ERROR;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("trp-node (trp) %s\n", trp_version());
            return 0;
        default:
            return bad_option("", c, argv);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unknown command '%s'\n", progname, argv[optind]);
        usage(stderr);
        return EX_USAGE;
    }
    if (!config || !id) {
        fprintf(stderr, "%s: %s is required\n", progname,
                !config ? "-c CONFIG (or TRP_CONFIG)" : "-i ID");
        usage(stderr);
        return EX_USAGE;
    }
    trp_server_options o = {.config_path = config, .id = parse_id(id), .log = log_line};
    trp_err err = {0};
    trp_server *s;
    int rc = trp_server_open(&s, &o, &err);
    if (rc) {
        fprintf(stderr, "%s: %s\n", progname, err.msg);
        return trp_exit_code(rc);
    }
    rc = trp_server_run(s, &err);
    trp_server_close(s);
    if (rc) {
        fprintf(stderr, "%s: node %s: stopping: %s\n", progname, id, err.msg);
        return trp_exit_code(rc);
    }
    if (verbosity >= TRP_SERVER_INFO)
        fprintf(stderr, "%s: node %s: stopped\n", progname, id);
    return 0;
}

int main(int argc, char **argv)
{
    cli_keep_std_fds();
    if (argc >= 2 && strcmp(argv[1], "init") == 0)
        return cmd_init(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    return cmd_run(argc, argv);
}
