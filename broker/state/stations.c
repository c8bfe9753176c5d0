/*  broker/state/stations.c - the station table and restart policy
 *  (see stations.h). */
#include "broker/state/stations.h"
#include "common/alloc.h"

#include <string.h>

void
tw_stations_init(tw_stations_t *ss, size_t n2s_limit)
{
    memset(ss, 0, sizeof *ss);
    tw_strmap_init(&ss->by_sid);
    ss->n2s_limit = n2s_limit;
}

static void
s_free(tw_station_t *st)
{
    tw_station_n2s_clear(st);
    tw_free(st->n2s);
    tw_free(st->sid);
    tw_free(st->args);
    tw_free(st->ck);
    tw_free(st->code);
    for (size_t i = 0; i < st->ntags; i++) {
        tw_free(st->tags[i]);
    }
    tw_free(st->tags);
    tw_free(st->last_error);
    tw_free(st);
}

void
tw_stations_destroy(tw_stations_t *ss)
{
    for (size_t i = 0; i < ss->len; i++) {
        s_free(ss->all[i]);
    }
    tw_free(ss->all);
    tw_strmap_free(&ss->by_sid);
    memset(ss, 0, sizeof *ss);
}

tw_station_t *
tw_stations_add(tw_stations_t *ss, const char *sid, size_t sid_len,
                const void *args, size_t args_len)
{
    if (tw_strmap_get(&ss->by_sid, sid, sid_len)) {
        return NULL;
    }
    tw_station_t *st = tw_calloc(1, sizeof *st);
    st->sid = tw_strndup(sid, sid_len);
    st->sid_len = sid_len;
    if (args_len) {
        st->args = tw_malloc(args_len);
        memcpy(st->args, args, args_len);
        st->args_len = (uint32_t)args_len;
    }
    st->state = TW_SS_PENDING;
    st->reason = "not placed yet";
    if (ss->len == ss->cap) {
        ss->cap = ss->cap ? ss->cap * 2 : 64;
        ss->all = tw_realloc(ss->all, ss->cap * sizeof *ss->all);
    }
    ss->all[ss->len++] = st;
    tw_strmap_put(&ss->by_sid, st->sid, st->sid_len, st);
    return st;
}

tw_station_t *
tw_stations_get(const tw_stations_t *ss, const char *sid, size_t len)
{
    return tw_strmap_get(&ss->by_sid, sid, len);
}

void
tw_stations_remove(tw_stations_t *ss, tw_station_t *st)
{
    tw_strmap_del(&ss->by_sid, st->sid, st->sid_len);
    for (size_t i = 0; i < ss->len; i++) {
        if (ss->all[i] == st) {
            memmove(&ss->all[i], &ss->all[i + 1],
                    (ss->len - i - 1) * sizeof *ss->all);
            ss->len--;
            break;
        }
    }
    s_free(st);
}

void
tw_station_set_checkpoint(tw_station_t *st, const void *ck, size_t len)
{
    if (len == st->ck_len && st->ck && memcmp(st->ck, ck, len) == 0) {
        return;
    }
    tw_free(st->ck);
    st->ck = NULL;
    st->ck_len = 0;
    if (len) {
        st->ck = tw_malloc(len);
        memcpy(st->ck, ck, len);
        st->ck_len = (uint32_t)len;
    }
}

const void *
tw_station_input(const tw_station_t *st, size_t *len)
{
    if (st->ck) {
        *len = st->ck_len;
        return st->ck;
    }
    *len = st->args_len;
    return st->args;
}

uint64_t
tw_station_n2s_push(tw_station_t *st, size_t limit, const void *data,
                    size_t len)
{
    if (st->n2s_len >= limit) {
        st->n2s_dropped++;
        return 0;
    }
    if (st->n2s_len == st->n2s_cap) {
        st->n2s_cap = st->n2s_cap ? st->n2s_cap * 2 : 8;
        st->n2s = tw_realloc(st->n2s, st->n2s_cap * sizeof *st->n2s);
    }
    tw_n2s_msg_t *m = &st->n2s[st->n2s_len++];
    m->seq = ++st->n2s_seq;
    m->data = tw_malloc(len ? len : 1);
    memcpy(m->data, data, len);
    m->len = (uint32_t)len;
    return m->seq;
}

void
tw_station_n2s_clear(tw_station_t *st)
{
    for (size_t i = 0; i < st->n2s_len; i++) {
        tw_free(st->n2s[i].data);
    }
    st->n2s_len = 0;
}

int
tw_station_should_restart(tw_station_t *st, tw_sstate_t state,
                          uint64_t now_ms)
{
    if ((state != TW_SS_FAILED && state != TW_SS_DONE) ||
        st->restart == TW_RESTART_NEVER || st->wanted == TW_WANT_STOPPED ||
        (state == TW_SS_DONE && st->restart != TW_RESTART_ALWAYS)) {
        return 0;
    }
    uint64_t delay = st->restart_base_ms ? st->restart_base_ms
                                         : TW_RESTART_BASE_MS;
    if (state == TW_SS_FAILED) {
        if (now_ms - st->burst_start_ms > TW_RESTART_WINDOW_MS ||
            st->burst == 0) {
            st->burst_start_ms = now_ms;
            st->burst = 0;
        }
        st->burst++;
        if (st->burst > TW_RESTART_BURST) {
            return 0;
        }
        for (uint32_t i = 1; i < st->burst && delay < TW_RESTART_MAX_MS;
             i++) {
            delay *= 2;
        }
        if (delay > TW_RESTART_MAX_MS) {
            delay = TW_RESTART_MAX_MS;
        }
    }
    st->restarts++;
    st->restart_at_ms = now_ms + delay;
    return 1;
}

static const char *const s_states[] = {
    "pending", "waiting-for-host", "assigned", "running",  "paused",
    "stopped", "done",             "failed",   "cancelled"};

const char *
tw_sstate_name(int state)
{
    return state >= 0 && state <= TW_SS_CANCELLED ? s_states[state] : "?";
}

const char *
tw_swant_name(int want)
{
    static const char *const names[] = {"run", "paused", "stopped"};
    return want >= 0 && want <= TW_WANT_STOPPED ? names[want] : "?";
}

static int
s_parse(const char *const *names, int n, const char *s, size_t len)
{
    for (int i = 0; i < n; i++) {
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) {
            return i;
        }
    }
    return -1;
}

static const char *const s_next[] = {"same", "result", "handler"};
static const char *const s_place[] = {"any", "prefer", "pinned"};
static const char *const s_restart[] = {"never", "on-failure", "always"};

int
tw_station_parse_next(const char *s, size_t len)
{
    return s_parse(s_next, 3, s, len);
}

int
tw_station_parse_placement(const char *s, size_t len)
{
    return s_parse(s_place, 3, s, len);
}

int
tw_station_parse_restart(const char *s, size_t len)
{
    return s_parse(s_restart, 3, s, len);
}

const char *
tw_station_next_name(int next)
{
    return next >= 0 && next < 3 ? s_next[next] : "?";
}

const char *
tw_station_placement_name(int p)
{
    return p >= 0 && p < 3 ? s_place[p] : "?";
}

const char *
tw_station_restart_name(int r)
{
    return r >= 0 && r < 3 ? s_restart[r] : "?";
}
