/*  tests/unit/test_client_pool.c - pools, groups, maps, events and the
 *  session run of libtaskwheel, against a fake broker.
 *
 *  The fake broker is a raw ROUTER on an ephemeral TCP port, run in a
 *  thread, that speaks just enough of the wire protocol: it acknowledges
 *  SUBMITs (refusing handler "nope", answering a repeated dedup key with
 *  the first id and dup), completes tasks either at once or a few per
 *  tick (slowly, to test the lazy feeding bound), never completes handler
 *  "sleepy" until it is cancelled, cancels "cancelme" at once, fails
 *  "fail" with "boom", and answers GROUP, POOL and CANCEL requests from a
 *  small table of known groups, as the broker does (a group never used
 *  reads as empty, S98; POOL stats with handler "nope" is EHANDLER). It logs every request it got as one line
 *  of text, so the tests check what went on the wire. The client is only
 *  used from the test thread.
 *
 *  Seed-semantics numbers name what each test checks: S45-S46 (default
 *  group names, probing), S51-S53 (map feeding, num_concurrent, skipped
 *  items), S54 (check order), S56 (strict cancel codes), S58 (cancel
 *  group stops the feeder), S66 (start-group-k), S71-S82 (events and the
 *  run's exit states).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "client/internal.h"
#include "common/error.h"
#include "common/util.h"
#include "proto/proto.h"
#include "taskwheel/client.h"
#include "tests/unit/support/client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

/* How long a test waits for what must come: 3000 tasks under valgrind on
 * a busy machine take more than 5 s. A wait that must run out names its
 * own short time. */
#define WAIT_MS 30000
#define MAXTASKS 4096
#define MAXKNOWN 32

/* ------------------------------------------------------------------ */
/* The fake broker                                                    */

typedef struct {
    uint64_t id, seq;
    char h[32];
    unsigned char a[64];
    size_t alen;
    int has_a;
} task_t;

typedef struct {
    void *ctx;
    void *router;
    char endpoint[256];
    char peer[256];
    size_t peer_len;
    pthread_t th;
    atomic_int quit;
    /* Behaviour, set before the thread starts. */
    int tick_ms;  /* 0: complete at once; else per_tick every tick_ms */
    int per_tick;
    int locked, closed;
    /* State, shared under mu. */
    pthread_mutex_t mu;
    char known[MAXKNOWN][TW_PROTO_MAX_NAME + 1];
    int nknown;
    char log[32768];
    char last_item[512];
    task_t tasks[MAXTASKS]; /* acknowledged, not yet completed */
    size_t ntasks;
    size_t max_out;
    uint64_t next_id;
    uint64_t completed;
    char dupkey[32];
    uint64_t dupid;
    uint64_t last_tick;
} srv_t;

static void
srv_log(srv_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
srv_log(srv_t *s, const char *fmt, ...)
{
    size_t used = strlen(s->log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->log + used, sizeof s->log - used, fmt, ap);
    va_end(ap);
}

/* Send the body in `e` as `cmd` to the client. */
static void
srv_send(srv_t *s, tw_enc_t *e, tw_cmd_t cmd)
{
    zmq_msg_t f[2];
    tw_enc_frames(e, cmd, f);
    zmq_send(s->router, s->peer, s->peer_len, ZMQ_SNDMORE);
    zmq_msg_send(&f[0], s->router, ZMQ_SNDMORE);
    zmq_msg_send(&f[1], s->router, 0);
}

static void
srv_reply_begin(tw_enc_t *e, uint64_t seq)
{
    tw_enc_map(e, 2);
    tw_enc_key(e, TW_F_SEQ);
    tw_enc_uint(e, seq);
    tw_enc_key(e, TW_F_DATA);
}

static void
srv_error(srv_t *s, uint64_t seq, int code, const char *msg)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 3);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, seq);
    tw_enc_key(&e, TW_F_CODE);
    tw_enc_int(&e, code);
    tw_enc_key(&e, TW_F_MSG);
    tw_enc_cstr(&e, msg);
    srv_send(s, &e, TW_CMD_ERROR);
    tw_enc_free(&e);
}

static int
srv_known(srv_t *s, const char *g, size_t len)
{
    for (int i = 0; i < s->nknown; i++) {
        if (strlen(s->known[i]) == len && memcmp(s->known[i], g, len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Write one RESULT item for task `t` with state `st`. */
static void
srv_result_item(tw_enc_t *e, const task_t *t, int st)
{
    static const unsigned char nil = 0xc0;
    tw_enc_map(e, 4);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, t->id);
    tw_enc_ikey(e, TW_I_SEQ);
    tw_enc_uint(e, t->seq);
    tw_enc_ikey(e, TW_I_ST);
    tw_enc_uint(e, (uint64_t)st);
    if (st == TW_ST_OK) {
        tw_enc_ikey(e, TW_I_R);
        if (t->has_a) {
            tw_enc_bin(e, t->a, t->alen);
        } else {
            tw_enc_bin(e, &nil, 1);
        }
    } else {
        tw_enc_ikey(e, TW_I_ERR);
        tw_enc_cstr(e, st == TW_ST_CANCELLED ? "cancelled" : "boom");
    }
}

/* Complete (or cancel) the tasks whose index `pick` says, in one RESULT.
 * pick(s, i) returns the state to end task i with, or -1 to keep it. */
static void
srv_complete(srv_t *s, int (*pick)(srv_t *, size_t, void *), void *arg)
{
    tw_batch_t b;
    tw_batch_init(&b, 0);
    size_t keep = 0, n = 0;
    for (size_t i = 0; i < s->ntasks; i++) {
        int st = pick(s, i, arg);
        if (st < 0) {
            s->tasks[keep++] = s->tasks[i];
            continue;
        }
        srv_result_item(tw_batch_item(&b), &s->tasks[i], st);
        n++;
    }
    s->ntasks = keep;
    s->completed += n;
    if (n > 0) {
        zmq_msg_t f[2];
        tw_batch_frames(&b, TW_CMD_RESULT, f);
        zmq_send(s->router, s->peer, s->peer_len, ZMQ_SNDMORE);
        zmq_msg_send(&f[0], s->router, ZMQ_SNDMORE);
        zmq_msg_send(&f[1], s->router, 0);
    }
    tw_batch_free(&b);
}

/* Natural ends: ok, "fail" fails, "sleepy" stays; `arg` points at how
 * many may still end in this round. */
static int
srv_pick_natural(srv_t *s, size_t i, void *arg)
{
    int *budget = arg;
    const task_t *t = &s->tasks[i];
    if (strcmp(t->h, "sleepy") == 0 || *budget == 0) {
        return -1;
    }
    (*budget)--;
    return strcmp(t->h, "fail") == 0 ? TW_ST_ERROR : TW_ST_OK;
}

static int
srv_pick_cancelme(srv_t *s, size_t i, void *arg)
{
    (void)arg;
    return strcmp(s->tasks[i].h, "cancelme") == 0 ? TW_ST_CANCELLED : -1;
}

/* The ids in `arg` (a msgpack array) end cancelled. */
static int
srv_pick_ids(srv_t *s, size_t i, void *arg)
{
    const msgpack_object *ids = arg;
    for (uint32_t k = 0; k < ids->via.array.size; k++) {
        if (ids->via.array.ptr[k].via.u64 == s->tasks[i].id) {
            return TW_ST_CANCELLED;
        }
    }
    return -1;
}

static int
srv_pick_all(srv_t *s, size_t i, void *arg)
{
    (void)s;
    (void)i;
    (void)arg;
    return TW_ST_CANCELLED;
}

static task_t *
srv_task(srv_t *s, uint64_t id)
{
    for (size_t i = 0; i < s->ntasks; i++) {
        if (s->tasks[i].id == id) {
            return &s->tasks[i];
        }
    }
    return NULL;
}

static void
srv_on_submit(srv_t *s, const tw_msg_t *m)
{
    tw_batch_t b;
    tw_batch_init(&b, 0);
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        uint64_t seq = tw_item_uint(it, TW_I_SEQ, 0);
        size_t hl, kl, pl, al;
        const char *h = tw_item_str(it, TW_I_H, &hl);
        const char *k = tw_item_str(it, TW_I_K, &kl);
        const char *p = tw_item_str(it, TW_I_PL, &pl);
        const void *a = tw_item_bin(it, TW_I_A, &al);
        if (i == 0) {
            char gs[256] = "";
            const msgpack_object *g = it->f[TW_I_G];
            for (uint32_t j = 0; g && j < g->via.array.size; j++) {
                snprintf(gs + strlen(gs), sizeof gs - strlen(gs), "%s%.*s",
                         j ? "," : "", (int)g->via.array.ptr[j].via.str.size,
                         g->via.array.ptr[j].via.str.ptr);
            }
            snprintf(s->last_item, sizeof s->last_item,
                     "h=%.*s pl=%.*s g=%s dl=%llu k=%.*s", (int)hl, h,
                     p ? (int)pl : 1, p ? p : "-", g ? gs : "-",
                     (unsigned long long)tw_item_uint(it, TW_I_DL, 0),
                     k ? (int)kl : 1, k ? k : "-");
        }
        tw_enc_t *e = tw_batch_item(&b);
        if (hl == 4 && memcmp(h, "nope", 4) == 0) {
            tw_enc_map(e, 3);
            tw_enc_ikey(e, TW_I_SEQ);
            tw_enc_uint(e, seq);
            tw_enc_ikey(e, TW_I_CODE);
            tw_enc_int(e, TW_EHANDLER);
            tw_enc_ikey(e, TW_I_ERR);
            tw_enc_cstr(e, "unknown handler 'nope'");
            continue;
        }
        if (k && s->dupid && strlen(s->dupkey) == kl &&
            memcmp(s->dupkey, k, kl) == 0) {
            tw_enc_map(e, 3);
            tw_enc_ikey(e, TW_I_SEQ);
            tw_enc_uint(e, seq);
            tw_enc_ikey(e, TW_I_ID);
            tw_enc_uint(e, s->dupid);
            tw_enc_ikey(e, TW_I_DUP);
            tw_enc_uint(e, 1);
            continue;
        }
        task_t *t = &s->tasks[s->ntasks++];
        memset(t, 0, sizeof *t);
        t->id = s->next_id++;
        t->seq = seq;
        snprintf(t->h, sizeof t->h, "%.*s", (int)hl, h);
        if (a && al <= sizeof t->a) {
            memcpy(t->a, a, al);
            t->alen = al;
            t->has_a = 1;
        }
        if (k && kl < sizeof s->dupkey) {
            snprintf(s->dupkey, sizeof s->dupkey, "%.*s", (int)kl, k);
            s->dupid = t->id;
        }
        if (s->ntasks > s->max_out) {
            s->max_out = s->ntasks;
        }
        tw_enc_map(e, 2);
        tw_enc_ikey(e, TW_I_SEQ);
        tw_enc_uint(e, seq);
        tw_enc_ikey(e, TW_I_ID);
        tw_enc_uint(e, t->id);
    }
    zmq_msg_t f[2];
    tw_batch_frames(&b, TW_CMD_ACK, f);
    zmq_send(s->router, s->peer, s->peer_len, ZMQ_SNDMORE);
    zmq_msg_send(&f[0], s->router, ZMQ_SNDMORE);
    zmq_msg_send(&f[1], s->router, 0);
    tw_batch_free(&b);
    srv_complete(s, srv_pick_cancelme, NULL);
    if (s->tick_ms == 0) {
        int budget = MAXTASKS;
        srv_complete(s, srv_pick_natural, &budget);
    }
}

/* A field of a request for the log: its value or "-". */
static void
srv_field(const tw_msg_t *m, tw_field_t f, char *buf, size_t len)
{
    size_t sl;
    const char *str;
    if (!m->f[f]) {
        snprintf(buf, len, "-");
    } else if (m->f[f]->type == MSGPACK_OBJECT_NIL) {
        snprintf(buf, len, "nil");
    } else if ((str = tw_msg_str(m, f, &sl)) != NULL) {
        snprintf(buf, len, "%.*s", (int)sl, str);
    } else {
        snprintf(buf, len, "%lld", (long long)tw_msg_int(m, f, 0));
    }
}

static void
srv_group_info(tw_enc_t *e, const char *g, size_t gl, int64_t limit)
{
    tw_enc_map(e, 4);
    tw_enc_cstr(e, "group");
    tw_enc_str(e, g, gl);
    tw_enc_cstr(e, "limit");
    if (limit >= 0) {
        tw_enc_int(e, limit);
    } else {
        tw_enc_nil(e);
    }
    tw_enc_cstr(e, "full");
    tw_enc_cstr(e, "reject");
    tw_enc_cstr(e, "running");
    tw_enc_uint(e, 2);
}

static void
srv_on_group_pool(srv_t *s, const tw_msg_t *m)
{
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    char op[40], pool[140], group[140], limit[24], calls[24], full[24],
        n[24];
    srv_field(m, TW_F_OP, op, sizeof op);
    srv_field(m, TW_F_POOL, pool, sizeof pool);
    srv_field(m, TW_F_GROUP, group, sizeof group);
    srv_field(m, TW_F_LIMIT, limit, sizeof limit);
    srv_field(m, TW_F_CALLS, calls, sizeof calls);
    srv_field(m, TW_F_FULL, full, sizeof full);
    srv_field(m, TW_F_N, n, sizeof n);
    int is_group = m->cmd == TW_CMD_GROUP;
    size_t hl;
    const char *h = tw_msg_str(m, TW_F_HANDLER, &hl);
    srv_log(s, "%s %s pool=%s group=%s limit=%s calls=%s full=%s n=%s%s%.*s\n",
            is_group ? "GROUP" : "POOL", op, pool, group, limit, calls, full,
            n, h ? " h=" : "", h ? (int)hl : 0, h ? h : "");
    size_t gl = strlen(group);
    int known = srv_known(s, group, gl);
    tw_enc_t e;
    tw_enc_init(&e);
    if (!is_group && h && hl == 4 && memcmp(h, "nope", 4) == 0) {
        srv_error(s, seq, TW_EHANDLER, "unknown handler 'nope'");
    } else if (is_group && strcmp(op, "create") == 0 && known) {
        srv_error(s, seq, TW_EEXIST, "group exists (TaskGroupAlreadyExists)");
    } else if (is_group && strcmp(op, "ids") == 0) {
        srv_reply_begin(&e, seq);
        tw_enc_array(&e, 3);
        tw_enc_uint(&e, 4);
        tw_enc_uint(&e, 5);
        tw_enc_uint(&e, 6);
        srv_send(s, &e, TW_CMD_REPLY);
    } else if (is_group) {
        if (strcmp(op, "create") == 0 && s->nknown < MAXKNOWN) {
            snprintf(s->known[s->nknown++], sizeof s->known[0], "%s", group);
        }
        srv_reply_begin(&e, seq);
        if (strcmp(op, "list") == 0) {
            tw_enc_array(&e, 0);
        } else {
            srv_group_info(&e, group, gl, m->f[TW_F_LIMIT]
                                              ? tw_msg_int(m, TW_F_LIMIT, 0)
                                              : -1);
        }
        srv_send(s, &e, TW_CMD_REPLY);
    } else if (strcmp(op, "stop") == 0 || strcmp(op, "cancel_group") == 0 ||
               strcmp(op, "cancel_all") == 0) {
        /* stop: the newest first; the others: every task. */
        uint64_t want = strcmp(op, "stop") == 0 ? tw_msg_uint(m, TW_F_N, 0)
                                                : UINT64_MAX;
        size_t k = 0;
        srv_reply_begin(&e, seq);
        if (want == UINT64_MAX) {
            tw_enc_map(&e, 1);
            tw_enc_cstr(&e, "cancelled");
        }
        size_t cnt = s->ntasks < want ? s->ntasks : (size_t)want;
        tw_enc_array(&e, cnt);
        for (size_t i = s->ntasks; i > 0 && k < cnt; i--, k++) {
            tw_enc_uint(&e, s->tasks[i - 1].id);
        }
        srv_send(s, &e, TW_CMD_REPLY);
        if (want == UINT64_MAX) {
            srv_complete(s, srv_pick_all, NULL);
        }
    } else if (strcmp(op, "flush") == 0) {
        srv_reply_begin(&e, seq);
        tw_enc_map(&e, 1);
        tw_enc_cstr(&e, "forgotten");
        tw_enc_uint(&e, 9);
        srv_send(s, &e, TW_CMD_REPLY);
    } else {
        if (strcmp(op, "lock") == 0) {
            s->locked = 1;
        } else if (strcmp(op, "unlock") == 0) {
            s->locked = s->closed;
        } else if (strcmp(op, "close") == 0) {
            s->locked = s->closed = 1;
        }
        srv_reply_begin(&e, seq);
        tw_enc_map(&e, 6);
        tw_enc_cstr(&e, "size");
        tw_enc_uint(&e, 4);
        tw_enc_cstr(&e, "free");
        tw_enc_nil(&e);
        tw_enc_cstr(&e, "running");
        tw_enc_uint(&e, s->ntasks);
        tw_enc_cstr(&e, "pending");
        tw_enc_uint(&e, 0);
        tw_enc_cstr(&e, "locked");
        tw_enc_bool(&e, s->locked);
        tw_enc_cstr(&e, "closed");
        tw_enc_bool(&e, s->closed);
        srv_send(s, &e, TW_CMD_REPLY);
    }
    tw_enc_free(&e);
}

static void
srv_on_cancel(srv_t *s, const tw_msg_t *m)
{
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    const msgpack_object *ids = m->f[TW_F_IDS];
    int strict = m->f[TW_F_OP] != NULL;
    srv_log(s, "CANCEL %s n=%u\n", strict ? "strict" : "lenient",
            ids->via.array.size);
    for (uint32_t i = 0; strict && i < ids->via.array.size; i++) {
        uint64_t id = ids->via.array.ptr[i].via.u64;
        char why[96];
        if (id == 777) {
            snprintf(why, sizeof why, "task 777 is already being cancelled");
            srv_error(s, seq, TW_ECANCELED, why);
            return;
        }
        if (id == 778 || (!srv_task(s, id) && id < s->next_id)) {
            snprintf(why, sizeof why, "task %llu has already ended",
                     (unsigned long long)id);
            srv_error(s, seq, TW_EENDED, why);
            return;
        }
        if (!srv_task(s, id)) {
            snprintf(why, sizeof why, "task %llu is not a known task",
                     (unsigned long long)id);
            srv_error(s, seq, TW_ENOENT, why);
            return;
        }
    }
    tw_enc_t e;
    tw_enc_init(&e);
    srv_reply_begin(&e, seq);
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "cancelled");
    tw_enc_array(&e, ids->via.array.size);
    for (uint32_t i = 0; i < ids->via.array.size; i++) {
        tw_enc_uint(&e, ids->via.array.ptr[i].via.u64);
    }
    srv_send(s, &e, TW_CMD_REPLY);
    tw_enc_free(&e);
    srv_complete(s, srv_pick_ids, (void *)ids);
}

static void
srv_handle(srv_t *s, const tw_msg_t *m)
{
    tw_enc_t e;
    switch (m->cmd) {
    case TW_CMD_SUBMIT:
        srv_on_submit(s, m);
        break;
    case TW_CMD_GROUP:
    case TW_CMD_POOL:
        srv_on_group_pool(s, m);
        break;
    case TW_CMD_CANCEL:
        srv_on_cancel(s, m);
        break;
    case TW_CMD_HEARTBEAT:
        tw_enc_init(&e);
        tw_enc_map(&e, 0);
        srv_send(s, &e, TW_CMD_HEARTBEAT);
        tw_enc_free(&e);
        break;
    default:
        break;
    }
}

static void *
srv_main(void *arg)
{
    srv_t *s = arg;
    while (!atomic_load(&s->quit)) {
        zmq_pollitem_t pi = {s->router, 0, ZMQ_POLLIN, 0};
        int wait = s->tick_ms > 0 ? 1 : 10;
        if (zmq_poll(&pi, 1, wait) == 1) {
            zmq_msg_t id, hdr, body;
            zmq_msg_init(&id);
            zmq_msg_init(&hdr);
            zmq_msg_init(&body);
            zmq_msg_recv(&id, s->router, 0);
            zmq_msg_recv(&hdr, s->router, 0);
            zmq_msg_recv(&body, s->router, 0);
            pthread_mutex_lock(&s->mu);
            s->peer_len = zmq_msg_size(&id);
            memcpy(s->peer, zmq_msg_data(&id), s->peer_len);
            tw_msg_t m;
            if (tw_msg_decode(&m, zmq_msg_data(&hdr), zmq_msg_size(&hdr),
                              zmq_msg_data(&body),
                              zmq_msg_size(&body)) == 0) {
                srv_handle(s, &m);
                tw_msg_release(&m);
            }
            pthread_mutex_unlock(&s->mu);
            zmq_msg_close(&id);
            zmq_msg_close(&hdr);
            zmq_msg_close(&body);
        }
        if (s->tick_ms > 0 && s->peer_len > 0) {
            uint64_t now = tw_now_ms();
            if (now - s->last_tick >= (uint64_t)s->tick_ms) {
                s->last_tick = now;
                pthread_mutex_lock(&s->mu);
                int budget = s->per_tick;
                srv_complete(s, srv_pick_natural, &budget);
                pthread_mutex_unlock(&s->mu);
            }
        }
    }
    return NULL;
}

static srv_t *
srv_start(int tick_ms, int per_tick)
{
    srv_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->tick_ms = tick_ms;
    s->per_tick = per_tick;
    s->next_id = 100;
    pthread_mutex_init(&s->mu, NULL);
    s->ctx = zmq_ctx_new();
    s->router = zmq_socket(s->ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(s->router, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(s->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof s->endpoint;
    zmq_getsockopt(s->router, ZMQ_LAST_ENDPOINT, s->endpoint, &len);
    return s;
}

static void
srv_run(srv_t *s)
{
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void
srv_stop(srv_t *s)
{
    atomic_store(&s->quit, 1);
    pthread_join(s->th, NULL);
    zmq_close(s->router);
    zmq_ctx_term(s->ctx);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void
srv_add_known(srv_t *s, const char *g)
{
    snprintf(s->known[s->nknown++], sizeof s->known[0], "%s", g);
}

static uint64_t
srv_next_id(srv_t *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t id = s->next_id;
    pthread_mutex_unlock(&s->mu);
    return id;
}

/* A copy of the request log, emptied. */
static void
srv_take_log(srv_t *s, char *buf, size_t len)
{
    pthread_mutex_lock(&s->mu);
    size_t n = strlen(s->log);
    n = n < len - 1 ? n : len - 1;
    memcpy(buf, s->log, n);
    buf[n] = '\0';
    s->log[0] = '\0';
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------ */
/* Recording events                                                   */

typedef struct {
    char text[16384]; /* "who:KIND:seq " for every event */
    int counts[TW_EV_FINISHED + 1];
    int64_t unfinished; /* submitted minus ended, for map tasks */
    int64_t max_unfinished;
    int stop_after;     /* tw_stop once this many results arrived */
    int refill;         /* EMPTY handlers left that submit one more task */
    int nested_rc;      /* what tw_run returned from inside a callback */
    int dups;           /* SUBMITTED events with dup set */
    uint64_t seen[2048]; /* map item indexes seen with an outcome */
    tw_exit_state_t exit;
    int probe_late;     /* submit after tw_stop and in STOP, FINISHING,
                           FINISHED; record the results (S80) */
    int late_rc[8];
    int nlate;
} events_t;

/* S80: try to submit one more task, recording what tw_client_submit and
 * tw_client_apply said. */
static void
probe_submit(events_t *ev, tw_client_t *c)
{
    tw_task_spec_t spec = {.handler = "echo"};
    char name[TW_CLIENT_NAME_SIZE];
    if (ev->nlate + 2 <= 8) {
        ev->late_rc[ev->nlate++] = tw_client_submit(c, &spec, NULL);
        ev->late_rc[ev->nlate++] = tw_client_apply(c, &spec, 1, NULL, name,
                                                   sizeof name, WAIT_MS);
    }
}

static const char *
kind_name(tw_event_kind_t k)
{
    static const char *const names[] = {
        "?",      "START", "SUBMITTED", "REFUSED", "DONE",
        "RESULT", "EXCEPTION", "CANCELLED", "SKIPPED", "EMPTY",
        "STOP",   "TIMEOUT",   "FINISHING", "FINISHED"};
    return k <= TW_EV_FINISHED ? names[k] : "?";
}

static void
record(events_t *ev, const char *who, const tw_event_t *e)
{
    size_t used = strlen(ev->text);
    snprintf(ev->text + used, sizeof ev->text - used, "%s:%s:%llu ", who,
             kind_name(e->kind), (unsigned long long)e->seq);
}

static void
on_client_event(void *arg, const tw_event_t *e)
{
    events_t *ev = arg;
    ev->counts[e->kind]++;
    ev->dups += e->dup;
    if (e->group) {
        if (e->kind == TW_EV_SUBMITTED) {
            ev->unfinished++;
            if (ev->unfinished > ev->max_unfinished) {
                ev->max_unfinished = ev->unfinished;
            }
        } else if (e->kind == TW_EV_RESULT || e->kind == TW_EV_EXCEPTION ||
                   e->kind == TW_EV_CANCELLED) {
            ev->unfinished--;
            if (e->index < 2048 * 64) {
                ev->seen[e->index / 64] |= 1ull << (e->index % 64);
            }
        }
        return; /* map events are counted, not logged */
    }
    record(ev, "C", e);
    if (e->kind == TW_EV_START || e->kind == TW_EV_EMPTY) {
        ev->nested_rc = tw_run(e->client, 10, 1, 1, NULL);
    }
    if (e->kind == TW_EV_EMPTY && ev->refill > 0) {
        ev->refill--;
        tw_task_spec_t spec = {.handler = "echo"};
        assert_int_equal(tw_client_submit(e->client, &spec, NULL), 0);
    }
    if (e->kind == TW_EV_FINISHED) {
        ev->exit = *e->exit;
    }
    if (ev->probe_late && (e->kind == TW_EV_STOP ||
                           e->kind == TW_EV_FINISHING ||
                           e->kind == TW_EV_FINISHED)) {
        probe_submit(ev, e->client);
    }
}

static void
on_map_event(void *arg, const tw_event_t *e)
{
    events_t *ev = arg;
    on_client_event(ev, e);
    if (e->kind == TW_EV_RESULT && ev->stop_after > 0 &&
        ev->counts[TW_EV_RESULT] >= ev->stop_after) {
        tw_stop(e->client, "enough");
        if (ev->probe_late && ev->nlate == 0) {
            probe_submit(ev, e->client);
        }
    }
}

static void
on_task_event(void *arg, const tw_event_t *e)
{
    record(arg, "T", e);
}

/* Poll until `cond` holds or WAIT_MS passes. */
#define POLL_UNTIL(c, cond)                                                  \
    do {                                                                     \
        uint64_t end_ = tw_now_ms() + WAIT_MS;                               \
        while (!(cond) && tw_now_ms() < end_) {                              \
            assert_true(tw_client_poll((c), 50) >= 0);                       \
        }                                                                    \
        assert_true(cond);                                                   \
    } while (0)

/* ------------------------------------------------------------------ */
/* SUBMIT fields and requests on the wire                             */

static int s_ack2_dup = -1;
static uint64_t s_ack2_id;

static void
on_ack2(void *arg, const tw_ack_t *a)
{
    (void)arg;
    s_ack2_dup = a->dup;
    s_ack2_id = a->id;
}

static void
test_submit_fields(void **state)
{
    (void)state;
    srv_t *s = srv_start(0, 0);
    srv_run(s);
    tw_client_t *c = tw_suite_client_new(s->endpoint);
    assert_non_null(c);
    tw_client_on_ack(c, on_ack2, NULL);

    static const char *const groups[] = {"g1", "g2"};
    tw_task_spec_t spec = {.handler = "sleepy",
                           .pool = "p",
                           .groups = groups,
                           .ngroups = 2,
                           .delay_ms = 1500,
                           .key = "k1"};
    uint64_t seq;
    assert_int_equal(tw_client_submit(c, &spec, &seq), 0);
    POLL_UNTIL(c, s_ack2_dup == 0);
    uint64_t first = s_ack2_id;
    pthread_mutex_lock(&s->mu);
    assert_string_equal(s->last_item, "h=sleepy pl=p g=g1,g2 dl=1500 k=k1");
    pthread_mutex_unlock(&s->mu);

    /* The same key again: the first id, dup, and no outcome of its own;
     * the session reports it as SUBMITTED with dup and stops tracking
     * it. */
    events_t *ev = calloc(1, sizeof *ev);
    tw_client_on_event(c, on_client_event, ev);
    s_ack2_dup = -1;
    tw_task_spec_t again = {.handler = "echo", .key = "k1"};
    assert_int_equal(tw_client_submit(c, &again, &seq), 0);
    POLL_UNTIL(c, s_ack2_dup == 1);
    assert_int_equal(s_ack2_id, first);
    assert_int_equal(tw_client_outstanding(c), 1); /* only the sleepy one */
    char want[64];
    snprintf(want, sizeof want, "C:SUBMITTED:%llu ", (unsigned long long)seq);
    assert_string_equal(ev->text, want);
    assert_int_equal(ev->dups, 1);
    tw_exit_state_t st;
    assert_int_equal(tw_run(c, 100, 1, 1, &st), 0);
    assert_int_equal(st.code, TW_EXIT_TIMEOUT); /* the sleepy one */
    free(ev);

    /* Bad names are refused before anything is queued. */
    char longname[TW_PROTO_MAX_NAME + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    static const char *const empty[] = {""};
    const char *many[TW_CLIENT_MAX_GROUPS + 1];
    for (int i = 0; i <= TW_CLIENT_MAX_GROUPS; i++) {
        many[i] = "g";
    }
    tw_task_spec_t bad[] = {
        {.handler = "h", .pool = ""},
        {.handler = "h", .pool = longname},
        {.handler = "h", .groups = empty, .ngroups = 1},
        {.handler = "h", .groups = NULL, .ngroups = 1},
        {.handler = "h", .groups = many, .ngroups = TW_CLIENT_MAX_GROUPS + 1},
        {.handler = "h", .key = ""},
        {.handler = "h", .key = longname},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tw_client_submit(c, &bad[i], &seq), TW_EINVAL);
    }
    tw_client_destroy(&c);
    srv_stop(s);
}

static void
test_requests(void **state)
{
    (void)state;
    srv_t *s = srv_start(0, 0);
    srv_add_known(s, "old");
    srv_run(s);
    tw_client_t *c = tw_suite_client_new(s->endpoint);
    char log[4096];

    tw_pool_req_t req = {.op = "create",
                         .pool = "p",
                         .group = "g",
                         .has_limit = 1,
                         .limit = 0,
                         .has_calls = 1,
                         .calls = 7,
                         .full = "reject"};
    assert_int_equal(tw_client_group(c, &req, WAIT_MS, NULL, NULL), 0);
    assert_int_equal(tw_client_group(c, &req, WAIT_MS, NULL, NULL),
                     TW_EEXIST); /* S46 */
    assert_non_null(strstr(tw_client_last_error(c),
                           "TaskGroupAlreadyExists"));
    tw_group_info_t gi;
    assert_int_equal(tw_client_group_get(c, NULL, "nothere", WAIT_MS, &gi),
                     0); /* S98: a group never used reads as empty */
    /* S96: TW_CLIENT_LIMIT_NONE goes out as nil, "no limit". */
    tw_pool_req_t none = {.op = "set", .group = "g", .has_limit = 1,
                          .limit = TW_CLIENT_LIMIT_NONE};
    assert_int_equal(tw_client_group(c, &none, WAIT_MS, NULL, NULL), 0);
    assert_int_equal(tw_client_group_get(c, "p", "g", WAIT_MS, &gi), 0);
    assert_int_equal(gi.limit, -1); /* nil in the fake's reply */
    assert_int_equal(gi.calls, -1);
    assert_int_equal(gi.reject, 1);
    assert_int_equal(gi.running, 2);
    tw_pool_req_t clear = {.op = "clear", .group = "g"};
    assert_int_equal(tw_client_group(c, &clear, WAIT_MS, NULL, NULL), 0);
    tw_pool_req_t list = {.op = "list"};
    void *data = NULL;
    size_t len = 0;
    assert_int_equal(tw_client_group(c, &list, WAIT_MS, &data, &len), 0);
    assert_int_equal(len, 1);
    assert_int_equal(*(unsigned char *)data, 0x90); /* [] */
    free(data);
    uint64_t *ids;
    size_t n;
    assert_int_equal(tw_client_group_ids(c, NULL, "old", WAIT_MS, &ids, &n),
                     0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 4);
    assert_int_equal(ids[2], 6);
    free(ids);
    srv_take_log(s, log, sizeof log);
    assert_string_equal(
        log,
        "GROUP create pool=p group=g limit=0 calls=7 full=reject n=-\n"
        "GROUP create pool=p group=g limit=0 calls=7 full=reject n=-\n"
        "GROUP get pool=- group=nothere limit=- calls=- full=- n=-\n"
        "GROUP set pool=- group=g limit=nil calls=- full=- n=-\n"
        "GROUP get pool=p group=g limit=- calls=- full=- n=-\n"
        "GROUP clear pool=- group=g limit=- calls=- full=- n=-\n"
        "GROUP list pool=- group=- limit=- calls=- full=- n=-\n"
        "GROUP ids pool=- group=old limit=- calls=- full=- n=-\n");

    /* POOL operations. */
    tw_pool_info_t pi;
    assert_int_equal(tw_client_pool_stats(c, "p", WAIT_MS, &pi), 0);
    assert_int_equal(pi.size, 4);
    assert_int_equal(pi.free, -1);
    assert_int_equal(pi.locked, 0);
    assert_int_equal(tw_client_pool_op(c, NULL, "lock", WAIT_MS), 0);
    assert_int_equal(tw_client_pool_stats(c, NULL, WAIT_MS, &pi), 0);
    assert_int_equal(pi.locked, 1);
    assert_int_equal(tw_client_pool_op(c, NULL, "unlock", WAIT_MS), 0);
    assert_int_equal(tw_client_pool_op(c, NULL, "flush", WAIT_MS), 0);
    tw_pool_req_t size = {.op = "size", .has_limit = 1, .limit = 5};
    assert_int_equal(tw_client_pool(c, &size, WAIT_MS, NULL, NULL), 0);
    for (int i = 0; i < 3; i++) {
        tw_task_spec_t spec = {.handler = "sleepy"};
        assert_int_equal(tw_client_submit(c, &spec, NULL), 0);
    }
    assert_int_equal(tw_client_flush(c), 0);
    POLL_UNTIL(c, srv_next_id(s) == 103);
    assert_int_equal(tw_client_pool_stop(c, NULL, 2, WAIT_MS, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 102); /* S67: newest first */
    assert_int_equal(ids[1], 101);
    free(ids);
    assert_int_equal(tw_client_pool_stop(c, NULL, 0, WAIT_MS, &ids, &n), 0);
    assert_int_equal(n, 0);
    assert_null(ids);
    assert_int_equal(tw_client_cancel_group(c, "p", "g", WAIT_MS, &ids, &n),
                     0);
    assert_int_equal(n, 3);
    free(ids);
    assert_int_equal(tw_client_cancel_group(c, NULL, NULL, WAIT_MS, &ids, &n),
                     0);
    free(ids);
    srv_take_log(s, log, sizeof log);
    assert_string_equal(
        log,
        "POOL stats pool=p group=- limit=- calls=- full=- n=-\n"
        "POOL lock pool=- group=- limit=- calls=- full=- n=-\n"
        "POOL stats pool=- group=- limit=- calls=- full=- n=-\n"
        "POOL unlock pool=- group=- limit=- calls=- full=- n=-\n"
        "POOL flush pool=- group=- limit=- calls=- full=- n=-\n"
        "POOL size pool=- group=- limit=5 calls=- full=- n=-\n"
        "POOL stop pool=- group=- limit=- calls=- full=- n=2\n"
        "POOL stop pool=- group=- limit=- calls=- full=- n=-\n"
        "POOL cancel_group pool=p group=g limit=- calls=- full=- n=-\n"
        "POOL cancel_all pool=- group=- limit=- calls=- full=- n=-\n");

    /* Strict cancel (S56): the broker's codes come back as they are. */
    uint64_t one = 777;
    assert_int_equal(tw_client_cancel_strict(c, &one, 1, WAIT_MS),
                     TW_ECANCELED);
    one = 778;
    assert_int_equal(tw_client_cancel_strict(c, &one, 1, WAIT_MS),
                     TW_EENDED);
    assert_string_equal(tw_client_last_error(c), "task 778 has already ended");
    one = 5000;
    assert_int_equal(tw_client_cancel_strict(c, &one, 1, WAIT_MS),
                     TW_ENOENT);
    assert_int_equal(tw_client_cancel_strict(c, NULL, 1, WAIT_MS),
                     TW_EINVAL);
    assert_int_equal(tw_client_cancel_strict(c, &one, 0, WAIT_MS),
                     TW_EINVAL);
    srv_take_log(s, log, sizeof log);
    assert_string_equal(log, "CANCEL strict n=1\nCANCEL strict n=1\n"
                             "CANCEL strict n=1\n");

    /* Bad requests never reach the wire. */
    tw_pool_req_t badop = {.op = ""};
    tw_pool_req_t badpool = {.op = "stats", .pool = ""};
    assert_int_equal(tw_client_pool(c, &badop, WAIT_MS, NULL, NULL),
                     TW_EINVAL);
    assert_int_equal(tw_client_pool(c, &badpool, WAIT_MS, NULL, NULL),
                     TW_EINVAL);
    assert_int_equal(tw_client_pool(c, NULL, WAIT_MS, NULL, NULL), TW_EINVAL);
    tw_client_destroy(&c);
    srv_stop(s);
}

/* ------------------------------------------------------------------ */
/* Default names, checks, feeding                                     */

typedef struct {
    uint64_t next;   /* items handed out */
    uint64_t limit;  /* 0: endless */
    int bad_every;   /* every n-th item is not an array (0: never) */
    unsigned char buf[16];
} iter_t;

/* Items [i] (starmap-friendly arrays), or 0 at the limit. */
static int
iter_next(void *arg, const void **item, size_t *len)
{
    iter_t *it = arg;
    if (it->limit && it->next >= it->limit) {
        return 0;
    }
    uint64_t i = it->next++;
    if (it->bad_every && i % (uint64_t)it->bad_every == 1) {
        it->buf[0] = 0x05; /* a bare integer: not an array */
        *item = it->buf;
        *len = 1;
        return 1;
    }
    it->buf[0] = 0x91;
    it->buf[1] = 0xcf;
    for (int k = 0; k < 8; k++) {
        it->buf[2 + k] = (unsigned char)(i >> (56 - 8 * k));
    }
    *item = it->buf;
    *len = 10;
    return 1;
}

/* S54: map, starmap, kwmap and apply check the handler before anything
 * else, in the POOL stats request that also reads the pool's state, and
 * before the iterator gives a single item: an unknown handler is one
 * TW_EHANDLER, no group is made, nothing is submitted, and it wins over
 * a closed pool (the check order is handler, closed, locked). */
static void
test_map_unknown_handler(void **state)
{
    (void)state;
    srv_t *s = srv_start(0, 0);
    srv_run(s);
    tw_client_t *c = tw_client_new(s->endpoint);
    char log[4096];
    char name[TW_CLIENT_NAME_SIZE] = "x";
    tw_task_spec_t spec = {.handler = "nope"};
    iter_t it = {.limit = 0}; /* endless */
    tw_map_t m = {&spec, iter_next, &it, 4, NULL};
    assert_int_equal(tw_client_map(c, &m, name, sizeof name, WAIT_MS),
                     TW_EHANDLER);
    assert_int_equal(it.next, 0); /* no item was taken */
    assert_string_equal(name, "");
    assert_int_equal(tw_client_starmap(c, &m, name, sizeof name, WAIT_MS),
                     TW_EHANDLER);
    assert_int_equal(tw_client_apply(c, &spec, 3, NULL, name, sizeof name,
                                     WAIT_MS),
                     TW_EHANDLER);
    assert_int_equal(it.next, 0);
    assert_int_equal(tw_client_pool_op(c, NULL, "close", WAIT_MS), 0);
    assert_int_equal(tw_client_kwmap(c, &m, name, sizeof name, WAIT_MS),
                     TW_EHANDLER);
    assert_int_equal(it.next, 0);
    assert_int_equal(srv_next_id(s), 100); /* nothing was submitted */
    srv_take_log(s, log, sizeof log);
    assert_string_equal(
        log, "POOL stats pool=- group=- limit=- calls=- full=- n=- h=nope\n"
             "POOL stats pool=- group=- limit=- calls=- full=- n=- h=nope\n"
             "POOL stats pool=- group=- limit=- calls=- full=- n=- h=nope\n"
             "POOL close pool=- group=- limit=- calls=- full=- n=-\n"
             "POOL stats pool=- group=- limit=- calls=- full=- n=- h=nope\n");
    /* A known handler on the closed pool: TW_ECLOSED, still no item. */
    spec.handler = "echo";
    assert_int_equal(tw_client_map(c, &m, name, sizeof name, WAIT_MS),
                     TW_ECLOSED);
    assert_int_equal(it.next, 0);
    tw_client_destroy(&c);
    srv_stop(s);
}

static void
test_default_names(void **state)
{
    (void)state;
    srv_t *s = srv_start(0, 0);
    srv_add_known(s, "map-echo-group-0");
    srv_add_known(s, "map-echo-group-1");
    srv_add_known(s, "map-echo-group-3");
    srv_add_known(s, "apply-echo-group-0");
    srv_add_known(s, "start-group-1");
    srv_add_known(s, "taken");
    srv_run(s);
    tw_client_t *c = tw_suite_client_new(s->endpoint);
    char log[8192];
    char name[TW_CLIENT_NAME_SIZE];
    tw_task_spec_t spec = {.handler = "echo"};
    iter_t it = {.limit = 3};
    tw_map_t m = {&spec, iter_next, &it, 4, NULL};

    /* S45: the smallest index the broker does not know (2, not 4). */
    assert_int_equal(tw_client_map(c, &m, name, sizeof name, WAIT_MS), 0);
    assert_string_equal(name, "map-echo-group-2");
    /* S54: the handler is checked with the pool, in one request. */
    srv_take_log(s, log, sizeof log);
    assert_string_equal(
        log, "POOL stats pool=- group=- limit=- calls=- full=- n=- h=echo\n"
             "GROUP create pool=- group=map-echo-group-0 limit=4 calls=- "
             "full=- n=-\n"
             "GROUP create pool=- group=map-echo-group-1 limit=4 calls=- "
             "full=- n=-\n"
             "GROUP create pool=- group=map-echo-group-2 limit=4 calls=- "
             "full=- n=-\n");
    assert_int_equal(tw_client_wait_all(c, WAIT_MS), 0);
    pthread_mutex_lock(&s->mu);
    assert_string_equal(s->last_item,
                        "h=echo pl=- g=map-echo-group-2 dl=0 k=-");
    pthread_mutex_unlock(&s->mu);

    /* apply, starmap, kwmap (doublestarmap) name families. */
    assert_int_equal(tw_client_apply(c, &spec, 2, NULL, name, sizeof name,
                                     WAIT_MS),
                     0);
    assert_string_equal(name, "apply-echo-group-1");
    it.next = 0;
    assert_int_equal(tw_client_starmap(c, &m, name, sizeof name, WAIT_MS),
                     0);
    assert_string_equal(name, "starmap-echo-group-0");
    assert_int_equal(tw_client_kwmap(c, &m, name, sizeof name, WAIT_MS), 0);
    assert_string_equal(name, "doublestarmap-echo-group-0");
    assert_int_equal(tw_client_wait_all(c, WAIT_MS), 0);

    /* S66: start-group-k, k counting up, a known one passed over. */
    assert_int_equal(tw_client_start(c, &spec, 1, name, sizeof name,
                                     WAIT_MS),
                     0);
    assert_string_equal(name, "start-group-0");
    assert_int_equal(tw_client_start(c, &spec, 1, name, sizeof name,
                                     WAIT_MS),
                     0);
    assert_string_equal(name, "start-group-2");
    assert_int_equal(tw_client_start(c, &spec, 1, name, sizeof name,
                                     WAIT_MS),
                     0);
    assert_string_equal(name, "start-group-3");

    /* S46: an explicit name that exists; nothing is submitted. */
    assert_int_equal(tw_client_wait_all(c, WAIT_MS), 0);
    uint64_t before = srv_next_id(s);
    m.group = "taken";
    assert_int_equal(tw_client_map(c, &m, name, sizeof name, WAIT_MS),
                     TW_EEXIST);
    assert_string_equal(name, "");
    assert_int_equal(tw_client_ping(c, WAIT_MS), 0);
    assert_int_equal(srv_next_id(s), before);

    /* S52, S54: num_concurrent < 1 is EINVAL, but a locked or closed pool
     * is reported first. */
    m.group = NULL;
    m.num_concurrent = 0;
    assert_int_equal(tw_client_map(c, &m, name, sizeof name, WAIT_MS),
                     TW_EINVAL);
    assert_int_equal(tw_client_pool_op(c, NULL, "lock", WAIT_MS), 0);
    assert_int_equal(tw_client_map(c, &m, name, sizeof name, WAIT_MS),
                     TW_ELOCKED);
    assert_int_equal(tw_client_pool_op(c, NULL, "close", WAIT_MS), 0);
    assert_int_equal(tw_client_map(c, &m, name, sizeof name, WAIT_MS),
                     TW_ECLOSED);
    assert_int_equal(tw_client_apply(c, &spec, 0, NULL, name, sizeof name,
                                     WAIT_MS),
                     TW_ECLOSED);
    /* A spec that is wrong in itself is refused before any request. */
    tw_task_spec_t nohandler = {.handler = NULL};
    assert_int_equal(tw_client_apply(c, &nohandler, 1, NULL, name,
                                     sizeof name, WAIT_MS),
                     TW_EINVAL);
    m.next = NULL;
    assert_int_equal(tw_client_map(c, &m, name, sizeof name, WAIT_MS),
                     TW_EINVAL);
    /* A default name longer than 128 bytes. */
    char longh[TW_PROTO_MAX_NAME + 1];
    memset(longh, 'h', sizeof longh - 1);
    longh[sizeof longh - 1] = '\0';
    tw_task_spec_t longspec = {.handler = longh};
    pthread_mutex_lock(&s->mu);
    s->closed = s->locked = 0;
    pthread_mutex_unlock(&s->mu);
    assert_int_equal(tw_client_apply(c, &longspec, 1, NULL, name,
                                     sizeof name, WAIT_MS),
                     TW_EINVAL);
    tw_client_destroy(&c);
    srv_stop(s);
}

static void
test_lazy_bound(void **state)
{
    (void)state;
    /* The broker ends 2 tasks every 2 ms: far slower than the client
     * could submit. */
    srv_t *s = srv_start(2, 2);
    srv_run(s);
    tw_client_t *c = tw_suite_client_new(s->endpoint);
    events_t *ev = calloc(1, sizeof *ev);
    ev->stop_after = 400;
    tw_client_on_event(c, on_map_event, ev);
    tw_client_set_policy(c, TW_POLICY_CONTINUE, TW_POLICY_CONTINUE);
    tw_task_spec_t spec = {.handler = "echo"};
    iter_t it = {.limit = 0, .bad_every = 50}; /* endless */
    tw_map_t m = {&spec, iter_next, &it, 5, NULL};
    char name[TW_CLIENT_NAME_SIZE];
    assert_int_equal(tw_client_starmap(c, &m, name, sizeof name, WAIT_MS),
                     0);
    tw_exit_state_t st;
    assert_int_equal(tw_run(c, 20000, 1, 1, &st), 0);
    assert_int_equal(st.code, TW_EXIT_STOPPED);
    assert_string_equal(st.msg, "enough");
    assert_true(ev->counts[TW_EV_RESULT] >= 400);
    /* S51: never more than 2 * num_concurrent held, on either side. */
    assert_true(ev->max_unfinished <= 10);
    assert_true(ev->max_unfinished >= 5);
    pthread_mutex_lock(&s->mu);
    assert_true(s->max_out <= 10);
    pthread_mutex_unlock(&s->mu);
    /* The iterator ran only as room appeared. */
    assert_true(it.next <= (uint64_t)ev->counts[TW_EV_RESULT] +
                               (uint64_t)ev->counts[TW_EV_SKIPPED] + 10);
    /* S53: the bad items were skipped, the map went on past them. */
    assert_true(ev->counts[TW_EV_SKIPPED] >= 7);
    /* Every index had one outcome or was skipped; wait=1 let the last
     * ones finish, and the stop ended the feeding. */
    assert_int_equal(ev->unfinished, 0);
    assert_int_equal(tw_client_outstanding(c), 0);
    for (uint64_t i = 0; i < it.next; i++) {
        int got = (ev->seen[i / 64] >> (i % 64)) & 1;
        assert_int_equal(got, i % 50 != 1);
    }
    tw_client_destroy(&c);
    free(ev);
    srv_stop(s);
}

static void
test_cancel_group_stops_feeder(void **state)
{
    (void)state;
    srv_t *s = srv_start(1000, 1);
    srv_run(s);
    tw_client_t *c = tw_suite_client_new(s->endpoint);
    events_t *ev = calloc(1, sizeof *ev);
    tw_client_on_event(c, on_client_event, ev);
    tw_client_set_policy(c, TW_POLICY_CONTINUE, TW_POLICY_CONTINUE);
    tw_task_spec_t spec = {.handler = "sleepy"};
    iter_t it = {.limit = 0};
    tw_map_t m = {&spec, iter_next, &it, 3, NULL};
    char name[TW_CLIENT_NAME_SIZE];
    assert_int_equal(tw_client_map(c, &m, name, sizeof name, WAIT_MS), 0);
    POLL_UNTIL(c, ev->counts[TW_EV_SUBMITTED] == 6);
    assert_int_equal(it.next, 6);
    uint64_t *ids;
    size_t n;
    assert_int_equal(tw_client_cancel_group(c, NULL, name, WAIT_MS, &ids, &n),
                     0);
    assert_int_equal(n, 6);
    free(ids);
    /* S58: the cancels free room, but the map takes no more items. */
    tw_exit_state_t st;
    assert_int_equal(tw_run(c, WAIT_MS, 1, 1, &st), 0);
    assert_int_equal(st.code, TW_EXIT_EXHAUSTED);
    assert_int_equal(ev->counts[TW_EV_CANCELLED], 6);
    assert_int_equal(ev->counts[TW_EV_DONE], 0);
    assert_int_equal(it.next, 6);
    tw_client_destroy(&c);
    free(ev);
    srv_stop(s);
}

static void
test_apply_indexes(void **state)
{
    (void)state;
    srv_t *s = srv_start(0, 0);
    srv_run(s);
    tw_client_t *c = tw_suite_client_new(s->endpoint);
    events_t *ev = calloc(1, sizeof *ev);
    tw_client_on_event(c, on_client_event, ev);
    static const unsigned char args[] = {0x2a};
    tw_task_spec_t spec = {.handler = "echo", .args = args, .args_len = 1};
    char name[TW_CLIENT_NAME_SIZE];
    assert_int_equal(tw_client_apply(c, &spec, 3000, "mine", name,
                                     sizeof name, WAIT_MS),
                     0);
    assert_string_equal(name, "mine");
    tw_exit_state_t st;
    assert_int_equal(tw_run(c, WAIT_MS, 1, 1, &st), 0);
    assert_int_equal(st.code, TW_EXIT_EXHAUSTED);
    assert_int_equal(ev->counts[TW_EV_RESULT], 3000);
    assert_true(ev->max_unfinished <= 1024);
    for (uint64_t i = 0; i < 3000; i++) {
        assert_true((ev->seen[i / 64] >> (i % 64)) & 1);
    }
    tw_client_destroy(&c);
    free(ev);
    srv_stop(s);
}

/* ------------------------------------------------------------------ */
/* Events and the run                                                 */

static void
test_event_order(void **state)
{
    (void)state;
    srv_t *s = srv_start(0, 0);
    srv_run(s);
    tw_client_t *c = tw_suite_client_new(s->endpoint);
    events_t *ev = calloc(1, sizeof *ev);
    tw_client_on_event(c, on_client_event, ev);
    const char *handlers[] = {"echo", "fail", "sleepy", "nope"};
    uint64_t seq[4];
    for (int i = 0; i < 4; i++) {
        tw_task_spec_t spec = {.handler = handlers[i],
                               .on_event = on_task_event,
                               .event_arg = ev};
        assert_int_equal(tw_client_submit(c, &spec, &seq[i]), 0);
    }
    assert_int_equal(tw_client_flush(c), 0);
    POLL_UNTIL(c, ev->counts[TW_EV_RESULT] == 1 &&
                      ev->counts[TW_EV_EXCEPTION] == 1 &&
                      ev->counts[TW_EV_REFUSED] == 1 &&
                      ev->counts[TW_EV_SUBMITTED] == 3);
    uint64_t sleepy = 102;
    assert_int_equal(tw_client_cancel_strict(c, &sleepy, 1, WAIT_MS), 0);
    POLL_UNTIL(c, ev->counts[TW_EV_CANCELLED] == 1);
    char want[1024];
    snprintf(want, sizeof want,
             /* ACK: in item order, client level then task level. */
             "C:SUBMITTED:%1$llu T:SUBMITTED:%1$llu "
             "C:SUBMITTED:%2$llu T:SUBMITTED:%2$llu "
             "C:SUBMITTED:%3$llu T:SUBMITTED:%3$llu "
             "C:REFUSED:%4$llu T:REFUSED:%4$llu "
             /* S73, S86: done before result/exception, client level
              * first; a cancelled task fires cancelled only. */
             "C:DONE:%1$llu C:RESULT:%1$llu T:DONE:%1$llu T:RESULT:%1$llu "
             "C:DONE:%2$llu C:EXCEPTION:%2$llu T:DONE:%2$llu "
             "T:EXCEPTION:%2$llu "
             "C:CANCELLED:%3$llu T:CANCELLED:%3$llu ",
             (unsigned long long)seq[0], (unsigned long long)seq[1],
             (unsigned long long)seq[2], (unsigned long long)seq[3]);
    assert_string_equal(ev->text, want);
    tw_client_destroy(&c);
    free(ev);
    srv_stop(s);
}

static void
on_start_submit(void *arg, const tw_event_t *e)
{
    on_client_event(arg, e);
    if (e->kind == TW_EV_START) {
        for (int i = 0; i < 3; i++) {
            tw_task_spec_t spec = {.handler = "echo"};
            assert_int_equal(tw_client_submit(e->client, &spec, NULL), 0);
        }
    }
}

/* Only the run-level events of ev->text, e.g. "START EMPTY FINISHING". */
static const char *
run_events(const events_t *ev)
{
    static char out[1024];
    out[0] = '\0';
    const char *p = ev->text;
    while ((p = strstr(p, "C:")) != NULL) {
        char kind[32];
        unsigned long long seq;
        if (sscanf(p, "C:%31[A-Z]:%llu", kind, &seq) == 2 && seq == 0) {
            strcat(out, kind);
            strcat(out, " ");
        }
        p += 2;
    }
    return out;
}

static void
test_run_exit_states(void **state)
{
    (void)state;
    srv_t *s = srv_start(0, 0);
    srv_run(s);
    tw_client_t *c = tw_suite_client_new(s->endpoint);
    events_t *ev = calloc(1, sizeof *ev);
    tw_exit_state_t st;

    /* Not running: tw_stop does nothing. */
    assert_int_equal(tw_stop(c, NULL), TW_ESTATE);

    /* S74: nothing submitted: one EMPTY right after START, EXHAUSTED; a
     * nested run from a callback is refused. */
    tw_client_on_event(c, on_client_event, ev);
    assert_int_equal(tw_run(c, -1, 1, 1, &st), 0);
    assert_int_equal(st.code, TW_EXIT_EXHAUSTED);
    assert_string_equal(run_events(ev),
                        "START EMPTY FINISHING FINISHED ");
    assert_int_equal(ev->nested_rc, TW_ESTATE);
    assert_int_equal(ev->exit.code, TW_EXIT_EXHAUSTED);

    /* Work submitted from START; S78: an EMPTY handler that refills keeps
     * the run going, and EMPTY fires again on the next drain. */
    memset(ev, 0, sizeof *ev);
    ev->refill = 1;
    tw_client_on_event(c, on_start_submit, ev);
    assert_int_equal(tw_run(c, WAIT_MS, 1, 1, &st), 0);
    assert_int_equal(st.code, TW_EXIT_EXHAUSTED);
    assert_int_equal(ev->counts[TW_EV_RESULT], 4);
    assert_string_equal(run_events(ev),
                        "START EMPTY EMPTY FINISHING FINISHED ");

    /* TIMEOUT; wait = 0 cancels what is in flight (strict CANCEL) and its
     * CANCELLED event comes before FINISHED (S76, S79). */
    memset(ev, 0, sizeof *ev);
    tw_client_on_event(c, on_client_event, ev);
    tw_task_spec_t sleepy = {.handler = "sleepy"};
    assert_int_equal(tw_client_submit(c, &sleepy, NULL), 0);
    char log[1024];
    srv_take_log(s, log, sizeof log);
    uint64_t t0 = tw_now_ms();
    assert_int_equal(tw_run(c, 200, 1, 0, &st), 0);
    assert_true(tw_now_ms() - t0 >= 190);
    assert_int_equal(st.code, TW_EXIT_TIMEOUT);
    assert_string_equal(run_events(ev), "START TIMEOUT FINISHING FINISHED ");
    assert_int_equal(ev->counts[TW_EV_CANCELLED], 1);
    assert_non_null(strstr(ev->text, "C:CANCELLED"));
    assert_true(strstr(ev->text, "C:CANCELLED") <
                strstr(ev->text, "C:FINISHED"));
    srv_take_log(s, log, sizeof log);
    assert_string_equal(log, "CANCEL strict n=1\n");
    assert_int_equal(tw_client_outstanding(c), 0);

    /* STOPPED from a callback (S80): from tw_stop on, the session is not
     * running, so submissions are refused (not run inside the finished
     * session) until tw_run returns; outside a run they work again. */
    memset(ev, 0, sizeof *ev);
    ev->stop_after = 1;
    ev->probe_late = 1;
    tw_client_on_event(c, on_map_event, ev);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(tw_client_submit(c, &sleepy, NULL), 0);
    }
    tw_task_spec_t echo = {.handler = "echo"};
    assert_int_equal(tw_client_submit(c, &echo, NULL), 0);
    assert_int_equal(tw_run(c, WAIT_MS, 1, 0, &st), 0);
    assert_int_equal(st.code, TW_EXIT_STOPPED);
    assert_string_equal(st.msg, "enough");
    assert_string_equal(run_events(ev),
                        "START STOP FINISHING FINISHED ");
    assert_int_equal(ev->counts[TW_EV_CANCELLED], 2);
    assert_int_equal(ev->nlate, 8);
    for (int i = 0; i < ev->nlate; i++) {
        assert_int_equal(ev->late_rc[i], TW_ESTATE);
    }
    assert_int_equal(ev->counts[TW_EV_SUBMITTED], 3); /* none late */
    assert_int_equal(tw_client_outstanding(c), 0);
    ev->probe_late = 0;
    assert_int_equal(tw_client_submit(c, &echo, NULL), 0);
    assert_int_equal(tw_client_wait_all(c, WAIT_MS), 0);

    /* S81: a failing task under each policy. */
    tw_task_spec_t fail = {.handler = "fail"};
    memset(ev, 0, sizeof *ev);
    tw_client_on_event(c, on_client_event, ev);
    tw_client_set_policy(c, TW_POLICY_END, TW_POLICY_RAISE);
    assert_int_equal(tw_client_submit(c, &fail, NULL), 0);
    assert_int_equal(tw_run(c, WAIT_MS, 1, 1, &st), 0);
    assert_int_equal(st.code, TW_EXIT_EXCEPTION);
    assert_string_equal(st.msg, "boom");
    assert_int_equal(st.state, TW_ST_ERROR);
    tw_client_set_policy(c, TW_POLICY_RAISE, TW_POLICY_RAISE);
    assert_int_equal(tw_client_submit(c, &fail, NULL), 0);
    assert_int_equal(tw_run(c, WAIT_MS, 1, 1, &st), TW_EFAILED);
    assert_int_equal(st.code, TW_EXIT_EXCEPTION);
    tw_client_set_policy(c, TW_POLICY_CONTINUE, TW_POLICY_RAISE);
    assert_int_equal(tw_client_submit(c, &fail, NULL), 0);
    assert_int_equal(tw_run(c, WAIT_MS, 1, 1, &st), 0);
    assert_int_equal(st.code, TW_EXIT_EXHAUSTED);

    /* S82: a cancelled task. */
    tw_task_spec_t cancelme = {.handler = "cancelme"};
    tw_client_set_policy(c, TW_POLICY_CONTINUE, TW_POLICY_END);
    assert_int_equal(tw_client_submit(c, &cancelme, NULL), 0);
    assert_int_equal(tw_run(c, WAIT_MS, 1, 1, &st), 0);
    assert_int_equal(st.code, TW_EXIT_CANCELLED);
    tw_client_set_policy(c, TW_POLICY_CONTINUE, TW_POLICY_RAISE);
    assert_int_equal(tw_client_submit(c, &cancelme, NULL), 0);
    assert_int_equal(tw_run(c, WAIT_MS, 1, 1, &st), TW_ECANCELED);
    assert_int_equal(st.code, TW_EXIT_CANCELLED);

    /* end_on_empty = 0: EMPTY fires, the run goes on until the timeout. */
    memset(ev, 0, sizeof *ev);
    assert_int_equal(tw_run(c, 150, 0, 1, &st), 0);
    assert_int_equal(st.code, TW_EXIT_TIMEOUT);
    assert_string_equal(run_events(ev),
                        "START EMPTY TIMEOUT FINISHING FINISHED ");
    tw_client_destroy(&c);
    free(ev);
    srv_stop(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_fields),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_default_names),
        cmocka_unit_test(test_map_unknown_handler),
        cmocka_unit_test(test_lazy_bound),
        cmocka_unit_test(test_cancel_group_stops_feeder),
        cmocka_unit_test(test_apply_indexes),
        cmocka_unit_test(test_event_order),
        cmocka_unit_test(test_run_exit_states),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
