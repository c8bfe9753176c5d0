/*  proto/ops.h - the operations of the commands that carry an "op" (or,
 *  for QUERY, a "what"): one table for the broker, the clients, the codec
 *  tests and PROTOCOL.md.
 *
 *  STATION, GROUP, POOL, WORKER and TASK requests, a strict CANCEL and QUERY
 *  name what they ask for in one string field. TW_PROTO_OPS lists every
 *  such operation once: the command, the operation's name (upper case for
 *  the enum, lower case as sent: "default_limit" is TW_OP_POOL_DEFAULT_LIMIT
 *  and goes on the wire as "default_limit"), the directions it travels,
 *  and the body fields it needs, which the broker refuses a request
 *  without (each command's section of PROTOCOL.md says with which error).
 *  The broker turns each row into a call of its s_op_<name>() function,
 *  the client library takes the names it sends itself from here, and
 *  test_proto builds and decodes a request for every row and compares the
 *  table with PROTOCOL.md section 4.9, so the lists cannot drift apart.
 *
 *  Fields a row cannot say: STATION "add" may give "items" (many stations)
 *  instead of sid and handler, and WORKER "drain" and "resize" need a
 *  "name" or a "wid". Pure data and lookups, any thread.
 */
#ifndef TW_PROTO_OPS_H
#define TW_PROTO_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

/* XX(command, NAME, name, directions, fields needed) for each command. */
#define TW_PROTO_STATION_OPS(XX)                                             \
    XX(STATION, ADD, add, TW_C2B, TW_FB(SID) | TW_FB(HANDLER))               \
    XX(STATION, REMOVE, remove, TW_C2B, TW_FB(SID))                          \
    XX(STATION, PAUSE, pause, TW_C2B, TW_FB(SID))                            \
    XX(STATION, CONTINUE, continue, TW_C2B, TW_FB(SID))                      \
    XX(STATION, STOP, stop, TW_C2B, TW_FB(SID))                              \
    XX(STATION, CANCEL, cancel, TW_C2B, TW_FB(SID))                          \
    XX(STATION, SEND, send, TW_C2B, TW_FB(SID) | TW_FB(PAYLOAD))             \
    XX(STATION, LIST, list, TW_C2B, 0)                                       \
    XX(STATION, SHOW, show, TW_C2B, TW_FB(SID))                              \
    XX(STATION, REBALANCE, rebalance, TW_C2B, 0)

#define TW_PROTO_GROUP_OPS(XX)                                               \
    XX(GROUP, CREATE, create, TW_C2B, TW_FB(GROUP))                          \
    XX(GROUP, SET, set, TW_C2B, TW_FB(GROUP))                                \
    XX(GROUP, CLEAR, clear, TW_C2B, TW_FB(GROUP))                            \
    XX(GROUP, GET, get, TW_C2B, TW_FB(GROUP))                                \
    XX(GROUP, IDS, ids, TW_C2B, TW_FB(GROUP))                                \
    XX(GROUP, LIST, list, TW_C2B, 0)

#define TW_PROTO_POOL_OPS(XX)                                                \
    XX(POOL, SIZE, size, TW_C2B, TW_FB(LIMIT))                               \
    XX(POOL, DEFAULT_LIMIT, default_limit, TW_C2B, 0)                        \
    XX(POOL, STATS, stats, TW_C2B, 0)                                        \
    XX(POOL, LOCK, lock, TW_C2B, 0)                                          \
    XX(POOL, UNLOCK, unlock, TW_C2B, 0)                                      \
    XX(POOL, CLOSE, close, TW_C2B, 0)                                        \
    XX(POOL, FLUSH, flush, TW_C2B, 0)                                        \
    XX(POOL, STOP, stop, TW_C2B, 0)                                          \
    XX(POOL, CANCEL_GROUP, cancel_group, TW_C2B, TW_FB(GROUP))               \
    XX(POOL, CANCEL_ALL, cancel_all, TW_C2B, 0)

#define TW_PROTO_WORKER_OPS(XX)                                              \
    XX(WORKER, DRAIN, drain, TW_C2B | TW_B2W, 0)                             \
    XX(WORKER, RESIZE, resize, TW_C2B | TW_B2W, TW_FB(SLOTS))                \
    XX(WORKER, RESIZED, resized, TW_W2B, 0)

#define TW_PROTO_CANCEL_OPS(XX) XX(CANCEL, STRICT, strict, TW_C2B, TW_FB(IDS))

#define TW_PROTO_QUERY_OPS(XX)                                               \
    XX(QUERY, STATUS, status, TW_C2B, 0)                                     \
    XX(QUERY, WORKERS, workers, TW_C2B, 0)                                   \
    XX(QUERY, SNAPSHOT, snapshot, TW_C2B, 0)                                 \
    XX(QUERY, TASKS, tasks, TW_C2B, 0)                                       \
    XX(QUERY, TASK, task, TW_C2B, TW_FB(IDS))                                \
    XX(QUERY, POOLS, pools, TW_C2B, 0)                                       \
    XX(QUERY, GROUPS, groups, TW_C2B, 0)                                     \
    XX(QUERY, QUEUES, queues, TW_C2B, 0)

/* Task records (PROTOCOL.md 16.5). */
#define TW_PROTO_TASK_OPS(XX)                                                \
    XX(TASK, RETRY, retry, TW_C2B, 0)                                        \
    XX(TASK, PURGE, purge, TW_C2B, 0)

/* Schedules (PROTOCOL.md 18.11): every op but list names one. */
#define TW_PROTO_SCHEDULE_OPS(XX)                                            \
    XX(SCHEDULE, ADD, add, TW_C2B,                                           \
       TW_FB(NAME) | TW_FB(CRON) | TW_FB(ITEMS))                             \
    XX(SCHEDULE, LIST, list, TW_C2B, 0)                                      \
    XX(SCHEDULE, SHOW, show, TW_C2B, TW_FB(NAME))                            \
    XX(SCHEDULE, PAUSE, pause, TW_C2B, TW_FB(NAME))                          \
    XX(SCHEDULE, RESUME, resume, TW_C2B, TW_FB(NAME))                        \
    XX(SCHEDULE, REMOVE, remove, TW_C2B, TW_FB(NAME))                        \
    XX(SCHEDULE, RUN_NOW, run-now, TW_C2B, TW_FB(NAME))

#define TW_PROTO_OPS(XX)                                                     \
    TW_PROTO_STATION_OPS(XX)                                                 \
    TW_PROTO_GROUP_OPS(XX)                                                   \
    TW_PROTO_POOL_OPS(XX)                                                    \
    TW_PROTO_WORKER_OPS(XX)                                                  \
    TW_PROTO_CANCEL_OPS(XX)                                                  \
    TW_PROTO_QUERY_OPS(XX)                                                   \
    TW_PROTO_TASK_OPS(XX)                                                    \
    TW_PROTO_SCHEDULE_OPS(XX)

typedef enum {
    TW_OP_NONE = 0,
#define TW__OP_ENUM(cmd, NAME, name, dirs, needs) TW_OP_##cmd##_##NAME,
    TW_PROTO_OPS(TW__OP_ENUM)
#undef TW__OP_ENUM
        TW_OP__COUNT
} tw_op_t;

/* A row of a handler table indexed by tw_op_t, for a file that defines
 * one static s_op_<name>() per operation: TW_PROTO_POOL_OPS(TW_OP_S_FN)
 * gives [TW_OP_POOL_SIZE] = s_op_size, and so on. */
#define TW_OP_S_FN(cmd, NAME, name, dirs, needs)                             \
    [TW_OP_##cmd##_##NAME] = s_op_##name,

/* The operation of command `cmd` named `s` (len bytes, not
 * NUL-terminated), or TW_OP_NONE if it has none of that name. */
tw_op_t tw_proto_op(tw_cmd_t cmd, const char *s, size_t len);

/* The operation a decoded message names in its "op" (its "what" for
 * QUERY), or TW_OP_NONE: absent or unknown. */
tw_op_t tw_proto_msg_op(const tw_msg_t *m);

/* An operation's name on the wire ("default_limit"), its command, its
 * directions (TW_C2B...) and the body fields it needs (TW_FB bits).
 * "?", TW_CMD_NONE and 0 for TW_OP_NONE. */
const char *tw_proto_op_name(tw_op_t op);
tw_cmd_t tw_proto_op_cmd(tw_op_t op);
int tw_proto_op_dirs(tw_op_t op);
uint64_t tw_proto_op_needs(tw_op_t op);

/* The body field that names the operation of command `cmd`: TW_F_WHAT
 * for QUERY, else TW_F_OP. */
tw_field_t tw_proto_op_field(tw_cmd_t cmd);

#endif /* TW_PROTO_OPS_H */
