/*  worker/procpool.c - the proc pools' state machine (see procpool.h).
 *
 *  Children live in one array; each has a state, a deadline (0: none)
 *  and the jobs sent to it, first to last, linked through their `next`
 *  (a job is either in the wait queue or in one child's list). Deadlines
 *  are few (one per child), so tw_procpool_run scans the array rather
 *  than keeping a heap; it also matches children with the wait queue,
 *  which a call outcome leaves to it on purpose: the caller finishes the
 *  old call (and its channel says its last words to the child) before
 *  the child is given the next one. It gives idle children their next
 *  call first, then fills pipelines one call at a time, least loaded
 *  child first.
 */
#include "worker/procpool.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum {
    C_OFF,    /* not running; spawned at `due` (0: never) */
    C_HELLO,  /* spawned, waiting for hello until `deadline` */
    C_IDLE,   /* ready for a call */
    C_BUSY,   /* running `job` */
    C_CANCEL, /* running `job`, cancel sent; SIGTERM at `deadline` */
    C_BYE,    /* shutdown sent; SIGTERM at `deadline` */
    C_TERM,   /* SIGTERM sent; SIGKILL at `deadline` */
    C_KILL,   /* SIGKILL sent; waiting for the exit */
    C_DEAD    /* exited; waiting for its handles to close */
};

enum {
    J_OUT,
    J_QUEUED,   /* in the wait queue */
    J_RUNNING,  /* sent to a child */
    J_CANCELLED /* sent to a child, then its cancel */
};

typedef struct {
    unsigned first, count; /* its children */
    unsigned char *offers; /* per hid, allocated with the names */
    int has_names;
    unsigned start_fails; /* children in a row that died before hello */
    char last_err[256];
} s_pool_t;

typedef struct {
    unsigned pool;
    int state;
    uint64_t deadline; /* 0: none */
    uint64_t due;      /* C_OFF: when to spawn, 0: never */
    uint64_t spawned_at;
    uint64_t respawn_in; /* ms from closed to the next spawn */
    unsigned fails;      /* failures in a row (backoff) */
    int greeted;         /* said hello since the spawn */
    int failed;          /* this life counts as a failure */
    tw_pp_job_t *job;    /* the first call sent to it: the one it runs */
    tw_pp_job_t *last;   /* the last one */
    unsigned held;       /* calls sent and not answered */
    unsigned depth;      /* calls it takes at once, >= 1 */
} s_child_t;

struct tw_procpool {
    tw_pp_ops_t ops;
    void *ud;
    uint64_t hello_ms, grace_ms;
    s_pool_t *pools;
    size_t npools;
    s_child_t *kids;
    size_t nkids;
    char **names;
    size_t *lens;
    int *flags;
    size_t nnames;
    tw_pp_job_t *qhead, *qtail;
    int stopping;
    tw_procpool_stats_t stats;
};

/* Lists and jobs --------------------------------------------------------- */

static void s_note(tw_procpool_t *pp, unsigned c, int level, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

static void
s_note(tw_procpool_t *pp, unsigned c, int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pp->ops.note(pp->ud, c, level, msg);
}

static void
s_q_add(tw_procpool_t *pp, tw_pp_job_t *j)
{
    j->state = J_QUEUED;
    j->next = NULL;
    j->prev = pp->qtail;
    if (pp->qtail) {
        pp->qtail->next = j;
    } else {
        pp->qhead = j;
    }
    pp->qtail = j;
}

static void
s_q_del(tw_procpool_t *pp, tw_pp_job_t *j)
{
    if (j->prev) {
        j->prev->next = j->next;
    } else {
        pp->qhead = j->next;
    }
    if (j->next) {
        j->next->prev = j->prev;
    } else {
        pp->qtail = j->prev;
    }
    j->prev = j->next = NULL;
    j->state = J_OUT;
}

static int
s_offers(const tw_procpool_t *pp, const s_pool_t *p, unsigned hid)
{
    return p->has_names && hid < pp->nnames && p->offers[hid];
}

/* Could a pool offering `hid` run it now or later? */
static int
s_runnable(const tw_procpool_t *pp, unsigned hid, char *err, size_t errlen)
{
    const s_pool_t *last = NULL;
    for (size_t i = 0; i < pp->npools; i++) {
        const s_pool_t *p = &pp->pools[i];
        if (!s_offers(pp, p, hid)) {
            continue;
        }
        if (p->start_fails < TW_PP_FAILING) {
            return 1;
        }
        last = p;
    }
    if (err) {
        if (last) {
            snprintf(err, errlen, "proc pool %u cannot start a child: %s",
                     (unsigned)(last - pp->pools), last->last_err);
        } else {
            snprintf(err, errlen, "no proc pool offers this handler");
        }
    }
    return 0;
}

/* Take the first job off child `c`'s list. */
static tw_pp_job_t *
s_shift(tw_procpool_t *pp, unsigned c)
{
    s_child_t *k = &pp->kids[c];
    tw_pp_job_t *j = k->job;
    if (j) {
        k->job = j->next;
        if (!k->job) {
            k->last = NULL;
        }
        k->held--;
        j->next = NULL;
        j->state = J_OUT;
        j->child = -1;
    }
    return j;
}

/* Unlink `j` (queued, or the first of its child) and fail its call. */
static void
s_fail(tw_procpool_t *pp, tw_pp_job_t *j, const char *msg)
{
    if (j->state == J_QUEUED) {
        s_q_del(pp, j);
    } else if (j->child >= 0) {
        s_shift(pp, (unsigned)j->child);
    }
    j->state = J_OUT;
    j->child = -1;
    pp->ops.fail(pp->ud, j, msg);
}

static void
s_send(tw_procpool_t *pp, unsigned c, tw_pp_job_t *j)
{
    s_child_t *k = &pp->kids[c];
    if (k->held) {
        pp->stats.piped++;
    }
    k->state = k->held ? k->state : C_BUSY;
    j->next = j->prev = NULL;
    if (k->last) {
        k->last->next = j;
    } else {
        k->job = j;
    }
    k->last = j;
    k->held++;
    j->state = J_RUNNING;
    j->child = (int)c;
    pp->stats.calls++;
    pp->ops.send_call(pp->ud, c, j);
}

/* Has busy child `c` room for a call behind the last it holds (neither
 * solo nor being cancelled)? */
static int
s_room(const tw_procpool_t *pp, unsigned c)
{
    const s_child_t *k = &pp->kids[c];
    return k->state == C_BUSY && k->held < k->depth && !k->last->solo &&
           k->last->state == J_RUNNING && !pp->stopping;
}

/* Could child `c` take `j` now: idle, or busy with room for it? */
static int
s_takes(const tw_procpool_t *pp, unsigned c, const tw_pp_job_t *j)
{
    const s_child_t *k = &pp->kids[c];
    if (!s_offers(pp, &pp->pools[k->pool], j->hid)) {
        return 0;
    }
    return k->state == C_IDLE || (!j->solo && s_room(pp, c));
}

/* The first queued job child `c` can take, or NULL. A busy child takes
 * none behind a solo job its pool could run: that one waits for an idle
 * child, and the children must drain for it. */
static tw_pp_job_t *
s_first_for(tw_procpool_t *pp, unsigned c)
{
    const s_pool_t *p = &pp->pools[pp->kids[c].pool];
    int busy = pp->kids[c].state != C_IDLE;
    for (tw_pp_job_t *j = pp->qhead; j; j = j->next) {
        if (s_takes(pp, c, j)) {
            return j;
        }
        if (busy && j->solo && s_offers(pp, p, j->hid)) {
            return NULL;
        }
    }
    return NULL;
}

/* Put the jobs child `c` holds behind its first back at the front of
 * the queue, in order: it never started them. Those being cancelled
 * fail ("cancelled"); all fail when the engine is stopping. */
static void
s_take_back(tw_procpool_t *pp, unsigned c)
{
    s_child_t *k = &pp->kids[c];
    tw_pp_job_t *first = k->job;
    if (!first) {
        return;
    }
    tw_pp_job_t *j = first->next, *at = pp->qhead;
    first->next = NULL;
    k->last = first;
    k->held = 1;
    while (j) {
        tw_pp_job_t *next = j->next;
        int cancelled = j->state == J_CANCELLED;
        j->child = -1;
        j->prev = j->next = NULL;
        if (cancelled || pp->stopping) {
            j->state = J_OUT;
            pp->ops.fail(pp->ud, j,
                         cancelled ? "cancelled" : "the worker is stopping");
        } else {
            /* Insert before `at`, the queue's head before we began. */
            j->state = J_QUEUED;
            j->next = at;
            j->prev = at ? at->prev : pp->qtail;
            if (j->prev) {
                j->prev->next = j;
            } else {
                pp->qhead = j;
            }
            if (at) {
                at->prev = j;
            } else {
                pp->qtail = j;
            }
            pp->stats.requeued++;
        }
        j = next;
    }
}

static void
s_signal(tw_procpool_t *pp, unsigned c, int sig, uint64_t deadline)
{
    s_child_t *k = &pp->kids[c];
    k->state = sig == SIGKILL ? C_KILL : C_TERM;
    k->deadline = sig == SIGKILL ? 0 : deadline;
    if (sig == SIGKILL) {
        pp->stats.kills++;
    } else {
        pp->stats.terms++;
    }
    pp->ops.signal(pp->ud, c, sig);
}

static void s_ended(tw_procpool_t *pp, unsigned c, const char *how,
                    uint64_t now);

static void
s_spawn(tw_procpool_t *pp, unsigned c, uint64_t now)
{
    s_child_t *k = &pp->kids[c];
    char err[256] = "";
    k->due = 0;
    k->greeted = k->failed = 0;
    k->depth = 1;
    k->spawned_at = now;
    k->state = C_HELLO;
    k->deadline = now + pp->hello_ms;
    pp->stats.spawned++;
    if (pp->ops.spawn(pp->ud, c, k->pool, err, sizeof err) != 0) {
        /* A failed start: closed comes when its handles have closed. */
        s_pool_t *p = &pp->pools[k->pool];
        k->state = C_KILL;
        k->failed = 1;
        snprintf(p->last_err, sizeof p->last_err, "%s", err);
        s_ended(pp, c, err, now);
    }
}

/* Pool `p` just became failing: fail what waits for it alone. */
static void
s_pool_failing(tw_procpool_t *pp, unsigned c)
{
    s_pool_t *p = &pp->pools[pp->kids[c].pool];
    s_note(pp, c, TW_LOG_ERR,
           "%u children in a row failed to start; calls only this pool "
           "runs fail until one says hello (%s)",
           p->start_fails, p->last_err);
    char err[512];
    tw_pp_job_t *j = pp->qhead;
    while (j) {
        tw_pp_job_t *next = j->next;
        if (!s_runnable(pp, j->hid, err, sizeof err)) {
            s_fail(pp, j, err);
        }
        j = next;
    }
}

/* Child `c` is gone (an exit, or a spawn that failed: `how` says which).
 * Decide whether that was a failure, when to spawn again, and end the
 * call it ran. It becomes DEAD until its handles have closed. */
static void
s_ended(tw_procpool_t *pp, unsigned c, const char *how, uint64_t now)
{
    s_child_t *k = &pp->kids[c];
    s_pool_t *p = &pp->pools[k->pool];
    int state = k->state;
    tw_pp_job_t *j = k->job;
    /* Ends the engine asked for: a cancel or shutdown that was answered
     * by an exit, or the signals that followed. Anything else (a crash,
     * or a kill for a protocol error, which set `failed`) is a failure. */
    int asked = state == C_CANCEL || state == C_TERM || state == C_BYE ||
                (state == C_KILL && !k->failed);
    if (!asked) {
        k->failed = 1;
    }
    k->state = C_DEAD;
    k->deadline = 0;
    k->respawn_in = 0;
    if (k->failed) {
        pp->stats.crashes++;
        if (!k->greeted) {
            if (state != C_KILL) { /* else bad() said why already */
                snprintf(p->last_err, sizeof p->last_err,
                         "exited before its hello: %s", how);
            }
            p->start_fails++;
        }
        if (k->greeted && now - k->spawned_at >= TW_PP_HEALTHY_MS) {
            k->fails = 0;
        }
        k->fails++;
        uint64_t d = TW_PP_BACKOFF_MIN;
        for (unsigned i = 1; i < k->fails && d < TW_PP_BACKOFF_MAX; i++) {
            d *= 2;
        }
        k->respawn_in = d < TW_PP_BACKOFF_MAX ? d : TW_PP_BACKOFF_MAX;
        if (!pp->stopping) {
            s_note(pp, c, TW_LOG_WARN, "%s%s; restarting in %llu ms",
                   j ? "exited while running a call: " : "exited: ", how,
                   (unsigned long long)k->respawn_in);
        }
    }
    if (j) {
        char msg[1400];
        s_take_back(pp, c);
        if (j->state == J_RUNNING) {
            snprintf(msg, sizeof msg,
                     "proc child exited while running the call: %s", how);
        } else {
            snprintf(msg, sizeof msg, "cancelled");
        }
        s_fail(pp, j, msg);
    }
    if (k->failed && !k->greeted && p->start_fails == TW_PP_FAILING) {
        s_pool_failing(pp, c);
    }
}

/* Public ------------------------------------------------------------------ */

tw_procpool_t *
tw_procpool_new(size_t npools, const unsigned *counts, uint64_t hello_ms,
                uint64_t grace_ms, const tw_pp_ops_t *ops, void *ud)
{
    tw_procpool_t *pp = tw_calloc(1, sizeof *pp);
    pp->ops = *ops;
    pp->ud = ud;
    pp->hello_ms = hello_ms;
    pp->grace_ms = grace_ms;
    pp->npools = npools;
    pp->pools = tw_calloc(npools ? npools : 1, sizeof *pp->pools);
    for (size_t i = 0; i < npools; i++) {
        pp->pools[i].first = (unsigned)pp->nkids;
        pp->pools[i].count = counts[i];
        pp->nkids += counts[i];
    }
    pp->kids = tw_calloc(pp->nkids ? pp->nkids : 1, sizeof *pp->kids);
    for (size_t i = 0; i < npools; i++) {
        for (unsigned c = 0; c < counts[i]; c++) {
            pp->kids[pp->pools[i].first + c].pool = (unsigned)i;
        }
    }
    pp->names = tw_calloc(TW_PP_MAX_NAMES, sizeof *pp->names);
    pp->lens = tw_calloc(TW_PP_MAX_NAMES, sizeof *pp->lens);
    pp->flags = tw_calloc(TW_PP_MAX_NAMES, sizeof *pp->flags);
    return pp;
}

void
tw_procpool_free(tw_procpool_t **pp_p)
{
    tw_procpool_t *pp = *pp_p;
    if (!pp) {
        return;
    }
    for (size_t i = 0; i < pp->npools; i++) {
        tw_free(pp->pools[i].offers);
    }
    for (size_t i = 0; i < pp->nnames; i++) {
        tw_free(pp->names[i]);
    }
    tw_free(pp->names);
    tw_free(pp->lens);
    tw_free(pp->flags);
    tw_free(pp->pools);
    tw_free(pp->kids);
    tw_free(pp);
    *pp_p = NULL;
}

void
tw_procpool_start(tw_procpool_t *pp, uint64_t now)
{
    for (unsigned c = 0; c < pp->nkids; c++) {
        if (pp->kids[c].state == C_OFF) {
            s_spawn(pp, c, now);
        }
    }
}

int
tw_procpool_started(const tw_procpool_t *pp, char *err, size_t errlen)
{
    int all = 1;
    for (size_t i = 0; i < pp->npools; i++) {
        const s_pool_t *p = &pp->pools[i];
        if (p->has_names) {
            continue;
        }
        if (p->start_fails >= TW_PP_FAILING) {
            snprintf(err, errlen, "%u children in a row failed to start: %s",
                     p->start_fails, p->last_err);
            return -1;
        }
        all = 0;
    }
    return all;
}

/* The hid of name s[0..len), adding it if `add`; -1 if absent or full. */
static int
s_name(tw_procpool_t *pp, const char *s, size_t len, int add)
{
    for (size_t i = 0; i < pp->nnames; i++) {
        if (pp->lens[i] == len && memcmp(pp->names[i], s, len) == 0) {
            return (int)i;
        }
    }
    if (!add || pp->nnames == TW_PP_MAX_NAMES) {
        return -1;
    }
    pp->names[pp->nnames] = tw_strndup(s, len);
    pp->lens[pp->nnames] = len;
    return (int)pp->nnames++;
}

int
tw_procpool_hello(tw_procpool_t *pp, unsigned c, const char *const *names,
                  const size_t *lens, const int *flags, size_t n, uint64_t now,
                  char *err, size_t errlen)
{
    s_child_t *k = &pp->kids[c];
    s_pool_t *p = &pp->pools[k->pool];
    int rc = 0;
    if (k->state != C_HELLO) {
        snprintf(err, errlen, "a hello after the first frame");
        rc = TW_EINVAL;
    } else if (!p->has_names) {
        /* The pool's first hello: its names. */
        if (pp->nnames + n > TW_PP_MAX_NAMES) {
            snprintf(err, errlen, "more than %d handler names in all",
                     TW_PP_MAX_NAMES);
            rc = TW_EINVAL;
        }
        for (size_t i = 0; rc == 0 && i < n; i++) {
            int hid = s_name(pp, names[i], lens[i], 1);
            pp->flags[hid] |= flags ? flags[i] : 0;
        }
        if (rc == 0) {
            p->offers = tw_calloc(TW_PP_MAX_NAMES, 1);
            for (size_t i = 0; i < n; i++) {
                p->offers[s_name(pp, names[i], lens[i], 0)] = 1;
            }
            p->has_names = 1;
        }
    } else {
        /* Every name of the pool must be there. */
        for (size_t hid = 0; rc == 0 && hid < pp->nnames; hid++) {
            if (!p->offers[hid]) {
                continue;
            }
            size_t i = 0;
            while (i < n && (lens[i] != pp->lens[hid] ||
                             memcmp(names[i], pp->names[hid], lens[i]))) {
                i++;
            }
            if (i == n) {
                snprintf(err, errlen,
                         "its hello lacks handler '%.*s' "
                         "that this pool announced",
                         (int)pp->lens[hid], pp->names[hid]);
                rc = TW_EINVAL;
            }
        }
    }
    if (rc != 0) {
        tw_procpool_bad(pp, c, err, now);
        return rc;
    }
    k->greeted = 1;
    p->start_fails = 0;
    k->state = C_IDLE;
    k->deadline = 0;
    if (pp->stopping) {
        k->state = C_BYE;
        k->deadline = now + pp->grace_ms;
        pp->ops.send_shutdown(pp->ud, c);
    }
    return 0;
}

void
tw_procpool_set_depth(tw_procpool_t *pp, unsigned c, unsigned depth)
{
    pp->kids[c].depth = depth < 1                 ? 1
                        : depth > TW_PP_MAX_DEPTH ? TW_PP_MAX_DEPTH
                                                  : depth;
}

size_t
tw_procpool_nnames(const tw_procpool_t *pp)
{
    return pp->nnames;
}

const char *
tw_procpool_name(const tw_procpool_t *pp, unsigned hid, size_t *len)
{
    *len = pp->lens[hid];
    return pp->names[hid];
}

int
tw_procpool_flags(const tw_procpool_t *pp, unsigned hid)
{
    return pp->flags[hid];
}

unsigned
tw_procpool_pool_of(const tw_procpool_t *pp, unsigned c)
{
    return pp->kids[c].pool;
}

tw_pp_job_t *
tw_procpool_job(const tw_procpool_t *pp, unsigned c)
{
    return pp->kids[c].job;
}

unsigned
tw_procpool_held(const tw_procpool_t *pp, unsigned c)
{
    return pp->kids[c].held;
}

int
tw_procpool_talking(const tw_procpool_t *pp, unsigned c)
{
    int s = pp->kids[c].state;
    return s == C_IDLE || s == C_BUSY || s == C_CANCEL || s == C_BYE;
}

int
tw_procpool_greeting(const tw_procpool_t *pp, unsigned c)
{
    return pp->kids[c].state == C_HELLO;
}

int
tw_procpool_submit(tw_procpool_t *pp, tw_pp_job_t *j, uint64_t now, char *err,
                   size_t errlen)
{
    (void)now;
    j->child = -1;
    j->prev = j->next = NULL;
    if (pp->stopping) {
        snprintf(err, errlen, "the worker is stopping");
        return TW_EAGAIN;
    }
    if (!s_runnable(pp, j->hid, err, errlen)) {
        return TW_EAGAIN;
    }
    /* An idle child; else the least loaded busy child with room in its
     * pipeline; but behind calls that wait already (tw_procpool_run,
     * which runs next, places them in order). */
    int best = -1;
    for (unsigned c = 0; c < pp->nkids && !pp->qhead; c++) {
        s_child_t *k = &pp->kids[c];
        if (!s_takes(pp, c, j)) {
            continue;
        }
        if (k->state == C_IDLE) {
            best = (int)c;
            break;
        }
        if (best < 0 || k->held < pp->kids[best].held) {
            best = (int)c;
        }
    }
    if (best >= 0) {
        s_send(pp, (unsigned)best, j);
        return 0;
    }
    pp->stats.waited++;
    s_q_add(pp, j);
    return 0;
}

void
tw_procpool_cancel(tw_procpool_t *pp, tw_pp_job_t *j, uint64_t now)
{
    if (j->state == J_QUEUED) {
        s_fail(pp, j, "cancelled");
        return;
    }
    if (j->state != J_RUNNING || j->child < 0) {
        return; /* not sent, or being cancelled already */
    }
    unsigned c = (unsigned)j->child;
    s_child_t *k = &pp->kids[c];
    if (k->state != C_BUSY && k->state != C_CANCEL) {
        return; /* on its way out: its end fails the call */
    }
    j->state = J_CANCELLED;
    if (k->job == j) {
        k->state = C_CANCEL;
        k->deadline = now + pp->grace_ms;
    }
    pp->stats.cancels++;
    pp->ops.send_cancel(pp->ud, c, j);
}

tw_pp_job_t *
tw_procpool_outcome(tw_procpool_t *pp, unsigned c, uint64_t now)
{
    s_child_t *k = &pp->kids[c];
    tw_pp_job_t *j = s_shift(pp, c);
    if (!j) {
        return NULL;
    }
    if (k->state == C_BUSY || k->state == C_CANCEL) {
        k->fails = 0;
        k->deadline = 0;
        if (!k->job) {
            k->state = C_IDLE; /* tw_procpool_run gives it the next call */
        } else if (k->job->state == J_CANCELLED) {
            k->state = C_CANCEL; /* its grace starts now */
            k->deadline = now + pp->grace_ms;
        } else {
            k->state = C_BUSY;
        }
    }
    return j;
}

void
tw_procpool_bad(tw_procpool_t *pp, unsigned c, const char *why, uint64_t now)
{
    (void)now;
    s_child_t *k = &pp->kids[c];
    if (k->state == C_OFF || k->state == C_DEAD || k->state == C_KILL) {
        return; /* on its way out already */
    }
    pp->stats.bad++;
    k->failed = 1;
    if (!k->greeted) {
        s_pool_t *p = &pp->pools[k->pool];
        snprintf(p->last_err, sizeof p->last_err, "%s", why);
    }
    s_note(pp, c, TW_LOG_ERR, "protocol error: %s; killing it", why);
    tw_pp_job_t *j = k->job;
    s_take_back(pp, c);
    s_signal(pp, c, SIGKILL, 0);
    if (j) {
        char msg[512];
        snprintf(msg, sizeof msg, "protocol error from proc child: %s", why);
        s_fail(pp, j, msg);
    }
}

void
tw_procpool_exited(tw_procpool_t *pp, unsigned c, const char *how, uint64_t now)
{
    int state = pp->kids[c].state;
    if (state == C_OFF || state == C_DEAD) {
        return;
    }
    pp->stats.exits++;
    s_ended(pp, c, how, now);
}

void
tw_procpool_closed(tw_procpool_t *pp, unsigned c, uint64_t now)
{
    s_child_t *k = &pp->kids[c];
    if (k->state != C_DEAD) {
        return;
    }
    k->state = C_OFF;
    k->due = pp->stopping ? 0 : now + k->respawn_in;
    if (k->due == 0 && !pp->stopping) {
        k->due = 1; /* at once: 0 means never */
    }
}

int64_t
tw_procpool_run(tw_procpool_t *pp, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (unsigned c = 0; c < pp->nkids; c++) {
        s_child_t *k = &pp->kids[c];
        switch (k->state) {
        case C_OFF:
            if (k->due && k->due <= now && !pp->stopping) {
                s_spawn(pp, c, now);
            }
            break;
        case C_HELLO:
            if (k->deadline <= now) {
                char why[96];
                snprintf(why, sizeof why, "no hello within %llu ms",
                         (unsigned long long)pp->hello_ms);
                tw_procpool_bad(pp, c, why, now);
            }
            break;
        case C_CANCEL:
        case C_BYE:
            if (k->deadline <= now) {
                s_note(pp, c, TW_LOG_WARN, "%s within %llu ms: SIGTERM",
                       k->state == C_CANCEL ? "no answer to cancel"
                                            : "did not exit on shutdown",
                       (unsigned long long)pp->grace_ms);
                s_signal(pp, c, SIGTERM, now + pp->grace_ms);
            }
            break;
        case C_TERM:
            if (k->deadline <= now) {
                s_note(pp, c, TW_LOG_WARN,
                       "still there %llu ms after "
                       "SIGTERM: SIGKILL",
                       (unsigned long long)pp->grace_ms);
                s_signal(pp, c, SIGKILL, 0);
            }
            break;
        default:
            break;
        }
        if (k->state == C_IDLE && pp->qhead) {
            tw_pp_job_t *j = s_first_for(pp, c);
            if (j) {
                s_q_del(pp, j);
                s_send(pp, c, j);
            }
        }
        if (k->state == C_IDLE && pp->stopping) {
            k->state = C_BYE;
            k->deadline = now + pp->grace_ms;
            pp->ops.send_shutdown(pp->ud, c);
        }
        uint64_t d = k->state == C_OFF ? k->due : k->deadline;
        if (d && (k->state != C_OFF || !pp->stopping) && d < next) {
            next = d;
        }
    }
    /* Fill pipelines with what still waits: one call at a time, to the
     * children holding fewest first. */
    for (unsigned held = 1; pp->qhead && held < TW_PP_MAX_DEPTH; held++) {
        for (unsigned c = 0; c < pp->nkids && pp->qhead; c++) {
            if (pp->kids[c].held != held || !s_room(pp, c)) {
                continue;
            }
            tw_pp_job_t *j = s_first_for(pp, c);
            if (j) {
                s_q_del(pp, j);
                s_send(pp, c, j);
            }
        }
    }
    if (next == UINT64_MAX) {
        return -1;
    }
    return next <= now ? 0 : (int64_t)(next - now);
}

void
tw_procpool_stop(tw_procpool_t *pp, uint64_t now)
{
    pp->stopping = 1;
    while (pp->qhead) {
        s_fail(pp, pp->qhead, "the worker is stopping");
    }
    for (unsigned c = 0; c < pp->nkids; c++) {
        s_child_t *k = &pp->kids[c];
        if (k->state == C_OFF) {
            k->due = 0;
        } else if (k->state == C_HELLO) {
            s_signal(pp, c, SIGTERM, now + pp->grace_ms);
        } else if (k->state == C_BUSY || k->state == C_CANCEL) {
            for (tw_pp_job_t *j = k->job; j; j = j->next) {
                tw_procpool_cancel(pp, j, now);
            }
        }
    }
    tw_procpool_run(pp, now); /* idle children get shutdown */
}

void
tw_procpool_kill_all(tw_procpool_t *pp)
{
    for (unsigned c = 0; c < pp->nkids; c++) {
        int s = pp->kids[c].state;
        if (s != C_OFF && s != C_DEAD) {
            s_signal(pp, c, SIGKILL, 0);
        }
    }
}

size_t
tw_procpool_live(const tw_procpool_t *pp)
{
    size_t n = 0;
    for (unsigned c = 0; c < pp->nkids; c++) {
        n += pp->kids[c].state != C_OFF;
    }
    return n;
}

size_t
tw_procpool_size(const tw_procpool_t *pp)
{
    return pp->nkids;
}

size_t
tw_procpool_idle(const tw_procpool_t *pp)
{
    size_t n = 0;
    for (unsigned c = 0; c < pp->nkids; c++) {
        n += pp->kids[c].state == C_IDLE;
    }
    return n;
}

void
tw_procpool_stats(const tw_procpool_t *pp, tw_procpool_stats_t *out)
{
    *out = pp->stats;
}
