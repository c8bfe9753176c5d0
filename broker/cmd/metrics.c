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
#include "broker/core/core.h"
#include "broker/core/persist.h"
#include "broker/core/place.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct tw_metrics {
    tw_broker_t *b;
    struct MHD_Daemon *d;
    uv_poll_t poll;
    uv_timer_t timer;
    int handles; /* loop handles not yet closed */
    int port;
    double start_s; /* wall clock at start, for process_start_time */
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

static enum MHD_Result
s_on_request(void *cls, struct MHD_Connection *conn, const char *url,
             const char *method, const char *version, const char *upload,
             size_t *upload_len, void **con_cls)
{
    (void)version;
    (void)upload;
    tw_metrics_t *m = cls;
    static int first;
    if (*con_cls != &first) {
        /* The headers: answer once the request is complete. */
        *con_cls = &first;
        return MHD_YES;
    }
    if (*upload_len) {
        *upload_len = 0; /* a body is read and ignored */
        return MHD_YES;
    }
    static char text[] = "text/plain; charset=utf-8";
    int head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && !head) {
        static char msg[] = "only GET\n";
        return s_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, msg,
                       sizeof msg - 1, MHD_RESPMEM_PERSISTENT);
    }
    if (strcmp(url, "/metrics") != 0) {
        static char msg[] = "not found: the metrics are at /metrics\n";
        return s_reply(conn, MHD_HTTP_NOT_FOUND, text, msg, sizeof msg - 1,
                       MHD_RESPMEM_PERSISTENT);
    }
    char *page;
    size_t len;
    tw_metrics_render(m->b, &page, &len);
    enum MHD_Result rc =
        s_reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                page, len, MHD_RESPMEM_MUST_COPY);
    tw_free(page);
    return rc;
}

static void s_arm(tw_metrics_t *m);

static void
s_run(tw_metrics_t *m)
{
    MHD_run(m->d);
    s_arm(m);
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

int
tw_metrics_check(const char *addr, int insecure, char *why, size_t wlen)
{
    struct sockaddr_storage ss;
    int v6;
    int rc = s_parse(addr, &ss, &v6, why, wlen);
    if (rc != 0) {
        return rc;
    }
    char ep[128];
    snprintf(ep, sizeof ep, "tcp://%s", addr);
    if (!tw_auth_endpoint_local(ep) && !insecure) {
        snprintf(why, wlen, "--metrics %s is not a loopback address and the "
                 "metrics have no authentication; add --insecure to serve "
                 "them there anyway", addr);
        return TW_EINVAL;
    }
    return 0;
}

int
tw_metrics_start(tw_metrics_t **out, tw_broker_t *b, const char *addr,
                 int insecure, char *why, size_t wlen)
{
    *out = NULL;
    int rc = tw_metrics_check(addr, insecure, why, wlen);
    if (rc != 0) {
        return rc;
    }
    struct sockaddr_storage ss;
    int v6;
    s_parse(addr, &ss, &v6, why, wlen);
    tw_metrics_t *m = tw_calloc(1, sizeof *m);
    m->b = b;
    m->start_s = (double)time(NULL);
    unsigned flags = MHD_USE_EPOLL | MHD_USE_SUPPRESS_DATE_NO_CLOCK |
                     (v6 ? MHD_USE_IPv6 : 0);
    m->d = MHD_start_daemon(flags, 0, NULL, NULL, s_on_request, m,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_END);
    if (!m->d) {
        snprintf(why, wlen, "--metrics %s: cannot listen there (in use, or "
                 "not an address of this host)", addr);
        tw_free(m);
        return TW_EIO;
    }
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *pi =
        MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
    m->port = pi ? pi->port : 0;
    if (!di || uv_poll_init(b->loop, &m->poll, di->epoll_fd) != 0) {
        snprintf(why, wlen, "--metrics %s: cannot watch the server", addr);
        MHD_stop_daemon(m->d);
        tw_free(m);
        return TW_EIO;
    }
    uv_timer_init(b->loop, &m->timer);
    m->poll.data = m->timer.data = m;
    m->handles = 2;
    uv_poll_start(&m->poll, UV_READABLE, s_on_poll);
    s_arm(m);
    tw_notice("broker.metrics", "metrics at http://%s/metrics (port %d)",
              addr, m->port);
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
    if (m && m->handles == 2 && !uv_is_closing((uv_handle_t *)&m->poll)) {
        uv_close((uv_handle_t *)&m->poll, s_closed);
        uv_close((uv_handle_t *)&m->timer, s_closed);
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
        MHD_stop_daemon(m->d);
        tw_free(m);
    } else {
        tw_warn("broker.metrics", "metrics handles still open at exit");
    }
    *m_p = NULL;
}
