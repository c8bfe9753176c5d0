/*  broker/out/status.h - the status PUB socket: events and stats for monitors.
 *
 *  Messages are two frames, [topic][msgpack map], so a monitor subscribes
 *  by topic prefix ("worker.", "task.", "stats"). The socket is an XPUB:
 *  the broker reads subscriptions as they come and builds a task event only
 *  if someone subscribed to a prefix of its topic, so per-task events cost
 *  nothing when nobody watches. Every body carries "pseq", a sequence number
 *  over all published messages, and "tseq", one per topic (tseq.h), so a
 *  subscriber to a prefix can tell a lost message from a topic it did not
 *  ask for, and "ts", the wall-clock time it was published (Unix ms).
 *  Publishing is
 *  lossy by nature (a slow subscriber past the high-water mark loses
 *  messages); QUERY gives a consistent snapshot. Broker loop thread only.
 */
#ifndef TW_BROKER_STATUS_H
#define TW_BROKER_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "broker/out/subguard.h"
#include "broker/out/tseq.h"
#include "common/strmap.h"
#include "common/zwatch.h"
#include "proto/proto.h"

typedef struct {
    tw_zwatch_t zw;
    uv_loop_t *loop;
    char **subs; /* current subscription prefixes */
    size_t *sublen;
    size_t *subref; /* subscriptions of each prefix, all monitors */
    size_t nsubs;
    tw_strmap_t subidx; /* prefix -> index + 1 into subs */
    uint64_t pseq;
    uint64_t dropped;
    int subs_capped; /* the prefix limit was reached (logged once) */
    tw_tseq_t tseq;  /* per-topic sequence numbers */
    uint64_t boot;   /* the broker's boot id, in welcome answers */
    uint64_t unsubs; /* prefixes nobody subscribes to any more */
    /* Bounds on subscriptions (tw_status_guard, subguard.h). */
    int guarded;
    tw_subguard_t guard;
    void *mon;         /* the XPUB's socket monitor PAIR */
    tw_zwatch_t mzw;
    int mzw_open;
    uint64_t cut_logged; /* guard.cuts already logged */
} tw_status_t;

/* Watch the XPUB `sock` for subscriptions. Returns 0 or an error. */
int tw_status_init(uv_loop_t *loop, tw_status_t *st, void *sock);

/* Bound the monitors' subscriptions (subguard.h): from now on every
 * subscription and unsubscription is counted per peer address, and the
 * socket monitor of the XPUB (made in `ctx`) tells accepted and closed
 * connections. Call once after tw_status_init. Returns 0 or an error. */
int tw_status_guard(tw_status_t *st, void *ctx);

/* Stop the XPUB's monitor (before the XPUB is closed). */
void tw_status_unguard(tw_status_t *st, void *sock);

/* Close; `cb` fires when the handles are closed. Frees the prefixes. */
void tw_status_close(tw_status_t *st, tw_zwatch_close_cb cb);

/* 1 if some subscriber would receive `topic`. */
int tw_status_wants(const tw_status_t *st, const char *topic);

/* Start a body of `nfields` fields (plus "pseq", written here, and
 * "tseq" and "ts", which tw_status_send appends) in `e`. */
void tw_status_begin(tw_status_t *st, tw_enc_t *e, size_t nfields);

/* Append "tseq" for `topic` and "ts" (now, wall clock, Unix ms), publish
 * `e`'s body under `topic` and reset `e`. The body must have been started
 * with tw_status_begin. */
void tw_status_send(tw_status_t *st, const char *topic, tw_enc_t *e);

#endif /* TW_BROKER_STATUS_H */
