/*  broker/core/outbox.h - the clients' ACK and RESULT batches, and when
 *  they leave.
 *
 *  Within a turn, acknowledgements and outcomes due to a client are
 *  gathered in its two batches (clients.h), many items per message; at
 *  the end of the turn each client gets one ACK and one RESULT message.
 *  With a store (persist.h) they wait for the loop's prepare phase (once
 *  per loop iteration, after every socket had its turn), which commits
 *  first, so one transaction covers every turn of the iteration and an
 *  ACK leaves only once its task is recorded. Any other message to a
 *  client (a REPLY, an ERROR) goes through out.h's hold hook, installed
 *  here: what the client is already owed this turn leaves first, and a
 *  message that would overtake one still waiting for the store waits
 *  behind it. Broker loop thread only.
 */
#ifndef TW_BROKER_OUTBOX_H
#define TW_BROKER_OUTBOX_H

#include "broker/state/clients.h"
#include "proto/proto.h"

struct tw_broker;

/* Install the hold hook, and with a store the prepare phase (after
 * tw__persist_start). */
void tw__outbox_start(struct tw_broker *b);

/* Close the prepare phase (shutdown, loop still running). */
void tw__outbox_stop(struct tw_broker *b);

/* Begin one more ACK or RESULT item for client `c` in `batch` (one of its
 * two batches), sending the batch first if it is full, and mark the client
 * for the end-of-turn flush. Returns the encoder for the item. */
tw_enc_t *tw__outbox_item(struct tw_broker *b, tw_bclient_t *c,
                          tw_batch_t *batch);

/* Send every client's ACK and RESULT batches now (after handing the
 * store what they depend on). */
void tw__outbox_flush(struct tw_broker *b);

/* The end of a turn (a socket drained, a timer ran): without a store the
 * batches go now; with one, at the loop's prepare phase. */
void tw__outbox_turn_end(struct tw_broker *b);

#endif /* TW_BROKER_OUTBOX_H */
