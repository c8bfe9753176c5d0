/*  broker/state/bucket.h - a token bucket: a rate limit with a burst.
 *
 *  A group's rate limit (`group rate G 50/s`) is one bucket in the broker,
 *  so the limit holds across every worker of the cluster. The bucket
 *  fills at `rate` tokens per `per_ms` milliseconds up to `burst` tokens
 *  (by default one period's worth, `rate`); starting a task takes one.
 *  It is pure arithmetic on integers: no clock (callers pass now_ms, the
 *  loop's monotonic time), no allocation, no floating point, so a rate is
 *  exact over any stretch of time and unit tests drive it by hand. When
 *  the bucket is empty, tw_bucket_wait says how long until the next token,
 *  so the broker arms a timer instead of polling.
 *
 *  Credit is kept in units of 1/per_ms token: each millisecond adds
 *  `rate` units and a token costs `per_ms` units, so 1000/s is one token
 *  a millisecond and 7/min one every 8571.43 ms, with the fraction kept.
 *
 *      now advances: credit += rate * elapsed ms, up to burst * per_ms
 *      take:         credit -= per_ms, if credit >= per_ms
 *
 *  The rate is a ceiling: a bucket never holds more than `burst` tokens,
 *  so with a burst of 1 a consumer that comes back a millisecond late
 *  loses what overflowed; with the default burst a consumer that keeps up
 *  gets the rate exactly. Broker loop thread only. The state is not
 *  stored: after a restart a bucket starts full.
 */
#ifndef TW_BROKER_BUCKET_H
#define TW_BROKER_BUCKET_H

#include <stddef.h>
#include <stdint.h>

/* The largest rate and burst accepted. */
#define TW_BUCKET_MAX 1000000000ull

typedef struct {
    uint64_t rate;    /* tokens per period, 1..TW_BUCKET_MAX */
    uint64_t per_ms;  /* the period: 1000 (per second) or 60000 (minute) */
    uint64_t burst;   /* most tokens held, 1..TW_BUCKET_MAX */
    uint64_t credit;  /* in 1/per_ms tokens, <= burst * per_ms */
    uint64_t last_ms; /* when credit was brought up to date */
} tw_bucket_t;

/* Read a rate written "N/s" or "N/min" (`len` octets at `s`, N from 1 to
 * TW_BUCKET_MAX) into *rate and *per_ms. Returns 0 or TW_EINVAL. */
int tw_bucket_parse(const char *s, size_t len, uint64_t *rate,
                    uint64_t *per_ms);

/* Write `rate`/`per_ms` back as "N/s" or "N/min" into buf (cap octets,
 * at least 32). Returns buf. */
const char *tw_bucket_format(uint64_t rate, uint64_t per_ms, char *buf,
                             size_t cap);

/* A full bucket. `burst` 0 means `rate`. Returns 0, or TW_EINVAL if
 * rate, burst or per_ms is out of range (then *b is unchanged). */
int tw_bucket_init(tw_bucket_t *b, uint64_t rate, uint64_t per_ms,
                   uint64_t burst, uint64_t now_ms);

/* Change rate, period and burst (0: rate), keeping the tokens held (at
 * most the new burst). Returns 0 or TW_EINVAL (nothing changed). */
int tw_bucket_set(tw_bucket_t *b, uint64_t rate, uint64_t per_ms,
                  uint64_t burst, uint64_t now_ms);

/* Take up to `n` whole tokens; returns how many were taken. */
uint64_t tw_bucket_take(tw_bucket_t *b, uint64_t n, uint64_t now_ms);

/* Give back `n` tokens taken but not used (at most up to the burst). */
void tw_bucket_give(tw_bucket_t *b, uint64_t n);

/* Whole tokens available at now_ms. */
uint64_t tw_bucket_tokens(tw_bucket_t *b, uint64_t now_ms);

/* Milliseconds from now_ms until a token is available: 0 if one is. */
uint64_t tw_bucket_wait(tw_bucket_t *b, uint64_t now_ms);

#endif /* TW_BROKER_BUCKET_H */
