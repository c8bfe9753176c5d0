/*  broker/cmd/metrics.h - Prometheus metrics over HTTP (--metrics ADDR:PORT).
 *
 *  GET /metrics answers the broker's figures in the Prometheus text
 *  exposition format 0.0.4: workers, slots, stations and tasks by state,
 *  throughput and drop counters (every counter of tw_broker_stats_t),
 *  queue depths, heartbeat age per worker, process start time. Any other
 *  path is 404, any other method 405. docs/OPERATIONS.md lists the metrics.
 *
 *  The HTTP server is libmicrohttpd, run without a thread of its own: it
 *  keeps its sockets in one epoll set, the broker's loop watches that epoll
 *  fd with a uv_poll_t and calls MHD_run when it is readable, and a
 *  uv_timer_t follows MHD_get_timeout (connection timeouts, data already
 *  buffered). So every page is rendered on the broker's loop thread, from
 *  the same state the protocol handlers change, and needs no lock.
 *
 *  There is no authentication and no TLS: like the ZeroMQ endpoints
 *  without CURVE, a non-loopback address is refused unless --insecure is
 *  given (whether or not CURVE protects the other sockets). Off by default.
 */
#ifndef TW_BROKER_METRICS_H
#define TW_BROKER_METRICS_H

#include <stddef.h>

typedef struct tw_broker tw_broker_t;
typedef struct tw_metrics tw_metrics_t;

/* The rules for `addr` alone, before anything is opened: its form (as
 * below) and, unless `insecure`, a loopback HOST. Returns 0 or TW_EINVAL
 * with a one-line reason in `why`. */
int tw_metrics_check(const char *addr, int insecure, char *why, size_t wlen);

/* Serve b's metrics on `addr` ("HOST:PORT", HOST a numeric IPv4 address,
 * "[IPv6]" or "localhost"; PORT 0 picks a free one). `insecure` allows a
 * non-loopback HOST. Returns 0 and sets *out, or TW_EINVAL (bad address,
 * non-loopback without insecure) / TW_EIO (cannot listen) with a one-line
 * reason in `why`. */
int tw_metrics_start(tw_metrics_t **out, tw_broker_t *b, const char *addr,
                     int insecure, char *why, size_t wlen);

/* The TCP port it listens on. */
int tw_metrics_port(const tw_metrics_t *m);

/* Stop watching (closes the loop handles; call before the loop ends). */
void tw_metrics_stop(tw_metrics_t *m);

/* Stop the HTTP server and free everything, after the loop has run the
 * handles' close callbacks. Sets *m_p to NULL. Idempotent. */
void tw_metrics_destroy(tw_metrics_t **m_p);

/* Write the exposition text for `b` into a malloc'ed buffer (*out, *len).
 * For tests and for the HTTP handler. */
void tw_metrics_render(tw_broker_t *b, char **out, size_t *len);

#endif /* TW_BROKER_METRICS_H */
