/*  broker/cmd/on_schedule.c - the SCHEDULE command (see on_schedule.h). */
#include "broker/cmd/on_schedule.h"
#include "broker/core/core.h"
#include "broker/core/schedule.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/util.h"
#include "proto/ops.h"

#include <stdio.h>
#include <string.h>

/* 1 if `s` (len octets) is a schedule name: 1..128 of ALPHA DIGIT _ - :
 * (PROTOCOL.md 18.8), so "schedule.<name>." names one schedule. */
static int
s_name_ok(const char *s, size_t len)
{
    if (!s || !len || len > TW_SCHED_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
              ch == ':')) {
            return 0;
        }
    }
    return 1;
}

/* The template item of a SUBMIT body `tmpl`, packed without its "seq". */
static void
s_enc_template(tw_enc_t *e, const void *tmpl, size_t len)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    const msgpack_object *items = NULL;
    if (msgpack_unpack_next(&up, tmpl, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        up.data.type == MSGPACK_OBJECT_MAP && up.data.via.map.size == 1) {
        items = &up.data.via.map.ptr[0].val;
    }
    if (!items || items->type != MSGPACK_OBJECT_ARRAY ||
        items->via.array.size != 1 ||
        items->via.array.ptr[0].type != MSGPACK_OBJECT_MAP) {
        tw_enc_nil(e);
        msgpack_unpacked_destroy(&up);
        return;
    }
    const msgpack_object_map *it = &items->via.array.ptr[0].via.map;
    tw_enc_map(e, it->size - 1); /* the first key is "seq" (s_template) */
    for (uint32_t i = 1; i < it->size; i++) {
        msgpack_pack_object(&e->pk, it->ptr[i].key);
        msgpack_pack_object(&e->pk, it->ptr[i].val);
    }
    msgpack_unpacked_destroy(&up);
}

/* 1 if schedule `name` exists. */
static int
s_exists(const tw_broker_t *b, const char *name, size_t nlen)
{
    tw_sched_info_t info;
    return tw_sched_get(b->sched.eng, name, nlen, &info) == 0;
}

/* Schedule info (PROTOCOL.md 18.11). */
static void
s_enc_info(tw_enc_t *e, const tw_sched_info_t *in)
{
    tw_enc_map(e, 12);
    tw_enc_cstr(e, "name");
    tw_enc_str(e, in->name, in->namelen);
    tw_enc_cstr(e, "cron");
    tw_enc_cstr(e, in->expr);
    tw_enc_cstr(e, "tz");
    tw_enc_cstr(e, in->tz);
    tw_enc_cstr(e, "overlap");
    tw_enc_cstr(e, tw_overlap_name(in->overlap));
    tw_enc_cstr(e, "catchup");
    tw_enc_cstr(e, tw_catchup_name(in->catchup));
    tw_enc_cstr(e, "paused");
    tw_enc_bool(e, in->paused);
    tw_enc_cstr(e, "next");
    if (in->paused || in->next_ms == INT64_MAX) {
        tw_enc_nil(e);
    } else {
        tw_enc_uint(e, (uint64_t)in->next_ms);
    }
    tw_enc_cstr(e, "cursor");
    tw_enc_uint(e, in->cursor_ms > 0 ? (uint64_t)in->cursor_ms : 0);
    tw_enc_cstr(e, "live");
    tw_enc_array(e, in->live);
    for (size_t i = 0; i < in->live; i++) {
        tw_enc_uint(e, in->live_ids[i]);
    }
    tw_enc_cstr(e, "fired");
    tw_enc_uint(e, in->fired);
    tw_enc_cstr(e, "skipped");
    tw_enc_uint(e, in->skipped);
    tw_enc_cstr(e, "template");
    s_enc_template(e, in->tmpl, in->tmpl_len);
}

static void
s_reply_info(tw_broker_t *b, tw_bclient_t *c, uint64_t seq, const char *name,
             size_t nlen)
{
    tw_sched_info_t info;
    tw_enc_t e;
    tw_out_reply_begin(&e, seq);
    if (tw_sched_get(b->sched.eng, name, nlen, &info) == 0) {
        s_enc_info(&e, &info);
    } else {
        tw_enc_nil(&e);
    }
    tw_out_reply(&b->out, c->ident, c->ident_len, &e);
}

static void
s_list_cb(const tw_sched_info_t *info, void *arg)
{
    s_enc_info(arg, info);
}

/* The SUBMIT body a tick sends: {items: [{seq: 0, <the item's keys>}]}.
 * Returns 0, or TW_EINVAL with the reason in `why`. */
static int
s_template(const tw_msg_t *m, tw_enc_t *out, char *why, size_t wlen)
{
    const msgpack_object *items = m->f[TW_F_ITEMS];
    if (!items || items->via.array.size != 1) {
        snprintf(why, wlen, "items must hold exactly one item, the task "
                 "template");
        return TW_EINVAL;
    }
    const tw_item_t *it = &m->items[0];
    size_t hlen = 0;
    if (!tw_item_str(it, TW_I_H, &hlen) || !hlen) {
        snprintf(why, wlen, "the template item needs a handler (h)");
        return TW_EINVAL;
    }
    if (it->f[TW_I_SEQ] || it->f[TW_I_AF] || it->f[TW_I_K]) {
        snprintf(why, wlen, "the template item may not have seq, af or k "
                 "(a fired task has no parents and no dedup key)");
        return TW_EINVAL;
    }
    const msgpack_object_map *map = &items->via.array.ptr[0].via.map;
    tw_enc_map(out, 1);
    tw_enc_key(out, TW_F_ITEMS);
    tw_enc_array(out, 1);
    tw_enc_map(out, map->size + 1);
    tw_enc_ikey(out, TW_I_SEQ);
    tw_enc_uint(out, 0);
    for (uint32_t i = 0; i < map->size; i++) {
        msgpack_pack_object(&out->pk, map->ptr[i].key);
        msgpack_pack_object(&out->pk, map->ptr[i].val);
    }
    return 0;
}

/* Copy a string field into buf (cap octets, NUL-terminated); "" if
 * absent. */
static const char *
s_field(const tw_msg_t *m, tw_field_t f, char *buf, size_t cap, size_t *len)
{
    const char *s = tw_msg_str(m, f, len);
    if (!s || *len >= cap) {
        *len = 0;
        s = "";
    }
    memcpy(buf, s, *len);
    buf[*len] = '\0';
    return buf;
}

/* SCHEDULE add: every check before anything changes. */
static int
s_add(tw_broker_t *b, const tw_msg_t *m, const char *name, size_t nlen,
      char *why, size_t wlen)
{
    char cron[TW_CRON_TEXT_MAX + 1], zone[TW_TZ_NAME_MAX + 1];
    char ov[17], cu[17], err[200];
    size_t cl, zl, ol, ul;
    s_field(m, TW_F_CRON, cron, sizeof cron, &cl);
    s_field(m, TW_F_TZ, zone, sizeof zone, &zl);
    s_field(m, TW_F_OVERLAP, ov, sizeof ov, &ol);
    s_field(m, TW_F_CATCHUP, cu, sizeof cu, &ul);
    tw_cron_t c;
    if (!cl) {
        snprintf(why, wlen, "cron: the expression is missing");
        return TW_EINVAL;
    }
    if (tw_cron_parse(&c, cron, err, sizeof err) != 0) {
        snprintf(why, wlen, "cron '%s': %s", cron, err);
        return TW_EINVAL;
    }
    const tw_tz_t *tz;
    const char *tzwhy = NULL;
    int rc = tw_schedtab_zone(&b->sched, NULL, zone, zl, &tz, &tzwhy);
    if (rc != 0) {
        snprintf(why, wlen, "tz '%s': %s", zone,
                 rc == TW_ENOENT ? "no such zone in the broker's tz "
                                   "database"
                                 : tzwhy ? tzwhy : tw_strerror(rc));
        return TW_EINVAL;
    }
    int overlap = ol ? tw_overlap_parse(ov, ol) : TW_OVERLAP_SKIP;
    if (overlap < 0) {
        snprintf(why, wlen, "overlap '%s': not skip, queue or "
                 "cancel-previous", ov);
        return TW_EINVAL;
    }
    int catchup = ul ? tw_catchup_parse(cu, ul) : TW_CATCHUP_NONE;
    if (catchup < 0) {
        snprintf(why, wlen, "catchup '%s': not none, last or all", cu);
        return TW_EINVAL;
    }
    tw_enc_t tmpl;
    tw_enc_init(&tmpl);
    rc = s_template(m, &tmpl, why, wlen);
    if (rc == 0 && s_exists(b, name, nlen)) {
        snprintf(why, wlen, "schedule '%.*s' exists", (int)nlen, name);
        rc = TW_EEXIST;
    }
    if (rc == 0) {
        tw_sched_def_t def = {
            .name = name,
            .namelen = nlen,
            .expr = cron,
            .tz = tz,
            .overlap = overlap,
            .catchup = catchup,
            .cursor_ms = (int64_t)tw_wall_ms(),
            .tmpl = tmpl.sb.data,
            .tmpl_len = tmpl.sb.size,
        };
        rc = tw_sched_add(b->sched.eng, &def, err, sizeof err);
        if (rc != 0) {
            snprintf(why, wlen, "%s", err);
        }
    }
    tw_enc_free(&tmpl);
    return rc;
}

/* SCHEDULE run-now: REPLY {id}, or the SUBMIT refusal. */
static int
s_run_now(tw_broker_t *b, tw_bclient_t *c, uint64_t seq, const char *name,
          size_t nlen, char *why, size_t wlen)
{
    tw_sched_action_t act;
    int rc = tw_sched_run_now(b->sched.eng, name, nlen,
                              (int64_t)tw_wall_ms(), &act);
    uint64_t id = 0;
    if (rc == 0) {
        rc = tw__schedule_act(b, &act, &id, why, wlen);
    }
    if (rc == 0) {
        tw_enc_t e;
        tw_out_reply_begin(&e, seq);
        tw_enc_map(&e, 1);
        tw_enc_cstr(&e, "id");
        tw_enc_uint(&e, id);
        tw_out_reply(&b->out, c->ident, c->ident_len, &e);
    }
    return rc;
}

void
tw__on_schedule(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    size_t ol = 0, nlen = 0;
    const char *ops = tw_msg_str(m, TW_F_OP, &ol);
    tw_op_t op = tw_proto_op(TW_CMD_SCHEDULE, ops, ol);
    const char *name = tw_msg_str(m, TW_F_NAME, &nlen);
    char why[512];
    int rc = 0;
    if (!op) {
        snprintf(why, sizeof why, "unknown schedule op '%.*s' (add, list, "
                 "show, pause, resume, remove, run-now)", (int)ol,
                 ops ? ops : "");
        rc = TW_EINVAL;
    } else if (op != TW_OP_SCHEDULE_LIST && !s_name_ok(name, nlen)) {
        snprintf(why, sizeof why, "%s: a schedule name is 1-128 letters, "
                 "digits, '_', '-' or ':'", name ? "name" : "name missing");
        rc = TW_EINVAL;
    } else if (op != TW_OP_SCHEDULE_LIST && op != TW_OP_SCHEDULE_ADD &&
               !s_exists(b, name, nlen)) {
        snprintf(why, sizeof why, "no schedule '%.*s'", (int)nlen, name);
        rc = TW_ENOENT;
    }
    if (rc == 0) {
        switch (op) {
        case TW_OP_SCHEDULE_ADD:
            rc = s_add(b, m, name, nlen, why, sizeof why);
            break;
        case TW_OP_SCHEDULE_PAUSE:
            rc = tw_sched_pause(b->sched.eng, name, nlen);
            break;
        case TW_OP_SCHEDULE_RESUME:
            rc = tw_sched_resume(b->sched.eng, name, nlen,
                                 (int64_t)tw_wall_ms());
            break;
        case TW_OP_SCHEDULE_REMOVE:
            rc = tw_sched_remove(b->sched.eng, name, nlen);
            break;
        default:
            break;
        }
    }
    if (rc == 0 && op != TW_OP_SCHEDULE_LIST && op != TW_OP_SCHEDULE_SHOW &&
        op != TW_OP_SCHEDULE_RUN_NOW) {
        tw__schedule_mark(b, name, nlen);
    }
    if (rc == 0 && op == TW_OP_SCHEDULE_RUN_NOW) {
        rc = s_run_now(b, c, seq, name, nlen, why, sizeof why);
        if (rc == 0) {
            return;
        }
    }
    if (rc != 0) {
        tw_out_reply_error(&b->out, c->ident, c->ident_len, seq, rc, why);
        return;
    }
    if (op == TW_OP_SCHEDULE_LIST) {
        tw_enc_t e;
        tw_out_reply_begin(&e, seq);
        tw_enc_array(&e, tw_sched_count(b->sched.eng));
        tw_sched_each(b->sched.eng, s_list_cb, &e);
        tw_out_reply(&b->out, c->ident, c->ident_len, &e);
    } else if (op == TW_OP_SCHEDULE_REMOVE) {
        tw_enc_t e;
        tw_out_reply_begin(&e, seq);
        tw_enc_nil(&e);
        tw_out_reply(&b->out, c->ident, c->ident_len, &e);
    } else {
        s_reply_info(b, c, seq, name, nlen);
    }
}
