/*  common/zwatch.h - a ZeroMQ socket inside a libuv loop.
 *
 *  ZMQ_FD is edge-triggered and is drained by libzmq itself whenever it
 *  processes commands (in zmq_send, zmq_recv and ZMQ_EVENTS reads), so a
 *  plain uv_poll on it stalls with messages still queued. tw_zwatch_t uses
 *  the prepare/check/idle pattern instead:
 *
 *    poll     on ZMQ_FD, UV_READABLE only: wakes the loop and notes
 *             that an edge came
 *    prepare  before every block: if we sent, or cut a batch short at the
 *             budget, since libzmq last processed its commands, and
 *             ZMQ_EVENTS has POLLIN, start idle so the loop does not block
 *             (this catches readiness our own sends made, which never
 *             produce an fd edge)
 *    check    after every poll phase: stop idle and, if an edge came, a
 *             send was made or the last batch was cut short, deliver whole
 *             messages to the callback until EAGAIN or `budget` of them
 *
 *  A receive failing with EAGAIN and a ZMQ_EVENTS read both make libzmq
 *  process all its pending commands; after either, new messages come only
 *  with a new edge on ZMQ_FD. That is why a quiet socket costs no system
 *  call per loop pass, and a busy one two per batch (the EAGAIN receive and
 *  prepare's ZMQ_EVENTS after the batch's sends), not two per message.
 *
 *  This file is the only code in taskwheel that touches ZMQ_FD. Every send on
 *  a watched socket goes through tw_zwatch_send(), which never blocks: EAGAIN
 *  is back-pressure reported to the caller, never a spin. One socket, one
 *  loop, one thread.
 *
 *  Life cycle (libuv style): _init, _start, _stop, _close(cb). The memory
 *  may be freed, and the socket closed, only once close_cb has run.
 */
#ifndef TW_ZWATCH_H
#define TW_ZWATCH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <zmq.h>

#define TW_ZWATCH_MAXFRAMES 8 /* a ZAP request has 7 */
#define TW_ZWATCH_BUDGET 64

/* One received multipart message. The callback borrows the frames; they
 * are closed when it returns unless it moved them out (zmq_msg_move). */
typedef struct {
    zmq_msg_t f[TW_ZWATCH_MAXFRAMES];
    size_t n;      /* frames kept, at most TW_ZWATCH_MAXFRAMES */
    int truncated; /* 1 if the message had more frames; extra ones dropped */
} tw_zframes_t;

typedef struct tw_zwatch tw_zwatch_t;
typedef void (*tw_zwatch_msg_cb)(tw_zwatch_t *zw, tw_zframes_t *msg);
typedef void (*tw_zwatch_drained_cb)(tw_zwatch_t *zw);
typedef void (*tw_zwatch_close_cb)(tw_zwatch_t *zw);

struct tw_zwatch {
    void *data; /* the user's */
    void *sock; /* borrowed ZeroMQ socket */
    uv_poll_t poll;
    uv_prepare_t prepare;
    uv_check_t check;
    uv_idle_t idle;
    tw_zwatch_msg_cb on_msg;
    tw_zwatch_drained_cb on_drained;
    tw_zwatch_close_cb on_close;
    unsigned budget;
    int stale;  /* libzmq may hold what no edge will announce: we sent,
                 * the last batch hit the budget, or we have not looked
                 * since start (see zwatch.c) */
    int fired;  /* ZMQ_FD was readable since check last looked */
    int active;
    int closing;
    int pending_close;
    uint64_t received; /* messages delivered */
    uint64_t sent;     /* messages sent */
    uint64_t send_fail;/* sends refused (EAGAIN, EHOSTUNREACH...) */
};

/* Prepare `zw` to watch `sock` on `loop`. Returns 0 or a negative error.
 * On failure nothing needs closing. */
int tw_zwatch_init(uv_loop_t *loop, tw_zwatch_t *zw, void *sock);

/* Deliver each incoming message to `on_msg`; after each batch (up to
 * `budget` messages, or fewer when the socket runs dry: a batch ends with
 * the receive that fails with EAGAIN) call `on_drained`
 * if not NULL. Returns 0. */
int tw_zwatch_start(tw_zwatch_t *zw, tw_zwatch_msg_cb on_msg,
                    tw_zwatch_drained_cb on_drained);

/* Stop delivering messages; they stay queued in the socket. Returns 0. */
int tw_zwatch_stop(tw_zwatch_t *zw);

/* Close the four handles; `cb` fires once all have closed. Idempotent. */
void tw_zwatch_close(tw_zwatch_t *zw, tw_zwatch_close_cb cb);

/* Send `n` frames as one message without blocking. On success every frame
 * has been handed to libzmq (the zmq_msg_t's are emptied) and 0 returns.
 * If the socket refuses the first frame, returns TW_EAGAIN (high-water
 * mark) or TW_ENOENT (unroutable peer on a ROUTER_MANDATORY socket) or
 * another negative error, and the caller still owns all frames. */
int tw_zwatch_send(tw_zwatch_t *zw, zmq_msg_t *frames, size_t n);

/* Send `n` byte buffers (copied) as one message. Same returns. */
int tw_zwatch_sendb(tw_zwatch_t *zw, const void *const *bufs,
                    const size_t *lens, size_t n);

/* Plain helpers for sockets outside a loop (tests, the client library). */
int tw_zsend_frames(void *sock, zmq_msg_t *frames, size_t n, int flags);
int tw_zrecv_frames(void *sock, tw_zframes_t *msg, int flags);
void tw_zframes_close(tw_zframes_t *msg);

#endif /* TW_ZWATCH_H */
