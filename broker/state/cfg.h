/*  broker/state/cfg.h - the broker's settings, as parsed.
 *
 *  One tw_broker_cfg_t per broker, filled from flags and the config file
 *  by the option table tw_broker_options (broker/broker.h, which also says
 *  what each setting means) and read by every layer above; nothing writes
 *  it once the broker runs. Definitions only.
 */
#ifndef TW_BROKER_CFG_H
#define TW_BROKER_CFG_H

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
    long long failed_ttl;   /* seconds a failed task's record is kept */
    long long max_failed;   /* failed tasks' records kept at most */
    long long record_args;  /* an ok task's record keeps args up to this */
    long long record_preview; /* bytes of a preview of arguments */
    long long batch;        /* tasks per TASKS message at most */
    long long client_idle;  /* seconds before a silent client is dropped */
    long long n2s_backlog;  /* n2s messages queued per station */
    long long restart_base; /* ms of a station's first restart backoff */
    long long retry_base;   /* ms before a failed task's first retry */
    long long max_stations; /* stations held before "add" gets EFULL */
    long long handler_grace;/* s after start accepting unknown handlers */
    long long schedule_grace; /* ms a tick may be late and still fire */
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
    char *metrics;       /* --http (--metrics): HOST:PORT of the HTTP API */
    char *http_token_file; /* the API's bearer token, or NULL */
    /* A broker pair (docs/HA.md): NULL role, a single broker. */
    char *role;          /* primary | backup */
    char *peer_bind;     /* this broker's endpoint for its peer */
    char *peer;          /* the peer's --peer-bind */
    char *replicate;     /* sync | async */
    long long peer_heartbeat; /* ms; 0: --heartbeat */
    long long peer_liveness;  /* heartbeats of silence: the peer is lost */
    long long repl_backlog;   /* MiB of recent batches kept */
    long long repl_window;    /* MiB sent and not acknowledged */
    int takeover;        /* may start alone without hearing the peer */
} tw_broker_cfg_t;

#endif /* TW_BROKER_CFG_H */
