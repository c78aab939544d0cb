/*
 * config.c: the cluster configuration (trp.conf(5)): strict JSON parsing and
 * validation, name resolution, the key file, and `trp-node init`.
 *
 * The one idea: a config that parses is safe to run. Every field is checked
 * for type and range, unknown fields are refused (a misspelt "heartbeat_msec"
 * silently falling back to a default is worse than an error), keys that start
 * with "_" are comments and ignored, and every error starts with the JSON
 * path of the offending field so a person can find it.
 */
#include "trp_config.h"
#include "trp_client.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_FILE_MAX (16u << 20) /* no sane cluster config is larger */
#define START_SEQ_DIGITS_MAX 4096

/* ---- small helpers -------------------------------------------------------- */

/* dir + "/" + rel, or a copy of rel when it is absolute. */
static char *path_join(const char *dir, const char *rel)
{
    if (rel[0] == '/' || !dir || !dir[0])
        return strdup(rel);
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > TRP_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Exactly 2*n hex digits into out; false otherwise. */
static bool hex_decode(uint8_t *out, size_t n, const char *hex, size_t hexlen)
{
    if (hexlen != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval((unsigned char)hex[2 * i]), lo = hexval((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static void hex_encode(char *out, const uint8_t *in, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ---- field access with JSON paths in errors -------------------------------- */

/* Refuse unknown and duplicate keys of obj; keys starting with '_' are
 * comments. `allowed` is NULL-terminated. */
static int check_keys(const cJSON *obj, const char *path, const char *const *allowed, trp_err *err)
{
    const char *sep = path[0] ? "." : "";
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (!it->string)
            return trp_err_set(err, TRP_ECONFIG, "%s: malformed member", path);
        if (it->string[0] == '_')
            continue;
        bool known = false;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(allowed[i], it->string) == 0)
                known = true;
        if (!known)
            return trp_err_set(err, TRP_ECONFIG, "%s%s%.64s: unknown field", path, sep, it->string);
        for (const cJSON *o = it->next; o; o = o->next)
            if (o->string && strcmp(o->string, it->string) == 0)
                return trp_err_set(err, TRP_ECONFIG, "%s%s%s: duplicate field", path, sep,
                                   it->string);
    }
    return TRP_OK;
}

/* The shortest text that reads back as d (as the user probably wrote it). */
static void number_text(char *out, size_t n, double d)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            return;
    }
}

/* An optional integer field in [min, max]; *out = def when absent. */
static int get_uint(const cJSON *obj, const char *key, const char *path, uint64_t min, uint64_t max,
                    uint64_t def, uint64_t *out, trp_err *err)
{
    const char *sep = path[0] ? "." : "";
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *out = def;
        return TRP_OK;
    }
    if (!cJSON_IsNumber(v))
        return trp_err_set(err, TRP_ECONFIG, "%s%s%s: must be an integer", path, sep, key);
    double d = v->valuedouble;
    char num[40];
    number_text(num, sizeof num, d);
    if (d != d || d < (double)min || d > (double)max)
        return trp_err_set(err, TRP_ECONFIG, "%s%s%s: %s out of range %llu..%llu", path, sep, key,
                           num, (unsigned long long)min, (unsigned long long)max);
    if (d != (double)(uint64_t)d)
        return trp_err_set(err, TRP_ECONFIG, "%s%s%s: %s is not an integer", path, sep, key, num);
    *out = (uint64_t)d;
    return TRP_OK;
}

/* An optional string field; *out = NULL when absent (not copied). */
static int get_string(const cJSON *obj, const char *key, const char *path, const char **out,
                      trp_err *err)
{
    const char *sep = path[0] ? "." : "";
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v)
        return TRP_OK;
    if (!cJSON_IsString(v) || !v->valuestring)
        return trp_err_set(err, TRP_ECONFIG, "%s%s%s: must be a string", path, sep, key);
    *out = v->valuestring;
    return TRP_OK;
}

/* ---- addresses ----------------------------------------------------------- */

static bool valid_hostname(const char *h)
{
    size_t n = strlen(h), label = 0;
    if (n == 0 || n > 253)
        return false;
    bool all_numeric = true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!isalnum(c) && c != '-')
            return false;
        if (!isdigit(c))
            all_numeric = false;
        if (++label > 63)
            return false;
    }
    /* "1.2.3.999" is a bad IPv4 address, not a host name. */
    return label > 0 && !all_numeric;
}

/* A decimal port 1..65535; on failure writes the reason to why. */
static bool parse_port(const char *p, uint16_t *port_out, char *why, size_t whylen)
{
    if (!*p) {
        snprintf(why, whylen, "missing port");
        return false;
    }
    unsigned long port = 0;
    for (const char *q = p; *q; q++) {
        if (!isdigit((unsigned char)*q) || q - p >= 9) {
            snprintf(why, whylen, "port '%.16s' is not a number", p);
            return false;
        }
        port = port * 10 + (unsigned long)(*q - '0');
    }
    if (port < 1 || port > 65535) {
        snprintf(why, whylen, "port %lu out of range 1..65535", port);
        return false;
    }
    *port_out = (uint16_t)port;
    return true;
}

/* Split "host:port" / "[v6]:port". On failure writes the reason to why. */
static bool parse_hostport(const char *s, char **host_out, uint16_t *port_out, char *why,
                           size_t whylen)
{
    const char *host, *host_end, *colon;
    bool bracketed = s[0] == '[';
    if (bracketed) {
        host = s + 1;
        host_end = strchr(host, ']');
        if (!host_end) {
            snprintf(why, whylen, "missing ']' after IPv6 address");
            return false;
        }
        colon = host_end + 1;
        if (*colon != ':') {
            snprintf(why, whylen, "expected ':port' after ']'");
            return false;
        }
    } else {
        host = s;
        colon = strrchr(s, ':');
        if (!colon) {
            snprintf(why, whylen, "expected host:port, as 127.0.0.1:7100");
            return false;
        }
        if (memchr(s, ':', (size_t)(colon - s))) {
            snprintf(why, whylen, "an IPv6 address must be in brackets, as [::1]:7100");
            return false;
        }
        host_end = colon;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen > 253) {
        snprintf(why, whylen, hlen ? "host name too long" : "missing host");
        return false;
    }
    if (!parse_port(colon + 1, port_out, why, whylen))
        return false;
    char *host_copy = strndup(host, hlen);
    if (!host_copy) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    unsigned char buf[sizeof(struct in6_addr)];
    bool ok;
    if (bracketed) {
        ok = inet_pton(AF_INET6, host_copy, buf) == 1;
        if (!ok)
            snprintf(why, whylen, "'%s' is not an IPv6 address", host_copy);
    } else {
        ok = inet_pton(AF_INET, host_copy, buf) == 1 || valid_hostname(host_copy);
        if (!ok)
            snprintf(why, whylen, "'%.64s' is neither an IPv4 address nor a host name", host_copy);
    }
    if (!ok) {
        free(host_copy);
        return false;
    }
    *host_out = host_copy;
    return true;
}

/* A canonical "host|port" for duplicate detection before resolution. */
static void address_key(char *out, size_t n, const char *host, uint16_t port)
{
    unsigned char buf[sizeof(struct in6_addr)];
    char text[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET6, host, buf) == 1 && inet_ntop(AF_INET6, buf, text, sizeof text)) {
        snprintf(out, n, "%s|%u", text, port);
        return;
    }
    size_t i = 0;
    for (; host[i] && i + 1 < n; i++)
        out[i] = (char)tolower((unsigned char)host[i]);
    snprintf(out + i, n - i, "|%u", port);
}

/* ---- parsing ------------------------------------------------------------- */

static const char *const root_keys[] = {"cluster",      "cluster_id", "key_file",
                                        "max_datagram", "max_entry",  "start_seq",
                                        "timeouts",     "nodes",      NULL};
static const char *const timeout_keys[] = {"heartbeat_ms", "election_timeout_ms",
                                           "election_timeout_max_ms", "spare_sync_ms", NULL};
static const char *const node_keys[] = {"id",       "address",  "bind", "group",
                                        "priority", "data_dir", NULL};

void trp_config_free(trp_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nnodes; i++) {
        trp_node_config *n = &cfg->nodes[i];
        free(n->address);
        free(n->host);
        free(n->bind);
        free(n->bind_host);
        free(n->group);
        free(n->data_dir);
    }
    free(cfg->nodes);
    for (size_t i = 0; i < cfg->ngroups; i++)
        free(cfg->groups[i]);
    free(cfg->groups);
    free(cfg->dir);
    free(cfg->cluster);
    free(cfg->key_file);
    free(cfg->start_seq);
    free(cfg);
}

static int parse_cluster(trp_config *cfg, const cJSON *root, trp_err *err)
{
    const char *name, *id_hex, *key_file, *start_seq;
    int rc;
    if ((rc = get_string(root, "cluster", "", &name, err)))
        return rc;
    if (!name)
        return trp_err_set(err, TRP_ECONFIG, "cluster: missing (the cluster's name)");
    if (!valid_name(name))
        return trp_err_set(err, TRP_ECONFIG,
                           "cluster: '%.80s' must be 1..%d characters of A-Z a-z 0-9 . _ -", name,
                           TRP_NAME_MAX);
    if (!(cfg->cluster = strdup(name)))
        return trp_err_set(err, TRP_ENOMEM, "cluster: out of memory");

    if ((rc = get_string(root, "cluster_id", "", &id_hex, err)))
        return rc;
    if (id_hex) {
        if (!hex_decode(cfg->cluster_id, TRP_CLUSTER_ID_LEN, id_hex, strlen(id_hex)))
            return trp_err_set(err, TRP_ECONFIG, "cluster_id: must be %d hex digits",
                               2 * TRP_CLUSTER_ID_LEN);
    } else {
        /* Derived, so hand-written configs need no random id; clusters that
         * share a name should set distinct ids (init always does). */
        uint8_t md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        char buf[32 + TRP_NAME_MAX];
        int n = snprintf(buf, sizeof buf, "trp cluster id %s", name);
        if (!EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha256(), NULL))
            return trp_err_set(err, TRP_ENOMEM, "cluster_id: SHA-256 failed");
        memcpy(cfg->cluster_id, md, TRP_CLUSTER_ID_LEN);
    }

    if ((rc = get_string(root, "key_file", "", &key_file, err)))
        return rc;
    if (key_file && !key_file[0])
        return trp_err_set(err, TRP_ECONFIG, "key_file: must not be empty");
    if (!(cfg->key_file = path_join(cfg->dir, key_file ? key_file : "cluster.key")))
        return trp_err_set(err, TRP_ENOMEM, "key_file: out of memory");

    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(root, "start_seq");
    if (sv && !cJSON_IsString(sv))
        return trp_err_set(err, TRP_ECONFIG,
                           "start_seq: must be a decimal string such as \"0\" (seqs are "
                           "unbounded, JSON numbers are not)");
    if ((rc = get_string(root, "start_seq", "", &start_seq, err)))
        return rc;
    if (!start_seq)
        start_seq = "0";
    size_t sl = strlen(start_seq);
    if (sl == 0 || sl > START_SEQ_DIGITS_MAX || strspn(start_seq, "0123456789") != sl ||
        (sl > 1 && start_seq[0] == '0'))
        return trp_err_set(err, TRP_ECONFIG,
                           "start_seq: '%.40s' is not a decimal number without leading zeros",
                           start_seq);
    if (!(cfg->start_seq = strdup(start_seq)))
        return trp_err_set(err, TRP_ENOMEM, "start_seq: out of memory");

    uint64_t v;
    if ((rc = get_uint(root, "max_datagram", "", TRP_MAX_DATAGRAM_MIN, TRP_MAX_DATAGRAM_MAX,
                       TRP_MAX_DATAGRAM_DEFAULT, &v, err)))
        return rc;
    cfg->max_datagram = (uint32_t)v;
    if ((rc = get_uint(root, "max_entry", "", 1, TRP_MAX_ENTRY_CONFIG_MAX,
                       TRP_MAX_ENTRY_CONFIG_DEFAULT, &v, err)))
        return rc;
    cfg->max_entry = (uint32_t)v;
    return TRP_OK;
}

static int parse_timeouts(trp_config *cfg, const cJSON *root, trp_err *err)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "timeouts");
    static const cJSON empty = {0};
    int rc;
    if (!t)
        t = &empty;
    else if (!cJSON_IsObject(t))
        return trp_err_set(err, TRP_ECONFIG, "timeouts: must be an object");
    else if ((rc = check_keys(t, "timeouts", timeout_keys, err)))
        return rc;
    uint64_t hb, el, elmax, spare;
    /* the ranges trp.conf(5) gives: those the rules between them allow
     * (a heartbeat below half the election timeout, at least 1 ms) */
    if ((rc = get_uint(t, "heartbeat_ms", "timeouts", 1, (TRP_TIMEOUT_MS_MAX - 1) / 2,
                       TRP_HEARTBEAT_MS_DEFAULT, &hb, err)) ||
        (rc = get_uint(t, "election_timeout_ms", "timeouts", 3, TRP_TIMEOUT_MS_MAX,
                       TRP_ELECTION_TIMEOUT_MS_DEFAULT, &el, err)) ||
        (rc = get_uint(t, "election_timeout_max_ms", "timeouts", 3, TRP_TIMEOUT_MS_MAX,
                       el + el / 2, &elmax, err)) ||
        (rc = get_uint(t, "spare_sync_ms", "timeouts", 0, TRP_TIMEOUT_MS_MAX,
                       hb > TRP_SPARE_SYNC_MS_DEFAULT ? TRP_SPARE_SYNC_MS_DEFAULT : hb - 1,
                       &spare, err)))
        return rc;
    /* Several heartbeats must fit in one election timeout, or a single lost
     * datagram starts an election. */
    if (2 * hb >= el)
        return trp_err_set(err, TRP_ECONFIG,
                           "timeouts.heartbeat_ms: %llu must be less than half of "
                           "timeouts.election_timeout_ms (%llu)",
                           (unsigned long long)hb, (unsigned long long)el);
    if (elmax < el)
        return trp_err_set(err, TRP_ECONFIG,
                           "timeouts.election_timeout_max_ms: %llu is less than "
                           "timeouts.election_timeout_ms (%llu)",
                           (unsigned long long)elmax, (unsigned long long)el);
    /* A spare's acks must come more often than heartbeats, or its leader
     * would take it for stalled. */
    if (spare >= hb)
        return trp_err_set(err, TRP_ECONFIG,
                           "timeouts.spare_sync_ms: %llu must be less than "
                           "timeouts.heartbeat_ms (%llu)",
                           (unsigned long long)spare, (unsigned long long)hb);
    cfg->spare_sync_ms = (uint32_t)spare;
    cfg->heartbeat_ms = (uint32_t)hb;
    cfg->election_timeout_ms = (uint32_t)el;
    cfg->election_timeout_max_ms = (uint32_t)elmax;
    return TRP_OK;
}

static int parse_address(const cJSON *obj, const char *key, const char *path, bool required,
                         char **text, char **host, uint16_t *port, trp_err *err)
{
    const char *s;
    int rc = get_string(obj, key, path, &s, err);
    if (rc)
        return rc;
    if (!s) {
        if (required)
            return trp_err_set(err, TRP_ECONFIG, "%s.%s: missing (host:port)", path, key);
        return TRP_OK;
    }
    char why[160];
    if (!parse_hostport(s, host, port, why, sizeof why))
        return trp_err_set(err, TRP_ECONFIG, "%s.%s: %s", path, key, why);
    if (!(*text = strdup(s)))
        return trp_err_set(err, TRP_ENOMEM, "%s.%s: out of memory", path, key);
    return TRP_OK;
}

static int parse_node(trp_config *cfg, trp_node_config *n, const cJSON *obj, size_t index,
                      trp_err *err)
{
    char path[32];
    snprintf(path, sizeof path, "nodes[%zu]", index);
    if (!cJSON_IsObject(obj))
        return trp_err_set(err, TRP_ECONFIG, "%s: must be an object", path);
    int rc = check_keys(obj, path, node_keys, err);
    if (rc)
        return rc;
    uint64_t v;
    if (!cJSON_GetObjectItemCaseSensitive(obj, "id"))
        return trp_err_set(err, TRP_ECONFIG, "%s.id: missing", path);
    if ((rc = get_uint(obj, "id", path, 1, TRP_CONFIG_ID_MAX, 0, &v, err)))
        return rc;
    n->id = v;
    if ((rc = parse_address(obj, "address", path, true, &n->address, &n->host, &n->port, err)))
        return rc;
    if ((rc = parse_address(obj, "bind", path, false, &n->bind, &n->bind_host, &n->bind_port, err)))
        return rc;
    const char *group, *data_dir;
    if ((rc = get_string(obj, "group", path, &group, err)))
        return rc;
    if (group) {
        if (!valid_name(group))
            return trp_err_set(err, TRP_ECONFIG,
                               "%s.group: '%.80s' must be 1..%d characters of A-Z a-z 0-9 . _ -",
                               path, group, TRP_NAME_MAX);
        if (!(n->group = strdup(group)))
            return trp_err_set(err, TRP_ENOMEM, "%s.group: out of memory", path);
    }
    if ((rc = get_uint(obj, "priority", path, 0, TRP_PRIORITY_MAX, 0, &v, err)))
        return rc;
    n->priority = (uint32_t)v;
    if ((rc = get_string(obj, "data_dir", path, &data_dir, err)))
        return rc;
    if (data_dir && !data_dir[0])
        return trp_err_set(err, TRP_ECONFIG, "%s.data_dir: must not be empty", path);
    char idtext[24];
    snprintf(idtext, sizeof idtext, "%llu", (unsigned long long)n->id);
    if (!(n->data_dir = path_join(cfg->dir, data_dir ? data_dir : idtext)))
        return trp_err_set(err, TRP_ENOMEM, "%s.data_dir: out of memory", path);
    return TRP_OK;
}

/* Cross-node rules: unique ids and addresses, groups all-or-none. */
static int check_nodes(trp_config *cfg, trp_err *err)
{
    for (size_t i = 0; i < cfg->nnodes; i++) {
        const trp_node_config *a = &cfg->nodes[i];
        char ka[300];
        address_key(ka, sizeof ka, a->host, a->port);
        for (size_t j = 0; j < i; j++) {
            const trp_node_config *b = &cfg->nodes[j];
            if (a->id == b->id)
                return trp_err_set(err, TRP_ECONFIG, "nodes[%zu].id: %llu duplicates nodes[%zu]", i,
                                   (unsigned long long)a->id, j);
            char kb[300];
            address_key(kb, sizeof kb, b->host, b->port);
            if (strcmp(ka, kb) == 0)
                return trp_err_set(err, TRP_ECONFIG,
                                   "nodes[%zu].address: %s duplicates nodes[%zu].address", i,
                                   a->address, j);
        }
    }
    const trp_node_config *grouped = NULL;
    size_t grouped_at = 0;
    for (size_t i = 0; i < cfg->nnodes && !grouped; i++)
        if (cfg->nodes[i].group) {
            grouped = &cfg->nodes[i];
            grouped_at = i;
        }
    if (!grouped)
        return TRP_OK;
    /* A quorum is a majority of every group, so a node outside every group
     * would have no say at all: refuse rather than guess. */
    cfg->has_groups = true;
    if (!(cfg->groups = calloc(cfg->nnodes, sizeof *cfg->groups)))
        return trp_err_set(err, TRP_ENOMEM, "nodes: out of memory");
    for (size_t i = 0; i < cfg->nnodes; i++) {
        const char *g = cfg->nodes[i].group;
        if (!g)
            return trp_err_set(err, TRP_ECONFIG,
                               "nodes[%zu].group: missing; when one node names a group every "
                               "node must (nodes[%zu] is in '%s')",
                               i, grouped_at, grouped->group);
        bool seen = false;
        for (size_t k = 0; k < cfg->ngroups; k++) {
            if (strcmp(cfg->groups[k], g) == 0) {
                seen = true;
                break;
            }
            if (strcasecmp(cfg->groups[k], g) == 0)
                return trp_err_set(err, TRP_ECONFIG,
                                   "nodes[%zu].group: '%s' differs from group '%s' only in case", i,
                                   g, cfg->groups[k]);
        }
        if (!seen && !(cfg->groups[cfg->ngroups++] = strdup(g)))
            return trp_err_set(err, TRP_ENOMEM, "nodes: out of memory");
    }
    return TRP_OK;
}

static int parse_root(trp_config *cfg, const cJSON *root, trp_err *err)
{
    if (!cJSON_IsObject(root))
        return trp_err_set(err, TRP_ECONFIG, "(top level): must be a JSON object");
    int rc;
    if ((rc = check_keys(root, "", root_keys, err)) || (rc = parse_cluster(cfg, root, err)) ||
        (rc = parse_timeouts(cfg, root, err)))
        return rc;
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    if (!nodes)
        return trp_err_set(err, TRP_ECONFIG, "nodes: missing (the list of cluster members)");
    if (!cJSON_IsArray(nodes))
        return trp_err_set(err, TRP_ECONFIG, "nodes: must be an array");
    size_t count = (size_t)cJSON_GetArraySize(nodes);
    if (count < 1 || count > TRP_CONFIG_NODES_MAX)
        return trp_err_set(err, TRP_ECONFIG, "nodes: %zu nodes, must be 1..%d", count,
                           TRP_CONFIG_NODES_MAX);
    if (!(cfg->nodes = calloc(count, sizeof *cfg->nodes)))
        return trp_err_set(err, TRP_ENOMEM, "nodes: out of memory");
    size_t i = 0;
    for (const cJSON *it = nodes->child; it; it = it->next, i++) {
        cfg->nnodes = i + 1; /* so that free() sees what parse_node allocated */
        if ((rc = parse_node(cfg, &cfg->nodes[i], it, i, err)))
            return rc;
    }
    return check_nodes(cfg, err);
}

static void error_position(const char *text, size_t len, size_t off, unsigned *line, unsigned *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

int trp_config_parse(trp_config **out, const char *text, size_t len, const char *dir, trp_err *err)
{
    *out = NULL;
    trp_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg || !(cfg->dir = strdup(dir && dir[0] ? dir : "."))) {
        free(cfg);
        return trp_err_set(err, TRP_ENOMEM, "config: out of memory");
    }
    if (memchr(text, '\0', len)) {
        trp_config_free(cfg);
        return trp_err_set(err, TRP_ECONFIG, "(top level): NUL byte in the config text");
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        unsigned line, col;
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        error_position(text, len, off, &line, &col);
        trp_config_free(cfg);
        return trp_err_set(err, TRP_ECONFIG, "(top level): JSON syntax error at line %u, column %u",
                           line, col);
    }
    /* Trailing garbage after the object is a syntax error too. */
    size_t used = (size_t)(end - text);
    while (used < len && isspace((unsigned char)text[used]))
        used++;
    int rc;
    if (used < len) {
        unsigned line, col;
        error_position(text, len, used, &line, &col);
        rc = trp_err_set(err, TRP_ECONFIG,
                         "(top level): unexpected text after the JSON object at line %u, "
                         "column %u",
                         line, col);
    } else {
        rc = parse_root(cfg, root, err);
    }
    cJSON_Delete(root);
    if (rc) {
        trp_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return TRP_OK;
}

int trp_config_load(trp_config **out, const char *path, trp_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return trp_err_sys(err, TRP_EIO, errno, "%s", path);
    /* Grow the buffer as the file proves larger, up to one byte past the cap
     * (to tell "too large" from "exactly at the cap"). */
    size_t cap = 0, n = 0;
    char *buf = NULL;
    int rerr = 0;
    while (n == cap && cap <= CONFIG_FILE_MAX) {
        size_t ncap = cap ? 2 * cap : 65536;
        if (ncap > CONFIG_FILE_MAX + 1)
            ncap = CONFIG_FILE_MAX + 1;
        char *nbuf = realloc(buf, ncap);
        if (!nbuf) {
            free(buf);
            fclose(f);
            return trp_err_set(err, TRP_ENOMEM, "%s: out of memory", path);
        }
        buf = nbuf;
        cap = ncap;
        n += fread(buf + n, 1, cap - n, f);
        if (ferror(f)) {
            rerr = errno;
            break;
        }
        if (feof(f))
            break;
    }
    fclose(f);
    if (rerr) {
        free(buf);
        return trp_err_sys(err, TRP_EIO, rerr, "%s: read", path);
    }
    if (n > CONFIG_FILE_MAX) {
        free(buf);
        return trp_err_set(err, TRP_ECONFIG, "%s: larger than %u bytes", path, CONFIG_FILE_MAX);
    }
    char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    if (!dir) {
        free(buf);
        return trp_err_set(err, TRP_ENOMEM, "%s: out of memory", path);
    }
    int rc = trp_config_parse(out, buf, n, dir, err);
    if (rc)
        trp_err_prefix(err, "%s", path);
    free(dir);
    free(buf);
    return rc;
}

const trp_node_config *trp_config_node(const trp_config *cfg, uint64_t id)
{
    int i = trp_config_node_index(cfg, id);
    return i < 0 ? NULL : &cfg->nodes[i];
}

int trp_config_node_index(const trp_config *cfg, uint64_t id)
{
    for (size_t i = 0; i < cfg->nnodes; i++)
        if (cfg->nodes[i].id == id)
            return (int)i;
    return -1;
}

/* ---- resolution ------------------------------------------------------------ */

static int resolve_one(const char *host, uint16_t port, bool passive, const char *what,
                       struct sockaddr_storage *ss, socklen_t *len, trp_err *err)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)
        hints.ai_flags |= AI_NUMERICHOST; /* literals never touch DNS */
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0 || !res)
        return trp_err_set(err, TRP_ECONFIG, "%s: cannot resolve '%s': %s", what, host,
                           gai ? gai_strerror(gai) : "no address");
    if (res->ai_addrlen > sizeof *ss) {
        freeaddrinfo(res);
        return trp_err_set(err, TRP_ECONFIG, "%s: address too long", what);
    }
    memset(ss, 0, sizeof *ss);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return TRP_OK;
}

int trp_config_resolve(trp_config *cfg, trp_err *err)
{
    for (size_t i = 0; i < cfg->nnodes; i++) {
        trp_node_config *n = &cfg->nodes[i];
        char what[48];
        snprintf(what, sizeof what, "nodes[%zu].address", i);
        int rc = resolve_one(n->host, n->port, false, what, &n->addr, &n->addr_len, err);
        if (rc)
            return rc;
        if (n->bind) {
            snprintf(what, sizeof what, "nodes[%zu].bind", i);
            if ((rc = resolve_one(n->bind_host, n->bind_port, true, what, &n->bind_addr,
                                  &n->bind_addr_len, err)))
                return rc;
        } else {
            n->bind_addr = n->addr;
            n->bind_addr_len = n->addr_len;
        }
        for (size_t j = 0; j < i; j++)
            if (cfg->nodes[j].addr_len == n->addr_len &&
                memcmp(&cfg->nodes[j].addr, &n->addr, n->addr_len) == 0)
                return trp_err_set(err, TRP_ECONFIG,
                                   "nodes[%zu].address: %s resolves to the same address as "
                                   "nodes[%zu].address (%s)",
                                   i, n->address, j, cfg->nodes[j].address);
    }
    return TRP_OK;
}

/* ---- the key file ------------------------------------------------------------ */

int trp_key_load(uint8_t key[TRP_KEY_LEN], const char *path, trp_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return trp_err_sys(err, TRP_EIO, errno, "key file %s", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return trp_err_sys(err, TRP_EIO, e, "key file %s", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return trp_err_set(err, TRP_ECONFIG, "key file %s: not a regular file", path);
    }
    /* Whoever can read the key can forge any node's datagrams. */
    if (st.st_mode & 077) {
        close(fd);
        return trp_err_set(err, TRP_ECONFIG,
                           "key file %s: accessible by group or others (mode %04o); run "
                           "chmod 600 %s",
                           path, (unsigned)(st.st_mode & 07777), path);
    }
    char buf[2 * TRP_KEY_LEN + 8];
    ssize_t n;
    size_t got = 0;
    while (got < sizeof buf && (n = read(fd, buf + got, sizeof buf - got)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            return trp_err_sys(err, TRP_EIO, e, "key file %s", path);
        }
        got += (size_t)n;
    }
    close(fd);
    size_t digits = got;
    if (digits > 0 && buf[digits - 1] == '\n')
        digits--;
    if (digits != 2 * TRP_KEY_LEN)
        return trp_err_set(err, TRP_ECONFIG,
                           "key file %s: expected %d hex digits and a newline, found %s%zu bytes",
                           path, 2 * TRP_KEY_LEN, got == sizeof buf ? "at least " : "", got);
    if (!hex_decode(key, TRP_KEY_LEN, buf, digits))
        return trp_err_set(err, TRP_ECONFIG, "key file %s: not hex digits", path);
    return TRP_OK;
}

/* ---- init ------------------------------------------------------------------ */

/* Write path atomically: a temporary file with `mode`, fsync, rename, fsync
 * the directory. */
static int write_atomic(const char *dir, const char *name, const char *data, size_t len,
                        mode_t mode, trp_err *err)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s", tmp);
    int rc = TRP_OK;
    if (fchmod(fd, mode) != 0) /* the umask may have narrowed or widened it */
        rc = trp_err_sys(err, TRP_EIO, errno, "%s: chmod", tmp);
    size_t off = 0;
    while (!rc && off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = trp_err_sys(err, TRP_EIO, n < 0 ? errno : EIO, "%s: write", tmp);
        else
            off += (size_t)n;
    }
    if (!rc && fsync(fd) != 0)
        rc = trp_err_sys(err, TRP_EIO, errno, "%s: fsync", tmp);
    if (close(fd) != 0 && !rc)
        rc = trp_err_sys(err, TRP_EIO, errno, "%s: close", tmp);
    if (!rc && rename(tmp, path) != 0)
        rc = trp_err_sys(err, TRP_EIO, errno, "rename %s to %s", tmp, path);
    if (rc) {
        unlink(tmp);
        return rc;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s", dir);
    if (fsync(dfd) != 0)
        rc = trp_err_sys(err, TRP_EIO, errno, "%s: fsync", dir);
    close(dfd);
    return rc;
}

static int make_dir(const char *path, trp_err *err)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) != 0)
            return trp_err_sys(err, TRP_EIO, errno, "%s", path);
        if (!S_ISDIR(st.st_mode))
            return trp_err_set(err, TRP_EINVAL, "%s: exists and is not a directory", path);
        return TRP_OK;
    }
    return trp_err_sys(err, TRP_EIO, errno, "mkdir %s", path);
}

/* Split "A,B,C" into at most max names; refuses empty, invalid or repeated. */
static int split_groups(const char *spec, char names[][TRP_NAME_MAX + 1], unsigned max,
                        unsigned *count, trp_err *err)
{
    *count = 0;
    const char *p = spec;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (*count == max)
            return trp_err_set(err, TRP_EINVAL,
                               "--groups: more groups than nodes (%u); every group needs a node",
                               max);
        if (n == 0 || n > TRP_NAME_MAX)
            return trp_err_set(err, TRP_EINVAL, "--groups: group %u: must be 1..%d characters",
                               *count + 1, TRP_NAME_MAX);
        memcpy(names[*count], p, n);
        names[*count][n] = '\0';
        if (!valid_name(names[*count]))
            return trp_err_set(err, TRP_EINVAL,
                               "--groups: '%s' must be characters of A-Z a-z 0-9 . _ -",
                               names[*count]);
        for (unsigned k = 0; k < *count; k++)
            if (strcasecmp(names[k], names[*count]) == 0)
                return trp_err_set(err, TRP_EINVAL, "--groups: '%s' named twice", names[*count]);
        ++*count;
        if (!comma)
            return TRP_OK;
        p = comma + 1;
    }
}

static cJSON *init_json(const trp_init_options *o, unsigned base_port, unsigned max_datagram,
                        char groups[][TRP_NAME_MAX + 1], unsigned ngroups,
                        const uint8_t cluster_id[TRP_CLUSTER_ID_LEN])
{
    char hex[2 * TRP_CLUSTER_ID_LEN + 1];
    hex_encode(hex, cluster_id, TRP_CLUSTER_ID_LEN);
    cJSON *root = cJSON_CreateObject(), *t = NULL, *nodes = NULL;
    if (!root)
        return NULL;
    bool ok = cJSON_AddStringToObject(root, "cluster", o->name ? o->name : "trp") &&
              cJSON_AddStringToObject(root, "cluster_id", hex) &&
              cJSON_AddStringToObject(root, "key_file", "cluster.key") &&
              cJSON_AddNumberToObject(root, "max_datagram", max_datagram) &&
              cJSON_AddNumberToObject(root, "max_entry", TRP_MAX_ENTRY_CONFIG_DEFAULT) &&
              cJSON_AddStringToObject(root, "start_seq", "0") &&
              (t = cJSON_AddObjectToObject(root, "timeouts")) &&
              cJSON_AddNumberToObject(t, "heartbeat_ms", TRP_HEARTBEAT_MS_DEFAULT) &&
              cJSON_AddNumberToObject(t, "election_timeout_ms", TRP_ELECTION_TIMEOUT_MS_DEFAULT) &&
              cJSON_AddNumberToObject(t, "election_timeout_max_ms",
                                      TRP_ELECTION_TIMEOUT_MS_DEFAULT +
                                          TRP_ELECTION_TIMEOUT_MS_DEFAULT / 2) &&
              (nodes = cJSON_AddArrayToObject(root, "nodes"));
    /* Groups in blocks: the first (nodes % groups) groups get one extra, so
     * "--nodes 6 --groups a,b" puts 1-3 in a and 4-6 in b. */
    unsigned per = ngroups ? o->nodes / ngroups : 0, extra = ngroups ? o->nodes % ngroups : 0;
    unsigned g = 0, left = ngroups ? per + (extra > 0) : 0;
    for (unsigned i = 1; ok && i <= o->nodes; i++) {
        cJSON *n = cJSON_CreateObject();
        char addr[32], dir[16];
        snprintf(addr, sizeof addr, "127.0.0.1:%u", base_port + i - 1);
        snprintf(dir, sizeof dir, "%u", i);
        ok = n && cJSON_AddItemToArray(nodes, n) && cJSON_AddNumberToObject(n, "id", i) &&
             cJSON_AddStringToObject(n, "address", addr);
        if (ok && ngroups) {
            if (left == 0) {
                g++;
                left = per + (g < extra);
            }
            ok = cJSON_AddStringToObject(n, "group", groups[g]) != NULL;
            left--;
        }
        ok = ok && cJSON_AddNumberToObject(n, "priority", 0) &&
             cJSON_AddStringToObject(n, "data_dir", dir);
    }
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static int init_check_options(const trp_init_options *o, unsigned *base_port,
                              unsigned *max_datagram, trp_err *err)
{
    if (!o->dir || !o->dir[0])
        return trp_err_set(err, TRP_EINVAL, "--dir: missing");
    if (o->nodes < 1 || o->nodes > TRP_CONFIG_NODES_MAX)
        return trp_err_set(err, TRP_EINVAL, "--nodes: %u out of range 1..%d", o->nodes,
                           TRP_CONFIG_NODES_MAX);
    *base_port = o->base_port ? o->base_port : TRP_INIT_BASE_PORT_DEFAULT;
    if (*base_port > 65535 || *base_port + o->nodes - 1 > 65535)
        return trp_err_set(err, TRP_EINVAL, "--base-port: %u + %u nodes runs past port 65535",
                           *base_port, o->nodes);
    *max_datagram = o->max_datagram ? o->max_datagram : TRP_MAX_DATAGRAM_LOOPBACK;
    if (*max_datagram < TRP_MAX_DATAGRAM_MIN || *max_datagram > TRP_MAX_DATAGRAM_MAX)
        return trp_err_set(err, TRP_EINVAL, "--max-datagram: %u out of range %u..%u", *max_datagram,
                           TRP_MAX_DATAGRAM_MIN, TRP_MAX_DATAGRAM_MAX);
    if (o->name && !valid_name(o->name))
        return trp_err_set(err, TRP_EINVAL,
                           "--name: '%s' must be 1..%d characters of A-Z a-z "
                           "0-9 . _ -",
                           o->name, TRP_NAME_MAX);
    return TRP_OK;
}

/* TRP_EINVAL if DIR already holds a cluster and --force was not given. */
static int init_refuse_existing(const trp_init_options *o, trp_err *err)
{
    static const char *const files[] = {"cluster.json", "cluster.key"};
    for (size_t i = 0; i < 2 && !o->force; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", o->dir, files[i]);
        if (lstat(path, &st) == 0)
            return trp_err_set(err, TRP_EINVAL,
                               "%s exists; refusing to overwrite a cluster (use --force to "
                               "replace it, with a new key)",
                               path);
    }
    return TRP_OK;
}

/* Write the key, then the config (a cluster.json is the sign of a finished
 * init), then the data directories. */
static int init_write(const trp_init_options *o, const char *text, const uint8_t *key, trp_err *err)
{
    char keyhex[2 * TRP_KEY_LEN + 2];
    hex_encode(keyhex, key, TRP_KEY_LEN);
    keyhex[2 * TRP_KEY_LEN] = '\n';
    keyhex[2 * TRP_KEY_LEN + 1] = '\0';
    size_t tlen = strlen(text);
    char *json = malloc(tlen + 2);
    if (!json)
        return trp_err_set(err, TRP_ENOMEM, "init: out of memory");
    memcpy(json, text, tlen);
    json[tlen] = '\n';
    json[tlen + 1] = '\0';
    int rc = write_atomic(o->dir, "cluster.key", keyhex, 2 * TRP_KEY_LEN + 1, 0600, err);
    if (!rc)
        rc = write_atomic(o->dir, "cluster.json", json, tlen + 1, 0644, err);
    OPENSSL_cleanse(keyhex, sizeof keyhex);
    free(json);
    for (unsigned i = 1; !rc && i <= o->nodes; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%u", o->dir, i);
        /* the marker says a node of a new cluster, not one that lost its
         * state: a node that finds its directory empty rejoins (trp-raft(7)) */
        static const char marker[] = TRP_NODE_MARKER_TEXT;
        rc = make_dir(path, err);
        if (!rc)
            rc = write_atomic(path, TRP_NODE_MARKER_FILE, marker, sizeof marker - 1, 0644, err);
    }
    return rc;
}

int trp_cluster_init(const trp_init_options *o, trp_err *err)
{
    unsigned base_port = 0, max_datagram = 0, ngroups = 0;
    int rc = init_check_options(o, &base_port, &max_datagram, err);
    if (rc)
        return rc;
    char(*groups)[TRP_NAME_MAX + 1] = calloc(o->nodes, sizeof *groups);
    if (!groups)
        return trp_err_set(err, TRP_ENOMEM, "init: out of memory");
    uint8_t key[TRP_KEY_LEN], cluster_id[TRP_CLUSTER_ID_LEN];
    char *text = NULL;
    if ((o->groups && (rc = split_groups(o->groups, groups, o->nodes, &ngroups, err))) ||
        (rc = make_dir(o->dir, err)) || (rc = init_refuse_existing(o, err)))
        goto out;
    if (RAND_bytes(key, sizeof key) != 1 || RAND_bytes(cluster_id, sizeof cluster_id) != 1) {
        rc = trp_err_set(err, TRP_EIO, "init: no randomness for the key (RAND_bytes failed)");
        goto out;
    }
    cJSON *root = init_json(o, base_port, max_datagram, groups, ngroups, cluster_id);
    text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) {
        rc = trp_err_set(err, TRP_ENOMEM, "init: out of memory");
        goto out;
    }
    /* Check what we are about to write with the same parser that runs it. */
    trp_config *check = NULL;
    if ((rc = trp_config_parse(&check, text, strlen(text), o->dir, err))) {
        trp_err_prefix(err, "init: generated config is invalid");
        goto out;
    }
    trp_config_free(check);
    rc = init_write(o, text, key, err);
out:
    OPENSSL_cleanse(key, sizeof key);
    free(text);
    free(groups);
    return rc;
}
