/*  broker/state/deps.c - blocked tasks and their release rules (deps.h).
 *
 *  Three maps: blocked child -> its record; live parent -> the children
 *  waiting for it (a child appears once per time it names the parent);
 *  parent -> how many with-results children pin it. Settling a child
 *  drops its record and its pins at once but leaves it in the waiting
 *  lists of its other parents; those entries are skipped (the child is no
 *  longer found) and go when those parents end.
 */
#include "broker/state/deps.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/idmap.h"
#include "proto/proto.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    uint64_t id;
    uint8_t mode;
    uint8_t with_results;
    size_t n;
    size_t waiting; /* parent namings not yet ended */
    uint64_t parents[];
} s_child_t;

typedef struct {
    uint64_t *v;
    size_t len, cap;
} s_ids_t;

struct tw_deps {
    tw_idmap_t children; /* id -> s_child_t */
    tw_idmap_t waiters;  /* parent id -> s_ids_t */
    tw_idmap_t pins;     /* parent id -> count, as a pointer-sized int */
};

static int
s_ended(int st)
{
    return st >= TW_ST_OK && st <= TW_ST_LOST;
}

void
tw_deps_out_clear(tw_deps_out_t *out)
{
    for (size_t i = 0; i < out->len; i++) {
        if (out->v[i].parents) {
            /* The settled child's record, kept for its parents. */
            tw_free((char *)out->v[i].parents - offsetof(s_child_t, parents));
        }
    }
    out->len = 0;
}

void
tw_deps_out_free(tw_deps_out_t *out)
{
    tw_deps_out_clear(out);
    tw_free(out->v);
    memset(out, 0, sizeof *out);
}

static void
s_out_push(tw_deps_out_t *out, const tw_deps_decision_t *dec)
{
    if (out->len == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 8;
        out->v = tw_realloc(out->v, out->cap * sizeof *out->v);
    }
    out->v[out->len++] = *dec;
}

static void
s_ids_push(s_ids_t *l, uint64_t id)
{
    if (l->len == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->v = tw_realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->len++] = id;
}

tw_deps_t *
tw_deps_new(void)
{
    tw_deps_t *d = tw_calloc(1, sizeof *d);
    tw_idmap_init(&d->children);
    tw_idmap_init(&d->waiters);
    tw_idmap_init(&d->pins);
    return d;
}

static void
s_free_child(uint64_t id, void *val, void *arg)
{
    (void)id;
    (void)arg;
    tw_free(val);
}

static void
s_free_ids(uint64_t id, void *val, void *arg)
{
    (void)id;
    (void)arg;
    s_ids_t *l = val;
    tw_free(l->v);
    tw_free(l);
}

void
tw_deps_destroy(tw_deps_t **d_p)
{
    tw_deps_t *d = *d_p;
    if (!d) {
        return;
    }
    tw_idmap_each(&d->children, s_free_child, NULL);
    tw_idmap_each(&d->waiters, s_free_ids, NULL);
    tw_idmap_free(&d->children);
    tw_idmap_free(&d->waiters);
    tw_idmap_free(&d->pins);
    tw_free(d);
    *d_p = NULL;
}

static void
s_pin(tw_deps_t *d, uint64_t parent, int delta)
{
    uintptr_t n = (uintptr_t)tw_idmap_get(&d->pins, parent);
    n += (uintptr_t)(intptr_t)delta;
    if (n == 0) {
        tw_idmap_del(&d->pins, parent);
    } else {
        tw_idmap_put(&d->pins, parent, (void *)n);
    }
}

/* Forget a child: its pins, and its record unless `keep` (a decision
 * then owns it). */
static void
s_settle(tw_deps_t *d, s_child_t *c, int keep)
{
    tw_idmap_del(&d->children, c->id);
    if (c->with_results) {
        for (size_t i = 0; i < c->n; i++) {
            s_pin(d, c->parents[i], -1);
        }
    }
    if (!keep) {
        tw_free(c);
    }
}

int
tw_deps_add(tw_deps_t *d, uint64_t child, const uint64_t *parents,
            const uint8_t *st, size_t n, int mode, int with_results,
            tw_deps_decision_t *out, size_t *bad)
{
    if (n == 0 || n > TW_DEPS_MAX_PARENTS || child == 0 ||
        (mode != TW_DEPS_ALL_OK && mode != TW_DEPS_ANY_END)) {
        return TW_EINVAL;
    }
    if (tw_idmap_get(&d->children, child)) {
        return TW_EEXIST;
    }
    memset(out, 0, sizeof *out);
    out->child = child;
    size_t waiting = 0;
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (parents[i] == child || parents[i] == 0) {
            return TW_EINVAL;
        }
        if (st[i] == TW_ST_UNKNOWN) {
            if (bad) {
                *bad = i;
            }
            return TW_ENOENT;
        }
        if (!s_ended(st[i])) {
            waiting++;
        } else if (mode == TW_DEPS_ALL_OK && st[i] != TW_ST_OK && !failed) {
            failed = 1;
            out->parent = parents[i];
            out->parent_st = st[i];
        }
    }
    if (failed) {
        out->verdict = TW_DEPS_CANCEL;
        return 0;
    }
    if (waiting == 0) {
        out->verdict = TW_DEPS_RELEASE;
        return 0;
    }
    out->verdict = TW_DEPS_WAIT;
    s_child_t *c = tw_malloc(sizeof *c + n * sizeof c->parents[0]);
    c->id = child;
    c->mode = (uint8_t)mode;
    c->with_results = with_results ? 1 : 0;
    c->n = n;
    c->waiting = waiting;
    memcpy(c->parents, parents, n * sizeof parents[0]);
    tw_idmap_put(&d->children, child, c);
    for (size_t i = 0; i < n; i++) {
        if (!s_ended(st[i])) {
            s_ids_t *l = tw_idmap_get(&d->waiters, parents[i]);
            if (!l) {
                l = tw_calloc(1, sizeof *l);
                tw_idmap_put(&d->waiters, parents[i], l);
            }
            s_ids_push(l, child);
        }
        if (c->with_results) {
            s_pin(d, parents[i], +1);
        }
    }
    return 0;
}

size_t
tw_deps_ended(tw_deps_t *d, uint64_t id, int st, tw_deps_out_t *out)
{
    size_t first = out->len;
    /* The decisions appended so far double as the work list: each CANCEL
     * is an end to pass on, in the order it was decided. */
    size_t next = out->len;
    for (;;) {
        s_ids_t *l = tw_idmap_del(&d->waiters, id);
        if (l) {
            for (size_t i = 0; i < l->len; i++) {
                s_child_t *c = tw_idmap_get(&d->children, l->v[i]);
                if (!c) {
                    continue; /* settled by another parent */
                }
                tw_deps_decision_t dec = {.child = c->id};
                if (c->mode == TW_DEPS_ALL_OK && st != TW_ST_OK) {
                    dec.verdict = TW_DEPS_CANCEL;
                    dec.parent = id;
                    dec.parent_st = st;
                } else if (--c->waiting == 0) {
                    dec.verdict = TW_DEPS_RELEASE;
                    if (c->with_results) {
                        dec.parents = c->parents;
                        dec.nparents = c->n;
                    }
                } else {
                    continue;
                }
                s_settle(d, c, dec.parents != NULL);
                s_out_push(out, &dec);
            }
            tw_free(l->v);
            tw_free(l);
        }
        while (next < out->len && out->v[next].verdict != TW_DEPS_CANCEL) {
            next++;
        }
        if (next == out->len) {
            break;
        }
        id = out->v[next++].child;
        st = TW_ST_CANCELLED;
    }
    return out->len - first;
}

int
tw_deps_remove(tw_deps_t *d, uint64_t child)
{
    s_child_t *c = tw_idmap_get(&d->children, child);
    if (!c) {
        return TW_ENOENT;
    }
    s_settle(d, c, 0);
    return 0;
}

int
tw_deps_is_blocked(const tw_deps_t *d, uint64_t id)
{
    return tw_idmap_get(&d->children, id) != NULL;
}

const uint64_t *
tw_deps_parents(const tw_deps_t *d, uint64_t child, size_t *n, int *mode,
                int *with_results, size_t *waiting)
{
    const s_child_t *c = tw_idmap_get(&d->children, child);
    if (!c) {
        return NULL;
    }
    if (n) {
        *n = c->n;
    }
    if (mode) {
        *mode = c->mode;
    }
    if (with_results) {
        *with_results = c->with_results;
    }
    if (waiting) {
        *waiting = c->waiting;
    }
    return c->parents;
}

size_t
tw_deps_pins(const tw_deps_t *d, uint64_t parent)
{
    return (size_t)(uintptr_t)tw_idmap_get(&d->pins, parent);
}

size_t
tw_deps_count(const tw_deps_t *d)
{
    return d->children.len;
}

const char *
tw_deps_reason(const tw_deps_decision_t *dec, char *buf, size_t cap)
{
    static const char *const names[] = {"ok", "error", "timeout",
                                        "cancelled", "lost"};
    const char *how = dec->parent_st >= TW_ST_OK &&
                              dec->parent_st <= TW_ST_LOST
                          ? names[dec->parent_st]
                          : "?";
    snprintf(buf, cap, "upstream failed: task %llu ended %s",
             (unsigned long long)dec->parent, how);
    return buf;
}

/* A msgpack array head for `n` elements into p; returns its length. */
static size_t
s_array_head(uint8_t *p, uint64_t n)
{
    if (n < 16) {
        p[0] = (uint8_t)(0x90 | n);
        return 1;
    }
    if (n <= 0xffff) {
        p[0] = 0xdc;
        p[1] = (uint8_t)(n >> 8);
        p[2] = (uint8_t)n;
        return 3;
    }
    p[0] = 0xdd;
    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    return 5;
}

int
tw_deps_args(const void *const *results, const size_t *lens, size_t n,
             const void *a, size_t alen, size_t max, void **out,
             size_t *outlen)
{
    static const uint8_t nil = 0xc0;
    const uint8_t *ap = a;
    uint64_t own = 0;       /* elements of `a` passed on */
    const uint8_t *body = ap; /* their bytes */
    size_t blen = 0;
    if (alen == 0 || (alen == 1 && ap[0] == nil)) {
        own = 0;
    } else if ((ap[0] & 0xf0) == 0x90) {
        own = ap[0] & 0x0f;
        body = ap + 1;
        blen = alen - 1;
    } else if (ap[0] == 0xdc || ap[0] == 0xdd) {
        size_t hl = ap[0] == 0xdc ? 3 : 5;
        if (alen < hl) {
            return TW_EPROTO;
        }
        own = 0;
        for (size_t i = 1; i < hl; i++) {
            own = own << 8 | ap[i];
        }
        body = ap + hl;
        blen = alen - hl;
    } else {
        own = 1; /* a single value: one argument */
        body = ap;
        blen = alen;
    }
    uint64_t total = blen + 5;
    for (size_t i = 0; i < n; i++) {
        total += results[i] && lens[i] ? lens[i] : 1;
    }
    if (total > max) {
        return TW_E2BIG;
    }
    uint8_t *buf = tw_malloc((size_t)total);
    size_t at = s_array_head(buf, (uint64_t)n + own);
    for (size_t i = 0; i < n; i++) {
        if (results[i] && lens[i]) {
            memcpy(buf + at, results[i], lens[i]);
            at += lens[i];
        } else {
            buf[at++] = nil;
        }
    }
    if (blen) {
        memcpy(buf + at, body, blen);
        at += blen;
    }
    *out = buf;
    *outlen = at;
    return 0;
}
