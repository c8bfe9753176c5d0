/*  broker/state/bucket.c - a token bucket in integer arithmetic (bucket.h). */
#include "broker/state/bucket.h"
#include "common/error.h"

#include <stdio.h>
#include <string.h>

int
tw_bucket_parse(const char *s, size_t len, uint64_t *rate, uint64_t *per_ms)
{
    size_t i = 0;
    uint64_t n = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        n = n * 10 + (uint64_t)(s[i++] - '0');
        if (n > TW_BUCKET_MAX) {
            return TW_EINVAL;
        }
    }
    if (i == 0 || n == 0 || i >= len || s[i] != '/') {
        return TW_EINVAL;
    }
    const char *unit = s + i + 1;
    size_t ulen = len - i - 1;
    if (ulen == 1 && unit[0] == 's') {
        *per_ms = 1000;
    } else if (ulen == 3 && memcmp(unit, "min", 3) == 0) {
        *per_ms = 60000;
    } else {
        return TW_EINVAL;
    }
    *rate = n;
    return 0;
}

const char *
tw_bucket_format(uint64_t rate, uint64_t per_ms, char *buf, size_t cap)
{
    snprintf(buf, cap, "%llu/%s", (unsigned long long)rate,
             per_ms == 60000 ? "min" : "s");
    return buf;
}

static int
s_valid(uint64_t rate, uint64_t per_ms, uint64_t burst)
{
    return rate >= 1 && rate <= TW_BUCKET_MAX && burst <= TW_BUCKET_MAX &&
           (per_ms == 1000 || per_ms == 60000);
}

/* Bring credit up to now_ms. A clock that goes back adds nothing. */
static void
s_refill(tw_bucket_t *b, uint64_t now_ms)
{
    if (now_ms <= b->last_ms) {
        return;
    }
    uint64_t elapsed = now_ms - b->last_ms;
    uint64_t cap = b->burst * b->per_ms;
    uint64_t room = cap - b->credit;
    b->last_ms = now_ms;
    if (elapsed >= room / b->rate + 1) {
        b->credit = cap;
    } else {
        b->credit += elapsed * b->rate; /* < room + rate: no overflow */
        if (b->credit > cap) {
            b->credit = cap;
        }
    }
}

int
tw_bucket_init(tw_bucket_t *b, uint64_t rate, uint64_t per_ms,
               uint64_t burst, uint64_t now_ms)
{
    if (!s_valid(rate, per_ms, burst)) {
        return TW_EINVAL;
    }
    b->rate = rate;
    b->per_ms = per_ms;
    b->burst = burst ? burst : rate;
    b->credit = b->burst * per_ms;
    b->last_ms = now_ms;
    return 0;
}

int
tw_bucket_set(tw_bucket_t *b, uint64_t rate, uint64_t per_ms,
              uint64_t burst, uint64_t now_ms)
{
    if (!s_valid(rate, per_ms, burst)) {
        return TW_EINVAL;
    }
    s_refill(b, now_ms);
    /* Keep the tokens (whole and partial) across a change of period. */
    uint64_t whole = b->credit / b->per_ms;
    uint64_t part = b->credit % b->per_ms * per_ms / b->per_ms;
    b->rate = rate;
    b->per_ms = per_ms;
    b->burst = burst ? burst : rate;
    b->credit = whole >= b->burst ? b->burst * per_ms : whole * per_ms + part;
    return 0;
}

uint64_t
tw_bucket_take(tw_bucket_t *b, uint64_t n, uint64_t now_ms)
{
    s_refill(b, now_ms);
    uint64_t have = b->credit / b->per_ms;
    uint64_t k = n < have ? n : have;
    b->credit -= k * b->per_ms;
    return k;
}

void
tw_bucket_give(tw_bucket_t *b, uint64_t n)
{
    uint64_t cap = b->burst * b->per_ms;
    uint64_t room = cap - b->credit;
    b->credit = n >= room / b->per_ms + 1 ? cap : b->credit + n * b->per_ms;
}

uint64_t
tw_bucket_tokens(tw_bucket_t *b, uint64_t now_ms)
{
    s_refill(b, now_ms);
    return b->credit / b->per_ms;
}

uint64_t
tw_bucket_wait(tw_bucket_t *b, uint64_t now_ms)
{
    s_refill(b, now_ms);
    if (b->credit >= b->per_ms) {
        return 0;
    }
    uint64_t need = b->per_ms - b->credit;
    return (need + b->rate - 1) / b->rate;
}
