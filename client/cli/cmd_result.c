/*  client/cli/cmd_result.c - `taskwheel result ID...`: each task's state
 *  and result, one line each or one JSON array.
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"
#include "client/cli/json.h"
#include "proto/proto.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

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
        any_failed |= tw_cli_state_failed(r->state);
        json_t *res = r->state == TW_ST_OK
                          ? tw_cli_payload_json(r->result, r->result_len)
                          : NULL;
        if (o->json) {
            json_array_append_new(
                all, tw_cli_outcome_json(ids[i], r->state, res, r->error,
                                         r->worker, r->attempt));
        } else {
            /* "ID STATE [RESULT-JSON | ERROR]" */
            char *text = res ? tw_json_dumps(res) : NULL;
            char *clean = text       ? tw_cli_clean(text)
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

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_result[] = {
    {"result", "ID...", "", "Print the state and result of each task.",
     s_cmd_result},
    {NULL, NULL, NULL, NULL, NULL},
};
