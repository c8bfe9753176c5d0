/*  tests/unit/test_config_examples.c - the files in deploy/ against the
 *  programs they configure.
 *
 *  deploy/broker.conf.example and deploy/worker.conf.example promise to
 *  list every setting with its default and a comment. The option tables
 *  live inside the daemons (the worker's is private to its main.c), so the
 *  truth is asked from the real binaries: `--dump-config` prints every key
 *  with its default (or "# key (unset)" when it has none). Each example
 *  must then hold every key with a default as an active "key value" line
 *  whose value is that default, word for word, and every key without one
 *  as a commented "# key value" line; each key's first line follows a
 *  comment that explains it; no key is unknown or repeated. Last, the
 *  daemon itself loads the file (`--config FILE --dump-config`) and must
 *  print exactly its defaults, and loads the commented examples too.
 *
 *  One kind of key is the exception: a deployment choice (s_broker_deploy),
 *  where the example, which is what gets installed, means to differ from
 *  the built-in default. broker.conf.example sets `data` to the systemd
 *  unit's StateDirectory=, so a deployed broker is durable and memory mode
 *  is chosen by removing that line; the test checks the value, that the
 *  unit creates that directory, and that the comment says how to choose
 *  memory mode.
 *
 *  The systemd units in deploy/systemd/ are checked with `systemd-analyze
 *  verify` when it is installed (a clear skip otherwise), on copies whose
 *  ExecStart points at this build's binaries, because verify insists that
 *  the program exists. Any complaint that names a unit fails the test,
 *  including the "unknown key" warnings verify does not count as errors.
 *  The worker unit's TimeoutStopSec must leave room for drain-timeout.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "tests/unit/support/files.h"

extern char **environ;

#define S_MAX_KEYS 128

/* A setting seen in a dump or an example file. */
typedef struct {
    char key[64];
    char value[512];
    int line;
} s_kv_t;

typedef struct {
    s_kv_t v[S_MAX_KEYS];
    size_t n;
} s_kvs_t;

/* ---- helpers ------------------------------------------------------------ */

/* Run argv (argv[0] a path), stdin from /dev/null, stdout (and stderr too
 * when `merge`) into a new buffer in *out. Returns the exit status, or -1
 * if the program could not be started or died of a signal. */
static int
s_run(const char *const argv[], int merge, char **out)
{
    int fds[2];
    *out = NULL;
    if (pipe2(fds, O_CLOEXEC) != 0) {
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    if (merge) {
        posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    }
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv,
                         environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    size_t len = 0, cap = 4096;
    char *buf = tw_malloc(cap);
    for (;;) {
        if (cap - len < 1024) {
            cap *= 2;
            buf = tw_realloc(buf, cap);
        }
        ssize_t r = read(fds[0], buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(fds[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int
s_write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    if (!fp) {
        return -1;
    }
    int ok = fputs(text, fp) >= 0;
    return fclose(fp) == 0 && ok ? 0 : -1;
}

static const s_kv_t *
s_find(const s_kvs_t *kvs, const char *key)
{
    for (size_t i = 0; i < kvs->n; i++) {
        if (strcmp(kvs->v[i].key, key) == 0) {
            return &kvs->v[i];
        }
    }
    return NULL;
}

static void
s_add(s_kvs_t *kvs, const char *key, size_t klen, const char *value,
      int line)
{
    assert_true(kvs->n < S_MAX_KEYS);
    s_kv_t *kv = &kvs->v[kvs->n++];
    snprintf(kv->key, sizeof kv->key, "%.*s", (int)klen, key);
    snprintf(kv->value, sizeof kv->value, "%s", value);
    kv->line = line;
}

/* Split `line` (modified in place, no newline) into a key and the rest,
 * the way common/config.c reads a config line. Returns the value. */
static char *
s_split(char *line, size_t *klen)
{
    char *p = line;
    while (*p && *p != ' ' && *p != '\t') {
        p++;
    }
    *klen = (size_t)(p - line);
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    char *end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' ||
                       end[-1] == '\r')) {
        *--end = '\0';
    }
    return p;
}

/* Read a --dump-config output: "key value" lines are defaults; "# key
 * (unset)" and "# key (none)" are keys without one. */
static void
s_parse_dump(char *text, s_kvs_t *dflt, s_kvs_t *unset)
{
    int lineno = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        lineno++;
        size_t klen;
        if (l[0] == '#' && l[1] == ' ') {
            char *v = s_split(l + 2, &klen);
            if (!strcmp(v, "(unset)") || !strcmp(v, "(none)")) {
                s_add(unset, l + 2, klen, "", lineno);
            }
            continue;
        }
        char *v = s_split(l, &klen);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)klen, l);
        /* A list with values prints one line each; keep the first. */
        if (klen && !s_find(dflt, key)) {
            s_add(dflt, l, klen, v, lineno);
        }
    }
}

/* ---- the example files -------------------------------------------------- */

/* A setting the installed example sets on purpose to other than the
 * built-in default. */
typedef struct {
    const char *key;
    const char *value;
} s_choice_t;

/* The broker's: durable where people deploy. The directory is the
 * systemd unit's StateDirectory= (checked by test_broker_durable). */
static const s_choice_t s_broker_deploy[] = {
    {"data", "/var/lib/taskwheel"},
    {NULL, NULL},
};

static const s_choice_t *
s_choice(const s_choice_t *choices, const char *key)
{
    for (; choices && choices->key; choices++) {
        if (strcmp(choices->key, key) == 0) {
            return choices;
        }
    }
    return NULL;
}

/* `dump` with each choice's line ("# key (unset)" or "key default") made
 * "key value": what the daemon prints after loading the example. A new
 * buffer. */
static char *
s_dump_with(const char *dump, const s_choice_t *choices)
{
    size_t cap = strlen(dump) + 1;
    for (const s_choice_t *c = choices; c && c->key; c++) {
        cap += strlen(c->key) + strlen(c->value) + 2;
    }
    char *out = tw_malloc(cap);
    size_t n = 0;
    const char *p = dump;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
        const char *k = p[0] == '#' && p[1] == ' ' ? p + 2 : p;
        size_t klen = strcspn(k, " \n");
        const s_choice_t *hit = NULL;
        for (const s_choice_t *c = choices; c && c->key && !hit; c++) {
            if (strlen(c->key) == klen && !memcmp(c->key, k, klen)) {
                hit = c;
            }
        }
        if (hit) {
            n += (size_t)snprintf(out + n, cap - n, "%s %s\n", hit->key,
                                  hit->value);
        } else {
            memcpy(out + n, p, len);
            n += len;
        }
        p += len;
    }
    out[n] = '\0';
    return out;
}

/* Check deploy/<name>.conf.example against `bin`. Prints every problem;
 * returns how many there were. `choices` (may be NULL) are the settings
 * it sets on purpose to other than the default. */
static int
s_check_example(const char *bin, const char *path,
                const s_choice_t *choices)
{
    int bad = 0;
    char *dump = NULL;
    const char *dump_argv[] = {bin, "--dump-config", NULL};
    int rc = s_run(dump_argv, 0, &dump);
    if (rc != 0) {
        fprintf(stderr, "%s --dump-config exited %d\n", bin, rc);
        tw_free(dump);
        return 1;
    }
    char *dump_copy = tw_strdup(dump);
    s_kvs_t *dflt = tw_calloc(1, sizeof *dflt);
    s_kvs_t *unset = tw_calloc(1, sizeof *unset);
    s_parse_dump(dump_copy, dflt, unset);
    tw_free(dump_copy);
    if (dflt->n == 0) {
        fprintf(stderr, "%s --dump-config printed no settings\n", bin);
        bad++;
    }

    char *text = tw_suite_read_file(path, NULL);
    if (!text) {
        tw_free(dump);
        tw_free(dflt);
        tw_free(unset);
        return 1;
    }
    s_kvs_t *active = tw_calloc(1, sizeof *active);
    s_kvs_t *commented = tw_calloc(1, sizeof *commented);
    /* 0 blank, 1 prose comment, 2 setting (active or commented). */
    int prev = 0;
    int lineno = 0;
    char *text_copy = tw_strdup(text);
    char *p = text_copy;
    while (*p) {
        char *nl = strchr(p, '\n');
        if (nl) {
            *nl = '\0';
        }
        char *l = p;
        p = nl ? nl + 1 : p + strlen(p);
        lineno++;
        while (*l == ' ' || *l == '\t') {
            l++;
        }
        int kind;
        size_t klen = 0;
        if (!*l || *l == '\r') {
            kind = 0;
        } else if (*l == '#') {
            /* "# key value" with a key that has no default is an example
             * setting; any other comment is prose. */
            kind = 1;
            if (l[1] == ' ' && l[2] != ' ') {
                char *k = l + 2;
                char *v = s_split(k, &klen);
                char key[64];
                snprintf(key, sizeof key, "%.*s", (int)klen, k);
                if (*v && s_find(unset, key)) {
                    if (!s_find(commented, key) && !s_find(active, key) &&
                        prev != 1) {
                        fprintf(stderr,
                                "%s:%d: '%s' has no comment above it\n",
                                path, lineno, key);
                        bad++;
                    }
                    s_add(commented, k, klen, v, lineno);
                    kind = 2;
                }
            }
        } else {
            kind = 2;
            char *v = s_split(l, &klen);
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)klen, l);
            const s_kv_t *d = s_find(dflt, key);
            const s_kv_t *u = s_find(unset, key);
            const s_kv_t *again = s_find(active, key);
            const s_choice_t *ch = s_choice(choices, key);
            if (ch && !again) {
                if (strcmp(v, ch->value) != 0) {
                    fprintf(stderr,
                            "%s:%d: '%s' is set to '%s', but the deployed "
                            "value is '%s'\n",
                            path, lineno, key, v, ch->value);
                    bad++;
                }
            } else if (!d && !u) {
                fprintf(stderr, "%s:%d: '%s' is not a setting of %s\n", path,
                        lineno, key, bin);
                bad++;
            } else if (u) {
                fprintf(stderr,
                        "%s:%d: '%s' has no default; show it commented "
                        "out (# %s ...)\n",
                        path, lineno, key, key);
                bad++;
            } else if (again) {
                fprintf(stderr, "%s:%d: '%s' repeats line %d\n", path,
                        lineno, key, again->line);
                bad++;
            } else if (strcmp(v, d->value) != 0) {
                fprintf(stderr,
                        "%s:%d: '%s' is set to '%s' but its default is "
                        "'%s'\n",
                        path, lineno, key, v, d->value);
                bad++;
            }
            if (!again && prev != 1) {
                fprintf(stderr, "%s:%d: '%s' has no comment above it\n",
                        path, lineno, key);
                bad++;
            }
            s_add(active, l, klen, v, lineno);
        }
        prev = kind;
    }
    tw_free(text_copy);

    for (const s_choice_t *c = choices; c && c->key; c++) {
        if (!s_find(active, c->key)) {
            fprintf(stderr, "%s: missing '%s %s' (the deployed value)\n",
                    path, c->key, c->value);
            bad++;
        }
    }
    for (size_t i = 0; i < dflt->n; i++) {
        if (!s_find(active, dflt->v[i].key)) {
            fprintf(stderr, "%s: missing '%s %s' (a setting of %s)\n", path,
                    dflt->v[i].key, dflt->v[i].value, bin);
            bad++;
        }
    }
    for (size_t i = 0; i < unset->n; i++) {
        if (!s_find(commented, unset->v[i].key) &&
            !s_choice(choices, unset->v[i].key)) {
            fprintf(stderr,
                    "%s: missing a commented example '# %s VALUE' (a "
                    "setting of %s without a default)\n",
                    path, unset->v[i].key, bin);
            bad++;
        }
    }

    /* The daemon reads the file and ends up at its defaults, but for the
     * deployment choices. */
    char *loaded = NULL;
    char *want = s_dump_with(dump, choices);
    const char *load_argv[] = {bin, "--config", path, "--dump-config", NULL};
    rc = s_run(load_argv, 1, &loaded);
    if (rc != 0) {
        fprintf(stderr, "%s --config %s exited %d:\n%s\n", bin, path, rc,
                loaded ? loaded : "");
        bad++;
    } else if (strcmp(loaded, want) != 0) {
        fprintf(stderr,
                "%s --config %s --dump-config differs from the "
                "defaults:\n%s\n-- expected:\n%s\n",
                bin, path, loaded, want);
        bad++;
    }
    tw_free(want);
    tw_free(loaded);

    /* The commented examples are valid values. */
    if (commented->n) {
        char tmp[] = "/tmp/tw-conf-example-XXXXXX";
        int fd = mkstemp(tmp);
        assert_true(fd >= 0);
        FILE *fp = fdopen(fd, "w");
        assert_non_null(fp);
        for (size_t i = 0; i < commented->n; i++) {
            fprintf(fp, "%s %s\n", commented->v[i].key,
                    commented->v[i].value);
        }
        fclose(fp);
        const char *ex_argv[] = {bin, "--config", tmp, "--dump-config",
                                 NULL};
        rc = s_run(ex_argv, 1, &loaded);
        if (rc != 0) {
            fprintf(stderr,
                    "%s: the commented examples do not load (%s exited "
                    "%d):\n%s\n",
                    path, bin, rc, loaded ? loaded : "");
            bad++;
        }
        tw_free(loaded);
        unlink(tmp);
    }
    printf("%s: %zu settings with defaults, %zu without, %d problem(s)\n",
           path, dflt->n, unset->n, bad);
    free(text);
    tw_free(dump);
    tw_free(dflt);
    tw_free(unset);
    tw_free(active);
    tw_free(commented);
    return bad;
}

static void
test_broker_example(void **state)
{
    (void)state;
#ifdef TW_BROKER_BIN
    if (access(TW_BROKER_BIN, X_OK) != 0) {
        fail_msg("%s is not built (ninja taskwheel-broker)", TW_BROKER_BIN);
    }
    assert_int_equal(s_check_example(TW_BROKER_BIN,
                                     TW_SOURCE_DIR
                                     "/deploy/broker.conf.example",
                                     s_broker_deploy),
                     0);
#else
    printf("SKIP: no taskwheel-broker target in this build\n");
    skip();
#endif
}

static void
test_worker_example(void **state)
{
    (void)state;
#ifdef TW_WORKER_BIN
    if (access(TW_WORKER_BIN, X_OK) != 0) {
        fail_msg("%s is not built (ninja taskwheel-worker)", TW_WORKER_BIN);
    }
    assert_int_equal(s_check_example(TW_WORKER_BIN, TW_SOURCE_DIR
                                     "/deploy/worker.conf.example", NULL),
                     0);
#else
    printf("SKIP: no taskwheel-worker target in this build\n");
    skip();
#endif
}

/* ---- the systemd units -------------------------------------------------- */

#ifndef TW_BROKER_BIN
#define TW_BROKER_BIN "/bin/true"
#endif
#ifndef TW_WORKER_BIN
#define TW_WORKER_BIN "/bin/true"
#endif

/* Copy unit `src` to `dst`, pointing ExecStart's installed program path
 * `from` at `to`. Returns 0 or -1. */
static int
s_copy_unit(const char *src, const char *dst, const char *from,
            const char *to)
{
    char *text = tw_suite_read_file(src, NULL);
    if (!text) {
        return -1;
    }
    size_t cap = strlen(text) + 16 * (strlen(to) + 1) + 1;
    char *out = tw_malloc(cap);
    size_t n = 0;
    const char *p = text;
    const char *hit;
    while ((hit = strstr(p, from)) != NULL) {
        memcpy(out + n, p, (size_t)(hit - p));
        n += (size_t)(hit - p);
        assert_true(n + strlen(to) < cap);
        memcpy(out + n, to, strlen(to));
        n += strlen(to);
        p = hit + strlen(from);
    }
    snprintf(out + n, cap - n, "%s", p);
    int rc = s_write_file(dst, out);
    tw_free(out);
    free(text);
    return rc;
}

/* The full path of `prog` on $PATH (or a usual place), or 0 if none. */
static int
s_which(const char *prog, char *buf, size_t len)
{
    const char *path = getenv("PATH");
    char *dirs = tw_strdup(path && *path ? path : "/usr/bin:/bin");
    int found = 0;
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d && !found;
         d = strtok_r(NULL, ":", &save)) {
        snprintf(buf, len, "%s/%s", d, prog);
        found = access(buf, X_OK) == 0;
    }
    tw_free(dirs);
    if (!found) {
        static const char *const usual[] = {"/usr/bin", "/bin", "/usr/sbin"};
        for (size_t i = 0; i < 3 && !found; i++) {
            snprintf(buf, len, "%s/%s", usual[i], prog);
            found = access(buf, X_OK) == 0;
        }
    }
    return found;
}

static void
test_systemd_units_verify(void **state)
{
    (void)state;
    char analyze[512];
    if (!s_which("systemd-analyze", analyze, sizeof analyze)) {
        printf("SKIP: systemd-analyze not found, deploy/systemd/*.service "
               "not verified (apt-get install systemd to check them)\n");
        skip();
        return;
    }
    char dir[] = "/tmp/tw-units-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char broker[600], worker[600];
    snprintf(broker, sizeof broker, "%s/taskwheel-broker.service", dir);
    /* An instance of the template, so that %i has a value. */
    snprintf(worker, sizeof worker, "%s/taskwheel-worker@1.service", dir);
    assert_int_equal(s_copy_unit(TW_SOURCE_DIR
                                 "/deploy/systemd/taskwheel-broker.service",
                                 broker, "/usr/local/bin/taskwheel-broker",
                                 TW_BROKER_BIN),
                     0);
    assert_int_equal(s_copy_unit(TW_SOURCE_DIR
                                 "/deploy/systemd/taskwheel-worker@.service",
                                 worker, "/usr/local/bin/taskwheel-worker",
                                 TW_WORKER_BIN),
                     0);
    char *out = NULL;
    const char *argv[] = {analyze, "verify", "--man=no", broker, worker,
                          NULL};
    int rc = s_run(argv, 1, &out);
    printf("%s verify: exit %d\n%s", analyze, rc,
           out ? out : "");
    int complaints = out && strstr(out, "taskwheel") != NULL;
    tw_free(out);
    unlink(broker);
    unlink(worker);
    rmdir(dir);
    if (rc != 0 || complaints) {
        fail_msg("systemd-analyze verify found problems in "
                 "deploy/systemd/ (see above)");
    }
}

/* TimeoutStopSec of the worker unit, in milliseconds, or -1. */
static long long
s_unit_stop_timeout_ms(const char *path)
{
    char *text = tw_suite_read_file(path, NULL);
    if (!text) {
        return -1;
    }
    long long ms = -1;
    const char *p = strstr(text, "\nTimeoutStopSec=");
    if (p) {
        char *end;
        double v = strtod(p + 16, &end);
        if (end[0] == 's' || end[0] == '\n') {
            ms = (long long)(v * 1000);
        } else if (!strncmp(end, "min", 3)) {
            ms = (long long)(v * 60000);
        } else if (!strncmp(end, "ms", 2)) {
            ms = (long long)v;
        }
    }
    free(text);
    return ms;
}

static void
test_worker_unit_outlasts_drain(void **state)
{
    (void)state;
    long long stop_ms = s_unit_stop_timeout_ms(
        TW_SOURCE_DIR "/deploy/systemd/taskwheel-worker@.service");
    char *text = tw_suite_read_file(TW_SOURCE_DIR
                                    "/deploy/worker.conf.example",
                                    NULL);
    assert_non_null(text);
    const char *p = strstr(text, "\ndrain-timeout ");
    assert_non_null(p);
    long long drain_ms = strtoll(p + 15, NULL, 10);
    free(text);
    printf("worker unit: TimeoutStopSec %lld ms, drain-timeout %lld ms\n",
           stop_ms, drain_ms);
    /* The stations' last iterations and BYE need time after the drain. */
    assert_true(stop_ms >= drain_ms + 5000);
}

/* The value of the first "Key=" line of a unit, in a new buffer, or
 * NULL. */
static char *
s_unit_value(const char *text, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        if (!strncmp(p, key, klen) && p[klen] == '=') {
            size_t len = strcspn(p + klen + 1, "\n");
            char *v = tw_malloc(len + 1);
            memcpy(v, p + klen + 1, len);
            v[len] = '\0';
            return v;
        }
    }
    return NULL;
}

/* Where people deploy, the broker is durable: the unit creates its state
 * directory, reads /etc/taskwheel/broker.conf, and the example installed
 * there keeps the store in that directory; memory mode is a choice the
 * example explains, and the unit's comments say the same. */
static void
test_broker_durable(void **state)
{
    (void)state;
    char *unit = tw_suite_read_file(TW_SOURCE_DIR
                                    "/deploy/systemd/taskwheel-broker.service",
                                    NULL);
    char *conf = tw_suite_read_file(TW_SOURCE_DIR
                                    "/deploy/broker.conf.example",
                                    NULL);
    assert_non_null(unit);
    assert_non_null(conf);
    char *sd = s_unit_value(unit, "StateDirectory");
    char *exec = s_unit_value(unit, "ExecStart");
    assert_non_null(sd);
    assert_non_null(exec);
    const s_choice_t *data = s_choice(s_broker_deploy, "data");
    char want[256];
    snprintf(want, sizeof want, "/var/lib/%s", sd);
    printf("unit: StateDirectory=%s, ExecStart=%s; example: data %s\n", sd,
           exec, data->value);
    assert_string_equal(data->value, want);
    assert_non_null(strstr(exec, "--config /etc/taskwheel/broker.conf"));
    /* No --data on the command line: it would override the file, and
     * memory mode could not be chosen there. */
    assert_null(strstr(exec, "--data"));
    /* The unit's comment and the example's name the directory and say
     * how to choose memory mode. */
    assert_non_null(strstr(unit, want));
    assert_non_null(strstr(unit, "memory"));
    const char *line = strstr(conf, "\ndata ");
    assert_non_null(line);
    const char *para = line;
    while (para > conf && !(para[-1] == '\n' && para[-2] == '\n')) {
        para--;
    }
    char comment[4096];
    snprintf(comment, sizeof comment, "%.*s", (int)(line - para), para);
    assert_non_null(strstr(comment, "memory"));
    tw_free(sd);
    tw_free(exec);
    free(unit);
    free(conf);
}

int
main(void)
{
    /* Keep our lines in order with the programs' output and cmocka's. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broker_example),
        cmocka_unit_test(test_worker_example),
        cmocka_unit_test(test_systemd_units_verify),
        cmocka_unit_test(test_worker_unit_outlasts_drain),
        cmocka_unit_test(test_broker_durable),
    };
    return cmocka_run_group_tests_name("config_examples", tests, NULL, NULL);
}
