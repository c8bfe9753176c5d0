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
 *  This file only parses the global flags (global.c) and runs the command
 *  the table names (commands.h); each command lives in its own
 *  cmd_<name>.c.
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --help alone is the manual; with a command, its help. */
static int
s_help(const tw_cli_env_t *o)
{
    if (o->argc == 0) {
        tw_cli_cmds_manual(stdout);
        return TW_CLI_OK;
    }
    if (tw_cli_cmds_help(stdout, o->argc, o->argv) == 0) {
        return TW_CLI_OK;
    }
    return tw_cli_usage("unknown command '%s'", o->argv[0]);
}

/* Run the command the words of `o` name. */
static int
s_run(const tw_cli_env_t *o)
{
    if (o->argc == 0) {
        tw_cli_cmds_manual(stderr);
        return TW_CLI_USAGE;
    }
    if (o->argv[0][0] == '-') {
        return tw_cli_usage("unknown option '%s'", o->argv[0]);
    }
    const tw_cli_cmd_t *cmd = tw_cli_cmds_find(o->argv[0]);
    return cmd ? cmd->run(o)
               : tw_cli_usage("unknown command '%s'", o->argv[0]);
}

int
main(int argc, char **argv)
{
    tw_cli_env_t o;
    memset(&o, 0, sizeof o);
    tw_log_open("taskwheel", TW_LOG_STDERR);

    int help = 0;
    int code = tw_cli_parse_global(argc, argv, &o, &help);
    if (code < 0) {
        code = help ? s_help(&o) : s_run(&o);
    }
    free(o.argv);
    return code;
}
