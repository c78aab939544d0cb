/* test_config.c: the cluster config parser accepts good configs with the
 * documented defaults, refuses bad ones with the JSON path and the reason,
 * resolves addresses, loads key files, and `init` output parses back. */
#include "../check.h"
#include "trp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

static trp_config *parse(const char *text, trp_err *err)
{
    trp_config *cfg = NULL;
    int rc = trp_config_parse(&cfg, text, strlen(text), "/etc/trp", err);
    if (rc) {
        CHECKF(cfg == NULL, "cfg set on error");
        CHECKF(rc == TRP_ECONFIG, "status %d for %s", rc, err->msg);
        return NULL;
    }
    return cfg;
}

/* The config must be refused with a message containing want. */
#define REFUSED(text, want)                                                                        \
    do {                                                                                           \
        trp_err e_ = {0};                                                                          \
        trp_config *c_ = parse(text, &e_);                                                         \
        CHECKF(c_ == NULL, "accepted: %s", text);                                                  \
        CHECKF(c_ != NULL || strstr(e_.msg, want) != NULL, "got \"%s\", want \"%s\"", e_.msg,      \
               want);                                                                              \
        trp_config_free(c_);                                                                       \
    } while (0)

#define N3                                                                                         \
    "[{\"id\":1,\"address\":\"127.0.0.1:7100\"},{\"id\":2,\"address\":\"127.0.0.1:7101\"},"        \
    "{\"id\":3,\"address\":\"127.0.0.1:7102\"}]"

static void minimal_config_gets_defaults(void)
{
    trp_err e;
    trp_config *c = parse("{\"cluster\":\"demo\",\"nodes\":" N3 "}", &e);
    REQUIRE(c);
    CHECK(strcmp(c->cluster, "demo") == 0);
    CHECK(c->nnodes == 3);
    CHECK(c->max_datagram == 1400);
    CHECK(c->max_entry == 1048576);
    CHECK(strcmp(c->start_seq, "0") == 0);
    CHECK(c->heartbeat_ms == 50);
    CHECK(c->election_timeout_ms == 300);
    CHECK(c->election_timeout_max_ms == 450);
    CHECK(c->spare_sync_ms == 5);
    CHECK(strcmp(c->key_file, "/etc/trp/cluster.key") == 0);
    CHECK(strcmp(c->nodes[1].data_dir, "/etc/trp/2") == 0);
    CHECK(c->nodes[2].port == 7102);
    CHECK(strcmp(c->nodes[2].host, "127.0.0.1") == 0);
    CHECK(!c->has_groups);
    CHECK(trp_config_node(c, 2) == &c->nodes[1]);
    CHECK(trp_config_node(c, 9) == NULL);
    /* the derived cluster id depends on the name */
    trp_config *d = parse("{\"cluster\":\"demo2\",\"nodes\":" N3 "}", &e);
    REQUIRE(d);
    CHECK(memcmp(c->cluster_id, d->cluster_id, TRP_CLUSTER_ID_LEN) != 0);
    trp_config_free(d);
    trp_config_free(c);
}

static void full_config_is_read(void)
{
    const char *text =
        "{\"cluster\":\"prod\",\"cluster_id\":\"00112233445566778899aabbccddeeff\",\n"
        " \"_comment\":\"ignored\",\"key_file\":\"/secret/k\",\"max_datagram\":65507,\n"
        " \"max_entry\":100,\"start_seq\":\"18446744073709551616\",\n"
        " \"timeouts\":{\"heartbeat_ms\":10,\"election_timeout_ms\":100,"
        "\"election_timeout_max_ms\":150},\n"
        " \"nodes\":[{\"id\":7,\"address\":\"[::1]:9000\",\"bind\":\"0.0.0.0:9001\","
        "\"group\":\"a\",\"priority\":5,\"data_dir\":\"d7\"},\n"
        "  {\"id\":9007199254740991,\"address\":\"node-b.example:9000\",\"group\":\"b\","
        "\"data_dir\":\"/var/lib/trp\"},\n"
        "  {\"id\":8,\"address\":\"10.0.0.3:9000\",\"group\":\"a\"}]}";
    trp_err e;
    trp_config *c = parse(text, &e);
    REQUIRE(c);
    CHECK(c->cluster_id[0] == 0x00 && c->cluster_id[15] == 0xff);
    CHECK(strcmp(c->key_file, "/secret/k") == 0);
    CHECK(c->max_datagram == 65507 && c->max_entry == 100);
    CHECK(strcmp(c->start_seq, "18446744073709551616") == 0);
    CHECK(c->heartbeat_ms == 10 && c->election_timeout_ms == 100 &&
          c->election_timeout_max_ms == 150);
    CHECK(c->spare_sync_ms == 5);
    CHECK(strcmp(c->nodes[0].host, "::1") == 0 && c->nodes[0].port == 9000);
    CHECK(strcmp(c->nodes[0].bind_host, "0.0.0.0") == 0 && c->nodes[0].bind_port == 9001);
    CHECK(c->nodes[0].priority == 5);
    CHECK(strcmp(c->nodes[0].data_dir, "/etc/trp/d7") == 0);
    CHECK(strcmp(c->nodes[1].data_dir, "/var/lib/trp") == 0);
    CHECK(c->nodes[1].id == 9007199254740991ull);
    CHECK(strcmp(c->nodes[1].host, "node-b.example") == 0);
    CHECK(c->has_groups && c->ngroups == 2);
    CHECK(strcmp(c->groups[0], "a") == 0 && strcmp(c->groups[1], "b") == 0);
    trp_config_free(c);
}

static void bad_json_is_refused(void)
{
    REFUSED("", "JSON syntax error at line 1");
    REFUSED("{\"cluster\":\"x\",\n\"nodes\": [,]}", "JSON syntax error at line 2");
    REFUSED("[]", "must be a JSON object");
    REFUSED("{\"cluster\":\"x\",\"nodes\":" N3 "} {}", "unexpected text after the JSON object");
}

static void top_level_fields_are_checked(void)
{
    REFUSED("{\"nodes\":" N3 "}", "cluster: missing");
    REFUSED("{\"cluster\":\"a b\",\"nodes\":" N3 "}", "cluster: 'a b' must be");
    REFUSED("{\"cluster\":7,\"nodes\":" N3 "}", "cluster: must be a string");
    REFUSED("{\"cluster\":\"x\"}", "nodes: missing");
    REFUSED("{\"cluster\":\"x\",\"nodes\":{}}", "nodes: must be an array");
    REFUSED("{\"cluster\":\"x\",\"nodes\":[]}", "nodes: 0 nodes, must be 1..256");
    REFUSED("{\"cluster\":\"x\",\"heartbeat_ms\":5,\"nodes\":" N3 "}",
            "heartbeat_ms: unknown field");
    REFUSED("{\"cluster\":\"x\",\"cluster\":\"y\",\"nodes\":" N3 "}", "cluster: duplicate field");
    REFUSED("{\"cluster\":\"x\",\"cluster_id\":\"abc\",\"nodes\":" N3 "}",
            "cluster_id: must be 32 hex digits");
    REFUSED("{\"cluster\":\"x\",\"key_file\":\"\",\"nodes\":" N3 "}",
            "key_file: must not be empty");
    REFUSED("{\"cluster\":\"x\",\"max_datagram\":255,\"nodes\":" N3 "}",
            "max_datagram: 255 out of range 256..65507");
    REFUSED("{\"cluster\":\"x\",\"max_datagram\":65508,\"nodes\":" N3 "}",
            "max_datagram: 65508 out of range 256..65507");
    REFUSED("{\"cluster\":\"x\",\"max_datagram\":1400.5,\"nodes\":" N3 "}",
            "max_datagram: 1400.5 is not an integer");
    REFUSED("{\"cluster\":\"x\",\"max_datagram\":\"1400\",\"nodes\":" N3 "}",
            "max_datagram: must be an integer");
    REFUSED("{\"cluster\":\"x\",\"max_entry\":0,\"nodes\":" N3 "}", "max_entry: 0 out of range");
    REFUSED("{\"cluster\":\"x\",\"start_seq\":5,\"nodes\":" N3 "}",
            "start_seq: must be a decimal string");
    REFUSED("{\"cluster\":\"x\",\"start_seq\":\"-1\",\"nodes\":" N3 "}",
            "start_seq: '-1' is not a decimal number");
    REFUSED("{\"cluster\":\"x\",\"start_seq\":\"007\",\"nodes\":" N3 "}",
            "start_seq: '007' is not a decimal number without leading zeros");
}

static void timeouts_are_checked(void)
{
    REFUSED("{\"cluster\":\"x\",\"timeouts\":5,\"nodes\":" N3 "}", "timeouts: must be an object");
    REFUSED("{\"cluster\":\"x\",\"timeouts\":{\"hb\":5},\"nodes\":" N3 "}",
            "timeouts.hb: unknown field");
    REFUSED("{\"cluster\":\"x\",\"timeouts\":{\"heartbeat_ms\":150},\"nodes\":" N3 "}",
            "timeouts.heartbeat_ms: 150 must be less than half of timeouts.election_timeout_ms "
            "(300)");
    REFUSED("{\"cluster\":\"x\",\"timeouts\":{\"heartbeat_ms\":0},\"nodes\":" N3 "}",
            "timeouts.heartbeat_ms: 0 out of range 1..299999");
    /* the ranges trp.conf(5) states */
    REFUSED("{\"cluster\":\"x\",\"timeouts\":{\"heartbeat_ms\":300000},\"nodes\":" N3 "}",
            "timeouts.heartbeat_ms: 300000 out of range 1..299999");
    REFUSED("{\"cluster\":\"x\",\"timeouts\":{\"election_timeout_ms\":2},\"nodes\":" N3 "}",
            "timeouts.election_timeout_ms: 2 out of range 3..600000");
    REFUSED("{\"cluster\":\"x\",\"timeouts\":{\"election_timeout_max_ms\":2},\"nodes\":" N3
            "}",
            "timeouts.election_timeout_max_ms: 2 out of range 3..600000");
    REFUSED("{\"cluster\":\"x\",\"timeouts\":{\"election_timeout_ms\":400,"
            "\"election_timeout_max_ms\":399},\"nodes\":" N3 "}",
            "timeouts.election_timeout_max_ms: 399 is less than timeouts.election_timeout_ms");
    /* a spare must answer more often than heartbeats come */
    REFUSED("{\"cluster\":\"x\",\"timeouts\":{\"spare_sync_ms\":50},\"nodes\":" N3 "}",
            "timeouts.spare_sync_ms: 50 must be less than timeouts.heartbeat_ms (50)");
    REFUSED("{\"cluster\":\"x\",\"timeouts\":{\"spare_sync_ms\":-1},\"nodes\":" N3 "}",
            "timeouts.spare_sync_ms");
    trp_err e;
    trp_config *c = parse("{\"cluster\":\"x\",\"timeouts\":{\"spare_sync_ms\":0},\"nodes\":" N3 "}", &e);
    CHECK(c && c->spare_sync_ms == 0); /* 0: no spares */
    trp_config_free(c);
    c = parse("{\"cluster\":\"x\",\"timeouts\":{\"heartbeat_ms\":3,\"election_timeout_ms\":10},"
              "\"nodes\":" N3 "}",
              &e);
    CHECK(c && c->spare_sync_ms == 2); /* the default stays below a short heartbeat */
    trp_config_free(c);
}

static void nodes_are_checked(void)
{
#define C(nodes) "{\"cluster\":\"x\",\"nodes\":[" nodes "]}"
    REFUSED(C("5"), "nodes[0]: must be an object");
    REFUSED(C("{\"address\":\"127.0.0.1:1\"}"), "nodes[0].id: missing");
    REFUSED(C("{\"id\":0,\"address\":\"127.0.0.1:1\"}"), "nodes[0].id: 0 out of range");
    REFUSED(C("{\"id\":-3,\"address\":\"127.0.0.1:1\"}"), "nodes[0].id: -3 out of range");
    REFUSED(C("{\"id\":1e300,\"address\":\"127.0.0.1:1\"}"), "nodes[0].id: 1e+300 out of range");
    REFUSED(C("{\"id\":1}"), "nodes[0].address: missing");
    REFUSED(C("{\"id\":1,\"address\":\"127.0.0.1:1\",\"adress\":\"x\"}"),
            "nodes[0].adress: unknown field");
    REFUSED(C("{\"id\":1,\"address\":\"127.0.0.1:1\"},{\"id\":2,\"address\":\"127.0.0.1:2\"},"
              "{\"id\":3,\"address\":\"127.0.0.1:70000\"}"),
            "nodes[2].address: port 70000 out of range 1..65535");
    REFUSED(C("{\"id\":1,\"address\":\"127.0.0.1:0\"}"),
            "nodes[0].address: port 0 out of range 1..65535");
    REFUSED(C("{\"id\":1,\"address\":\"127.0.0.1\"}"), "nodes[0].address: expected host:port");
    REFUSED(C("{\"id\":1,\"address\":\"127.0.0.1:\"}"), "nodes[0].address: missing port");
    REFUSED(C("{\"id\":1,\"address\":\":7100\"}"), "nodes[0].address: missing host");
    REFUSED(C("{\"id\":1,\"address\":\"127.0.0.1:7x\"}"), "port '7x' is not a number");
    REFUSED(C("{\"id\":1,\"address\":\"::1:7100\"}"), "IPv6 address must be in brackets");
    REFUSED(C("{\"id\":1,\"address\":\"[::g]:7100\"}"), "'::g' is not an IPv6 address");
    REFUSED(C("{\"id\":1,\"address\":\"[::1]7100\"}"), "expected ':port' after ']'");
    REFUSED(C("{\"id\":1,\"address\":\"1.2.3.999:7100\"}"),
            "'1.2.3.999' is neither an IPv4 address nor a host name");
    REFUSED(C("{\"id\":1,\"address\":\"bad_host:7100\"}"), "neither an IPv4 address nor a host");
    REFUSED(C("{\"id\":1,\"address\":\"127.0.0.1:1\",\"bind\":\"x\"}"),
            "nodes[0].bind: expected host:port");
    REFUSED(C("{\"id\":1,\"address\":\"127.0.0.1:1\"},{\"id\":1,\"address\":\"127.0.0.1:2\"}"),
            "nodes[1].id: 1 duplicates nodes[0]");
    REFUSED(C("{\"id\":1,\"address\":\"127.0.0.1:1\"},{\"id\":2,\"address\":\"127.0.0.1:1\"}"),
            "nodes[1].address: 127.0.0.1:1 duplicates nodes[0].address");
    REFUSED(C("{\"id\":1,\"address\":\"[::1]:1\"},{\"id\":2,\"address\":\"[0:0::1]:1\"}"),
            "nodes[1].address: [0:0::1]:1 duplicates nodes[0].address");
    REFUSED(C("{\"id\":1,\"address\":\"Node-A:1\"},{\"id\":2,\"address\":\"node-a:1\"}"),
            "duplicates nodes[0].address");
    REFUSED(C("{\"id\":1,\"address\":\"127.0.0.1:1\",\"priority\":-1}"),
            "nodes[0].priority: -1 out of range 0..1000000");
    REFUSED(C("{\"id\":1,\"address\":\"127.0.0.1:1\",\"data_dir\":\"\"}"),
            "nodes[0].data_dir: must not be empty");
    REFUSED(C("{\"id\":1,\"address\":\"127.0.0.1:1\",\"group\":\"\"}"),
            "nodes[0].group: '' must be");
#undef C
}

static void groups_are_all_or_none(void)
{
#define C(nodes) "{\"cluster\":\"x\",\"nodes\":[" nodes "]}"
    REFUSED(C("{\"id\":1,\"address\":\"127.0.0.1:1\",\"group\":\"a\"},"
              "{\"id\":2,\"address\":\"127.0.0.1:2\"}"),
            "nodes[1].group: missing; when one node names a group every node must (nodes[0] "
            "is in 'a')");
    REFUSED(C("{\"id\":1,\"address\":\"127.0.0.1:1\"},"
              "{\"id\":2,\"address\":\"127.0.0.1:2\",\"group\":\"a\"}"),
            "nodes[0].group: missing");
    REFUSED(C("{\"id\":1,\"address\":\"127.0.0.1:1\",\"group\":\"cloudA\"},"
              "{\"id\":2,\"address\":\"127.0.0.1:2\",\"group\":\"clouda\"}"),
            "nodes[1].group: 'clouda' differs from group 'cloudA' only in case");
    trp_err e;
    trp_config *c = parse(C("{\"id\":1,\"address\":\"127.0.0.1:1\",\"group\":\"solo\"}"), &e);
    CHECKF(c && c->ngroups == 1, "%s", e.msg);
    trp_config_free(c);
#undef C
}

static void addresses_resolve(void)
{
    trp_err e;
    trp_config *c = parse("{\"cluster\":\"x\",\"nodes\":[{\"id\":1,\"address\":\"127.0.0.1:7100\","
                          "\"bind\":\"0.0.0.0:7200\"},{\"id\":2,\"address\":\"[::1]:7101\"},"
                          "{\"id\":3,\"address\":\"localhost:7102\"}]}",
                          &e);
    REQUIRE(c);
    int rc = trp_config_resolve(c, &e);
    CHECKF(rc == TRP_OK, "%s", e.msg);
    const struct sockaddr_in *a = (const struct sockaddr_in *)&c->nodes[0].addr;
    CHECK(a->sin_family == AF_INET && ntohs(a->sin_port) == 7100 &&
          a->sin_addr.s_addr == htonl(INADDR_LOOPBACK));
    const struct sockaddr_in *b = (const struct sockaddr_in *)&c->nodes[0].bind_addr;
    CHECK(b->sin_family == AF_INET && ntohs(b->sin_port) == 7200 && b->sin_addr.s_addr == 0);
    CHECK(c->nodes[1].addr.ss_family == AF_INET6);
    CHECK(c->nodes[2].addr_len > 0);
    CHECK(c->nodes[2].bind_addr_len == c->nodes[2].addr_len);
    trp_config_free(c);

    /* Different text, same address after resolution: refused. */
    c = parse("{\"cluster\":\"x\",\"nodes\":[{\"id\":1,\"address\":\"127.0.0.1:7100\"},"
              "{\"id\":2,\"address\":\"localhost:7100\"}]}",
              &e);
    REQUIRE(c);
    rc = trp_config_resolve(c, &e);
    /* localhost may resolve to ::1 first on some systems; then it is distinct */
    if (c->nodes[1].addr.ss_family == AF_INET)
        CHECKF(rc == TRP_ECONFIG && strstr(e.msg, "nodes[1].address: localhost:7100 resolves to "
                                                  "the same address as nodes[0].address"),
               "%s", e.msg);
    trp_config_free(c);

    /* (A name that does not resolve is not tested: that would ask DNS,
     * which a test must not depend on.) */
}

static char tmpdir[64];

static void write_file(const char *name, const char *data, mode_t mode)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(write(fd, data, strlen(data)) == (ssize_t)strlen(data));
    fchmod(fd, mode);
    close(fd);
}

static int load_key(const char *name, uint8_t key[TRP_KEY_LEN], trp_err *e)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return trp_key_load(key, path, e);
}

static void key_files(void)
{
    const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";
    char buf[200];
    uint8_t key[TRP_KEY_LEN];
    trp_err e;
    snprintf(buf, sizeof buf, "%s\n", hex);
    write_file("k1", buf, 0600);
    CHECKF(load_key("k1", key, &e) == TRP_OK, "%s", e.msg);
    CHECK(key[0] == 0 && key[31] == 0x1f && key[26] == 0x1a);
    write_file("k2", hex, 0400); /* no newline: fine */
    CHECKF(load_key("k2", key, &e) == TRP_OK, "%s", e.msg);
    write_file("k3", buf, 0644);
    CHECK(load_key("k3", key, &e) == TRP_ECONFIG);
    CHECKF(strstr(e.msg, "accessible by group or others (mode 0644); run chmod 600"), "%s", e.msg);
    write_file("k4", "abcd\n", 0600);
    CHECK(load_key("k4", key, &e) == TRP_ECONFIG);
    CHECKF(strstr(e.msg, "expected 64 hex digits and a newline, found 5 bytes"), "%s", e.msg);
    snprintf(buf, sizeof buf, "%s00\n", hex);
    write_file("k5", buf, 0600);
    CHECK(load_key("k5", key, &e) == TRP_ECONFIG);
    snprintf(buf, sizeof buf, "%.63sz\n", hex);
    write_file("k6", buf, 0600);
    CHECK(load_key("k6", key, &e) == TRP_ECONFIG);
    CHECKF(strstr(e.msg, "not hex digits"), "%s", e.msg);
    CHECK(load_key("missing", key, &e) == TRP_ENOENT);
    CHECKF(strstr(e.msg, "missing"), "%s", e.msg);
}

static void init_output_parses_back(void)
{
    char dir[128];
    snprintf(dir, sizeof dir, "%s/cluster", tmpdir);
    trp_init_options o = {.dir = dir, .nodes = 5, .base_port = 7300, .groups = "x,y"};
    trp_err e;
    REQUIRE(trp_cluster_init(&o, &e) == TRP_OK);
    char path[256];
    snprintf(path, sizeof path, "%s/cluster.json", dir);
    trp_config *c = NULL;
    int rc = trp_config_load(&c, path, &e);
    CHECKF(rc == TRP_OK, "%s", e.msg);
    REQUIRE(c);
    CHECK(c->nnodes == 5 && c->max_datagram == 65000 && c->ngroups == 2);
    /* blocks: 5 nodes over 2 groups -> 3 + 2 */
    CHECK(strcmp(c->nodes[2].group, "x") == 0 && strcmp(c->nodes[3].group, "y") == 0);
    CHECK(c->nodes[4].port == 7304 && c->nodes[4].id == 5);
    snprintf(path, sizeof path, "%s/5", dir);
    CHECK(strcmp(c->nodes[4].data_dir, path) == 0);
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    uint8_t key[TRP_KEY_LEN], zero[TRP_KEY_LEN] = {0};
    CHECKF(trp_key_load(key, c->key_file, &e) == TRP_OK, "%s", e.msg);
    CHECK(memcmp(key, zero, sizeof key) != 0);
    CHECK(trp_config_resolve(c, &e) == TRP_OK);
    trp_config_free(c);

    /* refuses to overwrite; --force replaces with a new key */
    CHECK(trp_cluster_init(&o, &e) == TRP_EINVAL);
    CHECKF(strstr(e.msg, "exists; refusing to overwrite"), "%s", e.msg);
    o.force = true;
    o.groups = NULL;
    CHECK(trp_cluster_init(&o, &e) == TRP_OK);
    uint8_t key2[TRP_KEY_LEN];
    snprintf(path, sizeof path, "%s/cluster.key", dir);
    CHECK(trp_key_load(key2, path, &e) == TRP_OK);
    CHECK(memcmp(key, key2, sizeof key) != 0);

    trp_init_options bad = {.dir = dir, .nodes = 2, .groups = "a,b,c", .force = true};
    CHECK(trp_cluster_init(&bad, &e) == TRP_EINVAL);
    CHECKF(strstr(e.msg, "more groups than nodes"), "%s", e.msg);
    bad.groups = "a,,b";
    CHECK(trp_cluster_init(&bad, &e) == TRP_EINVAL);
    bad.groups = "a,A";
    CHECK(trp_cluster_init(&bad, &e) == TRP_EINVAL && strstr(e.msg, "named twice"));
    bad.groups = NULL;
    bad.base_port = 65535;
    CHECK(trp_cluster_init(&bad, &e) == TRP_EINVAL && strstr(e.msg, "past port 65535"));
}

static void load_reports_the_file(void)
{
    write_file("bad.json", "{\"cluster\":\"x\",\"nodes\":[{\"id\":1}]}", 0644);
    char path[256];
    snprintf(path, sizeof path, "%s/bad.json", tmpdir);
    trp_config *c;
    trp_err e;
    CHECK(trp_config_load(&c, path, &e) == TRP_ECONFIG);
    CHECKF(strstr(e.msg, "bad.json: nodes[0].address: missing"), "%s", e.msg);
    snprintf(path, sizeof path, "%s/none.json", tmpdir);
    CHECK(trp_config_load(&c, path, &e) == TRP_ENOENT);
}

/* The example in man/trp.conf.5 is a valid config (when run from the
 * source tree, as tests/run.sh does). */
static void man_page_example_parses(void)
{
    FILE *f = fopen("man/trp.conf.5", "r");
    if (!f)
        f = fopen("../man/trp.conf.5", "r");
    REQUIRE(f);
    static char page[65536];
    size_t n = fread(page, 1, sizeof page - 1, f);
    fclose(f);
    page[n] = '\0';
    char *ex = strstr(page, ".Sh EXAMPLES");
    REQUIRE(ex);
    char *start = strstr(ex, "\n{"), *end = strstr(ex, "\n.Ed");
    REQUIRE(start && end && start < end);
    trp_err e;
    trp_config *c = NULL;
    int rc = trp_config_parse(&c, start + 1, (size_t)(end - start), "/etc/trp", &e);
    CHECKF(rc == TRP_OK, "%s", e.msg);
    CHECK(c && c->nnodes == 3 && c->ngroups == 2 && c->max_datagram == 1400);
    trp_config_free(c);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/trp-test-config-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    RUN(minimal_config_gets_defaults);
    RUN(full_config_is_read);
    RUN(bad_json_is_refused);
    RUN(top_level_fields_are_checked);
    RUN(timeouts_are_checked);
    RUN(nodes_are_checked);
    RUN(groups_are_all_or_none);
    RUN(addresses_resolve);
    RUN(key_files);
    RUN(init_output_parses_back);
    RUN(load_reports_the_file);
    RUN(man_page_example_parses);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        return 1;
    return check_done();
}
