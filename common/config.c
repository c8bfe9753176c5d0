/*  common/config.c - the table-driven configuration parser.
 *
 *  Precedence, lowest first: the table's defaults, the config file, the
 *  command line. A value is validated the same way whichever way it came.
 */
#include "common/config.h"
#include "common/alloc.h"
#include "common/error.h"
#include "taskwheel/version.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void *
s_field(void *target, const tw_cfg_opt_t *o)
{
    return (char *)target + o->offset;
}

static const tw_cfg_opt_t *
s_find(const tw_cfg_opt_t *table, const char *name, size_t len)
{
    for (const tw_cfg_opt_t *o = table; o->name; o++) {
        if (strlen(o->name) == len && memcmp(o->name, name, len) == 0) {
            return o;
        }
    }
    return NULL;
}

static int
s_choice_ok(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vl && memcmp(p, v, n) == 0) {
            return 1;
        }
        if (!bar) {
            break;
        }
        p = bar + 1;
    }
    return 0;
}

static void
s_list_clear(tw_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        tw_free(l->v[i]);
    }
    tw_free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int
s_apply_as(const tw_cfg_opt_t *o, void *target, const char *value,
           int is_default, char *err, size_t errlen)
{
    void *f = s_field(target, o);
    switch (o->type) {
    case TW_CFG_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!*value || *end || errno) {
            snprintf(err, errlen, "--%s: '%s' is not a whole number", o->name,
                     value);
            return TW_EINVAL;
        }
        if (v < o->min || v > o->max) {
            snprintf(err, errlen, "--%s: %lld is out of range %lld..%lld",
                     o->name, v, o->min, o->max);
            return TW_EINVAL;
        }
        *(long long *)f = v;
        return 0;
    }
    case TW_CFG_BOOL:
        if (!strcmp(value, "yes") || !strcmp(value, "1") ||
            !strcmp(value, "true") || !strcmp(value, "on")) {
            *(int *)f = 1;
        } else if (!strcmp(value, "no") || !strcmp(value, "0") ||
                   !strcmp(value, "false") || !strcmp(value, "off")) {
            *(int *)f = 0;
        } else {
            snprintf(err, errlen, "--%s: '%s' is not yes or no", o->name,
                     value);
            return TW_EINVAL;
        }
        return 0;
    case TW_CFG_ENUM:
        if (!s_choice_ok(o->choices, value)) {
            snprintf(err, errlen, "--%s: '%s' is not one of %s", o->name,
                     value, o->choices);
            return TW_EINVAL;
        }
        /* fallthrough */
    case TW_CFG_STR: {
        char **s = f;
        tw_free(*s);
        *s = tw_strdup(value);
        return 0;
    }
    case TW_CFG_LIST: {
        tw_strlist_t *l = f;
        if (l->from_default && !is_default) {
            s_list_clear(l);
        }
        l->from_default = is_default;
        l->v = tw_realloc(l->v, (l->n + 1) * sizeof *l->v);
        l->v[l->n++] = tw_strdup(value);
        return 0;
    }
    }
    return TW_EINVAL;
}

static int
s_apply(const tw_cfg_opt_t *o, void *target, const char *value, char *err,
        size_t errlen)
{
    return s_apply_as(o, target, value, 0, err, errlen);
}

int
tw_cfg_set(const tw_cfg_opt_t *table, void *target, const char *name,
           const char *value, char *err, size_t errlen)
{
    const tw_cfg_opt_t *o = s_find(table, name, strlen(name));
    if (!o) {
        snprintf(err, errlen, "unknown option '%s'", name);
        return TW_ENOENT;
    }
    return s_apply(o, target, value, err, errlen);
}

int
tw_cfg_load_file(const tw_cfg_opt_t *table, void *target, const char *path,
                 char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "cannot open config file %s: %s", path,
                 strerror(errno));
        return TW_EIO;
    }
    char line[1024];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        char *p = line;
        while (isspace((unsigned char)*p)) {
            p++;
        }
        if (!*p || *p == '#') {
            continue;
        }
        char *end = p + strlen(p);
        while (end > p && isspace((unsigned char)end[-1])) {
            *--end = '\0';
        }
        char *key = p;
        while (*p && !isspace((unsigned char)*p)) {
            p++;
        }
        if (*p) {
            *p++ = '\0';
        }
        while (isspace((unsigned char)*p)) {
            p++;
        }
        char sub[512];
        rc = tw_cfg_set(table, target, key, p, sub, sizeof sub);
        if (rc < 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, sub);
            break;
        }
    }
    fclose(fp);
    return rc;
}

static void
s_defaults(const tw_cfg_opt_t *table, void *target)
{
    char ignore[16];
    for (const tw_cfg_opt_t *o = table; o->name; o++) {
        if (o->dflt) {
            s_apply_as(o, target, o->dflt, 1, ignore, sizeof ignore);
        }
    }
}

int
tw_cfg_parse(const tw_cfg_opt_t *table, void *target, int argc, char **argv,
             const char *usage_head, char *err, size_t errlen)
{
    s_defaults(table, target);
    int dump = 0;
    /* The config file comes first so that flags override it. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            int rc = tw_cfg_load_file(table, target, argv[i + 1], err, errlen);
            if (rc < 0) {
                return TW_EINVAL;
            }
        } else if (!strncmp(argv[i], "--config=", 9)) {
            int rc = tw_cfg_load_file(table, target, argv[i] + 9, err, errlen);
            if (rc < 0) {
                return TW_EINVAL;
            }
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            tw_cfg_usage(table, usage_head, stdout);
            return TW_CFG_EXIT;
        }
        if (!strcmp(a, "--version")) {
            const char *prog = strrchr(argv[0], '/');
            printf("%s %s\n", prog ? prog + 1 : argv[0], tw_version());
            return TW_CFG_EXIT;
        }
        if (!strcmp(a, "--dump-config")) {
            dump = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s'", a);
            return TW_EINVAL;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (nlen == 6 && !memcmp(name, "config", 6)) {
            if (!eq && i + 1 >= argc) {
                snprintf(err, errlen, "option '--config' needs a value");
                return TW_EINVAL;
            }
            i += eq ? 0 : 1;
            continue;
        }
        const tw_cfg_opt_t *o = s_find(table, name, nlen);
        if (!o) {
            snprintf(err, errlen, "unknown option '--%.*s'", (int)nlen, name);
            return TW_EINVAL;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (o->type == TW_CFG_BOOL) {
            value = "yes";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, errlen, "option '--%s' needs a value", o->name);
            return TW_EINVAL;
        }
        if (s_apply(o, target, value, err, errlen) < 0) {
            return TW_EINVAL;
        }
    }
    if (dump) {
        tw_cfg_dump(table, target, stdout);
        return TW_CFG_EXIT;
    }
    return 0;
}

void
tw_cfg_usage(const tw_cfg_opt_t *table, const char *head, FILE *out)
{
    fprintf(out, "%s\n\noptions:\n", head);
    for (const tw_cfg_opt_t *o = table; o->name; o++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s", o->name,
                 o->type == TW_CFG_BOOL ? "" : " VALUE");
        fprintf(out, "  %-24s %s", flag, o->help);
        if (o->type == TW_CFG_ENUM) {
            fprintf(out, " (%s)", o->choices);
        }
        if (o->dflt) {
            fprintf(out, " [default: %s]", o->dflt);
        }
        if (o->type == TW_CFG_LIST) {
            fprintf(out, " (repeatable)");
        }
        fputc('\n', out);
    }
    fprintf(out, "  %-24s %s\n  %-24s %s\n  %-24s %s\n  %-24s %s\n",
            "--config FILE", "read settings from FILE first",
            "--dump-config", "print the effective settings and exit",
            "--help", "show this help", "--version",
            "print the program's name and version");
}

void
tw_cfg_dump(const tw_cfg_opt_t *table, const void *target, FILE *out)
{
    for (const tw_cfg_opt_t *o = table; o->name; o++) {
        const void *f = (const char *)target + o->offset;
        switch (o->type) {
        case TW_CFG_INT:
            fprintf(out, "%s %lld\n", o->name, *(const long long *)f);
            break;
        case TW_CFG_BOOL:
            fprintf(out, "%s %s\n", o->name, *(const int *)f ? "yes" : "no");
            break;
        case TW_CFG_STR:
        case TW_CFG_ENUM: {
            const char *s = *(char *const *)f;
            if (s) {
                fprintf(out, "%s %s\n", o->name, s);
            } else {
                fprintf(out, "# %s (unset)\n", o->name);
            }
            break;
        }
        case TW_CFG_LIST: {
            const tw_strlist_t *l = f;
            for (size_t i = 0; i < l->n; i++) {
                fprintf(out, "%s %s\n", o->name, l->v[i]);
            }
            if (!l->n) {
                fprintf(out, "# %s (none)\n", o->name);
            }
            break;
        }
        }
    }
}

void
tw_cfg_free(const tw_cfg_opt_t *table, void *target)
{
    for (const tw_cfg_opt_t *o = table; o->name; o++) {
        void *f = s_field(target, o);
        if (o->type == TW_CFG_STR || o->type == TW_CFG_ENUM) {
            tw_free(*(char **)f);
            *(char **)f = NULL;
        } else if (o->type == TW_CFG_LIST) {
            s_list_clear(f);
        }
    }
}
