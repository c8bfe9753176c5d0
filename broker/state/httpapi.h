/*  broker/state/httpapi.h - the HTTP API's routes and rules, without the HTTP.
 *
 *  docs/HTTP.md defines the API; this module holds the parts that need
 *  no broker state and no socket, so they are one table and a few pure
 *  functions that a unit test can drive through every case:
 *
 *    - TW_HTTP_ROUTES, the one list of routes: method, path pattern and
 *      the query parameters each accepts. It drives matching, the Allow
 *      header of a 405, the refusal of unknown parameters, and the route
 *      list GET /api/v1 answers (which the API tests compare with
 *      docs/openapi.yaml);
 *    - matching a method and a raw path to a route, decoding the path's
 *      percent escapes one segment at a time (a station id may hold a
 *      "/", sent as %2F) and checking numeric ids;
 *    - who may call what (tw_http_allow): loopback, the bearer token, no
 *      action by GET, and the browser checks (Content-Type of a POST,
 *      Origin, Host against DNS rebinding);
 *    - one error shape: status, TW_E* name, message, and an optional
 *      header.
 *
 *  Pure functions, any thread.
 */
#ifndef TW_BROKER_HTTPAPI_H
#define TW_BROKER_HTTPAPI_H

#include <stddef.h>
#include <stdint.h>

/* XX(name, method, path pattern, query parameters). A pattern segment
 * "{id}" or "{wid}" is a decimal id >= 1, "{sid}" any non-empty segment,
 * "{op}" a station operation. Literal routes are tried before patterns
 * with parameters, so /api/v1/tasks/retry is never task "retry". */
#define TW_HTTP_ROUTES(XX)                                                   \
    XX(INDEX, "GET", "/api/v1", "")                                          \
    XX(SNAPSHOT, "GET", "/api/v1/snapshot", "")                              \
    XX(STATUS, "GET", "/api/v1/status", "")                                  \
    XX(WORKERS, "GET", "/api/v1/workers", "")                                \
    XX(WORKER, "GET", "/api/v1/workers/{wid}", "")                           \
    XX(WORKER_DRAIN, "POST", "/api/v1/workers/{wid}/drain", "")              \
    XX(WORKER_RESIZE, "POST", "/api/v1/workers/{wid}/resize", "")            \
    XX(STATIONS, "GET", "/api/v1/stations", "state,limit,cursor")            \
    XX(STATION, "GET", "/api/v1/stations/{sid}", "")                         \
    XX(STATION_OP, "POST", "/api/v1/stations/{sid}/{op}", "")                \
    XX(POOLS, "GET", "/api/v1/pools", "")                                    \
    XX(GROUPS, "GET", "/api/v1/groups", "pool,at_limit")                     \
    XX(QUEUES, "GET", "/api/v1/queues", "")                                  \
    XX(TASKS, "GET", "/api/v1/tasks",                                        \
       "state,handler,group,pool,since,q,limit,cursor")                      \
    XX(TASKS_RETRY, "POST", "/api/v1/tasks/retry", "")                       \
    XX(TASKS_PURGE, "POST", "/api/v1/tasks/purge", "")                       \
    XX(TASK, "GET", "/api/v1/tasks/{id}", "")                                \
    XX(TASK_RETRY, "POST", "/api/v1/tasks/{id}/retry", "")                   \
    XX(TASK_CANCEL, "POST", "/api/v1/tasks/{id}/cancel", "")                 \
    XX(EVENTS, "GET", "/api/v1/events", "topics")                            \
    XX(METRICS, "GET", "/metrics", "")

typedef enum {
#define TW__HTTP_ENUM(name, method, path, params) TW_HTTP_##name,
    TW_HTTP_ROUTES(TW__HTTP_ENUM)
#undef TW__HTTP_ENUM
    TW_HTTP_NROUTES
} tw_http_route_t;

/* The longest body a POST may carry. */
#define TW_HTTP_MAX_BODY 65536

typedef struct {
    unsigned status;     /* 400 .. 503 */
    const char *code;    /* "EINVAL", "EAUTH", "EMETHOD"... */
    char message[256];
    const char *header;  /* an extra header name, or NULL */
    char value[128];     /* its value */
} tw_http_err_t;

typedef struct {
    tw_http_route_t route;
    int action;          /* a POST route: it changes something */
    uint64_t id;         /* {id} or {wid} */
    char *sid;           /* {sid}, decoded, NUL-terminated; or NULL */
    size_t sid_len;      /* its bytes (it may hold a NUL) */
    const char *op;      /* {op}: "pause", "continue", "stop", "cancel" */
} tw_http_match_t;

/* The method, pattern and parameters of `r`. */
const char *tw_http_route_method(tw_http_route_t r);
const char *tw_http_route_path(tw_http_route_t r);
const char *tw_http_route_params(tw_http_route_t r);

/* Find the route for `method` ("GET", "HEAD", "POST", ...) and the raw
 * (still percent-encoded) `path`. Returns 0 and fills *m (free it with
 * tw_http_match_free), or -1 and fills *err: 404 ENOENT (no such route,
 * or an unknown station operation), 405 EMETHOD with an Allow header,
 * 400 EINVAL (a bad percent escape, an id that is not a number). HEAD
 * matches GET routes. */
int tw_http_match(const char *method, const char *path, tw_http_match_t *m,
                  tw_http_err_t *err);

void tw_http_match_free(tw_http_match_t *m);

/* Check the query parameter names a request carries against its
 * route's list: 0, or -1 with 400 EINVAL naming the first unknown or
 * repeated one. */
int tw_http_check_params(const tw_http_match_t *m, const char *const *names,
                         size_t n, tw_http_err_t *err);

/* Decode percent escapes in the `n` bytes at `s` in place ("+" too, as
 * a space, if `plus`); `s` has room for n + 1 bytes. Returns the new
 * length, or -1 for a bad escape. The result is NUL-terminated and may
 * hold NUL bytes. */
long tw_http_unescape(char *s, size_t n, int plus);

/* What the server was started with. */
typedef struct {
    int loopback;        /* it listens on a loopback address */
    const char *token;   /* --http-token-file's token, or NULL */
    size_t token_len;
} tw_http_policy_t;

/* What a request brings to the decision. Headers absent: NULL. */
typedef struct {
    int action;                /* a POST route */
    int peer_loopback;         /* it comes from a loopback address */
    const char *authorization; /* the Authorization header */
    const char *origin;
    const char *host;
    const char *content_type;
} tw_http_req_t;

/* docs/HTTP.md "Who may do what". Returns 0 to go on, or -1 with *err:
 * 401 EAUTH (token needed: WWW-Authenticate), 403 EPERM (an action with
 * no token beyond loopback, a foreign Origin, a Host that is not
 * loopback where loopback is what is trusted), 415 EMEDIA (a POST that
 * is not application/json). The token is compared in constant time. */
int tw_http_allow(const tw_http_policy_t *p, const tw_http_req_t *r,
                  tw_http_err_t *err);

/* Fill *err. Returns -1, for `return tw_http_fail(...)`. */
int tw_http_fail(tw_http_err_t *err, unsigned status, const char *code,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif /* TW_BROKER_HTTPAPI_H */
