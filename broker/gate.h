/*  broker/gate.h - peer input checked before the dispatcher sees it.
 *
 *  Names a peer chooses (worker names, host names, handler, station, pool
 *  and group names, tags) end up in log lines, status topics and QUERY
 *  answers that people read on terminals. The gate sits between each
 *  ROUTER socket's watch and its dispatcher (broker/dispatch.c) and drops,
 *  with an ERROR reply, a message whose
 *
 *    routing id  is not 1..255 bytes of clean text (below), or libzmq's
 *                own form for a peer that set none (a zero byte followed
 *                by four bytes);
 *    strings     are not clean text: every msgpack string anywhere in the
 *                body (keys and values; payloads are BIN and not looked
 *                at) must be valid UTF-8 without control characters (C0,
 *                DEL, C1) or the bidirectional overrides that can disguise
 *                a line (U+202A..U+202E, U+2066..U+2069).
 *
 *  A peer in quarantine (too many protocol errors, broker/quarantine.h)
 *  is not checked at all: its messages are dropped unread and counted.
 *
 *  Lengths are already bounded by the decoder (proto/proto.h). On the
 *  frontend every message is checked; on the backend, HELLO only (DONE and
 *  STATION reports carry error texts, which may hold newlines and are
 *  escaped by the logger). The check is one pass over the bytes with no
 *  allocation. A body that is not well-formed msgpack is passed on for the
 *  decoder to refuse in the usual way. Broker loop thread only.
 */
#ifndef TW_BROKER_GATE_H
#define TW_BROKER_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/zwatch.h"

/* A protocol error from peer `ident` on `side` ("frontend"...): a strike
 * toward its quarantine (broker/quarantine.h), logged once when it goes
 * in. */
struct tw_broker;
void tw__broker_peer_error(struct tw_broker *b, const char *side,
                           const void *ident, size_t ilen);

/* The watch callbacks of the frontend and backend: check, then hand the
 * message to tw__broker_on_front / tw__broker_on_back. */
void tw__broker_gate_front(tw_zwatch_t *zw, tw_zframes_t *msg);
void tw__broker_gate_back(tw_zwatch_t *zw, tw_zframes_t *msg);

/* 1 if `p` (n bytes) is an acceptable routing id (see above), else 0. */
int tw_gate_ident_ok(const void *p, size_t n);

/* 1 if `s` (n bytes) is clean text (see above), else 0. */
int tw_gate_text_ok(const char *s, size_t n);

/* Check every string of the msgpack body `body`. Returns 0 when all are
 * clean, TW_EINVAL when one is not, TW_EPROTO when the body is not one
 * well-formed msgpack value (nested at most 32 deep). When the body is a
 * map with an unsigned "seq", *seq gets it (else it is left alone). */
int tw_gate_body_ok(const void *body, size_t len, uint64_t *seq);

/* 1 if `p` (len bytes) is exactly one well-formed msgpack value, nested
 * at most 32 deep, whatever its strings hold (a payload: task arguments),
 * else 0. Allocates nothing; one pass over the type bytes. */
int tw_gate_value_ok(const void *p, size_t len);

#endif /* TW_BROKER_GATE_H */
