/*  worker/worker.c - the DEALER conversation with the broker (see
 *  worker.h for the states).
 *
 *  Pending outcomes live in one encoder laid out as the DONE body it will
 *  become: a two-entry map, the "items" key, then an array32 header whose
 *  count is patched at flush time, followed by the items themselves. So an
 *  outcome costs a few msgpack writes into a buffer and nothing else; a
 *  flush patches five bytes, appends "credit", and hands the buffer to
 *  ZeroMQ without a copy. Station reports (STATION) and channel data (S2N)
 *  are batched the same way, and a flush sends S2N, then STATION (with the
 *  credit of stations that left), then DONE, so a station's last messages
 *  reach the broker before its end.
 *
 *  Stations run in the taskloop engine (taskloop.h). This file is its
 *  edge: a uv_idle runs the engine while stations are ready, a uv_timer
 *  wakes it for the next deadline, a uv_async for messages emitted on pool
 *  threads, and a uv_timer sends the coalesced checkpoint reports at most
 *  every S_CKPT_MS. A station holds one slot of the slot table from
 *  ASSIGN until the engine says it left.
 *
 *  Shutdown is a chain of asynchronous closes; s_shutdown_step() is called
 *  after each link and does the next one: close the socket watcher, wait
 *  (up to a grace period) for running tasks, close the slot table, close
 *  the timers, then terminate the ZeroMQ context and report.
 */
#include "worker/worker.h"
#include "common/alloc.h"
#include "common/eplist.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "common/zwatch.h"
#include "proto/proto.h"
#include "worker/chan.h"
#include "worker/leases.h"
#include "worker/slots.h"
#include "worker/taskloop.h"
#include "taskwheel/version.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>


#define S_HB_DEFAULT 1000           /* ms, until WELCOME says otherwise */
#define S_BACKOFF_MIN 100           /* ms */
#define S_BACKOFF_MAX 5000          /* ms */
#define S_MAX_MSG (64LL << 20) /* bytes per frame from the broker */
#define S_FLUSH_BYTES (1u << 20)    /* send a DONE early past this size */
#define S_MAX_BODY (16u << 20)      /* the broker's default frame limit */
#define S_MAX_RESULT (S_MAX_BODY - 4096)
#define S_STOP_GRACE 1000           /* ms for cancelled tasks, by default */
#define S_LINGER_DRAIN 1000         /* ms to deliver the final DONE, BYE */
#define S_LINGER_ABORT 100
#define S_CKPT_MS 100               /* checkpoint reports, at most every */
#define S_S2N_PENDING_MAX (64u << 20) /* unsent s2n bytes before dropping */

/* A batch body {"items": [...], "credit"?: n} under construction: the map
 * header says two entries and becomes one if no credit is added; the
 * array32 count is patched when the batch is sent. */
typedef struct {
    tw_enc_t enc;
    size_t count_off;
    uint32_t n;
} s_batch_t;

enum { S_DOWN, S_HELLO, S_READY };

struct tw_worker {
    uv_loop_t *loop;
    const tw_handlers_t *reg;
    tw_slots_t *slots;
    unsigned nslots;
    char *broker, *name, *host, *ident; /* broker: eps's current */
    tw_eplist_t *eps; /* the broker, or the two brokers of a pair */
    const tw_curve_client_t *curve; /* NULL: plaintext */
    char **tag_k, **tag_v;
    size_t ntags;
    uint64_t drain_timeout;
    uint64_t stop_grace; /* ms for cancelled tasks to wind up */
    tw_worker_exit_cb exit_cb;

    void *ctx, *sock;
    tw_zwatch_t zw;
    int zw_open, zw_closing;
    int state;
    uint64_t wid, hb;
    uint64_t boot; /* the broker run that welcomed us (PROTOCOL.md 5.19) */
    uint64_t last_recv, last_send;
    uint64_t backoff_ms;
    unsigned failures; /* connection attempts since the last WELCOME */
    int ever_welcomed;
    uint32_t rng;

    uv_timer_t tick;    /* heartbeats and liveness */
    uv_timer_t backoff; /* reconnect delay */
    uv_timer_t drain;   /* drain timeout, then the stop grace period */
    uv_check_t flush;   /* runs while outcomes wait to be sent */
    int flush_on;

    s_batch_t done; /* the pending DONE body */
    s_batch_t sta;  /* the pending STATION body */
    s_batch_t s2n;  /* the pending S2N body */
    uint64_t credit; /* slots freed since the last report */
    zmq_msg_t stalled[2];
    int has_stalled;

    int draining, stopping, grace_over, stuck, exit_code;
    int slots_closing, handles_closing, handles_open;
    uint64_t tasks_run;

    tw_taskloop_t *tl;
    uv_idle_t tl_idle;   /* runs the engine while stations are ready */
    uv_timer_t tl_timer; /* the engine's next deadline */
    uv_async_t tl_async; /* emits from pool threads */
    uv_timer_t ckpt;     /* coalesced checkpoint reports */
    int tl_idle_on;
    uint64_t ck_last;
    uint64_t stale, s2n_dropped, refused;
    tw_chans_t *chans;   /* task channels (chan.h) */
    tw_leases_t leases; /* running tasks: their ep and attempt */
};

/* Small helpers ---------------------------------------------------------- */

static uint32_t
s_rand(tw_worker_t *w)
{
    /* xorshift32: jitter only needs to differ between workers. */
    uint32_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return w->rng = x;
}

static int
s_parse_tags(tw_worker_t *w, const char *s, char *err, size_t errlen)
{
    while (s && *s) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        if (len > 0) {
            size_t klen = eq ? (size_t)(eq - s) : 0;
            size_t vlen = eq ? len - klen - 1 : 0;
            if (!eq || klen == 0 || klen > TW_PROTO_MAX_NAME ||
                vlen > TW_PROTO_MAX_NAME) {
                snprintf(err, errlen,
                         "--tags: '%.*s' is not key=value (1-%d byte key, "
                         "value up to %d bytes)",
                         (int)len, s, TW_PROTO_MAX_NAME, TW_PROTO_MAX_NAME);
                return TW_EINVAL;
            }
            for (size_t i = 0; i < w->ntags; i++) {
                if (strlen(w->tag_k[i]) == klen &&
                    !memcmp(w->tag_k[i], s, klen)) {
                    snprintf(err, errlen, "--tags: key '%.*s' given twice",
                             (int)klen, s);
                    return TW_EINVAL;
                }
            }
            if (w->ntags == TW_PROTO_MAX_TAGS) {
                snprintf(err, errlen, "--tags: more than %d tags",
                         TW_PROTO_MAX_TAGS);
                return TW_EINVAL;
            }
            w->tag_k = tw_realloc(w->tag_k, (w->ntags + 1) * sizeof(char *));
            w->tag_v = tw_realloc(w->tag_v, (w->ntags + 1) * sizeof(char *));
            w->tag_k[w->ntags] = tw_strndup(s, klen);
            w->tag_v[w->ntags] = tw_strndup(eq + 1, vlen);
            w->ntags++;
        }
        s = end ? end + 1 : NULL;
    }
    return 0;
}

/* Sending ----------------------------------------------------------------- */

/* Send two frames; on success they are consumed. */
static int
s_send(tw_worker_t *w, zmq_msg_t f[2])
{
    int rc = w->sock ? tw_zwatch_send(&w->zw, f, 2) : TW_EAGAIN;
    if (rc == 0) {
        w->last_send = uv_now(w->loop);
    }
    return rc;
}

/* Encode-and-send for the small control messages; a refused one is
 * dropped (heartbeats and READY are repeated or recomputed anyway). */
static void
s_send_enc(tw_worker_t *w, tw_enc_t *e, tw_cmd_t cmd)
{
    zmq_msg_t f[2];
    tw_enc_frames(e, cmd, f);
    int rc = s_send(w, f);
    if (rc != 0) {
        zmq_msg_close(&f[0]);
        zmq_msg_close(&f[1]);
        tw_debug("worker.send", "%s not sent: %s", tw_proto_cmd_name(cmd),
                 tw_strerror(rc));
    }
    tw_enc_free(e);
}

static void
s_send_empty(tw_worker_t *w, tw_cmd_t cmd)
{
    tw_enc_t e;
    tw_enc_init(&e);
    s_send_enc(w, &e, cmd);
}

static void
s_send_hello(tw_worker_t *w)
{
    tw_enc_t e;
    tw_enc_init(&e);
    size_t running = tw_leases_count(&w->leases);
    /* With a broker pair (PROTOCOL.md 17.8): the highest fencing epoch
     * seen, and after losing a broker the vote. */
    uint64_t ha = tw_eplist_ha(w->eps), lost = 0;
    int vote = tw_eplist_count(w->eps) > 1 && tw_eplist_vote(w->eps, &lost);
    tw_enc_map(&e, 7 + (running > 0) + (ha > 0) + vote);
    if (running) {
        /* Still running from before: the broker adopts them. */
        tw_leases_encode(&w->leases, &e);
    }
    if (ha) {
        tw_enc_key(&e, TW_F_HA);
        tw_enc_uint(&e, ha);
    }
    if (vote) {
        tw_enc_key(&e, TW_F_LOST);
        tw_enc_uint(&e, lost);
    }
    tw_enc_key(&e, TW_F_NAME);
    tw_enc_cstr(&e, w->name);
    tw_enc_key(&e, TW_F_HOST);
    tw_enc_cstr(&e, w->host);
    tw_enc_key(&e, TW_F_PID);
    tw_enc_uint(&e, (uint64_t)getpid());
    tw_enc_key(&e, TW_F_SLOTS);
    tw_enc_uint(&e, w->nslots);
    tw_enc_key(&e, TW_F_HANDLERS);
    tw_enc_array(&e, w->reg->n);
    for (size_t i = 0; i < w->reg->n; i++) {
        tw_enc_str(&e, w->reg->v[i].name, w->reg->v[i].nlen);
    }
    tw_enc_key(&e, TW_F_TAGS);
    tw_enc_map(&e, w->ntags);
    for (size_t i = 0; i < w->ntags; i++) {
        tw_enc_cstr(&e, w->tag_k[i]);
        tw_enc_cstr(&e, w->tag_v[i]);
    }
    tw_enc_key(&e, TW_F_VER);
    tw_enc_cstr(&e, tw_version());
    s_send_enc(w, &e, TW_CMD_HELLO);
}

static void
s_send_ready(tw_worker_t *w, uint64_t credit)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_CREDIT);
    tw_enc_uint(&e, credit);
    s_send_enc(w, &e, TW_CMD_READY);
}

/* Slots: w->nslots is the count the broker knows (--slots, or the last
 * WORKER resize). The table may hold more after a shrink; a slot that
 * frees gives credit back only while fewer than nslots are occupied, so
 * a shrunk worker winds down to its new size without killing anything. */
static int
s_below_limit(const tw_worker_t *w)
{
    return !w->slots || tw_slots_busy(w->slots) < w->nslots;
}

static unsigned
s_free_under_limit(const tw_worker_t *w)
{
    unsigned busy = tw_slots_busy(w->slots);
    return busy < w->nslots ? w->nslots - busy : 0;
}

/* Pending outcomes -------------------------------------------------------- */

/* Start an empty batch body: {"items": [ (count patched later) */
static void
s_batch_reset(s_batch_t *b)
{
    static const char map2 = (char)0x82;
    static const char arr32[5] = {(char)0xdd, 0, 0, 0, 0};
    b->enc.sb.size = 0;
    msgpack_sbuffer_write(&b->enc.sb, &map2, 1);
    tw_enc_key(&b->enc, TW_F_ITEMS);
    b->count_off = b->enc.sb.size;
    msgpack_sbuffer_write(&b->enc.sb, arr32, sizeof arr32);
    b->n = 0;
}

static void
s_batch_init(s_batch_t *b)
{
    tw_enc_init(&b->enc);
    s_batch_reset(b);
}

/* Close the batch (count, credit if any) into frames; the batch is left
 * empty. */
static void
s_batch_frames(s_batch_t *b, tw_cmd_t cmd, uint64_t credit, zmq_msg_t f[2])
{
    char *p = b->enc.sb.data + b->count_off + 1;
    p[0] = (char)(b->n >> 24);
    p[1] = (char)(b->n >> 16);
    p[2] = (char)(b->n >> 8);
    p[3] = (char)b->n;
    if (credit) {
        tw_enc_key(&b->enc, TW_F_CREDIT);
        tw_enc_uint(&b->enc, credit);
    } else {
        b->enc.sb.data[0] = (char)0x81;
    }
    tw_enc_frames(&b->enc, cmd, f);
    s_batch_reset(b);
}

static void s_flush_cb(uv_check_t *h);

static void
s_flush_arm(tw_worker_t *w)
{
    if (!w->flush_on && !w->handles_closing) {
        w->flush_on = 1;
        uv_check_start(&w->flush, s_flush_cb);
    }
}

static void
s_flush_off(tw_worker_t *w)
{
    if (w->flush_on) {
        w->flush_on = 0;
        uv_check_stop(&w->flush);
    }
}

/* Forget everything not yet sent: the broker is about to requeue it. */
static void
s_discard(tw_worker_t *w)
{
    if (w->has_stalled) {
        zmq_msg_close(&w->stalled[0]);
        zmq_msg_close(&w->stalled[1]);
        w->has_stalled = 0;
    }
    s_batch_reset(&w->done);
    s_batch_reset(&w->sta);
    s_batch_reset(&w->s2n);
    if (w->chans) {
        tw_chans_discard(w->chans);
    }
    w->credit = 0;
}

/* The connection went or came back: forget station traffic and credit
 * (recounted after WELCOME) but keep the task outcomes, which the broker
 * still wants. */
static void
s_discard_links(tw_worker_t *w)
{
    if (w->has_stalled) {
        zmq_msg_close(&w->stalled[0]);
        zmq_msg_close(&w->stalled[1]);
        w->has_stalled = 0;
    }
    s_batch_reset(&w->sta);
    s_batch_reset(&w->s2n);
    w->credit = 0;
}

/* Send a batch; a message ZeroMQ refuses for now is kept as the stalled
 * one. Returns 0, or TW_EAGAIN when it stalled. */
static int
s_send_batch(tw_worker_t *w, s_batch_t *b, tw_cmd_t cmd, uint64_t credit)
{
    zmq_msg_t f[2];
    s_batch_frames(b, cmd, credit, f);
    int rc = s_send(w, f);
    if (rc == TW_EAGAIN) {
        w->stalled[0] = f[0];
        w->stalled[1] = f[1];
        w->has_stalled = 1;
        return rc;
    }
    if (rc != 0) {
        zmq_msg_close(&f[0]);
        zmq_msg_close(&f[1]);
        tw_warn("worker.send", "%s not sent: %s", tw_proto_cmd_name(cmd),
                tw_strerror(rc));
    }
    return 0;
}

/* Send what is pending: a DONE with the items and the credit, or a READY
 * when there is only credit. Keeps a message ZeroMQ refused and sends it
 * first next time, so order is kept. */
static void
s_flush(tw_worker_t *w)
{
    if (w->has_stalled) {
        if (s_send(w, w->stalled) != 0) {
            return;
        }
        w->has_stalled = 0;
    }
    if (w->state != S_READY) {
        return;
    }
    if (w->s2n.n && s_send_batch(w, &w->s2n, TW_CMD_S2N, 0) != 0) {
        return;
    }
    if (w->sta.n) {
        uint64_t credit = w->credit;
        w->credit = 0;
        if (s_send_batch(w, &w->sta, TW_CMD_STATION, credit) != 0) {
            return;
        }
    }
    if (w->chans && tw_chans_pending(w->chans)) {
        /* Channel items go before the DONE that ends their task. */
        zmq_msg_t f[2];
        tw_chans_frames(w->chans, f);
        int rc = s_send(w, f);
        if (rc == TW_EAGAIN) {
            w->stalled[0] = f[0];
            w->stalled[1] = f[1];
            w->has_stalled = 1;
            return;
        }
        if (rc != 0) {
            zmq_msg_close(&f[0]);
            zmq_msg_close(&f[1]);
            tw_warn("worker.send", "CHAN not sent: %s", tw_strerror(rc));
        }
    }
    if (w->done.n == 0 && w->credit == 0) {
        return;
    }
    if (w->done.n == 0) {
        s_send_ready(w, w->credit);
        w->credit = 0;
        return;
    }
    uint64_t credit = w->credit;
    w->credit = 0;
    s_send_batch(w, &w->done, TW_CMD_DONE, credit);
}

static void
s_append(tw_worker_t *w, const tw_outcome_t *o)
{
    int st = o->st;
    const char *err = o->err;
    char big[96];
    if (st == TW_ST_OK && o->rlen > S_MAX_RESULT) {
        snprintf(big, sizeof big, "result too big: %zu bytes (limit %u)",
                 o->rlen, (unsigned)S_MAX_RESULT);
        st = TW_ST_ERROR;
        err = big;
    }
    size_t elen = st == TW_ST_ERROR ? strlen(err ? err : "") : 0;
    size_t est = (st == TW_ST_OK ? o->rlen : elen) + 32;
    if (w->done.n && tw_enc_size(&w->done.enc) + est > S_FLUSH_BYTES) {
        s_flush(w);
    }
    tw_enc_t *e = &w->done.enc;
    int extra = st == TW_ST_OK || st == TW_ST_ERROR;
    uint64_t ep = tw_leases_take(&w->leases, o->id);
    tw_enc_map(e, 2 + extra + (ep != 0));
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, o->id);
    if (ep) {
        /* Every outcome carries it: one write. */
        tw_enc_ikey_uint(e, TW_I_EP, ep);
    }
    tw_enc_ikey(e, TW_I_ST);
    tw_enc_uint(e, (uint64_t)st);
    if (st == TW_ST_OK) {
        static const char nil = (char)0xc0;
        tw_enc_ikey(e, TW_I_R);
        if (o->r && o->rlen) {
            tw_enc_bin(e, o->r, o->rlen);
        } else {
            tw_enc_bin(e, &nil, 1);
        }
    } else if (st == TW_ST_ERROR) {
        tw_enc_ikey(e, TW_I_ERR);
        tw_enc_str(e, err ? err : "", elen);
    }
    w->done.n++;
}

/* The slot table's callback: every outcome and every freed slot. */
static void
s_on_outcome(void *udata, const tw_outcome_t *o)
{
    tw_worker_t *w = udata;
    if (w->draining || w->stopping) {
        s_flush_arm(w); /* the check notices when the last task ends */
    }
    if (w->stopping) {
        return;
    }
    if (w->state != S_READY) {
        /* Cut off from the broker: keep the outcome for after WELCOME
         * (its ep proves it); READY then counts free slots anew. */
        if (o->id) {
            s_append(w, o);
        }
        return;
    }
    if (o->credit && !w->draining && s_below_limit(w)) {
        w->credit++;
    }
    if (o->id) {
        s_append(w, o);
    }
    s_flush_arm(w);
}

/* Stations: reports and the engine's edge --------------------------------- */

/* Append a STATION item {sid, ep, ev, it, ck?, err?}. */
static void
s_station_item(tw_worker_t *w, const char *sid, size_t sidlen, uint64_t ep,
               const char *ev, uint64_t it, const void *ck, size_t cklen,
               const char *err)
{
    if (w->sta.n && tw_enc_size(&w->sta.enc) + cklen + sidlen + 64 >
                        S_FLUSH_BYTES) {
        s_flush(w);
    }
    tw_enc_t *e = &w->sta.enc;
    tw_enc_map(e, 4 + (ck != NULL) + (err != NULL));
    tw_enc_ikey(e, TW_I_SID);
    tw_enc_str(e, sid, sidlen);
    tw_enc_ikey(e, TW_I_EP);
    tw_enc_uint(e, ep);
    tw_enc_ikey(e, TW_I_EV);
    tw_enc_cstr(e, ev);
    tw_enc_ikey(e, TW_I_IT);
    tw_enc_uint(e, it);
    if (ck) {
        tw_enc_ikey(e, TW_I_CK);
        tw_enc_bin(e, ck, cklen);
    }
    if (err) {
        tw_enc_ikey(e, TW_I_ERR);
        tw_enc_cstr(e, err);
    }
    w->sta.n++;
    s_flush_arm(w);
}

/* A report about a live station: its sid, ep, it and checkpoint now. */
static void
s_station_report(tw_worker_t *w, tw_station_t *st, const char *ev,
                 const char *err)
{
    size_t sidlen, cklen;
    const char *sid = tw_station_sid(st, &sidlen);
    const void *ck = tw_station_ck(st, &cklen);
    s_station_item(w, sid, sidlen, tw_station_ep(st), ev,
                   tw_station_done_count(st), ck, cklen, err);
}

static void
s_tl_event(void *udata, tw_station_t *st, int ev, const char *err)
{
    tw_worker_t *w = udata;
    if (w->state == S_READY) {
        s_station_report(w, st, tw_sev_name(ev), err);
    }
}

static void
s_ckpt_item(void *arg, tw_station_t *st)
{
    s_station_report(arg, st, tw_sev_name(TW_SEV_ITERATION), NULL);
}

static void
s_ckpt_drop(void *arg, tw_station_t *st)
{
    (void)arg;
    (void)st;
}

static void
s_ckpt_cb(uv_timer_t *t)
{
    tw_worker_t *w = t->data;
    w->ck_last = uv_now(w->loop);
    if (!w->tl) {
        return;
    }
    tw_taskloop_take_dirty(w->tl, w->state == S_READY ? s_ckpt_item
                                                      : s_ckpt_drop,
                           w);
}

/* A checkpoint moved: report it when S_CKPT_MS have passed since the
 * last checkpoint reports. */
static void
s_tl_dirty(void *udata)
{
    tw_worker_t *w = udata;
    if (w->handles_closing || uv_is_active((uv_handle_t *)&w->ckpt)) {
        return;
    }
    uint64_t now = uv_now(w->loop);
    uint64_t due = w->ck_last + S_CKPT_MS;
    uv_timer_start(&w->ckpt, s_ckpt_cb, due > now ? due - now : 0, 0);
}

static void
s_tl_s2n(void *udata, tw_station_t *st, uint64_t seq, const void *d,
         size_t len)
{
    tw_worker_t *w = udata;
    if (w->state != S_READY) {
        return;
    }
    if (tw_enc_size(&w->s2n.enc) + len > S_S2N_PENDING_MAX) {
        if (w->s2n_dropped++ % 1000 == 0) {
            tw_warn("worker.s2n", "broker not keeping up: s2n message "
                    "dropped (%llu so far)",
                    (unsigned long long)w->s2n_dropped);
        }
        return;
    }
    size_t sidlen;
    const char *sid = tw_station_sid(st, &sidlen);
    tw_enc_t *e = &w->s2n.enc;
    tw_enc_map(e, 4);
    tw_enc_ikey(e, TW_I_SID);
    tw_enc_str(e, sid, sidlen);
    tw_enc_ikey(e, TW_I_EP);
    tw_enc_uint(e, tw_station_ep(st));
    tw_enc_ikey(e, TW_I_SEQ);
    tw_enc_uint(e, seq);
    tw_enc_ikey(e, TW_I_D);
    tw_enc_bin(e, d, len);
    w->s2n.n++;
    if (tw_enc_size(e) > S_FLUSH_BYTES) {
        s_flush(w);
    }
    s_flush_arm(w);
}

/* The station's slot is free again: like a task's, its credit goes back
 * to the broker unless the worker is on its way out. */
static void
s_tl_left(void *udata, tw_station_t *st)
{
    tw_worker_t *w = udata;
    if (w->slots) {
        tw_slots_unhold(w->slots, tw_station_slot(st));
    }
    if (w->draining || w->stopping) {
        s_flush_arm(w); /* the check notices when the last one leaves */
    }
    if (w->state != S_READY || w->stopping || w->draining ||
        !s_below_limit(w)) {
        return;
    }
    w->credit++;
    s_flush_arm(w);
}

/* Task channel items wait: send them at the end of the loop turn. */
static void
s_chans_wake(void *udata)
{
    s_flush_arm(udata);
}

static void s_tl_idle_cb(uv_idle_t *h);
static void s_tl_timer_cb(uv_timer_t *t);

static void
s_tl_wake(void *udata)
{
    tw_worker_t *w = udata;
    if (!w->tl_idle_on && !w->handles_closing) {
        w->tl_idle_on = 1;
        uv_idle_start(&w->tl_idle, s_tl_idle_cb);
    }
}

static void
s_tl_async(void *udata)
{
    tw_worker_t *w = udata;
    uv_async_send(&w->tl_async);
}

static void
s_tl_run(tw_worker_t *w)
{
    if (!w->tl) {
        return; /* shutting down */
    }
    int64_t d = tw_taskloop_run(w->tl, uv_now(w->loop));
    if (d == 0) {
        s_tl_wake(w);
        return;
    }
    if (w->tl_idle_on) {
        w->tl_idle_on = 0;
        uv_idle_stop(&w->tl_idle);
    }
    if (d > 0 && !w->handles_closing) {
        uv_timer_start(&w->tl_timer, s_tl_timer_cb, (uint64_t)d, 0);
    } else if (d < 0) {
        uv_timer_stop(&w->tl_timer);
    }
}

static void
s_tl_idle_cb(uv_idle_t *h)
{
    s_tl_run(h->data);
}

static void
s_tl_timer_cb(uv_timer_t *t)
{
    s_tl_run(t->data);
}

static void
s_tl_async_cb(uv_async_t *a)
{
    s_tl_wake(a->data);
}

/* Connection ------------------------------------------------------------- */

static void s_on_msg(tw_zwatch_t *zw, tw_zframes_t *msg);
static void s_on_drained(tw_zwatch_t *zw);
static void s_tick_cb(uv_timer_t *t);
static void s_stop(tw_worker_t *w, int code, uint64_t grace_ms);
static void s_shutdown_step(tw_worker_t *w);

static uint64_t
s_tick_period(const tw_worker_t *w)
{
    uint64_t p = w->hb / 4;
    return p < 10 ? 10 : p > 1000 ? 1000 : p;
}

/* A new DEALER, connected. Returns 0 and sets *out, or an error. */
static int
s_open(tw_worker_t *w, void **out, char *err, size_t errlen)
{
    void *sock = zmq_socket(w->ctx, ZMQ_DEALER);
    if (!sock) {
        int e = errno;
        snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(e));
        return -e;
    }
    int linger = 0, ivl_max = S_BACKOFF_MAX;
    zmq_setsockopt(sock, ZMQ_ROUTING_ID, w->ident, strlen(w->ident));
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    /* A broker's batches stay under 4 MiB plus one payload; anything far
     * larger is not from a broker, and libzmq drops the connection. */
    int64_t maxmsg = S_MAX_MSG;
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (w->curve && tw_curve_client_apply(sock, w->curve) != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot set the CURVE keys: %s",
                 zmq_strerror(e));
        zmq_close(sock);
        return -e;
    }
    if (zmq_connect(sock, w->broker) != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot connect to '%s': %s", w->broker,
                 zmq_strerror(e));
        zmq_close(sock);
        return -e;
    }
    *out = sock;
    return 0;
}

/* Put `sock` in the loop and say HELLO. Returns 0, or an error after
 * closing `sock`. */
static int
s_attach(tw_worker_t *w, void *sock, char *err, size_t errlen)
{
    int rc = tw_zwatch_init(w->loop, &w->zw, sock);
    if (rc != 0) {
        snprintf(err, errlen, "cannot watch the socket: %s",
                 tw_strerror(rc));
        zmq_close(sock);
        return rc;
    }
    w->sock = sock;
    w->zw.data = w;
    w->zw_open = 1;
    tw_zwatch_start(&w->zw, s_on_msg, s_on_drained);
    w->state = S_HELLO;
    w->last_recv = uv_now(w->loop);
    tw_debug("worker.connect", "connecting to %s as %s", w->broker,
             w->ident);
    s_send_hello(w);
    uint64_t p = s_tick_period(w);
    uv_timer_start(&w->tick, s_tick_cb, p, p);
    return 0;
}

static void
s_backoff_cb(uv_timer_t *t)
{
    tw_worker_t *w = t->data;
    char err[256];
    void *sock;
    if (s_open(w, &sock, err, sizeof err) != 0 ||
        s_attach(w, sock, err, sizeof err) != 0) {
        tw_err("worker.connect", "%s", err);
        uv_timer_start(&w->backoff, s_backoff_cb, S_BACKOFF_MAX, 0);
    }
}

static void
s_zw_closed(tw_zwatch_t *zw)
{
    tw_worker_t *w = zw->data;
    zmq_close(w->sock);
    w->sock = NULL;
    w->zw_closing = 0;
    if (w->stopping) {
        s_shutdown_step(w);
        return;
    }
    /* Reconnect after the backoff, +-20% so workers spread out. */
    uint64_t d = w->backoff_ms;
    d = d * (80 + s_rand(w) % 41) / 100;
    w->backoff_ms = w->backoff_ms * 2 > S_BACKOFF_MAX ? S_BACKOFF_MAX
                                                      : w->backoff_ms * 2;
    tw_debug("worker.reconnect", "reconnecting in %llu ms",
             (unsigned long long)d);
    uv_timer_start(&w->backoff, s_backoff_cb, d, 0);
}

static void
s_close_socket(tw_worker_t *w)
{
    if (w->zw_open) {
        w->zw_open = 0;
        w->zw_closing = 1;
        tw_zwatch_close(&w->zw, s_zw_closed);
    }
}

/* Use the list's current endpoint from the next socket on. */
static void
s_follow_list(tw_worker_t *w)
{
    const char *ep = tw_eplist_current(w->eps);
    if (strcmp(ep, w->broker) != 0) {
        tw_free(w->broker);
        w->broker = tw_strdup(ep);
    }
}

static void s_drop_link(tw_worker_t *w);

/* The broker is gone (silence, or it said BYE): drop the socket and come
 * back with a new one and a new HELLO, to the other broker of a pair
 * (which the HELLO tells what was lost). */
static void
s_lost(tw_worker_t *w, const char *why)
{
    if (w->draining) {
        tw_notice("worker.lost", "%s while draining; stopping", why);
        s_stop(w, 0, w->stop_grace);
        return;
    }
    if (w->failures == 0) {
        tw_warn("worker.lost", "%s (%s); reconnecting", why, w->broker);
    } else {
        tw_debug("worker.lost", "%s (%s); attempt %u", why, w->broker,
                 w->failures + 1);
    }
    w->failures++;
    tw_eplist_lost(w->eps);
    s_follow_list(w);
    s_drop_link(w);
}

/* Close the link; the next socket comes after the backoff. */
static void
s_drop_link(tw_worker_t *w)
{
    /* Tasks keep running: the next HELLO re-announces them (leases.h). */
    tw_taskloop_drop_all(w->tl);
    s_discard_links(w);
    w->state = S_DOWN;
    uv_timer_stop(&w->tick);
    s_close_socket(w);
}

/* A broker of a pair that is not the active one refused us (ERROR
 * ENOTACTIVE): go where it points, soon, or ask it again after the
 * backoff. */
static void
s_not_active(tw_worker_t *w, const tw_msg_t *m)
{
    if (w->draining) {
        tw_notice("worker.lost", "%s is not active while draining; "
                  "stopping", w->broker);
        s_stop(w, 0, w->stop_grace);
        return;
    }
    size_t alen = 0, mlen = 0;
    const char *active = tw_msg_str(m, TW_F_ACTIVE, &alen);
    const char *msg = tw_msg_str(m, TW_F_MSG, &mlen);
    const char *was = tw_eplist_current(w->eps);
    int moved = tw_eplist_not_active(w->eps, active, alen,
                                     tw_msg_uint(m, TW_F_LIVE, 0) != 0,
                                     tw_msg_uint(m, TW_F_HA, 0));
    s_follow_list(w);
    tw_notice("worker.notactive", "%s is not the active broker (%.*s); %s "
              "%s", was, (int)mlen, msg ? msg : "",
              moved ? "trying" : "asking again later:", w->broker);
    if (moved) {
        w->backoff_ms = S_BACKOFF_MIN;
    }
    s_drop_link(w);
}

/* A message carried fencing epoch `ha`: 0 if it may be acted on, else
 * (a deposed active: below an epoch already seen) TW_EPERM after leaving
 * for the other broker. */
static int
s_fence(tw_worker_t *w, uint64_t ha)
{
    const char *was = tw_eplist_current(w->eps);
    if (tw_eplist_served(w->eps, ha) == 0) {
        return 0;
    }
    s_follow_list(w);
    tw_warn("worker.fenced", "%s answered under epoch %llu, below %llu: "
            "another broker took over from it; ignoring it, trying %s",
            was, (unsigned long long)ha,
            (unsigned long long)tw_eplist_ha(w->eps), w->broker);
    w->backoff_ms = S_BACKOFF_MIN;
    s_drop_link(w);
    return TW_EPERM;
}

/* The broker forgot this worker: register again on the same socket. */
static void
s_rehello(tw_worker_t *w)
{
    if (w->draining) {
        s_stop(w, 0, w->stop_grace);
        return;
    }
    tw_notice("worker.rehello", "broker does not know this worker; "
                                "sending HELLO again");
    tw_taskloop_drop_all(w->tl);
    s_discard_links(w);
    w->state = S_HELLO;
    s_send_hello(w);
}

static void
s_tick_cb(uv_timer_t *t)
{
    tw_worker_t *w = t->data;
    uint64_t now = uv_now(w->loop);
    if (now - w->last_recv >= 3 * w->hb) {
        s_lost(w, w->state == S_READY ? "broker silent for 3 heartbeats"
                                      : "no answer from broker");
        return;
    }
    if (w->has_stalled) {
        s_flush(w);
    }
    if (w->state == S_READY && now - w->last_send >= w->hb) {
        s_send_empty(w, TW_CMD_HEARTBEAT);
    }
}

/* Receiving --------------------------------------------------------------- */

static void
s_on_welcome(tw_worker_t *w, const tw_msg_t *m)
{
    w->wid = tw_msg_uint(m, TW_F_WID, 0);
    w->hb = tw_msg_uint(m, TW_F_HB, S_HB_DEFAULT);
    w->boot = tw_msg_uint(m, TW_F_BOOT, 0);
    if (w->hb < 10) {
        w->hb = 10;
    }
    if (w->failures || !w->ever_welcomed) {
        tw_notice("worker.connected",
                  "connected to %s as %s (wid %llu, heartbeat %llu ms)",
                  w->broker, w->ident, (unsigned long long)w->wid,
                  (unsigned long long)w->hb);
    }
    w->ever_welcomed = 1;
    w->failures = 0;
    w->backoff_ms = S_BACKOFF_MIN;
    w->state = S_READY;
    s_discard_links(w);
    uint64_t p = s_tick_period(w);
    uv_timer_start(&w->tick, s_tick_cb, p, p);
    unsigned free = s_free_under_limit(w);
    if (free) {
        s_send_ready(w, free);
    }
    if (w->done.n) {
        s_flush_arm(w); /* outcomes of tasks that ended while cut off */
    }
}

static void
s_on_tasks(tw_worker_t *w, const tw_msg_t *m)
{
    if (w->state != S_READY || w->draining) {
        /* Not ours to run: the broker requeues these after HELLO or BYE. */
        tw_debug("worker.tasks", "ignoring %zu task(s) (%s)", m->nitems,
                 w->draining ? "draining" : "not registered");
        return;
    }
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        uint64_t id = tw_item_uint(it, TW_I_ID, 0);
        size_t hlen, alen;
        const char *h = tw_item_str(it, TW_I_H, &hlen);
        const void *a = tw_item_bin(it, TW_I_A, &alen);
        if (id == 0) {
            tw_warn("worker.tasks", "task with id 0 ignored");
            w->credit++;
            s_flush_arm(w);
            continue;
        }
        w->tasks_run++;
        /* Before the start: an outcome may be reported at once. A task
         * already running here now answers for this dispatch. */
        tw_leases_put(&w->leases, id, tw_item_uint(it, TW_I_EP, 0),
                      tw_item_uint(it, TW_I_AT, 0));
        tw_slots_start(w->slots, id, h, hlen, a, alen,
                       tw_item_uint(it, TW_I_TO, 0),
                       tw_item_uint(it, TW_I_AT, 0));
    }
}

static void
s_on_cancel(tw_worker_t *w, const tw_msg_t *m)
{
    const msgpack_object *ids = m->f[TW_F_IDS];
    for (uint32_t i = 0; i < ids->via.array.size; i++) {
        uint64_t id = ids->via.array.ptr[i].via.u64;
        if (tw_slots_cancel(w->slots, id, TW_ST_CANCELLED) != 0) {
            tw_debug("worker.cancel", "task %llu is not running here",
                     (unsigned long long)id);
        }
    }
}

/* Refuse an ASSIGN item: report it at once as `ev` ("failed", or
 * "refused" for a handler this worker does not offer, PROTOCOL.md 11.2),
 * keeping its payload as the checkpoint; `credit` 1 when no slot was
 * taken for it. */
static void
s_refuse(tw_worker_t *w, const tw_item_t *it, const char *ev, int credit,
         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
s_refuse(tw_worker_t *w, const tw_item_t *it, const char *ev, int credit,
         const char *fmt, ...)
{
    char err[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, sizeof err, fmt, ap);
    va_end(ap);
    size_t sidlen, cklen;
    const char *sid = tw_item_str(it, TW_I_SID, &sidlen);
    const void *ck = tw_item_bin(it, TW_I_CK, &cklen);
    if (!ck) {
        ck = tw_item_bin(it, TW_I_A, &cklen);
    }
    tw_warn("worker.assign", "station '%.*s' refused: %s", (int)sidlen, sid,
            err);
    w->refused++;
    s_station_item(w, sid, sidlen, tw_item_uint(it, TW_I_EP, 0), ev,
                   tw_item_uint(it, TW_I_IT, 0), ck, cklen, err);
    w->credit += (uint64_t)credit;
}

/* The held station an item names, or NULL when there is none or the
 * item's epoch is not the station's (stale: ignored and counted). */
static tw_station_t *
s_item_station(tw_worker_t *w, const tw_item_t *it, const char *what)
{
    size_t sidlen;
    const char *sid = tw_item_str(it, TW_I_SID, &sidlen);
    uint64_t ep = tw_item_uint(it, TW_I_EP, 0);
    tw_station_t *st = tw_taskloop_find(w->tl, sid, sidlen);
    if (!st || tw_station_ep(st) != ep) {
        w->stale++;
        tw_debug("worker.station", "%s for station '%.*s' epoch %llu "
                 "ignored: %s", what, (int)sidlen, sid,
                 (unsigned long long)ep,
                 st ? "another epoch is held here" : "not held here");
        return NULL;
    }
    return st;
}

static void
s_on_assign(tw_worker_t *w, const tw_msg_t *m)
{
    if (w->state != S_READY || w->draining) {
        tw_debug("worker.assign", "ignoring %zu station(s) (%s)", m->nitems,
                 w->draining ? "draining" : "not registered");
        return;
    }
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        size_t sidlen, hlen, alen, cklen;
        const char *sid = tw_item_str(it, TW_I_SID, &sidlen);
        uint64_t ep = tw_item_uint(it, TW_I_EP, 0);
        const char *h = tw_item_str(it, TW_I_H, &hlen);
        const void *a = tw_item_bin(it, TW_I_A, &alen);
        const void *ck = tw_item_bin(it, TW_I_CK, &cklen);
        uint64_t nx = tw_item_uint(it, TW_I_NX, 0);
        tw_station_t *old = tw_taskloop_find(w->tl, sid, sidlen);
        if (old && tw_station_ep(old) >= ep) {
            w->stale++;
            tw_debug("worker.assign", "station '%.*s' epoch %llu ignored: "
                     "epoch %llu is held here", (int)sidlen, sid,
                     (unsigned long long)ep,
                     (unsigned long long)tw_station_ep(old));
            continue;
        }
        if (old) {
            /* The broker moved on to a new epoch: the old instance ends
             * silently and its slot's credit returns when it leaves. */
            tw_taskloop_drop(w->tl, old);
        }
        const tw_handler_t *handler = tw_handlers_find(w->reg, h, hlen);
        if (!handler) {
            s_refuse(w, it, "refused", 1, "unknown handler '%.*s'",
                     (int)(hlen > 128 ? 128 : hlen), h);
            continue;
        }
        if (nx > TW_NEXT_HANDLER) {
            s_refuse(w, it, tw_sev_name(TW_SEV_FAILED), 1,
                     "unknown next mode %llu",
                     (unsigned long long)nx);
            continue;
        }
        int slot = tw_slots_hold(w->slots);
        if (slot < 0) {
            s_refuse(w, it, tw_sev_name(TW_SEV_FAILED), 0,
                     "worker had no free slot (credit overrun)");
            continue;
        }
        tw_station_def_t def = {
            .sid = sid,
            .sidlen = sidlen,
            .ep = ep,
            .h = handler,
            .input = ck ? ck : a,
            .ilen = ck ? cklen : alen,
            .next = (int)nx,
            .interval_ms = tw_item_uint(it, TW_I_IV, 0),
            .timeout_ms = tw_item_uint(it, TW_I_TO, 0),
            .paused = tw_item_uint(it, TW_I_PS, 0) != 0,
            .it = tw_item_uint(it, TW_I_IT, 0),
            .slot = slot,
        };
        int rc = tw_taskloop_add(w->tl, &def, NULL);
        if (rc != 0) {
            tw_slots_unhold(w->slots, slot);
            s_refuse(w, it, tw_sev_name(TW_SEV_FAILED), 1,
                     "cannot run the station: %s",
                     tw_strerror(rc));
        }
    }
}

static void
s_on_release(tw_worker_t *w, const tw_msg_t *m)
{
    for (size_t i = 0; i < m->nitems; i++) {
        tw_station_t *st = s_item_station(w, &m->items[i], "RELEASE");
        if (st) {
            tw_taskloop_release(w->tl, st, 0);
        }
    }
}

static void
s_on_control(tw_worker_t *w, const tw_msg_t *m)
{
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        size_t len;
        const char *ev = tw_item_str(it, TW_I_EV, &len);
        int ctl = tw_ctl_parse(ev, len);
        if (ctl < 0) {
            tw_warn("worker.control", "unknown control '%.*s' ignored",
                    (int)len, ev);
            continue;
        }
        tw_station_t *st = s_item_station(w, it, "CONTROL");
        if (st) {
            tw_taskloop_control(w->tl, st, ctl);
        }
    }
}

static void
s_on_n2s(tw_worker_t *w, const tw_msg_t *m)
{
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        tw_station_t *st = s_item_station(w, it, "N2S");
        if (!st) {
            continue;
        }
        size_t len;
        const void *d = tw_item_bin(it, TW_I_D, &len);
        int rc = tw_taskloop_n2s(w->tl, st, tw_item_uint(it, TW_I_SEQ, 0), d,
                                 len);
        if (rc != 0) {
            tw_debug("worker.n2s", "n2s message for '%s' dropped: %s",
                     tw_station_id(st), tw_strerror(rc));
        }
    }
}

/* WORKER from the broker: "drain" (leave as on SIGTERM: stations back at
 * their iteration boundaries, stream ones at once, running tasks finish,
 * then BYE and exit 0)
 * or "resize" to `slots` (answered with WORKER "resized" and the free
 * capacity under the new count, which replaces the broker's credit). */
static void
s_on_worker(tw_worker_t *w, const tw_msg_t *m)
{
    size_t ol;
    const char *op = tw_msg_str(m, TW_F_OP, &ol);
    if (ol == 5 && memcmp(op, "drain", 5) == 0) {
        tw_notice("worker.drain", "the broker asked this worker to drain");
        tw_worker_drain(w);
        return;
    }
    if (ol != 6 || memcmp(op, "resize", 6) != 0) {
        tw_warn("worker.proto", "unknown WORKER op '%.*s' ignored", (int)ol,
                op);
        return;
    }
    uint64_t n = tw_msg_uint(m, TW_F_SLOTS, 0);
    if (n < 1 || n > 65536 || w->draining || w->stopping) {
        tw_warn("worker.resize", "resize to %llu slots ignored%s",
                (unsigned long long)n,
                w->draining || w->stopping ? " while leaving" : "");
        return;
    }
    unsigned from = w->nslots;
    tw_slots_grow(w->slots, (unsigned)n);
    w->nslots = (unsigned)n;
    /* Credit not yet reported was counted under the old size; the answer
     * below is the whole truth, so it goes. */
    w->credit = 0;
    unsigned free = s_free_under_limit(w);
    tw_notice("worker.resize", "resized from %u to %u slots: %u busy, %u "
              "free", from, w->nslots, tw_slots_busy(w->slots), free);
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 3);
    tw_enc_key(&e, TW_F_OP);
    tw_enc_cstr(&e, "resized");
    tw_enc_key(&e, TW_F_SLOTS);
    tw_enc_uint(&e, n);
    tw_enc_key(&e, TW_F_CREDIT);
    tw_enc_uint(&e, free);
    s_send_enc(w, &e, TW_CMD_WORKER);
}

static void
s_on_msg(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    tw_worker_t *w = zw->data;
    w->last_recv = uv_now(w->loop);
    if (msg->n != 2 || msg->truncated) {
        tw_warn("worker.proto", "dropped a %zu-frame message from the broker",
                msg->n);
        return;
    }
    tw_msg_t m;
    int rc = tw_msg_decode(&m, zmq_msg_data(&msg->f[0]),
                           zmq_msg_size(&msg->f[0]),
                           zmq_msg_data(&msg->f[1]),
                           zmq_msg_size(&msg->f[1]));
    if (rc != 0) {
        tw_warn("worker.proto", "dropped a bad message from the broker: %s",
                tw_strerror(rc));
        return;
    }
    if (!(tw_proto_cmd_dirs(m.cmd) & TW_B2W)) {
        tw_warn("worker.proto", "dropped %s: not a broker-to-worker command",
                tw_proto_cmd_name(m.cmd));
        tw_msg_release(&m);
        return;
    }
    int not_active = m.cmd == TW_CMD_ERROR &&
                     tw_msg_int(&m, TW_F_CODE, 0) == TW_ENOTACTIVE;
    if (m.f[TW_F_HA] && !not_active &&
        s_fence(w, tw_msg_uint(&m, TW_F_HA, 0)) != 0) {
        tw_msg_release(&m); /* a deposed active: nothing it says counts */
        return;
    }
    if (not_active) {
        s_not_active(w, &m);
        tw_msg_release(&m);
        return;
    }
    switch (m.cmd) {
    case TW_CMD_WELCOME:
        s_on_welcome(w, &m);
        break;
    case TW_CMD_TASKS:
        s_on_tasks(w, &m);
        break;
    case TW_CMD_CANCEL:
        s_on_cancel(w, &m);
        break;
    case TW_CMD_ASSIGN:
        s_on_assign(w, &m);
        break;
    case TW_CMD_RELEASE:
        if (w->state == S_READY) {
            s_on_release(w, &m);
        }
        break;
    case TW_CMD_CONTROL:
        if (w->state == S_READY) {
            s_on_control(w, &m);
        }
        break;
    case TW_CMD_N2S:
        if (w->state == S_READY) {
            s_on_n2s(w, &m);
        }
        break;
    case TW_CMD_CHAN:
        for (size_t i = 0; w->state == S_READY && i < m.nitems; i++) {
            tw_chans_on_item(w->chans, &m.items[i]);
        }
        break;
    case TW_CMD_ERROR: {
        int64_t code = tw_msg_int(&m, TW_F_CODE, 0);
        size_t len;
        const char *s = tw_msg_str(&m, TW_F_MSG, &len);
        if (code == TW_EWORKER) {
            if (w->state == S_READY) {
                s_rehello(w);
            }
        } else if (code == TW_ECOMMAND && w->state == S_HELLO) {
            /* HELLO itself was refused: this is not a backend (a
             * client's frontend, most likely). Retrying cannot help;
             * exit with the configuration error code so a supervisor
             * (systemd, --procs) sees it fail. */
            tw_err("worker.connect", "%s refused HELLO: %.*s", w->broker,
                   (int)len, s ? s : "");
            s_stop(w, 2, 0);
        } else {
            tw_warn("worker.error", "broker error %lld (%s): %.*s",
                    (long long)code, tw_err_name((int)code), (int)len,
                    s ? s : "");
        }
        break;
    }
    case TW_CMD_BYE:
        s_lost(w, "broker said BYE");
        break;
    case TW_CMD_WORKER:
        if (w->state == S_READY) {
            s_on_worker(w, &m);
        }
        break;
    case TW_CMD_HEARTBEAT: {
        /* Receiving it was the point; a boot id other than the one in
         * our WELCOME is another broker run on the same endpoint. */
        uint64_t boot = tw_msg_uint(&m, TW_F_BOOT, 0);
        if (boot && w->boot && boot != w->boot && w->state == S_READY) {
            tw_notice("worker.relink", "%s is a new broker run (boot "
                      "%016llx, was %016llx)", w->broker,
                      (unsigned long long)boot, (unsigned long long)w->boot);
            s_rehello(w);
        }
        break;
    }
    default:
        break;
    }
    tw_msg_release(&m);
}

static void
s_on_drained(tw_zwatch_t *zw)
{
    s_flush(zw->data);
}

static void
s_flush_cb(uv_check_t *h)
{
    tw_worker_t *w = h->data;
    if (w->stopping) {
        s_flush_off(w);
        s_shutdown_step(w);
        return;
    }
    s_flush(w);
    if (w->draining && tw_slots_busy(w->slots) == 0) {
        s_stop(w, 0, w->stop_grace);
        return;
    }
    if (!w->has_stalled) {
        s_flush_off(w);
    }
}

/* Stopping ---------------------------------------------------------------- */

static void
s_handle_closed(uv_handle_t *h)
{
    tw_worker_t *w = h->data;
    if (--w->handles_open == 0) {
        s_shutdown_step(w);
    }
}

static void
s_slots_closed(void *udata)
{
    tw_worker_t *w = udata;
    w->slots_closing = 0;
    s_shutdown_step(w);
}

static void
s_chans_closed(void *udata)
{
    tw_worker_t *w = udata;
    if (--w->handles_open == 0) {
        s_shutdown_step(w);
    }
}

static void
s_grace_cb(uv_timer_t *t)
{
    tw_worker_t *w = t->data;
    w->grace_over = 1;
    s_shutdown_step(w);
}

static void
s_shutdown_step(tw_worker_t *w)
{
    if (w->zw_open) {
        s_close_socket(w);
        return;
    }
    if (w->zw_closing || w->slots_closing) {
        return;
    }
    if (w->slots && tw_slots_busy(w->slots) > 0 && !w->grace_over) {
        if (!uv_is_active((uv_handle_t *)&w->drain)) {
            tw_debug("worker.stop", "waiting for %u slot(s) to stop",
                     tw_slots_busy(w->slots));
            uv_timer_start(&w->drain, s_grace_cb, w->stop_grace, 0);
        }
        return; /* the flush check calls again as tasks end */
    }
    if (w->slots && tw_slots_busy(w->slots) == 0) {
        /* Every station has left: free them (their handlers' `end`). */
        tw_taskloop_destroy(&w->tl);
        w->slots_closing = 1;
        tw_slots_close(w->slots, s_slots_closed, w);
        w->slots = NULL;
        return;
    }
    if (w->slots) {
        w->stuck = 1;
    }
    if (!w->handles_closing) {
        w->handles_closing = 1;
        w->flush_on = 0;
        w->tl_idle_on = 0;
        if (w->tl) {
            tw_taskloop_no_async(w->tl); /* stuck: keep off tl_async */
        }
        w->handles_open = 8;
        if (!w->slots) {
            /* Every task has ended, so no handler can reach the channel
             * table any more; a stuck worker keeps it (as its slots). */
            w->handles_open++;
            tw_chans_close(w->chans, s_chans_closed, w);
            w->chans = NULL;
        }
        uv_close((uv_handle_t *)&w->tick, s_handle_closed);
        uv_close((uv_handle_t *)&w->backoff, s_handle_closed);
        uv_close((uv_handle_t *)&w->drain, s_handle_closed);
        uv_close((uv_handle_t *)&w->flush, s_handle_closed);
        uv_close((uv_handle_t *)&w->tl_idle, s_handle_closed);
        uv_close((uv_handle_t *)&w->tl_timer, s_handle_closed);
        uv_close((uv_handle_t *)&w->tl_async, s_handle_closed);
        uv_close((uv_handle_t *)&w->ckpt, s_handle_closed);
        return;
    }
    if (w->handles_open > 0 || !w->ctx) {
        return;
    }
    zmq_ctx_term(w->ctx);
    w->ctx = NULL;
    if (w->stuck) {
        tw_warn("worker.stop", "%u slot(s) did not stop",
                tw_slots_busy(w->slots));
    }
    tw_notice("worker.stop", "stopped after %llu task(s)",
              (unsigned long long)w->tasks_run);
    w->exit_cb(w, w->exit_code, w->stuck);
}

/* Begin the shutdown chain: last DONE and BYE if registered, cancel what
 * still runs, then give it `grace_ms` to end. */
static void
s_stop(tw_worker_t *w, int code, uint64_t grace_ms)
{
    if (w->stopping) {
        return;
    }
    w->stopping = 1;
    w->exit_code = code;
    if (w->state == S_READY) {
        /* Stations still here go back to the broker with their
         * checkpoints (S29), their iterations cancelled. Give the last
         * reports and the BYE a moment to leave; otherwise the socket
         * holds at most a HELLO nobody is there to read. */
        tw_taskloop_release_all(w->tl, 0);
        s_flush(w);
        s_send_empty(w, TW_CMD_BYE);
        int linger = code ? S_LINGER_ABORT : S_LINGER_DRAIN;
        zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger);
    }
    w->state = S_DOWN;
    tw_slots_orphan_all(w->slots);
    tw_taskloop_drop_all(w->tl);
    if (grace_ms == 0) {
        tw_taskloop_kill_all(w->tl); /* no grace for stream programs */
    }
    s_discard(w);
    uv_timer_stop(&w->tick);
    uv_timer_stop(&w->backoff);
    uv_timer_stop(&w->drain);
    uv_timer_stop(&w->ckpt);
    w->grace_over = grace_ms == 0;
    s_shutdown_step(w);
}

static void
s_drain_timeout_cb(uv_timer_t *t)
{
    tw_worker_t *w = t->data;
    tw_warn("worker.drain", "drain timeout: cancelling %u busy slot(s)",
            tw_slots_busy(w->slots));
    s_stop(w, 0, w->stop_grace);
}

/* Public ------------------------------------------------------------------ */

int
tw_worker_new(tw_worker_t **out, uv_loop_t *loop, const tw_handlers_t *reg,
              const tw_worker_opts_t *o, char *err, size_t errlen)
{
    if (o->slots < 1 || o->slots > 65536 || !o->broker || !*o->broker) {
        snprintf(err, errlen, "slots must be 1..65536 and broker set");
        return TW_EINVAL;
    }
    tw_worker_t *w = tw_calloc(1, sizeof *w);
    if (s_parse_tags(w, o->tags, err, errlen) != 0) {
        tw_worker_destroy(&w);
        return TW_EINVAL;
    }
    char host[256];
    if (gethostname(host, sizeof host) != 0) {
        snprintf(host, sizeof host, "localhost");
    }
    host[sizeof host - 1] = '\0';
    char name[TW_PROTO_MAX_NAME + 1];
    if (o->name && *o->name) {
        snprintf(name, sizeof name, "%s", o->name);
    } else {
        snprintf(name, sizeof name, "%.100s-%d", host, (int)getpid());
    }
    char hex[9];
    tw_random_hex(hex, 8);
    char ident[TW_PROTO_MAX_NAME + 16];
    snprintf(ident, sizeof ident, "w-%s-%s", name, hex);

    if (tw_eplist_parse(&w->eps, o->broker, err, errlen) != 0) {
        tw_worker_destroy(&w);
        return TW_EINVAL;
    }
    w->loop = loop;
    w->reg = reg;
    w->broker = tw_strdup(tw_eplist_current(w->eps));
    w->name = tw_strdup(name);
    w->host = tw_strdup(host);
    w->ident = tw_strdup(ident);
    w->drain_timeout = o->drain_timeout_ms;
    w->stop_grace = o->stop_grace_ms ? o->stop_grace_ms : S_STOP_GRACE;
    w->hb = S_HB_DEFAULT;
    w->backoff_ms = S_BACKOFF_MIN;
    w->rng = (uint32_t)(tw_now_ns() ^ ((uint64_t)getpid() << 16)) | 1;
    w->nslots = o->slots;
    s_batch_init(&w->done);
    s_batch_init(&w->sta);
    s_batch_init(&w->s2n);
    *out = w;
    return 0;
}

void
tw_worker_set_curve(tw_worker_t *w, const tw_curve_client_t *curve)
{
    w->curve = curve;
}

int
tw_worker_start(tw_worker_t *w, tw_worker_exit_cb cb, char *err,
                size_t errlen)
{
    w->ctx = zmq_ctx_new();
    if (!w->ctx) {
        snprintf(err, errlen, "zmq_ctx_new: %s", zmq_strerror(errno));
        return TW_ENOMEM;
    }
    void *sock;
    int rc = s_open(w, &sock, err, errlen);
    if (rc != 0) {
        zmq_ctx_term(w->ctx);
        w->ctx = NULL;
        return rc;
    }
    /* Nothing below fails: from here on the exit callback will fire. */
    w->exit_cb = cb;
    w->slots = tw_slots_new(w->loop, w->reg, w->nslots, s_on_outcome, w);
    tw_leases_init(&w->leases);
    static const tw_taskloop_cbs_t cbs = {
        .wake = s_tl_wake,
        .event = s_tl_event,
        .dirty = s_tl_dirty,
        .s2n = s_tl_s2n,
        .left = s_tl_left,
        .async = s_tl_async,
    };
    w->tl = tw_taskloop_new(w->loop, &cbs, w);
    w->chans = tw_chans_new(w->loop, s_chans_wake, w);
    tw_slots_attach_chans(w->slots, w->chans);
    uv_timer_init(w->loop, &w->tick);
    uv_timer_init(w->loop, &w->backoff);
    uv_timer_init(w->loop, &w->drain);
    uv_check_init(w->loop, &w->flush);
    uv_idle_init(w->loop, &w->tl_idle);
    uv_timer_init(w->loop, &w->tl_timer);
    uv_async_init(w->loop, &w->tl_async, s_tl_async_cb);
    uv_timer_init(w->loop, &w->ckpt);
    w->tick.data = w->backoff.data = w->drain.data = w->flush.data = w;
    w->tl_idle.data = w->tl_timer.data = w->tl_async.data = w;
    w->ckpt.data = w;
    w->ck_last = uv_now(w->loop);
    if (s_attach(w, sock, err, errlen) != 0) {
        tw_err("worker.connect", "%s", err);
        uv_timer_start(&w->backoff, s_backoff_cb, w->backoff_ms, 0);
    }
    return 0;
}

void
tw_worker_drain(tw_worker_t *w)
{
    if (w->draining || w->stopping) {
        return;
    }
    w->draining = 1;
    if (w->state == S_READY) {
        /* Stations go back to the broker after their current iteration,
         * with their checkpoints (S29). */
        tw_taskloop_release_all(w->tl, 1);
    }
    unsigned busy = tw_slots_busy(w->slots);
    if (w->state != S_READY || busy == 0) {
        tw_notice("worker.drain", "stopping: nothing running");
        s_stop(w, 0, w->stop_grace);
        return;
    }
    tw_notice("worker.drain",
              "draining: waiting up to %llu ms for %u busy slot(s)",
              (unsigned long long)w->drain_timeout, busy);
    uv_timer_start(&w->drain, s_drain_timeout_cb, w->drain_timeout, 0);
    s_flush_arm(w);
}

void
tw_worker_abort(tw_worker_t *w)
{
    if (w->stopping) {
        /* Already on the way out: stop waiting for anything. */
        w->exit_code = 1;
        w->grace_over = 1;
        if (w->tl) {
            tw_taskloop_kill_all(w->tl);
        }
        if (!w->handles_closing) {
            uv_timer_stop(&w->drain);
        }
        s_shutdown_step(w);
        return;
    }
    tw_notice("worker.abort", "stopping now");
    s_stop(w, 1, 0);
}

void
tw_worker_destroy(tw_worker_t **w_p)
{
    tw_worker_t *w = *w_p;
    if (!w) {
        return;
    }
    /* A stuck worker's slot table is left alone: handlers still hold
     * calls in it, and the process is about to exit. */
    for (size_t i = 0; i < w->ntags; i++) {
        tw_free(w->tag_k[i]);
        tw_free(w->tag_v[i]);
    }
    tw_free(w->tag_k);
    tw_free(w->tag_v);
    tw_enc_free(&w->done.enc);
    tw_enc_free(&w->sta.enc);
    tw_enc_free(&w->s2n.enc);
    tw_leases_free(&w->leases);
    tw_free(w->broker);
    tw_eplist_free(&w->eps);
    tw_free(w->name);
    tw_free(w->host);
    tw_free(w->ident);
    tw_free(w);
    *w_p = NULL;
}

const char *
tw_worker_ident(const tw_worker_t *w)
{
    return w->ident;
}

void
tw_worker_stats(const tw_worker_t *w, tw_worker_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->tasks = w->tasks_run;
    out->stale = w->stale;
    out->refused = w->refused;
    out->s2n_dropped = w->s2n_dropped;
    if (w->tl) {
        out->stations = tw_taskloop_live(w->tl);
        tw_taskloop_stats(w->tl, &out->tl);
    }
    if (w->chans) {
        tw_chans_stats(w->chans, &out->chan);
    }
}
