/*  broker/state/schedtab.c - the broker's schedules and their records (see
 *  schedtab.h).
 */
#include "broker/state/schedtab.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

#include <msgpack.h>
#include <stdio.h>
#include <string.h>

void
tw_schedtab_init(tw_schedtab_t *t, uint64_t grace_ms)
{
    memset(t, 0, sizeof *t);
    t->eng = tw_sched_new(grace_ms);
    tw_strmap_init(&t->zones);
    tw_strmap_init(&t->dirty);
}

/* Free every value of `m` with `fn`, then the map. */
static void
s_free_map(tw_strmap_t *m, int zones)
{
    for (size_t i = 0; i < m->cap; i++) {
        tw_strmap_entry_t *e = &m->slots[i];
        if (!e->key) {
            continue;
        }
        if (zones) {
            tw_tz_t *tz = e->val;
            tw_tz_destroy(&tz);
        } else {
            tw_free(e->val);
        }
    }
    tw_strmap_free(m);
}

void
tw_schedtab_destroy(tw_schedtab_t *t)
{
    tw_sched_destroy(&t->eng);
    s_free_map(&t->zones, 1);
    s_free_map(&t->dirty, 0);
}

int
tw_schedtab_zone(tw_schedtab_t *t, const char *dir, const char *name,
                 size_t len, const tw_tz_t **out, const char **why)
{
    if (!len) {
        name = "UTC";
        len = 3;
    }
    tw_tz_t *tz = tw_strmap_get(&t->zones, name, len);
    if (tz) {
        *out = tz;
        return 0;
    }
    char buf[TW_TZ_NAME_MAX + 1];
    if (len > TW_TZ_NAME_MAX || !tw_tz_name_ok(name, len)) {
        *why = "not a zone name (letters, digits and ._+- in components "
               "separated by /)";
        return TW_EINVAL;
    }
    memcpy(buf, name, len);
    buf[len] = '\0';
    int rc = len == 3 && memcmp(name, "UTC", 3) == 0
                 ? (tz = tw_tz_utc(), 0)
                 : tw_tz_load(dir, buf, &tz, why);
    if (rc != 0) {
        return rc;
    }
    /* The zone keeps its own copy of the name: the map's key. */
    const char *key = tw_tz_name(tz);
    tw_strmap_put(&t->zones, key, strlen(key), tz);
    *out = tz;
    return 0;
}

void
tw_schedtab_mark(tw_schedtab_t *t, const char *name, size_t len)
{
    if (!tw_strmap_get(&t->dirty, name, len)) {
        char *copy = tw_strndup(name, len);
        tw_strmap_put(&t->dirty, copy, len, copy);
    }
}

size_t
tw_schedtab_marked(const tw_schedtab_t *t)
{
    return t->dirty.len;
}

void
tw_schedtab_encode(const tw_sched_info_t *in, tw_enc_t *e)
{
    tw_enc_map(e, 8);
    tw_enc_cstr(e, "cron");
    tw_enc_cstr(e, in->expr);
    tw_enc_cstr(e, "tz");
    tw_enc_cstr(e, in->tz);
    tw_enc_cstr(e, "ov");
    tw_enc_uint(e, (uint64_t)in->overlap);
    tw_enc_cstr(e, "cu");
    tw_enc_uint(e, (uint64_t)in->catchup);
    tw_enc_cstr(e, "paused");
    tw_enc_bool(e, in->paused);
    tw_enc_cstr(e, "cursor");
    tw_enc_int(e, in->cursor_ms);
    tw_enc_cstr(e, "tmpl");
    tw_enc_bin(e, in->tmpl, in->tmpl_len);
    tw_enc_cstr(e, "live");
    tw_enc_array(e, in->live);
    for (size_t i = 0; i < in->live; i++) {
        tw_enc_uint(e, in->live_ids[i]);
    }
}

/* The record key of schedule `name` in `key` (room for the prefix and
 * TW_SCHED_NAME_MAX octets). Returns its length. */
static size_t
s_key(char *key, const char *name, size_t len)
{
    memcpy(key, TW_SCHEDTAB_PREFIX, TW_SCHEDTAB_PREFIX_LEN);
    memcpy(key + TW_SCHEDTAB_PREFIX_LEN, name, len);
    return TW_SCHEDTAB_PREFIX_LEN + len;
}

void
tw_schedtab_write(tw_schedtab_t *t, tw_wbatch_t *wb)
{
    if (!t->dirty.len) {
        return;
    }
    tw_enc_t e;
    tw_enc_init(&e);
    char key[TW_SCHEDTAB_PREFIX_LEN + TW_SCHED_NAME_MAX];
    for (size_t i = 0; i < t->dirty.cap; i++) {
        tw_strmap_entry_t *d = &t->dirty.slots[i];
        if (!d->key) {
            continue;
        }
        size_t klen = s_key(key, d->key, d->klen);
        tw_sched_info_t info;
        if (tw_sched_get(t->eng, d->key, d->klen, &info) == 0) {
            e.sb.size = 0;
            tw_schedtab_encode(&info, &e);
            tw_wbatch_put(wb, TW_DB_META, key, klen, e.sb.data, e.sb.size,
                          0);
        } else {
            tw_wbatch_del(wb, TW_DB_META, key, klen);
        }
    }
    tw_enc_free(&e);
    s_free_map(&t->dirty, 0);
    tw_strmap_init(&t->dirty);
}

/* ---- reading back ------------------------------------------------------ */

typedef struct {
    tw_schedtab_t *t;
    const char *dir;
    tw_schedtab_alive_fn alive;
    void *arg;
    size_t n;
} s_load_t;

/* The value of key `k` in map `m`, or NULL. */
static const msgpack_object *
s_get(const msgpack_object *m, const char *k)
{
    size_t kl = strlen(k);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *key = &m->via.map.ptr[i].key;
        if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == kl &&
            memcmp(key->via.str.ptr, k, kl) == 0) {
            return &m->via.map.ptr[i].val;
        }
    }
    return NULL;
}

/* A string value copied into buf (cap octets), or NULL. */
static const char *
s_str(const msgpack_object *o, char *buf, size_t cap)
{
    if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size >= cap) {
        return NULL;
    }
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = '\0';
    return buf;
}

static int64_t
s_int(const msgpack_object *o)
{
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return (int64_t)o->via.u64;
    }
    return o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? o->via.i64 : 0;
}

/* Read one record into the engine: NULL, or what is wrong with it
 * (static text, or in err, errlen octets). */
static const char *
s_load_one(s_load_t *x, const char *name, size_t nlen, const void *val,
           size_t vlen, char *err, size_t errlen)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    const char *bad = NULL;
    char cron[TW_CRON_TEXT_MAX + 1], zone[TW_TZ_NAME_MAX + 1];
    if (msgpack_unpack_next(&up, val, vlen, NULL) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_MAP) {
        bad = "it does not decode";
        goto done;
    }
    const msgpack_object *m = &up.data;
    const msgpack_object *tmpl = s_get(m, "tmpl"), *live = s_get(m, "live");
    const msgpack_object *paused = s_get(m, "paused");
    const char *expr = s_str(s_get(m, "cron"), cron, sizeof cron);
    const char *tzn = s_str(s_get(m, "tz"), zone, sizeof zone);
    if (!expr || !tzn || !tmpl || tmpl->type != MSGPACK_OBJECT_BIN) {
        bad = "a field is missing";
        goto done;
    }
    const tw_tz_t *tz;
    const char *why = NULL;
    if (tw_schedtab_zone(x->t, x->dir, tzn, strlen(tzn), &tz, &why) != 0) {
        snprintf(err, errlen, "zone %s: %s", tzn, why ? why : "?");
        bad = err;
        goto done;
    }
    tw_sched_def_t def = {
        .name = name,
        .namelen = nlen,
        .expr = expr,
        .tz = tz,
        .overlap = (int)s_int(s_get(m, "ov")),
        .catchup = (int)s_int(s_get(m, "cu")),
        .paused = paused && paused->type == MSGPACK_OBJECT_BOOLEAN &&
                  paused->via.boolean,
        .cursor_ms = s_int(s_get(m, "cursor")),
        .tmpl = tmpl->via.bin.ptr,
        .tmpl_len = tmpl->via.bin.size,
    };
    if (tw_sched_add(x->t->eng, &def, err, errlen) != 0) {
        bad = err;
        goto done;
    }
    for (uint32_t i = 0; live && live->type == MSGPACK_OBJECT_ARRAY &&
                         i < live->via.array.size;
         i++) {
        uint64_t id = live->via.array.ptr[i].via.u64;
        if (x->alive(id, x->arg)) {
            tw_sched_started(x->t->eng, name, nlen, id);
        }
    }
    x->n++;
done:
    msgpack_unpacked_destroy(&up);
    return bad;
}

static int
s_load_rec(const void *key, size_t klen, const void *val, size_t vlen,
           void *arg)
{
    s_load_t *x = arg;
    if (klen <= TW_SCHEDTAB_PREFIX_LEN ||
        klen > TW_SCHEDTAB_PREFIX_LEN + TW_SCHED_NAME_MAX ||
        memcmp(key, TW_SCHEDTAB_PREFIX, TW_SCHEDTAB_PREFIX_LEN) != 0) {
        return 0; /* another meta record */
    }
    const char *name = (const char *)key + TW_SCHEDTAB_PREFIX_LEN;
    size_t nlen = klen - TW_SCHEDTAB_PREFIX_LEN;
    char err[200];
    const char *bad = s_load_one(x, name, nlen, val, vlen, err, sizeof err);
    if (bad) {
        tw_warn("schedule.load", "schedule %.*s is not loaded (its record "
                "stays in the store): %s", (int)nlen, name, bad);
    }
    return 0;
}

int
tw_schedtab_load(tw_schedtab_t *t, tw_store_t *s, const char *dir,
                 tw_schedtab_alive_fn alive, void *arg, size_t *n, char *why,
                 size_t wlen)
{
    s_load_t x = {t, dir, alive, arg, 0};
    int rc = tw_store_each(s, TW_DB_META, s_load_rec, &x);
    *n = x.n;
    if (rc != 0) {
        snprintf(why, wlen, "%s", tw_store_error(s));
    }
    return rc;
}
