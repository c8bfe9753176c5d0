/*  broker/state/graph.h - parents named within one SUBMIT (PROTOCOL.md
 *  18.9): the seqs of a SUBMIT's items, so an item's `as` list can name
 *  earlier items of the same request.
 *
 *  A chain or a chord is one SUBMIT whose later items name earlier ones
 *  by seq. Such a SUBMIT is admitted all or nothing (18.9): the broker
 *  first walks every item in order, adding each item's seq here after
 *  checking its `as` list against the seqs added so far, and only then
 *  creates tasks. Because an item can only name seqs added before it, a
 *  graph has no cycles and a parent always exists before its child.
 *
 *  Items are numbered from 0 in the order added. Pure bookkeeping over a
 *  hash map (common/idmap.h): no broker state, so unit tests drive it by
 *  hand. Broker loop thread only.
 */
#ifndef TW_BROKER_GRAPH_H
#define TW_BROKER_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "common/idmap.h"

typedef struct {
    tw_idmap_t byseq; /* seq -> item index + 1 */
    size_t n;         /* items added */
} tw_graph_t;

void tw_graph_init(tw_graph_t *g);
void tw_graph_free(tw_graph_t *g);

/* Add the next item, `seq`. Returns its index, or TW_EINVAL (the reason
 * in `why`) if seq is 0 or an earlier item of this SUBMIT has it. */
int64_t tw_graph_add(tw_graph_t *g, uint64_t seq, char *why, size_t wlen);

/* The index of the item added with `seq`, or -1. */
int64_t tw_graph_find(const tw_graph_t *g, uint64_t seq);

/* Marks an element of tw_graph_parents' `out` that is a task id (an
 * item of an earlier SUBMIT), not an item index of this one. */
#define TW_GRAPH_ID (1ull << 63)

/* The task a seq names among the items the same client had accepted in
 * an earlier SUBMIT (a resend after a reconnection may split a large
 * graph), or 0. */
typedef uint64_t (*tw_graph_known_fn)(void *arg, uint64_t seq);

/* Resolve an `as` list of `n` seqs into `out` (n slots): the index of an
 * item added so far, else, if `known` (may be NULL) finds it, TW_GRAPH_ID
 * | its task id. Returns 0, or TW_ENOENT with the reason in `why` when a
 * seq is neither (a later item, the item itself, or none). */
int tw_graph_parents(const tw_graph_t *g, const uint64_t *as, size_t n,
                     tw_graph_known_fn known, void *arg, uint64_t *out,
                     char *why, size_t wlen);

#endif /* TW_BROKER_GRAPH_H */
