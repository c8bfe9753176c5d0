/*  tests/fault/fault.c - see fault.h. */
#include "tests/fault/fault.h"
#include "tests/harness/client_helpers.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* ------------------------------------------------------------ counter --- */

static uint8_t
s_inc(uint8_t v)
{
    return v < UINT8_MAX ? (uint8_t)(v + 1) : v;
}

/* Does `msg` hold one of the '|'-separated phrases of `alts`? */
static int
s_has_one(const char *msg, const char *alts)
{
    while (*alts) {
        const char *bar = strchr(alts, '|');
        size_t n = bar ? (size_t)(bar - alts) : strlen(alts);
        char phrase[256];
        snprintf(phrase, sizeof phrase, "%.*s", (int)n, alts);
        if (n && strstr(msg, phrase)) {
            return 1;
        }
        alts += n + (bar != NULL);
    }
    return 0;
}

static void
s_on_ack(void *arg, const tw_ack_t *ack)
{
    tw_fault_t *f = arg;
    if (ack->seq == 0 || ack->seq > f->cap) {
        return;
    }
    if (ack->err) {
        f->refused[ack->seq] = s_inc(f->refused[ack->seq]);
        const char *msg = ack->msg;
        int expected = f->refuse_code && ack->err == f->refuse_code && msg &&
                       (!f->refuse_text || s_has_one(msg, f->refuse_text));
        f->refused_bad += !expected;
        /* Every unexpected refusal; of the expected ones, the first. */
        if (!expected || f->refused_first++ == 0) {
            fprintf(stderr, "%s: seq %llu refused: %s (%s)\n", f->scenario,
                    (unsigned long long)ack->seq,
                    tw_client_strerror(ack->err), msg ? msg : "");
        }
        return;
    }
    f->acks[ack->seq] = s_inc(f->acks[ack->seq]);
    f->ids[ack->seq] = ack->id;
}

static void
s_on_result(void *arg, const tw_result_t *r)
{
    tw_fault_t *f = arg;
    if (r->seq == 0 || r->seq > f->cap) {
        return;
    }
    f->outcomes[r->seq] = s_inc(f->outcomes[r->seq]);
    if (f->watch_wid && r->worker == f->watch_wid) {
        f->on_watch++;
    }
    if (r->state == 0) {
        f->ok[r->seq] = s_inc(f->ok[r->seq]);
    } else if (f->outcomes[r->seq] == 1) {
        fprintf(stderr, "%s: seq %llu ended in state %d: %s\n", f->scenario,
                (unsigned long long)r->seq, r->state,
                r->error ? r->error : "");
    }
}

void
tw_fault_init(tw_fault_t *f, const char *scenario, tw_client_t *c,
              size_t cap)
{
    memset(f, 0, sizeof *f);
    f->scenario = scenario;
    f->cap = cap;
    f->acks = calloc(cap + 1, 1);
    f->refused = calloc(cap + 1, 1);
    f->outcomes = calloc(cap + 1, 1);
    f->ok = calloc(cap + 1, 1);
    f->ids = calloc(cap + 1, sizeof *f->ids);
    f->seqs = calloc(cap + 1, sizeof *f->seqs);
    TW_H_ASSERT(f->acks && f->refused && f->outcomes && f->ok && f->ids &&
                f->seqs);
    tw_client_on_ack(c, s_on_ack, f);
    tw_client_on_result(c, s_on_result, f);
}

void
tw_fault_free(tw_fault_t *f)
{
    free(f->acks);
    free(f->refused);
    free(f->outcomes);
    free(f->ok);
    free(f->ids);
    free(f->seqs);
    memset(f, 0, sizeof *f);
}

void
tw_fault_submit(tw_fault_t *f, tw_client_t *c, const tw_task_spec_t *spec,
                size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = 0;
        TW_H_ASSERT_OK(tw_client_submit(c, spec, &seq));
        TW_H_ASSERT_MSG(seq <= f->cap, "seq %llu past the counter's %zu",
                        (unsigned long long)seq, f->cap);
        f->seqs[f->submitted++] = seq;
    }
    int rc = tw_client_flush(c);
    TW_H_ASSERT(rc == 0 || rc == TW_EAGAIN);
}

int
tw_fault_wait(tw_fault_t *f, tw_client_t *c, int timeout_ms)
{
    (void)f;
    return tw_client_wait_all(c, timeout_ms);
}

int
tw_fault_wait_completed(tw_fault_t *f, tw_client_t *c, size_t n,
                        int timeout_ms)
{
    uint64_t end = tw_h_now_ms() + (uint64_t)timeout_ms;
    while (tw_fault_completed(f) < n) {
        if (tw_h_now_ms() >= end) {
            return TW_ETIMEDOUT;
        }
        tw_client_poll(c, 5);
    }
    return 0;
}

/* Seqs 1..cap with a non-zero count in `per_seq`. */
static size_t
s_seqs_with(const tw_fault_t *f, const uint8_t *per_seq)
{
    size_t n = 0;
    for (size_t s = 1; s <= f->cap; s++) {
        n += per_seq[s] > 0;
    }
    return n;
}

/* Acknowledged: by its ACK, or by an outcome, which names the task the
 * broker made of it (an ACK lost on a broker's way out is not resent: the
 * client takes the outcome for it). */
static int
s_acked(const tw_fault_t *f, size_t s)
{
    return f->acks[s] > 0 || f->outcomes[s] > 0;
}

size_t
tw_fault_acked(const tw_fault_t *f)
{
    size_t n = 0;
    for (size_t s = 1; s <= f->cap; s++) {
        n += s_acked(f, s);
    }
    return n;
}

size_t
tw_fault_refused(const tw_fault_t *f)
{
    return s_seqs_with(f, f->refused);
}

size_t
tw_fault_completed(const tw_fault_t *f)
{
    return s_seqs_with(f, f->ok);
}

size_t
tw_fault_open(const tw_fault_t *f)
{
    size_t n = 0;
    for (size_t s = 1; s <= f->cap; s++) {
        n += s_acked(f, s) && f->ok[s] == 0;
    }
    return n;
}

void
tw_fault_report(tw_fault_t *f, tw_client_t *c)
{
    if (!f->have_broker_duplicates) {
        long long d = 0;
        TW_H_ASSERT_OK(tw_h_status_field(c, "duplicates", &d));
        f->broker_duplicates = (uint64_t)d;
    }
    size_t acked = 0, completed = 0, lost = 0, twice = 0, refused = 0;
    size_t both = 0, ran = 0;
    uint64_t dup = f->broker_duplicates;
    for (size_t i = 0; i < f->submitted; i++) {
        size_t s = f->seqs[i];
        acked += s_acked(f, s);
        refused += f->refused[s] > 0 && !s_acked(f, s);
        both += f->refused[s] > 0 && f->acks[s] > 0;
        ran += f->refused[s] > 0 && f->outcomes[s] > 0;
        completed += f->ok[s] > 0;
        /* A refused submission has no outcome to lose. */
        lost += f->ok[s] == 0 && !(f->refused[s] && !s_acked(f, s));
        if (f->acks[s] > 1 || f->outcomes[s] > 1 || f->refused[s] > 1) {
            twice++;
            dup += (uint64_t)(f->acks[s] > 1 ? f->acks[s] - 1 : 0) +
                   (uint64_t)(f->outcomes[s] > 1 ? f->outcomes[s] - 1 : 0);
        }
    }
    char bound[40] = "";
    if (f->lost_bounded) {
        snprintf(bound, sizeof bound, " bound=%zu", f->lost_max);
    }
    if (f->refuse_code) {
        printf("scenario=%s submitted=%zu acked=%zu refused=%zu "
               "completed=%zu duplicated=%llu lost=%zu%s\n",
               f->scenario, f->submitted, acked, refused, completed,
               (unsigned long long)dup, lost, bound);
    } else {
        printf("scenario=%s submitted=%zu acked=%zu completed=%zu "
               "duplicated=%llu lost=%zu%s\n",
               f->scenario, f->submitted, acked, completed,
               (unsigned long long)dup, lost, bound);
    }
    fflush(stdout);
    TW_H_ASSERT_MSG(lost <= (f->lost_bounded ? f->lost_max : 0),
                    "%s: %zu of %zu submissions lost (at most %zu may be)",
                    f->scenario, lost, f->submitted,
                    f->lost_bounded ? f->lost_max : 0);
    TW_H_ASSERT_MSG(twice == 0,
                    "%s: %zu submissions got two acks or two outcomes",
                    f->scenario, twice);
    TW_H_ASSERT_MSG(both == 0, "%s: %zu submissions acknowledged and "
                    "refused", f->scenario, both);
    TW_H_ASSERT_MSG(f->refused_bad == 0, "%s: %zu refusals with another "
                    "code or message", f->scenario, f->refused_bad);
    TW_H_ASSERT_MSG(ran == 0, "%s: %zu refused submissions have an outcome",
                    f->scenario, ran);
    TW_H_ASSERT_EQ(acked + refused, f->submitted);
}

long long
tw_fault_stat(tw_client_t *c, const char *key)
{
    long long v = -1;
    TW_H_ASSERT_OK(tw_h_status_field(c, key, &v));
    return v;
}

void
tw_fault_add_counters(tw_client_t *c, size_t n)
{
    tw_station_req_t *reqs = calloc(n, sizeof *reqs);
    char(*sids)[24] = calloc(n, sizeof *sids);
    TW_H_ASSERT(reqs && sids);
    unsigned char zero[9];
    size_t zl = tw_h_pack_int(zero, 0);
    for (size_t i = 0; i < n; i++) {
        snprintf(sids[i], sizeof sids[i], "k-%zu", i);
        reqs[i] = (tw_station_req_t){.sid = sids[i],
                                     .handler = "incr",
                                     .args = zero,
                                     .args_len = zl,
                                     .next = "result",
                                     .interval_ms = 500};
    }
    void *data = NULL;
    size_t len = 0;
    TW_H_ASSERT_OK(tw_client_stations_add(c, reqs, n, 30000, &data, &len));
    free(data);
    free(reqs);
    free(sids);
}

size_t
tw_fault_pack_double(unsigned char buf[9], double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    buf[0] = 0xcb;
    for (int i = 0; i < 8; i++) {
        buf[1 + i] = (unsigned char)(bits >> (56 - 8 * i));
    }
    return 9;
}

tw_task_spec_t
tw_fault_sleep_spec(unsigned char buf[9], double secs)
{
    size_t n = tw_fault_pack_double(buf, secs);
    tw_task_spec_t spec = {.handler = "sleep", .args = buf, .args_len = n};
    return spec;
}

tw_client_t *
tw_fault_client(const char *endpoint)
{
    tw_client_t *c = tw_client_new(endpoint);
    TW_H_ASSERT(c != NULL);
    tw_client_opts_t o = {.heartbeat_ms = 200,
                          .liveness = 5,
                          .reconnect_min_ms = 100,
                          .reconnect_max_ms = 500};
    TW_H_ASSERT_OK(tw_client_set_opts(c, &o));
    return c;
}

tw_task_spec_t
tw_fault_echo100(unsigned char buf[102])
{
    buf[0] = 0xd9; /* str 8 */
    buf[1] = 100;
    memset(buf + 2, 'a', 100);
    return (tw_task_spec_t){.handler = "echo", .args = buf, .args_len = 102};
}

void
tw_fault_wait_stat(tw_client_t *c, const char *key, long long want, int ms)
{
    uint64_t end = tw_h_now_ms() + (uint64_t)ms;
    while (tw_fault_stat(c, key) != want) {
        TW_H_ASSERT_MSG(tw_h_now_ms() < end, "%s never became %lld", key,
                        want);
        tw_client_poll(c, 50);
    }
}

/* --------------------------------------------------------- subscriber --- */

struct tw_fault_sub {
    void *sock;
};

static int
s_key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

static void
s_copy(char *dst, size_t cap, const msgpack_object *v)
{
    if (v->type != MSGPACK_OBJECT_STR) {
        return;
    }
    size_t n = v->via.str.size < cap - 1 ? v->via.str.size : cap - 1;
    memcpy(dst, v->via.str.ptr, n);
    dst[n] = '\0';
}

/* Read one raw event without waiting for the subscription. */
static int
s_read(tw_fault_sub_t *sub, tw_fault_event_t *ev, int timeout_ms)
{
    zmq_pollitem_t pi = {sub->sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&pi, 1, timeout_ms) <= 0) {
        return 0;
    }
    zmq_msg_t f[2];
    zmq_msg_init(&f[0]);
    zmq_msg_init(&f[1]);
    if (zmq_msg_recv(&f[0], sub->sock, 0) < 0) {
        zmq_msg_close(&f[0]);
        zmq_msg_close(&f[1]);
        return 0;
    }
    memset(ev, 0, sizeof *ev);
    ev->at = tw_h_now_ms();
    size_t tl = zmq_msg_size(&f[0]);
    if (tl >= sizeof ev->topic) {
        tl = sizeof ev->topic - 1;
    }
    memcpy(ev->topic, zmq_msg_data(&f[0]), tl);
    if (zmq_msg_more(&f[0]) && zmq_msg_recv(&f[1], sub->sock, 0) >= 0) {
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        if (msgpack_unpack_next(&up, zmq_msg_data(&f[1]),
                                zmq_msg_size(&f[1]),
                                NULL) == MSGPACK_UNPACK_SUCCESS &&
            up.data.type == MSGPACK_OBJECT_MAP) {
            for (uint32_t i = 0; i < up.data.via.map.size; i++) {
                const msgpack_object *k = &up.data.via.map.ptr[i].key;
                const msgpack_object *v = &up.data.via.map.ptr[i].val;
                if ((s_key_is(k, "wid") || s_key_is(k, "worker")) &&
                    v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                    ev->wid = v->via.u64;
                } else if (s_key_is(k, "name")) {
                    s_copy(ev->name, sizeof ev->name, v);
                } else if (s_key_is(k, "state")) {
                    s_copy(ev->state, sizeof ev->state, v);
                } else if (s_key_is(k, "station")) {
                    s_copy(ev->station, sizeof ev->station, v);
                }
            }
        }
        msgpack_unpacked_destroy(&up);
    }
    /* Drop any further frames. */
    while (zmq_msg_more(&f[1])) {
        zmq_msg_close(&f[1]);
        zmq_msg_init(&f[1]);
        if (zmq_msg_recv(&f[1], sub->sock, 0) < 0) {
            break;
        }
    }
    zmq_msg_close(&f[0]);
    zmq_msg_close(&f[1]);
    return 1;
}

tw_fault_sub_t *
tw_fault_sub_new(const char *endpoint, const char *const topics[])
{
    tw_fault_sub_t *sub = calloc(1, sizeof *sub);
    TW_H_ASSERT(sub != NULL);
    const char *all[34] = {"stats"};
    size_t n = 1;
    for (size_t i = 0; topics && topics[i] && n < 33; i++) {
        all[n++] = topics[i];
    }
    all[n] = NULL;
    sub->sock = tw_h_sub(endpoint, all);
    return sub;
}

void
tw_fault_sub_destroy(tw_fault_sub_t **sub_p)
{
    if (!sub_p || !*sub_p) {
        return;
    }
    zmq_close((*sub_p)->sock);
    free(*sub_p);
    *sub_p = NULL;
}

int
tw_fault_sub_next(tw_fault_sub_t *sub, tw_fault_event_t *ev, int timeout_ms)
{
    return s_read(sub, ev, timeout_ms);
}

uint64_t
tw_fault_sub_wait_worker(tw_fault_sub_t *sub, tw_client_t *c,
                         const char *topic, const char *name,
                         int timeout_ms)
{
    tw_fault_event_t ev;
    uint64_t end = tw_h_now_ms() + (uint64_t)timeout_ms;
    while (tw_h_now_ms() < end) {
        if (c) {
            tw_client_poll(c, 0);
        }
        if (tw_fault_sub_next(sub, &ev, 10) && strcmp(ev.topic, topic) == 0 &&
            strcmp(ev.name, name) == 0) {
            return ev.wid;
        }
    }
    return 0;
}
