/*  broker/state/aside.c - stations no connected worker can take (see
 *  aside.h).
 */
#include "broker/state/aside.h"
#include "common/alloc.h"

#include <assert.h>

void
tw_aside_free(tw_aside_t *a)
{
    tw_free(a->list);
    a->list = NULL;
    a->len = a->cap = 0;
}

void
tw_aside_put(tw_aside_t *a, tw_station_t *st)
{
    assert(st->queued == TW_QUEUED_NO);
    if (a->len == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->list = tw_realloc(a->list, a->cap * sizeof *a->list);
    }
    if (!a->len) {
        a->at = a->gen;
    }
    st->queued = TW_QUEUED_ASIDE;
    st->aside_ix = a->len;
    a->list[a->len++] = st;
}

void
tw_aside_take(tw_aside_t *a, tw_station_t *st)
{
    assert(st->queued == TW_QUEUED_ASIDE && st->aside_ix < a->len &&
           a->list[st->aside_ix] == st);
    tw_station_t *last = a->list[--a->len];
    a->list[st->aside_ix] = last;
    last->aside_ix = st->aside_ix;
    st->queued = TW_QUEUED_NO;
}

void
tw_aside_changed(tw_aside_t *a)
{
    a->gen++;
}

int
tw_aside_due(const tw_aside_t *a)
{
    return a->len && a->at != a->gen;
}

tw_station_t **
tw_aside_release(tw_aside_t *a, size_t *n)
{
    *n = a->len;
    for (size_t i = 0; i < a->len; i++) {
        a->list[i]->queued = TW_QUEUED_NO;
    }
    a->len = 0;
    a->at = a->gen;
    return a->list;
}
