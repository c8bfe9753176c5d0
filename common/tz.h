/*  common/tz.h - time zones read from the system's TZif files.
 *
 *  Schedules name a zone ("Europe/Berlin") and fire at local wall-clock
 *  times, so the broker must turn a UTC instant into local time and back,
 *  for any zone, at once, inside one long-running process. The C library
 *  offers this only through the process-wide TZ variable (setenv + tzset +
 *  localtime_r), which is one zone at a time, not thread-safe, and reads
 *  files behind our back. So this module reads the tz database's compiled
 *  files itself (RFC 8536, TZif versions 1 to 4, from /usr/share/zoneinfo,
 *  Debian package tzdata) into an immutable tw_tz_t that answers both
 *  questions with no I/O, no global state and no allocation.
 *
 *  A TZif file lists the UTC instants at which a zone's offset changed and,
 *  from version 2 on, ends with a POSIX TZ string ("CET-1CEST,M3.5.0,
 *  M10.5.0/3") that gives the rule for every instant after the last listed
 *  one; both are used. Leap-second files (zoneinfo/right/) are refused.
 *  The reader trusts nothing in its input: every count is checked against
 *  the length, every index against its table, and the result is fuzzed
 *  (tests/fuzz/fuzz_tz.c).
 *
 *  Times here are int64 seconds since the Unix epoch, ignoring leap
 *  seconds. A "local" time is the same count as if the zone's wall clock
 *  were UTC: local = utc + utoff. Instants outside +-TW_TZ_LIMIT seconds
 *  (about 34,000 years) are clamped. Also here: the proleptic Gregorian
 *  calendar arithmetic that the zone rules and the cron module share.
 *
 *  Threads: a tw_tz_t is read-only once made and may be shared freely.
 */
#ifndef TW_TZ_H
#define TW_TZ_H

#include <stddef.h>
#include <stdint.h>

/* Where zones are loaded from unless the caller says otherwise. */
#define TW_TZ_DIR "/usr/share/zoneinfo"

/* The longest zone name accepted ("America/Argentina/ComodRivadavia" is
 * 32 octets). */
#define TW_TZ_NAME_MAX 128

/* The largest TZif file accepted (the largest in tzdata is under 4 KiB). */
#define TW_TZ_FILE_MAX (1u << 20)

/* Instants are clamped to [-TW_TZ_LIMIT, TW_TZ_LIMIT]. */
#define TW_TZ_LIMIT ((int64_t)1 << 40)

typedef struct tw_tz tw_tz_t;

/* What holds at one instant. `abbr` is borrowed from the zone ("CEST").
 * The same offset holds over [since, until); since is INT64_MIN and until
 * INT64_MAX when unbounded. Neighbouring periods may have equal offsets. */
typedef struct {
    int32_t utoff; /* seconds east of UTC */
    int isdst;
    const char *abbr;
    int64_t since, until;
} tw_tz_info_t;

/* Read a zone from TZif bytes (`len` of them at `data`); `name` is copied
 * and is what tw_tz_name returns. Returns 0 and sets *out, or TW_EINVAL
 * with *why (may be NULL) set to a static sentence naming the defect. */
int tw_tz_parse(const void *data, size_t len, const char *name,
                tw_tz_t **out, const char **why);

/* Read zone `name` from the directory `dir` (NULL: TW_TZ_DIR). The name
 * must look like a zone name: 1..TW_TZ_NAME_MAX octets of letters,
 * digits and "._+-" in components separated by "/", none empty, "." or
 * "..", the first not starting with "-". Returns 0 and sets *out,
 * TW_EINVAL (bad name, or not a valid TZif file), TW_ENOENT (no such
 * zone) or another -errno from reading; *why says which. */
int tw_tz_load(const char *dir, const char *name, tw_tz_t **out,
               const char **why);

/* 1 if `name` (`len` octets) is shaped like a zone name (see load). */
int tw_tz_name_ok(const char *name, size_t len);

/* A zone from a POSIX TZ string such as "EST5EDT,M3.2.0,M11.1.0" or
 * "<+0545>-5:45". A DST name needs a rule. Returns 0 and sets *out, or
 * TW_EINVAL with *why set. */
int tw_tz_posix(const char *spec, tw_tz_t **out, const char **why);

/* The zone "UTC" (offset 0, never DST), made without reading a file.
 * Never NULL. */
tw_tz_t *tw_tz_utc(void);

/* Free a zone; sets *tz_p to NULL. Idempotent. */
void tw_tz_destroy(tw_tz_t **tz_p);

/* The zone's name as given to parse or load ("UTC" for tw_tz_utc, the
 * spec for tw_tz_posix). Borrowed. */
const char *tw_tz_name(const tw_tz_t *tz);

/* What holds at instant `t`. */
void tw_tz_at(const tw_tz_t *tz, int64_t t, tw_tz_info_t *out);

/* The local time at instant `t` (t + its offset). */
int64_t tw_tz_local(const tw_tz_t *tz, int64_t t);

/* The instants whose local time is `local`, ascending, in out[0..n).
 * Returns n: 1 normally; 2 when the wall clock shows `local` twice (the
 * hour repeated when DST ends); 0 when it never shows it (the hour
 * skipped when DST starts), and then *gap_end (may be NULL) is the
 * instant the clock jumped over `local`, the first one after the gap. */
int tw_tz_resolve(const tw_tz_t *tz, int64_t local, int64_t out[2],
                  int64_t *gap_end);

/* The smallest and largest offsets in force at any instant of [a, b]. */
void tw_tz_offsets(const tw_tz_t *tz, int64_t a, int64_t b, int32_t *min,
                   int32_t *max);

/* ---- RFC 3339 timestamps ---- */

/* The longest text tw_tz_format writes, with its NUL. */
#define TW_TZ_RFC3339_MAX 40

/* Read an RFC 3339 date-time (`len` octets at `s`), e.g.
 * "2025-03-30T03:00:00+02:00", "2025-03-30 01:00:00.250Z", into *ms,
 * milliseconds since the epoch (digits beyond milliseconds are
 * truncated; a leap second :60 is read as the next second). The offset is
 * required: `Z` or `+hh:mm` / `-hh:mm`. Returns 0 or TW_EINVAL with *why
 * (may be NULL) naming the fault. */
int tw_tz_rfc3339(const char *s, size_t len, int64_t *ms, const char **why);

/* Write instant `ms` as RFC 3339 in zone `tz` (NULL: UTC, written with
 * `Z`), with milliseconds only when they are not 0, into buf (cap
 * octets, TW_TZ_RFC3339_MAX is enough). Returns buf. */
const char *tw_tz_format(const tw_tz_t *tz, int64_t ms, char *buf,
                         size_t cap);

/* ---- Calendar arithmetic (proleptic Gregorian, no time zones) ---- */

/* Days since 1970-01-01 of year y, month m (1..12), day d (1..31). */
int64_t tw_tz_days(int64_t y, int m, int d);

/* The date of day `days` since 1970-01-01. */
void tw_tz_civil(int64_t days, int64_t *y, int *m, int *d);

/* The weekday of day `days` since 1970-01-01: 0 Sunday .. 6 Saturday. */
int tw_tz_weekday(int64_t days);

/* The number of days in month m (1..12) of year y. */
int tw_tz_month_days(int64_t y, int m);

/* Floor division, for turning instants into days (86400) or minutes. */
int64_t tw_tz_floordiv(int64_t a, int64_t b);

#endif /* TW_TZ_H */
