/*  client/cli/cmd_cancel.c - `taskwheel cancel ID...`: cancel tasks by id.
 *
 *  The pool forms (--strict, --group G, --all) are cmd_pool.c's
 *  tw_cli_cancel; this file runs the plain form, one CANCEL request,
 *  and says for each id whether it was cancelled, had ended or is
 *  unknown.
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"
#include "client/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

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
            const char *what = s_list_has(json_object_get(v, "cancelled"),
                                          ids[i])
                                   ? "cancelled"
                               : s_list_has(json_object_get(v, "ended"),
                                            ids[i])
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

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_cancel[] = {
    {"cancel", "ID... [--strict] | cancel --group G | cancel --all", "",
     "Cancel tasks; exit 1 if an id is unknown. --strict cancels all\n"
     "or nothing (exit 1 if one is unknown, ended or cancelling);\n"
     "--group cancels a group's tasks, --all every task of the pool.",
     s_cmd_cancel},
    {NULL, NULL, NULL, NULL, NULL},
};
