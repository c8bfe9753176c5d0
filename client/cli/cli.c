/*  client/cli/cli.c - helpers shared by the command files of cli.h.
 *
 *  Diagnostics, flag words, number parsing and JSON output, with the same
 *  rules as main.c: data on stdout, one "taskwheel: " line per diagnostic
 *  on stderr, and strings from the broker cleaned of control characters
 *  before they reach a terminal.
 */
#include "client/cli/cli.h"

#include "client/cli/json.h"
#include "client/cli/secure.h"
#include "common/error.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
tw_cli_fail(int code, const char *fmt, ...)
{
    va_list ap;
    fputs("taskwheel: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int
tw_cli_usage(const char *fmt, ...)
{
    va_list ap;
    fputs("taskwheel: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'taskwheel --help'.\n", stderr);
    return TW_CLI_USAGE;
}

int
tw_cli_lib_error(const tw_cli_env_t *e, tw_client_t *c, const char *what,
                 int rc)
{
    if (rc == TW_EUNREACH) {
        return tw_cli_fail(TW_CLI_UNREACH, "broker at %s is unreachable",
                           e->broker);
    }
    const char *m = c ? tw_client_last_error(c) : "";
    if (*m && rc != TW_EIO && rc != TW_ENOMEM) {
        char *clean = tw_cli_clean(m);
        tw_cli_fail(TW_CLI_FAIL, "%s: %s (broker: %s)", what, tw_strerror(rc),
                    clean ? clean : "?");
        free(clean);
        return TW_CLI_FAIL;
    }
    return tw_cli_fail(TW_CLI_FAIL, "%s: %s", what, tw_strerror(rc));
}

int
tw_cli_flag(int argc, char **argv, int *i, const char *name,
            const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) {
        return 0;
    }
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') {
        return 0;
    }
    if (*i + 1 >= argc) {
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

int
tw_cli_secs_ms(const char *s, uint64_t *ms)
{
    if (!s || !*s) {
        return -1;
    }
    errno = 0;
    char *end;
    double x = strtod(s, &end);
    if (errno || *end || !isfinite(x) || x < 0 || x > UINT32_MAX / 1000.0) {
        return -1;
    }
    *ms = (uint64_t)llround(x * 1000.0);
    if (x > 0 && *ms == 0) {
        *ms = 1;
    }
    return 0;
}

int
tw_cli_int(const char *s, int64_t min, int64_t max, int64_t *v)
{
    if (!s || !*s) {
        return -1;
    }
    errno = 0;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (errno || *end || x < min || x > max) {
        return -1;
    }
    *v = x;
    return 0;
}

tw_client_t *
tw_cli_connect(const tw_cli_env_t *e, int *code)
{
    return tw_cli_client_new(e->broker, code); /* CURVE if configured */
}

json_t *
tw_cli_payload_json(const void *p, size_t n)
{
    if (!p || n == 0) {
        return json_null();
    }
    json_t *v = tw_json_from_msgpack(p, n);
    if (!v) {
        msgpack_object o;
        memset(&o, 0, sizeof o);
        o.type = MSGPACK_OBJECT_BIN;
        o.via.bin.ptr = p;
        o.via.bin.size = (uint32_t)(n > UINT32_MAX ? UINT32_MAX : n);
        v = tw_json_from_object(&o);
    }
    return v;
}

void
tw_cli_print_json(json_t *v)
{
    char *s = v ? tw_json_dumps(v) : NULL;
    fputs(s ? s : "null", stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(s);
    json_decref(v);
}

char *
tw_cli_clean(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (!d) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        d[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    d[n] = '\0';
    return d;
}
