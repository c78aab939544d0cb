/*
 * raft_election.c: leader election (Raft §5.2, §5.4.1; dissertation §9.6
 * pre-vote and §4.2.3 vote withholding; tinyraft's leader priority).
 *
 * The one idea: an election is two rounds. A node whose randomized timer
 * fires first asks for PRE-votes for term+1 without changing anything;
 * only with a quorum of pre-votes does it bump its term, vote for itself
 * and ask for real votes. A node that heard a live leader recently answers
 * neither, so a partitioned or flapping node cannot disrupt a working
 * cluster. The candidate's own vote counts only once its hard state is
 * durable (trp_raft_advance), and every vote request leaves after it.
 *
 * Leader priority (tinyraft): a node with a higher priority that sees a
 * (pre)vote request from a lower-priority candidate refuses it and starts
 * its own election at once -- but only when its log is at least as
 * up-to-date as the candidate's. Priority never overrides the log check
 * (§5.4.1): a high-priority node with a stale log votes normally, and no
 * node ever grants a vote to a candidate whose log is behind its own.
 *
 * Two followers whose timers fire within a round trip of each other would
 * both win their pre-votes and split the real vote, costing a whole
 * election timeout. So a pre-candidate that has just granted a pre-vote
 * for the same term to a node that outranks it (higher priority, then
 * lower id) stands down instead of running: exactly one of the two goes
 * on. Conversely a node asked for a pre-vote by a node whose log is
 * behind its own refuses and starts its own pre-vote at once: the asker
 * cannot win, and the leader is gone for both. Neither rule grants or
 * refuses a vote; they only move a candidacy earlier or later.
 *
 * A node that lost its state (trp_raft_restart.rejoining) votes, until it
 * has caught up, only for candidates that are rejoining too, and others
 * vote only for candidates that are not: its lost copy may have been one
 * of the quorum that committed an entry, and with an empty log every
 * candidate would look up to date to it (and it, to a node that missed
 * the entry). Where its vote is never the only overlap of two quorums (an
 * even-sized group, or several groups: quorum_rejoin_may_vote) the rule is
 * not needed, so two nodes, one of them rejoining, still elect a leader.
 */
#include "raft.h"

/* §5.4.1: the candidate's log is at least as up-to-date as ours. */
bool election_log_up_to_date(const trp_raft *r, uint64_t last_term, const mpz_t log_next)
{
    if (last_term != r->head_term)
        return last_term > r->head_term;
    return mpz_cmp(log_next, r->next) >= 0;
}

/* §4.2.3: a leader, or a follower that heard a live leader within the
 * minimum election timeout, neither answers nor adopts a vote request. */
bool election_withholding(const trp_raft *r)
{
    if (r->role == TRP_RAFT_LEADER)
        return true;
    return r->leader_heard && r->now_ms - r->leader_heard_ms < r->cfg.election_timeout_ms;
}

void election_become_follower(trp_raft *r, uint64_t term, uint64_t leader)
{
    bool changed = term != r->term || leader != r->leader || r->role != TRP_RAFT_FOLLOWER;
    if (r->role == TRP_RAFT_LEADER)
        client_lost_leadership(r);
    if (term > r->term)
        raft_set_term(r, term);
    r->role = TRP_RAFT_FOLLOWER;
    if (changed) {
        /* What matched the previous leader proves nothing about this one. */
        mpz_set(r->verified_next, r->commit_next);
        r->ack_pending = false;
        mpz_set_si(r->acked_next, -1);
        r->spare = false; /* until this leader says so */
    }
    r->leader = leader;
    if (leader) {
        r->leader_heard = true;
        r->leader_heard_ms = r->now_ms;
    }
    raft_reset_election_timer(r);
}

void election_tick(trp_raft *r)
{
    if (r->now_ms >= r->election_due_ms)
        election_start(r, true);
}

/* Start a pre-vote round (pre_vote) or a real election (§5.2). */
void election_start(trp_raft *r, bool pre_vote)
{
    for (size_t i = 0; i < r->n; i++)
        r->peers[i].granted = false;
    r->leader = 0;
    r->leader_heard = false;
    if (pre_vote) {
        r->role = TRP_RAFT_PRECANDIDATE;
        r->peers[r->self].granted = true;
    } else {
        raft_set_term(r, r->term + 1);
        r->vote = r->cfg.self;
        r->hard_state_dirty = true;
        r->role = TRP_RAFT_CANDIDATE;
    }
    raft_reset_election_timer(r);
    for (size_t i = 0; i < r->n; i++) {
        if (i == r->self)
            continue;
        trp_raft_msg *m =
            raft_msg_new(r, pre_vote ? TRP_RAFT_PREVOTE : TRP_RAFT_VOTE, r->peers[i].id);
        m->term = pre_vote ? r->term + 1 : r->term;
        mpz_set(m->seq, r->next);
        m->log_term = r->head_term;
        m->priority = r->peers[r->self].priority;
        m->flag = r->rejoining;
    }
    election_tally(r);
}

/* a outranks b when it is the better one to lead: priority, then id. */
static bool outranks(uint32_t a_priority, uint64_t a_id, uint32_t b_priority, uint64_t b_id)
{
    return a_priority != b_priority ? a_priority > b_priority : a_id < b_id;
}

/* Count votes; a quorum of pre-votes starts the real election, a quorum of
 * votes (our own only once durable) makes us leader. */
void election_tally(trp_raft *r)
{
    if (r->role == TRP_RAFT_PRECANDIDATE) {
        if (!quorum_granted(r))
            return;
        if (r->yield_term == r->term + 1 && r->now_ms < r->yield_until_ms) {
            r->role = TRP_RAFT_FOLLOWER; /* the node we pre-voted for runs */
            raft_reset_election_timer(r);
            return;
        }
        election_start(r, false);
        return;
    }
    if (r->role != TRP_RAFT_CANDIDATE)
        return;
    r->peers[r->self].granted = r->durable_term == r->term && r->durable_vote == r->cfg.self;
    if (quorum_granted(r))
        replication_become_leader(r);
}

static void respond(trp_raft *r, const trp_raft_msg *req, bool granted)
{
    bool pre = req->type == TRP_RAFT_PREVOTE;
    trp_raft_msg *m = raft_msg_new(r, pre ? TRP_RAFT_PREVOTE_RESP : TRP_RAFT_VOTE_RESP, req->from);
    m->flag = granted;
    m->term = pre && granted ? req->term : r->term;
}

/* tinyraft's priority rule: refuse a lower-priority candidate when we
 * could win ourselves, and run at once. */
static bool priority_preempts(trp_raft *r, const trp_raft_msg *m)
{
    uint32_t mine = r->peers[r->self].priority;
    if (!mine || m->priority >= mine)
        return false;
    /* Could we win? Only if the candidate's log is not ahead of ours. */
    if (m->log_term > r->head_term || (m->log_term == r->head_term && mpz_cmp(m->seq, r->next) > 0))
        return false;
    if (r->role == TRP_RAFT_FOLLOWER || r->role == TRP_RAFT_PRECANDIDATE)
        r->election_due_ms = r->now_ms; /* next tick starts our pre-vote */
    return true;
}

void election_receive_request(trp_raft *r, const trp_raft_msg *m)
{
    if (election_withholding(r))
        return; /* a live leader: do not even answer (§4.2.3) */
    if (r->rejoining != m->flag && !quorum_rejoin_may_vote(r)) {
        /* A rejoining node's log may lack entries committed with its lost
         * copy, and its vote may be the only overlap between a quorum that
         * committed them and the candidate's: to it, a candidate lacking
         * them looks up to date, and to an empty log of ours (a node that
         * missed them) so does a rejoining candidate. Rejoining nodes vote
         * among themselves: a quorum of them means a quorum lost its disks
         * (or a new cluster on empty disks), where nothing is left to keep. */
        respond(r, m, false);
        return;
    }
    bool up_to_date = election_log_up_to_date(r, m->log_term, m->seq);
    if (m->type == TRP_RAFT_PREVOTE) {
        bool grant = m->term > r->term && up_to_date && !priority_preempts(r, m);
        if (grant && outranks(m->priority, m->from, r->peers[r->self].priority, r->cfg.self)) {
            r->yield_term = m->term;
            r->yield_until_ms = r->now_ms + r->cfg.election_timeout_ms;
        }
        /* The asker missed the leader too, but our log is ahead of its own,
         * so it cannot win: run now instead of waiting for our timer. */
        if (!up_to_date && m->term > r->term &&
            (r->role == TRP_RAFT_FOLLOWER || r->role == TRP_RAFT_PRECANDIDATE))
            r->election_due_ms = r->now_ms;
        respond(r, m, grant);
        return;
    }
    if (m->term < r->term) {
        respond(r, m, false);
        return;
    }
    assert(m->term == r->term);
    bool free_vote = r->vote == 0 || r->vote == m->from;
    bool grant = free_vote && up_to_date && r->role == TRP_RAFT_FOLLOWER &&
                 (r->leader == 0 || r->leader == m->from) && !priority_preempts(r, m);
    if (grant) {
        if (r->vote != m->from) {
            r->vote = m->from;
            r->hard_state_dirty = true;
        }
        raft_reset_election_timer(r);
    }
    respond(r, m, grant);
}

void election_receive_response(trp_raft *r, const trp_raft_msg *m)
{
    struct raft_peer *p = raft_peer_by_id(r, m->from);
    if (!p || !m->flag)
        return;
    if (m->type == TRP_RAFT_PREVOTE_RESP) {
        if (r->role != TRP_RAFT_PRECANDIDATE || m->term != r->term + 1)
            return;
    } else if (r->role != TRP_RAFT_CANDIDATE || m->term != r->term) {
        return;
    }
    p->granted = true;
    election_tally(r);
}
