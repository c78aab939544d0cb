/*
 * raft_quorum.c: who counts as a quorum, and which configurations are safe
 * (Raft §5.2 "majority"; generalised to groups).
 *
 * The one idea: a quorum is a set of nodes holding a strict majority of
 * EVERY group (without groups: of all nodes). Two such sets always share a
 * node in each group, which is all that election safety and commit safety
 * need; the same predicate serves elections, commit, check-quorum and
 * read confirmation. With n nodes and no groups: n=1 needs 1, n=2 needs 2,
 * n=3 needs 2, n=4 needs 3.
 */
#include "raft.h"

#include <stdlib.h>

static int group_index(const trp_raft_config *cfg, const char *name)
{
    for (size_t g = 0; g < cfg->n_groups; g++)
        if (cfg->groups[g] && name && strcmp(cfg->groups[g], name) == 0)
            return (int)g;
    return -1;
}

int trp_raft_config_check(const trp_raft_config *cfg_in, trp_err *err)
{
    trp_raft_config c = *cfg_in;
    trp_raft_config_defaults(&c);
    if (c.n_nodes == 0 || !c.nodes)
        return trp_err_set(err, TRP_ECONFIG,
                           "cluster config: no nodes listed; list every node, "
                           "this one included");
    if (c.n_nodes > TRP_RAFT_MAX_NODES)
        return trp_err_set(err, TRP_ECONFIG, "cluster config: %zu nodes, at most %d are supported",
                           c.n_nodes, TRP_RAFT_MAX_NODES);
    bool self_found = false;
    for (size_t i = 0; i < c.n_nodes; i++) {
        if (c.nodes[i].id == 0)
            return trp_err_set(err, TRP_ECONFIG,
                               "cluster config: node #%zu has id 0; ids start at 1", i + 1);
        for (size_t j = 0; j < i; j++)
            if (c.nodes[j].id == c.nodes[i].id)
                return trp_err_set(err, TRP_ECONFIG, "cluster config: node id %llu is listed twice",
                                   (unsigned long long)c.nodes[i].id);
        if (c.nodes[i].id == c.self)
            self_found = true;
    }
    if (!self_found)
        return trp_err_set(err, TRP_ECONFIG,
                           "cluster config: this node's id %llu is not in the node list",
                           (unsigned long long)c.self);
    for (size_t g = 0; g < c.n_groups; g++) {
        if (!c.groups[g] || !c.groups[g][0])
            return trp_err_set(err, TRP_ECONFIG, "cluster config: group #%zu has no name", g + 1);
        for (size_t h = 0; h < g; h++)
            if (strcmp(c.groups[g], c.groups[h]) == 0)
                return trp_err_set(err, TRP_ECONFIG,
                                   "cluster config: group \"%s\" is declared twice", c.groups[g]);
        size_t members = 0;
        for (size_t i = 0; i < c.n_nodes; i++)
            if (c.nodes[i].group && strcmp(c.nodes[i].group, c.groups[g]) == 0)
                members++;
        if (!members)
            return trp_err_set(
                err, TRP_ECONFIG,
                "cluster config: group \"%s\" has no nodes; a quorum needs a majority "
                "of every group, so an empty group could never be satisfied",
                c.groups[g]);
    }
    for (size_t i = 0; i < c.n_nodes; i++) {
        const char *g = c.nodes[i].group;
        if (g && group_index(&c, g) < 0)
            return trp_err_set(
                err, TRP_ECONFIG,
                "cluster config: node %llu names group \"%s\", which is not declared",
                (unsigned long long)c.nodes[i].id, g);
        if (!g && c.n_groups)
            return trp_err_set(err, TRP_ECONFIG,
                               "cluster config: node %llu has no group, but groups are declared; "
                               "put every node in exactly one group",
                               (unsigned long long)c.nodes[i].id);
    }
    if (c.heartbeat_ms * 2 >= c.election_timeout_ms)
        return trp_err_set(
            err, TRP_ECONFIG,
            "cluster config: heartbeat %u ms must be under half the election timeout "
            "(%u ms), or followers time out between heartbeats",
            c.heartbeat_ms, c.election_timeout_ms);
    if (c.election_timeout_max_ms < c.election_timeout_ms)
        return trp_err_set(
            err, TRP_ECONFIG,
            "cluster config: election timeout maximum %u ms is below its minimum %u ms",
            c.election_timeout_max_ms, c.election_timeout_ms);
    if (c.max_inflight_msgs > 4096)
        return trp_err_set(err, TRP_ECONFIG, "cluster config: max_inflight_msgs %u is over 4096",
                           c.max_inflight_msgs);
    return 0;
}

/* The predicate itself, over node indexes of a config. */
static bool quorum_nodes(const trp_raft_node *nodes, size_t n, const char *const *groups,
                         size_t n_groups, const bool *members)
{
    if (n_groups == 0) {
        size_t count = 0;
        for (size_t i = 0; i < n; i++)
            count += members[i] ? 1 : 0;
        return count * 2 > n;
    }
    for (size_t g = 0; g < n_groups; g++) {
        size_t size = 0, count = 0;
        for (size_t i = 0; i < n; i++) {
            if (!nodes[i].group || strcmp(nodes[i].group, groups[g]) != 0)
                continue;
            size++;
            count += members[i] ? 1 : 0;
        }
        if (count * 2 <= size)
            return false;
    }
    return true;
}

bool trp_raft_config_quorum(const trp_raft_config *cfg, const bool *members)
{
    return quorum_nodes(cfg->nodes, cfg->n_nodes, cfg->groups, cfg->n_groups, members);
}

bool quorum_of(const trp_raft *r, const bool *members)
{
    if (r->cfg.n_groups == 0) {
        size_t count = 0;
        for (size_t i = 0; i < r->n; i++)
            count += members[i] ? 1 : 0;
        return count * 2 > r->n;
    }
    size_t count[TRP_RAFT_MAX_NODES] = {0};
    for (size_t i = 0; i < r->n; i++)
        if (members[i])
            count[r->peers[i].group]++;
    for (size_t g = 0; g < r->cfg.n_groups; g++)
        if (count[g] * 2 <= (size_t)r->group_size[g])
            return false;
    return true;
}

/* May this node vote while it rejoins after losing its state? Only if any
 * two quorums that include it also share another node: that node then
 * holds every committed entry a candidate could lack, and refuses it (and
 * two leaders in one term would need two votes from a node besides this
 * one, though it forgot its own). Two disjoint majorities of a group never
 * exist, so any second group, or an even-sized one holding this node,
 * gives such a node; only a single group of odd size does not. */
bool quorum_rejoin_may_vote(const trp_raft *r)
{
    if (r->cfg.n_groups >= 2)
        return true;
    return r->n % 2 == 0;
}

/* Votes are a set of voter ids (one flag per node), so a duplicated
 * response can never be counted twice. */
bool quorum_granted(const trp_raft *r)
{
    bool m[TRP_RAFT_MAX_NODES];
    for (size_t i = 0; i < r->n; i++)
        m[i] = r->peers[i].granted;
    return quorum_of(r, m);
}

/* Check-quorum (leader expiration): heard from a quorum since since_ms. */
bool quorum_heard_since(const trp_raft *r, uint64_t since_ms)
{
    bool m[TRP_RAFT_MAX_NODES];
    for (size_t i = 0; i < r->n; i++)
        m[i] = i == r->self || r->peers[i].last_heard_ms >= since_ms;
    return quorum_of(r, m);
}

/* ReadIndex: a quorum echoed a heartbeat context >= ctx in this term. */
bool quorum_read_confirmed(const trp_raft *r, uint64_t ctx)
{
    bool m[TRP_RAFT_MAX_NODES];
    for (size_t i = 0; i < r->n; i++)
        m[i] = i == r->self || r->peers[i].read_ctx >= ctx;
    return quorum_of(r, m);
}

/* The largest next N such that a quorum has every entry below N durable
 * (Raft §5.3 matchIndex; the leader's own match is its durable next). */
void quorum_commit_candidate(const trp_raft *r, mpz_t out)
{
    bool m[TRP_RAFT_MAX_NODES];
    mpz_set(out, r->first);
    for (size_t c = 0; c < r->n; c++) {
        const mpz_t *v = &r->peers[c].match;
        if (mpz_cmp(*v, out) <= 0)
            continue;
        for (size_t i = 0; i < r->n; i++)
            m[i] = mpz_cmp(r->peers[i].match, *v) >= 0;
        if (quorum_of(r, m))
            mpz_set(out, *v);
    }
}
