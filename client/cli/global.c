/*  client/cli/global.c - the taskwheel command's global flags: their
 *  text in the manual and their parsing.
 *
 *  Global flags may appear before or after the command; everything after
 *  a bare "--" is positional. What is not a global flag is left, in
 *  order, as the command's words.
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"
#include "client/cli/secure.h"
#include "proto/proto.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The global flags, printed after the commands in the manual. */
const char tw_cli_global_flags[] =
    "Global flags:\n"
    "  --broker EP        broker frontend; default $TASKWHEEL_BROKER, else\n"
    "                     " TW_CLI_DEFAULT_BROKER "\n"
    "  --status EP        status endpoint (events, station tail); default\n"
    "                     $TASKWHEEL_STATUS, else the one the broker names\n"
    "  --json             print one JSON document on stdout (JSON lines\n"
    "                     for events and station tail) and nothing else\n"
    "  --timeout-ms N     how long to wait for the broker; default 5000\n"
    "  --pool P           the pool of submit, map, group, pool and\n"
    "                     cancel; default \"default\"\n" TW_CLI_SECURE_USAGE_FLAGS
    "  --help             print this help (after a command: its help)\n"
    "  --version          print the version\n"
    "\n"
    "Exit status: 0 ok, 1 operation failed, 2 usage error, 3 broker\n"
    "unreachable.\n";

/* Parse the global flags anywhere in argv, collecting the other words
 * into o->argv; *help is set when --help (or -h) is among them. Returns
 * -1 to continue, or an exit code. */
int
tw_cli_parse_global(int argc, char **argv, tw_cli_env_t *o, int *help)
{
    const char *env;
    o->broker = (env = getenv("TASKWHEEL_BROKER")) && *env
                    ? env
                    : TW_CLI_DEFAULT_BROKER;
    /* NULL: ask the broker (PROTOCOL.md 5.8). */
    o->status = (env = getenv("TASKWHEEL_STATUS")) && *env ? env : NULL;
    o->timeout_ms = TW_CLI_DEFAULT_TIMEOUT_MS;
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
                                    "bytes",
                                    TW_PROTO_MAX_NAME);
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
