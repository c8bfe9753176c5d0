/*  tests/unit/test_worker_stream.c - the "stream" handler, as a station
 *  in the taskloop engine and as a plain task.
 *
 *  The engine runs on a real libuv loop here (children are real
 *  processes started by /bin/sh): s_until() turns the loop and the engine
 *  until a condition holds or a deadline passes, and
 *  tests/unit/support/taskloop_rec.h records what the engine reports.
 *  Teardown drops every
 *  station, waits for the children to be reaped and fails if a handle was
 *  left open. Comments cite seed-semantics.md (F1, F2 on S31).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/util.h"
#include "proto/proto.h"
#include "tests/unit/support/suite.h"
#include "tests/unit/support/taskloop_rec.h"
#include "worker/handlers.h"
#include "worker/taskloop.h"

#include <msgpack.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* How long a test waits for what must come: children under valgrind on a
 * busy machine start slowly. */
#define S_PATIENCE_MS 30000

typedef struct {
    uv_loop_t loop;
    tw_handlers_t reg;
    tw_taskloop_t *tl;
    tw_tlrec_t rec; /* what the engine reported */
    tw_call_t call; /* for plain tasks */
    int done;
    int st;
    unsigned char r[4096];
    size_t rlen;
    char err[512];
} s_fx_t;

static void
s_call_done(tw_call_t *call, int st, const void *r, size_t rlen,
            const char *err)
{
    s_fx_t *fx = call->owner;
    fx->done++;
    fx->st = st;
    assert_true(rlen <= sizeof fx->r);
    if (r) {
        memcpy(fx->r, r, rlen);
    }
    fx->rlen = rlen;
    snprintf(fx->err, sizeof fx->err, "%s", err ? err : "");
}

static int
s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    tw_handlers_init(&fx->reg);
    assert_int_equal(tw_handlers_add_stream(&fx->reg, 64), 0);
    fx->tl = tw_taskloop_new(&fx->loop, &tw_tlrec_cbs, &fx->rec);
    tw_call_init(&fx->call, &fx->loop, s_call_done, fx);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fx_t *fx = *state;
    tw_taskloop_drop_all(fx->tl);
    uv_run(&fx->loop, UV_RUN_DEFAULT); /* children reaped, pipes closed */
    tw_taskloop_run(fx->tl, UINT64_MAX / 2);
    tw_taskloop_destroy(&fx->tl);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    tw_call_free(&fx->call);
    tw_handlers_free(&fx->reg);
    free(fx);
    return 0;
}

/* msgpack for ["sh", "-c", script]. */
static size_t
s_sh(char *buf, size_t cap, const char *script)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "sh", 2);
    msgpack_pack_str_with_body(&pk, "-c", 2);
    msgpack_pack_str_with_body(&pk, script, strlen(script));
    assert_true(sb.size <= cap);
    memcpy(buf, sb.data, sb.size);
    size_t n = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return n;
}

static tw_station_t *
s_add_to(s_fx_t *fx, const char *sid, const char *script, uint64_t iv,
         int paused, uint64_t to)
{
    char a[1024];
    size_t alen = s_sh(a, sizeof a, script);
    tw_station_def_t def = {
        .sid = sid,
        .sidlen = strlen(sid),
        .ep = 1,
        .h = tw_handlers_find(&fx->reg, "stream", 6),
        .input = a,
        .ilen = alen,
        .next = TW_NEXT_RESULT, /* the broker's default */
        .interval_ms = iv,
        .timeout_ms = to,
        .paused = paused,
    };
    tw_station_t *st;
    assert_int_equal(tw_taskloop_add(fx->tl, &def, &st), 0);
    return st;
}

static tw_station_t *
s_add(s_fx_t *fx, const char *sid, const char *script, uint64_t iv,
      int paused)
{
    return s_add_to(fx, sid, script, iv, paused, 0);
}

/* Turn the loop and the engine until *flag >= want or `ms` pass. */
static void
s_until(s_fx_t *fx, const int *flag, int want, int ms)
{
    tw_tlrec_drive(&fx->loop, fx->tl, flag, want, ms);
}

static void
s_spin(s_fx_t *fx, int ms)
{
    tw_tlrec_drive(&fx->loop, fx->tl, NULL, 0, ms);
}

/* s2n message i is the msgpack STR (or BIN if `bin`) holding `s`. */
static void
s_assert_line(const s_fx_t *fx, int i, const char *s, int bin)
{
    assert_true(i < fx->rec.ns2n);
    const tw_tlrec_s2n_t *m = &fx->rec.s2n[i];
    assert_int_equal(m->seq, (uint64_t)i + 1);
    msgpack_unpacked up;
    tw_tlrec_unpack(m->d, m->len, &up);
    assert_int_equal(up.data.type,
                     bin ? MSGPACK_OBJECT_BIN : MSGPACK_OBJECT_STR);
    assert_int_equal(up.data.via.str.size, strlen(s));
    assert_memory_equal(up.data.via.str.ptr, s, strlen(s));
    msgpack_unpacked_destroy(&up);
}

static int
s_count_ev(const s_fx_t *fx, int ev)
{
    int n = 0;
    for (int i = 0; i < fx->rec.nev; i++) {
        n += fx->rec.ev[i].ev == ev;
    }
    return n;
}

/* Tests ------------------------------------------------------------------- */

/* Each stdout line is one s2n message, without its newline: STR when it
 * is UTF-8, BIN when not; a last line without a newline counts too. The
 * child's exit 0 ends the iteration with nil, and the station goes on. */
static void
test_stdout_lines_become_s2n(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "s",
                             "printf 'one\\ntwo\\n\\377x\\n\\nlast'", 100000,
                             0);
    s_until(fx, &fx->rec.ns2n, 5, S_PATIENCE_MS);
    assert_int_equal(fx->rec.ns2n, 5);
    s_assert_line(fx, 0, "one", 0);
    s_assert_line(fx, 1, "two", 0);
    s_assert_line(fx, 2, "\377x", 1);
    s_assert_line(fx, 3, "", 0);
    s_assert_line(fx, 4, "last", 0);
    for (int i = 0; i < 300 && tw_station_done_count(st) < 1; i++) {
        s_spin(fx, 10);
    }
    assert_int_equal(tw_station_done_count(st), 1);
    assert_int_equal(s_count_ev(fx, TW_SEV_FAILED), 0);
    assert_int_equal(fx->rec.nleft, 0);
}

/* n2s messages that are strings (or bytes) reach the child's stdin, one
 * line each; others are dropped. The child's exit ends the iteration. */
static void
test_n2s_lines_reach_stdin(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(
        fx, "n",
        "while read l; do echo \"got:$l\"; "
        "if [ \"$l\" = quit ]; then exit 0; fi; done; exit 1",
        100000, 0);
    tw_taskloop_run(fx->tl, uv_now(&fx->loop)); /* the child starts */
    assert_int_equal(tw_taskloop_n2s(fx->tl, st, 1, "\xa5hello", 6), 0);
    assert_int_equal(tw_taskloop_n2s(fx->tl, st, 2, "\x2a", 1), 0);
    assert_int_equal(tw_taskloop_n2s(fx->tl, st, 3, "\xc4\x03" "bin", 5), 0);
    s_until(fx, &fx->rec.ns2n, 2, S_PATIENCE_MS);
    assert_int_equal(fx->rec.ns2n, 2);
    s_assert_line(fx, 0, "got:hello", 0);
    s_assert_line(fx, 1, "got:bin", 0);
    assert_int_equal(tw_station_done_count(st), 0);
    tw_taskloop_n2s(fx->tl, st, 4, "\xa4quit", 5);
    s_until(fx, &fx->rec.ns2n, 3, S_PATIENCE_MS);
    s_assert_line(fx, 2, "got:quit", 0);
    for (int i = 0; i < 300 && tw_station_done_count(st) < 1; i++) {
        s_spin(fx, 10);
    }
    assert_int_equal(tw_station_done_count(st), 1);
    assert_int_equal(s_count_ev(fx, TW_SEV_FAILED), 0);
}

/* n2s messages that arrive while no child runs (here: paused) wait for
 * the next child (F2 on S31). */
static void
test_n2s_waits_for_child(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "q", "read a; read b; echo \"$a+$b\"",
                             100000, 1);
    tw_taskloop_n2s(fx->tl, st, 1, "\xa1" "a", 2);
    tw_taskloop_n2s(fx->tl, st, 2, "\xa1" "b", 2);
    s_spin(fx, 50);
    assert_int_equal(fx->rec.ns2n, 0);
    tw_taskloop_control(fx->tl, st, TW_CTL_CONTINUE);
    s_until(fx, &fx->rec.ns2n, 1, S_PATIENCE_MS);
    s_assert_line(fx, 0, "a+b", 0);
}

/* A non-zero exit ends the iteration with an error, so the station
 * fails (S23) with the tail of stderr. */
static void
test_exit_nonzero_fails(void **state)
{
    s_fx_t *fx = *state;
    s_add(fx, "f", "echo out; echo oops >&2; exit 3", 0, 0);
    s_until(fx, &fx->rec.nleft, 1, S_PATIENCE_MS);
    assert_int_equal(fx->rec.nleft, 1);
    assert_int_equal(s_count_ev(fx, TW_SEV_FAILED), 1);
    const tw_tlrec_ev_t *e = &fx->rec.ev[fx->rec.nev - 1];
    assert_int_equal(e->ev, TW_SEV_FAILED);
    assert_string_equal(e->err, "exit status 3: oops");
    s_assert_line(fx, 0, "out", 0);
    /* Killed by a signal: an error too. */
    s_add(fx, "k", "kill -9 $$", 0, 0);
    s_until(fx, &fx->rec.nleft, 2, S_PATIENCE_MS);
    assert_string_equal(fx->rec.ev[fx->rec.nev - 1].err, "killed by signal 9");
}

/* Each iteration starts the program again, spaced by the interval, also
 * in next mode "result": an exit 0 returns the iteration's arguments. */
static void
test_restarts_each_iteration(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "r", "echo tick", 30, 0);
    s_until(fx, &fx->rec.ns2n, 4, S_PATIENCE_MS);
    assert_true(fx->rec.ns2n >= 4);
    assert_true(tw_station_done_count(st) >= 3);
    for (int i = 0; i < 4; i++) {
        s_assert_line(fx, i, "tick", 0);
    }
}

/* cancel kills the child now (S18); the slot frees once it is reaped. */
static void
test_cancel_kills_child(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "c", "echo up; sleep 30", 0, 0);
    s_until(fx, &fx->rec.ns2n, 1, S_PATIENCE_MS);
    assert_int_equal(fx->rec.ns2n, 1);
    uint64_t t0 = tw_now_ms();
    tw_taskloop_control(fx->tl, st, TW_CTL_CANCEL);
    assert_int_equal(fx->rec.ev[fx->rec.nev - 1].ev, TW_SEV_CANCELLED);
    s_until(fx, &fx->rec.nleft, 1, S_PATIENCE_MS);
    assert_int_equal(fx->rec.nleft, 1);
    assert_true(tw_now_ms() - t0 < 15000); /* not the 30 s sleep */
}

/* A drain (a graceful release) does not wait for the program to exit:
 * the station is released at once and the child is asked to end, stdin
 * closed and SIGTERM; `cat` is gone well within the grace. */
static void
test_drain_releases_now(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "d", "echo up; exec cat", 0, 0);
    s_until(fx, &fx->rec.ns2n, 1, S_PATIENCE_MS);
    assert_int_equal(fx->rec.ns2n, 1);
    assert_int_equal(tw_taskloop_release(fx->tl, st, 1), 0);
    assert_int_equal(fx->rec.ev[fx->rec.nev - 1].ev, TW_SEV_RELEASED);
    assert_null(tw_taskloop_find(fx->tl, "d", 1));
    s_until(fx, &fx->rec.nleft, 1, S_PATIENCE_MS);
    assert_int_equal(fx->rec.nleft, 1); /* cat left: SIGTERM or the grace */
    assert_int_equal(s_count_ev(fx, TW_SEV_FAILED), 0);
}

/* A program that ignores SIGTERM is killed after the grace. */
static void
test_stop_kills_after_grace(void **state)
{
    s_fx_t *fx = *state;
    tw_station_t *st = s_add(fx, "g",
                             "trap '' TERM; echo up; "
                             "while :; do sleep 0.05; done",
                             0, 0);
    s_until(fx, &fx->rec.ns2n, 1, S_PATIENCE_MS);
    assert_int_equal(fx->rec.ns2n, 1);
    uint64_t t0 = tw_now_ms();
    assert_int_equal(tw_taskloop_control(fx->tl, st, TW_CTL_STOP), 0);
    assert_int_equal(fx->rec.ev[fx->rec.nev - 1].ev, TW_SEV_STOPPED);
    s_until(fx, &fx->rec.nleft, 1, S_PATIENCE_MS);
    assert_int_equal(fx->rec.nleft, 1);
    /* Killed after the grace (500 ms), not before; that it was killed
     * at all is nleft above (the loop never ends by itself). */
    uint64_t took = tw_now_ms() - t0;
    assert_true(took >= 400);
}

/* A stream station's timeout is an idle timeout: a program that keeps
 * writing runs past it, and fails once it has been silent that long.
 * The program writes for 3.5 s with a 3 s timeout; the gaps between its
 * lines (0.7 s) leave room for a slow run to read each one in time. */
static void
test_timeout_is_idle(void **state)
{
    s_fx_t *fx = *state;
    s_add_to(fx, "i",
             "for i in 1 2 3 4 5 6; do echo $i; sleep 0.7; done; sleep 30",
             0, 0, 3000);
    uint64_t t0 = tw_now_ms();
    s_until(fx, &fx->rec.nleft, 1, 30000);
    assert_int_equal(fx->rec.nleft, 1);
    assert_int_equal(fx->rec.ns2n, 6); /* 3.5 s of output: not cut */
    assert_true(tw_now_ms() - t0 >= 3500 + 3000 - 100);
    const tw_tlrec_ev_t *e = &fx->rec.ev[fx->rec.nev - 1];
    assert_int_equal(e->ev, TW_SEV_FAILED);
    assert_string_equal(e->err, "idle timeout");
}

/* Bad arguments fail the first iteration. */
static void
test_bad_args(void **state)
{
    s_fx_t *fx = *state;
    tw_station_def_t def = {
        .sid = "b",
        .sidlen = 1,
        .h = tw_handlers_find(&fx->reg, "stream", 6),
        .input = "\x2a",
        .ilen = 1,
    };
    assert_int_equal(tw_taskloop_add(fx->tl, &def, NULL), 0);
    s_until(fx, &fx->rec.nleft, 1, S_PATIENCE_MS);
    assert_non_null(strstr(fx->rec.ev[fx->rec.nev - 1].err, "stream: args"));
    def.sid = "m";
    def.input = "\x91\xa9/no/such/";
    def.ilen = 11;
    assert_int_equal(tw_taskloop_add(fx->tl, &def, NULL), 0);
    s_until(fx, &fx->rec.nleft, 2, S_PATIENCE_MS);
    assert_non_null(strstr(fx->rec.ev[fx->rec.nev - 1].err, "cannot run"));
}

/* As a plain task, stream runs the program once and returns the array of
 * its stdout lines; past the output cap it fails. */
static void
test_plain_task(void **state)
{
    s_fx_t *fx = *state;
    const tw_handler_t *h = tw_handlers_find(&fx->reg, "stream", 6);
    char a[256];
    size_t alen = s_sh(a, sizeof a, "printf 'a\\nbc\\n'; echo err >&2");
    assert_int_equal(tw_call_start(&fx->call, h, 1, a, alen), 0);
    s_until(fx, &fx->done, 1, S_PATIENCE_MS);
    assert_int_equal(fx->st, TW_ST_OK);
    static const unsigned char want[] = {0xdd, 0, 0, 0, 2,  0xa1,
                                         'a',  0xa2, 'b', 'c'};
    assert_int_equal(fx->rlen, sizeof want);
    assert_memory_equal(fx->r, want, sizeof want);
    /* {"argv": [...]} and no output: an empty array. */
    static const char m[] = "\x81\xa4" "argv" "\x91\xa4true";
    assert_int_equal(tw_call_start(&fx->call, h, 2, m, sizeof m - 1), 0);
    s_until(fx, &fx->done, 2, S_PATIENCE_MS);
    assert_int_equal(fx->st, TW_ST_OK);
    assert_int_equal(fx->rlen, 5);
    assert_memory_equal(fx->r, "\xdd\0\0\0\0", 5);
    /* The cap is 64 bytes here. */
    alen = s_sh(a, sizeof a, "i=0; while [ $i -lt 50 ]; do echo line$i; "
                             "i=$((i+1)); done");
    assert_int_equal(tw_call_start(&fx->call, h, 3, a, alen), 0);
    s_until(fx, &fx->done, 3, S_PATIENCE_MS);
    assert_int_equal(fx->st, TW_ST_ERROR);
    assert_non_null(strstr(fx->err, "output exceeded"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, s_setup, s_teardown)
        T(test_stdout_lines_become_s2n),
        T(test_n2s_lines_reach_stdin),
        T(test_n2s_waits_for_child),
        T(test_exit_nonzero_fails),
        T(test_restarts_each_iteration),
        T(test_cancel_kills_child),
        T(test_drain_releases_now),
        T(test_stop_kills_after_grace),
        T(test_timeout_is_idle),
        T(test_bad_args),
        T(test_plain_task),
#undef T
    };
    return cmocka_run_group_tests(tests, tw_suite_setup, NULL);
}
