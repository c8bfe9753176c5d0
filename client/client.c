/*  client/client.c - libtaskwheel: one DEALER connection to a broker.
 *
 *  The client owns a ZeroMQ context and one DEALER socket (routing id
 *  "c-<16 hex>") and does blocking I/O with zmq_poll; it never starts a
 *  thread or a loop. Everything happens inside the caller's calls:
 *
 *    submit --> outbox --seal--> sealed SUBMITs --send--> broker
 *               (1000 items    (FIFO, kept while        |
 *                or 4 MiB)      the socket is full)     |
 *    callbacks <-- dispatch <-- receive <---------------+
 *                  ACK, RESULT pushes, REPLY, ERROR, HEARTBEAT
 *
 *  The outbox is the body of the next SUBMIT, encoded item by item as tasks
 *  are submitted. Its first 12 bytes are reserved and written when the
 *  batch is sealed, once the item count is known:
 *
 *    +------+------------------+---------------+--------+--------+---
 *    | 0x81 | 0xa5 "items"     | 0xdd  count32 | item 1 | item 2 | ...
 *    +------+------------------+---------------+--------+--------+---
 *     map(1)  key (6 bytes)     array32 header  maps {seq, h, a?, to?, ...}
 *
 *  so sealing copies nothing and the buffer becomes the body frame as is.
 *
 *  Every submitted task's seq stays in `pending` until its outcome arrives
 *  (a RESULT push with a final state, a per-item ACK error, or an ERROR
 *  naming that seq); tw_client_wait_all waits for `pending` to empty.
 *
 *  Requests (ping, result, and through tw__client_request the ones
 *  answered by REPLY or ERROR: cancel, query, station and pool.c's GROUP
 *  and POOL) use a fresh seq, flush the outbox first so they reach the
 *  broker after earlier submissions, and wait for the reply carrying that
 *  seq; meanwhile other traffic is dispatched to the callbacks as usual.
 *  Only one request runs at a time. Replies that arrive after their
 *  request gave up are ignored.
 *
 *  Submissions, acknowledgements and final outcomes are also reported to
 *  pool.c (tw__sess_*), which turns them into events and feeds maps.
 *
 *  Reconnection (tw_client_set_opts in taskwheel/client.h): every
 *  submitted item's bytes are also kept in client/outbox.h until its ACK,
 *  and every acknowledged task without an outcome in `waiting` (id ->
 *  seq). s_pump runs s_keepalive on each turn: it pings an idle broker,
 *  declares it lost after liveness heartbeats of silence (s_lost: close
 *  the socket, drop everything queued, schedule a new one with backoff)
 *  and reconnects (s_reconnect: same routing id, the kept items resent
 *  as fresh SUBMITs with their seqs, a RESULT query for each waiting id;
 *  the answers come back as "requery" seqs, see s_on_requery).
 *
 *  Nothing from the broker is trusted: each message must be exactly two
 *  frames that tw_msg_decode accepts, travelling broker-to-client;
 *  anything else is dropped and not counted as handled.
 *
 *  Not thread-safe: one client, one thread. Callbacks run inside poll, the
 *  waiting calls and the requests; they may submit and flush but must not
 *  poll, wait, make requests or destroy the client.
 */
#include "taskwheel/client.h"

#include "client/internal.h"
#include "client/outbox.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/idmap.h"
#include "common/log.h"
#include "common/endpoint.h"
#include "common/eplist.h"
#include "common/util.h"
#include "common/zmon.h"
#include "proto/mpwalk.h"
#include "proto/proto.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_PREFIX 12          /* reserved head of the outbox, see above */
#define S_HWM 100000         /* messages queued per direction */
#define S_DRAIN_BUDGET 256   /* messages received before looking up */

/* Reconnection defaults (tw_client_opts_t). */
#define S_HB_MS 1000
#define S_LIVENESS 3
#define S_RECONNECT_MIN_MS 100
#define S_RECONNECT_MAX_MS 5000
#define S_MAX_OUTBOX 1000000
#define S_BYE_LINGER_MS 100 /* destroy: time the BYE may take to leave */

/* A value for `pending`: the map stores ids, the value only marks them. */
#define S_PENDING ((void *)1)

/* A sealed SUBMIT (or any message) waiting for room in the socket. */
typedef struct s_batch {
    struct s_batch *next;
    zmq_msg_t f[2];
    int sent0; /* frame 0 went out; frame 1 must follow before any other */
} s_batch_t;

typedef enum {
    S_REQ_NONE = 0,
    S_REQ_PING,   /* waits for a HEARTBEAT */
    S_REQ_RESULT, /* waits for RESULT {seq, items} */
    S_REQ_REPLY   /* waits for REPLY {seq, data} (CANCEL, QUERY, STATION) */
} s_req_kind_t;

struct tw_client {
    void *ctx;
    void *sock;
    uint64_t next_seq;

    tw_enc_t ob;       /* body of the next SUBMIT */
    size_t ob_items;   /* items in it */
    s_batch_t *head;   /* sealed messages not yet sent, oldest first */
    s_batch_t *tail;
    tw_idmap_t pending; /* seq -> S_PENDING for tasks without outcome */

    tw_ack_cb ack_cb;
    void *ack_arg;
    tw_ack2_cb ack2_cb;
    void *ack2_arg;
    tw_result_cb res_cb;
    void *res_arg;
    tw_chan_cb chan_cb; /* task channels (chan.c) */
    void *chan_arg;

    void *sess;        /* session state of client/pool.c, or NULL */

    /* Reconnection: what to resend and re-ask, and the link's health. */
    tw_eplist_t *eps;           /* the broker, or the brokers of a pair */
    uint64_t absent;            /* brokers of a pair left because nothing
                                   listened: what was sent there never
                                   arrived */
    char *endpoint;             /* the one in use (eps's current) */
    char rid[2 + 16 + 1];       /* routing id, kept across sockets */
    tw_curve_client_t *curve;   /* CURVE keys for new sockets, or NULL */
    tw_client_opts_t opts;
    tw__outbox_t keep;          /* submissions not acknowledged yet */
    tw_idmap_t waiting;         /* task id -> seq: acked, no outcome */
    tw_idmap_t requery;         /* seqs of our RESULT queries after a
                                   reconnect -> S_PENDING */
    uint64_t last_recv;         /* ms of the last message from the broker */
    uint64_t ping_at;           /* ms the unanswered ping went, or 0 */
    int bye;                    /* the broker said BYE: reconnect now */
    uint64_t reconnect_at;      /* ms to connect again (sock is NULL) */
    uint64_t backoff_ms;        /* the next backoff before jitter */
    uint64_t rand;              /* jitter generator state */
    tw_client_stats_t st;

    /* What the socket monitor (common/zmon.h) and the broker's "boot"
     * say about the link. */
    void *mon;                  /* the monitor's PAIR, or NULL */
    uint64_t boot;              /* the broker run we talk to, 0: unknown */
    int relinked;               /* resynchronised at a drop: take the next
                                   boot id as it comes */
    int up;                     /* the handshake succeeded on this socket */
    int link_kind;              /* tw_zmon_kind_t of the last problem, 0 */
    char *link_error;           /* its one-line description, or NULL */
    int fail_fast;              /* a link problem ends requests at once */
    char *pub;                  /* the status endpoint the broker gave */
    int refused;                /* ECOMMAND or EWORKER without a seq: the
                                   peer does not take client commands */

    char *last_error;  /* NUL-terminated copy, never NULL */
    char *scratch;     /* NUL-terminated copy of a peer string */
    size_t scratch_cap;

    /* The request in progress. */
    struct {
        s_req_kind_t kind;
        uint64_t seq;
        int done;
        int rc;
        uint64_t id;          /* S_REQ_RESULT: the id asked about */
        tw_result_t *result;  /* S_REQ_RESULT: the answer */
        int want_data;        /* S_REQ_REPLY: keep "data" */
        void *data;
        size_t len;
    } req;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                      */

/* A NUL-terminated copy of a peer's string in the scratch buffer,
 * borrowed until the next call. NULL stays NULL. */
static const char *
s_cstr(tw_client_t *c, const char *s, size_t len)
{
    if (!s) {
        return NULL;
    }
    if (len + 1 > c->scratch_cap) {
        c->scratch_cap = len + 1 > 256 ? len + 1 : 256;
        tw_free(c->scratch);
        c->scratch = tw_malloc(c->scratch_cap);
    }
    memcpy(c->scratch, s, len);
    c->scratch[len] = '\0';
    return c->scratch;
}

static void
s_set_last_error(tw_client_t *c, const char *s, size_t len)
{
    tw_free(c->last_error);
    c->last_error = tw_strndup(s ? s : "", s ? len : 0);
}

/* A peer's error code as a negative int; anything else is TW_EIO. */
static int
s_code(int64_t code)
{
    return code < 0 && code >= INT_MIN ? (int)code : TW_EIO;
}

/* The string value of key `key` in the raw msgpack map `map`, for keys
 * the codec's tables do not name. NULL if absent or not a string. */
static const char *
s_raw_str(const msgpack_object *map, const char *key, size_t *len)
{
    size_t kl = strlen(key);
    if (!map || map->type != MSGPACK_OBJECT_MAP) {
        return NULL;
    }
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == kl &&
            memcmp(kv->key.via.str.ptr, key, kl) == 0) {
            if (kv->val.type != MSGPACK_OBJECT_STR ||
                kv->val.via.str.size > TW_PROTO_MAX_TEXT) {
                return NULL;
            }
            *len = kv->val.via.str.size;
            return kv->val.via.str.ptr;
        }
    }
    return NULL;
}

static int
s_is_final(uint64_t st)
{
    return st <= TW_ST_LOST;
}

/* ------------------------------------------------------------------ */
/* Sending                                                            */

/* Start an empty outbox. */
static void
s_outbox_reset(tw_client_t *c)
{
    static const char zero[S_PREFIX] = {0};
    msgpack_sbuffer_write(&c->ob.sb, zero, sizeof zero);
    c->ob_items = 0;
}

/* Append frames to the FIFO of messages to send; takes them. */
static void
s_enqueue(tw_client_t *c, zmq_msg_t f[2])
{
    s_batch_t *b = tw_malloc(sizeof *b);
    b->next = NULL;
    b->sent0 = 0;
    zmq_msg_init(&b->f[0]);
    zmq_msg_init(&b->f[1]);
    zmq_msg_move(&b->f[0], &f[0]);
    zmq_msg_move(&b->f[1], &f[1]);
    if (c->tail) {
        c->tail->next = b;
    } else {
        c->head = b;
    }
    c->tail = b;
}

/* Close the outbox into a SUBMIT message at the end of the FIFO. */
static void
s_seal(tw_client_t *c)
{
    if (c->ob_items == 0) {
        return;
    }
    unsigned char *h = (unsigned char *)c->ob.sb.data;
    uint32_t n = (uint32_t)c->ob_items;
    h[0] = 0x81;
    h[1] = 0xa5;
    memcpy(h + 2, "items", 5);
    h[7] = 0xdd;
    h[8] = (unsigned char)(n >> 24);
    h[9] = (unsigned char)(n >> 16);
    h[10] = (unsigned char)(n >> 8);
    h[11] = (unsigned char)n;
    zmq_msg_t f[2];
    tw_enc_frames(&c->ob, TW_CMD_SUBMIT, f);
    s_enqueue(c, f);
    s_outbox_reset(c);
}

/* Send queued messages until the FIFO is empty or the socket is full.
 * Returns 0, TW_EAGAIN (some remain) or TW_EIO. */
static int
s_send_queued(tw_client_t *c)
{
    if (!c->sock) {
        return c->head ? TW_EAGAIN : 0; /* reconnecting */
    }
    while (c->head) {
        s_batch_t *b = c->head;
        if (!b->sent0) {
            if (zmq_msg_send(&b->f[0], c->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) <
                0) {
                return errno == EAGAIN || errno == EINTR ? TW_EAGAIN
                                                         : TW_EIO;
            }
            b->sent0 = 1;
        }
        if (zmq_msg_send(&b->f[1], c->sock, ZMQ_DONTWAIT) < 0) {
            return errno == EAGAIN || errno == EINTR ? TW_EAGAIN : TW_EIO;
        }
        c->head = b->next;
        if (!c->head) {
            c->tail = NULL;
        }
        zmq_msg_close(&b->f[0]);
        zmq_msg_close(&b->f[1]);
        tw_free(b);
    }
    return 0;
}

/* Queue a message behind everything else and try to send. */
static int
s_send(tw_client_t *c, tw_enc_t *e, tw_cmd_t cmd)
{
    zmq_msg_t f[2];
    s_seal(c);
    tw_enc_frames(e, cmd, f);
    s_enqueue(c, f);
    return s_send_queued(c);
}

/* ------------------------------------------------------------------ */
/* Dispatching what the broker sends                                  */

/* Hand one acknowledgement to the callbacks and the session. */
static void
s_ack_dispatch(tw_client_t *c, const tw_ack_t *ack)
{
    if (c->ack_cb) {
        c->ack_cb(c->ack_arg, ack->seq, ack->id, ack->err, ack->msg);
    }
    if (c->ack2_cb) {
        c->ack2_cb(c->ack2_arg, ack);
    }
    tw__sess_ack(c, ack);
}

/* ACK {items: [{seq, id} or {seq, code, msg}]}. The codec's item table
 * has no "msg" key, so the message is read from "err" if present (what
 * the broker sends) and otherwise from a raw "msg" key. */
static void
s_on_ack(tw_client_t *c, const tw_msg_t *m)
{
    const msgpack_object *arr = m->f[TW_F_ITEMS];
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        uint64_t seq = tw_item_uint(it, TW_I_SEQ, 0);
        int64_t code = tw_item_int(it, TW_I_CODE, 0);
        if (seq == 0) {
            continue;
        }
        if (!tw__outbox_ack(&c->keep, seq)) {
            /* Acknowledged before: a resend the broker answered again. */
            tw_debug("client.ack", "repeated ACK for seq %llu ignored",
                     (unsigned long long)seq);
            continue;
        }
        tw_ack_t ack = {seq, 0, 0, NULL, 0};
        if (code != 0) {
            size_t len = 0;
            const char *msg = tw_item_str(it, TW_I_ERR, &len);
            if (!msg) {
                msg = s_raw_str(&arr->via.array.ptr[i], "msg", &len);
            }
            tw_idmap_del(&c->pending, seq);
            ack.err = s_code(code);
            ack.msg = s_cstr(c, msg ? msg : "", len);
        } else {
            ack.id = tw_item_uint(it, TW_I_ID, 0);
            if (ack.id == 0) {
                tw_debug("client.ack", "ACK item for seq %llu has no id",
                         (unsigned long long)seq);
                continue;
            }
            /* A dedup hit gets no outcome of its own. */
            ack.dup = tw_item_uint(it, TW_I_DUP, 0) != 0;
            if (ack.dup) {
                tw_idmap_del(&c->pending, seq);
            } else if (tw_idmap_get(&c->pending, seq)) {
                tw_idmap_put(&c->waiting, ack.id, (void *)(uintptr_t)seq);
            }
        }
        s_ack_dispatch(c, &ack);
    }
}

/* Fill `r` from a RESULT item; strings are borrowed from the message and
 * the scratch buffer. */
static void
s_fill_result(tw_client_t *c, const tw_item_t *it, tw_result_t *r)
{
    size_t len = 0;
    memset(r, 0, sizeof *r);
    r->id = tw_item_uint(it, TW_I_ID, 0);
    r->seq = tw_item_uint(it, TW_I_SEQ, 0);
    uint64_t st = tw_item_uint(it, TW_I_ST, TW_ST_UNKNOWN);
    r->state = st > INT_MAX ? INT_MAX : (int)st;
    r->result = tw_item_bin(it, TW_I_R, &r->result_len);
    const char *err = tw_item_str(it, TW_I_ERR, &len);
    r->error = err ? s_cstr(c, err, len) : NULL;
    r->worker = tw_item_uint(it, TW_I_W, 0);
    uint64_t at = tw_item_uint(it, TW_I_AT, 0);
    r->attempt = at > UINT32_MAX ? UINT32_MAX : (uint32_t)at;
}

/* A heap copy of `r` in one block, for tw_result_free. */
static tw_result_t *
s_result_dup(const tw_result_t *r)
{
    size_t elen = r->error ? strlen(r->error) + 1 : 0;
    tw_result_t *d = tw_malloc(sizeof *d + r->result_len + elen);
    char *p = (char *)(d + 1);
    *d = *r;
    if (r->result_len) {
        memcpy(p, r->result, r->result_len);
        d->result = p;
        p += r->result_len;
    } else {
        d->result = NULL;
    }
    if (elen) {
        memcpy(p, r->error, elen);
        d->error = p;
    }
    return d;
}

/* Hand one outcome to the result callback and, if final and ours, to
 * the session. */
static void
s_deliver(tw_client_t *c, const tw_result_t *r)
{
    if (c->res_cb) {
        c->res_cb(c->res_arg, r);
    }
    if (r->seq && s_is_final((uint64_t)r->state)) {
        tw__sess_result(c, r);
    }
}

/* The answer to a RESULT query sent after a reconnect, about tasks that
 * were acknowledged and had no outcome. An ended task is delivered as if
 * pushed; a pending or running one stays waited for; one the broker
 * never had, or whose id now names another task (a broker that restarted
 * without its store numbers from 1 again; the seq tells them apart), is
 * delivered as lost. */
static void
s_on_requery(tw_client_t *c, const tw_msg_t *m)
{
    static const char why[] =
        "the broker has no record of this task (it restarted without its "
        "store?): it may or may not have run";
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        uint64_t id = tw_item_uint(it, TW_I_ID, 0);
        void *v = id ? tw_idmap_get(&c->waiting, id) : NULL;
        if (!v) {
            continue; /* its outcome came meanwhile */
        }
        uint64_t seq = (uint64_t)(uintptr_t)v;
        uint64_t st = tw_item_uint(it, TW_I_ST, TW_ST_UNKNOWN);
        int same = tw_item_uint(it, TW_I_SEQ, 0) == seq;
        tw_result_t r;
        if (same && (st == TW_ST_PENDING || st == TW_ST_RUNNING ||
                     st == TW_ST_BLOCKED)) {
            continue; /* the broker has it: its push will come */
        }
        if (same && s_is_final(st)) {
            s_fill_result(c, it, &r);
        } else {
            memset(&r, 0, sizeof r);
            r.id = id;
            r.seq = seq;
            r.state = TW_ST_LOST;
            r.error = why;
            c->st.unknown++;
            tw_info("client.lost", "task %llu (seq %llu): %s",
                    (unsigned long long)id, (unsigned long long)seq, why);
        }
        tw_idmap_del(&c->waiting, id);
        if (!tw_idmap_del(&c->pending, seq)) {
            continue;
        }
        s_deliver(c, &r);
    }
}

/* Returns 1 if the message was used, 0 if ignored. */
static int
s_on_result(tw_client_t *c, const tw_msg_t *m)
{
    tw_result_t r;
    if (m->f[TW_F_SEQ]) {
        /* The answer to a RESULT query. */
        uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
        if (seq && tw_idmap_del(&c->requery, seq)) {
            s_on_requery(c, m);
            return 1;
        }
        if (c->req.kind != S_REQ_RESULT || c->req.done || seq != c->req.seq) {
            return 0;
        }
        for (size_t i = 0; i < m->nitems; i++) {
            if (tw_item_uint(&m->items[i], TW_I_ID, 0) == c->req.id) {
                s_fill_result(c, &m->items[i], &r);
                c->req.result = s_result_dup(&r);
                break;
            }
        }
        if (!c->req.result) {
            /* The broker did not mention our id: it has no record. */
            memset(&r, 0, sizeof r);
            r.id = c->req.id;
            r.state = TW_ST_UNKNOWN;
            c->req.result = s_result_dup(&r);
        }
        c->req.done = 1;
        c->req.rc = 0;
        return 1;
    }
    for (size_t i = 0; i < m->nitems; i++) {
        s_fill_result(c, &m->items[i], &r);
        if (r.seq && s_is_final((uint64_t)r.state)) {
            tw_idmap_del(&c->waiting, r.id);
            tw__outbox_ack(&c->keep, r.seq);
            if (!tw_idmap_del(&c->pending, r.seq)) {
                /* Delivered before: the broker pushes an ended task's
                 * outcome again when a resend of it arrives (7.8). */
                continue;
            }
        }
        s_deliver(c, &r);
    }
    return 1;
}

static int
s_on_reply(tw_client_t *c, const tw_msg_t *m)
{
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    if (seq == 0) {
        /* No request has seq 0: a broker event (pool.closed). */
        tw__sess_broker_event(c, m->f[TW_F_DATA]);
        return 1;
    }
    if (c->req.kind != S_REQ_REPLY || c->req.done || seq != c->req.seq) {
        return 0;
    }
    if (c->req.want_data) {
        /* msgpack's sbuffer allocates with malloc: the caller frees. */
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, *m->f[TW_F_DATA]);
        c->req.len = sb.size;
        c->req.data = msgpack_sbuffer_release(&sb);
        if (!c->req.data) {
            c->req.done = 1;
            c->req.rc = TW_ENOMEM;
            return 1;
        }
    }
    c->req.done = 1;
    c->req.rc = 0;
    return 1;
}

static void s_not_active(tw_client_t *c, const tw_msg_t *m);
static int s_fence(tw_client_t *c, uint64_t ha);

static int
s_on_error(tw_client_t *c, const tw_msg_t *m)
{
    size_t len = 0;
    const char *msg = tw_msg_str(m, TW_F_MSG, &len);
    int code = s_code(tw_msg_int(m, TW_F_CODE, 0));
    s_set_last_error(c, msg, len);
    if (code == TW_ENOTACTIVE) {
        if (c->req.kind != S_REQ_NONE && !c->req.done &&
            tw_msg_uint(m, TW_F_SEQ, 0) == c->req.seq && c->req.seq) {
            c->req.done = 1;
            c->req.rc = code;
        }
        s_not_active(c, m);
        return 1;
    }
    if (!m->f[TW_F_SEQ]) {
        tw_debug("client.error", "broker error %d: %s", code, c->last_error);
        if ((code == TW_ECOMMAND || code == TW_EWORKER) &&
            c->req.kind != S_REQ_NONE && !c->req.done) {
            /* The request reached a socket that does not take client
             * commands (the broker's backend): it will never be answered,
             * and the message names the right endpoint. */
            c->req.done = 1;
            c->req.rc = code;
        }
        if (code == TW_ECOMMAND || code == TW_EWORKER) {
            c->refused = code;
        }
        return 1;
    }
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    if (seq && tw_idmap_del(&c->requery, seq)) {
        /* A re-query refused: the push or the next re-query answers. */
        return 1;
    }
    if (c->req.kind != S_REQ_NONE && !c->req.done && seq == c->req.seq) {
        c->req.done = 1;
        c->req.rc = code;
    } else if (tw_idmap_del(&c->pending, seq)) {
        tw__outbox_ack(&c->keep, seq);
        tw_ack_t ack = {seq, 0, code, c->last_error, 0};
        s_ack_dispatch(c, &ack);
    }
    return 1;
}

/* Act on one decoded message. Returns 1 if it was used, 0 if ignored. */
static int
s_dispatch(tw_client_t *c, const tw_msg_t *m)
{
    if (!(tw_proto_cmd_dirs(m->cmd) & TW_B2C)) {
        tw_debug("client.recv", "ignoring %s from the broker",
                 tw_proto_cmd_name(m->cmd));
        return 0;
    }
    switch (m->cmd) {
    case TW_CMD_ACK:
        s_on_ack(c, m);
        return 1;
    case TW_CMD_RESULT:
        return s_on_result(c, m);
    case TW_CMD_REPLY:
        return s_on_reply(c, m);
    case TW_CMD_ERROR:
        return s_on_error(c, m);
    case TW_CMD_CHAN:
        return tw__client_on_chan(c, m, c->chan_cb, c->chan_arg);
    case TW_CMD_BYE:
        c->bye = 1;
        return 1;
    case TW_CMD_HEARTBEAT:
        if (m->f[TW_F_PUB]) {
            size_t pl;
            const char *p = tw_msg_str(m, TW_F_PUB, &pl);
            tw_free(c->pub);
            c->pub = tw_strndup(p, pl);
        }
        if (c->req.kind == S_REQ_PING && !c->req.done) {
            c->req.done = 1;
            c->req.rc = 0;
        }
        return 1;
    default:
        return 0;
    }
}

static void s_on_boot(tw_client_t *c, uint64_t boot);

/* What receiving one message gave. */
enum { S_GOT_NOTHING, S_GOT_IGNORED, S_GOT_HANDLED };

/* Receive and dispatch one message without blocking. Returns S_GOT_* or
 * TW_EIO. */
static int
s_recv_one(tw_client_t *c)
{
    zmq_msg_t f[2];
    int nf = 0;
    int ok = 1;

    if (!c->sock) {
        return S_GOT_NOTHING; /* reconnecting */
    }
    zmq_msg_init(&f[0]);
    if (zmq_msg_recv(&f[0], c->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f[0]);
        return errno == EAGAIN || errno == EINTR ? S_GOT_NOTHING : TW_EIO;
    }
    nf = 1;
    /* Anything at all from the broker shows the link is alive. */
    c->last_recv = tw_now_ms();
    c->ping_at = 0;
    c->backoff_ms = c->opts.reconnect_min_ms;
    zmq_msg_init(&f[1]);
    /* The rest of a multipart message is already here (ZeroMQ delivers
     * messages whole): read it all, keep at most two frames. */
    int more = zmq_msg_more(&f[0]);
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, c->sock, 0) < 0) {
            zmq_msg_close(&part);
            ok = 0;
            break;
        }
        more = zmq_msg_more(&part);
        if (nf == 1) {
            zmq_msg_move(&f[1], &part);
            nf = 2;
        } else {
            ok = 0; /* too many frames */
        }
        zmq_msg_close(&part);
    }
    int got = S_GOT_IGNORED;
    if (ok && nf == 2) {
        tw_msg_t m;
        int rc = tw_msg_decode(&m, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]),
                               zmq_msg_data(&f[1]), zmq_msg_size(&f[1]));
        if (rc == 0) {
            int refused = 0;
            if (m.f[TW_F_HA] && (tw_proto_cmd_dirs(m.cmd) & TW_B2C) &&
                !(m.cmd == TW_CMD_ERROR &&
                  tw_msg_int(&m, TW_F_CODE, 0) == TW_ENOTACTIVE)) {
                refused = s_fence(c, tw_msg_uint(&m, TW_F_HA, 0)) != 0;
            }
            if (!refused && m.f[TW_F_BOOT] &&
                (tw_proto_cmd_dirs(m.cmd) & TW_B2C)) {
                s_on_boot(c, tw_msg_uint(&m, TW_F_BOOT, 0));
            }
            if (!refused) {
                got = s_dispatch(c, &m) ? S_GOT_HANDLED : S_GOT_IGNORED;
            }
            tw_msg_release(&m);
        } else {
            tw_debug("client.recv", "dropping malformed message: %s",
                     tw_strerror(rc));
        }
    } else {
        tw_debug("client.recv", "dropping a message that is not 2 frames");
    }
    zmq_msg_close(&f[0]);
    zmq_msg_close(&f[1]);
    return got;
}

/* Receive everything already queued, up to a budget. Returns the number
 * of messages handled, or TW_EIO. */
static int
s_drain(tw_client_t *c)
{
    int handled = 0;
    for (int i = 0; i < S_DRAIN_BUDGET; i++) {
        int got = s_recv_one(c);
        if (got < 0) {
            return got;
        }
        if (got == S_GOT_NOTHING) {
            break;
        }
        if (got == S_GOT_HANDLED) {
            handled++;
        }
    }
    return handled;
}

/* Milliseconds left until `deadline` (0 when passed); -1 = no deadline. */
static long
s_left(int64_t deadline)
{
    if (deadline < 0) {
        return -1;
    }
    int64_t left = deadline - (int64_t)tw_now_ms();
    return left > 0 ? (long)left : 0;
}

static int64_t
s_deadline(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : (int64_t)tw_now_ms() + timeout_ms;
}

/* ------------------------------------------------------------------ */
/* Liveness and reconnection                                          */

/* Close `sock` and its monitor. */
static void
s_close_socket(tw_client_t *c, void *sock)
{
    tw_zmon_stop(sock, c->mon);
    c->mon = NULL;
    if (sock) {
        zmq_close(sock);
    }
}

/* A new DEALER with the client's routing id, connected to its endpoint;
 * NULL if libzmq refused (a bad endpoint, bad keys). */
static void *
s_open_socket(tw_client_t *c)
{
    void *sock = zmq_socket(c->ctx, ZMQ_DEALER);
    if (!sock) {
        return NULL;
    }
    int hwm = S_HWM;
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_ROUTING_ID, c->rid, strlen(c->rid));
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    /* A broker's batches stay under 4 MiB plus one payload; a far larger
     * frame is not from a broker, and libzmq drops that connection. */
    int64_t maxmsg = 64LL << 20;
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    /* Watched from before the connect, so the first refusal is seen. */
    c->mon = tw_zmon_start(c->ctx, sock);
    c->up = 0;
    if ((c->curve && tw_curve_client_apply(sock, c->curve) != 0) ||
        zmq_connect(sock, c->endpoint) != 0) {
        s_close_socket(c, sock);
        return NULL;
    }
    return sock;
}

/* Free every message still waiting for room in the socket. */
static void
s_drop_queued(tw_client_t *c)
{
    while (c->head) {
        s_batch_t *b = c->head;
        c->head = b->next;
        zmq_msg_close(&b->f[0]);
        zmq_msg_close(&b->f[1]);
        tw_free(b);
    }
    c->tail = NULL;
}

static void
s_ping(tw_client_t *c, uint64_t now)
{
    tw_enc_t e;
    tw_enc_init(&e);
    /* With a broker pair (PROTOCOL.md 17.8): the highest fencing epoch
     * seen, and after losing a broker the vote. */
    uint64_t ha = tw_eplist_ha(c->eps), lost = 0;
    int vote = tw_eplist_count(c->eps) > 1 && tw_eplist_vote(c->eps, &lost);
    tw_enc_map(&e, (ha > 0) + vote);
    if (ha) {
        tw_enc_key(&e, TW_F_HA);
        tw_enc_uint(&e, ha);
    }
    if (vote) {
        tw_enc_key(&e, TW_F_LOST);
        tw_enc_uint(&e, lost);
    }
    s_send(c, &e, TW_CMD_HEARTBEAT);
    tw_enc_free(&e);
    c->ping_at = now;
    c->st.pings++;
}

/* Use the list's current endpoint from the next socket on. */
static void
s_follow_list(tw_client_t *c)
{
    const char *ep = tw_eplist_current(c->eps);
    if (strcmp(ep, c->endpoint) != 0) {
        tw_free(c->endpoint);
        c->endpoint = tw_strdup(ep);
    }
}

/* Drop the socket and everything queued for it (the outbox keeps the
 * submissions), and schedule a new one: after the backoff, which grows,
 * or (`soon`: the list moved to another broker) after the shortest. */
static void
s_drop_link(tw_client_t *c, uint64_t now, int soon)
{
    c->bye = 0;
    s_close_socket(c, c->sock);
    c->sock = NULL;
    s_drop_queued(c);
    tw_enc_free(&c->ob);
    tw_enc_init(&c->ob);
    s_outbox_reset(c);
    tw_idmap_free(&c->requery);
    tw_idmap_init(&c->requery);
    c->ping_at = 0;
    /* +-20 %, so clients of one broker do not come back in step. */
    c->rand = c->rand * 6364136223846793005ULL + 1442695040888963407ULL;
    if (soon) {
        c->backoff_ms = c->opts.reconnect_min_ms;
    }
    uint64_t d = c->backoff_ms * (80 + (c->rand >> 33) % 41) / 100;
    c->backoff_ms = c->backoff_ms * 2 > c->opts.reconnect_max_ms
                        ? c->opts.reconnect_max_ms
                        : c->backoff_ms * 2;
    c->reconnect_at = now + d;
}

/* The broker is lost: on to the next one of the list (the same one if
 * it is alone), and the next socket's first message votes. `why`: what
 * said so, or NULL for BYE or silence. */
static void
s_lost(tw_client_t *c, uint64_t now, const char *why)
{
    c->st.lost++;
    if (why) {
        tw_info("client.lost", "%s; reconnecting (%zu unacknowledged, %zu "
                "waiting)", why, c->keep.len, c->waiting.len);
    } else if (c->bye) {
        tw_info("client.lost", "%s said BYE; reconnecting (%zu "
                "unacknowledged, %zu waiting)", c->endpoint, c->keep.len,
                c->waiting.len);
    } else {
        tw_info("client.lost", "no answer from %s for %llu ms; reconnecting "
                "(%zu unacknowledged, %zu waiting)", c->endpoint,
                (unsigned long long)(now - c->last_recv), c->keep.len,
                c->waiting.len);
    }
    tw_eplist_lost(c->eps);
    s_follow_list(c);
    s_drop_link(c, now, 0);
}

/* A broker of a pair that is not the active one refused us (ERROR
 * ENOTACTIVE, PROTOCOL.md 17.8): go where it points, or ask it again. */
static void
s_not_active(tw_client_t *c, const tw_msg_t *m)
{
    size_t alen = 0;
    const char *active = tw_msg_str(m, TW_F_ACTIVE, &alen);
    const char *was = tw_eplist_current(c->eps);
    int moved = tw_eplist_not_active(c->eps, active, alen,
                                     tw_msg_uint(m, TW_F_LIVE, 0) != 0,
                                     tw_msg_uint(m, TW_F_HA, 0));
    s_follow_list(c);
    tw_info("client.notactive", "%s is not the active broker (%s); %s %s",
            was, c->last_error, moved ? "trying" : "asking again later:",
            c->endpoint);
    s_drop_link(c, tw_now_ms(), moved);
}

/* A message carried fencing epoch `ha`: 0 if it may be acted on, else
 * (a deposed active, below an epoch already seen) TW_EPERM after moving
 * on to the next broker. */
static int
s_fence(tw_client_t *c, uint64_t ha)
{
    const char *was = tw_eplist_current(c->eps);
    if (tw_eplist_served(c->eps, ha) == 0) {
        return 0;
    }
    s_follow_list(c);
    tw_warn("client.fenced", "%s answered under epoch %llu, below %llu: "
            "another broker took over from it; ignoring it, trying %s",
            was, (unsigned long long)ha,
            (unsigned long long)tw_eplist_ha(c->eps), c->endpoint);
    s_drop_link(c, tw_now_ms(), 1);
    return TW_EPERM;
}

static void
s_collect_id(uint64_t id, void *val, void *arg)
{
    (void)val;
    uint64_t **p = arg;
    *(*p)++ = id;
}

/* Resend every submission without an ACK (same seqs: the broker
 * deduplicates) and ask about every acknowledged task without an outcome:
 * after a new socket, a dropped connection or a broker that restarted
 * (PROTOCOL.md 6.3, 13). Returns how many were resent; *asked gets how
 * many were asked about. */
static size_t
s_resync(tw_client_t *c, size_t *asked)
{
    s_seal(c); /* what the outbox holds goes first, as it was */
    size_t resent = 0;
    for (const tw__ob_item_t *it = c->keep.head; it; it = it->next) {
        if (c->ob_items > 0 &&
            (c->ob_items >= TW__CLIENT_BATCH_ITEMS ||
             tw_enc_size(&c->ob) + it->len > TW__CLIENT_BATCH_BYTES)) {
            s_seal(c);
        }
        msgpack_sbuffer_write(&c->ob.sb, (const char *)it->bytes, it->len);
        c->ob_items++;
        resent++;
    }
    s_seal(c);
    c->st.resends += resent;
    size_t n = c->waiting.len;
    if (n) {
        uint64_t *ids = tw_malloc(n * sizeof *ids), *p = ids;
        tw_idmap_each(&c->waiting, s_collect_id, &p);
        for (size_t off = 0; off < n; off += TW_PROTO_MAX_ITEMS) {
            size_t k = n - off < TW_PROTO_MAX_ITEMS ? n - off
                                                     : TW_PROTO_MAX_ITEMS;
            tw__ids_t arg = {NULL, ids + off, k};
            uint64_t seq = c->next_seq++;
            tw_enc_t e;
            tw_enc_init(&e);
            tw__encode_ids(&e, seq, &arg);
            s_send(c, &e, TW_CMD_RESULT);
            tw_enc_free(&e);
            tw_idmap_put(&c->requery, seq, S_PENDING);
        }
        tw_free(ids);
        c->st.requeries += n;
    }
    *asked = n;
    return resent;
}

/* Connect again; resend the outbox, re-ask about waiting tasks. */
static void
s_reconnect(tw_client_t *c, uint64_t now)
{
    c->sock = s_open_socket(c);
    if (!c->sock) {
        tw_debug("client.reconnect", "cannot connect to %s: %s",
                 c->endpoint, zmq_strerror(zmq_errno()));
        c->reconnect_at = now + c->backoff_ms;
        return;
    }
    c->st.reconnects++;
    c->last_recv = now;
    /* Learn at once whether this broker answers; in a pair the ping goes
     * first, with the epoch and the vote, so a broker that must not take
     * the rest refuses it before it reads it. */
    s_ping(c, now);
    size_t n, resent = s_resync(c, &n);
    tw_info("client.reconnect", "connected to %s again: %zu submissions "
            "resent, %zu tasks asked about", c->endpoint, resent, n);
}

/* The link changed under the same socket (libzmq reconnected by itself,
 * or the broker that answers is a new run): resynchronise at once
 * instead of waiting for missed heartbeats. */
static void
s_relink(tw_client_t *c, const char *why)
{
    size_t n, resent = s_resync(c, &n);
    tw_info("client.relink", "%s: %zu submissions resent, %zu tasks asked "
            "about", why, resent, n);
    s_ping(c, tw_now_ms());
}

/* A message carried the broker's boot id. */
static void
s_on_boot(tw_client_t *c, uint64_t boot)
{
    if (boot == 0) {
        return;
    }
    if (c->boot && boot != c->boot && !c->relinked) {
        char why[160];
        snprintf(why, sizeof why, "the broker at %s restarted (boot %016llx, "
                 "was %016llx)", c->endpoint, (unsigned long long)boot,
                 (unsigned long long)c->boot);
        c->boot = boot;
        s_relink(c, why);
    }
    c->boot = boot;
    c->relinked = 0;
}

/* Record a connection problem; with fail_fast, end the waiting request
 * with it. */
static void
s_link_problem(tw_client_t *c, const tw_zmon_event_t *ev)
{
    if (ev->kind == TW_ZMON_REFUSED && c->link_kind &&
        c->link_kind != TW_ZMON_REFUSED) {
        return; /* libzmq retrying after the handshake failure said */
    }
    char line[512];
    if (ev->kind == TW_ZMON_FAILED && c->curve) {
        /* A CURVE server that refuses a key closes the connection without
         * a word (libzmq reports no AUTH failure to the client). */
        snprintf(line, sizeof line,
                 "%s closed the connection during the CURVE handshake: the "
                 "broker refused this client's key (it is not in its "
                 "--clients-keys directory) or --broker-key is not the "
                 "broker's key",
                 c->endpoint);
    } else {
        tw_zmon_describe(ev, "broker frontend", c->endpoint, line,
                         sizeof line);
    }
    if (!c->link_error || strcmp(c->link_error, line) != 0) {
        tw_info("client.link", "%s", line);
        tw_free(c->link_error);
        c->link_error = tw_strdup(line);
    }
    c->link_kind = ev->kind;
    if (c->fail_fast && !c->up && c->req.kind != S_REQ_NONE &&
        !c->req.done) {
        s_set_last_error(c, line, strlen(line));
        c->req.done = 1;
        c->req.rc = tw__client_link_failed(c);
    }
}

/* Act on what the socket monitor reported. */
static void
s_monitor(tw_client_t *c)
{
    tw_zmon_event_t ev;
    while (c->mon && tw_zmon_read(c->mon, &ev)) {
        switch (ev.kind) {
        case TW_ZMON_UP:
            c->up = 1;
            c->link_kind = 0;
            tw_free(c->link_error);
            c->link_error = NULL;
            break;
        case TW_ZMON_DOWN:
            if (c->up && tw_eplist_count(c->eps) > 1) {
                /* One of a pair: a broker process that dies closes its
                 * connections, and the other one is where to go now
                 * (PROTOCOL.md 17.8). */
                char why[320];
                snprintf(why, sizeof why, "the connection to %s dropped",
                         c->endpoint);
                s_lost(c, tw_now_ms(), why);
                return;
            }
            if (c->up) {
                char why[320];
                c->up = 0;
                snprintf(why, sizeof why, "the connection to %s dropped",
                         c->endpoint);
                c->relinked = 1;
                s_relink(c, why);
            } else {
                ev.kind = TW_ZMON_FAILED; /* closed in the handshake */
                s_link_problem(c, &ev);
            }
            break;
        case TW_ZMON_NONE:
            break;
        default:
            if (ev.kind == TW_ZMON_REFUSED && !c->up &&
                tw_eplist_count(c->eps) > 1) {
                /* One of a pair where nothing listens: its process is
                 * gone, and the other one is where to go (PROTOCOL.md
                 * 17.8), as when a connection drops. */
                char why[320];
                snprintf(why, sizeof why, "nothing accepts connections at "
                         "%s", c->endpoint);
                c->absent++;
                s_lost(c, tw_now_ms(), why);
                return;
            }
            s_link_problem(c, &ev);
            break;
        }
    }
}

/* Ping an idle broker, declare a silent one lost, reconnect when due. */
static void
s_keepalive(tw_client_t *c)
{
    uint64_t now = tw_now_ms();
    uint64_t hb = c->opts.heartbeat_ms, liv = c->opts.liveness;
    if (!c->sock) {
        if (now >= c->reconnect_at) {
            s_reconnect(c, now);
        }
        return;
    }
    /* A broker that says BYE is stopping: do not wait for the heartbeats
     * to notice, go and find the next one (or the same, restarted). */
    if (c->bye || (c->ping_at && now - c->last_recv >= liv * hb &&
                   now - c->ping_at >= (liv - 1) * hb)) {
        s_lost(c, now, NULL);
        return;
    }
    if (!c->ping_at && now - c->last_recv >= hb) {
        s_ping(c, now);
    }
}

/* Milliseconds until s_keepalive has something to do. */
static long
s_keepalive_due(const tw_client_t *c)
{
    uint64_t now = tw_now_ms();
    uint64_t hb = c->opts.heartbeat_ms, liv = c->opts.liveness;
    uint64_t at;
    if (!c->sock) {
        at = c->reconnect_at;
    } else if (c->bye) {
        at = now;
    } else if (!c->ping_at) {
        at = c->last_recv + hb;
    } else {
        at = c->last_recv + liv * hb;
        if (c->ping_at + (liv - 1) * hb > at) {
            at = c->ping_at + (liv - 1) * hb;
        }
    }
    return at > now ? (long)(at - now) : 0;
}

/* Send what is queued and dispatch incoming messages until at least one
 * was handled, the current request is answered, or `deadline` passes
 * (-1: never). Returns the number handled (0 on timeout or signal), or
 * TW_EIO. */
static int
s_pump(tw_client_t *c, int64_t deadline)
{
    int handled = 0;
    for (;;) {
        s_keepalive(c);
        int rc = s_send_queued(c);
        if (rc == TW_EIO) {
            return rc;
        }
        int n = s_drain(c);
        if (n < 0) {
            return n;
        }
        handled += n;
        if (handled > 0 || (c->req.kind != S_REQ_NONE && c->req.done)) {
            return handled;
        }
        long left = s_left(deadline);
        if (left == 0) {
            return 0;
        }
        long due = s_keepalive_due(c);
        if (left < 0 || due < left) {
            left = due;
        }
        zmq_pollitem_t pi[2] = {{c->sock, 0, ZMQ_POLLIN, 0},
                                {c->mon, 0, ZMQ_POLLIN, 0}};
        if (c->head) {
            pi[0].events |= ZMQ_POLLOUT;
        }
        int npi = c->sock ? (c->mon ? 2 : 1) : 0;
        if (zmq_poll(pi, npi, left) < 0) {
            return errno == EINTR ? 0 : TW_EIO;
        }
        s_monitor(c);
        if ((c->req.kind != S_REQ_NONE && c->req.done) ||
            (c->fail_fast && tw__client_link_failed(c))) {
            return handled;
        }
    }
}

/* Send a request built in `e` and wait for its answer. The caller has set
 * c->req.kind and friends. Returns the request's code or TW_EUNREACH. */
static int
s_request(tw_client_t *c, tw_enc_t *e, tw_cmd_t cmd, int timeout_ms)
{
    int64_t deadline = s_deadline(timeout_ms);
    /* A copy, for a broker of a pair where nothing listened: the request
     * goes to the other one. */
    tw_enc_t again;
    tw_enc_init(&again);
    msgpack_sbuffer_write(&again.sb, e->sb.data, e->sb.size);
    uint64_t absent = c->absent;
    int rc = s_send(c, e, cmd);
    while (rc != TW_EIO && !c->req.done) {
        if (c->absent != absent && c->sock) {
            absent = c->absent;
            tw_enc_t e2;
            tw_enc_init(&e2);
            msgpack_sbuffer_write(&e2.sb, again.sb.data, again.sb.size);
            rc = s_send(c, &e2, cmd);
            tw_enc_free(&e2);
            continue;
        }
        if (s_left(deadline) == 0) {
            if (c->link_error) {
                /* Say why, when the socket monitor knows. */
                s_set_last_error(c, c->link_error, strlen(c->link_error));
            }
            tw_enc_free(&again);
            return TW_EUNREACH;
        }
        rc = s_pump(c, deadline);
        if (rc < 0) {
            tw_enc_free(&again);
            return rc;
        }
    }
    tw_enc_free(&again);
    return rc == TW_EIO ? rc : c->req.rc;
}

/* Start request bookkeeping; TW_ESTATE if one is already running (a
 * callback called a request). */
static int
s_req_begin(tw_client_t *c, s_req_kind_t kind)
{
    if (c->req.kind != S_REQ_NONE) {
        return TW_ESTATE;
    }
    memset(&c->req, 0, sizeof c->req);
    c->req.kind = kind;
    c->req.seq = c->next_seq++;
    return 0;
}

static void
s_req_end(tw_client_t *c)
{
    free(c->req.data);
    tw_result_free(&c->req.result);
    memset(&c->req, 0, sizeof c->req);
}

/* Encode the body of the begun request with `encode`, send it as `cmd`
 * and wait for its answer, which stays in c->req for the caller to take
 * before s_req_end. Returns the request's code or TW_EUNREACH. */
static int
s_req_send(tw_client_t *c, tw_cmd_t cmd, tw__encode_fn encode,
           const void *arg, int timeout_ms)
{
    tw_enc_t e;
    tw_enc_init(&e);
    encode(&e, c->req.seq, arg);
    int rc = s_request(c, &e, cmd, timeout_ms);
    tw_enc_free(&e);
    return rc;
}

/* Clear the outputs of a request that may return REPLY data. Returns 0,
 * or TW_EINVAL for data without len. */
static int
s_reply_init(void **data, size_t *len)
{
    if (data) {
        *data = NULL;
    }
    if (len) {
        *len = 0;
    }
    return data && !len ? TW_EINVAL : 0;
}

/* Request bodies (internal.h), here and in pool.c. */
void
tw__enc_head(tw_enc_t *e, size_t n, uint64_t seq, const char *op)
{
    tw_enc_map(e, n);
    tw_enc_key(e, TW_F_SEQ);
    tw_enc_uint(e, seq);
    tw__enc_opt_cstr(e, TW_F_OP, op);
}

void
tw__enc_opt_cstr(tw_enc_t *e, tw_field_t f, const char *s)
{
    if (s) {
        tw_enc_key(e, f);
        tw_enc_cstr(e, s);
    }
}

void
tw__enc_opt_uint(tw_enc_t *e, tw_field_t f, uint64_t v)
{
    if (v) {
        tw_enc_key(e, f);
        tw_enc_uint(e, v);
    }
}

void
tw__enc_opt_bin(tw_enc_t *e, tw_field_t f, const void *p, size_t len)
{
    if (p) {
        tw_enc_key(e, f);
        tw_enc_bin(e, p, len);
    }
}

void
tw__encode_ids(tw_enc_t *e, uint64_t seq, const void *arg)
{
    const tw__ids_t *ids = arg;
    tw__enc_head(e, 2 + (ids->op != NULL), seq, ids->op);
    tw_enc_key(e, TW_F_IDS);
    tw_enc_array(e, ids->n);
    for (size_t i = 0; i < ids->n; i++) {
        tw_enc_uint(e, ids->ids[i]);
    }
}

/* ------------------------------------------------------------------ */
/* The API                                                            */

tw_client_t *
tw_client_new(const char *endpoint)
{
    return tw__client_new(endpoint, NULL);
}

tw_client_t *
tw__client_new(const char *endpoint, const tw_curve_client_t *curve)
{
    if (!endpoint) {
        return NULL;
    }
    tw_client_t *c = tw_calloc(1, sizeof *c);
    c->ctx = zmq_ctx_new();
    if (!c->ctx) {
        tw_free(c);
        return NULL;
    }
    memcpy(c->rid, "c-", 2);
    tw_random_hex(c->rid + 2, 16);
    c->rid[sizeof c->rid - 1] = '\0';
    char why[256];
    if (tw_eplist_parse(&c->eps, endpoint, why, sizeof why) != 0) {
        tw_err("client.endpoint", "'%s': %s", endpoint, why);
        zmq_ctx_term(c->ctx);
        tw_free(c);
        return NULL;
    }
    c->endpoint = tw_strdup(tw_eplist_current(c->eps));
    if (curve) {
        c->curve = tw_malloc(sizeof *c->curve);
        *c->curve = *curve;
    }
    c->sock = s_open_socket(c);
    if (!c->sock) {
        if (c->curve) {
            tw_keys_wipe(&c->curve->self);
            tw_free(c->curve);
        }
        tw_free(c->endpoint);
        tw_eplist_free(&c->eps);
        zmq_ctx_term(c->ctx);
        tw_free(c);
        return NULL;
    }
    c->next_seq = 1;
    tw_enc_init(&c->ob);
    s_outbox_reset(c);
    tw_idmap_init(&c->pending);
    c->last_error = tw_strdup("");
    c->opts = (tw_client_opts_t){S_HB_MS, S_LIVENESS, S_RECONNECT_MIN_MS,
                                 S_RECONNECT_MAX_MS, S_MAX_OUTBOX};
    tw__outbox_init(&c->keep);
    tw_idmap_init(&c->waiting);
    tw_idmap_init(&c->requery);
    c->last_recv = tw_now_ms();
    c->backoff_ms = c->opts.reconnect_min_ms;
    c->rand = (uint64_t)(uintptr_t)c ^ c->last_recv ^ 0x9e3779b97f4a7c15ULL;
    return c;
}

void
tw_client_destroy(tw_client_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    tw_client_t *c = *self_p;
    s_drop_queued(c);
    if (c->sock) {
        /* BYE: the broker closes the channels of our tasks at once (S93).
         * It may wait briefly for the socket to take it; nothing else is
         * waited for. */
        int linger = S_BYE_LINGER_MS;
        tw_enc_t e;
        tw_enc_init(&e);
        tw_enc_map(&e, 0);
        zmq_msg_t f[2];
        tw_enc_frames(&e, TW_CMD_BYE, f);
        if (zmq_msg_send(&f[0], c->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f[0]);
            zmq_msg_close(&f[1]);
            linger = 0;
        } else if (zmq_msg_send(&f[1], c->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f[1]);
        }
        tw_enc_free(&e);
        zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    }
    s_close_socket(c, c->sock);
    zmq_ctx_term(c->ctx);
    tw_free(c->link_error);
    tw_free(c->pub);
    tw__sess_free(c);
    s_req_end(c);
    tw_enc_free(&c->ob);
    tw_idmap_free(&c->pending);
    tw__outbox_free(&c->keep);
    tw_idmap_free(&c->waiting);
    tw_idmap_free(&c->requery);
    if (c->curve) {
        tw_keys_wipe(&c->curve->self);
        tw_free(c->curve);
    }
    tw_free(c->endpoint);
    tw_eplist_free(&c->eps);
    tw_free(c->last_error);
    tw_free(c->scratch);
    tw_free(c);
    *self_p = NULL;
}

void
tw_client_on_ack(tw_client_t *c, tw_ack_cb cb, void *arg)
{
    c->ack_cb = cb;
    c->ack_arg = arg;
}

void
tw_client_on_result(tw_client_t *c, tw_result_cb cb, void *arg)
{
    c->res_cb = cb;
    c->res_arg = arg;
}

void
tw_client_on_ack2(tw_client_t *c, tw_ack2_cb cb, void *arg)
{
    c->ack2_cb = cb;
    c->ack2_arg = arg;
}

void
tw_client_on_channel(tw_client_t *c, tw_chan_cb cb, void *arg)
{
    c->chan_cb = cb;
    c->chan_arg = arg;
}

int
tw__client_send(tw_client_t *c, tw_enc_t *e, tw_cmd_t cmd)
{
    return s_send(c, e, cmd);
}

void **
tw__client_sess(tw_client_t *c)
{
    return &c->sess;
}

/* The empty body {} of a ping's HEARTBEAT. */
static void
s_encode_ping(tw_enc_t *e, uint64_t seq, const void *arg)
{
    (void)seq;
    (void)arg;
    tw_enc_map(e, 0);
}

int
tw_client_ping(tw_client_t *c, int timeout_ms)
{
    int rc = s_req_begin(c, S_REQ_PING);
    if (rc != 0) {
        return rc;
    }
    rc = s_req_send(c, TW_CMD_HEARTBEAT, s_encode_ping, NULL, timeout_ms);
    s_req_end(c);
    return rc;
}

/* Queue one task; in a graph (tw__client_submit_as) it names parents by
 * seq (`as`) and the batch is never sealed here, so the whole graph goes
 * in one SUBMIT. */
static int
s_submit(tw_client_t *c, const tw_task_spec_t *spec, const uint64_t *as,
         size_t nas, int graph, uint64_t *seq_out)
{
    if (!spec || !spec->handler) {
        return TW_EINVAL;
    }
    int closed = tw__sess_closed(c);
    if (closed) {
        return closed; /* S80: a stopped run takes no more work */
    }
    size_t hlen = strnlen(spec->handler, TW_PROTO_MAX_NAME + 1);
    if (hlen == 0 || hlen > TW_PROTO_MAX_NAME) {
        return TW_EINVAL;
    }
    size_t alen = spec->args ? spec->args_len : 0;
    if (alen > TW__CLIENT_MAX_ARGS) {
        return TW_E2BIG;
    }
    if (spec->args && !tw_mp_one(spec->args, alen, TW_MP_DEPTH_DECODE)) {
        return TW_EINVAL;
    }
    size_t glen = 0; /* bytes the pool, groups and key add at most */
    if (tw__spec_names_check(spec, &glen) != 0) {
        return TW_EINVAL;
    }
    if (c->keep.len >= c->opts.max_outbox) {
        return TW_EFULL;
    }
    /* Keep each SUBMIT well under the broker's frame limit. */
    if (!graph && c->ob_items > 0 &&
        tw_enc_size(&c->ob) + alen + hlen + glen + 64 >
            TW__CLIENT_BATCH_BYTES) {
        s_seal(c);
    }

    uint64_t seq = c->next_seq++;
    size_t start = tw_enc_size(&c->ob);
    size_t n = 2 + (spec->args ? 1 : 0) + (spec->timeout_ms ? 1 : 0) +
               (spec->priority ? 1 : 0) + (spec->retries ? 1 : 0) +
               (nas ? 1 : 0) + tw__spec_names_fields(spec);
    tw_enc_map(&c->ob, n);
    tw_enc_ikey(&c->ob, TW_I_SEQ);
    tw_enc_uint(&c->ob, seq);
    tw_enc_ikey(&c->ob, TW_I_H);
    tw_enc_str(&c->ob, spec->handler, hlen);
    if (spec->args) {
        tw_enc_ikey(&c->ob, TW_I_A);
        tw_enc_bin(&c->ob, spec->args, alen);
    }
    if (spec->timeout_ms) {
        tw_enc_ikey(&c->ob, TW_I_TO);
        tw_enc_uint(&c->ob, spec->timeout_ms);
    }
    if (spec->priority) {
        tw_enc_ikey(&c->ob, TW_I_PRI);
        tw_enc_int(&c->ob, spec->priority);
    }
    if (spec->retries) {
        tw_enc_ikey(&c->ob, TW_I_RE);
        tw_enc_uint(&c->ob, spec->retries);
    }
    tw__spec_names_encode(&c->ob, spec);
    if (nas) {
        tw_enc_ikey(&c->ob, TW_I_AS);
        tw_enc_array(&c->ob, nas);
        for (size_t i = 0; i < nas; i++) {
            tw_enc_uint(&c->ob, as[i]);
        }
    }
    tw__outbox_add(&c->keep, seq, c->ob.sb.data + start,
                   tw_enc_size(&c->ob) - start);
    c->ob_items++;
    tw_idmap_put(&c->pending, seq, S_PENDING);
    if (seq_out) {
        *seq_out = seq;
    }
    tw__sess_submitted(c, seq, spec);
    if (!graph && (c->ob_items >= TW__CLIENT_BATCH_ITEMS ||
                   tw_enc_size(&c->ob) >= TW__CLIENT_BATCH_BYTES)) {
        s_seal(c);
        /* A full socket is not an error here: the batch stays queued. */
        if (s_send_queued(c) == TW_EIO) {
            tw_debug("client.send", "send failed: %s", zmq_strerror(errno));
        }
    }
    return 0;
}

int
tw_client_submit(tw_client_t *c, const tw_task_spec_t *spec,
                 uint64_t *seq_out)
{
    return s_submit(c, spec, NULL, 0, 0, seq_out);
}

int
tw__client_submit_as(tw_client_t *c, const tw_task_spec_t *spec,
                     const uint64_t *as, size_t nas, uint64_t *seq_out)
{
    return s_submit(c, spec, as, nas, 1, seq_out);
}

void
tw__client_seal(tw_client_t *c)
{
    s_seal(c);
}

size_t
tw__client_outbox_room(const tw_client_t *c)
{
    return c->keep.len >= c->opts.max_outbox ? 0
                                             : c->opts.max_outbox - c->keep.len;
}

void
tw__client_swap_ack2(tw_client_t *c, tw_ack2_cb *cb, void **arg)
{
    tw_ack2_cb ocb = c->ack2_cb;
    void *oarg = c->ack2_arg;
    c->ack2_cb = *cb;
    c->ack2_arg = *arg;
    *cb = ocb;
    *arg = oarg;
}

int
tw_client_flush(tw_client_t *c)
{
    s_seal(c);
    return s_send_queued(c);
}

int
tw_client_poll(tw_client_t *c, int timeout_ms)
{
    s_seal(c);
    return s_pump(c, s_deadline(timeout_ms));
}

int
tw_client_wait_all(tw_client_t *c, int timeout_ms)
{
    uint64_t last = tw_now_ms();
    while (c->pending.len > 0) {
        int64_t deadline = timeout_ms < 0 ? -1 : (int64_t)last + timeout_ms;
        if (s_left(deadline) == 0) {
            return TW_ETIMEDOUT;
        }
        int n = tw_client_poll(c, (int)s_left(deadline));
        if (n < 0) {
            return n;
        }
        if (n > 0) {
            last = tw_now_ms();
        }
    }
    return 0;
}

size_t
tw_client_outstanding(const tw_client_t *c)
{
    return c->pending.len;
}

int
tw_client_result(tw_client_t *c, uint64_t id, int timeout_ms,
                 tw_result_t **out)
{
    if (!out) {
        return TW_EINVAL;
    }
    *out = NULL;
    int rc = s_req_begin(c, S_REQ_RESULT);
    if (rc != 0) {
        return rc;
    }
    c->req.id = id;
    tw__ids_t arg = {NULL, &id, 1};
    rc = s_req_send(c, TW_CMD_RESULT, tw__encode_ids, &arg, timeout_ms);
    if (rc == 0) {
        *out = c->req.result;
        c->req.result = NULL;
    }
    s_req_end(c);
    return rc;
}

void
tw_result_free(tw_result_t **r)
{
    if (r && *r) {
        tw_free(*r);
        *r = NULL;
    }
}

int
tw__client_cancel(tw_client_t *c, const uint64_t *ids, size_t n,
                  int timeout_ms, void **data, size_t *len)
{
    if (s_reply_init(data, len) != 0 || !ids || n == 0 ||
        n > TW_PROTO_MAX_ITEMS) {
        return TW_EINVAL;
    }
    tw__ids_t arg = {NULL, ids, n};
    return tw__client_request(c, TW_CMD_CANCEL, tw__encode_ids, &arg,
                              timeout_ms, data, len);
}

int
tw_client_cancel(tw_client_t *c, const uint64_t *ids, size_t n,
                 int timeout_ms)
{
    return tw__client_cancel(c, ids, n, timeout_ms, NULL, NULL);
}

/* The body {seq, what} of QUERY; `arg` is the checked `what`. */
static void
s_encode_query(tw_enc_t *e, uint64_t seq, const void *arg)
{
    tw__enc_head(e, 2, seq, NULL);
    tw_enc_key(e, TW_F_WHAT);
    tw_enc_cstr(e, arg);
}

int
tw_client_query(tw_client_t *c, const char *what, int timeout_ms,
                void **data, size_t *len)
{
    if (s_reply_init(data, len) != 0 || !what || !data) {
        return TW_EINVAL;
    }
    size_t wlen = strnlen(what, 33);
    if (wlen == 0 || wlen > 32) {
        return TW_EINVAL;
    }
    return tw__client_request(c, TW_CMD_QUERY, s_encode_query, what,
                              timeout_ms, data, len);
}

int
tw__client_request(tw_client_t *c, tw_cmd_t cmd, tw__encode_fn encode,
                   const void *arg, int timeout_ms, void **data, size_t *len)
{
    int rc = s_reply_init(data, len);
    if (rc != 0) {
        return rc;
    }
    rc = s_req_begin(c, S_REQ_REPLY);
    if (rc != 0) {
        return rc;
    }
    c->req.want_data = data != NULL;
    rc = s_req_send(c, cmd, encode, arg, timeout_ms);
    if (rc == 0 && data) {
        *data = c->req.data;
        *len = c->req.len;
        c->req.data = NULL;
    }
    s_req_end(c);
    return rc;
}

/* 1 if `s` is NULL or a string of min..max bytes. */
static int
s_str_ok(const char *s, size_t min, size_t max)
{
    if (!s) {
        return 1;
    }
    size_t n = strnlen(s, max + 1);
    return n >= min && n <= max;
}

/* Check a station request before anything is encoded. */
static int
s_station_check(const tw_station_req_t *r)
{
    if (!r || !r->op || !s_str_ok(r->op, 1, 32) ||
        !s_str_ok(r->sid, 1, TW_PROTO_MAX_NAME) ||
        !s_str_ok(r->handler, 1, TW_PROTO_MAX_NAME) ||
        !s_str_ok(r->next, 0, 16) || !s_str_ok(r->placement, 0, 16) ||
        !s_str_ok(r->restart, 0, 16) ||
        !s_str_ok(r->code, 0, TW_PROTO_MAX_NAME)) {
        return TW_EINVAL;
    }
    if ((r->ntags > 0 && !r->tags) || r->ntags > TW_PROTO_MAX_TAGS) {
        return TW_EINVAL;
    }
    for (size_t i = 0; i < r->ntags; i++) {
        const tw_station_tag_t *t = &r->tags[i];
        if (!t->key || !t->value || !s_str_ok(t->key, 1, TW_PROTO_MAX_NAME) ||
            !s_str_ok(t->value, 0, TW_PROTO_MAX_NAME)) {
            return TW_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(r->tags[j].key, t->key) == 0) {
                return TW_EINVAL;
            }
        }
    }
    size_t alen = r->args ? r->args_len : 0;
    size_t plen = r->payload ? r->payload_len : 0;
    if (alen > TW__CLIENT_MAX_ARGS || plen > TW__CLIENT_MAX_ARGS - alen) {
        return TW_E2BIG;
    }
    if ((r->args && !tw_mp_one(r->args, alen, TW_MP_DEPTH_DECODE)) ||
        (r->payload && !tw_mp_one(r->payload, plen, TW_MP_DEPTH_DECODE))) {
        return TW_EINVAL;
    }
    return 0;
}

/* The body {seq, op, ...} of a checked station request `arg`. */
static void
s_station_encode(tw_enc_t *e, uint64_t seq, const void *arg)
{
    const tw_station_req_t *r = arg;
    size_t n = 2 + (r->sid != NULL) + (r->handler != NULL) +
               (r->args != NULL) + (r->next != NULL) +
               (r->interval_ms != 0) + (r->timeout_ms != 0) +
               (r->code != NULL) + (r->ntags != 0) +
               (r->placement != NULL) + (r->restart != NULL) +
               (r->payload != NULL);
    tw__enc_head(e, n, seq, r->op);
    tw__enc_opt_cstr(e, TW_F_SID, r->sid);
    tw__enc_opt_cstr(e, TW_F_HANDLER, r->handler);
    tw__enc_opt_bin(e, TW_F_ARGS, r->args, r->args_len);
    tw__enc_opt_cstr(e, TW_F_NEXT, r->next);
    tw__enc_opt_uint(e, TW_F_INTERVAL, r->interval_ms);
    tw__enc_opt_uint(e, TW_F_TIMEOUT, r->timeout_ms);
    tw__enc_opt_cstr(e, TW_F_STCODE, r->code);
    if (r->ntags) {
        tw_enc_key(e, TW_F_TAGS);
        tw_enc_map(e, r->ntags);
        for (size_t i = 0; i < r->ntags; i++) {
            tw_enc_cstr(e, r->tags[i].key);
            tw_enc_cstr(e, r->tags[i].value);
        }
    }
    tw__enc_opt_cstr(e, TW_F_PLACEMENT, r->placement);
    tw__enc_opt_cstr(e, TW_F_RESTART, r->restart);
    tw__enc_opt_bin(e, TW_F_PAYLOAD, r->payload, r->payload_len);
}

int
tw_client_station(tw_client_t *c, const tw_station_req_t *req,
                  int timeout_ms, void **data, size_t *len)
{
    int rc = s_reply_init(data, len);
    if (rc == 0) {
        rc = s_station_check(req);
    }
    if (rc != 0) {
        return rc;
    }
    return tw__client_request(c, TW_CMD_STATION, s_station_encode, req,
                              timeout_ms, data, len);
}

int
tw_client_set_opts(tw_client_t *c, const tw_client_opts_t *o)
{
    if (!o) {
        return TW_EINVAL;
    }
    tw_client_opts_t n = c->opts;
    n.heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : n.heartbeat_ms;
    n.liveness = o->liveness ? o->liveness : n.liveness;
    n.reconnect_min_ms =
        o->reconnect_min_ms ? o->reconnect_min_ms : n.reconnect_min_ms;
    n.reconnect_max_ms =
        o->reconnect_max_ms ? o->reconnect_max_ms : n.reconnect_max_ms;
    n.max_outbox = o->max_outbox ? o->max_outbox : n.max_outbox;
    if (n.liveness < 2 || n.reconnect_min_ms > n.reconnect_max_ms) {
        return TW_EINVAL;
    }
    c->opts = n;
    c->backoff_ms = n.reconnect_min_ms;
    return 0;
}

void
tw_client_stats(const tw_client_t *c, tw_client_stats_t *out)
{
    *out = c->st;
    out->unacked = c->keep.len;
    out->waiting = c->waiting.len;
}

void
tw__client_fail_fast(tw_client_t *c, int on)
{
    c->fail_fast = on;
}

const char *
tw__client_link_error(const tw_client_t *c)
{
    return c->link_error;
}

int
tw__client_link_failed(const tw_client_t *c)
{
    if (c->refused) {
        return c->refused;
    }
    return c->up || !c->link_kind ? 0 : TW_EUNREACH;
}

const char *
tw__client_status_ep(const tw_client_t *c, char *buf, size_t len)
{
    if (!c->pub || !*c->pub) {
        return NULL;
    }
    return tw_endpoint_rehost(c->pub, c->endpoint, buf, len);
}

const char *
tw_client_last_error(const tw_client_t *c)
{
    return c->last_error;
}

const char *
tw_client_strerror(int err)
{
    return tw_strerror(err);
}
