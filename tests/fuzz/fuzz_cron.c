/*  tests/fuzz/fuzz_cron.c - libFuzzer driver for cron expressions
 *  (common/cron.h).
 *
 *  The input, up to its first NUL, is an expression. One that parses is
 *  asked for its next firings in UTC and in two zones with daylight
 *  saving (northern and southern rules, built from POSIX strings so no
 *  file is read), from instants taken from the input. The contract
 *  checked: a refusal says why and leaves nothing that fires; a next time
 *  is strictly later; in UTC, a non-@every next time matches the fields
 *  and no earlier minute does; and every search ends.
 */
#include "common/cron.h"
#include "common/error.h"
#include "common/tz.h"

#include "tests/fuzz/touch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static tw_tz_t *s_zones[3];

static void
s_init(void)
{
    if (s_zones[0]) {
        return;
    }
    s_zones[0] = tw_tz_utc();
    if (tw_tz_posix("CET-1CEST,M3.5.0,M10.5.0/3", &s_zones[1], NULL) != 0 ||
        tw_tz_posix("AEST-10AEDT,M10.1.0,M4.1.0/3", &s_zones[2], NULL) !=
            0) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_init();
    char expr[TW_CRON_TEXT_MAX + 16];
    size_t n = size < sizeof expr - 1 ? size : sizeof expr - 1;
    memcpy(expr, data, n);
    expr[n] = '\0';
    tw_cron_t c;
    char err[160];
    if (tw_cron_parse(&c, expr, err, sizeof err) != 0) {
        if (!memchr(err, '\0', sizeof err) || err[0] == '\0' ||
            c.months || c.every) {
            abort();
        }
        s_touch(err, strlen(err));
        return 0;
    }
    uint64_t seed = 0;
    for (size_t i = 0; i < size; i++) {
        seed = seed * 131 + data[i];
    }
    for (int z = 0; z < 3; z++) {
        int64_t after = (int64_t)(seed % (1ull << 33)) - (1ll << 31);
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        for (int k = 0; k < 3; k++) {
            int64_t next;
            int rc = tw_cron_next(&c, s_zones[z], after, &next);
            if (rc == TW_ENOENT) {
                break;
            }
            if (rc != 0 || next <= after) {
                abort();
            }
            if (z == 0 && !(c.flags & TW_CRON_EVERY)) {
                if (!tw_cron_matches(&c, next) ||
                    (next - 60 > after && tw_cron_matches(&c, next - 60) &&
                     next % 60 == 0)) {
                    abort();
                }
            }
            after = next;
        }
    }
    return 0;
}
