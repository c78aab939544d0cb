/*
 * test_raft.c: paper-rule unit tests for the Raft core, driven by hand.
 *
 * The one idea: one node under test, its storage the simulator's in-memory
 * disk, and every input crafted here, so each rule (figure 8, persisted
 * votes, pre-vote, withholding, check-quorum, quorum sizes, truncation only
 * on conflict, chain verification, exactly-once, conditional append,
 * ReadIndex) is checked in isolation, message by message.
 */
#include "../check.h"
#include "../sim/sim.c"
#include "raft.h" /* the spare tests look at the leader's peers */

/* ---- harness -------------------------------------------------------------- */

typedef struct outbox {
    trp_raft_msg m[256];
    size_t n;
    trp_raft_reply rep[64];
    size_t n_rep;
} outbox;

static void outbox_clear(outbox *o)
{
    for (size_t i = 0; i < o->n; i++)
        trp_raft_msg_clear(&o->m[i]);
    for (size_t i = 0; i < o->n_rep; i++)
        mpz_clear(o->rep[i].seq);
    o->n = o->n_rep = 0;
}

/* Take every ready: persist hard state, sync the disk at once (unless
 * nosync), keep copies of messages (through the codec) and replies. */
static void drain_opt(sim *s, int i, outbox *o, bool sync)
{
    sim_node *nd = &s->node[i];
    for (int guard = 0; guard < 8 && trp_raft_has_ready(nd->r); guard++) {
        trp_raft_ready rd;
        trp_raft_ready_take(nd->r, &rd);
        if (rd.hard_state) {
            nd->hs_term = rd.term;
            nd->hs_vote = rd.vote;
        }
        if (rd.commit_changed) {
            mpz_sub(s->tmp, rd.commit_next, s->base);
            nd->commit = (size_t)mpz_get_ui(s->tmp);
        }
        for (size_t k = 0; k < rd.n_msgs && o->n < 256; k++) {
            uint8_t *buf;
            size_t len;
            trp_raft_msg_encode(&rd.msgs[k], &buf, &len, NULL);
            trp_raft_msg_init(&o->m[o->n]);
            if (trp_raft_msg_decode(buf, len, &o->m[o->n], NULL) == 0)
                o->n++;
            free(buf);
        }
        for (size_t k = 0; k < rd.n_replies && o->n_rep < 64; k++) {
            o->rep[o->n_rep] = rd.replies[k];
            mpz_init_set(o->rep[o->n_rep].seq, rd.replies[k].seq);
            o->n_rep++;
        }
        bool want_sync = rd.sync;
        trp_raft_advance(nd->r, &rd);
        if (want_sync && sync) {
            nd->durable = nd->n;
            mpz_add_ui(s->tmp, s->base, nd->n);
            mpz_t d;
            mpz_init_set(d, s->tmp);
            trp_raft_persisted(nd->r, d);
            mpz_clear(d);
        }
    }
}

static void drain(sim *s, int i, outbox *o)
{
    drain_opt(s, i, o, true);
}

static trp_raft_msg *find_msg(outbox *o, int type, uint64_t to)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->m[i].type == type && (!to || o->m[i].to == to))
            return &o->m[i];
    return NULL;
}

static sim *new_cluster(int n, int n_groups)
{
    sim_cfg c = {0};
    c.n = n;
    c.n_groups = n_groups;
    for (int i = 0; i < n; i++)
        c.group_of[i] = n_groups ? i * n_groups / n : 0;
    c.election_ms = 300;
    c.heartbeat_ms = 50;
    c.max_inflight = 4;
    c.n_clients = 0;
    sim *s = calloc(1, sizeof *s);
    sim_init(s, 42, &c, 0);
    return s;
}

static void restart_node(sim *s, int i)
{
    sim_node *nd = &s->node[i];
    trp_raft_free(nd->r);
    nd->r = NULL;
    nd->durable = nd->n;
    node_start(s, nd);
}

/* Put an entry of term `term` straight on node i's disk (durable). */
static void disk_put(sim *s, int i, uint64_t term, const char *text)
{
    sim_node *nd = &s->node[i];
    trp_raft_entry e = {.term = term,
                        .type = TRP_RAFT_ENTRY_DATA,
                        .payload = (const uint8_t *)text,
                        .len = strlen(text)};
    mpz_add_ui(s->tmp, s->base, nd->n);
    mpz_t seq;
    mpz_init_set(seq, s->tmp);
    trp_entry_hash(e.hash, seq, term, e.type, nd->n ? nd->e[nd->n - 1].hash : s->anchor,
                          e.payload, e.len);
    st_append(nd, seq, &e, NULL);
    nd->durable = nd->n;
    mpz_clear(seq);
}

static void msg_to(trp_raft_msg *m, int type, uint64_t from, uint64_t to, uint64_t term)
{
    trp_raft_msg_init(m);
    m->type = type;
    m->from = from;
    m->to = to;
    m->term = term;
}

static void step(sim *s, int i, trp_raft_msg *m)
{
    trp_raft_step(s->node[i].r, m);
    trp_raft_msg_clear(m);
}

/* Node i is asked for a (pre)vote in term by `from`, a candidate with an
 * empty log, rejoining or not (trp_raft_rejoining). */
static void ask_vote(sim *s, int i, int type, uint64_t from, uint64_t term, bool rejoining)
{
    trp_raft_msg m;
    msg_to(&m, type, from, s->node[i].id, term);
    mpz_set(m.seq, s->base);
    m.flag = rejoining;
    step(s, i, &m);
}

/* Drive node i of a fresh cluster to leadership with votes from `voters`. */
static void make_leader(sim *s, int i, const uint64_t *voters, size_t nv, outbox *o)
{
    sim_node *nd = &s->node[i];
    trp_raft_tick(nd->r, s->now += 1000);
    drain(s, i, o);
    uint64_t term = trp_raft_term(nd->r);
    for (size_t k = 0; k < nv; k++) {
        trp_raft_msg m;
        msg_to(&m, TRP_RAFT_PREVOTE_RESP, voters[k], nd->id, term + 1);
        m.flag = true;
        step(s, i, &m);
    }
    drain(s, i, o);
    for (size_t k = 0; k < nv; k++) {
        trp_raft_msg m;
        msg_to(&m, TRP_RAFT_VOTE_RESP, voters[k], nd->id, term + 1);
        m.flag = true;
        step(s, i, &m);
    }
    drain(s, i, o);
}

static void free_cluster(sim *s)
{
    sim_free(s);
    free(s);
}

/* ---- quorum and config ------------------------------------------------------ */

static bool q(int n, unsigned mask)
{
    trp_raft_node nodes[8];
    for (int i = 0; i < n; i++)
        nodes[i] = (trp_raft_node){.id = (uint64_t)i + 1};
    trp_raft_config c = {.self = 1, .nodes = nodes, .n_nodes = (size_t)n};
    bool m[8];
    for (int i = 0; i < n; i++)
        m[i] = (mask >> i) & 1;
    return trp_raft_config_quorum(&c, m);
}

static void test_quorum_sizes(void)
{
    CHECK(q(1, 1));  /* one node: itself */
    CHECK(!q(2, 1)); /* two nodes need both */
    CHECK(q(2, 3));
    CHECK(q(3, 3));
    CHECK(!q(3, 1));
    CHECK(!q(4, 3)); /* four need three, not two */
    CHECK(q(4, 7));
    CHECK(q(5, 7));
    CHECK(!q(5, 3));
    CHECK(!q(6, 7));
    CHECK(q(6, 15));
    CHECK(q(7, 15));
}

static void test_quorum_groups(void)
{
    const char *groups[] = {"cloudA", "cloudB"};
    trp_raft_node nodes[6];
    for (int i = 0; i < 6; i++)
        nodes[i] = (trp_raft_node){.id = (uint64_t)i + 1, .group = groups[i / 3]};
    trp_raft_config c = {.self = 1, .nodes = nodes, .n_nodes = 6, .groups = groups, .n_groups = 2};
    CHECK(trp_raft_config_check(&c, NULL) == 0);
    bool all[6] = {1, 1, 1, 1, 1, 1};
    bool lose_two_a[6] = {1, 0, 0, 1, 1, 1};
    bool lose_one_each[6] = {0, 1, 1, 0, 1, 1};
    bool four_of_a_b[6] = {1, 1, 0, 1, 0, 0}; /* 2 of A, 1 of B */
    CHECK(trp_raft_config_quorum(&c, all));
    CHECK(!trp_raft_config_quorum(&c, lose_two_a));
    CHECK(trp_raft_config_quorum(&c, lose_one_each));
    CHECK(!trp_raft_config_quorum(&c, four_of_a_b));
}

static void test_config_errors(void)
{
    trp_err err = {0};
    trp_raft_node nodes[3] = {{.id = 1}, {.id = 2}, {.id = 3}};
    trp_raft_config c = {.self = 1, .nodes = nodes, .n_nodes = 3};
    CHECK(trp_raft_config_check(&c, &err) == 0);
    c.n_nodes = 0;
    CHECK(trp_raft_config_check(&c, &err) == TRP_ECONFIG && strstr(err.msg, "no nodes"));
    c.n_nodes = 3;
    c.self = 9;
    CHECK(trp_raft_config_check(&c, &err) == TRP_ECONFIG && strstr(err.msg, "9 is not in"));
    c.self = 1;
    nodes[2].id = 2;
    CHECK(trp_raft_config_check(&c, &err) == TRP_ECONFIG && strstr(err.msg, "listed twice"));
    nodes[2].id = 0;
    CHECK(trp_raft_config_check(&c, &err) == TRP_ECONFIG && strstr(err.msg, "id 0"));
    nodes[2].id = 3;
    const char *groups[] = {"a", "b", "c"};
    nodes[0].group = "a";
    nodes[1].group = "b";
    nodes[2].group = "x";
    c.groups = groups;
    c.n_groups = 2;
    CHECK(trp_raft_config_check(&c, &err) == TRP_ECONFIG && strstr(err.msg, "\"x\", which is not"));
    nodes[2].group = "b";
    c.n_groups = 3;
    CHECK(trp_raft_config_check(&c, &err) == TRP_ECONFIG && strstr(err.msg, "\"c\" has no nodes"));
    c.n_groups = 2;
    nodes[2].group = NULL;
    CHECK(trp_raft_config_check(&c, &err) == TRP_ECONFIG && strstr(err.msg, "node 3 has no group"));
    nodes[2].group = "b";
    CHECK(trp_raft_config_check(&c, &err) == 0);
    c.heartbeat_ms = 300;
    c.election_timeout_ms = 400;
    CHECK(trp_raft_config_check(&c, &err) == TRP_ECONFIG && strstr(err.msg, "heartbeat"));
}

/* ---- elections -------------------------------------------------------------- */

static void test_one_node_elects_itself(void)
{
    sim *s = new_cluster(1, 0);
    outbox o = {0};
    trp_raft_tick(s->node[0].r, 1);
    drain(s, 0, &o);
    CHECK(trp_raft_role(s->node[0].r) == TRP_RAFT_LEADER);
    CHECK(trp_raft_term(s->node[0].r) == 1);
    CHECK(s->node[0].hs_term == 1 && s->node[0].hs_vote == 1); /* persisted first */
    /* and commits alone, first append at seq 0 */
    trp_raft_propose(s->node[0].r, 5, 1, "x", 1, NULL);
    drain(s, 0, &o);
    CHECK(o.n_rep == 1 && o.rep[0].status == TRP_OK && mpz_cmp_ui(o.rep[0].seq, 0) == 0);
    outbox_clear(&o);
    free_cluster(s);
}

static void test_self_vote_counts_only_when_durable(void)
{
    sim *s = new_cluster(1, 0);
    trp_raft_tick(s->node[0].r, 1);
    CHECK(trp_raft_role(s->node[0].r) == TRP_RAFT_CANDIDATE); /* vote not yet durable */
    CHECK(trp_raft_ready_needs_hard_state(s->node[0].r));
    outbox o = {0};
    drain(s, 0, &o);
    CHECK(trp_raft_role(s->node[0].r) == TRP_RAFT_LEADER);
    outbox_clear(&o);
    free_cluster(s);
}

static void test_two_nodes_need_both(void)
{
    sim *s = new_cluster(2, 0);
    outbox o = {0};
    for (int k = 0; k < 10; k++) {
        trp_raft_tick(s->node[0].r, s->now += 1000);
        drain(s, 0, &o);
    }
    CHECK(trp_raft_role(s->node[0].r) == TRP_RAFT_PRECANDIDATE);
    CHECK(trp_raft_term(s->node[0].r) == 0); /* pre-vote never bumps the term */
    uint64_t v[] = {2};
    make_leader(s, 0, v, 1, &o);
    CHECK(trp_raft_role(s->node[0].r) == TRP_RAFT_LEADER);
    outbox_clear(&o);
    free_cluster(s);
}

static void test_four_nodes_need_three(void)
{
    sim *s = new_cluster(4, 0);
    outbox o = {0};
    uint64_t one[] = {2};
    make_leader(s, 0, one, 1, &o);
    CHECK(trp_raft_role(s->node[0].r) != TRP_RAFT_LEADER);
    outbox_clear(&o);
    free_cluster(s);
    s = new_cluster(4, 0);
    uint64_t two[] = {2, 3};
    make_leader(s, 0, two, 2, &o);
    CHECK(trp_raft_role(s->node[0].r) == TRP_RAFT_LEADER);
    outbox_clear(&o);
    free_cluster(s);
}

static void test_vote_survives_restart(void)
{
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    trp_raft_msg m;
    msg_to(&m, TRP_RAFT_VOTE, 2, 1, 5);
    mpz_set(m.seq, s->base);
    step(s, 0, &m);
    drain(s, 0, &o);
    trp_raft_msg *r = find_msg(&o, TRP_RAFT_VOTE_RESP, 2);
    CHECK(r && r->flag && r->term == 5);
    CHECK(s->node[0].hs_term == 5 && s->node[0].hs_vote == 2);
    outbox_clear(&o);
    restart_node(s, 0);
    CHECK(trp_raft_term(s->node[0].r) == 5 && trp_raft_vote(s->node[0].r) == 2);
    msg_to(&m, TRP_RAFT_VOTE, 3, 1, 5);
    mpz_set(m.seq, s->base);
    step(s, 0, &m);
    drain(s, 0, &o);
    r = find_msg(&o, TRP_RAFT_VOTE_RESP, 3);
    CHECK(r && !r->flag); /* no second vote in term 5 */
    outbox_clear(&o);
    free_cluster(s);
}

static void test_vote_released_after_hard_state(void)
{
    sim *s = new_cluster(3, 0);
    trp_raft_msg m;
    msg_to(&m, TRP_RAFT_VOTE, 2, 1, 3);
    mpz_set(m.seq, s->base);
    step(s, 0, &m);
    trp_raft_ready rd;
    trp_raft_ready_take(s->node[0].r, &rd);
    /* the grant and the vote it depends on travel in the same ready */
    CHECK(rd.hard_state && rd.term == 3 && rd.vote == 2);
    CHECK(rd.n_msgs == 1 && rd.msgs[0].type == TRP_RAFT_VOTE_RESP && rd.msgs[0].flag);
    trp_raft_advance(s->node[0].r, &rd);
    free_cluster(s);
}

static void test_log_up_to_date_check(void)
{
    sim *s = new_cluster(3, 0);
    disk_put(s, 0, 2, "a");
    s->node[0].hs_term = 2;
    restart_node(s, 0);
    outbox o = {0};
    trp_raft_msg m;
    msg_to(&m, TRP_RAFT_VOTE, 2, 1, 3); /* empty log: behind us */
    mpz_set(m.seq, s->base);
    m.log_term = 0;
    step(s, 0, &m);
    drain(s, 0, &o);
    trp_raft_msg *r = find_msg(&o, TRP_RAFT_VOTE_RESP, 2);
    CHECK(r && !r->flag);
    outbox_clear(&o);
    free_cluster(s);
}

static void test_withhold_votes_while_leader_live(void)
{
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    trp_raft_msg m;
    msg_to(&m, TRP_RAFT_HEARTBEAT, 2, 1, 4); /* leader 2 of term 4 */
    mpz_set(m.commit, s->base);
    step(s, 0, &m);
    drain(s, 0, &o);
    CHECK(trp_raft_leader(s->node[0].r) == 2);
    outbox_clear(&o);
    msg_to(&m, TRP_RAFT_VOTE, 3, 1, 9);
    mpz_set(m.seq, s->base);
    step(s, 0, &m);
    msg_to(&m, TRP_RAFT_PREVOTE, 3, 1, 9);
    mpz_set(m.seq, s->base);
    step(s, 0, &m);
    drain(s, 0, &o);
    CHECK(o.n == 0);                         /* not even answered */
    CHECK(trp_raft_term(s->node[0].r) == 4); /* and not disrupted */
    outbox_clear(&o);
    /* after the election timeout without the leader, it votes */
    s->now += 1000;
    trp_raft_tick(s->node[0].r, s->now);
    drain(s, 0, &o);
    outbox_clear(&o);
    msg_to(&m, TRP_RAFT_VOTE, 3, 1, 9);
    mpz_set(m.seq, s->base);
    step(s, 0, &m);
    drain(s, 0, &o);
    trp_raft_msg *r = find_msg(&o, TRP_RAFT_VOTE_RESP, 3);
    CHECK(r && r->flag && r->term == 9);
    outbox_clear(&o);
    free_cluster(s);
}

static void test_priority_preempts_only_when_up_to_date(void)
{
    sim *s = new_cluster(3, 0);
    s->nodes_cfg[0].priority = 5;
    restart_node(s, 0);
    outbox o = {0};
    trp_raft_msg m;
    msg_to(&m, TRP_RAFT_PREVOTE, 2, 1, 1);
    mpz_set(m.seq, s->base);
    m.priority = 1;
    step(s, 0, &m);
    drain(s, 0, &o);
    trp_raft_msg *r = find_msg(&o, TRP_RAFT_PREVOTE_RESP, 2);
    CHECK(r && !r->flag); /* refused: we outrank it and our log is as good */
    outbox_clear(&o);
    trp_raft_tick(s->node[0].r, ++s->now); /* and we run at once */
    drain(s, 0, &o);
    CHECK(trp_raft_role(s->node[0].r) == TRP_RAFT_PRECANDIDATE);
    CHECK(find_msg(&o, TRP_RAFT_PREVOTE, 2) != NULL);
    outbox_clear(&o);
    /* a candidate with a longer log gets our pre-vote despite priority */
    free_cluster(s);
    s = new_cluster(3, 0);
    s->nodes_cfg[0].priority = 5;
    restart_node(s, 0);
    msg_to(&m, TRP_RAFT_PREVOTE, 2, 1, 1);
    mpz_add_ui(m.seq, s->base, 3);
    m.log_term = 1;
    m.priority = 1;
    step(s, 0, &m);
    drain(s, 0, &o);
    r = find_msg(&o, TRP_RAFT_PREVOTE_RESP, 2);
    CHECK(r && r->flag);
    outbox_clear(&o);
    free_cluster(s);
}

/* Two followers time out together: node 2, having pre-voted for node 1
 * (which outranks it: same priority, lower id), stands down when its own
 * pre-vote succeeds, so the real vote is not split; node 1 does not. */
static void test_outranked_precandidate_stands_down(void)
{
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    trp_raft_msg m;
    trp_raft_tick(s->node[1].r, s->now += 1000); /* node 2 starts a pre-vote */
    drain(s, 1, &o);
    CHECK(trp_raft_role(s->node[1].r) == TRP_RAFT_PRECANDIDATE);
    outbox_clear(&o);
    msg_to(&m, TRP_RAFT_PREVOTE, 1, 2, 1); /* node 1 asks too: node 2 grants */
    mpz_set(m.seq, s->base);
    step(s, 1, &m);
    drain(s, 1, &o);
    trp_raft_msg *r = find_msg(&o, TRP_RAFT_PREVOTE_RESP, 1);
    CHECK(r && r->flag);
    outbox_clear(&o);
    msg_to(&m, TRP_RAFT_PREVOTE_RESP, 3, 2, 1); /* node 2's own pre-vote wins */
    m.flag = true;
    step(s, 1, &m);
    drain(s, 1, &o);
    CHECK(trp_raft_role(s->node[1].r) == TRP_RAFT_FOLLOWER);
    CHECK(trp_raft_term(s->node[1].r) == 0);
    CHECK(find_msg(&o, TRP_RAFT_VOTE, 0) == NULL);
    outbox_clear(&o);
    msg_to(&m, TRP_RAFT_VOTE, 1, 2, 1); /* so node 1's real vote gets through */
    mpz_set(m.seq, s->base);
    step(s, 1, &m);
    drain(s, 1, &o);
    r = find_msg(&o, TRP_RAFT_VOTE_RESP, 1);
    CHECK(r && r->flag && r->term == 1);
    outbox_clear(&o);
    /* the other way round: node 1 pre-voted for node 3, which it outranks */
    trp_raft_tick(s->node[0].r, s->now += 1000);
    drain(s, 0, &o);
    outbox_clear(&o);
    uint64_t t = trp_raft_term(s->node[0].r);
    msg_to(&m, TRP_RAFT_PREVOTE, 3, 1, t + 1);
    mpz_set(m.seq, s->base);
    step(s, 0, &m);
    msg_to(&m, TRP_RAFT_PREVOTE_RESP, 2, 1, t + 1);
    m.flag = true;
    step(s, 0, &m);
    drain(s, 0, &o);
    CHECK(trp_raft_role(s->node[0].r) == TRP_RAFT_CANDIDATE);
    CHECK(find_msg(&o, TRP_RAFT_VOTE, 2) != NULL);
    outbox_clear(&o);
    free_cluster(s);
}

/* A follower asked for a pre-vote by a node whose log is behind refuses,
 * and starts its own pre-vote at the next tick instead of waiting. */
static void test_ahead_of_asker_runs_at_once(void)
{
    sim *s = new_cluster(3, 0);
    disk_put(s, 0, 1, "a");
    s->node[0].hs_term = 1;
    restart_node(s, 0);
    outbox o = {0};
    trp_raft_msg m;
    msg_to(&m, TRP_RAFT_PREVOTE, 2, 1, 2); /* empty log: behind us */
    mpz_set(m.seq, s->base);
    step(s, 0, &m);
    drain(s, 0, &o);
    trp_raft_msg *r = find_msg(&o, TRP_RAFT_PREVOTE_RESP, 2);
    CHECK(r && !r->flag);
    outbox_clear(&o);
    trp_raft_tick(s->node[0].r, ++s->now);
    drain(s, 0, &o);
    CHECK(trp_raft_role(s->node[0].r) == TRP_RAFT_PRECANDIDATE);
    CHECK(find_msg(&o, TRP_RAFT_PREVOTE, 2) != NULL);
    outbox_clear(&o);
    free_cluster(s);
}

static void test_check_quorum_steps_down(void)
{
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    uint64_t v[] = {2};
    make_leader(s, 0, v, 1, &o);
    REQUIRE(trp_raft_role(s->node[0].r) == TRP_RAFT_LEADER);
    outbox_clear(&o);
    for (int k = 0; k < 20; k++) {
        trp_raft_tick(s->node[0].r, s->now += 50);
        drain(s, 0, &o);
        outbox_clear(&o);
    }
    CHECK(trp_raft_role(s->node[0].r) != TRP_RAFT_LEADER);
    CHECK(trp_raft_leader(s->node[0].r) == 0);
    free_cluster(s);
}

/* ---- replication -------------------------------------------------------------- */

/* Figure 8: a leader of term 3 holding an uncommitted term-2 entry must not
 * commit it by counting replicas; only its own term-3 entry commits both. */
static void test_figure8_no_commit_by_counting_old_term(void)
{
    sim *s = new_cluster(3, 0);
    disk_put(s, 0, 1, "e0");
    disk_put(s, 0, 2, "e1");
    s->node[0].hs_term = 2;
    s->node[0].commit = 1;
    restart_node(s, 0);
    outbox o = {0};
    uint64_t v[] = {2};
    make_leader(s, 0, v, 1, &o);
    REQUIRE(trp_raft_role(s->node[0].r) == TRP_RAFT_LEADER);
    CHECK(trp_raft_term(s->node[0].r) == 3);
    CHECK(s->node[0].n == 3 && s->node[0].e[2].type == TRP_RAFT_ENTRY_NOOP); /* no-op appended */
    outbox_clear(&o);
    trp_raft_msg m;
    msg_to(&m, TRP_RAFT_APPEND_RESP, 2, 1, 3);
    m.flag = true;
    mpz_add_ui(m.seq, s->base, 2); /* follower holds e0, e1 (term 2) */
    step(s, 0, &m);
    drain(s, 0, &o);
    mpz_t c;
    mpz_init(c);
    trp_raft_commit_next(s->node[0].r, c);
    mpz_sub(c, c, s->base);
    CHECK(mpz_cmp_ui(c, 1) == 0); /* a majority has e1, yet it is not committed */
    msg_to(&m, TRP_RAFT_APPEND_RESP, 2, 1, 3);
    m.flag = true;
    mpz_add_ui(m.seq, s->base, 3); /* now the no-op of term 3 too */
    step(s, 0, &m);
    drain(s, 0, &o);
    trp_raft_commit_next(s->node[0].r, c);
    mpz_sub(c, c, s->base);
    CHECK(mpz_cmp_ui(c, 3) == 0);
    mpz_clear(c);
    outbox_clear(&o);
    free_cluster(s);
}

static void test_no_noop_when_all_committed(void)
{
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    uint64_t v[] = {2};
    make_leader(s, 0, v, 1, &o);
    CHECK(s->node[0].n == 0); /* fresh cluster: first append will be seq 0 */
    outbox_clear(&o);
    free_cluster(s);
}

static void test_leader_counts_own_copy_only_when_durable(void)
{
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    uint64_t v[] = {2};
    make_leader(s, 0, v, 1, &o);
    outbox_clear(&o);
    trp_raft_propose(s->node[0].r, 9, 1, "p", 1, NULL);
    drain_opt(s, 0, &o, false); /* leader's disk has not synced */
    trp_raft_msg m;
    msg_to(&m, TRP_RAFT_APPEND_RESP, 2, 1, 1);
    m.flag = true;
    mpz_add_ui(m.seq, s->base, 1);
    step(s, 0, &m);
    drain_opt(s, 0, &o, false);
    /* 2 of 3 hold it durably (follower 2 and... not us): not committed yet
     * with 3 nodes? follower 2 + leader(undurable) = 1 durable copy */
    CHECK(o.n_rep == 0);
    msg_to(&m, TRP_RAFT_APPEND_RESP, 3, 1, 1);
    m.flag = true;
    mpz_add_ui(m.seq, s->base, 1);
    step(s, 0, &m);
    drain_opt(s, 0, &o, false);
    CHECK(o.n_rep == 1 && o.rep[0].status == TRP_OK); /* followers 2+3 are a quorum */
    outbox_clear(&o);
    free_cluster(s);
}

static void append_msg(sim *s, trp_raft_msg *m, uint64_t term, size_t start, const uint64_t *terms,
                       const char *const *texts, size_t n, const uint8_t prev[32],
                       uint64_t prev_term)
{
    msg_to(m, TRP_RAFT_APPEND, 2, 1, term);
    mpz_add_ui(m->seq, s->base, start);
    mpz_set(m->commit, s->base);
    m->log_term = prev_term;
    memcpy(m->hash, prev, 32);
    m->entries = calloc(n + 1, sizeof *m->entries);
    m->n_entries = n;
    uint8_t h[32];
    memcpy(h, prev, 32);
    for (size_t i = 0; i < n; i++) {
        m->entries[i].term = terms[i];
        m->entries[i].type = TRP_RAFT_ENTRY_DATA;
        m->entries[i].len = strlen(texts[i]);
        m->entries[i].payload = (uint8_t *)strdup(texts[i]);
        mpz_add_ui(s->tmp, s->base, start + i);
        trp_entry_hash(h, s->tmp, terms[i], TRP_RAFT_ENTRY_DATA, h, texts[i],
                              strlen(texts[i]));
    }
    memcpy(m->last_hash, h, 32);
}

static void test_truncate_only_on_conflict(void)
{
    sim *s = new_cluster(3, 0);
    disk_put(s, 0, 1, "a");
    disk_put(s, 0, 1, "b");
    disk_put(s, 0, 1, "c");
    s->node[0].hs_term = 1;
    restart_node(s, 0);
    outbox o = {0};
    /* a late duplicate covering only seq 1: matching, nothing removed */
    trp_raft_msg m;
    uint64_t t1[] = {1};
    const char *b[] = {"b"};
    append_msg(s, &m, 2, 1, t1, b, 1, s->node[0].e[0].hash, 1);
    step(s, 0, &m);
    drain(s, 0, &o);
    CHECK(s->node[0].n == 3);
    trp_raft_msg *r = find_msg(&o, TRP_RAFT_APPEND_RESP, 2);
    CHECK(r && r->flag);
    if (r) {
        mpz_sub(s->tmp, r->seq, s->base);
        CHECK(mpz_cmp_ui(s->tmp, 2) == 0); /* acks only what the message covered */
    }
    outbox_clear(&o);
    /* a later leader with a real conflict at seq 1 (term 3): truncates
     * from 1 and appends */
    uint64_t t2[] = {3};
    const char *x[] = {"x"};
    append_msg(s, &m, 3, 1, t2, x, 1, s->node[0].e[0].hash, 1);
    step(s, 0, &m);
    drain(s, 0, &o);
    CHECK(s->node[0].n == 2 && s->node[0].e[1].term == 3);
    outbox_clear(&o);
    free_cluster(s);
}

static void test_reject_broken_chain(void)
{
    sim *s = new_cluster(3, 0);
    disk_put(s, 0, 1, "a");
    s->node[0].hs_term = 1;
    restart_node(s, 0);
    outbox o = {0};
    trp_raft_msg m;
    uint64_t t[] = {1};
    const char *b[] = {"b"};
    append_msg(s, &m, 1, 1, t, b, 1, s->node[0].e[0].hash, 1);
    m.entries[0].payload[0] = 'X'; /* payload altered in flight */
    step(s, 0, &m);
    drain(s, 0, &o);
    CHECK(s->node[0].n == 1);
    CHECK(find_msg(&o, TRP_RAFT_APPEND_RESP, 2) == NULL);
    outbox_clear(&o);
    /* a prev hash that is not ours: refused too */
    uint8_t wrong[32] = {1};
    append_msg(s, &m, 1, 1, t, b, 1, wrong, 1);
    step(s, 0, &m);
    drain(s, 0, &o);
    CHECK(s->node[0].n == 1);
    outbox_clear(&o);
    free_cluster(s);
}

static void test_fast_backtrack_hint(void)
{
    sim *s = new_cluster(3, 0);
    disk_put(s, 0, 1, "a");
    for (int i = 0; i < 5; i++)
        disk_put(s, 0, 2, "b");
    s->node[0].hs_term = 2;
    restart_node(s, 0);
    outbox o = {0};
    trp_raft_msg m;
    uint64_t t[] = {3};
    const char *x[] = {"x"};
    uint8_t prev[32] = {0};
    append_msg(s, &m, 3, 6, t, x, 1, prev, 3); /* prev (seq 5) term 3: we have term 2 */
    step(s, 0, &m);
    drain(s, 0, &o);
    trp_raft_msg *r = find_msg(&o, TRP_RAFT_APPEND_RESP, 2);
    CHECK(r && !r->flag);
    if (r) {
        mpz_sub(s->tmp, r->hint, s->base);
        CHECK(mpz_cmp_ui(s->tmp, 1) == 0); /* first seq of our term 2 */
    }
    outbox_clear(&o);
    free_cluster(s);
}

static void test_follower_commit_clamped(void)
{
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    trp_raft_msg m;
    uint64_t t[] = {1, 1};
    const char *x[] = {"x", "y"};
    append_msg(s, &m, 1, 0, t, x, 2, s->anchor, 0);
    mpz_add_ui(m.commit, s->base, 50); /* the leader claims more */
    step(s, 0, &m);
    drain_opt(s, 0, &o, false); /* not durable yet */
    mpz_t c;
    mpz_init(c);
    trp_raft_commit_next(s->node[0].r, c);
    CHECK(mpz_cmp(c, s->base) == 0);
    CHECK(find_msg(&o, TRP_RAFT_APPEND_RESP, 2) != NULL); /* an ack for what is durable: 0 */
    outbox_clear(&o);
    s->node[0].durable = 2;
    mpz_add_ui(c, s->base, 2);
    trp_raft_persisted(s->node[0].r, c);
    drain(s, 0, &o);
    trp_raft_commit_next(s->node[0].r, c);
    mpz_sub(c, c, s->base);
    CHECK(mpz_cmp_ui(c, 2) == 0); /* min(leader commit, verified, durable) */
    mpz_clear(c);
    outbox_clear(&o);
    free_cluster(s);
}

/* A follower's ack for new entries that are not durable yet would repeat
 * its last one (the match stays what is durable): only the first such ack
 * to a leader is sent; the ack for the entries follows their fsync; a new
 * leader gets one again. */
static size_t acks_to(outbox *o, uint64_t to)
{
    size_t n = 0;
    for (size_t i = 0; i < o->n; i++)
        n += o->m[i].type == TRP_RAFT_APPEND_RESP && o->m[i].to == to && o->m[i].flag;
    return n;
}

static void test_partial_ack_not_repeated(void)
{
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    trp_raft *r = s->node[0].r;
    trp_raft_msg m;
    uint64_t t1[] = {1, 1}, t2[] = {2};
    const char *ab[] = {"a", "b"}, *c[] = {"c"}, *d[] = {"d"};
    append_msg(s, &m, 1, 0, t1, ab, 2, s->anchor, 0);
    step(s, 0, &m);
    drain_opt(s, 0, &o, false);
    CHECK(acks_to(&o, 2) == 1); /* the first ack to this leader: what is durable (0) */
    outbox_clear(&o);
    mpz_add_ui(s->tmp, s->base, 2);
    s->node[0].durable = 2;
    trp_raft_persisted(r, s->tmp);
    drain_opt(s, 0, &o, false);
    trp_raft_msg *a = find_msg(&o, TRP_RAFT_APPEND_RESP, 2);
    CHECK(a && a->flag && (mpz_sub(s->tmp, a->seq, s->base), mpz_cmp_ui(s->tmp, 2) == 0));
    outbox_clear(&o);
    append_msg(s, &m, 1, 2, t1, c, 1, s->node[0].e[1].hash, 1);
    step(s, 0, &m);
    drain_opt(s, 0, &o, false);
    CHECK(acks_to(&o, 2) == 0); /* it would say 2 again */
    outbox_clear(&o);
    mpz_add_ui(s->tmp, s->base, 3);
    s->node[0].durable = 3;
    trp_raft_persisted(r, s->tmp);
    drain_opt(s, 0, &o, false);
    a = find_msg(&o, TRP_RAFT_APPEND_RESP, 2);
    CHECK(a && a->flag && (mpz_sub(s->tmp, a->seq, s->base), mpz_cmp_ui(s->tmp, 3) == 0));
    outbox_clear(&o);
    /* a duplicate of what is durable is acknowledged in full, again */
    append_msg(s, &m, 1, 2, t1, c, 1, s->node[0].e[1].hash, 1);
    step(s, 0, &m);
    drain_opt(s, 0, &o, false);
    CHECK(acks_to(&o, 2) == 1);
    outbox_clear(&o);
    /* a new leader (node 3, term 2) hears the first partial ack */
    append_msg(s, &m, 2, 3, t2, d, 1, s->node[0].e[2].hash, 1);
    m.from = 3;
    step(s, 0, &m);
    drain_opt(s, 0, &o, false);
    CHECKF(trp_raft_leader(r) == 3 && acks_to(&o, 3) == 1, "leader %" PRIu64 ", acks %zu",
           trp_raft_leader(r), acks_to(&o, 3));
    outbox_clear(&o);
    free_cluster(s);
}

/* ---- clients ------------------------------------------------------------------ */

static void test_exactly_once_and_restart(void)
{
    sim *s = new_cluster(1, 0);
    outbox o = {0};
    trp_raft_tick(s->node[0].r, 1);
    drain(s, 0, &o);
    trp_raft_propose(s->node[0].r, 77, 1, "hello", 5, NULL);
    trp_raft_propose(s->node[0].r, 77, 1, "hello", 5, NULL);
    drain(s, 0, &o);
    CHECK(s->node[0].n == 1);
    CHECK(o.n_rep == 2 && o.rep[0].status == 0 && o.rep[1].status == 0);
    CHECK(mpz_cmp(o.rep[0].seq, o.rep[1].seq) == 0);
    outbox_clear(&o);
    restart_node(s, 0);
    trp_raft_tick(s->node[0].r, s->now += 10);
    drain(s, 0, &o);
    outbox_clear(&o);
    trp_raft_propose(s->node[0].r, 77, 1, "hello", 5, NULL);
    drain(s, 0, &o);
    CHECK(o.n_rep == 1 && o.rep[0].status == 0 && mpz_cmp(o.rep[0].seq, s->base) == 0);
    CHECK(s->node[0].n == 1); /* the rebuilt table knew it */
    outbox_clear(&o);
    static char big[TRP_RAFT_MAX_ENTRY];
    trp_raft_propose(s->node[0].r, 78, 1, big, sizeof big, NULL);
    drain(s, 0, &o);
    CHECK(o.n_rep == 1 && o.rep[0].status == TRP_ETOOBIG && s->node[0].n == 1);
    outbox_clear(&o);
    /* many requests in flight from one client: each retry still exactly once */
    for (uint64_t q = 2; q <= 70; q++)
        trp_raft_propose(s->node[0].r, 77, q, "m", 1, NULL);
    drain(s, 0, &o);
    outbox_clear(&o);
    trp_raft_propose(s->node[0].r, 77, 12, "m", 1, NULL);
    drain(s, 0, &o);
    CHECK(o.n_rep == 1 && o.rep[0].status == TRP_OK);
    CHECK(s->node[0].n == 70);
    outbox_clear(&o);
    /* below the 64 remembered requests: refused rather than stored twice */
    trp_raft_propose(s->node[0].r, 77, 2, "m", 1, NULL);
    drain(s, 0, &o);
    CHECK(o.n_rep == 1 && o.rep[0].status == TRP_EINVAL && s->node[0].n == 70);
    outbox_clear(&o);
    free_cluster(s);
}

/* More clients than session_max: the table forgets the one whose newest
 * entry is oldest, and still finds every client it keeps (through its hash
 * index, with structured ids that share low bits): retries of the kept
 * clients get their original seqs and store nothing; a forgotten client's
 * retry is stored anew. */
static void test_sessions_past_session_max(void)
{
    sim *s = new_cluster(1, 0);
    outbox o = {0};
    trp_raft *r = s->node[0].r;
    r->cfg.session_max = 64; /* before the first session */
    trp_raft_tick(r, 1);
    drain(s, 0, &o);
    outbox_clear(&o);
    enum { CLIENTS = 200 };
    static mpz_t seq[CLIENTS];
    for (uint64_t k = 0; k < CLIENTS; k++) {
        trp_raft_propose(r, (k + 1) << 40, 1, "s", 1, NULL);
        drain(s, 0, &o);
        REQUIRE(o.n_rep == 1 && o.rep[0].status == TRP_OK);
        mpz_init_set(seq[k], o.rep[0].seq);
        outbox_clear(&o);
    }
    size_t stored = s->node[0].n;
    CHECK(r->n_sessions == 64);
    int same = 0;
    for (uint64_t k = CLIENTS - 64; k < CLIENTS; k++) {
        trp_raft_propose(r, (k + 1) << 40, 1, "s", 1, NULL);
        drain(s, 0, &o);
        same += o.n_rep == 1 && o.rep[0].status == TRP_OK && mpz_cmp(o.rep[0].seq, seq[k]) == 0;
        outbox_clear(&o);
    }
    CHECKF(same == 64 && s->node[0].n == stored, "%d of 64 retries answered with their seq", same);
    trp_raft_propose(r, 1ull << 40, 1, "s", 1, NULL); /* the first client: forgotten */
    drain(s, 0, &o);
    CHECK(o.n_rep == 1 && o.rep[0].status == TRP_OK && mpz_cmp(o.rep[0].seq, seq[0]) != 0);
    CHECK(s->node[0].n == stored + 1);
    outbox_clear(&o);
    for (int k = 0; k < CLIENTS; k++)
        mpz_clear(seq[k]);
    free_cluster(s);
}

static void test_conditional_append(void)
{
    sim *s = new_cluster(1, 0);
    outbox o = {0};
    trp_raft_tick(s->node[0].r, 1);
    drain(s, 0, &o);
    uint8_t head[32];
    memcpy(head, trp_raft_head_hash(s->node[0].r), 32);
    trp_raft_propose(s->node[0].r, 1, 1, "a", 1, head);
    drain(s, 0, &o);
    CHECK(o.n_rep == 1 && o.rep[0].status == TRP_OK);
    outbox_clear(&o);
    trp_raft_propose(s->node[0].r, 1, 2, "b", 1, head); /* head moved on */
    drain(s, 0, &o);
    CHECK(o.n_rep == 1 && o.rep[0].status == TRP_ECONFLICT);
    CHECK(o.n_rep == 1 && !memcmp(o.rep[0].hash, trp_raft_head_hash(s->node[0].r), 32));
    CHECK(s->node[0].n == 1);
    outbox_clear(&o);
    free_cluster(s);
}

static void test_read_index_needs_quorum(void)
{
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    uint64_t v[] = {2};
    make_leader(s, 0, v, 1, &o);
    outbox_clear(&o);
    trp_raft_read(s->node[0].r, 4, 1);
    drain(s, 0, &o);
    CHECK(o.n_rep == 0);
    trp_raft_msg *hb = find_msg(&o, TRP_RAFT_HEARTBEAT, 2);
    REQUIRE(hb && hb->ctx > 0);
    uint64_t ctx = hb->ctx;
    outbox_clear(&o);
    trp_raft_msg m;
    msg_to(&m, TRP_RAFT_HEARTBEAT_RESP, 3, 1, 1);
    m.ctx = ctx;
    step(s, 0, &m);
    drain(s, 0, &o);
    CHECK(o.n_rep == 1 && o.rep[0].status == TRP_OK && mpz_cmp(o.rep[0].seq, s->base) == 0);
    outbox_clear(&o);
    free_cluster(s);
}

static void test_follower_forwards(void)
{
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    trp_raft_propose(s->node[0].r, 1, 1, "a", 1, NULL);
    drain(s, 0, &o);
    CHECK(o.n_rep == 1 && o.rep[0].status == TRP_EUNAVAIL && o.rep[0].leader_hint == 0);
    outbox_clear(&o);
    trp_raft_msg m;
    msg_to(&m, TRP_RAFT_HEARTBEAT, 3, 1, 2);
    mpz_set(m.commit, s->base);
    step(s, 0, &m);
    drain(s, 0, &o);
    outbox_clear(&o);
    trp_raft_propose(s->node[0].r, 1, 1, "a", 1, NULL);
    drain(s, 0, &o);
    trp_raft_msg *f = find_msg(&o, TRP_RAFT_PROPOSE, 3);
    CHECK(f && f->client == 1 && f->req == 1 && f->len == 1);
    outbox_clear(&o);
    free_cluster(s);
}

static size_t count_msgs(outbox *o, int type, uint64_t to)
{
    size_t k = 0;
    for (size_t i = 0; i < o->n; i++)
        k += o->m[i].type == type && o->m[i].to == to;
    return k;
}

/* Node 0 (restarted with s->cfg) leads, elected by node 2, whose answer
 * to the probe put it in replication. */
static bool lead_replicating_to_2(sim *s, outbox *o)
{
    restart_node(s, 0);
    uint64_t v[] = {2};
    make_leader(s, 0, v, 1, o);
    if (trp_raft_role(s->node[0].r) != TRP_RAFT_LEADER)
        return false;
    outbox_clear(o);
    trp_raft_msg m;
    msg_to(&m, TRP_RAFT_APPEND_RESP, 2, 1, trp_raft_term(s->node[0].r));
    m.flag = true;
    mpz_set(m.seq, s->base); /* probe answered: replicate */
    step(s, 0, &m);
    drain(s, 0, o);
    outbox_clear(o);
    return true;
}

/* Node 0 takes n proposals of 8 bytes from client 5, requests first+1 on. */
static void propose_eights(sim *s, int first, int n)
{
    for (int i = first; i < first + n; i++)
        trp_raft_propose(s->node[0].r, 5, (uint64_t)i + 1, "12345678", 8, NULL);
}

/* Follower `from` answers leader node 0's append: an ack up to seq, or
 * (hint not NULL) a rejection of the append at seq with its hint. */
static void answer_append(sim *s, uint64_t from, const mpz_t seq, const mpz_t hint)
{
    trp_raft_msg m;
    msg_to(&m, TRP_RAFT_APPEND_RESP, from, 1, trp_raft_term(s->node[0].r));
    m.flag = hint == NULL;
    mpz_set(m.seq, seq);
    if (hint)
        mpz_set(m.hint, hint);
    step(s, 0, &m);
}

static void test_pipeline_window_and_batching(void)
{
    sim *s = new_cluster(3, 0);
    s->cfg.max_inflight = 2;
    s->cfg.max_msg_bytes = 60; /* two 25-byte entries per message at most */
    outbox o = {0};
    REQUIRE(lead_replicating_to_2(s, &o));
    propose_eights(s, 0, 10);
    drain(s, 0, &o);
    CHECK(count_msgs(&o, TRP_RAFT_APPEND, 2) == 2); /* the window */
    for (size_t i = 0; i < o.n; i++)
        if (o.m[i].type == TRP_RAFT_APPEND && o.m[i].to == 2) {
            size_t bytes = 0;
            for (size_t k = 0; k < o.m[i].n_entries; k++)
                bytes += o.m[i].entries[k].len;
            /* proposals made together leave together: full messages */
            CHECK(bytes <= 60 && o.m[i].n_entries == 2);
        }
    outbox_clear(&o);
    mpz_add_ui(s->tmp, s->base, 4);
    answer_append(s, 2, s->tmp, NULL); /* both messages acknowledged */
    drain(s, 0, &o);
    /* two slots free; the 6 waiting entries go two per message (3 x 25 bytes
     * would pass max_msg_bytes) */
    CHECKF(count_msgs(&o, TRP_RAFT_APPEND, 2) == 2, "%zu sent", count_msgs(&o, TRP_RAFT_APPEND, 2));
    for (size_t i = 0; i < o.n; i++)
        if (o.m[i].type == TRP_RAFT_APPEND && o.m[i].to == 2)
            CHECK(o.m[i].n_entries == 2);
    outbox_clear(&o);
    free_cluster(s);
}

/* The pipeline is max_inflight_trickle deep while a follower's backlog is
 * short, so a trickle of proposals batches; a backlog of
 * TRP_RAFT_BACKLOG_ENTRIES or more streams through max_inflight_msgs. */
static void test_pipeline_deepens_for_a_backlog(void)
{
    sim *s = new_cluster(3, 0);
    s->cfg.max_inflight = 8;
    s->cfg.max_inflight_trickle = 2;
    s->cfg.max_msg_bytes = 60;
    outbox o = {0};
    REQUIRE(lead_replicating_to_2(s, &o));
    propose_eights(s, 0, 10);
    drain(s, 0, &o);
    CHECKF(count_msgs(&o, TRP_RAFT_APPEND, 2) == 2, "%zu sent for a short backlog",
           count_msgs(&o, TRP_RAFT_APPEND, 2));
    outbox_clear(&o);
    propose_eights(s, 10, 2 * TRP_RAFT_BACKLOG_ENTRIES);
    drain(s, 0, &o);
    /* 2 already in flight: the backlog fills the other 6 slots */
    CHECKF(count_msgs(&o, TRP_RAFT_APPEND, 2) == 6, "%zu sent for a backlog",
           count_msgs(&o, TRP_RAFT_APPEND, 2));
    outbox_clear(&o);
    free_cluster(s);
}

/* Find the last APPEND to `to` in the outbox. */
static trp_raft_msg *last_append_to(outbox *o, uint64_t to)
{
    trp_raft_msg *m = NULL;
    for (size_t i = 0; i < o->n; i++)
        if (o->m[i].type == TRP_RAFT_APPEND && o->m[i].to == to)
            m = &o->m[i];
    return m;
}

/* Entry bytes in the APPENDs to `to` in the outbox, and their count. */
static size_t append_bytes_to(outbox *o, uint64_t to, size_t *msgs)
{
    size_t bytes = 0;
    *msgs = 0;
    for (size_t i = 0; i < o->n; i++)
        if (o->m[i].type == TRP_RAFT_APPEND && o->m[i].to == to) {
            ++*msgs;
            for (size_t k = 0; k < o->m[i].n_entries; k++)
                bytes += o->m[i].entries[k].len;
        }
    return bytes;
}

/* Heartbeats (50 ms) until the leader probes follower 2 again: the
 * probe's seq in *seq; 0 if it does not within `max`. */
static int heartbeats_to_probe(sim *s, outbox *o, int max, mpz_t seq)
{
    for (int k = 1; k <= max; k++) {
        outbox_clear(o);
        trp_raft_tick(s->node[0].r, s->now += 50);
        drain(s, 0, o);
        trp_raft_msg *hb = find_msg(o, TRP_RAFT_HEARTBEAT, 3);
        if (hb) { /* node 3 keeps the leader in office (check-quorum) */
            trp_raft_msg m;
            msg_to(&m, TRP_RAFT_HEARTBEAT_RESP, 3, 1, trp_raft_term(s->node[0].r));
            m.ctx = hb->ctx;
            step(s, 0, &m);
            drain(s, 0, o);
        }
        trp_raft_msg *a = last_append_to(o, 2);
        if (a) {
            mpz_set(seq, a->seq);
            CHECKF(a->n_entries == 0, "a probe with %zu entries of 100 KB", a->n_entries);
            return k;
        }
    }
    return 0;
}

/* A follower on a slow link: appends it never answers are not sent again
 * whole every few heartbeats. Each stall halves what is in flight to it
 * (8 MiB, 4, 2, ... down to 64 KiB), a probe carries no entry larger than
 * 4 KiB, and at 64 KiB each further stall doubles the wait, so that one
 * message slower than three heartbeats still crosses. */
static void test_slow_follower_gets_less_in_flight(void)
{
    sim *s = new_cluster(3, 0);
    s->cfg.max_inflight = 64; /* 64 messages of 2 entries: more than 8 MiB */
    outbox o = {0};
    REQUIRE(lead_replicating_to_2(s, &o));
    char *big = malloc(100000);
    memset(big, 'x', 100000);
    for (int i = 0; i < 120; i++) /* 12 MB */
        trp_raft_propose(s->node[0].r, 5, (uint64_t)i + 1, big, 100000, NULL);
    free(big);
    drain(s, 0, &o);
    size_t msgs, bytes = append_bytes_to(&o, 2, &msgs);
    CHECKF(bytes >= (8u << 20) && bytes < (8u << 20) + 300000, "%zu bytes in flight at first", bytes);
    mpz_t seq;
    mpz_init(seq);
    size_t window = 8u << 20;
    for (int stall = 1; stall <= 7; stall++) {
        int k = heartbeats_to_probe(s, &o, 10, seq);
        CHECKF(k == 3, "stall %d: probed after %d heartbeats", stall, k);
        outbox_clear(&o);
        answer_append(s, 2, seq, NULL); /* the probe matches; nothing new acknowledged */
        drain(s, 0, &o);
        window = window / 2 > (64u << 10) ? window / 2 : (64u << 10);
        bytes = append_bytes_to(&o, 2, &msgs);
        /* the last message may pass the window: by at most one message */
        size_t msg_max = window < (256u << 10) ? 100017 : (256u << 10);
        CHECKF(bytes >= window && bytes <= window + msg_max, "stall %d: %zu bytes in flight for %zu",
               stall, bytes, window);
    }
    CHECK(msgs == 1); /* at 64 KiB: one entry of 100 KB at a time */
    /* at the smallest window the wait doubles instead, from the next one */
    static const int waits[] = {3, 6, 12, 24, 32, 32};
    for (size_t w = 0; w < sizeof waits / sizeof *waits; w++) {
        int k = heartbeats_to_probe(s, &o, 40, seq);
        CHECKF(k == waits[w], "wait %zu: probed after %d heartbeats, not %d", w, k, waits[w]);
        outbox_clear(&o);
        answer_append(s, 2, seq, NULL);
        drain(s, 0, &o);
    }
    /* acknowledgements grow the window again by a quarter of what they
     * free: 64 KiB + 25 KB holds one entry of 100 KB, then 2, then 3 */
    size_t most = 0; /* the last probe's answer sent one message: o has it */
    for (int ack = 0; ack < 8; ack++) {
        trp_raft_msg *a = last_append_to(&o, 2);
        REQUIRE(a);
        mpz_add_ui(seq, a->seq, a->n_entries); /* everything sent so far */
        outbox_clear(&o);
        answer_append(s, 2, seq, NULL);
        drain(s, 0, &o);
        append_bytes_to(&o, 2, &msgs);
        CHECKF(ack > 0 || msgs == 1, "first ack: %zu messages", msgs);
        if (msgs > most)
            most = msgs;
    }
    CHECKF(most >= 3, "at most %zu messages in flight after 8 acks", most);
    mpz_clear(seq);
    outbox_clear(&o);
    free_cluster(s);
}

/* ---- spares ------------------------------------------------------------------ */


/* A follower whose log ends below what it acknowledged (it lost entries:
 * a disk replaced) is probed again from its end and repaired; a rejection
 * older than its ack is still ignored. */
/* Node 0 leads, took six proposals, and node 2 acknowledged all of them
 * (its match is end, the leader's end); the outbox is empty. */
static bool lead_with_2_caught_up(sim *s, outbox *o, mpz_t end)
{
    if (!lead_replicating_to_2(s, o))
        return false;
    propose_eights(s, 0, 6);
    drain(s, 0, o);
    trp_raft_msg *a = last_append_to(o, 2);
    if (!a)
        return false;
    mpz_add_ui(end, a->seq, a->n_entries);
    outbox_clear(o);
    answer_append(s, 2, end, NULL);
    drain(s, 0, o);
    outbox_clear(o);
    return true;
}

static void test_follower_that_lost_entries_is_repaired(void)
{
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    mpz_t end;
    mpz_init(end);
    REQUIRE(lead_with_2_caught_up(s, &o, end));
    /* a stale rejection (of an append before the match) changes nothing */
    mpz_add_ui(s->tmp, s->base, 1);
    answer_append(s, 2, s->tmp, s->base);
    drain(s, 0, &o);
    CHECK(count_msgs(&o, TRP_RAFT_APPEND, 2) == 0);
    outbox_clear(&o);
    /* a rejection of an append at the match, with an empty log: it lost
     * everything; the leader probes from its end (the log's start) */
    answer_append(s, 2, end, s->base);
    drain(s, 0, &o);
    trp_raft_msg *a = last_append_to(&o, 2);
    CHECKF(a && mpz_cmp(a->seq, s->base) == 0, "append to 2 %s", a ? "not at the start" : "missing");
    outbox_clear(&o);
    /* it takes them all and acknowledges: replicating again to the end */
    answer_append(s, 2, end, NULL);
    propose_eights(s, 6, 1);
    drain(s, 0, &o);
    a = last_append_to(&o, 2);
    CHECKF(a && mpz_cmp(a->seq, end) == 0, "next append to 2 %s", a ? "not at the end" : "missing");
    outbox_clear(&o);
    mpz_clear(end);
    free_cluster(s);
}

/* A caught-up follower that then lost its entries while nothing is being
 * appended: the leader's periodic empty append at its end (once every
 * RAFT_IDLE_CHECK_TICKS heartbeats) is rejected, and repairs it. */
static void test_idle_follower_that_lost_entries_is_found(void)
{
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    mpz_t end;
    mpz_init(end);
    REQUIRE(lead_with_2_caught_up(s, &o, end));
    /* idle: heartbeats answered, and one empty append at the end */
    size_t appends = 0, empty_at_end = 0;
    for (int k = 0; k < RAFT_IDLE_CHECK_TICKS + 2; k++) {
        trp_raft_tick(s->node[0].r, s->now += 50);
        drain(s, 0, &o);
        for (size_t i = 0; i < o.n; i++) {
            trp_raft_msg *m = &o.m[i];
            if (m->to == 2 && m->type == TRP_RAFT_APPEND) {
                appends++;
                empty_at_end += m->n_entries == 0 && mpz_cmp(m->seq, end) == 0;
            }
        }
        trp_raft_msg *hb = find_msg(&o, TRP_RAFT_HEARTBEAT, 2);
        uint64_t ctx = hb ? hb->ctx : 0;
        outbox_clear(&o);
        if (hb) {
            trp_raft_msg m;
            msg_to(&m, TRP_RAFT_HEARTBEAT_RESP, 2, 1, trp_raft_term(s->node[0].r));
            m.ctx = ctx;
            step(s, 0, &m);
            drain(s, 0, &o);
            outbox_clear(&o);
        }
    }
    CHECK(trp_raft_role(s->node[0].r) == TRP_RAFT_LEADER);
    CHECKF(appends == 1 && empty_at_end == 1, "%zu appends to 2, %zu empty at the end", appends,
           empty_at_end);
    /* it has lost everything: it rejects the check, and is probed from the start */
    answer_append(s, 2, end, s->base);
    drain(s, 0, &o);
    trp_raft_msg *a = last_append_to(&o, 2);
    CHECKF(a && mpz_cmp(a->seq, s->base) == 0, "append to 2 %s", a ? "not at the start" : "missing");
    outbox_clear(&o);
    mpz_clear(end);
    free_cluster(s);
}

/* Node 0 of a cluster with spares leads; every follower answered its probe
 * (so all replicate); the outbox is empty. */
/* A node that lost its state (trp-node found its directory empty) votes
 * only for candidates that are rejoining too, and runs as one, until it
 * holds a current leader's commit: its empty log would make any candidate
 * look up to date, also one that lacks entries committed with the copy it
 * lost. Rejoining nodes elect among themselves (a new cluster on empty
 * disks: a quorum of them has nothing to keep). */
static void test_rejoining_node_votes_only_among_rejoining(void)
{
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    trp_raft_msg m;
    s->node[0].rejoining = true;
    restart_node(s, 0);
    trp_raft *r = s->node[0].r;
    CHECK(trp_raft_rejoining(r));
    s->now += 1000; /* its timer fires: it asks, saying it rejoins */
    trp_raft_tick(r, s->now);
    drain(s, 0, &o);
    trp_raft_msg *pre = find_msg(&o, TRP_RAFT_PREVOTE, 2);
    CHECK(pre && pre->flag);
    outbox_clear(&o);
    ask_vote(s, 0, TRP_RAFT_PREVOTE, 3, 1, false);
    ask_vote(s, 0, TRP_RAFT_VOTE, 3, 2, false);
    drain(s, 0, &o);
    trp_raft_msg *pv = find_msg(&o, TRP_RAFT_PREVOTE_RESP, 3), *v = find_msg(&o, TRP_RAFT_VOTE_RESP, 3);
    CHECK(pv && !pv->flag);
    CHECK(v && !v->flag && v->term == 2);
    CHECK(trp_raft_vote(r) == 0);
    outbox_clear(&o);
    ask_vote(s, 0, TRP_RAFT_PREVOTE, 3, 3, true); /* a rejoining candidate: granted */
    drain(s, 0, &o);
    pv = find_msg(&o, TRP_RAFT_PREVOTE_RESP, 3);
    CHECK(pv && pv->flag);
    outbox_clear(&o);
    /* leader 2 of term 3 sends a, b with commit 2, but has not committed in
     * its own term: what it calls committed may not be all there is */
    uint64_t terms[] = {2, 2};
    const char *ab[] = {"a", "b"};
    append_msg(s, &m, 3, 0, terms, ab, 2, s->anchor, 0);
    mpz_add_ui(m.commit, s->base, 2);
    step(s, 0, &m);
    drain(s, 0, &o);
    CHECK(s->node[0].n == 2 && s->node[0].commit == 2);
    CHECK(trp_raft_rejoining(r));
    outbox_clear(&o);
    /* its commit now covers an entry of its term (c): that commit reached,
     * the node's copy counts again */
    uint64_t t3[] = {3};
    const char *c[] = {"c"};
    append_msg(s, &m, 3, 2, t3, c, 1, s->node[0].e[1].hash, 2);
    mpz_add_ui(m.commit, s->base, 3);
    m.commit_current = true;
    drain_opt(s, 0, &o, false); /* nothing pending */
    step(s, 0, &m);
    drain_opt(s, 0, &o, false); /* c not yet durable: commit stays at 2 */
    CHECK(trp_raft_rejoining(r));
    mpz_t three;
    mpz_init(three);
    mpz_add_ui(three, s->base, 3);
    s->node[0].durable = 3;
    trp_raft_persisted(r, three);
    mpz_clear(three);
    drain(s, 0, &o);
    CHECK(s->node[0].commit == 3);
    CHECK(!trp_raft_rejoining(r));
    outbox_clear(&o);
    /* and it votes again, once the leader is gone */
    s->now += 1000;
    trp_raft_tick(r, s->now);
    drain(s, 0, &o);
    outbox_clear(&o);
    msg_to(&m, TRP_RAFT_VOTE, 3, 1, 4);
    mpz_add_ui(m.seq, s->base, 3);
    m.log_term = 3;
    step(s, 0, &m);
    drain(s, 0, &o);
    v = find_msg(&o, TRP_RAFT_VOTE_RESP, 3);
    CHECK(v && v->flag);
    outbox_clear(&o);
    free_cluster(s);
}

/* Where two quorums always share a node besides the rejoining one (an even
 * count, or several groups), that node guards every committed entry, so
 * the rejoining node still votes: with two nodes, neither could ever lead
 * again otherwise. With one odd group it does not (the test above). */
static void test_rejoining_votes_where_quorums_overlap_elsewhere(void)
{
    static const int sizes[][2] = {{2, 0}, {4, 0}, {5, 2}, {3, 0}, {5, 1}};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        sim *s = new_cluster(sizes[k][0], sizes[k][1]);
        outbox o = {0};
        s->node[0].rejoining = true;
        restart_node(s, 0);
        CHECK(trp_raft_rejoining(s->node[0].r));
        ask_vote(s, 0, TRP_RAFT_VOTE, 2, 5, false);
        drain(s, 0, &o);
        trp_raft_msg *v = find_msg(&o, TRP_RAFT_VOTE_RESP, 2);
        bool expect = k < 3;
        CHECKF(v && v->flag == expect, "%d nodes, %d groups: vote %s", sizes[k][0], sizes[k][1],
               v ? (v->flag ? "granted" : "refused") : "none");
        CHECK(trp_raft_rejoining(s->node[0].r)); /* it still has to catch up */
        outbox_clear(&o);
        /* and a node that is not rejoining, asked by one that is */
        ask_vote(s, 1, TRP_RAFT_VOTE, 1, 7, true);
        drain(s, 1, &o);
        v = find_msg(&o, TRP_RAFT_VOTE_RESP, 1);
        CHECKF(v && v->flag == expect, "%d nodes, %d groups: vote for a rejoining node %s",
               sizes[k][0], sizes[k][1], v ? (v->flag ? "granted" : "refused") : "none");
        outbox_clear(&o);
        free_cluster(s);
    }
}

/* Alone, a node has no one to catch up from: it elects itself. */
static void test_rejoining_single_node_elects_itself(void)
{
    sim *s = new_cluster(1, 0);
    outbox o = {0};
    s->node[0].rejoining = true;
    restart_node(s, 0);
    CHECK(!trp_raft_rejoining(s->node[0].r));
    s->now += 10;
    trp_raft_tick(s->node[0].r, s->now);
    drain(s, 0, &o);
    CHECK(trp_raft_role(s->node[0].r) == TRP_RAFT_LEADER);
    outbox_clear(&o);
    free_cluster(s);
}

static bool lead_with_spares(sim *s, outbox *o)
{
    s->cfg.spare_ms = 5;
    restart_node(s, 0);
    uint64_t v[TRP_RAFT_MAX_NODES];
    for (int i = 1; i < s->cfg.n; i++)
        v[i - 1] = (uint64_t)i + 1;
    make_leader(s, 0, v, (size_t)s->cfg.n - 1, o);
    if (trp_raft_role(s->node[0].r) != TRP_RAFT_LEADER)
        return false;
    outbox_clear(o);
    for (int i = 1; i < s->cfg.n; i++) {
        trp_raft_msg m;
        msg_to(&m, TRP_RAFT_APPEND_RESP, (uint64_t)i + 1, 1, trp_raft_term(s->node[0].r));
        m.flag = true;
        mpz_set(m.seq, s->base);
        step(s, 0, &m);
    }
    drain(s, 0, o);
    outbox_clear(o);
    return true;
}

/* Which followers the next proposal's appends call spares, as a bit mask
 * of node indexes (bit i: node id i+1); -1 if a follower got no append. */
static int spares_of_next_append(sim *s, outbox *o, uint64_t req)
{
    trp_raft_propose(s->node[0].r, 5, req, "x", 1, NULL);
    drain(s, 0, o);
    int mask = 0;
    for (int i = 1; i < s->cfg.n; i++) {
        trp_raft_msg *m = last_append_to(o, (uint64_t)i + 1);
        if (!m)
            return -1;
        mask |= m->flag ? 1 << i : 0;
    }
    outbox_clear(o);
    return mask;
}

/* With spares on, the leader needs the first followers in config order
 * that with it form a quorum and calls the others spares, in the flag of
 * their appends: 3 nodes, 5 nodes, and two groups of 3 (a majority of
 * each: ids 1-2 and 4-5). Without the option nobody is a spare. */
static void test_spares_complete_a_quorum(void)
{
    static const struct {
        int n, groups, mask;
    } cases[] = {{3, 0, 1 << 2}, {5, 0, 1 << 3 | 1 << 4}, {6, 2, 1 << 2 | 1 << 5}, {2, 0, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        sim *s = new_cluster(cases[c].n, cases[c].groups);
        outbox o = {0};
        REQUIRE(lead_with_spares(s, &o));
        int mask = spares_of_next_append(s, &o, 1);
        CHECKF(mask == cases[c].mask, "%d nodes, %d groups: spares 0x%x, want 0x%x", cases[c].n,
               cases[c].groups, (unsigned)mask, (unsigned)cases[c].mask);
        free_cluster(s);
    }
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    REQUIRE(lead_with_spares(s, &o));
    s->node[0].r->cfg.spares = false; /* as a node configured without them */
    replication_pick_spares(s->node[0].r);
    CHECK(spares_of_next_append(s, &o, 1) == 0);
    free_cluster(s);
}

/* A needed follower that falls silent for two heartbeats hands its place
 * to a spare that holds everything committed; the choice then stays put
 * while the new one answers, even when the old one is back. */
static void test_spare_replaces_a_silent_follower(void)
{
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    REQUIRE(lead_with_spares(s, &o));
    REQUIRE(spares_of_next_append(s, &o, 1) == 1 << 2); /* id 3 spare */
    trp_raft *r = s->node[0].r;
    uint64_t term = trp_raft_term(r);
    /* id 3 acknowledges everything (it commits with the leader); id 2 is silent */
    for (int k = 0; k < 6; k++) {
        trp_raft_tick(r, s->now += 25);
        trp_raft_msg m;
        msg_to(&m, TRP_RAFT_APPEND_RESP, 3, 1, term);
        m.flag = true;
        mpz_add_ui(m.seq, s->base, s->node[0].n);
        step(s, 0, &m);
        drain(s, 0, &o);
        outbox_clear(&o);
    }
    CHECK(trp_raft_role(r) == TRP_RAFT_LEADER);
    int mask = spares_of_next_append(s, &o, 2);
    CHECKF(mask == 1 << 1 || mask == -1, "spares 0x%x after id 2 fell silent", (unsigned)mask);
    CHECK(!r->peers[2].spare && r->peers[1].spare);
    /* id 2 answers again, and holds everything: id 3 keeps its place */
    for (int k = 0; k < 4; k++) {
        trp_raft_tick(r, s->now += 25);
        for (uint64_t id = 2; id <= 3; id++) {
            trp_raft_msg m;
            msg_to(&m, TRP_RAFT_APPEND_RESP, id, 1, term);
            m.flag = true;
            mpz_add_ui(m.seq, s->base, s->node[0].n);
            step(s, 0, &m);
        }
        drain(s, 0, &o);
        outbox_clear(&o);
    }
    CHECK(!r->peers[2].spare && r->peers[1].spare);
    free_cluster(s);
}

/* A follower is a spare while its leader's appends say so, and stops being
 * one with an append that does not, or with a new leader or term. */
static void test_follower_follows_the_spare_flag(void)
{
    sim *s = new_cluster(3, 0);
    outbox o = {0};
    trp_raft *r = s->node[0].r;
    uint64_t t1[] = {1};
    const char *a[] = {"a"}, *b[] = {"b"};
    trp_raft_msg m;
    append_msg(s, &m, 1, 0, t1, a, 1, s->anchor, 0);
    m.flag = true;
    step(s, 0, &m);
    drain(s, 0, &o);
    CHECK(trp_raft_spare(r));
    outbox_clear(&o);
    append_msg(s, &m, 1, 1, t1, b, 1, s->node[0].e[0].hash, 1);
    step(s, 0, &m);
    drain(s, 0, &o);
    CHECK(!trp_raft_spare(r));
    outbox_clear(&o);
    append_msg(s, &m, 1, 2, t1, a, 1, s->node[0].e[1].hash, 1);
    m.flag = true;
    step(s, 0, &m);
    drain(s, 0, &o);
    REQUIRE(trp_raft_spare(r));
    outbox_clear(&o);
    for (int flag = 0; flag < 2; flag++) { /* heartbeats carry it too */
        msg_to(&m, TRP_RAFT_HEARTBEAT, 2, 1, 1);
        mpz_set(m.commit, s->base);
        m.flag = flag;
        step(s, 0, &m);
        drain(s, 0, &o);
        CHECKF(trp_raft_spare(r) == flag, "heartbeat flag %d", flag);
        outbox_clear(&o);
    }
    trp_raft_tick(r, s->now += 1000); /* the leader fell silent */
    drain(s, 0, &o);
    outbox_clear(&o);
    msg_to(&m, TRP_RAFT_VOTE, 3, 1, 5); /* a candidate of a later term: no leader now */
    mpz_add_ui(m.seq, s->base, 3);
    m.log_term = 1;
    step(s, 0, &m);
    drain(s, 0, &o);
    CHECKF(trp_raft_term(r) == 5 && trp_raft_role(r) == TRP_RAFT_FOLLOWER && !trp_raft_spare(r),
           "term %" PRIu64 ", role %d", trp_raft_term(r), trp_raft_role(r));
    outbox_clear(&o);
    msg_to(&m, TRP_RAFT_HEARTBEAT, 3, 1, 5); /* its leadership, no flag */
    mpz_set(m.commit, s->base);
    step(s, 0, &m);
    drain(s, 0, &o);
    CHECK(trp_raft_leader(r) == 3 && !trp_raft_spare(r));
    outbox_clear(&o);
    free_cluster(s);
}

static void test_storage_failure_fail_stops(void)
{
    sim *s = new_cluster(1, 0);
    outbox o = {0};
    trp_raft_tick(s->node[0].r, 1);
    drain(s, 0, &o);
    REQUIRE(trp_raft_role(s->node[0].r) == TRP_RAFT_LEADER);
    s->node[0].fail_appends = true;
    CHECK(trp_raft_propose(s->node[0].r, 3, 1, "x", 1, NULL) == TRP_EIO);
    drain(s, 0, &o);
    trp_err err = {0};
    CHECK(trp_raft_failed(s->node[0].r, &err) && strstr(err.msg, "write failed"));
    CHECK(trp_raft_role(s->node[0].r) == TRP_RAFT_FOLLOWER); /* never leads on a broken disk */
    CHECK(o.n_rep == 1 && o.rep[0].status == TRP_EUNAVAIL);  /* the client hears of it */
    CHECK(trp_raft_tick(s->node[0].r, 1000) == TRP_EIO);
    CHECK(trp_raft_role(s->node[0].r) == TRP_RAFT_FOLLOWER);
    outbox_clear(&o);
    free_cluster(s);
}

int main(void)
{
    RUN(test_quorum_sizes);
    RUN(test_quorum_groups);
    RUN(test_config_errors);
    RUN(test_one_node_elects_itself);
    RUN(test_self_vote_counts_only_when_durable);
    RUN(test_two_nodes_need_both);
    RUN(test_four_nodes_need_three);
    RUN(test_vote_survives_restart);
    RUN(test_vote_released_after_hard_state);
    RUN(test_log_up_to_date_check);
    RUN(test_withhold_votes_while_leader_live);
    RUN(test_priority_preempts_only_when_up_to_date);
    RUN(test_outranked_precandidate_stands_down);
    RUN(test_ahead_of_asker_runs_at_once);
    RUN(test_check_quorum_steps_down);
    RUN(test_figure8_no_commit_by_counting_old_term);
    RUN(test_no_noop_when_all_committed);
    RUN(test_leader_counts_own_copy_only_when_durable);
    RUN(test_truncate_only_on_conflict);
    RUN(test_reject_broken_chain);
    RUN(test_fast_backtrack_hint);
    RUN(test_follower_commit_clamped);
    RUN(test_partial_ack_not_repeated);
    RUN(test_follower_that_lost_entries_is_repaired);
    RUN(test_idle_follower_that_lost_entries_is_found);
    RUN(test_rejoining_node_votes_only_among_rejoining);
    RUN(test_rejoining_single_node_elects_itself);
    RUN(test_rejoining_votes_where_quorums_overlap_elsewhere);
    RUN(test_exactly_once_and_restart);
    RUN(test_sessions_past_session_max);
    RUN(test_conditional_append);
    RUN(test_read_index_needs_quorum);
    RUN(test_follower_forwards);
    RUN(test_storage_failure_fail_stops);
    RUN(test_pipeline_window_and_batching);
    RUN(test_pipeline_deepens_for_a_backlog);
    RUN(test_slow_follower_gets_less_in_flight);
    RUN(test_spares_complete_a_quorum);
    RUN(test_spare_replaces_a_silent_follower);
    RUN(test_follower_follows_the_spare_flag);
    return check_done();
}
