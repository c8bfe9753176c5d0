/*  client/internal.h - client helpers that are not part of libtaskwheel's API.
 *
 *  The taskwheel CLI and the client's unit tests link the static
 *  taskwheel_static and may use these; libtaskwheel.so does not export
 *  them (client/libtaskwheel.map). Same threading rule as the API: one
 *  client, one thread.
 */
#ifndef TW_CLIENT_INTERNAL_H
#define TW_CLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/keys.h"
#include "proto/proto.h"
#include "taskwheel/client.h"

/* Limits the client enforces before anything reaches the wire. */
#define TW__CLIENT_BATCH_ITEMS 1000     /* items per SUBMIT message */
#define TW__CLIENT_BATCH_BYTES (4u << 20) /* start a new SUBMIT past this */
#define TW__CLIENT_MAX_ARGS ((16u << 20) - 4096) /* fits the broker's
                                                    16 MiB frame limit */

/* tw_client_cancel that also returns the broker's REPLY data, the
 * msgpack-encoded map {"cancelled": [ids], "ended": [ids],
 * "unknown": [ids]}, in *data (malloc'ed, caller frees) when `data` is not
 * NULL. Returns 0, TW_EUNREACH, TW_EINVAL (no ids, too many), TW_ESTATE
 * (called from a callback during another request) or the broker's error
 * code. */
int tw__client_cancel(tw_client_t *c, const uint64_t *ids, size_t n,
                      int timeout_ms, void **data, size_t *len);

/* Writes the whole body of a request (a map that holds "seq": `seq`). */
typedef void (*tw__encode_fn)(tw_enc_t *e, uint64_t seq, const void *arg);

/* Send a request of command `cmd` whose body `encode` writes and wait up
 * to timeout_ms for the REPLY or ERROR carrying its seq; `data` and `len`
 * as in tw_client_station. Returns 0, TW_EINVAL (data without len),
 * TW_EUNREACH, TW_ESTATE (a request is already running) or the broker's
 * error code. */
int tw__client_request(tw_client_t *c, tw_cmd_t cmd, tw__encode_fn encode,
                       const void *arg, int timeout_ms, void **data,
                       size_t *len);

/* Start a request body: a map of `n` fields, the first of them "seq" and,
 * when `op` is not NULL, "op" (both counted in `n`). */
void tw__enc_head(tw_enc_t *e, size_t n, uint64_t seq, const char *op);

/* Encode the optional field `f` of a request body: a string, a number or
 * BIN bytes, left out when absent (NULL) or 0. */
void tw__enc_opt_cstr(tw_enc_t *e, tw_field_t f, const char *s);
void tw__enc_opt_uint(tw_enc_t *e, tw_field_t f, uint64_t v);
void tw__enc_opt_bin(tw_enc_t *e, tw_field_t f, const void *p, size_t len);

/* Task ids for a request body {seq, op?, ids}: RESULT, CANCEL and the
 * strict CANCEL of pool.c. */
typedef struct {
    const char *op; /* NULL: no "op" field */
    const uint64_t *ids;
    size_t n;
} tw__ids_t;

/* A tw__encode_fn writing that body; `arg` is a tw__ids_t. */
void tw__encode_ids(tw_enc_t *e, uint64_t seq, const void *arg);

/* The client's slot for the session state of client/pool.c. */
void **tw__client_sess(tw_client_t *c);

/* The SUBMIT item fields of a spec's pool, groups, delay and key (pool.c):
 * check them (0, or TW_EINVAL; *bytes gets an upper bound of what they
 * add to the message), count the item fields they take, and encode them
 * as "pl", "g", "dl" and "k". */
int tw__spec_names_check(const tw_task_spec_t *spec, size_t *bytes);
size_t tw__spec_names_fields(const tw_task_spec_t *spec);
void tw__spec_names_encode(tw_enc_t *e, const tw_task_spec_t *spec);

/* What client.c tells the session layer (pool.c), which turns it into
 * events and feeds maps: a task was queued (after it was encoded), an
 * acknowledgement arrived (after the ack callbacks ran), a final outcome
 * arrived (after the result callback ran), the client is being destroyed.
 * Each returns at once when there is no session. */
void tw__sess_submitted(tw_client_t *c, uint64_t seq,
                        const tw_task_spec_t *spec);
void tw__sess_ack(tw_client_t *c, const tw_ack_t *ack);
void tw__sess_result(tw_client_t *c, const tw_result_t *r);
void tw__sess_free(tw_client_t *c);

/* TW_ESTATE while a session run is finishing: from tw_stop, or the end
 * of its running phase, until tw_run returns, no new work is accepted
 * (S80); else 0. */
int tw__sess_closed(tw_client_t *c);

/* Queue a message built in `e` behind everything else and try to send
 * it (task channels, client/chan.c). Returns 0, TW_EAGAIN (queued) or
 * TW_EIO. */
int tw__client_send(tw_client_t *c, tw_enc_t *e, tw_cmd_t cmd);

/* CHAN from the broker (client/chan.c): each item goes to the channel
 * callback (`cb`, may be NULL) and the session. Returns 1 if used. */
int tw__client_on_chan(tw_client_t *c, const tw_msg_t *m, tw_chan_cb cb,
                       void *arg);

/* An unsolicited REPLY (seq 0) from the broker, whose `data` is
 * {event, ...}: "pool.closed" {pool} (S63-S64) ends until_closed and
 * becomes a TW_EV_POOL_CLOSED event (pool.c). */
void tw__sess_broker_event(tw_client_t *c, const msgpack_object *data);

/* A channel item for the session layer (pool.c): TW_EV_COMM_* events. */
void tw__sess_chan(tw_client_t *c, const tw_chan_msg_t *msg);

/* tw_client_new, with CURVE when `curve` is not NULL (client/curve.c);
 * libzmq copies the keys, so `curve` may be wiped once this returns. */
tw_client_t *tw__client_new(const char *endpoint,
                            const tw_curve_client_t *curve);

/* Connection problems the socket monitor reports (common/zmon.h): with
 * `on`, a request waiting while the connection has never been made ends
 * at once when one is reported (a refused port, a peer of the wrong kind,
 * a refused key) with TW_EUNREACH, and tw_client_last_error() says what
 * happened. Off by
 * default (a library waits for its broker); the CLI turns it on. */
void tw__client_fail_fast(tw_client_t *c, int on);

/* The last connection problem as one line, or NULL when the link is up
 * or nothing was reported. Borrowed until the next call on `c`. */
const char *tw__client_link_error(const tw_client_t *c);

/* TW_EUNREACH (refused, refused key, failed handshake, a peer that is not
 * a broker frontend) when a connection problem was reported and the
 * current socket never completed a handshake; TW_ECOMMAND or
 * TW_EWORKER when the peer answered a client command with that ERROR (a
 * broker's backend; tw_client_last_error() names the frontend); else 0. */
int tw__client_link_failed(const tw_client_t *c);

/* The status endpoint the broker named in its last ping answer (PROTOCOL
 * 5.8), with a wildcard host replaced by the host this client connects
 * to, in buf; NULL if no answer named one. */
const char *tw__client_status_ep(const tw_client_t *c, char *buf,
                                 size_t len);

/* A graph (client/graph.c, taskwheel/graph.h): queue one task naming
 * parents by the seqs of earlier items of the same SUBMIT (`as`), without
 * sealing the batch; tw__client_seal before the first and after the last
 * item puts the graph in one SUBMIT. Returns as tw_client_submit. */
int tw__client_submit_as(tw_client_t *c, const tw_task_spec_t *spec,
                         const uint64_t *as, size_t nas, uint64_t *seq_out);
void tw__client_seal(tw_client_t *c);

/* Submissions the outbox still takes before TW_EFULL. */
size_t tw__client_outbox_room(const tw_client_t *c);

/* Exchange the tw_client_on_ack2 callback with cb and arg (the old ones
 * come back there), to watch ACKs for a while. */
void tw__client_swap_ack2(tw_client_t *c, tw_ack2_cb *cb, void **arg);

#endif /* TW_CLIENT_INTERNAL_H */
