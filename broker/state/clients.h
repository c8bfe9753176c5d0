/*  broker/state/clients.h - the clients the broker has heard from.
 *
 *  A client is known by its ZeroMQ routing identity on the frontend. The
 *  record exists to route outcomes back: tasks remember their submitter's
 *  client id, and each client collects the ACK and RESULT items due to it
 *  during one loop turn into two batches, sent as one message each when the
 *  turn ends. A client that has nothing outstanding and has been silent for
 *  the idle limit is forgotten; its results stay queryable by task id.
 *  Broker loop thread only.
 */
#ifndef TW_BROKER_CLIENTS_H
#define TW_BROKER_CLIENTS_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/workers.h" /* TW_IDENT_MAX */
#include "common/idmap.h"
#include "proto/proto.h"

typedef struct {
    uint64_t id;
    unsigned char ident[TW_IDENT_MAX];
    size_t ident_len;
    uint64_t last_seen_ms;
    uint64_t outstanding; /* its tasks not yet ended */
    uint64_t refusals;    /* submissions refused since it was first seen:
                             they size its dedup window too (dedup.h) */
    tw_batch_t acks;      /* ACK items due this turn */
    tw_batch_t results;   /* RESULT items due this turn */
    int dirty;            /* on the registry's flush list */
    int gone;             /* found unreachable or said BYE: its tasks'
                             channels were closed; cleared when it speaks */
    uint64_t held_seq;    /* with a store: the last batch holding messages
                             for it (persist.c) */
    uint32_t refused;     /* items of `acks` that are refusals */
} tw_bclient_t;

typedef struct {
    tw_idmap_t by_id;
    tw_idmap_t by_ident;
    uint64_t next_id;
    tw_bclient_t **dirty; /* clients with batches to send */
    size_t ndirty, capdirty;
    uint64_t boot; /* the broker's boot id, at the head of ACK and RESULT */
    uint64_t ha;   /* a broker pair's fencing epoch, there too (0: none) */
} tw_clients_t;

void tw_clients_init(tw_clients_t *cs);
void tw_clients_destroy(tw_clients_t *cs);

/* Every ACK and RESULT message sent to a client from now on starts with
 * "boot": `boot` (PROTOCOL.md 13), so a client sees a restarted broker
 * in the first message it gets from it. */
void tw_clients_set_boot(tw_clients_t *cs, uint64_t boot);

/* The same for a broker pair's fencing epoch "ha" (docs/HA.md, section
 * 3), the clients known already included: set when the broker becomes
 * active. */
void tw_clients_set_ha(tw_clients_t *cs, uint64_t ha);

/* The client with this identity, created if new. */
tw_bclient_t *tw_clients_touch(tw_clients_t *cs, const void *ident,
                               size_t len, uint64_t now_ms);

/* The client with this identity, or NULL (never creates one). */
tw_bclient_t *tw_clients_find(const tw_clients_t *cs, const void *ident,
                              size_t len);

/* The client with this id, or NULL if forgotten. */
tw_bclient_t *tw_clients_get(const tw_clients_t *cs, uint64_t id);

/* Note that `c` has batches to send at the end of this turn. */
void tw_clients_mark(tw_clients_t *cs, tw_bclient_t *c);

/* Forget clients idle longer than idle_ms with nothing outstanding.
 * Returns how many were forgotten. */
size_t tw_clients_gc(tw_clients_t *cs, uint64_t now_ms, uint64_t idle_ms);

/* Number of known clients. */
static inline size_t
tw_clients_count(const tw_clients_t *cs)
{
    return cs->by_id.len;
}

#endif /* TW_BROKER_CLIENTS_H */
