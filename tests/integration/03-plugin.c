/*  tests/integration/03-plugin.c - a native plugin handler end to end.
 *
 *  A worker loads examples' plugin with --plugin; its async handlers
 *  (example.sum, example.upper) answer through the cluster, a bad argument
 *  becomes the task's error, and a running blocking handler (example.slow)
 *  is cancelled by id: the task ends cancelled long before it would have
 *  finished. A worker given a plugin path that does not exist refuses to
 *  start, with a message naming the path.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <msgpack.h>

static uint64_t
s_submit_json(tw_client_t *c, const char *handler, const char *kind,
              double x)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (strcmp(kind, "sum") == 0) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_int(&pk, 2);
        msgpack_pack_int(&pk, 39);
    } else if (strcmp(kind, "str") == 0) {
        msgpack_pack_str_with_body(&pk, "taskwheel", 9);
    } else if (strcmp(kind, "badsum") == 0) {
        msgpack_pack_array(&pk, 1);
        msgpack_pack_str_with_body(&pk, "x", 1);
    } else {
        msgpack_pack_double(&pk, x);
    }
    tw_task_spec_t spec = {.handler = handler,
                           .args = sb.data,
                           .args_len = sb.size};
    uint64_t seq;
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    msgpack_sbuffer_destroy(&sb);
    return seq;
}

int
main(void)
{
    tw_h_init("03-plugin");
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));

    /* A missing plugin stops the worker at start with a clear message. */
    const char *badp[] = {"--plugin", "/nonexistent/plugin.so", NULL};
    pid_t bad = tw_h_start_worker(&b, 2, badp);
    TW_H_ASSERT(bad > 0);
    int rc = tw_h_wait_exit(bad, 10000);
    TW_H_ASSERT_MSG(rc > 0 && rc < 128, "worker exits with an error (%d)",
                    rc);
    TW_H_ASSERT(tw_h_log_contains(bad, "/nonexistent/plugin.so"));

    const char *plug[] = {"--plugin", TW_EXAMPLE_PLUGIN, NULL};
    TW_H_ASSERT(tw_h_start_worker(&b, 4, plug) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));

    tw_client_t *c = tw_client_new(b.frontend);
    tw_h_track_results(c);
    uint64_t s_sum = s_submit_json(c, "example.sum", "sum", 0);
    uint64_t s_up = s_submit_json(c, "example.upper", "str", 0);
    uint64_t s_bad = s_submit_json(c, "example.sum", "badsum", 0);
    TW_H_ASSERT_OK(tw_client_wait_all(c, 10000));

    tw_result_t *r;
    TW_H_ASSERT_OK(tw_h_last_result(c, s_sum, &r));
    TW_H_ASSERT_EQ(r->state, 0);
    TW_H_ASSERT_EQ(tw_h_result_int(r), 42);
    tw_result_free(&r);
    TW_H_ASSERT_OK(tw_h_last_result(c, s_up, &r));
    TW_H_ASSERT_EQ(r->state, 0);
    TW_H_ASSERT_STREQ(tw_h_result_str(r), "TASKWHEEL");
    tw_result_free(&r);
    TW_H_ASSERT_OK(tw_h_last_result(c, s_bad, &r));
    TW_H_ASSERT_EQ(r->state, 1);
    TW_H_ASSERT(r->error && r->error[0]);
    tw_result_free(&r);

    /* Cancel a running blocking handler. */
    uint64_t s_slow = s_submit_json(c, "example.slow", "num", 30.0);
    uint64_t id = tw_h_wait_acked(c, s_slow, 5000);
    TW_H_ASSERT(id > 0);
    TW_H_ASSERT_OK(tw_h_wait_state(c, id, 6 /* running */, 5000));
    uint64_t t0 = tw_h_now_ms();
    TW_H_ASSERT_OK(tw_client_cancel(c, &id, 1, 5000));
    TW_H_ASSERT_OK(tw_client_wait_all(c, 10000));
    TW_H_ASSERT_OK(tw_h_last_result(c, s_slow, &r));
    TW_H_ASSERT_EQ(r->state, 3);
    TW_H_ASSERT_MSG(tw_h_now_ms() - t0 < 15000, /* not the 30 s run */
                    "cancel took too long");
    tw_result_free(&r);

    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("03-plugin: ok\n");
    return 0;
}
