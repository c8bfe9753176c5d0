/*  tests/integration/47-pair-replicate.c - replication: the active
 *  SIGKILLed in the middle of a stream of submissions loses no
 *  acknowledged task under --replicate sync, and under async what it
 *  loses is reported (docs/HA.md section 4).
 *
 *  Run once per mode: a pair (200 ms heartbeats), two workers and a
 *  client given both endpoints. The client streams N echo tasks without
 *  waiting; half of them sent and a tenth acknowledged, the primary is
 *  SIGKILLed, and the client goes on submitting. Then:
 *
 *    - every submission is acknowledged once with one task id (a resent
 *      item the backup already had gets the id the primary gave it);
 *    - every acknowledged task ends ok with its own number as result, or
 *      is reported lost (acknowledged, then unknown to the new active):
 *      under sync none is, because an ACK leaves only once the passive
 *      has the batch; under async those the passive had not received;
 *    - the line "acknowledged A completed C lost L duplicated D" reports
 *      the run (duplicated: outcomes delivered twice for one task);
 *    - before the kill the primary's status shows whether ACKs wait for
 *      the passive (ha_sync 1 under sync, 0 under async) and the lag,
 *      and its metrics page the pair's figures;
 *    - the backup publishes ha.active on its status socket when it takes
 *      over.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <signal.h>
#include <stdlib.h>

#define N 3000

typedef struct {
    uint64_t id[N + 1];
    unsigned char results[N + 1];
    size_t acked, completed, lost, duplicated, bad;
} s_run_t;

static void
s_on_ack(void *arg, const tw_ack_t *ack)
{
    s_run_t *s = arg;
    TW_H_ASSERT_MSG(ack->err == 0, "seq %llu refused: %s",
                    (unsigned long long)ack->seq, ack->msg ? ack->msg : "");
    TW_H_ASSERT(ack->seq >= 1 && ack->seq <= N);
    TW_H_ASSERT_MSG(!s->id[ack->seq] || s->id[ack->seq] == ack->id,
                    "seq %llu acknowledged as %llu and then %llu",
                    (unsigned long long)ack->seq,
                    (unsigned long long)s->id[ack->seq],
                    (unsigned long long)ack->id);
    if (!s->id[ack->seq]) {
        s->acked++;
    }
    s->id[ack->seq] = ack->id;
}

static void
s_on_result(void *arg, const tw_result_t *r)
{
    s_run_t *s = arg;
    TW_H_ASSERT(r->seq >= 1 && r->seq <= N);
    if (s->results[r->seq]++) {
        s->duplicated++;
        return;
    }
    if (r->state == TW_ST_LOST || r->state == TW_ST_UNKNOWN) {
        s->lost++;
        return;
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int ok = r->state == TW_ST_OK &&
             msgpack_unpack_next(&up, r->result, r->result_len, NULL) ==
                 MSGPACK_UNPACK_SUCCESS &&
             up.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
             up.data.via.u64 == r->seq;
    msgpack_unpacked_destroy(&up);
    s->completed += ok;
    s->bad += !ok;
}

static void
s_submit(tw_client_t *c, uint64_t i)
{
    unsigned char a[16];
    size_t n = tw_h_pack_int(a, (long long)i);
    tw_task_spec_t spec = {.handler = "echo", .args = a, .args_len = n};
    uint64_t seq;
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    TW_H_ASSERT_EQ(seq, i);
}

static void
s_scenario(const char *mode)
{
    int sync = strcmp(mode, "sync") == 0;
    tw_h_pair_t pr;
    char mport[32], url[64];
    snprintf(mport, sizeof mport, "127.0.0.1:%d", tw_h_free_port());
    snprintf(url, sizeof url, "http://%s/metrics", mport);
    TW_H_ASSERT_OK(tw_h_start_pair(&pr,
                                   TW_H_ARGS("--heartbeat", "200",
                                             "--replicate", mode),
                                   TW_H_ARGS("--metrics", mport)));
    tw_h_broker_t *p = &pr.br[0], *b = &pr.br[1];
    TW_H_ASSERT_OK(tw_h_wait_ready(pr.fronts, 20000));

    /* The passive follows; under sync ACKs wait for it. */
    tw_client_t *cp = tw_client_new(p->frontend);
    char follower[32] = "";
    uint64_t end = tw_h_now_ms() + 20000;
    while ((tw_h_status_str(cp, "ha_follower", follower, sizeof follower) ||
            strcmp(follower, "following") != 0) &&
           tw_h_now_ms() < end) {
        tw_h_sleep_ms(20);
    }
    tw_client_destroy(&cp);
    TW_H_ASSERT_STREQ(follower, "following");
    TW_H_ASSERT_EQ(tw_h_status_of(p->frontend, "ha_sync"), sync);
    TW_H_ASSERT(tw_h_status_of(p->frontend, "ha_lag_batches") >= 0);
    char *page = NULL;
    TW_H_ASSERT_EQ(tw_h_curl(url, "GET", &page), 0);
    TW_H_ASSERT(strstr(page, "\ntaskwheel_ha_active 1\n") != NULL);
    TW_H_ASSERT(strstr(page, "\ntaskwheel_ha_epoch 1\n") != NULL);
    TW_H_ASSERT(strstr(page, "\ntaskwheel_ha_lag_batches ") != NULL);
    free(page);
    for (int i = 0; i < 2; i++) {
        TW_H_ASSERT(tw_h_start_worker(p, 8, TW_H_ARGS("--broker", pr.backs)) >
                    0);
    }
    TW_H_ASSERT_OK(tw_h_wait_workers(p->frontend, 2, 20000));
    const char *const topics[] = {"ha.", NULL};
    void *sub = tw_h_sub(b->status, topics);

    static s_run_t s;
    memset(&s, 0, sizeof s);
    tw_client_t *c = tw_client_new(pr.fronts);
    TW_H_ASSERT(c != NULL);
    tw_client_on_ack(c, s_on_ack, &s);
    tw_client_on_result(c, s_on_result, &s);
    uint64_t i = 1;
    for (; i <= N / 2; i++) {
        s_submit(c, i);
        if (i % 50 == 0) {
            tw_client_poll(c, 0);
        }
    }
    while (s.acked < N / 10) {
        tw_client_poll(c, 1);
    }

    /* The active dies mid-stream. */
    printf("killing the primary after %zu acknowledged of %llu sent\n",
           s.acked, (unsigned long long)(i - 1));
    TW_H_ASSERT_OK(tw_h_kill(p->pid, SIGKILL));
    for (; i <= N; i++) {
        s_submit(c, i);
        if (i % 50 == 0) {
            tw_client_poll(c, 0);
        }
    }
    TW_H_ASSERT_OK(tw_client_wait_all(c, 120000));
    printf("%s: acknowledged %zu completed %zu lost %zu duplicated %zu\n",
           mode, s.acked, s.completed, s.lost, s.duplicated);
    TW_H_ASSERT_EQ(s.acked, N);
    TW_H_ASSERT_EQ(s.bad, 0);
    TW_H_ASSERT_EQ(s.completed + s.lost, N);
    if (sync) {
        TW_H_ASSERT_EQ(s.lost, 0);
    }

    /* The takeover was published. */
    char topic[64];
    zmq_msg_t body;
    int seen = 0;
    while (!seen && tw_h_sub_recv(sub, topic, sizeof topic, &body, 10000) ==
                        0) {
        seen = strcmp(topic, "ha.active") == 0;
        zmq_msg_close(&body);
    }
    TW_H_ASSERT_MSG(seen, "no ha.active event from the backup");
    TW_H_ASSERT_EQ(tw_h_status_of(b->frontend, "ha_epoch"), 2);

    zmq_close(sub);
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b->pid), 0);
}

int
main(void)
{
    tw_h_init("47-pair-replicate");
    s_scenario("sync");
    s_scenario("async");
    printf("47-pair-replicate: ok\n");
    return 0;
}
