/*  client/cli/secure.c - CURVE keys for the taskwheel command (see
 *  secure.h).
 *
 *  The two file names come from the flags, else from the environment; the
 *  files are read when the first connection is made, once, and the secret
 *  key is wiped when the process's last socket has taken its copy (at
 *  exit, since a command may open a client and a SUB socket).
 */
#include "client/cli/secure.h"
#include "client/cli/cli.h"
#include "client/internal.h"
#include "common/error.h"
#include "common/keys.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static struct {
    const char *secret; /* --curve-secret or $TASKWHEEL_CURVE_SECRET */
    const char *broker; /* --broker-key or $TASKWHEEL_BROKER_KEY */
    int loaded;         /* 1 keys read, -1 CURVE off */
    tw_curve_client_t keys;
} s_sec;

int
tw_cli_secure_flag(int argc, char **argv, int *i)
{
    const char *flag = argv[*i], *val = NULL;
    const char **to = &s_sec.secret;
    int r = tw_cli_flag(argc, argv, i, "--curve-secret", &val);
    if (r == 0) {
        to = &s_sec.broker;
        r = tw_cli_flag(argc, argv, i, "--broker-key", &val);
    }
    if (r == 0) {
        return 0;
    }
    if (r < 0 || !*val) {
        return tw_cli_usage("%s needs a key file", flag);
    }
    *to = val;
    return 1;
}

static void
s_wipe(void)
{
    tw_keys_wipe(&s_sec.keys.self);
}

/* Read the keys once. Returns -1 to go on (s_sec.loaded says whether
 * CURVE is on) or an exit code. */
static int
s_load(void)
{
    if (s_sec.loaded) {
        return -1;
    }
    const char *env;
    if (!s_sec.secret && (env = getenv("TASKWHEEL_CURVE_SECRET")) && *env) {
        s_sec.secret = env;
    }
    if (!s_sec.broker && (env = getenv("TASKWHEEL_BROKER_KEY")) && *env) {
        s_sec.broker = env;
    }
    if (!s_sec.secret && !s_sec.broker) {
        s_sec.loaded = -1;
        return -1;
    }
    if (!s_sec.secret || !s_sec.broker) {
        return tw_cli_usage("CURVE needs both --curve-secret (this "
                            "client's secret key) and --broker-key (the "
                            "broker's public key)");
    }
    if (!tw_keys_available()) {
        return tw_cli_fail(TW_CLI_USAGE,
                           "this libzmq was built without CURVE support");
    }
    char err[512];
    if (tw_curve_client_load(&s_sec.keys, s_sec.secret, s_sec.broker, err,
                             sizeof err) != 0) {
        return tw_cli_fail(TW_CLI_USAGE, "%s", err);
    }
    s_sec.loaded = 1;
    atexit(s_wipe);
    return -1;
}

tw_client_t *
tw_cli_client_new(const char *endpoint, int *code)
{
    int rc = s_load();
    if (rc >= 0) {
        *code = rc;
        return NULL;
    }
    tw_client_t *c =
        tw__client_new(endpoint, s_sec.loaded > 0 ? &s_sec.keys : NULL);
    if (!c) {
        *code = tw_cli_usage("cannot use broker endpoint '%s'", endpoint);
        return NULL;
    }
    /* A refused port or a peer of the wrong kind ends a command at once,
     * with the socket monitor's words (tw_cli_lib_error). */
    tw__client_fail_fast(c, 1);
    return c;
}

int
tw_cli_secure_socket(void *sock)
{
    int rc = s_load();
    if (rc >= 0) {
        return rc;
    }
    if (s_sec.loaded > 0 && tw_curve_client_apply(sock, &s_sec.keys) != 0) {
        return tw_cli_fail(TW_CLI_FAIL, "cannot set the CURVE keys: %s",
                           zmq_strerror(errno));
    }
    return -1;
}

int
tw_cli_keygen(int argc, char **argv, int json)
{
    if (argc != 2 || argv[1][0] == '-' || !argv[1][0]) {
        return tw_cli_usage("usage: taskwheel keygen NAME (writes NAME.key "
                            "and NAME.pub)");
    }
    const char *name = argv[1];
    tw_keypair_t kp;
    if (tw_keys_generate(&kp) != 0) {
        return tw_cli_fail(TW_CLI_FAIL, "keygen: this libzmq was built "
                           "without CURVE support");
    }
    char err[512];
    int rc = tw_keys_write(name, &kp, err, sizeof err);
    tw_keys_wipe(&kp);
    if (rc != 0) {
        return tw_cli_fail(rc == TW_EINVAL ? TW_CLI_USAGE : TW_CLI_FAIL,
                           "keygen: %s", err);
    }
    char fp[TW_KEY_FP_LEN], z85[TW_KEY_Z85_LEN + 1];
    tw_keys_fingerprint(kp.pub, fp);
    tw_keys_z85(kp.pub, z85);
    if (json) {
        json_t *v = json_pack("{s:s+, s:s+, s:s, s:s}", "secret_file", name,
                              ".key", "public_file", name, ".pub",
                              "public_key", z85, "fingerprint", fp);
        if (!v) {
            return tw_cli_fail(TW_CLI_FAIL, "out of memory");
        }
        tw_cli_print_json(v);
        return TW_CLI_OK;
    }
    printf("wrote %s.key (secret, mode 0600) and %s.pub\n"
           "fingerprint %s\n"
           "public-key  %s\n",
           name, name, fp, z85);
    return fflush(stdout) == 0 ? TW_CLI_OK : TW_CLI_FAIL;
}
