/*  client/cli/sub.c - a SUB socket on the broker's status endpoint for
 *  `events` and `station tail` (sub.h).
 *
 *  The only file of the CLI that uses ZeroMQ directly: it finds the
 *  status endpoint, subscribes with a welcome topic of its own
 *  (PROTOCOL.md 8.2) and hands each [topic][body] message to the
 *  command until SIGINT/SIGTERM, a count or a time limit.
 */
#include "client/cli/sub.h"
#include "client/cli/secure.h"
#include "client/internal.h"
#include "common/util.h"
#include "proto/proto.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t s_stop;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* What to do with one status message [topic][body]: return 1 if it was
 * printed (it counts towards --count), 0 if skipped. */
typedef int (*tw_cli_sub_fn)(void *arg, zmq_msg_t *topic, zmq_msg_t *body);

void
tw_cli_sub_stop(void)
{
    s_stop = 1;
}

/* The status endpoint: --status or $TASKWHEEL_STATUS, else the one the
 * broker names in its answer to a ping (an older broker names none: the
 * default). Returns -1 with the endpoint in buf, or an exit code. */
static int
s_status_endpoint(const tw_cli_env_t *o, char *buf, size_t len)
{
    if (o->status) {
        snprintf(buf, len, "%s", o->status);
        return -1;
    }
    int code = -1;
    tw_client_t *c = tw_cli_connect(o, &code);
    if (!c) {
        return code;
    }
    int rc = tw_client_ping(c, o->timeout_ms);
    if (rc != 0) {
        code = tw_cli_lib_error(o, c, "status endpoint", rc);
    } else if (!tw__client_status_ep(c, buf, len)) {
        snprintf(buf, len, "%s", TW_CLI_DEFAULT_STATUS);
    }
    tw_client_destroy(&c);
    return code;
}

/* A SUB socket connected to the status endpoint and subscribed to each
 * of `prefixes` (everything if there are none), then to a welcome topic
 * of its own (PROTOCOL.md 8.2), whose answer shows the endpoint is a
 * broker's status socket and the subscriptions are in effect. Returns -1
 * and sets *ctx, *sub and ep (the endpoint), or an exit code. */
int
tw_cli_sub_open(const tw_cli_env_t *o, const char *const *prefixes, size_t n,
                void **ctx, void **sub, char *ep, size_t eplen)
{
    int code = s_status_endpoint(o, ep, eplen);
    if (code >= 0) {
        return code;
    }
    *ctx = zmq_ctx_new();
    *sub = *ctx ? zmq_socket(*ctx, ZMQ_SUB) : NULL;
    if (!*sub) {
        int code = tw_cli_fail(TW_CLI_FAIL, "cannot create a socket: %s",
                               zmq_strerror(errno));
        if (*ctx) {
            zmq_ctx_term(*ctx);
        }
        *ctx = NULL;
        return code;
    }
    int linger = 0, hwm = 100000;
    zmq_setsockopt(*sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(*sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    int sec = tw_cli_secure_socket(*sub);
    if (sec >= 0) {
        zmq_close(*sub);
        zmq_ctx_term(*ctx);
        *sub = *ctx = NULL;
        return sec;
    }
    if (zmq_connect(*sub, ep) != 0) {
        zmq_close(*sub);
        zmq_ctx_term(*ctx);
        *sub = *ctx = NULL;
        return tw_cli_usage("cannot use status endpoint '%s'", ep);
    }
    if (n == 0) {
        zmq_setsockopt(*sub, ZMQ_SUBSCRIBE, "", 0);
    }
    for (size_t i = 0; i < n; i++) {
        zmq_setsockopt(*sub, ZMQ_SUBSCRIBE, prefixes[i], strlen(prefixes[i]));
    }
    char welcome[TW_PROTO_WELCOME_LEN + 17];
    memcpy(welcome, TW_PROTO_WELCOME, TW_PROTO_WELCOME_LEN);
    tw_random_hex(welcome + TW_PROTO_WELCOME_LEN, 16);
    zmq_setsockopt(*sub, ZMQ_SUBSCRIBE, welcome, strlen(welcome));
    return -1;
}

/* 1 if `topic` is a welcome answer (never shown: it only proves the
 * subscription). */
static int
s_is_welcome(zmq_msg_t *topic)
{
    return zmq_msg_size(topic) > TW_PROTO_WELCOME_LEN &&
           memcmp(zmq_msg_data(topic), TW_PROTO_WELCOME,
                  TW_PROTO_WELCOME_LEN) == 0;
}

void
tw_cli_sub_close(void *ctx, void *sub)
{
    zmq_close(sub);
    zmq_ctx_term(ctx);
}

/* SIGINT and SIGTERM end tw_cli_sub_loop. */
static void
s_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Receive one message waiting on `sub`, if any: its first two frames
 * into f[0] and f[1] (close both), the rest dropped. Returns how many
 * frames it had, or 0 (f closed already) when none was waiting. */
static int
s_recv(void *sub, zmq_msg_t f[2])
{
    zmq_msg_init(&f[0]);
    zmq_msg_init(&f[1]);
    if (zmq_msg_recv(&f[0], sub, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f[0]);
        zmq_msg_close(&f[1]);
        return 0;
    }
    int nf = 1;
    int more = zmq_msg_more(&f[0]);
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sub, 0) < 0) {
            zmq_msg_close(&part);
            break;
        }
        more = zmq_msg_more(&part);
        if (nf == 1) {
            zmq_msg_move(&f[1], &part);
        }
        nf++;
        zmq_msg_close(&part);
    }
    return nf;
}

/* Hand every two-frame message arriving on `sub` (from `ep`) to `fn`
 * until SIGINT or SIGTERM, `count` of them were printed (0: no limit) or
 * `for_secs` passed (negative: no limit). An endpoint that sends nothing
 * at all, not even the welcome answer, within `quiet_ms` is not a
 * broker's status socket (or no broker is there): exit 3, never a silent
 * success. Returns an exit code. */
int
tw_cli_sub_loop(void *sub, const char *ep, int quiet_ms, uint64_t count,
                double for_secs, tw_cli_sub_fn fn, void *arg)
{
    s_catch_signals();
    int code = TW_CLI_OK;
    uint64_t deadline = for_secs >= 0
                            ? tw_now_ms() +
                                  (uint64_t)llround(for_secs * 1000.0)
                            : 0;
    uint64_t seen = 0;
    int heard = 0;
    uint64_t quiet_end = tw_now_ms() + (uint64_t)quiet_ms;
    while (!s_stop && (count == 0 || seen < count)) {
        long wait = -1;
        uint64_t now = tw_now_ms();
        if (for_secs >= 0) {
            if (now >= deadline) {
                break;
            }
            wait = (long)(deadline - now);
        }
        if (!heard) {
            if (now >= quiet_end) {
                code = tw_cli_fail(TW_CLI_UNREACH,
                                   "nothing from the status endpoint %s "
                                   "within %d ms: no broker's status socket "
                                   "is there",
                                   ep, quiet_ms);
                break;
            }
            if (wait < 0 || (long)(quiet_end - now) < wait) {
                wait = (long)(quiet_end - now);
            }
        }
        zmq_pollitem_t pi = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&pi, 1, wait) < 0) {
            if (errno == EINTR) {
                continue;
            }
            code = tw_cli_fail(TW_CLI_FAIL, "poll: %s", zmq_strerror(errno));
            break;
        }
        while (!s_stop && (count == 0 || seen < count)) {
            zmq_msg_t f[2];
            int nf = s_recv(sub, f);
            if (nf == 0) {
                break;
            }
            /* A status message is exactly [topic][body]. */
            heard = 1;
            if (s_is_welcome(&f[0])) {
                /* Said once, on stderr: from here on nothing published
                 * under the subscribed topics is missed. */
                tw_cli_fail(TW_CLI_OK, "subscribed at %s", ep);
            } else if (nf == 2) {
                seen += (uint64_t)fn(arg, &f[0], &f[1]);
            }
            zmq_msg_close(&f[0]);
            zmq_msg_close(&f[1]);
        }
    }
    return code;
}

/* If the word at w->i is --count N or --for S, consume it (and its value)
 * and return 1; a bad value sets *code to the usage exit code. Returns 0
 * for any other word. */
int
tw_cli_stream_flag(tw_cli_words_t *w, uint64_t *count, double *for_secs,
                   int *code)
{
    const char *val;
    int r;
    if ((r = tw_cli_word_flag(w, "--count", &val)) != 0) {
        if (r < 0 || tw_cli_u64(val, count) != 0 || *count == 0) {
            *code = tw_cli_usage("--count needs a number >= 1");
        }
        return 1;
    }
    if ((r = tw_cli_word_flag(w, "--for", &val)) != 0) {
        if (r < 0 || tw_cli_secs(val, 1e9, for_secs) != 0) {
            *code = tw_cli_usage("--for needs a number of seconds");
        }
        return 1;
    }
    return 0;
}
