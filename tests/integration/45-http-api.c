/*  tests/integration/45-http-api.c - the broker's HTTP API, driven with
 *  curl against a real broker and worker (docs/HTTP.md).
 *
 *    - --http serves /metrics (with the run time and queue wait
 *      histograms by handler, and the build) and JSON under /api/v1;
 *      --metrics is the same option;
 *    - reads: the index, status, workers, one worker, queues, pools,
 *      groups, the snapshot (with boot and queues), a page of task
 *      records with filters, one record;
 *    - actions by POST only: retry of a failed task (same id, history
 *      kept), cancel of a running one, bulk retry and purge by filter;
 *    - refusals, each changing nothing: unknown route (404), unknown id
 *      (404), a GET on an action and a POST on a read (405 with Allow),
 *      an unknown parameter, a bad filter or cursor (400), a POST that is
 *      not JSON (415), a body above 64 KiB (413), a foreign Origin (403),
 *      retry of a task that succeeded (409);
 *    - the token: with --http-token-file, loopback reads need none, every
 *      action does (401 with WWW-Authenticate without it or with a wrong
 *      one); a token file others may read stops the broker at start;
 *      SIGHUP rereads the file (old token refused, new one accepted; a
 *      file that does not read as a token leaves the old one in force);
 *    - /api/v1/events: hello, then the status topics as they happen; a
 *      client that comes back with Last-Event-ID gets what it missed
 *      (resumed true), one with an id of another run gets resync.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

static char s_body[1 << 16];
static char s_base[96];

/* Run curl with `opts` on `path`; the response's headers and body into
 * s_body, the status returned. */
static int
s_curl(const char *opts, const char *path)
{
    char cmd[2400];
    snprintf(cmd, sizeof cmd,
             "curl -s -m 20 -o '%s/curl.out' -D '%s/curl.hdr' "
             "-w '%%{http_code}' %s '%s%s'",
             tw_h_tmpdir(), tw_h_tmpdir(), opts, s_base, path);
    FILE *p = popen(cmd, "r");
    TW_H_ASSERT(p);
    int code = 0;
    TW_H_ASSERT(fscanf(p, "%d", &code) == 1);
    pclose(p);
    size_t n = 0;
    static const char *const parts[] = {"curl.hdr", "curl.out"};
    for (int i = 0; i < 2; i++) {
        char file[600];
        snprintf(file, sizeof file, "%s/%s", tw_h_tmpdir(), parts[i]);
        FILE *f = fopen(file, "r");
        if (f) {
            n += fread(s_body + n, 1, sizeof s_body - 1 - n, f);
            fclose(f);
        }
    }
    s_body[n] = '\0';
    return code;
}

#define JSON_POST "-X POST -H 'Content-Type: application/json'"

static void
s_has(const char *what)
{
    TW_H_ASSERT_MSG(strstr(s_body, what), "no '%s' in:\n%s", what, s_body);
}

static void
s_expect(int code, const char *opts, const char *path, const char *what)
{
    int got = s_curl(opts, path);
    TW_H_ASSERT_MSG(got == code, "%s %s: %d, not %d:\n%s", opts, path, got,
                    code, s_body);
    if (what) {
        s_has(what);
    }
}

/* One request and what its answer must say: the status, and each of
 * `has` (up to the first NULL) in the body. With `id` set, the path and
 * every `has` are formats of that one task id (%llu). */
typedef struct {
    int code;
    const char *opts;
    const char *path;
    const uint64_t *id;
    const char *has[6];
} s_req_t;

static void
s_expect_all(const s_req_t *reqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const s_req_t *r = &reqs[i];
        unsigned long long id = r->id ? (unsigned long long)*r->id : 0;
        char path[256], has[256];
        snprintf(path, sizeof path, r->path, id);
        s_expect(r->code, r->opts, path, NULL);
        for (size_t k = 0; k < 6 && r->has[k]; k++) {
            snprintf(has, sizeof has, r->has[k], id);
            s_has(has);
        }
    }
}

/* The whole file at `path` (malloc'ed), or NULL. */
static char *
s_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return NULL;
    }
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf) {
        buf[n] = '\0';
    }
    return buf;
}

static int
s_file_has(const char *path, const char *what)
{
    char *text = s_read_file(path);
    int has = text && strstr(text, what);
    free(text);
    return has;
}

#define S_TOKEN1 "0123456789abcdef0123456789abcdef"
#define S_TOKEN2 "fedcba9876543210fedcba9876543210fedcba98"

/* POST a retry of the failed tasks with `token`: `code`, and `what` in
 * the answer. */
static void
s_retry_with(int code, const char *token, const char *what)
{
    char opts[256];
    snprintf(opts, sizeof opts,
             JSON_POST " -H 'Authorization: Bearer %s'"
                       " -d '{\"state\":\"failed\"}'",
             token);
    s_expect(code, opts, "/api/v1/tasks/retry", what);
}

/* Replace the token file at `path` with `text`, readable by its owner
 * only (a new file renamed over the old, as an operator's tools do). */
static void
s_write_token(const char *path, const char *text)
{
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(tmp, "w");
    TW_H_ASSERT(f);
    fputs(text, f);
    TW_H_ASSERT(fclose(f) == 0);
    TW_H_ASSERT(chmod(tmp, 0600) == 0);
    TW_H_ASSERT(rename(tmp, path) == 0);
}

static uint64_t
s_run(tw_client_t *c, const char *handler, const char *arg, int state)
{
    uint64_t seq = tw_h_submit_str(c, handler, arg, 0, 0);
    uint64_t id = tw_h_wait_acked(c, seq, 20000);
    if (state >= 0) {
        TW_H_ASSERT_OK(tw_h_wait_state(c, id, state, 20000));
    }
    return id;
}

int
main(void)
{
    tw_h_init("45-http-api");
    tw_h_broker_t b;
    char http[64];
    int port = tw_h_free_port();
    snprintf(http, sizeof http, "127.0.0.1:%d", port);
    snprintf(s_base, sizeof s_base, "http://%s", http);
    TW_H_ASSERT_OK(tw_h_start_broker(&b, TW_H_ARGS("--http", http)));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&b, 2, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c);
    tw_h_track_results(c);
    uint64_t ok = s_run(c, "echo", "hi", TW_ST_OK);
    uint64_t bad = s_run(c, "fail", "boom", TW_ST_ERROR);
    char path[256];

    /* Reads. */
    const s_req_t reads[] = {
        {200, "", "/metrics", NULL,
         {"taskwheel_tasks",
          /* The histograms by handler, and the build. */
          "# TYPE taskwheel_task_run_seconds histogram",
          "taskwheel_task_run_seconds_count{handler=\"echo\"} 1\n",
          "taskwheel_task_run_seconds_bucket{handler=\"fail\",le=\"+Inf\"} "
          "1\n",
          "taskwheel_task_queue_wait_seconds_count{handler=\"echo\"} 1\n",
          "taskwheel_build_info{version=\""}},
        {200, "", "/api/v1", NULL, {"\"endpoints\":["}},
        {200, "", "/api/v1/status", NULL, {"\"status\":{"}},
        {200, "", "/api/v1/workers", NULL, {"\"slots\":2"}},
        {200, "", "/api/v1/workers/1", NULL, {"\"worker\":{"}},
        {404, "", "/api/v1/workers/99", NULL, {"\"code\":\"ENOENT\""}},
        {200, "", "/api/v1/queues", NULL, {"\"handler\":\"echo\""}},
        {200, "", "/api/v1/pools", NULL, {"\"pool\":\"default\""}},
        {200, "", "/api/v1/groups", NULL, {"\"groups\":["}},
        {404, "", "/api/v1/groups?pool=nope", NULL, {"ENOENT"}},
        {200, "", "/api/v1/snapshot", NULL, {"\"queues\":[", "\"boot\":\""}},
        {200, "", "/api/v1/tasks?state=failed", &bad,
         {"\"tasks\":[{", "\"id\":%llu,", "\"next\":null"}},
        {200, "", "/api/v1/tasks?handler=echo&limit=1", NULL,
         {"\"handler\":\"echo\""}},
        {200, "", "/api/v1/tasks/%llu", &bad,
         {"\"args\":\"boom\"", "\"attempts\":[{\"n\":1,"}},
        {404, "", "/api/v1/tasks/999999", NULL, {"no task 999999"}},
    };
    s_expect_all(reads, sizeof reads / sizeof reads[0]);

    /* Refusals. */
    const s_req_t refusals[] = {
        {404, "", "/api/v1/nothing", NULL, {"ENOENT"}},
        {404, "", "/nothing", NULL, {"ENOENT"}},
        {400, "", "/api/v1/tasks?bogus=1", NULL, {"unknown parameter"}},
        {400, "", "/api/v1/tasks?state=bogus", NULL, {"state"}},
        {400, "", "/api/v1/tasks?limit=1001", NULL, {"limit"}},
        {400, "", "/api/v1/tasks?cursor=t1.garbage", NULL, {"cursor"}},
        {400, "", "/api/v1/tasks/abc", NULL, {"EINVAL"}},
        {405, "", "/api/v1/tasks/%llu/retry", &bad, {"Allow: POST"}},
        {405, JSON_POST, "/api/v1/status", NULL, {"EMETHOD"}},
        {415, "-X POST", "/api/v1/tasks/%llu/retry", &bad, {"EMEDIA"}},
        {403, JSON_POST " -H 'Origin: http://evil.example'",
         "/api/v1/tasks/%llu/retry", &bad, {"EPERM"}},
    };
    s_expect_all(refusals, sizeof refusals / sizeof refusals[0]);
    char big[700];
    snprintf(big, sizeof big, "%s/big.json", tw_h_tmpdir());
    FILE *f = fopen(big, "w");
    TW_H_ASSERT(f);
    fputs("{\"ids\":[", f);
    for (int i = 0; i < 20000; i++) {
        fprintf(f, "%s1000", i ? "," : "");
    }
    fputs("]}", f);
    fclose(f);
    char opts[900];
    snprintf(opts, sizeof opts, JSON_POST " --data-binary @%s", big);
    s_expect(413, opts, "/api/v1/tasks/retry", "E2BIG");
    const s_req_t bodies[] = {
        {409, JSON_POST, "/api/v1/tasks/%llu/retry", &ok, {"ESTATE"}},
        {400, JSON_POST " -d '{}'", "/api/v1/tasks/purge", NULL, {"state"}},
        {400, JSON_POST " -d '[1]'", "/api/v1/tasks/retry", NULL,
         {"object"}},
        /* Nothing changed: the failed task is still failed, once. */
        {200, "", "/api/v1/tasks/%llu", &bad,
         {"\"state\":\"error\"", "\"retried\":0"}},
    };
    s_expect_all(bodies, sizeof bodies / sizeof bodies[0]);

    /* Actions. */
    snprintf(path, sizeof path, "/api/v1/tasks/%llu/retry",
             (unsigned long long)bad);
    s_expect(200, JSON_POST, path, "\"state\":\"pending\"");
    snprintf(path, sizeof path, "/api/v1/tasks/%llu",
             (unsigned long long)bad);
    TW_H_WAIT(s_curl("", path) == 200 && strstr(s_body, "\"attempt\":2") &&
                  strstr(s_body, "\"state\":\"error\""),
              20000);
    s_has("\"retried\":1");
    s_has("{\"n\":2,");
    static const unsigned char thirty = 30; /* msgpack 30 */
    tw_task_spec_t spec = {.handler = "sleep", .args = &thirty,
                           .args_len = 1};
    uint64_t seq;
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    uint64_t slow = tw_h_wait_acked(c, seq, 20000);
    TW_H_ASSERT_OK(tw_h_wait_state(c, slow, TW_ST_RUNNING, 20000));
    snprintf(path, sizeof path, "/api/v1/tasks/%llu/cancel",
             (unsigned long long)slow);
    s_expect(200, JSON_POST, path, "\"task\":{");
    TW_H_ASSERT_OK(tw_h_wait_state(c, slow, TW_ST_CANCELLED, 20000));
    s_expect(409, JSON_POST, path, "ESTATE");
    s_expect(200, JSON_POST " -d '{\"state\":\"failed\"}'",
             "/api/v1/tasks/retry", "\"done\":[");
    s_has("\"more\":false");
    snprintf(path, sizeof path, "\"done\":[%llu]", (unsigned long long)bad);
    s_has(path);
    snprintf(path, sizeof path, "/api/v1/tasks/%llu",
             (unsigned long long)bad);
    TW_H_WAIT(s_curl("", path) == 200 && strstr(s_body, "\"attempt\":3") &&
                  strstr(s_body, "\"state\":\"error\""),
              20000);
    s_expect(200, JSON_POST " -d '{\"state\":\"cancelled\"}'",
             "/api/v1/tasks/purge", "\"done\":[");
    snprintf(path, sizeof path, "/api/v1/tasks/%llu",
             (unsigned long long)slow);
    s_expect(404, "", path, "ENOENT");

    /* The event stream: hello, then what happens. */
    char sse[600], cmd[1400];
    snprintf(sse, sizeof sse, "%s/sse.txt", tw_h_tmpdir());
    snprintf(cmd, sizeof cmd,
             "curl -s -N -m 4 -D - '%s/api/v1/events?topics=task.' > '%s' &",
             s_base, sse);
    TW_H_ASSERT_EQ(system(cmd), 0);
    s_expect(200, "", "/api/v1/status", NULL);
    TW_H_WAIT(s_file_has(sse, "event: hello"), 10000);
    uint64_t later = s_run(c, "echo", "x", TW_ST_OK);
    char want[64];
    snprintf(want, sizeof want, "\"topic\":\"task.done\",\"pseq\":");
    TW_H_WAIT(s_file_has(sse, want), 10000);
    TW_H_ASSERT(s_file_has(sse, "text/event-stream"));
    TW_H_ASSERT(s_file_has(sse, "\"resumed\":false"));
    (void)later;
    /* Resume from the hello's id: the events since come again. */
    char *text = s_read_file(sse);
    TW_H_ASSERT(text);
    char *idl = strstr(text, "id: ");
    TW_H_ASSERT(idl);
    char last[64];
    TW_H_ASSERT_EQ(sscanf(idl + 4, "%63s", last), 1);
    free(text);
    snprintf(opts, sizeof opts, "-N -m 2 -H 'Last-Event-ID: %s'", last);
    s_curl(opts, "/api/v1/events?topics=task.");
    s_has("\"resumed\":true");
    s_has("\"topic\":\"task.done\"");
    s_curl("-N -m 2 -H 'Last-Event-ID: 0000000000000001-5'",
           "/api/v1/events?topics=task.");
    s_has("event: resync");
    s_expect(400, "", "/api/v1/events?bogus=1", "EINVAL");
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);

    /* The token. */
    char tok[600];
    snprintf(tok, sizeof tok, "%s/token", tw_h_tmpdir());
    f = fopen(tok, "w");
    TW_H_ASSERT(f);
    fputs("# the API's token\n" S_TOKEN1 "\n", f);
    fclose(f);
    chmod(tok, 0644);
    tw_h_broker_t b2;
    port = tw_h_free_port();
    snprintf(http, sizeof http, "127.0.0.1:%d", port);
    snprintf(s_base, sizeof s_base, "http://%s", http);
    TW_H_ASSERT_OK(tw_h_start_broker(
        &b2, TW_H_ARGS("--http", http, "--http-token-file", tok)));
    TW_H_ASSERT_EQ(tw_h_wait_exit(b2.pid, 20000), 2);
    TW_H_ASSERT(tw_h_log_contains(b2.pid, "chmod 600"));
    chmod(tok, 0600);
    TW_H_ASSERT_OK(tw_h_start_broker(
        &b2, TW_H_ARGS("--metrics", http, "--http-token-file", tok)));
    TW_H_ASSERT_OK(tw_h_wait_ready(b2.frontend, 10000));
    TW_H_WAIT(s_curl("", "/api/v1/status") == 200, 10000);
    s_expect(401, JSON_POST " -d '{\"state\":\"failed\"}'",
             "/api/v1/tasks/retry", "WWW-Authenticate: Bearer");
    s_expect(401, JSON_POST " -H 'Authorization: Bearer wrong'",
             "/api/v1/tasks/1/retry", "EAUTH");
    s_retry_with(200, S_TOKEN1, "\"done\":[]");

    /* SIGHUP rereads the token file: the old token is refused, the new
     * one accepted. A file that does not read as a token then changes
     * nothing. */
    s_write_token(tok, S_TOKEN2 "\n");
    TW_H_ASSERT_OK(tw_h_kill(b2.pid, SIGHUP));
    TW_H_ASSERT_OK(tw_h_wait_log(b2.pid, "reread the HTTP token", 10000));
    s_retry_with(401, S_TOKEN1, "EAUTH");
    s_retry_with(200, S_TOKEN2, "\"done\":[]");
    s_write_token(tok, "short\n");
    TW_H_ASSERT_OK(tw_h_kill(b2.pid, SIGHUP));
    TW_H_ASSERT_OK(tw_h_wait_log(b2.pid, "token in force stays", 10000));
    s_retry_with(200, S_TOKEN2, "\"done\":[]");
    TW_H_ASSERT(tw_h_alive(b2.pid));
    TW_H_ASSERT_EQ(tw_h_stop(b2.pid), 0);
    printf("45-http-api: ok\n");
    return 0;
}
