/*  broker/state/httpapi.c - the HTTP API's routes and rules (see httpapi.h).
 */
#include "broker/state/httpapi.h"

#include "common/alloc.h"
#include "common/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *method, *path, *params;
} s_routes[] = {
#define S_ROW(name, method, path, params) {method, path, params},
    TW_HTTP_ROUTES(S_ROW)
#undef S_ROW
};

const char *
tw_http_route_method(tw_http_route_t r)
{
    return s_routes[r].method;
}

const char *
tw_http_route_path(tw_http_route_t r)
{
    return s_routes[r].path;
}

const char *
tw_http_route_params(tw_http_route_t r)
{
    return s_routes[r].params;
}

int
tw_http_fail(tw_http_err_t *err, unsigned status, const char *code,
             const char *fmt, ...)
{
    err->status = status;
    err->code = code;
    err->header = NULL;
    err->value[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

long
tw_http_unescape(char *s, size_t n, int plus)
{
    size_t w = 0;
    for (size_t r = 0; r < n; r++) {
        char c = s[r];
        if (c == '%') {
            if (r + 2 >= n) {
                return -1;
            }
            int hi = tw_hex_digit(s[r + 1]), lo = tw_hex_digit(s[r + 2]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            s[w++] = (char)(hi * 16 + lo);
            r += 2;
        } else if (c == '+' && plus) {
            s[w++] = ' ';
        } else {
            s[w++] = c;
        }
    }
    s[w] = '\0';
    return (long)w;
}

/* ---- matching --------------------------------------------------------- */

/* The next segment of `p` (after a '/'): its start and length; NULL at
 * the end. */
static const char *
s_seg(const char *p, size_t *len)
{
    if (*p != '/') {
        return NULL;
    }
    p++;
    const char *end = strchr(p, '/');
    *len = end ? (size_t)(end - p) : strlen(p);
    return p;
}

typedef struct {
    const char *seg[8];
    size_t len[8];
    size_t n;
} s_path_t;

/* Split a path into at most 8 segments. Returns 0, or -1 if it does not
 * start with '/', has more segments, or an empty one (but for a single
 * trailing slash, which is dropped). */
static int
s_split(const char *path, s_path_t *sp)
{
    sp->n = 0;
    if (path[0] != '/') {
        return -1;
    }
    const char *p = path;
    size_t len;
    const char *seg;
    while ((seg = s_seg(p, &len)) != NULL) {
        if (len == 0) {
            if (seg[0] == '\0' && sp->n > 0) {
                break; /* a trailing slash */
            }
            return -1;
        }
        if (sp->n == 8) {
            return -1;
        }
        sp->seg[sp->n] = seg;
        sp->len[sp->n++] = len;
        p = seg + len;
    }
    return 0;
}

static int
s_is(const char *seg, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(seg, lit, len) == 0;
}

/* How the path fits a route: 2 exactly with literals only, 1 with
 * parameters, 0 not at all. */
static int
s_fits(const s_path_t *sp, const char *pattern)
{
    s_path_t pp;
    s_split(pattern, &pp);
    if (pp.n != sp->n) {
        return 0;
    }
    int params = 0;
    for (size_t i = 0; i < pp.n; i++) {
        if (pp.seg[i][0] == '{') {
            params = 1;
        } else if (pp.len[i] != sp->len[i] ||
                   memcmp(pp.seg[i], sp->seg[i], pp.len[i]) != 0) {
            return 0;
        }
    }
    return params ? 1 : 2;
}

static const char *const s_ops[] = {"pause", "continue", "stop", "cancel",
                                    NULL};

/* Fill m's parameters from the path for route r. Returns 0 or -1. */
static int
s_params(tw_http_route_t r, const s_path_t *sp, tw_http_match_t *m,
         tw_http_err_t *err)
{
    s_path_t pp;
    s_split(s_routes[r].path, &pp);
    for (size_t i = 0; i < pp.n; i++) {
        if (pp.seg[i][0] != '{') {
            continue;
        }
        char buf[512];
        if (sp->len[i] >= sizeof buf) {
            return tw_http_fail(err, 400, "EINVAL",
                                "a path segment of %zu bytes is too long",
                                sp->len[i]);
        }
        memcpy(buf, sp->seg[i], sp->len[i]);
        long n = tw_http_unescape(buf, sp->len[i], 0);
        if (n < 0) {
            return tw_http_fail(err, 400, "EINVAL",
                                "a bad %%-escape in the path");
        }
        if (s_is(pp.seg[i], pp.len[i], "{sid}")) {
            if (n == 0 || n > 128) {
                return tw_http_fail(err, 400, "EINVAL",
                                    "a station id is 1 to 128 bytes");
            }
            m->sid = tw_malloc((size_t)n + 1);
            memcpy(m->sid, buf, (size_t)n + 1);
            m->sid_len = (size_t)n;
        } else if (s_is(pp.seg[i], pp.len[i], "{op}")) {
            for (size_t k = 0; s_ops[k]; k++) {
                if (strlen(s_ops[k]) == (size_t)n &&
                    memcmp(s_ops[k], buf, (size_t)n) == 0) {
                    m->op = s_ops[k];
                }
            }
            if (!m->op) {
                return tw_http_fail(err, 404, "ENOENT",
                                    "no station operation '%.*s': pause, "
                                    "continue, stop or cancel",
                                    (int)(n > 32 ? 32 : n), buf);
            }
        } else {
            /* {id}, {wid}: 1 .. 2^64-1 in decimal. */
            uint64_t v = 0;
            int ok = n > 0 && n <= 20;
            for (long k = 0; ok && k < n; k++) {
                unsigned d = (unsigned)(buf[k] - '0');
                ok = d <= 9 && v <= (UINT64_MAX - d) / 10;
                v = v * 10 + d;
            }
            if (!ok || v == 0) {
                return tw_http_fail(err, 400, "EINVAL",
                                    "%s: '%.*s' is not an id (a number "
                                    "from 1)",
                                    s_is(pp.seg[i], pp.len[i], "{wid}")
                                        ? "worker id" : "task id",
                                    (int)(n > 32 ? 32 : n), buf);
            }
            m->id = v;
        }
    }
    return 0;
}

int
tw_http_match(const char *method, const char *path, tw_http_match_t *m,
              tw_http_err_t *err)
{
    memset(m, 0, sizeof *m);
    s_path_t sp;
    if (s_split(path, &sp) != 0) {
        return tw_http_fail(err, 404, "ENOENT", "no such route");
    }
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    /* The best fit: literal routes first, then those with parameters. */
    for (int pass = 2; pass >= 1; pass--) {
        int found = -1;
        char allow[64] = "";
        for (int r = 0; r < TW_HTTP_NROUTES; r++) {
            if (s_fits(&sp, s_routes[r].path) != pass) {
                continue;
            }
            if (strcmp(s_routes[r].method, want) == 0) {
                found = r;
                break;
            }
            if (!strstr(allow, s_routes[r].method)) {
                if (allow[0]) {
                    strcat(allow, ", ");
                }
                strcat(allow, strcmp(s_routes[r].method, "GET") == 0
                                  ? "GET, HEAD" : s_routes[r].method);
            }
        }
        if (found >= 0) {
            m->route = (tw_http_route_t)found;
            m->action = strcmp(s_routes[found].method, "POST") == 0;
            if (s_params(m->route, &sp, m, err) != 0) {
                tw_http_match_free(m);
                return -1;
            }
            return 0;
        }
        if (allow[0]) {
            int act = strstr(allow, "POST") != NULL;
            tw_http_fail(err, 405, "EMETHOD",
                         act ? "this route acts: send POST (no action "
                               "by GET)"
                             : "this route only reads: send GET");
            err->header = "Allow";
            snprintf(err->value, sizeof err->value, "%s", allow);
            return -1;
        }
    }
    return tw_http_fail(err, 404, "ENOENT", "no such route: see GET /api/v1 "
                        "for the list");
}

void
tw_http_match_free(tw_http_match_t *m)
{
    tw_free(m->sid);
    m->sid = NULL;
}

int
tw_http_check_params(const tw_http_match_t *m, const char *const *names,
                     size_t n, tw_http_err_t *err)
{
    const char *list = s_routes[m->route].params;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        const char *p = list;
        int known = 0;
        while (*p && !known) {
            const char *end = strchr(p, ',');
            size_t l = end ? (size_t)(end - p) : strlen(p);
            known = l == len && memcmp(p, names[i], l) == 0;
            p = end ? end + 1 : p + l;
        }
        if (!known) {
            return tw_http_fail(err, 400, "EINVAL",
                                "unknown parameter '%.32s'%s%s", names[i],
                                *list ? "; this route takes " : "",
                                list);
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(names[k], names[i]) == 0) {
                return tw_http_fail(err, 400, "EINVAL",
                                    "parameter '%.32s' is given twice",
                                    names[i]);
            }
        }
    }
    return 0;
}

/* ---- who may do what -------------------------------------------------- */

/* Equal, in a time that depends only on the length of `given`. */
static int
s_same(const char *want, size_t wlen, const char *given, size_t glen)
{
    unsigned diff = (unsigned)(wlen ^ glen);
    for (size_t i = 0; i < glen; i++) {
        diff |= (unsigned char)(want[i % wlen] ^ given[i]);
    }
    return diff == 0;
}

/* 1 if the Authorization header carries the token. */
static int
s_has_token(const tw_http_policy_t *p, const char *auth)
{
    if (!p->token || !auth || strncasecmp(auth, "Bearer ", 7) != 0) {
        return 0;
    }
    const char *t = auth + 7;
    while (*t == ' ') {
        t++;
    }
    size_t n = strlen(t);
    while (n > 0 && t[n - 1] == ' ') {
        n--;
    }
    return s_same(p->token, p->token_len, t, n);
}

/* 1 if the Host header names a loopback address (any port), or is
 * absent. */
static int
s_host_loopback(const char *host)
{
    if (!host) {
        return 1;
    }
    char h[256];
    size_t n = strlen(host);
    if (n == 0 || n >= sizeof h) {
        return 0;
    }
    memcpy(h, host, n + 1);
    if (h[0] == '[') {
        char *end = strchr(h, ']');
        if (!end || (end[1] && end[1] != ':')) {
            return 0;
        }
        *end = '\0';
        return strcmp(h + 1, "::1") == 0;
    }
    char *colon = strchr(h, ':');
    if (colon) {
        *colon = '\0';
    }
    if (strcasecmp(h, "localhost") == 0) {
        return 1;
    }
    /* 127.0.0.0/8 in dotted decimal. */
    unsigned a, b, c, d;
    char extra;
    return sscanf(h, "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) == 4 &&
           a == 127 && b < 256 && c < 256 && d < 256;
}

int
tw_http_allow(const tw_http_policy_t *p, const tw_http_req_t *r,
              tw_http_err_t *err)
{
    if (r->origin) {
        char own[300];
        snprintf(own, sizeof own, "http://%s", r->host ? r->host : "");
        if (!r->host || strcmp(r->origin, own) != 0) {
            return tw_http_fail(err, 403, "EPERM",
                                "a request from another origin (%.100s) is "
                                "refused", r->origin);
        }
    }
    int token = s_has_token(p, r->authorization);
    if (r->action) {
        if (p->token && !token) {
            tw_http_fail(err, 401, "EAUTH",
                         "actions need the token of --http-token-file "
                         "(Authorization: Bearer ...)");
            err->header = "WWW-Authenticate";
            snprintf(err->value, sizeof err->value,
                     "Bearer realm=\"taskwheel\"");
            return -1;
        }
        if (!p->token && !p->loopback) {
            return tw_http_fail(err, 403, "EPERM",
                                "actions need --http-token-file when the "
                                "API listens beyond loopback");
        }
        const char *ct = r->content_type;
        size_t jl = strlen("application/json");
        if (!ct || strncasecmp(ct, "application/json", jl) != 0 ||
            (ct[jl] && ct[jl] != ';' && ct[jl] != ' ')) {
            return tw_http_fail(err, 415, "EMEDIA",
                                "an action must be sent with Content-Type: "
                                "application/json (an empty body is fine)");
        }
    } else if (p->token && !token && !r->peer_loopback) {
        tw_http_fail(err, 401, "EAUTH",
                     "reading from beyond loopback needs the token of "
                     "--http-token-file (Authorization: Bearer ...)");
        err->header = "WWW-Authenticate";
        snprintf(err->value, sizeof err->value, "Bearer realm=\"taskwheel\"");
        return -1;
    }
    /* Trusted for being local (no token shown): the Host must say so too,
     * or a hostile name resolved to 127.0.0.1 would be trusted. */
    if (!token && (p->loopback || r->peer_loopback) &&
        !s_host_loopback(r->host)) {
        return tw_http_fail(err, 403, "EPERM",
                            "Host '%.100s' is not a loopback name; use "
                            "127.0.0.1, [::1] or localhost, or the token",
                            r->host);
    }
    return 0;
}
