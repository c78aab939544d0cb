/*
 * server.c: trp-node's daemon: open a node, drive the Raft core from one
 * event loop, and stop cleanly (trp_server.h).
 *
 * The one idea: server_pump() is the only place that takes the core's
 * output. It hands term/vote to the disk thread and HOLDS that ready (and
 * stops reading the socket) until they are durable, because a vote or a
 * new term must never leave before it would survive a crash; everything
 * else leaves at once: messages to peers (the leader's appends go out
 * before its own fsync), replies to clients, the commit watermark to the
 * store, and the appended entries to the disk thread as the next batch.
 */
#include "server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SERVER_TICK_MS 10
#define SERVER_PUMP_BYTES (128u << 10) /* of messages taken in between pumps */
#define SERVER_HOUSEKEEPING_MS 1000
#define SERVER_CLIENTS_MAX 1024
#define SERVER_WIRE_EXTRA (2u << 20) /* Raft message around entries, batching */

void server_log(trp_server *s, int level, const char *fmt, ...)
{
    if (!s->opts.log)
        return;
    char line[TRP_ERR_MSG_MAX + 128];
    int n = snprintf(line, sizeof line, "node %llu: ", (unsigned long long)s->self);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    s->opts.log(s->opts.log_ctx, level, line);
}

void server_fail(trp_server *s, const trp_err *err)
{
    if (s->failed)
        return;
    s->failed = true;
    s->fatal = *err;
    /* the one line for it comes from trp_server_run's caller, which
     * returns this error once the node has closed */
    trp_loop_stop(s->loop);
}

static uint64_t server_rand(void *u)
{
    trp_server *s = u;
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* One line per change of role, term or leader. */
static void state_lines(trp_server *s)
{
    int role = trp_raft_role(s->raft);
    uint64_t term = trp_raft_term(s->raft), leader = trp_raft_leader(s->raft);
    if (role == s->last_role && term == s->last_term && leader == s->last_leader)
        return;
    s->last_role = role;
    s->last_term = term;
    s->last_leader = leader;
    if (role == TRP_RAFT_FOLLOWER && leader)
        server_log(s, TRP_SERVER_STATE, "follower in term %llu, leader %llu",
                   (unsigned long long)term, (unsigned long long)leader);
    else if (role == TRP_RAFT_FOLLOWER)
        server_log(s, TRP_SERVER_STATE, "follower in term %llu, no leader",
                   (unsigned long long)term);
    else
        server_log(s, TRP_SERVER_STATE, "%s in term %llu", trp_raft_role_name(role),
                   (unsigned long long)term);
}

static void send_msgs(trp_server *s, trp_raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_msgs; i++) {
        uint8_t *buf;
        size_t len;
        trp_err err;
        trp_err_clear(&err);
        if (trp_raft_msg_encode(&rd->msgs[i], &buf, &len, &err) != 0)
            continue;
        trp_udp_send_message(s->udp, s->wire, rd->msgs[i].to, buf, len, &err);
        free(buf);
    }
}

/* The rest of a ready once its hard state (if any) is durable. */
static void finish_ready(trp_server *s, trp_raft_ready *rd)
{
    send_msgs(s, rd);
    server_client_replies(s, rd->replies, rd->n_replies);
    trp_raft_advance(s->raft, rd);
}

static void rejoined(trp_server *s);

static void socket_input(trp_server *s, bool on)
{
    trp_err err;
    trp_err_clear(&err);
    trp_loop_mod(s->loop, trp_udp_fd(s->udp), on ? EPOLLIN : 0, &err);
}

void server_pump(trp_server *s)
{
    bool commit_moved = false;
    s->unpumped = 0;
    for (int round = 0; round < 64 && !s->failed; round++) {
        if (s->persisted_pending && !s->holding) {
            s->persisted_pending = false;
            trp_raft_persisted(s->raft, s->persisted_next);
        }
        if (s->holding || !trp_raft_has_ready(s->raft))
            break;
        trp_raft_ready rd;
        trp_raft_ready_take(s->raft, &rd);
        if (rd.commit_changed && mpz_cmp(rd.commit_next, s->commit) > 0) {
            trp_err err;
            trp_err_clear(&err);
            if (trp_log_set_commit(s->log, rd.commit_next, &err)) {
                server_fail(s, &err);
                trp_raft_advance(s->raft, &rd);
                break;
            }
            mpz_set(s->commit, rd.commit_next);
            commit_moved = true;
        }
        if (rd.hard_state) {
            server_disk_post_meta(s, rd.term, rd.vote);
            s->held = rd;
            s->holding = true;
            socket_input(s, false);
        } else {
            finish_ready(s, &rd);
        }
    }
    trp_err err;
    trp_err_clear(&err);
    if (trp_raft_failed(s->raft, &err))
        server_fail(s, &err);
    if (commit_moved)
        server_client_commit(s);
    if (s->rejoining && !trp_raft_rejoining(s->raft))
        rejoined(s);
    state_lines(s);
    /* messages first: followers start their fsync while we write ours */
    trp_udp_flush(s->udp, &err);
    server_disk_kick(s);
}

/* ---- loop callbacks --------------------------------------------------------- */

/* Take what the disk thread finished (a batch durable, a term and vote
 * written: the held ready goes out) and pump. */
static void collect_and_pump(trp_server *s)
{
    bool meta_done;
    int meta_rc;
    trp_err meta_err;
    server_disk_collect(s, &meta_done, &meta_rc, &meta_err);
    if (meta_done && s->holding) {
        if (meta_rc) {
            /* the held messages never leave (their term and vote are not
             * durable); the write is over, so closing does not wait for it */
            trp_raft_advance(s->raft, &s->held);
            s->holding = false;
            server_fail(s, &meta_err);
            return;
        }
        s->holding = false;
        finish_ready(s, &s->held);
        socket_input(s, true);
    }
    server_pump(s);
}

static void on_datagram(void *ctx, const uint8_t *dgram, size_t len, const struct sockaddr *from,
                        socklen_t fromlen)
{
    trp_server *s = ctx;
    uint64_t sender;
    const uint8_t *msg;
    size_t mlen;
    if (s->failed || trp_udp_open_message(s->udp, s->wire, dgram, len, from, fromlen, &sender, &msg,
                                          &mlen) != 1)
        return;
    if (s->holding) /* not reached: an early pump never holds (below) */
        return;
    if (trp_wire_is_client(sender)) {
        server_client_message(s, sender, from, fromlen, msg, mlen);
    } else {
        trp_raft_msg m;
        trp_raft_msg_init(&m);
        /* the authenticated sender is who it is from, whatever the message says */
        if (trp_raft_msg_decode(msg, mlen, &m, NULL) == 0 && m.from == sender && m.to == s->self)
            trp_raft_step(s->raft, &m);
        trp_raft_msg_clear(&m);
    }
    /* A burst (a piped client's appends, a leader's append messages) is
     * handed on in parts of SERVER_PUMP_BYTES: the first part's messages
     * and fsync are under way while the rest is decoded and hashed, where
     * one pump at the end of the burst would leave the followers and the
     * disk idle meanwhile; and a batch the disk thread finished meanwhile
     * is taken then, not after the burst (piped trp-append: a leader took
     * 14-17 ms on average, at most 162, to notice its fsync done, and its
     * commits waited; 1.3-2.5 ms, at most 12.6, so). Not when the core
     * wants a term or vote made durable: that pump would hold, and hold
     * the rest of the burst. */
    s->unpumped += mlen;
    if (s->unpumped >= SERVER_PUMP_BYTES && !trp_raft_ready_needs_hard_state(s->raft))
        collect_and_pump(s);
}

static void on_udp(void *ctx, int fd, uint32_t events)
{
    trp_server *s = ctx;
    (void)fd;
    (void)events;
    unsigned count = 0;
    trp_err err;
    trp_err_clear(&err);
    if (!s->holding)
        trp_udp_recv(s->udp, on_datagram, s, SERVER_RECV_BATCH, &count, &err);
    server_pump(s);
}

static void on_wake(void *ctx)
{
    collect_and_pump(ctx);
}

static void on_tick(void *ctx, int timer_id, uint64_t now_ms)
{
    trp_server *s = ctx;
    if (!s->holding && trp_raft_tick(s->raft, now_ms) != 0) {
        trp_err err;
        trp_err_clear(&err);
        trp_raft_failed(s->raft, &err);
        server_fail(s, &err);
        return;
    }
    trp_loop_timer_arm(s->loop, timer_id, now_ms + SERVER_TICK_MS);
    trp_udp_wire_tick(s->udp, s->wire); /* probes for lost fragments: the tick is fine enough */
    server_pump(s);
}

static void on_spare_timer(void *ctx, int timer_id, uint64_t now_ms)
{
    (void)timer_id;
    (void)now_ms;
    server_pump(ctx); /* a spare's deferred sync is due */
}

static void on_housekeeping(void *ctx, int timer_id, uint64_t now_ms)
{
    trp_server *s = ctx;
    trp_wire_expire(s->wire);
    server_client_expire(s, now_ms);
    trp_loop_timer_arm(s->loop, timer_id, now_ms + SERVER_HOUSEKEEPING_MS);
}

static void on_signal(void *ctx, int signo)
{
    trp_server *s = ctx;
    server_log(s, TRP_SERVER_INFO, "%s: stopping", signo == SIGINT ? "SIGINT" : "SIGTERM");
    s->stopping = true;
    trp_loop_stop(s->loop);
}

/* ---- open and close --------------------------------------------------------- */

/* Create dir/name holding text (len bytes), durably: the file and then the
 * directory synced. */
static int write_small_file(const char *dir, const char *name, const char *text, size_t len,
                            trp_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return trp_err_sys(err, TRP_EIO, errno, "%s", path);
    bool ok = (!len || write(fd, text, len) == (ssize_t)len) && fsync(fd) == 0;
    int e = errno;
    close(fd);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ok = ok && fsync(dfd) == 0;
        e = ok ? e : errno;
        close(dfd);
    }
    return ok ? 0 : trp_err_sys(err, TRP_EIO, e, "%s", path);
}

/* Mark the directory as a node's: entries carry the client envelope. */
static int write_marker(const char *dir, trp_err *err)
{
    static const char text[] = TRP_NODE_MARKER_TEXT;
    return trp_dir_has_envelope(dir) ? 0
                                     : write_small_file(dir, TRP_NODE_MARKER_FILE, text,
                                                        sizeof text - 1, err);
}

/* Does the node rejoin after losing its state? It does when its directory
 * holds nothing of a node's (a disk replaced, the directory emptied or
 * gone; a file system's lost+found does not count), and until it has
 * caught up (the rejoining file says so across restarts). trp-node init
 * leaves its marker in each directory it makes, so those are new nodes; a
 * new cluster on missing or empty directories elects among its rejoining
 * nodes (trp-raft(7)). */
static int check_rejoin(trp_server *s, const char *dir, trp_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, TRP_NODE_REJOIN_FILE);
    if (access(path, F_OK) == 0) {
        s->rejoining = true;
        return 0;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return 0; /* trp_log_open says why */
    DIR *d = opendir(dir);
    if (!d)
        return 0; /* trp_log_open says why */
    bool empty = true;
    for (struct dirent *de; empty && (de = readdir(d));)
        empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
                !strcmp(de->d_name, "lost+found");
    closedir(d);
    if (!empty || s->cfg->nnodes == 1)
        return 0;
    s->rejoining = true;
    return write_small_file(dir, TRP_NODE_REJOIN_FILE, "", 0, err);
}

/* The core says this node caught up: its copy counts again. */
static void rejoined(trp_server *s)
{
    s->rejoining = false;
    const trp_node_config *nc = trp_config_node(s->cfg, s->self);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", nc->data_dir, TRP_NODE_REJOIN_FILE);
    if (unlink(path) != 0 && errno != ENOENT)
        server_log(s, TRP_SERVER_STATE, "%s: %s (the node will rejoin again at its next start)",
                   path, strerror(errno));
    server_log(s, TRP_SERVER_STATE, "caught up with the leader after rejoining: votes again");
}

static int open_log(trp_server *s, const trp_node_config *nc, trp_err *err)
{
    trp_log_options lo = {.create = true,
                          .start_seq = s->cfg->start_seq,
                          .max_entry = s->cfg->max_entry + TRP_RAFT_ENVELOPE_LEN,
                          .manual_commit = true};
    int rc = check_rejoin(s, nc->data_dir, err);
    if (rc)
        return rc;
    if (s->rejoining)
        server_log(s, TRP_SERVER_STATE,
                   "data directory %s holds no node state (a new cluster, or a disk "
                   "replaced?): rejoining, this node votes only with other rejoining nodes "
                   "until it has caught up with a leader",
                   nc->data_dir);
    rc = trp_log_open(&s->log, nc->data_dir, &lo, err);
    if (rc == TRP_ELOCKED)
        trp_err_prefix(err, "data directory %s is in use (is trp-node %llu already running?)",
                       nc->data_dir, (unsigned long long)s->self);
    if (rc)
        return rc;
    if (!trp_dir_has_envelope(nc->data_dir) && !trp_log_empty(s->log))
        /* entries without the envelope: a standalone log (trp-append -d),
         * which the tools would then misread; a node's own directory has
         * the marker before its first entry */
        return trp_err_set(err, TRP_EFORMAT,
                           "data directory %s holds a standalone log (written by trp-append -d), "
                           "not a node's: give the node an empty directory",
                           nc->data_dir);
    trp_log_set_manual_commit(s->log, true);
    return write_marker(nc->data_dir, err);
}

static int open_raft(trp_server *s, trp_err *err)
{
    const trp_config *cfg = s->cfg;
    s->rnodes = calloc(cfg->nnodes, sizeof *s->rnodes);
    if (!s->rnodes)
        return trp_err_set(err, TRP_ENOMEM, "out of memory");
    for (size_t i = 0; i < cfg->nnodes; i++)
        s->rnodes[i] =
            (trp_raft_node){cfg->nodes[i].id, cfg->nodes[i].group, cfg->nodes[i].priority};
    /* 64 KiB at least: the wire resends only lost fragments, so a message of
     * k fragments costs about k/(1-loss) datagrams, and bigger appends batch
     * better (measured: +14% acked under 20% loss, tests/chaos lossy) */
    uint32_t msg_bytes = cfg->max_datagram * 4;
    msg_bytes = msg_bytes < (64u << 10)    ? (64u << 10)
                : msg_bytes > (256u << 10) ? (256u << 10)
                                           : msg_bytes;
    trp_raft_config rc = {.self = s->self,
                          .nodes = s->rnodes,
                          .n_nodes = cfg->nnodes,
                          .groups = (const char *const *)cfg->groups,
                          .n_groups = cfg->has_groups ? cfg->ngroups : 0,
                          .election_timeout_ms = cfg->election_timeout_ms,
                          .election_timeout_max_ms = cfg->election_timeout_max_ms,
                          .heartbeat_ms = cfg->heartbeat_ms,
                          .max_msg_bytes = msg_bytes,
                          /* a trickle of proposals batches behind the one append
                           * in flight to each follower (fewer rounds: 64 clients
                           * did 24-26k/s against 19-21k/s with 4); a backlog (a
                           * piped trp-append) streams through 16 (100 B entries:
                           * +20% over 4) */
                          .max_inflight_msgs = 16,
                          .max_inflight_trickle = 1,
                          .spares = cfg->spare_sync_ms > 0,
                          .max_entry = cfg->max_entry + TRP_RAFT_ENVELOPE_LEN};
    trp_raft_config_defaults(&rc);
    int st = trp_raft_config_check(&rc, err);
    if (st)
        return st;
    trp_meta meta = {0};
    trp_log_meta_get(s->log, &meta);
    mpz_t commit;
    mpz_init(commit);
    trp_log_commit_next(s->log, commit);
    const mpz_t *cp = (const mpz_t *)&commit;
    trp_raft_restart rs = {meta.term, meta.vote, cp, s->rejoining};
    trp_raft_storage stg;
    server_storage(s, &stg);
    trp_raft_env env = {s, server_rand, trp_entry_hash};
    st = trp_raft_new(&s->raft, &rc, &stg, &env, &rs, trp_loop_now_ms(), err);
    mpz_set(s->commit, commit);
    mpz_clear(commit);
    return st;
}

static int open_net(trp_server *s, trp_err *err)
{
    s->ids = calloc(s->cfg->nnodes, sizeof *s->ids);
    if (!s->ids)
        return trp_err_set(err, TRP_ENOMEM, "out of memory");
    trp_wire_params p;
    int rc =
        trp_wire_params_from_config(&p, s->cfg, s->key, s->self, SERVER_WIRE_EXTRA, s->ids, err);
    if (rc)
        return rc;
    p.clients_max = SERVER_CLIENTS_MAX;
    if ((rc = trp_wire_new(&s->wire, &p, err)))
        return rc;
    return trp_udp_open(&s->udp, s->cfg, s->self, err);
}

static int open_loop(trp_server *s, trp_err *err)
{
    int rc = trp_loop_new(&s->loop, on_wake, s, err);
    static const int sigs[] = {SIGTERM, SIGINT};
    if (!rc)
        rc = trp_loop_add_signals(s->loop, sigs, 2, on_signal, s, err);
    if (!rc)
        rc = trp_loop_add(s->loop, trp_udp_fd(s->udp), EPOLLIN, on_udp, s, err);
    if (!rc)
        rc = trp_loop_timer_new(s->loop, on_tick, s, &s->tick_timer, err);
    if (!rc)
        rc = trp_loop_timer_new(s->loop, on_housekeeping, s, &s->expire_timer, err);
    if (!rc)
        rc = trp_loop_timer_new(s->loop, on_spare_timer, s, &s->spare_timer, err);
    return rc;
}

int trp_server_open(trp_server **out, const trp_server_options *o, trp_err *err)
{
    *out = NULL;
    trp_server *s = calloc(1, sizeof *s);
    if (!s)
        return trp_err_set(err, TRP_ENOMEM, "out of memory");
    s->opts = *o;
    s->self = o->id;
    s->last_role = -1;
    trp_entry_init(&s->e);
    mpz_inits(s->persisted_next, s->commit, s->cache_base, s->cache_tmp, NULL);
    trp_cmsg_init(&s->cm);
    s->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ o->id * 0x2545f4914f6cdd1dull;
    int rc = trp_config_load(&s->cfg, o->config_path, err);
    if (!rc && (rc = trp_config_resolve(s->cfg, err)))
        trp_err_prefix(err, "%s", o->config_path);
    const trp_node_config *nc = rc ? NULL : trp_config_node(s->cfg, o->id);
    if (!rc && !nc)
        rc = trp_err_set(err, TRP_ECONFIG, "%s: no node with id %llu", o->config_path,
                         (unsigned long long)o->id);
    if (!rc)
        rc = trp_key_load(s->key, s->cfg->key_file, err);
    if (!rc)
        rc = open_log(s, nc, err);
    if (!rc)
        rc = open_raft(s, err);
    if (!rc)
        rc = open_net(s, err);
    if (!rc)
        rc = open_loop(s, err);
    if (!rc)
        rc = server_disk_open(s, err); /* after the signal mask: the thread inherits it */
    if (rc) {
        trp_server_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int trp_server_run(trp_server *s, trp_err *err)
{
    struct sockaddr_storage a;
    socklen_t alen = sizeof a;
    char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";
    if (getsockname(trp_udp_fd(s->udp), (struct sockaddr *)&a, &alen) == 0)
        getnameinfo((struct sockaddr *)&a, alen, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    bool v6 = strchr(host, ':') != NULL;
    server_log(s, TRP_SERVER_INFO, "listening on %s%s%s:%s, log %s", v6 ? "[" : "", host,
               v6 ? "]" : "", port, trp_log_dir(s->log));
    uint64_t now = trp_loop_now_ms();
    trp_loop_timer_arm(s->loop, s->tick_timer, now + SERVER_TICK_MS);
    trp_loop_timer_arm(s->loop, s->expire_timer, now + SERVER_HOUSEKEEPING_MS);
    server_pump(s);
    int rc = trp_loop_run(s->loop, err);
    if (s->failed) {
        *err = s->fatal;
        return s->fatal.code ? s->fatal.code : TRP_EIO;
    }
    return rc;
}

void trp_server_close(trp_server *s)
{
    if (!s)
        return;
    if (s->d.started) {
        /* let the batch in flight finish so the close leaves a clean tail */
        if (s->batch_inflight) {
            pthread_mutex_lock(&s->d.mu);
            while (!s->d.batch_done)
                pthread_cond_wait(&s->d.done_cv, &s->d.mu);
            pthread_mutex_unlock(&s->d.mu);
            trp_err err;
            trp_err_clear(&err);
            trp_log_mark_durable(s->log, &s->d.batch, &err);
            s->batch_inflight = false;
        }
        if (s->holding) { /* wait for the term/vote write before closing the log */
            pthread_mutex_lock(&s->d.mu);
            while (!s->d.meta_done)
                pthread_cond_wait(&s->d.done_cv, &s->d.mu);
            pthread_mutex_unlock(&s->d.mu);
        }
        server_disk_close(s);
        if (s->sync_wanted && !s->failed) { /* a spare's deferred sync: a clean stop keeps it */
            trp_err err;
            trp_err_clear(&err);
            (void)trp_log_sync(s->log, &err);
        }
    }
    if (s->holding) {
        trp_raft_advance(s->raft, &s->held);
        s->holding = false;
    }
    server_client_free(s);
    trp_raft_free(s->raft);
    trp_loop_free(s->loop);
    trp_udp_close(s->udp);
    trp_wire_free(s->wire);
    trp_log_close(s->log);
    trp_entry_clear(&s->e);
    trp_config_free(s->cfg);
    trp_cmsg_clear(&s->cm);
    trp_cbuf_free(&s->out);
    server_cache_free(s);
    mpz_clears(s->persisted_next, s->commit, s->cache_base, s->cache_tmp, NULL);
    free(s->ids);
    free(s->rnodes);
    free(s);
}
