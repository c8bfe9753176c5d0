/*  worker/chan.c - task channels (see chan.h) and the channel half of the
 *  plugin ABI (tw_call_open/_send/_request/_close).
 *
 *  A channel record lives from open to close or the task's end; after a
 *  close the call points at a shared "closed" marker instead, so later
 *  calls say -ESHUTDOWN without keeping memory. Waiting requests hang off
 *  their channel in a short list (at most TW_CHAN_MAX_REQUESTS); the
 *  timer walks every channel when it fires, which is cheap because only
 *  tasks that use channels have one. Correlation ids come from one
 *  counter per worker, so a response can never match a request of another
 *  task or of an earlier attempt run here.
 */
#include "worker/chan.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/idmap.h"
#include "common/log.h"
#include "proto/mpwalk.h"

#include <errno.h>
#include <string.h>

enum { S_OPEN, S_CLOSEREQ };

typedef struct s_req {
    struct s_req *next;
    uint64_t cr;
    uint64_t deadline; /* loop time, ms */
    tw_chan_reply_fn cb;
    void *udata;
} s_req_t;

struct tw_chan {
    uint64_t id;
    tw_chans_t *table;
    tw_call_t *call;
    int state;
    s_req_t *reqs; /* oldest first */
    size_t nreqs;
};

struct tw_chans {
    uv_loop_t *loop;
    uv_timer_t timer;
    tw_idmap_t byid; /* task id -> struct tw_chan */
    uint64_t next_cr;
    tw_batch_t out;
    tw_chans_wake_cb wake;
    void *udata;
    tw_chans_close_cb close_cb;
    void *close_udata;
    tw_chans_stats_t st;
};

/* What call->chan points at once the handler closed its channel, and
 * once the task ended (tw_call_start clears it for the next task). */
static struct tw_chan s_closed;
static struct tw_chan s_ended;

static const char s_nil = (char)0xc0;

/* Check a handler's payload (NULL or empty means nil). Returns 0, -E2BIG
 * or -EINVAL (not exactly one msgpack value). Its nesting is not limited:
 * like a station's payloads it is passed on, and decoded at the far end. */
static int
s_payload(const void **p, size_t *len)
{
    if (!*p || *len == 0) {
        *p = &s_nil;
        *len = 1;
    }
    if (*len > TW_CHAN_MAX_PAYLOAD) {
        return -E2BIG;
    }
    return tw_mp_one(*p, *len, TW_MP_DEPTH_ANY) ? 0 : -EINVAL;
}

/* Table ------------------------------------------------------------------ */

tw_chans_t *
tw_chans_new(uv_loop_t *loop, tw_chans_wake_cb wake, void *udata)
{
    tw_chans_t *ch = tw_calloc(1, sizeof *ch);
    ch->loop = loop;
    ch->wake = wake;
    ch->udata = udata;
    ch->next_cr = 1;
    tw_idmap_init(&ch->byid);
    tw_batch_init(&ch->out, 0);
    uv_timer_init(loop, &ch->timer);
    ch->timer.data = ch;
    return ch;
}

static void
s_timer_closed(uv_handle_t *h)
{
    tw_chans_t *ch = h->data;
    tw_chans_close_cb cb = ch->close_cb;
    void *udata = ch->close_udata;
    tw_idmap_free(&ch->byid);
    tw_batch_free(&ch->out);
    tw_free(ch);
    if (cb) {
        cb(udata);
    }
}

void
tw_chans_close(tw_chans_t *ch, tw_chans_close_cb cb, void *udata)
{
    ch->close_cb = cb;
    ch->close_udata = udata;
    uv_close((uv_handle_t *)&ch->timer, s_timer_closed);
}

void
tw_chans_attach(tw_chans_t *ch, tw_call_t *call)
{
    call->chans = ch;
    call->chan = NULL;
}

/* Append an item {id, ev, cr?, d?, err?} for the broker. */
static void
s_up(tw_chans_t *ch, uint64_t id, const char *ev, uint64_t cr,
     const void *d, size_t dlen, const char *err)
{
    tw_chan_item_t ci = {.id = id, .cr = cr, .ev = ev, .evlen = strlen(ev),
                         .d = d, .dlen = dlen, .err = err,
                         .errlen = err ? strlen(err) : 0};
    tw_enc_chan_item(tw_batch_item(&ch->out), &ci);
    ch->st.up++;
    if (ch->wake) {
        ch->wake(ch->udata);
    }
}

/* Take every waiting request off `c`, to fire with s_fire_all. */
static s_req_t *
s_take_all(struct tw_chan *c)
{
    s_req_t *list = c->reqs;
    c->reqs = NULL;
    c->nreqs = 0;
    return list;
}

/* Fire and free the requests of `list` with `status`. A callback may
 * finish its call, which ends (frees) the channel: so the list is off the
 * channel and nothing here touches it. */
static void
s_fire_all(s_req_t *list, int status)
{
    while (list) {
        s_req_t *r = list;
        list = r->next;
        r->cb(r->udata, status, NULL, 0);
        tw_free(r);
    }
}

/* Free channel `c`: out of the table, off its call. Its requests must
 * have been fired. */
static void
s_free(struct tw_chan *c, int closed)
{
    tw_chans_t *ch = c->table;
    tw_idmap_del(&ch->byid, c->id);
    if (c->call && c->call->chan == c) {
        c->call->chan = closed ? &s_closed : &s_ended;
    }
    ch->st.live--;
    tw_free(c);
}

void
tw_chans_end(tw_call_t *call)
{
    struct tw_chan *c = call->chan;
    call->chan = &s_ended; /* no new channel for this task */
    if (!c || c == &s_closed || c == &s_ended) {
        return;
    }
    c->call = NULL; /* the handle is finished or about to be */
    s_up(c->table, c->id, "close", 0, NULL, 0, NULL);
    s_req_t *list = s_take_all(c);
    s_free(c, 0);
    s_fire_all(list, TW_ECANCELED);
}

static void s_timer_cb(uv_timer_t *t);

/* Arm the timer for `deadline` if it is earlier than what is armed. */
static void
s_arm(tw_chans_t *ch, uint64_t deadline)
{
    uint64_t now = uv_now(ch->loop);
    uint64_t in = deadline > now ? deadline - now : 0;
    if (!uv_is_active((uv_handle_t *)&ch->timer) ||
        in < uv_timer_get_due_in(&ch->timer)) {
        uv_timer_start(&ch->timer, s_timer_cb, in, 0);
    }
}

typedef struct {
    uint64_t now;
    uint64_t next; /* earliest deadline left, UINT64_MAX if none */
    struct tw_chan **due;
    size_t n, cap;
} s_scan_t;

static void
s_scan(uint64_t id, void *val, void *arg)
{
    (void)id;
    s_scan_t *s = arg;
    struct tw_chan *c = val;
    for (s_req_t *r = c->reqs; r; r = r->next) {
        if (r->deadline <= s->now) {
            if (s->n == s->cap) {
                s->cap = s->cap ? 2 * s->cap : 8;
                s->due = tw_realloc(s->due, s->cap * sizeof *s->due);
            }
            s->due[s->n++] = c;
            break;
        }
        if (r->deadline < s->next) {
            s->next = r->deadline;
        }
    }
}

int64_t
tw_chans_expire(tw_chans_t *ch, uint64_t now_ms)
{
    s_scan_t s = {now_ms, UINT64_MAX, NULL, 0, 0};
    tw_idmap_each(&ch->byid, s_scan, &s);
    /* Fire outside the walk: a callback may close or end its channel. */
    for (size_t i = 0; i < s.n; i++) {
        uint64_t id = s.due[i]->id;
        for (;;) {
            struct tw_chan *c = tw_idmap_get(&ch->byid, id);
            s_req_t **pp = c ? &c->reqs : NULL;
            while (pp && *pp && (*pp)->deadline > now_ms) {
                pp = &(*pp)->next;
            }
            if (!pp || !*pp) {
                break;
            }
            s_req_t *r = *pp;
            *pp = r->next;
            c->nreqs--;
            ch->st.timeouts++;
            r->cb(r->udata, TW_ETIMEDOUT, NULL, 0);
            tw_free(r);
        }
        struct tw_chan *c = tw_idmap_get(&ch->byid, id);
        for (s_req_t *r = c ? c->reqs : NULL; r; r = r->next) {
            if (r->deadline < s.next) {
                s.next = r->deadline;
            }
        }
    }
    tw_free(s.due);
    return s.next == UINT64_MAX ? -1
           : s.next > now_ms    ? (int64_t)(s.next - now_ms)
                                : 0;
}

static void
s_timer_cb(uv_timer_t *t)
{
    tw_chans_t *ch = t->data;
    int64_t next = tw_chans_expire(ch, uv_now(ch->loop));
    if (next >= 0) {
        uv_timer_start(&ch->timer, s_timer_cb, (uint64_t)next, 0);
    }
}

int
tw_chans_on_item(tw_chans_t *ch, const tw_item_t *it)
{
    uint64_t id = tw_item_uint(it, TW_I_ID, 0);
    size_t evlen;
    const char *ev = tw_item_str(it, TW_I_EV, &evlen);
    struct tw_chan *c = tw_idmap_get(&ch->byid, id);
    int rc = 0;
    if (evlen == 4 && memcmp(ev, "resp", 4) == 0) {
        uint64_t cr = tw_item_uint(it, TW_I_CR, 0);
        if (!cr) {
            rc = TW_EINVAL;
        } else if (!c) {
            rc = TW_ENOENT;
        } else {
            s_req_t **pp = &c->reqs;
            while (*pp && (*pp)->cr != cr) {
                pp = &(*pp)->next;
            }
            if (!*pp) {
                ch->st.late++;
                tw_debug("worker.chan", "late response %llu for task %llu "
                         "dropped", (unsigned long long)cr,
                         (unsigned long long)id);
                return TW_ETIMEDOUT;
            }
            s_req_t *r = *pp;
            *pp = r->next;
            c->nreqs--;
            size_t len;
            const void *d = tw_item_bin(it, TW_I_D, &len);
            if (!d || !len) {
                d = &s_nil;
                len = 1;
            }
            ch->st.replies++;
            r->cb(r->udata, 0, d, len);
            tw_free(r);
            return 0;
        }
    } else if (evlen == 8 && memcmp(ev, "closereq", 8) == 0) {
        if (!c) {
            rc = TW_ENOENT;
        } else {
            ch->st.closereqs++;
            c->state = S_CLOSEREQ;
            s_fire_all(s_take_all(c), TW_ECLOSEREQ);
            return 0;
        }
    } else {
        rc = TW_EINVAL;
    }
    ch->st.dropped++;
    tw_debug("worker.chan", "CHAN item '%.*s' for task %llu dropped: %s",
             (int)evlen, ev, (unsigned long long)id, tw_strerror(rc));
    return rc;
}

uint32_t
tw_chans_pending(const tw_chans_t *ch)
{
    return ch->out.n;
}

int
tw_chans_frames(tw_chans_t *ch, zmq_msg_t f[2])
{
    if (ch->out.n == 0) {
        return 0;
    }
    tw_batch_frames(&ch->out, TW_CMD_CHAN, f);
    return 1;
}

void
tw_chans_discard(tw_chans_t *ch)
{
    tw_enc_clear(&ch->out.enc);
    ch->out.n = 0;
}

void
tw_chans_stats(const tw_chans_t *ch, tw_chans_stats_t *out)
{
    *out = ch->st;
}

/* The plugin ABI (include/taskwheel/handler.h) ----------------------------- */

/* The open channel of `call`, or NULL with the error in *rc. */
static struct tw_chan *
s_open_chan(tw_call_t *call, int *rc)
{
    if (!call->chans || call->station ||
        (call->h && (call->h->flags & TW_HANDLER_BLOCKING))) {
        *rc = -EINVAL;
        return NULL;
    }
    if (!call->chan) {
        *rc = -ENOTCONN;
        return NULL;
    }
    if (call->chan == &s_closed || call->chan == &s_ended) {
        *rc = -ESHUTDOWN;
        return NULL;
    }
    if (call->chan->state == S_CLOSEREQ) {
        *rc = TW_ECLOSEREQ;
        return NULL;
    }
    return call->chan;
}

/* Room for `len` more bytes of unsent items? */
static int
s_room(const tw_chans_t *ch, size_t len)
{
    return tw_enc_size(&ch->out.enc) + len <= TW_CHAN_PENDING_MAX;
}

int
tw_call_open(tw_call_t *call, const void *msgpack, size_t len)
{
    if (!call->chans || call->station ||
        (call->h && (call->h->flags & TW_HANDLER_BLOCKING))) {
        return -EINVAL;
    }
    if (call->chan == &s_ended) {
        return -ESHUTDOWN; /* the task is over (cancelled, timed out) */
    }
    if (call->chan) {
        return -EALREADY;
    }
    int given = msgpack && len;
    int rc = s_payload(&msgpack, &len);
    if (rc != 0) {
        return rc;
    }
    tw_chans_t *ch = call->chans;
    if (!s_room(ch, len)) {
        return -ENOBUFS;
    }
    struct tw_chan *c = tw_calloc(1, sizeof *c);
    c->id = call->id;
    c->table = ch;
    c->call = call;
    c->state = S_OPEN;
    tw_idmap_put(&ch->byid, c->id, c);
    call->chan = c;
    ch->st.opened++;
    ch->st.live++;
    s_up(ch, c->id, "open", 0, given ? msgpack : NULL, len, NULL);
    return 0;
}

int
tw_call_send(tw_call_t *call, const void *msgpack, size_t len)
{
    int rc;
    struct tw_chan *c = s_open_chan(call, &rc);
    if (!c) {
        return rc;
    }
    if ((rc = s_payload(&msgpack, &len)) != 0) {
        return rc;
    }
    if (!s_room(c->table, len)) {
        return -ENOBUFS;
    }
    s_up(c->table, c->id, "msg", 0, msgpack, len, NULL);
    return 0;
}

int
tw_call_request(tw_call_t *call, const void *msgpack, size_t len,
                uint64_t timeout_ms, tw_chan_reply_fn cb, void *udata)
{
    int rc;
    struct tw_chan *c = s_open_chan(call, &rc);
    if (!c) {
        return rc;
    }
    if (!cb) {
        return -EINVAL;
    }
    if ((rc = s_payload(&msgpack, &len)) != 0) {
        return rc;
    }
    tw_chans_t *ch = c->table;
    if (!s_room(ch, len) || c->nreqs >= TW_CHAN_MAX_REQUESTS) {
        return -ENOBUFS;
    }
    s_req_t *r = tw_calloc(1, sizeof *r);
    r->cr = ch->next_cr++;
    r->deadline = uv_now(ch->loop) +
                  (timeout_ms ? timeout_ms : TW_CHAN_DEFAULT_TIMEOUT_MS);
    r->cb = cb;
    r->udata = udata;
    s_req_t **pp = &c->reqs;
    while (*pp) {
        pp = &(*pp)->next;
    }
    *pp = r;
    c->nreqs++;
    ch->st.requests++;
    s_up(ch, c->id, "req", r->cr, msgpack, len, NULL);
    s_arm(ch, r->deadline);
    return 0;
}

int
tw_call_close(tw_call_t *call)
{
    if (!call->chans || call->station ||
        (call->h && (call->h->flags & TW_HANDLER_BLOCKING))) {
        return -EINVAL;
    }
    struct tw_chan *c = call->chan;
    if (!c) {
        return -ENOTCONN;
    }
    if (c == &s_closed || c == &s_ended) {
        return -ESHUTDOWN;
    }
    s_up(c->table, c->id, "close", 0, NULL, 0, NULL);
    s_req_t *list = s_take_all(c);
    s_free(c, 1);
    s_fire_all(list, TW_ECANCELED);
    return 0;
}
