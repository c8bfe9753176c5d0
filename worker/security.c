/*  worker/security.c - the worker's CURVE keys and the exec allow-list
 *  (see security.h).
 *
 *  A program is judged by its real path, so neither "../" in a task's
 *  argv[0] nor a symbolic link placed under a trusted directory reaches
 *  outside it. The lookup of a bare name walks PATH like execvp (an empty
 *  entry is the current directory; without PATH, "/bin:/usr/bin") and takes
 *  the first executable regular file. libuv repeats that lookup when it
 *  spawns, so the program judged is the program run unless someone
 *  changes the directories in between; whoever can do that already
 *  controls what the worker runs.
 */
#include "worker/security.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char **s_prefixes; /* real paths, no trailing '/' except "/" */
static size_t s_nprefixes;

int
tw_worker_curve_load(const char *secret_path, const char *broker_path,
                     tw_curve_client_t *out, int *on, char *err,
                     size_t errlen)
{
    *on = 0;
    if (!secret_path && !broker_path) {
        return 0;
    }
    if (!secret_path || !broker_path) {
        snprintf(err, errlen, "%s needs %s as well: CURVE takes the "
                 "worker's secret key and the broker's public key",
                 secret_path ? "--curve-secret" : "--broker-key",
                 secret_path ? "--broker-key" : "--curve-secret");
        return TW_EINVAL;
    }
    if (!tw_keys_available()) {
        snprintf(err, errlen, "this libzmq was built without CURVE support");
        return TW_EINVAL;
    }
    int rc = tw_curve_client_load(out, secret_path, broker_path, err,
                                  errlen);
    *on = rc == 0;
    return rc;
}

static void
s_clear(void)
{
    for (size_t i = 0; i < s_nprefixes; i++) {
        tw_free(s_prefixes[i]);
    }
    tw_free(s_prefixes);
    s_prefixes = NULL;
    s_nprefixes = 0;
}

int
tw_exec_allow_set(const char *const *prefixes, size_t n, char *err,
                  size_t errlen)
{
    char **v = n ? tw_calloc(n, sizeof *v) : NULL;
    for (size_t i = 0; i < n; i++) {
        char real[PATH_MAX];
        if (!prefixes[i][0] || !realpath(prefixes[i], real)) {
            int e = prefixes[i][0] ? errno : ENOENT;
            snprintf(err, errlen, "--exec-allow %s: %s", prefixes[i],
                     strerror(e));
            for (size_t k = 0; k < i; k++) {
                tw_free(v[k]);
            }
            tw_free(v);
            return e == ENOENT ? TW_ENOENT : TW_EINVAL;
        }
        v[i] = tw_strdup(real);
    }
    s_clear();
    s_prefixes = v;
    s_nprefixes = n;
    return 0;
}

size_t
tw_exec_allow_count(void)
{
    return s_nprefixes;
}

/* Find `name` (no '/') on PATH as execvp would; *out gets the path.
 * Returns 0 or TW_ENOENT. */
static int
s_which(const char *name, char *out, size_t outlen)
{
    const char *path = getenv("PATH");
    if (!path) {
        path = "/bin:/usr/bin";
    }
    const char *p = path;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t dl = colon ? (size_t)(colon - p) : strlen(p);
        int n = dl ? snprintf(out, outlen, "%.*s/%s", (int)dl, p, name)
                   : snprintf(out, outlen, "%s", name);
        struct stat st;
        if (n > 0 && (size_t)n < outlen && stat(out, &st) == 0 &&
            S_ISREG(st.st_mode) && access(out, X_OK) == 0) {
            return 0;
        }
        if (!colon) {
            return TW_ENOENT;
        }
        p = colon + 1;
    }
}

/* The prefixes as one line for messages: "/a, /b". */
static void
s_list(char *out, size_t len)
{
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < s_nprefixes && off < len; i++) {
        int n = snprintf(out + off, len - off, "%s%s", i ? ", " : "",
                         s_prefixes[i]);
        if (n < 0) {
            break;
        }
        off += (size_t)n;
    }
}

int
tw_exec_allow_check(const char *program, char *err, size_t errlen)
{
    if (s_nprefixes == 0) {
        return 0;
    }
    char found[PATH_MAX], real[PATH_MAX], list[512];
    s_list(list, sizeof list);
    const char *cand = program;
    if (!strchr(program, '/')) {
        if (s_which(program, found, sizeof found) != 0) {
            snprintf(err, errlen, "program '%s' is not on PATH, so it is "
                     "not under an allowed directory (--exec-allow %s)",
                     program, list);
            return TW_ENOENT;
        }
        cand = found;
    }
    if (!realpath(cand, real)) {
        snprintf(err, errlen, "program '%s': %s; only programs under the "
                 "allowed directories may run (--exec-allow %s)",
                 program, strerror(errno), list);
        return TW_ENOENT;
    }
    for (size_t i = 0; i < s_nprefixes; i++) {
        const char *pre = s_prefixes[i];
        size_t pl = strlen(pre);
        if (strcmp(pre, "/") == 0 ||
            (strncmp(real, pre, pl) == 0 && real[pl] == '/')) {
            return 0;
        }
    }
    snprintf(err, errlen, "program '%s' (%s) is outside the allowed "
             "directories (--exec-allow %s)", program, real, list);
    return TW_EPERM;
}

void
tw_worker_security_log(const tw_curve_client_t *curve)
{
    if (curve) {
        char mine[TW_KEY_FP_LEN], theirs[TW_KEY_FP_LEN];
        tw_keys_fingerprint(curve->self.pub, mine);
        tw_keys_fingerprint(curve->server, theirs);
        tw_notice("worker.curve", "CURVE on: worker key %s, broker key %s",
                  mine, theirs);
    }
    if (s_nprefixes) {
        char list[512];
        s_list(list, sizeof list);
        tw_notice("worker.exec-allow", "exec and stream run programs only "
                  "under %s", list);
    }
}
