/*  common/tz.c - time zones read from TZif files (see tz.h).
 *
 *  A zone is a table of transitions (ascending UTC instants, each naming a
 *  local time type) plus, optionally, the POSIX rule that continues it
 *  after the last transition. Lookups binary-search the table; past its
 *  end the rule's transitions are computed for the years around the
 *  instant asked about. Nothing is cached, so a zone is immutable.
 */
#include "common/tz.h"
#include "common/alloc.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* RFC 8536 3.2: utoff in -89999 .. 93599 (-24:59:59 .. +25:59:59). */
#define S_UTOFF_MIN (-89999)
#define S_UTOFF_MAX 93599

/* Abbreviations kept from a POSIX rule ("CEST", "+0545"). */
#define S_ABBR_MAX 15

/* The longest footer (POSIX TZ string) accepted. */
#define S_FOOTER_MAX 512

typedef struct {
    int32_t utoff;
    uint8_t isdst;
    uint32_t abbr; /* offset into tz->chars */
} s_type_t;

/* One end of a rule's DST period: a day of the year and a local time. */
typedef struct {
    char kind;     /* 'J': Julian 1..365 (no Feb 29), 'D': 0..365, 'M' */
    int n;         /* J and D */
    int m, w, d;   /* M: month 1..12, week 1..5 (5 = last), weekday 0..6 */
    int32_t secs;  /* local time of day, -167h .. 167h */
} s_date_t;

typedef struct {
    int32_t std_off, dst_off;
    char std_abbr[S_ABBR_MAX + 1], dst_abbr[S_ABBR_MAX + 1];
    int has_dst;
    s_date_t start, end;
} s_rule_t;

struct tw_tz {
    char *name;
    size_t ntrans;
    int64_t *trans;
    uint8_t *tidx;
    size_t ntypes;
    s_type_t *types;
    char *chars; /* the designations, with a NUL appended */
    size_t nchars;
    int has_rule;
    s_rule_t rule;
};

/* ------------------------------------------------------------ calendar */

int64_t
tw_tz_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        q--;
    }
    return q;
}

int64_t
tw_tz_days(int64_t y, int m, int d)
{
    /* Count from 0000-03-01 so the leap day ends the year, in 400-year
     * eras of 146097 days. */
    y -= m <= 2;
    int64_t era = tw_tz_floordiv(y, 400);
    int64_t yoe = y - era * 400;
    int64_t mp = m > 2 ? m - 3 : m + 9;
    int64_t doy = (153 * mp + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void
tw_tz_civil(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = tw_tz_floordiv(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int dd = (int)(doy - (153 * mp + 2) / 5 + 1);
    int mm = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (mm <= 2);
    *m = mm;
    *d = dd;
}

int
tw_tz_weekday(int64_t days)
{
    /* 1970-01-01 was a Thursday (4). */
    int64_t r = (days + 4) % 7;
    return (int)(r < 0 ? r + 7 : r);
}

static int
s_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int
tw_tz_month_days(int64_t y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30,
                                31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12) {
        return 0;
    }
    return len[m - 1] + (m == 2 && s_leap(y));
}

static int64_t
s_clamp(int64_t t)
{
    if (t < -TW_TZ_LIMIT) {
        return -TW_TZ_LIMIT;
    }
    if (t > TW_TZ_LIMIT) {
        return TW_TZ_LIMIT;
    }
    return t;
}

/* ---------------------------------------------------------- POSIX rule */

/* The day (since the epoch) that `dt` names in year y. */
static int64_t
s_rule_day(const s_date_t *dt, int64_t y)
{
    int64_t jan1 = tw_tz_days(y, 1, 1);
    switch (dt->kind) {
    case 'J':
        return jan1 + dt->n - 1 + (s_leap(y) && dt->n >= 60);
    case 'D':
        return jan1 + dt->n;
    default: {
        int64_t first = tw_tz_days(y, dt->m, 1);
        int64_t day = first + (dt->d - tw_tz_weekday(first) + 7) % 7 +
                      (int64_t)(dt->w - 1) * 7;
        while (day - first >= tw_tz_month_days(y, dt->m)) {
            day -= 7; /* week 5: the last such weekday */
        }
        return day;
    }
    }
}

typedef struct {
    int64_t t;
    int dst;
} s_event_t;

/* What the rule says at `t` (the rule has DST). */
static void
s_rule_at(const s_rule_t *r, int64_t t, tw_tz_info_t *out)
{
    int64_t y;
    int m, d;
    tw_tz_civil(tw_tz_floordiv(t, 86400), &y, &m, &d);
    /* A rule's dates move by at most a week (times up to 167 h) from
     * their calendar year, so years y-2..y+2 surround t with events. */
    s_event_t ev[10];
    size_t n = 0;
    for (int64_t yy = y - 2; yy <= y + 2; yy++) {
        ev[n].t = s_rule_day(&r->start, yy) * 86400 + r->start.secs -
                  r->std_off;
        ev[n++].dst = 1;
        ev[n].t = s_rule_day(&r->end, yy) * 86400 + r->end.secs -
                  r->dst_off;
        ev[n++].dst = 0;
    }
    /* Insertion sort; at equal instants the end goes first, so a rule
     * whose DST ends as the next one starts stays in DST. */
    for (size_t i = 1; i < n; i++) {
        s_event_t e = ev[i];
        size_t j = i;
        while (j > 0 && (ev[j - 1].t > e.t ||
                         (ev[j - 1].t == e.t && ev[j - 1].dst > e.dst))) {
            ev[j] = ev[j - 1];
            j--;
        }
        ev[j] = e;
    }
    size_t k = 0;
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].t <= t) {
            k = i;
            found = 1;
        }
    }
    int dst = found ? ev[k].dst : !ev[0].dst;
    out->since = found ? ev[k].t : INT64_MIN;
    out->until = INT64_MAX;
    for (size_t i = found ? k + 1 : 0; i < n; i++) {
        if (ev[i].dst != dst && ev[i].t > t) {
            out->until = ev[i].t;
            break;
        }
    }
    out->utoff = dst ? r->dst_off : r->std_off;
    out->isdst = dst;
    out->abbr = dst ? r->dst_abbr : r->std_abbr;
}

/* A zone name in a POSIX string: 3+ letters, or <3+ of [A-Za-z0-9+-]>. */
static int
s_posix_abbr(const char **sp, char *out)
{
    const char *s = *sp;
    size_t n = 0;
    if (*s == '<') {
        s++;
        while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
               (*s >= '0' && *s <= '9') || *s == '+' || *s == '-') {
            if (n >= S_ABBR_MAX) {
                return -1;
            }
            out[n++] = *s++;
        }
        if (*s != '>') {
            return -1;
        }
        s++;
    } else {
        while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')) {
            if (n >= S_ABBR_MAX) {
                return -1;
            }
            out[n++] = *s++;
        }
    }
    if (n < 3) {
        return -1;
    }
    out[n] = '\0';
    *sp = s;
    return 0;
}

/* A decimal of at most `maxdig` digits, 0..max. */
static int
s_posix_num(const char **sp, int maxdig, int max, int *out)
{
    const char *s = *sp;
    int v = 0, n = 0;
    while (*s >= '0' && *s <= '9') {
        if (++n > maxdig) {
            return -1;
        }
        v = v * 10 + (*s++ - '0');
    }
    if (n == 0 || v > max) {
        return -1;
    }
    *out = v;
    *sp = s;
    return 0;
}

/* [+-]hh[:mm[:ss]] with hh <= maxh, as signed seconds. */
static int
s_posix_hms(const char **sp, int maxh, int32_t *out)
{
    const char *s = *sp;
    int sign = 1;
    if (*s == '+' || *s == '-') {
        sign = *s++ == '-' ? -1 : 1;
    }
    int h, m = 0, sec = 0;
    if (s_posix_num(&s, 3, maxh, &h) != 0) {
        return -1;
    }
    if (*s == ':') {
        s++;
        if (s_posix_num(&s, 2, 59, &m) != 0) {
            return -1;
        }
        if (*s == ':') {
            s++;
            if (s_posix_num(&s, 2, 59, &sec) != 0) {
                return -1;
            }
        }
    }
    *out = sign * (h * 3600 + m * 60 + sec);
    *sp = s;
    return 0;
}

/* Jn, n or Mm.w.d, then an optional /time (default 02:00). */
static int
s_posix_date(const char **sp, s_date_t *dt)
{
    const char *s = *sp;
    memset(dt, 0, sizeof *dt);
    if (*s == 'J') {
        s++;
        dt->kind = 'J';
        if (s_posix_num(&s, 3, 365, &dt->n) != 0 || dt->n < 1) {
            return -1;
        }
    } else if (*s == 'M') {
        s++;
        dt->kind = 'M';
        if (s_posix_num(&s, 2, 12, &dt->m) != 0 || dt->m < 1 ||
            *s++ != '.' || s_posix_num(&s, 1, 5, &dt->w) != 0 ||
            dt->w < 1 || *s++ != '.' || s_posix_num(&s, 1, 6, &dt->d) != 0) {
            return -1;
        }
    } else {
        dt->kind = 'D';
        if (s_posix_num(&s, 3, 365, &dt->n) != 0) {
            return -1;
        }
    }
    dt->secs = 7200;
    if (*s == '/') {
        s++;
        /* RFC 8536 3.3.1 extends the hours to -167..167. */
        if (s_posix_hms(&s, 167, &dt->secs) != 0) {
            return -1;
        }
    }
    *sp = s;
    return 0;
}

/* Parse `len` octets of POSIX TZ string into *r; 1 if it has a rule. */
static int
s_posix_parse(const char *spec, size_t len, s_rule_t *r, const char **why)
{
    char buf[S_FOOTER_MAX + 1];
    if (len > S_FOOTER_MAX) {
        *why = "POSIX TZ string too long";
        return TW_EINVAL;
    }
    memcpy(buf, spec, len);
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        *why = "POSIX TZ string holds a NUL";
        return TW_EINVAL;
    }
    memset(r, 0, sizeof *r);
    const char *s = buf;
    int32_t off;
    if (s_posix_abbr(&s, r->std_abbr) != 0) {
        *why = "POSIX TZ string: bad standard-time name";
        return TW_EINVAL;
    }
    /* POSIX offsets count west of Greenwich: "EST5" is UTC-5. */
    if (s_posix_hms(&s, 24, &off) != 0) {
        *why = "POSIX TZ string: bad offset";
        return TW_EINVAL;
    }
    r->std_off = -off;
    if (*s == '\0') {
        return 0;
    }
    if (s_posix_abbr(&s, r->dst_abbr) != 0) {
        *why = "POSIX TZ string: bad daylight-time name";
        return TW_EINVAL;
    }
    r->has_dst = 1;
    r->dst_off = r->std_off + 3600;
    if (*s != ',' && *s != '\0') {
        if (s_posix_hms(&s, 24, &off) != 0) {
            *why = "POSIX TZ string: bad daylight-time offset";
            return TW_EINVAL;
        }
        r->dst_off = -off;
    }
    if (*s != ',') {
        *why = "POSIX TZ string: daylight time without a rule";
        return TW_EINVAL;
    }
    s++;
    if (s_posix_date(&s, &r->start) != 0 || *s++ != ',' ||
        s_posix_date(&s, &r->end) != 0) {
        *why = "POSIX TZ string: bad rule";
        return TW_EINVAL;
    }
    if (*s != '\0') {
        *why = "POSIX TZ string: trailing characters";
        return TW_EINVAL;
    }
    return 0;
}

/* --------------------------------------------------------------- TZif */

typedef struct {
    int version; /* 1..4 */
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} s_hdr_t;

#define S_HDR_LEN 44

static uint32_t
s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

static int64_t
s_be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)s_be32(p) << 32 | s_be32(p + 4));
}

static int
s_header(const uint8_t *p, size_t len, s_hdr_t *h, const char **why)
{
    if (len < S_HDR_LEN) {
        *why = "shorter than a TZif header";
        return TW_EINVAL;
    }
    if (memcmp(p, "TZif", 4) != 0) {
        *why = "not a TZif file (bad magic)";
        return TW_EINVAL;
    }
    if (p[4] == 0) {
        h->version = 1;
    } else if (p[4] >= '2' && p[4] <= '4') {
        h->version = p[4] - '0';
    } else {
        *why = "unknown TZif version";
        return TW_EINVAL;
    }
    h->isutcnt = s_be32(p + 20);
    h->isstdcnt = s_be32(p + 24);
    h->leapcnt = s_be32(p + 28);
    h->timecnt = s_be32(p + 32);
    h->typecnt = s_be32(p + 36);
    h->charcnt = s_be32(p + 40);
    return 0;
}

/* The size of a data block described by `h` with `tsize`-octet times. */
static uint64_t
s_block_len(const s_hdr_t *h, unsigned tsize)
{
    return (uint64_t)h->timecnt * (tsize + 1) + (uint64_t)h->typecnt * 6 +
           h->charcnt + (uint64_t)h->leapcnt * (tsize + 4) + h->isstdcnt +
           h->isutcnt;
}

static tw_tz_t *
s_tz_new(const char *name)
{
    tw_tz_t *tz = tw_calloc(1, sizeof *tz);
    tz->name = tw_strdup(name ? name : "");
    return tz;
}

/* Read the data block at p (its length checked by the caller). */
static int
s_block(tw_tz_t *tz, const s_hdr_t *h, const uint8_t *p, unsigned tsize,
        const char **why)
{
    if (h->typecnt < 1 || h->typecnt > 256) {
        *why = "TZif: the number of local time types is not 1..256";
        return TW_EINVAL;
    }
    if (h->charcnt < 1) {
        *why = "TZif: no time zone designations";
        return TW_EINVAL;
    }
    if ((h->isutcnt != 0 && h->isutcnt != h->typecnt) ||
        (h->isstdcnt != 0 && h->isstdcnt != h->typecnt)) {
        *why = "TZif: indicator counts do not match the types";
        return TW_EINVAL;
    }
    if (h->leapcnt != 0) {
        *why = "TZif: leap-second zones (right/) are not supported";
        return TW_EINVAL;
    }
    tz->ntrans = h->timecnt;
    tz->trans = tw_malloc((h->timecnt ? h->timecnt : 1) * sizeof(int64_t));
    tz->tidx = tw_malloc(h->timecnt ? h->timecnt : 1);
    for (size_t i = 0; i < h->timecnt; i++, p += tsize) {
        tz->trans[i] = tsize == 4 ? (int64_t)(int32_t)s_be32(p)
                                  : s_be64(p);
        if (i > 0 && tz->trans[i] <= tz->trans[i - 1]) {
            *why = "TZif: transition times not ascending";
            return TW_EINVAL;
        }
    }
    for (size_t i = 0; i < h->timecnt; i++) {
        tz->tidx[i] = p[i];
        if (p[i] >= h->typecnt) {
            *why = "TZif: a transition names an unknown type";
            return TW_EINVAL;
        }
    }
    p += h->timecnt;
    tz->ntypes = h->typecnt;
    tz->types = tw_malloc(h->typecnt * sizeof *tz->types);
    for (size_t i = 0; i < h->typecnt; i++, p += 6) {
        int32_t utoff = (int32_t)s_be32(p);
        if (utoff < S_UTOFF_MIN || utoff > S_UTOFF_MAX) {
            *why = "TZif: a UT offset is out of range";
            return TW_EINVAL;
        }
        if (p[4] > 1) {
            *why = "TZif: a DST flag is not 0 or 1";
            return TW_EINVAL;
        }
        if (p[5] >= h->charcnt) {
            *why = "TZif: a designation index is out of range";
            return TW_EINVAL;
        }
        tz->types[i].utoff = utoff;
        tz->types[i].isdst = p[4];
        tz->types[i].abbr = p[5];
    }
    tz->nchars = h->charcnt;
    tz->chars = tw_malloc((size_t)h->charcnt + 1);
    memcpy(tz->chars, p, h->charcnt);
    tz->chars[h->charcnt] = '\0';
    /* Leap records (none), then the indicators, which only matter for
     * POSIX strings without rules, which are refused. */
    return 0;
}

int
tw_tz_parse(const void *data, size_t len, const char *name, tw_tz_t **out,
            const char **why)
{
    const char *dummy;
    if (!why) {
        why = &dummy;
    }
    *why = NULL;
    const uint8_t *p = data;
    s_hdr_t h;
    int rc = s_header(p, len, &h, why);
    if (rc != 0) {
        return rc;
    }
    uint64_t v1 = s_block_len(&h, 4);
    if (v1 > len - S_HDR_LEN) {
        *why = "TZif: truncated data block";
        return TW_EINVAL;
    }
    unsigned tsize = 4;
    const uint8_t *blk = p + S_HDR_LEN;
    const uint8_t *end = p + S_HDR_LEN + v1;
    if (h.version >= 2) {
        /* Skip the 32-bit block; use the second header's 64-bit one. */
        const uint8_t *h2 = p + S_HDR_LEN + v1;
        size_t left = len - S_HDR_LEN - (size_t)v1;
        int version = h.version;
        rc = s_header(h2, left, &h, why);
        if (rc != 0) {
            return rc;
        }
        if (h.version != version) {
            *why = "TZif: the two headers disagree on the version";
            return TW_EINVAL;
        }
        tsize = 8;
        uint64_t v2 = s_block_len(&h, 8);
        if (v2 > left - S_HDR_LEN) {
            *why = "TZif: truncated 64-bit data block";
            return TW_EINVAL;
        }
        blk = h2 + S_HDR_LEN;
        end = blk + v2;
    }
    tw_tz_t *tz = s_tz_new(name);
    rc = s_block(tz, &h, blk, tsize, why);
    if (rc == 0 && h.version >= 2) {
        size_t left = len - (size_t)(end - p);
        const uint8_t *nl = left > 1 ? memchr(end + 1, '\n', left - 1)
                                     : NULL;
        if (left < 2 || end[0] != '\n' || !nl) {
            *why = "TZif: missing footer";
            rc = TW_EINVAL;
        } else if (nl > end + 1) {
            rc = s_posix_parse((const char *)end + 1,
                               (size_t)(nl - end - 1), &tz->rule, why);
            tz->has_rule = rc == 0;
        }
    }
    if (rc != 0) {
        tw_tz_destroy(&tz);
        return rc;
    }
    *out = tz;
    return 0;
}

int
tw_tz_name_ok(const char *name, size_t len)
{
    if (!name || len == 0 || len > TW_TZ_NAME_MAX || name[0] == '-') {
        return 0;
    }
    size_t comp = 0; /* length of the current component */
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? name[i] : '/';
        if (c == '/') {
            if (comp == 0 || (comp == 1 && name[i - 1] == '.') ||
                (comp == 2 && name[i - 1] == '.' && name[i - 2] == '.')) {
                return 0;
            }
            comp = 0;
            continue;
        }
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '+' ||
              c == '-')) {
            return 0;
        }
        comp++;
    }
    return 1;
}

int
tw_tz_load(const char *dir, const char *name, tw_tz_t **out,
           const char **why)
{
    const char *dummy;
    if (!why) {
        why = &dummy;
    }
    if (!name || !tw_tz_name_ok(name, strlen(name))) {
        *why = "not a time zone name";
        return TW_EINVAL;
    }
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir ? dir : TW_TZ_DIR,
                     name);
    if (n < 0 || (size_t)n >= sizeof path) {
        *why = "time zone path too long";
        return TW_EINVAL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        *why = e == ENOENT || e == ENOTDIR ? "no such time zone"
                                           : "cannot open the zone file";
        return e == ENOTDIR ? TW_ENOENT : -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > (off_t)TW_TZ_FILE_MAX) {
        close(fd);
        *why = "not a time zone file";
        return TW_EINVAL;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = tw_malloc(size ? size : 1);
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    int rc = got == size ? tw_tz_parse(buf, size, name, out, why)
                         : (*why = "cannot read the zone file", TW_EIO);
    tw_free(buf);
    return rc;
}

int
tw_tz_posix(const char *spec, tw_tz_t **out, const char **why)
{
    const char *dummy;
    if (!why) {
        why = &dummy;
    }
    s_rule_t r;
    int rc = s_posix_parse(spec, strlen(spec), &r, why);
    if (rc != 0) {
        return rc;
    }
    tw_tz_t *tz = s_tz_new(spec);
    tz->types = tw_calloc(1, sizeof *tz->types);
    tz->ntypes = 1;
    tz->types[0].utoff = r.std_off;
    tz->chars = tw_strdup(r.std_abbr);
    tz->nchars = strlen(r.std_abbr);
    tz->rule = r;
    tz->has_rule = 1;
    *out = tz;
    return 0;
}

tw_tz_t *
tw_tz_utc(void)
{
    tw_tz_t *tz;
    int rc = tw_tz_posix("UTC0", &tz, NULL);
    (void)rc; /* a constant that parses */
    tw_free(tz->name);
    tz->name = tw_strdup("UTC");
    return tz;
}

void
tw_tz_destroy(tw_tz_t **tz_p)
{
    tw_tz_t *tz = *tz_p;
    if (!tz) {
        return;
    }
    tw_free(tz->name);
    tw_free(tz->trans);
    tw_free(tz->tidx);
    tw_free(tz->types);
    tw_free(tz->chars);
    tw_free(tz);
    *tz_p = NULL;
}

const char *
tw_tz_name(const tw_tz_t *tz)
{
    return tz->name;
}

/* ------------------------------------------------------------- lookups */

static void
s_type_info(const tw_tz_t *tz, size_t type, tw_tz_info_t *out)
{
    const s_type_t *ty = &tz->types[type];
    out->utoff = ty->utoff;
    out->isdst = ty->isdst;
    out->abbr = tz->chars + ty->abbr;
}

void
tw_tz_at(const tw_tz_t *tz, int64_t t, tw_tz_info_t *out)
{
    t = s_clamp(t);
    if (tz->ntrans == 0 || t < tz->trans[0]) {
        if (tz->ntrans == 0 && tz->has_rule && tz->rule.has_dst) {
            s_rule_at(&tz->rule, t, out);
            return;
        }
        if (tz->ntrans == 0 && tz->has_rule) {
            out->utoff = tz->rule.std_off;
            out->isdst = 0;
            out->abbr = tz->rule.std_abbr;
        } else {
            s_type_info(tz, 0, out);
        }
        out->since = INT64_MIN;
        out->until = tz->ntrans ? tz->trans[0] : INT64_MAX;
        return;
    }
    /* The last transition at or before t. */
    size_t lo = 0, hi = tz->ntrans;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if (lo == tz->ntrans - 1 && tz->has_rule) {
        if (tz->rule.has_dst) {
            s_rule_at(&tz->rule, t, out);
        } else {
            out->utoff = tz->rule.std_off;
            out->isdst = 0;
            out->abbr = tz->rule.std_abbr;
            out->until = INT64_MAX;
            out->since = INT64_MIN;
        }
        if (out->since < tz->trans[lo]) {
            out->since = tz->trans[lo];
        }
        return;
    }
    s_type_info(tz, tz->tidx[lo], out);
    out->since = tz->trans[lo];
    out->until = lo + 1 < tz->ntrans ? tz->trans[lo + 1] : INT64_MAX;
}

int64_t
tw_tz_local(const tw_tz_t *tz, int64_t t)
{
    tw_tz_info_t in;
    t = s_clamp(t);
    tw_tz_at(tz, t, &in);
    return t + in.utoff;
}

int
tw_tz_resolve(const tw_tz_t *tz, int64_t local, int64_t out[2],
              int64_t *gap_end)
{
    local = s_clamp(local);
    /* Any instant showing `local` lies within the widest offsets of it. */
    int64_t lo = local - S_UTOFF_MAX - 1, hi = local - S_UTOFF_MIN + 1;
    tw_tz_info_t in;
    tw_tz_at(tz, lo, &in);
    int n = 0;
    int64_t gap = INT64_MIN;
    for (;;) {
        int64_t u = local - in.utoff;
        if (u >= in.since && u < in.until && n < 2 &&
            (n == 0 || out[n - 1] != u)) {
            out[n++] = u;
        }
        if (in.until == INT64_MAX || in.until > hi) {
            break;
        }
        int64_t boundary = in.until;
        int32_t before = in.utoff;
        tw_tz_at(tz, boundary, &in);
        if (in.until <= boundary) {
            break; /* clamped at TW_TZ_LIMIT */
        }
        if (gap == INT64_MIN && local >= boundary + before &&
            local < boundary + in.utoff) {
            gap = boundary;
        }
    }
    if (n == 0 && gap_end) {
        /* No instant shows `local`, so a forward jump passed it. */
        *gap_end = gap != INT64_MIN ? gap : local - in.utoff;
    }
    return n;
}

void
tw_tz_offsets(const tw_tz_t *tz, int64_t a, int64_t b, int32_t *min,
              int32_t *max)
{
    tw_tz_info_t in;
    a = s_clamp(a);
    b = s_clamp(b);
    tw_tz_at(tz, a, &in);
    *min = *max = in.utoff;
    while (in.until != INT64_MAX && in.until <= b) {
        int64_t boundary = in.until;
        tw_tz_at(tz, boundary, &in);
        if (in.until <= boundary) {
            break; /* clamped at TW_TZ_LIMIT */
        }
        if (in.utoff < *min) {
            *min = in.utoff;
        }
        if (in.utoff > *max) {
            *max = in.utoff;
        }
    }
}

/* ---------------------------------------------------------- RFC 3339 */

/* Exactly `n` digits at s[*i], as a number no larger than `max`. */
static int
s_digits(const char *s, size_t len, size_t *i, int n, int max, int *out)
{
    int v = 0;
    for (int k = 0; k < n; k++, (*i)++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9') {
            return -1;
        }
        v = v * 10 + (s[*i] - '0');
    }
    if (v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

static int
s_expect(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c) {
        return -1;
    }
    (*i)++;
    return 0;
}

int
tw_tz_rfc3339(const char *s, size_t len, int64_t *ms, const char **why)
{
    const char *dummy;
    if (!why) {
        why = &dummy;
    }
    size_t i = 0;
    int y, mo, d, h, mi, sec;
    if (s_digits(s, len, &i, 4, 9999, &y) || s_expect(s, len, &i, '-') ||
        s_digits(s, len, &i, 2, 12, &mo) || mo < 1 ||
        s_expect(s, len, &i, '-') || s_digits(s, len, &i, 2, 31, &d) ||
        d < 1) {
        *why = "expected a date YYYY-MM-DD";
        return TW_EINVAL;
    }
    if (d > tw_tz_month_days(y, mo)) {
        *why = "no such day in that month";
        return TW_EINVAL;
    }
    if (i >= len || (s[i] != 'T' && s[i] != 't' && s[i] != ' ')) {
        *why = "expected T between the date and the time";
        return TW_EINVAL;
    }
    i++;
    if (s_digits(s, len, &i, 2, 23, &h) || s_expect(s, len, &i, ':') ||
        s_digits(s, len, &i, 2, 59, &mi) || s_expect(s, len, &i, ':') ||
        s_digits(s, len, &i, 2, 60, &sec)) {
        *why = "expected a time hh:mm:ss";
        return TW_EINVAL;
    }
    int frac = 0;
    if (i < len && s[i] == '.') {
        i++;
        int n = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (n < 3) {
                frac = frac * 10 + (s[i] - '0');
            }
            n++;
            i++;
        }
        if (n == 0) {
            *why = "expected digits after the decimal point";
            return TW_EINVAL;
        }
        for (; n < 3; n++) {
            frac *= 10;
        }
    }
    int off = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i++] == '-' ? -1 : 1;
        int oh, om;
        if (s_digits(s, len, &i, 2, 23, &oh) || s_expect(s, len, &i, ':') ||
            s_digits(s, len, &i, 2, 59, &om)) {
            *why = "expected an offset +hh:mm";
            return TW_EINVAL;
        }
        off = sign * (oh * 3600 + om * 60);
    } else {
        *why = "expected an offset: Z or +hh:mm";
        return TW_EINVAL;
    }
    if (i != len) {
        *why = "trailing characters after the offset";
        return TW_EINVAL;
    }
    int64_t t = tw_tz_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
                off;
    *ms = t * 1000 + frac;
    return 0;
}

const char *
tw_tz_format(const tw_tz_t *tz, int64_t ms, char *buf, size_t cap)
{
    int64_t t = tw_tz_floordiv(ms, 1000);
    int frac = (int)(ms - t * 1000);
    int32_t utoff = 0;
    if (tz) {
        tw_tz_info_t in;
        tw_tz_at(tz, t, &in);
        utoff = in.utoff;
    }
    int64_t local = s_clamp(t) + utoff;
    int64_t days = tw_tz_floordiv(local, 86400), y;
    int sod = (int)(local - days * 86400), mo, d;
    tw_tz_civil(days, &y, &mo, &d);
    char fr[8] = "", off[8] = "Z";
    if (frac) {
        snprintf(fr, sizeof fr, ".%03d", frac);
    }
    if (tz) {
        int a = utoff < 0 ? -utoff : utoff;
        snprintf(off, sizeof off, "%c%02d:%02d", utoff < 0 ? '-' : '+',
                 a / 3600 % 100, a % 3600 / 60);
    }
    snprintf(buf, cap, "%04lld-%02d-%02dT%02d:%02d:%02d%s%s", (long long)y,
             mo, d, sod / 3600, sod % 3600 / 60, sod % 60, fr, off);
    return buf;
}
