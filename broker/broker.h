/*  broker/broker.h - the broker process: its settings and its life cycle.
 *
 *  One tw_broker_t is one taskwheel-broker: a libuv loop with three ZeroMQ
 *  sockets (ROUTER frontend for clients, ROUTER backend for workers, XPUB
 *  status), the task table, the worker registry and the client registry.
 *  Everything runs on the loop's thread; "atomic" in the protocol means
 *  "within one callback of this loop".
 *
 *  The broker is built in layers, one directory each; a file includes
 *  headers of its own layer and the layers below, never above, and no two
 *  modules (x.c with its x.h, which is its whole public face) include each
 *  other. tests/source/layers.sh checks both.
 *
 *    loop    broker/      main.c  broker.c (sockets, timers, the end of a
 *                         turn, life cycle)  dispatch.c (a message to its
 *                         handler)  gate.c (checks at the door)
 *                 |
 *    cmd     broker/cmd/  one file per command family: on_task (SUBMIT
 *                         RESULT CANCEL DONE)  on_pool (GROUP POOL)
 *                         on_station (STATION S2N)  on_worker (HELLO READY
 *                         BYE WORKER)  on_chan (CHAN)  on_query (QUERY,
 *                         pings)  metrics (GET /metrics)
 *                 |
 *    core    broker/core/ core.h: struct tw_broker, the state as a whole;
 *                         the rules that change it: flow (task life cycle,
 *                         dispatch)  place (stations on workers)  lease
 *                         (who owns a running task)  admit (S54)  outbox
 *                         (ACK and RESULT batches)  persist (the store's
 *                         side)  events (status topics)  view, snapshot
 *                 |
 *    state   broker/state/ records and tables, each knowing only itself:
 *                         task queue workers clients stations aside assign
 *                         pools dedup quarantine chan auth cfg trim; the
 *                         store: store record verify pagefile salvage
 *                         writer room
 *                 |
 *    out     broker/out/  sending: out (ROUTER sockets, counters: stats.h)
 *                         status (the PUB socket)  tseq  subguard
 *
 *  Below the broker: proto/ (the codec, the op table) and common/.
 */
#ifndef TW_BROKER_H
#define TW_BROKER_H

#include <uv.h>

#include "broker/state/cfg.h"
#include "common/config.h"


/* The settings table (flags, config file keys, defaults, help). */
extern const tw_cfg_opt_t tw_broker_options[];

typedef struct tw_broker tw_broker_t;

/* The rules the settings must follow by themselves, checked before
 * anything is opened: key directories need CURVE, a non-loopback
 * endpoint (or --metrics address) without CURVE needs --insecure, the
 * --metrics address is well formed. Returns 0 or TW_EINVAL with a
 * one-line reason in `why`: a configuration error, so the caller exits 2
 * (which systemd does not restart), where a failure of tw_broker_new (a
 * port in use) exits 1. */
int tw_broker_check(const tw_broker_cfg_t *cfg, char *why, size_t wlen);

/* Bind the sockets and prepare the loop. Returns NULL and logs why on
 * failure (for example an endpoint already in use). The broker keeps a
 * copy of nothing: `cfg` must outlive it. */
tw_broker_t *tw_broker_new(uv_loop_t *loop, const tw_broker_cfg_t *cfg);

/* Open the store (cfg->data) and recover its state; a broker of a pair
 * (cfg->role) opens its peer socket instead and recovers when it becomes
 * active (broker/ha.h). Returns 0 (also without --data), or an error with
 * the path and the problem in `why`: the caller exits 2 and the store is
 * left as it was. */
int tw_broker_recover(tw_broker_t *b, char *why, size_t wlen);

/* Run the loop until tw_broker_stop (or SIGTERM/SIGINT) and the sockets
 * are closed. Returns the process's exit status: 0, or 3 for a broker of
 * a pair that was deposed (broker/ha.h). */
int tw_broker_run(tw_broker_t *b);

/* Begin an orderly shutdown: stop reading, close handles and sockets. */
void tw_broker_stop(tw_broker_t *b);

/* Free the broker after tw_broker_run returned. Sets *self_p to NULL. */
void tw_broker_destroy(tw_broker_t **self_p);

#endif /* TW_BROKER_H */
