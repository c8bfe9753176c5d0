/*  tests/integration/02-exec.c - the exec handler through the real cluster.
 *
 *  A program that succeeds returns its stdout; one that exits non-zero is
 *  an error carrying its exit status and the tail of its stderr; one that
 *  outlives the task's timeout is killed and reported as a timeout, well
 *  before it would have finished; a program that does not exist is an error
 *  that names it. Retries re-run a failing task and keep the last error.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <msgpack.h>

/* Submit exec with `argv` as a msgpack array of strings and wait for the
 * outcome; fills *out (caller frees). */
static void
s_run(tw_client_t *c, const char *const *argv, uint32_t timeout_ms,
      uint32_t retries, tw_result_t **out)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    size_t n = 0;
    while (argv[n]) {
        n++;
    }
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_str_with_body(&pk, argv[i], strlen(argv[i]));
    }
    tw_task_spec_t spec = {.handler = "exec",
                           .args = sb.data,
                           .args_len = sb.size,
                           .timeout_ms = timeout_ms,
                           .retries = retries};
    uint64_t seq;
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    msgpack_sbuffer_destroy(&sb);
    TW_H_ASSERT_OK(tw_client_wait_all(c, 20000));
    TW_H_ASSERT_OK(tw_h_last_result(c, seq, out));
}

static void
s_expect_str(const tw_result_t *r, const char *want)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    TW_H_ASSERT(msgpack_unpack_next(&up, r->result, r->result_len, NULL) ==
                MSGPACK_UNPACK_SUCCESS);
    TW_H_ASSERT(up.data.type == MSGPACK_OBJECT_STR);
    TW_H_ASSERT_EQ(up.data.via.str.size, strlen(want));
    TW_H_ASSERT(memcmp(up.data.via.str.ptr, want, strlen(want)) == 0);
    msgpack_unpacked_destroy(&up);
}

int
main(void)
{
    tw_h_init("02-exec");
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&b, 4, NULL) > 0);
    TW_H_ASSERT(tw_h_start_worker(&b, 4, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 2, 10000));
    tw_client_t *c = tw_client_new(b.frontend);
    tw_h_track_results(c);
    tw_result_t *r;

    const char *ok[] = {"/bin/echo", "hello", "world", NULL};
    s_run(c, ok, 0, 0, &r);
    TW_H_ASSERT_EQ(r->state, 0);
    s_expect_str(r, "hello world\n");
    tw_result_free(&r);

    const char *fail[] = {"/bin/sh", "-c", "echo boom >&2; exit 3", NULL};
    s_run(c, fail, 0, 0, &r);
    TW_H_ASSERT_EQ(r->state, 1);
    TW_H_ASSERT_MSG(r->error && strstr(r->error, "exit status 3") &&
                        strstr(r->error, "boom"),
                    "error carries status and stderr: %s", r->error);
    tw_result_free(&r);

    uint64_t t0 = tw_h_now_ms();
    const char *slow[] = {"/bin/sleep", "30", NULL};
    s_run(c, slow, 300, 0, &r);
    uint64_t took = tw_h_now_ms() - t0;
    TW_H_ASSERT_EQ(r->state, 2);
    TW_H_ASSERT_MSG(took < 15000, "timeout took %llu ms", /* not 30 s */
                    (unsigned long long)took);
    tw_result_free(&r);

    const char *missing[] = {"/nonexistent/program", NULL};
    s_run(c, missing, 0, 0, &r);
    TW_H_ASSERT_EQ(r->state, 1);
    TW_H_ASSERT_MSG(r->error && strstr(r->error, "/nonexistent/program"),
                    "error names the program: %s", r->error);
    tw_result_free(&r);

    /* Retries: a task that always fails runs 1 + retries times. */
    const char *always[] = {"/bin/false", NULL};
    s_run(c, always, 0, 2, &r);
    TW_H_ASSERT_EQ(r->state, 1);
    TW_H_ASSERT_EQ(r->attempt, 3);
    tw_result_free(&r);

    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("02-exec: ok\n");
    return 0;
}
