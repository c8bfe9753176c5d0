/*  tests/integration/01-submit-run.c - tasks end to end.
 *
 *  A broker and two workers on loopback; 10,000 echo tasks submitted
 *  through libtaskwheel, pipelined. Every task must come back exactly once,
 *  state ok, with its own arguments as the result; the work must have been
 *  spread over both workers; an unknown handler must be refused per item
 *  without disturbing the rest; and the broker's counters must agree.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <msgpack.h>
#include <stdlib.h>

#define N 10000

typedef struct {
    uint8_t *seen;       /* per seq: results received */
    size_t results, bad, acked, refused;
    uint64_t workers[3]; /* outcomes per worker id (1, 2) */
} s_state_t;

static void
s_on_ack(void *arg, const tw_ack_t *ack)
{
    s_state_t *s = arg;
    if (ack->err) {
        s->refused++;
        TW_H_ASSERT_EQ(ack->err, TW_EHANDLER);
        TW_H_ASSERT_MSG(ack->msg && strstr(ack->msg, "no-such-handler"),
                        "ack error names the handler: %s", ack->msg);
    } else {
        TW_H_ASSERT(ack->id > 0);
        s->acked++;
    }
}

static void
s_on_result(void *arg, const tw_result_t *r)
{
    s_state_t *s = arg;
    TW_H_ASSERT(r->seq >= 1 && r->seq <= N + 2);
    s->results++;
    if (r->seq > N) {
        /* The noop submitted next to the unknown handler. */
        TW_H_ASSERT_EQ(r->state, 0);
        return;
    }
    s->seen[r->seq]++;
    /* The args were the msgpack integer seq * 7; echo returns them. */
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int ok = r->state == 0 &&
             msgpack_unpack_next(&up, r->result, r->result_len, NULL) ==
                 MSGPACK_UNPACK_SUCCESS &&
             up.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
             up.data.via.u64 == r->seq * 7;
    msgpack_unpacked_destroy(&up);
    if (!ok) {
        s->bad++;
    }
    if (r->worker >= 1 && r->worker <= 2) {
        s->workers[r->worker]++;
    }
}

int
main(void)
{
    tw_h_init("01-submit-run");
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&b, 8, NULL) > 0);
    TW_H_ASSERT(tw_h_start_worker(&b, 8, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 2, 10000));

    s_state_t s;
    memset(&s, 0, sizeof s);
    s.seen = calloc(N + 1, 1);
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c);
    tw_client_on_ack(c, s_on_ack, &s);
    tw_client_on_result(c, s_on_result, &s);

    for (uint64_t i = 1; i <= N; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_uint64(&pk, i * 7);
        tw_task_spec_t spec = {.handler = "echo",
                               .args = sb.data,
                               .args_len = sb.size};
        uint64_t seq;
        TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
        TW_H_ASSERT_EQ(seq, i);
        msgpack_sbuffer_destroy(&sb);
        if (i % 2000 == 0) {
            tw_client_poll(c, 0);
        }
    }
    TW_H_ASSERT_OK(tw_client_wait_all(c, 30000));
    TW_H_ASSERT_EQ(s.acked, N);
    TW_H_ASSERT_EQ(s.results, N);
    TW_H_ASSERT_EQ(s.bad, 0);
    for (size_t i = 1; i <= N; i++) {
        TW_H_ASSERT_MSG(s.seen[i] == 1, "task %zu seen %d times", i,
                        s.seen[i]);
    }
    TW_H_ASSERT_MSG(s.workers[1] > 0 && s.workers[2] > 0,
                    "both workers ran tasks (%llu, %llu)",
                    (unsigned long long)s.workers[1],
                    (unsigned long long)s.workers[2]);

    /* An unknown handler is refused per item; its neighbours run. */
    tw_task_spec_t bad = {.handler = "no-such-handler"};
    tw_task_spec_t good = {.handler = "noop"};
    uint64_t seq;
    size_t results_before = s.results;
    TW_H_ASSERT_OK(tw_client_submit(c, &good, &seq));
    TW_H_ASSERT_OK(tw_client_submit(c, &bad, &seq));
    TW_H_ASSERT_OK(tw_client_wait_all(c, 10000));
    TW_H_ASSERT_EQ(s.refused, 1);
    TW_H_ASSERT_EQ(s.results, results_before + 1);

    /* The broker's own counters agree. */
    long long submitted, completed, rejected;
    TW_H_ASSERT_OK(tw_h_status_field(c, "submitted", &submitted));
    TW_H_ASSERT_OK(tw_h_status_field(c, "completed", &completed));
    TW_H_ASSERT_OK(tw_h_status_field(c, "rejected", &rejected));
    TW_H_ASSERT_EQ(submitted, N + 1);
    TW_H_ASSERT_EQ(completed, N + 1);
    TW_H_ASSERT_EQ(rejected, 1);

    /* A result can also be fetched by id later. */
    tw_result_t *r = NULL;
    TW_H_ASSERT_OK(tw_client_result(c, 1, 5000, &r));
    TW_H_ASSERT_EQ(r->state, 0);
    TW_H_ASSERT_EQ(r->seq, 1);
    tw_result_free(&r);
    TW_H_ASSERT_OK(tw_client_result(c, 999999, 5000, &r));
    TW_H_ASSERT_EQ(r->state, 7); /* unknown */
    tw_result_free(&r);

    tw_client_destroy(&c);
    free(s.seen);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("01-submit-run: %d tasks ok\n", N);
    return 0;
}
