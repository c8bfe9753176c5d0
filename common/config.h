/*  common/config.h - one table drives flags, config files and validation.
 *
 *  A daemon describes each setting once, in a tw_cfg_opt_t table: name,
 *  type, range, default, where it is stored and a line of help. From that
 *  table this module sets defaults, reads a config file (`key value` lines,
 *  `#` comments, like redis.conf), applies `--key value` / `--key=value`
 *  flags over it, validates ranges and choices, prints usage with each
 *  default, prints the program's version (`--version`: the name it was
 *  run as and tw_version()), and dumps the effective configuration
 *  (`--dump-config`), which is itself a valid config file. Strings are owned by the target struct
 *  and released with tw_cfg_free(). Not thread-safe; call at start-up.
 */
#ifndef TW_CONFIG_H
#define TW_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    TW_CFG_INT,  /* long long, with min and max */
    TW_CFG_STR,  /* char *, NULL when the default is NULL */
    TW_CFG_BOOL, /* int 0/1; a flag without a value sets it */
    TW_CFG_ENUM, /* char *, one of `choices` ("a|b|c") */
    TW_CFG_LIST  /* tw_strlist_t; each occurrence appends */
} tw_cfg_type_t;

typedef struct {
    char **v;
    size_t n;
    int from_default; /* the values are the table's default: the first
                         explicit value replaces them */
} tw_strlist_t;

typedef struct {
    const char *name;    /* flag and key: "heartbeat" is --heartbeat */
    tw_cfg_type_t type;
    long long min, max;  /* TW_CFG_INT only */
    const char *dflt;    /* default as text; NULL = unset */
    size_t offset;       /* offsetof(target struct, field) */
    const char *choices; /* TW_CFG_ENUM only: "always|everysec|no" */
    const char *help;
} tw_cfg_opt_t;

/* Parse results beyond 0 and negative errors. */
#define TW_CFG_EXIT 1 /* --help, --version or --dump-config was printed:
                         exit 0 */

/* Fill `target` from defaults, then `--config FILE` if given, then the
 * flags in argv[1..]. Returns 0, TW_CFG_EXIT, or TW_EINVAL with a one-line
 * reason in `err`. `table` ends with an entry whose name is NULL. */
int tw_cfg_parse(const tw_cfg_opt_t *table, void *target, int argc,
                 char **argv, const char *usage_head, char *err,
                 size_t errlen);

/* Apply one setting by name from text; used by file and flags alike.
 * Returns 0 or TW_EINVAL / TW_ENOENT with the reason in `err`. */
int tw_cfg_set(const tw_cfg_opt_t *table, void *target, const char *name,
               const char *value, char *err, size_t errlen);

/* Read `key value` lines from `path`. Returns 0, TW_EIO or TW_EINVAL. */
int tw_cfg_load_file(const tw_cfg_opt_t *table, void *target,
                     const char *path, char *err, size_t errlen);

/* Print usage: each flag, its default and help. */
void tw_cfg_usage(const tw_cfg_opt_t *table, const char *head, FILE *out);

/* Print the effective configuration as a config file. */
void tw_cfg_dump(const tw_cfg_opt_t *table, const void *target, FILE *out);

/* Release every string and list the table stored in `target`. */
void tw_cfg_free(const tw_cfg_opt_t *table, void *target);

#endif /* TW_CONFIG_H */
