/*  broker/dispatch.h - every message a ROUTER socket delivers, checked and
 *  handed to the handler of its command.
 *
 *  These are the watch callbacks of the frontend and the backend. Each
 *  incoming message is checked in the same order before any state
 *  changes: the gate (gate.h: quarantine, routing id, text), frame count,
 *  header (signature, version, command), body (types, sizes, required
 *  fields: all in tw_msg_decode), then the direction (a command a peer of
 *  this socket may send). A message that fails any check is answered with
 *  ERROR and otherwise ignored: it changes nothing. Then the handler of
 *  its command family acts (broker/cmd/), like the actions of a state
 *  machine; the per-peer state table lives in proto/PROTOCOL.md. Broker
 *  loop thread only.
 */
#ifndef TW_BROKER_DISPATCH_H
#define TW_BROKER_DISPATCH_H

#include "common/zwatch.h"

/* One message from a client (frontend) / a worker (backend); zw->data is
 * the broker. */
void tw__dispatch_front(tw_zwatch_t *zw, tw_zframes_t *msg);
void tw__dispatch_back(tw_zwatch_t *zw, tw_zframes_t *msg);

#endif /* TW_BROKER_DISPATCH_H */
