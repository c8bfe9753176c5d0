/*  tests/unit/test_client_tasks.c - the task record requests of
 *  libtaskwheel (client/tasks.c).
 *
 *  A fake frontend (tests/unit/support/fake_front.h) in a thread answers
 *  every request with a REPLY whose data is the request's own body, so
 *  each test reads back exactly what the client put on the wire: the
 *  command (QUERY for list and show, TASK for retry and purge), each
 *  filter under its key with its type, ids, and nothing that was left
 *  out. The client's own refusals (strings too long for their field,
 *  show with no ids or more than 100) send nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "proto/proto.h"
#include "taskwheel/client.h"
#include "tests/unit/support/fake_front.h"

#define WAIT_MS 5000

typedef struct {
    tw_ff_t *ff;
    tw_client_t *c;
    pthread_t th;
    atomic_int stop;
    atomic_int served;
    atomic_int last_cmd;
} s_fix_t;

static void *
s_echo(void *arg)
{
    s_fix_t *fx = arg;
    while (!atomic_load(&fx->stop)) {
        if (tw_ff_recv(fx->ff, NULL, 20) != 0) {
            continue;
        }
        tw_enc_t e;
        tw_enc_init(&e);
        tw_enc_map(&e, 2);
        tw_enc_key(&e, TW_F_SEQ);
        tw_enc_uint(&e, tw_msg_uint(&fx->ff->m, TW_F_SEQ, 0));
        tw_enc_key(&e, TW_F_DATA);
        msgpack_sbuffer_write(&e.sb, zmq_msg_data(&fx->ff->body),
                              zmq_msg_size(&fx->ff->body));
        atomic_store(&fx->last_cmd, (int)fx->ff->m.cmd);
        tw_ff_send(fx->ff, TW_CMD_REPLY, &e);
        tw_enc_free(&e);
        atomic_fetch_add(&fx->served, 1);
    }
    return NULL;
}

static int
s_setup(void **state)
{
    s_fix_t *fx = calloc(1, sizeof *fx);
    fx->ff = tw_ff_new();
    fx->c = tw_client_new(fx->ff->ep);
    assert_non_null(fx->c);
    assert_int_equal(pthread_create(&fx->th, NULL, s_echo, fx), 0);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fix_t *fx = *state;
    tw_client_destroy(&fx->c);
    atomic_store(&fx->stop, 1);
    pthread_join(fx->th, NULL);
    tw_ff_destroy(&fx->ff);
    free(fx);
    return 0;
}

/* The echoed body as a map, with a lookup by key. */
typedef struct {
    msgpack_unpacked up;
    void *data;
} s_echo_t;

static const msgpack_object *
s_get(const s_echo_t *m, const char *key)
{
    const msgpack_object_map *map = &m->up.data.via.map;
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key;
        if (k->via.str.size == strlen(key) &&
            memcmp(k->via.str.ptr, key, k->via.str.size) == 0) {
            return &map->ptr[i].val;
        }
    }
    return NULL;
}

static void
s_str_is(const s_echo_t *m, const char *key, const char *want)
{
    const msgpack_object *v = s_get(m, key);
    assert_non_null(v);
    assert_int_equal(v->type, MSGPACK_OBJECT_STR);
    assert_int_equal(v->via.str.size, strlen(want));
    assert_memory_equal(v->via.str.ptr, want, strlen(want));
}

static void
s_open(s_echo_t *m, void *data, size_t len)
{
    m->data = data;
    msgpack_unpacked_init(&m->up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&m->up, data, len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(m->up.data.type, MSGPACK_OBJECT_MAP);
}

static void
s_close(s_echo_t *m)
{
    msgpack_unpacked_destroy(&m->up);
    free(m->data);
}

static void
test_list(void **state)
{
    s_fix_t *fx = *state;
    tw_tasks_req_t req = {"failed", "resize", "db", "p1", "bad size",
                          7200000, 20, "t1.AAAAAAAAAAAAAAAAAAA", NULL, 0};
    void *data;
    size_t len;
    assert_int_equal(tw_client_tasks_list(fx->c, &req, WAIT_MS, &data, &len),
                     0);
    assert_int_equal(atomic_load(&fx->last_cmd), TW_CMD_QUERY);
    s_echo_t m;
    s_open(&m, data, len);
    assert_int_equal(m.up.data.via.map.size, 10);
    s_str_is(&m, "what", "tasks");
    s_str_is(&m, "state", "failed");
    s_str_is(&m, "handler", "resize");
    s_str_is(&m, "group", "db");
    s_str_is(&m, "pool", "p1");
    s_str_is(&m, "text", "bad size");
    s_str_is(&m, "cursor", "t1.AAAAAAAAAAAAAAAAAAA");
    assert_int_equal(s_get(&m, "since")->via.u64, 7200000);
    assert_int_equal(s_get(&m, "limit")->via.u64, 20);
    assert_null(s_get(&m, "ids"));
    assert_null(s_get(&m, "op"));
    s_close(&m);

    /* Nothing given: seq and what only. */
    tw_tasks_req_t none = {0};
    assert_int_equal(tw_client_tasks_list(fx->c, &none, WAIT_MS, &data, &len),
                     0);
    s_open(&m, data, len);
    assert_int_equal(m.up.data.via.map.size, 2);
    s_close(&m);
}

static void
test_show_retry_purge(void **state)
{
    s_fix_t *fx = *state;
    uint64_t ids[] = {3, 9};
    void *data;
    size_t len;
    assert_int_equal(tw_client_tasks_show(fx->c, ids, 2, WAIT_MS, &data,
                                          &len), 0);
    assert_int_equal(atomic_load(&fx->last_cmd), TW_CMD_QUERY);
    s_echo_t m;
    s_open(&m, data, len);
    s_str_is(&m, "what", "task");
    const msgpack_object *v = s_get(&m, "ids");
    assert_int_equal(v->via.array.size, 2);
    assert_int_equal(v->via.array.ptr[1].via.u64, 9);
    s_close(&m);

    tw_tasks_req_t byid = {0};
    byid.ids = ids;
    byid.nids = 2;
    assert_int_equal(tw_client_tasks_retry(fx->c, &byid, WAIT_MS, &data,
                                           &len), 0);
    assert_int_equal(atomic_load(&fx->last_cmd), TW_CMD_TASK);
    s_open(&m, data, len);
    assert_int_equal(m.up.data.via.map.size, 3);
    s_str_is(&m, "op", "retry");
    assert_int_equal(s_get(&m, "ids")->via.array.size, 2);
    s_close(&m);

    tw_tasks_req_t filt = {0};
    filt.state = "failed";
    filt.handler = "resize";
    filt.limit = 5;
    assert_int_equal(tw_client_tasks_purge(fx->c, &filt, WAIT_MS, &data,
                                           &len), 0);
    assert_int_equal(atomic_load(&fx->last_cmd), TW_CMD_TASK);
    s_open(&m, data, len);
    s_str_is(&m, "op", "purge");
    s_str_is(&m, "state", "failed");
    s_str_is(&m, "handler", "resize");
    assert_int_equal(s_get(&m, "limit")->via.u64, 5);
    assert_null(s_get(&m, "ids"));
    s_close(&m);
    /* The reply data may be left out. */
    assert_int_equal(tw_client_tasks_purge(fx->c, &filt, WAIT_MS, NULL, NULL),
                     0);
}

static void
test_refused_here(void **state)
{
    s_fix_t *fx = *state;
    int before = atomic_load(&fx->served);
    void *data = (void *)1;
    size_t len = 1;
    char big[200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tw_tasks_req_t r = {0};
    r.state = "pending-or-running"; /* 18 bytes: the field holds 16 */
    assert_int_equal(tw_client_tasks_list(fx->c, &r, WAIT_MS, &data, &len),
                     TW_EINVAL);
    assert_null(data);
    memset(&r, 0, sizeof r);
    r.handler = big;
    assert_int_equal(tw_client_tasks_retry(fx->c, &r, WAIT_MS, &data, &len),
                     TW_EINVAL);
    memset(&r, 0, sizeof r);
    big[65] = '\0';
    r.cursor = big;
    assert_int_equal(tw_client_tasks_list(fx->c, &r, WAIT_MS, &data, &len),
                     TW_EINVAL);
    memset(&r, 0, sizeof r);
    r.nids = 2; /* no ids */
    assert_int_equal(tw_client_tasks_purge(fx->c, &r, WAIT_MS, &data, &len),
                     TW_EINVAL);
    uint64_t ids[101] = {1};
    assert_int_equal(tw_client_tasks_show(fx->c, ids, 0, WAIT_MS, &data,
                                          &len), TW_EINVAL);
    assert_int_equal(tw_client_tasks_show(fx->c, ids, 101, WAIT_MS, &data,
                                          &len), TW_EINVAL);
    assert_int_equal(tw_client_tasks_list(fx->c, NULL, WAIT_MS, &data, &len),
                     TW_EINVAL);
    assert_int_equal(tw_client_tasks_list(NULL, &r, WAIT_MS, &data, &len),
                     TW_EINVAL);
    assert_int_equal(atomic_load(&fx->served), before);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_show_retry_purge, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_refused_here, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
