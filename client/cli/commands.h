/*  client/cli/commands.h - the taskwheel command's table of commands.
 *
 *  Every command is one row: its name (a command word, or a command and
 *  a subcommand: "station add"), its synopsis (its arguments), its
 *  options, its help and the function that runs it. In the synopsis and
 *  the options each '\n' starts a continuation line. Each cmd_<name>.c
 *  defines the rows of its commands as tw_cli_commands_<name>[], and
 *  commands.c lists those arrays in one place; together they are the one
 *  description of the commands: the manual (`taskwheel --help`), one
 *  command's help (`taskwheel help CMD [SUB]`, `taskwheel CMD [SUB]
 *  --help`) and the dispatch by command word are all made from it, so a
 *  command cannot be runnable and undocumented or the other way round.
 *
 *  Rows that share a first word (station add, station list, ...) share
 *  their `run`: the first such row's is called, and the command sorts out
 *  its subcommand. Text is plain ASCII, lines at most 72 columns.
 *
 *  Adding a command: write cmd_<name>.c with its run function and its
 *  tw_cli_commands_<name>[] rows (ended by a row whose name is NULL), add one
 *  XX(<name>) line to TW_CLI_COMMAND_FILES in commands.c and the file to
 *  client/CMakeLists.txt.
 */
#ifndef TW_CLI_COMMANDS_H
#define TW_CLI_COMMANDS_H

#include <stdio.h>

#include "client/cli/cli.h"

typedef struct {
    const char *name;     /* "submit", "station add" */
    const char *synopsis; /* its arguments ("ID DATA-JSON"); "" for none */
    const char *options;  /* its options ("[--count N] [--for S]"), shown
                             after the synopsis; "" for none; where options
                             and alternatives mix ("ID... [--strict] |
                             --all") or options come first (chain), all
                             of it is the synopsis */
    const char *help;     /* what it does: '\n'-separated lines */
    int (*run)(const tw_cli_env_t *e);
} tw_cli_cmd_t;

/* Print the manual: the usage line, every row of the table, then the
 * global flags. */
void tw_cli_cmds_manual(FILE *out);

/* Print the help of the command named by words[0] and, if given and a
 * row is named so, words[1]: that row alone, or else every row of the
 * command word. Returns 0, or -1 (printing nothing) when no row has the
 * command word. */
int tw_cli_cmds_help(FILE *out, int nwords, char *const *words);

/* The first row whose command word is `word`, or NULL. */
const tw_cli_cmd_t *tw_cli_cmds_find(const char *word);

#endif /* TW_CLI_COMMANDS_H */
