/*  proto/ops.c - the operation table's lookups (see ops.h). */
#include "proto/ops.h"

#include <string.h>

static const struct {
    tw_cmd_t cmd;
    const char *name;
    int dirs;
    uint64_t needs;
} s_ops[TW_OP__COUNT] = {
    [TW_OP_NONE] = {TW_CMD_NONE, "?", 0, 0},
#define S_ROW(cmd, NAME, name, dirs, needs)                                  \
    [TW_OP_##cmd##_##NAME] = {TW_CMD_##cmd, #name, dirs, needs},
    TW_PROTO_OPS(S_ROW)
#undef S_ROW
};

tw_op_t
tw_proto_op(tw_cmd_t cmd, const char *s, size_t len)
{
    if (!s) {
        return TW_OP_NONE;
    }
    for (int op = 1; op < TW_OP__COUNT; op++) {
        if (s_ops[op].cmd == cmd && strlen(s_ops[op].name) == len &&
            memcmp(s_ops[op].name, s, len) == 0) {
            return (tw_op_t)op;
        }
    }
    return TW_OP_NONE;
}

tw_op_t
tw_proto_msg_op(const tw_msg_t *m)
{
    size_t len;
    const char *s = tw_msg_str(m, tw_proto_op_field(m->cmd), &len);
    return tw_proto_op(m->cmd, s, len);
}

static int
s_valid(tw_op_t op)
{
    return op > TW_OP_NONE && op < TW_OP__COUNT;
}

const char *
tw_proto_op_name(tw_op_t op)
{
    return s_valid(op) ? s_ops[op].name : "?";
}

tw_cmd_t
tw_proto_op_cmd(tw_op_t op)
{
    return s_valid(op) ? s_ops[op].cmd : TW_CMD_NONE;
}

int
tw_proto_op_dirs(tw_op_t op)
{
    return s_valid(op) ? s_ops[op].dirs : 0;
}

uint64_t
tw_proto_op_needs(tw_op_t op)
{
    return s_valid(op) ? s_ops[op].needs : 0;
}

tw_field_t
tw_proto_op_field(tw_cmd_t cmd)
{
    return cmd == TW_CMD_QUERY ? TW_F_WHAT : TW_F_OP;
}
