/*
 * trp_udp.h: the socket side of the transport, and the event loop that
 * drives a node: one non-blocking UDP socket per node with batched sends and
 * receives (sendmmsg/recvmmsg), and an epoll loop with timers and a
 * thread-safe wake-up (eventfd) for the disk thread.
 *
 * The one idea: UDP is lossy and this layer says so. A datagram that the
 * kernel will not take right now (EAGAIN) is dropped and counted, never
 * queued without bound and never waited for; Raft retransmits. Peers are
 * addressed by node id (addresses resolved once, from the config); where a
 * datagram came from is reported but never trusted: the authenticated id
 * inside it (trp_wire) says who sent it.
 */
#ifndef TRP_UDP_H
#define TRP_UDP_H

#include "trp_base.h"
#include "trp_config.h"
#include "trp_wire.h"

#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the socket ------------------------------------------------------------ */

#define TRP_UDP_BUFFER_BYTES (8u << 20) /* requested SO_RCVBUF/SO_SNDBUF; the kernel may cap it */

typedef struct trp_udp trp_udp;

typedef struct trp_udp_counters {
    uint64_t sent_datagrams, sent_bytes;
    uint64_t send_dropped; /* the kernel had no room (EAGAIN/ENOBUFS) */
    uint64_t send_errors;  /* other send failures (unreachable, ...) */
    uint64_t recv_datagrams, recv_bytes;
    uint64_t recv_truncated; /* larger than max_datagram; passed on with len max_datagram + 1 */
    int rcvbuf, sndbuf;      /* what the kernel granted (bytes) */
} trp_udp_counters;

/* Bind node self_id's `bind` address (else its `address`), non-blocking,
 * with large buffers. cfg must have been through trp_config_resolve().
 * Errors: TRP_EINVAL (unresolved config, unknown id), TRP_EIO/TRP_EPERM
 * naming the address (e.g. "bind 127.0.0.1:7101: Address already in use"). */
int trp_udp_open(trp_udp **out, const trp_config *cfg, uint64_t self_id, trp_err *err);
/* A client's socket (trp-append, trp-tail): bound to an ephemeral port on
 * every address, of the family that reaches all nodes of cfg (resolved);
 * peers are cfg's nodes, as for a node. */
int trp_udp_open_client(trp_udp **out, const trp_config *cfg, trp_err *err);
void trp_udp_close(trp_udp *u);
int trp_udp_fd(const trp_udp *u);
uint16_t trp_udp_local_port(const trp_udp *u);
const trp_udp_counters *trp_udp_counters_get(const trp_udp *u);
/* The counters as a cJSON object (caller owns it), NULL when out of memory. */
struct cJSON *trp_udp_counters_json(const trp_udp_counters *c);

/* Queue one datagram (copied) for a peer or an explicit address; the batch
 * is sent when full or on trp_udp_flush. TRP_EINVAL for an unknown peer or a
 * datagram over max_datagram. */
int trp_udp_queue(trp_udp *u, uint64_t peer_id, const void *dgram, size_t len, trp_err *err);
int trp_udp_queue_addr(trp_udp *u, const struct sockaddr *to, socklen_t tolen, const void *dgram,
                       size_t len, trp_err *err);
/* Send everything queued (sendmmsg). Datagrams the kernel refuses are
 * dropped and counted; returns TRP_OK unless the socket itself is broken. */
int trp_udp_flush(trp_udp *u, trp_err *err);
/* Seal msg for peer_id with w and queue its datagrams (flushing as batches
 * fill; call trp_udp_flush after the last message of a burst). */
int trp_udp_send_message(trp_udp *u, trp_wire *w, uint64_t peer_id, const void *msg, size_t len,
                         trp_err *err);

/* The same to an explicit address: a node replying to a client, at the
 * address the client's datagram came from. */
int trp_udp_send_message_to(trp_udp *u, trp_wire *w, uint64_t to_id, const struct sockaddr *to,
                            socklen_t tolen, const void *msg, size_t len, trp_err *err);

/* trp_wire_open_ex with the wire's answers (NACKs, acks, resent fragments)
 * queued through this socket: to a node at its configured address, to
 * anyone else (a client) at `from`. Flush after the burst, as for sends. */
int trp_udp_open_message(trp_udp *u, trp_wire *w, const uint8_t *dgram, size_t len,
                         const struct sockaddr *from, socklen_t fromlen, uint64_t *sender,
                         const uint8_t **msg, size_t *msg_len);
/* trp_wire_tick through this socket, flushing what it queued: probes go to
 * a node at its configured address, to a client where the last message of
 * several fragments was sent to it with trp_udp_send_message_to. Returns
 * the ms until it should run again, or -1 when nothing waits. */
int trp_udp_wire_tick(trp_udp *u, trp_wire *w);

/* Called for each received datagram; bytes valid only during the call. */
typedef void (*trp_udp_recv_fn)(void *ctx, const uint8_t *dgram, size_t len,
                                const struct sockaddr *from, socklen_t fromlen);
/* Receive until the socket is empty or max_datagrams were read (bounded so
 * one busy socket cannot starve timers). *count gets the number read. */
int trp_udp_recv(trp_udp *u, trp_udp_recv_fn fn, void *ctx, unsigned max_datagrams, unsigned *count,
                 trp_err *err);

/* ---- the event loop ---------------------------------------------------------- */

#define TRP_LOOP_FDS_MAX 64
#define TRP_LOOP_TIMERS_MAX 64

typedef struct trp_loop trp_loop;
typedef void (*trp_loop_io_fn)(void *ctx, int fd, uint32_t events); /* EPOLLIN, ... */
typedef void (*trp_loop_timer_fn)(void *ctx, int timer_id, uint64_t now_ms);
typedef void (*trp_loop_wake_fn)(void *ctx);

/* on_wake (may be NULL) runs in the loop's thread after trp_loop_wake. */
int trp_loop_new(trp_loop **out, trp_loop_wake_fn on_wake, void *wake_ctx, trp_err *err);
void trp_loop_free(trp_loop *l);

int trp_loop_add(trp_loop *l, int fd, uint32_t events, trp_loop_io_fn fn, void *ctx, trp_err *err);
int trp_loop_mod(trp_loop *l, int fd, uint32_t events, trp_err *err);
int trp_loop_del(trp_loop *l, int fd);

/* One-shot timers on the monotonic clock (ms). A timer fires once per arm;
 * its callback may re-arm it. */
int trp_loop_timer_new(trp_loop *l, trp_loop_timer_fn fn, void *ctx, int *timer_id, trp_err *err);
void trp_loop_timer_arm(trp_loop *l, int timer_id, uint64_t deadline_ms);
void trp_loop_timer_disarm(trp_loop *l, int timer_id);
uint64_t trp_loop_now_ms(void);

/* Deliver these signals (e.g. SIGTERM, SIGINT) to fn in the loop's thread,
 * through a signalfd. Blocks them in the calling thread: call it before
 * starting other threads, which then inherit the mask. Once per loop. */
typedef void (*trp_loop_signal_fn)(void *ctx, int signo);
int trp_loop_add_signals(trp_loop *l, const int *signals, size_t nsignals, trp_loop_signal_fn fn,
                         void *ctx, trp_err *err);

/* Thread-safe (and async-signal-safe): make the loop run on_wake soon. */
int trp_loop_wake(trp_loop *l);
/* Thread-safe: make trp_loop_run return after the current iteration. */
void trp_loop_stop(trp_loop *l);

/* Wait for events or the nearest timer, at most max_wait_ms (-1: no limit
 * beyond the timers), and dispatch them. Never spins: with nothing armed and
 * max_wait_ms == -1 it sleeps until an fd or a wake-up. */
int trp_loop_run_once(trp_loop *l, int max_wait_ms, trp_err *err);
/* run_once until trp_loop_stop. */
int trp_loop_run(trp_loop *l, trp_err *err);

#ifdef __cplusplus
}
#endif
#endif
