/*  common/zmon.c - the socket monitor, read and worded (see zmon.h). */
#include "common/zmon.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#define S_EVENTS                                                             \
    (ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_DISCONNECTED |                    \
     ZMQ_EVENT_ACCEPTED |                                                    \
     ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |  \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

void *
tw_zmon_start(void *ctx, void *sock)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://tw-zmon-%p", sock);
    if (zmq_socket_monitor(sock, ep, S_EVENTS) != 0) {
        return NULL;
    }
    void *pair = zmq_socket(ctx, ZMQ_PAIR);
    if (!pair) {
        zmq_socket_monitor(sock, NULL, 0);
        return NULL;
    }
    int zero = 0;
    zmq_setsockopt(pair, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(pair, ep) != 0) {
        int e = errno;
        zmq_close(pair);
        zmq_socket_monitor(sock, NULL, 0);
        errno = e;
        return NULL;
    }
    return pair;
}

void
tw_zmon_stop(void *sock, void *pair)
{
    if (sock && pair) {
        zmq_socket_monitor(sock, NULL, 0);
    }
    if (pair) {
        zmq_close(pair);
    }
}

int
tw_zmon_parse(const void *f0, size_t n0, const void *f1, size_t n1,
              tw_zmon_event_t *ev)
{
    memset(ev, 0, sizeof *ev);
    if (n0 != 6) {
        return -1;
    }
    memcpy(&ev->event, f0, 2);
    memcpy(&ev->value, (const char *)f0 + 2, 4);
    size_t n = n1 < sizeof ev->endpoint - 1 ? n1 : sizeof ev->endpoint - 1;
    if (f1) {
        memcpy(ev->endpoint, f1, n);
    }
    switch (ev->event) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        ev->kind = TW_ZMON_UP;
        break;
    case ZMQ_EVENT_DISCONNECTED:
        ev->kind = TW_ZMON_DOWN;
        break;
    case ZMQ_EVENT_ACCEPTED:
        ev->kind = TW_ZMON_ACCEPTED;
        break;
    case ZMQ_EVENT_CONNECT_RETRIED:
        ev->kind = TW_ZMON_REFUSED;
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        ev->kind = ev->value == ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_METADATA ||
                           ev->value ==
                               ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                       ? TW_ZMON_MISMATCH
                       : TW_ZMON_FAILED;
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        ev->kind = TW_ZMON_AUTH;
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        ev->kind = TW_ZMON_FAILED;
        break;
    default:
        ev->kind = TW_ZMON_NONE;
        break;
    }
    return 0;
}

int
tw_zmon_read(void *pair, tw_zmon_event_t *ev)
{
    zmq_msg_t f[2];
    zmq_msg_init(&f[0]);
    zmq_msg_init(&f[1]);
    if (zmq_msg_recv(&f[0], pair, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f[0]);
        zmq_msg_close(&f[1]);
        return 0;
    }
    int more = zmq_msg_more(&f[0]);
    if (more && zmq_msg_recv(&f[1], pair, 0) >= 0) {
        more = zmq_msg_more(&f[1]);
    }
    while (more) {
        /* Not a monitor message as this libzmq sends them: drop the
         * rest. */
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, pair, 0) < 0) {
            zmq_msg_close(&x);
            break;
        }
        more = zmq_msg_more(&x);
        zmq_msg_close(&x);
    }
    if (tw_zmon_parse(zmq_msg_data(&f[0]), zmq_msg_size(&f[0]),
                      zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ev) != 0) {
        memset(ev, 0, sizeof *ev);
    }
    zmq_msg_close(&f[0]);
    zmq_msg_close(&f[1]);
    return 1;
}

const char *
tw_zmon_describe(const tw_zmon_event_t *ev, const char *what,
                 const char *endpoint, char *buf, size_t len)
{
    const char *ep = endpoint && *endpoint ? endpoint : ev->endpoint;
    switch (ev->kind) {
    case TW_ZMON_REFUSED:
        snprintf(buf, len,
                 "nothing accepts connections at %s (connection refused or "
                 "host unreachable): is the broker running, and is this its "
                 "%s?",
                 ep, what);
        break;
    case TW_ZMON_MISMATCH:
        if (ev->value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
            snprintf(buf, len,
                     "%s refused the handshake: it uses another security "
                     "mechanism (CURVE on one side, plaintext on the "
                     "other; see docs/SECURITY.md)",
                     ep);
        } else {
            snprintf(buf, len,
                     "%s is not a %s: the ZeroMQ socket there is of "
                     "another kind (a broker has three ports: frontend "
                     "for clients, backend for workers, status for "
                     "monitors)",
                     ep, what);
        }
        break;
    case TW_ZMON_AUTH:
        snprintf(buf, len,
                 "%s refused this peer's CURVE key (ZAP status %u): its "
                 "public key is not in the broker's key directory for "
                 "this role",
                 ep, (unsigned)ev->value);
        break;
    case TW_ZMON_FAILED:
        snprintf(buf, len,
                 "%s closed the connection during the ZeroMQ handshake: it "
                 "is not a %s (another of the broker's ports?), or it "
                 "expects other CURVE keys",
                 ep, what);
        break;
    case TW_ZMON_DOWN:
        snprintf(buf, len, "the connection to %s dropped", ep);
        break;
    case TW_ZMON_UP:
        snprintf(buf, len, "connected to %s", ep);
        break;
    default:
        snprintf(buf, len, "%s: monitor event %u", ep, (unsigned)ev->event);
        break;
    }
    return buf;
}
