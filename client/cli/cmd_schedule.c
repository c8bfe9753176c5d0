/*  client/cli/cmd_schedule.c - `taskwheel schedule add|list|show|pause|
 *  resume|remove|run-now`: the broker's cron schedules (proto/PROTOCOL.md
 *  18.11, docs/WORKFLOWS.md 3).
 *
 *  `schedule add NAME 'CRON' HANDLER [ARGS-JSON]` takes the task options
 *  of submit (--timeout, --retries, --priority, and --group, --delay,
 *  --at of tw_cli_submit_flag; --key and --after are refused, since a
 *  fired task has neither) and --tz, --overlap, --catch-up. Every other
 *  subcommand names one schedule, but list. Output is one line per
 *  schedule (or the task id for run-now), or the REPLY data as JSON with
 *  --json. The broker judges names, expressions, zones and policies, so
 *  the CLI and every other client refuse the same things with the same
 *  words.
 */
#include "cli.h"
#include "client/cli/commands.h"
#include "client/cli/json.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A field of `o` as text: a string, a number, or "-". */
static char *
s_cell(json_t *v)
{
    char buf[64];
    if (json_is_string(v)) {
        return tw_cli_clean(json_string_value(v));
    }
    if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        return strdup(buf);
    }
    if (json_is_boolean(v)) {
        return strdup(json_is_true(v) ? "yes" : "no");
    }
    if (json_is_array(v)) {
        snprintf(buf, sizeof buf, "%zu", json_array_size(v));
        return strdup(buf);
    }
    return strdup("-");
}

/* "next" as an RFC 3339 time in UTC, or "-". */
static char *
s_next_cell(json_t *v)
{
    if (!json_is_integer(v)) {
        return strdup("-");
    }
    time_t t = (time_t)(json_integer_value(v) / 1000);
    struct tm tm;
    char buf[32];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return strdup(buf);
}

/* Schedule info rows (one or many) as a table. */
static int
s_print(json_t *rows)
{
    static const char *const keys[] = {"name", "cron", "tz", "paused",
                                       "next", "live", "fired", "skipped",
                                       "overlap", "catchup"};
    static const char *const titles[] = {"NAME", "CRON", "TZ", "PAUSED",
                                         "NEXT", "LIVE", "FIRED", "SKIPPED",
                                         "OVERLAP", "CATCH-UP"};
    /* "next" is a time: print it as one. */
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) {
        char *n = s_next_cell(json_object_get(r, "next"));
        json_object_set_new(r, "next", json_string(n ? n : "-"));
        free(n);
    }
    return tw_cli_print_table(rows, keys, titles, sizeof keys / sizeof *keys,
                              s_cell);
}

/* The flags of `schedule add` into req and spec; the positionals into
 * pos[0..4). Returns -1 or an exit code. */
static int
s_add_words(const tw_cli_env_t *e, tw_schedule_req_t *req,
            tw_task_spec_t *spec, tw_cli_submit_ext_t *x, const char **pos,
            int *npos)
{
    tw_cli_words_t w = tw_cli_words(e, 2);
    const char *a;
    while ((a = tw_cli_next_word(&w)) != NULL) {
        const char *val;
        int r, code;
        int64_t v;
        uint64_t ms;
        if (!tw_cli_is_flag(&w)) {
            if (*npos == 4) {
                return tw_cli_usage("schedule add: unexpected '%s'", a);
            }
            pos[(*npos)++] = a;
        } else if ((r = tw_cli_word_flag(&w, "--tz", &req->tz)) != 0 ||
                   (r = tw_cli_word_flag(&w, "--overlap", &req->overlap)) !=
                       0 ||
                   (r = tw_cli_word_flag(&w, "--catch-up", &req->catchup)) !=
                       0) {
            if (r < 0) {
                return tw_cli_usage("schedule add: %s needs a value", a);
            }
        } else if ((r = tw_cli_word_flag(&w, "--timeout", &val)) != 0) {
            if ((code = tw_cli_flag_ms("--timeout", r, val, &ms)) >= 0) {
                return code;
            }
            spec->timeout_ms = (uint32_t)ms;
        } else if ((r = tw_cli_word_flag(&w, "--retries", &val)) != 0) {
            if (r < 0 || tw_cli_int(val, 0, UINT32_MAX, &v)) {
                return tw_cli_usage("--retries needs a count >= 0");
            }
            spec->retries = (uint32_t)v;
        } else if ((r = tw_cli_word_flag(&w, "--priority", &val)) != 0) {
            if (r < 0 || tw_cli_int(val, INT32_MIN, INT32_MAX, &v)) {
                return tw_cli_usage("--priority needs an integer");
            }
            spec->priority = (int32_t)v;
        } else if ((r = tw_cli_submit_flag(x, w.argc, w.argv, &w.i)) != 0) {
            if (r != 1) {
                return r;
            }
            if (x->key || x->nafter) {
                return tw_cli_usage("schedule add: a scheduled task has no "
                                    "--key and no --after");
            }
        } else {
            return tw_cli_usage("schedule add: unknown option '%s'", a);
        }
    }
    if (*npos < 3) {
        return tw_cli_usage("schedule add needs NAME, 'CRON' and HANDLER");
    }
    return -1;
}

static int
s_cmd_schedule(const tw_cli_env_t *e)
{
    if (e->argc < 2) {
        return tw_cli_usage("schedule needs add, list, show, pause, resume, "
                            "remove or run-now");
    }
    const char *op = e->argv[1];
    static const char *const ops[] = {"add",    "list",   "show",
                                      "pause",  "resume", "remove",
                                      "run-now", NULL};
    int known = 0;
    for (const char *const *o = ops; *o; o++) {
        known |= strcmp(*o, op) == 0;
    }
    if (!known) {
        return tw_cli_usage("schedule: unknown subcommand '%s'", op);
    }
    tw_schedule_req_t req = {0};
    req.op = op;
    tw_task_spec_t spec = {0};
    static tw_cli_submit_ext_t x; /* large: not on the stack */
    memset(&x, 0, sizeof x);
    void *args = NULL;
    int code;
    if (strcmp(op, "add") == 0) {
        const char *pos[4] = {NULL, NULL, NULL, NULL};
        int npos = 0;
        if ((code = s_add_words(e, &req, &spec, &x, pos, &npos)) >= 0) {
            return code;
        }
        req.name = pos[0];
        req.cron = pos[1];
        spec.handler = pos[2];
        tw_cli_submit_apply(&x, e->pool, &spec);
        if (pos[3]) {
            char err[256];
            size_t alen = 0;
            if (tw_json_to_msgpack(pos[3], &args, &alen, err, sizeof err)) {
                return tw_cli_fail(TW_CLI_USAGE, "ARGS-JSON is not valid "
                                   "JSON: %s", err);
            }
            spec.args = args;
            spec.args_len = alen;
        }
        req.task = &spec;
    } else if (strcmp(op, "list") != 0) {
        if (e->argc != 3 || e->argv[2][0] == '-') {
            return tw_cli_usage("schedule %s needs NAME (and nothing else)",
                                op);
        }
        req.name = e->argv[2];
    } else if (e->argc != 2) {
        return tw_cli_usage("schedule list: unexpected '%s'", e->argv[2]);
    }
    char what[64];
    snprintf(what, sizeof what, "schedule %s", op);
    json_t *v = tw_cli_request(e, what, TW_CLI_REQ_SCHEDULE, &req, &code);
    free(args);
    if (!v) {
        return code;
    }
    if (e->json) {
        tw_cli_print_json(v);
        return TW_CLI_OK;
    }
    code = TW_CLI_OK;
    if (strcmp(op, "run-now") == 0) {
        printf("%lld\n",
               (long long)json_integer_value(json_object_get(v, "id")));
    } else if (strcmp(op, "remove") == 0) {
        printf("schedule %s removed\n", req.name);
    } else if (json_is_array(v)) {
        code = s_print(v);
    } else {
        json_t *rows = json_array();
        json_array_append(rows, v);
        code = s_print(rows);
        json_decref(rows);
    }
    json_decref(v);
    return code;
}

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_schedule[] = {
    {"schedule add", "NAME 'CRON' HANDLER [ARGS-JSON]",
     "[--tz ZONE] [--overlap skip|queue|cancel-previous]\n"
     "[--catch-up none|last|all] [--timeout S] [--retries N]\n"
     "[--priority P] [--group G]... [--delay S]",
     "Submit the task at every tick of CRON (five fields, or\n"
     "@hourly, @daily, @every 10s ...) in ZONE (default UTC), from\n"
     "the broker itself, each tick exactly once across restarts.\n"
     "--overlap: what a tick does while the last task runs;\n"
     "--catch-up: which ticks missed while the broker was down fire\n"
     "(docs/WORKFLOWS.md).",
     s_cmd_schedule},
    {"schedule list", "", "", "Every schedule, one line each.",
     s_cmd_schedule},
    {"schedule show", "NAME", "", "One schedule.", s_cmd_schedule},
    {"schedule pause", "NAME", "", "Stop firing it.", s_cmd_schedule},
    {"schedule resume", "NAME", "",
     "Fire it again from the next tick on (the paused ones are not\n"
     "caught up).",
     s_cmd_schedule},
    {"schedule remove", "NAME", "", "Forget it (its running tasks run on).",
     s_cmd_schedule},
    {"schedule run-now", "NAME", "",
     "Submit its task now, outside the ticks, and print its id.",
     s_cmd_schedule},
    {NULL, NULL, NULL, NULL, NULL},
};
