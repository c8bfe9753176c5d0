/*  broker/out/subguard.h - bounds on the status socket's subscriptions.
 *
 *  libzmq keeps every subscription prefix of every monitor in a trie of
 *  its own, a few KiB per long prefix, and offers no way to refuse one
 *  subscription or to drop one monitor. A monitor subscribing to 200,000
 *  prefixes would grow the broker by hundreds of MiB. So the broker
 *  counts, per peer address (libzmq's "Peer-Address" of each subscription
 *  message: monitors from one host share a bound) and in total, the
 *  subscriptions it has seen, and when one passes its bound it cuts every
 *  status connection from that address: shutdown(2) on the TCP socket,
 *  whose descriptor the socket monitor's ACCEPTED event gave, makes libzmq
 *  end the connection and free its subscriptions. The address is then
 *  held for `hold_ms`: a connection it makes meanwhile is cut as soon as
 *  it is accepted. The status socket's receive high-water mark keeps
 *  libzmq from reading more than 50 subscriptions of one
 *  connection ahead of the broker, so memory stays near the bound.
 *
 *  Counts are approximate in one direction only: a subscription is
 *  counted up when it arrives and down when its monitor unsubscribes, and
 *  an address's count drops to 0 when its last connection closes (libzmq
 *  does not say whose subscriptions a closed connection took with it). A
 *  host that keeps reconnecting one monitor while another stays may
 *  therefore be cut early, never late. shutdown() is the only thing done
 *  to a libzmq descriptor; it is never read, written or closed here.
 *  Broker loop thread only.
 */
#ifndef TW_BROKER_SUBGUARD_H
#define TW_BROKER_SUBGUARD_H

#include <stddef.h>
#include <stdint.h>

#include "common/idmap.h"
#include "common/strmap.h"

typedef struct {
    size_t per_addr; /* subscriptions one peer address may hold */
    size_t total;    /* subscriptions all monitors may hold */
    uint64_t hold_ms;
} tw_subguard_cfg_t;

/* The broker's bounds: 10,000 per address, 50,000 in all, held 10 s. */
#define TW_SUBGUARD_DEFAULTS {10000, 50000, 10000}

typedef struct {
    tw_subguard_cfg_t cfg;
    tw_strmap_t addrs;  /* peer address -> entry (subguard.c) */
    tw_idmap_t conns;   /* fd + 1 -> connection (subguard.c) */
    size_t total;       /* subscriptions counted, all addresses */
    uint64_t cuts;      /* times an address was cut */
    /* The cut itself, a seam for tests: shutdown(fd, SHUT_RDWR). */
    int (*cut)(int fd);
} tw_subguard_t;

void tw_subguard_init(tw_subguard_t *g, const tw_subguard_cfg_t *cfg);
void tw_subguard_free(tw_subguard_t *g);

/* A status connection was accepted on descriptor `fd`. Returns 1 if its
 * address is held and it was cut at once, else 0. */
int tw_subguard_accepted(tw_subguard_t *g, int fd, uint64_t now);

/* The connection on `fd` closed. */
void tw_subguard_closed(tw_subguard_t *g, int fd);

/* One subscription (delta 1) or unsubscription (delta -1) from the peer
 * address `addr` (alen bytes; "" when libzmq gave none). Returns 1 when
 * this subscription took its address or the total past the bound: the
 * address's connections were cut and it is held. */
int tw_subguard_count(tw_subguard_t *g, const char *addr, size_t alen,
                      int delta, uint64_t now);

#endif /* TW_BROKER_SUBGUARD_H */
