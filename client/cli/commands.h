/*  client/cli/commands.h - the taskwheel command's table of commands.
 *
 *  Every command is one row: its name (a command word, or a command and
 *  a subcommand: "station add"), its synopsis, its help and the function
 *  that runs it. The table, in main.c, is the one description of the
 *  commands: the manual (`taskwheel --help`), one command's help
 *  (`taskwheel help CMD [SUB]`, `taskwheel CMD [SUB] --help`) and the
 *  dispatch by command word are all made from it, so a command cannot be
 *  runnable and undocumented or the other way round.
 *
 *  Rows that share a first word (station add, station list, ...) share
 *  their `run`: the first such row's is called, and the command sorts out
 *  its subcommand. Text is plain ASCII, lines at most 72 columns.
 */
#ifndef TW_CLI_COMMANDS_H
#define TW_CLI_COMMANDS_H

#include <stdio.h>

#include "client/cli/cli.h"

typedef struct {
    const char *name;     /* "submit", "station add" */
    const char *synopsis; /* the words after the name; each '\n' starts a
                             continuation line; "" for none */
    const char *help;     /* what it does: '\n'-separated lines */
    int (*run)(const tw_cli_env_t *e);
} tw_cli_cmd_t;

/* Print the manual: the usage line, every row of `cmds` (which ends with
 * a row whose name is NULL), then `flags` (the global flags' text). */
void tw_cli_cmds_manual(FILE *out, const tw_cli_cmd_t *cmds,
                        const char *flags);

/* Print the help of the command named by words[0] and, if given and a
 * row is named so, words[1]: that row alone, or else every row of the
 * command word. Returns 0, or -1 (printing nothing) when no row has the
 * command word. */
int tw_cli_cmds_help(FILE *out, const tw_cli_cmd_t *cmds, int nwords,
                     char *const *words);

/* The first row whose command word is `word`, or NULL. */
const tw_cli_cmd_t *tw_cli_cmds_find(const tw_cli_cmd_t *cmds,
                                     const char *word);

/* `chain` and `chord` (cmd_graph.c): rows of the table in main.c. */
int tw_cli_chain(const tw_cli_env_t *e);
int tw_cli_chord(const tw_cli_env_t *e);
#define TW_CLI_GRAPH_ROWS                                                    \
    {"chain",                                                                \
     "[--group G] [--timeout S] [--retries N] [--wait]\n"                    \
     "HANDLER [ARGS-JSON] -- HANDLER [ARGS-JSON] [-- ...]",                  \
     "Submit a chain in one request: each step (steps are separated\n"       \
     "by --) runs once the one before succeeded, with its result\n"          \
     "first in its arguments. All or nothing: if one step is refused,\n"     \
     "nothing is submitted (exit 1, saying why). If a step fails, the\n"     \
     "rest end cancelled (\"upstream failed\"). Prints the task ids,\n"      \
     "one a line; --wait prints the last step's result instead (exit\n"     \
     "1 if it failed). --group G: every step joins G, so `cancel\n"          \
     "--group G` cancels the chain. Options come before the first\n"        \
     "step (docs/WORKFLOWS.md).",                                            \
     tw_cli_chain},                                                          \
    {"chord",                                                                \
     "[--group G] [--timeout S] [--retries N] [--wait]\n"                    \
     "HANDLER [ARGS-JSON] [-- HANDLER [ARGS-JSON]]...\n"                     \
     "--then HANDLER [ARGS-JSON]",                                           \
     "Submit a chord in one request: the tasks before --then run in\n"       \
     "parallel; the callback after it runs once they all succeeded,\n"      \
     "with their results, in order, before its own arguments. All or\n"     \
     "nothing, ids, --wait and --group as for chain; the callback's\n"      \
     "id is printed last.",                                                  \
     tw_cli_chord},

/* `schedule add|list|show|pause|resume|remove|run-now` (cmd_schedule.c);
 * e->argv[0] is "schedule". Its rows of the command table follow. */
int tw_cli_schedule(const tw_cli_env_t *e);
#define TW_CLI_SCHEDULE_ROWS                                                 \
    {"schedule add",                                                         \
     "NAME 'CRON' HANDLER [ARGS-JSON] [--tz ZONE]\n"                         \
     "[--overlap skip|queue|cancel-previous]\n"                              \
     "[--catch-up none|last|all] [--timeout S] [--retries N]\n"              \
     "[--priority P] [--group G]... [--delay S]",                            \
     "Submit the task at every tick of CRON (five fields, or\n"              \
     "@hourly, @daily, @every 10s ...) in ZONE (default UTC), from\n"        \
     "the broker itself, each tick exactly once across restarts.\n"          \
     "--overlap: what a tick does while the last task runs;\n"               \
     "--catch-up: which ticks missed while the broker was down fire\n"       \
     "(docs/WORKFLOWS.md).",                                                 \
     tw_cli_schedule},                                                       \
    {"schedule list", "", "Every schedule, one line each.",                  \
     tw_cli_schedule},                                                       \
    {"schedule show", "NAME", "One schedule.", tw_cli_schedule},             \
    {"schedule pause", "NAME", "Stop firing it.", tw_cli_schedule},          \
    {"schedule resume", "NAME",                                              \
     "Fire it again from the next tick on (the paused ones are not\n"        \
     "caught up).",                                                          \
     tw_cli_schedule},                                                       \
    {"schedule remove", "NAME",                                              \
     "Forget it (its running tasks run on).", tw_cli_schedule},              \
    {"schedule run-now", "NAME",                                             \
     "Submit its task now, outside the ticks, and print its id.",            \
     tw_cli_schedule},

#endif /* TW_CLI_COMMANDS_H */
