/*  tests/integration/16-metrics.c - the broker's figures for a known
 *  workload, three ways: Prometheus metrics, QUERY snapshot, status tseq.
 *
 *  A broker with --metrics on a free loopback port and one worker (w1, 8
 *  slots) runs two counting stations, a group "p/g" with limit 1 holding
 *  one long task running and one waiting, 40 echo tasks and 3 failing
 *  ones. Then:
 *    - curl scrapes /metrics: the exact figures (workers, slots used,
 *      stations and tasks by state, submitted/dispatched/ended counters,
 *      heartbeat age labelled by worker); every line parses as the text
 *      format 0.0.4 (`name{labels} value`, each name declared by # TYPE);
 *      a path that is nothing is 404 and a POST 405;
 *    - QUERY snapshot holds the same picture (workers, stations by state,
 *      task counts, the group at its limit, stats) and the last tseq of
 *      each task topic;
 *    - a subscriber to "task." saw each topic's tseq run 1, 2, 3... with
 *      no hole while pseq jumped (a second subscriber to everything makes
 *      the broker publish the other topics too).
 *  Then examples/monitor.py --resync (when python3-zmq is there) prints
 *  the snapshot first and then only the newer task.done messages, tseq 44
 *  to 48, with no gap reported. Last, a non-loopback --metrics address
 *  without --insecure and a malformed one make the broker refuse to start.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"
#include "proto/mpwalk.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static tw_client_t *s_c;

/* The value of the sample line that starts with `series` followed by a
 * space (e.g. `taskwheel_tasks{state="pending"}`); fails if absent. */
static double
s_metric(const char *page, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = page; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            return strtod(p + n + 1, NULL);
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    tw_h_fail(__FILE__, __LINE__, "no sample %s in the scrape", series);
}

/* Every line is a comment (# HELP / # TYPE) or `name{labels} value`,
 * and every sampled name was declared by a # TYPE line before it. */
static void
s_check_format(const char *page)
{
    char declared[128][96];
    int ndecl = 0, samples = 0;
    const char *p = page;
    while (*p) {
        const char *e = strchr(p, '\n');
        TW_H_ASSERT_MSG(e, "the page ends with a newline");
        size_t len = (size_t)(e - p);
        char line[1024];
        TW_H_ASSERT(len < sizeof line);
        memcpy(line, p, len);
        line[len] = '\0';
        p = e + 1;
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[96], type[32];
            TW_H_ASSERT(sscanf(line + 7, "%95s %31s", name, type) == 2);
            TW_H_ASSERT(strcmp(type, "gauge") == 0 ||
                        strcmp(type, "counter") == 0 ||
                        strcmp(type, "summary") == 0 ||
                        strcmp(type, "histogram") == 0);
            TW_H_ASSERT(ndecl < 128);
            snprintf(declared[ndecl++], sizeof declared[0], "%s", name);
            continue;
        }
        if (strncmp(line, "# HELP ", 7) == 0) {
            continue;
        }
        /* name */
        const char *q = line;
        TW_H_ASSERT_MSG(isalpha((unsigned char)*q) || *q == '_',
                        "bad metric line: %s", line);
        while (isalnum((unsigned char)*q) || *q == '_' || *q == ':') {
            q++;
        }
        size_t nlen = (size_t)(q - line);
        int known = 0;
        for (int i = 0; i < ndecl && !known; i++) {
            /* A summary's samples are <name>_sum and <name>_count; a
             * histogram's also <name>_bucket. */
            size_t dl = strlen(declared[i]);
            known = (dl == nlen ||
                     (nlen == dl + 4 && !memcmp(line + dl, "_sum", 4)) ||
                     (nlen == dl + 6 && !memcmp(line + dl, "_count", 6)) ||
                     (nlen == dl + 7 && !memcmp(line + dl, "_bucket", 7))) &&
                    memcmp(declared[i], line, dl) == 0;
        }
        TW_H_ASSERT_MSG(known, "undeclared metric: %s", line);
        /* {labels} */
        if (*q == '{') {
            q++;
            while (*q != '}') {
                TW_H_ASSERT_MSG(isalpha((unsigned char)*q) || *q == '_',
                                "bad label in: %s", line);
                while (isalnum((unsigned char)*q) || *q == '_') {
                    q++;
                }
                TW_H_ASSERT_MSG(q[0] == '=' && q[1] == '"',
                                "bad label in: %s", line);
                q += 2;
                while (*q && *q != '"') {
                    if (*q == '\\') {
                        TW_H_ASSERT(q[1] == '\\' || q[1] == '"' ||
                                    q[1] == 'n');
                        q++;
                    }
                    q++;
                }
                TW_H_ASSERT_MSG(*q == '"', "unterminated label: %s", line);
                q++;
                if (*q == ',') {
                    q++;
                }
            }
            q++;
        }
        TW_H_ASSERT_MSG(*q == ' ', "no value in: %s", line);
        char *end;
        strtod(q + 1, &end);
        TW_H_ASSERT_MSG(end != q + 1 && *end == '\0', "bad value in: %s",
                        line);
        samples++;
    }
    TW_H_ASSERT(samples > 30);
}

/* This host's name, as the worker announces it (label values). */
static const char *
s_host(void)
{
    static char host[256];
    if (gethostname(host, sizeof host) != 0) {
        snprintf(host, sizeof host, "localhost");
    }
    host[sizeof host - 1] = '\0';
    return host;
}

/* ---- snapshot ----------------------------------------------------- */

static const msgpack_object *
s_get(const msgpack_object *m, const char *key)
{
    const msgpack_object *v = tw_mp_get(m, key);
    if (!v) {
        tw_h_fail(__FILE__, __LINE__, "no key %s in the snapshot", key);
    }
    return v;
}

static uint64_t
s_u(const msgpack_object *m, const char *key)
{
    const msgpack_object *v = s_get(m, key);
    TW_H_ASSERT(v->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    return v->via.u64;
}

static int
s_str_is(const msgpack_object *v, const char *s)
{
    return v->type == MSGPACK_OBJECT_STR && v->via.str.size == strlen(s) &&
           memcmp(v->via.str.ptr, s, v->via.str.size) == 0;
}

static void
s_check_snapshot(void)
{
    void *data = NULL;
    size_t len = 0;
    TW_H_ASSERT_OK(tw_client_query(s_c, "snapshot", 5000, &data, &len));
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    TW_H_ASSERT(msgpack_unpack_next(&up, data, len, NULL) ==
                MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *snap = &up.data;
    TW_H_ASSERT(s_u(snap, "pseq") > 0);

    const msgpack_object *ws = s_get(snap, "workers");
    TW_H_ASSERT_EQ(ws->via.array.size, 1);
    const msgpack_object *w = &ws->via.array.ptr[0];
    TW_H_ASSERT(s_str_is(s_get(w, "name"), "w1"));
    TW_H_ASSERT(s_str_is(s_get(w, "state"), "ready"));
    TW_H_ASSERT_EQ(s_u(w, "slots"), 8);
    TW_H_ASSERT_EQ(s_u(w, "stations"), 2);
    TW_H_ASSERT_EQ(s_u(w, "running"), 1);
    TW_H_ASSERT_EQ(s_u(w, "credit"), 8 - 2 - 1);

    const msgpack_object *st = s_get(snap, "stations");
    TW_H_ASSERT_EQ(st->via.map.size, 9);
    for (uint32_t i = 0; i < st->via.map.size; i++) {
        const msgpack_object *k = &st->via.map.ptr[i].key;
        const msgpack_object *v = &st->via.map.ptr[i].val;
        TW_H_ASSERT_EQ(v->via.array.size, s_str_is(k, "running") ? 2 : 0);
    }
    const msgpack_object *running = s_get(st, "running");
    TW_H_ASSERT(s_str_is(&running->via.array.ptr[0], "s-0") ||
                s_str_is(&running->via.array.ptr[1], "s-0"));

    const msgpack_object *t = s_get(snap, "tasks");
    TW_H_ASSERT_EQ(s_u(t, "pending"), 1);
    TW_H_ASSERT_EQ(s_u(t, "running"), 1);
    TW_H_ASSERT_EQ(s_u(t, "completed"), 40);
    TW_H_ASSERT_EQ(s_u(t, "failed"), 3);
    TW_H_ASSERT_EQ(s_u(t, "cancelled"), 0);
    TW_H_ASSERT_EQ(s_u(t, "kept"), 43);

    const msgpack_object *gs = s_get(snap, "groups");
    TW_H_ASSERT_EQ(gs->via.array.size, 1);
    const msgpack_object *g = &gs->via.array.ptr[0];
    TW_H_ASSERT(s_str_is(s_get(g, "pool"), "p"));
    TW_H_ASSERT(s_str_is(s_get(g, "group"), "g"));
    TW_H_ASSERT_EQ(s_u(g, "running"), 1);
    TW_H_ASSERT_EQ(s_u(g, "pending"), 1);
    TW_H_ASSERT_EQ(s_u(g, "limit"), 1);

    TW_H_ASSERT_EQ(s_u(s_get(snap, "status"), "submitted"), 45);

    /* Everything was watched from the start: the last number of each
     * task topic is its message count. */
    const msgpack_object *ts = s_get(snap, "tseq");
    TW_H_ASSERT_EQ(s_u(ts, "task.submitted"), 45);
    TW_H_ASSERT_EQ(s_u(ts, "task.started"), 44);
    TW_H_ASSERT_EQ(s_u(ts, "task.done"), 43);
    TW_H_ASSERT_EQ(s_u(ts, "task.result"), 40);
    TW_H_ASSERT_EQ(s_u(ts, "task.exception"), 3);
    TW_H_ASSERT(s_u(ts, "station.s-0.running") >= 1);
    msgpack_unpacked_destroy(&up);
    free(data);
}

/* ---- tseq on the wire --------------------------------------------- */

/* Read what `sub` (subscribed to "task.") received: per topic, tseq must
 * run 1, 2, ... without a hole; pseq must have gaps. Returns how many
 * task.done messages arrived. */
static int
s_check_tseq(void *sub)
{
    static const char *const topics[] = {"task.submitted", "task.started",
                                         "task.done", "task.result",
                                         "task.exception"};
    uint64_t last[5] = {0, 0, 0, 0, 0};
    uint64_t prev_pseq = 0;
    int pseq_gaps = 0, n = 0;
    for (;;) {
        zmq_pollitem_t pi = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&pi, 1, 500) != 1) {
            break;
        }
        tw_zframes_t msg;
        TW_H_ASSERT_OK(tw_zrecv_frames(sub, &msg, 0));
        TW_H_ASSERT_EQ(msg.n, 2);
        size_t tl = zmq_msg_size(&msg.f[0]);
        int k = -1;
        for (int i = 0; i < 5; i++) {
            if (tl == strlen(topics[i]) &&
                memcmp(zmq_msg_data(&msg.f[0]), topics[i], tl) == 0) {
                k = i;
            }
        }
        TW_H_ASSERT_MSG(k >= 0, "only task topics arrive");
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        TW_H_ASSERT(msgpack_unpack_next(&up, zmq_msg_data(&msg.f[1]),
                                        zmq_msg_size(&msg.f[1]), NULL) ==
                    MSGPACK_UNPACK_SUCCESS);
        uint64_t pseq = s_u(&up.data, "pseq"), tseq = s_u(&up.data, "tseq");
        TW_H_ASSERT_MSG(tseq == last[k] + 1, "%s: tseq %llu after %llu",
                        topics[k], (unsigned long long)tseq,
                        (unsigned long long)last[k]);
        last[k] = tseq;
        pseq_gaps += prev_pseq && pseq != prev_pseq + 1;
        TW_H_ASSERT(pseq > prev_pseq);
        prev_pseq = pseq;
        n += k == 2;
        msgpack_unpacked_destroy(&up);
        tw_zframes_close(&msg);
    }
    TW_H_ASSERT_EQ(last[0], 45);
    TW_H_ASSERT_EQ(last[4], 3);
    TW_H_ASSERT_MSG(pseq_gaps > 0, "pseq jumped over other topics");
    return n;
}

static void
s_submit(const char *handler, const char *str, int n, const char *pool,
         const char *const *groups)
{
    unsigned char a[40];
    size_t len = strlen(str);
    a[0] = (unsigned char)(0xa0 | len);
    memcpy(a + 1, str, len);
    tw_task_spec_t spec = {.handler = handler, .args = a, .args_len = len + 1,
                           .pool = pool, .groups = groups,
                           .ngroups = groups ? 1 : 0};
    for (int i = 0; i < n; i++) {
        TW_H_ASSERT_OK(tw_client_submit(s_c, &spec, NULL));
    }
    TW_H_ASSERT_OK(tw_client_flush(s_c));
}

/* The "tseq" of every JSON line monitor.py printed for task.done, in
 * order, into seen[]; returns how many. */
static int
s_monitor_tseqs(const char *log, uint64_t *seen, int cap)
{
    int n = 0;
    const char *p = log;
    while ((p = strstr(p, "{\"topic\":\"task.done\"")) && n < cap) {
        const char *t = strstr(p, "\"tseq\":");
        TW_H_ASSERT(t);
        seen[n++] = strtoull(t + 7, NULL, 10);
        p = t;
    }
    return n;
}

static char *
s_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    TW_H_ASSERT(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    TW_H_ASSERT(fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* monitor.py --resync: subscribed (the welcome and its boot id), the
 * snapshot, then only what is newer (8.2); a silent endpoint exits 3. */
static void
s_monitor(const tw_h_broker_t *b)
{
    const char *py = "/usr/bin/python3";
    const char *script = TW_SOURCE_DIR "/examples/monitor.py";
    const char *probe[] = {py, "-c", "import zmq, msgpack", NULL};
    pid_t pp = tw_h_spawn_log(probe, "probe.log");
    if (pp <= 0 || tw_h_wait_exit(pp, 20000) != 0) {
        printf("16-metrics: SKIP monitor.py (no python3-zmq/msgpack)\n");
        return;
    }
    const char *argv[] = {py, "-u", script, "--endpoint", b->status,
                          "--broker", b->frontend, "--resync", "--json",
                          "--for", "4", "task.done", NULL};
    pid_t mon = tw_h_spawn_log(argv, "monitor.log");
    TW_H_ASSERT(mon > 0);
    uint64_t end = tw_h_now_ms() + 10000;
    while (!tw_h_log_contains(mon, "\"topic\":\"snapshot\"") &&
           tw_h_now_ms() < end) {
        tw_h_sleep_ms(50);
    }
    TW_H_ASSERT_MSG(tw_h_log_contains(mon, "\"topic\":\"snapshot\""),
                    "monitor.py printed the snapshot");
    s_submit("echo", "more", 5, NULL, NULL);
    long long ok = 0;
    end = tw_h_now_ms() + 20000;
    while (ok < 45 && tw_h_now_ms() < end) {
        tw_client_poll(s_c, 100);
        TW_H_ASSERT_OK(tw_h_status_field(s_c, "completed", &ok));
    }
    TW_H_ASSERT_EQ(ok, 45);
    TW_H_ASSERT_EQ(tw_h_wait_exit(mon, 20000), 0);
    char *log = s_read_file(tw_h_log_path(mon));
    const char *snap = strstr(log, "\"topic\":\"snapshot\"");
    TW_H_ASSERT(snap && strstr(snap, "\"task.done\":43"));
    uint64_t seen[16];
    int n = s_monitor_tseqs(log, seen, 16);
    TW_H_ASSERT_EQ(n, 5);
    for (int i = 0; i < n; i++) {
        TW_H_ASSERT_EQ(seen[i], 44 + (uint64_t)i);
    }
    TW_H_ASSERT_MSG(strstr(snap, "task.done") < strstr(log, "{\"topic\":"
                                                            "\"task.done\""),
                    "the snapshot came before the deltas");
    TW_H_ASSERT(!strstr(log, "gap:"));
    /* Subscribed means the welcome came (8.2), with the boot id the
     * broker logged at start; the snapshot's REPLY has the same. */
    const char *id = strstr(log, "subscribed at ");
    TW_H_ASSERT_MSG(id, "monitor.py said it was subscribed:\n%s", log);
    char boot[40], want[64];
    TW_H_ASSERT(sscanf(strstr(id, "(broker boot ") + 13, "%16[0-9a-f]",
                       boot) == 1);
    snprintf(want, sizeof want, "boot id %s", boot);
    TW_H_ASSERT_MSG(tw_h_log_contains(b->pid, want), "the broker logged %s",
                    want);
    snprintf(want, sizeof want, "\"boot\":\"%s\"", boot);
    TW_H_ASSERT_MSG(strstr(snap, want), "the snapshot has %s", want);
    TW_H_ASSERT(!strstr(log, "restarted"));
    free(log);

    /* A status endpoint that answers nothing: exit 3, saying so. */
    char nobody[64];
    snprintf(nobody, sizeof nobody, "tcp://127.0.0.1:%d", tw_h_free_port());
    const char *silent[] = {py, script, "--endpoint", nobody, "--wait", "1",
                            NULL};
    pid_t q = tw_h_spawn_log(silent, "monitor-silent.log");
    TW_H_ASSERT(q > 0);
    TW_H_ASSERT_EQ(tw_h_wait_exit(q, TW_H_PATIENCE_MS), 3);
    TW_H_ASSERT(tw_h_log_contains(q, "nothing from the status endpoint"));
}

/* A broker that must refuse to start with exit code `code` (2: the
 * setting is wrong by itself; 1: it cannot be served). */
static void
s_refused(const char *metrics, int code, const char *why)
{
    tw_h_broker_t b;
    const char *extra[] = {"--metrics", metrics, NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, extra));
    int rc = tw_h_wait_exit(b.pid, 10000);
    TW_H_ASSERT_MSG(rc == code, "--metrics %s refused (exit %d, not %d)",
                    metrics, rc, code);
    TW_H_ASSERT_MSG(tw_h_log_contains(b.pid, why), "the log says '%s'", why);
}

int
main(void)
{
    tw_h_init("16-metrics");
    tw_h_broker_t b;
    char addr[64], url[96];
    int started = 0;
    for (int attempt = 0; attempt < 3 && !started; attempt++) {
        snprintf(addr, sizeof addr, "127.0.0.1:%d", tw_h_free_port());
        const char *extra[] = {"--metrics", addr, NULL};
        TW_H_ASSERT_OK(tw_h_start_broker(&b, extra));
        started = tw_h_wait_ready(b.frontend, 10000) == 0;
    }
    TW_H_ASSERT_MSG(started, "a broker with --metrics started");
    snprintf(url, sizeof url, "http://%s/metrics", addr);

    static const char *const task_topics[] = {"task.", NULL};
    void *all = tw_h_sub(b.status, NULL);
    void *tasks = tw_h_sub(b.status, task_topics);

    pid_t w1 = tw_h_start_worker(&b, 8, NULL);
    TW_H_ASSERT(w1 > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));
    s_c = tw_client_new(b.frontend);
    TW_H_ASSERT(s_c);
    tw_h_track_results(s_c);

    unsigned char zero[9];
    size_t zl = tw_h_pack_int(zero, 0);
    for (int i = 0; i < 2; i++) {
        char sid[8];
        snprintf(sid, sizeof sid, "s-%d", i);
        tw_station_req_t req = {.op = "add", .sid = sid, .handler = "incr",
                                .args = zero, .args_len = zl,
                                .next = "result", .interval_ms = 50};
        TW_H_ASSERT_OK(tw_client_station(s_c, &req, 5000, NULL, NULL));
        TW_H_ASSERT_OK(tw_h_wait_station(s_c, sid, "running", 5000, NULL));
    }
    tw_pool_req_t gr = {.op = "create", .pool = "p", .group = "g",
                        .has_limit = 1, .limit = 1};
    TW_H_ASSERT_OK(tw_client_group(s_c, &gr, 5000, NULL, NULL));
    const char *g[] = {"g"};
    unsigned char thirty[] = {30};
    tw_task_spec_t slow = {.handler = "sleep", .args = thirty, .args_len = 1,
                           .pool = "p", .groups = g, .ngroups = 1};
    TW_H_ASSERT_OK(tw_client_submit(s_c, &slow, NULL));
    TW_H_ASSERT_OK(tw_client_submit(s_c, &slow, NULL));
    s_submit("echo", "ok", 40, NULL, NULL);
    s_submit("fail", "boom", 3, NULL, NULL);
    /* 43 outcomes; the two sleeps go on. */
    uint64_t end = tw_h_now_ms() + 30000;
    long long done = 0;
    while (done < 43 && tw_h_now_ms() < end) {
        tw_client_poll(s_c, 100);
        long long ok = 0, failed = 0;
        TW_H_ASSERT_OK(tw_h_status_field(s_c, "completed", &ok));
        TW_H_ASSERT_OK(tw_h_status_field(s_c, "failed", &failed));
        done = ok + failed;
    }
    TW_H_ASSERT_EQ(done, 43);

    /* ---- the scrape ---- */
    char *page = NULL;
    TW_H_ASSERT_EQ(tw_h_curl(url, "GET", &page), 0);
    s_check_format(page);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_workers"), 1);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_slots"), 8);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_slots_used"), 3);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_submitted_total"), 45);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_rejected_total"), 0);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_dispatched_total"), 44);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_completed_total"), 40);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_failed_total"), 3);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_cancelled_total"), 0);
    TW_H_ASSERT_EQ(
        s_metric(page, "taskwheel_tasks_ended_total{outcome=\"ok\"}"), 40);
    TW_H_ASSERT_EQ(
        s_metric(page, "taskwheel_tasks_ended_total{outcome=\"failed\"}"),
        3);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_tasks{state=\"pending\"}"), 1);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_tasks{state=\"running\"}"), 1);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_tasks{state=\"kept\"}"), 43);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_stations{state=\"running\"}"),
                   2);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_stations{state=\"failed\"}"),
                   0);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_queue_depth{handler=\"echo\"}"),
                   0);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_duplicates_total"), 0);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_malformed_total"), 0);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_stale_done_total"), 0);
    /* The status map and the page come from one list of counters. */
    long long dispatched = -1, retried = -1;
    TW_H_ASSERT_OK(tw_h_status_field(s_c, "dispatched", &dispatched));
    TW_H_ASSERT_OK(tw_h_status_field(s_c, "retried", &retried));
    TW_H_ASSERT_EQ(dispatched, 44);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_retried_total"), retried);
    /* On a store (the harness always passes --data): every submission
     * was committed before its ACK, so there were commits, each timed. */
    double commits = s_metric(page, "taskwheel_store_commits_total");
    double timed = s_metric(page, "taskwheel_store_commit_seconds_count");
    TW_H_ASSERT(commits >= 1);
    TW_H_ASSERT_EQ(timed, commits);
    TW_H_ASSERT(s_metric(page, "taskwheel_store_commit_seconds_sum") > 0);
    TW_H_ASSERT(s_metric(page, "taskwheel_store_used_bytes") > 0);
    TW_H_ASSERT_EQ(s_metric(page, "taskwheel_store_errors_total"), 0);
    TW_H_ASSERT(s_metric(page, "taskwheel_iterations_total") >= 0);
    char series[400];
    snprintf(series, sizeof series, "taskwheel_worker_slots{wid=\"1\","
             "worker=\"w1\",host=\"%s\"}", s_host());
    TW_H_ASSERT_EQ(s_metric(page, series), 8);
    double age = 0;
    const char *h = strstr(page, "taskwheel_worker_heartbeat_age_seconds{"
                                 "wid=\"1\",worker=\"w1\"");
    TW_H_ASSERT(h);
    h = strchr(h, '}');
    TW_H_ASSERT(h && sscanf(h + 1, " %lf", &age) == 1);
    TW_H_ASSERT_MSG(age >= 0 && age < 3.5, "heartbeat age %.3f", age);
    double start = s_metric(page, "process_start_time_seconds");
    TW_H_ASSERT(start > 1.6e9 && start <= (double)time(NULL));
    free(page);

    char other[96];
    snprintf(other, sizeof other, "http://%s/nothing", addr);
    TW_H_ASSERT_EQ(tw_h_curl(other, "GET", NULL), 22); /* 404 */
    snprintf(other, sizeof other, "http://%s/metrics/x", addr);
    TW_H_ASSERT_EQ(tw_h_curl(other, "GET", NULL), 22);
    TW_H_ASSERT_EQ(tw_h_curl(url, "POST", NULL), 22); /* 405 */
    TW_H_ASSERT_EQ(tw_h_curl(url, "GET", NULL), 0);    /* still serving */

    /* ---- the snapshot and the stream ---- */
    s_check_snapshot();
    TW_H_ASSERT_EQ(s_check_tseq(tasks), 43);
    s_monitor(&b);

    zmq_close(all);
    zmq_close(tasks);
    tw_client_destroy(&s_c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    tw_h_stop(w1);

    s_refused("0.0.0.0:9", 2, "not a loopback address");
    s_refused("nonsense", 2, "expected HOST:PORT");
    /* A port someone else listens on is no configuration error. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t salen = sizeof sa;
    TW_H_ASSERT(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, salen) == 0 &&
                listen(lfd, 1) == 0 &&
                getsockname(lfd, (struct sockaddr *)&sa, &salen) == 0);
    char taken[64];
    snprintf(taken, sizeof taken, "127.0.0.1:%d", ntohs(sa.sin_port));
    s_refused(taken, 1, "metrics");
    close(lfd);
    printf("16-metrics: ok\n");
    return 0;
}
