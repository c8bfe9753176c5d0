/*  broker/state/trecs.h - task records by state, in change order, paged.
 *
 *  Every task the broker keeps is a record (PROTOCOL.md 16.1). Each
 *  record is in exactly one *set* by its state: pending, running, ok,
 *  failed (error, timeout, lost) or cancelled; within a set, records are
 *  in order of their change number, a counter that grows at every state
 *  change, so a record that changes state always joins the newest end of
 *  its new set (tindex.h). Sets are what retention sweeps (the oldest ok
 *  or cancelled record first, the oldest failed one by its own TTL) and
 *  what a page of a list walks.
 *
 *  A page (QUERY tasks, GET /api/v1/tasks) is the records the filter
 *  admits, newest change first across the sets its states select,
 *  starting below the cursor's change number. The walk merges the sets,
 *  stops at the filter's limit or after examining `budget` records (so
 *  a filter that matches little never holds the loop for long), and
 *  stops early in a set once its records are older than `since`. The
 *  caller decides what else matches (handler, group, pool, text) with a
 *  callback, since only it can read a task.
 *
 *  A tw_trec_t is embedded in the record's owner (the broker's task);
 *  the sets point at it. No I/O and no clock: callers pass times (a
 *  clock that never goes back, in ms). Broker loop thread only.
 */
#ifndef TW_BROKER_TRECS_H
#define TW_BROKER_TRECS_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/tfilter.h"
#include "broker/state/tindex.h"

typedef enum {
    TW_TREC_PENDING,
    TW_TREC_RUNNING,
    TW_TREC_OK,
    TW_TREC_FAILED,
    TW_TREC_CANCELLED,
    TW_TREC_NSETS,
    TW_TREC_NONE = 255 /* in no set */
} tw_trec_set_t;

typedef struct {
    uint64_t csn;        /* change number, 0 before the first */
    uint64_t changed_ms; /* when it last changed */
    uint8_t set;         /* tw_trec_set_t */
    uint8_t state;       /* TW_ST_* it was moved to */
} tw_trec_t;

typedef struct {
    tw_tindex_t sets[TW_TREC_NSETS];
    uint64_t next_csn;
} tw_trecs_t;

/* The set a TW_ST_* state belongs to. */
tw_trec_set_t tw_trecs_set_of(int state);

void tw_trecs_init(tw_trecs_t *r);

/* Free the sets' arrays (not the records). */
void tw_trecs_free(tw_trecs_t *r);

/* `rec` changed to `state` (TW_ST_*) at `now_ms`: it leaves its set, if
 * any, and joins the newest end of the set of `state` with the next
 * change number. */
void tw_trecs_move(tw_trecs_t *r, tw_trec_t *rec, int state, uint64_t now_ms);

/* Put `rec` back with the change number and time it already has (a
 * broker recovering records, oldest change first). Its csn must be above
 * every csn the set holds; next_csn moves past it. */
void tw_trecs_restore(tw_trecs_t *r, tw_trec_t *rec);

/* `rec` leaves its set for good (its record is dropped). */
void tw_trecs_drop(tw_trecs_t *r, tw_trec_t *rec);

/* The oldest record of a set, or NULL; records in it. */
tw_trec_t *tw_trecs_oldest(const tw_trecs_t *r, tw_trec_set_t set);
size_t tw_trecs_count(const tw_trecs_t *r, tw_trec_set_t set);

/* 1 if the record matches the rest of the filter. */
typedef int (*tw_trecs_match_fn)(const tw_trec_t *rec, void *arg);

typedef struct {
    size_t n;         /* records put in out[] */
    size_t scanned;   /* records (and holes) examined */
    int more;         /* records are left to walk (they may not match) */
    uint64_t next;    /* with more: the cursor's change number (the page
                         after lists the records below it) */
} tw_trecs_page_t;

/* One page for filter `f` (states, since, limit and cursor are used
 * here; `match`, which may be NULL, decides the rest) at time `now_ms`:
 * up to f->limit records into out[] (room for f->limit), examining at
 * most `budget` records. */
void tw_trecs_page(const tw_trecs_t *r, const tw_tfilter_t *f,
                   uint64_t now_ms, size_t budget, tw_trecs_match_fn match,
                   void *arg, tw_trec_t **out, tw_trecs_page_t *pg);

#endif /* TW_BROKER_TRECS_H */
