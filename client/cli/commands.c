/*  client/cli/commands.c - usage and help text made from the command
 *  table (commands.h).
 *
 *  One row prints as
 *
 *      "  " name synopsis-line-1
 *      "  " (as many spaces as "name ") synopsis-line-2 ...
 *      "      " help-line ...
 *
 *  in the manual and in one command's help alike, so the two never
 *  differ.
 */
#include "client/cli/commands.h"

#include <string.h>

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

static void
s_row(FILE *out, const tw_cli_cmd_t *c)
{
    const char *syn = c->synopsis;
    const char *nl = strchr(syn, '\n');
    int first = nl ? (int)(nl - syn) : (int)strlen(syn);
    fprintf(out, "  %s%s%.*s\n", c->name, first ? " " : "", first, syn);
    if (nl) {
        s_lines(out, nl + 1, 3 + (int)strlen(c->name));
    }
    s_lines(out, c->help, 6);
}

void
tw_cli_cmds_manual(FILE *out, const tw_cli_cmd_t *cmds, const char *flags)
{
    fputs("Usage: taskwheel [GLOBAL FLAGS] COMMAND [ARGS]\n"
          "       taskwheel help COMMAND, or COMMAND --help: that command "
          "only\n\nCommands:\n",
          out);
    for (const tw_cli_cmd_t *c = cmds; c->name; c++) {
        s_row(out, c);
    }
    fputs("\n", out);
    fputs(flags, out);
}

int
tw_cli_cmds_help(FILE *out, const tw_cli_cmd_t *cmds, int nwords,
                 char *const *words)
{
    if (nwords < 1 || !tw_cli_cmds_find(cmds, words[0])) {
        return -1;
    }
    /* "station add": that row alone, when there is one. */
    const tw_cli_cmd_t *exact = NULL;
    if (nwords >= 2) {
        size_t n = strlen(words[0]);
        for (const tw_cli_cmd_t *c = cmds; c->name && !exact; c++) {
            if (s_has_word(c, words[0]) && c->name[n] == ' ' &&
                strcmp(c->name + n + 1, words[1]) == 0) {
                exact = c;
            }
        }
    }
    fputs("Usage: taskwheel [GLOBAL FLAGS] COMMAND [ARGS]\n\n", out);
    if (exact) {
        s_row(out, exact);
    } else {
        for (const tw_cli_cmd_t *c = cmds; c->name; c++) {
            if (s_has_word(c, words[0])) {
                s_row(out, c);
            }
        }
    }
    fputs("\nGlobal flags and every command: taskwheel --help\n", out);
    return 0;
}

const tw_cli_cmd_t *
tw_cli_cmds_find(const tw_cli_cmd_t *cmds, const char *word)
{
    for (const tw_cli_cmd_t *c = cmds; c->name; c++) {
        if (s_has_word(c, word)) {
            return c;
        }
    }
    return NULL;
}
