/*  tests/fuzz/make_corpus.c - writes the seed corpora of the fuzz targets
 *  of proto/: fuzz_proto_decode (the default) and fuzz_mpwalk (--mpwalk).
 *
 *  For the decoder, one file per seed, each a 4-byte header followed by a
 *  msgpack body, the layout the fuzz driver splits. The seeds are the
 *  rows of tests/unit/support/proto_msgs.h, which test_proto decodes too:
 *  realistic messages of every command as the processes send them, plus
 *  a few near-misses (wrong version, unknown command, truncated body,
 *  duplicate key, wrong type, a name that is not clean text) so the
 *  fuzzer starts next to each check. For
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
#include "tests/unit/support/proto_msgs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_dir;
static int s_count;

/* Write the message of row `m` (proto_msgs.h): header, then body. */
static void
s_emit(const tw_test_proto_msg_t *m)
{
    unsigned char hdr[TW_PROTO_HDRLEN];
    tw_enc_t e;
    tw_enc_init(&e);
    size_t n = tw_test_proto_msg_build(m, hdr, &e);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", s_dir, m->name);
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        perror(path);
        exit(1);
    }
    fwrite(hdr, 1, sizeof hdr, fp);
    fwrite(e.sb.data, 1, n, fp);
    fclose(fp);
    tw_enc_free(&e);
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
    for (size_t i = 0; i < tw_test_proto_nmsgs; i++) {
        s_emit(&tw_test_proto_msgs[i]);
    }
    printf("%d seeds written to %s\n", s_count, s_dir);
    return 0;
}
