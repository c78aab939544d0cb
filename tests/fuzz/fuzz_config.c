/*
 * fuzz_config.c: libFuzzer target for the cluster config parser
 * (trp_config_parse). Pure: no name resolution, no files.
 *
 * The one idea: any text either parses into a config whose invariants hold
 * (1..256 nodes with distinct ids >= 1, sane timeouts, datagram size in
 * range) or is refused with TRP_ECONFIG and a message; nothing else.
 */
#include "trp.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    trp_config *c = NULL;
    trp_err e;
    int rc = trp_config_parse(&c, (const char *)data, size, "/fuzz", &e);
    if (rc != TRP_OK) {
        if (c || (rc != TRP_ECONFIG && rc != TRP_ENOMEM) || !e.msg[0])
            abort();
        return 0;
    }
    if (c->nnodes < 1 || c->nnodes > TRP_CONFIG_NODES_MAX)
        abort();
    if (c->max_datagram < TRP_MAX_DATAGRAM_MIN || c->max_datagram > TRP_MAX_DATAGRAM_MAX)
        abort();
    if (2 * c->heartbeat_ms >= c->election_timeout_ms ||
        c->election_timeout_max_ms < c->election_timeout_ms)
        abort();
    for (size_t i = 0; i < c->nnodes; i++) {
        if (c->nodes[i].id < 1 || !c->nodes[i].data_dir || !c->nodes[i].host ||
            c->nodes[i].port == 0)
            abort();
        if (c->has_groups != (c->nodes[i].group != NULL))
            abort();
        for (size_t j = 0; j < i; j++)
            if (c->nodes[i].id == c->nodes[j].id)
                abort();
    }
    trp_config_free(c);
    return 0;
}
