/*  worker/chan.h - task channels: a running task talks to its submitter.
 *
 *  A one-shot task's handler may open a channel (S90-S93, F5): it sends
 *  messages and requests up to the client that submitted the task, and the
 *  client's responses come back matched by correlation id ("cr"). Up and
 *  down, the wire is the CHAN command (proto/PROTOCOL.md section 13):
 *
 *      handler --open/msg/req/close--> worker --CHAN--> broker --> client
 *      handler <--reply callback------ worker <--CHAN-- broker <-- client
 *                                              resp / closereq
 *
 *  This table keeps one record per open channel, keyed by task id and
 *  linked from the task's tw_call_t. Items going up are encoded into one
 *  CHAN batch that the worker sends before its DONE batch, so a task's
 *  channel traffic always reaches the broker before its outcome, in the
 *  order the handler produced it (S92). Per channel:
 *
 *      open        closereq (client or broker)         close / task ends
 *    ------> OPEN -----------------------------> CLOSEREQ ------------> freed
 *              |                                                  ^
 *              `--------------- close / task ends ----------------'
 *
 *  Requests wait for their response at most their timeout: the worker
 *  enforces it (S93), so a slot blocked on a request never hangs. A
 *  response that comes after its request timed out is dropped and counted
 *  ("late"). A close request fails the pending requests and every later
 *  one with TW_ECLOSEREQ (CloseRequestError). When the task ends (result,
 *  error, cancel, timeout, broker lost) the channel is closed for it: a
 *  "close" item goes up if the handler did not close it, pending requests
 *  fire with TW_ECANCELED, and the record is freed.
 *
 *  The timeout logic takes the time as an argument (tw_chans_expire) and
 *  the table's own uv_timer only calls it, so unit tests drive time by
 *  hand. Loop thread only: the channel calls of the handler ABI are for
 *  async handlers (a blocking handler gets -EINVAL).
 */
#ifndef TW_WORKER_CHAN_H
#define TW_WORKER_CHAN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <zmq.h>

#include "proto/proto.h"
#include "worker/handlers.h"

/* Largest payload of one channel item: what the broker's default
 * --max-payload lets through, with room for the envelope. */
#define TW_CHAN_MAX_PAYLOAD ((16u << 20) - 65536)
/* Unsent channel bytes before the handler's sends fail with -ENOBUFS. */
#define TW_CHAN_PENDING_MAX (64u << 20)
/* Requests one channel may have waiting at once. */
#define TW_CHAN_MAX_REQUESTS 1024
/* A request's timeout when the handler gives 0. */
#define TW_CHAN_DEFAULT_TIMEOUT_MS 30000

typedef struct tw_chans tw_chans_t;

/* The table has items to send: the owner should flush (end of turn). */
typedef void (*tw_chans_wake_cb)(void *udata);
typedef void (*tw_chans_close_cb)(void *udata);

typedef struct {
    uint64_t opened;    /* channels opened */
    uint64_t up;        /* items queued for the broker */
    uint64_t requests;  /* requests made */
    uint64_t replies;   /* responses matched to a waiting request */
    uint64_t timeouts;  /* requests that timed out (S93) */
    uint64_t late;      /* responses for no waiting request: dropped */
    uint64_t closereqs; /* close requests received */
    uint64_t dropped;   /* items from the broker for no channel here, or
                           malformed: dropped */
    uint64_t live;      /* channels open now */
} tw_chans_stats_t;

/* A table on `loop`; `wake` (may be NULL) is told when items wait. Never
 * NULL. */
tw_chans_t *tw_chans_new(uv_loop_t *loop, tw_chans_wake_cb wake,
                         void *udata);

/* Close the table's timer, then free it and call `cb` (may be NULL). No
 * channel may be open any more (end every task first). */
void tw_chans_close(tw_chans_t *ch, tw_chans_close_cb cb, void *udata);

/* Let `call` (a slot's reusable call) open channels through `ch`. */
void tw_chans_attach(tw_chans_t *ch, tw_call_t *call);

/* The task of `call` ended (any way): close its channel if one is open
 * (a "close" item goes up unless the handler closed it), fail its pending
 * requests with TW_ECANCELED and free it. Does nothing without one. */
void tw_chans_end(tw_call_t *call);

/* One item of a CHAN message from the broker: {id, ev: "resp", cr, d} or
 * {id, ev: "closereq", err?}. Returns 0, or TW_ENOENT (no channel open for
 * that task here), TW_EINVAL (unknown ev, resp without cr) or
 * TW_ETIMEDOUT (no request waits for that cr: a late response); every
 * non-zero return is counted and the item dropped. */
int tw_chans_on_item(tw_chans_t *ch, const tw_item_t *it);

/* Fail requests whose deadline is <= now_ms with TW_ETIMEDOUT. Returns ms
 * until the next deadline, or -1 if none waits. */
int64_t tw_chans_expire(tw_chans_t *ch, uint64_t now_ms);

/* Items waiting to go up. */
uint32_t tw_chans_pending(const tw_chans_t *ch);

/* Turn the waiting items into a CHAN message's frames (the table's batch
 * is left empty). Returns 1 if there were items, else 0 and nothing. */
int tw_chans_frames(tw_chans_t *ch, zmq_msg_t f[2]);

/* Forget the items not yet sent (the broker requeues their tasks). */
void tw_chans_discard(tw_chans_t *ch);

/* Counters since tw_chans_new. */
void tw_chans_stats(const tw_chans_t *ch, tw_chans_stats_t *out);

#endif /* TW_WORKER_CHAN_H */
