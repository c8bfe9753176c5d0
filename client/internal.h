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

/* 1 if `buf` holds exactly one well-formed msgpack value, else 0. Walks
 * the bytes without allocating; nesting deeper than msgpack-c's decoder
 * accepts (32 levels of arrays and maps) counts as malformed, because no
 * taskwheel process could decode it. */
int tw__msgpack_valid(const void *buf, size_t len);

#endif /* TW_CLIENT_INTERNAL_H */
