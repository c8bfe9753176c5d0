/*  client/cli/cmd_graph.c - `taskwheel chain` and `taskwheel chord`: a task
 *  graph in one request (taskwheel/graph.h, PROTOCOL.md 18.9).
 *
 *      taskwheel chain [OPTIONS] H1 [ARGS1] -- H2 [ARGS2] [-- H3 ...]
 *      taskwheel chord [OPTIONS] H1 [ARGS1] [-- H2 [ARGS2]]... --then HC [ARGSC]
 *
 *  Steps are separated by `--`; a chord's callback comes after `--then`.
 *  Options come before the first step: --group G (every task joins it, so
 *  `cancel --group G` cancels the graph), --timeout S and --retries N
 *  (for every task), --wait (print the last task's result, exit 1 if it
 *  failed). Without --wait the task ids are printed, one a line, in the
 *  order given (a chord's callback last). The graph is admitted all or
 *  nothing: a refused step refuses the whole graph (exit 1, naming why).
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"
#include "client/cli/json.h"
#include "client/internal.h"
#include "common/error.h"
#include "common/util.h"
#include "taskwheel/graph.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One command line's graph. */
typedef struct {
    tw_task_spec_t *specs;
    size_t n;
    size_t then; /* chord: index of the callback, or n if none yet */
    const char *group;
    int wait;
    uint32_t timeout_ms;
    uint32_t retries;
} s_graph_t;

/* The outcome of the task --wait waits for. */
typedef struct {
    uint64_t id;
    int done, state;
    json_t *result;
    char *error;
} s_last_t;

static void
s_on_result(void *arg, const tw_result_t *r)
{
    s_last_t *l = arg;
    if (l->id == 0 || r->id != l->id || l->done ||
        r->state >= TW_ST_PENDING) {
        return;
    }
    l->done = 1;
    l->state = r->state;
    l->result = tw_cli_payload_json(r->result, r->result_len);
    l->error = r->error ? strdup(r->error) : NULL;
}

static void
s_free(s_graph_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free((void *)g->specs[i].args);
    }
    free(g->specs);
}

/* Read the words into `g`: -1, or an exit code after saying why. */
static int
s_parse(const tw_cli_env_t *e, int chord, s_graph_t *g)
{
    const char *cmd = chord ? "chord" : "chain";
    int i = 1;
    for (; i < e->argc && strncmp(e->argv[i], "--", 2) == 0 &&
           strcmp(e->argv[i], "--") != 0 && strcmp(e->argv[i], "--then") != 0;
         i++) {
        const char *val;
        int r;
        int64_t v;
        uint64_t ms;
        int code;
        if (strcmp(e->argv[i], "--wait") == 0) {
            g->wait = 1;
        } else if ((r = tw_cli_flag(e->argc, e->argv, &i, "--group", &val)) !=
                   0) {
            if (r < 0 || !*val || strlen(val) > TW_PROTO_MAX_NAME) {
                return tw_cli_usage("--group needs a group name of 1 to %d "
                                    "bytes", TW_PROTO_MAX_NAME);
            }
            g->group = val;
        } else if ((r = tw_cli_flag(e->argc, e->argv, &i, "--timeout",
                                    &val)) != 0) {
            if ((code = tw_cli_flag_ms("--timeout", r, val, &ms)) >= 0) {
                return code;
            }
            g->timeout_ms = (uint32_t)ms;
        } else if ((r = tw_cli_flag(e->argc, e->argv, &i, "--retries",
                                    &val)) != 0) {
            if (r < 0 || tw_cli_int(val, 0, UINT32_MAX, &v)) {
                return tw_cli_usage("--retries needs a count >= 0");
            }
            g->retries = (uint32_t)v;
        } else {
            return tw_cli_usage("%s: unknown option '%s' (options come "
                                "before the first step)", cmd, e->argv[i]);
        }
    }
    g->specs = calloc((size_t)e->argc, sizeof *g->specs);
    if (!g->specs) {
        return tw_cli_fail(TW_CLI_FAIL, "out of memory");
    }
    g->then = SIZE_MAX;
    int words = 0; /* words of the current step */
    for (; i <= e->argc; i++) {
        const char *a = i < e->argc ? e->argv[i] : NULL;
        int sep = a && (strcmp(a, "--") == 0 || strcmp(a, "--then") == 0);
        if (!a || sep) {
            if (words == 0) {
                return tw_cli_usage("%s: an empty step (each step is "
                                    "HANDLER [ARGS-JSON])", cmd);
            }
            if (a && strcmp(a, "--then") == 0) {
                if (!chord || g->then != SIZE_MAX) {
                    return tw_cli_usage("%s: --then %s", cmd,
                                        chord ? "comes once, before the "
                                                "callback"
                                              : "is for chords only");
                }
                g->then = g->n;
            }
            words = 0;
            continue;
        }
        if (words == 2) {
            return tw_cli_usage("%s: a step is HANDLER [ARGS-JSON]; "
                                "unexpected '%s' (separate steps with --)",
                                cmd, a);
        }
        tw_task_spec_t *s = &g->specs[words ? g->n - 1 : g->n++];
        if (words == 0) {
            if (strlen(a) > TW_PROTO_MAX_NAME || a[0] == '-') {
                return tw_cli_usage("%s: '%s' is not a handler name", cmd, a);
            }
            s->handler = a;
            s->timeout_ms = g->timeout_ms;
            s->retries = g->retries;
            s->pool = e->pool;
        } else {
            char err[256];
            void *args;
            size_t alen;
            int rc = tw_json_to_msgpack(a, &args, &alen, err, sizeof err);
            if (rc != 0) {
                return tw_cli_usage("%s: ARGS-JSON of step %zu (%s) is %s%s",
                                    cmd, g->n, s->handler,
                                    rc == TW_E2BIG ? "" : "not valid JSON: ",
                                    err);
            }
            s->args = args;
            s->args_len = alen;
        }
        words++;
    }
    if (chord && (g->then == SIZE_MAX || g->then != g->n - 1)) {
        return tw_cli_usage("chord needs its fan-out, then --then and ONE "
                            "callback: H1 [ARGS] [-- H2 [ARGS]]... --then "
                            "HC [ARGS]");
    }
    if (!chord && g->n < 2) {
        return tw_cli_usage("chain needs at least two steps separated by "
                            "--: H1 [ARGS] -- H2 [ARGS]");
    }
    if (g->n > TW_GRAPH_MAX_NODES) {
        return tw_cli_usage("%s: at most %d tasks", cmd, TW_GRAPH_MAX_NODES);
    }
    return -1;
}

/* Wait for the outcome of the last task and print it. */
static int
s_wait(const tw_cli_env_t *e, tw_client_t *c, s_last_t *l)
{
    int quiet_ms = e->timeout_ms < 1000 ? e->timeout_ms : 1000;
    while (!l->done) {
        int rc = tw_client_poll(c, quiet_ms);
        if (rc < 0) {
            return tw_cli_lib_error(e, c, "wait", rc);
        }
        if (rc == 0 && !l->done) {
            /* Quiet: ask, which also proves the broker is there. */
            tw_result_t *r = NULL;
            rc = tw_client_result(c, l->id, e->timeout_ms, &r);
            if (rc != 0) {
                return tw_cli_lib_error(e, c, "wait", rc);
            }
            s_on_result(l, r);
            tw_result_free(&r);
        }
    }
    if (l->state == TW_ST_OK) {
        tw_cli_print_json(l->result);
        l->result = NULL;
        return TW_CLI_OK;
    }
    char *err = l->error ? tw_cli_clean(l->error) : NULL;
    tw_cli_fail(TW_CLI_FAIL, "task %" PRIu64 " failed (%s)%s%s", l->id,
                tw_proto_state_name(l->state), err ? ": " : "",
                err ? err : "");
    free(err);
    return TW_CLI_FAIL;
}

static int
s_run(const tw_cli_env_t *e, int chord)
{
    s_graph_t g;
    memset(&g, 0, sizeof g);
    int code = s_parse(e, chord, &g);
    if (code >= 0) {
        s_free(&g);
        return code;
    }
    tw_client_t *c = tw_cli_connect(e, &code);
    if (!c) {
        s_free(&g);
        return code;
    }
    s_last_t last;
    memset(&last, 0, sizeof last);
    tw_client_on_result(c, s_on_result, &last);
    uint64_t *ids = calloc(g.n, sizeof *ids);
    char err[512];
    int rc = !ids ? TW_ENOMEM
             : chord ? tw_client_chord(c, g.specs, g.n - 1, &g.specs[g.n - 1],
                                       g.group, ids, e->timeout_ms, err,
                                       sizeof err)
                     : tw_client_chain(c, g.specs, g.n, g.group, ids,
                                       e->timeout_ms, err, sizeof err);
    if (rc == TW_ETIMEDOUT) {
        code = tw_cli_unreachable(e);
    } else if (rc == TW_EINVAL || rc == TW_E2BIG) {
        code = tw_cli_usage("cannot submit the %s: %s", chord ? "chord"
                                                              : "chain",
                            tw_strerror(rc));
    } else if (rc != 0) {
        char *clean = tw_cli_clean(err);
        code = tw_cli_fail(TW_CLI_FAIL, "the %s was refused, nothing was "
                           "submitted: %s", chord ? "chord" : "chain",
                           clean ? clean : tw_strerror(rc));
        free(clean);
    } else if (g.wait) {
        last.id = ids[g.n - 1];
        code = s_wait(e, c, &last);
    } else if (e->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < g.n; i++) {
            json_array_append_new(arr, json_integer((json_int_t)ids[i]));
        }
        tw_cli_print_json(json_pack("{s:o}", "ids", arr));
        code = TW_CLI_OK;
    } else {
        for (size_t i = 0; i < g.n; i++) {
            printf("%" PRIu64 "\n", ids[i]);
        }
        code = TW_CLI_OK;
    }
    json_decref(last.result);
    free(last.error);
    free(ids);
    tw_client_destroy(&c);
    s_free(&g);
    return code;
}

static int
s_cmd_chain(const tw_cli_env_t *e)
{
    return s_run(e, 0);
}

static int
s_cmd_chord(const tw_cli_env_t *e)
{
    return s_run(e, 1);
}

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_graph[] = {
    {"chain",
     "[--group G] [--timeout S] [--retries N] [--wait]\n"
     "HANDLER [ARGS-JSON] -- HANDLER [ARGS-JSON] [-- ...]",
     "",
     "Submit a chain in one request: each step (steps are separated\n"
     "by --) runs once the one before succeeded, with its result\n"
     "first in its arguments. All or nothing: if one step is refused,\n"
     "nothing is submitted (exit 1, saying why). If a step fails, the\n"
     "rest end cancelled (\"upstream failed\"). Prints the task ids,\n"
     "one a line; --wait prints the last step's result instead (exit\n"
     "1 if it failed). --group G: every step joins G, so `cancel\n"
     "--group G` cancels the chain. Options come before the first\n"
     "step (docs/WORKFLOWS.md).",
     s_cmd_chain},
    {"chord",
     "[--group G] [--timeout S] [--retries N] [--wait]\n"
     "HANDLER [ARGS-JSON] [-- HANDLER [ARGS-JSON]]...\n"
     "--then HANDLER [ARGS-JSON]",
     "",
     "Submit a chord in one request: the tasks before --then run in\n"
     "parallel; the callback after it runs once they all succeeded,\n"
     "with their results, in order, before its own arguments. All or\n"
     "nothing, ids, --wait and --group as for chain; the callback's\n"
     "id is printed last.",
     s_cmd_chord},
    {NULL, NULL, NULL, NULL, NULL},
};
