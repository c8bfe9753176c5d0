/*  client/cli/commands.c - the command table (commands.h), and the usage
 *  and help text made from it.
 *
 *  The table is the rows of every command file, in the order of
 *  TW_CLI_COMMAND_FILES, then `help`'s own row. One row prints as
 *
 *      "  " name synopsis-and-options-line-1
 *      "  " (as many spaces as "name ") synopsis-and-options-line-2 ...
 *      "      " help-line ...
 *
 *  in the manual and in one command's help alike, so the two never
 *  differ.
 */
#include "client/cli/commands.h"

#include <string.h>

/* The command files, in the manual's order: XX(name) stands for the rows
 * tw_cli_commands_<name>[] of client/cli/cmd_<name>.c. */
#define TW_CLI_COMMAND_FILES(XX)                                             \
    XX(submit)                                                               \
    XX(graph) /* chain and chord */                                          \
    XX(map)                                                                  \
    XX(pool) /* group and pool */                                            \
    XX(result)                                                               \
    XX(cancel)                                                               \
    XX(tasks)                                                                \
    XX(schedule)                                                             \
    XX(workers)                                                              \
    XX(status)                                                               \
    XX(watch)                                                                \
    XX(events)                                                               \
    XX(station)                                                              \
    XX(ping)                                                                 \
    XX(keygen)

#define S_DECLARE(name) extern const tw_cli_cmd_t tw_cli_commands_##name[];
#define S_ENTRY(name) tw_cli_commands_##name,
TW_CLI_COMMAND_FILES(S_DECLARE)

S_DECLARE(help)

/* Every file's rows, then help's; NULL-terminated. */
static const tw_cli_cmd_t *const s_files[] = {
    TW_CLI_COMMAND_FILES(S_ENTRY) tw_cli_commands_help, NULL};

/* `c`, or if it is a file's end, the first row of the next file with
 * rows; NULL after the last file. *file is the file of the row. */
static const tw_cli_cmd_t *
s_skip(const tw_cli_cmd_t *c, size_t *file)
{
    while (c && !c->name) {
        c = s_files[++*file];
    }
    return c;
}

/* The first row of the whole table, and the row after `c`. */
static const tw_cli_cmd_t *
s_first(size_t *file)
{
    *file = 0;
    return s_skip(s_files[0], file);
}

static const tw_cli_cmd_t *
s_next(const tw_cli_cmd_t *c, size_t *file)
{
    return s_skip(c + 1, file);
}

/* The length of the command word of `name` (up to the first space). */
static size_t
s_word_len(const char *name)
{
    const char *sp = strchr(name, ' ');
    return sp ? (size_t)(sp - name) : strlen(name);
}

/* 1 if row `c` belongs to the command word `word`. */
static int
s_has_word(const tw_cli_cmd_t *c, const char *word)
{
    size_t n = s_word_len(c->name);
    return strlen(word) == n && memcmp(c->name, word, n) == 0;
}

/* Print `text` line by line, each after `indent` spaces. */
static void
s_lines(FILE *out, const char *text, int indent)
{
    while (*text) {
        const char *nl = strchr(text, '\n');
        int len = nl ? (int)(nl - text) : (int)strlen(text);
        fprintf(out, "%*s%.*s\n", len ? indent : 0, "", len, text);
        text += len + (nl ? 1 : 0);
    }
}

/* Print row `c`: its name, synopsis and options, then its help. */
static void
s_row(FILE *out, const tw_cli_cmd_t *c)
{
    char syn[1024];
    snprintf(syn, sizeof syn, "%s%s%s", c->synopsis,
             *c->synopsis && *c->options ? " " : "", c->options);
    const char *nl = strchr(syn, '\n');
    int first = nl ? (int)(nl - syn) : (int)strlen(syn);
    fprintf(out, "  %s%s%.*s\n", c->name, first ? " " : "", first, syn);
    if (nl) {
        s_lines(out, nl + 1, 3 + (int)strlen(c->name));
    }
    s_lines(out, c->help, 6);
}

void
tw_cli_cmds_manual(FILE *out)
{
    size_t f;
    fputs("Usage: taskwheel [GLOBAL FLAGS] COMMAND [ARGS]\n"
          "       taskwheel help COMMAND, or COMMAND --help: that command "
          "only\n\nCommands:\n",
          out);
    for (const tw_cli_cmd_t *c = s_first(&f); c; c = s_next(c, &f)) {
        s_row(out, c);
    }
    fputs("\n", out);
    fputs(tw_cli_global_flags, out);
}

/* The row named "words[0] words[1]" ("station add"), or NULL. */
static const tw_cli_cmd_t *
s_find_sub(const char *word, const char *sub)
{
    size_t f, n = strlen(word);
    for (const tw_cli_cmd_t *c = s_first(&f); c; c = s_next(c, &f)) {
        if (s_has_word(c, word) && c->name[n] == ' ' &&
            strcmp(c->name + n + 1, sub) == 0) {
            return c;
        }
    }
    return NULL;
}

int
tw_cli_cmds_help(FILE *out, int nwords, char *const *words)
{
    if (nwords < 1 || !tw_cli_cmds_find(words[0])) {
        return -1;
    }
    const tw_cli_cmd_t *exact = nwords >= 2 ? s_find_sub(words[0], words[1])
                                            : NULL;
    fputs("Usage: taskwheel [GLOBAL FLAGS] COMMAND [ARGS]\n\n", out);
    if (exact) {
        s_row(out, exact);
    } else {
        size_t f;
        for (const tw_cli_cmd_t *c = s_first(&f); c; c = s_next(c, &f)) {
            if (s_has_word(c, words[0])) {
                s_row(out, c);
            }
        }
    }
    fputs("\nGlobal flags and every command: taskwheel --help\n", out);
    return 0;
}

const tw_cli_cmd_t *
tw_cli_cmds_find(const char *word)
{
    size_t f;
    for (const tw_cli_cmd_t *c = s_first(&f); c; c = s_next(c, &f)) {
        if (s_has_word(c, word)) {
            return c;
        }
    }
    return NULL;
}

/* `taskwheel help [COMMAND [SUBCOMMAND]]`. */
static int
s_cmd_help(const tw_cli_env_t *o)
{
    if (o->argc < 2) {
        tw_cli_cmds_manual(stdout);
        return TW_CLI_OK;
    }
    if (tw_cli_cmds_help(stdout, o->argc - 1, o->argv + 1) != 0) {
        return tw_cli_usage("help: no command '%s'", o->argv[1]);
    }
    return TW_CLI_OK;
}

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_help[] = {
    {"help", "[COMMAND [SUBCOMMAND]]", "",
     "Print one command's help (the same as COMMAND --help), or\n"
     "without a command this manual.",
     s_cmd_help},
    {NULL, NULL, NULL, NULL, NULL},
};
