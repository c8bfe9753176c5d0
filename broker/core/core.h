/*  broker/core/core.h - the broker's state as a whole: struct tw_broker.
 *
 *  One struct holds what one taskwheel-broker knows: the records and
 *  tables of the state layer (broker/state/), the sending side of the
 *  sockets (broker/out/), and the few fields the modules of this layer
 *  keep about all of them together. Each field belongs to one module,
 *  named in its group's comment: only that module changes it, the others
 *  read it. Modules below this one never see the struct (they take the
 *  parts they need); modules here and above include this header. The
 *  layer picture is in broker/broker.h. Data only; broker loop thread
 *  only.
 */
#ifndef TW_BROKER_CORE_H
#define TW_BROKER_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "broker/out/out.h"
#include "broker/out/stats.h"
#include "broker/out/status.h"
#include "broker/state/aside.h"
#include "broker/state/auth.h"
#include "broker/state/cfg.h"
#include "broker/state/clients.h"
#include "broker/state/dedup.h"
#include "broker/state/deps.h"
#include "broker/state/pair.h"
#include "broker/state/pools.h"
#include "broker/state/quarantine.h"
#include "broker/state/schedtab.h"
#include "broker/state/queue.h"
#include "broker/state/stations.h"
#include "broker/state/task.h"
#include "broker/state/trim.h"
#include "broker/state/workers.h"

typedef struct tw_broker tw_broker_t;
struct tw_persist;
struct tw_metrics;

struct tw_broker {
    /* The loop, its sockets and timers (broker.c). */
    const tw_broker_cfg_t *cfg;
    uv_loop_t *loop;
    void *ctx;
    void *front, *back, *pub;
    tw_auth_t *auth;         /* CURVE and the loopback rule (auth.h) */
    uv_timer_t hb_timer, stats_timer;
    uv_signal_t sigterm, sigint;
    uv_timer_t delay_timer;  /* the first delayed task is due */
    uint64_t delay_at;       /* when delay_timer fires (loop ms), 0: off */
    uv_timer_t more_timer;   /* dispatch stopped at its byte budget for a
                                turn: another turn at once */
    uv_timer_t grace_timer;  /* recovered running tasks wait for their
                                workers (lease.h) */
    int grace_on;
    int closing;
    uint64_t start_ms;
    int64_t wall_off;        /* wall-clock ms minus loop ms, at start */
    struct tw_metrics *metrics; /* ops: --metrics (metrics.h), or NULL */
    /* This run's identity and where it listens (PROTOCOL.md 5.8, 13). */
    uint64_t boot;           /* random, new at every start, never 0 */
    int resumed;             /* recovered a store that had been used */
    char ep_front[256], ep_back[256], ep_pub[256]; /* as bound */

    /* Sending (out/): the ROUTER sockets, the status socket, counters. */
    tw_out_t out;
    tw_status_t status;
    tw_broker_stats_t st;
    uint64_t last_rate_ms, last_rate_done;
    double rate;             /* outcomes per second over the last tick */

    /* The records and tables (state/). */
    tw_tasks_t tasks;
    tw_registry_t reg;
    tw_clients_t clients;
    tw_pools_t pools;
    tw_stations_t stations;
    tw_dedup_t dedup;        /* (client, seq) -> task id */
    tw_quarantine_t quarantine; /* peers sending garbage (quarantine.h) */
    tw_trim_t trim;          /* freed payload memory (trim.h) */

    /* The task flow (flow.h). */
    tw_queue_t delayed;      /* pending tasks not due yet */
    tw_deps_t *deps;         /* blocked tasks and what they wait for */
    size_t ready;            /* tasks in handler ready queues */
    size_t pending;          /* pending tasks: ready, parked or delayed */
    size_t running;          /* tasks in flight on workers */
    size_t rr;               /* round-robin start for dispatch */
    uint64_t jitter;         /* state of the retry jitter generator */
    uint64_t next_ep;        /* dispatch epoch of the next TASKS item */

    /* Placement (place.h). */
    tw_station_t **unplaced; /* stations waiting for a slot (may hold
                                stale entries; checked when used); those
                                no worker matches wait on `aside` */
    size_t nunplaced, capunplaced;
    tw_aside_t aside;        /* stations no worker matches (aside.h) */
    int place_wanted;        /* something changed: run placement */

    /* Leases (lease.h). */
    uint64_t stale_done;     /* DONE items of an older dispatch */
    uint64_t adopted;        /* tasks re-announced and kept running */
    uint64_t *held;          /* ids recovered as running, not yet */
    size_t nheld;            /* re-announced or requeued */

    /* Durability (persist.h) and the clients' outbox (outbox.h). */
    struct tw_persist *persist; /* NULL without --data */
    uv_prepare_t prepare;    /* commit, then ACKs and RESULTs */
    int prepare_init, prepare_on;

    /* Schedules (schedule.h): the engine, zones and records, and the
     * timer armed for the next tick (broker.c). */
    tw_schedtab_t sched;
    uv_timer_t sched_timer;
    int64_t sched_at;        /* ms the timer was armed for, -1: off */

    /* A broker pair (broker/ha.h): NULL for a single broker. */
    tw_pair_t *pair;         /* the peer socket and the state machine */
    struct tw_ha *ha;        /* the rest of this broker's side */
    int exit_code;           /* of the process: 3 when deposed */
};

#endif /* TW_BROKER_CORE_H */
