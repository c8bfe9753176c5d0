/*  client/cli/main.c - the taskwheel command.
 *
 *  A thin front end over libtaskwheel (linked statically): it parses the
 *  command line, speaks JSON at its edge (client/cli/json.h converts to and
 *  from the msgpack payloads) and turns outcomes into the exit codes of
 *  docs' "Interfaces users touch":
 *
 *      0 success   1 the operation failed   2 usage error
 *      3 broker unreachable (no answer within --timeout-ms)
 *
 *  Output discipline: the data asked for goes to stdout; every diagnostic
 *  is one line on stderr starting with "taskwheel: ". With --json, stdout
 *  carries exactly one JSON document (JSON lines for `events`) and nothing
 *  else. Strings that come from the broker are printed with control
 *  characters replaced in human output, so a peer cannot drive the
 *  terminal.
 *
 *  Global flags may appear before or after the command; everything after a
 *  bare "--" is positional. `events` talks to the status PUB socket with a
 *  SUB socket of its own and needs no broker round trip; `station tail`
 *  does the same on the topic "s2n.<ID>" after checking that the station
 *  exists. The other `station` commands are one STATION request each
 *  (tw_client_station) whose REPLY data is printed as JSON with --json,
 *  or as a sentence, a table (list) or "key: value" lines (show).
 *  map, group, pool, the --strict / --group / --all forms of cancel and
 *  submit's pool flags live in cmd_map.c and cmd_pool.c (see cli.h).
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"
#include "client/cli/json.h"
#include "client/cli/secure.h"
#include "client/internal.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/proto.h"
#include "taskwheel/client.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_DEFAULT_BROKER "tcp://127.0.0.1:7710"
#define S_DEFAULT_STATUS "tcp://127.0.0.1:7712"
#define S_DEFAULT_TIMEOUT_MS 5000

/* The global flags, printed after the commands in the manual. */
static const char s_flags[] =
    "Global flags:\n"
    "  --broker EP        broker frontend; default $TASKWHEEL_BROKER, else\n"
    "                     " S_DEFAULT_BROKER "\n"
    "  --status EP        status endpoint (events, station tail); default\n"
    "                     $TASKWHEEL_STATUS, else the one the broker names\n"
    "  --json             print one JSON document on stdout (JSON lines\n"
    "                     for events and station tail) and nothing else\n"
    "  --timeout-ms N     how long to wait for the broker; default 5000\n"
    "  --pool P           the pool of submit, map, group, pool and\n"
    "                     cancel; default \"default\"\n"
    TW_CLI_SECURE_USAGE_FLAGS
    "  --help             print this help (after a command: its help)\n"
    "  --version          print the version\n"
    "\n"
    "Exit status: 0 ok, 1 operation failed, 2 usage error, 3 broker\n"
    "unreachable.\n";

/* ------------------------------------------------------------------ */
/* Parsing                                                            */

/* JSON text given for `what` (ARGS-JSON, DATA-JSON) as msgpack. Returns
 * -1 and sets *out (free()) and *len, or an exit code. */
static int
s_json_arg(const char *what, const char *text, void **out, size_t *len)
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
static int
s_one_of(const char *v, const char *const *set)
{
    for (; *set; set++) {
        if (strcmp(v, *set) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Parse the global flags anywhere in argv, collecting the other words
 * into o->argv; *help is set when --help (or -h) is among them. Returns
 * -1 to continue, or an exit code. */
static int
s_parse_global(int argc, char **argv, tw_cli_env_t *o, int *help)
{
    const char *env;
    o->broker = (env = getenv("TASKWHEEL_BROKER")) && *env ? env
                                                           : S_DEFAULT_BROKER;
    /* NULL: ask the broker (PROTOCOL.md 5.8). */
    o->status = (env = getenv("TASKWHEEL_STATUS")) && *env ? env : NULL;
    o->timeout_ms = S_DEFAULT_TIMEOUT_MS;
    o->argv = calloc((size_t)argc + 1, sizeof *o->argv);
    if (!o->argv) {
        return tw_cli_fail(TW_CLI_FAIL, "out of memory");
    }
    int dashdash = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        int r;
        if (dashdash || a[0] != '-') {
            o->argv[o->argc++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            dashdash = 1;
            o->argv[o->argc++] = argv[i];
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = 1;
            continue;
        }
        if (strcmp(a, "--version") == 0) {
            printf("taskwheel %s\n", tw_version());
            return TW_CLI_OK;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if ((r = tw_cli_flag(argc, argv, &i, "--broker", &val)) != 0 ||
            (r = tw_cli_flag(argc, argv, &i, "--status", &val)) != 0) {
            if (r < 0 || !*val) {
                return tw_cli_usage("%s needs an endpoint", a);
            }
            if (strncmp(a, "--broker", 8) == 0) {
                o->broker = val;
            } else {
                o->status = val;
            }
            continue;
        }
        if ((r = tw_cli_flag(argc, argv, &i, "--pool", &val)) != 0) {
            if (r < 0 || !*val || strlen(val) > TW_PROTO_MAX_NAME) {
                return tw_cli_usage("--pool needs a pool name of 1 to %d "
                                    "bytes", TW_PROTO_MAX_NAME);
            }
            o->pool = val;
            continue;
        }
        if ((r = tw_cli_flag(argc, argv, &i, "--timeout-ms", &val)) != 0) {
            int64_t v;
            if (r < 0 || tw_cli_int(val, 1, INT_MAX, &v) != 0) {
                return tw_cli_usage("--timeout-ms needs a positive number "
                                    "of milliseconds");
            }
            o->timeout_ms = (int)v;
            continue;
        }
        if ((r = tw_cli_secure_flag(argc, argv, &i)) != 0) {
            if (r != 1) {
                return r;
            }
            continue;
        }
        /* A command flag or a positional like "-5": the command decides. */
        o->argv[o->argc++] = argv[i];
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* Output helpers                                                     */

/* Human text for a JSON value in a table cell or summary: strings bare,
 * arrays of scalars joined by commas, anything else as compact JSON.
 * malloc'ed. */
static char *
s_text(json_t *v)
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
            char *t = s_text(json_array_get(v, i));
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
static void
s_each_member(json_t *v, const char *const *keys,
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
        if (!s_one_of(k, keys)) {
            fn(arg, k, json_object_iter_value(it));
        }
    }
}

static int
s_state_failed(int st)
{
    return st == TW_ST_ERROR || st == TW_ST_TIMEOUT ||
           st == TW_ST_CANCELLED || st == TW_ST_LOST || st == TW_ST_UNKNOWN;
}

/* {"id", "state", "result"?, "error"?, "worker"?, "attempt"?}; takes
 * `result` (may be NULL). */
static json_t *
s_outcome_json(uint64_t id, int st, json_t *result, const char *error,
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

/* How a command shows reply data `v` (borrowed) to people; `arg` is the
 * command's. Returns an exit code. */
typedef int (*s_human_fn)(json_t *v, const void *arg);

/* Print reply data `v` and drop it: as JSON with --json or when it is not
 * of the JSON type `want` (-1: any), else with `human`. A NULL `v` is a
 * failed request, whose exit code `code` is returned. */
static int
s_reply(const tw_cli_env_t *o, json_t *v, int code, int want, s_human_fn human,
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

/* ------------------------------------------------------------------ */
/* submit                                                             */

typedef struct {
    uint64_t seq;
    uint64_t id;
    int acked;
    int ack_err;
    char *ack_msg;
    int done;
    int state;
    json_t *result;
    char *error;
    uint64_t worker;
    uint32_t attempt;
} s_submit_t;

static void
s_submit_on_ack(void *arg, const tw_ack_t *ack)
{
    s_submit_t *s = arg;
    if (ack->seq != s->seq || s->acked) {
        return;
    }
    s->acked = 1;
    s->id = ack->id;
    s->ack_err = ack->err;
    if (ack->msg && *ack->msg) {
        s->ack_msg = tw_cli_clean(ack->msg);
    }
}

static void
s_submit_on_result(void *arg, const tw_result_t *r)
{
    s_submit_t *s = arg;
    if (s->done || !(r->seq == s->seq || (s->id && r->id == s->id))) {
        return;
    }
    s->done = 1;
    s->acked = 1;
    s->id = r->id;
    s->state = r->state;
    s->result = tw_cli_payload_json(r->result, r->result_len);
    s->error = r->error ? strdup(r->error) : NULL;
    s->worker = r->worker;
    s->attempt = r->attempt;
}

static int
s_cmd_submit(const tw_cli_env_t *o)
{
    tw_cli_words_t w = tw_cli_words(o, 1);
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    int wait = 0;
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    static tw_cli_submit_ext_t ext; /* --group, --delay, --at, --key,
                                       --after... (cmd_pool.c) */
    memset(&ext, 0, sizeof ext);
    tw_cli_chan_t chan; /* --respond (cmd_chan.c) */
    memset(&chan, 0, sizeof chan);

    const char *a;
    while ((a = tw_cli_next_word(&w)) != NULL) {
        const char *val;
        int r;
        int64_t v;
        uint64_t ms;
        int code;
        if (!tw_cli_is_flag(&w)) {
            if (npos == 2) {
                return tw_cli_usage("submit takes HANDLER and at most one "
                                    "ARGS-JSON; unexpected '%s'", a);
            }
            pos[npos++] = a;
        } else if (strcmp(a, "--wait") == 0) {
            wait = 1;
        } else if ((r = tw_cli_word_flag(&w, "--timeout", &val)) != 0) {
            if ((code = tw_cli_flag_ms("--timeout", r, val, &ms)) >= 0) {
                return code;
            }
            spec.timeout_ms = (uint32_t)ms;
        } else if ((r = tw_cli_word_flag(&w, "--retries", &val)) != 0) {
            if (r < 0 || tw_cli_int(val, 0, UINT32_MAX, &v)) {
                return tw_cli_usage("--retries needs a count >= 0");
            }
            spec.retries = (uint32_t)v;
        } else if ((r = tw_cli_word_flag(&w, "--priority", &val)) != 0) {
            if (r < 0 || tw_cli_int(val, INT32_MIN, INT32_MAX, &v)) {
                return tw_cli_usage("--priority needs an integer");
            }
            spec.priority = (int32_t)v;
        } else if ((r = tw_cli_submit_flag(&ext, w.argc, w.argv, &w.i)) !=
                   0) {
            if (r != 1) {
                return r;
            }
        } else if ((r = tw_cli_chan_flag(&chan, &w)) != 0) {
            if (r != 1) {
                return r;
            }
        } else {
            tw_cli_chan_free(&chan);
            return tw_cli_usage("submit: unknown option '%s'", a);
        }
    }
    if (!pos[0]) {
        return tw_cli_usage("submit needs a HANDLER");
    }
    size_t hlen = strlen(pos[0]);
    if (hlen > TW_PROTO_MAX_NAME) {
        return tw_cli_usage("handler name is longer than %d bytes",
                            TW_PROTO_MAX_NAME);
    }
    spec.handler = pos[0];
    tw_cli_submit_apply(&ext, o->pool, &spec);

    void *args = NULL;
    size_t alen = 0;
    int code;
    if (pos[1]) {
        if ((code = s_json_arg("ARGS-JSON", pos[1], &args, &alen)) >= 0) {
            return code;
        }
        spec.args = args;
        spec.args_len = alen;
    }

    tw_client_t *c = tw_cli_connect(o, &code);
    if (!c) {
        free(args);
        return code;
    }
    s_submit_t s;
    memset(&s, 0, sizeof s);
    tw_client_on_ack(c, s_submit_on_ack, &s);
    tw_client_on_result(c, s_submit_on_result, &s);
    if (wait) {
        tw_cli_chan_attach(&chan, c);
    }

    int rc = tw_client_submit(c, &spec, &s.seq);
    free(args);
    if (rc == TW_E2BIG) {
        code = tw_cli_usage("ARGS-JSON is too big (%zu bytes of msgpack, "
                            "limit %u)", alen, TW__CLIENT_MAX_ARGS);
        goto out;
    }
    if (rc != 0) {
        code = tw_cli_usage("cannot submit: %s", tw_strerror(rc));
        goto out;
    }
    tw_client_flush(c);

    /* The acknowledgement must come within --timeout-ms. */
    uint64_t deadline = tw_now_ms() + (uint64_t)o->timeout_ms;
    while (!s.acked) {
        uint64_t now = tw_now_ms();
        if (now >= deadline) {
            code = tw_cli_unreachable(o);
            goto out;
        }
        rc = tw_client_poll(c, (int)(deadline - now));
        if (rc >= 0 && tw__client_link_failed(c)) {
            rc = tw__client_link_failed(c); /* refused: no use waiting */
        }
        if (rc < 0) {
            code = tw_cli_lib_error(o, c, "submit", rc);
            goto out;
        }
    }
    if (s.ack_err) {
        code = tw_cli_fail(TW_CLI_FAIL, "cannot submit '%s': %s", spec.handler,
                           s.ack_msg ? s.ack_msg : tw_strerror(s.ack_err));
        goto out;
    }
    if (!wait) {
        if (o->json) {
            tw_cli_print_json(json_pack("{s:I}", "id", (json_int_t)s.id));
        } else {
            printf("%" PRIu64 "\n", s.id);
        }
        code = TW_CLI_OK;
        goto out;
    }

    chan.id = s.id;
    /* The outcome is pushed to the task's submitter. A dedup hit (--key)
     * names a task another submission owns, so its outcome is never pushed
     * here: after every quiet second, ask for the task's state, which also
     * proves the broker is still there while a long task runs. */
    int quiet_ms = o->timeout_ms < 1000 ? o->timeout_ms : 1000;
    while (!s.done) {
        rc = tw_client_poll(c, quiet_ms);
        if (rc < 0) {
            code = tw_cli_lib_error(o, c, "submit", rc);
            goto out;
        }
        if (rc == 0 && !s.done) {
            tw_result_t *r = NULL;
            rc = tw_client_result(c, s.id, o->timeout_ms, &r);
            if (rc != 0) {
                code = tw_cli_lib_error(o, c, "submit", rc);
                goto out;
            }
            if (!s.done && (r->state < TW_ST_PENDING ||
                            r->state == TW_ST_UNKNOWN)) {
                r->seq = s.seq;
                s_submit_on_result(&s, r);
            }
            tw_result_free(&r);
        }
    }
    int failed = s.state != TW_ST_OK;
    if (o->json) {
        tw_cli_print_json(s_outcome_json(s.id, s.state, s.result, s.error,
                                    s.worker, s.attempt));
        s.result = NULL;
    } else if (!failed) {
        tw_cli_print_json(s.result);
        s.result = NULL;
    }
    if (failed) {
        char *e = s.error ? tw_cli_clean(s.error) : NULL;
        tw_cli_fail(TW_CLI_FAIL, "task %" PRIu64 " failed (%s)%s%s", s.id,
                    tw_proto_state_name(s.state), e ? ": " : "", e ? e : "");
        free(e);
    }
    code = failed ? TW_CLI_FAIL : TW_CLI_OK;
out:
    json_decref(s.result);
    free(s.error);
    free(s.ack_msg);
    tw_cli_chan_free(&chan);
    tw_client_destroy(&c);
    return code;
}

/* ------------------------------------------------------------------ */
/* result, cancel                                                     */

static int
s_cmd_result(const tw_cli_env_t *o)
{
    uint64_t *ids;
    size_t n;
    int code = tw_cli_ids(o, "result", NULL, &ids, &n);
    if (code >= 0) {
        return code;
    }
    tw_client_t *c = tw_cli_connect(o, &code);
    if (!c) {
        free(ids);
        return code;
    }
    json_t *all = json_array();
    int any_failed = 0;
    code = TW_CLI_OK;
    for (size_t i = 0; i < n; i++) {
        tw_result_t *r = NULL;
        int rc = tw_client_result(c, ids[i], o->timeout_ms, &r);
        if (rc != 0) {
            code = tw_cli_lib_error(o, c, "result", rc);
            break;
        }
        any_failed |= s_state_failed(r->state);
        json_t *res = r->state == TW_ST_OK
                          ? tw_cli_payload_json(r->result, r->result_len)
                          : NULL;
        if (o->json) {
            json_array_append_new(all,
                                  s_outcome_json(ids[i], r->state, res,
                                                 r->error, r->worker,
                                                 r->attempt));
        } else {
            /* "ID STATE [RESULT-JSON | ERROR]" */
            char *text = res ? tw_json_dumps(res) : NULL;
            char *clean = text ? tw_cli_clean(text)
                          : r->error ? tw_cli_clean(r->error)
                                     : NULL;
            printf("%" PRIu64 " %s%s%s\n", ids[i],
                   tw_proto_state_name(r->state), clean ? " " : "",
                   clean ? clean : "");
            free(text);
            free(clean);
            json_decref(res);
        }
        tw_result_free(&r);
    }
    if (code == TW_CLI_OK) {
        if (o->json) {
            tw_cli_print_json(all);
            all = NULL;
        }
        code = any_failed ? TW_CLI_FAIL : TW_CLI_OK;
    }
    json_decref(all);
    free(ids);
    tw_client_destroy(&c);
    return code;
}

/* 1 if the JSON array `list` holds the integer `id`. */
static int
s_list_has(json_t *list, uint64_t id)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *v = json_array_get(list, i);
        if (json_is_integer(v) && (uint64_t)json_integer_value(v) == id) {
            return 1;
        }
    }
    return 0;
}

static int
s_cmd_cancel(const tw_cli_env_t *o)
{
    uint64_t *ids;
    size_t n;
    int code = tw_cli_cancel(o); /* --strict, --group, --all */
    if (code >= 0) {
        return code;
    }
    code = tw_cli_ids(o, "cancel", NULL, &ids, &n);
    if (code >= 0) {
        return code;
    }
    tw__ids_t arg = {NULL, ids, n};
    json_t *v = tw_cli_request(o, "cancel", TW_CLI_REQ_CANCEL, &arg, &code);
    if (!v) {
        free(ids);
        return code;
    }
    json_t *unknown = json_object_get(v, "unknown");
    int any_unknown = 0;
    for (size_t i = 0; i < n; i++) {
        any_unknown |= s_list_has(unknown, ids[i]);
    }
    if (o->json) {
        tw_cli_print_json(v);
    } else {
        for (size_t i = 0; i < n; i++) {
            const char *what =
                s_list_has(json_object_get(v, "cancelled"), ids[i])
                    ? "cancelled"
                : s_list_has(json_object_get(v, "ended"), ids[i])
                    ? "already ended"
                : s_list_has(unknown, ids[i]) ? "unknown"
                                              : "not reported";
            printf("%" PRIu64 " %s\n", ids[i], what);
        }
        json_decref(v);
    }
    free(ids);
    return any_unknown ? TW_CLI_FAIL : TW_CLI_OK;
}

/* ------------------------------------------------------------------ */
/* workers, status                                                    */

/* Run QUERY `what` and return the reply data as JSON, or NULL with *code
 * set. */
static json_t *
s_query(const tw_cli_env_t *o, const char *what, int *code)
{
    return tw_cli_request(o, what, TW_CLI_REQ_QUERY, what, code);
}

static int
s_no_args(const tw_cli_env_t *o)
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
static char *
s_cell(json_t *v)
{
    return !v || json_is_null(v) ? strdup("-") : s_text(v);
}

/* A listing: the columns of tw_cli_print_table, and what to say when there
 * are no rows. */
typedef struct {
    const char *const *keys;
    const char *const *titles;
    size_t ncols;
    const char *none;
} s_listing_t;

/* An s_human_fn: the array `rows` as the table of the s_listing_t `arg`. */
static int
s_print_listing(json_t *rows, const void *arg)
{
    const s_listing_t *l = arg;
    if (json_array_size(rows) == 0) {
        puts(l->none);
        return TW_CLI_OK;
    }
    return tw_cli_print_table(rows, l->keys, l->titles, l->ncols, s_cell);
}

static int
s_cmd_workers(const tw_cli_env_t *o)
{
    static const char *const keys[] = {"id",      "name",    "host",
                                       "state",   "slots",   "running",
                                       "stations", "credit", "handlers"};
    static const char *const titles[] = {"ID",      "NAME",    "HOST",
                                         "STATE",   "SLOTS",   "RUNNING",
                                         "STATIONS", "CREDIT", "HANDLERS"};
    static const s_listing_t listing = {keys, titles,
                                        sizeof keys / sizeof keys[0],
                                        "no workers connected"};
    if (o->argc > 1 && (strcmp(o->argv[1], "drain") == 0 ||
                        strcmp(o->argv[1], "resize") == 0)) {
        return tw_cli_workers_op(o);
    }
    int code = s_no_args(o);
    if (code >= 0) {
        return code;
    }
    json_t *v = s_query(o, "workers", &code);
    return s_reply(o, v, code, JSON_ARRAY, s_print_listing, &listing);
}

/* "1d02h03m04s"-style text for a duration in milliseconds. */
static void
s_duration(char *buf, size_t len, double ms)
{
    uint64_t s = ms > 0 ? (uint64_t)(ms / 1000.0) : 0;
    uint64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60;
    if (d) {
        snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h%02" PRIu64 "m", d, h,
                 m);
    } else if (h) {
        snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", h, m,
                 s % 60);
    } else if (m) {
        snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", m, s % 60);
    } else {
        snprintf(buf, len, "%.1fs", ms / 1000.0);
    }
}

/* Print "key value" pairs, wrapping lines before 78 columns. */
static void
s_status_pair(size_t *col, const char *key, const char *val)
{
    size_t need = strlen(key) + 1 + strlen(val);
    if (*col > 0 && *col + 2 + need > 78) {
        fputc('\n', stdout);
        *col = 0;
    }
    if (*col > 0) {
        fputs("  ", stdout);
        *col += 2;
    }
    printf("%s %s", key, val);
    *col += need;
}

static void
s_status_one(void *arg, const char *key, json_t *val)
{
    size_t *col = arg;
    char buf[64];
    if (strcmp(key, "uptime_ms") == 0 && json_is_number(val)) {
        s_duration(buf, sizeof buf, json_number_value(val));
        s_status_pair(col, "uptime", buf);
        return;
    }
    if (strcmp(key, "rate") == 0 && json_is_number(val)) {
        snprintf(buf, sizeof buf, "%.1f/s", json_number_value(val));
        s_status_pair(col, "rate", buf);
        return;
    }
    char *k = tw_cli_clean(key);
    char *t = s_text(val);
    s_status_pair(col, k ? k : "?", t ? t : "?");
    free(k);
    free(t);
}

/* One item of the status summary: the counter `key`, shown as "<value>
 * <text>", or as "<text> <value>" when `before` is set. */
typedef struct {
    const char *key;
    const char *text;
    int before;
} s_sum_item_t;

/* One line of the status summary: a label and up to 8 items; items whose
 * counter is missing (store_* without --data) are left out. */
typedef struct {
    const char *label;
    s_sum_item_t items[8];
} s_sum_line_t;

/* The value of status counter `key` as text, or NULL if it is absent. */
static char *
s_sum_value(json_t *v, const char *key)
{
    json_t *x = json_object_get(v, key);
    char buf[64];
    if (!x) {
        return NULL;
    }
    if (strcmp(key, "uptime_ms") == 0 && json_is_number(x)) {
        s_duration(buf, sizeof buf, json_number_value(x));
        return strdup(buf);
    }
    if (json_is_real(x)) {
        snprintf(buf, sizeof buf, "%.1f", json_real_value(x));
        return strdup(buf);
    }
    return s_text(x);
}

/* A broker of a pair (docs/HA.md): its role, state and epoch, its peer,
 * its position in the stream and how far the passive lags. Nothing for a
 * single broker. */
static void
s_print_pair(json_t *v)
{
    json_t *role = json_object_get(v, "ha_role");
    if (!json_is_string(role)) {
        return;
    }
    json_t *pos = json_object_get(v, "ha_pos");
    printf("pair     %s, %s, epoch %lld; peer %s%s; replicate %s%s\n"
           "         position %lld:%lld",
           json_string_value(role),
           json_string_value(json_object_get(v, "ha_state")),
           json_integer_value(json_object_get(v, "ha_epoch")),
           json_string_value(json_object_get(v, "ha_peer")),
           json_integer_value(json_object_get(v, "ha_peer_alive"))
               ? ""
               : " (silent)",
           json_string_value(json_object_get(v, "ha_replicate")),
           json_integer_value(json_object_get(v, "ha_sync")) ? " (waiting)"
                                                             : "",
           json_integer_value(json_array_get(pos, 0)),
           json_integer_value(json_array_get(pos, 1)));
    if (strcmp(json_string_value(json_object_get(v, "ha_state")) ?: "",
               "active") == 0) {
        printf("; lag %lld batches, %lld bytes, %lld ms",
               json_integer_value(json_object_get(v, "ha_lag_batches")),
               json_integer_value(json_object_get(v, "ha_lag_bytes")),
               json_integer_value(json_object_get(v, "ha_lag_ms")));
    }
    fputc('\n', stdout);
}

/* An s_human_fn: the status summary, one line per topic, wrapped before
 * 78 columns under its label. */
static int
s_print_summary(json_t *v, const void *arg)
{
    static const s_sum_line_t lines[] = {
        {"workers",
         {{"workers", "workers", 0},
          {"slots", "slots", 0},
          {"running", "tasks running", 0},
          {"stations", "stations", 0},
          {"stations_running", "stations running", 0},
          {"stations_unplaced", "stations waiting", 0}}},
        {"queues",
         {{"queued", "tasks queued", 0},
          {"kept", "results kept", 0},
          {"clients", "clients", 0}}},
        {"rates",
         {{"rate", "tasks/s ended", 0},
          {"submitted", "submitted", 0},
          {"completed", "completed", 0},
          {"failed", "failed", 0},
          {"cancelled", "cancelled", 0},
          {"retried", "retried", 0}}},
        {"errors",
         {{"rejected", "submissions refused", 0},
          {"overflow", "over max-queue", 0},
          {"requeued", "requeued (worker lost)", 0},
          {"dropped", "messages dropped", 0},
          {"malformed", "malformed", 0},
          {"quarantined", "quarantined", 0},
          {"store_errors", "store errors", 0}}},
        {"broker",
         {{"uptime_ms", "up", 1},
          {"store_fsync", "fsync", 1},
          {"store_used_bytes", "store bytes used", 0}}},
    };
    (void)arg;
    s_print_pair(v);
    for (size_t l = 0; l < sizeof lines / sizeof lines[0]; l++) {
        size_t col = (size_t)printf("%-9s", lines[l].label);
        int first = 1;
        for (size_t i = 0; i < 8 && lines[l].items[i].key; i++) {
            const s_sum_item_t *it = &lines[l].items[i];
            char *val = s_sum_value(v, it->key);
            if (!val) {
                continue;
            }
            char item[160];
            int n = it->before ? snprintf(item, sizeof item, "%s %s",
                                          it->text, val)
                               : snprintf(item, sizeof item, "%s %s", val,
                                          it->text);
            free(val);
            size_t len = n > 0 ? (size_t)n : 0;
            if (!first && col + 2 + len > 78) {
                fputs(",\n         ", stdout);
                col = 9;
            } else if (!first) {
                fputs(", ", stdout);
                col += 2;
            }
            fputs(item, stdout);
            col += len;
            first = 0;
        }
        fputc('\n', stdout);
    }
    puts("         (every counter: taskwheel status --all)");
    return TW_CLI_OK;
}

/* An s_human_fn: the status object as wrapped "key value" pairs. */
static int
s_print_status(json_t *v, const void *arg)
{
    /* Known keys first, in this order; then whatever else came. */
    static const char *const order[] = {
        "workers",   "slots",  "running",    "queued",  "submitted",
        "completed", "failed", "duplicates", "dropped", "uptime_ms",
        "rate",      NULL};
    size_t col = 0;
    s_each_member(v, order, s_status_one, &col);
    if (col > 0) {
        fputc('\n', stdout);
    }
    return TW_CLI_OK;
}

/* status of a broker pair (--broker EP1,EP2): each broker asked on its
 * own, each shown under its endpoint (the passive answers status too);
 * with --json, an object of endpoint: status (null: unreachable). Exit 0
 * if one answered. */
static int
s_status_of_pair(const tw_cli_env_t *o, int all)
{
    char *list = strdup(o->broker), *save = NULL;
    json_t *out = json_object();
    int answered = 0, code = TW_CLI_UNREACH;
    for (char *ep = strtok_r(list, ",", &save); ep;
         ep = strtok_r(NULL, ",", &save)) {
        tw_cli_env_t one = *o;
        one.broker = ep;
        int rc = 0;
        json_t *v = s_query(&one, "status", &rc);
        answered += v != NULL;
        if (!v) {
            code = rc;
        }
        if (o->json) {
            json_object_set_new(out, ep, v ? v : json_null());
            continue;
        }
        printf("%sbroker   %s\n", answered + (v == NULL) > 1 ? "\n" : "",
               ep);
        if (v) {
            (all ? s_print_status : s_print_summary)(v, NULL);
            json_decref(v);
        }
    }
    if (o->json) {
        tw_cli_print_json(out);
    } else {
        json_decref(out);
    }
    free(list);
    return answered ? TW_CLI_OK : code;
}

/* status [--all]: the summary an operator reads first, or with --all
 * every counter (internal ones included); --json prints them all. */
static int
s_cmd_status(const tw_cli_env_t *o)
{
    int all = o->argc == 2 && strcmp(o->argv[1], "--all") == 0;
    int code = all ? -1 : s_no_args(o);
    if (code >= 0) {
        return code;
    }
    if (strchr(o->broker, ',')) {
        return s_status_of_pair(o, all);
    }
    json_t *v = s_query(o, "status", &code);
    return s_reply(o, v, code, JSON_OBJECT,
                   all ? s_print_status : s_print_summary, NULL);
}

/* ------------------------------------------------------------------ */
/* events                                                             */

static volatile sig_atomic_t s_stop;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* What to do with one status message [topic][body]: return 1 if it was
 * printed (it counts towards --count), 0 if skipped. */
typedef int (*s_sub_fn)(void *arg, zmq_msg_t *topic, zmq_msg_t *body);

/* The status endpoint: --status or $TASKWHEEL_STATUS, else the one the
 * broker names in its answer to a ping (an older broker names none: the
 * default). Returns -1 with the endpoint in buf, or an exit code. */
static int
s_status_endpoint(const tw_cli_env_t *o, char *buf, size_t len)
{
    if (o->status) {
        snprintf(buf, len, "%s", o->status);
        return -1;
    }
    int code = -1;
    tw_client_t *c = tw_cli_connect(o, &code);
    if (!c) {
        return code;
    }
    int rc = tw_client_ping(c, o->timeout_ms);
    if (rc != 0) {
        code = tw_cli_lib_error(o, c, "status endpoint", rc);
    } else if (!tw__client_status_ep(c, buf, len)) {
        snprintf(buf, len, "%s", S_DEFAULT_STATUS);
    }
    tw_client_destroy(&c);
    return code;
}

/* A SUB socket connected to the status endpoint and subscribed to each
 * of `prefixes` (everything if there are none), then to a welcome topic
 * of its own (PROTOCOL.md 8.2), whose answer shows the endpoint is a
 * broker's status socket and the subscriptions are in effect. Returns -1
 * and sets *ctx, *sub and ep (the endpoint), or an exit code. */
static int
s_sub_open(const tw_cli_env_t *o, const char *const *prefixes, size_t n,
           void **ctx, void **sub, char *ep, size_t eplen)
{
    int code = s_status_endpoint(o, ep, eplen);
    if (code >= 0) {
        return code;
    }
    *ctx = zmq_ctx_new();
    *sub = *ctx ? zmq_socket(*ctx, ZMQ_SUB) : NULL;
    if (!*sub) {
        int code = tw_cli_fail(TW_CLI_FAIL, "cannot create a socket: %s",
                               zmq_strerror(errno));
        if (*ctx) {
            zmq_ctx_term(*ctx);
        }
        *ctx = NULL;
        return code;
    }
    int linger = 0, hwm = 100000;
    zmq_setsockopt(*sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(*sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    int sec = tw_cli_secure_socket(*sub);
    if (sec >= 0) {
        zmq_close(*sub);
        zmq_ctx_term(*ctx);
        *sub = *ctx = NULL;
        return sec;
    }
    if (zmq_connect(*sub, ep) != 0) {
        zmq_close(*sub);
        zmq_ctx_term(*ctx);
        *sub = *ctx = NULL;
        return tw_cli_usage("cannot use status endpoint '%s'", ep);
    }
    if (n == 0) {
        zmq_setsockopt(*sub, ZMQ_SUBSCRIBE, "", 0);
    }
    for (size_t i = 0; i < n; i++) {
        zmq_setsockopt(*sub, ZMQ_SUBSCRIBE, prefixes[i], strlen(prefixes[i]));
    }
    char welcome[TW_PROTO_WELCOME_LEN + 17];
    memcpy(welcome, TW_PROTO_WELCOME, TW_PROTO_WELCOME_LEN);
    tw_random_hex(welcome + TW_PROTO_WELCOME_LEN, 16);
    zmq_setsockopt(*sub, ZMQ_SUBSCRIBE, welcome, strlen(welcome));
    return -1;
}

/* 1 if `topic` is a welcome answer (never shown: it only proves the
 * subscription). */
static int
s_is_welcome(zmq_msg_t *topic)
{
    return zmq_msg_size(topic) > TW_PROTO_WELCOME_LEN &&
           memcmp(zmq_msg_data(topic), TW_PROTO_WELCOME,
                  TW_PROTO_WELCOME_LEN) == 0;
}

static void
s_sub_close(void *ctx, void *sub)
{
    zmq_close(sub);
    zmq_ctx_term(ctx);
}

/* Hand every two-frame message arriving on `sub` (from `ep`) to `fn`
 * until SIGINT or SIGTERM, `count` of them were printed (0: no limit) or
 * `for_secs` passed (negative: no limit). An endpoint that sends nothing
 * at all, not even the welcome answer, within `quiet_ms` is not a
 * broker's status socket (or no broker is there): exit 3, never a silent
 * success. Returns an exit code. */
static int
s_sub_loop(void *sub, const char *ep, int quiet_ms, uint64_t count,
           double for_secs, s_sub_fn fn, void *arg)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int code = TW_CLI_OK;
    uint64_t deadline =
        for_secs >= 0 ? tw_now_ms() + (uint64_t)llround(for_secs * 1000.0)
                      : 0;
    uint64_t seen = 0;
    int heard = 0;
    uint64_t quiet_end = tw_now_ms() + (uint64_t)quiet_ms;
    while (!s_stop && (count == 0 || seen < count)) {
        long wait = -1;
        uint64_t now = tw_now_ms();
        if (for_secs >= 0) {
            if (now >= deadline) {
                break;
            }
            wait = (long)(deadline - now);
        }
        if (!heard) {
            if (now >= quiet_end) {
                code = tw_cli_fail(TW_CLI_UNREACH,
                                   "nothing from the status endpoint %s "
                                   "within %d ms: no broker's status socket "
                                   "is there",
                                   ep, quiet_ms);
                break;
            }
            if (wait < 0 || (long)(quiet_end - now) < wait) {
                wait = (long)(quiet_end - now);
            }
        }
        zmq_pollitem_t pi = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&pi, 1, wait) < 0) {
            if (errno == EINTR) {
                continue;
            }
            code = tw_cli_fail(TW_CLI_FAIL, "poll: %s", zmq_strerror(errno));
            break;
        }
        while (!s_stop && (count == 0 || seen < count)) {
            zmq_msg_t f[2];
            zmq_msg_init(&f[0]);
            zmq_msg_init(&f[1]);
            if (zmq_msg_recv(&f[0], sub, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&f[0]);
                zmq_msg_close(&f[1]);
                break;
            }
            int nf = 1;
            int more = zmq_msg_more(&f[0]);
            while (more) {
                zmq_msg_t part;
                zmq_msg_init(&part);
                if (zmq_msg_recv(&part, sub, 0) < 0) {
                    zmq_msg_close(&part);
                    break;
                }
                more = zmq_msg_more(&part);
                if (nf == 1) {
                    zmq_msg_move(&f[1], &part);
                }
                nf++;
                zmq_msg_close(&part);
            }
            /* A status message is exactly [topic][body]. */
            heard = 1;
            if (s_is_welcome(&f[0])) {
                /* Said once, on stderr: from here on nothing published
                 * under the subscribed topics is missed. */
                tw_cli_fail(TW_CLI_OK, "subscribed at %s", ep);
            } else if (nf == 2) {
                seen += (uint64_t)fn(arg, &f[0], &f[1]);
            }
            zmq_msg_close(&f[0]);
            zmq_msg_close(&f[1]);
        }
    }
    return code;
}

/* Print one status message as {"topic", "body"}. */
static int
s_print_event(void *arg, zmq_msg_t *topic, zmq_msg_t *body)
{
    (void)arg;
    msgpack_object t;
    memset(&t, 0, sizeof t);
    t.type = MSGPACK_OBJECT_STR;
    t.via.str.ptr = zmq_msg_data(topic);
    t.via.str.size = (uint32_t)zmq_msg_size(topic);
    json_t *o = json_object();
    json_object_set_new(o, "topic", tw_json_from_object(&t));
    json_object_set_new(o, "body", tw_cli_payload_json(zmq_msg_data(body),
                                                       zmq_msg_size(body)));
    tw_cli_print_json(o);
    return 1;
}

/* If the word at w->i is --count N or --for S, consume it (and its value)
 * and return 1; a bad value sets *code to the usage exit code. Returns 0
 * for any other word. */
static int
s_parse_stream_flag(tw_cli_words_t *w, uint64_t *count, double *for_secs,
                    int *code)
{
    const char *val;
    int r;
    if ((r = tw_cli_word_flag(w, "--count", &val)) != 0) {
        if (r < 0 || tw_cli_u64(val, count) != 0 || *count == 0) {
            *code = tw_cli_usage("--count needs a number >= 1");
        }
        return 1;
    }
    if ((r = tw_cli_word_flag(w, "--for", &val)) != 0) {
        if (r < 0 || tw_cli_secs(val, 1e9, for_secs) != 0) {
            *code = tw_cli_usage("--for needs a number of seconds");
        }
        return 1;
    }
    return 0;
}

static int
s_cmd_events(const tw_cli_env_t *o)
{
    tw_cli_words_t w = tw_cli_words(o, 1);
    const char **prefixes = calloc((size_t)o->argc, sizeof *prefixes);
    size_t nprefixes = 0;
    uint64_t count = 0;
    double for_secs = -1;
    int code = -1;
    const char *a;
    if (!prefixes) {
        return tw_cli_fail(TW_CLI_FAIL, "out of memory");
    }
    while (code < 0 && (a = tw_cli_next_word(&w)) != NULL) {
        if (!tw_cli_is_flag(&w)) {
            prefixes[nprefixes++] = a;
        } else if (!s_parse_stream_flag(&w, &count, &for_secs, &code)) {
            code = tw_cli_usage("events: unknown option '%s'", a);
        }
    }
    if (code >= 0) {
        free(prefixes);
        return code;
    }
    void *ctx, *sub;
    char ep[300];
    code = s_sub_open(o, prefixes, nprefixes, &ctx, &sub, ep, sizeof ep);
    if (code < 0) {
        code = s_sub_loop(sub, ep, o->timeout_ms, count, for_secs,
                          s_print_event, NULL);
        s_sub_close(ctx, sub);
    }
    free(prefixes);
    return code;
}

/* ------------------------------------------------------------------ */
/* station                                                            */

/* The values `station add` accepts for its enumerated flags. */
static const char *const s_next_modes[] = {"same", "result", "handler",
                                           NULL};
static const char *const s_placements[] = {"any", "prefer", "pinned", NULL};
static const char *const s_restarts[] = {"never", "on-failure", "always",
                                         NULL};

/* Keys of a station summary, in the order `station show` prints them;
 * keys the broker adds later follow. */
static const char *const s_station_keys[] = {
    "station",    "handler",    "state",       "wanted",      "worker",
    "slot",       "epoch",      "iterations",  "last_error",  "checkpoint",
    "placement",  "restart",    "restarts",    "n2s_queued",  "n2s_dropped",
    "code",       "tags",       NULL};

/* The value of an enumerated flag (`r` what tw_cli_flag said): one of
 * `set`, stored in *out. Returns -1, or the usage error `msg`. */
static int
s_st_enum(int r, const char *val, const char *const *set, const char *msg,
          const char **out)
{
    if (r < 0 || !s_one_of(val, set)) {
        return tw_cli_usage("%s", msg);
    }
    *out = val;
    return -1;
}

/* Check a station ID given on the command line. Returns -1 or an exit
 * code. */
static int
s_st_check_id(const char *sub, const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > TW_PROTO_MAX_NAME) {
        return tw_cli_usage("station %s: a station ID is 1 to %d bytes",
                            sub, TW_PROTO_MAX_NAME);
    }
    return -1;
}

/* Collect exactly `want` positional words after `station SUB`, described
 * by `synopsis` in errors; any flag is an error. Returns -1 or an exit
 * code. */
static int
s_st_positional(const tw_cli_env_t *o, const char *sub, const char *synopsis,
                const char **pos, int want)
{
    tw_cli_words_t w = tw_cli_words(o, 2);
    int n = 0;
    const char *a;
    while ((a = tw_cli_next_word(&w)) != NULL) {
        if (tw_cli_is_flag(&w)) {
            return tw_cli_usage("station %s: unknown option '%s'", sub, a);
        }
        if (n == want) {
            return tw_cli_usage("usage: taskwheel station %s%s%s; "
                                "unexpected '%s'", sub, *synopsis ? " " : "",
                                synopsis, a);
        }
        pos[n++] = a;
    }
    if (n < want) {
        return tw_cli_usage("usage: taskwheel station %s %s", sub, synopsis);
    }
    return want > 0 ? s_st_check_id(sub, pos[0]) : -1;
}

/* Split "k=v,k2=v2" into tags that point into *buf, a copy of `text` the
 * caller frees. Empty elements are skipped. Returns -1 or an exit code. */
static int
s_st_tags(const char *text, char **buf, tw_station_tag_t *tags, size_t *n)
{
    *n = 0;
    *buf = strdup(text);
    if (!*buf) {
        return tw_cli_fail(TW_CLI_FAIL, "out of memory");
    }
    char *p = *buf;
    while (p) {
        char *end = strchr(p, ',');
        if (end) {
            *end = '\0';
        }
        if (*p) {
            char *eq = strchr(p, '=');
            size_t klen = eq ? (size_t)(eq - p) : 0;
            if (!eq || klen == 0 || klen > TW_PROTO_MAX_NAME ||
                strlen(eq + 1) > TW_PROTO_MAX_NAME) {
                return tw_cli_usage("--tags: '%s' is not key=value (1-%d "
                                    "byte key, value up to %d bytes)",
                                    p, TW_PROTO_MAX_NAME, TW_PROTO_MAX_NAME);
            }
            *eq = '\0';
            for (size_t i = 0; i < *n; i++) {
                if (strcmp(tags[i].key, p) == 0) {
                    return tw_cli_usage("--tags: key '%s' given twice", p);
                }
            }
            if (*n == TW_PROTO_MAX_TAGS) {
                return tw_cli_usage("--tags: more than %d tags",
                                    TW_PROTO_MAX_TAGS);
            }
            tags[*n].key = p;
            tags[*n].value = eq + 1;
            (*n)++;
        }
        p = end ? end + 1 : NULL;
    }
    return -1;
}

/* s_json_arg, also refusing more msgpack than a request may carry.
 * Returns -1 and sets *out (free()) and *len, or an exit code. */
static int
s_st_json_arg(const char *what, const char *text, void **out, size_t *len)
{
    int code = s_json_arg(what, text, out, len);
    if (code >= 0) {
        return code;
    }
    if (*len > TW__CLIENT_MAX_ARGS) {
        free(*out);
        *out = NULL;
        return tw_cli_usage("%s is too big (%zu bytes of msgpack, limit "
                            "%u)", what, *len, TW__CLIENT_MAX_ARGS);
    }
    return -1;
}

/* Run one station request and return its reply data as JSON, or NULL
 * with *code set: 1 for a broker error, 3 when it did not answer. */
static json_t *
s_st_request(const tw_cli_env_t *o, const tw_station_req_t *req, int *code)
{
    char *id = req->sid ? tw_cli_clean(req->sid) : NULL;
    char what[64 + TW_PROTO_MAX_NAME];
    snprintf(what, sizeof what, "station %s%s%s", req->op, id ? " " : "",
             id ? id : "");
    free(id);
    return tw_cli_request(o, what, TW_CLI_REQ_STATION, req, code);
}

/* Human text of the member `key` of `obj`: "-" when absent or null. */
static char *
s_st_member(json_t *obj, const char *key)
{
    return s_cell(json_is_object(obj) ? json_object_get(obj, key) : NULL);
}

/* An s_human_fn for `station add` (`arg` the request): where the station
 * went. */
static int
s_st_print_add(json_t *v, const void *arg)
{
    const tw_station_req_t *req = arg;
    char *id = tw_cli_clean(req->sid);
    const char *st = json_string_value(json_object_get(v, "state"));
    if (st && strcmp(st, "assigned") == 0) {
        char *wk = s_st_member(v, "worker");
        char *slot = s_st_member(v, "slot");
        printf("station %s assigned to worker %s slot %s\n", id ? id : "?",
               wk ? wk : "?", slot ? slot : "?");
        free(wk);
        free(slot);
    } else if (st) {
        char *state = s_st_member(v, "state");
        json_t *reason = json_object_get(v, "reason");
        char *why = reason && !json_is_null(reason) ? s_text(reason) : NULL;
        printf("station %s %s%s%s\n", id ? id : "?", state ? state : "?",
               why ? ": " : "", why ? why : "");
        free(state);
        free(why);
    } else {
        printf("station %s added\n", id ? id : "?");
    }
    free(id);
    return TW_CLI_OK;
}

static int
s_st_add(const tw_cli_env_t *o, const char *sub)
{
    tw_cli_words_t w = tw_cli_words(o, 2);
    const char *pos[3] = {NULL, NULL, NULL};
    int npos = 0;
    tw_station_req_t req;
    tw_station_tag_t tags[TW_PROTO_MAX_TAGS];
    char *tagbuf = NULL;
    void *args = NULL;
    int code = -1;
    const char *a;

    memset(&req, 0, sizeof req);
    req.op = "add";
    while (code < 0 && (a = tw_cli_next_word(&w)) != NULL) {
        const char *val = NULL;
        int r;
        if (!tw_cli_is_flag(&w)) {
            if (npos == 3) {
                code = tw_cli_usage("station add takes ID HANDLER and at "
                                    "most one ARGS-JSON; unexpected '%s'",
                                    a);
            } else {
                pos[npos++] = a;
            }
        } else if ((r = tw_cli_word_flag(&w, "--next", &val)) != 0) {
            code = s_st_enum(r, val, s_next_modes,
                             "--next must be same, result or handler",
                             &req.next);
        } else if ((r = tw_cli_word_flag(&w, "--interval", &val)) != 0) {
            code = tw_cli_flag_ms("--interval", r, val, &req.interval_ms);
        } else if ((r = tw_cli_word_flag(&w, "--timeout", &val)) != 0) {
            code = tw_cli_flag_ms("--timeout", r, val, &req.timeout_ms);
        } else if ((r = tw_cli_word_flag(&w, "--code", &val)) != 0) {
            if (r < 0 || !*val || strlen(val) > TW_PROTO_MAX_NAME) {
                code = tw_cli_usage("--code needs a station code of 1 to "
                                    "%d bytes", TW_PROTO_MAX_NAME);
            }
            req.code = val;
        } else if ((r = tw_cli_word_flag(&w, "--tags", &val)) != 0) {
            if (r < 0) {
                code = tw_cli_usage("--tags needs key=value,...");
            } else {
                free(tagbuf);
                code = s_st_tags(val, &tagbuf, tags, &req.ntags);
                req.tags = tags;
            }
        } else if ((r = tw_cli_word_flag(&w, "--placement", &val)) != 0) {
            code = s_st_enum(r, val, s_placements,
                             "--placement must be any, prefer or pinned",
                             &req.placement);
        } else if ((r = tw_cli_word_flag(&w, "--restart", &val)) != 0) {
            code = s_st_enum(r, val, s_restarts,
                             "--restart must be never, on-failure or always",
                             &req.restart);
        } else {
            code = tw_cli_usage("station add: unknown option '%s'", a);
        }
    }
    if (code < 0 && npos < 2) {
        code = tw_cli_usage("usage: taskwheel station add ID HANDLER "
                            "[ARGS-JSON] [flags]");
    }
    if (code < 0) {
        code = s_st_check_id(sub, pos[0]);
    }
    if (code < 0 && (!*pos[1] || strlen(pos[1]) > TW_PROTO_MAX_NAME)) {
        code = tw_cli_usage("a handler name is 1 to %d bytes",
                            TW_PROTO_MAX_NAME);
    }
    if (code < 0 && pos[2]) {
        code = s_st_json_arg("ARGS-JSON", pos[2], &args, &req.args_len);
        req.args = args;
    }
    if (code >= 0) {
        free(tagbuf);
        free(args);
        return code;
    }
    req.sid = pos[0];
    req.handler = pos[1];

    json_t *v = s_st_request(o, &req, &code);
    code = s_reply(o, v, code, -1, s_st_print_add, &req);
    free(tagbuf);
    free(args);
    return code;
}

/* pause, continue, stop, cancel and remove: {sid} -> {station, state}.
 * The state is printed alone when it is what the operation asked for
 * ("station s1 paused"), else with the request ("station s1 assigned
 * (pause requested)"): a control reaches the worker at its next
 * iteration boundary, so the broker may still report the old state. */
static int
s_st_print_control(json_t *v, const void *arg)
{
    static const char *const wanted[][2] = {
        {"pause", "paused"},     {"continue", "running"},
        {"stop", "stopped"},     {"cancel", "cancelled"},
        {"remove", "removed"}};
    const tw_station_req_t *req = arg;
    const char *sub = req->op;
    char *id = tw_cli_clean(req->sid);
    json_t *state = json_object_get(v, "state");
    char *st = json_is_string(state) ? s_text(state) : NULL;
    const char *want = NULL;
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        if (strcmp(sub, wanted[i][0]) == 0) {
            want = wanted[i][1];
        }
    }
    if (st && want && strcmp(st, want) == 0) {
        printf("station %s %s\n", id ? id : "?", st);
    } else if (st) {
        printf("station %s %s (%s requested)\n", id ? id : "?", st, sub);
    } else {
        printf("station %s: %s sent\n", id ? id : "?", sub);
    }
    free(st);
    free(id);
    return TW_CLI_OK;
}

/* An s_human_fn: the stations as a table. */
static int
s_st_print_list(json_t *v, const void *arg)
{
    static const char *const keys[] = {"station",    "handler",
                                       "state",      "worker",
                                       "iterations", "last_error"};
    static const char *const titles[] = {"ID",         "HANDLER",
                                         "STATE",      "WORKER",
                                         "ITERATIONS", "LAST ERROR"};
    static const s_listing_t listing = {keys, titles,
                                        sizeof keys / sizeof keys[0],
                                        "no stations"};
    (void)arg;
    return s_print_listing(v, &listing);
}

/* One "key: value" line of `station show`. The checkpoint is always
 * JSON (a string checkpoint keeps its quotes); tags read k=v,k2=v2. */
static void
s_st_show_line(void *arg, const char *key, json_t *v)
{
    (void)arg;
    char *text = NULL;
    if (strcmp(key, "checkpoint") == 0 && v && !json_is_null(v)) {
        char *j = tw_json_dumps(v);
        text = j ? tw_cli_clean(j) : NULL;
        free(j);
    } else if (strcmp(key, "tags") == 0 && json_is_object(v) &&
               json_object_size(v) > 0) {
        json_t *parts = json_array();
        for (void *it = json_object_iter(v); it;
             it = json_object_iter_next(v, it)) {
            char *val = s_text(json_object_iter_value(it));
            size_t n = strlen(json_object_iter_key(it)) +
                       (val ? strlen(val) : 0) + 2;
            char *kv = malloc(n);
            if (kv) {
                snprintf(kv, n, "%s=%s", json_object_iter_key(it),
                         val ? val : "");
                json_array_append_new(parts, json_string(kv));
            }
            free(kv);
            free(val);
        }
        text = s_text(parts);
        json_decref(parts);
    } else if (json_is_object(v) && json_object_size(v) == 0) {
        text = strdup("-");
    } else {
        text = s_cell(v);
    }
    char *k = tw_cli_clean(key);
    printf("%s: %s\n", k ? k : "?", text ? text : "?");
    free(k);
    free(text);
}

/* An s_human_fn: a station summary as "key: value" lines. */
static int
s_st_print_show(json_t *v, const void *arg)
{
    (void)arg;
    s_each_member(v, s_station_keys, s_st_show_line, NULL);
    return TW_CLI_OK;
}

/* An s_human_fn for `station send`: the message's sequence number. */
static int
s_st_print_send(json_t *v, const void *arg)
{
    const tw_station_req_t *req = arg;
    char *id = tw_cli_clean(req->sid);
    char *seq = s_st_member(v, "seq");
    int queued = json_is_true(json_object_get(v, "queued"));
    printf("station %s: message %s %s\n", id ? id : "?", seq ? seq : "?",
           queued ? "queued" : "sent");
    free(seq);
    free(id);
    return TW_CLI_OK;
}

/* An s_human_fn for `station rebalance`: how many stations moved. */
static int
s_st_print_rebalance(json_t *v, const void *arg)
{
    (void)arg;
    json_t *moved = json_object_get(v, "moved");
    char *n = s_cell(moved);
    printf("moved %s station%s\n", n ? n : "?",
           json_is_integer(moved) && json_integer_value(moved) == 1 ? ""
                                                                    : "s");
    free(n);
    return TW_CLI_OK;
}

/* `station tail`: the s2n messages of one station, until it ends. */
typedef struct {
    const tw_cli_env_t *o;
    const char *id;
    char topic[4 + TW_PROTO_MAX_NAME + 1];   /* "s2n.<ID>" */
    char events[8 + TW_PROTO_MAX_NAME + 2];  /* "station.<ID>." */
    size_t tlen, elen;
    int json;
} s_tail_t;

/* Whether a station event ends the tail. stopped, cancelled and removed
 * always do. After done or failed the restart policy may already have made
 * the station pending again (the broker decides in the same turn, before it
 * answers anything else), so ask it: the tail goes on while the station
 * is pending, restarting or placed again. */
static int
s_tail_ended(s_tail_t *t, const char *event, size_t len)
{
    static const char *const final[] = {"stopped", "cancelled", "removed"};
    for (size_t i = 0; i < sizeof final / sizeof *final; i++) {
        if (len == strlen(final[i]) && memcmp(event, final[i], len) == 0) {
            return 1;
        }
    }
    if (!(len == 4 && memcmp(event, "done", 4) == 0) &&
        !(len == 6 && memcmp(event, "failed", 6) == 0)) {
        return 0;
    }
    tw_station_req_t req;
    memset(&req, 0, sizeof req);
    req.op = "show";
    req.sid = t->id;
    int code = -1;
    json_t *v = s_st_request(t->o, &req, &code);
    const char *st = json_string_value(json_object_get(v, "state"));
    int ended = !st || strcmp(st, "done") == 0 || strcmp(st, "failed") == 0;
    json_decref(v);
    return ended;
}

/* The event part of a status topic of this station, or NULL. A sid may
 * hold dots, so the body's "station" is checked as well. */
static const char *
s_tail_event(const s_tail_t *t, zmq_msg_t *topic, json_t *b, size_t *len)
{
    size_t n = zmq_msg_size(topic);
    const char *tp = zmq_msg_data(topic);
    const char *sid = json_string_value(json_object_get(b, "station"));
    if (n <= t->elen || memcmp(tp, t->events, t->elen) != 0 || !sid ||
        strcmp(sid, t->id) != 0 || memchr(tp + t->elen, '.', n - t->elen)) {
        return NULL;
    }
    *len = n - t->elen;
    return tp + t->elen;
}

/* Print one s2n message of the station: its data as a JSON line, or with
 * --json {"station", "seq", "data"}. The SUB prefix "s2n.gnss-1" also
 * matches "s2n.gnss-10", so the topic must match exactly. */
static int
s_print_s2n(void *arg, zmq_msg_t *topic, zmq_msg_t *body)
{
    s_tail_t *t = arg;
    json_t *b = tw_json_from_msgpack(zmq_msg_data(body), zmq_msg_size(body));
    size_t elen;
    const char *ev = s_tail_event(t, topic, b, &elen);
    if (ev) {
        if (s_tail_ended(t, ev, elen)) {
            s_stop = 1;
        }
        json_decref(b);
        return 0;
    }
    if (zmq_msg_size(topic) != t->tlen ||
        memcmp(zmq_msg_data(topic), t->topic, t->tlen) != 0) {
        json_decref(b);
        return 0;
    }
    json_t *data = json_is_object(b) ? json_object_get(b, "data") : NULL;
    if (!data) {
        json_decref(b);
        return 0;
    }
    if (t->json) {
        json_t *o = json_object();
        static const char *const keys[] = {"station", "seq", "data"};
        for (size_t i = 0; i < 3; i++) {
            json_t *v = json_object_get(b, keys[i]);
            if (v) {
                json_object_set(o, keys[i], v);
            }
        }
        tw_cli_print_json(o);
    } else {
        tw_cli_print_json(json_incref(data));
    }
    json_decref(b);
    return 1;
}

/* Before tailing: -1 to go on, or an exit code: 1 for a station the
 * broker does not know, 0 for one that has already ended (stopped, done,
 * failed or cancelled, and not restarting: the broker decides that in
 * the same turn), since nothing will ever come. */
static int
s_tail_check(const tw_cli_env_t *o, const char *id)
{
    tw_station_req_t req;
    memset(&req, 0, sizeof req);
    req.op = "show";
    req.sid = id;
    int code = -1;
    tw_client_t *c = tw_cli_connect(o, &code);
    if (!c) {
        return code;
    }
    void *data = NULL;
    size_t len = 0;
    int rc = tw_client_station(c, &req, o->timeout_ms, &data, &len);
    char *clean = tw_cli_clean(id);
    if (rc == TW_ENOENT) {
        code = tw_cli_fail(TW_CLI_FAIL, "station tail: there is no station "
                           "'%s'", clean ? clean : "?");
    } else if (rc != 0) {
        code = tw_cli_lib_error(o, c, "station tail", rc);
    } else {
        json_t *v = tw_cli_payload_json(data, len);
        const char *st = json_string_value(json_object_get(v, "state"));
        static const char *const ended[] = {"stopped", "done", "failed",
                                            "cancelled", NULL};
        if (st && s_one_of(st, ended)) {
            if (!o->json) {
                tw_cli_fail(TW_CLI_OK, "station tail: station '%s' has "
                            "already ended (%s)", clean ? clean : "?", st);
            }
            code = TW_CLI_OK;
        }
        json_decref(v);
    }
    free(clean);
    free(data);
    tw_client_destroy(&c);
    return code;
}

static int
s_st_tail(const tw_cli_env_t *o, const char *sub)
{
    tw_cli_words_t w = tw_cli_words(o, 2);
    const char *id = NULL;
    uint64_t count = 0;
    double for_secs = -1;
    int code = -1;
    const char *a;
    while (code < 0 && (a = tw_cli_next_word(&w)) != NULL) {
        if (!tw_cli_is_flag(&w)) {
            if (id) {
                code = tw_cli_usage("station tail takes one ID; "
                                    "unexpected '%s'", a);
            }
            id = a;
        } else if (!s_parse_stream_flag(&w, &count, &for_secs, &code)) {
            code = tw_cli_usage("station tail: unknown option '%s'", a);
        }
    }
    if (code < 0 && !id) {
        code = tw_cli_usage("usage: taskwheel station tail ID [--count N] "
                            "[--for S]");
    }
    if (code < 0) {
        code = s_st_check_id(sub, id);
    }
    if (code >= 0) {
        return code;
    }
    s_tail_t t;
    t.o = o;
    t.id = id;
    t.tlen = (size_t)snprintf(t.topic, sizeof t.topic, "s2n.%s", id);
    t.elen = (size_t)snprintf(t.events, sizeof t.events, "station.%s.", id);
    t.json = o->json;
    const char *prefixes[2] = {t.topic, t.events};
    void *ctx, *sub_sock;
    char ep[300];
    code = s_sub_open(o, prefixes, 2, &ctx, &sub_sock, ep, sizeof ep);
    if (code >= 0) {
        return code;
    }
    /* Subscribed first, so nothing emitted after the check is missed; the
     * check turns an unknown station into exit 1 instead of silence, and
     * a station that has already ended into an end at once. */
    code = s_tail_check(o, id);
    if (code < 0) {
        code = s_sub_loop(sub_sock, ep, o->timeout_ms, count, for_secs,
                          s_print_s2n, &t);
    }
    s_sub_close(ctx, sub_sock);
    return code;
}

/* A `station` command: either its own `run`, or one request whose
 * operation is the command's name, built from `npos` positional words
 * (ID, then DATA-JSON as the payload) and answered with `human` when the
 * reply is of JSON type `want` (-1: any). */
typedef struct {
    const char *name;
    int (*run)(const tw_cli_env_t *o, const char *sub);
    const char *synopsis;
    int npos;
    int want;
    s_human_fn human;
} s_st_command_t;

static const s_st_command_t s_st_commands[] = {
    {"add", s_st_add, NULL, 0, -1, NULL},
    {"list", NULL, "", 0, JSON_ARRAY, s_st_print_list},
    {"show", NULL, "ID", 1, JSON_OBJECT, s_st_print_show},
    {"pause", NULL, "ID", 1, -1, s_st_print_control},
    {"continue", NULL, "ID", 1, -1, s_st_print_control},
    {"stop", NULL, "ID", 1, -1, s_st_print_control},
    {"cancel", NULL, "ID", 1, -1, s_st_print_control},
    {"remove", NULL, "ID", 1, -1, s_st_print_control},
    {"send", NULL, "ID DATA-JSON", 2, -1, s_st_print_send},
    {"tail", s_st_tail, NULL, 0, -1, NULL},
    {"rebalance", NULL, "", 0, -1, s_st_print_rebalance},
};

/* Run a `station` command that is one request (run == NULL). */
static int
s_st_simple(const tw_cli_env_t *o, const s_st_command_t *cmd)
{
    const char *pos[2];
    int code = s_st_positional(o, cmd->name, cmd->synopsis, pos, cmd->npos);
    if (code >= 0) {
        return code;
    }
    tw_station_req_t req;
    memset(&req, 0, sizeof req);
    void *payload = NULL;
    if (cmd->npos > 1) {
        code = s_st_json_arg("DATA-JSON", pos[1], &payload,
                             &req.payload_len);
        if (code >= 0) {
            return code;
        }
        req.payload = payload;
    }
    req.op = cmd->name;
    req.sid = cmd->npos > 0 ? pos[0] : NULL;
    json_t *v = s_st_request(o, &req, &code);
    code = s_reply(o, v, code, cmd->want, cmd->human, &req);
    free(payload);
    return code;
}

static int
s_cmd_station(const tw_cli_env_t *o)
{
    if (o->argc < 2) {
        return tw_cli_usage("station needs a command: add, list, show, "
                            "pause, continue, stop, cancel, remove, send, "
                            "tail or rebalance");
    }
    for (size_t i = 0; i < sizeof s_st_commands / sizeof s_st_commands[0];
         i++) {
        const s_st_command_t *cmd = &s_st_commands[i];
        if (strcmp(o->argv[1], cmd->name) == 0) {
            return cmd->run ? cmd->run(o, cmd->name) : s_st_simple(o, cmd);
        }
    }
    return tw_cli_usage("unknown station command '%s'", o->argv[1]);
}

/* ------------------------------------------------------------------ */
/* ping                                                               */

static int
s_cmd_ping(const tw_cli_env_t *o)
{
    int code = s_no_args(o);
    if (code >= 0) {
        return code;
    }
    tw_client_t *c = tw_cli_connect(o, &code);
    if (!c) {
        return code;
    }
    uint64_t t0 = tw_now_ns();
    int rc = tw_client_ping(c, o->timeout_ms);
    double ms = (double)(tw_now_ns() - t0) / 1e6;
    if (rc != 0) {
        code = tw_cli_lib_error(o, c, "ping", rc);
    } else if (o->json) {
        tw_cli_print_json(json_pack("{s:s, s:f}", "broker", o->broker, "rtt_ms",
                               ms));
        code = TW_CLI_OK;
    } else {
        printf("pong from %s in %.2f ms\n", o->broker, ms);
        code = TW_CLI_OK;
    }
    tw_client_destroy(&c);
    return code;
}

/* ------------------------------------------------------------------ */

static int
s_cmd_keygen(const tw_cli_env_t *o)
{
    return tw_cli_keygen(o->argc, o->argv, o->json);
}


static int s_cmd_help(const tw_cli_env_t *o);

/* Every command: the manual, each command's help and the dispatch come
 * from here (commands.h). */
static const tw_cli_cmd_t s_commands[] = {
    {"submit",
     "HANDLER [ARGS-JSON] [--timeout S] [--retries N] [--priority P]\n"
     "[--group G]... [--delay S] [--at TIME] [--key K]\n"
     "[--after ID[,ID...] [--after-any-end] [--with-results]]\n"
     "[--wait [--respond JSON]]",
     "Queue a task and print its id. ARGS-JSON is any JSON value\n"
     "(default null); {\"$bin\": \"<hex>\"} sends raw bytes. With\n"
     "--wait, print the task's result instead (exit 1 if it failed)\n"
     "and its channel items as JSON lines on stderr; requests get\n"
     "--respond's value, or are refused (the task's request fails).\n"
     "--timeout is in seconds, 0 = none. --group joins a group of\n"
     "the pool (repeatable), --delay holds it back S seconds, --at\n"
     "until an RFC 3339 time (2025-01-01T03:00:00+01:00; with\n"
     "--delay too, the later holds), --key is a dedup key: while a\n"
     "task with it is known, its id (with --wait, its outcome) is\n"
     "returned. --after holds the task (blocked) until the tasks\n"
     "named end: it runs if all succeeded and is cancelled\n"
     "(\"upstream failed\") if one did not; --after-any-end runs it\n"
     "whatever they did; --with-results passes their results, in\n"
     "order, before its own arguments (docs/WORKFLOWS.md). Built-in\n"
     "handlers: docs/HANDLERS.md.",
     s_cmd_submit},
    TW_CLI_GRAPH_ROWS
    {"map",
     "HANDLER [--input FILE|-] [--concurrency K] [--group G]\n"
     "[--star|--kw] [--ordered]",
     "Run HANDLER once per input line (a JSON args value; --star: an\n"
     "array of positional args; --kw: an object), at most K at once\n"
     "(default 1). Prints each result as a JSON line, failures as\n"
     "{\"error\": ...}, in completion order or, with --ordered, input\n"
     "order; exit 1 if any failed. A progress bar goes to stderr when\n"
     "it is a terminal.",
     tw_cli_map},
    {"group", "limit G N|none [--reject] | get G | clear G | list | ids G",
     "Limit a group to N running tasks (--reject: refuse when full\n"
     "instead of queueing; none: no limit, as clear), show it (a\n"
     "group never used shows as empty), remove its limit, list the\n"
     "pool's groups, or list every task id it held.",
     tw_cli_group},
    {"pool",
     "stats | size N | default-limit N|none | lock | unlock | close\n"
     "| flush | stop N",
     "Show the pool's counters, set its size (0 = unlimited) or the\n"
     "limit of its groups that have none of their own, refuse\n"
     "new tasks (close: for good), forget ended tasks, or cancel the\n"
     "N most recently started running tasks.",
     tw_cli_pool},
    {"result", "ID...", "Print the state and result of each task.",
     s_cmd_result},
    {"cancel", "ID... [--strict] | cancel --group G | cancel --all",
     "Cancel tasks; exit 1 if an id is unknown. --strict cancels all\n"
     "or nothing (exit 1 if one is unknown, ended or cancelling);\n"
     "--group cancels a group's tasks, --all every task of the pool.",
     s_cmd_cancel},
    {"tasks list",
     "[--state S|--failed] [--handler H] [--group G]\n"
     "[--since DUR] [--text T] [--limit N]",
     "The tasks the broker keeps, newest change first, N of them\n"
     "(default 50, 0 = all). S is pending, running, ok, failed,\n"
     "error, timeout, lost or cancelled; DUR like 90s, 15m, 2h, 7d;\n"
     "T is searched in the id, handler and error.",
     tw_cli_tasks},
    {"tasks show", "ID",
     "Everything about a task: arguments, result, and each attempt\n"
     "with its error and traceback.",
     tw_cli_tasks},
    {"tasks retry", "ID... | --failed [filters]",
     "Send failed tasks back to their queue: same id, history kept.",
     tw_cli_tasks},
    {"tasks purge", "ID... | --failed|--state S [filters]",
     "Forget ended tasks now.", tw_cli_tasks},
    {"workers", "", "List the connected workers.", s_cmd_workers},
    {"workers drain", "NAME|ID",
     "Stop giving the worker work, move its stations away, let its\n"
     "running tasks finish, then let it exit. NAME applies to every\n"
     "worker of that name; a number that is no worker's name is an id.",
     s_cmd_workers},
    {"workers resize", "NAME|ID SLOTS",
     "Change a running worker's slot count (1..65536).", s_cmd_workers},
    TW_CLI_SCHEDULE_ROWS
    {"status", "[--all]",
     "What an operator needs first: workers, slots, queues, rates and\n"
     "errors, one line each; --all prints every counter (--json always\n"
     "prints them all).",
     s_cmd_status},
    {"watch", "[--interval S]",
     "A live full-screen view of workers, stations, tasks and groups\n"
     "(q quits); one snapshot when stdout is not a terminal.",
     tw_cli_watch},
    {"events", "[TOPIC-PREFIX...] [--count N] [--for S]",
     "Print status events as JSON lines {\"topic\": ..., \"body\": ...}\n"
     "until interrupted, N events were printed or S seconds passed.\n"
     "Topics start with worker., task., stats, station.<ID>. or\n"
     "s2n.<ID>.",
     s_cmd_events},
    {"station add",
     "ID HANDLER [ARGS-JSON] [--next same|result|handler]\n"
     "[--interval S] [--timeout S] [--code C] [--tags k=v,...]\n"
     "[--placement any|prefer|pinned]\n"
     "[--restart never|on-failure|always]",
     "Start a station: HANDLER run again and again on one worker slot.\n"
     "--next picks each iteration's input (the same ARGS, the last\n"
     "result, or what the handler chose); --interval is the least time\n"
     "between iteration starts and --timeout the limit of one\n"
     "iteration, in seconds (for stream, the longest silence of its\n"
     "program). --code and --tags select workers.",
     s_cmd_station},
    {"station list", "", "List the stations.", s_cmd_station},
    {"station show", "ID", "Show one station with its checkpoint.",
     s_cmd_station},
    {"station pause", "ID",
     "Suspend the station's iterations; it keeps its slot.",
     s_cmd_station},
    {"station continue", "ID",
     "Resume a paused station, or start an ended one again from its\n"
     "checkpoint.",
     s_cmd_station},
    {"station stop", "ID", "End the station after its current iteration.",
     s_cmd_station},
    {"station cancel", "ID",
     "End the station now, aborting its current iteration.",
     s_cmd_station},
    {"station remove", "ID",
     "Stop the station and forget it; its ID can then be used again.",
     s_cmd_station},
    {"station send", "ID DATA-JSON",
     "Send DATA to the station's handler (net to station).",
     s_cmd_station},
    {"station tail", "ID [--count N] [--for S]",
     "Print what the station emits, one JSON value a line (with\n"
     "--json: {\"station\", \"seq\", \"data\"}).",
     s_cmd_station},
    {"station rebalance", "",
     "Spread the stations over the workers again.", s_cmd_station},
    {"ping", "", "Check that the broker answers.", s_cmd_ping},
    {"keygen", "NAME",
     "Write a CURVE key pair: NAME.key (secret, mode 0600) and\n"
     "NAME.pub; never overwrites.",
     s_cmd_keygen},
    {"help", "[COMMAND [SUBCOMMAND]]",
     "Print one command's help (the same as COMMAND --help), or\n"
     "without a command this manual.",
     s_cmd_help},
    {NULL, NULL, NULL, NULL},
};

/* `taskwheel help [COMMAND [SUBCOMMAND]]`. */
static int
s_cmd_help(const tw_cli_env_t *o)
{
    if (o->argc < 2) {
        tw_cli_cmds_manual(stdout, s_commands, s_flags);
        return TW_CLI_OK;
    }
    if (tw_cli_cmds_help(stdout, s_commands, o->argc - 1, o->argv + 1) != 0) {
        return tw_cli_usage("help: no command '%s'", o->argv[1]);
    }
    return TW_CLI_OK;
}

int
main(int argc, char **argv)
{
    tw_cli_env_t o;
    memset(&o, 0, sizeof o);
    tw_log_open("taskwheel", TW_LOG_STDERR);

    int help = 0;
    int code = s_parse_global(argc, argv, &o, &help);
    if (code < 0 && help) {
        /* --help alone is the manual; with a command, its help. */
        if (o.argc == 0) {
            tw_cli_cmds_manual(stdout, s_commands, s_flags);
            code = TW_CLI_OK;
        } else if (tw_cli_cmds_help(stdout, s_commands, o.argc, o.argv) == 0) {
            code = TW_CLI_OK;
        } else {
            code = tw_cli_usage("unknown command '%s'", o.argv[0]);
        }
    } else if (code < 0) {
        if (o.argc == 0) {
            tw_cli_cmds_manual(stderr, s_commands, s_flags);
            code = TW_CLI_USAGE;
        } else if (o.argv[0][0] == '-') {
            code = tw_cli_usage("unknown option '%s'", o.argv[0]);
        } else {
            const tw_cli_cmd_t *cmd = tw_cli_cmds_find(s_commands,
                                                        o.argv[0]);
            code = cmd ? cmd->run(&o)
                       : tw_cli_usage("unknown command '%s'", o.argv[0]);
        }
    }
    free(o.argv);
    return code;
}
