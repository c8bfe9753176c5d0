/*  broker/state/schedtab.h - the broker's schedules: the engine, the zones
 *  they name, and their records in the store.
 *
 *  The engine (sched.h) decides which tick fires; this table keeps what
 *  it needs around it. Zones are loaded once from the tz database and kept
 *  until the broker exits (the engine borrows them). Each schedule has a
 *  record in the store's `meta` database under the key "schedule/<name>"
 *  (a name has no "/"):
 *
 *      {cron, tz, ov, cu, paused, cursor, tmpl, live}
 *
 *  `tmpl` is the SUBMIT body a tick sends itself (PROTOCOL.md 18.11) and
 *  `live` the schedule's tasks that had not ended when it was written.
 *  A schedule that changes (added, paused, resumed, removed, its cursor
 *  moved by a tick) is marked; the store's commit of that turn writes the
 *  marked records in the same transaction as the turn's tasks
 *  (core/persist.c), which is what makes a tick fire exactly once: its
 *  task and its moved cursor are on disk together or not at all. Broker
 *  loop thread only.
 */
#ifndef TW_BROKER_SCHEDTAB_H
#define TW_BROKER_SCHEDTAB_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/sched.h"
#include "broker/state/store.h"
#include "broker/state/writer.h"
#include "common/strmap.h"

/* The key prefix of schedule records in `meta`. */
#define TW_SCHEDTAB_PREFIX "schedule/"
#define TW_SCHEDTAB_PREFIX_LEN 9

typedef struct {
    tw_sched_t *eng;
    tw_strmap_t zones;  /* zone name -> tw_tz_t * */
    tw_strmap_t dirty;  /* schedule name (owned copy) -> the same copy */
    uint64_t fired, skipped; /* since the broker started */
} tw_schedtab_t;

/* An empty table whose engine has misfire threshold `grace_ms` (0: the
 * default). */
void tw_schedtab_init(tw_schedtab_t *t, uint64_t grace_ms);
void tw_schedtab_destroy(tw_schedtab_t *t);

/* The zone `name` (`len` octets; 0: "UTC"), loaded from `dir` (NULL: the
 * system's) on first use. Returns 0 and sets *out, or an error from
 * tw_tz_load with *why saying which. */
int tw_schedtab_zone(tw_schedtab_t *t, const char *dir, const char *name,
                     size_t len, const tw_tz_t **out, const char **why);

/* Mark schedule `name` for the next write; how many are marked. */
void tw_schedtab_mark(tw_schedtab_t *t, const char *name, size_t len);
size_t tw_schedtab_marked(const tw_schedtab_t *t);

/* Encode schedule `info`'s record into `e`. */
void tw_schedtab_encode(const tw_sched_info_t *info, tw_enc_t *e);

/* Put the record of every marked schedule into `wb` (a delete for one no
 * longer in the engine) and clear the marks. */
void tw_schedtab_write(tw_schedtab_t *t, tw_wbatch_t *wb);

/* Called for each live task id of a record read back: 1 if the task is
 * known and has not ended. */
typedef int (*tw_schedtab_alive_fn)(uint64_t id, void *arg);

/* Read every schedule record of store `s` into the engine, with zones
 * from `dir` (NULL: the system's), and tell the engine which of their
 * recorded tasks are still live. A record that cannot be read back (it
 * does not decode, its zone is gone) is left in the store untouched and
 * reported with a warning. Returns 0 or the store's error, with the
 * reason in `why`; *n is the number of schedules read. */
int tw_schedtab_load(tw_schedtab_t *t, tw_store_t *s, const char *dir,
                     tw_schedtab_alive_fn alive, void *arg, size_t *n,
                     char *why, size_t wlen);

#endif /* TW_BROKER_SCHEDTAB_H */
