/*  broker/cmd/on_pool.h - the pool and group commands: GROUP and POOL
 *  (PROTOCOL.md 12.4, 12.5).
 *
 *  The client side of pools and groups (state/pools.h): create, set,
 *  clear and read group limits; size, lock, close and flush a pool; stop
 *  its most recently started tasks; cancel a group or the whole pool. Each
 *  request is answered with REPLY {seq, data} or ERROR {seq, code, msg}.
 *  Changes that free room (a limit raised or cleared) hand it to parked
 *  tasks at once; the end of the turn dispatches them. Broker loop thread
 *  only.
 */
#ifndef TW_BROKER_ON_POOL_H
#define TW_BROKER_ON_POOL_H

#include "broker/state/clients.h"
#include "proto/proto.h"

struct tw_broker;

/* A client's GROUP request / POOL request. */
void tw__on_group(struct tw_broker *b, tw_bclient_t *c, const tw_msg_t *m);
void tw__on_pool(struct tw_broker *b, tw_bclient_t *c, const tw_msg_t *m);

#endif /* TW_BROKER_ON_POOL_H */
