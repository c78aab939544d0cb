/*
 * trp_wire.h: the datagram layer. Messages (opaque byte strings, e.g. an
 * encoded Raft message) go in; authenticated, encrypted datagrams no larger
 * than max_datagram come out, and the reverse. No sockets, no clock of its
 * own: randomness and time come through the params, so the same code runs
 * under the fuzzer, the tests and trp-node.
 *
 * The one idea: a datagram is either authentic, fresh and for us, or it is
 * dropped and counted under exactly one reason; nothing else happens to it.
 * Each sender derives a per-boot key from the cluster key (HKDF over the
 * cluster id, its node id and a 128-bit boot id), so a 64-bit packet number
 * is a unique nonce; the header (cluster tag, sender, receiver, boot id,
 * packet number, fragment fields) is the AEAD's associated data, so a
 * datagram replayed to another node, from another cluster or with an edited
 * header fails authentication. See man/trp.conf.5 (WIRE FORMAT).
 *
 * Lost fragments are recovered rather than the whole message sent again:
 * the sender keeps messages of several fragments for a while, the receiver
 * NACKs what it lacks (trp_wire_open_ex answers through a callback), and
 * the sender resends those fragments or probes when nothing comes back
 * (trp_wire_tick, from a timer). See man/trp-node.8 (Lost fragments).
 */
#ifndef TRP_WIRE_H
#define TRP_WIRE_H

#include "trp_base.h"
#include "trp_config.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TRP_WIRE_VERSION 2
#define TRP_WIRE_HEADER_LEN 60 /* clear, authenticated */
#define TRP_WIRE_TAG_LEN 16    /* GCM tag after the ciphertext */
#define TRP_WIRE_OVERHEAD (TRP_WIRE_HEADER_LEN + TRP_WIRE_TAG_LEN)
#define TRP_WIRE_REPLAY_WINDOW 4096 /* packets; older ones are dropped as stale */
#define TRP_WIRE_PEERS_MAX TRP_CONFIG_NODES_MAX
#define TRP_WIRE_CLIENTS_MAX 4096

/* Clients (trp-append, trp-tail in cluster mode) hold the cluster key but are
 * not in the config: they pick a random id with this bit set (node ids are
 * at most 2^53 - 1), and a node with clients_max > 0 accepts them. */
#define TRP_WIRE_CLIENT_BIT (1ull << 63)
static inline int trp_wire_is_client(uint64_t id)
{
    return (id & TRP_WIRE_CLIENT_BIT) != 0;
}

typedef struct trp_wire trp_wire;

typedef struct trp_wire_params {
    uint8_t key[TRP_KEY_LEN];
    uint8_t cluster_id[TRP_CLUSTER_ID_LEN];
    uint64_t self_id;
    const uint64_t *peer_ids; /* every node allowed to send to us (self is skipped) */
    size_t npeers;
    /* Client slots (0 = client datagrams are from an unknown sender). A client
     * gets a slot with its first authentic datagram, the one quiet longest is
     * evicted when all are taken, and replies can be sealed only to clients
     * holding a slot. An evicted client's replay window is forgotten, so the
     * client protocol must not rely on the wire alone against replays: its
     * (client id, request number) check is what makes retries exactly-once. */
    uint32_t clients_max;
    uint32_t max_datagram; /* TRP_MAX_DATAGRAM_MIN..TRP_MAX_DATAGRAM_MAX */
    uint32_t max_message;  /* largest message seal/open handle (entry + Raft header) */
    /* Reassembly bounds (0 = default): partial messages per sender (4),
     * bytes held in partial messages over all senders (4 * max_message,
     * at least max_message), and how long a partial message may wait for
     * its missing fragments (5000 ms). */
    uint32_t partial_per_peer;
    uint64_t partial_bytes_max;
    uint32_t reassembly_timeout_ms;
    /* Recovery of lost fragments (0 = default): bytes of sent multi-fragment
     * messages kept for resending, per receiver (max_message) and in total
     * (4 * max_message; a message larger than the per-receiver bound is not
     * kept), and the first probe delay when neither a NACK nor an ack comes
     * back (20 ms, or twice the round trip measured from acks when longer;
     * doubling with each probe). A kept message is dropped when
     * acked, after reassembly_timeout_ms, or when its resend budget is spent. */
    uint64_t kept_bytes_per_peer, kept_bytes_max;
    uint32_t probe_ms;
    /* Boot epoch: should grow across restarts of this node, so that peers
     * can tell a restart (accepted: the replay window resets) from a replay
     * of an older boot (dropped as stale). 0 = CLOCK_REALTIME in ns; a node
     * with a persisted counter should pass max(counter, that) instead. */
    uint64_t boot_epoch;
    /* If a restarted peer's epoch went backwards (its clock was stepped
     * back), its datagrams are stale until its previous boot has been silent
     * this long; then the older boot is accepted (0 = 10000 ms). Raft
     * tolerates the replays this could let through: they are old messages. */
    uint32_t boot_silence_ms;
    /* Injected randomness and monotonic time; NULL = RAND_bytes and
     * CLOCK_MONOTONIC. rand returns 1 on success. */
    int (*rand)(void *ctx, void *buf, size_t len);
    uint64_t (*now_ms)(void *ctx);
    void *ctx;
} trp_wire_params;

/* Per-reason counters. Invariant after every trp_wire_open:
 * recv_datagrams == accepted_datagrams + the sum of the drop_* counters.
 * sent_datagrams counts every datagram emitted: fragments, resent
 * fragments, NACKs and acks. */
typedef struct trp_wire_counters {
    uint64_t sent_messages, sent_datagrams, sent_bytes;
    uint64_t recv_datagrams, recv_bytes;
    uint64_t accepted_datagrams, delivered_messages;
    uint64_t drop_forged;         /* authentication failed: wrong key or tampered */
    uint64_t drop_stale;          /* replayed, duplicated, outside the window, old boot */
    uint64_t drop_malformed;      /* bad magic, version, lengths, fragment fields */
    uint64_t drop_oversized;      /* datagram > max_datagram or message > max_message */
    uint64_t drop_wrong_cluster;  /* cluster tag differs */
    uint64_t drop_unknown_sender; /* sender id not in the config (or ourselves) */
    uint64_t drop_wrong_receiver; /* addressed to another node */
    uint64_t drop_nack;           /* NACK or ack refused: not kept, round served, budget spent */
    uint64_t partial_evicted;     /* incomplete messages discarded: bounds or restart */
    uint64_t partial_expired;     /* incomplete messages discarded: timeout */
    uint64_t peer_restarts;       /* a peer's boot id changed (authentic) */
    uint64_t clients_evicted;     /* client slots reused for another client */
    uint64_t partial_messages, partial_bytes; /* held right now */
    /* recovery: NACKs and acks sent (as a receiver), fragments sent again
     * (as a sender, probes included), kept messages dropped unacked */
    uint64_t nacks_sent, acks_sent, resent_datagrams, kept_given_up;
    uint64_t kept_messages, kept_bytes; /* held right now */
} trp_wire_counters;

/* A fresh random client id (TRP_WIRE_CLIENT_BIT set), or 0 if the system
 * has no randomness. */
uint64_t trp_wire_new_client_id(void);

/* Defaults for everything but keys, ids and peers. */
void trp_wire_params_default(trp_wire_params *p);
/* Fill key, cluster id, self id, peers and sizes from a config: max_message
 * is cfg->max_entry + extra (room for the Raft message around an entry). The
 * peer array points into `ids`, which must hold cfg->nnodes entries and
 * outlive trp_wire_new. self_id is a node of the config, or a client id. */
int trp_wire_params_from_config(trp_wire_params *p, const trp_config *cfg,
                                const uint8_t key[TRP_KEY_LEN], uint64_t self_id, uint32_t extra,
                                uint64_t *ids, trp_err *err);

/* TRP_EINVAL for inconsistent params (sizes, self among peers is fine),
 * TRP_ENOMEM, TRP_EIO when OpenSSL or the randomness source fails. */
int trp_wire_new(trp_wire **out, const trp_wire_params *p, trp_err *err);
void trp_wire_free(trp_wire *w);

/* Called once per datagram of a message, in order; the bytes are valid only
 * during the call. A non-zero return stops sealing and is returned. It must
 * not call trp_wire_open on the same trp_wire (that may free msg). */
typedef int (*trp_wire_emit_fn)(void *ctx, uint64_t to_id, const uint8_t *dgram, size_t len);

/* Encrypt and fragment msg for node (or client) to_id. Every datagram is at most
 * max_datagram bytes. msg may be a message trp_wire_open just returned (to
 * forward it) and may be NULL when len is 0. TRP_ETOOBIG when len > max_message, TRP_EINVAL for an
 * unknown receiver, TRP_EIO when the cipher fails, or emit's status. */
int trp_wire_seal(trp_wire *w, uint64_t to_id, const void *msg, size_t len, trp_wire_emit_fn emit,
                  void *ctx, trp_err *err);
/* How many datagrams a message of len bytes becomes. */
uint32_t trp_wire_fragments(const trp_wire *w, size_t len);

/* Take one received datagram. Returns 1 and sets *from, *msg, *len when it
 * completes a message (msg valid until the next call on w), 0 when it was
 * accepted or dropped without completing one (see the counters). Never
 * fails: hostile input only moves counters. */
int trp_wire_open(trp_wire *w, const uint8_t *dgram, size_t len, uint64_t *from,
                  const uint8_t **msg, size_t *msg_len);

/* trp_wire_open that also answers on its own, through emit (NULL: answer
 * nothing, and lost fragments are not recovered): a NACK or an ack for a
 * message of several fragments, or the fragments a NACK asks for. All it
 * emits during the call goes to this datagram's sender (to_id), so a node
 * may answer a client at the address the datagram came from. */
int trp_wire_open_ex(trp_wire *w, const uint8_t *dgram, size_t len, trp_wire_emit_fn emit,
                     void *ctx, uint64_t *from, const uint8_t **msg, size_t *msg_len);

/* Probe for kept messages whose NACK or ack is overdue (emit's to_id is the
 * receiver; a non-zero return from emit drops that message, e.g. when no
 * address is known), drop kept messages past their time, expire partial
 * messages. Returns the ms until the next probe is due, -1 if none is
 * kept: call it again by then (nothing in it spins). */
int trp_wire_tick(trp_wire *w, trp_wire_emit_fn emit, void *ctx);

/* Discard partial messages older than the reassembly timeout. trp_wire_open
 * does this too; call it from a timer when no traffic arrives. */
void trp_wire_expire(trp_wire *w);

const trp_wire_counters *trp_wire_counters_get(const trp_wire *w);
/* The counters as a cJSON object for `trp-node status` ("dropped": {"forged":
 * N, ...}, "sent", "received", "reassembly"); NULL when out of memory. The
 * caller owns it (cJSON_Delete). */
struct cJSON *trp_wire_counters_json(const trp_wire_counters *c);
uint64_t trp_wire_self(const trp_wire *w);
uint32_t trp_wire_max_datagram(const trp_wire *w);
uint32_t trp_wire_max_message(const trp_wire *w);

#ifdef __cplusplus
}
#endif
#endif
