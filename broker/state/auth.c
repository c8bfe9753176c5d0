/*  broker/state/auth.c - the ZAP handler and the role key sets (see auth.h).
 *
 *  Each role's allowed keys are a sorted array of 32-byte public keys with
 *  the file name each came from, searched with bsearch; a reload builds
 *  new arrays and swaps them in only when a directory was read entirely.
 *  A ZAP request is 7 frames (version, request id, domain, address,
 *  routing id, mechanism, credentials) and its reply 6 (version, request
 *  id, status code, status text, user id, metadata); the REP socket must
 *  answer every request, even a malformed one, before it can read the
 *  next, so every path through s_on_zap sends exactly one reply.
 *
 *  Refusals are remembered by a hash of (role, key or mechanism, address)
 *  so that each is logged once; the memory is bounded (S_LOGGED_MAX), and
 *  beyond it only every 1000th refusal is logged. A reload forgets them.
 */
#include "broker/state/auth.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/idmap.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"
#include "common/zwatch.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_LOGGED_MAX 10000      /* refusals remembered for log-once */
#define S_DIR_MAX_FILES 100000  /* key files read from one directory */

typedef struct {
    uint8_t key[TW_KEY_LEN];
    char *name; /* file name without ".pub" */
} s_entry_t;

typedef struct {
    s_entry_t *v;
    size_t n;
} s_keyset_t;

struct tw_auth {
    const tw_broker_cfg_t *cfg;
    int curve;
    tw_keypair_t server;
    const char *dirs[TW_ROLE__COUNT];
    s_keyset_t sets[TW_ROLE__COUNT];
    void *zap;
    tw_zwatch_t zw;
    uv_signal_t sighup;
    int watching, closed;
    tw_idmap_t logged; /* hashes of refusals already logged */
    tw_auth_stats_t st;
};

static const char *const s_roles[TW_ROLE__COUNT] = {"clients", "workers",
                                                     "monitors"};
static const char *const s_flags[TW_ROLE__COUNT] = {
    "--clients-keys", "--workers-keys", "--monitors-keys"};

const char *
tw_role_name(tw_role_t role)
{
    return (unsigned)role < TW_ROLE__COUNT ? s_roles[role] : "?";
}

/* ---- the loopback rule ------------------------------------------------ */

int
tw_auth_endpoint_local(const char *ep)
{
    if (!strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9)) {
        return 1;
    }
    if (strncmp(ep, "tcp://", 6) != 0) {
        return 0;
    }
    const char *h = ep + 6;
    const char *colon = strrchr(h, ':');
    if (!colon) {
        return 0;
    }
    size_t n = (size_t)(colon - h);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    char host[64];
    if (n == 0 || n >= sizeof host) {
        return 0;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    if (strcmp(host, "localhost") == 0) {
        return 1;
    }
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6)) {
            return 1;
        }
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return 0; /* "*", an interface name, a host name */
}

/* ---- key sets --------------------------------------------------------- */

static int
s_entry_cmp(const void *x, const void *y)
{
    return memcmp(((const s_entry_t *)x)->key, ((const s_entry_t *)y)->key,
                  TW_KEY_LEN);
}

static void
s_set_free(s_keyset_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        tw_free(s->v[i].name);
    }
    tw_free(s->v);
    s->v = NULL;
    s->n = 0;
}

static const s_entry_t *
s_set_find(const s_keyset_t *s, const uint8_t *key)
{
    s_entry_t probe;
    memcpy(probe.key, key, TW_KEY_LEN);
    return s->n ? bsearch(&probe, s->v, s->n, sizeof *s->v, s_entry_cmp)
                : NULL;
}

/* Read every key file in `dir` into `out` (sorted, duplicates removed).
 * Unreadable or malformed files, and files holding a secret key, are
 * skipped with a warning. Returns 0, or an error with the reason in `err`
 * when the directory itself cannot be read. */
static int
s_load_dir(const char *dir, tw_role_t role, s_keyset_t *out, char *err,
           size_t errlen)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        snprintf(err, errlen, "cannot read %s directory %s: %s",
                 s_flags[role], dir, strerror(e));
        return e == ENOENT ? TW_ENOENT : e == EACCES ? TW_EPERM : TW_EIO;
    }
    size_t cap = 0, files = 0;
    struct dirent *de;
    while ((de = readdir(d)) && files < S_DIR_MAX_FILES) {
        if (de->d_name[0] == '.') {
            continue; /* ".", "..", hidden files, editor droppings */
        }
        char path[4096];
        int pl = snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (pl < 0 || (size_t)pl >= sizeof path || stat(path, &st) != 0 ||
            !S_ISREG(st.st_mode)) {
            continue;
        }
        files++;
        tw_keypair_t kp;
        char why[512];
        if (tw_keys_read(path, 0, &kp, why, sizeof why) != 0) {
            tw_warn("auth.keyfile", "%s: skipped: %s", s_roles[role], why);
            continue;
        }
        if (kp.has_secret) {
            tw_keys_wipe(&kp);
            tw_warn("auth.keyfile",
                    "%s: skipped %s: it holds a secret key; only public "
                    "(.pub) files belong in %s",
                    s_roles[role], path, s_flags[role]);
            continue;
        }
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            out->v = tw_realloc(out->v, cap * sizeof *out->v);
        }
        s_entry_t *e = &out->v[out->n++];
        memcpy(e->key, kp.pub, TW_KEY_LEN);
        size_t nl = strlen(de->d_name);
        if (nl > 4 && strcmp(de->d_name + nl - 4, ".pub") == 0) {
            nl -= 4;
        }
        e->name = tw_strndup(de->d_name, nl);
    }
    closedir(d);
    if (out->n) {
        qsort(out->v, out->n, sizeof *out->v, s_entry_cmp);
        size_t w = 1;
        for (size_t i = 1; i < out->n; i++) {
            if (memcmp(out->v[i].key, out->v[w - 1].key, TW_KEY_LEN) == 0) {
                tw_free(out->v[i].name);
            } else {
                out->v[w++] = out->v[i];
            }
        }
        out->n = w;
    }
    return 0;
}

int
tw_auth_reload(tw_auth_t *a)
{
    if (!a->curve) {
        tw_notice("auth.reload", "CURVE is off: no keys to reload");
        return 0;
    }
    int first = 0;
    for (int r = 0; r < TW_ROLE__COUNT; r++) {
        if (!a->dirs[r]) {
            continue;
        }
        s_keyset_t fresh;
        char err[512];
        int rc = s_load_dir(a->dirs[r], (tw_role_t)r, &fresh, err,
                            sizeof err);
        if (rc != 0) {
            tw_err("auth.reload", "%s; keeping its %zu previous key(s)", err,
                   a->sets[r].n);
            first = first ? first : rc;
            continue;
        }
        s_set_free(&a->sets[r]);
        a->sets[r] = fresh;
        a->st.keys[r] = fresh.n;
    }
    /* Refusals may now be accepted, or refused for a new reason: log
     * them afresh. */
    tw_idmap_free(&a->logged);
    tw_idmap_init(&a->logged);
    if (first == 0) {
        a->st.reloads++;
    }
    tw_notice("auth.reload", "keys allowed: %zu clients, %zu workers, %zu "
              "monitors", a->sets[0].n, a->sets[1].n, a->sets[2].n);
    return first;
}

/* ---- verdicts --------------------------------------------------------- */

/* Copy at most 63 bytes of `s` into out[64], keeping only printable
 * ASCII, for a log line. */
static void
s_printable(const char *s, size_t n, char *out)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j < 63; i++) {
        unsigned char c = (unsigned char)s[i];
        out[j++] = c >= 0x20 && c < 0x7f && c != '"' ? (char)c : '?';
    }
    out[j] = '\0';
}

/* 1 if this refusal should be logged now: the first time for its hash,
 * and past the memory bound every 1000th refusal. */
static int
s_log_once(tw_auth_t *a, const void *what, size_t wlen, tw_role_t role,
           const char *addr, size_t alen)
{
    uint8_t buf[1 + 64 + 64];
    size_t n = 0;
    buf[n++] = (uint8_t)role;
    wlen = wlen > 64 ? 64 : wlen;
    memcpy(buf + n, what, wlen);
    n += wlen;
    alen = alen > 64 ? 64 : alen;
    memcpy(buf + n, addr, alen);
    n += alen;
    uint64_t h = tw_hash_bytes(buf, n);
    if (tw_idmap_get(&a->logged, h)) {
        return 0;
    }
    if (a->logged.len >= S_LOGGED_MAX) {
        return a->st.refused % 1000 == 0;
    }
    tw_idmap_put(&a->logged, h, (void *)1);
    return 1;
}

static int
s_refuse(tw_auth_t *a, const char **why, const char *text)
{
    a->st.refused++;
    *why = text;
    return 400;
}

int
tw_auth_decide(tw_auth_t *a, const tw_zap_req_t *r, const char **user,
               const char **why)
{
    *user = "";
    char addr[64], dom[64];
    s_printable(r->address, r->address_len, addr);
    int role = -1;
    for (int i = 0; i < TW_ROLE__COUNT; i++) {
        if (r->domain_len == strlen(s_roles[i]) &&
            memcmp(r->domain, s_roles[i], r->domain_len) == 0) {
            role = i;
        }
    }
    if (role < 0) {
        s_printable(r->domain, r->domain_len, dom);
        if (s_log_once(a, r->domain, r->domain_len, TW_ROLE__COUNT,
                       r->address, r->address_len)) {
            tw_warn("auth.refused", "refused a peer from %s: unknown ZAP "
                    "domain '%s'", addr, dom);
        }
        return s_refuse(a, why, "unknown domain");
    }
    if (r->mechanism_len != 5 || memcmp(r->mechanism, "CURVE", 5) != 0) {
        char mech[64];
        s_printable(r->mechanism, r->mechanism_len, mech);
        if (s_log_once(a, r->mechanism, r->mechanism_len, (tw_role_t)role,
                       r->address, r->address_len)) {
            tw_warn("auth.refused",
                    "%s: refused a %s (not CURVE) connection from %s: this "
                    "broker only accepts CURVE (logged once per address)",
                    s_roles[role], mech, addr);
        }
        return s_refuse(a, why, "CURVE required");
    }
    if (r->key_len != TW_KEY_LEN) {
        return s_refuse(a, why, "malformed credentials");
    }
    const s_entry_t *e = s_set_find(&a->sets[role], r->key);
    if (e) {
        a->st.accepted++;
        *user = e->name;
        *why = "OK";
        tw_debug("auth.accepted", "%s: key '%s' from %s", s_roles[role],
                 e->name, addr);
        return 200;
    }
    if (s_log_once(a, r->key, TW_KEY_LEN, (tw_role_t)role, r->address,
                   r->address_len)) {
        char fp[TW_KEY_FP_LEN], z85[TW_KEY_Z85_LEN + 1];
        tw_keys_fingerprint(r->key, fp);
        tw_keys_z85(r->key, z85);
        if (a->dirs[role]) {
            tw_warn("auth.refused",
                    "%s: refused key %s from %s: not in %s %s (public key "
                    "%s; logged once per key and address)",
                    s_roles[role], fp, addr, s_flags[role], a->dirs[role],
                    z85);
        } else {
            tw_warn("auth.refused",
                    "%s: refused key %s from %s: no %s directory, so every "
                    "%s peer is refused (public key %s; logged once per key "
                    "and address)",
                    s_roles[role], fp, addr, s_flags[role], s_roles[role],
                    z85);
        }
    }
    return s_refuse(a, why, "key not allowed");
}

/* ---- the ZAP socket --------------------------------------------------- */

static void
s_on_zap(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    tw_auth_t *a = zw->data;
    const char *user = "", *why = "malformed ZAP request";
    int status = 400;
    const void *reqid = "";
    size_t reqid_len = 0;
    if (msg->n >= 2) {
        reqid = zmq_msg_data(&msg->f[1]);
        reqid_len = zmq_msg_size(&msg->f[1]);
    }
    if (msg->n >= 6 && !msg->truncated && zmq_msg_size(&msg->f[0]) == 3 &&
        memcmp(zmq_msg_data(&msg->f[0]), "1.0", 3) == 0) {
        tw_zap_req_t r;
        memset(&r, 0, sizeof r);
        r.domain = zmq_msg_data(&msg->f[2]);
        r.domain_len = zmq_msg_size(&msg->f[2]);
        r.address = zmq_msg_data(&msg->f[3]);
        r.address_len = zmq_msg_size(&msg->f[3]);
        r.mechanism = zmq_msg_data(&msg->f[5]);
        r.mechanism_len = zmq_msg_size(&msg->f[5]);
        if (msg->n >= 7) {
            r.key = zmq_msg_data(&msg->f[6]);
            r.key_len = zmq_msg_size(&msg->f[6]);
        }
        status = tw_auth_decide(a, &r, &user, &why);
    } else {
        a->st.refused++;
    }
    const char *code = status == 200 ? "200" : "400";
    const void *bufs[6] = {"1.0", reqid, code, why, user, ""};
    const size_t lens[6] = {3, reqid_len, 3, strlen(why), strlen(user), 0};
    int rc = tw_zwatch_sendb(zw, bufs, lens, 6);
    if (rc != 0) {
        tw_err("auth.zap", "cannot answer a ZAP request: %s",
               tw_strerror(rc));
    }
}

static void
s_on_sighup(uv_signal_t *h, int signum)
{
    (void)signum;
    tw_notice("auth.reload", "SIGHUP: reloading the key directories");
    tw_auth_reload(h->data);
}

/* ---- life cycle ------------------------------------------------------- */

/* The loopback rule for one endpoint: 0 if it may be bound (with a
 * warning when `warn` and only --insecure allows it), else TW_EINVAL. */
static int
s_check_bind(const tw_broker_cfg_t *cfg, const char *what, const char *ep,
             int warn, char *err, size_t errlen)
{
    if (cfg->curve_secret || tw_auth_endpoint_local(ep)) {
        return 0;
    }
    if (!cfg->insecure) {
        snprintf(err, errlen,
                 "refusing to bind the %s endpoint %s without CURVE: it is "
                 "not a loopback address, so anyone who can reach it could "
                 "%s. Give --curve-secret FILE (see docs/SECURITY.md), or "
                 "--insecure to bind it in plaintext anyway",
                 what, ep,
                 what[0] == 'f'   ? "submit and read tasks"
                 : what[0] == 'b' ? "register as a worker and receive tasks"
                                  : "read the status stream");
        return TW_EINVAL;
    }
    if (!warn) {
        return 0;
    }
    tw_warn("broker.insecure",
            "--insecure: the %s endpoint %s is not loopback and CURVE is "
            "off: traffic is plaintext and anyone who can reach it is "
            "trusted",
            what, ep);
    return 0;
}

/* The settings' rules; with `warn`, log the endpoints only --insecure
 * lets through. */
static int
s_check(const tw_broker_cfg_t *cfg, int warn, char *err, size_t errlen)
{
    const char *dirs[TW_ROLE__COUNT] = {cfg->clients_keys, cfg->workers_keys,
                                        cfg->monitors_keys};
    if (!cfg->curve_secret) {
        for (int r = 0; r < TW_ROLE__COUNT; r++) {
            if (dirs[r]) {
                snprintf(err, errlen, "%s needs --curve-secret: key "
                         "directories only apply with CURVE", s_flags[r]);
                return TW_EINVAL;
            }
        }
    }
    int rc = s_check_bind(cfg, "frontend", cfg->frontend, warn, err, errlen);
    if (rc == 0) {
        rc = s_check_bind(cfg, "backend", cfg->backend, warn, err, errlen);
    }
    if (rc == 0) {
        rc = s_check_bind(cfg, "status", cfg->status, warn, err, errlen);
    }
    return rc;
}

int
tw_auth_check(const tw_broker_cfg_t *cfg, char *err, size_t errlen)
{
    return s_check(cfg, 0, err, errlen);
}

int
tw_auth_new(tw_auth_t **out, const tw_broker_cfg_t *cfg, void *ctx,
            char *err, size_t errlen)
{
    *out = NULL;
    const char *dirs[TW_ROLE__COUNT] = {cfg->clients_keys, cfg->workers_keys,
                                        cfg->monitors_keys};
    int rc = s_check(cfg, 1, err, errlen);
    if (rc != 0) {
        return rc;
    }
    tw_auth_t *a = tw_calloc(1, sizeof *a);
    a->cfg = cfg;
    tw_idmap_init(&a->logged);
    if (!cfg->curve_secret) {
        *out = a;
        return 0;
    }
    if (!tw_keys_available()) {
        snprintf(err, errlen, "--curve-secret: this libzmq was built "
                 "without CURVE support");
        tw_auth_destroy(&a);
        return TW_EINVAL;
    }
    a->curve = 1;
    rc = tw_keys_read(cfg->curve_secret, 1, &a->server, err, errlen);
    for (int r = 0; rc == 0 && r < TW_ROLE__COUNT; r++) {
        a->dirs[r] = dirs[r];
        if (dirs[r]) {
            rc = s_load_dir(dirs[r], (tw_role_t)r, &a->sets[r], err, errlen);
            a->st.keys[r] = a->sets[r].n;
        }
    }
    if (rc == 0) {
        a->zap = zmq_socket(ctx, ZMQ_REP);
        int zero = 0;
        if (!a->zap ||
            zmq_setsockopt(a->zap, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
            zmq_bind(a->zap, S_ZAP_ENDPOINT) != 0) {
            snprintf(err, errlen, "cannot bind the ZAP handler at %s: %s",
                     S_ZAP_ENDPOINT, zmq_strerror(errno));
            rc = TW_EIO;
        }
    }
    if (rc != 0) {
        tw_auth_destroy(&a);
        return rc;
    }
    char fp[TW_KEY_FP_LEN];
    tw_keys_fingerprint(a->server.pub, fp);
    tw_notice("broker.curve", "CURVE on, broker key %s; keys allowed: %zu "
              "clients, %zu workers, %zu monitors", fp, a->sets[0].n,
              a->sets[1].n, a->sets[2].n);
    for (int r = 0; r < TW_ROLE__COUNT; r++) {
        if (!dirs[r]) {
            tw_notice("broker.curve", "no %s: every %s peer is refused",
                      s_flags[r], s_roles[r]);
        }
    }
    *out = a;
    return 0;
}

int
tw_auth_socket(tw_auth_t *a, void *sock, tw_role_t role)
{
    if (!a->curve) {
        return 0;
    }
    return tw_curve_server_apply(sock, &a->server, s_roles[role]);
}

int
tw_auth_watch(tw_auth_t *a, uv_loop_t *loop)
{
    /* Every socket is bound by now: the secret is no longer needed. */
    tw_keys_wipe(&a->server);
    uv_signal_init(loop, &a->sighup);
    a->sighup.data = a;
    uv_signal_start(&a->sighup, s_on_sighup, SIGHUP);
    a->watching = 1;
    if (!a->curve) {
        return 0;
    }
    int rc = tw_zwatch_init(loop, &a->zw, a->zap);
    if (rc != 0) {
        return rc;
    }
    a->zw.data = a;
    a->watching = 2;
    return tw_zwatch_start(&a->zw, s_on_zap, NULL);
}

int
tw_auth_curve(const tw_auth_t *a)
{
    return a->curve;
}

void
tw_auth_stats(const tw_auth_t *a, tw_auth_stats_t *out)
{
    *out = a->st;
}

static void
s_closed(uv_handle_t *h)
{
    (void)h;
}

static void
s_zw_closed(tw_zwatch_t *zw)
{
    (void)zw;
}

void
tw_auth_close(tw_auth_t *a)
{
    if (!a || a->closed || !a->watching) {
        return;
    }
    a->closed = 1;
    uv_close((uv_handle_t *)&a->sighup, s_closed);
    if (a->watching == 2) {
        tw_zwatch_close(&a->zw, s_zw_closed);
    }
}

void
tw_auth_destroy(tw_auth_t **a_p)
{
    tw_auth_t *a = *a_p;
    if (!a) {
        return;
    }
    if (a->zap) {
        zmq_close(a->zap);
    }
    for (int r = 0; r < TW_ROLE__COUNT; r++) {
        s_set_free(&a->sets[r]);
    }
    tw_idmap_free(&a->logged);
    tw_keys_wipe(&a->server);
    tw_free(a);
    *a_p = NULL;
}
