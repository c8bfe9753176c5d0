/*  client/cli/cmd_workers.c - `taskwheel workers [drain|resize]`.
 *
 *  `workers` alone lists the connected workers (one QUERY) as a table.
 *  `workers drain NAME|ID` and `workers resize NAME|ID SLOTS` send one
 *  WORKER request (proto/PROTOCOL.md 5.18) and print the workers it
 *  applied to, one line each, or the reply as JSON with --json. NAME is
 *  tried as a worker name first: a number that is no worker's name is
 *  then taken as a worker id (the ID column of `taskwheel workers`), so
 *  a worker can be picked alone when several share a name. The slot count
 *  is passed on as given: the broker judges it (1..65536), so the CLI and
 *  every other client refuse the same things with the same message.
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *
s_str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "?";
}

static long long
s_int(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

/* One line per worker: "worker 3 w1 (host) draining: 4 slots, 2 running,
 * 1 station". */
static void
s_print(json_t *v, int resize)
{
    json_t *ws = json_object_get(v, "workers");
    size_t i;
    json_t *w;
    json_array_foreach(ws, i, w) {
        char *name = tw_cli_clean(s_str(w, "name"));
        char *host = tw_cli_clean(s_str(w, "host"));
        char *state = tw_cli_clean(s_str(w, "state"));
        printf("worker %lld %s (%s) %s: %lld slots%s, %lld running, %lld "
               "station(s)\n", s_int(w, "id"), name ? name : "?",
               host ? host : "?", state ? state : "?", s_int(w, "slots"),
               resize ? " from now on" : "", s_int(w, "running"),
               s_int(w, "stations"));
        free(name);
        free(host);
        free(state);
    }
}

static int
s_workers_op(const tw_cli_env_t *e)
{
    const char *op = e->argv[1];
    int resize = strcmp(op, "resize") == 0;
    int want = resize ? 2 : 1;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    tw_cli_words_t w = tw_cli_words(e, 2);
    const char *word;
    while ((word = tw_cli_next_word(&w))) {
        if (tw_cli_is_flag(&w)) {
            return tw_cli_usage("workers %s: unknown option '%s'", op, word);
        }
        if (npos == want) {
            return tw_cli_usage("workers %s: unexpected '%s'", op, word);
        }
        pos[npos++] = word;
    }
    if (npos < want) {
        return tw_cli_usage(resize ? "workers resize needs NAME|ID and SLOTS"
                                   : "workers drain needs NAME|ID");
    }
    tw_worker_req_t req = {op, pos[0], 0, 0};
    if (resize && tw_cli_u64(pos[1], &req.slots) != 0) {
        return tw_cli_usage("workers resize: SLOTS must be a number, not "
                            "'%s'", pos[1]);
    }
    int code;
    tw_client_t *c = tw_cli_connect(e, &code);
    if (!c) {
        return code;
    }
    void *data = NULL;
    size_t len = 0;
    int rc = tw_client_worker(c, &req, e->timeout_ms, &data, &len);
    uint64_t id;
    if (rc == TW_ENOENT && tw_cli_u64(pos[0], &id) == 0 && id > 0) {
        /* No worker has this name: it is an id. */
        req.name = NULL;
        req.wid = id;
        rc = tw_client_worker(c, &req, e->timeout_ms, &data, &len);
    }
    char what[64];
    snprintf(what, sizeof what, "workers %s", op);
    json_t *v = NULL;
    if (rc != 0) {
        code = tw_cli_lib_error(e, c, what, rc);
    } else if (!(v = tw_cli_payload_json(data, len))) {
        code = tw_cli_fail(TW_CLI_FAIL, "out of memory");
    } else if (e->json) {
        tw_cli_print_json(v);
        code = TW_CLI_OK;
    } else {
        s_print(v, resize);
        json_decref(v);
        code = TW_CLI_OK;
    }
    free(data);
    tw_client_destroy(&c);
    return code;
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
    static const tw_cli_listing_t listing = {keys, titles,
                                        sizeof keys / sizeof keys[0],
                                        "no workers connected"};
    if (o->argc > 1 && (strcmp(o->argv[1], "drain") == 0 ||
                        strcmp(o->argv[1], "resize") == 0)) {
        return s_workers_op(o);
    }
    int code = tw_cli_no_args(o);
    if (code >= 0) {
        return code;
    }
    json_t *v = tw_cli_query(o, "workers", &code);
    return tw_cli_reply(o, v, code, JSON_ARRAY, tw_cli_print_listing, &listing);
}

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_workers[] = {
    {"workers",
     "",
     "",
     "List the connected workers.",
     s_cmd_workers},
    {"workers drain",
     "NAME|ID",
     "",
     "Stop giving the worker work, move its stations away, let its\n"
     "running tasks finish, then let it exit. NAME applies to every\n"
     "worker of that name; a number that is no worker's name is an id.",
     s_cmd_workers},
    {"workers resize",
     "NAME|ID SLOTS",
     "",
     "Change a running worker's slot count (1..65536).",
     s_cmd_workers},
    {NULL, NULL, NULL, NULL, NULL},
};
