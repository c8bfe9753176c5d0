/*  broker/out/out.h - what the broker sends on its two ROUTER sockets.
 *
 *  The bottom layer of the broker (the picture is in broker/broker.h):
 *  every message to a client (the frontend) or a worker (the backend)
 *  leaves through here as three frames, [routing id][header][body]. A
 *  send the socket refuses closes its frames and is counted in `dropped`,
 *  and by cause in `unroutable` (the peer is gone: the sockets are
 *  ZMQ_ROUTER_MANDATORY) or `hwm` (its queue is full). A message to a
 *  client may be taken over first by the hold hook, which the layer that
 *  orders replies behind the store installs (core/outbox.c); HEARTBEAT and
 *  BYE are never its business but it decides that itself.
 *
 *  This module knows the sockets, the counters and the boot id, nothing
 *  of tasks, peers or state: callers pass routing ids. The watches
 *  themselves (common/zwatch.h) are embedded here; the loop starts and
 *  closes them. Broker loop thread only.
 */
#ifndef TW_BROKER_OUT_H
#define TW_BROKER_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "broker/out/stats.h"
#include "common/zwatch.h"
#include "proto/proto.h"

/* A batch message stops growing past this many bytes or items, so every
 * message the broker sends stays far below --max-msg and the decoder's
 * item limit. */
#define TW__BATCH_BYTES (4u << 20)
#define TW__BATCH_ITEMS 4096u

typedef enum {
    TW_OUT_FRONT = 0, /* the frontend: clients */
    TW_OUT_BACK = 1   /* the backend: workers */
} tw_out_side_t;

/* Return 1 to take over the three frames of a message to a client (they
 * are the hook's to send or close), 0 to let it go now. */
typedef int tw_out_hold_fn(void *arg, zmq_msg_t f[3]);

/* Return 1 to take the frames of a message to a client instead of
 * sending it (they are then the hook's to close), 0 to let it go on. The
 * HTTP API runs wire operations as a client of its own this way. */
typedef int tw_out_capture_fn(void *arg, zmq_msg_t f[3]);

typedef struct {
    tw_zwatch_t zw[2];        /* by tw_out_side_t */
    tw_broker_stats_t *st;    /* dropped, unroutable, hwm */
    uint64_t boot;            /* this run's id, in every REPLY */
    uint64_t ha;              /* the active of a pair: its fencing epoch,
                                 in every REPLY too; 0: none */
    tw_out_hold_fn *hold;     /* NULL: nothing is held */
    void *hold_arg;
    tw_out_capture_fn *capture; /* NULL: nothing is taken */
    void *capture_arg;
} tw_out_t;

/* Send three built frames [ident][header][body]. A refused send closes
 * them and is counted. Returns 0 or the zwatch error (TW_ENOENT: the peer
 * is gone, TW_EAGAIN: its queue is full); 0 too when the hold hook took
 * them. */
int tw_out_built(tw_out_t *o, tw_out_side_t side, zmq_msg_t f[3]);

/* Send [ident][header][body] with the body `e` (left to the caller to
 * free). Returns as tw_out_built. */
int tw_out_send(tw_out_t *o, tw_out_side_t side, const void *ident,
                size_t ilen, tw_cmd_t cmd, tw_enc_t *e);

/* Send a batch as [ident][header][body]; the batch is left empty. */
int tw_out_batch(tw_out_t *o, tw_out_side_t side, const void *ident,
                 size_t ilen, tw_cmd_t cmd, tw_batch_t *batch);

/* ERROR {code, msg[, seq]} to a peer (seq 0 is left out). */
void tw_out_error(tw_out_t *o, tw_out_side_t side, const void *ident,
                  size_t ilen, int code, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* REPLY {seq, data, boot, ha?} to a client: begin writes the envelope up
 * to "data", the caller writes the data value, tw_out_reply adds "boot"
 * (and "ha" on the active of a pair), sends it on the frontend and frees
 * `e`. Only an envelope begun here may be given to tw_out_reply. */
void tw_out_reply_begin(tw_enc_t *e, uint64_t seq);
void tw_out_reply(tw_out_t *o, const void *ident, size_t ilen, tw_enc_t *e);

/* ERROR {code, msg, seq} to a client on the frontend. */
void tw_out_reply_error(tw_out_t *o, const void *ident, size_t ilen,
                        uint64_t seq, int code, const char *msg);

/* The command in the header frame of three built frames, or -1. */
int tw_out_cmd(zmq_msg_t f[3]);

#endif /* TW_BROKER_OUT_H */
