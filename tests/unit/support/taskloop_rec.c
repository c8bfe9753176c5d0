/*  tests/unit/support/taskloop_rec.c - a recorder of what a taskloop
 *  engine reports (see taskloop_rec.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/support/taskloop_rec.h"
#include "common/util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void
s_wake(void *udata)
{
    ((tw_tlrec_t *)udata)->nwake++;
}

static void
s_event(void *udata, tw_station_t *st, int ev, const char *err)
{
    tw_tlrec_t *rec = udata;
    assert_true(rec->nev < TW_TLREC_MAXEV);
    tw_tlrec_ev_t *e = &rec->ev[rec->nev++];
    memset(e, 0, sizeof *e);
    snprintf(e->sid, sizeof e->sid, "%s", tw_station_id(st));
    e->ev = ev;
    if (err) {
        snprintf(e->err, sizeof e->err, "%s", err);
    }
    e->it = tw_station_done_count(st);
    e->ep = tw_station_ep(st);
    size_t len;
    const void *ck = tw_station_ck(st, &len);
    assert_true(len <= sizeof e->ck);
    memcpy(e->ck, ck, len);
    e->cklen = len;
}

static void
s_dirty(void *udata)
{
    ((tw_tlrec_t *)udata)->ndirty++;
}

static void
s_s2n(void *udata, tw_station_t *st, uint64_t seq, const void *d,
      size_t len)
{
    tw_tlrec_t *rec = udata;
    assert_true(rec->ns2n < TW_TLREC_MAXS2N);
    tw_tlrec_s2n_t *m = &rec->s2n[rec->ns2n++];
    snprintf(m->sid, sizeof m->sid, "%s", tw_station_id(st));
    m->seq = seq;
    assert_true(len <= sizeof m->d);
    memcpy(m->d, d, len);
    m->len = len;
}

static void
s_left(void *udata, tw_station_t *st)
{
    (void)st;
    ((tw_tlrec_t *)udata)->nleft++;
}

static void
s_async(void *udata)
{
    ((tw_tlrec_t *)udata)->nasync++;
}

const tw_taskloop_cbs_t tw_tlrec_cbs = {s_wake, s_event, s_dirty,
                                        s_s2n,  s_left,  s_async};

void
tw_tlrec_drive(uv_loop_t *loop, tw_taskloop_t *tl, const int *flag,
               int want, int ms)
{
    uint64_t end = tw_now_ms() + (uint64_t)ms;
    while ((!flag || *flag < want) && tw_now_ms() < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        uv_update_time(loop);
        if (tw_taskloop_run(tl, uv_now(loop)) != 0) {
            usleep(1000);
        }
    }
}

void
tw_tlrec_unpack(const void *p, size_t len, msgpack_unpacked *up)
{
    msgpack_unpacked_init(up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(up, p, len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
}
