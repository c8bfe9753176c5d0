/*  tests/unit/test_worker_taskloop.c - the taskloop engine and the
 *  worker's station protocol.
 *
 *  Two fixtures. The engine tests drive worker/taskloop.h directly: time
 *  is a number passed to tw_taskloop_run, so intervals and timeouts are
 *  checked without sleeping, and test handlers ("t.*") let each test
 *  decide when an iteration ends and with what. The protocol tests play
 *  the broker with tests/unit/support/fake_broker.h, as
 *  tests/unit/test_worker_conn.c does, and check the ASSIGN / RELEASE /
 *  CONTROL / N2S -> STATION / S2N conversation of a real worker (credit,
 *  epochs, coalescing, drain).
 *  Test names and comments cite seed-semantics.md (S-numbers).
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/util.h"
#include "proto/proto.h"
#include "tests/unit/support/fake_broker.h"
#include "tests/unit/support/suite.h"
#include "tests/unit/support/taskloop_rec.h"
#include "worker/handlers.h"
#include "worker/slots.h"
#include "worker/taskloop.h"
#include "worker/worker.h"

#include <msgpack.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ======================================================================
 * Engine fixture
 * ====================================================================== */

#define S_MAXHELD 64

typedef struct {
    uv_loop_t loop;
    tw_handlers_t reg;
    tw_taskloop_t *tl;
    tw_tlrec_t rec; /* what the engine reported */
    tw_call_t *held[S_MAXHELD]; /* t.hold calls still running */
    int nheld, hold_cancels;
    unsigned char args[256][32]; /* t.args: inputs seen */
    size_t alen[256];
    int nargs;
    unsigned char ret[64]; /* t.args: what to return (nil if empty) */
    size_t retlen;
    unsigned char next[64]; /* t.next: what to set (none if empty) */
    size_t nextlen;
    int next_rc;
    int block_ms;
    int n2s_seen;
    int long_stops; /* t.long: calls of its `stop` */
} s_fx_t;

/* Test handlers ----------------------------------------------------------- */

/* t.hold: stays running until the test finishes it or it is cancelled. */
static void
s_hold_run(tw_call_t *call, void *udata)
{
    s_fx_t *fx = udata;
    assert_true(fx->nheld < S_MAXHELD);
    fx->held[fx->nheld++] = call;
}

static void
s_hold_cancel(tw_call_t *call, void *udata)
{
    s_fx_t *fx = udata;
    for (int i = 0; i < fx->nheld; i++) {
        if (fx->held[i] == call) {
            fx->held[i] = fx->held[--fx->nheld];
            fx->hold_cancels++;
            tw_call_fail(call, "cancelled");
            return;
        }
    }
}

/* Finish the oldest held call with `r` (`len` bytes of msgpack). */
static void
s_hold_finish(s_fx_t *fx, const void *r, size_t len)
{
    assert_true(fx->nheld > 0);
    tw_call_t *call = fx->held[0];
    memmove(fx->held, fx->held + 1, (size_t)(fx->nheld - 1) *
                                        sizeof fx->held[0]);
    fx->nheld--;
    tw_call_finish(call, r, len);
}

/* t.args: records its input, returns fx->ret (nil if empty). */
static void
s_args_run(tw_call_t *call, void *udata)
{
    s_fx_t *fx = udata;
    size_t len;
    const void *a = tw_call_args(call, &len);
    assert_true(fx->nargs < 256 && len <= 32);
    memcpy(fx->args[fx->nargs], a, len);
    fx->alen[fx->nargs++] = len;
    tw_call_finish(call, fx->retlen ? fx->ret : NULL, fx->retlen);
}

/* t.next: records its input, sets fx->next as the next payload when
 * given (next mode "handler", S5), returns "x". */
static void
s_next_run(tw_call_t *call, void *udata)
{
    s_fx_t *fx = udata;
    size_t len;
    const void *a = tw_call_args(call, &len);
    memcpy(fx->args[fx->nargs], a, len);
    fx->alen[fx->nargs++] = len;
    if (fx->nextlen) {
        fx->next_rc = tw_call_set_next(call, fx->next, fx->nextlen);
    }
    tw_call_finish(call, "\xa1x", 2);
}

/* t.stopper: calls tw_station_stop in its second iteration. */
static void
s_stopper_run(tw_call_t *call, void *udata)
{
    (void)udata;
    tw_station_t *st = tw_call_station(call);
    if (tw_station_iteration(st) == 2) {
        tw_station_stop(st);
    }
    tw_call_finish(call, NULL, 0);
}

/* t.block: blocking; sleeps fx->block_ms on the pool, emits "pool" from
 * there, returns its input. */
static void
s_block_run(tw_call_t *call, void *udata)
{
    s_fx_t *fx = udata;
    usleep((useconds_t)fx->block_ms * 1000);
    tw_call_emit(call, "\xa4pool", 5);
    size_t len;
    const void *a = tw_call_args(call, &len);
    tw_call_finish(call, a, len);
}

/* t.count: counts n2s messages; no other effect. */
static void
s_count_n2s(tw_station_t *st, const void *d, size_t len, void *udata)
{
    (void)st;
    (void)d;
    (void)len;
    ((s_fx_t *)udata)->n2s_seen++;
}

/* t.long's `stop`: noted; the call stays held until the test ends it,
 * as a program winding down would. */
static void
s_long_stop(tw_call_t *call, void *udata)
{
    (void)call;
    ((s_fx_t *)udata)->long_stops++;
}

static int
s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    tw_handlers_init(&fx->reg);
    assert_int_equal(tw_handlers_add_builtin(&fx->reg), 0);
    assert_int_equal(tw_handlers_add_station_builtins(&fx->reg), 0);
    tw_handler_def_t defs[] = {
        {.name = "t.hold", .run = s_hold_run, .cancel = s_hold_cancel},
        {.name = "t.args", .run = s_args_run},
        {.name = "t.next", .run = s_next_run},
        {.name = "t.stopper", .run = s_stopper_run},
        {.name = "t.block", .flags = TW_HANDLER_BLOCKING,
         .run = s_block_run},
        {.name = "t.count", .run = s_args_run, .n2s = s_count_n2s},
    };
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        defs[i].udata = fx;
        assert_int_equal(tw_handlers_add(&fx->reg, &defs[i]), 0);
    }
    /* t.long: t.hold with open-ended iterations, like stream. */
    tw_handler_def_t ld = {.name = "t.long", .run = s_hold_run,
                           .cancel = s_hold_cancel, .udata = fx};
    assert_int_equal(tw_handlers_add(&fx->reg, &ld), 0);
    fx->reg.v[fx->reg.n - 1].stop = s_long_stop;
    fx->tl = tw_taskloop_new(&fx->loop, &tw_tlrec_cbs, &fx->rec);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fx_t *fx = *state;
    tw_taskloop_drop_all(fx->tl);
    uv_run(&fx->loop, UV_RUN_DEFAULT); /* pool work comes back */
    tw_taskloop_run(fx->tl, UINT64_MAX / 2);
    assert_int_equal(tw_taskloop_count(fx->tl), 0);
    tw_taskloop_destroy(&fx->tl);
    assert_null(fx->tl);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    tw_handlers_free(&fx->reg);
    free(fx);
    return 0;
}

static tw_station_t *
s_add(s_fx_t *fx, const char *sid, const char *h, const void *in,
      size_t ilen, int next, uint64_t iv, uint64_t to)
{
    tw_station_def_t def = {
        .sid = sid,
        .sidlen = strlen(sid),
        .ep = 1,
        .h = tw_handlers_find(&fx->reg, h, strlen(h)),
        .input = in,
        .ilen = ilen,
        .next = next,
        .interval_ms = iv,
        .timeout_ms = to,
    };
    assert_non_null(def.h);
    tw_station_t *st = NULL;
    assert_int_equal(tw_taskloop_add(fx->tl, &def, &st), 0);
    return st;
}

/* The last event, which must be `ev` for `sid`. */
static const tw_tlrec_ev_t *
s_last(s_fx_t *fx, const char *sid, int ev)
{
    assert_true(fx->rec.nev > 0);
    const tw_tlrec_ev_t *e = &fx->rec.ev[fx->rec.nev - 1];
    assert_string_equal(e->sid, sid);
    assert_string_equal(tw_sev_name(e->ev), tw_sev_name(ev));
    return e;
}

/* Unpack a small unsigned integer. */
static uint64_t
s_uint(const void *p, size_t len)
{
    msgpack_unpacked up;
    tw_tlrec_unpack(p, len, &up);
    assert_int_equal(up.data.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    uint64_t v = up.data.via.u64;
    msgpack_unpacked_destroy(&up);
    return v;
}

/* Engine tests ------------------------------------------------------------- */

/* S3: next mode "same" feeds every iteration the same input, whatever
 * the handler returns. */
static void
test_s3_next_same(void **state)
{
    s_fx_t *fx = *state;
    memcpy(fx->ret, "\x07", 1);
    fx->retlen = 1;
    tw_station_t *st = s_add(fx, "a", "t.args", "\x05", 1, TW_NEXT_SAME, 0,
                             0);
    s_last(fx, "a", TW_SEV_RUNNING);
    for (uint64_t now = 0; now < 5; now++) {
        tw_taskloop_run(fx->tl, now);
    }
    assert_int_equal(fx->nargs, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fx->alen[i], 1);
        assert_int_equal(fx->args[i][0], 5);
    }
    assert_int_equal(tw_station_done_count(st), 5);
    size_t len;
    const unsigned char *ck = tw_station_ck(st, &len);
    assert_int_equal(len, 1);
    assert_int_equal(ck[0], 5);
}

/* S4: next mode "result": the result is the next input, so incr counts. */
static void
test_s4_next_result(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "c", "incr", "\x00", 1, TW_NEXT_RESULT, 0,
                             0);
    for (uint64_t now = 0; now < 10; now++) {
        tw_taskloop_run(fx->tl, now);
    }
    size_t len;
    const void *ck = tw_station_ck(st, &len);
    assert_int_equal(s_uint(ck, len), 10);
    assert_int_equal(tw_station_done_count(st), 10);
}

/* S5: next mode "handler": what the handler set, else unchanged. */
static void
test_s5_next_handler(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "h", "t.next", "\x01", 1, TW_NEXT_HANDLER,
                             0, 0);
    tw_taskloop_run(fx->tl, 0); /* input 1, sets nothing */
    memcpy(fx->next, "\x02", 1);
    fx->nextlen = 1;
    tw_taskloop_run(fx->tl, 1); /* input 1, sets 2 */
    fx->nextlen = 0;
    tw_taskloop_run(fx->tl, 2); /* input 2, sets nothing */
    tw_taskloop_run(fx->tl, 3); /* input 2 */
    assert_int_equal(fx->nargs, 4);
    assert_int_equal(fx->args[0][0], 1);
    assert_int_equal(fx->args[1][0], 1);
    assert_int_equal(fx->args[2][0], 2);
    assert_int_equal(fx->args[3][0], 2);
    size_t len;
    const unsigned char *ck = tw_station_ck(st, &len);
    assert_int_equal(ck[0], 2);
    /* Not one msgpack value: refused, the input stays. */
    memcpy(fx->next, "\x92\x01", 2);
    fx->nextlen = 2;
    tw_taskloop_run(fx->tl, 4);
    assert_int_equal(fx->next_rc, -EINVAL);
    tw_taskloop_run(fx->tl, 5);
    assert_int_equal(fx->args[5][0], 2);
}

/* S19: a result map with a truthy "stop" ends the loop cleanly ("done"),
 * keeping the input of that last iteration as the checkpoint; a falsy
 * "stop" does not. The [args, kwargs] pair form (S2) counts too. */
static void
test_s19_stop_key(void **state)
{
    s_fx_t *fx = *state;
    /* {"stop": false}, then {"stop": 0}, then {"stop": ""}: go on. */
    static const char *const go[] = {"\x81\xa4stop\xc2", "\x81\xa4stop\x00",
                                     "\x81\xa4stop\xa0"};
    s_add(fx, "s", "t.args", "\x09", 1, TW_NEXT_SAME, 0, 0);
    for (int i = 0; i < 3; i++) {
        memcpy(fx->ret, go[i], 7);
        fx->retlen = 7;
        tw_taskloop_run(fx->tl, (uint64_t)i);
    }
    assert_int_equal(fx->nargs, 3);
    assert_int_equal(fx->rec.nleft, 0);
    memcpy(fx->ret, "\x81\xa4stop\xc3", 7); /* {"stop": true} */
    tw_taskloop_run(fx->tl, 3);
    const tw_tlrec_ev_t *e = s_last(fx, "s", TW_SEV_DONE);
    assert_int_equal(e->it, 4);
    assert_int_equal(e->cklen, 1);
    assert_int_equal(e->ck[0], 9);
    assert_int_equal(fx->rec.nleft, 1);
    tw_taskloop_run(fx->tl, 4);
    assert_int_equal(fx->nargs, 4); /* no further iteration */
    assert_int_equal(tw_taskloop_count(fx->tl), 0);

    /* [[], {"stop": 1}] with next mode "result". */
    memcpy(fx->ret, "\x92\x90\x81\xa4stop\x01", 9);
    fx->retlen = 9;
    s_add(fx, "p", "t.args", "\x90", 1, TW_NEXT_RESULT, 0, 0);
    tw_taskloop_run(fx->tl, 5);
    s_last(fx, "p", TW_SEV_DONE);
    /* A plain array is just a payload. */
    memcpy(fx->ret, "\x92\x01\x02", 3);
    fx->retlen = 3;
    s_add(fx, "q", "t.args", "\x90", 1, TW_NEXT_RESULT, 0, 0);
    tw_taskloop_run(fx->tl, 6);
    tw_taskloop_run(fx->tl, 7);
    assert_int_equal(fx->alen[fx->nargs - 1], 3);
    s_last(fx, "q", TW_SEV_RUNNING);
}

/* S20: a result map with an "exception" key ends the loop failed, with
 * the exception as the error text. */
static void
test_s20_exception_key(void **state)
{
    s_fx_t *fx = *state;
    memcpy(fx->ret, "\x81\xa9" "exception" "\xa4" "boom", 16);
    fx->retlen = 16;
    s_add(fx, "e", "t.args", "\xc0", 1, TW_NEXT_RESULT, 0, 0);
    tw_taskloop_run(fx->tl, 0);
    const tw_tlrec_ev_t *e = s_last(fx, "e", TW_SEV_FAILED);
    assert_string_equal(e->err, "boom");
    assert_int_equal(e->ck[0], 0xc0); /* not advanced */
    assert_int_equal(fx->rec.nleft, 1);
    /* Not a string: printed. */
    memcpy(fx->ret, "\x81\xa9" "exception" "\x2a", 12);
    fx->retlen = 12;
    s_add(fx, "e2", "t.args", "\xc0", 1, TW_NEXT_SAME, 0, 0);
    tw_taskloop_run(fx->tl, 1);
    e = s_last(fx, "e2", TW_SEV_FAILED);
    assert_string_equal(e->err, "42");
}

/* S23: a handler error ends the station failed; no retry. */
static void
test_s23_handler_error_fails(void **state)
{
    s_fx_t *fx = *state;
    s_add(fx, "f", "fail", "\xa3" "bad", 4, TW_NEXT_SAME, 0, 0);
    tw_taskloop_run(fx->tl, 0);
    const tw_tlrec_ev_t *e = s_last(fx, "f", TW_SEV_FAILED);
    assert_string_equal(e->err, "bad");
    assert_int_equal(e->it, 0);
    assert_int_equal(fx->rec.nleft, 1);
    int n = fx->rec.nev;
    for (uint64_t now = 1; now < 5; now++) {
        tw_taskloop_run(fx->tl, now);
    }
    assert_int_equal(fx->rec.nev, n); /* nothing more: no retry */
    assert_null(tw_taskloop_find(fx->tl, "f", 1));
}

/* S6: an iteration past its timeout is cancelled and the station ends
 * failed with "timeout"; the slot frees when the handler stops. */
static void
test_s6_timeout(void **state)
{
    s_fx_t *fx = *state;
    s_add(fx, "t", "t.hold", "\x01", 1, TW_NEXT_SAME, 0, 50);
    assert_int_equal(tw_taskloop_run(fx->tl, 1000), 50);
    assert_int_equal(fx->nheld, 1);
    assert_int_equal(tw_taskloop_run(fx->tl, 1049), 1);
    s_last(fx, "t", TW_SEV_RUNNING);
    tw_taskloop_run(fx->tl, 1050);
    const tw_tlrec_ev_t *e = s_last(fx, "t", TW_SEV_FAILED);
    assert_string_equal(e->err, "timeout");
    assert_int_equal(fx->hold_cancels, 1);
    assert_int_equal(fx->rec.nleft, 1);
    tw_taskloop_stats_t stats;
    tw_taskloop_stats(fx->tl, &stats);
    assert_int_equal(stats.timeouts, 1);
    /* An iteration that ends in time is not cut off later. */
    s_add(fx, "t2", "t.hold", "\x01", 1, TW_NEXT_SAME, 1000, 50);
    tw_taskloop_run(fx->tl, 2000);
    s_hold_finish(fx, NULL, 0);
    assert_int_equal(tw_taskloop_run(fx->tl, 2010), 990);
    assert_int_equal(tw_taskloop_run(fx->tl, 2060), 940);
    s_last(fx, "t2", TW_SEV_RUNNING);
}

/* S13-S16: controls apply at the boundary and the last one wins; a
 * pause then continue during one iteration means no pause; continue
 * after a pause resumes with the last payload the loop produced. */
static void
test_s13_s16_pause_continue(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "p", "t.hold", "\x00", 1, TW_NEXT_RESULT,
                             0, 0);
    tw_taskloop_run(fx->tl, 0);
    assert_int_equal(fx->nheld, 1);
    /* S13: pause then continue before the boundary: no pause. */
    assert_int_equal(tw_taskloop_control(fx->tl, st, TW_CTL_PAUSE), 0);
    assert_int_equal(tw_taskloop_control(fx->tl, st, TW_CTL_CONTINUE), 0);
    int n = fx->rec.nev;
    s_hold_finish(fx, "\x01", 1);
    tw_taskloop_run(fx->tl, 1);
    assert_int_equal(fx->rec.nev, n); /* no "paused", no "running" */
    assert_int_equal(fx->nheld, 1); /* the next iteration runs */
    /* S15: pause alone: after this iteration nothing new starts. */
    tw_taskloop_control(fx->tl, st, TW_CTL_PAUSE);
    tw_taskloop_run(fx->tl, 2);
    assert_int_equal(fx->rec.nev, n); /* not before the boundary */
    s_hold_finish(fx, "\x02", 1);
    tw_taskloop_run(fx->tl, 3);
    const tw_tlrec_ev_t *e = s_last(fx, "p", TW_SEV_PAUSED);
    assert_int_equal(e->it, 2);
    assert_int_equal(e->ck[0], 2);
    assert_int_equal(fx->nheld, 0);
    assert_int_equal(tw_taskloop_run(fx->tl, 100), -1);
    assert_int_equal(fx->nheld, 0);
    assert_int_equal(fx->rec.nleft, 0); /* a paused station keeps its slot */
    /* S16: continue resumes with the last payload (2), not with some
     * pause payload. */
    tw_taskloop_control(fx->tl, st, TW_CTL_CONTINUE);
    tw_taskloop_run(fx->tl, 101);
    s_last(fx, "p", TW_SEV_RUNNING);
    assert_int_equal(fx->nheld, 1);
    size_t len;
    const unsigned char *a = tw_call_args(fx->held[0], &len);
    assert_int_equal(len, 1);
    assert_int_equal(a[0], 2);
    /* S14: continue without a pause is a no-op. */
    n = fx->rec.nev;
    tw_taskloop_control(fx->tl, st, TW_CTL_CONTINUE);
    s_hold_finish(fx, "\x03", 1);
    tw_taskloop_run(fx->tl, 102);
    assert_int_equal(fx->rec.nev, n);
    /* A paused station answers continue within one run (F1 on S15). */
    tw_taskloop_control(fx->tl, st, TW_CTL_PAUSE);
    s_hold_finish(fx, "\x04", 1);
    tw_taskloop_run(fx->tl, 103);
    s_last(fx, "p", TW_SEV_PAUSED);
    tw_taskloop_control(fx->tl, st, TW_CTL_PAUSE); /* again: nothing */
    tw_taskloop_control(fx->tl, st, TW_CTL_CONTINUE);
    tw_taskloop_run(fx->tl, 104);
    s_last(fx, "p", TW_SEV_RUNNING);
    assert_int_equal(fx->nheld, 1);
    a = tw_call_args(fx->held[0], &len);
    assert_int_equal(a[0], 4);
}

/* A station assigned paused (ps=1) reports paused and runs nothing until
 * continued. */
static void
test_start_paused(void **state)
{
    s_fx_t *fx = *state;
    tw_station_def_t def = {
        .sid = "z",
        .sidlen = 1,
        .ep = 3,
        .h = tw_handlers_find(&fx->reg, "incr", 4),
        .input = "\x05",
        .ilen = 1,
        .next = TW_NEXT_RESULT,
        .paused = 1,
        .it = 7,
    };
    tw_station_t *st;
    assert_int_equal(tw_taskloop_add(fx->tl, &def, &st), 0);
    const tw_tlrec_ev_t *e = s_last(fx, "z", TW_SEV_PAUSED);
    assert_int_equal(e->ep, 3);
    assert_int_equal(e->it, 7);
    assert_int_equal(tw_taskloop_run(fx->tl, 0), -1);
    assert_int_equal(tw_station_done_count(st), 7);
    tw_taskloop_control(fx->tl, st, TW_CTL_CONTINUE);
    tw_taskloop_run(fx->tl, 1);
    s_last(fx, "z", TW_SEV_RUNNING);
    assert_int_equal(tw_station_done_count(st), 8);
    /* A second station with the same sid is refused. */
    assert_int_equal(tw_taskloop_add(fx->tl, &def, NULL), TW_EEXIST);
    def.sidlen = 0;
    assert_int_equal(tw_taskloop_add(fx->tl, &def, NULL), TW_EINVAL);
}

/* S17: stop lets the current iteration finish (its result counts), then
 * the station ends "stopped". Stop before the boundary can still be
 * overridden by a later continue (S13). */
static void
test_s17_stop_finishes_iteration(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "s", "t.hold", "\x00", 1, TW_NEXT_RESULT,
                             0, 0);
    tw_taskloop_run(fx->tl, 0);
    tw_taskloop_control(fx->tl, st, TW_CTL_STOP);
    tw_taskloop_run(fx->tl, 1);
    assert_int_equal(fx->hold_cancels, 0); /* never aborted */
    assert_int_equal(fx->rec.nleft, 0);
    s_hold_finish(fx, "\x05", 1);
    tw_taskloop_run(fx->tl, 2);
    const tw_tlrec_ev_t *e = s_last(fx, "s", TW_SEV_STOPPED);
    assert_int_equal(e->it, 1);
    assert_int_equal(e->ck[0], 5);
    assert_int_equal(fx->rec.nleft, 1);
    assert_int_equal(fx->nheld, 0);
    assert_int_equal(tw_taskloop_control(fx->tl, st, TW_CTL_PAUSE),
                     TW_ESTATE);

    st = s_add(fx, "s2", "t.hold", "\x00", 1, TW_NEXT_RESULT, 0, 0);
    tw_taskloop_run(fx->tl, 3);
    tw_taskloop_control(fx->tl, st, TW_CTL_STOP);
    tw_taskloop_control(fx->tl, st, TW_CTL_CONTINUE); /* last wins */
    s_hold_finish(fx, "\x06", 1);
    tw_taskloop_run(fx->tl, 4);
    s_last(fx, "s2", TW_SEV_RUNNING);
    assert_int_equal(fx->nheld, 1);
}

/* S18: cancel aborts the running iteration now: the handler's cancel is
 * called, its result is discarded, the checkpoint does not move. */
static void
test_s18_cancel_now(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "c", "t.hold", "\x03", 1, TW_NEXT_RESULT,
                             0, 0);
    tw_taskloop_run(fx->tl, 0);
    assert_int_equal(tw_taskloop_control(fx->tl, st, TW_CTL_CANCEL), 0);
    const tw_tlrec_ev_t *e = s_last(fx, "c", TW_SEV_CANCELLED);
    assert_int_equal(e->ck[0], 3);
    assert_int_equal(e->it, 0);
    assert_int_equal(fx->hold_cancels, 1);
    assert_int_equal(fx->rec.nleft, 1);
    assert_null(tw_taskloop_find(fx->tl, "c", 1));
    tw_taskloop_run(fx->tl, 1);
    assert_int_equal(tw_taskloop_count(fx->tl), 0);
    /* Cancel while paused: cancelled at once too. */
    st = s_add(fx, "c2", "incr", "\x00", 1, TW_NEXT_RESULT, 0, 0);
    tw_taskloop_control(fx->tl, st, TW_CTL_PAUSE);
    tw_taskloop_run(fx->tl, 2);
    s_last(fx, "c2", TW_SEV_PAUSED);
    tw_taskloop_control(fx->tl, st, TW_CTL_CANCEL);
    s_last(fx, "c2", TW_SEV_CANCELLED);
    assert_int_equal(fx->rec.nleft, 2);
}

/* Open-ended iterations (a handler with `stop`, like stream) never reach
 * a boundary, so a drain does not wait for one: the station is released
 * at once and the iteration is asked to end with `stop`, not cancelled.
 * The slot frees (`left`) when the call ends. Ordinary handlers keep
 * S29: the drain waits for the iteration. */
static void
test_drain_open_ended_now(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "l", "t.long", "\x07", 1, TW_NEXT_RESULT,
                             0, 0);
    tw_station_t *h = s_add(fx, "h", "t.hold", "\x08", 1, TW_NEXT_RESULT,
                            0, 0);
    tw_taskloop_run(fx->tl, 0);
    assert_int_equal(fx->nheld, 2);
    tw_taskloop_release_all(fx->tl, 1);
    const tw_tlrec_ev_t *e = s_last(fx, "l", TW_SEV_RELEASED);
    assert_int_equal(e->ck[0], 7);
    assert_int_equal(fx->long_stops, 1);
    assert_int_equal(fx->hold_cancels, 0);
    assert_null(tw_taskloop_find(fx->tl, "l", 1));
    assert_non_null(tw_taskloop_find(fx->tl, "h", 1)); /* still running */
    assert_int_equal(fx->rec.nleft, 0);
    /* The long call ends (as its program exits); the result is not used. */
    for (int i = 0; i < fx->nheld; i++) {
        if (tw_call_station(fx->held[i]) == st) {
            tw_call_t *c = fx->held[i];
            fx->held[i] = fx->held[--fx->nheld];
            tw_call_fail(c, "stopped");
        }
    }
    assert_int_equal(fx->rec.nleft, 1);
    assert_int_equal(tw_taskloop_release(fx->tl, st, 1), TW_ESTATE);
    /* The ordinary one is released at its boundary. */
    s_hold_finish(fx, "\x09", 1);
    tw_taskloop_run(fx->tl, 1);
    e = s_last(fx, "h", TW_SEV_RELEASED);
    assert_int_equal(e->ck[0], 9);
    assert_int_equal(fx->rec.nleft, 2);
    (void)h;
}

/* STOP ends an open-ended iteration now, politely; a RELEASE (not
 * graceful) asks it politely too. Cancel still cancels. */
static void
test_stop_open_ended_now(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *a = s_add(fx, "a", "t.long", "\x01", 1, TW_NEXT_RESULT,
                            0, 0);
    tw_station_t *b = s_add(fx, "b", "t.long", "\x02", 1, TW_NEXT_RESULT,
                            0, 0);
    tw_station_t *c = s_add(fx, "c", "t.long", "\x03", 1, TW_NEXT_RESULT,
                            0, 0);
    tw_taskloop_run(fx->tl, 0);
    assert_int_equal(fx->nheld, 3);
    assert_int_equal(tw_taskloop_control(fx->tl, a, TW_CTL_STOP), 0);
    s_last(fx, "a", TW_SEV_STOPPED);
    assert_int_equal(tw_taskloop_release(fx->tl, b, 0), 0);
    s_last(fx, "b", TW_SEV_RELEASED);
    assert_int_equal(fx->long_stops, 2);
    assert_int_equal(fx->hold_cancels, 0);
    assert_int_equal(tw_taskloop_control(fx->tl, c, TW_CTL_CANCEL), 0);
    s_last(fx, "c", TW_SEV_CANCELLED);
    assert_int_equal(fx->hold_cancels, 1);
    while (fx->nheld) {
        tw_call_t *call = fx->held[--fx->nheld];
        tw_call_fail(call, "stopped");
    }
    assert_int_equal(fx->rec.nleft, 3);
}

/* A forced stop gives open-ended iterations no grace: kill_all cancels
 * an iteration already asked to end. */
static void
test_kill_all_after_stop(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "k", "t.long", "\x01", 1, TW_NEXT_SAME, 0,
                             0);
    tw_taskloop_run(fx->tl, 0);
    assert_int_equal(tw_taskloop_release(fx->tl, st, 0), 0);
    assert_int_equal(fx->long_stops, 1);
    assert_int_equal(fx->rec.nleft, 0);
    tw_taskloop_kill_all(fx->tl);
    assert_int_equal(fx->hold_cancels, 1);
    assert_int_equal(fx->rec.nleft, 1);
}

/* For open-ended iterations the timeout is an idle timeout: s2n output
 * since the last look counts the period again. */
static void
test_open_ended_idle_timeout(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "i", "t.long", "\x01", 1, TW_NEXT_SAME, 0,
                             100);
    assert_int_equal(tw_taskloop_run(fx->tl, 1000), 100);
    assert_int_equal(fx->nheld, 1);
    tw_station_emit(st, "\xa1x", 2);
    assert_int_equal(tw_taskloop_run(fx->tl, 1100), 100); /* re-armed */
    s_last(fx, "i", TW_SEV_RUNNING);
    tw_station_emit(st, "\xa1y", 2);
    assert_int_equal(tw_taskloop_run(fx->tl, 1200), 100);
    s_last(fx, "i", TW_SEV_RUNNING);
    tw_taskloop_run(fx->tl, 1300); /* silent for a whole period */
    const tw_tlrec_ev_t *e = s_last(fx, "i", TW_SEV_FAILED);
    assert_string_equal(e->err, "idle timeout");
    assert_int_equal(fx->hold_cancels, 1);
    assert_int_equal(fx->rec.nleft, 1);
    tw_taskloop_stats_t stats;
    tw_taskloop_stats(fx->tl, &stats);
    assert_int_equal(stats.timeouts, 1);
}

/* An iteration starts no sooner than the interval after the previous
 * one started; a slow iteration is followed at once. */
static void
test_interval_spacing(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "i", "incr", "\x00", 1, TW_NEXT_RESULT,
                             100, 0);
    assert_int_equal(tw_taskloop_run(fx->tl, 1000), 0); /* it 1, queued */
    assert_int_equal(tw_station_done_count(st), 1);
    assert_int_equal(tw_taskloop_run(fx->tl, 1000), 100);
    assert_int_equal(tw_taskloop_run(fx->tl, 1050), 50);
    assert_int_equal(tw_station_done_count(st), 1);
    tw_taskloop_run(fx->tl, 1099);
    assert_int_equal(tw_station_done_count(st), 1);
    tw_taskloop_run(fx->tl, 1100);
    assert_int_equal(tw_station_done_count(st), 2);
    tw_taskloop_run(fx->tl, 1100);
    /* Late wake-ups do not bunch up: due times follow the last start. */
    tw_taskloop_run(fx->tl, 1450);
    assert_int_equal(tw_station_done_count(st), 3);
    assert_int_equal(tw_taskloop_run(fx->tl, 1450), 100);

    /* A 250 ms iteration with a 100 ms interval: the next starts when
     * it ends. */
    s_add(fx, "slow", "t.hold", "\xc0", 1, TW_NEXT_SAME, 100, 0);
    tw_taskloop_run(fx->tl, 2000);
    assert_int_equal(fx->nheld, 1);
    s_hold_finish(fx, NULL, 0);
    tw_taskloop_run(fx->tl, 2250);
    assert_int_equal(fx->nheld, 1);
}

/* S22: stations are independent: each run gives every ready station one
 * iteration (the engine yields between iterations), and one that never
 * finishes does not hold the others back. */
static void
test_s22_interleave(void **state)
{
    s_fx_t *fx = *state;
    s_add(fx, "stuck", "t.hold", "\xc0", 1, TW_NEXT_SAME, 0, 0);
    tw_station_t *st[50];
    for (int i = 0; i < 50; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "n%d", i);
        st[i] = s_add(fx, sid, "incr", "\x00", 1, TW_NEXT_RESULT, 0, 0);
    }
    for (uint64_t k = 1; k <= 20; k++) {
        assert_int_equal(tw_taskloop_run(fx->tl, k), 0);
        for (int i = 0; i < 50; i++) {
            assert_int_equal(tw_station_done_count(st[i]), k);
        }
    }
    assert_int_equal(fx->nheld, 1);
}

static void
s_count_dirty(void *arg, tw_station_t *st)
{
    (void)st;
    (*(int *)arg)++;
}

/* Checkpoint reports coalesce: one dirty entry per station whose
 * checkpoint moved since it was last taken. */
static void
test_dirty_coalesced(void **state)
{
    s_fx_t *fx = *state;
    for (int i = 0; i < 10; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "d%d", i);
        s_add(fx, sid, "incr", "\x00", 1, TW_NEXT_RESULT, 0, 0);
    }
    for (uint64_t k = 0; k < 30; k++) {
        tw_taskloop_run(fx->tl, k);
    }
    assert_int_equal(fx->rec.ndirty, 1);
    int n = 0;
    tw_taskloop_take_dirty(fx->tl, s_count_dirty, &n);
    assert_int_equal(n, 10);
    n = 0;
    tw_taskloop_take_dirty(fx->tl, s_count_dirty, &n);
    assert_int_equal(n, 0);
    tw_taskloop_run(fx->tl, 30);
    assert_int_equal(fx->rec.ndirty, 2);
    /* A station that ends leaves the dirty list: its end report carries
     * the checkpoint. */
    tw_taskloop_release_all(fx->tl, 0);
    tw_taskloop_take_dirty(fx->tl, s_count_dirty, &n);
    assert_int_equal(n, 0);
    assert_int_equal(fx->rec.nleft, 10);
}

/* n2s messages reach the handler in seq order; duplicates and messages
 * for a handler without n2s are dropped and counted. mirror sends each
 * back as s2n, in order, numbered from 1. */
static void
test_n2s_in_order(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *m = s_add(fx, "m", "mirror", "\xc0", 1, TW_NEXT_SAME,
                            1000, 0);
    tw_taskloop_run(fx->tl, 0);
    for (uint64_t seq = 1; seq <= 5; seq++) {
        unsigned char d = (unsigned char)(0x10 + seq);
        assert_int_equal(tw_taskloop_n2s(fx->tl, m, seq, &d, 1), 0);
    }
    unsigned char d = 0x7f;
    assert_int_equal(tw_taskloop_n2s(fx->tl, m, 3, &d, 1), TW_EEXIST);
    assert_int_equal(fx->rec.ns2n, 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(fx->rec.s2n[i].sid, "m");
        assert_int_equal(fx->rec.s2n[i].seq, (uint64_t)i + 1);
        assert_int_equal(fx->rec.s2n[i].len, 1);
        assert_int_equal(fx->rec.s2n[i].d[0], 0x11 + i);
    }
    /* Gaps are accepted (the broker may have given up on some). */
    assert_int_equal(tw_taskloop_n2s(fx->tl, m, 9, "\xa2hi", 3), 0);
    assert_int_equal(fx->rec.s2n[5].seq, 6);
    tw_station_t *c = s_add(fx, "x", "incr", "\x00", 1, TW_NEXT_SAME, 1000,
                            0);
    assert_int_equal(tw_taskloop_n2s(fx->tl, c, 1, "\x01", 1), TW_ENOENT);
    tw_station_t *t = s_add(fx, "t", "t.count", "\x00", 1, TW_NEXT_SAME,
                            1000, 0);
    assert_int_equal(tw_taskloop_n2s(fx->tl, t, 1, "\x01", 1), 0);
    assert_int_equal(fx->n2s_seen, 1);
    tw_taskloop_stats_t stats;
    tw_taskloop_stats(fx->tl, &stats);
    assert_int_equal(stats.n2s, 7);
    assert_int_equal(stats.n2s_dup, 1);
    assert_int_equal(stats.n2s_dropped, 1);
    /* Ended: refused. */
    tw_taskloop_control(fx->tl, m, TW_CTL_CANCEL);
    assert_int_equal(tw_taskloop_n2s(fx->tl, m, 10, "\x01", 1), TW_ESTATE);
}

/* s2n messages are numbered per station from 1; ticker emits
 * {"it": n} with the iteration number, counted across assignments. */
static void
test_s2n_seq(void **state)
{
    s_fx_t *fx = *state;
    s_add(fx, "t", "ticker", "\xc0", 1, TW_NEXT_SAME, 0, 0);
    tw_station_def_t def = {
        .sid = "u",
        .sidlen = 1,
        .ep = 1,
        .h = tw_handlers_find(&fx->reg, "ticker", 6),
        .input = "\xc0",
        .ilen = 1,
        .it = 200,
    };
    assert_int_equal(tw_taskloop_add(fx->tl, &def, NULL), 0);
    for (uint64_t k = 0; k < 3; k++) {
        tw_taskloop_run(fx->tl, k);
    }
    int nt = 0, nu = 0;
    for (int i = 0; i < fx->rec.ns2n; i++) {
        const tw_tlrec_s2n_t *m = &fx->rec.s2n[i];
        uint64_t want = m->sid[0] == 't' ? (uint64_t)++nt
                                         : 200 + (uint64_t)++nu;
        assert_int_equal(m->seq, m->sid[0] == 't' ? (uint64_t)nt
                                                  : (uint64_t)nu);
        /* {"it": want} */
        msgpack_unpacked up;
        tw_tlrec_unpack(m->d, m->len, &up);
        assert_int_equal(up.data.type, MSGPACK_OBJECT_MAP);
        assert_int_equal(up.data.via.map.size, 1);
        assert_memory_equal(up.data.via.map.ptr[0].key.via.str.ptr, "it",
                            2);
        assert_int_equal(up.data.via.map.ptr[0].val.via.u64, want);
        msgpack_unpacked_destroy(&up);
    }
    assert_int_equal(nt, 3);
    assert_int_equal(nu, 3);
}

/* release returns the station with its checkpoint: at once (a running
 * iteration is cancelled and does not count), or, graceful, after the
 * current iteration (which counts: S29). */
static void
test_release_returns_checkpoint(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "r", "incr", "\x00", 1, TW_NEXT_RESULT, 0,
                             0);
    for (uint64_t k = 0; k < 3; k++) {
        tw_taskloop_run(fx->tl, k);
    }
    assert_int_equal(tw_taskloop_release(fx->tl, st, 0), 0);
    const tw_tlrec_ev_t *e = s_last(fx, "r", TW_SEV_RELEASED);
    assert_int_equal(e->it, 3);
    assert_int_equal(s_uint(e->ck, e->cklen), 3);
    assert_int_equal(fx->rec.nleft, 1);
    assert_int_equal(tw_taskloop_release(fx->tl, st, 0), TW_ESTATE);

    st = s_add(fx, "h", "t.hold", "\x01", 1, TW_NEXT_RESULT, 0, 0);
    tw_taskloop_run(fx->tl, 10);
    tw_taskloop_release(fx->tl, st, 0);
    e = s_last(fx, "h", TW_SEV_RELEASED);
    assert_int_equal(e->ck[0], 1);
    assert_int_equal(fx->hold_cancels, 1);
    assert_int_equal(fx->rec.nleft, 2);

    st = s_add(fx, "g", "t.hold", "\x01", 1, TW_NEXT_RESULT, 0, 0);
    tw_taskloop_run(fx->tl, 20);
    tw_taskloop_release_all(fx->tl, 1);
    s_last(fx, "g", TW_SEV_RUNNING);
    /* A later control cannot undo a drain. */
    tw_taskloop_control(fx->tl, st, TW_CTL_CONTINUE);
    s_hold_finish(fx, "\x02", 1);
    tw_taskloop_run(fx->tl, 21);
    e = s_last(fx, "g", TW_SEV_RELEASED);
    assert_int_equal(e->ck[0], 2);
    assert_int_equal(e->it, 1);
    assert_int_equal(fx->hold_cancels, 1);
    assert_int_equal(fx->rec.nleft, 3);
}

/* tw_station_stop from the handler ends the station "done" after the
 * iteration (F1 on S10). */
static void
test_self_stop(void **state)
{
    s_fx_t *fx = *state;
    s_add(fx, "s", "t.stopper", "\xc0", 1, TW_NEXT_SAME, 0, 0);
    tw_taskloop_run(fx->tl, 0);
    tw_taskloop_run(fx->tl, 1);
    const tw_tlrec_ev_t *e = s_last(fx, "s", TW_SEV_DONE);
    assert_int_equal(e->it, 2);
    assert_int_equal(fx->rec.nleft, 1);
}

/* The station ABI refuses what it cannot send, and plain tasks have no
 * station. */
static void
test_abi_checks(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "a", "incr", "\x00", 1, TW_NEXT_SAME, 100,
                             0);
    assert_string_equal(tw_station_id(st), "a");
    assert_int_equal(tw_station_emit(st, "\x92\x01", 2), -EINVAL);
    assert_int_equal(tw_station_emit(st, "\x01\x02", 2), -EINVAL);
    assert_int_equal(tw_station_emit(st, NULL, 0), 0); /* nil */
    assert_int_equal(fx->rec.ns2n, 1);
    assert_int_equal(fx->rec.s2n[0].d[0], 0xc0);
    assert_null(tw_station_data(st));
    int x;
    tw_station_set_data(st, &x);
    assert_ptr_equal(tw_station_data(st), &x);
    tw_station_set_data(st, NULL);
    tw_call_t call;
    tw_call_init(&call, &fx->loop, NULL, NULL);
    assert_null(tw_call_station(&call));
    assert_int_equal(tw_call_emit(&call, "\x01", 1), -EINVAL);
    assert_int_equal(tw_call_set_next(&call, "\x01", 1), -EINVAL);
    tw_call_free(&call);
    /* After the end: refused. */
    tw_taskloop_control(fx->tl, st, TW_CTL_CANCEL);
    assert_int_equal(tw_station_emit(st, "\x01", 1), -ESHUTDOWN);
    assert_int_equal(tw_ctl_parse("pause", 5), TW_CTL_PAUSE);
    assert_int_equal(tw_ctl_parse("cancel", 6), TW_CTL_CANCEL);
    assert_int_equal(tw_ctl_parse("paus", 4), TW_EINVAL);
    assert_string_equal(tw_sev_name(TW_SEV_RELEASED), "released");
    assert_string_equal(tw_sev_name(99), "?");
}

/* Drive the engine in real time on the loop for `ms`. */
static void
s_realtime(s_fx_t *fx, int ms)
{
    tw_tlrec_drive(&fx->loop, fx->tl, NULL, 0, ms);
}

/* S22 with a blocking handler: its iteration runs on the thread pool for
 * 300 ms while the loop's stations keep iterating; what it emits from the
 * pool arrives before its outcome. */
static void
test_s22_blocking_does_not_delay(void **state)
{
    s_fx_t *fx = *state;
    fx->block_ms = 300;
    tw_station_t *b = s_add(fx, "b", "t.block", "\x01", 1, TW_NEXT_SAME, 0,
                            0);
    tw_station_t *n = s_add(fx, "n", "incr", "\x00", 1, TW_NEXT_RESULT, 0,
                            0);
    uint64_t t0 = tw_now_ms();
    while (tw_station_done_count(n) < 50 &&
           tw_now_ms() - t0 < TW_FB_PATIENCE_MS) {
        s_realtime(fx, 1);
    }
    /* The loop stations ran while the blocking one is still on the pool
     * (it cannot have finished: 300 ms have not passed). */
    if (tw_now_ms() - t0 < 250) {
        assert_int_equal(tw_station_done_count(b), 0);
        assert_int_equal(fx->rec.ns2n, 0);
    }
    assert_true(tw_station_done_count(n) >= 50);
    while (tw_station_done_count(b) < 1 &&
           tw_now_ms() - t0 < TW_FB_PATIENCE_MS) {
        s_realtime(fx, 5);
    }
    assert_true(tw_station_done_count(b) >= 1);
    assert_true(fx->rec.ns2n >= 1);
    assert_string_equal(fx->rec.s2n[0].sid, "b");
    assert_int_equal(fx->rec.s2n[0].seq, 1);
    assert_memory_equal(fx->rec.s2n[0].d, "\xa4pool", 5);
    assert_true(fx->rec.nasync >= 1); /* handed over through `async` */
    /* Cancelling a blocking iteration waits for it to return. */
    tw_taskloop_control(fx->tl, b, TW_CTL_CANCEL);
    t0 = tw_now_ms();
    while (fx->rec.nleft < 1 && tw_now_ms() - t0 < TW_FB_PATIENCE_MS) {
        s_realtime(fx, 5);
    }
    assert_int_equal(fx->rec.nleft, 1);
}

/* ======================================================================
 * Protocol fixture: a fake broker (ROUTER) and a real worker
 * ====================================================================== */

/* The fixture of tests/unit/support/fake_broker.h, with the built-in and
 * station built-in handlers; HEARTBEATs are not messages here. */
static int
s_px_setup(void **state)
{
    tw_fb_setup(state);
    tw_fb_t *px = *state;
    px->skip_heartbeats = 1;
    assert_int_equal(tw_handlers_add_station_builtins(&px->reg), 0);
    return 0;
}

/* Start worker "st" with `slots` slots and shake hands (heartbeat 1 s). */
static void
s_px_up(tw_fb_t *px, unsigned slots, uint64_t drain_ms)
{
    tw_fb_start_worker(px, "st", slots, NULL, drain_ms);
    tw_fb_handshake(px, slots, 1000);
}

/* ASSIGN one station. `ck` may be NULL; `ps` starts it paused. */
static void
s_px_assign(tw_fb_t *px, const char *sid, uint64_t ep, const char *h,
            const void *a, size_t alen, uint64_t nx, uint64_t iv,
            const void *ck, size_t cklen, int ps)
{
    tw_enc_t e;
    tw_fb_enc_items(&e, 1);
    tw_enc_map(&e, 6 + (ck != NULL) + (ps != 0));
    tw_enc_ikey(&e, TW_I_SID);
    tw_enc_cstr(&e, sid);
    tw_enc_ikey(&e, TW_I_EP);
    tw_enc_uint(&e, ep);
    tw_enc_ikey(&e, TW_I_H);
    tw_enc_cstr(&e, h);
    tw_enc_ikey(&e, TW_I_A);
    tw_enc_bin(&e, a, alen);
    tw_enc_ikey(&e, TW_I_NX);
    tw_enc_uint(&e, nx);
    tw_enc_ikey(&e, TW_I_IV);
    tw_enc_uint(&e, iv);
    if (ck) {
        tw_enc_ikey(&e, TW_I_CK);
        tw_enc_bin(&e, ck, cklen);
    }
    if (ps) {
        tw_enc_ikey(&e, TW_I_PS);
        tw_enc_uint(&e, 1);
    }
    tw_fb_send(px, &e, TW_CMD_ASSIGN);
}

/* CONTROL (ev given) or RELEASE (ev NULL) for one station. */
static void
s_px_control(tw_fb_t *px, const char *sid, uint64_t ep, const char *ev)
{
    tw_enc_t e;
    tw_fb_enc_items(&e, 1);
    tw_enc_map(&e, ev ? 3 : 2);
    tw_enc_ikey(&e, TW_I_SID);
    tw_enc_cstr(&e, sid);
    tw_enc_ikey(&e, TW_I_EP);
    tw_enc_uint(&e, ep);
    if (ev) {
        tw_enc_ikey(&e, TW_I_EV);
        tw_enc_cstr(&e, ev);
    }
    tw_fb_send(px, &e, ev ? TW_CMD_CONTROL : TW_CMD_RELEASE);
}

/* N2S with `n` messages seq0.. carrying the ints d0.. */
static void
s_px_n2s(tw_fb_t *px, const char *sid, uint64_t ep, uint64_t seq0, int n,
         unsigned char d0)
{
    tw_enc_t e;
    tw_fb_enc_items(&e, (size_t)n);
    for (int i = 0; i < n; i++) {
        unsigned char d = (unsigned char)(d0 + i);
        tw_enc_map(&e, 4);
        tw_enc_ikey(&e, TW_I_SID);
        tw_enc_cstr(&e, sid);
        tw_enc_ikey(&e, TW_I_EP);
        tw_enc_uint(&e, ep);
        tw_enc_ikey(&e, TW_I_SEQ);
        tw_enc_uint(&e, seq0 + (uint64_t)i);
        tw_enc_ikey(&e, TW_I_D);
        tw_enc_bin(&e, &d, 1);
    }
    tw_fb_send(px, &e, TW_CMD_N2S);
}

/* Item `i` of the STATION message in px->m has this sid, ev and ep. */
static const tw_item_t *
s_px_item(tw_fb_t *px, size_t i, const char *sid, const char *ev,
          uint64_t ep)
{
    assert_int_equal(px->m.cmd, TW_CMD_STATION);
    assert_true(i < px->m.nitems);
    const tw_item_t *it = &px->m.items[i];
    size_t len;
    const char *s = tw_item_str(it, TW_I_SID, &len);
    assert_int_equal(len, strlen(sid));
    assert_memory_equal(s, sid, len);
    s = tw_item_str(it, TW_I_EV, &len);
    assert_non_null(s);
    if (len != strlen(ev) || memcmp(s, ev, len) != 0) {
        fail_msg("event '%.*s', expected '%s'", (int)len, s, ev);
    }
    assert_int_equal(tw_item_uint(it, TW_I_EP, 0), ep);
    assert_non_null(it->f[TW_I_IT]);
    assert_non_null(it->f[TW_I_CK]);
    return it;
}

/* Wait for the next STATION item that is not a checkpoint report
 * ("iteration"), in this message or the next ones (S2N skipped): it must
 * be `ev` for `sid`. */
static const tw_item_t *
s_px_expect(tw_fb_t *px, const char *sid, const char *ev, uint64_t ep)
{
    uint64_t end = tw_now_ms() + 3000;
    while (tw_now_ms() < end) {
        if (px->m.cmd == TW_CMD_STATION) {
            while (px->cur < px->m.nitems) {
                size_t i = px->cur++;
                size_t len;
                const char *e = tw_item_str(&px->m.items[i], TW_I_EV, &len);
                if (len != 9 || memcmp(e, "iteration", 9) != 0) {
                    return s_px_item(px, i, sid, ev, ep);
                }
            }
        }
        int cmd = tw_fb_recv(px, TW_FB_PATIENCE_MS);
        assert_true(cmd == TW_CMD_STATION || cmd == TW_CMD_S2N);
    }
    fail_msg("no '%s' for %s", ev, sid);
    return NULL;
}

/* ASSIGN one station (no checkpoint, not paused) and wait for its
 * "running". */
static void
s_px_run(tw_fb_t *px, const char *sid, uint64_t ep, const char *h,
         const void *a, size_t alen, uint64_t nx, uint64_t iv)
{
    s_px_assign(px, sid, ep, h, a, alen, nx, iv, NULL, 0, 0);
    s_px_expect(px, sid, "running", ep);
}

/* For `ms`, expect no message but checkpoint reports. */
static void
s_px_quiet(tw_fb_t *px, int ms)
{
    uint64_t end = tw_now_ms() + (uint64_t)ms;
    while (tw_now_ms() < end) {
        int cmd = tw_fb_recv(px, (int)(end - tw_now_ms()) + 1);
        if (cmd == 0) {
            return;
        }
        assert_int_equal(cmd, TW_CMD_STATION);
        for (size_t i = 0; i < px->m.nitems; i++) {
            size_t len;
            const char *e = tw_item_str(&px->m.items[i], TW_I_EV, &len);
            assert_true(len == 9 && !memcmp(e, "iteration", 9));
        }
    }
}

/* Protocol tests ----------------------------------------------------------- */

/* ASSIGN -> "running" with ep, it and ck; checkpoints come as coalesced
 * "iteration" items at most every 100 ms, one per station. */
static void
test_proto_assign_and_checkpoints(void **state)
{
    tw_fb_t *px = *state;
    s_px_up(px, 4, 1000);
    s_px_assign(px, "a", 5, "incr", "\x00", 1, 1, 5, NULL, 0, 0);
    s_px_assign(px, "b", 6, "incr", "\x00", 1, 1, 5, "\x0a", 1, 0);
    int running = 0, reports = 0;
    uint64_t last_a = 0;
    /* Until both started and a checkpointed 20 iterations (about one per
     * 5 ms) in at least three reports; the worker's loop turns only in
     * tw_fb_recv, from now on. */
    uint64_t t0 = tw_now_ms();
    while (running < 2 || reports < 3 || last_a < 20) {
        int cmd = tw_fb_recv(px, TW_FB_PATIENCE_MS);
        assert_int_equal(cmd, TW_CMD_STATION);
        assert_null(px->m.f[TW_F_CREDIT]); /* a station takes a slot */
        int seen[2] = {0, 0};
        int iters = 0;
        for (size_t i = 0; i < px->m.nitems; i++) {
            size_t len;
            const char *sid = tw_item_str(&px->m.items[i], TW_I_SID, &len);
            int b = sid[0] == 'b';
            const char *ev = tw_item_str(&px->m.items[i], TW_I_EV, &len);
            const tw_item_t *it;
            if (len == 7) {
                it = s_px_item(px, i, b ? "b" : "a", "running", b ? 6 : 5);
                assert_int_equal(tw_item_uint(it, TW_I_IT, 9), 0);
                const unsigned char *ck = tw_item_bin(it, TW_I_CK, &len);
                assert_int_equal(len, 1);
                assert_int_equal(ck[0], b ? 10 : 0); /* ck wins over a */
                running++;
                continue;
            }
            (void)ev;
            it = s_px_item(px, i, b ? "b" : "a", "iteration", b ? 6 : 5);
            assert_false(seen[b]); /* one item per station */
            seen[b] = 1;
            iters++;
            uint64_t n = tw_item_uint(it, TW_I_IT, 0);
            const void *ck = tw_item_bin(it, TW_I_CK, &len);
            assert_int_equal(s_uint(ck, len), b ? n + 10 : n);
            if (!b) {
                assert_true(n > last_a);
                last_a = n;
            }
        }
        if (iters) {
            reports++;
        }
    }
    assert_int_equal(running, 2);
    /* Checkpoints are reported at most every 100 ms: however slow the
     * run, no more reports than that (the first one is immediate). */
    uint64_t took = tw_now_ms() - t0;
    assert_true((uint64_t)reports <= took / 100 + 2);
}

/* CONTROL pause / continue / stop reach the station and come back as
 * state reports; the end returns the slot's credit (S13-S17). */
static void
test_proto_control_and_credit(void **state)
{
    tw_fb_t *px = *state;
    s_px_up(px, 2, 1000);
    s_px_run(px, "t", 1, "ticker", "\xc0", 1, 0, 20);
    s_px_control(px, "t", 1, "pause");
    const tw_item_t *it = s_px_expect(px, "t", "paused", 1);
    uint64_t n = tw_item_uint(it, TW_I_IT, 0);
    /* Paused: no s2n, no iterations for a while. */
    assert_int_equal(tw_fb_recv(px, 150), 0);
    s_px_control(px, "t", 1, "continue");
    it = s_px_expect(px, "t", "running", 1);
    assert_int_equal(tw_item_uint(it, TW_I_IT, 0), n);
    s_px_control(px, "t", 1, "stop");
    it = s_px_expect(px, "t", "stopped", 1);
    assert_true(tw_item_uint(it, TW_I_IT, 0) >= n);
    assert_int_equal(tw_msg_uint(&px->m, TW_F_CREDIT, 0), 1);
    tw_worker_stats_t stats;
    tw_worker_stats(px->w, &stats);
    assert_int_equal(stats.stations, 0);
    /* cancel: "cancelled" with the credit too (S18). */
    s_px_run(px, "c", 2, "sleep", "\x1e", 1, 0, 0);
    s_px_control(px, "c", 2, "cancel");
    s_px_expect(px, "c", "cancelled", 2);
    assert_int_equal(tw_msg_uint(&px->m, TW_F_CREDIT, 0), 1);
}

/* Messages whose epoch is not the held station's are ignored and
 * counted; RELEASE with the right one returns the checkpoint. */
static void
test_proto_stale_epoch_and_release(void **state)
{
    tw_fb_t *px = *state;
    s_px_up(px, 2, 1000);
    s_px_run(px, "m", 4, "mirror", "\x07", 1, 0, 1000);
    s_px_control(px, "m", 3, "cancel");
    s_px_control(px, "m", 3, NULL);
    s_px_n2s(px, "m", 5, 1, 1, 0x01);
    s_px_control(px, "nobody", 4, "stop");
    s_px_assign(px, "m", 4, "mirror", "\x07", 1, 0, 1000, NULL, 0, 0);
    s_px_quiet(px, 200); /* nothing happened */
    tw_worker_stats_t stats;
    tw_worker_stats(px->w, &stats);
    assert_int_equal(stats.stale, 5);
    assert_int_equal(stats.stations, 1);
    s_px_control(px, "m", 4, NULL);
    const tw_item_t *it = s_px_expect(px, "m", "released", 4);
    size_t len;
    const unsigned char *ck = tw_item_bin(it, TW_I_CK, &len);
    assert_int_equal(len, 1);
    assert_int_equal(ck[0], 7);
    assert_int_equal(tw_item_uint(it, TW_I_IT, 0), 1);
    assert_int_equal(tw_msg_uint(&px->m, TW_F_CREDIT, 0), 1);
    /* A newer epoch of a held station replaces it silently. */
    s_px_run(px, "k", 1, "mirror", "\x01", 1, 0, 1000);
    s_px_run(px, "k", 2, "mirror", "\x02", 1, 0, 1000);
    assert_int_equal(tw_msg_uint(&px->m, TW_F_CREDIT, 0), 1);
}

/* N2S items reach mirror in order and come back as S2N with the
 * station's ep and seq numbers from 1. */
static void
test_proto_n2s_s2n(void **state)
{
    tw_fb_t *px = *state;
    s_px_up(px, 1, 1000);
    s_px_run(px, "m", 9, "mirror", "\xc0", 1, 0, 1000);
    s_px_n2s(px, "m", 9, 1, 5, 0x20);
    s_px_n2s(px, "m", 9, 6, 3, 0x25);
    uint64_t want = 1;
    while (want <= 8) {
        int cmd = tw_fb_recv(px, TW_FB_PATIENCE_MS);
        if (cmd == TW_CMD_STATION) {
            continue;
        }
        assert_int_equal(cmd, TW_CMD_S2N);
        for (size_t i = 0; i < px->m.nitems; i++, want++) {
            const tw_item_t *it = &px->m.items[i];
            assert_int_equal(tw_item_uint(it, TW_I_SEQ, 0), want);
            assert_int_equal(tw_item_uint(it, TW_I_EP, 0), 9);
            size_t len;
            const unsigned char *d = tw_item_bin(it, TW_I_D, &len);
            assert_int_equal(len, 1);
            assert_int_equal(d[0], 0x20 + want - 1);
        }
    }
}

/* Refused ASSIGN items are answered at once: a handler this worker does
 * not offer is "refused" (not "failed": the station is not at fault, and
 * the broker places it elsewhere, PROTOCOL.md 11.2), with the credit
 * back; no free slot is "failed" without credit (the broker overran). */
static void
test_proto_refusals(void **state)
{
    tw_fb_t *px = *state;
    s_px_up(px, 1, 1000);
    s_px_assign(px, "x", 1, "nope", "\xc0", 1, 0, 0, NULL, 0, 0);
    const tw_item_t *it = s_px_expect(px, "x", "refused", 1);
    size_t len;
    const char *err = tw_item_str(it, TW_I_ERR, &len);
    assert_non_null(memmem(err, len, "unknown handler", 15));
    assert_int_equal(tw_msg_uint(&px->m, TW_F_CREDIT, 0), 1);
    s_px_assign(px, "a", 1, "mirror", "\xc0", 1, 0, 1000, NULL, 0, 0);
    s_px_assign(px, "b", 1, "mirror", "\xc0", 1, 0, 1000, NULL, 0, 0);
    s_px_expect(px, "a", "running", 1);
    it = s_px_expect(px, "b", "failed", 1);
    err = tw_item_str(it, TW_I_ERR, &len);
    assert_non_null(memmem(err, len, "no free slot", 12));
    assert_null(px->m.f[TW_F_CREDIT]);
}

/* A graceful drain (SIGTERM) lets the running iteration finish, reports
 * the station released with its checkpoint, then says BYE (S29). */
static void
test_proto_drain_releases(void **state)
{
    tw_fb_t *px = *state;
    s_px_up(px, 2, 5000);
    /* 0.3 s per iteration. */
    s_px_assign(px, "s", 3, "sleep", "\xcb\x3f\xd3\x33\x33\x33\x33\x33\x33",
                9, 0, 0, NULL, 0, 0);
    s_px_assign(px, "p", 4, "incr", "\x00", 1, 1, 0, NULL, 0, 1);
    s_px_expect(px, "s", "running", 3);
    s_px_expect(px, "p", "paused", 4);
    tw_fb_spin(px, 50);
    uint64_t t0 = tw_now_ms();
    tw_worker_drain(px->w);
    const tw_item_t *it = s_px_expect(px, "p", "released", 4);
    (void)it;
    it = s_px_expect(px, "s", "released", 3);
    assert_int_equal(tw_item_uint(it, TW_I_IT, 0), 1); /* it finished */
    assert_true(tw_now_ms() - t0 >= 150);
    assert_null(px->m.f[TW_F_CREDIT]);
    tw_fb_expect_bye(px, 0);
}

/* A stream station's iteration lasts as long as its program, so a drain
 * must not wait for it: the station is released at once, the program is
 * asked to end (stdin closed, SIGTERM) and the worker says BYE well
 * within its drain timeout, exiting 0. */
static void
test_proto_drain_stream_now(void **state)
{
    tw_fb_t *px = *state;
    assert_int_equal(tw_handlers_add_stream(&px->reg, 1u << 20), 0);
    s_px_up(px, 2, 20000);
    s_px_assign(px, "c", 5, "stream", "\x91\xa3" "cat", 5, 1, 0, NULL, 0,
                0);
    s_px_expect(px, "c", "running", 5);
    tw_fb_spin(px, 100); /* cat is up */
    uint64_t t0 = tw_now_ms();
    tw_worker_drain(px->w);
    s_px_expect(px, "c", "released", 5);
    tw_fb_expect_bye(px, 0);
    /* Not the 20 s the drain may wait for busy slots. */
    assert_true(tw_now_ms() - t0 < 10000);
    assert_int_equal(px->exit_code, 0);
    assert_int_equal(px->stuck, 0);
}

/* A drain that times out still reports stations released, iterations
 * cancelled, before BYE. */
static void
test_proto_drain_timeout_releases(void **state)
{
    tw_fb_t *px = *state;
    s_px_up(px, 1, 100);
    s_px_run(px, "s", 3, "sleep", "\x1e", 1, 0, 0);
    tw_worker_drain(px->w);
    const tw_item_t *it = s_px_expect(px, "s", "released", 3);
    assert_int_equal(tw_item_uint(it, TW_I_IT, 0), 0);
    tw_fb_expect_bye(px, 0);
}

/* ERROR EWORKER: the broker forgot us, so stations are dropped silently
 * and the next READY offers every slot again. */
static void
test_proto_rehello_drops_stations(void **state)
{
    tw_fb_t *px = *state;
    s_px_up(px, 2, 1000);
    s_px_run(px, "a", 1, "ticker", "\xc0", 1, 0, 10);
    tw_fb_send_error(px, TW_EWORKER, "who?");
    int cmd;
    while ((cmd = tw_fb_recv(px, TW_FB_PATIENCE_MS)) == TW_CMD_S2N ||
           cmd == TW_CMD_STATION) {
        /* sent before the ERROR arrived */
    }
    assert_int_equal(cmd, TW_CMD_HELLO);
    tw_fb_spin(px, 50);
    tw_fb_send_welcome(px, 1000);
    assert_int_equal(tw_fb_recv(px, TW_FB_PATIENCE_MS), TW_CMD_READY);
    assert_int_equal(tw_msg_uint(&px->m, TW_F_CREDIT, 0), 2);
    assert_int_equal(tw_fb_recv(px, 200), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, s_setup, s_teardown)
        T(test_s3_next_same),
        T(test_s4_next_result),
        T(test_s5_next_handler),
        T(test_s19_stop_key),
        T(test_s20_exception_key),
        T(test_s23_handler_error_fails),
        T(test_s6_timeout),
        T(test_s13_s16_pause_continue),
        T(test_start_paused),
        T(test_s17_stop_finishes_iteration),
        T(test_s18_cancel_now),
        T(test_drain_open_ended_now),
        T(test_stop_open_ended_now),
        T(test_open_ended_idle_timeout),
        T(test_kill_all_after_stop),
        T(test_interval_spacing),
        T(test_s22_interleave),
        T(test_dirty_coalesced),
        T(test_n2s_in_order),
        T(test_s2n_seq),
        T(test_release_returns_checkpoint),
        T(test_self_stop),
        T(test_abi_checks),
        T(test_s22_blocking_does_not_delay),
#undef T
#define P(f) cmocka_unit_test_setup_teardown(f, s_px_setup, tw_fb_teardown)
        P(test_proto_assign_and_checkpoints),
        P(test_proto_control_and_credit),
        P(test_proto_stale_epoch_and_release),
        P(test_proto_n2s_s2n),
        P(test_proto_refusals),
        P(test_proto_drain_releases),
        P(test_proto_drain_timeout_releases),
        P(test_proto_drain_stream_now),
        P(test_proto_rehello_drops_stations),
#undef P
    };
    return cmocka_run_group_tests(tests, tw_suite_setup, NULL);
}
