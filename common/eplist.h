/*  common/eplist.h - a list of broker endpoints, and which one to use.
 *
 *  A client or worker may be given the endpoints of a broker pair
 *  (`--broker tcp://b1:7710,tcp://b2:7710`, docs/HA.md): one broker is
 *  active, the other refuses with ENOTACTIVE and names the active one.
 *  This module decides which endpoint to connect to, following the rules
 *  of proto/PROTOCOL.md 17.8, and what the next message must carry: the
 *  highest fencing epoch seen (`ha`) and, after losing a broker, the vote
 *  (`lost`, that broker's epoch). It also refuses a broker whose epoch is
 *  below one already seen: a deposed active.
 *
 *     served (ha >= highest)        lost (silence, closed, BYE)
 *   ----------------------> STUCK --------------------------> next endpoint,
 *                             ^                               the next
 *                             |   ENOTACTIVE: live, names a   message votes
 *                             |   listed active -> go there;
 *                             '-- silent and we vote -> retry here;
 *                                 else -> next endpoint
 *
 *  A one-endpoint list behaves as before a pair existed: every move stays
 *  on it. No I/O, no clock; one thread (the owner's loop).
 */
#ifndef TW_EPLIST_H
#define TW_EPLIST_H

#include <stddef.h>
#include <stdint.h>

#define TW_EPLIST_MAX 8       /* endpoints in one list */
#define TW_EPLIST_EP_MAX 255  /* octets in one endpoint */

typedef struct tw_eplist tw_eplist_t;

/* Parse "EP[,EP...]": endpoints separated by commas, spaces around each
 * ignored; each must read scheme://address (tcp://, ipc://...) and be at
 * most TW_EPLIST_EP_MAX octets; at most TW_EPLIST_MAX of them, none
 * twice.
 * Returns 0 and *out, or TW_EINVAL with a sentence in `why` naming the
 * problem ("endpoint 2 is empty"), or TW_ENOMEM. The list starts at its first endpoint. */
int tw_eplist_parse(tw_eplist_t **out, const char *spec, char *why,
                    size_t wlen);

/* Free it; sets *lp to NULL. Idempotent. */
void tw_eplist_free(tw_eplist_t **lp);

size_t tw_eplist_count(const tw_eplist_t *l);

/* Endpoint i (borrowed), or NULL past the end. */
const char *tw_eplist_at(const tw_eplist_t *l, size_t i);

/* The endpoint to connect to now (borrowed). */
const char *tw_eplist_current(const tw_eplist_t *l);

/* The broker at the current endpoint answered as active (a WELCOME, an
 * ACK, a REPLY...) under epoch `ha` (0: not in a pair). Returns 0: stick
 * to it (the vote, if any, is spent); or TW_EPERM if `ha` is below the
 * highest epoch seen: a deposed active, whose answer must not be acted
 * on; the list has moved to the next endpoint. */
int tw_eplist_served(tw_eplist_t *l, uint64_t ha);

/* The current broker was lost (its heartbeats stopped, its connection
 * closed, it said BYE): move to the next endpoint; the next message
 * carries the vote. */
void tw_eplist_lost(tw_eplist_t *l);

/* The current broker answered ENOTACTIVE with its `ha`, the active's
 * endpoint (`active`, `alen` octets, not NUL-terminated; NULL if it named
 * none) and whether it still hears it (`live`). Returns 1 if the endpoint
 * changed (reconnect there), 0 to try the same one again after a
 * backoff. The endpoint strings of the list stay where they are, so a
 * tw_eplist_current taken before still names the one that refused. */
int tw_eplist_not_active(tw_eplist_t *l, const char *active, size_t alen,
                         int live, uint64_t ha);

/* The highest fencing epoch seen (0: none): `ha` in every message. */
uint64_t tw_eplist_ha(const tw_eplist_t *l);

/* 1 if the next message must vote, with the lost broker's epoch in
 * *lost (0 if it was never learnt). */
int tw_eplist_vote(const tw_eplist_t *l, uint64_t *lost);

#endif /* TW_EPLIST_H */
