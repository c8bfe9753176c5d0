/*  common/zwatch.c - the prepare/check/idle adapter (see zwatch.h).
 *
 *  Why prepare and check rather than the poll callback: the poll callback
 *  only runs on a kernel edge, and libzmq consumes those edges itself. The
 *  check callback runs on every loop iteration, and the idle handle started
 *  in prepare guarantees there is a next iteration while a message waits.
 *
 *  What each pass costs. ZMQ_EVENTS always makes libzmq look at its command
 *  mailbox, a poll(2) and often a read(2) of the mailbox's eventfd, so it
 *  is read only when libzmq may have changed state behind our back (the
 *  `stale` flag below). A receive that succeeds makes no system call; the
 *  one that fails with EAGAIN processes every pending command first, which
 *  is as good as a ZMQ_EVENTS read. So check receives until EAGAIN (or the
 *  budget) and reads nothing else, and prepare reads ZMQ_EVENTS only after
 *  a send or a batch cut short by the budget.
 */
#include "common/zwatch.h"
#include "common/error.h"

#include <errno.h>
#include <string.h>

static int
s_events(void *sock)
{
    int ev = 0;
    size_t len = sizeof ev;
    if (zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &len) != 0) {
        return 0;
    }
    return ev;
}

static void
s_poll_cb(uv_poll_t *h, int status, int events)
{
    /* Wakes the loop and notes the edge; check does the work. */
    tw_zwatch_t *zw = h->data;
    zw->fired = 1;
    (void)status;
    (void)events;
}

static void
s_idle_cb(uv_idle_t *h)
{
    (void)h;
}

/* Before the loop blocks: make sure it does not block while a message
 * waits that the fd will not announce. */
static void
s_prepare_cb(uv_prepare_t *h)
{
    tw_zwatch_t *zw = h->data;
    if (!zw->active) {
        return;
    }
    if (zw->stale) {
        if (s_events(zw->sock) & ZMQ_POLLIN) {
            uv_idle_start(&zw->idle, s_idle_cb);
        } else {
            /* libzmq has processed every command: the next one raises
             * ZMQ_FD again. */
            zw->stale = 0;
        }
    }
}

int
tw_zrecv_frames(void *sock, tw_zframes_t *msg, int flags)
{
    msg->n = 0;
    msg->truncated = 0;
    int more = 1;
    while (more) {
        zmq_msg_t scratch;
        zmq_msg_t *m = msg->n < TW_ZWATCH_MAXFRAMES ? &msg->f[msg->n]
                                                    : &scratch;
        zmq_msg_init(m);
        int rc = zmq_msg_recv(m, sock, msg->n == 0 ? flags : 0);
        if (rc < 0) {
            int e = errno;
            zmq_msg_close(m);
            tw_zframes_close(msg);
            return e == EAGAIN ? TW_EAGAIN : -e;
        }
        more = zmq_msg_more(m);
        if (m == &scratch) {
            zmq_msg_close(m);
            msg->truncated = 1;
        } else {
            msg->n++;
        }
    }
    return 0;
}

void
tw_zframes_close(tw_zframes_t *msg)
{
    for (size_t i = 0; i < msg->n; i++) {
        zmq_msg_close(&msg->f[i]);
    }
    msg->n = 0;
}

/* After the poll phase: deliver what waits. Commands, and with them new
 * messages, reach a socket whose last receive failed with EAGAIN (or whose
 * ZMQ_EVENTS said no POLLIN) only with an edge on ZMQ_FD, so unless an
 * edge came or `stale` is set (a send, a start, a batch cut short by the
 * budget) there is nothing to look for. */
static void
s_check_cb(uv_check_t *h)
{
    tw_zwatch_t *zw = h->data;
    uv_idle_stop(&zw->idle);
    if (!zw->active || !(zw->fired || zw->stale)) {
        return;
    }
    zw->fired = 0;
    unsigned n = 0;
    for (;;) {
        if (!zw->active) {
            zw->stale = 1; /* look again when restarted */
            break;
        }
        if (n == zw->budget) {
            /* More may wait; prepare's ZMQ_EVENTS read also processes
             * the commands that wake other peers' pipes, which receives
             * that succeed do only every hundredth time, so one busy peer
             * cannot hold the others back by more than a batch. */
            zw->stale = 1;
            break;
        }
        tw_zframes_t msg;
        int rc = tw_zrecv_frames(zw->sock, &msg, ZMQ_DONTWAIT);
        if (rc == TW_EAGAIN) {
            zw->stale = 0; /* commands all processed (see the top) */
            break;
        }
        if (rc != 0) {
            zw->stale = 1; /* closing; ZMQ_EVENTS fails too and stops it */
            break;
        }
        n++;
        zw->received++;
        zw->on_msg(zw, &msg);
        tw_zframes_close(&msg);
    }
    if (n && zw->active && zw->on_drained) {
        zw->on_drained(zw);
    }
}

int
tw_zwatch_init(uv_loop_t *loop, tw_zwatch_t *zw, void *sock)
{
    memset(zw, 0, sizeof *zw);
    zw->sock = sock;
    zw->budget = TW_ZWATCH_BUDGET;
    int fd;
    size_t len = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) != 0) {
        return -errno;
    }
    int rc = uv_poll_init(loop, &zw->poll, fd);
    if (rc != 0) {
        return rc;
    }
    uv_prepare_init(loop, &zw->prepare);
    uv_check_init(loop, &zw->check);
    uv_idle_init(loop, &zw->idle);
    zw->poll.data = zw->prepare.data = zw->check.data = zw->idle.data = zw;
    return 0;
}

int
tw_zwatch_start(tw_zwatch_t *zw, tw_zwatch_msg_cb on_msg,
                tw_zwatch_drained_cb on_drained)
{
    zw->on_msg = on_msg;
    zw->on_drained = on_drained;
    zw->active = 1;
    zw->stale = 1; /* whatever came while stopped raised no edge for us */
    uv_poll_start(&zw->poll, UV_READABLE, s_poll_cb);
    uv_prepare_start(&zw->prepare, s_prepare_cb);
    uv_check_start(&zw->check, s_check_cb);
    return 0;
}

int
tw_zwatch_stop(tw_zwatch_t *zw)
{
    zw->active = 0;
    uv_poll_stop(&zw->poll);
    uv_prepare_stop(&zw->prepare);
    uv_check_stop(&zw->check);
    uv_idle_stop(&zw->idle);
    return 0;
}

static void
s_handle_closed(uv_handle_t *h)
{
    tw_zwatch_t *zw = h->data;
    if (--zw->pending_close == 0 && zw->on_close) {
        zw->on_close(zw);
    }
}

void
tw_zwatch_close(tw_zwatch_t *zw, tw_zwatch_close_cb cb)
{
    if (zw->closing) {
        return;
    }
    zw->closing = 1;
    zw->active = 0;
    zw->on_close = cb;
    zw->pending_close = 4;
    uv_close((uv_handle_t *)&zw->poll, s_handle_closed);
    uv_close((uv_handle_t *)&zw->prepare, s_handle_closed);
    uv_close((uv_handle_t *)&zw->check, s_handle_closed);
    uv_close((uv_handle_t *)&zw->idle, s_handle_closed);
}

int
tw_zsend_frames(void *sock, zmq_msg_t *frames, size_t n, int flags)
{
    for (size_t i = 0; i < n; i++) {
        int f = flags | (i + 1 < n ? ZMQ_SNDMORE : 0);
        if (zmq_msg_send(&frames[i], sock, f) < 0) {
            int e = errno;
            if (i == 0) {
                if (e == EAGAIN) {
                    return TW_EAGAIN;
                }
                if (e == EHOSTUNREACH) {
                    return TW_ENOENT;
                }
                return -e;
            }
            /* libzmq accepts the rest of a message once it accepted the
             * first frame; reaching here means the socket is closing. */
            for (size_t j = i; j < n; j++) {
                zmq_msg_close(&frames[j]);
            }
            return -e;
        }
    }
    return 0;
}

int
tw_zwatch_send(tw_zwatch_t *zw, zmq_msg_t *frames, size_t n)
{
    int rc = tw_zsend_frames(zw->sock, frames, n, ZMQ_DONTWAIT);
    /* A send may process commands (libzmq does so every millisecond or
     * so), consuming the fd's edge: look before blocking. */
    zw->stale = 1;
    if (rc == 0) {
        zw->sent++;
    } else {
        zw->send_fail++;
    }
    return rc;
}

int
tw_zwatch_sendb(tw_zwatch_t *zw, const void *const *bufs, const size_t *lens,
                size_t n)
{
    zmq_msg_t f[TW_ZWATCH_MAXFRAMES];
    if (n > TW_ZWATCH_MAXFRAMES) {
        return TW_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        zmq_msg_init_size(&f[i], lens[i]);
        if (lens[i]) {
            memcpy(zmq_msg_data(&f[i]), bufs[i], lens[i]);
        }
    }
    int rc = tw_zwatch_send(zw, f, n);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++) {
            zmq_msg_close(&f[i]);
        }
    }
    return rc;
}
