/*  bench/relay.h - the raw ZeroMQ relay, the baseline every target is
 *  compared against.
 *
 *  Three roles in one process, each on its own thread with its own ZeroMQ
 *  context (as if they were three processes) and talking over TCP on
 *  127.0.0.1:
 *
 *      client DEALER --> [ROUTER front | forwarder | ROUTER back] --> worker
 *           ^                                                       DEALER
 *           `-------------------- echo --------------------------------'
 *
 *  The forwarder keeps no state beyond the worker's routing id, decodes
 *  nothing and copies no payload: it passes [client-id][payload] to the
 *  worker and the same frames back. This is the physical limit a broker
 *  could reach with one message per task on this machine, so the taskwheel
 *  benchmarks run it in the same process run and report ratios against it.
 *
 *  A tw_relay_t is one running relay; its client is driven by the thread
 *  that started it. tw_relay_throughput and tw_relay_latency set one up,
 *  measure once and tear it down; bench-latency instead keeps one running
 *  and alternates relay and taskwheel round trips, so both see the same
 *  moments of a noisy machine.
 */
#ifndef TW_BENCH_RELAY_H
#define TW_BENCH_RELAY_H

#include <stddef.h>

typedef struct {
    int front_port; /* forwarder's client-facing port; 0 = ephemeral */
    int back_port;  /* forwarder's worker-facing port; 0 = ephemeral */
    size_t size;    /* payload bytes per request */
    size_t window;  /* requests kept in flight (throughput only) */
    size_t n;       /* timed requests */
} tw_relay_opts_t;

/* The flags --size B (payload bytes) and --no-relay (stores 0 in *relay)
 * of the benchmarks that run the relay as their baseline, as entries of a
 * tw_bench_flag_t table (bench.h). */
#define TW_RELAY_BASELINE_FLAGS(size, relay)                                 \
    TW_BENCH_NUM("--size", (size), 0, 1 << 26),                              \
    TW_BENCH_SWITCH("--no-relay", (relay), 0)

/* A running relay with its client connected and warmed up. */
typedef struct tw_relay tw_relay_t;

/* Start the forwarder and worker threads and connect the client (from
 * the calling thread, which must make every later call). Returns 0 with
 * *out set, or a negative errno after printing why to stderr. */
int tw_relay_start(const tw_relay_opts_t *o, tw_relay_t **out);

/* Stop the threads and free everything. Sets *tp to NULL. */
void tw_relay_stop(tw_relay_t **tp);

/* Keep `window` requests in flight until `n` have come back; *rate gets
 * requests per second. Returns 0 or -EIO. */
int tw_relay_pipelined(tw_relay_t *t, size_t n, size_t window,
                       double *rate);

/* `n` round trips one at a time; us[i] gets each in microseconds.
 * Returns 0 or -EIO. */
int tw_relay_round_trips(tw_relay_t *t, size_t n, double *us);

/* Start, tw_relay_pipelined(o->n, o->window), stop. */
int tw_relay_throughput(const tw_relay_opts_t *o, double *rate);

/* Start, o->n round trips after an untimed tenth (at most 1000), stop;
 * the 50th and 99th percentiles in microseconds. */
int tw_relay_latency(const tw_relay_opts_t *o, double *p50_us,
                     double *p99_us);

#endif /* TW_BENCH_RELAY_H */
