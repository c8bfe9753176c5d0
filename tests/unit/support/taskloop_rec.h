/*  tests/unit/support/taskloop_rec.h - a recorder of what a taskloop
 *  engine reports, for the suites that run stations.
 *
 *  tw_tlrec_cbs are callbacks for tw_taskloop_new whose udata is a
 *  tw_tlrec_t: each one only records what it was told (events with the
 *  station's checkpoint at that moment, s2n messages, counts of wake,
 *  dirty, left and async), so a test asserts on the record afterwards.
 *  tw_tlrec_drive turns a real libuv loop and the engine at the loop's
 *  time, for suites whose handlers do real I/O. Test thread only.
 */
#ifndef TW_TASKLOOP_REC_H
#define TW_TASKLOOP_REC_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "worker/taskloop.h"

#define TW_TLREC_MAXEV 512
#define TW_TLREC_MAXS2N 2048

/* One event: the station's state when it was reported. */
typedef struct {
    char sid[64];
    int ev; /* TW_SEV_* */
    char err[512];
    uint64_t it; /* iterations done */
    uint64_t ep;
    unsigned char ck[256]; /* the checkpoint */
    size_t cklen;
} tw_tlrec_ev_t;

/* One s2n message. */
typedef struct {
    char sid[64];
    uint64_t seq;
    unsigned char d[256];
    size_t len;
} tw_tlrec_s2n_t;

typedef struct {
    tw_tlrec_ev_t ev[TW_TLREC_MAXEV];
    int nev;
    tw_tlrec_s2n_t s2n[TW_TLREC_MAXS2N];
    int ns2n;
    int nleft, nwake, ndirty, nasync; /* calls of those callbacks */
} tw_tlrec_t;

/* The recording callbacks; pass a tw_tlrec_t as the engine's udata. They
 * fail the test when the record is full or a value does not fit. */
extern const tw_taskloop_cbs_t tw_tlrec_cbs;

/* Turn `loop` and run `tl` at the loop's time until *flag >= want, or for
 * `ms` (flag NULL: always the whole `ms`). Sleeps a millisecond when the
 * engine has nothing due at once. */
void tw_tlrec_drive(uv_loop_t *loop, tw_taskloop_t *tl, const int *flag,
                    int want, int ms);

/* Unpack `len` bytes of msgpack (a payload, an s2n message) into `up`,
 * which the caller destroys; fails the test unless they are exactly one
 * value. */
void tw_tlrec_unpack(const void *p, size_t len, msgpack_unpacked *up);

#endif /* TW_TASKLOOP_REC_H */
