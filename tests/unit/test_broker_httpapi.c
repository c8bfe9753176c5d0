/*  tests/unit/test_broker_httpapi.c - the HTTP API's routes and rules.
 *
 *  Every route of TW_HTTP_ROUTES is matched from a path made from its own
 *  pattern; literal routes win over parameters; wrong methods get 405
 *  with the right Allow; bad ids, escapes and station operations get a
 *  clear 400 or 404; query parameters are checked against the route.
 *  tw_http_allow is driven through the table of docs/HTTP.md "Who may do
 *  what": loopback with and without a token, beyond loopback with a
 *  token and with --insecure, plus the browser checks (Content-Type,
 *  Origin, Host). The route table and docs/openapi.yaml list the same
 *  paths with the same methods.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/state/httpapi.h"

/* A path for route r: {id} 42, {wid} 7, {sid} "a%2Fb", {op} "pause". */
static void
s_path_for(tw_http_route_t r, char *out, size_t cap)
{
    const char *p = tw_http_route_path(r);
    out[0] = '\0';
    while (*p) {
        if (*p == '{') {
            const char *end = strchr(p, '}');
            const char *val = strncmp(p, "{id}", 4) == 0    ? "42"
                              : strncmp(p, "{wid}", 5) == 0 ? "7"
                              : strncmp(p, "{sid}", 5) == 0 ? "a%2Fb"
                                                            : "pause";
            strncat(out, val, cap - strlen(out) - 1);
            p = end + 1;
        } else {
            strncat(out, p, 1);
            p++;
        }
    }
}

static void
test_every_route(void **state)
{
    (void)state;
    for (int r = 0; r < TW_HTTP_NROUTES; r++) {
        char path[256];
        s_path_for((tw_http_route_t)r, path, sizeof path);
        tw_http_match_t m;
        tw_http_err_t err;
        const char *method = tw_http_route_method((tw_http_route_t)r);
        if (tw_http_match(method, path, &m, &err) != 0) {
            fail_msg("%s %s: %u %s", method, path, err.status, err.message);
        }
        assert_int_equal(m.route, r);
        assert_int_equal(m.action, strcmp(method, "POST") == 0);
        if (strstr(tw_http_route_path((tw_http_route_t)r), "{sid}")) {
            assert_string_equal(m.sid, "a/b");
            assert_int_equal(m.sid_len, 3);
        }
        const char *pat = tw_http_route_path((tw_http_route_t)r);
        if (strstr(pat, "{id}") || strstr(pat, "{wid}")) {
            assert_true(m.id == 42 || m.id == 7);
        }
        tw_http_match_free(&m);
        if (strcmp(method, "GET") == 0) {
            assert_int_equal(tw_http_match("HEAD", path, &m, &err), 0);
            assert_int_equal(m.route, r);
            tw_http_match_free(&m);
        }
    }
}

static void
s_fail(const char *method, const char *path, unsigned status,
       const char *code, const char *allow, const char *text)
{
    tw_http_match_t m;
    tw_http_err_t err;
    if (tw_http_match(method, path, &m, &err) == 0) {
        fail_msg("%s %s matched route %d", method, path, m.route);
    }
    assert_int_equal(err.status, status);
    assert_string_equal(err.code, code);
    if (allow) {
        assert_string_equal(err.header, "Allow");
        assert_string_equal(err.value, allow);
    } else {
        assert_null(err.header);
    }
    if (text && !strstr(err.message, text)) {
        fail_msg("%s %s: '%s' lacks '%s'", method, path, err.message, text);
    }
    assert_null(m.sid);
}

static void
test_methods_and_refusals(void **state)
{
    (void)state;
    tw_http_match_t m;
    tw_http_err_t err;
    assert_int_equal(tw_http_match("POST", "/api/v1/tasks/retry", &m, &err),
                     0);
    assert_int_equal(m.route, TW_HTTP_TASKS_RETRY);
    assert_int_equal(tw_http_match("GET", "/api/v1/", &m, &err), 0);
    assert_int_equal(m.route, TW_HTTP_INDEX);
    assert_int_equal(tw_http_match("GET", "/api/v1/tasks/18446744073709551615",
                                   &m, &err), 0);
    assert_true(m.id == UINT64_MAX);
    /* No action by GET; no read by POST. */
    s_fail("GET", "/api/v1/tasks/retry", 405, "EMETHOD", "POST", "POST");
    s_fail("GET", "/api/v1/tasks/42/cancel", 405, "EMETHOD", "POST", NULL);
    s_fail("POST", "/api/v1/tasks/42", 405, "EMETHOD", "GET, HEAD", "GET");
    s_fail("DELETE", "/api/v1/tasks", 405, "EMETHOD", "GET, HEAD", NULL);
    s_fail("OPTIONS", "/api/v1/workers/3/drain", 405, "EMETHOD", "POST",
           NULL);
    /* Bad ids. */
    s_fail("GET", "/api/v1/tasks/abc", 400, "EINVAL", NULL,
           "task id: 'abc' is not an id");
    s_fail("GET", "/api/v1/tasks/0", 400, "EINVAL", NULL, "task id");
    s_fail("GET", "/api/v1/tasks/18446744073709551616", 400, "EINVAL", NULL,
           NULL);
    s_fail("GET", "/api/v1/tasks/-1", 400, "EINVAL", NULL, NULL);
    s_fail("POST", "/api/v1/workers/x/drain", 400, "EINVAL", NULL,
           "worker id");
    /* Stations: escapes, length, operations. */
    assert_int_equal(tw_http_match("GET", "/api/v1/stations/a%00b", &m, &err),
                     0);
    assert_int_equal(m.sid_len, 3);
    assert_memory_equal(m.sid, "a\0b", 3);
    tw_http_match_free(&m);
    s_fail("GET", "/api/v1/stations/a%zz", 400, "EINVAL", NULL, "escape");
    s_fail("GET", "/api/v1/stations/a%4", 400, "EINVAL", NULL, "escape");
    char longsid[200] = "/api/v1/stations/";
    memset(longsid + strlen(longsid), 's', 129);
    s_fail("GET", longsid, 400, "EINVAL", NULL, "1 to 128 bytes");
    s_fail("POST", "/api/v1/stations/s1/explode", 404, "ENOENT", NULL,
           "no station operation 'explode'");
    /* No such route. */
    s_fail("GET", "/api/v2/tasks", 404, "ENOENT", NULL, NULL);
    s_fail("GET", "/api/v1/tasks/1/2/3", 404, "ENOENT", NULL, NULL);
    s_fail("GET", "/api//v1", 404, "ENOENT", NULL, NULL);
    s_fail("GET", "api/v1", 404, "ENOENT", NULL, NULL);
    s_fail("GET", "/a/b/c/d/e/f/g/h/i", 404, "ENOENT", NULL, NULL);
}

static void
test_params(void **state)
{
    (void)state;
    tw_http_match_t m;
    tw_http_err_t err;
    assert_int_equal(tw_http_match("GET", "/api/v1/tasks", &m, &err), 0);
    const char *ok[] = {"state", "limit", "cursor", "q"};
    assert_int_equal(tw_http_check_params(&m, ok, 4, &err), 0);
    const char *typo[] = {"state", "stat"};
    assert_int_equal(tw_http_check_params(&m, typo, 2, &err), -1);
    assert_int_equal(err.status, 400);
    assert_non_null(strstr(err.message, "unknown parameter 'stat'"));
    assert_non_null(strstr(err.message, "state,handler"));
    const char *twice[] = {"limit", "state", "limit"};
    assert_int_equal(tw_http_check_params(&m, twice, 3, &err), -1);
    assert_non_null(strstr(err.message, "'limit' is given twice"));
    assert_int_equal(tw_http_match("GET", "/api/v1/status", &m, &err), 0);
    const char *any[] = {"x"};
    assert_int_equal(tw_http_check_params(&m, any, 1, &err), -1);
    assert_non_null(strstr(err.message, "unknown parameter 'x'"));
    assert_int_equal(tw_http_check_params(&m, NULL, 0, &err), 0);
}

static void
test_unescape(void **state)
{
    (void)state;
    char a[] = "a%20b+c%2f";
    assert_int_equal(tw_http_unescape(a, strlen(a), 1), 6);
    assert_string_equal(a, "a b c/");
    char b[] = "a+b";
    assert_int_equal(tw_http_unescape(b, strlen(b), 0), 3);
    assert_string_equal(b, "a+b");
    char c[] = "%";
    assert_int_equal(tw_http_unescape(c, 1, 0), -1);
    char d[] = "%4";
    assert_int_equal(tw_http_unescape(d, 2, 0), -1);
    char e[] = "%g0";
    assert_int_equal(tw_http_unescape(e, 3, 0), -1);
    char f[] = "%41%42";
    assert_int_equal(tw_http_unescape(f, 6, 0), 2);
    assert_string_equal(f, "AB");
}

/* One decision: returns the status (0 = allowed). */
static unsigned
s_allow(const tw_http_policy_t *p, int action, int peer_lo, const char *auth,
        const char *origin, const char *host, const char *ctype)
{
    tw_http_req_t r = {action, peer_lo, auth, origin, host, ctype};
    tw_http_err_t err;
    if (tw_http_allow(p, &r, &err) == 0) {
        return 0;
    }
    if (err.status == 401) {
        assert_string_equal(err.header, "WWW-Authenticate");
        assert_string_equal(err.value, "Bearer realm=\"taskwheel\"");
    }
    return err.status;
}

#define JSON "application/json"
#define TOKEN "0123456789abcdef0123456789abcdef"
#define HOST "127.0.0.1:9710"

static void
test_who_may_do_what(void **state)
{
    (void)state;
    tw_http_policy_t lo = {1, NULL, 0};
    tw_http_policy_t lo_tok = {1, TOKEN, strlen(TOKEN)};
    tw_http_policy_t far_tok = {0, TOKEN, strlen(TOKEN)};
    tw_http_policy_t far_open = {0, NULL, 0};
    /* Loopback, no token: anyone who can connect, JSON actions only. */
    assert_int_equal(s_allow(&lo, 0, 1, NULL, NULL, HOST, NULL), 0);
    assert_int_equal(s_allow(&lo, 1, 1, NULL, NULL, HOST, JSON), 0);
    assert_int_equal(s_allow(&lo, 1, 1, NULL, NULL, HOST,
                             "application/json; charset=utf-8"), 0);
    assert_int_equal(s_allow(&lo, 1, 1, NULL, NULL, HOST, "text/plain"), 415);
    assert_int_equal(s_allow(&lo, 1, 1, NULL, NULL, HOST,
                             "application/jsonx"), 415);
    assert_int_equal(s_allow(&lo, 1, 1, NULL, NULL, HOST, NULL), 415);
    assert_int_equal(s_allow(&lo, 0, 1, NULL, NULL, NULL, NULL), 0);
    /* Browser checks: origin and host. */
    assert_int_equal(s_allow(&lo, 1, 1, NULL, "http://" HOST, HOST, JSON), 0);
    assert_int_equal(s_allow(&lo, 1, 1, NULL, "http://evil.example", HOST,
                             JSON), 403);
    assert_int_equal(s_allow(&lo, 0, 1, NULL, "null", HOST, NULL), 403);
    assert_int_equal(s_allow(&lo, 0, 1, NULL, NULL, "evil.example:9710",
                             NULL), 403);
    assert_int_equal(s_allow(&lo, 0, 1, NULL, NULL, "127.0.0.1.evil.example",
                             NULL), 403);
    assert_int_equal(s_allow(&lo, 0, 1, NULL, NULL, "localhost:9710", NULL),
                     0);
    assert_int_equal(s_allow(&lo, 0, 1, NULL, NULL, "LOCALHOST", NULL), 0);
    assert_int_equal(s_allow(&lo, 0, 1, NULL, NULL, "[::1]:9710", NULL), 0);
    assert_int_equal(s_allow(&lo, 0, 1, NULL, NULL, "127.9.8.7", NULL), 0);
    assert_int_equal(s_allow(&lo, 0, 1, NULL, NULL, "[::2]:9710", NULL), 403);
    assert_int_equal(s_allow(&lo, 0, 1, NULL, NULL, "128.0.0.1", NULL), 403);
    /* Loopback with a token: reads without it, actions only with it. */
    assert_int_equal(s_allow(&lo_tok, 0, 1, NULL, NULL, HOST, NULL), 0);
    assert_int_equal(s_allow(&lo_tok, 1, 1, NULL, NULL, HOST, JSON), 401);
    assert_int_equal(s_allow(&lo_tok, 1, 1, "Bearer " TOKEN, NULL, HOST,
                             JSON), 0);
    assert_int_equal(s_allow(&lo_tok, 1, 1, "bearer  " TOKEN " ", NULL, HOST,
                             JSON), 0);
    assert_int_equal(s_allow(&lo_tok, 1, 1, "Bearer " TOKEN "x", NULL, HOST,
                             JSON), 401);
    assert_int_equal(s_allow(&lo_tok, 1, 1, "Bearer 0123", NULL, HOST, JSON),
                     401);
    assert_int_equal(s_allow(&lo_tok, 1, 1, "Basic " TOKEN, NULL, HOST, JSON),
                     401);
    assert_int_equal(s_allow(&lo_tok, 1, 1, "Bearer ", NULL, HOST, JSON),
                     401);
    /* With the token shown, any Host will do; without, it must be local. */
    assert_int_equal(s_allow(&lo_tok, 0, 1, "Bearer " TOKEN, NULL,
                             "broker.example", NULL), 0);
    assert_int_equal(s_allow(&lo_tok, 0, 1, NULL, NULL, "broker.example",
                             NULL), 403);
    /* Beyond loopback with a token: the token for everyone but loopback
     * readers. */
    assert_int_equal(s_allow(&far_tok, 0, 0, NULL, NULL, "broker:9710",
                             NULL), 401);
    assert_int_equal(s_allow(&far_tok, 0, 0, "Bearer " TOKEN, NULL,
                             "broker:9710", NULL), 0);
    assert_int_equal(s_allow(&far_tok, 0, 1, NULL, NULL, HOST, NULL), 0);
    assert_int_equal(s_allow(&far_tok, 1, 1, NULL, NULL, HOST, JSON), 401);
    assert_int_equal(s_allow(&far_tok, 1, 0, "Bearer " TOKEN, NULL,
                             "broker:9710", JSON), 0);
    /* Beyond loopback without one (--insecure): reads only. */
    assert_int_equal(s_allow(&far_open, 0, 0, NULL, NULL, "broker:9710",
                             NULL), 0);
    assert_int_equal(s_allow(&far_open, 1, 0, NULL, NULL, "broker:9710",
                             JSON), 403);
    assert_int_equal(s_allow(&far_open, 1, 1, NULL, NULL, HOST, JSON), 403);
}

/* docs/openapi.yaml's paths (lines "  /api...:") and each one's methods
 * (lines "    get:" / "    post:") against the table. */
static void
test_openapi_lists_the_routes(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/openapi.yaml", TW_SOURCE_DIR);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512], cur[512] = "";
    int seen[TW_HTTP_NROUTES] = {0};
    int paths = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "  /", 3) == 0) {
            char *colon = strrchr(line, ':');
            assert_non_null(colon);
            *colon = '\0';
            snprintf(cur, sizeof cur, "%s", line + 2);
            paths++;
            continue;
        }
        if (line[0] != ' ' || strncmp(line, "components:", 11) == 0) {
            if (line[0] != ' ' && line[0] != '\n') {
                cur[0] = '\0';
            }
            continue;
        }
        const char *method = strcmp(line, "    get:\n") == 0    ? "GET"
                             : strcmp(line, "    post:\n") == 0 ? "POST"
                                                                : NULL;
        if (!method || !cur[0]) {
            continue;
        }
        int found = -1;
        for (int r = 0; r < TW_HTTP_NROUTES; r++) {
            if (strcmp(tw_http_route_path((tw_http_route_t)r), cur) == 0 &&
                strcmp(tw_http_route_method((tw_http_route_t)r), method) ==
                    0) {
                found = r;
            }
        }
        if (found < 0) {
            fail_msg("openapi.yaml has %s %s; TW_HTTP_ROUTES does not",
                     method, cur);
        }
        seen[found] = 1;
    }
    fclose(f);
    for (int r = 0; r < TW_HTTP_NROUTES; r++) {
        if (r != TW_HTTP_METRICS && !seen[r]) {
            fail_msg("TW_HTTP_ROUTES has %s %s; openapi.yaml does not",
                     tw_http_route_method((tw_http_route_t)r),
                     tw_http_route_path((tw_http_route_t)r));
        }
    }
    assert_int_equal(paths, TW_HTTP_NROUTES - 1); /* one method a path */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route),
        cmocka_unit_test(test_methods_and_refusals),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_who_may_do_what),
        cmocka_unit_test(test_openapi_lists_the_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
