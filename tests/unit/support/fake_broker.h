/*  tests/unit/support/fake_broker.h - a fake broker and a real worker, for
 *  the worker's unit suites.
 *
 *  The test plays the broker with a ROUTER socket bound to an ephemeral
 *  port on 127.0.0.1, and a real tw_worker_t runs on a libuv loop in the
 *  same thread: tw_fb_recv() turns the loop and polls the ROUTER in small
 *  steps until the worker says something, tw_fb_send() answers the peer
 *  that spoke last. tw_fb_new / tw_fb_destroy are a cmocka fixture's
 *  setup and teardown: destroy stops the worker, fails the test if it
 *  does not exit, and closes the loop, which fails the test if a handle
 *  was left open.
 *
 *  One fixture at a time per process (the worker's exit callback has no
 *  user data, so it reaches the fixture through a static); cmocka runs
 *  tests one after another, so that holds. Test thread only.
 */
#ifndef TW_FAKE_BROKER_H
#define TW_FAKE_BROKER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/zwatch.h"
#include "proto/proto.h"
#include "worker/handlers.h"
#include "worker/worker.h"

typedef struct {
    uv_loop_t loop;
    tw_handlers_t reg; /* empty: the suite registers what it needs */
    tw_worker_t *w;
    int exited, exit_code, stuck; /* what the exit callback said */
    void *ctx, *router;
    char ep[128]; /* the ROUTER's endpoint, for the worker */
    void *router2; /* tw_fb_second: the other broker of a pair, or NULL */
    char ep2[128];
    int from;      /* the router the last message came to: 0, or 2 */
    char ident[256]; /* routing id of the last message's sender */
    size_t ilen;
    int skip_heartbeats; /* tw_fb_recv passes over HEARTBEATs */
    tw_zframes_t in; /* the last message received, kept for `m` */
    tw_msg_t m;      /* ... decoded */
    uint64_t at;     /* ms when it arrived */
    size_t cur;      /* items of `m` the test has looked at; 0 per message */
} tw_fb_t;

/* A fixture with an initialised loop, an empty handler registry and the
 * bound ROUTER; no worker yet. Asserts on failure. */
tw_fb_t *tw_fb_new(void);

/* Stop the worker (abort), wait up to 3 s for its exit, free everything
 * and set *fb_p to NULL. Asserts that the worker exited and that the loop
 * closes cleanly. */
void tw_fb_destroy(tw_fb_t **fb_p);

/* A cmocka setup and teardown: tw_fb_new with the built-in handlers
 * registered (tw_handlers_add_builtin) in *state, and tw_fb_destroy. */
int tw_fb_setup(void **state);
int tw_fb_teardown(void **state);

/* The worker exit callback that records into the current fixture; for
 * tests that start a worker of their own. */
void tw_fb_on_exit(tw_worker_t *w, int code, int stuck);

/* Create and start fb->w: worker `name` with `slots` slots, `tags` (NULL
 * for none) and `drain_ms`, connecting to the ROUTER. Asserts success. */
void tw_fb_start_worker(tw_fb_t *fb, const char *name, unsigned slots,
                        const char *tags, uint64_t drain_ms);

/* Bind a second ROUTER (router2, ep2), the other broker of a pair:
 * tw_fb_recv reads both, tw_fb_send answers on the one the last message
 * came to. */
void tw_fb_second(tw_fb_t *fb);

/* Like tw_fb_start_worker (no tags, no drain timeout), given `brokers`
 * ("EP1,EP2"). */
void tw_fb_start_worker_at(tw_fb_t *fb, const char *brokers,
                           const char *name, unsigned slots);

/* Drop the last message received (fb->m and its frames). */
void tw_fb_release(tw_fb_t *fb);

/* Turn the loop and poll the ROUTER until a message arrives (decoded into
 * fb->m; its command returned) or `ms` pass (0). With skip_heartbeats set,
 * a HEARTBEAT does not count as a message. */
int tw_fb_recv(tw_fb_t *fb, int ms);

/* The longest a test waits for something that must come (a message, an
 * exit): long, because a wait ends as soon as it comes and only a failing
 * test waits it out, while valgrind on a busy machine is slow. Windows in
 * which something must NOT come stay short. */
#define TW_FB_PATIENCE_MS 30000

/* Turn the loop for `ms` without reading the ROUTER. For a window in
 * which something must not happen; to wait for something, use the waits
 * below. */
void tw_fb_spin(tw_fb_t *fb, int ms);

/* Turn the loop (not reading the ROUTER) until fb->w has started `n`
 * tasks since it was made, or until it has exited; fail the test if that
 * takes more than `ms`. */
void tw_fb_wait_tasks(tw_fb_t *fb, uint64_t n, int ms);
void tw_fb_wait_exit(tw_fb_t *fb, int ms);

/* Start `e` as the body {items: [...]} of `n` items: the caller encodes
 * the items, then sends `e` with tw_fb_send. */
void tw_fb_enc_items(tw_enc_t *e, size_t n);

/* Send command `cmd` with the body encoded in `e` (freed) to the peer
 * that sent the last message. */
void tw_fb_send(tw_fb_t *fb, tw_enc_t *e, tw_cmd_t cmd);

/* WELCOME {wid: 7, hb}. */
void tw_fb_send_welcome(tw_fb_t *fb, uint64_t hb);

/* ERROR {code, msg}; a NULL `msg` is tw_strerror(code). */
void tw_fb_send_error(tw_fb_t *fb, int code, const char *msg);

/* Expect HELLO, answer WELCOME with `hb`, expect READY offering `slots`.
 * A worker that heard nothing for three default heartbeats (a stalled
 * run) says HELLO again: each HELLO gets its WELCOME. */
void tw_fb_handshake(tw_fb_t *fb, unsigned slots, uint64_t hb);

/* The end of a leaving worker: expect BYE, then the worker's exit with
 * `exit_code`, each within TW_FB_PATIENCE_MS. */
void tw_fb_expect_bye(tw_fb_t *fb, int exit_code);

#endif /* TW_FAKE_BROKER_H */
