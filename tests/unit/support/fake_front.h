/*  tests/unit/support/fake_front.h - a fake broker frontend that can die
 *  and come back, for the client's reconnection suites.
 *
 *  A ROUTER bound to an ephemeral port on 127.0.0.1, played by the test
 *  thread while a real tw_client_t (blocking, no thread of its own) runs
 *  in the same thread: tw_ff_recv() alternates short tw_client_poll()
 *  calls with reads of the ROUTER, so the client's heartbeats, loss
 *  detection and reconnects happen while the test waits. tw_ff_kill()
 *  closes the ROUTER (the client hears nothing more) and tw_ff_restart()
 *  binds a new one on the same port, like a broker restarted in memory
 *  mode. HEARTBEATs are answered and skipped unless `pings` asks to see
 *  them. Test thread only; one fixture per test.
 */
#ifndef TW_FAKE_FRONT_H
#define TW_FAKE_FRONT_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "proto/proto.h"
#include "taskwheel/client.h"

typedef struct {
    void *ctx, *router;
    char ep[64];          /* tcp://127.0.0.1:PORT, kept across restarts */
    char ident[256];      /* routing id of the last sender */
    size_t ilen;
    int pings;            /* 1: tw_ff_recv returns HEARTBEATs too */
    int mute;             /* 1: HEARTBEATs are not answered (the test
                             answers them, as a broker of a pair would) */
    uint64_t heartbeats;  /* HEARTBEATs received */
    zmq_msg_t body;       /* the last message's body, kept for `m` */
    tw_msg_t m;           /* ... decoded */
    int have;             /* 1 while m and body hold a message */
} tw_ff_t;

/* Bind a fake frontend; asserts on failure. */
tw_ff_t *tw_ff_new(void);
void tw_ff_destroy(tw_ff_t **ff_p);

/* Close the ROUTER (the broker dies) / bind again on the same port. */
void tw_ff_kill(tw_ff_t *ff);
void tw_ff_restart(tw_ff_t *ff);

/* Poll `c` (may be NULL) and the ROUTER until a message arrives (0, the
 * message in ff->m) or timeout_ms passes (TW_ETIMEDOUT). A dead fake
 * (killed) only polls the client. */
int tw_ff_recv(tw_ff_t *ff, tw_client_t *c, int timeout_ms);

/* Send `e`'s body as `cmd` to the last sender; `e` is left empty. */
void tw_ff_send(tw_ff_t *ff, tw_cmd_t cmd, tw_enc_t *e);

/* Poll `c` for `ms` milliseconds, answering HEARTBEATs meanwhile. */
void tw_ff_idle(tw_ff_t *ff, tw_client_t *c, int ms);

#endif /* TW_FAKE_FRONT_H */
