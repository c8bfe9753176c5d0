/*  common/zmon.h - what ZeroMQ's socket monitor says about a connection,
 *  in taskwheel's words.
 *
 *  libzmq reconnects a connecting socket by itself and tells nobody: a
 *  refused port, a peer of the wrong socket type, a CURVE key the server
 *  refuses and a peer that went away and came back all look, from the
 *  socket, like silence. zmq_socket_monitor() reports them as events on an
 *  inproc PAIR socket. This module starts that monitor for one socket,
 *  turns each event into one of a few kinds, and words each kind as one
 *  line naming the endpoint, so every program reports a connection
 *  problem the same way:
 *
 *    TW_ZMON_UP        handshake done: the peer speaks ZMTP and took us
 *    TW_ZMON_DOWN      an established connection dropped
 *    TW_ZMON_REFUSED   a connect attempt failed (refused, unreachable):
 *                      libzmq will retry
 *    TW_ZMON_MISMATCH  handshake refused: the peer is another kind of
 *                      socket (a worker port given to a monitor...), or
 *                      speaks another security mechanism
 *    TW_ZMON_AUTH      handshake refused by the peer's authenticator (a
 *                      CURVE key not in its key directory)
 *    TW_ZMON_FAILED    handshake failed for another reason
 *
 *  The monitor PAIR is an ordinary ZeroMQ socket: a blocking program polls
 *  it with zmq_poll, a loop watches it with common/zwatch.h. Events come
 *  as two frames (a 6-byte event and value, then the endpoint), which
 *  tw_zmon_parse() reads. One monitored socket, one thread.
 */
#ifndef TW_ZMON_H
#define TW_ZMON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    TW_ZMON_NONE = 0, /* an event this module does not report */
    TW_ZMON_UP,
    TW_ZMON_DOWN,
    TW_ZMON_REFUSED,
    TW_ZMON_MISMATCH,
    TW_ZMON_AUTH,
    TW_ZMON_FAILED,
    TW_ZMON_ACCEPTED  /* a listening socket accepted a connection: value
                         is its descriptor */
} tw_zmon_kind_t;

typedef struct {
    tw_zmon_kind_t kind;
    uint16_t event;  /* the ZMQ_EVENT_* */
    uint32_t value;  /* its value: an errno, a ZMQ_PROTOCOL_ERROR_*, a
                        ZAP status code */
    char endpoint[256];
} tw_zmon_event_t;

/* Start monitoring `sock` (of context `ctx`): returns a connected PAIR
 * socket that receives its events, or NULL (errno set). Stop with
 * tw_zmon_stop before closing `sock`. */
void *tw_zmon_start(void *ctx, void *sock);

/* Stop monitoring `sock` and close the PAIR `pair`. Either may be NULL. */
void tw_zmon_stop(void *sock, void *pair);

/* Read one event from `pair` without blocking. Returns 1 with *ev filled
 * (kind TW_ZMON_NONE for events of no interest), 0 when none is queued. */
int tw_zmon_read(void *pair, tw_zmon_event_t *ev);

/* Fill *ev from the two frames of one monitor message. Returns 0, or -1
 * if they are not a monitor event. */
int tw_zmon_parse(const void *f0, size_t n0, const void *f1, size_t n1,
                  tw_zmon_event_t *ev);

/* One line saying what `ev` means for a peer that wanted `what` at
 * `endpoint` (what: "broker frontend", "broker backend", "status
 * endpoint"), e.g. "nothing accepts connections at tcp://127.0.0.1:7710
 * (connection refused): is the broker running, and is this its broker
 * frontend?". Written into buf; returns buf. */
const char *tw_zmon_describe(const tw_zmon_event_t *ev, const char *what,
                             const char *endpoint, char *buf, size_t len);

#endif /* TW_ZMON_H */
