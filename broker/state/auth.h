/*  broker/state/auth.h - who may connect to which broker socket.
 *
 *  With --curve-secret FILE all three broker sockets are CURVE servers
 *  (ZeroMQ's CurveZMQ: every connection authenticated and encrypted) and
 *  each carries a ZAP domain naming its role:
 *
 *      frontend  ROUTER  "clients"   --clients-keys DIR
 *      backend   ROUTER  "workers"   --workers-keys DIR
 *      status    XPUB    "monitors"  --monitors-keys DIR
 *
 *  libzmq asks a ZAP handler (ZeroMQ RFC 27) about every handshake. Ours is
 *  a REP socket bound to inproc://zeromq.zap.01 in the broker's context,
 *  watched on the broker's loop like any other socket (common/zwatch.h),
 *  so a verdict is a table lookup on the loop thread. A peer is allowed
 *  when its public key is one of the key files in its role's directory,
 *  much like ssh's authorized_keys; a role without a directory admits
 *  nobody. Anything but CURVE (a plaintext NULL handshake, PLAIN) is
 *  refused. A refusal is logged once per role, key and address, with the
 *  key's fingerprint and Z85 text, so a peer that keeps reconnecting does
 *  not flood the log. SIGHUP re-reads the directories (a directory that
 *  cannot be read keeps its old keys); connections already made stay up.
 *
 *  Without CURVE there is no ZAP handler, and the loopback rule applies:
 *  every endpoint must be loopback (127.0.0.0/8, ::1, localhost), ipc://
 *  or inproc://, unless --insecure is given, which is logged as a warning.
 *
 *  Life cycle: tw_auth_new (settings, keys, ZAP socket; before any broker
 *  socket binds, so no handshake can happen without the handler), then
 *  tw_auth_socket on each socket before its bind, tw_auth_watch once the
 *  loop is set up, tw_auth_close when the broker stops, tw_auth_destroy
 *  before zmq_ctx_term. Broker loop thread only.
 */
#ifndef TW_BROKER_AUTH_H
#define TW_BROKER_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "broker/state/cfg.h"

typedef enum {
    TW_ROLE_CLIENTS = 0,
    TW_ROLE_WORKERS = 1,
    TW_ROLE_MONITORS = 2,
    TW_ROLE__COUNT
} tw_role_t;

typedef struct tw_auth tw_auth_t;

/* The ZAP domain of a role ("clients"...). Static. */
const char *tw_role_name(tw_role_t role);

/* 1 if binding `ep` exposes nothing beyond this host: tcp:// on a
 * loopback address or "localhost", ipc:// or inproc://. Else 0. */
int tw_auth_endpoint_local(const char *ep);

/* The security settings' own rules, before anything is opened: key
 * directories need --curve-secret; without CURVE, a non-loopback
 * endpoint needs --insecure. Returns 0 or TW_EINVAL with a one-line
 * reason in `err` (a configuration error: the broker exits 2). */
int tw_auth_check(const tw_broker_cfg_t *cfg, char *err, size_t errlen);

/* Check the security settings of `cfg` (tw_auth_check, logging a warning
 * for each endpoint only --insecure allows), read the broker's secret
 * key and the role directories, and
 * with CURVE bind the ZAP handler in `ctx`. Returns 0 and sets *out, or
 * TW_EINVAL / TW_EPERM / TW_ENOENT / TW_EIO with a one-line reason in
 * `err`. `cfg` must outlive the object. */
int tw_auth_new(tw_auth_t **out, const tw_broker_cfg_t *cfg, void *ctx,
                char *err, size_t errlen);

/* Apply `role`'s security to `sock` (CURVE server, secret key, ZAP
 * domain); nothing when CURVE is off. Call before zmq_bind and before
 * tw_auth_watch (which wipes the secret key). Returns 0 or a negative
 * errno. */
int tw_auth_socket(tw_auth_t *a, void *sock, tw_role_t role);

/* Start answering ZAP requests on `loop` and reloading on SIGHUP, and
 * wipe the broker's secret key from memory (libzmq keeps its own copy in
 * each socket). Returns 0 or a negative error. */
int tw_auth_watch(tw_auth_t *a, uv_loop_t *loop);

/* 1 if CURVE is on. */
int tw_auth_curve(const tw_auth_t *a);

/* Re-read every role directory. A directory that fails keeps its old
 * keys. Returns 0, or the first error (already logged). */
int tw_auth_reload(tw_auth_t *a);

/* One ZAP request, as the verdict sees it. */
typedef struct {
    const char *domain;
    size_t domain_len;
    const char *address; /* the peer's IP address, as text */
    size_t address_len;
    const char *mechanism; /* "CURVE", "NULL", "PLAIN" */
    size_t mechanism_len;
    const void *key; /* the client's public key (CURVE credentials) */
    size_t key_len;
} tw_zap_req_t;

/* Decide one request: 200 (allowed; *user is the key's file name,
 * borrowed until the next reload) or 400 (refused; *why says why, static
 * or borrowed likewise). Logs refusals, once per role, key and address. */
int tw_auth_decide(tw_auth_t *a, const tw_zap_req_t *r, const char **user,
                   const char **why);

typedef struct {
    uint64_t accepted; /* handshakes allowed */
    uint64_t refused;  /* handshakes refused */
    uint64_t reloads;  /* successful reloads */
    size_t keys[TW_ROLE__COUNT]; /* keys allowed per role now */
} tw_auth_stats_t;

void tw_auth_stats(const tw_auth_t *a, tw_auth_stats_t *out);

/* Stop the loop handles (ZAP watch, SIGHUP). Idempotent. */
void tw_auth_close(tw_auth_t *a);

/* Close the ZAP socket, wipe the secret key, free. Call after the loop
 * has run the close callbacks and before zmq_ctx_term. Sets *a_p NULL. */
void tw_auth_destroy(tw_auth_t **a_p);

#endif /* TW_BROKER_AUTH_H */
