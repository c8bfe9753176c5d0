/*  tests/fuzz/make_corpus.c - writes the seed corpora of the fuzz targets
 *  of proto/: fuzz_proto_decode (the default) and fuzz_mpwalk (--mpwalk).
 *
 *  For the decoder, one file per seed, each a 4-byte header followed by a
 *  msgpack body, the layout the fuzz driver splits. The seeds are
 *  realistic messages of every command as the processes send them
 *  (CONTEXT wire semantics), plus a few near-misses (wrong version,
 *  unknown command, truncated body, duplicate key, wrong type, a name
 *  that is not clean text) so the fuzzer starts next to each check. For
 *  the walker, one msgpack value per file: every type in every encoding,
 *  the payloads the worker reads in place (a station's result, a program's
 *  frames), nesting at the depth limit and one past it, and a container
 *  announcing more than the input holds. The output is deterministic; the
 *  committed tests/fuzz/corpus/proto/ and tests/fuzz/corpus/mpwalk/ were
 *  made with:
 *
 *      tw_make_corpus tests/fuzz/corpus/proto
 *      tw_make_corpus --mpwalk tests/fuzz/corpus/mpwalk
 */
#include "proto/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_dir;
static int s_count;

/* Write header + the body encoded in `e` (which is emptied). `cut` > 0
 * drops that many bytes from the end of the body. */
static void
s_emit(const char *name, tw_cmd_t cmd, int version, tw_enc_t *e, size_t cut)
{
    unsigned char hdr[TW_PROTO_HDRLEN];
    tw_proto_header_make(cmd, hdr);
    hdr[2] = (unsigned char)version;
    if (e->sb.size == 0) {
        tw_enc_map(e, 0);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        perror(path);
        exit(1);
    }
    size_t n = e->sb.size > cut ? e->sb.size - cut : 0;
    fwrite(hdr, 1, sizeof hdr, fp);
    fwrite(e->sb.data, 1, n, fp);
    fclose(fp);
    tw_enc_free(e);
    s_count++;
}

/* Write `n` raw bytes as seed `name`. */
static void
s_raw(const char *name, const void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        perror(path);
        exit(1);
    }
    fwrite(p, 1, n, fp);
    fclose(fp);
    s_count++;
}

/* Write the value encoded in `e` as seed `name` and empty `e`. */
static void
s_value(const char *name, tw_enc_t *e)
{
    s_raw(name, e->sb.data, e->sb.size);
    tw_enc_clear(e);
}

/* The walker's seeds (proto/mpwalk.h). */
static void
s_mpwalk(void)
{
    tw_enc_t e;
    tw_enc_init(&e);
    msgpack_packer *pk = &e.pk;
    static char big[70000];
    memset(big, 'q', sizeof big);

    /* Every type, the packer choosing each encoding by size. */
    tw_enc_array(&e, 27);
    tw_enc_nil(&e);
    tw_enc_bool(&e, 1);
    tw_enc_bool(&e, 0);
    static const uint64_t uints[] = {5, 200, 60000, 70000, 1ULL << 40};
    static const int64_t ints[] = {-5, -100, -1000, -100000, -(1LL << 40)};
    for (int i = 0; i < 5; i++) {
        tw_enc_uint(&e, uints[i]);
        tw_enc_int(&e, ints[i]);
    }
    msgpack_pack_float(pk, 1.5f);
    msgpack_pack_double(pk, -0.0);
    static const size_t sizes[] = {0, 31, 255, 256};
    for (int i = 0; i < 4; i++) {
        tw_enc_str(&e, big, sizes[i]);
    }
    tw_enc_bin(&e, big, 3);
    tw_enc_bin(&e, big, 300);
    static const size_t exts[] = {1, 2, 4, 8, 16, 3};
    for (int i = 0; i < 6; i++) {
        msgpack_pack_ext(pk, exts[i], 7);
        msgpack_pack_ext_body(pk, big, exts[i]);
    }
    s_value("every-type", &e);

    /* Containers in every encoding. */
    tw_enc_map(&e, 3);
    tw_enc_cstr(&e, "a16");
    tw_enc_array(&e, 16);
    for (int i = 0; i < 16; i++) {
        tw_enc_uint(&e, (uint64_t)i);
    }
    tw_enc_cstr(&e, "m16");
    tw_enc_map(&e, 16);
    for (int i = 0; i < 16; i++) {
        tw_enc_int(&e, -i);
        tw_enc_nil(&e);
    }
    tw_enc_uint(&e, 1); /* a key that is not a str */
    size_t off = tw_enc_array_begin(&e);
    tw_enc_array_end(&e, off, 0);
    s_value("containers", &e);

    tw_enc_str(&e, big, 65536); /* str 32 */
    s_value("str32", &e);

    /* What the taskloop reads in a station's result (S2, S8, S19). */
    tw_enc_array(&e, 2);
    tw_enc_array(&e, 1);
    tw_enc_uint(&e, 1);
    tw_enc_map(&e, 2);
    tw_enc_cstr(&e, "stop");
    tw_enc_bool(&e, 1);
    tw_enc_cstr(&e, "n");
    msgpack_pack_double(pk, 0.0);
    s_value("station-stop", &e);
    tw_enc_map(&e, 2);
    tw_enc_cstr(&e, "exception");
    tw_enc_cstr(&e, "boom");
    tw_enc_cstr(&e, "stop");
    tw_enc_uint(&e, 0);
    s_value("station-exception", &e);

    /* A proc child's hello frame body (PROTOCOL.md 15). */
    tw_enc_map(&e, 4);
    tw_enc_cstr(&e, "ev");
    tw_enc_cstr(&e, "hello");
    tw_enc_cstr(&e, "v");
    tw_enc_uint(&e, 1);
    tw_enc_cstr(&e, "handlers");
    tw_enc_array(&e, 2);
    tw_enc_cstr(&e, "caf\xc3\xa9");
    tw_enc_cstr(&e, "bad\nname");
    tw_enc_cstr(&e, "flags");
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "caf\xc3\xa9");
    tw_enc_array(&e, 1);
    tw_enc_cstr(&e, "n2s");
    s_value("frame-hello", &e);

    /* Nesting: 32 open containers decode, 33 do not. */
    unsigned char deep[40];
    memset(deep, 0x91, sizeof deep);
    deep[32] = 0xc0;
    s_raw("deep-32", deep, 33);
    deep[32] = 0x90;
    s_raw("deep-33", deep, 33);

    /* Near-misses: announcing more than is left, the unused byte, cut. */
    static const unsigned char huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0};
    s_raw("array32-huge", huge, sizeof huge);
    static const unsigned char c1[] = {0x92, 0x01, 0xc1};
    s_raw("reserved-byte", c1, sizeof c1);
    static const unsigned char cut[] = {0x82, 0xa4, 's', 't', 'o', 'p', 0xcd,
                                        0x01};
    s_raw("cut-short", cut, sizeof cut);
    tw_enc_free(&e);
}

/* A payload: one msgpack value, packed into a BIN field. */
static void
s_payload(tw_enc_t *e, uint64_t v)
{
    unsigned char p[9] = {0xcf};
    for (int i = 0; i < 8; i++) {
        p[1 + i] = (unsigned char)(v >> (56 - 8 * i));
    }
    tw_enc_bin(e, p, sizeof p);
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--mpwalk") == 0) {
        s_dir = argv[2];
        s_mpwalk();
        printf("%d seeds written to %s\n", s_count, s_dir);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s [--mpwalk] OUTPUT_DIR\n", argv[0]);
        return 2;
    }
    s_dir = argv[1];
    tw_enc_t e;
    tw_enc_init(&e);

    /* HELLO, as a worker sends it. */
    tw_enc_map(&e, 7);
    tw_enc_key(&e, TW_F_NAME);
    tw_enc_cstr(&e, "w-host1-0a1b2c3d");
    tw_enc_key(&e, TW_F_HOST);
    tw_enc_cstr(&e, "host1");
    tw_enc_key(&e, TW_F_PID);
    tw_enc_uint(&e, 4242);
    tw_enc_key(&e, TW_F_SLOTS);
    tw_enc_uint(&e, 8);
    tw_enc_key(&e, TW_F_HANDLERS);
    tw_enc_array(&e, 4);
    tw_enc_cstr(&e, "echo");
    tw_enc_cstr(&e, "sleep");
    tw_enc_cstr(&e, "noop");
    tw_enc_cstr(&e, "fail");
    tw_enc_key(&e, TW_F_TAGS);
    tw_enc_map(&e, 2);
    tw_enc_cstr(&e, "zone");
    tw_enc_cstr(&e, "a");
    tw_enc_cstr(&e, "gpu");
    tw_enc_cstr(&e, "no");
    tw_enc_key(&e, TW_F_VER);
    tw_enc_cstr(&e, "0.1.0");
    s_emit("hello", TW_CMD_HELLO, 1, &e, 0);

    /* WELCOME. */
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_WID);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_HB);
    tw_enc_uint(&e, 1000);
    s_emit("welcome", TW_CMD_WELCOME, 1, &e, 0);

    /* READY. */
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_CREDIT);
    tw_enc_uint(&e, 8);
    s_emit("ready", TW_CMD_READY, 1, &e, 0);

    /* TASKS with two items, one with a timeout and an attempt. */
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 2);
    tw_enc_map(&e, 3);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 17);
    tw_enc_ikey(&e, TW_I_H);
    tw_enc_cstr(&e, "echo");
    tw_enc_ikey(&e, TW_I_A);
    s_payload(&e, 119);
    tw_enc_map(&e, 5);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 18);
    tw_enc_ikey(&e, TW_I_H);
    tw_enc_cstr(&e, "sleep");
    tw_enc_ikey(&e, TW_I_A);
    s_payload(&e, 5);
    tw_enc_ikey(&e, TW_I_TO);
    tw_enc_uint(&e, 30000);
    tw_enc_ikey(&e, TW_I_AT);
    tw_enc_uint(&e, 2);
    s_emit("tasks", TW_CMD_TASKS, 1, &e, 0);

    /* DONE: one ok with a result, one error, credit back. */
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 2);
    tw_enc_map(&e, 3);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 17);
    tw_enc_ikey(&e, TW_I_ST);
    tw_enc_uint(&e, 0);
    tw_enc_ikey(&e, TW_I_R);
    s_payload(&e, 119);
    tw_enc_map(&e, 3);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 18);
    tw_enc_ikey(&e, TW_I_ST);
    tw_enc_uint(&e, 1);
    tw_enc_ikey(&e, TW_I_ERR);
    tw_enc_cstr(&e, "handler raised: division by zero");
    tw_enc_key(&e, TW_F_CREDIT);
    tw_enc_uint(&e, 2);
    s_emit("done", TW_CMD_DONE, 1, &e, 0);

    /* CANCEL (client form, with seq). */
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, 9);
    tw_enc_key(&e, TW_F_IDS);
    tw_enc_array(&e, 3);
    tw_enc_uint(&e, 17);
    tw_enc_uint(&e, 18);
    tw_enc_uint(&e, 1ULL << 40);
    s_emit("cancel", TW_CMD_CANCEL, 1, &e, 0);

    s_emit("heartbeat", TW_CMD_HEARTBEAT, 1, &e, 0);
    s_emit("bye", TW_CMD_BYE, 1, &e, 0);

    /* ERROR, as the broker answers an unknown worker. */
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_CODE);
    tw_enc_int(&e, -4009);
    tw_enc_key(&e, TW_F_MSG);
    tw_enc_cstr(&e, "unknown worker: send HELLO first");
    s_emit("error", TW_CMD_ERROR, 1, &e, 0);

    /* SUBMIT with every optional item field. */
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 2);
    tw_enc_map(&e, 2);
    tw_enc_ikey(&e, TW_I_SEQ);
    tw_enc_uint(&e, 1);
    tw_enc_ikey(&e, TW_I_H);
    tw_enc_cstr(&e, "noop");
    tw_enc_map(&e, 6);
    tw_enc_ikey(&e, TW_I_SEQ);
    tw_enc_uint(&e, 2);
    tw_enc_ikey(&e, TW_I_H);
    tw_enc_cstr(&e, "echo");
    tw_enc_ikey(&e, TW_I_A);
    s_payload(&e, 7);
    tw_enc_ikey(&e, TW_I_TO);
    tw_enc_uint(&e, 1000);
    tw_enc_ikey(&e, TW_I_PRI);
    tw_enc_int(&e, -3);
    tw_enc_ikey(&e, TW_I_RE);
    tw_enc_uint(&e, 2);
    s_emit("submit", TW_CMD_SUBMIT, 1, &e, 0);

    /* ACK: one accepted, one refused. */
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 2);
    tw_enc_map(&e, 2);
    tw_enc_ikey(&e, TW_I_SEQ);
    tw_enc_uint(&e, 1);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 17);
    tw_enc_map(&e, 3);
    tw_enc_ikey(&e, TW_I_SEQ);
    tw_enc_uint(&e, 2);
    tw_enc_ikey(&e, TW_I_CODE);
    tw_enc_int(&e, -4004);
    tw_enc_ikey(&e, TW_I_ERR);
    tw_enc_cstr(&e, "unknown handler 'nope'");
    s_emit("ack", TW_CMD_ACK, 1, &e, 0);

    /* RESULT pushed to a client. */
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 1);
    tw_enc_map(&e, 6);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 17);
    tw_enc_ikey(&e, TW_I_SEQ);
    tw_enc_uint(&e, 1);
    tw_enc_ikey(&e, TW_I_ST);
    tw_enc_uint(&e, 0);
    tw_enc_ikey(&e, TW_I_R);
    s_payload(&e, 119);
    tw_enc_ikey(&e, TW_I_W);
    tw_enc_uint(&e, 1);
    tw_enc_ikey(&e, TW_I_AT);
    tw_enc_uint(&e, 1);
    s_emit("result-push", TW_CMD_RESULT, 1, &e, 0);

    /* RESULT as a query. */
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, 4);
    tw_enc_key(&e, TW_F_IDS);
    tw_enc_array(&e, 1);
    tw_enc_uint(&e, 17);
    s_emit("result-query", TW_CMD_RESULT, 1, &e, 0);

    /* QUERY and a REPLY with nested data. */
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, 5);
    tw_enc_key(&e, TW_F_WHAT);
    tw_enc_cstr(&e, "status");
    s_emit("query", TW_CMD_QUERY, 1, &e, 0);

    /* SCHEDULE add with its task template (PROTOCOL.md 18.11). */
    tw_enc_map(&e, 8);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, 6);
    tw_enc_key(&e, TW_F_OP);
    tw_enc_cstr(&e, "add");
    tw_enc_key(&e, TW_F_NAME);
    tw_enc_cstr(&e, "nightly-cleanup");
    tw_enc_key(&e, TW_F_CRON);
    tw_enc_cstr(&e, "0 3 * * mon-fri");
    tw_enc_key(&e, TW_F_TZ);
    tw_enc_cstr(&e, "Europe/Berlin");
    tw_enc_key(&e, TW_F_OVERLAP);
    tw_enc_cstr(&e, "queue");
    tw_enc_key(&e, TW_F_CATCHUP);
    tw_enc_cstr(&e, "last");
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 1);
    tw_enc_map(&e, 3);
    tw_enc_ikey(&e, TW_I_H);
    tw_enc_cstr(&e, "cleanup");
    tw_enc_ikey(&e, TW_I_A);
    tw_enc_bin(&e, "\x91\xa4/tmp", 6);
    tw_enc_ikey(&e, TW_I_TO);
    tw_enc_uint(&e, 600000);
    s_emit("schedule", TW_CMD_SCHEDULE, 1, &e, 0);

    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, 5);
    tw_enc_key(&e, TW_F_DATA);
    tw_enc_map(&e, 3);
    tw_enc_cstr(&e, "cancelled");
    tw_enc_array(&e, 1);
    tw_enc_uint(&e, 17);
    tw_enc_cstr(&e, "ended");
    tw_enc_array(&e, 0);
    tw_enc_cstr(&e, "stats");
    tw_enc_map(&e, 2);
    tw_enc_cstr(&e, "submitted");
    tw_enc_uint(&e, 10000);
    tw_enc_cstr(&e, "ratio");
    msgpack_pack_double(&e.pk, 0.5);
    s_emit("reply", TW_CMD_REPLY, 1, &e, 0);

    /* Near-misses. */
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_CREDIT);
    tw_enc_uint(&e, 8);
    s_emit("bad-version", TW_CMD_READY, 2, &e, 0);

    tw_enc_map(&e, 0);
    s_emit("bad-command", (tw_cmd_t)200, 1, &e, 0);

    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_MSG);
    tw_enc_cstr(&e, "this body is cut short");
    s_emit("truncated", TW_CMD_ERROR, 1, &e, 5);

    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_CREDIT);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_CREDIT);
    tw_enc_uint(&e, 2);
    s_emit("duplicate-key", TW_CMD_READY, 1, &e, 0);

    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_CREDIT);
    tw_enc_cstr(&e, "8");
    s_emit("wrong-type", TW_CMD_READY, 1, &e, 0);

    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 1);
    tw_enc_map(&e, 1);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 1);
    s_emit("missing-item-field", TW_CMD_DONE, 1, &e, 0);

    /* A worker name that is not clean text: decodes, but fails the text
     * check the broker makes on a HELLO (broker/gate.h). */
    tw_enc_map(&e, 3);
    tw_enc_key(&e, TW_F_NAME);
    tw_enc_cstr(&e, "evil\x1b[2Jworker");
    tw_enc_key(&e, TW_F_SLOTS);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_HANDLERS);
    tw_enc_array(&e, 1);
    tw_enc_cstr(&e, "echo");
    s_emit("unclean-name", TW_CMD_HELLO, 1, &e, 0);

    /* CHAN up, as a worker sends a task's channel items (open, msg, req
     * with its correlation id), and down, a client's resp and closereq. */
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 3);
    tw_enc_map(&e, 2);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 7);
    tw_enc_ikey(&e, TW_I_EV);
    tw_enc_cstr(&e, "open");
    tw_enc_map(&e, 3);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 7);
    tw_enc_ikey(&e, TW_I_EV);
    tw_enc_cstr(&e, "msg");
    tw_enc_ikey(&e, TW_I_D);
    s_payload(&e, 1);
    tw_enc_map(&e, 4);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 7);
    tw_enc_ikey(&e, TW_I_EV);
    tw_enc_cstr(&e, "req");
    tw_enc_ikey(&e, TW_I_CR);
    tw_enc_uint(&e, 1);
    tw_enc_ikey(&e, TW_I_D);
    s_payload(&e, 2);
    s_emit("chan-up", TW_CMD_CHAN, 1, &e, 0);

    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 2);
    tw_enc_map(&e, 4);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 7);
    tw_enc_ikey(&e, TW_I_EV);
    tw_enc_cstr(&e, "resp");
    tw_enc_ikey(&e, TW_I_CR);
    tw_enc_uint(&e, 1);
    tw_enc_ikey(&e, TW_I_D);
    s_payload(&e, 3);
    tw_enc_map(&e, 2);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 8);
    tw_enc_ikey(&e, TW_I_EV);
    tw_enc_cstr(&e, "closereq");
    s_emit("chan-down", TW_CMD_CHAN, 1, &e, 0);

    tw_enc_free(&e);
    printf("%d seeds written to %s\n", s_count, s_dir);
    return 0;
}
