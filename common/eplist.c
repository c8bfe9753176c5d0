/*  common/eplist.c - a list of broker endpoints (see eplist.h). */
#include "common/eplist.h"
#include "common/alloc.h"
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct tw_eplist {
    char ep[TW_EPLIST_MAX][TW_EPLIST_EP_MAX + 1];
    size_t n, cur;
    uint64_t max_ha;  /* the highest epoch seen */
    uint64_t with_ha; /* the epoch of the broker that served us last */
    int vote;         /* the next message votes */
};

static int s_fail(char *why, size_t wlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
s_fail(char *why, size_t wlen, const char *fmt, ...)
{
    if (why && wlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, wlen, fmt, ap);
        va_end(ap);
    }
    return TW_EINVAL;
}

/* "scheme://rest": a lowercase scheme libzmq may know (tcp, ipc,
 * inproc, ws...) and something after it. */
static int
s_scheme_ok(const char *ep)
{
    size_t k = 0;
    while (ep[k] >= 'a' && ep[k] <= 'z') {
        k++;
    }
    return k > 0 && strncmp(ep + k, "://", 3) == 0 && ep[k + 3];
}

int
tw_eplist_parse(tw_eplist_t **out, const char *spec, char *why, size_t wlen)
{
    *out = NULL;
    if (!spec) {
        return s_fail(why, wlen, "no endpoint");
    }
    tw_eplist_t *l = tw_try_calloc(1, sizeof *l);
    if (!l) {
        s_fail(why, wlen, "out of memory");
        return TW_ENOMEM;
    }
    const char *p = spec;
    for (size_t i = 1;; i++) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }
        const char *e = end;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) {
            e--;
        }
        size_t len = (size_t)(e - p);
        int rc = 0;
        if (len == 0) {
            rc = s_fail(why, wlen, "endpoint %zu is empty", i);
        } else if (l->n == TW_EPLIST_MAX) {
            rc = s_fail(why, wlen, "more than %d endpoints", TW_EPLIST_MAX);
        } else if (len > TW_EPLIST_EP_MAX) {
            rc = s_fail(why, wlen, "endpoint %zu is longer than %d octets",
                        i, TW_EPLIST_EP_MAX);
        } else {
            memcpy(l->ep[l->n], p, len);
            l->ep[l->n][len] = '\0';
            if (!s_scheme_ok(l->ep[l->n])) {
                rc = s_fail(why, wlen, "endpoint %zu ('%s') is not "
                                       "scheme://address (tcp://host:port)",
                            i, l->ep[l->n]);
            }
            for (size_t k = 0; rc == 0 && k < l->n; k++) {
                if (strcmp(l->ep[k], l->ep[l->n]) == 0) {
                    rc = s_fail(why, wlen, "endpoint %zu ('%s') is given "
                                           "twice", i, l->ep[k]);
                }
            }
        }
        if (rc != 0) {
            tw_free(l);
            return rc;
        }
        l->n++;
        if (!comma) {
            break;
        }
        p = comma + 1;
    }
    *out = l;
    return 0;
}

void
tw_eplist_free(tw_eplist_t **lp)
{
    tw_free(*lp);
    *lp = NULL;
}

size_t
tw_eplist_count(const tw_eplist_t *l)
{
    return l->n;
}

const char *
tw_eplist_at(const tw_eplist_t *l, size_t i)
{
    return i < l->n ? l->ep[i] : NULL;
}

const char *
tw_eplist_current(const tw_eplist_t *l)
{
    return l->ep[l->cur];
}

static void
s_next(tw_eplist_t *l)
{
    l->cur = (l->cur + 1) % l->n;
}

int
tw_eplist_served(tw_eplist_t *l, uint64_t ha)
{
    if (ha < l->max_ha) {
        s_next(l);
        return TW_EPERM;
    }
    l->max_ha = ha;
    l->with_ha = ha;
    l->vote = 0;
    return 0;
}

void
tw_eplist_lost(tw_eplist_t *l)
{
    l->vote = 1;
    s_next(l);
}

int
tw_eplist_not_active(tw_eplist_t *l, const char *active, size_t alen,
                     int live, uint64_t ha)
{
    if (ha > l->max_ha) {
        l->max_ha = ha;
    }
    size_t before = l->cur;
    if (live) {
        size_t i = 0;
        while (active && i < l->n &&
               !(strlen(l->ep[i]) == alen &&
                 memcmp(l->ep[i], active, alen) == 0)) {
            i++;
        }
        if (active && i < l->n && i != l->cur) {
            l->cur = i;
        } else {
            s_next(l);
        }
    } else if (!l->vote) {
        /* Nobody answers for the active here: perhaps it is alive where
         * we have not looked yet. */
        s_next(l);
    }
    /* Else we lost the active and this broker will take over once it has
     * been silent long enough: ask again. */
    return l->cur != before;
}

uint64_t
tw_eplist_ha(const tw_eplist_t *l)
{
    return l->max_ha;
}

int
tw_eplist_vote(const tw_eplist_t *l, uint64_t *lost)
{
    if (lost) {
        *lost = l->vote ? l->with_ha : 0;
    }
    return l->vote;
}
