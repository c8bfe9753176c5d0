/*  broker/ha.h - this broker's side of a broker pair (docs/HA.md,
 *  proto/PROTOCOL.md 17): the pair's module (state/pair.h) wired to the
 *  loop, the store and the sockets.
 *
 *  A broker started with --role opens its store but does not recover it:
 *  it starts PENDING and lets the state machine decide.
 *
 *    - Active (the pair's first start, or a takeover): the store is
 *      recovered as after a restart (the caller's `recover`, which also
 *      starts the writer), and from then on every write batch is streamed
 *      to the passive (core/persist.c); under --replicate sync a batch's
 *      ACKs and RESULTs wait until the passive has it.
 *    - Passive: the stream is applied to the store by a writer thread of
 *      its own, and acknowledged once written. A passive that starts
 *      empty or falls behind gets a snapshot, built in DIR/catchup/ and
 *      swapped in whole at its end (the store it replaces is kept as
 *      DIR/replaced.mdb when it held batches the active never had).
 *    - Every message of a client or worker passes tw__ha_gate first: a
 *      broker that is not active answers ERROR ENOTACTIVE naming the
 *      active; a later fencing epoch deposes an active one, which stops
 *      and exits with status 3.
 *
 *  Broker loop thread only.
 */
#ifndef TW_BROKER_HA_H
#define TW_BROKER_HA_H

#include <stddef.h>

#include "broker/core/core.h"
#include "proto/proto.h"

struct tw_ha;

/* The settings of a pair, checked by themselves: a role needs --data,
 * --peer-bind and --peer; --peer-bind and --peer need a role; the peer
 * socket has no CURVE, so a --peer-bind that is not loopback needs
 * --insecure. Returns 0 or TW_EINVAL with the reason in `why`. */
int tw__ha_check(const tw_broker_cfg_t *cfg, char *why, size_t wlen);

/* What the loop does for the pair (broker.c): recover the state from the
 * store and start writing (tw_broker_recover's work), called once, when
 * this broker activates; and stop the broker (tw_broker_stop), when it is
 * deposed. */
typedef struct {
    int (*recover)(tw_broker_t *b, char *why, size_t wlen);
    void (*stop)(tw_broker_t *b);
} tw_ha_hooks_t;

/* Open the store for the stream, read its pair record and open the peer
 * socket (cfg->role set). Returns 0, or an error with the reason in
 * `why` (the store cannot be opened, the peer endpoint bound...). */
int tw__ha_open(tw_broker_t *b, const tw_ha_hooks_t *hooks, char *why,
                size_t wlen);

/* A message of a client (`worker` 0) or worker from `ident` passed the
 * gate: 0 to handle it, or 1 if this broker is not the active one and
 * answered ERROR ENOTACTIVE. QUERY "status" is answered by both. */
int tw__ha_gate(tw_broker_t *b, int worker, const void *ident, size_t ilen,
                const tw_msg_t *m);

/* Stopping: close the peer socket, and the passive's store; what is
 * left is freed as the loop runs once more. */
void tw__ha_stop(tw_broker_t *b);

#endif /* TW_BROKER_HA_H */
