/*  client/cli/cmd_tasks.c - `taskwheel tasks list|show|retry|purge`.
 *
 *  The task records of proto/PROTOCOL.md 16, from the command line:
 *
 *    tasks list [--state S | --failed] [--handler H] [--group G]
 *               [--since DUR] [--text T] [--limit N]
 *        Records, newest change first: a table, or with --json one JSON
 *        line per record. Pages through the broker's replies (each at
 *        most 1000 records) until N records (default 50; 0 for all).
 *    tasks show ID
 *        One whole record: arguments, result, and each attempt with its
 *        error and traceback; with --json the record as one document.
 *    tasks retry ID... | --failed [filters]
 *    tasks purge ID... | --failed | --state S [filters]
 *        Send failed tasks back to their queue (same id, history kept),
 *        or forget ended ones. With filters the request is repeated
 *        while the broker says more remain. Prints what was done, or
 *        with --json one line {"done": [...], "refused": [...]} per
 *        request; exit 1 if any task was refused.
 *
 *  The global --pool limits every subcommand to that pool when given.
 *  One connection serves all the requests of a command.
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"
#include "client/cli/json.h"
#include "common/error.h"
#include "common/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    tw_tasks_req_t req;
    uint64_t want;       /* list: records to print, 0 = all */
    uint64_t *ids;
    size_t nids;
} s_opts_t;

/* Parse the filter flags (and positional ids when `ids_ok`). Returns -1
 * to go on, or a usage exit code. */
static int
s_parse(const tw_cli_env_t *e, const char *cmd, int ids_ok, s_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->want = 50;
    o->req.pool = e->pool;
    tw_cli_words_t w = tw_cli_words(e, 2);
    const char *word, *val;
    int r;
    while ((word = tw_cli_next_word(&w))) {
        if (!tw_cli_is_flag(&w)) {
            uint64_t id;
            if (!ids_ok || tw_cli_u64(word, &id) != 0 || id == 0) {
                free(o->ids);
                return tw_cli_usage(ids_ok ? "tasks %s: '%s' is not a task "
                                             "id" : "tasks %s: unexpected '%s'",
                                    cmd, word);
            }
            uint64_t *grown = realloc(o->ids, (o->nids + 1) * sizeof *grown);
            if (!grown) {
                free(o->ids);
                return tw_cli_fail(TW_CLI_FAIL, "out of memory");
            }
            o->ids = grown;
            o->ids[o->nids++] = id;
            continue;
        }
        const char **slot = NULL;
        if (strcmp(word, "--failed") == 0) {
            o->req.state = "failed";
            continue;
        }
        static const char *const names[] = {"--state", "--handler",
                                            "--group", "--text"};
        const char **slots[] = {&o->req.state, &o->req.handler,
                                &o->req.group, &o->req.text};
        for (size_t i = 0; i < 4 && !slot; i++) {
            r = tw_cli_word_flag(&w, names[i], &val);
            if (r != 0) {
                slot = slots[i];
                if (r < 0) {
                    free(o->ids);
                    return tw_cli_usage("%s needs a value", names[i]);
                }
                *slot = val;
            }
        }
        if (slot) {
            continue;
        }
        if ((r = tw_cli_word_flag(&w, "--since", &val)) != 0) {
            if (r < 0 || tw_duration_ms(val, strlen(val),
                                        &o->req.since_ms) != 0) {
                free(o->ids);
                return tw_cli_usage("--since needs a duration such as 90s, "
                                    "15m, 2h or 7d");
            }
            continue;
        }
        if ((r = tw_cli_word_flag(&w, "--limit", &val)) != 0) {
            if (r < 0 || tw_cli_u64(val, &o->want) != 0) {
                free(o->ids);
                return tw_cli_usage("--limit needs a number (0: all)");
            }
            continue;
        }
        free(o->ids);
        return tw_cli_usage("tasks %s: unknown option '%s'", cmd, word);
    }
    return -1;
}

/* ---- list ------------------------------------------------------------- */

static char *
s_ago(uint64_t ms)
{
    uint64_t now = tw_wall_ms(), d = now > ms ? (now - ms) / 1000 : 0;
    char buf[32];
    if (d < 120) {
        snprintf(buf, sizeof buf, "%" PRIu64 "s ago", d);
    } else if (d < 7200) {
        snprintf(buf, sizeof buf, "%" PRIu64 "m ago", d / 60);
    } else if (d < 172800) {
        snprintf(buf, sizeof buf, "%" PRIu64 "h ago", d / 3600);
    } else {
        snprintf(buf, sizeof buf, "%" PRIu64 "d ago", d / 86400);
    }
    return strdup(buf);
}

/* A table cell: numbers as numbers, strings cleaned and cut, a change
 * time as its age. */
static char *
s_cell(json_t *v)
{
    if (!v || json_is_null(v)) {
        return strdup("");
    }
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n > 1000000000000LL) { /* ms since the epoch: a time */
            return s_ago((uint64_t)n);
        }
        char buf[32];
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, n);
        return strdup(buf);
    }
    const char *s = json_string_value(v);
    char *c = tw_cli_clean(s ? s : "?");
    if (c && strlen(c) > 60) {
        strcpy(c + 57, "...");
    }
    return c;
}

static int
s_list(const tw_cli_env_t *e)
{
    s_opts_t o;
    int code = s_parse(e, "list", 0, &o);
    if (code >= 0) {
        return code;
    }
    tw_client_t *c = tw_cli_connect(e, &code);
    if (!c) {
        return code;
    }
    json_t *rows = json_array();
    char cursor[80] = "";
    uint64_t got = 0;
    code = TW_CLI_OK;
    for (;;) {
        uint64_t left = o.want ? o.want - got : 1000;
        o.req.limit = (uint32_t)(left < 1000 ? left : 1000);
        o.req.cursor = cursor[0] ? cursor : NULL;
        void *data = NULL;
        size_t len = 0;
        int rc = tw_client_tasks_list(c, &o.req, e->timeout_ms, &data, &len);
        if (rc != 0) {
            code = tw_cli_lib_error(e, c, "tasks list", rc);
            break;
        }
        json_t *v = tw_cli_payload_json(data, len);
        free(data);
        json_t *tasks = json_object_get(v, "tasks");
        size_t i;
        json_t *t;
        json_array_foreach(tasks, i, t) {
            if (e->json) {
                tw_cli_print_json(json_incref(t));
            } else {
                json_array_append(rows, t);
            }
            got++;
        }
        const char *next = json_string_value(json_object_get(v, "next"));
        int more = next && strlen(next) < sizeof cursor &&
                   (o.want == 0 || got < o.want);
        if (more) {
            snprintf(cursor, sizeof cursor, "%s", next);
        }
        json_decref(v);
        if (!more) {
            break;
        }
    }
    if (code == TW_CLI_OK && !e->json) {
        static const char *const keys[] = {"id", "state", "handler",
                                           "attempt", "worker", "changed_ms",
                                           "error"};
        static const char *const titles[] = {"ID", "STATE", "HANDLER",
                                             "ATTEMPTS", "WORKER", "CHANGED",
                                             "ERROR"};
        code = tw_cli_print_table(rows, keys, titles, 7, s_cell);
    }
    json_decref(rows);
    tw_client_destroy(&c);
    return code;
}

/* ---- show ------------------------------------------------------------- */

static void
s_time(const char *label, json_t *v)
{
    if (!json_is_integer(v)) {
        return;
    }
    json_int_t ms = json_integer_value(v);
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char buf[64];
    localtime_r(&secs, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    printf("  %-10s %s.%03d\n", label, buf, (int)(ms % 1000));
}

/* Print the string `v` line by line, each cleaned and indented. */
static void
s_lines(const char *indent, json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = s ? json_string_length(v) : 0;
    while (s && n > 0) {
        const char *nl = memchr(s, '\n', n);
        size_t l = nl ? (size_t)(nl - s) : n;
        char *c = tw_cli_clean_len(s, l);
        printf("%s%s\n", indent, c ? c : "?");
        free(c);
        s += nl ? l + 1 : l;
        n -= nl ? l + 1 : l;
    }
}

/* A record's `key` ("args", "result") arrives as {"$bin": "<hex>"}: the
 * payload bytes (PROTOCOL.md 4.7). Put the value they hold in its place,
 * as `submit --wait` prints a result. */
static void
s_unbin(json_t *t, const char *key)
{
    json_t *v = json_object_get(t, key);
    const char *hex = json_string_value(json_object_get(v, "$bin"));
    size_t n = hex ? strlen(hex) : 0;
    if (!hex || n % 2 || json_object_size(v) != 1) {
        return;
    }
    unsigned char *bytes = malloc(n / 2 + 1);
    if (!bytes) {
        return;
    }
    for (size_t i = 0; i < n / 2; i++) {
        int hi = tw_hex_digit(hex[2 * i]), lo = tw_hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(bytes);
            return;
        }
        bytes[i] = (unsigned char)(hi << 4 | lo);
    }
    json_object_set_new(t, key, tw_cli_payload_json(bytes, n / 2));
    free(bytes);
}

static void
s_value(const char *label, json_t *t, const char *key)
{
    json_t *v = json_object_get(t, key);
    char pkey[32];
    snprintf(pkey, sizeof pkey, "%s_preview", key);
    const char *preview = json_string_value(json_object_get(t, pkey));
    char *s = preview ? NULL : tw_json_dumps(v ? v : json_null());
    char *c = tw_cli_clean(preview ? preview : s ? s : "?");
    printf("%s %s%s\n", label, c ? c : "?", preview ? " ... (cut)" : "");
    free(c);
    free(s);
}

static void
s_print_record(json_t *t)
{
    char *h = tw_cli_clean(json_string_value(json_object_get(t, "handler"))
                               ? json_string_value(
                                     json_object_get(t, "handler"))
                               : "?");
    printf("task %" JSON_INTEGER_FORMAT "  %s  %s\n",
           json_integer_value(json_object_get(t, "id")), h ? h : "?",
           json_string_value(json_object_get(t, "state"))
               ? json_string_value(json_object_get(t, "state"))
               : "?");
    free(h);
    printf("  pool %s, priority %" JSON_INTEGER_FORMAT ", %"
           JSON_INTEGER_FORMAT " attempt(s), worker %" JSON_INTEGER_FORMAT
           ", sent back %" JSON_INTEGER_FORMAT " time(s)\n",
           json_string_value(json_object_get(t, "pool"))
               ? json_string_value(json_object_get(t, "pool"))
               : "?",
           json_integer_value(json_object_get(t, "priority")),
           json_integer_value(json_object_get(t, "attempt")),
           json_integer_value(json_object_get(t, "worker")),
           json_integer_value(json_object_get(t, "retried")));
    s_time("submitted", json_object_get(t, "submitted_ms"));
    s_time("started", json_object_get(t, "started_ms"));
    s_time("ended", json_object_get(t, "ended_ms"));
    const char *why = json_string_value(json_object_get(t, "why"));
    if (why) {
        char *c = tw_cli_clean(why);
        printf("  waits: %s\n", c ? c : "?");
        free(c);
    }
    s_value("args:", t, "args");
    if (json_object_get(t, "result") &&
        !json_is_null(json_object_get(t, "result"))) {
        s_value("result:", t, "result");
    }
    json_t *as = json_object_get(t, "attempts");
    size_t i;
    json_t *a;
    json_array_foreach(as, i, a) {
        json_t *s = json_object_get(a, "started_ms");
        json_t *en = json_object_get(a, "ended_ms");
        printf("attempt %" JSON_INTEGER_FORMAT ": %s on worker %"
               JSON_INTEGER_FORMAT,
               json_integer_value(json_object_get(a, "n")),
               json_string_value(json_object_get(a, "state"))
                   ? json_string_value(json_object_get(a, "state"))
                   : "?",
               json_integer_value(json_object_get(a, "worker")));
        if (json_is_integer(en)) {
            printf(", ran %" JSON_INTEGER_FORMAT " ms",
                   json_integer_value(en) - json_integer_value(s));
        }
        printf("\n");
        s_lines("  ", json_object_get(a, "error"));
        s_lines("    ", json_object_get(a, "traceback"));
    }
}

static int
s_show(const tw_cli_env_t *e)
{
    s_opts_t o;
    int code = s_parse(e, "show", 1, &o);
    if (code >= 0) {
        return code;
    }
    if (o.nids != 1) {
        free(o.ids);
        return tw_cli_usage("tasks show needs one task id");
    }
    tw_client_t *c = tw_cli_connect(e, &code);
    if (!c) {
        free(o.ids);
        return code;
    }
    void *data = NULL;
    size_t len = 0;
    int rc = tw_client_tasks_show(c, o.ids, 1, e->timeout_ms, &data, &len);
    if (rc != 0) {
        code = tw_cli_lib_error(e, c, "tasks show", rc);
    } else {
        json_t *v = tw_cli_payload_json(data, len);
        json_t *t = json_array_get(v, 0);
        s_unbin(t, "args");
        s_unbin(t, "result");
        const char *st = json_string_value(json_object_get(t, "state"));
        if (!t || (st && strcmp(st, "unknown") == 0)) {
            code = tw_cli_fail(TW_CLI_FAIL, "tasks show: the broker keeps no "
                               "record of task %" PRIu64, o.ids[0]);
        } else if (e->json) {
            tw_cli_print_json(json_incref(t));
            code = TW_CLI_OK;
        } else {
            s_print_record(t);
            code = TW_CLI_OK;
        }
        json_decref(v);
    }
    free(data);
    free(o.ids);
    tw_client_destroy(&c);
    return code;
}

/* ---- retry, purge ----------------------------------------------------- */

static int
s_act(const tw_cli_env_t *e, const char *op)
{
    s_opts_t o;
    int code = s_parse(e, op, 1, &o);
    if (code >= 0) {
        return code;
    }
    int filtered = o.req.state || o.req.handler || o.req.group ||
                   o.req.text || o.req.since_ms;
    if (o.nids == 0 && !o.req.state) {
        return tw_cli_usage("tasks %s needs task ids, or --failed (or "
                            "--state S) to choose by filter", op);
    }
    if (o.nids && filtered) {
        free(o.ids);
        return tw_cli_usage("tasks %s takes task ids or filters, not both",
                            op);
    }
    tw_client_t *c = tw_cli_connect(e, &code);
    if (!c) {
        free(o.ids);
        return code;
    }
    o.req.ids = o.ids;
    o.req.nids = o.nids;
    o.req.pool = o.nids ? NULL : o.req.pool;
    uint64_t done = 0, refused = 0;
    code = TW_CLI_OK;
    for (int round = 0; round < 100000; round++) {
        void *data = NULL;
        size_t len = 0;
        int rc = strcmp(op, "retry") == 0
                     ? tw_client_tasks_retry(c, &o.req, e->timeout_ms, &data,
                                             &len)
                     : tw_client_tasks_purge(c, &o.req, e->timeout_ms, &data,
                                             &len);
        if (rc != 0) {
            code = tw_cli_lib_error(e, c, op, rc);
            break;
        }
        json_t *v = tw_cli_payload_json(data, len);
        free(data);
        done += json_array_size(json_object_get(v, "done"));
        json_t *ref = json_object_get(v, "refused");
        size_t i;
        json_t *r;
        json_array_foreach(ref, i, r) {
            refused++;
            if (!e->json) {
                const char *why = json_string_value(json_object_get(r,
                                                                    "error"));
                char *c2 = tw_cli_clean(why ? why : "refused");
                tw_cli_fail(TW_CLI_FAIL, "tasks %s: task %" JSON_INTEGER_FORMAT
                            ": %s", op,
                            json_integer_value(json_object_get(r, "id")),
                            c2 ? c2 : "?");
                free(c2);
            }
        }
        int more = json_is_true(json_object_get(v, "more"));
        if (e->json) {
            tw_cli_print_json(json_incref(v));
        }
        json_decref(v);
        if (!more || o.nids) {
            break;
        }
    }
    if (code == TW_CLI_OK && !e->json) {
        printf("%s %" PRIu64 " task(s)\n",
               strcmp(op, "retry") == 0 ? "sent back" : "purged", done);
    }
    if (code == TW_CLI_OK && refused) {
        code = TW_CLI_FAIL;
    }
    free(o.ids);
    tw_client_destroy(&c);
    return code;
}

static int
s_cmd_tasks(const tw_cli_env_t *e)
{
    const char *sub = e->argc > 1 ? e->argv[1] : NULL;
    if (!sub) {
        return tw_cli_usage("tasks needs list, show, retry or purge");
    }
    if (strcmp(sub, "list") == 0) {
        return s_list(e);
    }
    if (strcmp(sub, "show") == 0) {
        return s_show(e);
    }
    if (strcmp(sub, "retry") == 0 || strcmp(sub, "purge") == 0) {
        return s_act(e, sub);
    }
    return tw_cli_usage("tasks: unknown subcommand '%s'", sub);
}

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_tasks[] = {
    {"tasks list",
     "",
     "[--state S|--failed] [--handler H] [--group G]\n"
     "[--since DUR] [--text T] [--limit N]",
     "The tasks the broker keeps, newest change first, N of them\n"
     "(default 50, 0 = all). S is pending, running, ok, failed,\n"
     "error, timeout, lost or cancelled; DUR like 90s, 15m, 2h, 7d;\n"
     "T is searched in the id, handler and error.",
     s_cmd_tasks},
    {"tasks show",
     "ID",
     "",
     "Everything about a task: arguments, result, and each attempt\n"
     "with its error and traceback.",
     s_cmd_tasks},
    {"tasks retry",
     "ID... | --failed [filters]",
     "",
     "Send failed tasks back to their queue: same id, history kept.",
     s_cmd_tasks},
    {"tasks purge",
     "ID... | --failed|--state S [filters]",
     "",
     "Forget ended tasks now.",
     s_cmd_tasks},
    {NULL, NULL, NULL, NULL, NULL},
};
