/*  worker/taskloop.c - the taskloop engine (see taskloop.h) and the
 *  station half of the plugin ABI (include/taskwheel/handler.h).
 *
 *  Bookkeeping, all intrusive in the station (three lists share one
 *  doubly linked s_list_t, each threading its own s_link_t):
 *    - `ready`, a FIFO of stations the next run must look at (a boundary
 *      to pass, a control to apply, a station to free). A run takes the
 *      whole list first, so what its own iterations queue waits for the
 *      next run: that is the "yield to the loop" between iterations.
 *    - a binary min-heap on `wake`: a waiting station's due time (last
 *      start + interval) or a running one's timeout deadline.
 *    - `dirty`, the stations whose checkpoint moved since last reported.
 *    - `all`, every allocated station, and a hash of live ones by sid.
 *
 *  A station is freed only inside tw_taskloop_run (or destroy), never
 *  from a callback, so a handler finishing a call, a cancel that finishes
 *  synchronously, or a caller holding a station pointer across a control
 *  never sees it vanish. Payloads are scanned in place (proto/mpwalk.h),
 *  which allocates nothing, so the per-iteration cost of a station
 *  whose result is not a map is a copy of its input and a few list moves.
 */
#include "worker/taskloop.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/idmap.h"
#include "common/log.h"
#include "common/util.h"
#include "common/utf8.h"
#include "proto/mpwalk.h"
#include "proto/proto.h"

#include <msgpack.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

enum { S_WAIT, S_RUN, S_PAUSED, S_ENDED };

/* The intrusive lists a station can be on; each has its own s_link_t. */
enum { S_L_READY, S_L_DIRTY, S_L_ALL, S_NLISTS };

/* A station's place in one list; `on` while it is in the list. */
typedef struct {
    tw_station_t *prev, *next;
    int on;
} s_link_t;

/* A list of stations threaded through their link[which]. */
typedef struct {
    tw_station_t *head, *tail;
    int which; /* S_L_* */
} s_list_t;

#define S_MAX_SID 128
#define S_MAX_ERR 4096 /* an exception's text, in bytes */

struct tw_station {
    tw_call_t call;
    tw_taskloop_t *tl;
    char *sid; /* NUL-terminated */
    size_t sidlen;
    uint64_t hash;
    tw_station_t *hnext; /* same hash, live stations */
    uint64_t ep;
    const tw_handler_t *h;
    int next;
    uint64_t iv, to;
    int slot;
    char *in; /* the current payload: the checkpoint */
    size_t ilen, icap;
    char *nx; /* tw_call_set_next's payload */
    size_t nlen, ncap;
    int has_next;
    uint64_t it;  /* iterations completed */
    uint64_t cur; /* what tw_station_iteration says */
    uint64_t s2n_seq, n2s_seq;
    int state;
    int want;      /* a control noted for the next boundary */
    int drain;     /* release at the next boundary */
    int started;   /* an iteration has started since add */
    int left;      /* `left` was called */
    atomic_int self_stop;
    int active;    /* open-ended: s2n output since to_base */
    uint64_t last_start, wake;
    uint64_t to_base; /* the timeout counts from here */
    size_t hidx; /* heap index + 1; 0 when not in the heap */
    s_link_t link[S_NLISTS];
    void *data;
};

typedef struct s_femit {
    struct s_femit *next;
    tw_station_t *st;
    size_t len;
    char data[];
} s_femit_t;

struct tw_taskloop {
    uv_loop_t *loop;
    uv_thread_t thread;
    tw_taskloop_cbs_t cbs;
    void *udata;
    tw_idmap_t byhash;
    size_t live, count;
    s_list_t ready, dirty, all; /* all: newest first */
    tw_station_t **heap;
    size_t hlen, hcap;
    uv_mutex_t mu; /* guards femit and no_async */
    s_femit_t *fhead, *ftail;
    int no_async;
    tw_taskloop_stats_t stats;
};

static const char s_nil = (char)0xc0;

enum { S_R_NEXT, S_R_STOP, S_R_EXCEPTION };

/* What a result says about the loop (S8, S9, S19, S20): a map, or the
 * kwargs of an [args, kwargs] pair (S2), with a truthy "stop" or an
 * "exception" key. The exception's value is returned in *exc. */
static int
s_classify(const unsigned char *r, size_t n, const unsigned char **exc,
           size_t *exclen)
{
    if (!r || n == 0) {
        return S_R_NEXT;
    }
    const unsigned char *m = r;
    size_t mlen = n;
    if (r[0] == 0x92 && n > 1 && tw_mp_is_array(r[1])) {
        size_t a = tw_mp_skip(r + 1, n - 1);
        if (a == 0 || 1 + a >= n || !tw_mp_is_map(r[1 + a])) {
            return S_R_NEXT;
        }
        m = r + 1 + a;
        mlen = n - 1 - a;
    } else if (!tw_mp_is_map(r[0])) {
        return S_R_NEXT;
    }
    const unsigned char *v;
    size_t vlen;
    if (tw_mp_map_get(m, mlen, "stop", 4, &v, &vlen) &&
        tw_mp_truthy(v, vlen)) {
        return S_R_STOP;
    }
    if (tw_mp_map_get(m, mlen, "exception", 9, exc, exclen)) {
        return S_R_EXCEPTION;
    }
    return S_R_NEXT;
}

/* An exception value as text: a string as it is, anything else printed. */
static void
s_exc_text(const unsigned char *v, size_t vlen, char *out, size_t cap)
{
    const char *s;
    size_t len;
    if (tw_mp_text(v, vlen, 0, &s, &len)) {
        size_t k = len < cap - 1 ? len : cap - 1;
        memcpy(out, s, k);
        out[k] = '\0';
        tw_utf8_scrub(out, k);
        return;
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    out[0] = '\0';
    if (msgpack_unpack_next(&up, (const char *)v, vlen, &off) ==
        MSGPACK_UNPACK_SUCCESS) {
        int k = msgpack_object_print_buffer(out, cap, up.data);
        if (k < 0) {
            out[0] = '\0';
        }
    }
    msgpack_unpacked_destroy(&up);
    if (!out[0]) {
        snprintf(out, cap, "exception");
    }
    tw_utf8_scrub(out, strlen(out));
}

/* Lists and the heap ----------------------------------------------------- */

/* Put `st` at the tail of `l`, or at its head if `front`, unless it is on
 * the list already. Returns 1 if it went onto an empty list, else 0. */
static int
s_list_add(s_list_t *l, tw_station_t *st, int front)
{
    s_link_t *k = &st->link[l->which];
    if (k->on) {
        return 0;
    }
    k->on = 1;
    int was_empty = l->head == NULL;
    k->prev = front ? NULL : l->tail;
    k->next = front ? l->head : NULL;
    if (k->prev) {
        k->prev->link[l->which].next = st;
    } else {
        l->head = st;
    }
    if (k->next) {
        k->next->link[l->which].prev = st;
    } else {
        l->tail = st;
    }
    return was_empty;
}

/* Take `st` off `l`; nothing if it is not on it. */
static void
s_list_del(s_list_t *l, tw_station_t *st)
{
    s_link_t *k = &st->link[l->which];
    if (!k->on) {
        return;
    }
    k->on = 0;
    if (k->prev) {
        k->prev->link[l->which].next = k->next;
    } else {
        l->head = k->next;
    }
    if (k->next) {
        k->next->link[l->which].prev = k->prev;
    } else {
        l->tail = k->prev;
    }
    k->prev = k->next = NULL;
}

static void
s_push(tw_station_t *st)
{
    tw_taskloop_t *tl = st->tl;
    if (s_list_add(&tl->ready, st, 0)) {
        tl->cbs.wake(tl->udata);
    }
}

static void
s_dirty_add(tw_station_t *st)
{
    tw_taskloop_t *tl = st->tl;
    if (s_list_add(&tl->dirty, st, 0)) {
        tl->cbs.dirty(tl->udata);
    }
}

static void
s_dirty_del(tw_station_t *st)
{
    s_list_del(&st->tl->dirty, st);
}

static void
s_heap_swap(tw_taskloop_t *tl, size_t a, size_t b)
{
    tw_station_t *t = tl->heap[a];
    tl->heap[a] = tl->heap[b];
    tl->heap[b] = t;
    tl->heap[a]->hidx = a + 1;
    tl->heap[b]->hidx = b + 1;
}

static void
s_heap_up(tw_taskloop_t *tl, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (tl->heap[p]->wake <= tl->heap[i]->wake) {
            break;
        }
        s_heap_swap(tl, i, p);
        i = p;
    }
}

static void
s_heap_down(tw_taskloop_t *tl, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < tl->hlen && tl->heap[l]->wake < tl->heap[m]->wake) {
            m = l;
        }
        if (r < tl->hlen && tl->heap[r]->wake < tl->heap[m]->wake) {
            m = r;
        }
        if (m == i) {
            break;
        }
        s_heap_swap(tl, i, m);
        i = m;
    }
}

static void
s_heap_del(tw_station_t *st)
{
    tw_taskloop_t *tl = st->tl;
    if (!st->hidx) {
        return;
    }
    size_t i = st->hidx - 1;
    st->hidx = 0;
    tl->hlen--;
    if (i == tl->hlen) {
        return;
    }
    tl->heap[i] = tl->heap[tl->hlen];
    tl->heap[i]->hidx = i + 1;
    s_heap_up(tl, i);
    s_heap_down(tl, tl->heap[i]->hidx - 1);
}

/* Put the station in the heap at `wake` (or move it there). */
static void
s_heap_set(tw_station_t *st, uint64_t wake)
{
    tw_taskloop_t *tl = st->tl;
    s_heap_del(st);
    st->wake = wake;
    if (tl->hlen == tl->hcap) {
        tl->hcap = tl->hcap ? tl->hcap * 2 : 64;
        tl->heap = tw_realloc(tl->heap, tl->hcap * sizeof *tl->heap);
    }
    tl->heap[tl->hlen] = st;
    st->hidx = ++tl->hlen;
    s_heap_up(tl, tl->hlen - 1);
}

/* The sid index ---------------------------------------------------------- */

static void
s_map_put(tw_station_t *st)
{
    tw_taskloop_t *tl = st->tl;
    st->hnext = tw_idmap_get(&tl->byhash, st->hash);
    tw_idmap_put(&tl->byhash, st->hash, st);
}

static void
s_map_del(tw_station_t *st)
{
    tw_taskloop_t *tl = st->tl;
    tw_station_t *head = tw_idmap_get(&tl->byhash, st->hash);
    if (head == st) {
        if (st->hnext) {
            tw_idmap_put(&tl->byhash, st->hash, st->hnext);
        } else {
            tw_idmap_del(&tl->byhash, st->hash);
        }
    } else {
        for (tw_station_t *p = head; p; p = p->hnext) {
            if (p->hnext == st) {
                p->hnext = st->hnext;
                break;
            }
        }
    }
    st->hnext = NULL;
}

tw_station_t *
tw_taskloop_find(const tw_taskloop_t *tl, const char *sid, size_t len)
{
    if (len == 0) {
        return NULL;
    }
    uint64_t h = tw_hash_bytes(sid, len);
    for (tw_station_t *st = tw_idmap_get(&tl->byhash, h); st;
         st = st->hnext) {
        if (st->sidlen == len && memcmp(st->sid, sid, len) == 0) {
            return st;
        }
    }
    return NULL;
}

/* Payload buffers -------------------------------------------------------- */

/* Copy `len` bytes (nil for none) into a growing buffer. */
static int
s_copy(char **buf, size_t *blen, size_t *cap, const void *p, size_t len)
{
    if (!p || len == 0) {
        p = &s_nil;
        len = 1;
    }
    if (len > *cap) {
        char *b = tw_try_realloc(*buf, len);
        if (!b) {
            return TW_ENOMEM;
        }
        *buf = b;
        *cap = len;
    }
    memcpy(*buf, p, len);
    *blen = len;
    return 0;
}

/* Ending and freeing ------------------------------------------------------ */

static void
s_left(tw_station_t *st)
{
    if (st->left) {
        return;
    }
    st->left = 1;
    st->tl->cbs.left(st->tl->udata, st);
    s_push(st); /* the next run frees it */
}

/* A handler whose iterations are open-ended (it has a `stop`). */
static int
s_open_ended(const tw_station_t *st)
{
    return st->h->stop != NULL;
}

/* End the station: report `ev` (none if negative) with its current
 * checkpoint, forget its sid, end a running iteration: with the
 * handler's `stop` if `polite` and it has one, else cancelled. */
static void
s_end_how(tw_station_t *st, int ev, const char *err, int polite)
{
    tw_taskloop_t *tl = st->tl;
    if (st->state == S_ENDED) {
        return;
    }
    st->state = S_ENDED;
    tl->live--;
    s_map_del(st);
    s_dirty_del(st);
    s_heap_del(st);
    if (ev >= 0) {
        tl->cbs.event(tl->udata, st, ev, err);
    }
    if (st->call.running && polite && s_open_ended(st)) {
        st->h->stop(&st->call, st->h->udata); /* its outcome: s_left */
    } else if (st->call.running) {
        tw_call_cancel(&st->call); /* its outcome calls s_left */
    } else {
        s_left(st);
    }
}

static void
s_end(tw_station_t *st, int ev, const char *err)
{
    s_end_how(st, ev, err, 0);
}

static void
s_free(tw_station_t *st)
{
    tw_taskloop_t *tl = st->tl;
    if (st->h->end) {
        st->h->end(st, st->h->udata);
    }
    s_list_del(&tl->all, st);
    tl->count--;
    tw_call_free(&st->call);
    tw_free(st->in);
    tw_free(st->nx);
    tw_free(st->sid);
    tw_free(st);
}

/* s2n --------------------------------------------------------------------- */

static void
s_emit(tw_station_t *st, const void *d, size_t len)
{
    tw_taskloop_t *tl = st->tl;
    if (st->state == S_ENDED) {
        tl->stats.s2n_dropped++;
        return;
    }
    tl->stats.s2n++;
    st->active = 1;
    tl->cbs.s2n(tl->udata, st, ++st->s2n_seq, d, len);
}

/* Hand over what other threads emitted, in their order. */
static void
s_drain_foreign(tw_taskloop_t *tl)
{
    uv_mutex_lock(&tl->mu);
    s_femit_t *f = tl->fhead;
    tl->fhead = tl->ftail = NULL;
    uv_mutex_unlock(&tl->mu);
    while (f) {
        s_femit_t *next = f->next;
        s_emit(f->st, f->data, f->len);
        tw_free(f);
        f = next;
    }
}

/* Iterations --------------------------------------------------------------- */

static void
s_iter_done(tw_call_t *call, int code, const void *r, size_t rlen,
            const char *err)
{
    tw_station_t *st = call->station;
    tw_taskloop_t *tl = st->tl;
    if (tl->fhead) {
        s_drain_foreign(tl); /* a blocking iteration's emits come first */
    }
    tl->stats.iterations++;
    s_heap_del(st);
    st->cur = st->it;
    if (st->state == S_ENDED) {
        s_left(st); /* cancelled, timed out or released: discarded */
        return;
    }
    st->state = S_WAIT;
    if (code != TW_ST_OK) {
        s_end(st, TW_SEV_FAILED, err ? err : "error");
        return;
    }
    st->it++;
    st->cur = st->it;
    const unsigned char *exc;
    size_t exclen;
    switch (s_classify(r, rlen, &exc, &exclen)) {
    case S_R_STOP:
        s_end(st, TW_SEV_DONE, NULL);
        return;
    case S_R_EXCEPTION: {
        char text[S_MAX_ERR];
        s_exc_text(exc, exclen, text, sizeof text);
        s_end(st, TW_SEV_FAILED, text);
        return;
    }
    default:
        break;
    }
    int rc = 0;
    if (st->next == TW_NEXT_RESULT) {
        if (rlen > TW_STATION_MAX_PAYLOAD) {
            s_end(st, TW_SEV_FAILED, "result too big to be the next payload");
            return;
        }
        rc = s_copy(&st->in, &st->ilen, &st->icap, r, rlen);
    } else if (st->next == TW_NEXT_HANDLER && st->has_next) {
        char *b = st->in;
        size_t c = st->icap;
        st->in = st->nx;
        st->ilen = st->nlen;
        st->icap = st->ncap;
        st->nx = b;
        st->ncap = c;
        st->nlen = 0;
    }
    st->has_next = 0;
    if (rc != 0) {
        s_end(st, TW_SEV_FAILED, "out of memory keeping the next payload");
        return;
    }
    if (atomic_load(&st->self_stop)) {
        s_end(st, TW_SEV_DONE, NULL);
        return;
    }
    s_dirty_add(st);
    s_push(st); /* the boundary: the next run applies controls */
}

static void
s_start(tw_station_t *st, uint64_t now)
{
    s_heap_del(st);
    st->state = S_RUN;
    st->started = 1;
    st->last_start = st->to_base = now;
    st->active = 0;
    st->has_next = 0;
    st->cur = st->it + 1;
    int rc = tw_call_start(&st->call, st->h, 0, st->in, st->ilen);
    if (rc != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "cannot start an iteration: %s",
                 rc == TW_ENOMEM ? tw_strerror(rc) : uv_strerror(rc));
        st->state = S_WAIT;
        st->cur = st->it;
        s_end(st, TW_SEV_FAILED, msg);
        return;
    }
    if (st->state == S_RUN && st->to) {
        s_heap_set(st, now + st->to);
    }
}

/* A station at a boundary (not running): apply what was noted, then
 * start it if due. */
static void
s_boundary(tw_station_t *st, uint64_t now)
{
    tw_taskloop_t *tl = st->tl;
    if (st->drain) {
        s_end(st, TW_SEV_RELEASED, NULL);
        return;
    }
    if (atomic_load(&st->self_stop)) {
        s_end(st, TW_SEV_DONE, NULL);
        return;
    }
    int want = st->want;
    st->want = 0;
    if (want == TW_CTL_STOP) {
        s_end(st, TW_SEV_STOPPED, NULL);
        return;
    }
    if (want == TW_CTL_PAUSE && st->state != S_PAUSED) {
        st->state = S_PAUSED;
        s_heap_del(st);
        s_dirty_del(st); /* the report carries the checkpoint */
        tl->cbs.event(tl->udata, st, TW_SEV_PAUSED, NULL);
    } else if (want == TW_CTL_CONTINUE && st->state == S_PAUSED) {
        st->state = S_WAIT; /* with the last payload (S16) */
        s_dirty_del(st);
        tl->cbs.event(tl->udata, st, TW_SEV_RUNNING, NULL);
    }
    if (st->state != S_WAIT) {
        return;
    }
    uint64_t due = st->started ? st->last_start + st->iv : now;
    if (due > now) {
        s_heap_set(st, due);
        return;
    }
    s_start(st, now);
}

static void
s_process(tw_station_t *st, uint64_t now)
{
    switch (st->state) {
    case S_ENDED:
        if (st->left && !st->call.running) {
            s_free(st);
        }
        return;
    case S_RUN:
        if (st->to && now >= st->to_base + st->to && s_open_ended(st) &&
            st->active) {
            /* An idle timeout: output since the last look counts the
             * period again from now. */
            st->active = 0;
            st->to_base = now;
        }
        if (st->to && now >= st->to_base + st->to) {
            st->tl->stats.timeouts++;
            s_end(st, TW_SEV_FAILED,
                  s_open_ended(st) ? "idle timeout" : "timeout"); /* S6 */
        } else if (st->to && (!st->hidx || st->wake != st->to_base +
                                                         st->to)) {
            s_heap_set(st, st->to_base + st->to);
        }
        return;
    default:
        s_boundary(st, now);
        return;
    }
}

/* Public ------------------------------------------------------------------ */

const char *
tw_sev_name(int ev)
{
    static const char *const names[] = {
        "running", "paused",   "stopped",  "done",
        "failed",  "cancelled", "released", "iteration",
    };
    if (ev < 0 || ev >= (int)(sizeof names / sizeof names[0])) {
        return "?";
    }
    return names[ev];
}

int
tw_ctl_parse(const char *s, size_t len)
{
    static const struct {
        const char *name;
        int ctl;
    } ctls[] = {
        {"pause", TW_CTL_PAUSE},
        {"continue", TW_CTL_CONTINUE},
        {"stop", TW_CTL_STOP},
        {"cancel", TW_CTL_CANCEL},
    };
    for (size_t i = 0; s && i < sizeof ctls / sizeof ctls[0]; i++) {
        if (strlen(ctls[i].name) == len && !memcmp(ctls[i].name, s, len)) {
            return ctls[i].ctl;
        }
    }
    return TW_EINVAL;
}

tw_taskloop_t *
tw_taskloop_new(uv_loop_t *loop, const tw_taskloop_cbs_t *cbs, void *udata)
{
    tw_taskloop_t *tl = tw_calloc(1, sizeof *tl);
    tl->loop = loop;
    tl->thread = uv_thread_self();
    tl->cbs = *cbs;
    tl->udata = udata;
    tl->ready.which = S_L_READY;
    tl->dirty.which = S_L_DIRTY;
    tl->all.which = S_L_ALL;
    tw_idmap_init(&tl->byhash);
    uv_mutex_init(&tl->mu);
    return tl;
}

void
tw_taskloop_destroy(tw_taskloop_t **tl_p)
{
    tw_taskloop_t *tl = *tl_p;
    if (!tl) {
        return;
    }
    s_drain_foreign(tl);
    while (tl->all.head) {
        tw_station_t *st = tl->all.head;
        if (st->state != S_ENDED) {
            st->state = S_ENDED;
            tl->live--;
        }
        s_free(st);
    }
    tw_idmap_free(&tl->byhash);
    tw_free(tl->heap);
    uv_mutex_destroy(&tl->mu);
    tw_free(tl);
    *tl_p = NULL;
}

void
tw_taskloop_no_async(tw_taskloop_t *tl)
{
    uv_mutex_lock(&tl->mu);
    tl->no_async = 1;
    uv_mutex_unlock(&tl->mu);
}

int
tw_taskloop_add(tw_taskloop_t *tl, const tw_station_def_t *def,
                tw_station_t **out)
{
    if (!def->sid || def->sidlen == 0 || def->sidlen > S_MAX_SID ||
        !def->h || def->next < TW_NEXT_SAME || def->next > TW_NEXT_HANDLER ||
        def->ilen > TW_STATION_MAX_PAYLOAD) {
        return TW_EINVAL;
    }
    if (tw_taskloop_find(tl, def->sid, def->sidlen)) {
        return TW_EEXIST;
    }
    tw_station_t *st = tw_calloc(1, sizeof *st);
    if (s_copy(&st->in, &st->ilen, &st->icap, def->input, def->ilen) != 0) {
        tw_free(st);
        return TW_ENOMEM;
    }
    tw_call_init(&st->call, tl->loop, s_iter_done, st);
    st->call.station = st;
    st->tl = tl;
    st->sid = tw_strndup(def->sid, def->sidlen);
    st->sidlen = def->sidlen;
    st->hash = tw_hash_bytes(def->sid, def->sidlen);
    st->ep = def->ep;
    st->h = def->h;
    st->next = def->next;
    st->iv = def->interval_ms;
    st->to = def->timeout_ms;
    st->call.timeout_ms = def->timeout_ms;
    st->slot = def->slot;
    st->it = st->cur = def->it;
    atomic_init(&st->self_stop, 0);
    st->state = def->paused ? S_PAUSED : S_WAIT;
    s_list_add(&tl->all, st, 1);
    tl->count++;
    tl->live++;
    tl->stats.stations++;
    s_map_put(st);
    tl->cbs.event(tl->udata, st,
                  def->paused ? TW_SEV_PAUSED : TW_SEV_RUNNING, NULL);
    if (!def->paused) {
        s_push(st);
    }
    if (out) {
        *out = st;
    }
    return 0;
}

int
tw_taskloop_control(tw_taskloop_t *tl, tw_station_t *st, int ctl)
{
    (void)tl;
    if (ctl < TW_CTL_PAUSE || ctl > TW_CTL_CANCEL) {
        return TW_EINVAL;
    }
    if (st->state == S_ENDED) {
        return TW_ESTATE;
    }
    if (ctl == TW_CTL_CANCEL) {
        s_end(st, TW_SEV_CANCELLED, NULL); /* S18: now */
        return 0;
    }
    if (ctl == TW_CTL_STOP && st->state == S_RUN && s_open_ended(st)) {
        /* Its iteration would not reach a boundary: end it now. */
        s_end_how(st, TW_SEV_STOPPED, NULL, 1);
        return 0;
    }
    st->want = ctl; /* S13: the last one noted wins */
    if (st->state != S_RUN) {
        s_push(st);
    }
    return 0;
}

int
tw_taskloop_release(tw_taskloop_t *tl, tw_station_t *st, int graceful)
{
    (void)tl;
    if (st->state == S_ENDED) {
        return TW_ESTATE;
    }
    if (graceful && st->state == S_RUN && !s_open_ended(st)) {
        st->drain = 1; /* S29: after the current iteration */
        return 0;
    }
    /* An open-ended iteration is asked to end now, drain or not: the
     * station is released at once and may start elsewhere. */
    s_end_how(st, TW_SEV_RELEASED, NULL, 1);
    return 0;
}

void
tw_taskloop_release_all(tw_taskloop_t *tl, int graceful)
{
    for (tw_station_t *st = tl->all.head; st; st = st->link[S_L_ALL].next) {
        if (st->state != S_ENDED) {
            tw_taskloop_release(tl, st, graceful);
        }
    }
}

void
tw_taskloop_kill_all(tw_taskloop_t *tl)
{
    for (tw_station_t *st = tl->all.head; st; st = st->link[S_L_ALL].next) {
        if (st->call.running) {
            tw_call_cancel(&st->call);
        }
    }
}

void
tw_taskloop_drop(tw_taskloop_t *tl, tw_station_t *st)
{
    (void)tl;
    s_end(st, -1, NULL);
}

void
tw_taskloop_drop_all(tw_taskloop_t *tl)
{
    for (tw_station_t *st = tl->all.head; st; st = st->link[S_L_ALL].next) {
        s_end(st, -1, NULL);
    }
}

int
tw_taskloop_n2s(tw_taskloop_t *tl, tw_station_t *st, uint64_t seq,
                const void *data, size_t len)
{
    if (st->state == S_ENDED) {
        tl->stats.n2s_dropped++;
        return TW_ESTATE;
    }
    if (seq <= st->n2s_seq) {
        tl->stats.n2s_dup++;
        return TW_EEXIST;
    }
    st->n2s_seq = seq;
    if (!st->h->n2s) {
        tl->stats.n2s_dropped++;
        return TW_ENOENT;
    }
    if (!data || len == 0) {
        data = &s_nil;
        len = 1;
    }
    tl->stats.n2s++;
    st->h->n2s(st, data, len, st->h->udata);
    return 0;
}

int64_t
tw_taskloop_run(tw_taskloop_t *tl, uint64_t now)
{
    if (tl->fhead) {
        s_drain_foreign(tl);
    }
    while (tl->hlen && tl->heap[0]->wake <= now) {
        tw_station_t *st = tl->heap[0];
        s_heap_del(st);
        s_push(st);
    }
    s_list_t batch = tl->ready;
    tl->ready.head = tl->ready.tail = NULL;
    while (batch.head) {
        tw_station_t *st = batch.head;
        s_list_del(&batch, st);
        s_process(st, now);
    }
    if (tl->ready.head) {
        return 0;
    }
    if (tl->hlen) {
        uint64_t w = tl->heap[0]->wake;
        return w > now ? (int64_t)(w - now) : 0;
    }
    return -1;
}

void
tw_taskloop_take_dirty(tw_taskloop_t *tl,
                       void (*fn)(void *arg, tw_station_t *st), void *arg)
{
    while (tl->dirty.head) {
        tw_station_t *st = tl->dirty.head;
        s_dirty_del(st);
        fn(arg, st);
    }
}

size_t
tw_taskloop_live(const tw_taskloop_t *tl)
{
    return tl->live;
}

size_t
tw_taskloop_count(const tw_taskloop_t *tl)
{
    return tl->count;
}

void
tw_taskloop_stats(const tw_taskloop_t *tl, tw_taskloop_stats_t *out)
{
    *out = tl->stats;
}

const char *
tw_station_sid(const tw_station_t *st, size_t *len)
{
    if (len) {
        *len = st->sidlen;
    }
    return st->sid;
}

uint64_t
tw_station_ep(const tw_station_t *st)
{
    return st->ep;
}

uint64_t
tw_station_done_count(const tw_station_t *st)
{
    return st->it;
}

const void *
tw_station_ck(const tw_station_t *st, size_t *len)
{
    *len = st->ilen;
    return st->in;
}

int
tw_station_slot(const tw_station_t *st)
{
    return st->slot;
}

const char *
tw_station_handler(const tw_station_t *st)
{
    return st->h->name;
}

/* The station half of the plugin ABI ------------------------------------ */

tw_station_t *
tw_call_station(const tw_call_t *call)
{
    return call->station;
}

const char *
tw_station_id(const tw_station_t *st)
{
    return st->sid;
}

uint64_t
tw_station_iteration(const tw_station_t *st)
{
    return st->cur;
}

uint64_t
tw_station_n2s_seq(const tw_station_t *st)
{
    return st->n2s_seq;
}

void *
tw_station_data(const tw_station_t *st)
{
    return st->data;
}

void
tw_station_set_data(tw_station_t *st, void *data)
{
    st->data = data;
}

/* Check a payload a handler hands over, where NULL or empty means nil
 * (*msgpack and *len then name the nil to use instead). Returns 0, -E2BIG
 * or -EINVAL (not exactly one msgpack value). */
static int
s_payload_check(const void **msgpack, size_t *len)
{
    if (!*msgpack || *len == 0) {
        *msgpack = &s_nil;
        *len = 1;
    }
    if (*len > TW_STATION_MAX_PAYLOAD) {
        return -E2BIG;
    }
    if (!tw_mp_one(*msgpack, *len, TW_MP_DEPTH_ANY)) {
        return -EINVAL;
    }
    return 0;
}

int
tw_station_emit(tw_station_t *st, const void *msgpack, size_t len)
{
    int rc = s_payload_check(&msgpack, &len);
    if (rc != 0) {
        return rc;
    }
    tw_taskloop_t *tl = st->tl;
    uv_thread_t self = uv_thread_self();
    if (uv_thread_equal(&self, &tl->thread)) {
        if (st->state == S_ENDED) {
            tl->stats.s2n_dropped++;
            return -ESHUTDOWN;
        }
        s_emit(st, msgpack, len);
        return 0;
    }
    /* A pool thread: queue for the loop, which drains in order. */
    s_femit_t *f = tw_malloc(sizeof *f + len);
    f->next = NULL;
    f->st = st;
    f->len = len;
    memcpy(f->data, msgpack, len);
    uv_mutex_lock(&tl->mu);
    if (tl->ftail) {
        tl->ftail->next = f;
    } else {
        tl->fhead = f;
    }
    tl->ftail = f;
    int wake = !tl->no_async && tl->cbs.async;
    if (wake) {
        tl->cbs.async(tl->udata);
    }
    uv_mutex_unlock(&tl->mu);
    return 0;
}

int
tw_call_emit(tw_call_t *call, const void *msgpack, size_t len)
{
    if (!call->station) {
        return -EINVAL;
    }
    return tw_station_emit(call->station, msgpack, len);
}

int
tw_call_set_next(tw_call_t *call, const void *msgpack, size_t len)
{
    tw_station_t *st = call->station;
    if (!st) {
        return -EINVAL;
    }
    int rc = s_payload_check(&msgpack, &len);
    if (rc != 0) {
        return rc;
    }
    if (s_copy(&st->nx, &st->nlen, &st->ncap, msgpack, len) != 0) {
        return -ENOMEM;
    }
    st->has_next = 1;
    return 0;
}

void
tw_station_stop(tw_station_t *st)
{
    atomic_store(&st->self_stop, 1);
    uv_thread_t self = uv_thread_self();
    if (uv_thread_equal(&self, &st->tl->thread) && st->state != S_RUN &&
        st->state != S_ENDED) {
        s_push(st); /* between iterations: end at the next run */
    }
}
