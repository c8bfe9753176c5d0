/*  broker/state/assign.h - where a station should run: the assignator's choice.
 *
 *  A pure function over a snapshot of the workers: no I/O, no clock, no
 *  broker state, so it is unit-tested with plain arrays. The policy:
 *
 *    eligible   a worker "matches" a station when it carries the station's
 *               code as its tag `code` (S38's GROUP filter) and every one of
 *               the station's tags with the same value. A station with
 *               neither code nor tags matches every worker (S37's ALL).
 *               Whatever the placement, a worker is a candidate only if it
 *               also offers the station's handler, as for task dispatch:
 *               a station never goes where it cannot run.
 *                 any     only matching workers (for a station with no code
 *                         or tags that is every worker)
 *                 prefer  matching workers first, any other worker if none
 *                         of them has room
 *                 pinned  only matching workers; if none is connected at
 *                         all the station is "waiting-for-host"
 *    capacity   a worker has room when it holds fewer stations than slots
 *               and has task credit left (a free slot right now), and is
 *               not draining
 *    choice     least loaded first: fewest stations, then most credit, then
 *               joining order (S36's first-fit, spread out). The worker a
 *               restarting station last failed on (`avoid`) comes after
 *               every other candidate with room, so a restart can go
 *               elsewhere and still falls back to it when it is alone
 *
 *  A station that cannot be placed is never dropped (S41): the result says
 *  why, and the broker keeps it pending until something changes.
 */
#ifndef TW_BROKER_ASSIGN_H
#define TW_BROKER_ASSIGN_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    TW_PLACE_ANY = 0,
    TW_PLACE_PREFER = 1,
    TW_PLACE_PINNED = 2
} tw_placement_t;

/* One worker as the assignator sees it. */
typedef struct {
    uint64_t id;       /* the broker's worker id (compared with `avoid`) */
    uint32_t slots;    /* announced in HELLO */
    uint32_t stations; /* stations it holds */
    uint64_t credit;   /* free task capacity right now */
    int draining;      /* 1: takes nothing new */
    char *const *tags; /* key, value, key, value... */
    size_t ntags;      /* number of strings (2 per tag) */
    const uint32_t *handlers; /* handler indices it offers */
    size_t nhandlers;
} tw_assign_worker_t;

/* What a station asks for. */
typedef struct {
    tw_placement_t placement;
    const char *code;  /* NULL: none */
    char *const *tags; /* key, value pairs */
    size_t ntags;      /* number of strings */
    int has_handler;   /* 1: only workers offering `handler` qualify */
    uint32_t handler;  /* handler index (workers.h) */
    uint64_t avoid;    /* worker id chosen last, if nobody else has room;
                          0: none */
} tw_assign_need_t;

typedef enum {
    TW_ASSIGN_OK = 0,      /* *chosen is set */
    TW_ASSIGN_NO_ROOM,     /* eligible workers exist but are full */
    TW_ASSIGN_NO_MATCH,    /* no connected worker is eligible */
    TW_ASSIGN_WAIT_HOST,   /* pinned and no matching worker connected */
    TW_ASSIGN_NO_HANDLER   /* workers that match code and tags (for
                              prefer: any worker) are connected, but none
                              offers the handler */
} tw_assign_result_t;

/* 1 if worker `w` matches `need`'s code and tags. */
int tw_assign_matches(const tw_assign_worker_t *w, const tw_assign_need_t *need);

/* 1 if worker `w` offers `need`'s handler (always, without has_handler). */
int tw_assign_offers(const tw_assign_worker_t *w, const tw_assign_need_t *need);

/* Choose a worker among ws[0..n). Returns TW_ASSIGN_OK with *chosen set,
 * or why not. */
tw_assign_result_t tw_assign_choose(const tw_assign_worker_t *ws, size_t n,
                                    const tw_assign_need_t *need,
                                    size_t *chosen);

/* A one-line reason for a result, for PENDING replies. Static. */
const char *tw_assign_reason(tw_assign_result_t r);

#endif /* TW_BROKER_ASSIGN_H */
