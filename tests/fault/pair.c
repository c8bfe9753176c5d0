/*  tests/fault/pair.c - see pair.h. */
#include "tests/fault/pair.h"
#include "tests/harness/client_helpers.h"
#include "tests/harness/multihost.h"

#include <stdlib.h>
#include <string.h>

#define S_TASK_SLOTS 40 /* per worker, besides its share of stations */
#define S_SLEEP 0.01 /* seconds per task */

static tw_fpair_t *s_p; /* for the exit hook */

static void
s_destroy_client(void)
{
    if (s_p) {
        tw_client_destroy(&s_p->c);
    }
}

void
tw_fpair_str(const char *front, const char *key, char *out, size_t cap)
{
    tw_client_t *c = tw_client_new(front);
    TW_H_ASSERT(c != NULL);
    out[0] = '\0';
    if (tw_h_status_str(c, key, out, cap) != 0) {
        out[0] = '\0';
    }
    tw_client_destroy(&c);
}

long long
tw_fpair_int(const char *front, const char *key)
{
    tw_client_t *c = tw_client_new(front);
    TW_H_ASSERT(c != NULL);
    long long v = -1;
    if (tw_h_status_field(c, key, &v) != 0) {
        v = -1;
    }
    tw_client_destroy(&c);
    return v;
}

void
tw_fpair_wait_str(tw_fpair_t *p, const char *front, const char *key,
                  const char *want, int ms)
{
    uint64_t end = tw_h_now_ms() + (uint64_t)ms;
    char got[64] = "";
    for (;;) {
        tw_fpair_str(front, key, got, sizeof got);
        if (strcmp(got, want) == 0) {
            return;
        }
        TW_H_ASSERT_MSG(tw_h_now_ms() < end,
                        "%s: %s is \"%s\", not \"%s\", after %d ms", front,
                        key, got, want, ms);
        if (p && p->c) {
            tw_client_poll(p->c, 50);
        } else {
            tw_h_sleep_ms(50);
        }
    }
}

int
tw_fpair_poll_until(tw_fpair_t *p, int (*done)(tw_fpair_t *p), int ms)
{
    uint64_t end = tw_h_now_ms() + (uint64_t)ms;
    while (tw_h_now_ms() < end) {
        if (done && done(p)) {
            return 1;
        }
        tw_client_poll(p->c, 10);
    }
    return done ? done(p) : 0;
}

void
tw_fpair_script(const char *cmd, const char *a, const char *b)
{
    int rc = tw_h_mh_script(cmd, a, b, NULL);
    TW_H_ASSERT_MSG(rc == 0, "multihost.sh %s %s %s exited %d", cmd,
                    a ? a : "", b ? b : "", rc);
}

/* Poll the client until the broker at `front` runs `n` stations. */
static void
s_wait_stations(tw_fpair_t *p, const char *front, size_t n, int ms)
{
    uint64_t end = tw_h_now_ms() + (uint64_t)ms;
    long long have = -1;
    while ((have = tw_fpair_int(front, "stations_running")) != (long long)n) {
        TW_H_ASSERT_MSG(tw_h_now_ms() < end,
                        "%s runs %lld of %zu stations after %d ms", front,
                        have, n, ms);
        tw_client_poll(p->c, 100);
    }
}

int
tw_fpair_up(tw_fpair_t *p, const char *prefix, const char *name,
            const char *mode, int workers)
{
    memset(p, 0, sizeof *p);
    p->name = name;
    p->mode = mode;
    p->workers = workers;
    p->tasks = TW_FPAIR_TASKS;
    p->stations = TW_FPAIR_STATIONS;
    s_p = p;
    tw_h_mh_at_exit(s_destroy_client);
    char hb[16], slots[16], nw[16];
    snprintf(hb, sizeof hb, "%d", TW_FPAIR_HB);
    snprintf(slots, sizeof slots, "%zu",
             (p->stations + (size_t)workers - 1) / (size_t)workers +
                 S_TASK_SLOTS);
    snprintf(nw, sizeof nw, "%d", workers);
    const char *up[] = {"--pair", "--replicate", mode, "--heartbeat", hb,
                        "--slots", slots, "up", nw, NULL};
    const char *why = NULL;
    if (tw_h_mh_up(prefix, up, &why) == TW_H_SKIP) {
        printf("%s: SKIP: %s\n", name, why);
        return TW_H_SKIP;
    }
    printf("%s: %zu tasks, %zu stations, %d workers, --replicate %s\n",
           name, p->tasks, p->stations, workers, mode);
    fflush(stdout);
    tw_h_mh_enter("monitor");
    p->c = tw_client_new(TW_H_MH_PAIR_FRONTENDS);
    TW_H_ASSERT(p->c != NULL);
    tw_client_opts_t o = {.heartbeat_ms = TW_FPAIR_HB,
                          .liveness = 3,
                          .reconnect_min_ms = 100,
                          .reconnect_max_ms = 500};
    TW_H_ASSERT_OK(tw_client_set_opts(p->c, &o));
    tw_fpair_wait_str(p, TW_H_MH_FRONTEND, "ha_state", "active", 20000);
    tw_fpair_wait_str(p, TW_H_MH_BACKUP_FRONTEND, "ha_state", "passive",
                      20000);
    tw_fpair_wait_str(p, TW_H_MH_FRONTEND, "ha_follower", "following",
                      20000);
    TW_H_ASSERT_OK(tw_h_wait_workers(TW_H_MH_FRONTEND, workers, 20000));
    tw_fault_init(&p->f, name, p->c, p->tasks + 500);
    p->spec = tw_fault_sleep_spec(p->secs, S_SLEEP);
    tw_fault_add_counters(p->c, p->stations);
    s_wait_stations(p, TW_H_MH_FRONTEND, p->stations, 60000);
    return 0;
}

void
tw_fpair_stream(tw_fpair_t *p, size_t window, size_t fault_after,
                tw_fpair_fault_fn fault)
{
    const size_t burst = 100;
    int fired = fault == NULL;
    uint64_t end = tw_h_now_ms() + 600000;
    while (p->f.submitted < p->tasks) {
        TW_H_ASSERT_MSG(tw_h_now_ms() < end, "%s: the stream stalled at "
                        "%zu submitted, %zu ended ok", p->name,
                        p->f.submitted, tw_fault_completed(&p->f));
        if (!fired && p->f.submitted >= fault_after &&
            tw_fault_completed(&p->f) >= fault_after / 10) {
            fired = 1;
            p->fault_at = tw_h_now_ms();
            fault(p);
            continue;
        }
        size_t done = tw_fault_completed(&p->f);
        if (p->f.submitted - done + burst > window) {
            tw_client_poll(p->c, 5);
            continue;
        }
        size_t n = p->tasks - p->f.submitted;
        tw_fault_submit(&p->f, p->c, &p->spec, n < burst ? n : burst);
        tw_client_poll(p->c, 0);
    }
    TW_H_ASSERT_MSG(fired, "%s: the fault was never injected", p->name);
}

uint64_t
tw_fpair_probe(tw_fpair_t *p, int ms)
{
    size_t at = p->f.submitted;
    tw_fault_submit(&p->f, p->c, &p->spec, 1);
    uint64_t seq = p->f.seqs[at];
    uint64_t end = tw_h_now_ms() + (uint64_t)ms;
    while (p->f.acks[seq] == 0 && p->f.outcomes[seq] == 0) {
        TW_H_ASSERT_MSG(tw_h_now_ms() < end, "%s: no broker accepted a task "
                        "within %d ms of the fault", p->name, ms);
        tw_client_poll(p->c, 1);
    }
    p->tasks++; /* the probe is one more task of the stream */
    return tw_h_now_ms() - p->fault_at;
}

void
tw_fpair_finish(tw_fpair_t *p, const char *active_front)
{
    TW_H_ASSERT_OK(tw_fault_wait(&p->f, p->c, 120000));
    s_wait_stations(p, active_front, p->stations, 60000);
    tw_fault_report(&p->f, p->c);
}

void
tw_fpair_down(tw_fpair_t *p)
{
    tw_fault_free(&p->f);
    tw_client_destroy(&p->c);
    TW_H_ASSERT_EQ(tw_h_mh_down(), 0);
    s_p = NULL;
}

/* ------------------------------------------------------ kill scenarios --- */

static int s_wipe;

static int
s_noticed(tw_fpair_t *p)
{
    tw_client_stats_t st;
    tw_client_stats(p->c, &st);
    return st.lost >= 1;
}

/* The fault of the kill scenarios: SIGKILL the active primary. */
static void
s_kill_active(tw_fpair_t *p)
{
    long long lag = tw_fpair_int(TW_H_MH_FRONTEND, "ha_lag_batches");
    p->fault_at = tw_h_now_ms();
    tw_fpair_script("kill-broker", "broker", "KILL");
    if (s_wipe) {
        tw_fpair_script("wipe", "broker", NULL);
    }
    TW_H_ASSERT_MSG(tw_fpair_poll_until(p, s_noticed, 10000),
                    "%s: the client did not notice the active's death",
                    p->name);
    size_t open = tw_fault_open(&p->f);
    if (strcmp(p->mode, "async") == 0) {
        /* What the passive may not have had: acknowledged, not ended. */
        p->f.lost_bounded = 1;
        p->f.lost_max = open;
    }
    uint64_t ms = tw_fpair_probe(p, 60000);
    printf("%s: the primary killed%s with %zu tasks acknowledged and not "
           "ended, %lld batches unacknowledged by the backup just before; "
           "the backup accepted a task %llu ms later (%.1f heartbeats of "
           "%d ms)\n",
           p->name, s_wipe ? " and its store deleted" : "", open, lag,
           (unsigned long long)ms, (double)ms / TW_FPAIR_HB, TW_FPAIR_HB);
    fflush(stdout);
}

int
tw_fpair_kill_scenario(const char *prefix, const char *name,
                       const char *mode, int wipe)
{
    static tw_fpair_t p;
    if (tw_fpair_up(&p, prefix, name, mode, 3) == TW_H_SKIP) {
        return TW_H_SKIP;
    }
    long long epoch = tw_fpair_int(TW_H_MH_FRONTEND, "ha_epoch");
    TW_H_ASSERT(epoch >= 1);
    s_wipe = wipe;
    tw_fpair_stream(&p, 1500, p.tasks / 2, s_kill_active);
    /* The new active, under a later epoch. */
    char state[32];
    tw_fpair_str(TW_H_MH_BACKUP_FRONTEND, "ha_state", state, sizeof state);
    TW_H_ASSERT_STREQ(state, "active");
    long long now = tw_fpair_int(TW_H_MH_BACKUP_FRONTEND, "ha_epoch");
    TW_H_ASSERT_MSG(now > epoch, "the backup's epoch %lld is not above "
                    "%lld", now, epoch);
    /* The old active comes back: passive, and followed again. */
    tw_fpair_script("start-broker", "broker", NULL);
    tw_fpair_wait_str(&p, TW_H_MH_FRONTEND, "ha_state", "passive", 30000);
    tw_fpair_wait_str(&p, TW_H_MH_BACKUP_FRONTEND, "ha_follower",
                      "following", 60000);
    long long snaps = tw_fpair_int(TW_H_MH_BACKUP_FRONTEND, "ha_snapshots");
    printf("%s: the old primary came back passive and follows the new "
           "active (epoch %lld), which sent %lld snapshots\n",
           name, now, snaps);
    tw_fpair_finish(&p, TW_H_MH_BACKUP_FRONTEND);
    tw_fpair_str(TW_H_MH_BACKUP_FRONTEND, "ha_state", state, sizeof state);
    TW_H_ASSERT_STREQ(state, "active");
    if (wipe) {
        /* The wiped broker holds the whole state again: it takes over in
         * turn and runs every station, and a new task ends ok there. */
        p.fault_at = tw_h_now_ms();
        tw_fpair_script("kill-broker", "backup", "KILL");
        uint64_t ms = tw_fpair_probe(&p, 60000);
        tw_fpair_wait_str(&p, TW_H_MH_FRONTEND, "ha_state", "active", 10000);
        s_wait_stations(&p, TW_H_MH_FRONTEND, p.stations, 60000);
        TW_H_ASSERT_OK(tw_fault_wait(&p.f, p.c, 60000));
        TW_H_ASSERT_EQ(tw_fault_completed(&p.f), p.f.submitted);
        printf("%s: the backup killed in turn: the once wiped primary "
               "took over in %llu ms with all %zu stations\n",
               name, (unsigned long long)ms, p.stations);
    }
    tw_fpair_down(&p);
    return 0;
}

/* ----------------------------------------------- no-takeover scenarios --- */

static tw_fault_sub_t *s_backup_sub; /* the backup's ha.* events */

void
tw_fpair_backup_not_active(void)
{
    tw_fault_event_t ev;
    while (s_backup_sub && tw_fault_sub_next(s_backup_sub, &ev, 0)) {
        TW_H_ASSERT_MSG(strcmp(ev.topic, "ha.active") != 0,
                        "the backup became active (ha.active)");
    }
    char state[32];
    tw_fpair_str(TW_H_MH_BACKUP_FRONTEND, "ha_state", state, sizeof state);
    TW_H_ASSERT_MSG(strcmp(state, "active") != 0,
                    "the backup reports itself active");
}

int
tw_fpair_no_takeover_scenario(const char *prefix, const char *name,
                              tw_fpair_fault_fn fault)
{
    static tw_fpair_t p;
    if (tw_fpair_up(&p, prefix, name, "sync", 2) == TW_H_SKIP) {
        return TW_H_SKIP;
    }
    const char *topics[] = {"ha.", NULL};
    s_backup_sub = tw_fault_sub_new(TW_H_MH_BACKUP_STATUS, topics);
    long long epoch = tw_fpair_int(TW_H_MH_FRONTEND, "ha_epoch");
    tw_fpair_stream(&p, 1500, p.tasks / 2, fault);
    tw_fpair_finish(&p, TW_H_MH_FRONTEND);
    tw_fpair_backup_not_active();
    tw_fpair_wait_str(&p, TW_H_MH_BACKUP_FRONTEND, "ha_state", "passive",
                      10000);
    TW_H_ASSERT_EQ(tw_fpair_int(TW_H_MH_FRONTEND, "ha_epoch"), epoch);
    TW_H_ASSERT_EQ(tw_fpair_int(TW_H_MH_BACKUP_FRONTEND, "ha_takeovers"), 0);
    tw_fault_sub_destroy(&s_backup_sub);
    tw_fpair_down(&p);
    return 0;
}
