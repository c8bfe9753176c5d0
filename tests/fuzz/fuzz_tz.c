/*  tests/fuzz/fuzz_tz.c - libFuzzer driver for the TZif reader and the
 *  POSIX TZ strings behind it (common/tz.h).
 *
 *  An input starting with "TZif" is a zone file; one starting with "@" is
 *  an RFC 3339 timestamp after the "@" (which must read back the same
 *  instant once written out again); anything else is a POSIX TZ string
 *  (the bytes up to the first NUL). A zone that parses is then
 *  asked about instants taken from the input and at the edges of time.
 *  The contract checked: a refusal gives a reason; a lookup's period
 *  holds the instant and its offset is within RFC 8536's range; every
 *  instant tw_tz_resolve returns shows the local time asked for, and a
 *  gap's end is where the clock passed it; tw_tz_offsets brackets every
 *  lookup it covers; and every loop ends.
 */
#include "common/error.h"
#include "common/tz.h"

#include "tests/fuzz/touch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int64_t
s_word(const uint8_t *data, size_t size, size_t i)
{
    uint64_t v = 0;
    for (size_t k = 0; k < 8; k++) {
        v = v << 8 | (size ? data[(i * 8 + k) % size] : 0);
    }
    /* Mostly within the years people use, sometimes anywhere. */
    return (v & 1) ? (int64_t)v : (int64_t)(v % (1ull << 34)) - (1ll << 32);
}

static void
s_probe(const tw_tz_t *tz, int64_t t)
{
    tw_tz_info_t in;
    tw_tz_at(tz, t, &in);
    if (in.utoff < -89999 || in.utoff > 93599 || !in.abbr) {
        abort();
    }
    s_touch(in.abbr, strlen(in.abbr));
    int64_t c = t < -TW_TZ_LIMIT ? -TW_TZ_LIMIT
                : t > TW_TZ_LIMIT ? TW_TZ_LIMIT
                                  : t;
    if (!(in.since <= c && c < in.until)) {
        abort();
    }
    int64_t local = tw_tz_local(tz, c), u[2], gap = 0;
    int n = tw_tz_resolve(tz, local, u, &gap);
    if (n < 0 || n > 2) {
        abort();
    }
    for (int k = 0; k < n; k++) {
        if (c > -TW_TZ_LIMIT + 200000 && c < TW_TZ_LIMIT - 200000 &&
            tw_tz_local(tz, u[k]) != local) {
            abort();
        }
    }
    int32_t lo, hi;
    tw_tz_offsets(tz, c - 86400, c + 86400, &lo, &hi);
    if (lo > in.utoff || hi < in.utoff) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tw_tz_t *tz = NULL;
    const char *why = NULL;
    int rc;
    if (size >= 1 && data[0] == '@') {
        int64_t ms, back;
        if (tw_tz_rfc3339((const char *)data + 1, size - 1, &ms, &why) !=
            0) {
            if (!why) {
                abort();
            }
            return 0;
        }
        char buf[TW_TZ_RFC3339_MAX];
        tw_tz_format(NULL, ms, buf, sizeof buf);
        if (ms >= 0 &&
            (tw_tz_rfc3339(buf, strlen(buf), &back, &why) != 0 ||
             back != ms)) {
            abort();
        }
        return 0;
    }
    if (size >= 4 && memcmp(data, "TZif", 4) == 0) {
        rc = tw_tz_parse(data, size, "fuzz", &tz, &why);
    } else {
        char spec[600];
        size_t n = size < sizeof spec - 1 ? size : sizeof spec - 1;
        memcpy(spec, data, n);
        spec[n] = '\0';
        rc = tw_tz_posix(spec, &tz, &why);
    }
    if (rc != 0) {
        if (rc != TW_EINVAL || !why || tz) {
            abort();
        }
        s_touch(why, strlen(why));
        return 0;
    }
    s_touch(tw_tz_name(tz), strlen(tw_tz_name(tz)));
    for (size_t i = 0; i < 6; i++) {
        s_probe(tz, s_word(data, size, i));
    }
    s_probe(tz, INT64_MIN);
    s_probe(tz, INT64_MAX);
    s_probe(tz, 0);
    tw_tz_destroy(&tz);
    return 0;
}
