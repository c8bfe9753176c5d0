/*  tests/unit/test_config.c - the table-driven configuration parser.
 *
 *  One sample table with every option type stands in for a daemon's. The
 *  tests check the precedence (defaults, then the --config file, then
 *  flags, whatever their order on the command line), range and choice
 *  validation, list accumulation, error reporting for unknown or malformed
 *  input, and that the output of --dump-config is a config file which
 *  reads back to the same values. Files go to a private temp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/error.h"

typedef struct {
    long long port;
    long long hb;
    long long delta;
    char *name;
    char *unset;
    int verbose;
    int daemon;
    char *fsync;
    tw_strlist_t plugin;
} s_cfg_t;

static const tw_cfg_opt_t s_table[] = {
    {"port", TW_CFG_INT, 1, 65535, "7710", offsetof(s_cfg_t, port), NULL,
     "port to listen on"},
    {"heartbeat", TW_CFG_INT, 10, 60000, "1000", offsetof(s_cfg_t, hb), NULL,
     "heartbeat interval in ms"},
    {"delta", TW_CFG_INT, -100, 100, "-5", offsetof(s_cfg_t, delta), NULL,
     "a signed setting"},
    {"name", TW_CFG_STR, 0, 0, "node-a", offsetof(s_cfg_t, name), NULL,
     "the node's name"},
    {"unset", TW_CFG_STR, 0, 0, NULL, offsetof(s_cfg_t, unset), NULL,
     "a string without default"},
    {"verbose", TW_CFG_BOOL, 0, 0, "no", offsetof(s_cfg_t, verbose), NULL,
     "log more"},
    {"daemon", TW_CFG_BOOL, 0, 0, "yes", offsetof(s_cfg_t, daemon), NULL,
     "detach"},
    {"fsync", TW_CFG_ENUM, 0, 0, "everysec", offsetof(s_cfg_t, fsync),
     "always|everysec|no", "store durability"},
    {"plugin", TW_CFG_LIST, 0, 0, NULL, offsetof(s_cfg_t, plugin), NULL,
     "plugin library to load"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static char s_dir[64];
static char s_err[512];

static int
s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/tw-test-config-XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int
s_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Write `text` to a file in the temp dir; returns its path (static). */
static const char *
s_file(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

/* Parse a NULL-terminated argument list (argv[0] is added). */
static int
s_parse(s_cfg_t *c, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "prog";
    va_list ap;
    va_start(ap, c);
    for (char *a = va_arg(ap, char *); a; a = va_arg(ap, char *)) {
        assert_true(argc < 31);
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;
    memset(c, 0, sizeof *c);
    s_err[0] = '\0';
    return tw_cfg_parse(s_table, c, argc, argv, "usage: prog [options]",
                        s_err, sizeof s_err);
}

static void
test_defaults(void **state)
{
    (void)state;
    s_cfg_t c;
    assert_int_equal(s_parse(&c, NULL), 0);
    assert_int_equal(c.port, 7710);
    assert_int_equal(c.hb, 1000);
    assert_int_equal(c.delta, -5);
    assert_string_equal(c.name, "node-a");
    assert_null(c.unset);
    assert_int_equal(c.verbose, 0);
    assert_int_equal(c.daemon, 1);
    assert_string_equal(c.fsync, "everysec");
    assert_int_equal(c.plugin.n, 0);
    tw_cfg_free(s_table, &c);
    assert_null(c.name);
    assert_null(c.fsync);
    tw_cfg_free(s_table, &c); /* twice is harmless */
}

static void
test_flags(void **state)
{
    (void)state;
    s_cfg_t c;
    assert_int_equal(s_parse(&c, "--port", "9000", "--heartbeat=250",
                             "--delta", "-100", "--name", "hello world",
                             "--unset=", "--verbose", "--daemon=no",
                             "--fsync", "always", "--plugin", "a.so",
                             "--plugin=b.so", NULL),
                     0);
    assert_int_equal(c.port, 9000);
    assert_int_equal(c.hb, 250);
    assert_int_equal(c.delta, -100);
    assert_string_equal(c.name, "hello world");
    assert_non_null(c.unset);
    assert_string_equal(c.unset, "");
    assert_int_equal(c.verbose, 1);
    assert_int_equal(c.daemon, 0);
    assert_string_equal(c.fsync, "always");
    assert_int_equal(c.plugin.n, 2);
    assert_string_equal(c.plugin.v[0], "a.so");
    assert_string_equal(c.plugin.v[1], "b.so");
    tw_cfg_free(s_table, &c);
    assert_int_equal(c.plugin.n, 0);
    assert_null(c.plugin.v);
}

static void
test_last_flag_wins(void **state)
{
    (void)state;
    s_cfg_t c;
    assert_int_equal(s_parse(&c, "--port", "1", "--port=2", "--name", "x",
                             "--name", "y", "--verbose", "--verbose=off",
                             NULL),
                     0);
    assert_int_equal(c.port, 2);
    assert_string_equal(c.name, "y");
    assert_int_equal(c.verbose, 0);
    tw_cfg_free(s_table, &c);
}

static void
test_bool_spellings(void **state)
{
    (void)state;
    const char *yes[] = {"yes", "1", "true", "on"};
    const char *no[] = {"no", "0", "false", "off"};
    s_cfg_t c;
    memset(&c, 0, sizeof c);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(tw_cfg_set(s_table, &c, "verbose", yes[i], s_err,
                                    sizeof s_err),
                         0);
        assert_int_equal(c.verbose, 1);
        assert_int_equal(tw_cfg_set(s_table, &c, "verbose", no[i], s_err,
                                    sizeof s_err),
                         0);
        assert_int_equal(c.verbose, 0);
    }
    assert_int_equal(tw_cfg_set(s_table, &c, "verbose", "maybe", s_err,
                                sizeof s_err),
                     TW_EINVAL);
    assert_non_null(strstr(s_err, "verbose"));
    /* A bare boolean flag takes no value: "no" is a stray argument. */
    assert_int_equal(s_parse(&c, "--verbose", "no", NULL), TW_EINVAL);
    assert_non_null(strstr(s_err, "no"));
    tw_cfg_free(s_table, &c);
}

static void
test_file(void **state)
{
    (void)state;
    const char *path = s_file("a.conf",
                              "# a comment\n"
                              "\n"
                              "   port 8000   \n"
                              "\theartbeat\t300\n"
                              "name   spaced out name  \n"
                              "verbose yes\n"
                              "fsync no\n"
                              "plugin one.so\n"
                              "plugin two.so\n"
                              "    # indented comment\n");
    s_cfg_t c;
    assert_int_equal(s_parse(&c, "--config", path, NULL), 0);
    assert_int_equal(c.port, 8000);
    assert_int_equal(c.hb, 300);
    assert_string_equal(c.name, "spaced out name");
    assert_int_equal(c.verbose, 1);
    assert_string_equal(c.fsync, "no");
    assert_int_equal(c.plugin.n, 2);
    assert_string_equal(c.plugin.v[1], "two.so");
    assert_int_equal(c.delta, -5); /* untouched keys keep their default */
    tw_cfg_free(s_table, &c);

    /* The --config=FILE spelling. */
    char arg[200];
    snprintf(arg, sizeof arg, "--config=%s", path);
    assert_int_equal(s_parse(&c, arg, NULL), 0);
    assert_int_equal(c.port, 8000);
    tw_cfg_free(s_table, &c);
}

static void
test_flags_override_file(void **state)
{
    (void)state;
    const char *path = s_file("b.conf",
                              "port 8000\nname from-file\nverbose yes\n"
                              "plugin file.so\n");
    s_cfg_t c;
    /* Flags win over the file whether they come before or after it. */
    assert_int_equal(s_parse(&c, "--port", "8001", "--config", path,
                             "--name=from-flag", "--verbose=no",
                             "--plugin", "flag.so", NULL),
                     0);
    assert_int_equal(c.port, 8001);
    assert_string_equal(c.name, "from-flag");
    assert_int_equal(c.verbose, 0);
    /* Lists accumulate: file entries first, then flags. */
    assert_int_equal(c.plugin.n, 2);
    assert_string_equal(c.plugin.v[0], "file.so");
    assert_string_equal(c.plugin.v[1], "flag.so");
    tw_cfg_free(s_table, &c);
}

static void
test_ranges(void **state)
{
    (void)state;
    s_cfg_t c;
    assert_int_equal(s_parse(&c, "--port", "1", "--heartbeat", "60000",
                             "--delta", "100", NULL),
                     0);
    assert_int_equal(c.port, 1);
    assert_int_equal(c.hb, 60000);
    assert_int_equal(c.delta, 100);
    tw_cfg_free(s_table, &c);
    assert_int_equal(s_parse(&c, "--port", "65535", NULL), 0);
    assert_int_equal(c.port, 65535);
    tw_cfg_free(s_table, &c);

    const char *bad_port[] = {"0", "65536", "-1", "abc", "", "12x", "1.5",
                              "99999999999999999999999", "0x10"};
    for (size_t i = 0; i < sizeof bad_port / sizeof bad_port[0]; i++) {
        assert_int_equal(s_parse(&c, "--port", bad_port[i], NULL), TW_EINVAL);
        assert_non_null(strstr(s_err, "port"));
        tw_cfg_free(s_table, &c);
    }
    assert_int_equal(s_parse(&c, "--delta=-101", NULL), TW_EINVAL);
    assert_non_null(strstr(s_err, "range"));
    tw_cfg_free(s_table, &c);
    assert_int_equal(s_parse(&c, "--heartbeat=9", NULL), TW_EINVAL);
    tw_cfg_free(s_table, &c);
}

static void
test_enums(void **state)
{
    (void)state;
    s_cfg_t c;
    const char *ok[] = {"always", "everysec", "no"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(s_parse(&c, "--fsync", ok[i], NULL), 0);
        assert_string_equal(c.fsync, ok[i]);
        tw_cfg_free(s_table, &c);
    }
    /* Prefixes, extensions and case variants of a choice are not it. */
    const char *bad[] = {"sometimes", "", "alway", "alwayss", "ALWAYS",
                         "always|no", "every"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(s_parse(&c, "--fsync", bad[i], NULL), TW_EINVAL);
        assert_non_null(strstr(s_err, "fsync"));
        tw_cfg_free(s_table, &c);
    }
}

static void
test_unknown_and_malformed(void **state)
{
    (void)state;
    s_cfg_t c;
    assert_int_equal(s_parse(&c, "--nope", "1", NULL), TW_EINVAL);
    assert_non_null(strstr(s_err, "nope"));
    tw_cfg_free(s_table, &c);
    /* A prefix of a known option is not that option. */
    assert_int_equal(s_parse(&c, "--por", "1", NULL), TW_EINVAL);
    tw_cfg_free(s_table, &c);
    assert_int_equal(s_parse(&c, "--portx=1", NULL), TW_EINVAL);
    tw_cfg_free(s_table, &c);
    assert_int_equal(s_parse(&c, "stray", NULL), TW_EINVAL);
    assert_non_null(strstr(s_err, "stray"));
    tw_cfg_free(s_table, &c);
    assert_int_equal(s_parse(&c, "-p", "1", NULL), TW_EINVAL);
    tw_cfg_free(s_table, &c);
    /* A value-taking flag at the very end. */
    assert_int_equal(s_parse(&c, "--port", NULL), TW_EINVAL);
    assert_non_null(strstr(s_err, "port"));
    tw_cfg_free(s_table, &c);

    /* --config needs its file name too. */
    assert_int_equal(s_parse(&c, "--config", NULL), TW_EINVAL);
    assert_non_null(strstr(s_err, "config"));
    tw_cfg_free(s_table, &c);

    memset(&c, 0, sizeof c);
    assert_int_equal(tw_cfg_set(s_table, &c, "nope", "1", s_err,
                                sizeof s_err),
                     TW_ENOENT);
    assert_non_null(strstr(s_err, "nope"));
    tw_cfg_free(s_table, &c);
}

static void
test_file_errors(void **state)
{
    (void)state;
    s_cfg_t c;
    char missing[128];
    snprintf(missing, sizeof missing, "%s/does-not-exist.conf", s_dir);
    memset(&c, 0, sizeof c);
    assert_int_equal(tw_cfg_load_file(s_table, &c, missing, s_err,
                                      sizeof s_err),
                     TW_EIO);
    assert_non_null(strstr(s_err, "does-not-exist.conf"));
    assert_int_equal(s_parse(&c, "--config", missing, NULL), TW_EINVAL);
    tw_cfg_free(s_table, &c);

    /* An unknown key reports the file and line. */
    const char *path = s_file("bad.conf", "port 1\n\n# c\nbogus 3\n");
    assert_int_equal(s_parse(&c, "--config", path, NULL), TW_EINVAL);
    assert_non_null(strstr(s_err, "bad.conf:4"));
    assert_non_null(strstr(s_err, "bogus"));
    tw_cfg_free(s_table, &c);

    /* A bad value in a file is as bad as on the command line. */
    path = s_file("range.conf", "port 70000\n");
    assert_int_equal(s_parse(&c, "--config", path, NULL), TW_EINVAL);
    assert_non_null(strstr(s_err, "range.conf:1"));
    tw_cfg_free(s_table, &c);
    path = s_file("enum.conf", "fsync maybe\n");
    assert_int_equal(s_parse(&c, "--config", path, NULL), TW_EINVAL);
    tw_cfg_free(s_table, &c);
    /* A key without a value. */
    path = s_file("novalue.conf", "port\n");
    assert_int_equal(s_parse(&c, "--config", path, NULL), TW_EINVAL);
    tw_cfg_free(s_table, &c);
}

/* Capture what `fn` prints into a malloc'ed string. */
static char *
s_capture_dump(const s_cfg_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    assert_non_null(fp);
    tw_cfg_dump(s_table, c, fp);
    fclose(fp);
    return buf;
}

static void
s_assert_same(const s_cfg_t *a, const s_cfg_t *b)
{
    assert_int_equal(a->port, b->port);
    assert_int_equal(a->hb, b->hb);
    assert_int_equal(a->delta, b->delta);
    if (a->name || b->name) {
        assert_non_null(a->name);
        assert_non_null(b->name);
        assert_string_equal(a->name, b->name);
    }
    if (a->unset || b->unset) {
        assert_non_null(a->unset);
        assert_non_null(b->unset);
        assert_string_equal(a->unset, b->unset);
    }
    assert_int_equal(a->verbose, b->verbose);
    assert_int_equal(a->daemon, b->daemon);
    assert_string_equal(a->fsync, b->fsync);
    assert_int_equal(a->plugin.n, b->plugin.n);
    for (size_t i = 0; i < a->plugin.n; i++) {
        assert_string_equal(a->plugin.v[i], b->plugin.v[i]);
    }
}

/* Dump `c`, read the dump back as a config file, compare. */
static void
s_round_trip(const s_cfg_t *c)
{
    char *text = s_capture_dump(c);
    const char *path = s_file("dump.conf", text);
    s_cfg_t back;
    int rc = s_parse(&back, "--config", path, NULL);
    if (rc != 0) {
        fail_msg("dump did not re-parse: %s\n---\n%s---", s_err, text);
    }
    s_assert_same(c, &back);
    /* And the second dump is identical to the first. */
    char *again = s_capture_dump(&back);
    assert_string_equal(text, again);
    free(again);
    free(text);
    tw_cfg_free(s_table, &back);
}

static void
test_dump_round_trip(void **state)
{
    (void)state;
    s_cfg_t c;
    assert_int_equal(s_parse(&c, NULL), 0);
    s_round_trip(&c); /* defaults, including an unset string */
    tw_cfg_free(s_table, &c);

    assert_int_equal(s_parse(&c, "--port", "1234", "--heartbeat=77",
                             "--delta=-100", "--name", "a name with spaces",
                             "--unset", "now-set", "--verbose",
                             "--daemon=no", "--fsync", "no", "--plugin",
                             "x.so", "--plugin", "y z.so", NULL),
                     0);
    s_round_trip(&c);
    tw_cfg_free(s_table, &c);
}

static void
test_dump_config_flag(void **state)
{
    (void)state;
    /* --dump-config prints to stdout and asks the caller to exit. Send
     * stdout to a file for the duration. */
    char path[128];
    snprintf(path, sizeof path, "%s/stdout.txt", s_dir);
    fflush(stdout);
    int saved = dup(1);
    assert_true(saved >= 0);
    assert_non_null(freopen(path, "w", stdout));
    s_cfg_t c;
    int rc = s_parse(&c, "--port", "4242", "--dump-config", NULL);
    fflush(stdout);
    int rc_help = 0;
    s_cfg_t h;
    rc_help = s_parse(&h, "--help", NULL);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    assert_int_equal(rc, TW_CFG_EXIT);
    assert_int_equal(rc_help, TW_CFG_EXIT);

    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char all[8192];
    size_t n = fread(all, 1, sizeof all - 1, fp);
    all[n] = '\0';
    fclose(fp);
    assert_non_null(strstr(all, "port 4242\n"));
    assert_non_null(strstr(all, "fsync everysec\n"));
    /* Usage lists every flag with its default. */
    assert_non_null(strstr(all, "usage: prog [options]"));
    for (const tw_cfg_opt_t *o = s_table; o->name; o++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", o->name);
        assert_non_null(strstr(all, flag));
        if (o->dflt) {
            char d[64];
            snprintf(d, sizeof d, "[default: %s]", o->dflt);
            assert_non_null(strstr(all, d));
        }
    }
    tw_cfg_free(s_table, &c);
    tw_cfg_free(s_table, &h);
}

/* A list with a default: the dump of the defaults must read back to the
 * same list, not to the default twice. */
typedef struct {
    tw_strlist_t l;
} s_lcfg_t;

static const tw_cfg_opt_t s_ltable[] = {
    {"item", TW_CFG_LIST, 0, 0, "first", offsetof(s_lcfg_t, l), NULL,
     "an item"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static void
test_list_default_round_trip(void **state)
{
    (void)state;
    s_lcfg_t c;
    memset(&c, 0, sizeof c);
    char *argv[] = {"prog", NULL};
    assert_int_equal(tw_cfg_parse(s_ltable, &c, 1, argv, "u", s_err,
                                  sizeof s_err),
                     0);
    assert_int_equal(c.l.n, 1);
    assert_string_equal(c.l.v[0], "first");

    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    tw_cfg_dump(s_ltable, &c, fp);
    fclose(fp);
    const char *path = s_file("list.conf", buf);
    free(buf);

    s_lcfg_t back;
    memset(&back, 0, sizeof back);
    char cfg[] = "--config";
    char *argv2[] = {"prog", cfg, (char *)path, NULL};
    assert_int_equal(tw_cfg_parse(s_ltable, &back, 3, argv2, "u", s_err,
                                  sizeof s_err),
                     0);
    /* The first explicit value replaces the default, so the dump reads
     * back as exactly what it says. */
    assert_int_equal(back.l.n, 1);
    assert_string_equal(back.l.v[0], "first");
    tw_cfg_free(s_ltable, &back);

    /* A flag replaces the default rather than adding to it. */
    s_lcfg_t flag;
    memset(&flag, 0, sizeof flag);
    char l[] = "--item";
    char v[] = "second";
    char *argv3[] = {"prog", l, v, NULL};
    assert_int_equal(tw_cfg_parse(s_ltable, &flag, 3, argv3, "u", s_err,
                                  sizeof s_err),
                     0);
    assert_int_equal(flag.l.n, 1);
    assert_string_equal(flag.l.v[0], "second");
    tw_cfg_free(s_ltable, &flag);
    tw_cfg_free(s_ltable, &c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_last_flag_wins),
        cmocka_unit_test(test_bool_spellings),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_flags_override_file),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_enums),
        cmocka_unit_test(test_unknown_and_malformed),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_dump_round_trip),
        cmocka_unit_test(test_dump_config_flag),
        cmocka_unit_test(test_list_default_round_trip),
    };
    return cmocka_run_group_tests_name("config", tests, s_setup, s_teardown);
}
