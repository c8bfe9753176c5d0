/*  client/cli/cli.c - the helpers every taskwheel command file shares (see
 *  cli.h).
 *
 *  Diagnostics, command words and flags, number parsing, requests and
 *  JSON and table output, written once so main.c, cmd_map.c, cmd_pool.c
 *  and secure.c follow the same rules: data on stdout, one "taskwheel: "
 *  line per diagnostic on stderr, and strings from the broker cleaned of
 *  control characters before they reach a terminal.
 */
#include "client/cli/cli.h"

#include "client/cli/json.h"
#include "client/cli/secure.h"
#include "client/internal.h"
#include "common/error.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Diagnostics                                                        */

int
tw_cli_say(int code, const char *end, const char *fmt, ...)
{
    va_list ap;
    fputs("taskwheel: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(end, stderr);
    return code;
}

int
tw_cli_unreachable(const tw_cli_env_t *e)
{
    return tw_cli_fail(TW_CLI_UNREACH, "broker at %s is unreachable",
                       e->broker);
}

int
tw_cli_lib_error(const tw_cli_env_t *e, tw_client_t *c, const char *what,
                 int rc)
{
    const char *link = c ? tw__client_link_error(c) : NULL;
    if (link && rc == TW_EUNREACH) {
        /* What the socket monitor saw: refused, wrong kind of socket,
         * refused key (common/zmon.h). */
        char *clean = tw_cli_clean(link);
        int code = tw_cli_fail(TW_CLI_UNREACH, "cannot reach the broker: %s",
                               clean ? clean : link);
        free(clean);
        return code;
    }
    if (rc == TW_EUNREACH) {
        return tw_cli_unreachable(e);
    }
    const char *m = c ? tw_client_last_error(c) : "";
    if (c && (rc == TW_ECOMMAND || rc == TW_EWORKER) && *m) {
        /* The broker says this is not its frontend, and which is. */
        char *clean = tw_cli_clean(m);
        tw_cli_fail(TW_CLI_USAGE, "%s: wrong endpoint %s: %s", what,
                    e->broker, clean ? clean : "?");
        free(clean);
        return TW_CLI_USAGE;
    }
    if (*m && rc != TW_EIO && rc != TW_ENOMEM) {
        char *clean = tw_cli_clean(m);
        tw_cli_fail(TW_CLI_FAIL, "%s: %s (broker: %s)", what, tw_strerror(rc),
                    clean ? clean : "?");
        free(clean);
        return TW_CLI_FAIL;
    }
    return tw_cli_fail(TW_CLI_FAIL, "%s: %s", what, tw_strerror(rc));
}

/* ------------------------------------------------------------------ */
/* Words and flags                                                    */

int
tw_cli_flag(int argc, char **argv, int *i, const char *name,
            const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) {
        return 0;
    }
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') {
        return 0;
    }
    if (*i + 1 >= argc) {
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

tw_cli_words_t
tw_cli_words(const tw_cli_env_t *e, int first)
{
    tw_cli_words_t w = {e->argc, e->argv, first - 1, 0};
    return w;
}

const char *
tw_cli_next_word(tw_cli_words_t *w)
{
    while (++w->i < w->argc) {
        const char *a = w->argv[w->i];
        if (w->dashdash || strcmp(a, "--") != 0) {
            return a;
        }
        w->dashdash = 1;
    }
    return NULL;
}

int
tw_cli_is_flag(const tw_cli_words_t *w)
{
    const char *a = w->argv[w->i];
    return !w->dashdash && a[0] == '-' && a[1] == '-';
}

int
tw_cli_word_flag(tw_cli_words_t *w, const char *name, const char **val)
{
    return tw_cli_flag(w->argc, w->argv, &w->i, name, val);
}

/* ------------------------------------------------------------------ */
/* Numbers                                                            */

int
tw_cli_u64(const char *s, uint64_t *v)
{
    if (!s || *s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end) {
        return -1;
    }
    *v = x;
    return 0;
}

int
tw_cli_int(const char *s, int64_t min, int64_t max, int64_t *v)
{
    if (!s || !*s) {
        return -1;
    }
    errno = 0;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (errno || *end || x < min || x > max) {
        return -1;
    }
    *v = x;
    return 0;
}

int
tw_cli_secs(const char *s, double max, double *v)
{
    if (!s || !*s) {
        return -1;
    }
    errno = 0;
    char *end;
    double x = strtod(s, &end);
    if (errno || *end || !isfinite(x) || x < 0 || x > max) {
        return -1;
    }
    *v = x;
    return 0;
}

int
tw_cli_flag_ms(const char *flag, int r, const char *val, uint64_t *ms)
{
    double secs;
    if (r < 0 || tw_cli_secs(val, UINT32_MAX / 1000.0, &secs) != 0) {
        return tw_cli_usage("%s needs a number of seconds", flag);
    }
    *ms = (uint64_t)llround(secs * 1000.0);
    if (secs > 0 && *ms == 0) {
        *ms = 1;
    }
    return -1;
}

int
tw_cli_ids(const tw_cli_env_t *e, const char *cmd, const char *skip,
           uint64_t **ids, size_t *n)
{
    tw_cli_words_t w = tw_cli_words(e, 1);
    *ids = calloc((size_t)e->argc, sizeof **ids);
    *n = 0;
    int code = -1;
    const char *a;
    if (!*ids) {
        return tw_cli_fail(TW_CLI_FAIL, "out of memory");
    }
    while (code < 0 && (a = tw_cli_next_word(&w)) != NULL) {
        uint64_t id;
        if (tw_cli_is_flag(&w)) {
            if (!skip || strcmp(a, skip) != 0) {
                code = tw_cli_usage("%s: unknown option '%s'", cmd, a);
            }
        } else if (tw_cli_u64(a, &id) != 0 || id == 0) {
            code = tw_cli_usage("%s: '%s' is not a task id", cmd, a);
        } else {
            (*ids)[(*n)++] = id;
        }
    }
    if (code < 0 && *n == 0) {
        code = tw_cli_usage("%s%s%s needs at least one task ID", cmd,
                            skip ? " " : "", skip ? skip : "");
    }
    if (code >= 0) {
        free(*ids);
        *ids = NULL;
    }
    return code;
}

/* ------------------------------------------------------------------ */
/* Requests                                                           */

tw_client_t *
tw_cli_connect(const tw_cli_env_t *e, int *code)
{
    return tw_cli_client_new(e->broker, code); /* CURVE if configured */
}

/* Make the request `kind` (see tw_cli_req_t) on `c`. */
static int
s_call(tw_client_t *c, tw_cli_req_t kind, const void *arg, int timeout_ms,
       void **data, size_t *len)
{
    const tw__ids_t *ids = arg;
    switch (kind) {
    case TW_CLI_REQ_QUERY:
        return tw_client_query(c, arg, timeout_ms, data, len);
    case TW_CLI_REQ_CANCEL:
        return tw__client_cancel(c, ids->ids, ids->n, timeout_ms, data, len);
    case TW_CLI_REQ_STATION:
        return tw_client_station(c, arg, timeout_ms, data, len);
    case TW_CLI_REQ_GROUP:
        return tw_client_group(c, arg, timeout_ms, data, len);
    case TW_CLI_REQ_POOL:
        return tw_client_pool(c, arg, timeout_ms, data, len);
    case TW_CLI_REQ_WORKER:
        return tw_client_worker(c, arg, timeout_ms, data, len);
    case TW_CLI_REQ_SCHEDULE:
        return tw_client_schedule(c, arg, timeout_ms, data, len);
    }
    return TW_EINVAL;
}

json_t *
tw_cli_request(const tw_cli_env_t *e, const char *what, tw_cli_req_t kind,
               const void *arg, int *code)
{
    tw_client_t *c = tw_cli_connect(e, code);
    if (!c) {
        return NULL;
    }
    void *data = NULL;
    size_t len = 0;
    int rc = s_call(c, kind, arg, e->timeout_ms, &data, &len);
    json_t *v = NULL;
    if (rc != 0) {
        *code = tw_cli_lib_error(e, c, what, rc);
    } else {
        v = tw_cli_payload_json(data, len);
        if (!v) {
            *code = tw_cli_fail(TW_CLI_FAIL, "out of memory");
        }
    }
    free(data);
    tw_client_destroy(&c);
    return v;
}

/* ------------------------------------------------------------------ */
/* Output                                                             */

json_t *
tw_cli_payload_json(const void *p, size_t n)
{
    if (!p || n == 0) {
        return json_null();
    }
    json_t *v = tw_json_from_msgpack(p, n);
    if (!v) {
        msgpack_object o;
        memset(&o, 0, sizeof o);
        o.type = MSGPACK_OBJECT_BIN;
        o.via.bin.ptr = p;
        o.via.bin.size = (uint32_t)(n > UINT32_MAX ? UINT32_MAX : n);
        v = tw_json_from_object(&o);
    }
    return v;
}

void
tw_cli_print_json(json_t *v)
{
    char *s = v ? tw_json_dumps(v) : NULL;
    fputs(s ? s : "null", stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(s);
    json_decref(v);
}

char *
tw_cli_clean(const char *s)
{
    return tw_cli_clean_len(s, strlen(s));
}

char *
tw_cli_clean_len(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        d[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    d[n] = '\0';
    return d;
}

int
tw_cli_print_table(json_t *rows, const char *const *keys,
                   const char *const *titles, size_t ncols,
                   char *(*cell)(json_t *v))
{
    size_t nrows = json_array_size(rows);
    char **cells = calloc((nrows + 1) * ncols, sizeof *cells);
    size_t *width = calloc(ncols, sizeof *width);
    if (!cells || !width) {
        free(cells);
        free(width);
        return tw_cli_fail(TW_CLI_FAIL, "out of memory");
    }
    for (size_t j = 0; j < ncols; j++) {
        cells[j] = strdup(titles[j]);
    }
    for (size_t i = 0; i < nrows; i++) {
        json_t *r = json_array_get(rows, i);
        for (size_t j = 0; j < ncols; j++) {
            cells[(i + 1) * ncols + j] =
                cell(json_is_object(r) ? json_object_get(r, keys[j]) : NULL);
        }
    }
    for (size_t i = 0; i < (nrows + 1) * ncols; i++) {
        size_t l = cells[i] ? strlen(cells[i]) : 0;
        if (l > width[i % ncols]) {
            width[i % ncols] = l;
        }
    }
    for (size_t i = 0; i <= nrows; i++) {
        for (size_t j = 0; j < ncols; j++) {
            const char *t = cells[i * ncols + j] ? cells[i * ncols + j] : "";
            if (j + 1 < ncols) {
                printf("%-*s  ", (int)width[j], t);
            } else {
                printf("%s\n", t);
            }
        }
    }
    for (size_t i = 0; i < (nrows + 1) * ncols; i++) {
        free(cells[i]);
    }
    free(cells);
    free(width);
    return TW_CLI_OK;
}
/* JSON text given for `what` (ARGS-JSON, DATA-JSON) as msgpack. Returns
 * -1 and sets *out (free()) and *len, or an exit code. */
int
tw_cli_json_arg(const char *what, const char *text, void **out, size_t *len)
{
    char err[256];
    int rc = tw_json_to_msgpack(text, out, len, err, sizeof err);
    if (rc == TW_E2BIG) {
        return tw_cli_usage("%s is %s", what, err);
    }
    if (rc != 0) {
        return tw_cli_fail(TW_CLI_USAGE, "%s is not valid JSON: %s", what, err);
    }
    return -1;
}

/* 1 if `v` is one of the NULL-terminated `set`. */
int
tw_cli_one_of(const char *v, const char *const *set)
{
    for (; *set; set++) {
        if (strcmp(v, *set) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Human text for a JSON value in a table cell or summary: strings bare,
 * arrays of scalars joined by commas, anything else as compact JSON.
 * malloc'ed. */
char *
tw_cli_text(json_t *v)
{
    if (!v) {
        return strdup("-");
    }
    if (json_is_string(v)) {
        return tw_cli_clean_len(json_string_value(v), json_string_length(v));
    }
    if (json_is_array(v)) {
        size_t cap = 64, len = 0;
        char *out = malloc(cap);
        if (!out) {
            return NULL;
        }
        out[0] = '\0';
        for (size_t i = 0; i < json_array_size(v); i++) {
            char *t = tw_cli_text(json_array_get(v, i));
            size_t tl = t ? strlen(t) : 0;
            if (len + tl + 2 > cap) {
                cap = (len + tl + 2) * 2;
                char *bigger = realloc(out, cap);
                if (!bigger) {
                    free(t);
                    free(out);
                    return NULL;
                }
                out = bigger;
            }
            if (i > 0) {
                out[len++] = ',';
            }
            memcpy(out + len, t ? t : "", tl);
            len += tl;
            out[len] = '\0';
            free(t);
        }
        return out;
    }
    char *s = tw_json_dumps(v);
    if (!s) {
        return NULL;
    }
    char *c = tw_cli_clean(s);
    free(s);
    return c;
}

/* Call fn(arg, key, value) for each member of the object `v`: first those
 * named in the NULL-terminated `keys`, in that order, then the others in
 * the object's order. */
void
tw_cli_each_member(json_t *v, const char *const *keys,
              void (*fn)(void *arg, const char *key, json_t *val), void *arg)
{
    for (size_t i = 0; keys[i]; i++) {
        json_t *val = json_object_get(v, keys[i]);
        if (val) {
            fn(arg, keys[i], val);
        }
    }
    for (void *it = json_object_iter(v); it;
         it = json_object_iter_next(v, it)) {
        const char *k = json_object_iter_key(it);
        if (!tw_cli_one_of(k, keys)) {
            fn(arg, k, json_object_iter_value(it));
        }
    }
}

int
tw_cli_state_failed(int st)
{
    return st == TW_ST_ERROR || st == TW_ST_TIMEOUT ||
           st == TW_ST_CANCELLED || st == TW_ST_LOST || st == TW_ST_UNKNOWN;
}

/* {"id", "state", "result"?, "error"?, "worker"?, "attempt"?}; takes
 * `result` (may be NULL). */
json_t *
tw_cli_outcome_json(uint64_t id, int st, json_t *result, const char *error,
               uint64_t worker, uint32_t attempt)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)id));
    json_object_set_new(o, "state", json_string(tw_proto_state_name(st)));
    if (st == TW_ST_OK) {
        json_object_set_new(o, "result", result ? result : json_null());
    } else {
        json_decref(result);
    }
    if (error) {
        json_t *e = json_string(error);
        json_object_set_new(o, "error", e ? e : json_string("?"));
    }
    if (worker) {
        json_object_set_new(o, "worker", json_integer((json_int_t)worker));
    }
    if (attempt) {
        json_object_set_new(o, "attempt", json_integer(attempt));
    }
    return o;
}

/* Print reply data `v` and drop it: as JSON with --json or when it is not
 * of the JSON type `want` (-1: any), else with `human`. A NULL `v` is a
 * failed request, whose exit code `code` is returned. */
int
tw_cli_reply(const tw_cli_env_t *o, json_t *v, int code, int want, tw_cli_human_fn human,
        const void *arg)
{
    if (!v) {
        return code;
    }
    if (o->json || (want >= 0 && (int)json_typeof(v) != want)) {
        tw_cli_print_json(v);
        return TW_CLI_OK;
    }
    code = human(v, arg);
    json_decref(v);
    return code;
}

/* Run QUERY `what` and return the reply data as JSON, or NULL with *code
 * set. */
json_t *
tw_cli_query(const tw_cli_env_t *o, const char *what, int *code)
{
    return tw_cli_request(o, what, TW_CLI_REQ_QUERY, what, code);
}

int
tw_cli_no_args(const tw_cli_env_t *o)
{
    if (o->argc > 1) {
        const char *a = o->argv[1];
        if (a[0] == '-' && a[1] == '-' && a[2] != '\0') {
            return tw_cli_usage("%s: unknown option '%s'", o->argv[0], a);
        }
        return tw_cli_usage("%s takes no arguments; unexpected '%s'",
                            o->argv[0], a);
    }
    return -1;
}

/* Text for a table cell: "-" for a missing or null value. malloc'ed. */
char *
tw_cli_cell(json_t *v)
{
    return !v || json_is_null(v) ? strdup("-") : tw_cli_text(v);
}

/* An tw_cli_human_fn: the array `rows` as the table of the tw_cli_listing_t `arg`. */
int
tw_cli_print_listing(json_t *rows, const void *arg)
{
    const tw_cli_listing_t *l = arg;
    if (json_array_size(rows) == 0) {
        puts(l->none);
        return TW_CLI_OK;
    }
    return tw_cli_print_table(rows, l->keys, l->titles, l->ncols, tw_cli_cell);
}
