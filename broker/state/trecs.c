/*  broker/state/trecs.c - task records by state, paged (see trecs.h).
 *
 *  A page merges the selected sets newest first: each set has a
 *  position and a candidate (its next record below the position); the
 *  candidate with the highest change number is taken, examined and
 *  replaced by the next one of its set. A set whose candidate changed
 *  before `since` is done, because its records only get older.
 */
#include "broker/state/trecs.h"

#include "proto/proto.h"

#include <string.h>

static uint64_t
s_key(const void *item)
{
    return ((const tw_trec_t *)item)->csn;
}

tw_trec_set_t
tw_trecs_set_of(int state)
{
    switch (state) {
    case TW_ST_PENDING:
        return TW_TREC_PENDING;
    case TW_ST_RUNNING:
        return TW_TREC_RUNNING;
    case TW_ST_OK:
        return TW_TREC_OK;
    case TW_ST_CANCELLED:
        return TW_TREC_CANCELLED;
    default:
        return TW_TREC_FAILED;
    }
}

/* The TW_ST_* states each set holds, as tw_tfilter_t bits. */
static uint32_t
s_set_states(int set)
{
    switch (set) {
    case TW_TREC_PENDING:
        return 1u << TW_ST_PENDING;
    case TW_TREC_RUNNING:
        return 1u << TW_ST_RUNNING;
    case TW_TREC_OK:
        return 1u << TW_ST_OK;
    case TW_TREC_CANCELLED:
        return 1u << TW_ST_CANCELLED;
    default:
        return (1u << TW_ST_ERROR) | (1u << TW_ST_TIMEOUT) |
               (1u << TW_ST_LOST);
    }
}

void
tw_trecs_init(tw_trecs_t *r)
{
    for (int i = 0; i < TW_TREC_NSETS; i++) {
        tw_tindex_init(&r->sets[i], s_key);
    }
    r->next_csn = 1;
}

void
tw_trecs_free(tw_trecs_t *r)
{
    for (int i = 0; i < TW_TREC_NSETS; i++) {
        tw_tindex_free(&r->sets[i]);
    }
}

void
tw_trecs_drop(tw_trecs_t *r, tw_trec_t *rec)
{
    if (rec->set < TW_TREC_NSETS) {
        tw_tindex_remove(&r->sets[rec->set], rec);
    }
    rec->set = TW_TREC_NONE;
}

void
tw_trecs_move(tw_trecs_t *r, tw_trec_t *rec, int state, uint64_t now_ms)
{
    tw_trecs_drop(r, rec);
    rec->csn = r->next_csn++;
    rec->changed_ms = now_ms;
    rec->state = (uint8_t)state;
    rec->set = (uint8_t)tw_trecs_set_of(state);
    tw_tindex_push(&r->sets[rec->set], rec);
}

void
tw_trecs_restore(tw_trecs_t *r, tw_trec_t *rec)
{
    rec->set = (uint8_t)tw_trecs_set_of(rec->state);
    tw_tindex_push(&r->sets[rec->set], rec);
    if (rec->csn >= r->next_csn) {
        r->next_csn = rec->csn + 1;
    }
}

tw_trec_t *
tw_trecs_oldest(const tw_trecs_t *r, tw_trec_set_t set)
{
    return tw_tindex_oldest(&r->sets[set]);
}

size_t
tw_trecs_count(const tw_trecs_t *r, tw_trec_set_t set)
{
    return tw_tindex_count(&r->sets[set]);
}

void
tw_trecs_page(const tw_trecs_t *r, const tw_tfilter_t *f, uint64_t now_ms,
              size_t budget, tw_trecs_match_fn match, void *arg,
              tw_trec_t **out, tw_trecs_page_t *pg)
{
    memset(pg, 0, sizeof *pg);
    size_t pos[TW_TREC_NSETS];
    tw_trec_t *cand[TW_TREC_NSETS];
    uint64_t oldest = f->since_ms && f->since_ms < now_ms
                          ? now_ms - f->since_ms : 0;
    for (int s = 0; s < TW_TREC_NSETS; s++) {
        cand[s] = NULL;
        if (f->states && !(f->states & s_set_states(s))) {
            continue;
        }
        const tw_tindex_t *ix = &r->sets[s];
        pos[s] = f->has_cursor ? tw_tindex_below(ix, f->below)
                               : tw_tindex_end(ix);
        cand[s] = tw_tindex_prev(ix, &pos[s], &pg->scanned);
    }
    size_t examined = 0;
    for (;;) {
        int best = -1;
        for (int s = 0; s < TW_TREC_NSETS; s++) {
            if (cand[s] && cand[s]->changed_ms < oldest) {
                cand[s] = NULL; /* the rest of this set is older still */
            }
            if (cand[s] && (best < 0 || cand[s]->csn > cand[best]->csn)) {
                best = s;
            }
        }
        if (best < 0) {
            return; /* every set walked: no more */
        }
        if (pg->n == f->limit || (pg->scanned >= budget && examined > 0)) {
            /* The next page starts at the first record not examined. */
            pg->more = 1;
            pg->next = cand[best]->csn + 1;
            return;
        }
        tw_trec_t *rec = cand[best];
        pg->scanned++;
        examined++; /* at least one per page: paging always moves on */
        if (tw_tfilter_has_state(f, rec->state) && (!match || match(rec, arg))) {
            out[pg->n++] = rec;
        }
        cand[best] = tw_tindex_prev(&r->sets[best], &pos[best], &pg->scanned);
    }
}
