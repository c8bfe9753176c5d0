/*  tests/unit/test_worker_handlers.c - the handler registry, the call, the
 *  built-in, exec and plugin handlers, and the slot table's timeouts.
 *
 *  Each test runs on a real libuv loop with no broker: calls are started
 *  directly (tw_call_start) or through a slot table, and the loop turns
 *  until the outcome arrives or a deadline passes. Teardown closes the
 *  loop and fails if any handle was left open, so every handler must clean
 *  up after itself, cancelled or not. TW_EXAMPLE_PLUGIN is the path of
 *  examples/plugin's shared object, set by the build. test_documented
 *  holds docs/HANDLERS.md to the handlers a worker registers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/util.h"
#include "proto/proto.h"
#include "tests/unit/support/files.h"
#include "tests/unit/support/suite.h"
#include "worker/handlers.h"
#include "worker/plugin.h"
#include "worker/slots.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TW_EXAMPLE_PLUGIN
#error "define TW_EXAMPLE_PLUGIN as the path of tw_example_plugin.so"
#endif

/* Fixture ---------------------------------------------------------------- */

#define S_MAXOUT 8

/* One outcome as the test saw it. */
typedef struct {
    uint64_t id;
    int st;
    int has_r;
    char r[4096];
    size_t rlen;
    char err[2048];
    unsigned credit;
    uint64_t at_ms; /* since the fixture started */
} s_out_t;

typedef struct {
    uv_loop_t loop;
    uv_timer_t guard; /* wakes the loop so deadlines are checked */
    tw_handlers_t reg;
    tw_call_t call;
    tw_slots_t *slots;
    s_out_t out[S_MAXOUT];
    int nout;
    uint64_t t0;
    msgpack_sbuffer sb;
    msgpack_packer pk;
} s_fx_t;

static void
s_record(s_fx_t *fx, uint64_t id, int st, const void *r, size_t rlen,
         const char *err, unsigned credit)
{
    assert_true(fx->nout < S_MAXOUT);
    s_out_t *o = &fx->out[fx->nout++];
    memset(o, 0, sizeof *o);
    o->id = id;
    o->st = st;
    o->credit = credit;
    o->at_ms = tw_now_ms() - fx->t0;
    if (r) {
        assert_true(rlen <= sizeof o->r);
        memcpy(o->r, r, rlen);
        o->rlen = rlen;
        o->has_r = 1;
    }
    if (err) {
        snprintf(o->err, sizeof o->err, "%s", err);
    }
}

static void
s_call_done(tw_call_t *call, int st, const void *r, size_t rlen,
            const char *err)
{
    s_record(call->owner, call->id, st, r, rlen, err, 0);
}

static void
s_slot_outcome(void *udata, const tw_outcome_t *o)
{
    s_record(udata, o->id, o->st, o->r, o->rlen, o->err, o->credit);
}

static void
s_guard_cb(uv_timer_t *t)
{
    (void)t;
}

static int
s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->guard);
    uv_timer_start(&fx->guard, s_guard_cb, 20, 20);
    tw_handlers_init(&fx->reg);
    assert_int_equal(tw_handlers_add_builtin(&fx->reg), 0);
    assert_int_equal(tw_handlers_add_exec(&fx->reg, 1 << 20), 0);
    tw_call_init(&fx->call, &fx->loop, s_call_done, fx);
    msgpack_sbuffer_init(&fx->sb);
    msgpack_packer_init(&fx->pk, &fx->sb, msgpack_sbuffer_write);
    fx->t0 = tw_now_ms();
    *state = fx;
    return 0;
}

static void
s_slots_closed(void *udata)
{
    ((s_fx_t *)udata)->slots = NULL;
}

static int
s_teardown(void **state)
{
    s_fx_t *fx = *state;
    if (fx->slots) {
        assert_int_equal(tw_slots_close(fx->slots, s_slots_closed, fx), 0);
    }
    uv_close((uv_handle_t *)&fx->guard, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_null(fx->slots);
    /* Fails if a handler left a handle open. */
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    tw_call_free(&fx->call);
    tw_handlers_free(&fx->reg);
    msgpack_sbuffer_destroy(&fx->sb);
    free(fx);
    return 0;
}

/* Turn the loop until `n` outcomes arrived or `ms` passed. */
static void
s_wait(s_fx_t *fx, int n, uint64_t ms)
{
    uint64_t end = tw_now_ms() + ms;
    while (fx->nout < n && tw_now_ms() < end) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
}

/* Start the call on the args packed into fx->sb so far. */
static void
s_start(s_fx_t *fx, const char *handler)
{
    const tw_handler_t *h = tw_handlers_find(&fx->reg, handler,
                                             strlen(handler));
    assert_non_null(h);
    assert_int_equal(tw_call_start(&fx->call, h, 42, fx->sb.data,
                                   fx->sb.size), 0);
    msgpack_sbuffer_clear(&fx->sb);
}

static void
s_pack_str(s_fx_t *fx, const char *s)
{
    msgpack_pack_str(&fx->pk, strlen(s));
    msgpack_pack_str_body(&fx->pk, s, strlen(s));
}

static void
s_pack_argv(s_fx_t *fx, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    msgpack_pack_array(&fx->pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        s_pack_str(fx, va_arg(ap, const char *));
    }
    va_end(ap);
}

/* The only outcome is a success whose result is the msgpack string `s`. */
static void
s_assert_str_result(const s_out_t *o, const char *s)
{
    assert_int_equal(o->st, TW_ST_OK);
    assert_true(o->has_r);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&up, o->r, o->rlen, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, o->rlen);
    assert_int_equal(up.data.type, MSGPACK_OBJECT_STR);
    assert_int_equal(up.data.via.str.size, strlen(s));
    assert_memory_equal(up.data.via.str.ptr, s, strlen(s));
    msgpack_unpacked_destroy(&up);
}

/* Registry ---------------------------------------------------------------- */

static void
s_nop_run(tw_call_t *call, void *udata)
{
    (void)udata;
    tw_call_finish(call, NULL, 0);
}

static void
test_registry(void **state)
{
    s_fx_t *fx = *state;
    tw_handler_def_t def = {
        .name = "noop", .flags = TW_HANDLER_ASYNC, .run = s_nop_run};
    assert_int_equal(tw_handlers_add(&fx->reg, &def), TW_EEXIST);
    def.name = "";
    assert_int_equal(tw_handlers_add(&fx->reg, &def), TW_EINVAL);
    def.name = "x";
    def.flags = 7;
    assert_int_equal(tw_handlers_add(&fx->reg, &def), TW_EINVAL);
    def.flags = TW_HANDLER_ASYNC;
    def.run = NULL;
    assert_int_equal(tw_handlers_add(&fx->reg, &def), TW_EINVAL);
    char longname[130];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    def.name = longname;
    def.run = s_nop_run;
    assert_int_equal(tw_handlers_add(&fx->reg, &def), TW_EINVAL);
    assert_non_null(tw_handlers_find(&fx->reg, "exec", 4));
    assert_null(tw_handlers_find(&fx->reg, "exe", 3));
    assert_null(tw_handlers_find(&fx->reg, "nope", 4));
}

/* Built-ins --------------------------------------------------------------- */

static void
test_noop(void **state)
{
    s_fx_t *fx = *state;
    msgpack_pack_nil(&fx->pk);
    s_start(fx, "noop");
    /* Async handlers that finish at once deliver before start returns. */
    assert_int_equal(fx->nout, 1);
    assert_int_equal(fx->out[0].id, 42);
    assert_int_equal(fx->out[0].st, TW_ST_OK);
    assert_false(fx->out[0].has_r); /* nil */
}

static void
test_echo(void **state)
{
    s_fx_t *fx = *state;
    msgpack_pack_map(&fx->pk, 1);
    s_pack_str(fx, "k");
    msgpack_pack_array(&fx->pk, 3);
    msgpack_pack_int(&fx->pk, -1);
    msgpack_pack_double(&fx->pk, 2.5);
    s_pack_str(fx, "v");
    char want[64];
    size_t wlen = fx->sb.size;
    memcpy(want, fx->sb.data, wlen);
    s_start(fx, "echo");
    assert_int_equal(fx->nout, 1);
    assert_int_equal(fx->out[0].st, TW_ST_OK);
    assert_int_equal(fx->out[0].rlen, wlen);
    assert_memory_equal(fx->out[0].r, want, wlen);
}

static void
test_fail(void **state)
{
    s_fx_t *fx = *state;
    s_pack_str(fx, "it broke");
    s_start(fx, "fail");
    assert_int_equal(fx->nout, 1);
    assert_int_equal(fx->out[0].st, TW_ST_ERROR);
    assert_string_equal(fx->out[0].err, "it broke");

    msgpack_pack_int(&fx->pk, 5);
    s_start(fx, "fail");
    assert_int_equal(fx->nout, 2);
    assert_int_equal(fx->out[1].st, TW_ST_ERROR);
    assert_string_equal(fx->out[1].err, "fail handler called");

    /* A message that is not UTF-8 is made so. */
    msgpack_pack_str(&fx->pk, 3);
    msgpack_pack_str_body(&fx->pk, "a\xff" "b", 3);
    s_start(fx, "fail");
    assert_string_equal(fx->out[2].err, "a?b");
}

static void
test_sleep(void **state)
{
    s_fx_t *fx = *state;
    msgpack_pack_double(&fx->pk, 0.1);
    s_start(fx, "sleep");
    assert_int_equal(fx->nout, 0);
    s_wait(fx, 1, 2000);
    assert_int_equal(fx->nout, 1);
    assert_int_equal(fx->out[0].st, TW_ST_OK);
    assert_false(fx->out[0].has_r);
    assert_true(fx->out[0].at_ms >= 90);

    /* [seconds] works too; an integer number of seconds. */
    msgpack_pack_array(&fx->pk, 1);
    msgpack_pack_uint8(&fx->pk, 0);
    s_start(fx, "sleep");
    s_wait(fx, 2, 2000);
    assert_int_equal(fx->out[1].st, TW_ST_OK);

    s_pack_str(fx, "soon");
    s_start(fx, "sleep");
    assert_int_equal(fx->nout, 3);
    assert_int_equal(fx->out[2].st, TW_ST_ERROR);
    assert_non_null(strstr(fx->out[2].err, "seconds"));

    msgpack_pack_int(&fx->pk, -2);
    s_start(fx, "sleep");
    assert_int_equal(fx->out[3].st, TW_ST_ERROR);
}

static void
test_sleep_cancel(void **state)
{
    s_fx_t *fx = *state;
    msgpack_pack_uint8(&fx->pk, 30);
    s_start(fx, "sleep");
    s_wait(fx, 1, 50);
    assert_int_equal(fx->nout, 0);
    tw_call_cancel(&fx->call);
    assert_int_equal(fx->nout, 1); /* sleep stops at once */
    assert_int_equal(fx->out[0].st, TW_ST_ERROR);
    assert_true(tw_call_cancelled(&fx->call));
    tw_call_cancel(&fx->call); /* not running: nothing happens */
    assert_int_equal(fx->nout, 1);
}

/* Exactly once ------------------------------------------------------------ */

static int s_second_rc;

static void
s_twice_run(tw_call_t *call, void *udata)
{
    (void)udata;
    assert_int_equal(tw_call_finish(call, NULL, 0), 0);
    /* The handle is invalid now, but the struct is the fixture's and not
     * reused yet: a second finish must lose. */
    s_second_rc = tw_call_fail(call, "again");
}

static void
s_lazy_run(tw_call_t *call, void *udata)
{
    (void)call;
    (void)udata; /* blocking, returns without finishing */
}

static void
s_blocking_ok_run(tw_call_t *call, void *udata)
{
    (void)udata;
    static const char three = 3;
    tw_call_finish(call, &three, 1);
    s_second_rc = tw_call_finish(call, &three, 1);
}

static void
test_exactly_once(void **state)
{
    s_fx_t *fx = *state;
    tw_handler_def_t defs[] = {
        {.name = "twice", .flags = TW_HANDLER_ASYNC, .run = s_twice_run},
        {.name = "lazy", .flags = TW_HANDLER_BLOCKING, .run = s_lazy_run},
        {.name = "bok",
         .flags = TW_HANDLER_BLOCKING,
         .run = s_blocking_ok_run},
    };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tw_handlers_add(&fx->reg, &defs[i]), 0);
    }
    msgpack_pack_nil(&fx->pk);
    s_start(fx, "twice");
    assert_int_equal(s_second_rc, -EALREADY);
    assert_int_equal(fx->nout, 1);

    msgpack_pack_nil(&fx->pk);
    s_start(fx, "lazy");
    s_wait(fx, 2, 2000);
    assert_int_equal(fx->nout, 2);
    assert_int_equal(fx->out[1].st, TW_ST_ERROR);
    assert_non_null(strstr(fx->out[1].err, "without finishing"));

    s_second_rc = 0;
    msgpack_pack_nil(&fx->pk);
    s_start(fx, "bok");
    s_wait(fx, 3, 2000);
    assert_int_equal(fx->nout, 3);
    assert_int_equal(s_second_rc, -EALREADY);
    assert_int_equal(fx->out[2].st, TW_ST_OK);
    assert_int_equal(fx->out[2].rlen, 1);
    assert_int_equal(fx->out[2].r[0], 3);
}

/* exec -------------------------------------------------------------------- */

static void
test_exec_echo(void **state)
{
    s_fx_t *fx = *state;
    s_pack_argv(fx, 2, "/bin/echo", "hi");
    s_start(fx, "exec");
    s_wait(fx, 1, 5000);
    assert_int_equal(fx->nout, 1);
    s_assert_str_result(&fx->out[0], "hi\n");
}

static void
test_exec_stdin_map(void **state)
{
    s_fx_t *fx = *state;
    msgpack_pack_map(&fx->pk, 2);
    s_pack_str(fx, "argv");
    s_pack_argv(fx, 1, "cat");
    s_pack_str(fx, "stdin");
    s_pack_str(fx, "from stdin");
    s_start(fx, "exec");
    s_wait(fx, 1, 5000);
    assert_int_equal(fx->nout, 1);
    s_assert_str_result(&fx->out[0], "from stdin");
}

static void
test_exec_binary(void **state)
{
    s_fx_t *fx = *state;
    s_pack_argv(fx, 2, "printf", "\\377x");
    s_start(fx, "exec");
    s_wait(fx, 1, 5000);
    assert_int_equal(fx->nout, 1);
    assert_int_equal(fx->out[0].st, TW_ST_OK);
    /* Not UTF-8, so BIN: c4 02 ff 'x'. */
    assert_int_equal(fx->out[0].rlen, 4);
    assert_memory_equal(fx->out[0].r, "\xc4\x02\xffx", 4);
}

static void
test_exec_exit_status(void **state)
{
    s_fx_t *fx = *state;
    s_pack_argv(fx, 3, "sh", "-c", "echo oops >&2; exit 3");
    s_start(fx, "exec");
    s_wait(fx, 1, 5000);
    assert_int_equal(fx->nout, 1);
    assert_int_equal(fx->out[0].st, TW_ST_ERROR);
    assert_non_null(strstr(fx->out[0].err, "exit status 3"));
    assert_non_null(strstr(fx->out[0].err, "oops"));
}

static void
test_exec_stderr_tail(void **state)
{
    s_fx_t *fx = *state;
    /* 3000 bytes of 'a', then the end marker: only the last KiB stays. */
    s_pack_argv(fx, 3, "sh", "-c",
                "head -c 3000 /dev/zero | tr '\\0' a >&2; "
                "echo END >&2; exit 1");
    s_start(fx, "exec");
    s_wait(fx, 1, 5000);
    assert_int_equal(fx->out[0].st, TW_ST_ERROR);
    const char *e = fx->out[0].err;
    assert_non_null(strstr(e, "exit status 1: "));
    assert_non_null(strstr(e, "aaaEND"));
    assert_true(strlen(e) <= strlen("exit status 1: ") + 1024);
}

static void
test_exec_signal(void **state)
{
    s_fx_t *fx = *state;
    s_pack_argv(fx, 3, "sh", "-c", "kill -9 $$");
    s_start(fx, "exec");
    s_wait(fx, 1, 5000);
    assert_int_equal(fx->out[0].st, TW_ST_ERROR);
    assert_string_equal(fx->out[0].err, "killed by signal 9");
}

static void
test_exec_missing(void **state)
{
    s_fx_t *fx = *state;
    s_pack_argv(fx, 1, "no-such-program-tw");
    s_start(fx, "exec");
    s_wait(fx, 1, 5000);
    assert_int_equal(fx->nout, 1);
    assert_int_equal(fx->out[0].st, TW_ST_ERROR);
    assert_non_null(strstr(fx->out[0].err, "no-such-program-tw"));
    assert_non_null(strstr(fx->out[0].err, "no such file"));
}

static void
test_exec_bad_args(void **state)
{
    s_fx_t *fx = *state;
    msgpack_pack_int(&fx->pk, 1);
    s_start(fx, "exec");
    assert_int_equal(fx->out[0].st, TW_ST_ERROR);
    assert_non_null(strstr(fx->out[0].err, "argv"));
    msgpack_pack_array(&fx->pk, 0);
    s_start(fx, "exec");
    assert_int_equal(fx->out[1].st, TW_ST_ERROR);
}

static void
test_exec_cap(void **state)
{
    s_fx_t *fx = *state;
    tw_handlers_free(&fx->reg);
    tw_handlers_init(&fx->reg);
    assert_int_equal(tw_handlers_add_exec(&fx->reg, 8), 0);
    s_pack_argv(fx, 2, "echo", "0123456789");
    s_start(fx, "exec");
    s_wait(fx, 1, 5000);
    assert_int_equal(fx->out[0].st, TW_ST_ERROR);
    assert_non_null(strstr(fx->out[0].err, "exceeded 8 bytes"));
    /* Exactly at the cap is fine. */
    s_pack_argv(fx, 3, "printf", "%s", "12345678");
    s_start(fx, "exec");
    s_wait(fx, 2, 5000);
    s_assert_str_result(&fx->out[1], "12345678");
}

/* Slots: timeout and cancel ------------------------------------------------ */

static void
s_new_slots(s_fx_t *fx, unsigned n)
{
    fx->slots = tw_slots_new(&fx->loop, &fx->reg, n, s_slot_outcome, fx);
}

/* Start on a slot with the args packed so far. */
static int
s_slot_start(s_fx_t *fx, uint64_t id, const char *h, uint64_t to)
{
    int rc = tw_slots_start(fx->slots, id, h, strlen(h), fx->sb.data,
                            fx->sb.size, to, 1);
    msgpack_sbuffer_clear(&fx->sb);
    return rc;
}

static void
test_exec_timeout(void **state)
{
    s_fx_t *fx = *state;
    s_new_slots(fx, 2);
    s_pack_argv(fx, 2, "sleep", "5");
    assert_int_equal(s_slot_start(fx, 7, "exec", 200), 0);
    assert_int_equal(tw_slots_busy(fx->slots), 1);
    /* The timeout is reported at once, the slot's credit once the child
     * is gone. */
    s_wait(fx, 2, 3000);
    assert_int_equal(fx->nout, 2);
    assert_int_equal(fx->out[0].id, 7);
    assert_int_equal(fx->out[0].st, TW_ST_TIMEOUT);
    assert_int_equal(fx->out[0].credit, 0);
    assert_true(fx->out[0].at_ms >= 190 && fx->out[0].at_ms < 1500);
    assert_int_equal(fx->out[1].id, 0);
    assert_int_equal(fx->out[1].credit, 1);
    assert_true(fx->out[1].at_ms < 2000);
    assert_int_equal(tw_slots_busy(fx->slots), 0);
}

static void
test_slots_cancel_and_refusals(void **state)
{
    s_fx_t *fx = *state;
    s_new_slots(fx, 1);
    msgpack_pack_uint8(&fx->pk, 30);
    assert_int_equal(s_slot_start(fx, 1, "sleep", 0), 0);
    /* No free slot: refused without credit. */
    msgpack_pack_nil(&fx->pk);
    assert_int_equal(s_slot_start(fx, 2, "noop", 0), TW_EFULL);
    assert_int_equal(fx->out[0].id, 2);
    assert_int_equal(fx->out[0].st, TW_ST_ERROR);
    assert_int_equal(fx->out[0].credit, 0);
    /* Same id twice: credit back, the running one will report. */
    msgpack_pack_nil(&fx->pk);
    assert_int_equal(s_slot_start(fx, 1, "noop", 0), TW_EEXIST);
    assert_int_equal(fx->out[1].id, 0);
    assert_int_equal(fx->out[1].credit, 1);
    /* Unknown handler: an error with credit. */
    msgpack_pack_nil(&fx->pk);
    assert_int_equal(s_slot_start(fx, 3, "nope", 0), TW_EHANDLER);
    assert_int_equal(fx->out[2].st, TW_ST_ERROR);
    assert_string_equal(fx->out[2].err, "unknown handler 'nope'");
    assert_int_equal(fx->out[2].credit, 1);

    assert_int_equal(tw_slots_cancel(fx->slots, 99, TW_ST_CANCELLED),
                     TW_ENOENT);
    assert_int_equal(tw_slots_cancel(fx->slots, 1, TW_ST_CANCELLED), 0);
    assert_int_equal(fx->nout, 5);
    assert_int_equal(fx->out[3].id, 1);
    assert_int_equal(fx->out[3].st, TW_ST_CANCELLED);
    assert_int_equal(fx->out[3].credit, 0);
    assert_int_equal(fx->out[4].id, 0);
    assert_int_equal(fx->out[4].credit, 1);
    assert_int_equal(tw_slots_free_count(fx->slots), 1);

    /* The slot is reused; orphaning reports nothing but the credit. */
    msgpack_pack_uint8(&fx->pk, 30);
    assert_int_equal(s_slot_start(fx, 4, "sleep", 0), 0);
    assert_int_equal(tw_slots_close(fx->slots, NULL, NULL), TW_ESTATE);
    tw_slots_orphan_all(fx->slots);
    assert_int_equal(fx->nout, 6);
    assert_int_equal(fx->out[5].id, 0);
    assert_int_equal(fx->out[5].credit, 1);
}

/* A resize (WORKER op "resize") grows the table while tasks and stations
 * hold slots: the running ones stay where they are (their calls embed
 * libuv handles, which must not move), the new slots are free at once,
 * and every slot reports through the same callback. */
static void
test_slots_grow(void **state)
{
    s_fx_t *fx = *state;
    s_new_slots(fx, 2);
    msgpack_pack_uint8(&fx->pk, 30);
    assert_int_equal(s_slot_start(fx, 1, "sleep", 0), 0);
    int held = tw_slots_hold(fx->slots);
    assert_int_equal(held, 1);
    assert_int_equal(tw_slots_free_count(fx->slots), 0);
    assert_int_equal(tw_slots_grow(fx->slots, 1), 0); /* not larger */
    assert_int_equal(tw_slots_size(fx->slots), 2);
    assert_int_equal(tw_slots_grow(fx->slots, 70000), TW_EINVAL);
    assert_int_equal(tw_slots_grow(fx->slots, 5), 0);
    assert_int_equal(tw_slots_size(fx->slots), 5);
    assert_int_equal(tw_slots_free_count(fx->slots), 3);
    assert_int_equal(tw_slots_busy(fx->slots), 2);
    /* The lowest new index is used first. */
    assert_int_equal(tw_slots_hold(fx->slots), 2);
    for (uint64_t id = 2; id <= 3; id++) {
        msgpack_pack_uint8(&fx->pk, 30);
        assert_int_equal(s_slot_start(fx, id, "sleep", 0), 0);
    }
    msgpack_pack_nil(&fx->pk);
    assert_int_equal(s_slot_start(fx, 9, "noop", 0), TW_EFULL);
    assert_int_equal(tw_slots_busy(fx->slots), 5);
    /* A task on a new slot ends like any other. */
    assert_int_equal(tw_slots_cancel(fx->slots, 3, TW_ST_CANCELLED), 0);
    s_wait(fx, 3, 2000);
    assert_int_equal(fx->out[fx->nout - 1].credit, 1);
    assert_int_equal(tw_slots_free_count(fx->slots), 1);
    tw_slots_unhold(fx->slots, held);
    tw_slots_unhold(fx->slots, 2);
    tw_slots_orphan_all(fx->slots);
    s_wait(fx, 6, 2000);
    assert_int_equal(tw_slots_free_count(fx->slots), 5);
}

/* Plugins ----------------------------------------------------------------- */

static void
s_load_example(s_fx_t *fx)
{
    char err[512] = "";
    int rc = tw_plugin_load(&fx->reg, TW_EXAMPLE_PLUGIN, err, sizeof err);
    if (rc != 0) {
        fail_msg("%s", err);
    }
}

static void
test_plugin_sum_upper(void **state)
{
    s_fx_t *fx = *state;
    s_load_example(fx);
    msgpack_pack_array(&fx->pk, 3);
    msgpack_pack_int(&fx->pk, 1);
    msgpack_pack_int(&fx->pk, 2);
    msgpack_pack_int(&fx->pk, 39);
    s_start(fx, "example.sum");
    assert_int_equal(fx->nout, 1);
    assert_int_equal(fx->out[0].st, TW_ST_OK);
    assert_int_equal(fx->out[0].rlen, 1);
    assert_int_equal(fx->out[0].r[0], 42);

    msgpack_pack_array(&fx->pk, 2);
    msgpack_pack_int(&fx->pk, 1);
    s_pack_str(fx, "two");
    s_start(fx, "example.sum");
    assert_int_equal(fx->out[1].st, TW_ST_ERROR);
    assert_non_null(strstr(fx->out[1].err, "not a number"));

    s_pack_str(fx, "shout");
    s_start(fx, "example.upper");
    s_assert_str_result(&fx->out[2], "SHOUT");
}

static void
test_plugin_slow_cancel(void **state)
{
    s_fx_t *fx = *state;
    s_load_example(fx);
    s_new_slots(fx, 1);
    msgpack_pack_double(&fx->pk, 0.02);
    assert_int_equal(s_slot_start(fx, 1, "example.slow", 0), 0);
    s_wait(fx, 1, 3000);
    assert_int_equal(fx->out[0].id, 1);
    s_assert_str_result(&fx->out[0], "done");

    msgpack_pack_uint8(&fx->pk, 30);
    assert_int_equal(s_slot_start(fx, 2, "example.slow", 0), 0);
    s_wait(fx, 2, 100); /* let the pool start it */
    uint64_t t = tw_now_ms();
    assert_int_equal(tw_slots_cancel(fx->slots, 2, TW_ST_CANCELLED), 0);
    assert_int_equal(fx->out[1].id, 2);
    assert_int_equal(fx->out[1].st, TW_ST_CANCELLED);
    s_wait(fx, 3, 30000);
    assert_int_equal(fx->nout, 3);
    assert_int_equal(fx->out[2].credit, 1);
    assert_true(tw_now_ms() - t < 15000); /* not the 30 s run */
}

static void
test_plugin_errors(void **state)
{
    s_fx_t *fx = *state;
    char err[512] = "";
    size_t n = fx->reg.n;
    assert_int_equal(tw_plugin_load(&fx->reg, "/nonexistent/plugin.so", err,
                                    sizeof err),
                     TW_EIO);
    assert_non_null(strstr(err, "/nonexistent/plugin.so"));
    /* A shared object that is not a plugin. */
    assert_int_equal(tw_plugin_load(&fx->reg, "libm.so.6", err, sizeof err),
                     TW_ENOENT);
    assert_non_null(strstr(err, "tw_plugin_init"));
    assert_int_equal(fx->reg.n, n);
    /* Loading the same plugin twice: its names are taken, so it refuses
     * and takes back what it registered. */
    s_load_example(fx);
    n = fx->reg.n;
    assert_int_equal(tw_plugin_load(&fx->reg, TW_EXAMPLE_PLUGIN, err,
                                    sizeof err),
                     TW_EINVAL);
    assert_non_null(strstr(err, "refused"));
    assert_int_equal(fx->reg.n, n);
}

/* Handler definitions of other sizes (taskwheel/handler.h): older and
 * newer structs load, unknown fields that are set and impossible sizes are
 * refused, and the unsized entry point of older plugins still works. */
static void
test_plugin_abi(void **state)
{
    s_fx_t *fx = *state;
    char err[512] = "";
    size_t n = fx->reg.n;
    int rc = tw_plugin_load(&fx->reg, TW_ABI_PLUGIN, err, sizeof err);
    if (rc != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(fx->reg.n, n + 4);
    const char *loaded[] = {"abi.macro", "abi.old", "abi.v0", "abi.newer"};
    for (size_t i = 0; i < 4; i++) {
        const tw_handler_t *h =
            tw_handlers_find(&fx->reg, loaded[i], strlen(loaded[i]));
        assert_non_null(h);
        assert_non_null(h->run);
    }
    /* The smaller struct's missing fields read as zero, not as the
     * 0xff bytes that followed it in the plugin's memory. */
    const tw_handler_t *v0 = tw_handlers_find(&fx->reg, "abi.v0", 6);
    assert_null(v0->n2s);
    assert_null(v0->end);
    assert_null(tw_handlers_find(&fx->reg, "abi.unknown", 11));
    assert_null(tw_handlers_find(&fx->reg, "abi.tiny", 8));
    /* And the handler runs. */
    msgpack_pack_nil(&fx->pk);
    s_start(fx, "abi.v0");
    assert_int_equal(fx->nout, 1);
    assert_int_equal(fx->out[0].st, TW_ST_OK);
    assert_int_equal(fx->out[0].rlen, 3);
    assert_memory_equal(fx->out[0].r, "\xa2ok", 3);
}

/* docs/HANDLERS.md has a "## `name`" section and a table row for each
 * built-in a worker registers (tw_handlers_add_all, as worker/main.c
 * calls it), and none for a handler that does not exist. */
static void
test_documented(void **state)
{
    (void)state;
    char *doc = tw_suite_read_file(TW_SOURCE_DIR "/docs/HANDLERS.md", NULL);
    tw_handlers_t reg;
    tw_handlers_init(&reg);
    assert_int_equal(tw_handlers_add_all(&reg, 1 << 20), 0);
    assert_true(reg.n >= 10);
    char want[200];
    for (size_t i = 0; i < reg.n; i++) {
        snprintf(want, sizeof want, "\n## `%s`\n", reg.v[i].name);
        if (!strstr(doc, want)) {
            fail_msg("docs/HANDLERS.md has no section for '%s'",
                     reg.v[i].name);
        }
        snprintf(want, sizeof want, "\n| `%s` ", reg.v[i].name);
        if (!strstr(doc, want)) {
            fail_msg("docs/HANDLERS.md's table has no row for '%s'",
                     reg.v[i].name);
        }
    }
    size_t sections = 0;
    for (const char *p = doc; (p = strstr(p, "\n## `")) != NULL; p++) {
        const char *name = p + 5;
        const char *end = strchr(name, '`');
        assert_non_null(end);
        if (!tw_handlers_find(&reg, name, (size_t)(end - name))) {
            fail_msg("docs/HANDLERS.md documents '%.*s', which no worker "
                     "registers", (int)(end - name), name);
        }
        sections++;
    }
    assert_int_equal(sections, reg.n);
    tw_handlers_free(&reg);
    free(doc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, s_setup, s_teardown)
        T(test_registry),
        T(test_noop),
        T(test_echo),
        T(test_fail),
        T(test_sleep),
        T(test_sleep_cancel),
        T(test_exactly_once),
        T(test_exec_echo),
        T(test_exec_stdin_map),
        T(test_exec_binary),
        T(test_exec_exit_status),
        T(test_exec_stderr_tail),
        T(test_exec_signal),
        T(test_exec_missing),
        T(test_exec_bad_args),
        T(test_exec_cap),
        T(test_exec_timeout),
        T(test_slots_cancel_and_refusals),
        T(test_slots_grow),
        T(test_plugin_sum_upper),
        T(test_plugin_slow_cancel),
        T(test_plugin_errors),
        T(test_plugin_abi),
        cmocka_unit_test(test_documented),
#undef T
    };
    return cmocka_run_group_tests(tests, tw_suite_setup, NULL);
}
