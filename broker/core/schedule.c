/*  broker/core/schedule.c - schedules firing (see schedule.h). */
#include "broker/core/schedule.h"
#include "broker/core/core.h"
#include "broker/core/flow.h"
#include "broker/core/submit.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/util.h"

#include <stdio.h>
#include <string.h>

/* Publish schedule.<name>.fired or .skipped. */
static void
s_event(tw_broker_t *b, const tw_sched_action_t *act, uint64_t id,
        const char *reason)
{
    char topic[16 + TW_SCHED_NAME_MAX];
    snprintf(topic, sizeof topic, "schedule.%.*s.%s", (int)act->namelen,
             act->name, reason ? "skipped" : "fired");
    if (!tw_status_wants(&b->status, topic)) {
        return;
    }
    int64_t late = (int64_t)tw_wall_ms() - act->tick_ms;
    tw_enc_t e;
    tw_enc_init(&e);
    tw_status_begin(&b->status, &e, reason ? 5 : 5 + (act->after != 0));
    tw_enc_cstr(&e, "schedule");
    tw_enc_str(&e, act->name, act->namelen);
    tw_enc_cstr(&e, "tick");
    tw_enc_uint(&e, (uint64_t)act->tick_ms);
    if (reason) {
        tw_enc_cstr(&e, "first");
        tw_enc_uint(&e, (uint64_t)(act->kind == TW_SCHED_SKIP ? act->first_ms
                                                              : act->tick_ms));
        tw_enc_cstr(&e, "count");
        tw_enc_uint(&e, act->kind == TW_SCHED_SKIP ? act->count : 1);
        tw_enc_cstr(&e, "reason");
        tw_enc_cstr(&e, reason);
    } else {
        tw_enc_cstr(&e, "id");
        tw_enc_uint(&e, id);
        tw_enc_cstr(&e, "manual");
        tw_enc_bool(&e, act->manual);
        tw_enc_cstr(&e, "late_ms");
        tw_enc_uint(&e, late > 0 ? (uint64_t)late : 0);
        if (act->after) {
            tw_enc_cstr(&e, "after");
            tw_enc_uint(&e, act->after);
        }
    }
    tw_status_send(&b->status, topic, &e);
    tw_enc_free(&e);
}

/* Cancel the live tasks of the schedule (overlap cancel-previous). */
static void
s_cancel_live(tw_broker_t *b, const tw_sched_action_t *act)
{
    tw_sched_info_t info;
    if (tw_sched_get(b->sched.eng, act->name, act->namelen, &info) != 0 ||
        !info.live) {
        return;
    }
    /* A cancel may end a task at once, which changes the live list. */
    size_t n = info.live;
    uint64_t *ids = tw_malloc(n * sizeof *ids);
    memcpy(ids, info.live_ids, n * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        tw_task_t *t = tw_tasks_get(&b->tasks, ids[i]);
        if (t && (t->state == TW_ST_PENDING || t->state == TW_ST_RUNNING ||
                  t->state == TW_ST_BLOCKED)) {
            tw__flow_cancel(b, t);
        }
    }
    tw_free(ids);
}

/* Make the task of a FIRE from the template, a SUBMIT body. */
static int
s_fire(tw_broker_t *b, const tw_sched_action_t *act, uint64_t *id, char *why,
       size_t wlen)
{
    unsigned char hdr[TW_PROTO_HDRLEN];
    tw_proto_header_make(TW_CMD_SUBMIT, hdr);
    tw_msg_t m;
    int rc = tw_msg_decode(&m, hdr, sizeof hdr, act->tmpl, act->tmpl_len);
    if (rc == 0 && m.nitems != 1) {
        tw_msg_release(&m);
        rc = TW_EINVAL;
    }
    if (rc != 0) {
        snprintf(why, wlen, "the template does not decode");
        return TW_EINVAL;
    }
    tw_submit_out_t out;
    rc = tw__submit_item(b, NULL, &m.items[0], 0, act->after,
                             tw_status_wants(&b->status, "task.submitted"),
                             &out, why, wlen);
    tw_msg_release(&m);
    if (rc == 0 && !out.task) {
        snprintf(why, wlen, "a task with the template's key is known");
        rc = TW_EEXIST;
    }
    if (rc == 0) {
        *id = out.task->id;
    }
    return rc;
}

void
tw__schedule_mark(tw_broker_t *b, const char *name, size_t len)
{
    if (b->persist) {
        tw_schedtab_mark(&b->sched, name, len);
    }
}

int
tw__schedule_act(tw_broker_t *b, const tw_sched_action_t *act, uint64_t *id,
                 char *why, size_t wlen)
{
    tw_schedtab_t *st = &b->sched;
    tw__schedule_mark(b, act->name, act->namelen);
    *id = 0;
    if (act->kind == TW_SCHED_SKIP) {
        st->skipped += act->count ? act->count : 1;
        s_event(b, act, 0, tw_skip_name(act->reason));
        return 0;
    }
    if (act->cancel_live) {
        s_cancel_live(b, act);
    }
    int rc = s_fire(b, act, id, why, wlen);
    if (rc == 0 &&
        tw_sched_started(st->eng, act->name, act->namelen, *id) == 0) {
        st->fired++;
        s_event(b, act, *id, NULL);
        return 0;
    }
    if (rc == 0) {
        /* Made, but the engine cannot hold it live (TW_EFULL): it runs,
         * untracked, and counts as fired. */
        st->fired++;
        s_event(b, act, *id, NULL);
        return 0;
    }
    tw_sched_unfired(st->eng, act->name, act->namelen);
    st->skipped++;
    char reason[48];
    snprintf(reason, sizeof reason, "refused: %s", tw_err_name(rc));
    s_event(b, act, 0, reason);
    return rc;
}

void
tw__schedule_due(tw_broker_t *b)
{
    tw_sched_action_t act;
    int64_t now = (int64_t)tw_wall_ms();
    while (tw_sched_poll(b->sched.eng, now, &act) == 1) {
        uint64_t id;
        char why[256];
        tw__schedule_act(b, &act, &id, why, sizeof why);
    }
}

int64_t
tw__schedule_next(const tw_broker_t *b)
{
    int64_t due = tw_sched_next_due(b->sched.eng);
    if (due == INT64_MAX) {
        return -1;
    }
    int64_t now = (int64_t)tw_wall_ms();
    return due == INT64_MIN || due <= now ? 0 : due - now;
}

void
tw__schedule_status(const tw_broker_t *b, tw_enc_t *e)
{
    tw_enc_cstr(e, "schedules");
    tw_enc_uint(e, tw_sched_count(b->sched.eng));
    tw_enc_cstr(e, "schedule_fired");
    tw_enc_uint(e, b->sched.fired);
    tw_enc_cstr(e, "schedule_skipped");
    tw_enc_uint(e, b->sched.skipped);
}
