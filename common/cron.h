/*  common/cron.h - cron expressions and their next firing time.
 *
 *  The broker's schedules (docs/WORKFLOWS.md) fire at the times a
 *  five-field cron expression names, in a time zone from tz.h. Parsing
 *  checks everything a user can get wrong and says which field and why;
 *  tw_cron_next answers "when, strictly after this instant, does it fire
 *  next", with no clock read and no I/O, so schedules can be tested with
 *  invented times.
 *
 *      minute hour day-of-month month day-of-week
 *
 *  Each field is `*`, a value, a range `a-b`, any of these followed by a
 *  step `/n` (every n-th value of the range: `1-30/2`; after a single
 *  value, `5/10` means `5-max/10`; after `*`, the whole range), or a comma
 *  list of them. Months take `jan`..`dec` and weekdays `sun`..`sat` (case
 *  ignored, also inside ranges); weekday 7 is Sunday, like 0. Macros:
 *  @yearly (= @annually) `0 0 1 1 *`, @monthly `0 0 1 * *`, @weekly
 *  `0 0 * * 0`, @daily (= @midnight) `0 0 * * *`, @hourly `0 * * * *`,
 *  and @every DURATION ("@every 1s", "@every 1h30m"; units d h m s), which
 *  fires at every multiple of the period since the Unix epoch, in UTC.
 *
 *  Day of month and day of week: when both fields are restricted (neither
 *  starts with `*`) a day matches if either does; otherwise both must
 *  (the Vixie/ISC rule, so `0 0 1,15 * mon` is the 1st, the 15th and every
 *  Monday).
 *
 *  Daylight-saving changes follow Vixie/ISC cron. A *fixed-time*
 *  expression (neither the minute nor the hour field starts with `*`):
 *  a time the clock skips fires once, at the instant the clock jumps (all
 *  the skipped times of one jump together fire once); a time the clock
 *  shows twice fires once, the first time. A *wildcard* expression (the
 *  minute or hour field starts with `*`, @hourly, @every) follows the
 *  clock as it runs: skipped times do not fire and repeated times fire
 *  each time the clock shows them, so `0 * * * *` still fires every hour
 *  of elapsed time. @every ignores the time zone.
 */
#ifndef TW_CRON_H
#define TW_CRON_H

#include <stddef.h>
#include <stdint.h>

#include "common/tz.h"

/* The longest expression accepted, in octets. */
#define TW_CRON_TEXT_MAX 256

/* The longest @every period: 366 days. */
#define TW_CRON_EVERY_MAX (366 * 86400)

/* tw_cron_next gives up (TW_ENOENT) after this many years. */
#define TW_CRON_HORIZON_YEARS 50

/* flags */
#define TW_CRON_DOM_STAR 1u /* the day-of-month field starts with `*` */
#define TW_CRON_DOW_STAR 2u /* the day-of-week field starts with `*` */
#define TW_CRON_WILD 4u     /* the minute or hour field starts with `*` */
#define TW_CRON_EVERY 8u    /* @every: a period in UTC */

/* A parsed expression: a plain value, copied freely, nothing to free. */
typedef struct {
    uint64_t minutes; /* bit i: minute i, 0..59 */
    uint32_t hours;   /* bit i: hour i, 0..23 */
    uint32_t mdays;   /* bit i: day i, 1..31 */
    uint16_t months;  /* bit i: month i, 1..12 */
    uint8_t wdays;    /* bit i: weekday i, 0 (Sunday)..6 */
    uint8_t flags;    /* TW_CRON_* */
    uint32_t every;   /* @every: the period in seconds */
} tw_cron_t;

/* Parse `expr` (a NUL-terminated string) into *c. Returns 0, or TW_EINVAL
 * with a sentence naming the field and the fault written to `err`
 * (`errlen` octets; may be NULL), e.g. "day of week: unknown name
 * \"sux\"". Expressions that can never fire ("0 0 30 2 *") are refused
 * too. */
int tw_cron_parse(tw_cron_t *c, const char *expr, char *err, size_t errlen);

/* The first instant strictly after `after` (seconds since the epoch) at
 * which `c` fires in zone `tz`, in *next. Returns 0, or TW_ENOENT if it
 * does not fire within TW_CRON_HORIZON_YEARS. */
int tw_cron_next(const tw_cron_t *c, const tw_tz_t *tz, int64_t after,
                 int64_t *next);

/* 1 if the local wall-clock time `local` (tz.h) matches the fields of `c`
 * (never for @every). */
int tw_cron_matches(const tw_cron_t *c, int64_t local);

#endif /* TW_CRON_H */
