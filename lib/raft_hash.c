/*
 * raft_hash.c: the chain hash the Raft core's callers used before the log
 * store was merged, now the store's own trp_entry_hash (layout in
 * trp-log.5), so tnode, the simulator and trp-node all build the one chain
 * that trp-verify checks.
 *
 * The one idea: the core never hashes by itself; it calls the hash_entry
 * function of its trp_raft_env. This name stays for the callers that still
 * use it (tests, the simulator); new code passes trp_entry_hash directly.
 */
#include "trp_log.h"
#include "trp_raft.h"

void trp_raft_hash_interim(uint8_t out[TRP_RAFT_HASH_LEN], const mpz_t seq, uint64_t term, int type,
                           const uint8_t prev[TRP_RAFT_HASH_LEN], const void *payload, size_t len)
{
    trp_entry_hash(out, seq, term, type, prev, payload, len);
}
