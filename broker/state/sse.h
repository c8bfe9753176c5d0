/*  broker/state/sse.h - the status topics as Server-Sent Events, resumable.
 *
 *  The HTTP API streams the status socket's messages to browsers and
 *  scripts (/api/v1/events, docs/HTTP.md). This module is the stream's
 *  logic without the HTTP: a ring of the last events published to
 *  streams, the streams' positions in it, their topic filters, and the
 *  text each one is owed next. The HTTP edge feeds it events and hands
 *  the bytes it produces to connections.
 *
 *  One ring, no queue per stream: a stream is a position (the pseq of the
 *  last event it was given), so ten browsers cost ten integers, and a
 *  slow one holds nothing back. A stream whose next event has left the
 *  ring gets "resync" and goes on from the newest one.
 *
 *  Resuming. A stream opened with Last-Event-ID "<boot>-<pseq>" replays
 *  what it missed when that is certain to be complete: the boot is this
 *  run's, every event after that pseq is still in the ring (`cont`), and
 *  its topic filter has been collected without a break since then (each
 *  filter remembers the pseq from which the ring has collected it, and a
 *  filter outlives its last stream by `linger_ms`, so a browser that
 *  reconnects within that time finds it). Otherwise the stream starts at
 *  the newest event after "hello" and "resync".
 *
 *  What is collected. tw_sse_wants tells the publisher whether any open
 *  or lingering filter wants a topic; events are built only then (the
 *  status socket's rule: unwatched topics cost nothing). A filter is a
 *  list of prefixes (the `topics` parameter), or the default: every
 *  topic but those starting with "task." or "s2n.".
 *
 *  Text on the wire (the WHATWG event-stream format):
 *
 *      retry: 2000\n\n                                (once, first)
 *      event: hello\nid: <boot>-<pseq>\ndata: {"boot":..,"pseq":..,"resumed":..}\n\n
 *      event: resync\ndata: {"reason":"..."}\n\n       (when events were missed)
 *      id: <boot>-<pseq>\ndata: <json>\n\n             (each event)
 *      : ping\n\n                                     (after ping_ms of silence)
 *
 *  No I/O and no clock: callers pass now_ms. Broker loop thread only.
 */
#ifndef TW_BROKER_SSE_H
#define TW_BROKER_SSE_H

#include <stddef.h>
#include <stdint.h>

#define TW_SSE_MAX_PREFIXES 32
#define TW_SSE_MAX_PREFIX 128

typedef struct tw_sse tw_sse_t;
typedef struct tw_sse_stream tw_sse_stream_t;

typedef struct {
    size_t max_events;   /* ring size in events (16384) */
    size_t max_bytes;    /* and in bytes of text (8 MiB) */
    size_t max_streams;  /* open streams at most (64) */
    uint64_t linger_ms;  /* a filter outlives its last stream (60000) */
    uint64_t ping_ms;    /* a comment after this much silence (15000) */
} tw_sse_limits_t;

/* The defaults above. */
tw_sse_limits_t tw_sse_defaults(void);

/* A new, empty ring for the broker run `boot` (written as 16 hex
 * digits). Never NULL (aborts on OOM). */
tw_sse_t *tw_sse_new(uint64_t boot, const tw_sse_limits_t *lim);

/* Free the ring and every stream still open. Sets *s_p to NULL. */
void tw_sse_destroy(tw_sse_t **s_p);

/* 1 if an open or lingering filter wants `topic`. */
int tw_sse_wants(const tw_sse_t *s, const char *topic, size_t tlen);

/* Add an event: message `pseq` (strictly above the last one added) on
 * `topic`, its data `json` (one line of JSON, the status body with the
 * topic first; copied). The oldest events leave the ring as needed. */
void tw_sse_publish(tw_sse_t *s, uint64_t pseq, const char *topic,
                    size_t tlen, const char *json, size_t jlen);

/* Open a stream. `topics` is the parameter as given (comma-separated
 * prefixes; "" for every topic), or NULL for the default filter;
 * `last_id` the Last-Event-ID header or NULL; `pseq_now` the broker's
 * latest pseq. Returns 0 and *out, or TW_EINVAL (bad topics: more than
 * TW_SSE_MAX_PREFIXES, or one longer than TW_SSE_MAX_PREFIX) or TW_EFULL
 * (max_streams open), with a one-line reason in `why`. A malformed
 * last_id is not an error: the stream gets "resync". */
int tw_sse_open(tw_sse_t *s, tw_sse_stream_t **out, const char *topics,
                const char *last_id, uint64_t pseq_now, uint64_t now_ms,
                char *why, size_t wlen);

/* Copy up to `max` bytes the stream is owed now into `buf`; returns how
 * many (0: nothing now, wait for tw_sse_publish or the ping time).
 * Events are cut across calls when they do not fit. */
size_t tw_sse_read(tw_sse_t *s, tw_sse_stream_t *st, char *buf, size_t max,
                   uint64_t now_ms);

/* 1 if tw_sse_read would return bytes now. */
int tw_sse_ready(const tw_sse_t *s, const tw_sse_stream_t *st,
                 uint64_t now_ms);

/* Close a stream; its filter lingers (see above). Sets *st_p to NULL. */
void tw_sse_close(tw_sse_t *s, tw_sse_stream_t **st_p, uint64_t now_ms);

/* Forget filters whose linger has run out. Returns the ms until the next
 * deadline (a linger or a stream's ping), or -1 if there is none. */
int64_t tw_sse_tick(tw_sse_t *s, uint64_t now_ms);

/* Open streams; events in the ring; filters kept (open or lingering). */
size_t tw_sse_streams(const tw_sse_t *s);
size_t tw_sse_events(const tw_sse_t *s);
size_t tw_sse_filters(const tw_sse_t *s);

#endif /* TW_BROKER_SSE_H */
