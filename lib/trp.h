/*
 * trp.h: the public interface of libtrp, a Raft-replicated, hash-chained,
 * append-only log. Include this one header; it pulls in each area's part.
 *
 *   trp_base.h   status codes, error records, version
 *   trp_log.h    seqs (GMP), SHA-256 chain, CRC32C, the segmented log store,
 *                verification
 *   trp_raft.h   the Raft consensus core (pure state machine) and its codec
 *   trp_node.h   an embeddable tinyraft-style node over the core
 *   trp_config.h cluster config (JSON), key file, `trp-node init`
 *   trp_wire.h   datagrams: AEAD, fragmentation, replay window, drop counters
 *   trp_udp.h    UDP sockets (batched) and the epoll event loop
 *   trp_client.h the client protocol and the client library (cluster mode)
 *   trp_server.h trp-node's daemon
 */
#ifndef TRP_H
#define TRP_H

#include "trp_base.h"
#include "trp_log.h"
#include "trp_raft.h"
#include "trp_node.h"
#include "trp_config.h"
#include "trp_wire.h"
#include "trp_udp.h"
#include "trp_client.h"
#include "trp_server.h"

#endif
