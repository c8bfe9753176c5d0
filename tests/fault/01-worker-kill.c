/*  tests/fault/01-worker-kill.c - SIGKILL a worker under load: nothing is
 *  lost and its stations run again within three heartbeat intervals.
 *
 *  Three workers hold 500 counting stations (incr, next mode result) and
 *  run 20,000 short sleep tasks. Once a tenth of the tasks have ended and
 *  the broker counts tasks in flight on it, one worker is killed with
 *  SIGKILL. The broker finds it silent after --liveness heartbeats,
 *  requeues what it held and makes its stations pending (F1, F2, S42);
 *  every station it held runs again, never on the dead worker. Printed
 *  from the broker's own status events: from the killed worker's
 *  worker.down to the last station.<sid>.running of the stations it held
 *  (three heartbeat intervals on a quiet machine; a speed, so measured by
 *  bench-failover, not asserted here). Every task must end ok with one
 *  outcome at the client.
 */
#include "tests/fault/fault.h"
#include "tests/harness/client_helpers.h"

#include <signal.h>
#include <stdlib.h>

#define S_TASKS 20000
#define S_STATIONS 500
#define S_WORKERS 3
#define S_SLOTS 300
#define S_HB 200

/* Per station: the worker it last ran on, and whether it must move. */
static uint64_t s_on[S_STATIONS];
static int s_moving[S_STATIONS];

/* The tasks the broker counts in flight on the worker named `name`. */
static uint64_t
s_running_on(tw_client_t *c, const char *name)
{
    tw_h_worker_t ws[S_WORKERS + 1];
    size_t n = tw_h_workers(c, ws, S_WORKERS + 1);
    const tw_h_worker_t *w =
        tw_h_worker_named(ws, n < S_WORKERS + 1 ? n : S_WORKERS + 1, name);
    return w ? w->running : 0;
}

static int
s_index(const tw_fault_event_t *ev)
{
    int i;
    if (sscanf(ev->station, "k-%d", &i) != 1 || i < 0 || i >= S_STATIONS) {
        return -1;
    }
    return i;
}

/* Note in s_on the worker a station event says a station runs on (the
 * last one it ran on is kept while it is pending); *running counts the
 * stations seen running at least once. */
static void
s_note(const tw_fault_event_t *ev, int *running)
{
    int i = s_index(ev);
    if (i >= 0 && strcmp(ev->state, "running") == 0) {
        if (s_on[i] == 0) {
            (*running)++;
        }
        s_on[i] = ev->wid;
    }
}

int
main(void)
{
    tw_h_init("fault-worker-kill");
    tw_h_broker_t b;
    const char *opts[] = {"--heartbeat", "200", "--liveness", "3", NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, opts));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    const char *topics[] = {"worker.", "station.", NULL};
    tw_fault_sub_t *sub = tw_fault_sub_new(b.status, topics);

    pid_t w[S_WORKERS];
    for (int i = 0; i < S_WORKERS; i++) {
        w[i] = tw_h_start_worker(&b, S_SLOTS, NULL);
        TW_H_ASSERT(w[i] > 0);
    }
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, S_WORKERS, 10000));

    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c != NULL);

    /* 500 stations in one request, spread over the three workers. */
    tw_fault_add_counters(c, S_STATIONS);
    int running = 0;
    tw_fault_event_t ev;
    uint64_t end = tw_h_now_ms() + 30000;
    while (running < S_STATIONS && tw_h_now_ms() < end) {
        if (tw_fault_sub_next(sub, &ev, 100)) {
            s_note(&ev, &running);
        }
    }
    TW_H_ASSERT_MSG(running == S_STATIONS, "%d of %d stations running",
                    running, S_STATIONS);

    /* The tasks: 20 ms sleeps. */
    static tw_fault_t f;
    tw_fault_init(&f, "worker-kill", c, S_TASKS + 1000);
    unsigned char secs[9];
    size_t sl = tw_fault_pack_double(secs, 0.02);
    tw_task_spec_t spec = {.handler = "sleep", .args = secs,
                           .args_len = sl};
    tw_fault_submit(&f, c, &spec, S_TASKS);
    end = tw_h_now_ms() + 60000;
    while (tw_fault_completed(&f) < S_TASKS / 10 && tw_h_now_ms() < end) {
        tw_client_poll(c, 20);
    }
    TW_H_ASSERT_MSG(tw_fault_completed(&f) < S_TASKS,
                    "the kill came after the run ended");

    /* Kill the first worker (named w1 by the harness) once the broker
     * counts tasks on it: those must be requeued. On a busy machine its
     * credit may not have come back yet when the tenth has ended. */
    TW_H_WAIT(s_running_on(c, "w1") > 0, TW_H_PATIENCE_MS);
    TW_H_ASSERT_OK(tw_h_kill(w[0], SIGKILL));
    uint64_t killed_at = tw_h_now_ms();
    uint64_t down_wid = 0, down_at = 0, last_running = 0;
    int moving = 0, moved = 0;
    end = tw_h_now_ms() + TW_H_PATIENCE_MS;
    while ((down_wid == 0 || moved < moving) && tw_h_now_ms() < end) {
        tw_client_poll(c, 0);
        if (!tw_fault_sub_next(sub, &ev, 10)) {
            continue;
        }
        if (strcmp(ev.topic, "worker.down") == 0 && down_wid == 0 &&
            strcmp(ev.name, "w1") == 0) {
            down_wid = ev.wid;
            down_at = ev.at;
            for (int i = 0; i < S_STATIONS; i++) {
                s_moving[i] = s_on[i] == down_wid;
                moving += s_moving[i];
            }
            continue;
        }
        int i = s_index(&ev);
        if (down_wid == 0) {
            /* Its orphans go pending in the turn that publishes
             * worker.down, just before it. */
            s_note(&ev, &running);
            continue;
        }
        if (i >= 0 && s_moving[i] && strcmp(ev.state, "running") == 0) {
            TW_H_ASSERT_MSG(ev.wid != down_wid, "%s ran on the dead worker",
                            ev.station);
            s_moving[i] = 0;
            moved++;
            last_running = ev.at;
        }
    }
    TW_H_ASSERT_MSG(down_wid != 0, "no worker.down for w1");
    TW_H_ASSERT_MSG(moving > 0, "the killed worker held no station");
    TW_H_ASSERT_MSG(moved == moving, "%d of %d stations running again",
                    moved, moving);
    uint64_t took = last_running - down_at;
    printf("worker-kill: detected %llu ms after the kill; %d stations "
           "running again %llu ms after detection (3 heartbeats: %d ms)\n",
           (unsigned long long)(down_at - killed_at), moving,
           (unsigned long long)took, 3 * S_HB);

    TW_H_ASSERT_OK(tw_fault_wait(&f, c, 60000));
    long long requeued = 0;
    TW_H_ASSERT_OK(tw_h_status_field(c, "requeued", &requeued));
    TW_H_ASSERT_MSG(requeued > 0, "the dead worker's tasks were requeued");
    tw_fault_report(&f, c);

    tw_fault_free(&f);
    tw_fault_sub_destroy(&sub);
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    return 0;
}
