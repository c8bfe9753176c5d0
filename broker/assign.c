/*  broker/assign.c - the assignator's choice (see assign.h). */
#include "broker/assign.h"

#include <string.h>

static const char *
s_tag(const tw_assign_worker_t *w, const char *key)
{
    for (size_t i = 0; i + 1 < w->ntags; i += 2) {
        if (strcmp(w->tags[i], key) == 0) {
            return w->tags[i + 1];
        }
    }
    return NULL;
}

int
tw_assign_matches(const tw_assign_worker_t *w, const tw_assign_need_t *need)
{
    if (need->code) {
        const char *c = s_tag(w, "code");
        if (!c || strcmp(c, need->code) != 0) {
            return 0;
        }
    }
    for (size_t i = 0; i + 1 < need->ntags; i += 2) {
        const char *v = s_tag(w, need->tags[i]);
        if (!v || strcmp(v, need->tags[i + 1]) != 0) {
            return 0;
        }
    }
    return 1;
}

static int
s_has_room(const tw_assign_worker_t *w)
{
    return !w->draining && w->stations < w->slots && w->credit > 0;
}

/* 1 if a is less loaded than b. */
static int
s_better(const tw_assign_worker_t *a, const tw_assign_worker_t *b)
{
    if (a->stations != b->stations) {
        return a->stations < b->stations;
    }
    return a->credit > b->credit;
}

/* Best worker with room among those whose match equals `want` (or all
 * when want < 0). Returns n if none; counts matching workers in *seen. */
static size_t
s_best(const tw_assign_worker_t *ws, size_t n, const tw_assign_need_t *need,
       int want, size_t *seen)
{
    size_t best = n;
    *seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (want >= 0 && tw_assign_matches(&ws[i], need) != want) {
            continue;
        }
        if (!ws[i].draining) {
            (*seen)++;
        }
        if (s_has_room(&ws[i]) && (best == n || s_better(&ws[i], &ws[best]))) {
            best = i;
        }
    }
    return best;
}

tw_assign_result_t
tw_assign_choose(const tw_assign_worker_t *ws, size_t n,
                 const tw_assign_need_t *need, size_t *chosen)
{
    int filtered = need->code != NULL || need->ntags > 0;
    size_t seen;
    size_t best = s_best(ws, n, need, filtered ? 1 : -1, &seen);
    if (best < n) {
        *chosen = best;
        return TW_ASSIGN_OK;
    }
    if (filtered && need->placement == TW_PLACE_PREFER) {
        size_t others;
        best = s_best(ws, n, need, 0, &others);
        if (best < n) {
            *chosen = best;
            return TW_ASSIGN_OK;
        }
        return seen + others ? TW_ASSIGN_NO_ROOM : TW_ASSIGN_NO_MATCH;
    }
    if (seen) {
        return TW_ASSIGN_NO_ROOM;
    }
    return need->placement == TW_PLACE_PINNED ? TW_ASSIGN_WAIT_HOST
                                              : TW_ASSIGN_NO_MATCH;
}

const char *
tw_assign_reason(tw_assign_result_t r)
{
    switch (r) {
    case TW_ASSIGN_OK:
        return "assigned";
    case TW_ASSIGN_NO_ROOM:
        return "no free slot on an eligible worker";
    case TW_ASSIGN_NO_MATCH:
        return "no eligible worker";
    case TW_ASSIGN_WAIT_HOST:
        return "waiting for its host: no matching worker is connected";
    }
    return "?";
}
