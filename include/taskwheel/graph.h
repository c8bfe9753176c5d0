/*  taskwheel/graph.h - chains, chords and other task graphs submitted in
 *  one request.
 *
 *  A graph is a list of tasks where each may wait for earlier tasks of
 *  the same list (its parents). It goes to the broker as ONE SUBMIT and
 *  is admitted all or nothing (PROTOCOL.md 18.9): if one task is refused
 *  (an unknown handler, a closed pool...), every task of the graph is
 *  refused and nothing is created. Give the tasks a group and the whole
 *  graph cancels as one unit (tw_client_cancel_group).
 *
 *  Two shapes have helpers:
 *
 *    chain   A -> B -> C      each step gets the result of the one before
 *                             as the first element of its arguments
 *                             (docs/WORKFLOWS.md section 2)
 *    chord   A, B, C -> D     D, the callback, runs once the fan-out A, B,
 *                             C ended ok, with their results, in order,
 *                             then its own arguments
 *
 *  If a parent fails, its waiting children end `cancelled` with
 *  "upstream failed: task <id> ended <state>" (unless the node asks to
 *  run after any end). One client, one thread, as the rest of the API.
 */
#ifndef TASKWHEEL_GRAPH_H
#define TASKWHEEL_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "taskwheel/client.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most tasks in one graph. */
#define TW_GRAPH_MAX_NODES 65536

/* One task of a graph. `spec` is as for tw_client_submit (its `after`
 * may name tasks outside the graph by id; those come first among the
 * parents). `parents` are indexes of EARLIER nodes of the same graph, in
 * the order their results are passed when spec.with_results is set. */
typedef struct {
    tw_task_spec_t spec;
    const size_t *parents;
    size_t nparents;
} tw_graph_node_t;

/* Queue the `n` nodes as one SUBMIT (sent at once); seqs_out (n slots,
 * may be NULL) gets each node's sequence number. Returns 0, TW_EINVAL (a
 * spec tw_client_submit would refuse, a parent index that is not an
 * earlier node, n 0 or above TW_GRAPH_MAX_NODES), TW_E2BIG (more than
 * fits in one message), TW_EFULL (the outbox has no room for all n) or
 * TW_ESTATE (a stopped session); then nothing was queued. */
int tw_client_graph_submit(tw_client_t *c, const tw_graph_node_t *nodes,
                           size_t n, uint64_t *seqs_out);

/* Wait up to timeout_ms for the acknowledgements of the `n` seqs of a
 * graph just submitted (call it before polling for anything else) and
 * put the task ids in ids_out (n slots). Returns 0; the broker's refusal
 * of the graph (the code of the refused node, its message in `err`,
 * errlen bytes, if not NULL); or TW_ETIMEDOUT. */
int tw_client_graph_ids(tw_client_t *c, const uint64_t *seqs, size_t n,
                        uint64_t *ids_out, int timeout_ms, char *err,
                        size_t errlen);

/* A chain of `n` steps: step i+1 waits for step i (all ok) and gets its
 * result first in its arguments. Every step also joins `group` if it is
 * not NULL. Submits it and waits as tw_client_graph_ids: ids_out gets
 * the n task ids. Returns as tw_client_graph_submit, then as
 * tw_client_graph_ids. */
int tw_client_chain(tw_client_t *c, const tw_task_spec_t *steps, size_t n,
                    const char *group, uint64_t *ids_out, int timeout_ms,
                    char *err, size_t errlen);

/* A chord: the `n` tasks of `header` run in parallel; `callback` waits
 * for all of them and gets their results, in order, before its own
 * arguments. Every task joins `group` if not NULL. ids_out gets n + 1
 * ids, the callback's last. Returns as tw_client_chain. */
int tw_client_chord(tw_client_t *c, const tw_task_spec_t *header, size_t n,
                    const tw_task_spec_t *callback, const char *group,
                    uint64_t *ids_out, int timeout_ms, char *err,
                    size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* TASKWHEEL_GRAPH_H */
