/*  broker/core/snapshot.h - QUERY "snapshot": the whole picture in one
 *  answer (see snapshot.c for the map and the clone pattern it serves).
 */
#ifndef TW_BROKER_SNAPSHOT_H
#define TW_BROKER_SNAPSHOT_H

#include "proto/proto.h"

struct tw_broker;

/* The snapshot map (PROTOCOL.md 5.14, 8.2), built within one callback so
 * that it is consistent. */
void tw__snapshot(struct tw_broker *b, tw_enc_t *e);

#endif /* TW_BROKER_SNAPSHOT_H */
