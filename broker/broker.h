/*  broker/broker.h - the broker process: its settings and its life cycle.
 *
 *  One tw_broker_t is one taskwheel-broker: a libuv loop with three ZeroMQ
 *  sockets (ROUTER frontend for clients, ROUTER backend for workers, XPUB
 *  status), the task table, the worker registry and the client registry.
 *  Everything runs on the loop's thread; "atomic" in the protocol means
 *  "within one callback of this loop".
 */
#ifndef TW_BROKER_H
#define TW_BROKER_H

#include <uv.h>

#include "common/config.h"

typedef struct {
    char *frontend;
    char *backend;
    char *status;
    long long heartbeat;    /* ms between heartbeats */
    long long liveness;     /* silent intervals before a worker is dead */
    long long max_attempts; /* runs before a task is given up as lost */
    long long max_payload;  /* bytes of args or result per task */
    long long payload_budget; /* MiB of args and results held at most */
    long long max_msg;      /* bytes per ZeroMQ frame (ZMQ_MAXMSGSIZE) */
    long long max_queue;    /* pending tasks before SUBMIT gets EFULL */
    long long max_results;  /* ended tasks kept for RESULT queries */
    long long result_ttl;   /* seconds an ended task is kept */
    long long batch;        /* tasks per TASKS message at most */
    long long client_idle;  /* seconds before a silent client is dropped */
    long long n2s_backlog;  /* n2s messages queued per station */
    long long restart_base; /* ms of a station's first restart backoff */
    long long retry_base;   /* ms before a failed task's first retry */
    long long max_stations; /* stations held before "add" gets EFULL */
    long long handler_grace;/* s after start accepting unknown handlers */
    char *data;             /* store directory; NULL or "": memory only */
    char *fsync;            /* always | everysec | no */
    long long data_size;    /* MiB the store's map may grow to */
    int verify_store;       /* deep check of the store at every start */
    char *log_level;
    char *log;
    char *curve_secret;  /* CURVE secret key file; NULL: plaintext */
    char *clients_keys;  /* directories of allowed public keys per role */
    char *workers_keys;
    char *monitors_keys;
    int insecure;        /* allow non-loopback binds without CURVE */
    char *metrics;       /* ops: HOST:PORT of the Prometheus endpoint */
} tw_broker_cfg_t;

/* The settings table (flags, config file keys, defaults, help). */
extern const tw_cfg_opt_t tw_broker_options[];

typedef struct tw_broker tw_broker_t;

/* The rules the settings must follow by themselves, checked before
 * anything is opened: key directories need CURVE, a non-loopback
 * endpoint (or --metrics address) without CURVE needs --insecure, the
 * --metrics address is well formed. Returns 0 or TW_EINVAL with a
 * one-line reason in `why`: a configuration error, so the caller exits 2
 * (which systemd does not restart), where a failure of tw_broker_new (a
 * port in use) exits 1. */
int tw_broker_check(const tw_broker_cfg_t *cfg, char *why, size_t wlen);

/* Bind the sockets and prepare the loop. Returns NULL and logs why on
 * failure (for example an endpoint already in use). The broker keeps a
 * copy of nothing: `cfg` must outlive it. */
tw_broker_t *tw_broker_new(uv_loop_t *loop, const tw_broker_cfg_t *cfg);

/* Open the store (cfg->data) and recover its state. Returns 0 (also
 * without --data), or an error with the path and the problem in `why`:
 * the caller exits 2 and the store is left as it was. */
int tw_broker_recover(tw_broker_t *b, char *why, size_t wlen);

/* Run the loop until tw_broker_stop (or SIGTERM/SIGINT) and the sockets
 * are closed. Returns 0. */
int tw_broker_run(tw_broker_t *b);

/* Begin an orderly shutdown: stop reading, close handles and sockets. */
void tw_broker_stop(tw_broker_t *b);

/* Free the broker after tw_broker_run returned. Sets *self_p to NULL. */
void tw_broker_destroy(tw_broker_t **self_p);

#endif /* TW_BROKER_H */
