/*  tests/unit/test_broker_auth.c - the broker's access rules without the
 *  network.
 *
 *  The loopback rule on endpoint strings; the start-up checks of
 *  tw_auth_new (key directories need CURVE, non-loopback needs --insecure
 *  or CURVE, the secret key must be private); the verdicts of
 *  tw_auth_decide for each role (a listed key, an unknown key, a key of
 *  another role, plaintext, an unknown domain), what a reload changes and
 *  what a bad directory keeps; and the routing ids the input gate of
 *  broker/gate.h accepts (its text rule is common/utf8.h's, tested in
 *  test_utf8.c; the per-field text check is the codec's, tested in
 *  test_proto.c). The ZAP socket, real handshakes and the gate's answers
 *  are covered by tests/integration/12-curve.c and 05-bad-input.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "broker/state/auth.h"
#include "broker/gate.h"
#include "common/error.h"
#include "common/keys.h"
#include "common/log.h"

static char s_dir[64];

static int
s_setup(void **state)
{
    (void)state;
    tw_log_open("test", TW_LOG_NULL);
    snprintf(s_dir, sizeof s_dir, "/tmp/tw-test-auth-XXXXXX");
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

static tw_broker_cfg_t
s_cfg(void)
{
    tw_broker_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.frontend = "tcp://127.0.0.1:7710";
    cfg.backend = "tcp://127.0.0.1:7711";
    cfg.status = "tcp://127.0.0.1:7712";
    return cfg;
}

/* ---- the loopback rule ------------------------------------------------ */

static void
test_endpoint_local(void **state)
{
    (void)state;
    const char *local[] = {"tcp://127.0.0.1:7710",
                           "tcp://127.1.2.3:1",
                           "tcp://localhost:7710",
                           "tcp://[::1]:7710",
                           "tcp://::1:7710",
                           "ipc:///tmp/tw.sock",
                           "inproc://tw",
                           "tcp://[::ffff:127.0.0.1]:5"};
    const char *remote[] = {"tcp://0.0.0.0:7710",  "tcp://*:7710",
                            "tcp://eth0:7710",     "tcp://10.0.0.1:7710",
                            "tcp://128.0.0.1:7710", "tcp://[::]:7710",
                            "tcp://example.org:1", "pgm://eth0;239.1.1.1:5",
                            "tcp://127.0.0.1",     "tcp://:7710"};
    for (size_t i = 0; i < sizeof local / sizeof *local; i++) {
        assert_int_equal(tw_auth_endpoint_local(local[i]), 1);
    }
    for (size_t i = 0; i < sizeof remote / sizeof *remote; i++) {
        assert_int_equal(tw_auth_endpoint_local(remote[i]), 0);
    }
}

static void
test_start_rules(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    char err[640];
    tw_auth_t *a = NULL;
    tw_broker_cfg_t cfg = s_cfg();

    /* Loopback without CURVE: fine, and nothing to authenticate. */
    assert_int_equal(tw_auth_new(&a, &cfg, ctx, err, sizeof err), 0);
    assert_false(tw_auth_curve(a));
    tw_auth_destroy(&a);
    assert_null(a);

    /* Any endpoint beyond loopback needs --insecure; the PUB too. */
    cfg.status = "tcp://0.0.0.0:7712";
    assert_int_equal(tw_auth_new(&a, &cfg, ctx, err, sizeof err), TW_EINVAL);
    assert_null(a);
    assert_non_null(strstr(err, "--insecure"));
    assert_non_null(strstr(err, "status"));
    cfg.insecure = 1;
    assert_int_equal(tw_auth_new(&a, &cfg, ctx, err, sizeof err), 0);
    tw_auth_destroy(&a);

    /* Key directories mean nothing without CURVE. */
    cfg = s_cfg();
    cfg.workers_keys = s_dir;
    assert_int_equal(tw_auth_new(&a, &cfg, ctx, err, sizeof err), TW_EINVAL);
    assert_non_null(strstr(err, "--workers-keys needs --curve-secret"));
    zmq_ctx_term(ctx);
}

/* ---- verdicts --------------------------------------------------------- */

/* Write a key pair as <s_dir>/<name>.key/.pub. */
static void
s_keygen(const char *name, tw_keypair_t *kp)
{
    char base[160], err[256];
    snprintf(base, sizeof base, "%s/%s", s_dir, name);
    assert_int_equal(tw_keys_generate(kp), 0);
    assert_int_equal(tw_keys_write(base, kp, err, sizeof err), 0);
}

static void
s_mkdir(const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", s_dir, name);
    assert_int_equal(mkdir(out, 0755), 0);
}

/* Copy <s_dir>/<name>.pub (or .key) into directory `dir`. */
static void
s_allow(const char *dir, const char *name, const char *ext)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp '%s/%s.%s' '%s/'", s_dir, name, ext, dir);
    assert_int_equal(system(cmd), 0);
}

static int
s_decide(tw_auth_t *a, const char *domain, const char *mech,
         const uint8_t *key, const char **user)
{
    tw_zap_req_t r = {domain,          strlen(domain), "127.0.0.1", 9,
                      mech,            strlen(mech),   key,
                      key ? TW_KEY_LEN : 0};
    const char *why;
    return tw_auth_decide(a, &r, user, &why);
}

static void
test_decide(void **state)
{
    (void)state;
    if (!tw_keys_available()) {
        skip();
    }
    tw_keypair_t broker, alice, wally, eve;
    s_keygen("broker", &broker);
    s_keygen("alice", &alice);
    s_keygen("wally", &wally);
    s_keygen("eve", &eve);
    char clients[160], workers[160], secret[160];
    s_mkdir("clients", clients, sizeof clients);
    s_mkdir("workers", workers, sizeof workers);
    s_allow(clients, "alice", "pub");
    s_allow(workers, "wally", "pub");
    s_allow(workers, "eve", "key"); /* a secret key: skipped */
    char junk[200];
    snprintf(junk, sizeof junk, "%s/README", workers);
    FILE *f = fopen(junk, "w");
    assert_non_null(f);
    fputs("not a key\n", f);
    fclose(f);
    snprintf(secret, sizeof secret, "%s/broker.key", s_dir);

    void *ctx = zmq_ctx_new();
    tw_broker_cfg_t cfg = s_cfg();
    cfg.curve_secret = secret;
    cfg.clients_keys = clients;
    cfg.workers_keys = workers;
    cfg.frontend = "tcp://0.0.0.0:7710"; /* fine with CURVE */
    char err[640];
    tw_auth_t *a = NULL;
    assert_int_equal(tw_auth_new(&a, &cfg, ctx, err, sizeof err), 0);
    assert_true(tw_auth_curve(a));
    tw_auth_stats_t st;
    tw_auth_stats(a, &st);
    assert_int_equal(st.keys[TW_ROLE_CLIENTS], 1);
    assert_int_equal(st.keys[TW_ROLE_WORKERS], 1);
    assert_int_equal(st.keys[TW_ROLE_MONITORS], 0);

    const char *user;
    assert_int_equal(s_decide(a, "clients", "CURVE", alice.pub, &user), 200);
    assert_string_equal(user, "alice");
    assert_int_equal(s_decide(a, "workers", "CURVE", wally.pub, &user), 200);
    assert_string_equal(user, "wally");
    /* A key is allowed in its own role only. */
    assert_int_equal(s_decide(a, "workers", "CURVE", alice.pub, &user), 400);
    assert_int_equal(s_decide(a, "clients", "CURVE", wally.pub, &user), 400);
    /* Unknown keys, the skipped secret file's key, no monitors at all. */
    assert_int_equal(s_decide(a, "workers", "CURVE", eve.pub, &user), 400);
    assert_int_equal(s_decide(a, "monitors", "CURVE", alice.pub, &user),
                     400);
    /* Plaintext, another domain, bad credentials. */
    assert_int_equal(s_decide(a, "clients", "NULL", NULL, &user), 400);
    assert_int_equal(s_decide(a, "clients", "PLAIN", NULL, &user), 400);
    assert_int_equal(s_decide(a, "admins", "CURVE", alice.pub, &user), 400);
    tw_zap_req_t shortkey = {"clients", 7, "127.0.0.1", 9, "CURVE", 5,
                             alice.pub, 16};
    const char *why;
    assert_int_equal(tw_auth_decide(a, &shortkey, &user, &why), 400);
    tw_auth_stats(a, &st);
    assert_int_equal(st.accepted, 2);
    assert_int_equal(st.refused, 8);

    /* A key added to the directory counts after a reload; one removed
     * stops counting. */
    s_allow(clients, "eve", "pub");
    assert_int_equal(s_decide(a, "clients", "CURVE", eve.pub, &user), 400);
    char gone[200];
    snprintf(gone, sizeof gone, "%s/alice.pub", clients);
    assert_int_equal(unlink(gone), 0);
    assert_int_equal(tw_auth_reload(a), 0);
    assert_int_equal(s_decide(a, "clients", "CURVE", eve.pub, &user), 200);
    assert_string_equal(user, "eve");
    assert_int_equal(s_decide(a, "clients", "CURVE", alice.pub, &user), 400);

    /* A directory that vanished keeps its old keys. */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", workers);
    assert_int_equal(system(cmd), 0);
    assert_int_not_equal(tw_auth_reload(a), 0);
    assert_int_equal(s_decide(a, "workers", "CURVE", wally.pub, &user), 200);
    tw_auth_destroy(&a);

    /* A secret key file others can read stops the broker. */
    assert_int_equal(chmod(secret, 0644), 0);
    cfg.workers_keys = NULL;
    assert_int_equal(tw_auth_new(&a, &cfg, ctx, err, sizeof err), TW_EPERM);
    assert_non_null(strstr(err, "chmod 600"));
    /* So does a key directory that does not exist. */
    assert_int_equal(chmod(secret, 0600), 0);
    cfg.monitors_keys = "/nonexistent/tw-monitors";
    assert_int_equal(tw_auth_new(&a, &cfg, ctx, err, sizeof err), TW_ENOENT);
    assert_non_null(strstr(err, "--monitors-keys"));
    zmq_ctx_term(ctx);
    tw_keys_wipe(&broker);
    tw_keys_wipe(&alice);
    tw_keys_wipe(&wally);
    tw_keys_wipe(&eve);
}

/* ---- the gate --------------------------------------------------------- */

static void
test_ident(void **state)
{
    (void)state;
    assert_true(tw_gate_ident_ok("c-0123456789abcdef", 18));
    assert_true(tw_gate_ident_ok("w-my worker-1a2b3c4d", 20));
    assert_true(tw_gate_ident_ok("w-w\xc3\xb6rker-1", 11)); /* UTF-8 */
    assert_true(tw_gate_ident_ok("\0\x12\x34\x56\x78", 5));  /* libzmq's */
    assert_false(tw_gate_ident_ok("\0\x12\x34", 3));
    assert_false(tw_gate_ident_ok("", 0));
    assert_false(tw_gate_ident_ok("c-\x1b[2J", 6));
    assert_false(tw_gate_ident_ok("c-\nfake log line", 16));
    char big[300];
    memset(big, 'a', sizeof big);
    assert_true(tw_gate_ident_ok(big, 255));
    assert_false(tw_gate_ident_ok(big, 256));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_local),
        cmocka_unit_test_setup_teardown(test_start_rules, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_decide, s_setup, s_teardown),
        cmocka_unit_test(test_ident),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
