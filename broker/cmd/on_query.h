/*  broker/cmd/on_query.h - the read-only client commands: QUERY and a
 *  client's HEARTBEAT (PROTOCOL.md 5.8, 5.14).
 *
 *  QUERY's "what" is one of the operations of proto/ops.h (status,
 *  workers, snapshot), each answered by its s_op_<name>() from the views
 *  of core/view.h and core/snapshot.h within one callback, so the answer
 *  is consistent. Nothing changes. Broker loop thread only.
 */
#ifndef TW_BROKER_ON_QUERY_H
#define TW_BROKER_ON_QUERY_H

#include "broker/state/clients.h"
#include "proto/proto.h"

struct tw_broker;

/* QUERY: REPLY {seq, data}, or ERROR EINVAL for an unknown "what". */
void tw__on_query(struct tw_broker *b, tw_bclient_t *c, const tw_msg_t *m);

/* A client's ping: HEARTBEAT {boot, pub}, this run's identity and the
 * status endpoint to subscribe to (PROTOCOL.md 5.8). */
void tw__on_ping(struct tw_broker *b, tw_bclient_t *c);

#endif /* TW_BROKER_ON_QUERY_H */
