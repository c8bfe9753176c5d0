/*  broker/gate.h - peer input checked before the dispatcher acts on it.
 *
 *  Every message from a ROUTER socket passes here, in this order, and the
 *  first check it fails answers the peer with ERROR and drops it:
 *
 *    quarantine  a peer in quarantine (too many protocol errors,
 *                broker/state/quarantine.h) is not checked at all: its messages
 *                are dropped unread, with no ERROR, and counted;
 *    routing id  1..255 bytes of clean text (common/utf8.h), or libzmq's
 *                own form for a peer that set none (a zero byte followed
 *                by four bytes): EPROTO;
 *    frames      a header frame and a body frame: EPROTO;
 *    decoding    header, body, field types and sizes, required fields
 *                (tw_msg_decode_clean, proto/proto.h): EPROTO, EVERSION
 *                or ECOMMAND;
 *    text        names a peer chooses (worker names, host names, handler,
 *                station, pool and group names, tags) end up in log lines,
 *                status topics and QUERY answers that people read on
 *                terminals, so strings must be clean text: valid UTF-8
 *                without control characters (C0, DEL, C1) or the
 *                bidirectional overrides that can disguise a line. Which
 *                strings is the codec's per-field text rule (every string
 *                field, every key, everything under an unknown key;
 *                payloads are BIN and not looked at). Checked on every
 *                frontend message, and on the backend in HELLO only (DONE
 *                and STATION reports carry error texts, which may hold
 *                newlines and are escaped by the logger): EINVAL, with the
 *                request's seq;
 *    direction   a command a peer of this socket may send: ECOMMAND.
 *
 *  The text check is made while the decoder indexes the fields, so a
 *  message is read once by the walker and once by msgpack-c, and the
 *  dispatcher gets it decoded. A message that fails two checks gets the
 *  first one's answer. Broker loop thread only.
 */
#ifndef TW_BROKER_GATE_H
#define TW_BROKER_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/zwatch.h"
#include "proto/proto.h"

/* A protocol error from peer `ident` on `side` ("frontend"...): a strike
 * toward its quarantine (broker/state/quarantine.h), logged once when it goes
 * in. */
struct tw_broker;
void tw__broker_peer_error(struct tw_broker *b, const char *side,
                           const void *ident, size_t ilen);

/* Every check above for the message in `msg` (routing id first),
 * received on the socket of direction `dir` (TW_C2B the frontend, TW_W2B
 * the backend). Returns 0 with *m decoded (release it), or a negative
 * error when the message was dropped: unread for a peer in quarantine,
 * else after answering the peer with ERROR and counting a strike. */
int tw__gate_decode(struct tw_broker *b, tw_zframes_t *msg, tw_msg_t *m,
                    int dir);

/* 1 if `p` (n bytes) is an acceptable routing id (see above), else 0. */
int tw_gate_ident_ok(const void *p, size_t n);

#endif /* TW_BROKER_GATE_H */
