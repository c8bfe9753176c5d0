/*  broker/core/recs.h - task records: what the broker tells about every
 *  task it keeps, pages of them, and retry and purge (PROTOCOL.md 16).
 *
 *  The records themselves live with the tasks (state/task.h: each task's
 *  place in the sets by state, its times, its kept arguments and runs);
 *  this module is the rules over them that need the whole broker: the
 *  summary and detail maps (names of handlers, pools and groups), a page
 *  for a filter (state/tfilter.h), the history of runs as they end, and
 *  the two operations. The wire (cmd/on_query.c, cmd/on_taskrec.c) and
 *  the HTTP API call the same functions, so both answer alike. Broker
 *  loop thread only.
 */
#ifndef TW_BROKER_RECS_H
#define TW_BROKER_RECS_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/task.h"
#include "broker/state/tfilter.h"
#include "proto/proto.h"

struct tw_broker;

/* The most records one page examines (PROTOCOL.md 16.3). */
#define TW__RECS_BUDGET 100000

/* The most ids QUERY task takes. */
#define TW__RECS_MAX_SHOW 100

/* The summary map of `t` (PROTOCOL.md 16.1). */
void tw__recs_summary(struct tw_broker *b, tw_enc_t *e, const tw_task_t *t);

/* The detail map of `t`: the summary and the rest. With preview_max 0,
 * as on the wire (16.1); above 0, as the HTTP API answers it: "args" and
 * "result" whose JSON text is longer than preview_max bytes are null,
 * with "<key>_preview" (that text, cut at a character boundary) and
 * "<key>_truncated" true (docs/HTTP.md, "JSON"). */
void tw__recs_detail(struct tw_broker *b, tw_enc_t *e, const tw_task_t *t,
                     size_t preview_max);

/* A page for filter `f` as the map {tasks, next, scanned}. */
void tw__recs_page(struct tw_broker *b, tw_enc_t *e, const tw_tfilter_t *f);

/* 1 if `t` matches every filter of `f` but the cursor and limit. */
int tw__recs_match(struct tw_broker *b, const tw_task_t *t,
                   const tw_tfilter_t *f);

/* Read the filters of a QUERY tasks or TASK request (16.3) into `f`,
 * its limit 1..max_limit (default_limit if absent). Returns 0, or
 * TW_EINVAL with the reason in `why`. */
int tw__recs_filter_msg(struct tw_broker *b, const tw_msg_t *m,
                        tw_tfilter_t *f, uint32_t default_limit,
                        uint32_t max_limit, char *why, size_t wlen);

/* 1 if `m` carries any filter of 16.3 (state, handler, group, pool,
 * since, text, cursor); limit alone is not one. */
int tw__recs_msg_has_filter(const tw_msg_t *m);

/* TASK retry of one task (16.5): 0, or TW_ESTATE (pending, running or
 * ok, or its arguments are gone), TW_ECLOSED (its pool is closed), with
 * the reason in `why`. */
int tw__recs_retry(struct tw_broker *b, tw_task_t *t, char *why,
                   size_t wlen);

/* TASK purge of one task: 0, or TW_ESTATE (it has not ended). */
int tw__recs_purge(struct tw_broker *b, tw_task_t *t, char *why,
                   size_t wlen);

/* The tasks `f` selects for a bulk retry or purge, newest change first,
 * at most f->limit of them, into *ids (malloc'ed, *n of them); *more is
 * set when matching records are left after them. */
void tw__recs_select(struct tw_broker *b, const tw_tfilter_t *f,
                     uint64_t **ids, size_t *n, int *more);

/* A filter for a bulk retry (`retry`) or purge must name states, and
 * only ended ones (not ok for a retry): 0, or TW_EINVAL with the reason. */
int tw__recs_bulk_check(const tw_tfilter_t *f, int retry, char *why,
                        size_t wlen);

/* Retry (`retry`) or purge each of `ids` on its own and write the map
 * {done: [id], refused: [{id, code, error}], more} into `e`. */
void tw__recs_apply(struct tw_broker *b, int retry, const uint64_t *ids,
                    size_t n, int more, tw_enc_t *e);

#endif /* TW_BROKER_RECS_H */
