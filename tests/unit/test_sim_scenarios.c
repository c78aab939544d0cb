/*
 * test_sim_scenarios.c: scripted failure scenarios on the simulator, each
 * one PASS/FAIL line.
 *
 * The one idea: each scenario sets up a classic failure by hand (figure 8,
 * leader crash mid-replication, minority leader, disk stall, flapping,
 * chaos, crash at every persistence point, pause, whole-cluster restart,
 * groups, the original's quorum bugs), asserts what must (not) happen, and
 * relies on the simulator checking every invariant after every step. Each
 * ends by stopping faults and requiring a new acknowledged append within
 * SIM_LIVENESS_MS.
 */
#include "../check.h"
#include "../sim/sim.c"

static sim *mk(int n, int n_groups, uint64_t seed)
{
    sim_cfg c = {0};
    c.n = n;
    c.n_groups = n_groups;
    for (int i = 0; i < n; i++)
        c.group_of[i] = n_groups ? i * n_groups / n : 0;
    c.election_ms = 300;
    c.heartbeat_ms = 60;
    c.max_inflight = 4;
    c.base_kind = (int)(seed % 3);
    c.delay_min = 1;
    c.delay_max = 8;
    c.disk_ms_max = 3;
    c.n_clients = 3;
    c.think_ms_max = 200;
    c.faults = false;
    sim *s = calloc(1, sizeof *s);
    sim_init(s, seed, &c, getenv("SIM_TRACE") ? 1 : 0);
    return s;
}

static void run(sim *s, uint64_t ms, bool workload)
{
    for (uint64_t k = 0; k < ms && !s->failed; k++)
        sim_step(s, workload);
}

static int leader(sim *s)
{
    int best = -1;
    for (int i = 0; i < s->cfg.n; i++) {
        sim_node *nd = &s->node[i];
        if (!nd->up || s->now < nd->paused_until || trp_raft_role(nd->r) != TRP_RAFT_LEADER)
            continue;
        if (best < 0 || trp_raft_term(nd->r) > trp_raft_term(s->node[best].r))
            best = i;
    }
    return best;
}

static int wait_leader(sim *s, uint64_t ms, bool workload)
{
    for (uint64_t k = 0; k < ms && !s->failed; k++) {
        int l = leader(s);
        if (l >= 0)
            return l;
        sim_step(s, workload);
    }
    return leader(s);
}

static uint64_t direct_req = 0;
static void propose_at(sim *s, int i, const char *text)
{
    trp_raft_propose(s->node[i].r, 999, ++direct_req, text, strlen(text), NULL);
    node_drain(s, &s->node[i]);
}

/* Does node i's log hold a data entry with these user bytes? */
static bool holds(sim *s, int i, const char *text)
{
    sim_node *nd = &s->node[i];
    for (size_t k = 0; k < nd->n; k++) {
        const uint8_t *d;
        size_t len;
        if (nd->e[k].type == TRP_RAFT_ENTRY_DATA &&
            !trp_raft_envelope_get(nd->e[k].payload, nd->e[k].len, NULL, NULL, &d, &len) &&
            len == strlen(text) && !memcmp(d, text, len))
            return true;
    }
    return false;
}

static bool committed_has(sim *s, const char *text)
{
    for (int i = 0; i < s->cfg.n; i++) {
        sim_node *nd = &s->node[i];
        for (size_t k = 0; k < s->hist_len && k < nd->n; k++) {
            const uint8_t *d;
            size_t len;
            if (nd->e[k].type == TRP_RAFT_ENTRY_DATA &&
                !trp_raft_envelope_get(nd->e[k].payload, nd->e[k].len, NULL, NULL, &d, &len) &&
                len == strlen(text) && !memcmp(d, text, len))
                return true;
        }
    }
    return false;
}

/* Stop faults; a new append must be acknowledged within the bound. */
static bool settle(sim *s)
{
    sim_stop_faults(s);
    s->crash_at_event = 0;
    uint64_t start = s->now, acks = s->st.acks;
    while (!s->failed && s->now - start < SIM_LIVENESS_MS) {
        sim_step(s, true);
        if (s->st.acks > acks + 2)
            return true;
    }
    return false;
}

static void down(sim *s, int i)
{
    node_crash(s, &s->node[i], UINT64_MAX - s->now - 1);
}
static void up(sim *s, int i)
{
    s->node[i].down_until = s->now;
}

static void finish(sim *s)
{
    CHECKF(!s->failed, "seed %" PRIu64 ": %s", s->seed, s->why);
    sim_free(s);
    free(s);
}

/* ---- scenarios ---------------------------------------------------------- */

static void scenario_figure8(void)
{
    sim *s = mk(5, 0, 8);
    int l = wait_leader(s, 5000, false);
    REQUIRE(l >= 0);
    int f = (l + 1) % 5;
    /* X reaches only the leader and one follower */
    sim_partition(s, (1u << l) | (1u << f));
    propose_at(s, l, "X");
    run(s, 30, false);
    CHECK(holds(s, l, "X") && holds(s, f, "X"));
    down(s, l);
    down(s, f);
    sim_heal(s);
    int l2 = wait_leader(s, 5000, false);
    REQUIRE(l2 >= 0 && l2 != l && l2 != f);
    /* Y is written only on the new leader, which then dies */
    sim_isolate(s, l2);
    propose_at(s, l2, "Y");
    down(s, l2);
    sim_heal(s);
    up(s, l);
    up(s, f);
    int l3 = wait_leader(s, 5000, false);
    REQUIRE(l3 >= 0);
    run(s, 500, false);
    up(s, l2);
    CHECK(settle(s));
    run(s, 1000, true);
    CHECK(!committed_has(s, "Y")); /* never on a quorum */
    for (int i = 0; i < 5; i++)
        CHECK(!holds(s, i, "Y") || !s->node[i].up);
    finish(s);
}

static void scenario_crash_mid_replication_shorter_successor(void)
{
    sim *s = mk(5, 0, 21);
    run(s, 1500, true);
    int l = wait_leader(s, 5000, true);
    REQUIRE(l >= 0);
    int f = (l + 1) % 5;
    sim_partition(s, (1u << l) | (1u << f));
    propose_at(s, l, "X");
    run(s, 30, false);
    down(s, l);
    down(s, f);
    sim_heal(s);
    int l2 = wait_leader(s, 5000, true); /* among the three with shorter logs */
    REQUIRE(l2 >= 0 && l2 != l && l2 != f);
    propose_at(s, l2, "Z");
    run(s, 500, true);
    CHECK(committed_has(s, "Z"));
    up(s, l);
    up(s, f);
    CHECK(settle(s));
    run(s, 1500, true);
    CHECK(!holds(s, l, "X") && !holds(s, f, "X")); /* the conflicting tail was cut */
    CHECK(holds(s, l, "Z") && holds(s, f, "Z"));
    finish(s);
}

static void scenario_crash_mid_replication_longer_successor(void)
{
    sim *s = mk(5, 0, 22);
    run(s, 1500, true);
    int l = wait_leader(s, 5000, true);
    REQUIRE(l >= 0);
    int f1 = (l + 1) % 5, f2 = (l + 2) % 5;
    sim_partition(s, (1u << l) | (1u << f1) | (1u << f2));
    propose_at(s, l, "X");
    run(s, 40, false);
    down(s, l);
    sim_heal(s);
    int l2 = wait_leader(s, 5000, false);
    REQUIRE(l2 >= 0);
    CHECK(l2 == f1 || l2 == f2); /* only they are up to date */
    CHECK(holds(s, l2, "X"));
    up(s, l);
    CHECK(settle(s));
    CHECK(committed_has(s, "X"));
    finish(s);
}

static void scenario_partitioned_minority_leader(void)
{
    sim *s = mk(5, 0, 3);
    run(s, 1000, true);
    int l = wait_leader(s, 5000, true);
    REQUIRE(l >= 0);
    int f = (l + 1) % 5;
    run(s, 200, false); /* let in-flight work finish */
    sim_partition(s, (1u << l) | (1u << f));
    uint64_t acks_before = s->acks_by[l];
    for (int k = 0; k < 5; k++)
        propose_at(s, l, "lost");
    run(s, 2 * s->cfg.election_ms, false);
    CHECK(trp_raft_role(s->node[l].r) != TRP_RAFT_LEADER); /* stepped down */
    CHECK(s->acks_by[l] == acks_before);                   /* never acknowledged */
    int l2 = wait_leader(s, 5000, true);
    CHECK(l2 >= 0 && l2 != l);
    CHECK(settle(s));
    run(s, 1000, true);
    CHECK(!holds(s, l, "lost") && !committed_has(s, "lost"));
    finish(s);
}

/* trp-raft(7): a committed entry survives while a quorum keeps its disk.
 * E commits on L and F while G is cut off; F's disk is replaced and L
 * crashes (keeping its disk). F rejoins with nothing: it must not vote, or
 * G (which lacks E) would win with it and overwrite E. With L back, L
 * leads, F catches up and votes again, and E is where it was. */
static void scenario_replaced_disk_does_not_vote(void)
{
    for (uint64_t seed = 5; seed < 8; seed++) {
        sim *s = mk(3, 0, seed);
        s->cfg.n_clients = 0;
        int l = wait_leader(s, 5000, false);
        REQUIRE(l >= 0);
        int f = (l + 1) % 3, g = (l + 2) % 3;
        run(s, 200, false);
        sim_isolate(s, g);
        propose_at(s, l, "E");
        run(s, 100, false);
        REQUIRE(committed_has(s, "E") && holds(s, f, "E") && !holds(s, g, "E"));
        down(s, l);
        down(s, f);
        sim_wipe(s, f);
        sim_heal(s);
        up(s, f);
        run(s, 3000, false);
        CHECK(leader(s) < 0);     /* G alone cannot win: F does not vote */
        CHECK(s->node[f].rejoining);
        up(s, l);
        int l2 = wait_leader(s, 5000, false);
        CHECK(l2 == l);
        propose_at(s, l2, "after");
        run(s, 2000, false);
        CHECK(!s->node[f].rejoining); /* caught up: votes again */
        for (int i = 0; i < 3; i++)
            CHECKF(holds(s, i, "E") && holds(s, i, "after"), "seed %llu node %d",
                   (unsigned long long)seed, i + 1);
        finish(s);
    }
}

/* Every node rejoining (a new cluster whose data directories are empty
 * mount points, or every disk lost): they elect among themselves, commit,
 * and all stop rejoining. */
static void scenario_all_rejoining_elect(void)
{
    sim *s = mk(3, 0, 9);
    s->cfg.n_clients = 0;
    for (int i = 0; i < 3; i++) {
        down(s, i);
        sim_wipe(s, i);
        up(s, i);
    }
    run(s, 10, false);
    for (int i = 0; i < 3; i++)
        REQUIRE(s->node[i].up && trp_raft_rejoining(s->node[i].r));
    int l = wait_leader(s, 5000, false);
    CHECK(l >= 0);
    if (l >= 0) {
        propose_at(s, l, "first");
        run(s, 1000, false);
        for (int i = 0; i < 3; i++)
            CHECKF(holds(s, i, "first") && !s->node[i].rejoining, "node %d", i + 1);
    }
    finish(s);
}

static void scenario_leader_disk_stall(void)
{
    sim *s = mk(3, 0, 4);
    run(s, 1500, true);
    int l = wait_leader(s, 5000, true);
    REQUIRE(l >= 0);
    s->node[l].stall_until = s->now + 5 * s->cfg.election_ms;
    uint64_t acks = s->st.acks;
    run(s, 5 * s->cfg.election_ms, true);
    CHECK(s->st.acks > acks); /* followers' quorum keeps the cluster available */
    CHECK(settle(s));
    finish(s);
}

static void scenario_flapping_links(void)
{
    sim *s = mk(5, 0, 5);
    run(s, 1000, true);
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 5; b++) {
            s->flap_until[a][b] = s->now + 10000;
            s->flap_next[a][b] = 50 + (uint64_t)((a * 7 + b * 13) % 450);
        }
    uint64_t term0 = 0;
    for (int i = 0; i < 5; i++)
        if (trp_raft_term(s->node[i].r) > term0)
            term0 = trp_raft_term(s->node[i].r);
    run(s, 10000, true);
    uint64_t term1 = 0;
    for (int i = 0; i < 5; i++)
        if (trp_raft_term(s->node[i].r) > term1)
            term1 = trp_raft_term(s->node[i].r);
    printf("# flapping 10 s: terms %" PRIu64 " -> %" PRIu64 ", %" PRIu64 " acks\n", term0, term1,
           s->st.acks);
    CHECK(term1 - term0 < 100); /* pre-vote + withholding: no election storm */
    CHECK(settle(s));
    finish(s);
}

static void scenario_loss_dup_reorder(void)
{
    sim *s = mk(3, 0, 6);
    s->cfg.drop = 0.2;
    s->cfg.dup = 0.1;
    s->cfg.corrupt = 0.02;
    s->cfg.delay_min = 0;
    s->cfg.delay_max = 100;
    s->faults_on = true;
    uint64_t acks = s->st.acks;
    run(s, 15000, true);
    CHECK(s->st.acks > acks + 20);
    CHECK(s->st.duplicated > 0 && s->st.dropped > 0 && s->st.rejected > 0);
    CHECK(settle(s));
    finish(s);
}

static void scenario_crash_at_every_persistence_point(void)
{
    int runs = 0, failed = 0;
    int points = getenv("TRP_ASAN") ? 60 : 240;
    for (int k = 1; k <= points; k++) {
        sim *s = mk(3, 0, 1000 + (uint64_t)k);
        s->crash_at_event = (uint64_t)k;
        s->crash_down_ms = (uint64_t)(k % 5) * 100;
        run(s, 2500, true);
        bool ok = settle(s) && !s->failed;
        runs++;
        if (!ok) {
            failed++;
            printf("# persistence point %d: %s\n", k, s->failed ? s->why : "no liveness");
        }
        sim_free(s);
        free(s);
    }
    printf("# crashed at persistence points 1..%d\n", runs);
    CHECK(failed == 0);
}

static void scenario_leader_paused(void)
{
    sim *s = mk(3, 0, 9);
    run(s, 1500, true);
    int l = wait_leader(s, 5000, true);
    REQUIRE(l >= 0);
    uint64_t term = trp_raft_term(s->node[l].r);
    s->node[l].paused_until = s->now + 4 * s->cfg.election_ms; /* 2x the longest timeout */
    run(s, 4 * s->cfg.election_ms, true);
    int l2 = leader(s);
    CHECK(l2 >= 0 && l2 != l && trp_raft_term(s->node[l2].r) > term);
    run(s, 500, true); /* the old leader wakes up and must not disturb */
    CHECK(trp_raft_role(s->node[l].r) != TRP_RAFT_LEADER);
    CHECK(settle(s));
    finish(s);
}

static void scenario_all_restart_at_once(void)
{
    sim *s = mk(5, 0, 10);
    run(s, 3000, true);
    size_t committed = s->hist_len;
    CHECK(committed > 0);
    for (int i = 0; i < 5; i++)
        node_crash(s, &s->node[i], 500);
    run(s, 600, true);
    CHECK(settle(s));
    CHECK(s->hist_len > committed);
    finish(s);
}

static void scenario_groups(void)
{
    sim *s = mk(6, 2, 11); /* cloudA = 1,2,3; cloudB = 4,5,6 */
    run(s, 2000, true);
    int l = wait_leader(s, 5000, true);
    REQUIRE(l >= 0);
    /* lose two of cloudA (not counting... any two; the leader may be one) */
    int a1 = l < 3 ? (l + 1) % 3 : 0, a2 = l < 3 ? (l + 2) % 3 : 1;
    down(s, a1);
    down(s, a2);
    run(s, 300, true);
    size_t frozen = s->hist_len;
    run(s, 3000, true);
    CHECKF(s->hist_len == frozen, "commits went on without a majority of cloudA (%zu -> %zu)",
           frozen, s->hist_len);
    up(s, a1);
    up(s, a2);
    run(s, 2000, true);
    /* lose one of each: still a majority of every group */
    int b = l >= 3 ? 3 + (l - 3 + 1) % 3 : 3;
    int a = l < 3 ? (l + 1) % 3 : 0;
    down(s, a);
    down(s, b);
    run(s, 1500, true);
    size_t before = s->hist_len;
    run(s, 3000, true);
    CHECKF(s->hist_len > before, "no commits after losing one node of each group");
    up(s, a);
    up(s, b);
    CHECK(settle(s));
    finish(s);
}

static void scenario_original_bugs(void)
{
    /* 1 node elects itself and commits */
    sim *s = mk(1, 0, 12);
    run(s, 500, true);
    CHECK(leader(s) == 0 && s->st.acks > 0);
    finish(s);
    /* 2 nodes need both */
    s = mk(2, 0, 13);
    run(s, 2000, true);
    CHECK(s->st.acks > 0);
    down(s, 1);
    run(s, 300, true);
    size_t frozen = s->hist_len;
    run(s, 3000, true);
    CHECK(s->hist_len == frozen);
    up(s, 1);
    CHECK(settle(s));
    finish(s);
    /* 4 nodes need 3 */
    s = mk(4, 0, 14);
    run(s, 2000, true);
    int l = wait_leader(s, 5000, true);
    REQUIRE(l >= 0);
    down(s, (l + 1) % 4);
    run(s, 1000, true);
    size_t before = s->hist_len;
    run(s, 2000, true);
    CHECK(s->hist_len > before); /* 3 of 4: fine */
    down(s, (l + 2) % 4);
    run(s, 300, true);
    frozen = s->hist_len;
    run(s, 3000, true);
    CHECK(s->hist_len == frozen); /* 2 of 4 is not a quorum */
    up(s, (l + 1) % 4);
    up(s, (l + 2) % 4);
    CHECK(settle(s));
    finish(s);
}

int main(void)
{
    RUN(scenario_figure8);
    RUN(scenario_crash_mid_replication_shorter_successor);
    RUN(scenario_crash_mid_replication_longer_successor);
    RUN(scenario_partitioned_minority_leader);
    RUN(scenario_leader_disk_stall);
    RUN(scenario_replaced_disk_does_not_vote);
    RUN(scenario_all_rejoining_elect);
    RUN(scenario_flapping_links);
    RUN(scenario_loss_dup_reorder);
    RUN(scenario_crash_at_every_persistence_point);
    RUN(scenario_leader_paused);
    RUN(scenario_all_restart_at_once);
    RUN(scenario_groups);
    RUN(scenario_original_bugs);
    return check_done();
}
