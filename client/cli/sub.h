/*  client/cli/sub.h - a subscription to the broker's status endpoint, for
 *  `events` and `station tail`.
 *
 *  The endpoint is --status or $TASKWHEEL_STATUS, else the one the broker
 *  names in its answer to a ping (an older broker names none:
 *  TW_CLI_DEFAULT_STATUS). The SUB socket also subscribes to a welcome
 *  topic of its own (PROTOCOL.md 8.2), whose answer shows the endpoint is
 *  a broker's status socket and the subscriptions are in effect. Used from
 *  the main thread only; SIGINT and SIGTERM end tw_cli_sub_loop.
 */
#ifndef TW_CLI_SUB_H
#define TW_CLI_SUB_H

#include <stdint.h>
#include <zmq.h>

#include "client/cli/cli.h"

/* What to do with one status message [topic][body]: return 1 if it was
 * printed (it counts towards --count), 0 if skipped. */
typedef int (*tw_cli_sub_fn)(void *arg, zmq_msg_t *topic, zmq_msg_t *body);

/* A SUB socket connected to the status endpoint and subscribed to each
 * of `prefixes` (everything if there are none), then to the welcome
 * topic. Returns -1 and sets *ctx, *sub and ep (the endpoint), or an exit
 * code. */
int tw_cli_sub_open(const tw_cli_env_t *e, const char *const *prefixes,
                    size_t n, void **ctx, void **sub, char *ep, size_t eplen);

/* Hand every two-frame message arriving on `sub` (from `ep`) to `fn`
 * until SIGINT or SIGTERM, `count` of them were printed (0: no limit) or
 * `for_secs` passed (negative: no limit). An endpoint that sends nothing
 * at all, not even the welcome answer, within `quiet_ms` is not a
 * broker's status socket (or no broker is there): exit 3, never a silent
 * success. Returns an exit code. */
int tw_cli_sub_loop(void *sub, const char *ep, int quiet_ms, uint64_t count,
                    double for_secs, tw_cli_sub_fn fn, void *arg);

/* Make tw_cli_sub_loop return after the message being handled (a
 * tw_cli_sub_fn calls it when what it follows has ended). */
void tw_cli_sub_stop(void);

/* Close what tw_cli_sub_open opened. */
void tw_cli_sub_close(void *ctx, void *sub);

/* If the current word of `w` is --count N or --for S, consume it (and its
 * value) and return 1; a bad value sets *code to the usage exit code.
 * Returns 0 for any other word. */
int tw_cli_stream_flag(tw_cli_words_t *w, uint64_t *count, double *for_secs,
                       int *code);

#endif /* TW_CLI_SUB_H */
