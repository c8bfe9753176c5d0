/*  broker/state/assign.c - the assignator's choice (see assign.h). */
#include "broker/state/assign.h"

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

int
tw_assign_offers(const tw_assign_worker_t *w, const tw_assign_need_t *need)
{
    if (!need->has_handler) {
        return 1;
    }
    for (size_t i = 0; i < w->nhandlers; i++) {
        if (w->handlers[i] == need->handler) {
            return 1;
        }
    }
    return 0;
}

static int
s_has_room(const tw_assign_worker_t *w)
{
    return !w->draining && w->stations < w->slots && w->credit > 0;
}

/* 1 if a should be chosen before b: the avoided worker comes last, then
 * the less loaded one first. */
static int
s_better(const tw_assign_worker_t *a, const tw_assign_worker_t *b,
         uint64_t avoid)
{
    int a_avoided = avoid && a->id == avoid;
    int b_avoided = avoid && b->id == avoid;
    if (a_avoided != b_avoided) {
        return b_avoided;
    }
    if (a->stations != b->stations) {
        return a->stations < b->stations;
    }
    return a->credit > b->credit;
}

/* 1 if worker `w` is in the set `want` selects: matching workers (1),
 * the others (0), or all of them (< 0). */
static int
s_in_set(const tw_assign_worker_t *w, const tw_assign_need_t *need, int want)
{
    return want < 0 || tw_assign_matches(w, need) == want;
}

/* Best candidate with room among the workers of the set `want` that
 * offer the handler. Returns n if none; counts those candidates that are
 * not draining in *seen. */
static size_t
s_best(const tw_assign_worker_t *ws, size_t n, const tw_assign_need_t *need,
       int want, size_t *seen)
{
    size_t best = n;
    *seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!s_in_set(&ws[i], need, want) ||
            !tw_assign_offers(&ws[i], need)) {
            continue;
        }
        if (!ws[i].draining) {
            (*seen)++;
        }
        if (s_has_room(&ws[i]) &&
            (best == n || s_better(&ws[i], &ws[best], need->avoid))) {
            best = i;
        }
    }
    return best;
}

/* Why no worker of the set `want` is a candidate: some that are not
 * draining are connected but lack the handler, or none is connected. */
static tw_assign_result_t
s_none(const tw_assign_worker_t *ws, size_t n, const tw_assign_need_t *need,
       int want)
{
    for (size_t i = 0; i < n; i++) {
        if (!ws[i].draining && s_in_set(&ws[i], need, want)) {
            return TW_ASSIGN_NO_HANDLER;
        }
    }
    return need->placement == TW_PLACE_PINNED ? TW_ASSIGN_WAIT_HOST
                                              : TW_ASSIGN_NO_MATCH;
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
        return seen + others ? TW_ASSIGN_NO_ROOM : s_none(ws, n, need, -1);
    }
    if (seen) {
        return TW_ASSIGN_NO_ROOM;
    }
    return s_none(ws, n, need, filtered ? 1 : -1);
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
    case TW_ASSIGN_NO_HANDLER:
        return "no eligible worker offers its handler";
    }
    return "?";
}
