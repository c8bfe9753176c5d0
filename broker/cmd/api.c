/*  broker/cmd/api.c - the JSON routes of the HTTP API (see api.h). */
#include "broker/cmd/api.h"
#include "broker/cmd/on_station.h"
#include "broker/cmd/on_worker.h"
#include "broker/core/core.h"
#include "broker/core/flow.h"
#include "broker/core/recs.h"
#include "broker/core/snapshot.h"
#include "broker/core/view.h"
#include "common/alloc.h"
#include "common/error.h"
#include "proto/jsonw.h"
#include "proto/mpwalk.h"
#include "taskwheel/version.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *
tw__api_json(const void *mp, size_t len, size_t *out_len)
{
    static const char *const payload[] = {"args", "result", NULL};
    static const char *const hex[] = {"boot", NULL};
    static const tw_jsonw_opts_t opts = {payload, hex};
    tw_jsonw_t w;
    tw_jsonw_init(&w, 0);
    tw_jsonw_msgpack(&w, mp, len, &opts);
    return tw_jsonw_take(&w, out_len);
}

/* 200 with the JSON of `e` (freed). */
static void
s_ok(tw_api_answer_t *out, tw_enc_t *e)
{
    out->status = 200;
    out->body = tw__api_json(e->sb.data, e->sb.size, &out->len);
    tw_enc_free(e);
}

void
tw__api_error(const tw_http_err_t *err, tw_api_answer_t *out)
{
    tw_jsonw_t w;
    tw_jsonw_init(&w, 0);
    tw_jsonw_lit(&w, "{\"error\":{\"status\":");
    tw_jsonw_uint(&w, err->status);
    tw_jsonw_lit(&w, ",\"code\":");
    tw_jsonw_str(&w, err->code, strlen(err->code));
    tw_jsonw_lit(&w, ",\"message\":");
    tw_jsonw_str(&w, err->message, strlen(err->message));
    tw_jsonw_lit(&w, "}}");
    out->status = err->status;
    out->body = tw_jsonw_take(&w, &out->len);
    out->header = err->header;
    snprintf(out->value, sizeof out->value, "%s", err->value);
}

/* The HTTP error for a TW_E* code of an operation, with its reason. */
static void
s_fail(tw_api_answer_t *out, int code, const char *why)
{
    tw_http_err_t err;
    unsigned status = 400;
    const char *name = "EINVAL";
    switch (code) {
    case TW_ENOENT:
        status = 404, name = "ENOENT";
        break;
    case TW_ESTATE:
        status = 409, name = "ESTATE";
        break;
    case TW_ECLOSED:
        status = 409, name = "ECLOSED";
        break;
    case TW_TFILTER_GONE:
        status = 410, name = "EGONE";
        break;
    default:
        break;
    }
    tw_http_fail(&err, status, name, "%s", why);
    tw__api_error(&err, out);
}

/* {key: <what fill writes>} */
static void
s_wrap(tw_enc_t *e, const char *key)
{
    tw_enc_init(e);
    tw_enc_map(e, 1);
    tw_enc_cstr(e, key);
}

/* ---- filters ---------------------------------------------------------- */

/* Read the task filters (docs/HTTP.md, "Task filters") by name from
 * `get` into `f`. Returns 0, TW_EINVAL or TW_TFILTER_GONE with `why`. */
static int
s_filter(tw_broker_t *b, tw_api_param_fn *get, void *arg, tw_tfilter_t *f,
         uint32_t default_limit, uint32_t max_limit, char *why, size_t wlen)
{
    static const char *const strs[][2] = {
        {"handler", "handler"}, {"group", "group"}, {"pool", "pool"},
        {"q", "text"}};
    tw_tfilter_init(f, default_limit);
    const char *v = get(arg, "state");
    int rc = v ? tw_tfilter_state(f, v, strlen(v), why, wlen) : 0;
    for (size_t i = 0; rc == 0 && i < sizeof strs / sizeof *strs; i++) {
        v = get(arg, strs[i][0]);
        if (v) {
            rc = tw_tfilter_string(f, strs[i][0], v, strlen(v), why, wlen);
        }
    }
    if (rc == 0 && (v = get(arg, "since"))) {
        rc = tw_tfilter_since_text(f, v, strlen(v), why, wlen);
    }
    if (rc == 0 && (v = get(arg, "limit"))) {
        rc = tw_tfilter_limit_text(f, v, strlen(v), max_limit, why, wlen);
    }
    if (rc == 0 && (v = get(arg, "cursor"))) {
        rc = tw_tfilter_cursor_parse(f, b->boot, v, strlen(v), why, wlen);
    }
    return rc;
}

/* A body's fields as parameters: strings as they are, integers as
 * decimal text. */
typedef struct {
    json_t *obj;
    char num[24];
} s_body_t;

static const char *
s_body_get(void *arg, const char *name)
{
    s_body_t *x = arg;
    json_t *v = json_object_get(x->obj, name);
    if (json_is_string(v)) {
        return json_string_value(v);
    }
    if (json_is_integer(v)) {
        snprintf(x->num, sizeof x->num, "%lld",
                 (long long)json_integer_value(v));
        return x->num;
    }
    return NULL;
}

/* ---- wire operations -------------------------------------------------- */

/* The routing id of the API's own client: a ZeroMQ peer's id never
 * starts with 0xff and "http-api" (libzmq makes 0x00 + 4 bytes). */
static const char s_ident[] = "\xffhttp-api";
#define S_IDENT_LEN (sizeof s_ident - 1)

typedef struct {
    int got;
    int cmd;
    char *body;
    size_t len;
} s_cap_t;

static int
s_capture(void *arg, zmq_msg_t f[3])
{
    s_cap_t *x = arg;
    if (zmq_msg_size(&f[0]) != S_IDENT_LEN ||
        memcmp(zmq_msg_data(&f[0]), s_ident, S_IDENT_LEN) != 0) {
        return 0;
    }
    if (!x->got) {
        x->got = 1;
        x->cmd = tw_out_cmd(f);
        x->len = zmq_msg_size(&f[2]);
        x->body = tw_malloc(x->len ? x->len : 1);
        memcpy(x->body, zmq_msg_data(&f[2]), x->len);
    }
    for (int i = 0; i < 3; i++) {
        zmq_msg_close(&f[i]);
    }
    return 1;
}

typedef void s_handler_fn(tw_broker_t *b, tw_bclient_t *c,
                          const tw_msg_t *m);

/* Run the wire request `cmd` {body of e} as the API's client, as if it
 * had come over ZeroMQ, and answer with its REPLY's data wrapped in
 * `key` (NULL: the data as it is), or with its ERROR. */
static void
s_wire(tw_broker_t *b, tw_cmd_t cmd, tw_enc_t *body, s_handler_fn *fn,
       const char *key, tw_api_answer_t *out)
{
    unsigned char hdr[4] = {'T', 'W', 1, (unsigned char)cmd};
    tw_msg_t m;
    /* The message borrows its strings from the body: freed after it. */
    int rc = tw_msg_decode(&m, hdr, 4, body->sb.data, body->sb.size);
    if (rc != 0) {
        tw_enc_free(body);
        s_fail(out, TW_EINVAL, "the request does not encode");
        return;
    }
    tw_bclient_t *c = tw_clients_touch(&b->clients, s_ident, S_IDENT_LEN,
                                       uv_now(b->loop));
    s_cap_t x = {0, 0, NULL, 0};
    b->out.capture = s_capture;
    b->out.capture_arg = &x;
    fn(b, c, &m);
    b->out.capture = NULL;
    b->out.capture_arg = NULL;
    tw_msg_release(&m);
    tw_enc_free(body);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    const msgpack_object *data = NULL, *code = NULL, *msg = NULL;
    if (x.got && tw_mp_one(x.body, x.len, TW_MP_DEPTH_DECODE) &&
        msgpack_unpack_next(&up, x.body, x.len, &off) ==
            MSGPACK_UNPACK_SUCCESS) {
        data = tw_mp_get(&up.data, "data");
        code = tw_mp_get(&up.data, "code");
        msg = tw_mp_get(&up.data, "msg");
    }
    if (x.cmd == TW_CMD_REPLY && data) {
        tw_jsonw_t w;
        static const char *const payload[] = {"args", "result", NULL};
        static const char *const hex[] = {"boot", NULL};
        static const tw_jsonw_opts_t opts = {payload, hex};
        tw_jsonw_init(&w, 0);
        if (key) {
            tw_jsonw_lit(&w, "{");
            tw_jsonw_key(&w, key);
        }
        tw_jsonw_object(&w, data, &opts);
        if (key) {
            tw_jsonw_lit(&w, "}");
        }
        out->status = 200;
        out->body = tw_jsonw_take(&w, &out->len);
    } else {
        char why[256];
        snprintf(why, sizeof why, "%.*s",
                 msg && msg->type == MSGPACK_OBJECT_STR
                     ? (int)msg->via.str.size
                     : 0,
                 msg && msg->type == MSGPACK_OBJECT_STR ? msg->via.str.ptr
                                                       : "");
        s_fail(out,
               code && code->type == MSGPACK_OBJECT_NEGATIVE_INTEGER
                   ? (int)code->via.i64
                   : TW_EINVAL,
               x.got ? why : "no answer");
    }
    msgpack_unpacked_destroy(&up);
    tw_free(x.body);
}

/* The start of a request body {seq, op, ...n more}. */
static void
s_req(tw_enc_t *e, const char *op, size_t more)
{
    tw_enc_init(e);
    tw_enc_map(e, 2 + more);
    tw_enc_key(e, TW_F_SEQ);
    tw_enc_uint(e, 1);
    tw_enc_key(e, TW_F_OP);
    tw_enc_cstr(e, op);
}

/* POST /api/v1/workers/{wid}/drain and resize {slots}. */
static void
s_worker_op(tw_broker_t *b, const tw_http_match_t *hm, const char *body,
            size_t blen, tw_api_answer_t *out)
{
    int resize = hm->route == TW_HTTP_WORKER_RESIZE;
    json_int_t slots = 0;
    if (resize) {
        json_error_t jerr;
        json_t *obj = blen ? json_loadb(body, blen, 0, &jerr) : NULL;
        json_t *v = json_object_get(obj, "slots");
        slots = json_is_integer(v) ? json_integer_value(v) : 0;
        json_decref(obj);
        if (slots < 1 || slots > 65536) {
            s_fail(out, TW_EINVAL, "slots: a number from 1 to 65536");
            return;
        }
    }
    tw_enc_t e;
    s_req(&e, resize ? "resize" : "drain", 1 + resize);
    tw_enc_key(&e, TW_F_WID);
    tw_enc_uint(&e, hm->id);
    if (resize) {
        tw_enc_key(&e, TW_F_SLOTS);
        tw_enc_uint(&e, (uint64_t)slots);
    }
    s_wire(b, TW_CMD_WORKER, &e, tw__on_worker_op, NULL, out);
}

/* GET /api/v1/stations/{sid} and POST .../{op}. */
static void
s_station(tw_broker_t *b, const tw_http_match_t *hm, tw_api_answer_t *out)
{
    tw_enc_t e;
    s_req(&e, hm->route == TW_HTTP_STATION ? "show" : hm->op, 1);
    tw_enc_key(&e, TW_F_SID);
    tw_enc_str(&e, hm->sid, hm->sid_len);
    s_wire(b, TW_CMD_STATION, &e, tw__on_station_op, "station", out);
}

/* GET /api/v1/stations?state&limit&cursor: STATION list, filtered and
 * paged here; the cursor is "s1." and the position to go on from. */
static void
s_stations(tw_broker_t *b, tw_api_param_fn *get, void *arg,
           tw_api_answer_t *out)
{
    const char *state = get(arg, "state"), *lim = get(arg, "limit");
    const char *cur = get(arg, "cursor");
    char why[256];
    int known = !state;
    for (int k = TW_SS_PENDING; state && k <= TW_SS_CANCELLED && !known;
         k++) {
        known = strcmp(tw_sstate_name(k), state) == 0;
    }
    char *end = NULL;
    long limit = lim ? strtol(lim, &end, 10) : 50;
    long from = 0;
    if (!known) {
        snprintf(why, sizeof why, "state: not a station state");
    } else if (lim && (*end || limit < 1 || limit > 1000)) {
        snprintf(why, sizeof why, "limit: 1 to 1000");
        known = 0;
    } else if (cur && (strncmp(cur, "s1.", 3) != 0 ||
                       (from = strtol(cur + 3, &end, 10)) < 0 || *end ||
                       !cur[3])) {
        snprintf(why, sizeof why, "cursor: not one of ours");
        known = 0;
    }
    if (!known) {
        s_fail(out, TW_EINVAL, why);
        return;
    }
    tw_enc_t e;
    tw_enc_init(&e);
    size_t n = 0, taken = 0;
    size_t first = (size_t)from;
    for (size_t i = 0; i < b->stations.len; i++) {
        const tw_station_t *st = b->stations.all[i];
        n += !state || strcmp(tw_sstate_name(st->state), state) == 0;
    }
    size_t count = n > first ? n - first : 0;
    if (count > (size_t)limit) {
        count = (size_t)limit;
    }
    tw_enc_map(&e, 2);
    tw_enc_cstr(&e, "stations");
    tw_enc_array(&e, count);
    size_t seen = 0;
    for (size_t i = 0; i < b->stations.len && taken < count; i++) {
        const tw_station_t *st = b->stations.all[i];
        if (state && strcmp(tw_sstate_name(st->state), state) != 0) {
            continue;
        }
        if (seen++ >= first) {
            tw__view_station(b, &e, st, 0);
            taken++;
        }
    }
    tw_enc_cstr(&e, "next");
    if (first + count < n) {
        char next[32];
        snprintf(next, sizeof next, "s1.%zu", first + count);
        tw_enc_cstr(&e, next);
    } else {
        tw_enc_nil(&e);
    }
    s_ok(out, &e);
}

/* ---- routes ----------------------------------------------------------- */

static void
s_index(tw_broker_t *b, tw_api_answer_t *out)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 4);
    tw_enc_cstr(&e, "api");
    tw_enc_uint(&e, 1);
    tw_enc_cstr(&e, "version");
    tw_enc_cstr(&e, tw_version());
    tw_enc_cstr(&e, "boot");
    tw_enc_uint(&e, b->boot);
    tw_enc_cstr(&e, "endpoints");
    size_t n = 0;
    const char *seen[TW_HTTP_NROUTES];
    for (int r = 0; r < TW_HTTP_NROUTES; r++) {
        const char *p = tw_http_route_path((tw_http_route_t)r);
        int dup = strncmp(p, "/api/v1", 7) != 0;
        for (size_t k = 0; k < n && !dup; k++) {
            dup = strcmp(seen[k], p) == 0;
        }
        if (!dup) {
            seen[n++] = p;
        }
    }
    tw_enc_array(&e, n);
    for (size_t k = 0; k < n; k++) {
        tw_enc_cstr(&e, seen[k]);
    }
    s_ok(out, &e);
}

static void
s_worker(tw_broker_t *b, uint64_t wid, tw_api_answer_t *out)
{
    tw_bworker_t *w = tw_registry_by_id(&b->reg, wid);
    if (!w) {
        char why[64];
        snprintf(why, sizeof why, "no worker %llu", (unsigned long long)wid);
        s_fail(out, TW_ENOENT, why);
        return;
    }
    tw_enc_t e;
    s_wrap(&e, "worker");
    tw__view_worker(b, &e, w);
    s_ok(out, &e);
}

static void
s_groups(tw_broker_t *b, tw_api_param_fn *get, void *arg,
         tw_api_answer_t *out)
{
    const char *pool = get(arg, "pool"), *lim = get(arg, "at_limit");
    const tw_pool_t *only = NULL;
    char why[256];
    int at = lim && (strcmp(lim, "true") == 0 || strcmp(lim, "1") == 0);
    if (lim && !at && strcmp(lim, "false") != 0 && strcmp(lim, "0") != 0) {
        snprintf(why, sizeof why, "at_limit: true or false (1 or 0)");
        s_fail(out, TW_EINVAL, why);
        return;
    }
    if (pool && !(only = tw_pools_get(&b->pools, pool, strlen(pool), 0))) {
        snprintf(why, sizeof why, "no pool '%.128s'", pool);
        s_fail(out, TW_ENOENT, why);
        return;
    }
    tw_enc_t e;
    s_wrap(&e, "groups");
    tw__view_groups(b, &e, only, at);
    s_ok(out, &e);
}

static void
s_tasks(tw_broker_t *b, tw_api_param_fn *get, void *arg,
        tw_api_answer_t *out)
{
    tw_tfilter_t f;
    char why[256];
    int rc = s_filter(b, get, arg, &f, 50, TW_TFILTER_MAX_PAGE, why,
                      sizeof why);
    if (rc != 0) {
        s_fail(out, rc, why);
        return;
    }
    tw_enc_t e;
    tw_enc_init(&e);
    tw__recs_page(b, &e, &f);
    s_ok(out, &e);
}

/* One task, or 404. */
static tw_task_t *
s_task_or_fail(tw_broker_t *b, uint64_t id, tw_api_answer_t *out)
{
    tw_task_t *t = tw_tasks_get(&b->tasks, id);
    if (!t) {
        char why[64];
        snprintf(why, sizeof why, "no task %llu", (unsigned long long)id);
        s_fail(out, TW_ENOENT, why);
    }
    return t;
}

static void
s_task_answer(tw_broker_t *b, tw_task_t *t, int detail, tw_api_answer_t *out)
{
    tw_enc_t e;
    s_wrap(&e, "task");
    if (detail) {
        tw__recs_detail(b, &e, t, (size_t)b->cfg->record_preview);
    } else {
        tw__recs_summary(b, &e, t);
    }
    s_ok(out, &e);
}

static void
s_task_act(tw_broker_t *b, tw_http_route_t r, uint64_t id,
           tw_api_answer_t *out)
{
    tw_task_t *t = s_task_or_fail(b, id, out);
    if (!t) {
        return;
    }
    char why[256];
    int rc;
    if (r == TW_HTTP_TASK_RETRY) {
        rc = tw__recs_retry(b, t, why, sizeof why);
    } else if (tw__flow_cancel(b, t)) {
        rc = 0;
    } else {
        snprintf(why, sizeof why, "task %llu is %s%s: nothing to cancel",
                 (unsigned long long)id, tw_proto_state_name(t->state),
                 t->cancel_requested ? " and being cancelled" : "");
        rc = TW_ESTATE;
    }
    if (rc != 0) {
        s_fail(out, rc, why);
        return;
    }
    /* A purge may not follow within this turn: t is still there. */
    s_task_answer(b, t, 0, out);
}

static void
s_bulk(tw_broker_t *b, int retry, const char *body, size_t blen,
       tw_api_answer_t *out)
{
    json_error_t jerr;
    json_t *obj = blen ? json_loadb(body, blen, 0, &jerr) : json_object();
    char why[256];
    if (!json_is_object(obj)) {
        snprintf(why, sizeof why, "the body must be a JSON object");
        json_decref(obj);
        s_fail(out, TW_EINVAL, why);
        return;
    }
    json_t *jids = json_object_get(obj, "ids");
    uint64_t *ids = NULL;
    size_t n = 0;
    int more = 0, rc = 0;
    if (jids) {
        size_t k = json_array_size(jids);
        if (json_object_size(obj) != 1 || !json_is_array(jids) || k == 0 ||
            k > TW_TFILTER_MAX_BULK) {
            snprintf(why, sizeof why, "ids: 1 to %d task ids, and no "
                     "filters with them", TW_TFILTER_MAX_BULK);
            rc = TW_EINVAL;
        } else {
            ids = tw_malloc(k * sizeof *ids);
            for (size_t i = 0; i < k && rc == 0; i++) {
                json_int_t v = json_integer_value(json_array_get(jids, i));
                if (!json_is_integer(json_array_get(jids, i)) || v < 1) {
                    snprintf(why, sizeof why, "ids: task ids are numbers "
                             "from 1");
                    rc = TW_EINVAL;
                }
                ids[i] = (uint64_t)v;
            }
            n = k;
        }
    } else {
        s_body_t x = {obj, {0}};
        tw_tfilter_t f;
        rc = s_filter(b, s_body_get, &x, &f, 1000, TW_TFILTER_MAX_BULK, why,
                      sizeof why);
        if (rc == 0) {
            rc = tw__recs_bulk_check(&f, retry, why, sizeof why);
        }
        if (rc == 0) {
            tw__recs_select(b, &f, &ids, &n, &more);
        }
    }
    json_decref(obj);
    if (rc != 0) {
        tw_free(ids);
        s_fail(out, rc, why);
        return;
    }
    tw_enc_t e;
    tw_enc_init(&e);
    tw__recs_apply(b, retry, ids, n, more, &e);
    tw_free(ids);
    s_ok(out, &e);
}

void
tw__api_answer(tw_broker_t *b, const tw_http_match_t *m,
               tw_api_param_fn *get, void *arg, const char *body,
               size_t blen, tw_api_answer_t *out)
{
    memset(out, 0, sizeof *out);
    if (m->action && blen) {
        /* An action's body is empty or one JSON object, checked before
         * anything happens. */
        json_error_t jerr;
        json_t *obj = json_loadb(body, blen, 0, &jerr);
        int is_obj = json_is_object(obj);
        json_decref(obj);
        if (!is_obj) {
            s_fail(out, TW_EINVAL, "the body must be one JSON object");
            return;
        }
    }
    tw_enc_t e;
    switch (m->route) {
    case TW_HTTP_INDEX:
        s_index(b, out);
        return;
    case TW_HTTP_SNAPSHOT:
        tw_enc_init(&e);
        tw__snapshot(b, &e);
        s_ok(out, &e);
        return;
    case TW_HTTP_STATUS:
        s_wrap(&e, "status");
        tw__view_status(b, &e, 0);
        s_ok(out, &e);
        return;
    case TW_HTTP_WORKERS:
        s_wrap(&e, "workers");
        tw_enc_array(&e, b->reg.len);
        for (size_t i = 0; i < b->reg.len; i++) {
            tw__view_worker(b, &e, b->reg.list[i]);
        }
        s_ok(out, &e);
        return;
    case TW_HTTP_WORKER:
        s_worker(b, m->id, out);
        return;
    case TW_HTTP_POOLS:
        s_wrap(&e, "pools");
        tw__view_pools(b, &e);
        s_ok(out, &e);
        return;
    case TW_HTTP_GROUPS:
        s_groups(b, get, arg, out);
        return;
    case TW_HTTP_QUEUES:
        s_wrap(&e, "queues");
        tw__view_queues(b, &e);
        s_ok(out, &e);
        return;
    case TW_HTTP_TASKS:
        s_tasks(b, get, arg, out);
        return;
    case TW_HTTP_TASK: {
        tw_task_t *t = s_task_or_fail(b, m->id, out);
        if (t) {
            s_task_answer(b, t, 1, out);
        }
        return;
    }
    case TW_HTTP_TASK_RETRY:
    case TW_HTTP_TASK_CANCEL:
        s_task_act(b, m->route, m->id, out);
        return;
    case TW_HTTP_TASKS_RETRY:
    case TW_HTTP_TASKS_PURGE:
        s_bulk(b, m->route == TW_HTTP_TASKS_RETRY, body, blen, out);
        return;
    case TW_HTTP_WORKER_DRAIN:
    case TW_HTTP_WORKER_RESIZE:
        s_worker_op(b, m, body, blen, out);
        return;
    case TW_HTTP_STATIONS:
        s_stations(b, get, arg, out);
        return;
    case TW_HTTP_STATION:
    case TW_HTTP_STATION_OP:
        s_station(b, m, out);
        return;
    default: /* METRICS and EVENTS are the server's */
        s_fail(out, TW_ENOENT, "no such route");
        return;
    }
}
