/*  broker/cmd/on_chan.h - the task channel command: CHAN from workers and
 *  clients (PROTOCOL.md 14), and clients that went away (S93).
 *
 *  CHAN items from a worker go to the tasks' submitters; CHAN items from a
 *  client go to the workers running them. The rules for one item are
 *  state/chan.h; how the broker learns that a client is gone, and what it
 *  does then, is described in on_chan.c. Broker loop thread only.
 */
#ifndef TW_BROKER_ON_CHAN_H
#define TW_BROKER_ON_CHAN_H

#include "broker/state/clients.h"
#include "broker/state/workers.h"
#include "proto/proto.h"

struct tw_broker;

/* CHAN items from worker `w` / from client `c`. */
void tw__on_chan_up(struct tw_broker *b, tw_bworker_t *w, const tw_msg_t *m);
void tw__on_chan_down(struct tw_broker *b, tw_bclient_t *c,
                      const tw_msg_t *m);

/* Client `c` went away (said BYE, or a probe found it unroutable): ask
 * the workers to close the channels of its running tasks, so their
 * waiting and later requests fail now (S93), not at their timeouts. Once
 * per departure. */
void tw__on_client_gone(struct tw_broker *b, tw_bclient_t *c,
                        const char *why);

/* Probe every client with tasks not ended (an empty HEARTBEAT;
 * ROUTER_MANDATORY makes a gone one unroutable) and treat the unroutable
 * ones as gone. Called once a second. */
void tw__on_clients_probe(struct tw_broker *b);

#endif /* TW_BROKER_ON_CHAN_H */
