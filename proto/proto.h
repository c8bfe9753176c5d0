/*  proto/proto.h - the taskwheel wire codec, shared by every process.
 *
 *  A taskwheel message is two ZeroMQ frames (a ROUTER adds the peer's
 *  identity in front):
 *
 *      Frame 0  header, 4 bytes:  'T' 'W' version command
 *      Frame 1  body: one msgpack map, string keys
 *
 *  TW_PROTO_COMMANDS is the single list of commands: id, name, the
 *  directions it may travel, the body fields it requires, and for batch
 *  commands the fields every element of "items" requires. It generates the
 *  enum, the name table, the validation tables and the round-trip tests.
 *  proto/PROTOCOL.md is the normative description of the same list.
 *
 *  Decoding trusts nothing: the header's signature, version and command are
 *  checked first; then the body's bytes, by the msgpack walker
 *  (proto/mpwalk.h: one value, sizes, 32 levels), before msgpack-c builds
 *  a tree of them; then every known key's type and size; then the
 *  required fields, including those of each batch item. A bad message
 *  yields TW_EPROTO, TW_EVERSION or TW_ECOMMAND, never a crash. Unknown
 *  keys are ignored so that a newer peer may add optional fields. A
 *  receiver that shows what peers name (the broker, broker/gate.h) also
 *  asks for the text check, driven by each field's text rule in the same
 *  tables, during the same pass over the fields.
 *
 *  Ownership: a decoded tw_msg_t points into the body buffer (msgpack-c
 *  keeps STR and BIN in place), so keep that buffer alive until
 *  tw_msg_release(). Payloads (task args, results) are BIN fields holding
 *  one msgpack-encoded value each: the broker copies them as bytes and never
 *  decodes them. This module knows no sockets; tw_enc_frames() only builds
 *  zmq_msg_t frames for the caller to send.
 */
#ifndef TW_PROTO_H
#define TW_PROTO_H

#include "taskwheel/errors.h"

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "proto/mpwalk.h" /* the walker the decoder rests on; tw_mp_get */

#define TW_PROTO_VERSION 1
#define TW_PROTO_SIG0 'T'
#define TW_PROTO_SIG1 'W'
#define TW_PROTO_HDRLEN 4

/* Limits the decoder enforces on every message. */
#define TW_PROTO_MAX_ITEMS 65536  /* elements of "items" or "ids" */
#define TW_PROTO_MAX_NAME 128     /* handler, worker and tag strings */
#define TW_PROTO_MAX_TEXT 65536   /* error messages */
#define TW_PROTO_MAX_HANDLERS 1024
#define TW_PROTO_MAX_TAGS 64

/* Status topics (PROTOCOL.md 8.2): a subscription to "welcome.<token>"
 * is answered with one message on that topic once every subscription the
 * subscriber made before it is in effect. */
#define TW_PROTO_WELCOME "welcome."
#define TW_PROTO_WELCOME_LEN 8

/* Value types of fields. */
typedef enum {
    TW_T_UINT,  /* non-negative integer */
    TW_T_INT,   /* any integer */
    TW_T_INTN,  /* any integer, or nil ("none") */
    TW_T_STR,   /* string, at most `max` bytes */
    TW_T_BIN,   /* bytes (a msgpack-encoded payload) */
    TW_T_ANY,   /* any msgpack value */
    TW_T_STRS,  /* array of strings, each <= TW_PROTO_MAX_NAME */
    TW_T_TAGS,  /* map of string to string */
    TW_T_UINTS, /* array of non-negative integers */
    TW_T_ITEMS  /* array of maps with item fields */
} tw_type_t;

/* Text rules of fields, for a receiver that checks text
 * (tw_msg_decode_clean): */
#define TW_TX_NONE 0  /* holds no strings (numbers, payload bytes) */
#define TW_TX_CLEAN 1 /* every string in it is clean text (common/utf8.h) */

/* Body fields: enum name, key on the wire, type, max length (strings),
 * text rule. */
#define TW_PROTO_FIELDS(XX)                                                  \
    XX(NAME, "name", TW_T_STR, TW_PROTO_MAX_NAME, TW_TX_CLEAN)               \
    XX(HOST, "host", TW_T_STR, 255, TW_TX_CLEAN)                             \
    XX(PID, "pid", TW_T_UINT, 0, TW_TX_NONE)                                 \
    XX(SLOTS, "slots", TW_T_UINT, 0, TW_TX_NONE)                             \
    XX(HANDLERS, "handlers", TW_T_STRS, 0, TW_TX_CLEAN)                      \
    XX(TAGS, "tags", TW_T_TAGS, 0, TW_TX_CLEAN)                              \
    XX(VER, "ver", TW_T_STR, 64, TW_TX_CLEAN)                                \
    XX(CREDIT, "credit", TW_T_UINT, 0, TW_TX_NONE)                           \
    XX(WID, "wid", TW_T_UINT, 0, TW_TX_NONE)                                 \
    XX(HB, "hb", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(ITEMS, "items", TW_T_ITEMS, 0, TW_TX_CLEAN)                           \
    XX(IDS, "ids", TW_T_UINTS, 0, TW_TX_NONE)                                \
    XX(CODE, "code", TW_T_INT, 0, TW_TX_NONE)                                \
    XX(MSG, "msg", TW_T_STR, TW_PROTO_MAX_TEXT, TW_TX_CLEAN)                 \
    XX(SEQ, "seq", TW_T_UINT, 0, TW_TX_NONE)                                 \
    XX(WHAT, "what", TW_T_STR, 32, TW_TX_CLEAN)                              \
    XX(DATA, "data", TW_T_ANY, 0, TW_TX_CLEAN)                               \
    XX(OP, "op", TW_T_STR, 32, TW_TX_CLEAN)                                  \
    XX(SID, "sid", TW_T_STR, TW_PROTO_MAX_NAME, TW_TX_CLEAN)                 \
    XX(HANDLER, "handler", TW_T_STR, TW_PROTO_MAX_NAME, TW_TX_CLEAN)         \
    XX(ARGS, "args", TW_T_BIN, 0, TW_TX_NONE)                                \
    XX(NEXT, "next", TW_T_STR, 16, TW_TX_CLEAN)                              \
    XX(INTERVAL, "interval", TW_T_UINT, 0, TW_TX_NONE)                       \
    XX(TIMEOUT, "timeout", TW_T_UINT, 0, TW_TX_NONE)                         \
    XX(PLACEMENT, "placement", TW_T_STR, 16, TW_TX_CLEAN)                    \
    XX(RESTART, "restart", TW_T_STR, 16, TW_TX_CLEAN)                        \
    XX(STCODE, "stcode", TW_T_STR, TW_PROTO_MAX_NAME, TW_TX_CLEAN)           \
    XX(PAYLOAD, "payload", TW_T_BIN, 0, TW_TX_NONE)                          \
    XX(POOL, "pool", TW_T_STR, TW_PROTO_MAX_NAME, TW_TX_CLEAN)               \
    XX(GROUP, "group", TW_T_STR, TW_PROTO_MAX_NAME, TW_TX_CLEAN)             \
    XX(LIMIT, "limit", TW_T_INTN, 0, TW_TX_NONE)                             \
    XX(CALLS, "calls", TW_T_INT, 0, TW_TX_NONE)                              \
    XX(FULL, "full", TW_T_STR, 16, TW_TX_CLEAN)                              \
    XX(N, "n", TW_T_UINT, 0, TW_TX_NONE)                                     \
    XX(BOOT, "boot", TW_T_UINT, 0, TW_TX_NONE)                               \
    XX(PUB, "pub", TW_T_STR, 255, TW_TX_CLEAN)                               \
    /* Task records (PROTOCOL.md 16): QUERY tasks, TASK. */                  \
    XX(STATE, "state", TW_T_STR, 16, TW_TX_CLEAN)                            \
    XX(SINCE, "since", TW_T_UINT, 0, TW_TX_NONE)                             \
    XX(TEXT, "text", TW_T_STR, 128, TW_TX_CLEAN)                             \
    XX(CURSOR, "cursor", TW_T_STR, 64, TW_TX_CLEAN)                          \
    XX(HA, "ha", TW_T_UINT, 0, TW_TX_NONE)     /* a pair's fencing epoch */  \
    XX(LOST, "lost", TW_T_UINT, 0, TW_TX_NONE) /* the epoch lost */          \
    XX(ACTIVE, "active", TW_T_STR, 255, TW_TX_CLEAN) /* ENOTACTIVE */        \
    XX(LIVE, "live", TW_T_UINT, 0, TW_TX_NONE) /* ENOTACTIVE */              \
    /* The peer socket of a broker pair (PROTOCOL.md 17). */                 \
    XX(ROLE, "role", TW_T_STR, 16, TW_TX_CLEAN)                              \
    XX(POS, "pos", TW_T_UINTS, 0, TW_TX_NONE) /* [epoch, seq] */             \
    XX(READY, "ready", TW_T_UINT, 0, TW_TX_NONE)                             \
    XX(FRONT, "front", TW_T_STR, 255, TW_TX_CLEAN)                           \
    XX(BACK, "back", TW_T_STR, 255, TW_TX_CLEAN)                             \
    XX(MODE, "mode", TW_T_STR, 16, TW_TX_CLEAN)                              \
    XX(RESYNC, "resync", TW_T_UINT, 0, TW_TX_NONE)                           \
    XX(OPS, "ops", TW_T_BIN, 0, TW_TX_NONE)  /* broker/state/replops.h */    \
    XX(CRC, "crc", TW_T_UINT, 0, TW_TX_NONE)                                 \
    XX(SNAP, "snap", TW_T_UINT, 0, TW_TX_NONE)                               \
    XX(BASE, "base", TW_T_UINT, 0, TW_TX_NONE)                               \
    XX(ERAS, "eras", TW_T_UINTS, 0, TW_TX_NONE) /* [epoch, first seq...] */  \
    XX(DB, "db", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(AT, "at", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(COUNT, "count", TW_T_UINT, 0, TW_TX_NONE)

/* Fields of one element of "items". */
#define TW_PROTO_ITEM_FIELDS(XX)                                             \
    XX(ID, "id", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(SEQ, "seq", TW_T_UINT, 0, TW_TX_NONE)                                 \
    XX(H, "h", TW_T_STR, TW_PROTO_MAX_NAME, TW_TX_CLEAN)                     \
    XX(A, "a", TW_T_BIN, 0, TW_TX_NONE)                                      \
    XX(R, "r", TW_T_BIN, 0, TW_TX_NONE)                                      \
    XX(ST, "st", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(ERR, "err", TW_T_STR, TW_PROTO_MAX_TEXT, TW_TX_CLEAN)                 \
    XX(CODE, "code", TW_T_INT, 0, TW_TX_NONE)                                \
    XX(TO, "to", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(PRI, "pri", TW_T_INT, 0, TW_TX_NONE)                                  \
    XX(RE, "re", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(AT, "at", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(W, "w", TW_T_UINT, 0, TW_TX_NONE)                                     \
    XX(SID, "sid", TW_T_STR, TW_PROTO_MAX_NAME, TW_TX_CLEAN)                 \
    XX(EP, "ep", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(NX, "nx", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(IV, "iv", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(CK, "ck", TW_T_BIN, 0, TW_TX_NONE)                                    \
    XX(PS, "ps", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(IT, "it", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(EV, "ev", TW_T_STR, 32, TW_TX_CLEAN)                                  \
    XX(D, "d", TW_T_BIN, 0, TW_TX_NONE)                                      \
    XX(PL, "pl", TW_T_STR, TW_PROTO_MAX_NAME, TW_TX_CLEAN)                   \
    XX(G, "g", TW_T_STRS, 0, TW_TX_CLEAN)                                    \
    XX(DL, "dl", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(ETA, "eta", TW_T_UINT, 0, TW_TX_NONE)                                 \
    XX(AF, "af", TW_T_UINTS, 0, TW_TX_NONE)                                  \
    XX(AM, "am", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(WR, "wr", TW_T_UINT, 0, TW_TX_NONE)                                   \
    XX(AS, "as", TW_T_UINTS, 0, TW_TX_NONE) /* parents by seq, 18.9 */       \
    XX(WHY, "why", TW_T_STR, 256, TW_TX_CLEAN) /* why it waits, 18.9 */      \
    XX(K, "k", TW_T_STR, TW_PROTO_MAX_NAME, TW_TX_CLEAN)                     \
    XX(DUP, "dup", TW_T_UINT, 0, TW_TX_NONE)                                 \
    XX(STCODE, "stcode", TW_T_STR, TW_PROTO_MAX_NAME, TW_TX_CLEAN)           \
    XX(TAGS, "tags", TW_T_TAGS, 0, TW_TX_CLEAN)                              \
    XX(PLACE, "place", TW_T_STR, 16, TW_TX_CLEAN)                            \
    XX(RESTART, "restart", TW_T_STR, 16, TW_TX_CLEAN)                        \
    /* chan: a CHAN request's correlation id */                             \
    XX(CR, "cr", TW_T_UINT, 0, TW_TX_NONE)

typedef enum {
#define TW__F_ENUM(e, key, type, max, text) TW_F_##e,
    TW_PROTO_FIELDS(TW__F_ENUM)
#undef TW__F_ENUM
        TW_F__COUNT
} tw_field_t;

typedef enum {
#define TW__I_ENUM(e, key, type, max, text) TW_I_##e,
    TW_PROTO_ITEM_FIELDS(TW__I_ENUM)
#undef TW__I_ENUM
        TW_I__COUNT
} tw_ifield_t;

#define TW_FB(f) (1ULL << TW_F_##f)
_Static_assert(TW_F__COUNT <= 64, "TW_FB makes a 64-bit mask of fields");
#define TW_IB(f) (1ULL << TW_I_##f)

/* Directions a command may travel. */
#define TW_W2B 1 /* worker to broker */
#define TW_B2W 2 /* broker to worker */
#define TW_C2B 4 /* client to broker */
#define TW_B2C 8 /* broker to client */
#define TW_B2B 16 /* broker to broker: the peer socket of a pair */

/* The commands: id, name, directions, required body fields, required
 * fields of each item. */
#define TW_PROTO_COMMANDS(XX)                                                \
    XX(1, HELLO, TW_W2B, TW_FB(NAME) | TW_FB(SLOTS) | TW_FB(HANDLERS), 0)    \
    XX(2, WELCOME, TW_B2W, TW_FB(WID) | TW_FB(HB), 0)                        \
    XX(3, READY, TW_W2B, TW_FB(CREDIT), 0)                                   \
    XX(4, TASKS, TW_B2W, TW_FB(ITEMS), TW_IB(ID) | TW_IB(H) | TW_IB(A))      \
    XX(5, DONE, TW_W2B, TW_FB(ITEMS), TW_IB(ID) | TW_IB(ST))                 \
    XX(6, CANCEL, TW_B2W | TW_C2B | TW_B2C, TW_FB(IDS), 0)                   \
    XX(7, HEARTBEAT, TW_W2B | TW_B2W | TW_C2B | TW_B2C, 0, 0)                \
    XX(8, BYE, TW_W2B | TW_C2B | TW_B2W | TW_B2C, 0, 0)                      \
    XX(9, ERROR, TW_B2W | TW_B2C, TW_FB(CODE) | TW_FB(MSG), 0)               \
    XX(10, SUBMIT, TW_C2B, TW_FB(ITEMS), TW_IB(SEQ) | TW_IB(H))              \
    XX(11, ACK, TW_B2C, TW_FB(ITEMS), TW_IB(SEQ))                            \
    XX(12, RESULT, TW_C2B | TW_B2C, 0, TW_IB(ID) | TW_IB(ST))                \
    XX(13, QUERY, TW_C2B, TW_FB(WHAT) | TW_FB(SEQ), 0)                       \
    XX(14, REPLY, TW_B2C, TW_FB(SEQ) | TW_FB(DATA), 0)                       \
    XX(15, ASSIGN, TW_B2W, TW_FB(ITEMS),                                     \
       TW_IB(SID) | TW_IB(EP) | TW_IB(H) | TW_IB(A) | TW_IB(NX))             \
    XX(16, RELEASE, TW_B2W, TW_FB(ITEMS), TW_IB(SID) | TW_IB(EP))            \
    XX(17, CONTROL, TW_B2W, TW_FB(ITEMS), TW_IB(SID) | TW_IB(EP) | TW_IB(EV)) \
    XX(18, N2S, TW_B2W, TW_FB(ITEMS),                                        \
       TW_IB(SID) | TW_IB(EP) | TW_IB(SEQ) | TW_IB(D))                       \
    XX(19, STATION, TW_W2B | TW_C2B, 0, TW_IB(SID))                          \
    XX(20, S2N, TW_W2B, TW_FB(ITEMS),                                        \
       TW_IB(SID) | TW_IB(EP) | TW_IB(SEQ) | TW_IB(D))                       \
    XX(21, GROUP, TW_C2B, TW_FB(SEQ) | TW_FB(OP), 0)                         \
    XX(22, POOL, TW_C2B, TW_FB(SEQ) | TW_FB(OP), 0)                         \
    XX(23, WORKER, TW_W2B | TW_B2W | TW_C2B, TW_FB(OP), 0)                   \
    XX(24, CHAN, TW_W2B | TW_B2W | TW_C2B | TW_B2C, TW_FB(ITEMS),            \
       TW_IB(ID) | TW_IB(EV))                                                \
    XX(25, TASK, TW_C2B, TW_FB(SEQ) | TW_FB(OP), 0)                          \
    XX(26, PAIR, TW_B2B,                                                     \
       TW_FB(ROLE) | TW_FB(STATE) | TW_FB(HA) | TW_FB(POS) | TW_FB(READY),   \
       0)                                                                    \
    XX(27, REPL, TW_B2B, TW_FB(HA) | TW_FB(SEQ) | TW_FB(OPS), 0)            \
    XX(28, RACK, TW_B2B, 0, 0)                                               \
    XX(29, SNAP, TW_B2B, TW_FB(OP) | TW_FB(SNAP), 0)

typedef enum {
    TW_CMD_NONE = 0,
#define TW__C_ENUM(id, name, dirs, req, ireq) TW_CMD_##name = id,
    TW_PROTO_COMMANDS(TW__C_ENUM)
#undef TW__C_ENUM
        TW_CMD__MAX
} tw_cmd_t;

/* Task outcome and state codes, as carried in "st": tw_state_t and its
 * TW_ST_* codes come from taskwheel/errors.h (TW_STATE_MAP). */

/* One decoded element of "items": a pointer per item field, NULL when
 * the key is absent. */
typedef struct {
    const msgpack_object *f[TW_I__COUNT];
} tw_item_t;

/* A decoded message. */
typedef struct {
    tw_cmd_t cmd;
    msgpack_unpacked up; /* owns the object tree and `items` */
    const msgpack_object *f[TW_F__COUNT];
    tw_item_t *items;
    size_t nitems;
} tw_msg_t;

/* Name of a command ("SUBMIT"), or "?" if unknown. Static. */
const char *tw_proto_cmd_name(int cmd);

/* Directions (TW_W2B...) a command may travel, 0 if unknown. */
int tw_proto_cmd_dirs(int cmd);

/* Name of a state code ("ok", "error", ...), "?" if unknown. Static. */
const char *tw_proto_state_name(int st);

/* Check a header frame. Returns 0 and sets *cmd, or TW_EPROTO (wrong size
 * or signature), TW_EVERSION, TW_ECOMMAND. */
int tw_proto_header(const void *hdr, size_t len, tw_cmd_t *cmd);

/* Write a header for `cmd` into hdr[TW_PROTO_HDRLEN]. */
void tw_proto_header_make(tw_cmd_t cmd, unsigned char *hdr);

/* Decode and validate a message. On 0, *m must be released with
 * tw_msg_release(). On error nothing needs releasing. */
int tw_msg_decode(tw_msg_t *m, const void *hdr, size_t hlen,
                  const void *body, size_t blen);

/* A set of commands for tw_msg_decode_clean: TW_CMD_BIT(TW_CMD_HELLO) |
 * ..., or TW_CMD_ALL. */
#define TW_CMD_BIT(cmd) (1ULL << (cmd))
#define TW_CMD_ALL (~0ULL)

/* tw_msg_decode, with the text check for a command in the set `clean`:
 * every key, every string of a field whose text rule is TW_TX_CLEAN (of
 * the body and of each item) and every string under a key the codec does
 * not know must be clean text (common/utf8.h), so that nothing a peer
 * sends can garble a log line or a terminal. Returns what tw_msg_decode
 * returns, or TW_EINVAL for a message that decodes but fails the text
 * check: *m is then left decoded, so that the caller can read its "seq"
 * to answer, and must be released. A message that is also malformed gets
 * the decoder's error and leaves nothing to release. */
int tw_msg_decode_clean(tw_msg_t *m, const void *hdr, size_t hlen,
                        const void *body, size_t blen, uint64_t clean);

/* Free what tw_msg_decode allocated. Idempotent. */
void tw_msg_release(tw_msg_t *m);

/* Accessors. Strings and bytes are borrowed and NOT NUL-terminated. */
uint64_t tw_msg_uint(const tw_msg_t *m, tw_field_t f, uint64_t dflt);
int64_t tw_msg_int(const tw_msg_t *m, tw_field_t f, int64_t dflt);
const char *tw_msg_str(const tw_msg_t *m, tw_field_t f, size_t *len);
uint64_t tw_item_uint(const tw_item_t *it, tw_ifield_t f, uint64_t dflt);
int64_t tw_item_int(const tw_item_t *it, tw_ifield_t f, int64_t dflt);
const char *tw_item_str(const tw_item_t *it, tw_ifield_t f, size_t *len);
const void *tw_item_bin(const tw_item_t *it, tw_ifield_t f, size_t *len);

/* The encoder: a growing buffer and a msgpack packer writing into it. */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} tw_enc_t;

void tw_enc_init(tw_enc_t *e);
void tw_enc_free(tw_enc_t *e);

static inline void
tw_enc_map(tw_enc_t *e, size_t n)
{
    msgpack_pack_map(&e->pk, n);
}
static inline void
tw_enc_array(tw_enc_t *e, size_t n)
{
    msgpack_pack_array(&e->pk, n);
}
static inline void
tw_enc_uint(tw_enc_t *e, uint64_t v)
{
    msgpack_pack_uint64(&e->pk, v);
}
static inline void
tw_enc_int(tw_enc_t *e, int64_t v)
{
    msgpack_pack_int64(&e->pk, v);
}
static inline void
tw_enc_str(tw_enc_t *e, const char *s, size_t len)
{
    msgpack_pack_str(&e->pk, len);
    msgpack_pack_str_body(&e->pk, s, len);
}
void tw_enc_cstr(tw_enc_t *e, const char *s);
static inline void
tw_enc_bin(tw_enc_t *e, const void *p, size_t len)
{
    msgpack_pack_bin(&e->pk, len);
    msgpack_pack_bin_body(&e->pk, p, len);
}
static inline void
tw_enc_nil(tw_enc_t *e)
{
    msgpack_pack_nil(&e->pk);
}
static inline void
tw_enc_bool(tw_enc_t *e, int v)
{
    if (v) {
        msgpack_pack_true(&e->pk);
    } else {
        msgpack_pack_false(&e->pk);
    }
}
/* Write into hdr[0..5) the msgpack header for the `n` bytes at `p`: STR
 * if they are valid UTF-8 (common/utf8.h), else BIN, in the shortest
 * form. Returns the header's length, 1 to 5. For output a program
 * writes, which is text more often than not. */
size_t tw_enc_text_header(unsigned char *hdr, const void *p, size_t n);

/* Write the key of body field `f` / item field `f`. */
void tw_enc_key(tw_enc_t *e, tw_field_t f);
void tw_enc_ikey(tw_enc_t *e, tw_ifield_t f);

/* One CHAN item {id, ev, cr?, d?, err?} (PROTOCOL.md 14.2): `cr` 0, `d`
 * NULL and `err` NULL leave those keys out. Shared by the worker, the
 * broker and libtaskwheel. */
typedef struct {
    uint64_t id, cr;
    const char *ev;
    size_t evlen;
    const void *d;
    size_t dlen;
    const char *err;
    size_t errlen;
} tw_chan_item_t;
void tw_enc_chan_item(tw_enc_t *e, const tw_chan_item_t *ci);

/* Item field `f` and the uint `v` in one buffer write, for the hot paths
 * that add a field to every item (the dispatch epoch "ep"). The bytes are
 * those of tw_enc_ikey + tw_enc_uint. */
void tw_enc_ikey_uint(tw_enc_t *e, tw_ifield_t f, uint64_t v);

/* The body of a broker's refusal when it is not the active one of its
 * pair (PROTOCOL.md 17.8): ERROR {code: ENOTACTIVE, msg, ha, active,
 * live}, "active" left out when empty. */
void tw_enc_not_active(tw_enc_t *e, const char *msg, uint64_t ha,
                       const char *active, int live);

/* Turn the encoded body into frames: out[0] the header for `cmd`, out[1]
 * the body, which takes the buffer without copying. The encoder is left
 * empty and ready for the next message. Returns 0. */
int tw_enc_frames(tw_enc_t *e, tw_cmd_t cmd, zmq_msg_t out[2]);

/* Batches whose length is known only at the end: begin writes an array32
 * header with a zero count and returns its offset; end patches the count.
 * Every msgpack decoder accepts array32 for any length. */
size_t tw_enc_array_begin(tw_enc_t *e);
void tw_enc_array_end(tw_enc_t *e, size_t off, uint32_t n);

/* Empty the encoder, keeping its buffer for reuse. */
static inline void
tw_enc_clear(tw_enc_t *e)
{
    msgpack_sbuffer_clear(&e->sb);
}

/* Size of the body encoded so far. */
static inline size_t
tw_enc_size(const tw_enc_t *e)
{
    return e->sb.size;
}

/* A batch message under construction: a body {"items": [...]} whose items
 * are appended one at a time, plus `extra` further body fields the caller
 * writes after the last item (for example DONE's "credit"). */
typedef struct {
    tw_enc_t enc;
    size_t off;     /* offset of the items array header */
    uint32_t n;     /* items so far */
    unsigned extra; /* body fields besides "items" */
    int nhead;      /* "head" fields go before "items" */
    tw_field_t head_f[2];
    uint64_t head_v[2];
} tw_batch_t;

void tw_batch_init(tw_batch_t *b, unsigned extra);
void tw_batch_free(tw_batch_t *b);

/* Write the uint body field `f` = `v` at the start of every message of
 * this batch, before "items" (the broker's "boot" in ACK and RESULT, and
 * a broker pair's "ha"); at most two such fields, a field given again
 * takes its new value. Takes effect from the next message begun. */
void tw_batch_head(tw_batch_t *b, tw_field_t f, uint64_t v);

/* Begin one more item and return the encoder to write it (a map) into. */
tw_enc_t *tw_batch_item(tw_batch_t *b);

/* Finish the items array (call before writing the extra fields). */
void tw_batch_close_items(tw_batch_t *b);

/* Turn the batch into frames (see tw_enc_frames) and reset it empty. If no
 * item was added, an empty items array is written. */
int tw_batch_frames(tw_batch_t *b, tw_cmd_t cmd, zmq_msg_t out[2]);

#endif /* TW_PROTO_H */
