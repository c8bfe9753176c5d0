/*  tests/unit/test_client_station.c - station requests, library and CLI.
 *
 *  A fake broker (a raw ROUTER on an ephemeral TCP port, in its own
 *  thread) records every message it receives and answers STATION requests
 *  from a script keyed on the op and the station id, always after some
 *  junk the client must skip (a malformed body, a REPLY for another seq).
 *  The test thread then decodes what was recorded and checks it against
 *  the contract (notes/STATIONS.md, "Broker behaviour"): each op's fields,
 *  their types, and nothing else.
 *
 *  The same fake serves the taskwheel CLI, run as a child process, to
 *  check its requests, its output and its exit codes; `station tail` and
 *  `events` also get a fake status socket (XPUB), which tells the test when
 *  the CLI has subscribed. The CLI tests are skipped when the binary has
 *  not been built. JSON <-> msgpack conversion of station payloads
 *  (client/cli/json.h) is covered at the end.
 *
 *  Cited semantics: F1 S11-S18 (controls are client STATION operations),
 *  S21 (show returns state and checkpoint), S26 (unknown handler rejected
 *  when the station is added), S39-S41 (an add is answered, never dropped:
 *  assigned or pending with a reason).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "client/cli/json.h"
#include "client/internal.h"
#include "common/error.h"
#include "common/util.h"
#include "proto/mpwalk.h"
#include "proto/proto.h"
#include "taskwheel/client.h"
#include "tests/unit/support/client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* Upper bound for anything that should happen: long, since a wait ends
 * when it happens and only a failing test waits it out (valgrind on a
 * busy machine is slow). */
#define WAIT_MS 30000
#define SLOW_MS 300  /* the fake answers "slow" requests this late */
#define MAXREC 64

/* ------------------------------------------------------------------ */
/* The fake broker                                                    */

typedef struct {
    void *ctx;
    void *router;
    char endpoint[256];
    pthread_t th;
    atomic_int stop;
    pthread_mutex_t mu;
    int nrec;                 /* messages received but heartbeats */
    int heartbeats;           /* HEARTBEATs: pings, and the client's own
                                 while it waits, which a busy machine
                                 makes more of; answered, not recorded */
    struct {
        tw_cmd_t cmd;
        unsigned char *body;
        size_t len;
    } rec[MAXREC];
} fake_t;

/* Send `e` as `cmd` to routing id `peer`. */
static void
fake_send(fake_t *fb, const zmq_msg_t *peer, tw_enc_t *e, tw_cmd_t cmd)
{
    zmq_msg_t f[2];
    tw_enc_frames(e, cmd, f);
    zmq_send(fb->router, zmq_msg_data((zmq_msg_t *)peer),
             zmq_msg_size((zmq_msg_t *)peer), ZMQ_SNDMORE);
    zmq_msg_send(&f[0], fb->router, ZMQ_SNDMORE);
    zmq_msg_send(&f[1], fb->router, 0);
}

static void
fake_error(fake_t *fb, const zmq_msg_t *peer, uint64_t seq, int code,
           const char *msg)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 3);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, seq);
    tw_enc_key(&e, TW_F_CODE);
    tw_enc_int(&e, code);
    tw_enc_key(&e, TW_F_MSG);
    tw_enc_cstr(&e, msg);
    fake_send(fb, peer, &e, TW_CMD_ERROR);
    tw_enc_free(&e);
}

/* Begin REPLY {seq, data: ...}: the caller writes the data value. */
static void
reply_begin(tw_enc_t *e, uint64_t seq)
{
    tw_enc_init(e);
    tw_enc_map(e, 2);
    tw_enc_key(e, TW_F_SEQ);
    tw_enc_uint(e, seq);
    tw_enc_key(e, TW_F_DATA);
}

/* {"station": sid, "state": state} */
static void
reply_state(fake_t *fb, const zmq_msg_t *peer, uint64_t seq, const char *sid,
            size_t sidlen, const char *state)
{
    tw_enc_t e;
    reply_begin(&e, seq);
    tw_enc_map(&e, 2);
    tw_enc_cstr(&e, "station");
    tw_enc_str(&e, sid, sidlen);
    tw_enc_cstr(&e, "state");
    tw_enc_cstr(&e, state);
    fake_send(fb, peer, &e, TW_CMD_REPLY);
    tw_enc_free(&e);
}

/* One station summary; `detail` adds the keys only `show` has here. */
static void
enc_summary(tw_enc_t *e, const char *sid, const char *state, int placed,
            const char *last_error, int detail)
{
    tw_enc_map(e, detail ? 9 : 6);
    tw_enc_cstr(e, "station");
    tw_enc_cstr(e, sid);
    tw_enc_cstr(e, "handler");
    tw_enc_cstr(e, "incr");
    tw_enc_cstr(e, "state");
    tw_enc_cstr(e, state);
    tw_enc_cstr(e, "worker");
    if (placed) {
        tw_enc_uint(e, 2);
    } else {
        tw_enc_nil(e);
    }
    tw_enc_cstr(e, "iterations");
    tw_enc_uint(e, placed ? 42 : 0);
    tw_enc_cstr(e, "last_error");
    if (last_error) {
        tw_enc_cstr(e, last_error);
    } else {
        tw_enc_nil(e);
    }
    if (detail) {
        tw_enc_cstr(e, "checkpoint");
        tw_enc_map(e, 1);
        tw_enc_cstr(e, "n");
        tw_enc_uint(e, 5);
        tw_enc_cstr(e, "tags");
        tw_enc_map(e, 1);
        tw_enc_cstr(e, "site");
        tw_enc_cstr(e, "a");
        tw_enc_cstr(e, "zz_extra");
        tw_enc_bool(e, 1);
    }
}

static int
eq(const char *s, size_t len, const char *lit)
{
    return s && len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* Junk first: a body that is not msgpack and a REPLY for another seq. */
static void
fake_junk(fake_t *fb, const zmq_msg_t *peer, uint64_t seq)
{
    static const unsigned char garbage[] = {0xc1, 0xc1};
    unsigned char hdr[TW_PROTO_HDRLEN];
    tw_proto_header_make(TW_CMD_REPLY, hdr);
    zmq_send(fb->router, zmq_msg_data((zmq_msg_t *)peer),
             zmq_msg_size((zmq_msg_t *)peer), ZMQ_SNDMORE);
    zmq_send(fb->router, hdr, sizeof hdr, ZMQ_SNDMORE);
    zmq_send(fb->router, garbage, sizeof garbage, 0);
    tw_enc_t e;
    reply_begin(&e, seq + 1000);
    tw_enc_cstr(&e, "stale");
    fake_send(fb, peer, &e, TW_CMD_REPLY);
    tw_enc_free(&e);
}

/* The script: answer one STATION request. */
static void
fake_answer(fake_t *fb, const zmq_msg_t *peer, const tw_msg_t *m)
{
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    size_t oplen = 0, sidlen = 0, hlen = 0;
    const char *op = tw_msg_str(m, TW_F_OP, &oplen);
    const char *sid = tw_msg_str(m, TW_F_SID, &sidlen);
    const char *h = tw_msg_str(m, TW_F_HANDLER, &hlen);
    tw_enc_t e;

    if (eq(sid, sidlen, "slow")) {
        /* Answer after the client gave up: a stale reply it must skip. */
        usleep(SLOW_MS * 1000);
    }
    fake_junk(fb, peer, seq);
    if (eq(sid, sidlen, "nosuch")) {
        fake_error(fb, peer, seq, TW_ENOENT, "unknown station nosuch");
    } else if (eq(op, oplen, "add")) {
        if (eq(sid, sidlen, "dup")) {
            fake_error(fb, peer, seq, TW_EEXIST, "station dup exists");
        } else if (eq(h, hlen, "nope")) {
            fake_error(fb, peer, seq, TW_EHANDLER,
                       "no worker offers handler nope");
        } else if (sidlen > 2 && memcmp(sid, "p-", 2) == 0) {
            reply_begin(&e, seq);
            tw_enc_map(&e, 3);
            tw_enc_cstr(&e, "station");
            tw_enc_str(&e, sid, sidlen);
            tw_enc_cstr(&e, "state");
            tw_enc_cstr(&e, "pending");
            tw_enc_cstr(&e, "reason");
            tw_enc_cstr(&e, "no eligible worker");
            fake_send(fb, peer, &e, TW_CMD_REPLY);
            tw_enc_free(&e);
        } else {
            reply_begin(&e, seq);
            tw_enc_map(&e, 4);
            tw_enc_cstr(&e, "station");
            tw_enc_str(&e, sid, sidlen);
            tw_enc_cstr(&e, "state");
            tw_enc_cstr(&e, "assigned");
            tw_enc_cstr(&e, "worker");
            tw_enc_uint(&e, 2);
            tw_enc_cstr(&e, "slot");
            tw_enc_uint(&e, 0);
            fake_send(fb, peer, &e, TW_CMD_REPLY);
            tw_enc_free(&e);
        }
    } else if (eq(sid, sidlen, "lag") && !eq(op, oplen, "show")) {
        /* The worker has not reached an iteration boundary yet. */
        reply_state(fb, peer, seq, sid, sidlen, "assigned");
    } else if (eq(op, oplen, "pause")) {
        reply_state(fb, peer, seq, sid, sidlen, "paused");
    } else if (eq(op, oplen, "continue")) {
        reply_state(fb, peer, seq, sid, sidlen, "running");
    } else if (eq(op, oplen, "stop")) {
        reply_state(fb, peer, seq, sid, sidlen, "stopped");
    } else if (eq(op, oplen, "cancel")) {
        reply_state(fb, peer, seq, sid, sidlen, "cancelled");
    } else if (eq(op, oplen, "remove")) {
        reply_state(fb, peer, seq, sid, sidlen, "removed");
    } else if (eq(op, oplen, "send")) {
        if (eq(sid, sidlen, "full")) {
            fake_error(fb, peer, seq, TW_EFULL, "n2s backlog full");
        } else {
            reply_begin(&e, seq);
            tw_enc_map(&e, 3);
            tw_enc_cstr(&e, "station");
            tw_enc_str(&e, sid, sidlen);
            tw_enc_cstr(&e, "seq");
            tw_enc_uint(&e, 7);
            tw_enc_cstr(&e, "queued");
            tw_enc_bool(&e, eq(sid, sidlen, "q-1"));
            fake_send(fb, peer, &e, TW_CMD_REPLY);
            tw_enc_free(&e);
        }
    } else if (eq(op, oplen, "list")) {
        reply_begin(&e, seq);
        tw_enc_array(&e, 2);
        enc_summary(&e, "gnss-1", "running", 1, NULL, 0);
        enc_summary(&e, "p-1", "pending", 0, "boom\x1b[2J", 0);
        fake_send(fb, peer, &e, TW_CMD_REPLY);
        tw_enc_free(&e);
    } else if (eq(op, oplen, "show")) {
        reply_begin(&e, seq);
        enc_summary(&e, "gnss-1", "running", 1, NULL, 1);
        fake_send(fb, peer, &e, TW_CMD_REPLY);
        tw_enc_free(&e);
    } else if (eq(op, oplen, "rebalance")) {
        reply_begin(&e, seq);
        tw_enc_map(&e, 1);
        tw_enc_cstr(&e, "moved");
        tw_enc_uint(&e, 3);
        fake_send(fb, peer, &e, TW_CMD_REPLY);
        tw_enc_free(&e);
    } else if (eq(op, oplen, "odd")) {
        /* A code that is not a TW_E* error. */
        fake_error(fb, peer, seq, 5, "positive code");
    } else {
        fake_error(fb, peer, seq, TW_EINVAL, "unknown op");
    }
}

static void *
fake_main(void *arg)
{
    fake_t *fb = arg;
    while (!atomic_load(&fb->stop)) {
        zmq_pollitem_t pi = {fb->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&pi, 1, 20) <= 0) {
            continue;
        }
        zmq_msg_t f[3];
        int nf = 0, more = 1;
        while (more) {
            zmq_msg_t part;
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, fb->router, 0) < 0) {
                zmq_msg_close(&part);
                break;
            }
            more = zmq_msg_more(&part);
            if (nf < 3) {
                zmq_msg_init(&f[nf]);
                zmq_msg_move(&f[nf++], &part);
            }
            zmq_msg_close(&part);
        }
        tw_msg_t m;
        int ok = nf == 3 &&
                 tw_msg_decode(&m, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]),
                               zmq_msg_data(&f[2]),
                               zmq_msg_size(&f[2])) == 0;
        if (ok && m.cmd == TW_CMD_BYE) {
            tw_msg_release(&m); /* a client going away, not a request */
        } else if (ok) {
            pthread_mutex_lock(&fb->mu);
            if (m.cmd == TW_CMD_HEARTBEAT) {
                fb->heartbeats++;
            } else {
                if (fb->nrec < MAXREC) {
                    size_t len = zmq_msg_size(&f[2]);
                    fb->rec[fb->nrec].cmd = m.cmd;
                    fb->rec[fb->nrec].body = malloc(len ? len : 1);
                    memcpy(fb->rec[fb->nrec].body, zmq_msg_data(&f[2]),
                           len);
                    fb->rec[fb->nrec].len = len;
                }
                fb->nrec++;
            }
            pthread_mutex_unlock(&fb->mu);
            if (m.cmd == TW_CMD_STATION) {
                fake_answer(fb, &f[0], &m);
            } else if (m.cmd == TW_CMD_HEARTBEAT) {
                tw_enc_t e;
                tw_enc_init(&e);
                tw_enc_map(&e, 0);
                fake_send(fb, &f[0], &e, TW_CMD_HEARTBEAT);
                tw_enc_free(&e);
            }
            tw_msg_release(&m);
        }
        for (int i = 0; i < nf; i++) {
            zmq_msg_close(&f[i]);
        }
    }
    return NULL;
}

static int
setup(void **state)
{
    fake_t *fb = calloc(1, sizeof *fb);
    fb->ctx = zmq_ctx_new();
    fb->router = zmq_socket(fb->ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(fb->router, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(fb->router, "tcp://127.0.0.1:*") != 0) {
        return -1;
    }
    size_t len = sizeof fb->endpoint;
    zmq_getsockopt(fb->router, ZMQ_LAST_ENDPOINT, fb->endpoint, &len);
    pthread_mutex_init(&fb->mu, NULL);
    if (pthread_create(&fb->th, NULL, fake_main, fb) != 0) {
        return -1;
    }
    *state = fb;
    return 0;
}

static int
teardown(void **state)
{
    fake_t *fb = *state;
    atomic_store(&fb->stop, 1);
    pthread_join(fb->th, NULL);
    zmq_close(fb->router);
    zmq_ctx_term(fb->ctx);
    for (int i = 0; i < fb->nrec && i < MAXREC; i++) {
        free(fb->rec[i].body);
    }
    pthread_mutex_destroy(&fb->mu);
    free(fb);
    return 0;
}

static int
fake_count(fake_t *fb)
{
    pthread_mutex_lock(&fb->mu);
    int n = fb->nrec;
    pthread_mutex_unlock(&fb->mu);
    return n;
}

/* The body of the last STATION request, decoded into *m (release it). */
static void
last_station(fake_t *fb, tw_msg_t *m)
{
    pthread_mutex_lock(&fb->mu);
    int i = fb->nrec - 1;
    assert_true(i >= 0 && i < MAXREC);
    assert_int_equal(fb->rec[i].cmd, TW_CMD_STATION);
    unsigned char hdr[TW_PROTO_HDRLEN];
    tw_proto_header_make(TW_CMD_STATION, hdr);
    int rc = tw_msg_decode(m, hdr, sizeof hdr, fb->rec[i].body,
                           fb->rec[i].len);
    pthread_mutex_unlock(&fb->mu);
    assert_int_equal(rc, 0);
}

/* Keys of the decoded body map, in order, joined with ','. */
static void
body_keys(const tw_msg_t *m, char *out, size_t cap)
{
    const msgpack_object *map = &m->up.data;
    assert_int_equal(map->type, MSGPACK_OBJECT_MAP);
    size_t n = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        assert_int_equal(k->type, MSGPACK_OBJECT_STR);
        n += (size_t)snprintf(out + n, cap - n, "%s%.*s", i ? "," : "",
                              (int)k->via.str.size, k->via.str.ptr);
        assert_true(n < cap);
    }
}

/* Make the STATION request `req`, which must succeed (its reply data in
 * *data, *len), and check that its body held exactly `keys`, in order;
 * the body is left decoded in *m (release it). */
static void
s_request(fake_t *fb, tw_client_t *c, const tw_station_req_t *req,
          const char *keys, tw_msg_t *m, void **data, size_t *len)
{
    char got[512];
    assert_int_equal(tw_client_station(c, req, WAIT_MS, data, len), 0);
    last_station(fb, m);
    body_keys(m, got, sizeof got);
    assert_string_equal(got, keys);
}

static void
assert_str_field(const tw_msg_t *m, tw_field_t f, const char *want)
{
    assert_non_null(m->f[f]);
    assert_int_equal(m->f[f]->type, MSGPACK_OBJECT_STR);
    size_t len = 0;
    const char *s = tw_msg_str(m, f, &len);
    assert_true(eq(s, len, want));
}

static void
assert_uint_field(const tw_msg_t *m, tw_field_t f, uint64_t want)
{
    assert_non_null(m->f[f]);
    assert_int_equal(m->f[f]->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(m->f[f]->via.u64, want);
}

static void
assert_bin_field(const tw_msg_t *m, tw_field_t f, const void *want,
                 size_t len)
{
    assert_non_null(m->f[f]);
    assert_int_equal(m->f[f]->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(m->f[f]->via.bin.size, len);
    assert_memory_equal(m->f[f]->via.bin.ptr, want, len);
}

/* Decode `data` (one msgpack value) for checks; release with
 * msgpack_unpacked_destroy. */
static void
unpack(msgpack_unpacked *up, const void *data, size_t len)
{
    size_t off = 0;
    msgpack_unpacked_init(up);
    assert_int_equal(msgpack_unpack_next(up, data, len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
}

/* The value of `key` in the msgpack map `o`, or NULL. */
static const msgpack_object *
get(const msgpack_object *o, const char *key)
{
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR &&
            eq(k->via.str.ptr, k->via.str.size, key)) {
            return &o->via.map.ptr[i].val;
        }
    }
    return NULL;
}

static void
assert_mp_str(const msgpack_object *o, const char *want)
{
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_true(eq(o->via.str.ptr, o->via.str.size, want));
}

/* ------------------------------------------------------------------ */
/* Library: request encoding and reply decoding                       */

/* add with every field: each present once, with the contract's type. */
static void
test_add_full(void **state)
{
    fake_t *fb = *state;
    tw_client_t *c = tw_suite_client_new(fb->endpoint);
    assert_non_null(c);
    static const unsigned char args[] = {0x81, 0xa1, 'n', 0x05}; /* {n:5} */
    static const tw_station_tag_t tags[] = {{"site", "a"}, {"rack", ""}};
    tw_station_req_t req = {
        .op = "add",
        .sid = "gnss-1",
        .handler = "incr",
        .args = args,
        .args_len = sizeof args,
        .next = "result",
        .interval_ms = 250,
        .timeout_ms = 1500,
        .code = "C7",
        .tags = tags,
        .ntags = 2,
        .placement = "prefer",
        .restart = "on-failure",
    };
    void *data = NULL;
    size_t len = 0;
    tw_msg_t m;
    s_request(fb, c, &req,
              "seq,op,sid,handler,args,next,interval,timeout,stcode,tags,"
              "placement,restart",
              &m, &data, &len);
    assert_non_null(m.f[TW_F_SEQ]);
    assert_int_equal(m.f[TW_F_SEQ]->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_str_field(&m, TW_F_OP, "add");
    assert_str_field(&m, TW_F_SID, "gnss-1");
    assert_str_field(&m, TW_F_HANDLER, "incr");
    assert_bin_field(&m, TW_F_ARGS, args, sizeof args);
    assert_str_field(&m, TW_F_NEXT, "result");
    assert_uint_field(&m, TW_F_INTERVAL, 250);
    assert_uint_field(&m, TW_F_TIMEOUT, 1500);
    assert_str_field(&m, TW_F_STCODE, "C7");
    const msgpack_object *t = m.f[TW_F_TAGS];
    assert_non_null(t);
    assert_int_equal(t->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(t->via.map.size, 2);
    assert_mp_str(get(t, "site"), "a");
    assert_mp_str(get(t, "rack"), "");
    assert_str_field(&m, TW_F_PLACEMENT, "prefer");
    assert_str_field(&m, TW_F_RESTART, "on-failure");
    tw_msg_release(&m);

    /* The reply's data comes back as one msgpack value (S39). */
    msgpack_unpacked up;
    unpack(&up, data, len);
    assert_mp_str(get(&up.data, "station"), "gnss-1");
    assert_mp_str(get(&up.data, "state"), "assigned");
    assert_int_equal(get(&up.data, "worker")->via.u64, 2);
    assert_int_equal(get(&up.data, "slot")->via.u64, 0);
    msgpack_unpacked_destroy(&up);
    free(data);
    tw_client_destroy(&c);
}

/* add with only what it needs: nothing else goes on the wire. A pending
 * station is still answered, with its reason (S40-S41 not copied). */
static void
test_add_minimal_pending(void **state)
{
    fake_t *fb = *state;
    tw_client_t *c = tw_suite_client_new(fb->endpoint);
    tw_station_req_t req = {.op = "add", .sid = "p-1", .handler = "ticker"};
    void *data = NULL;
    size_t len = 0;
    tw_msg_t m;
    s_request(fb, c, &req, "seq,op,sid,handler", &m, &data, &len);
    tw_msg_release(&m);
    msgpack_unpacked up;
    unpack(&up, data, len);
    assert_mp_str(get(&up.data, "state"), "pending");
    assert_mp_str(get(&up.data, "reason"), "no eligible worker");
    msgpack_unpacked_destroy(&up);
    free(data);
    tw_client_destroy(&c);
}

/* Every other op: its fields and nothing else; sequence numbers grow. */
static void
test_other_ops(void **state)
{
    fake_t *fb = *state;
    tw_client_t *c = tw_suite_client_new(fb->endpoint);
    static const struct {
        const char *op;
        const char *state; /* expected "state" in the reply */
    } ctl[] = {{"pause", "paused"},   {"continue", "running"},
               {"stop", "stopped"},   {"cancel", "cancelled"},
               {"remove", "removed"}};
    uint64_t last_seq = 0;
    for (size_t i = 0; i < sizeof ctl / sizeof ctl[0]; i++) {
        tw_station_req_t req = {.op = ctl[i].op, .sid = "gnss-1"};
        void *data = NULL;
        size_t len = 0;
        tw_msg_t m;
        s_request(fb, c, &req, "seq,op,sid", &m, &data, &len);
        assert_str_field(&m, TW_F_OP, ctl[i].op);
        assert_str_field(&m, TW_F_SID, "gnss-1");
        uint64_t seq = tw_msg_uint(&m, TW_F_SEQ, 0);
        assert_true(seq > last_seq);
        last_seq = seq;
        tw_msg_release(&m);
        msgpack_unpacked up;
        unpack(&up, data, len);
        assert_mp_str(get(&up.data, "station"), "gnss-1");
        assert_mp_str(get(&up.data, "state"), ctl[i].state);
        msgpack_unpacked_destroy(&up);
        free(data);
    }

    /* send: the payload is a BIN holding one msgpack value. */
    static const unsigned char payload[] = {0xa2, 'h', 'i'};
    tw_station_req_t send = {.op = "send",
                             .sid = "gnss-1",
                             .payload = payload,
                             .payload_len = sizeof payload};
    void *data = NULL;
    size_t len = 0;
    tw_msg_t m;
    s_request(fb, c, &send, "seq,op,sid,payload", &m, &data, &len);
    assert_bin_field(&m, TW_F_PAYLOAD, payload, sizeof payload);
    tw_msg_release(&m);
    msgpack_unpacked up;
    unpack(&up, data, len);
    assert_int_equal(get(&up.data, "seq")->via.u64, 7);
    assert_int_equal(get(&up.data, "queued")->type, MSGPACK_OBJECT_BOOLEAN);
    msgpack_unpacked_destroy(&up);
    free(data);

    /* list: an array of summaries; rebalance: {moved}. Neither has a sid. */
    tw_station_req_t list = {.op = "list"};
    s_request(fb, c, &list, "seq,op", &m, &data, &len);
    tw_msg_release(&m);
    unpack(&up, data, len);
    assert_int_equal(up.data.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(up.data.via.array.size, 2);
    assert_mp_str(get(&up.data.via.array.ptr[0], "station"), "gnss-1");
    assert_int_equal(get(&up.data.via.array.ptr[1], "worker")->type,
                     MSGPACK_OBJECT_NIL);
    msgpack_unpacked_destroy(&up);
    free(data);

    /* show: the detail, checkpoint as the value itself (S21). */
    tw_station_req_t show = {.op = "show", .sid = "gnss-1"};
    s_request(fb, c, &show, "seq,op,sid", &m, &data, &len);
    tw_msg_release(&m);
    unpack(&up, data, len);
    const msgpack_object *ck = get(&up.data, "checkpoint");
    assert_non_null(ck);
    assert_int_equal(ck->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(get(ck, "n")->via.u64, 5);
    msgpack_unpacked_destroy(&up);
    free(data);

    tw_station_req_t reb = {.op = "rebalance"};
    s_request(fb, c, &reb, "seq,op", &m, &data, &len);
    tw_msg_release(&m);
    unpack(&up, data, len);
    assert_int_equal(get(&up.data, "moved")->via.u64, 3);
    msgpack_unpacked_destroy(&up);
    free(data);

    /* The data may be ignored. */
    assert_int_equal(tw_client_station(c, &reb, WAIT_MS, NULL, NULL), 0);
    tw_client_destroy(&c);
}

/* ERROR replies give their code, and their message to last_error. */
static void
test_error_replies(void **state)
{
    fake_t *fb = *state;
    tw_client_t *c = tw_suite_client_new(fb->endpoint);
    void *data = (void *)1;
    size_t len = 1;

    tw_station_req_t dup = {.op = "add", .sid = "dup", .handler = "incr"};
    assert_int_equal(tw_client_station(c, &dup, WAIT_MS, &data, &len),
                     TW_EEXIST);
    assert_null(data);
    assert_int_equal(len, 0);
    assert_string_equal(tw_client_last_error(c), "station dup exists");

    /* F2 S26: an unknown handler is refused when the station is added. */
    tw_station_req_t nope = {.op = "add", .sid = "x", .handler = "nope"};
    assert_int_equal(tw_client_station(c, &nope, WAIT_MS, &data, &len),
                     TW_EHANDLER);
    assert_string_equal(tw_client_last_error(c),
                        "no worker offers handler nope");

    static const char *const ops[] = {"show", "pause", "continue", "stop",
                                      "cancel", "remove"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        tw_station_req_t r = {.op = ops[i], .sid = "nosuch"};
        assert_int_equal(tw_client_station(c, &r, WAIT_MS, &data, &len),
                         TW_ENOENT);
        assert_string_equal(tw_client_last_error(c),
                            "unknown station nosuch");
    }

    static const unsigned char one[] = {0x01};
    tw_station_req_t full = {.op = "send",
                             .sid = "full",
                             .payload = one,
                             .payload_len = 1};
    assert_int_equal(tw_client_station(c, &full, WAIT_MS, &data, &len),
                     TW_EFULL);
    assert_string_equal(tw_client_last_error(c), "n2s backlog full");

    tw_station_req_t bad = {.op = "frobnicate"};
    assert_int_equal(tw_client_station(c, &bad, WAIT_MS, &data, &len),
                     TW_EINVAL);
    assert_string_equal(tw_client_last_error(c), "unknown op");

    tw_station_req_t odd = {.op = "odd"};
    assert_int_equal(tw_client_station(c, &odd, WAIT_MS, &data, &len),
                     TW_EIO);
    assert_null(data);

    /* The client still works after errors. */
    tw_station_req_t list = {.op = "list"};
    assert_int_equal(tw_client_station(c, &list, WAIT_MS, &data, &len), 0);
    free(data);
    tw_client_destroy(&c);
}

/* No answer in time: TW_EUNREACH; the late answer is then ignored. */
static void
test_timeout(void **state)
{
    fake_t *fb = *state;
    tw_client_t *c = tw_suite_client_new(fb->endpoint);
    tw_station_req_t slow = {.op = "show", .sid = "slow"};
    void *data = NULL;
    size_t len = 0;
    uint64_t t0 = tw_now_ms();
    assert_int_equal(tw_client_station(c, &slow, 100, &data, &len),
                     TW_EUNREACH);
    /* It gave up at its own deadline: had it waited for the late answer,
     * it would have returned 0 with the answer. */
    uint64_t took = tw_now_ms() - t0;
    assert_true(took >= 95);
    assert_null(data);

    /* The next request waits behind the slow one and gets its own reply,
     * not the stale detail map. */
    tw_station_req_t reb = {.op = "rebalance"};
    assert_int_equal(tw_client_station(c, &reb, WAIT_MS, &data, &len), 0);
    msgpack_unpacked up;
    unpack(&up, data, len);
    assert_non_null(get(&up.data, "moved"));
    assert_null(get(&up.data, "checkpoint"));
    msgpack_unpacked_destroy(&up);
    free(data);
    tw_client_destroy(&c);
}

static void
test_unreachable(void **state)
{
    (void)state;
    char ep[64], hex[17];
    tw_random_hex(hex, 16);
    snprintf(ep, sizeof ep, "ipc:///tmp/tw-test-nobody-%s", hex);
    tw_client_t *c = tw_client_new(ep);
    assert_non_null(c);
    tw_station_req_t list = {.op = "list"};
    void *data = NULL;
    size_t len = 0;
    uint64_t t0 = tw_now_ms();
    assert_int_equal(tw_client_station(c, &list, 150, &data, &len),
                     TW_EUNREACH);
    assert_true(tw_now_ms() - t0 >= 145);
    assert_null(data);
    tw_client_destroy(&c);
}

/* Bad requests are refused before anything is sent. */
static void
test_invalid(void **state)
{
    fake_t *fb = *state;
    tw_client_t *c = tw_suite_client_new(fb->endpoint);
    assert_int_equal(tw_client_ping(c, WAIT_MS), 0);
    int before = fake_count(fb);
    void *data = NULL;
    size_t len = 0;
    char name[TW_PROTO_MAX_NAME + 2];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = '\0'; /* 129 bytes */
    static const unsigned char bad_mp[] = {0x92, 0x01}; /* array short */
    static const unsigned char two[] = {0x01, 0x02};    /* two values */
    static const unsigned char ok[] = {0x01};

    assert_int_equal(tw_client_station(c, NULL, WAIT_MS, &data, &len),
                     TW_EINVAL);
    tw_station_req_t r = {0};
    assert_int_equal(tw_client_station(c, &r, WAIT_MS, &data, &len),
                     TW_EINVAL);
    r.op = "";
    assert_int_equal(tw_client_station(c, &r, WAIT_MS, &data, &len),
                     TW_EINVAL);
    r.op = "an-operation-name-longer-than-32b";
    assert_int_equal(tw_client_station(c, &r, WAIT_MS, &data, &len),
                     TW_EINVAL);

    tw_station_req_t a = {.op = "add", .sid = "", .handler = "incr"};
    assert_int_equal(tw_client_station(c, &a, WAIT_MS, &data, &len),
                     TW_EINVAL);
    a.sid = name;
    assert_int_equal(tw_client_station(c, &a, WAIT_MS, &data, &len),
                     TW_EINVAL);
    a.sid = "s";
    a.handler = name;
    assert_int_equal(tw_client_station(c, &a, WAIT_MS, &data, &len),
                     TW_EINVAL);
    a.handler = "incr";
    a.next = "seventeen-bytes!!";
    assert_int_equal(tw_client_station(c, &a, WAIT_MS, &data, &len),
                     TW_EINVAL);
    a.next = NULL;
    a.code = name;
    assert_int_equal(tw_client_station(c, &a, WAIT_MS, &data, &len),
                     TW_EINVAL);
    a.code = NULL;
    a.args = bad_mp;
    a.args_len = sizeof bad_mp;
    assert_int_equal(tw_client_station(c, &a, WAIT_MS, &data, &len),
                     TW_EINVAL);
    a.args = two;
    a.args_len = sizeof two;
    assert_int_equal(tw_client_station(c, &a, WAIT_MS, &data, &len),
                     TW_EINVAL);
    a.args = ok;
    a.args_len = TW__CLIENT_MAX_ARGS + 1;
    assert_int_equal(tw_client_station(c, &a, WAIT_MS, &data, &len),
                     TW_E2BIG);
    a.args = NULL;
    a.args_len = 0;

    /* Tags: NULL with a count, an empty key, a long value, a repeated
     * key, too many. */
    a.ntags = 1;
    assert_int_equal(tw_client_station(c, &a, WAIT_MS, &data, &len),
                     TW_EINVAL);
    tw_station_tag_t tags[TW_PROTO_MAX_TAGS + 1];
    char keys[TW_PROTO_MAX_TAGS + 1][8];
    for (int i = 0; i <= TW_PROTO_MAX_TAGS; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        tags[i].key = keys[i];
        tags[i].value = "v";
    }
    a.tags = tags;
    a.ntags = TW_PROTO_MAX_TAGS + 1;
    assert_int_equal(tw_client_station(c, &a, WAIT_MS, &data, &len),
                     TW_EINVAL);
    tags[1].key = "";
    a.ntags = 2;
    assert_int_equal(tw_client_station(c, &a, WAIT_MS, &data, &len),
                     TW_EINVAL);
    tags[1].key = keys[0];
    assert_int_equal(tw_client_station(c, &a, WAIT_MS, &data, &len),
                     TW_EINVAL);
    tags[1].key = keys[1];
    tags[1].value = name;
    assert_int_equal(tw_client_station(c, &a, WAIT_MS, &data, &len),
                     TW_EINVAL);
    tags[1].value = NULL;
    assert_int_equal(tw_client_station(c, &a, WAIT_MS, &data, &len),
                     TW_EINVAL);
    tags[1].value = "v";
    a.tags = NULL;
    a.ntags = 0;

    tw_station_req_t s = {.op = "send",
                          .sid = "gnss-1",
                          .payload = bad_mp,
                          .payload_len = sizeof bad_mp};
    assert_int_equal(tw_client_station(c, &s, WAIT_MS, &data, &len),
                     TW_EINVAL);
    /* args and payload together must fit in one message. */
    s.payload = ok;
    s.payload_len = TW__CLIENT_MAX_ARGS / 2 + 1;
    s.args = ok;
    s.args_len = TW__CLIENT_MAX_ARGS / 2 + 1;
    assert_int_equal(tw_client_station(c, &s, WAIT_MS, &data, &len),
                     TW_E2BIG);

    /* data without len. */
    tw_station_req_t list = {.op = "list"};
    assert_int_equal(tw_client_station(c, &list, WAIT_MS, &data, NULL),
                     TW_EINVAL);
    assert_null(data);

    assert_int_equal(tw_client_ping(c, WAIT_MS), 0);
    assert_int_equal(fake_count(fb), before); /* nothing but the ping */

    /* At the limits, all is well. */
    name[TW_PROTO_MAX_NAME] = '\0';
    tags[1].value = name;
    tw_station_req_t edge = {.op = "add", .sid = name, .handler = name,
                             .code = name, .tags = tags, .ntags = 2};
    assert_int_equal(tw_client_station(c, &edge, WAIT_MS, NULL, NULL), 0);
    tw_client_destroy(&c);
}

/* A station request queued behind submitted tasks goes out after them. */
static void
test_after_submit(void **state)
{
    fake_t *fb = *state;
    tw_client_t *c = tw_suite_client_new(fb->endpoint);
    tw_task_spec_t spec = {.handler = "noop"};
    assert_int_equal(tw_client_submit(c, &spec, NULL), 0);
    int before = fake_count(fb);
    tw_station_req_t list = {.op = "list"};
    assert_int_equal(tw_client_station(c, &list, WAIT_MS, NULL, NULL), 0);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->nrec, before + 2);
    assert_int_equal(fb->rec[before].cmd, TW_CMD_SUBMIT);
    assert_int_equal(fb->rec[before + 1].cmd, TW_CMD_STATION);
    pthread_mutex_unlock(&fb->mu);
    tw_client_destroy(&c);
}

/* ------------------------------------------------------------------ */
/* The CLI against the fake                                           */

#ifdef TW_CLI_BIN
#define CLI_BIN TW_CLI_BIN
#else
#define CLI_BIN ""
#endif

typedef struct {
    pid_t pid;
    int out_fd, err_fd;
    int code; /* exit status, or -1 */
    char out[16384];
    char err[16384];
} run_t;

static int
cli_available(void)
{
    return CLI_BIN[0] && access(CLI_BIN, X_OK) == 0;
}

/* Start the CLI with `args` (NULL-terminated) after --broker EP. */
static void
cli_start(run_t *r, const char *broker, const char *status,
          const char *const *args)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = CLI_BIN;
    argv[n++] = "--broker";
    argv[n++] = broker;
    if (status) {
        argv[n++] = "--status";
        argv[n++] = status;
    }
    for (; *args; args++) {
        assert_true(n < 62);
        argv[n++] = *args;
    }
    argv[n] = NULL;
    int out[2], err[2];
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    memset(r, 0, sizeof *r);
    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(out[0]);
        close(out[1]);
        close(err[0]);
        close(err[1]);
        unsetenv("TASKWHEEL_BROKER");
        unsetenv("TASKWHEEL_STATUS");
        execv(CLI_BIN, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    r->out_fd = out[0];
    r->err_fd = err[0];
}

/* Collect the output and the exit status (killing it after 10 s). */
static void
cli_finish(run_t *r)
{
    size_t no = 0, ne = 0;
    int open_fds = 2;
    uint64_t deadline = tw_now_ms() + 10000;
    struct pollfd pf[2] = {{r->out_fd, POLLIN, 0}, {r->err_fd, POLLIN, 0}};
    while (open_fds > 0 && tw_now_ms() < deadline) {
        if (poll(pf, 2, 100) < 0 && errno != EINTR) {
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP))) {
                continue;
            }
            char *buf = i == 0 ? r->out : r->err;
            size_t *used = i == 0 ? &no : &ne;
            ssize_t got = read(pf[i].fd, buf + *used,
                               sizeof r->out - 1 - *used);
            if (got <= 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
            } else {
                *used += (size_t)got;
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        if (pf[i].fd >= 0) {
            close(pf[i].fd);
        }
    }
    r->out[no] = '\0';
    r->err[ne] = '\0';
    if (open_fds > 0) {
        kill(r->pid, SIGKILL);
    }
    int st = 0;
    waitpid(r->pid, &st, 0);
    r->code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
cli(run_t *r, const char *broker, const char *const *args)
{
    cli_start(r, broker, NULL, args);
    cli_finish(r);
}

#define CLI(r, fb, ...)                                                      \
    do {                                                                     \
        const char *const a_[] = {__VA_ARGS__, NULL};                        \
        cli((r), (fb)->endpoint, a_);                                        \
    } while (0)

static void
expect(const run_t *r, int code, const char *out)
{
    if (r->code != code || (out && strcmp(r->out, out) != 0)) {
        fail_msg("exit %d (want %d)\nstdout: [%s]\nwant:   [%s]\nstderr: %s",
                 r->code, code, r->out, out ? out : "(any)", r->err);
    }
}

#define SKIP_WITHOUT_CLI()                                                   \
    do {                                                                     \
        if (!cli_available()) {                                              \
            print_message("taskwheel CLI not built; skipped\n");             \
            skip();                                                          \
        }                                                                    \
    } while (0)

static void
test_cli_add(void **state)
{
    fake_t *fb = *state;
    SKIP_WITHOUT_CLI();
    run_t r;
    CLI(&r, fb, "station", "add", "gnss-1", "incr", "1", "--next", "result",
        "--interval", "0.25", "--timeout=1.5", "--code", "C7", "--tags",
        "site=a,,rack=", "--placement", "pinned", "--restart", "always");
    expect(&r, 0, "station gnss-1 assigned to worker 2 slot 0\n");
    tw_msg_t m;
    char keys[512];
    last_station(fb, &m);
    body_keys(&m, keys, sizeof keys);
    assert_string_equal(keys, "seq,op,sid,handler,args,next,interval,timeout,"
                              "stcode,tags,placement,restart");
    static const unsigned char one[] = {0x01};
    assert_bin_field(&m, TW_F_ARGS, one, 1);
    assert_str_field(&m, TW_F_NEXT, "result");
    assert_uint_field(&m, TW_F_INTERVAL, 250);
    assert_uint_field(&m, TW_F_TIMEOUT, 1500);
    assert_str_field(&m, TW_F_STCODE, "C7");
    assert_int_equal(m.f[TW_F_TAGS]->via.map.size, 2);
    assert_mp_str(get(m.f[TW_F_TAGS], "site"), "a");
    assert_mp_str(get(m.f[TW_F_TAGS], "rack"), "");
    assert_str_field(&m, TW_F_PLACEMENT, "pinned");
    assert_str_field(&m, TW_F_RESTART, "always");
    tw_msg_release(&m);

    /* A tiny positive interval never becomes "none". */
    CLI(&r, fb, "station", "add", "gnss-2", "incr", "--interval", "0.0001");
    expect(&r, 0, "station gnss-2 assigned to worker 2 slot 0\n");
    last_station(fb, &m);
    assert_uint_field(&m, TW_F_INTERVAL, 1);
    assert_null(m.f[TW_F_ARGS]);
    assert_null(m.f[TW_F_TIMEOUT]);
    tw_msg_release(&m);

    CLI(&r, fb, "--json", "station", "add", "gnss-1", "incr");
    expect(&r, 0, "{\"station\":\"gnss-1\",\"state\":\"assigned\","
                  "\"worker\":2,\"slot\":0}\n");

    CLI(&r, fb, "station", "add", "p-1", "incr", "{\"a\": [1, 2.5]}");
    expect(&r, 0, "station p-1 pending: no eligible worker\n");
    last_station(fb, &m);
    static const unsigned char args[] = {0x81, 0xa1, 'a', 0x92, 0x01, 0xcb,
                                         0x40, 0x04, 0,    0,    0,    0,
                                         0,    0};
    assert_bin_field(&m, TW_F_ARGS, args, sizeof args);
    tw_msg_release(&m);

    /* Operation failures: exit 1 with the broker's message. */
    CLI(&r, fb, "station", "add", "dup", "incr");
    expect(&r, 1, "");
    assert_non_null(strstr(r.err, "already exists"));
    assert_non_null(strstr(r.err, "station dup exists"));
    CLI(&r, fb, "station", "add", "h-1", "nope");
    expect(&r, 1, "");
    assert_non_null(strstr(r.err, "unknown handler"));
}

/* Usage errors exit 2 and send nothing. */
static void
test_cli_usage(void **state)
{
    fake_t *fb = *state;
    SKIP_WITHOUT_CLI();
    char longid[TW_PROTO_MAX_NAME + 2];
    memset(longid, 'i', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    const char *const bad[][12] = {
        {"station"},
        {"station", "frob"},
        {"station", "add", "gnss-1"},
        {"station", "add", "gnss-1", "incr", "{oops"},
        {"station", "add", "gnss-1", "incr", "1", "2"},
        {"station", "add", "gnss-1", "incr", "--next", "bogus"},
        {"station", "add", "gnss-1", "incr", "--next"},
        {"station", "add", "gnss-1", "incr", "--interval", "-1"},
        {"station", "add", "gnss-1", "incr", "--interval", "abc"},
        {"station", "add", "gnss-1", "incr", "--timeout", "1e12"},
        {"station", "add", "gnss-1", "incr", "--placement", "somewhere"},
        {"station", "add", "gnss-1", "incr", "--restart", "sometimes"},
        {"station", "add", "gnss-1", "incr", "--tags", "novalue"},
        {"station", "add", "gnss-1", "incr", "--tags", "a=1,a=2"},
        {"station", "add", "gnss-1", "incr", "--tags", "=1"},
        {"station", "add", "gnss-1", "incr", "--code", ""},
        {"station", "add", "gnss-1", "incr", "--frob"},
        {"station", "add", "", "incr"},
        {"station", "add", longid, "incr"},
        {"station", "show"},
        {"station", "show", "a", "b"},
        {"station", "pause", "--now", "a"},
        {"station", "list", "x"},
        {"station", "rebalance", "--all"},
        {"station", "send", "gnss-1"},
        {"station", "send", "gnss-1", "[1,"},
        {"station", "tail"},
        {"station", "tail", "gnss-1", "--count", "0"},
        {"station", "tail", "gnss-1", "--for", "x"},
    };
    int before = fake_count(fb);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run_t r;
        cli(&r, fb->endpoint, bad[i]);
        if (r.code != 2) {
            fail_msg("case %zu (%s %s ...): exit %d, stderr %s", i,
                     bad[i][1] ? bad[i][1] : "", bad[i][2] ? bad[i][2] : "",
                     r.code, r.err);
        }
        assert_string_equal(r.out, "");
        assert_true(strncmp(r.err, "taskwheel: ", 11) == 0);
    }
    assert_int_equal(fake_count(fb), before);
}

static void
test_cli_ops(void **state)
{
    fake_t *fb = *state;
    SKIP_WITHOUT_CLI();
    run_t r;
    static const struct {
        const char *op, *out;
    } ctl[] = {{"pause", "station gnss-1 paused\n"},
               {"continue", "station gnss-1 running\n"},
               {"stop", "station gnss-1 stopped\n"},
               {"cancel", "station gnss-1 cancelled\n"},
               {"remove", "station gnss-1 removed\n"}};
    for (size_t i = 0; i < sizeof ctl / sizeof ctl[0]; i++) {
        CLI(&r, fb, "station", ctl[i].op, "gnss-1");
        expect(&r, 0, ctl[i].out);
        tw_msg_t m;
        char keys[128];
        last_station(fb, &m);
        body_keys(&m, keys, sizeof keys);
        assert_string_equal(keys, "seq,op,sid");
        assert_str_field(&m, TW_F_OP, ctl[i].op);
        tw_msg_release(&m);
        CLI(&r, fb, "station", ctl[i].op, "nosuch");
        expect(&r, 1, "");
        assert_non_null(strstr(r.err, "unknown station nosuch"));
    }
    CLI(&r, fb, "--json", "station", "pause", "gnss-1");
    expect(&r, 0, "{\"station\":\"gnss-1\",\"state\":\"paused\"}\n");

    /* The broker may still report the state before the control. */
    CLI(&r, fb, "station", "pause", "lag");
    expect(&r, 0, "station lag assigned (pause requested)\n");

    /* An ID that looks like a flag, after "--". */
    CLI(&r, fb, "station", "stop", "--", "--odd");
    expect(&r, 0, "station --odd stopped\n");

    CLI(&r, fb, "station", "list");
    expect(&r, 0,
           "ID      HANDLER  STATE    WORKER  ITERATIONS  LAST ERROR\n"
           "gnss-1  incr     running  2       42          -\n"
           "p-1     incr     pending  -       0           boom?[2J\n");
    CLI(&r, fb, "--json", "station", "list");
    assert_int_equal(r.code, 0);
    json_error_t jerr;
    json_t *v = json_loads(r.out, 0, &jerr);
    assert_non_null(v);
    assert_int_equal(json_array_size(v), 2);
    assert_true(json_is_null(json_object_get(json_array_get(v, 1),
                                             "worker")));
    json_decref(v);

    CLI(&r, fb, "station", "show", "gnss-1");
    expect(&r, 0,
           "station: gnss-1\n"
           "handler: incr\n"
           "state: running\n"
           "worker: 2\n"
           "iterations: 42\n"
           "last_error: -\n"
           "checkpoint: {\"n\":5}\n"
           "tags: site=a\n"
           "zz_extra: true\n");
    CLI(&r, fb, "--json", "station", "show", "gnss-1");
    assert_int_equal(r.code, 0);
    v = json_loads(r.out, 0, &jerr);
    assert_non_null(v);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(v, "checkpoint"), "n")),
                     5);
    json_decref(v);
    CLI(&r, fb, "station", "show", "nosuch");
    expect(&r, 1, "");

    /* send: DATA-JSON becomes the msgpack payload. */
    CLI(&r, fb, "station", "send", "gnss-1", "{\"x\": 1}");
    expect(&r, 0, "station gnss-1: message 7 sent\n");
    tw_msg_t m;
    last_station(fb, &m);
    static const unsigned char x1[] = {0x81, 0xa1, 'x', 0x01};
    assert_bin_field(&m, TW_F_PAYLOAD, x1, sizeof x1);
    tw_msg_release(&m);
    CLI(&r, fb, "station", "send", "q-1", "\"line\"");
    expect(&r, 0, "station q-1: message 7 queued\n");
    CLI(&r, fb, "--json", "station", "send", "q-1", "null");
    expect(&r, 0, "{\"station\":\"q-1\",\"seq\":7,\"queued\":true}\n");
    CLI(&r, fb, "station", "send", "full", "1");
    expect(&r, 1, "");
    assert_non_null(strstr(r.err, "queue full"));

    CLI(&r, fb, "station", "rebalance");
    expect(&r, 0, "moved 3 stations\n");
    CLI(&r, fb, "--json", "station", "rebalance");
    expect(&r, 0, "{\"moved\":3}\n");
}

static void
test_cli_unreachable(void **state)
{
    (void)state;
    SKIP_WITHOUT_CLI();
    char ep[64], hex[17];
    tw_random_hex(hex, 16);
    snprintf(ep, sizeof ep, "ipc:///tmp/tw-test-nobody-%s", hex);
    static const char *const cmds[][7] = {
        {"--timeout-ms", "200", "station", "list"},
        {"--timeout-ms", "200", "station", "add", "a", "incr"},
        {"--timeout-ms", "200", "station", "send", "a", "1"},
        {"--timeout-ms", "200", "station", "tail", "a"},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        run_t r;
        cli(&r, ep, cmds[i]);
        expect(&r, 3, "");
        assert_non_null(strstr(r.err, "unreachable"));
    }
}

/* A fake status socket: XPUB on an ephemeral port. */
typedef struct {
    void *ctx, *xpub;
    char endpoint[256];
} pub_t;

static void
pub_open(pub_t *p)
{
    p->ctx = zmq_ctx_new();
    p->xpub = zmq_socket(p->ctx, ZMQ_XPUB);
    int linger = 0;
    zmq_setsockopt(p->xpub, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(p->xpub, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof p->endpoint;
    zmq_getsockopt(p->xpub, ZMQ_LAST_ENDPOINT, p->endpoint, &len);
}

static void
pub_close(pub_t *p)
{
    zmq_close(p->xpub);
    zmq_ctx_term(p->ctx);
}

/* Wait for the subscription to `topic` (XPUB shows it as \x01topic). */
static void
pub_wait_sub(pub_t *p, const char *topic)
{
    uint64_t deadline = tw_now_ms() + WAIT_MS;
    for (;;) {
        zmq_pollitem_t pi = {p->xpub, 0, ZMQ_POLLIN, 0};
        long left = (long)(deadline - tw_now_ms());
        assert_true(left > 0);
        if (zmq_poll(&pi, 1, left) <= 0) {
            continue;
        }
        char buf[256];
        int n = zmq_recv(p->xpub, buf, sizeof buf, 0);
        if (n == (int)strlen(topic) + 1 && buf[0] == 1 &&
            memcmp(buf + 1, topic, (size_t)n - 1) == 0) {
            return;
        }
    }
}

static void
pub_send(pub_t *p, const char *topic, tw_enc_t *e)
{
    zmq_send(p->xpub, topic, strlen(topic), ZMQ_SNDMORE);
    zmq_send(p->xpub, e->sb.data, e->sb.size, 0);
    tw_enc_clear(e);
}

/* s2n body {pseq, station, seq, data}; `data` is written by the caller
 * after this returns. */
static void
s2n_begin(tw_enc_t *e, const char *sid, uint64_t seq)
{
    tw_enc_map(e, 4);
    tw_enc_cstr(e, "pseq");
    tw_enc_uint(e, 100 + seq);
    tw_enc_cstr(e, "station");
    tw_enc_cstr(e, sid);
    tw_enc_cstr(e, "seq");
    tw_enc_uint(e, seq);
    tw_enc_cstr(e, "data");
}

/* Publish: a message of another station whose id extends ours, a body
 * without data, then three messages of ours. */
static void
publish_s2n(pub_t *p)
{
    tw_enc_t e;
    tw_enc_init(&e);
    s2n_begin(&e, "gnss-10", 1);
    tw_enc_cstr(&e, "not mine");
    pub_send(p, "s2n.gnss-10", &e);
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "station");
    tw_enc_cstr(&e, "gnss-1");
    pub_send(p, "s2n.gnss-1", &e);
    s2n_begin(&e, "gnss-1", 1);
    tw_enc_cstr(&e, "hello");
    pub_send(p, "s2n.gnss-1", &e);
    s2n_begin(&e, "gnss-1", 2);
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "it");
    tw_enc_uint(&e, 2);
    pub_send(p, "s2n.gnss-1", &e);
    s2n_begin(&e, "gnss-1", 3);
    static const unsigned char raw[] = {0xff, 0x00};
    tw_enc_bin(&e, raw, sizeof raw);
    pub_send(p, "s2n.gnss-1", &e);
    tw_enc_free(&e);
}

static void
test_cli_tail(void **state)
{
    fake_t *fb = *state;
    SKIP_WITHOUT_CLI();
    pub_t p;
    pub_open(&p);
    run_t r;

    const char *const plain[] = {"station", "tail", "gnss-1", "--count", "3",
                                 NULL};
    cli_start(&r, fb->endpoint, p.endpoint, plain);
    pub_wait_sub(&p, "s2n.gnss-1");
    publish_s2n(&p);
    cli_finish(&r);
    expect(&r, 0, "\"hello\"\n{\"it\":2}\n{\"$bin\":\"ff00\"}\n");

    const char *const js[] = {"--json", "station", "tail", "gnss-1",
                              "--count=2", NULL};
    cli_start(&r, fb->endpoint, p.endpoint, js);
    pub_wait_sub(&p, "s2n.gnss-1");
    publish_s2n(&p);
    cli_finish(&r);
    expect(&r, 0,
           "{\"station\":\"gnss-1\",\"seq\":1,\"data\":\"hello\"}\n"
           "{\"station\":\"gnss-1\",\"seq\":2,\"data\":{\"it\":2}}\n");

    /* --for ends a quiet tail with success. */
    const char *const quiet[] = {"station", "tail", "gnss-1", "--for", "0.2",
                                 NULL};
    uint64_t t0 = tw_now_ms();
    cli_start(&r, fb->endpoint, p.endpoint, quiet);
    cli_finish(&r);
    expect(&r, 0, "");
    assert_true(tw_now_ms() - t0 >= 190);

    /* An unknown station is an operation failure, not an endless wait,
     * and says so in its own words. */
    const char *const unknown[] = {"station", "tail", "nosuch", NULL};
    cli_start(&r, fb->endpoint, p.endpoint, unknown);
    cli_finish(&r);
    expect(&r, 1, "");
    assert_non_null(strstr(r.err, "there is no station 'nosuch'"));
    pub_close(&p);
}

/* `events` with a station prefix prints the station's events. */
static void
test_cli_events_station(void **state)
{
    fake_t *fb = *state;
    SKIP_WITHOUT_CLI();
    pub_t p;
    pub_open(&p);
    run_t r;
    const char *const args[] = {"events", "station.gnss-1.", "--count", "1",
                                NULL};
    cli_start(&r, fb->endpoint, p.endpoint, args);
    pub_wait_sub(&p, "station.gnss-1.");
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "pseq");
    tw_enc_uint(&e, 1);
    pub_send(&p, "worker.up", &e);
    tw_enc_map(&e, 4);
    tw_enc_cstr(&e, "pseq");
    tw_enc_uint(&e, 2);
    tw_enc_cstr(&e, "station");
    tw_enc_cstr(&e, "gnss-1");
    tw_enc_cstr(&e, "worker");
    tw_enc_uint(&e, 2);
    tw_enc_cstr(&e, "epoch");
    tw_enc_uint(&e, 1);
    pub_send(&p, "station.gnss-1.assigned", &e);
    tw_enc_free(&e);
    cli_finish(&r);
    expect(&r, 0,
           "{\"topic\":\"station.gnss-1.assigned\",\"body\":{\"pseq\":2,"
           "\"station\":\"gnss-1\",\"worker\":2,\"epoch\":1}}\n");
    pub_close(&p);
}

/* ------------------------------------------------------------------ */
/* JSON <-> msgpack for station payloads                              */

static void
check_to_msgpack(const char *json, const void *want, size_t wlen)
{
    void *mp = NULL;
    size_t len = 0;
    char err[256];
    assert_int_equal(tw_json_to_msgpack(json, &mp, &len, err, sizeof err), 0);
    assert_int_equal(len, wlen);
    assert_memory_equal(mp, want, wlen);
    /* What the client sends must be what the library accepts. */
    assert_true(tw_mp_one(mp, len, TW_MP_DEPTH_DECODE));
    free(mp);
}

static void
test_json_payloads(void **state)
{
    (void)state;
    /* n2s payloads as `station send` builds them. */
    static const unsigned char str[] = {0xa4, 'l', 'i', 'n', 'e'};
    check_to_msgpack("\"line\"", str, sizeof str);
    static const unsigned char argv[] = {0x81, 0xa4, 'a', 'r', 'g', 'v',
                                         0x92, 0xa3, 'c', 'a', 't', 0xa2,
                                         '-', 'u'};
    check_to_msgpack("{\"argv\": [\"cat\", \"-u\"]}", argv, sizeof argv);
    static const unsigned char bin[] = {0xc4, 0x02, 0xde, 0xad};
    check_to_msgpack("{\"$bin\": \"dead\"}", bin, sizeof bin);
    static const unsigned char neg[] = {0xd0, 0x80};
    check_to_msgpack("-128", neg, sizeof neg);
    static const unsigned char nil[] = {0xc0};
    check_to_msgpack("null", nil, sizeof nil);

    /* Malformed JSON is refused with a reason. */
    void *mp = NULL;
    size_t len = 0;
    char err[256] = "";
    assert_int_equal(tw_json_to_msgpack("{\"a\":", &mp, &len, err,
                                        sizeof err),
                     TW_EINVAL);
    assert_null(mp);
    assert_true(strlen(err) > 0);

    /* A station detail from the broker, as `station show --json` prints
     * it: nil worker, nested checkpoint, tags, a binary checkpoint part. */
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 5);
    tw_enc_cstr(&e, "station");
    tw_enc_cstr(&e, "s-1");
    tw_enc_cstr(&e, "worker");
    tw_enc_nil(&e);
    tw_enc_cstr(&e, "checkpoint");
    tw_enc_array(&e, 2);
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "stop");
    tw_enc_bool(&e, 0);
    static const unsigned char raw[] = {0x01, 0xfe};
    tw_enc_bin(&e, raw, sizeof raw);
    tw_enc_cstr(&e, "tags");
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "code");
    tw_enc_cstr(&e, "C7");
    tw_enc_cstr(&e, "iterations");
    tw_enc_uint(&e, UINT64_C(18446744073709551615));
    json_t *v = tw_json_from_msgpack(e.sb.data, e.sb.size);
    assert_non_null(v);
    char *text = tw_json_dumps(v);
    assert_string_equal(text,
                        "{\"station\":\"s-1\",\"worker\":null,\"checkpoint\":"
                        "[{\"stop\":false},{\"$bin\":\"01fe\"}],\"tags\":"
                        "{\"code\":\"C7\"},\"iterations\":"
                        "1.8446744073709552e+19}");
    free(text);
    json_decref(v);
    tw_enc_free(&e);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_minimal_pending, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_after_submit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_add, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_ops, setup, teardown),
        cmocka_unit_test(test_cli_unreachable),
        cmocka_unit_test_setup_teardown(test_cli_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_events_station, setup,
                                        teardown),
        cmocka_unit_test(test_json_payloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
