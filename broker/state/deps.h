/*  broker/state/deps.h - tasks that wait for other tasks: their release.
 *
 *  A SUBMIT item may name parents (`--after ID,...`): the new task is
 *  BLOCKED until they end, then released (it becomes PENDING and queues
 *  like any other) or cancelled with the reason "upstream failed". This
 *  engine holds the blocked tasks and makes those decisions; the broker
 *  applies them. It works on ids and outcome codes only (TW_ST_* of
 *  proto.h): it does no I/O, reads no clock and never sees a task record,
 *  so every rule can be tested exhaustively with numbers.
 *
 *               add: every parent already     add: a parent already failed
 *               ended as required              (all-ok)
 *      SUBMIT ---------------------------> PENDING       CANCELLED <------.
 *        |                                    ^               ^            |
 *        | add: some parent still live         | release       | cancel     |
 *        v                                    |               |            |
 *     BLOCKED --- the last parent ends ------'               |            |
 *        |    --- (all-ok) a parent ends not ok --------------'            |
 *        '------- cancelled by a client (tw_deps_remove) ------------------'
 *
 *  Policies, per blocked task:
 *    TW_DEPS_ALL_OK  (default) released when every parent ended `ok`;
 *                    cancelled as soon as one ends otherwise (error,
 *                    timeout, cancelled, lost), naming that parent.
 *    TW_DEPS_ANY_END released once every parent has ended, whatever the
 *                    outcome; never cancelled by a parent.
 *  A cancellation is itself an end: the engine passes it on to the tasks
 *  blocked on the cancelled one, in the same call (a cascade), so a
 *  failure at the head of a chain settles the whole chain at once.
 *
 *  Parents must exist when named (a task id the broker still knows), and
 *  a new task cannot be anyone's parent yet, so there are no cycles. A
 *  parent may be named twice; it is then counted, and its result passed,
 *  twice.
 *
 *  Results: a task added `with_results` pins its parents (tw_deps_pins):
 *  the broker must keep a pinned parent's record and result beyond its
 *  result TTL until the pin goes, which is when the child is released or
 *  cancelled. tw_deps_args then builds the child's arguments.
 *
 *  Durability (docs/WORKFLOWS.md): the engine keeps nothing the store
 *  does not. A blocked task is stored as a task record in state BLOCKED
 *  holding its parents (in order), its policy and the with-results flag.
 *  A parent's end and every decision it causes are written in the same
 *  store transaction as that end. After a restart the broker re-adds each
 *  blocked task with its parents' stored states, in any order, and applies
 *  what tw_deps_add answers, which covers a crash between a parent's end
 *  and its children's release: the child is released then, once, because
 *  its record still says BLOCKED until the release is written.
 *
 *  Broker loop thread only.
 */
#ifndef TW_BROKER_DEPS_H
#define TW_BROKER_DEPS_H

#include <stddef.h>
#include <stdint.h>

/* The most parents one task may name (a `uints` field on the wire). */
#define TW_DEPS_MAX_PARENTS 65536

typedef enum {
    TW_DEPS_ALL_OK = 0,
    TW_DEPS_ANY_END = 1
} tw_deps_mode_t;

typedef enum {
    TW_DEPS_WAIT = 0,    /* still blocked */
    TW_DEPS_RELEASE = 1, /* make it PENDING */
    TW_DEPS_CANCEL = 2   /* end it `cancelled`: upstream failed */
} tw_deps_verdict_t;

typedef struct {
    uint64_t child;
    int verdict;        /* TW_DEPS_RELEASE or TW_DEPS_CANCEL */
    uint64_t parent;    /* CANCEL: the parent that did not succeed */
    int parent_st;      /* CANCEL: how it ended (TW_ST_*) */
    const uint64_t *parents; /* RELEASE of a task added with_results (by
                                tw_deps_ended): its parents in the order
                                named, to build its arguments from; owned
                                by the list until it is cleared. Else
                                NULL */
    size_t nparents;
} tw_deps_decision_t;

/* A growing list of decisions; zero-initialise, empty with _clear (which
 * frees the parents the decisions carry), free with _free. */
typedef struct {
    tw_deps_decision_t *v;
    size_t len, cap;
} tw_deps_out_t;

void tw_deps_out_clear(tw_deps_out_t *out);
void tw_deps_out_free(tw_deps_out_t *out);

typedef struct tw_deps tw_deps_t;

/* An empty engine. Never NULL (aborts on OOM). */
tw_deps_t *tw_deps_new(void);

/* Free the engine; sets *d_p to NULL. Idempotent. */
void tw_deps_destroy(tw_deps_t **d_p);

/* A new task `child` waits for `n` parents named in order; st[i] is
 * parent i's state now: its outcome (TW_ST_OK..TW_ST_LOST) if it has
 * ended, TW_ST_UNKNOWN if the broker has no record of it, any other code
 * while it lives (pending, running, blocked). `mode` is a
 * tw_deps_mode_t; `with_results` pins the parents. Returns:
 *   TW_EINVAL  n is 0 or above TW_DEPS_MAX_PARENTS, child is 0, a parent
 *              is the child, or `mode` is unknown;
 *   TW_EEXIST  child is already blocked;
 *   TW_ENOENT  parent *bad (an index) is TW_ST_UNKNOWN;
 *   0          with out->verdict TW_DEPS_WAIT (the engine now holds the
 *              child), TW_DEPS_RELEASE (every parent has already ended as
 *              required: run it now) or TW_DEPS_CANCEL (with all-ok, a
 *              parent already ended otherwise; the first named is given).
 * The engine keeps the child only when the verdict is WAIT. `bad` may be
 * NULL. */
int tw_deps_add(tw_deps_t *d, uint64_t child, const uint64_t *parents,
                const uint8_t *st, size_t n, int mode, int with_results,
                tw_deps_decision_t *out, size_t *bad);

/* Task `id` ended with outcome `st` (TW_ST_OK..TW_ST_LOST). Appends to
 * `out` what that settles, children before grandchildren, and forgets
 * those tasks; cancellations cascade (a cancelled child counts as having
 * ended `cancelled`). Returns the number of decisions appended. A task
 * nobody waits for appends nothing. */
size_t tw_deps_ended(tw_deps_t *d, uint64_t id, int st, tw_deps_out_t *out);

/* Forget blocked task `child` without a decision (a client cancelled it);
 * the caller then reports its end with tw_deps_ended(child, TW_ST_
 * CANCELLED) so the tasks blocked on it learn. Returns 0 or TW_ENOENT. */
int tw_deps_remove(tw_deps_t *d, uint64_t child);

/* 1 if `id` is blocked here. */
int tw_deps_is_blocked(const tw_deps_t *d, uint64_t id);

/* A blocked task's parents in the order named (borrowed until the task
 * is settled), with *n, *mode, *with_results and *waiting (parents not
 * yet ended) set when not NULL. NULL if `child` is not blocked. */
const uint64_t *tw_deps_parents(const tw_deps_t *d, uint64_t child,
                                size_t *n, int *mode, int *with_results,
                                size_t *waiting);

/* How many blocked tasks added with_results name `parent`: while this is
 * not 0 the broker keeps the parent's result. */
size_t tw_deps_pins(const tw_deps_t *d, uint64_t parent);

/* The number of blocked tasks. */
size_t tw_deps_count(const tw_deps_t *d);

/* The reason text of a CANCEL decision, e.g. "upstream failed: task 12
 * ended error", in buf (cap octets). Returns buf. */
const char *tw_deps_reason(const tw_deps_decision_t *dec, char *buf,
                           size_t cap);

/* The arguments of a task released with results: one msgpack array of
 * the parents' results in the order named, followed by the task's own
 * arguments (the elements of `a` if it is an array, `a` itself if it is
 * another value, nothing if `a` is empty or nil). results[i] is one
 * msgpack value of lens[i] octets, or NULL (a parent that did not
 * succeed, under any-end: nil is passed). The bytes are copied, not
 * checked, except the head of `a`. Returns 0 with a new buffer (free with
 * tw_free) in *out and its length in *outlen, TW_E2BIG if it would exceed
 * `max` octets, or TW_EPROTO if `a` is a truncated array head. */
int tw_deps_args(const void *const *results, const size_t *lens, size_t n,
                 const void *a, size_t alen, size_t max, void **out,
                 size_t *outlen);

#endif /* TW_BROKER_DEPS_H */
