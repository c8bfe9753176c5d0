/*  broker/state/tindex.c - records in change order (see tindex.h).
 *
 *  Invariants: slots[start..len) hold keys in strictly increasing order
 *  (an item's own key, or a hole's remembered one); slots[start] and
 *  slots[len - 1] are items whenever the range is not empty, because a
 *  hole at either end is dropped at once; `holes` counts the holes in
 *  the range.
 */
#include "broker/state/tindex.h"

#include "common/alloc.h"
#include "common/error.h"

#include <assert.h>
#include <string.h>

#define S_HOLE(k) (((uintptr_t)(k) << 1) | 1u)
#define S_IS_HOLE(s) ((s) & 1u)

static uint64_t
s_key(const tw_tindex_t *ix, uintptr_t s)
{
    return S_IS_HOLE(s) ? (uint64_t)(s >> 1) : ix->key((const void *)s);
}

void
tw_tindex_init(tw_tindex_t *ix, tw_tindex_key_fn key)
{
    memset(ix, 0, sizeof *ix);
    ix->key = key;
}

void
tw_tindex_free(tw_tindex_t *ix)
{
    tw_free(ix->slots);
    tw_tindex_init(ix, ix->key);
}

/* Squeeze out the holes, or move the range to the front of the array,
 * when either wastes more than half of it. */
static void
s_tidy(tw_tindex_t *ix)
{
    size_t used = ix->len - ix->start;
    if (ix->holes > 32 && ix->holes * 2 > used) {
        size_t w = 0;
        for (size_t r = ix->start; r < ix->len; r++) {
            if (!S_IS_HOLE(ix->slots[r])) {
                ix->slots[w++] = ix->slots[r];
            }
        }
        ix->start = 0;
        ix->len = w;
        ix->holes = 0;
    } else if (ix->start > 32 && ix->start * 2 > ix->len) {
        memmove(ix->slots, ix->slots + ix->start,
                used * sizeof *ix->slots);
        ix->start = 0;
        ix->len = used;
    }
}

void
tw_tindex_push(tw_tindex_t *ix, void *item)
{
    assert(((uintptr_t)item & 1u) == 0);
    assert(ix->len == ix->start ||
           ix->key(item) > s_key(ix, ix->slots[ix->len - 1]));
    if (ix->len == ix->cap) {
        s_tidy(ix);
    }
    if (ix->len == ix->cap) {
        ix->cap = ix->cap ? ix->cap * 2 : 16;
        ix->slots = tw_realloc(ix->slots, ix->cap * sizeof *ix->slots);
    }
    ix->slots[ix->len++] = (uintptr_t)item;
}

/* Drop holes from both ends. */
static void
s_trim(tw_tindex_t *ix)
{
    while (ix->start < ix->len && S_IS_HOLE(ix->slots[ix->start])) {
        ix->start++;
        ix->holes--;
    }
    while (ix->len > ix->start && S_IS_HOLE(ix->slots[ix->len - 1])) {
        ix->len--;
        ix->holes--;
    }
    if (ix->start == ix->len) {
        ix->start = ix->len = 0;
    }
}

/* The first position in [start, len) whose key is >= `key`. */
static size_t
s_lower(const tw_tindex_t *ix, uint64_t key)
{
    size_t lo = ix->start, hi = ix->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s_key(ix, ix->slots[mid]) < key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

int
tw_tindex_remove(tw_tindex_t *ix, const void *item)
{
    if (ix->start == ix->len) {
        return TW_ENOENT;
    }
    size_t at;
    if (ix->slots[ix->start] == (uintptr_t)item) {
        at = ix->start; /* the sweep: oldest first */
    } else if (ix->slots[ix->len - 1] == (uintptr_t)item) {
        at = ix->len - 1;
    } else {
        at = s_lower(ix, ix->key(item));
        if (at == ix->len || ix->slots[at] != (uintptr_t)item) {
            return TW_ENOENT;
        }
    }
    ix->slots[at] = S_HOLE(ix->key(item));
    ix->holes++;
    s_trim(ix);
    s_tidy(ix);
    return 0;
}

size_t
tw_tindex_count(const tw_tindex_t *ix)
{
    return ix->len - ix->start - ix->holes;
}

void *
tw_tindex_oldest(const tw_tindex_t *ix)
{
    return ix->start < ix->len ? (void *)ix->slots[ix->start] : NULL;
}

size_t
tw_tindex_end(const tw_tindex_t *ix)
{
    return ix->len;
}

size_t
tw_tindex_below(const tw_tindex_t *ix, uint64_t key)
{
    return s_lower(ix, key);
}

void *
tw_tindex_prev(const tw_tindex_t *ix, size_t *pos, size_t *holes)
{
    while (*pos > ix->start) {
        uintptr_t s = ix->slots[--*pos];
        if (!S_IS_HOLE(s)) {
            return (void *)s;
        }
        if (holes) {
            (*holes)++;
        }
    }
    *pos = ix->start;
    return NULL;
}
