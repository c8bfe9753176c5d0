/*  tests/harness/client_helpers.c - see client_helpers.h. */
#include "tests/harness/client_helpers.h"
#include "tests/harness/harness.h"
#include "common/idmap.h"
#include "proto/mpwalk.h"
#include "proto/proto.h"

#include <msgpack.h>
#include <stdlib.h>

/* Per seq: the task id, or UINT64_MAX if refused; arrival flags. */
static tw_idmap_t s_ids;
static tw_idmap_t s_arrived;

int
tw_h_wait_workers(const char *frontend, int n, int timeout_ms)
{
    tw_client_t *c = tw_client_new(frontend);
    uint64_t end = tw_h_now_ms() + (uint64_t)timeout_ms;
    int rc = TW_ETIMEDOUT;
    while (tw_h_now_ms() < end) {
        void *data = NULL;
        size_t len = 0;
        if (tw_client_query(c, "workers", 1000, &data, &len) == 0) {
            msgpack_unpacked up;
            msgpack_unpacked_init(&up);
            int have = -1;
            if (msgpack_unpack_next(&up, data, len, NULL) ==
                    MSGPACK_UNPACK_SUCCESS &&
                up.data.type == MSGPACK_OBJECT_ARRAY) {
                have = (int)up.data.via.array.size;
            }
            msgpack_unpacked_destroy(&up);
            free(data);
            if (have >= n) {
                rc = 0;
                break;
            }
        }
        tw_h_sleep_ms(50);
    }
    tw_client_destroy(&c);
    return rc;
}

/* Field `key` of QUERY "status", if it has type `type`: 0 with the
 * number in *num or the string in str (cut to cap - 1), or an error. */
static int
s_status_get(tw_client_t *c, const char *key, int type, long long *num,
             char *str, size_t cap)
{
    void *data = NULL;
    size_t len = 0;
    int rc = tw_client_query(c, "status", 5000, &data, &len);
    if (rc != 0) {
        return rc;
    }
    rc = TW_ENOENT;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, data, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        up.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < up.data.via.map.size; i++) {
            msgpack_object_kv *kv = &up.data.via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR ||
                kv->key.via.str.size != strlen(key) ||
                memcmp(kv->key.via.str.ptr, key, strlen(key)) != 0 ||
                (int)kv->val.type != type) {
                continue;
            }
            if (type == MSGPACK_OBJECT_STR) {
                snprintf(str, cap, "%.*s", (int)kv->val.via.str.size,
                         kv->val.via.str.ptr);
            } else {
                *num = (long long)kv->val.via.u64;
            }
            rc = 0;
        }
    }
    msgpack_unpacked_destroy(&up);
    free(data);
    return rc;
}

int
tw_h_status_field(tw_client_t *c, const char *key, long long *out)
{
    return s_status_get(c, key, MSGPACK_OBJECT_POSITIVE_INTEGER, out, NULL,
                        0);
}

long long
tw_h_status_of(const char *ep, const char *key)
{
    tw_client_t *c = tw_client_new(ep);
    TW_H_ASSERT(c != NULL);
    long long v = -1;
    int rc = tw_h_status_field(c, key, &v);
    TW_H_ASSERT_MSG(rc == 0, "%s: no status field %s (%s)", ep, key,
                    tw_strerror(rc));
    tw_client_destroy(&c);
    return v;
}

int
tw_h_status_str(tw_client_t *c, const char *key, char *out, size_t cap)
{
    return s_status_get(c, key, MSGPACK_OBJECT_STR, NULL, out, cap);
}

int
tw_h_wait_status(tw_client_t *c, const char *key, long long min,
                 int timeout_ms)
{
    uint64_t end = tw_h_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        long long v = 0;
        if (tw_h_status_field(c, key, &v) == 0 && v >= min) {
            return 0;
        }
        if (tw_h_now_ms() >= end) {
            return TW_ETIMEDOUT;
        }
        tw_h_sleep_ms(20);
    }
}

static void
s_on_ack(void *arg, uint64_t seq, uint64_t id, int err, const char *msg)
{
    (void)arg;
    (void)msg;
    tw_idmap_put(&s_ids, seq, (void *)(uintptr_t)(err ? UINT64_MAX : id));
}

static void
s_on_result(void *arg, const tw_result_t *r)
{
    (void)arg;
    if (r->seq) {
        tw_idmap_put(&s_arrived, r->seq, (void *)(uintptr_t)1);
    }
}

void
tw_h_track_results(tw_client_t *c)
{
    tw_client_on_ack(c, s_on_ack, NULL);
    tw_client_on_result(c, s_on_result, NULL);
}

uint64_t
tw_h_wait_acked(tw_client_t *c, uint64_t seq, int timeout_ms)
{
    uint64_t end = tw_h_now_ms() + (uint64_t)timeout_ms;
    void *v;
    while (!(v = tw_idmap_get(&s_ids, seq)) && tw_h_now_ms() < end) {
        tw_client_poll(c, 50);
    }
    TW_H_ASSERT_MSG(v, "submission %llu was not acknowledged",
                    (unsigned long long)seq);
    TW_H_ASSERT_MSG((uintptr_t)v != UINT64_MAX,
                    "submission %llu was refused", (unsigned long long)seq);
    return (uint64_t)(uintptr_t)v;
}

int
tw_h_last_result(tw_client_t *c, uint64_t seq, tw_result_t **out)
{
    uint64_t end = tw_h_now_ms() + 10000;
    while (!tw_idmap_get(&s_arrived, seq) && tw_h_now_ms() < end) {
        tw_client_poll(c, 50);
    }
    if (!tw_idmap_get(&s_arrived, seq)) {
        return TW_ETIMEDOUT;
    }
    uint64_t id = tw_h_wait_acked(c, seq, 1000);
    return tw_client_result(c, id, 5000, out);
}

int
tw_h_wait_state(tw_client_t *c, uint64_t id, int state, int timeout_ms)
{
    uint64_t end = tw_h_now_ms() + (uint64_t)timeout_ms;
    while (tw_h_now_ms() < end) {
        tw_result_t *r = NULL;
        if (tw_client_result(c, id, 1000, &r) == 0) {
            int st = r->state;
            tw_result_free(&r);
            if (st == state) {
                return 0;
            }
        }
        tw_h_sleep_ms(20);
    }
    return TW_ETIMEDOUT;
}

int
tw_h_state_of(tw_client_t *c, uint64_t id, char *err, size_t elen)
{
    tw_result_t *r = NULL;
    TW_H_ASSERT_OK(tw_client_result(c, id, 5000, &r));
    int st = r->state;
    if (err) {
        snprintf(err, elen, "%s", r->error ? r->error : "");
    }
    tw_result_free(&r);
    return st;
}

void
tw_h_expect_state(tw_client_t *c, uint64_t id, int state)
{
    int rc = tw_h_wait_state(c, id, state, 30000);
    TW_H_ASSERT_MSG(rc == 0, "task %llu never reached state %d (now %d)",
                    (unsigned long long)id, state,
                    tw_h_state_of(c, id, NULL, 0));
}

/* The object of `key` in the map `o`, or `o` itself for a NULL key. */
static const msgpack_object *
s_pick(const msgpack_object *o, const char *key)
{
    return key ? tw_mp_get(o, key) : o;
}

long long
tw_h_result_field_int(const tw_result_t *r, const char *key)
{
    long long v = -1;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    const msgpack_object *o = NULL;
    if (msgpack_unpack_next(&up, r->result, r->result_len, NULL) ==
        MSGPACK_UNPACK_SUCCESS) {
        o = s_pick(&up.data, key);
    }
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        v = (long long)o->via.u64;
    } else if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        v = o->via.i64;
    } else if (o && (o->type == MSGPACK_OBJECT_FLOAT64 ||
                     o->type == MSGPACK_OBJECT_FLOAT32)) {
        v = (long long)o->via.f64;
    }
    msgpack_unpacked_destroy(&up);
    return v;
}

long long
tw_h_result_int(const tw_result_t *r)
{
    return tw_h_result_field_int(r, NULL);
}

const char *
tw_h_result_field_str(const tw_result_t *r, const char *key)
{
    static char buf[4096];
    buf[0] = '\0';
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    const msgpack_object *o = NULL;
    if (msgpack_unpack_next(&up, r->result, r->result_len, NULL) ==
        MSGPACK_UNPACK_SUCCESS) {
        o = s_pick(&up.data, key);
    }
    if (o && o->type == MSGPACK_OBJECT_STR && o->via.str.size < sizeof buf) {
        memcpy(buf, o->via.str.ptr, o->via.str.size);
        buf[o->via.str.size] = '\0';
    }
    msgpack_unpacked_destroy(&up);
    return buf;
}

const char *
tw_h_result_str(const tw_result_t *r)
{
    return tw_h_result_field_str(r, NULL);
}

uint64_t
tw_h_submit_str(tw_client_t *c, const char *handler, const char *arg,
                uint32_t timeout_ms, uint32_t retries)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (arg) {
        msgpack_pack_str_with_body(&pk, arg, strlen(arg));
    } else {
        msgpack_pack_nil(&pk);
    }
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = handler;
    spec.args = sb.data;
    spec.args_len = sb.size;
    spec.timeout_ms = timeout_ms;
    spec.retries = retries;
    uint64_t seq;
    int rc = tw_client_submit(c, &spec, &seq);
    msgpack_sbuffer_destroy(&sb);
    TW_H_ASSERT_MSG(rc == 0, "submit %s: %s", handler, tw_err_name(rc));
    return seq;
}

tw_result_t *
tw_h_outcome(tw_client_t *c, uint64_t seq, int timeout_ms)
{
    /* An absolute deadline: tw_client_wait_all's is an idle timeout,
     * and the broker's heartbeat probes keep a client from going idle. */
    uint64_t end = tw_h_now_ms() + (uint64_t)timeout_ms;
    while (tw_client_outstanding(c) > 0) {
        TW_H_ASSERT_MSG(tw_h_now_ms() < end,
                        "%zu task(s) without an outcome after %d ms "
                        "(waiting for seq %llu)",
                        tw_client_outstanding(c), timeout_ms,
                        (unsigned long long)seq);
        int rc = tw_client_poll(c, 50);
        TW_H_ASSERT_MSG(rc >= 0, "poll: %s", tw_err_name(rc));
    }
    tw_result_t *r;
    TW_H_ASSERT_OK(tw_h_last_result(c, seq, &r));
    return r;
}

int
tw_h_station_op(tw_client_t *c, const char *op, const char *sid, int expect)
{
    tw_station_req_t req = {.op = op, .sid = sid};
    int rc = tw_client_station(c, &req, 5000, NULL, NULL);
    TW_H_ASSERT_MSG(rc == expect, "station %s %s: %d (%s), wanted %d (%s)",
                    op, sid ? sid : "", rc, tw_client_last_error(c), expect,
                    tw_err_name(expect));
    return rc;
}

static void
s_copy_str(char *dst, size_t cap, const msgpack_object *o)
{
    dst[0] = '\0';
    if (o->type == MSGPACK_OBJECT_STR) {
        size_t n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
        memcpy(dst, o->via.str.ptr, n);
        dst[n] = '\0';
    }
}

size_t
tw_h_workers(tw_client_t *c, tw_h_worker_t *out, size_t cap)
{
    void *data = NULL;
    size_t len = 0, n = 0;
    TW_H_ASSERT_OK(tw_client_query(c, "workers", 5000, &data, &len));
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    TW_H_ASSERT(msgpack_unpack_next(&up, data, len, NULL) ==
                MSGPACK_UNPACK_SUCCESS);
    TW_H_ASSERT(up.data.type == MSGPACK_OBJECT_ARRAY);
    for (uint32_t i = 0; i < up.data.via.array.size; i++, n++) {
        const msgpack_object *m = &up.data.via.array.ptr[i];
        if (n >= cap || m->type != MSGPACK_OBJECT_MAP) {
            continue;
        }
        tw_h_worker_t *w = &out[n];
        memset(w, 0, sizeof *w);
        for (uint32_t k = 0; k < m->via.map.size; k++) {
            const msgpack_object *key = &m->via.map.ptr[k].key;
            const msgpack_object *v = &m->via.map.ptr[k].val;
            if (key->type != MSGPACK_OBJECT_STR) {
                continue;
            }
#define S_KEY(name)                                                          \
    (key->via.str.size == strlen(name) &&                                    \
     memcmp(key->via.str.ptr, name, key->via.str.size) == 0)
            if (S_KEY("id") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                w->id = v->via.u64;
            } else if (S_KEY("name")) {
                s_copy_str(w->name, sizeof w->name, v);
            } else if (S_KEY("host")) {
                s_copy_str(w->host, sizeof w->host, v);
            } else if (S_KEY("credit") &&
                       v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                w->credit = v->via.u64;
            } else if (S_KEY("running") &&
                       v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                w->running = v->via.u64;
            } else if (S_KEY("handlers") && v->type == MSGPACK_OBJECT_ARRAY) {
                for (uint32_t h = 0; h < v->via.array.size; h++) {
                    char one[130];
                    s_copy_str(one, sizeof one, &v->via.array.ptr[h]);
                    size_t used = strlen(w->handlers);
                    snprintf(w->handlers + used, sizeof w->handlers - used,
                             "%s ", one);
                }
            }
#undef S_KEY
        }
    }
    msgpack_unpacked_destroy(&up);
    free(data);
    return n;
}

const tw_h_worker_t *
tw_h_worker_named(const tw_h_worker_t *ws, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ws[i].name, name) == 0) {
            return &ws[i];
        }
    }
    return NULL;
}

int
tw_h_station_show(tw_client_t *c, const char *sid, tw_h_station_t *out)
{
    tw_station_req_t req = {.op = "show", .sid = sid};
    void *data = NULL;
    size_t len = 0;
    int rc = tw_client_station(c, &req, 5000, &data, &len);
    if (rc != 0) {
        return rc;
    }
    memset(out, 0, sizeof *out);
    out->checkpoint = -1;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, data, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        up.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < up.data.via.map.size; i++) {
            const msgpack_object *k = &up.data.via.map.ptr[i].key;
            const msgpack_object *v = &up.data.via.map.ptr[i].val;
            if (k->type != MSGPACK_OBJECT_STR) {
                continue;
            }
#define S_KEY(name)                                                          \
    (k->via.str.size == strlen(name) &&                                      \
     memcmp(k->via.str.ptr, name, k->via.str.size) == 0)
            uint64_t u = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                             ? v->via.u64
                             : 0;
            if (S_KEY("state")) {
                s_copy_str(out->state, sizeof out->state, v);
            } else if (S_KEY("wanted")) {
                s_copy_str(out->wanted, sizeof out->wanted, v);
            } else if (S_KEY("worker")) {
                out->worker = u;
            } else if (S_KEY("epoch")) {
                out->epoch = u;
            } else if (S_KEY("iterations")) {
                out->iterations = u;
            } else if (S_KEY("restarts")) {
                out->restarts = u;
            } else if (S_KEY("last_error")) {
                s_copy_str(out->last_error, sizeof out->last_error, v);
            } else if (S_KEY("reason")) {
                s_copy_str(out->reason, sizeof out->reason, v);
            } else if (S_KEY("checkpoint")) {
                if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                    out->checkpoint = (long long)v->via.u64;
                } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
                    out->checkpoint = v->via.i64;
                }
            }
#undef S_KEY
        }
    }
    msgpack_unpacked_destroy(&up);
    free(data);
    return 0;
}

/* What a wait on "station show" waits for: a state, or an iteration
 * count. */
typedef struct {
    const char *state; /* NULL: any */
    uint64_t iterations;
} s_until_t;

/* Poll "station show" until `until` holds. Returns 0 or TW_ETIMEDOUT;
 * *last (if not NULL) gets what was seen last. */
static int
s_wait_show(tw_client_t *c, const char *sid, const s_until_t *until,
            int timeout_ms, tw_h_station_t *last)
{
    uint64_t end = tw_h_now_ms() + (uint64_t)timeout_ms;
    tw_h_station_t st;
    memset(&st, 0, sizeof st);
    int rc = TW_ETIMEDOUT;
    do {
        if (tw_h_station_show(c, sid, &st) == 0 &&
            (!until->state || strcmp(st.state, until->state) == 0) &&
            st.iterations >= until->iterations) {
            rc = 0;
            break;
        }
        tw_h_sleep_ms(20);
    } while (tw_h_now_ms() < end);
    if (last) {
        *last = st;
    }
    return rc;
}

int
tw_h_wait_station(tw_client_t *c, const char *sid, const char *state,
                  int timeout_ms, tw_h_station_t *last)
{
    s_until_t until = {state, 0};
    return s_wait_show(c, sid, &until, timeout_ms, last);
}

int
tw_h_wait_iterations(tw_client_t *c, const char *sid, uint64_t n,
                     int timeout_ms, tw_h_station_t *last)
{
    s_until_t until = {NULL, n};
    return s_wait_show(c, sid, &until, timeout_ms, last);
}

size_t
tw_h_pack_int(unsigned char *buf, long long v)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_long_long(&pk, v);
    size_t n = sb.size;
    memcpy(buf, sb.data, n);
    msgpack_sbuffer_destroy(&sb);
    return n;
}
