/*  client/cli/cmd_ping.c - `taskwheel ping`: check that the broker
 *  answers and print the round trip.
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"
#include "common/util.h"

#include <stdio.h>

static int
s_cmd_ping(const tw_cli_env_t *o)
{
    int code = tw_cli_no_args(o);
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
        tw_cli_print_json(
            json_pack("{s:s, s:f}", "broker", o->broker, "rtt_ms", ms));
        code = TW_CLI_OK;
    } else {
        printf("pong from %s in %.2f ms\n", o->broker, ms);
        code = TW_CLI_OK;
    }
    tw_client_destroy(&c);
    return code;
}

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_ping[] = {
    {"ping", "", "", "Check that the broker answers.", s_cmd_ping},
    {NULL, NULL, NULL, NULL, NULL},
};
