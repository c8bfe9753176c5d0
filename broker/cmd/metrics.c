/*  broker/cmd/metrics.c - the Prometheus endpoint (see metrics.h).
 *
 *  Rendering builds the whole page in one growing buffer from the broker's
 *  state as it is during this callback, so a scrape is one consistent
 *  picture, like QUERY snapshot. Counters come from one table over
 *  tw_broker_stats_t, so a new counter is one row. Label values (worker
 *  names and hosts, handler names) are escaped as the format requires:
 *  backslash, double quote and newline.
 */
#include "broker/cmd/metrics.h"
#include "broker/cmd/api.h"
#include "broker/core/core.h"
#include "broker/state/httpapi.h"
#include "broker/state/sse.h"
#include "proto/mpwalk.h"
#include "taskwheel/version.h"
#include "web/assets.h"
#include "broker/core/persist.h"
#include "broker/core/place.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

typedef struct s_conn s_conn_t;

struct tw_metrics {
    tw_broker_t *b;
    struct MHD_Daemon *d;
    uv_poll_t poll;
    uv_timer_t timer;
    uv_timer_t sse_timer; /* the next event-stream ping or linger end */
    uv_signal_t sighup;   /* rereads --http-token-file */
    int handles; /* loop handles not yet closed */
    int port;
    double start_s; /* wall clock at start, for process_start_time */
    tw_http_policy_t policy;
    char token[257];
    const char *tpath; /* --http-token-file (borrowed from the config) */
    tw_sse_t *sse;
    s_conn_t *streams; /* open event streams */
    int in_mhd;        /* inside MHD_run: no nested run */
};

/* What one connection's request needs between MHD's calls. */
struct s_conn {
    tw_metrics_t *m;
    struct MHD_Connection *conn;
    char *body;
    size_t blen;
    int too_big;
    tw_sse_stream_t *st; /* an event stream, or NULL */
    int suspended;
    s_conn_t *prev, *next;
};

/* ---- rendering -------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
} s_buf_t;

static void
s_printf(s_buf_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
s_printf(s_buf_t *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        o->cap = o->cap * 2 + (n > 0 ? (size_t)n : 0) + 256;
        o->p = tw_realloc(o->p, o->cap);
    }
}

/* Append `s` (`n` bytes) escaped as a label value. */
static void
s_label(s_buf_t *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') {
            s_printf(o, "\\\\");
        } else if (c == '"') {
            s_printf(o, "\\\"");
        } else if (c == '\n') {
            s_printf(o, "\\n");
        } else {
            s_printf(o, "%c", c);
        }
    }
}

static void
s_head(s_buf_t *o, const char *name, const char *type, const char *help)
{
    s_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
s_one(s_buf_t *o, const char *name, const char *type, const char *help,
      uint64_t v)
{
    s_head(o, name, type, help);
    s_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

/* The counters of tw_broker_stats_t, one row each. */
static const struct {
    const char *name;
    size_t off;
    const char *help;
} s_counters[] = {
#define S_C(field, key, help)                                                \
    {"taskwheel_" #field "_total", offsetof(tw_broker_stats_t, field), help},
    TW_BROKER_COUNTERS(S_C)
#undef S_C
};

/* One histogram family over every handler: `which` picks run or wait. */
static void
s_render_hist(tw_broker_t *b, s_buf_t *o, const char *name,
              const char *help, int wait)
{
    static const uint64_t bounds[TW_HIST_N] = TW_HIST_BOUNDS;
    s_head(o, name, "histogram", help);
    for (size_t i = 0; i < b->reg.nhandlers; i++) {
        const tw_handler_t *h = &b->reg.handlers[i];
        const tw_hist_t *hi = wait ? &h->wait : &h->run;
        uint64_t cum = 0;
        for (size_t k = 0; k <= TW_HIST_N; k++) {
            cum += hi->buckets[k];
            s_printf(o, "%s_bucket{handler=\"", name);
            s_label(o, h->name, h->name_len);
            if (k < TW_HIST_N) {
                s_printf(o, "\",le=\"%g\"} %llu\n",
                         (double)bounds[k] / 1000.0, (unsigned long long)cum);
            } else {
                s_printf(o, "\",le=\"+Inf\"} %llu\n",
                         (unsigned long long)cum);
            }
        }
        s_printf(o, "%s_sum{handler=\"", name);
        s_label(o, h->name, h->name_len);
        s_printf(o, "\"} %.3f\n", (double)hi->sum_ms / 1000.0);
        s_printf(o, "%s_count{handler=\"", name);
        s_label(o, h->name, h->name_len);
        s_printf(o, "\"} %llu\n", (unsigned long long)hi->count);
    }
}

static void
s_render_workers(tw_broker_t *b, s_buf_t *o)
{
    uint64_t slots = 0, used = 0;
    for (size_t i = 0; i < b->reg.len; i++) {
        const tw_bworker_t *w = b->reg.list[i];
        slots += w->slots;
        used += w->inflight.len + w->nstations;
    }
    s_one(o, "taskwheel_workers", "gauge", "Registered workers.",
          b->reg.len);
    s_one(o, "taskwheel_slots", "gauge", "Slots of all workers.", slots);
    s_one(o, "taskwheel_slots_used", "gauge",
          "Slots holding a running task or a station.", used);
    static const char *const per[] = {
        "taskwheel_worker_slots", "Slots of one worker.",
        "taskwheel_worker_running", "Tasks running on one worker.",
        "taskwheel_worker_stations", "Stations placed on one worker.",
        "taskwheel_worker_credit", "Credit not yet used (free capacity).",
        "taskwheel_worker_heartbeat_age_seconds",
        "Seconds since the last message from one worker."};
    uint64_t now = uv_now(b->loop);
    for (int k = 0; k < 5; k++) {
        s_head(o, per[2 * k], "gauge", per[2 * k + 1]);
        for (size_t i = 0; i < b->reg.len; i++) {
            const tw_bworker_t *w = b->reg.list[i];
            s_printf(o, "%s{wid=\"%llu\",worker=\"", per[2 * k],
                     (unsigned long long)w->id);
            s_label(o, w->name ? w->name : "", w->name ? strlen(w->name) : 0);
            s_printf(o, "\",host=\"");
            s_label(o, w->host ? w->host : "", w->host ? strlen(w->host) : 0);
            s_printf(o, "\"} ");
            switch (k) {
            case 0:
                s_printf(o, "%u\n", w->slots);
                break;
            case 1:
                s_printf(o, "%zu\n", w->inflight.len);
                break;
            case 2:
                s_printf(o, "%u\n", w->nstations);
                break;
            case 3:
                s_printf(o, "%llu\n", (unsigned long long)w->credit);
                break;
            default:
                s_printf(o, "%.3f\n", (double)(now - w->last_recv_ms) / 1e3);
                break;
            }
        }
    }
}

static void
s_render_state(tw_broker_t *b, s_buf_t *o)
{
    s_head(o, "taskwheel_stations", "gauge", "Stations by state.");
    for (int s = 0; s <= TW_SS_CANCELLED; s++) {
        size_t n = 0;
        for (size_t i = 0; i < b->stations.len; i++) {
            n += (int)b->stations.all[i]->state == s;
        }
        s_printf(o, "taskwheel_stations{state=\"%s\"} %zu\n",
                 tw_sstate_name(s), n);
    }
    s_one(o, "taskwheel_stations_unplaced", "gauge",
          "Entries on the placement list, set-aside stations included "
          "(stale ones too).",
          tw__place_unplaced(b));
    s_head(o, "taskwheel_tasks", "gauge",
           "Tasks by state: pending (queued, parked or delayed), running, "
           "blocked (waiting for their parents), kept (ended, kept for "
           "result queries).");
    s_printf(o, "taskwheel_tasks{state=\"pending\"} %zu\n", b->pending);
    s_printf(o, "taskwheel_tasks{state=\"blocked\"} %zu\n",
             tw_deps_count(b->deps));
    s_printf(o, "taskwheel_tasks{state=\"running\"} %zu\n", b->running);
    s_printf(o, "taskwheel_tasks{state=\"kept\"} %zu\n", b->tasks.ended.len);
    s_one(o, "taskwheel_payload_bytes", "gauge",
          "Bytes of task arguments and kept results the broker holds.",
          b->tasks.payload_bytes);
    s_one(o, "taskwheel_payload_budget_bytes", "gauge",
          "The most it holds (--payload-budget); beyond, submissions are "
          "refused.",
          (uint64_t)b->cfg->payload_budget << 20);
    s_head(o, "taskwheel_queue_depth", "gauge",
           "Tasks ready to run, per handler queue.");
    for (size_t i = 0; i < b->reg.nhandlers; i++) {
        const tw_handler_t *h = &b->reg.handlers[i];
        s_printf(o, "taskwheel_queue_depth{handler=\"");
        s_label(o, h->name, h->name_len);
        s_printf(o, "\"} %zu\n", h->queue->len);
    }
    s_one(o, "taskwheel_tasks_delayed", "gauge",
          "Pending tasks not due yet (delay or retry backoff).",
          b->delayed.len);
    s_one(o, "taskwheel_clients", "gauge", "Client records.",
          tw_clients_count(&b->clients));
    s_one(o, "taskwheel_status_subscriptions", "gauge",
          "Distinct prefixes subscribed on the status socket.",
          b->status.nsubs);
}

static void
s_render_counters(tw_broker_t *b, s_buf_t *o)
{
    for (size_t i = 0; i < sizeof s_counters / sizeof s_counters[0]; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&b->st + s_counters[i].off, sizeof v);
        s_one(o, s_counters[i].name, "counter", s_counters[i].help, v);
    }
    s_one(o, "taskwheel_status_dropped_total", "counter",
          "Status messages the status socket refused.", b->status.dropped);
    s_one(o, "taskwheel_status_published_total", "counter",
          "Status messages published (the last pseq).", b->status.pseq);
    s_one(o, "taskwheel_stale_done_total", "counter",
          "DONE items refused for an old dispatch epoch.", b->stale_done);
    s_one(o, "taskwheel_adopted_total", "counter",
          "Tasks re-announced by their worker and kept running.",
          b->adopted);
    s_head(o, "taskwheel_tasks_ended_total", "counter",
           "Tasks ended, by outcome.");
    s_printf(o, "taskwheel_tasks_ended_total{outcome=\"ok\"} %llu\n",
             (unsigned long long)b->st.completed);
    s_printf(o, "taskwheel_tasks_ended_total{outcome=\"failed\"} %llu\n",
             (unsigned long long)b->st.failed);
    s_printf(o, "taskwheel_tasks_ended_total{outcome=\"cancelled\"} %llu\n",
             (unsigned long long)b->st.cancelled);
}

/* The store (--data): commits, their latency as a summary, its size. */
static void
s_render_store(tw_broker_t *b, s_buf_t *o)
{
    tw_persist_figures_t f;
    if (!tw__persist_figures(b, &f)) {
        return;
    }
    s_one(o, "taskwheel_store_commits_total", "counter",
          "Write transactions committed.", f.commits);
    s_one(o, "taskwheel_store_errors_total", "counter",
          "Write transactions that failed.", f.errors);
    s_one(o, "taskwheel_store_syncs_total", "counter",
          "Explicit syncs of the store (everysec).", f.syncs);
    s_one(o, "taskwheel_store_used_bytes", "gauge",
          "Bytes of the store in use after the last commit.", f.used_bytes);
    s_head(o, "taskwheel_store_commit_seconds", "summary",
           "From a loop turn's batch handed to the store to its ACKs "
           "leaving.");
    s_printf(o, "taskwheel_store_commit_seconds_sum %.6f\n",
             f.commit_seconds);
    s_printf(o, "taskwheel_store_commit_seconds_count %llu\n",
             (unsigned long long)f.timed);
}

/* A broker of a pair (docs/HA.md, "Observing a pair"). */
static void
s_render_pair(tw_broker_t *b, s_buf_t *o)
{
    if (!b->pair) {
        return;
    }
    tw_pair_figures_t f;
    tw_pair_figures(b->pair, &f);
    s_one(o, "taskwheel_ha_active", "gauge",
          "1 if this broker is the active one of its pair.",
          strcmp(f.state, "active") == 0);
    s_one(o, "taskwheel_ha_epoch", "gauge",
          "The pair's fencing epoch as this broker knows it.", f.epoch);
    s_one(o, "taskwheel_ha_lag_batches", "gauge",
          "Batches streamed to the passive and not acknowledged.",
          f.lag.batches);
    s_one(o, "taskwheel_ha_lag_bytes", "gauge",
          "Bytes of those batches.", f.lag.bytes);
    s_head(o, "taskwheel_ha_lag_seconds", "gauge",
           "Age of the oldest of those batches.");
    s_printf(o, "taskwheel_ha_lag_seconds %.3f\n", (double)f.lag.ms / 1e3);
    s_one(o, "taskwheel_ha_takeovers_total", "counter",
          "Times this broker became active.", f.activations);
    s_one(o, "taskwheel_ha_snapshots_total", "counter",
          "Snapshots sent to the passive.", f.snapshots);
    s_one(o, "taskwheel_ha_batches_total", "counter",
          "Batches streamed to the passive.", f.batches);
}

void
tw_metrics_render(tw_broker_t *b, char **out, size_t *len)
{
    s_buf_t o = {NULL, 0, 0};
    o.cap = 8192;
    o.p = tw_malloc(o.cap);
    double start = b->metrics ? b->metrics->start_s : 0;
    s_head(&o, "process_start_time_seconds", "gauge",
           "Start time of the broker since the Unix epoch in seconds.");
    s_printf(&o, "process_start_time_seconds %.3f\n", start);
    s_one(&o, "taskwheel_uptime_seconds", "gauge",
          "Seconds since the broker started.",
          (uv_now(b->loop) - b->start_ms) / 1000);
    s_render_workers(b, &o);
    s_render_state(b, &o);
    s_render_counters(b, &o);
    s_render_store(b, &o);
    s_render_hist(b, &o, "taskwheel_task_run_seconds",
                  "Run time of task attempts, dispatch to outcome, by "
                  "handler.", 0);
    s_render_hist(b, &o, "taskwheel_task_queue_wait_seconds",
                  "Time tasks waited in their queue, from due to dispatch, "
                  "by handler.", 1);
    s_head(&o, "taskwheel_build_info", "gauge",
           "The broker's version, as a label; the value is 1.");
    s_printf(&o, "taskwheel_build_info{version=\"%s\"} 1\n", tw_version());
    s_render_pair(b, &o);
    *out = o.p;
    *len = o.len;
}

/* ---- HTTP ------------------------------------------------------------- */

static enum MHD_Result
s_reply(struct MHD_Connection *conn, unsigned code, const char *type,
        void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result rc = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---- the event stream ------------------------------------------------ */

static int
s_tap_wants(void *arg, const char *topic, size_t tlen)
{
    tw_metrics_t *m = arg;
    return tw_sse_wants(m->sse, topic, tlen);
}

static void s_on_timer(uv_timer_t *h);

/* Let every suspended stream that has something to send go on, and have
 * MHD run soon (never from inside its own callbacks). */
static void
s_wake(tw_metrics_t *m)
{
    uint64_t now = uv_now(m->b->loop);
    int any = 0;
    for (s_conn_t *c = m->streams; c; c = c->next) {
        if (c->suspended && tw_sse_ready(m->sse, c->st, now)) {
            c->suspended = 0;
            MHD_resume_connection(c->conn);
            any = 1;
        }
    }
    if (any && !m->in_mhd) {
        uv_timer_start(&m->timer, s_on_timer, 0, 0);
    }
}

/* A status message: {topic, ...body} as one line of JSON in the ring. */
static void
s_tap(void *arg, uint64_t pseq, const char *topic, size_t tlen,
      const void *body, size_t blen)
{
    tw_metrics_t *m = arg;
    if (!tw_sse_wants(m->sse, topic, tlen)) {
        return;
    }
    size_t off = 0;
    uint64_t len, kids;
    if (tw_mp_head(body, blen, &off, &len, &kids) != 0 ||
        !tw_mp_is_map(((const unsigned char *)body)[0])) {
        return;
    }
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, kids / 2 + 1);
    tw_enc_cstr(&e, "topic");
    tw_enc_str(&e, topic, tlen);
    msgpack_sbuffer_write(&e.sb, (const char *)body + off, blen - off);
    size_t jlen;
    char *json = tw__api_json(e.sb.data, e.sb.size, &jlen);
    tw_enc_free(&e);
    tw_sse_publish(m->sse, pseq, topic, tlen, json, jlen);
    tw_free(json);
    s_wake(m);
}

static void
s_on_sse_timer(uv_timer_t *h)
{
    tw_metrics_t *m = h->data;
    s_wake(m);
}

/* Follow the ring's next deadline (a ping, a lingering filter). */
static void
s_arm_sse(tw_metrics_t *m)
{
    int64_t ms = tw_sse_tick(m->sse, uv_now(m->b->loop));
    if (ms >= 0) {
        uv_timer_start(&m->sse_timer, s_on_sse_timer, (uint64_t)ms + 1, 0);
    } else {
        uv_timer_stop(&m->sse_timer);
    }
}

static ssize_t
s_sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    s_conn_t *c = cls;
    size_t n = tw_sse_read(c->m->sse, c->st, buf, max,
                           uv_now(c->m->b->loop));
    if (n == 0) {
        /* Nothing now: out of MHD's loop until an event or a ping. */
        c->suspended = 1;
        MHD_suspend_connection(c->conn);
    }
    return (ssize_t)n;
}

/* ---- requests --------------------------------------------------------- */

static enum MHD_Result
s_queue(struct MHD_Connection *conn, tw_api_answer_t *a)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        a->len, a->body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        tw_free(a->body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (a->header) {
        MHD_add_response_header(r, a->header, a->value);
    }
    enum MHD_Result rc = MHD_queue_response(conn, a->status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result
s_error(struct MHD_Connection *conn, const tw_http_err_t *err)
{
    tw_api_answer_t a;
    tw__api_error(err, &a);
    return s_queue(conn, &a);
}

static const char *
s_header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

static const char *
s_param(void *arg, const char *name)
{
    return MHD_lookup_connection_value(arg, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct {
    const char *names[16];
    size_t n;
} s_names_t;

static enum MHD_Result
s_name_cb(void *cls, enum MHD_ValueKind kind, const char *key,
          const char *value)
{
    (void)kind;
    (void)value;
    s_names_t *x = cls;
    if (x->n < sizeof x->names / sizeof *x->names) {
        x->names[x->n++] = key;
    }
    return MHD_YES;
}

static int
s_peer_loopback(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) &&
                a->sin6_addr.s6_addr[12] == 127);
    }
    return 0;
}

/* GET /api/v1/events: a stream, or its refusal. */
static enum MHD_Result
s_events(tw_metrics_t *m, s_conn_t *c, struct MHD_Connection *conn)
{
    char why[256];
    tw_http_err_t err;
    int rc = tw_sse_open(m->sse, &c->st, s_param(conn, "topics"),
                         s_header(conn, "Last-Event-ID"), m->b->status.pseq,
                         uv_now(m->b->loop), why, sizeof why);
    if (rc == TW_EFULL) {
        tw_http_fail(&err, 503, "EBUSY", "%s", why);
        err.header = "Retry-After";
        snprintf(err.value, sizeof err.value, "5");
        return s_error(conn, &err);
    }
    if (rc != 0) {
        tw_http_fail(&err, 400, "EINVAL", "%s", why);
        return s_error(conn, &err);
    }
    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 16384, s_sse_read, c, NULL);
    if (!r) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/event-stream; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    c->conn = conn;
    c->next = m->streams;
    if (m->streams) {
        m->streams->prev = c;
    }
    m->streams = c;
    enum MHD_Result res = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    s_arm_sse(m);
    return res;
}

/* "/" and "/ui/...": the dashboard's files, static, to anyone who can
 * connect; they hold no data. */
static enum MHD_Result
s_asset(struct MHD_Connection *conn, const char *method,
        const tw_web_asset_t *a)
{
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        tw_http_err_t err;
        tw_http_fail(&err, 405, "EMETHOD", "%s: only GET and HEAD", a->path);
        err.header = "Allow";
        snprintf(err.value, sizeof err.value, "GET, HEAD");
        return s_error(conn, &err);
    }
    const char *inm = s_header(conn, MHD_HTTP_HEADER_IF_NONE_MATCH);
    int same = inm && strcmp(inm, a->etag) == 0;
    struct MHD_Response *r = MHD_create_response_from_buffer(
        same ? 0 : a->len, same ? NULL : (void *)a->data,
        MHD_RESPMEM_PERSISTENT);
    if (!r) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, a->etag);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result rc = MHD_queue_response(
        conn, same ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

/* /metrics: the read rule of the API, then the page. */
static enum MHD_Result
s_metrics_page(tw_metrics_t *m, struct MHD_Connection *conn)
{
    char *page;
    size_t len;
    tw_metrics_render(m->b, &page, &len);
    enum MHD_Result rc =
        s_reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                page, len, MHD_RESPMEM_MUST_COPY);
    tw_free(page);
    return rc;
}

static enum MHD_Result
s_on_request(void *cls, struct MHD_Connection *conn, const char *url,
             const char *method, const char *version, const char *upload,
             size_t *upload_len, void **con_cls)
{
    (void)version;
    tw_metrics_t *m = cls;
    s_conn_t *c = *con_cls;
    if (!c) {
        /* The headers: answer once the request is complete. */
        c = tw_calloc(1, sizeof *c);
        c->m = m;
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_len) {
        if (c->blen + *upload_len > TW_HTTP_MAX_BODY) {
            c->too_big = 1;
        } else {
            c->body = tw_realloc(c->body, c->blen + *upload_len);
            memcpy(c->body + c->blen, upload, *upload_len);
            c->blen += *upload_len;
        }
        *upload_len = 0;
        return MHD_YES;
    }
    tw_http_err_t err;
    tw_http_match_t hm;
    const tw_web_asset_t *asset = tw_web_find(url);
    if (asset) {
        return s_asset(conn, method, asset);
    }
    if (tw_http_match(method, url, &hm, &err) != 0) {
        if (strncmp(url, "/api/", 5) != 0 && strcmp(url, "/metrics") != 0) {
            tw_http_fail(&err, 404, "ENOENT", "no such path: %.128s", url);
        }
        return s_error(conn, &err);
    }
    s_names_t names = {{0}, 0};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, s_name_cb,
                              &names);
    tw_http_req_t req = {
        .action = hm.action,
        .peer_loopback = s_peer_loopback(conn),
        .authorization = s_header(conn, MHD_HTTP_HEADER_AUTHORIZATION),
        .origin = s_header(conn, "Origin"),
        .host = s_header(conn, MHD_HTTP_HEADER_HOST),
        .content_type = s_header(conn, MHD_HTTP_HEADER_CONTENT_TYPE),
    };
    enum MHD_Result rc;
    if (tw_http_check_params(&hm, names.names, names.n, &err) != 0 ||
        tw_http_allow(&m->policy, &req, &err) != 0) {
        rc = s_error(conn, &err);
    } else if (c->too_big) {
        tw_http_fail(&err, 413, "E2BIG", "the body is above %d bytes",
                     TW_HTTP_MAX_BODY);
        rc = s_error(conn, &err);
    } else if (hm.route == TW_HTTP_METRICS) {
        rc = s_metrics_page(m, conn);
    } else if (hm.route == TW_HTTP_EVENTS) {
        rc = s_events(m, c, conn);
    } else {
        tw_api_answer_t a;
        tw__api_answer(m->b, &hm, s_param, conn, c->body, c->blen, &a);
        rc = s_queue(conn, &a);
    }
    tw_http_match_free(&hm);
    return rc;
}

/* MHD is done with a request: its stream closes, its state goes. */
static void
s_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
               enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    tw_metrics_t *m = cls;
    s_conn_t *c = *con_cls;
    if (!c) {
        return;
    }
    if (c->st) {
        if (c->prev) {
            c->prev->next = c->next;
        } else if (m->streams == c) {
            m->streams = c->next;
        }
        if (c->next) {
            c->next->prev = c->prev;
        }
        tw_sse_close(m->sse, &c->st, uv_now(m->b->loop));
    }
    tw_free(c->body);
    tw_free(c);
    *con_cls = NULL;
}

static void s_arm(tw_metrics_t *m);

static void
s_run(tw_metrics_t *m)
{
    m->in_mhd = 1;
    MHD_run(m->d);
    m->in_mhd = 0;
    s_arm(m);
    s_arm_sse(m);
}

static void
s_on_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    s_run(h->data);
}

static void
s_on_timer(uv_timer_t *h)
{
    s_run(h->data);
}

/* Follow MHD's own deadline: connection timeouts, and 0 when it already
 * holds data to process. */
static void
s_arm(tw_metrics_t *m)
{
    MHD_UNSIGNED_LONG_LONG t;
    if (MHD_get_timeout(m->d, &t) == MHD_YES) {
        uv_timer_start(&m->timer, s_on_timer, t, 0);
    } else {
        uv_timer_stop(&m->timer);
    }
}

/* Parse "HOST:PORT" into a socket address. */
static int
s_parse(const char *addr, struct sockaddr_storage *ss, int *v6, char *why,
        size_t wlen)
{
    const char *colon = strrchr(addr, ':');
    char host[64];
    size_t n = colon ? (size_t)(colon - addr) : 0;
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || !colon[1] || *end || port < 0 || port > 65535 || n == 0 ||
        n >= sizeof host) {
        snprintf(why, wlen, "--metrics '%s': expected HOST:PORT", addr);
        return TW_EINVAL;
    }
    memcpy(host, addr, n);
    host[n] = '\0';
    char *h = host;
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host[n - 1] = '\0';
        h = host + 1;
    }
    if (strcmp(h, "localhost") == 0) {
        h = "127.0.0.1";
    }
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *v6 = 0;
    } else if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *v6 = 1;
    } else {
        snprintf(why, wlen, "--metrics '%s': HOST must be a numeric address "
                 "or localhost", addr);
        return TW_EINVAL;
    }
    return 0;
}

static int s_read_token(const char *path, char *tok, size_t cap, char *why,
                        size_t wlen);

int
tw_metrics_check(const char *addr, int insecure, const char *token_file,
                 char *why, size_t wlen)
{
    int token = token_file && *token_file;
    char tok[257];
    if (token && s_read_token(token_file, tok, sizeof tok, why, wlen) != 0) {
        return TW_EINVAL;
    }
    struct sockaddr_storage ss;
    int v6;
    int rc = s_parse(addr, &ss, &v6, why, wlen);
    if (rc != 0) {
        return rc;
    }
    char ep[128];
    snprintf(ep, sizeof ep, "tcp://%s", addr);
    if (!tw_auth_endpoint_local(ep) && !insecure && !token) {
        snprintf(why, wlen, "--http %s is not a loopback address and no "
                 "--http-token-file protects it; give one, or add "
                 "--insecure to serve reads there without one", addr);
        return TW_EINVAL;
    }
    return 0;
}

/* The token of --http-token-file: one line of 32 to 256 printable ASCII
 * characters without spaces, '#' lines being comments, in a file that
 * neither group nor others may read. Returns 0 or TW_EINVAL with `why`. */
static int
s_read_token(const char *path, char *tok, size_t cap, char *why,
             size_t wlen)
{
    FILE *f = fopen(path, "r");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) != 0) {
        snprintf(why, wlen, "--http-token-file %s: cannot read it", path);
        if (f) {
            fclose(f);
        }
        return TW_EINVAL;
    }
    if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(why, wlen, "--http-token-file %s: group or others may "
                 "read it; chmod 600 it", path);
        fclose(f);
        return TW_EINVAL;
    }
    char line[512];
    int found = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        if (n == 0 || line[0] == '#') {
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            bad |= line[i] <= ' ' || line[i] > '~';
        }
        if (found || bad || n < 32 || n > 256 || n >= cap) {
            bad = 1;
            break;
        }
        memcpy(tok, line, n + 1);
        found = 1;
    }
    fclose(f);
    if (bad || !found) {
        snprintf(why, wlen, "--http-token-file %s: expected one line of 32 "
                 "to 256 printable characters without spaces", path);
        return TW_EINVAL;
    }
    return 0;
}

/* SIGHUP: read --http-token-file again. A file that no longer reads as
 * a token (missing, readable by others, malformed) changes nothing: the
 * old token stays in force and the reason is logged. */
static void
s_on_sighup(uv_signal_t *h, int signum)
{
    (void)signum;
    tw_metrics_t *m = h->data;
    char tok[sizeof m->token], why[512];
    if (s_read_token(m->tpath, tok, sizeof tok, why, sizeof why) != 0) {
        tw_warn("broker.metrics", "SIGHUP: %s; the HTTP token in force "
                "stays", why);
        return;
    }
    memcpy(m->token, tok, sizeof m->token);
    m->policy.token_len = strlen(m->token);
    tw_notice("broker.metrics", "SIGHUP: reread the HTTP token from %s",
              m->tpath);
}

int
tw_metrics_start(tw_metrics_t **out, tw_broker_t *b, const char *addr,
                 int insecure, char *why, size_t wlen)
{
    *out = NULL;
    const char *tpath = b->cfg->http_token_file;
    int has_token = tpath && *tpath;
    int rc = tw_metrics_check(addr, insecure, tpath, why, wlen);
    if (rc != 0) {
        return rc;
    }
    struct sockaddr_storage ss;
    int v6;
    s_parse(addr, &ss, &v6, why, wlen);
    tw_metrics_t *m = tw_calloc(1, sizeof *m);
    if (has_token &&
        s_read_token(tpath, m->token, sizeof m->token, why, wlen) != 0) {
        tw_free(m);
        return TW_EINVAL;
    }
    char ep[128];
    snprintf(ep, sizeof ep, "tcp://%s", addr);
    m->policy.loopback = tw_auth_endpoint_local(ep);
    m->policy.token = has_token ? m->token : NULL;
    m->policy.token_len = has_token ? strlen(m->token) : 0;
    m->tpath = has_token ? tpath : NULL;
    m->b = b;
    m->start_s = (double)time(NULL);
    tw_sse_limits_t lim = tw_sse_defaults();
    m->sse = tw_sse_new(b->boot, &lim);
    unsigned flags = MHD_USE_EPOLL | MHD_USE_SUPPRESS_DATE_NO_CLOCK |
                     MHD_ALLOW_SUSPEND_RESUME | (v6 ? MHD_USE_IPv6 : 0);
    /* An idle connection goes after 60 s; an event stream is never idle
     * that long, since it gets a ping every 15 s. */
    m->d = MHD_start_daemon(flags, 0, NULL, NULL, s_on_request, m,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)128,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                            MHD_OPTION_NOTIFY_COMPLETED, s_on_completed, m,
                            MHD_OPTION_END);
    if (!m->d) {
        snprintf(why, wlen, "--http %s: cannot listen there (in use, or "
                 "not an address of this host)", addr);
        tw_sse_destroy(&m->sse);
        tw_free(m);
        return TW_EIO;
    }
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *pi =
        MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
    m->port = pi ? pi->port : 0;
    if (!di || uv_poll_init(b->loop, &m->poll, di->epoll_fd) != 0) {
        snprintf(why, wlen, "--http %s: cannot watch the server", addr);
        MHD_stop_daemon(m->d);
        tw_sse_destroy(&m->sse);
        tw_free(m);
        return TW_EIO;
    }
    uv_timer_init(b->loop, &m->timer);
    uv_timer_init(b->loop, &m->sse_timer);
    uv_signal_init(b->loop, &m->sighup);
    m->poll.data = m->timer.data = m->sse_timer.data = m->sighup.data = m;
    m->handles = 4;
    uv_poll_start(&m->poll, UV_READABLE, s_on_poll);
    if (has_token) {
        uv_signal_start(&m->sighup, s_on_sighup, SIGHUP);
    }
    s_arm(m);
    b->status.tap_wants = s_tap_wants;
    b->status.tap = s_tap;
    b->status.tap_arg = m;
    tw_notice("broker.metrics", "HTTP API at http://%s/api/v1, metrics at "
              "/metrics (port %d%s)", addr, m->port,
              has_token ? ", token required for actions" : "");
    *out = m;
    return 0;
}

int
tw_metrics_port(const tw_metrics_t *m)
{
    return m->port;
}

static void
s_closed(uv_handle_t *h)
{
    tw_metrics_t *m = h->data;
    m->handles--;
}

void
tw_metrics_stop(tw_metrics_t *m)
{
    if (m && m->handles == 4 && !uv_is_closing((uv_handle_t *)&m->poll)) {
        m->b->status.tap = NULL;
        m->b->status.tap_wants = NULL;
        uv_close((uv_handle_t *)&m->poll, s_closed);
        uv_close((uv_handle_t *)&m->timer, s_closed);
        uv_close((uv_handle_t *)&m->sse_timer, s_closed);
        uv_close((uv_handle_t *)&m->sighup, s_closed);
    }
}

void
tw_metrics_destroy(tw_metrics_t **m_p)
{
    tw_metrics_t *m = *m_p;
    if (!m) {
        return;
    }
    /* The loop handles must be closed first: never close a polled fd. */
    if (m->handles == 0) {
        /* Suspended streams must be resumed before the daemon stops. */
        for (s_conn_t *c = m->streams; c; c = c->next) {
            if (c->suspended) {
                c->suspended = 0;
                MHD_resume_connection(c->conn);
            }
        }
        MHD_stop_daemon(m->d);
        tw_sse_destroy(&m->sse);
        tw_free(m);
    } else {
        tw_warn("broker.metrics", "metrics handles still open at exit");
    }
    *m_p = NULL;
}
