/*  broker/state/sched.c - cron schedules: ticks, catch-up, overlap (sched.h).
 *
 *  Active schedules sit in a binary heap ordered by when they are next
 *  due (then by id, so equal times fire in the order schedules were
 *  added). When the top one is due, its *plan* is made once for that
 *  `now`: at most one SKIP (the missed ticks the catch-up policy drops)
 *  followed by the ticks to fire, oldest first. tw_sched_poll hands the
 *  plan out one action at a time, applying the overlap policy to each
 *  FIRE as it goes, because the live tasks change between two FIREs (the
 *  broker reports each new task before the next poll). When the plan is
 *  done the schedule goes back into the heap at its next tick.
 *
 *  Finding the missed ticks after a long downtime must not walk every one
 *  of them (a year of a per-minute schedule), so only the latest are
 *  enumerated: from a window before `now` that grows fourfold until it
 *  holds enough ticks or reaches the cursor.
 */
#include "broker/state/sched.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/idmap.h"
#include "common/strmap.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

/* The ticks kept from the end of the due range: enough for the catch-up
 * limit plus every on-time tick (one a second over the longest grace). */
#define S_KEEP (TW_SCHED_MAX_CATCHUP + TW_SCHED_GRACE_MAX / 1000 + 1)

typedef struct {
    uint64_t sid;
    char *name;
    size_t namelen;
    char *expr;
    tw_cron_t cron;
    const tw_tz_t *tz;
    int overlap, catchup, paused;
    int64_t cursor_ms;
    int64_t next_ms; /* the first tick after the cursor, or INT64_MAX */
    size_t heap_idx; /* SIZE_MAX when not in the heap */
    void *tmpl;
    size_t tmpl_len;
    uint64_t *live;
    size_t nlive, live_cap;
    uint64_t fired, skipped;
    int awaiting; /* a FIRE is out; started or unfired not called yet */
    /* The plan being handed out. */
    int in_plan;
    int skip_pending;
    int64_t skip_first, skip_last;
    uint64_t skip_count;
    int skip_reason;
    int64_t *fire;
    size_t nfire, fire_at, fire_cap;
} s_sched_t;

struct tw_sched {
    uint64_t grace_ms;
    tw_strmap_t by_name;
    tw_idmap_t by_sid;
    tw_idmap_t by_task; /* task id -> sid */
    uint64_t next_sid;
    s_sched_t **heap;
    size_t hlen, hcap;
    tw_tz_t *utc;
    int64_t *ring; /* S_KEEP ticks, for s_make_plan */
};

/* ------------------------------------------------------------- names */

static const char *const s_overlaps[] = {"skip", "queue", "cancel-previous"};
static const char *const s_catchups[] = {"none", "last", "all"};
static const char *const s_skips[] = {"?", "overlap", "missed",
                                      "catch-up limit", "queue full"};

static int
s_lookup(const char *const *names, int n, const char *s, size_t len)
{
    for (int i = 0; i < n; i++) {
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) {
            return i;
        }
    }
    return TW_EINVAL;
}

int
tw_overlap_parse(const char *s, size_t len)
{
    return s_lookup(s_overlaps, 3, s, len);
}

int
tw_catchup_parse(const char *s, size_t len)
{
    return s_lookup(s_catchups, 3, s, len);
}

const char *
tw_overlap_name(int overlap)
{
    return overlap >= 0 && overlap < 3 ? s_overlaps[overlap] : "?";
}

const char *
tw_catchup_name(int catchup)
{
    return catchup >= 0 && catchup < 3 ? s_catchups[catchup] : "?";
}

const char *
tw_skip_name(int reason)
{
    return reason >= 1 && reason <= 4 ? s_skips[reason] : "?";
}

/* -------------------------------------------------------------- heap */

static int64_t
s_due(const s_sched_t *sc)
{
    return sc->in_plan ? INT64_MIN : sc->next_ms;
}

static int
s_before(const s_sched_t *a, const s_sched_t *b)
{
    int64_t da = s_due(a), db = s_due(b);
    return da < db || (da == db && a->sid < b->sid);
}

static void
s_heap_set(tw_sched_t *s, size_t i, s_sched_t *sc)
{
    s->heap[i] = sc;
    sc->heap_idx = i;
}

static void
s_heap_up(tw_sched_t *s, size_t i)
{
    s_sched_t *sc = s->heap[i];
    while (i > 0 && s_before(sc, s->heap[(i - 1) / 2])) {
        s_heap_set(s, i, s->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    s_heap_set(s, i, sc);
}

static void
s_heap_down(tw_sched_t *s, size_t i)
{
    s_sched_t *sc = s->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->hlen) {
            break;
        }
        if (c + 1 < s->hlen && s_before(s->heap[c + 1], s->heap[c])) {
            c++;
        }
        if (!s_before(s->heap[c], sc)) {
            break;
        }
        s_heap_set(s, i, s->heap[c]);
        i = c;
    }
    s_heap_set(s, i, sc);
}

static void
s_heap_remove(tw_sched_t *s, s_sched_t *sc)
{
    size_t i = sc->heap_idx;
    if (i == SIZE_MAX) {
        return;
    }
    sc->heap_idx = SIZE_MAX;
    s_sched_t *last = s->heap[--s->hlen];
    if (i < s->hlen) {
        s_heap_set(s, i, last);
        s_heap_up(s, i);
        s_heap_down(s, last->heap_idx);
    }
}

/* Put sc where it belongs: in the heap if active and due some time. */
static void
s_heap_place(tw_sched_t *s, s_sched_t *sc)
{
    int want = !sc->paused && (sc->in_plan || sc->next_ms != INT64_MAX);
    if (!want) {
        s_heap_remove(s, sc);
        return;
    }
    if (sc->heap_idx == SIZE_MAX) {
        if (s->hlen == s->hcap) {
            s->hcap = s->hcap ? s->hcap * 2 : 16;
            s->heap = tw_realloc(s->heap, s->hcap * sizeof *s->heap);
        }
        s_heap_set(s, s->hlen++, sc);
    }
    s_heap_up(s, sc->heap_idx);
    s_heap_down(s, sc->heap_idx);
}

/* ------------------------------------------------------------- ticks */

/* The first tick strictly after `after_ms`, or INT64_MAX. */
static int64_t
s_tick_after(const s_sched_t *sc, int64_t after_ms)
{
    int64_t next;
    if (tw_cron_next(&sc->cron, sc->tz, tw_tz_floordiv(after_ms, 1000),
                     &next) != 0 ||
        next > INT64_MAX / 1000) {
        return INT64_MAX;
    }
    return next * 1000;
}

static void s_plan_fire(s_sched_t *sc, const int64_t *ticks, size_t n);

/* Make the plan for the ticks in (cursor, now]. */
static void
s_make_plan(tw_sched_t *s, s_sched_t *sc, int64_t now)
{
    sc->in_plan = 1;
    sc->skip_pending = 0;
    /* The usual case: one tick is due. On time, or missed under `last`
     * or `all`, it fires; missed under `none`, it is skipped. */
    if (s_tick_after(sc, sc->next_ms) > now) {
        if (now - sc->next_ms <= (int64_t)s->grace_ms ||
            sc->catchup != TW_CATCHUP_NONE) {
            s_plan_fire(sc, &sc->next_ms, 1);
            return;
        }
        sc->skip_pending = 1;
        sc->skip_first = sc->skip_last = sc->next_ms;
        sc->skip_count = 1;
        sc->skip_reason = TW_SKIP_MISSED;
        s_plan_fire(sc, NULL, 0);
        return;
    }
    /* The latest S_KEEP ticks, found in a window (start, now] that holds
     * at least that many or starts at the cursor. The window grows
     * fourfold while it holds too few and is halved back while it holds
     * far too many (a window is never walked past S_CAP ticks), so the
     * work is bounded however long the broker was down and however
     * unevenly the expression fires. ring[] keeps the ticks in order. */
    enum { S_CAP = 4 * S_KEEP };
    int64_t *ring = s->ring;
    size_t kept = 0, head = 0;
    uint64_t total = 0;
    int complete = 0;
    int64_t lo = 0, hi = 0, w = 60000; /* hi 0: no upper bound yet */
    for (;;) {
        int64_t start = now - sc->cursor_ms <= w ? sc->cursor_ms : now - w;
        complete = start == sc->cursor_ms;
        kept = head = 0;
        total = 0;
        int64_t t;
        for (t = s_tick_after(sc, start); t <= now && total <= S_CAP;
             t = s_tick_after(sc, t)) {
            ring[(head + kept) % S_KEEP] = t;
            if (kept < S_KEEP) {
                kept++;
            } else {
                head = (head + 1) % S_KEEP;
            }
            total++;
        }
        if (total > S_CAP && w > 60000) {
            hi = w; /* too many: narrow */
            w = lo + (hi - lo) / 2;
            continue;
        }
        if (complete || total >= S_KEEP) {
            break;
        }
        /* Too few: widen. Ticks come at most one a second, so between a
         * window with too few and one with too many there is always one
         * in range, and the halving finds it. */
        lo = w;
        w = hi ? lo + (hi - lo) / 2
               : (w > INT64_MAX / 4 ? INT64_MAX : w * 4);
    }
    /* The on-time ticks are a suffix of the kept ones. */
    size_t ontime = 0;
    while (ontime < kept &&
           now - ring[(head + kept - 1 - ontime) % S_KEEP] <=
               (int64_t)s->grace_ms) {
        ontime++;
    }
    size_t missed = kept - ontime; /* kept missed ticks */
    int older = !complete || total > kept; /* missed ticks not kept */
    size_t fire_from; /* index in the kept ticks of the first to fire */
    switch (sc->catchup) {
    case TW_CATCHUP_LAST:
        fire_from = ontime || missed == 0 ? missed : missed - 1;
        break;
    case TW_CATCHUP_ALL:
        fire_from = missed > TW_SCHED_MAX_CATCHUP
                        ? missed - TW_SCHED_MAX_CATCHUP
                        : 0;
        break;
    default:
        fire_from = missed;
        break;
    }
    sc->skip_pending = fire_from > 0 || older;
    if (sc->skip_pending) {
        sc->skip_first = sc->next_ms;
        /* Unkept older ticks come with a full ring, whose missed part is
         * never all fired; still, never index before its start. */
        sc->skip_last = fire_from ? ring[(head + fire_from - 1) % S_KEEP]
                                  : ring[head] - 1;
        sc->skip_count = complete ? total - (kept - fire_from) : 0;
        sc->skip_reason =
            sc->catchup == TW_CATCHUP_ALL ? TW_SKIP_LIMIT : TW_SKIP_MISSED;
    }
    size_t nfire = kept - fire_from;
    if (sc->fire_cap < nfire) {
        sc->fire_cap = nfire;
        sc->fire = tw_realloc(sc->fire, sc->fire_cap * sizeof *sc->fire);
    }
    for (size_t i = 0; i < nfire; i++) {
        sc->fire[i] = ring[(head + fire_from + i) % S_KEEP];
    }
    s_plan_fire(sc, sc->fire, nfire);
}

/* The plan fires `n` ticks (copied unless they are already sc->fire). */
static void
s_plan_fire(s_sched_t *sc, const int64_t *ticks, size_t n)
{
    if (ticks != sc->fire) {
        if (sc->fire_cap < n) {
            sc->fire_cap = n < 4 ? 4 : n;
            sc->fire = tw_realloc(sc->fire, sc->fire_cap * sizeof *sc->fire);
        }
        if (n) {
            memcpy(sc->fire, ticks, n * sizeof *ticks);
        }
    }
    sc->nfire = n;
    sc->fire_at = 0;
}

/* ------------------------------------------------------- the engine */

tw_sched_t *
tw_sched_new(uint64_t grace_ms)
{
    tw_sched_t *s = tw_calloc(1, sizeof *s);
    s->grace_ms = grace_ms == 0 ? TW_SCHED_GRACE_DEFAULT
                  : grace_ms > TW_SCHED_GRACE_MAX ? TW_SCHED_GRACE_MAX
                                                  : grace_ms;
    tw_strmap_init(&s->by_name);
    tw_idmap_init(&s->by_sid);
    tw_idmap_init(&s->by_task);
    s->utc = tw_tz_utc();
    s->ring = tw_malloc(S_KEEP * sizeof *s->ring);
    return s;
}

static void
s_free(s_sched_t *sc)
{
    tw_free(sc->name);
    tw_free(sc->expr);
    tw_free(sc->tmpl);
    tw_free(sc->live);
    tw_free(sc->fire);
    tw_free(sc);
}

static void
s_free_each(uint64_t id, void *val, void *arg)
{
    (void)id;
    (void)arg;
    s_free(val);
}

void
tw_sched_destroy(tw_sched_t **s_p)
{
    tw_sched_t *s = *s_p;
    if (!s) {
        return;
    }
    tw_idmap_each(&s->by_sid, s_free_each, NULL);
    tw_idmap_free(&s->by_sid);
    tw_idmap_free(&s->by_task);
    tw_strmap_free(&s->by_name);
    tw_free(s->heap);
    tw_tz_destroy(&s->utc);
    tw_free(s->ring);
    tw_free(s);
    *s_p = NULL;
}

static int
s_name_ok(const char *name, size_t len)
{
    if (!name || len == 0 || len > TW_SCHED_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == ':')) {
            return 0;
        }
    }
    return 1;
}

static s_sched_t *
s_find(const tw_sched_t *s, const char *name, size_t len)
{
    return name ? tw_strmap_get(&s->by_name, name, len) : NULL;
}

int
tw_sched_add(tw_sched_t *s, const tw_sched_def_t *def, char *err,
             size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (!s_name_ok(def->name, def->namelen)) {
        snprintf(err, errlen, "a schedule name is 1 to %d letters, digits "
                 "or _-:", TW_SCHED_NAME_MAX);
        return TW_EINVAL;
    }
    if (def->overlap < 0 || def->overlap > 2 || def->catchup < 0 ||
        def->catchup > 2) {
        snprintf(err, errlen, "unknown overlap or catch-up policy");
        return TW_EINVAL;
    }
    tw_cron_t cron;
    if (!def->expr || tw_cron_parse(&cron, def->expr, err, errlen) != 0) {
        return TW_EINVAL;
    }
    if (s_find(s, def->name, def->namelen)) {
        snprintf(err, errlen, "schedule \"%.*s\" exists", (int)def->namelen,
                 def->name);
        return TW_EEXIST;
    }
    s_sched_t *sc = tw_calloc(1, sizeof *sc);
    sc->sid = ++s->next_sid;
    sc->name = tw_strndup(def->name, def->namelen);
    sc->namelen = def->namelen;
    sc->expr = tw_strdup(def->expr);
    sc->cron = cron;
    sc->tz = def->tz ? def->tz : s->utc;
    sc->overlap = def->overlap;
    sc->catchup = def->catchup;
    sc->paused = def->paused ? 1 : 0;
    sc->cursor_ms = def->cursor_ms;
    sc->heap_idx = SIZE_MAX;
    if (def->tmpl_len) {
        sc->tmpl = tw_malloc(def->tmpl_len);
        memcpy(sc->tmpl, def->tmpl, def->tmpl_len);
        sc->tmpl_len = def->tmpl_len;
    }
    sc->next_ms = s_tick_after(sc, sc->cursor_ms);
    tw_strmap_put(&s->by_name, sc->name, sc->namelen, sc);
    tw_idmap_put(&s->by_sid, sc->sid, sc);
    s_heap_place(s, sc);
    return 0;
}

int
tw_sched_remove(tw_sched_t *s, const char *name, size_t namelen)
{
    s_sched_t *sc = s_find(s, name, namelen);
    if (!sc) {
        return TW_ENOENT;
    }
    s_heap_remove(s, sc);
    tw_strmap_del(&s->by_name, name, namelen);
    tw_idmap_del(&s->by_sid, sc->sid);
    s_free(sc);
    return 0;
}

int
tw_sched_pause(tw_sched_t *s, const char *name, size_t namelen)
{
    s_sched_t *sc = s_find(s, name, namelen);
    if (!sc) {
        return TW_ENOENT;
    }
    sc->paused = 1;
    sc->in_plan = 0;
    s_heap_place(s, sc);
    return 0;
}

int
tw_sched_resume(tw_sched_t *s, const char *name, size_t namelen,
                int64_t now_ms)
{
    s_sched_t *sc = s_find(s, name, namelen);
    if (!sc) {
        return TW_ENOENT;
    }
    if (!sc->paused) {
        return 0;
    }
    sc->paused = 0;
    if (sc->cursor_ms < now_ms) {
        sc->cursor_ms = now_ms;
    }
    sc->next_ms = s_tick_after(sc, sc->cursor_ms);
    s_heap_place(s, sc);
    return 0;
}

static void
s_action(const s_sched_t *sc, int kind, tw_sched_action_t *act)
{
    memset(act, 0, sizeof *act);
    act->kind = kind;
    act->name = sc->name;
    act->namelen = sc->namelen;
}

/* A FIRE of `tick`, or the SKIP the overlap policy makes of it. */
static void
s_fire(s_sched_t *sc, int64_t tick, int manual, tw_sched_action_t *act)
{
    int reason = 0;
    if (sc->nlive > 0 && sc->overlap == TW_OVERLAP_SKIP && !manual) {
        reason = TW_SKIP_OVERLAP;
    } else if (sc->nlive >= TW_SCHED_MAX_LIVE &&
               sc->overlap == TW_OVERLAP_QUEUE) {
        reason = TW_SKIP_QUEUE_FULL;
    }
    if (reason) {
        s_action(sc, TW_SCHED_SKIP, act);
        act->tick_ms = act->first_ms = tick;
        act->count = 1;
        act->reason = reason;
        sc->skipped++;
        return;
    }
    s_action(sc, TW_SCHED_FIRE, act);
    act->tick_ms = tick;
    act->manual = manual;
    act->tmpl = sc->tmpl;
    act->tmpl_len = sc->tmpl_len;
    if (sc->nlive > 0 && sc->overlap == TW_OVERLAP_QUEUE) {
        act->after = sc->live[sc->nlive - 1];
    }
    act->cancel_live = sc->nlive > 0 && sc->overlap == TW_OVERLAP_CANCEL;
    sc->awaiting = 1;
}

int
tw_sched_poll(tw_sched_t *s, int64_t now_ms, tw_sched_action_t *act)
{
    if (s->hlen == 0) {
        return 0;
    }
    s_sched_t *sc = s->heap[0];
    /* The FIRE handed out last must have been answered. */
    assert(!sc->awaiting);
    if (!sc->in_plan) {
        if (sc->next_ms > now_ms) {
            return 0;
        }
        s_make_plan(s, sc, now_ms);
    }
    if (sc->skip_pending) {
        sc->skip_pending = 0;
        s_action(sc, TW_SCHED_SKIP, act);
        act->tick_ms = sc->skip_last;
        act->first_ms = sc->skip_first;
        act->count = sc->skip_count;
        act->reason = sc->skip_reason;
        sc->cursor_ms = sc->skip_last;
        sc->skipped += sc->skip_count ? sc->skip_count : 1;
    } else {
        int64_t tick = sc->fire[sc->fire_at++];
        sc->cursor_ms = tick;
        s_fire(sc, tick, 0, act);
    }
    if (sc->fire_at >= sc->nfire && !sc->skip_pending) {
        sc->in_plan = 0;
        sc->next_ms = s_tick_after(sc, sc->cursor_ms);
    }
    s_heap_place(s, sc);
    return 1;
}

int
tw_sched_run_now(tw_sched_t *s, const char *name, size_t namelen,
                 int64_t now_ms, tw_sched_action_t *act)
{
    s_sched_t *sc = s_find(s, name, namelen);
    if (!sc) {
        return TW_ENOENT;
    }
    assert(!sc->awaiting);
    s_fire(sc, now_ms, 1, act);
    return 0;
}

int
tw_sched_started(tw_sched_t *s, const char *name, size_t namelen,
                 uint64_t task_id)
{
    s_sched_t *sc = s_find(s, name, namelen);
    if (!sc) {
        return TW_ENOENT;
    }
    if (sc->awaiting) {
        sc->awaiting = 0;
        sc->fired++;
    }
    if (sc->nlive == sc->live_cap) {
        sc->live_cap = sc->live_cap ? sc->live_cap * 2 : 4;
        sc->live = tw_realloc(sc->live, sc->live_cap * sizeof *sc->live);
    }
    sc->live[sc->nlive++] = task_id;
    tw_idmap_put(&s->by_task, task_id, (void *)(uintptr_t)sc->sid);
    return 0;
}

void
tw_sched_unfired(tw_sched_t *s, const char *name, size_t namelen)
{
    s_sched_t *sc = s_find(s, name, namelen);
    if (sc && sc->awaiting) {
        sc->awaiting = 0;
        sc->skipped++;
    }
}

int
tw_sched_task_ended(tw_sched_t *s, uint64_t task_id)
{
    uint64_t sid = (uint64_t)(uintptr_t)tw_idmap_del(&s->by_task, task_id);
    if (sid == 0) {
        return 0;
    }
    s_sched_t *sc = tw_idmap_get(&s->by_sid, sid);
    if (sc) {
        for (size_t i = 0; i < sc->nlive; i++) {
            if (sc->live[i] == task_id) {
                memmove(sc->live + i, sc->live + i + 1,
                        (sc->nlive - i - 1) * sizeof *sc->live);
                sc->nlive--;
                break;
            }
        }
    }
    return 1;
}

int64_t
tw_sched_next_due(const tw_sched_t *s)
{
    if (s->hlen == 0) {
        return INT64_MAX;
    }
    const s_sched_t *sc = s->heap[0];
    return sc->in_plan ? INT64_MIN : sc->next_ms;
}

static void
s_info(const s_sched_t *sc, tw_sched_info_t *out)
{
    memset(out, 0, sizeof *out);
    out->name = sc->name;
    out->namelen = sc->namelen;
    out->expr = sc->expr;
    out->tz = tw_tz_name(sc->tz);
    out->overlap = sc->overlap;
    out->catchup = sc->catchup;
    out->paused = sc->paused;
    out->cursor_ms = sc->cursor_ms;
    out->next_ms = sc->in_plan && sc->fire_at < sc->nfire
                       ? sc->fire[sc->fire_at]
                       : sc->next_ms;
    out->live = sc->nlive;
    out->live_ids = sc->live;
    out->fired = sc->fired;
    out->skipped = sc->skipped;
    out->tmpl = sc->tmpl;
    out->tmpl_len = sc->tmpl_len;
}

int
tw_sched_get(const tw_sched_t *s, const char *name, size_t namelen,
             tw_sched_info_t *out)
{
    const s_sched_t *sc = s_find(s, name, namelen);
    if (!sc) {
        return TW_ENOENT;
    }
    s_info(sc, out);
    return 0;
}

typedef struct {
    void (*fn)(const tw_sched_info_t *info, void *arg);
    void *arg;
} s_each_t;

static void
s_each(uint64_t id, void *val, void *arg)
{
    (void)id;
    s_each_t *e = arg;
    tw_sched_info_t info;
    s_info(val, &info);
    e->fn(&info, e->arg);
}

void
tw_sched_each(const tw_sched_t *s,
              void (*fn)(const tw_sched_info_t *info, void *arg), void *arg)
{
    s_each_t e = {fn, arg};
    tw_idmap_each(&s->by_sid, s_each, &e);
}

size_t
tw_sched_count(const tw_sched_t *s)
{
    return s->by_sid.len;
}
