/*  common/cron.c - cron expressions and their next firing time (cron.h).
 *
 *  Finding the next firing is done in local wall-clock time, field by
 *  field (month, day, hour, minute, each jumping to its next allowed
 *  value), then each local candidate is mapped back to instants with
 *  tw_tz_resolve and the DST rule of cron.h is applied. Local candidates
 *  come in ascending order but their instants need not (the repeated hour),
 *  so the search keeps the best instant found and stops once no later
 *  local time can map to an earlier instant.
 */
#include "common/cron.h"
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name; /* in errors */
    int min, max;
    const char *const *names; /* 3-letter names for min.., or NULL */
} s_field_t;

static const char *const s_months[] = {"jan", "feb", "mar", "apr",
                                       "may", "jun", "jul", "aug",
                                       "sep", "oct", "nov", "dec", NULL};
static const char *const s_wdays[] = {"sun", "mon", "tue", "wed",
                                      "thu", "fri", "sat", NULL};

/* Weekdays accept 7 for Sunday; it is folded into 0 after parsing. */
static const s_field_t s_fields[5] = {
    {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},
    {"month", 1, 12, s_months},
    {"day of week", 0, 7, s_wdays},
};

static const struct {
    const char *name;
    const char *expr;
} s_macros[] = {
    {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

static int
s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return TW_EINVAL;
}

static int
s_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* A number or a name at *sp (up to `end`) for field f. */
static int
s_value(const s_field_t *f, const char **sp, const char *end, int *out,
        char *err, size_t errlen)
{
    const char *s = *sp;
    if (s < end && *s >= '0' && *s <= '9') {
        long v = 0;
        while (s < end && *s >= '0' && *s <= '9') {
            v = v * 10 + (*s++ - '0');
            if (v > 1000) {
                break;
            }
        }
        if (v < f->min || v > f->max) {
            return s_fail(err, errlen, "%s: %ld is out of range %d-%d",
                          f->name, v, f->min, f->max);
        }
        *out = (int)v;
        *sp = s;
        return 0;
    }
    const char *w = s;
    while (w < end && ((*w >= 'a' && *w <= 'z') || (*w >= 'A' && *w <= 'Z'))) {
        w++;
    }
    if (w == s) {
        if (s == end || *s == ',' || *s == '-' || *s == '/') {
            return s_fail(err, errlen, "%s: a value is missing", f->name);
        }
        return s_fail(err, errlen, "%s: unexpected character '%c'", f->name,
                      *s);
    }
    if (f->names && w - s == 3) {
        for (int i = 0; f->names[i]; i++) {
            if (s_lower(s[0]) == f->names[i][0] &&
                s_lower(s[1]) == f->names[i][1] &&
                s_lower(s[2]) == f->names[i][2]) {
                *out = f->min + i;
                *sp = w;
                return 0;
            }
        }
    }
    if (!f->names) {
        return s_fail(err, errlen, "%s: names are not allowed (\"%.*s\")",
                      f->name, (int)(w - s), s);
    }
    return s_fail(err, errlen, "%s: unknown name \"%.*s\"", f->name,
                  (int)(w - s > 16 ? 16 : w - s), s);
}

/* Parse one field's text [s, end) into a bit mask. */
static int
s_field(const s_field_t *f, const char *s, const char *end, uint64_t *mask,
        char *err, size_t errlen)
{
    *mask = 0;
    for (;;) {
        int lo, hi, step = 1, rc;
        int star = 0;
        if (s < end && *s == '*') {
            s++;
            lo = f->min;
            hi = f->max;
            star = 1;
        } else {
            if ((rc = s_value(f, &s, end, &lo, err, errlen)) != 0) {
                return rc;
            }
            hi = lo;
            if (s < end && *s == '-') {
                s++;
                if ((rc = s_value(f, &s, end, &hi, err, errlen)) != 0) {
                    return rc;
                }
                if (hi < lo) {
                    return s_fail(err, errlen,
                                  "%s: range %d-%d goes backwards", f->name,
                                  lo, hi);
                }
            }
        }
        if (s < end && *s == '/') {
            s++;
            long v = 0;
            int digits = 0;
            while (s < end && *s >= '0' && *s <= '9' && v <= 1000) {
                v = v * 10 + (*s++ - '0');
                digits++;
            }
            if (!digits) {
                return s_fail(err, errlen, "%s: a step needs a number",
                              f->name);
            }
            if (v < 1 || v > f->max) {
                return s_fail(err, errlen, "%s: step %ld is out of range "
                              "1-%d", f->name, v, f->max);
            }
            step = (int)v;
            if (!star && hi == lo) {
                hi = f->max; /* "5/10" is "5-max/10" */
            }
        }
        for (int v = lo; v <= hi; v += step) {
            *mask |= (uint64_t)1 << v;
        }
        if (s == end) {
            return 0;
        }
        if (*s != ',') {
            return s_fail(err, errlen, "%s: unexpected character '%c'",
                          f->name, *s);
        }
        s++;
    }
}

/* "@every 1h30m": the period in seconds. */
static int
s_every(const char *s, uint32_t *out, char *err, size_t errlen)
{
    uint64_t total = 0;
    int parts = 0;
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    while (*s && *s != ' ' && *s != '\t') {
        uint64_t v = 0;
        int digits = 0;
        while (*s >= '0' && *s <= '9') {
            v = v * 10 + (uint64_t)(*s++ - '0');
            if (++digits > 9) {
                return s_fail(err, errlen, "@every: number too long");
            }
        }
        uint64_t unit;
        switch (*s) {
        case 'd': unit = 86400; break;
        case 'h': unit = 3600; break;
        case 'm': unit = 60; break;
        case 's': unit = 1; break;
        default:
            return s_fail(err, errlen, "@every: a duration is numbers with "
                          "units d, h, m or s, as in 1h30m");
        }
        if (!digits) {
            return s_fail(err, errlen, "@every: a unit without a number");
        }
        s++;
        total += v * unit;
        if (total > TW_CRON_EVERY_MAX) {
            break;
        }
        parts++;
    }
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    if (*s) {
        return s_fail(err, errlen, "@every: trailing characters");
    }
    if (parts == 0 || total < 1 || total > TW_CRON_EVERY_MAX) {
        return s_fail(err, errlen, "@every: the period must be 1s to 366d");
    }
    *out = (uint32_t)total;
    return 0;
}

int
tw_cron_parse(tw_cron_t *c, const char *expr, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (err && errlen) {
        err[0] = '\0';
    }
    size_t len = strnlen(expr, TW_CRON_TEXT_MAX + 1);
    if (len > TW_CRON_TEXT_MAX) {
        return s_fail(err, errlen, "longer than %d characters",
                      TW_CRON_TEXT_MAX);
    }
    const char *s = expr;
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    if (*s == '@') {
        size_t n = strcspn(s, " \t");
        if (n == 6 && memcmp(s, "@every", 6) == 0) {
            int rc = s_every(s + 6, &c->every, err, errlen);
            c->flags = rc == 0 ? TW_CRON_EVERY | TW_CRON_WILD : 0;
            return rc;
        }
        const char *rest = s + n;
        while (*rest == ' ' || *rest == '\t') {
            rest++;
        }
        for (size_t i = 0; i < sizeof s_macros / sizeof s_macros[0]; i++) {
            if (strlen(s_macros[i].name) == n &&
                memcmp(s, s_macros[i].name, n) == 0) {
                if (*rest) {
                    return s_fail(err, errlen, "%s takes no fields",
                                  s_macros[i].name);
                }
                return tw_cron_parse(c, s_macros[i].expr, err, errlen);
            }
        }
        if (n == 7 && memcmp(s, "@reboot", 7) == 0) {
            return s_fail(err, errlen, "@reboot is not supported");
        }
        return s_fail(err, errlen, "unknown macro \"%.*s\"",
                      (int)(n > 16 ? 16 : n), s);
    }
    uint64_t mask[5];
    int nf = 0;
    while (*s) {
        const char *e = s + strcspn(s, " \t");
        if (nf == 5) {
            nf++;
            break;
        }
        int rc = s_field(&s_fields[nf], s, e, &mask[nf], err, errlen);
        if (rc != 0) {
            return rc;
        }
        if (*s == '*') {
            c->flags |= nf == 0 || nf == 1 ? TW_CRON_WILD
                        : nf == 2          ? TW_CRON_DOM_STAR
                        : nf == 4          ? TW_CRON_DOW_STAR
                                           : 0;
        }
        nf++;
        s = e;
        while (*s == ' ' || *s == '\t') {
            s++;
        }
    }
    if (nf != 5) {
        memset(c, 0, sizeof *c);
        return s_fail(err, errlen, "expected 5 fields (minute hour "
                      "day-of-month month day-of-week), found %s%d",
                      nf > 5 ? "more than " : "", nf > 5 ? 5 : nf);
    }
    c->minutes = mask[0];
    c->hours = (uint32_t)mask[1];
    c->mdays = (uint32_t)mask[2];
    c->months = (uint16_t)mask[3];
    c->wdays = (uint8_t)((mask[4] | mask[4] >> 7) & 0x7f);
    /* With both day fields needed, some named month must have a named
     * day (a leap year's February has 29). */
    if (c->flags & (TW_CRON_DOM_STAR | TW_CRON_DOW_STAR)) {
        int possible = 0;
        for (int m = 1; m <= 12 && !possible; m++) {
            if (c->months >> m & 1) {
                uint32_t days = (uint32_t)((1ull << (tw_tz_month_days(2000,
                                                        m) + 1)) - 2);
                possible = (c->mdays & days) != 0;
            }
        }
        if (!possible) {
            memset(c, 0, sizeof *c);
            return s_fail(err, errlen, "never fires: no month named has "
                          "the days named");
        }
    }
    return 0;
}

/* The smallest set bit of `mask` at or above `from` (up to 63), or -1. */
static int
s_next_bit(uint64_t mask, int from)
{
    if (from > 63) {
        return -1;
    }
    uint64_t m = mask >> from << from;
    return m ? __builtin_ctzll(m) : -1;
}

static int
s_day_ok(const tw_cron_t *c, int64_t y, int m, int d)
{
    int dom = (int)(c->mdays >> d & 1);
    int dow = c->wdays >> tw_tz_weekday(tw_tz_days(y, m, d)) & 1;
    if (c->flags & (TW_CRON_DOM_STAR | TW_CRON_DOW_STAR)) {
        return dom && dow;
    }
    return dom || dow;
}

int
tw_cron_matches(const tw_cron_t *c, int64_t local)
{
    if (c->flags & TW_CRON_EVERY) {
        return 0;
    }
    int64_t days = tw_tz_floordiv(local, 86400);
    int64_t sod = local - days * 86400;
    int64_t y;
    int m, d;
    tw_tz_civil(days, &y, &m, &d);
    return (c->months >> m & 1) && s_day_ok(c, y, m, d) &&
           (c->hours >> (sod / 3600) & 1) &&
           (c->minutes >> (sod % 3600 / 60) & 1);
}

/* The first local time at or after `from` (rounded up to a minute) that
 * matches the fields, in *out; TW_ENOENT after the year `horizon`. */
static int
s_next_local(const tw_cron_t *c, int64_t from, int64_t horizon,
             int64_t *out)
{
    int64_t mins = tw_tz_floordiv(from + 59, 60);
    int64_t days = tw_tz_floordiv(mins, 1440);
    int h = (int)(mins - days * 1440) / 60;
    int mi = (int)(mins - days * 1440) % 60;
    int64_t y;
    int mo, d;
    tw_tz_civil(days, &y, &mo, &d);
    for (;;) {
        if (y > horizon) {
            return TW_ENOENT;
        }
        if (!(c->months >> mo & 1)) {
            int nm = s_next_bit(c->months, mo + 1);
            if (nm < 0 || nm > 12) {
                y++;
                nm = s_next_bit(c->months, 1);
            }
            mo = nm;
            d = 1;
            h = mi = 0;
            continue;
        }
        if (d > tw_tz_month_days(y, mo)) {
            if (++mo > 12) {
                mo = 1;
                y++;
            }
            d = 1;
            h = mi = 0;
            continue;
        }
        if (!s_day_ok(c, y, mo, d)) {
            d++;
            h = mi = 0;
            continue;
        }
        int nh = s_next_bit(c->hours, h);
        if (nh < 0 || nh > 23) {
            d++;
            h = mi = 0;
            continue;
        }
        if (nh != h) {
            h = nh;
            mi = 0;
        }
        int nmi = s_next_bit(c->minutes, mi);
        if (nmi < 0 || nmi > 59) {
            mi = 0;
            if (++h > 23) {
                d++;
                h = 0;
            }
            continue;
        }
        *out = tw_tz_days(y, mo, d) * 86400 + h * 3600 + nmi * 60;
        return 0;
    }
}

int
tw_cron_next(const tw_cron_t *c, const tw_tz_t *tz, int64_t after,
             int64_t *next)
{
    if (after < -TW_TZ_LIMIT) {
        after = -TW_TZ_LIMIT;
    }
    if (after >= TW_TZ_LIMIT) {
        return TW_ENOENT;
    }
    if (c->flags & TW_CRON_EVERY) {
        if (c->every == 0) {
            return TW_EINVAL;
        }
        *next = (tw_tz_floordiv(after, c->every) + 1) * c->every;
        return 0;
    }
    if (c->months == 0) {
        return TW_EINVAL; /* not parsed */
    }
    int fixed = !(c->flags & TW_CRON_WILD);
    int32_t lo, hi;
    tw_tz_offsets(tz, after, after + 3 * 86400, &lo, &hi);
    /* No instant after `after` shows a local time before this. */
    int64_t local = tw_tz_floordiv(after + lo, 60) * 60;
    int64_t best = INT64_MAX, bound = INT64_MAX;
    int64_t y;
    int mo, d;
    tw_tz_civil(tw_tz_floordiv(local, 86400), &y, &mo, &d);
    int64_t horizon = y + TW_CRON_HORIZON_YEARS;
    for (;;) {
        int64_t m;
        if (s_next_local(c, local, horizon, &m) != 0 || m >= bound) {
            break;
        }
        int64_t u[2], gap = INT64_MIN, cand = INT64_MIN;
        int n = tw_tz_resolve(tz, m, u, &gap);
        if (n == 0) {
            cand = fixed ? gap : INT64_MIN;
        } else if (fixed) {
            cand = u[0];
        } else {
            cand = u[0] > after ? u[0] : n == 2 ? u[1] : INT64_MIN;
        }
        if (cand > after && cand < best) {
            best = cand;
            /* A later local time l maps to an instant >= l - max offset
             * in force before `best`, so l >= bound cannot beat it. */
            tw_tz_offsets(tz, after, best, &lo, &hi);
            bound = best + hi;
        }
        local = m + 60;
    }
    if (best == INT64_MAX) {
        return TW_ENOENT;
    }
    *next = best;
    return 0;
}
