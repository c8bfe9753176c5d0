/*  tests/install/client.c - a small libtaskwheel program built against an
 *  installed taskwheel only.
 *
 *  tests/install/check.sh compiles it with nothing but
 *  `pkg-config --cflags --libs taskwheel` from a temporary prefix, then
 *  runs it against the broker and worker installed there:
 *
 *      client ENDPOINT VERSION
 *
 *  It checks that the installed headers give it everything it names (the
 *  error codes and task states of taskwheel/errors.h, the version of
 *  taskwheel/version.h), that the library it runs with is the version it
 *  was compiled against, and then submits two tasks, packing their
 *  arguments with msgpack (which pkg-config brought along): `echo` and
 *  `example.sum` from the example plugin the script built and loaded into
 *  the worker. Prints one line per check; exits 0 when all pass.
 */
#include <taskwheel/client.h>

#include <msgpack.h>
#include <stdio.h>
#include <string.h>

static int s_bad;

static void
s_check(int ok, const char *what)
{
    printf("%s: %s\n", ok ? "ok" : "FAILED", what);
    s_bad += !ok;
}

/* The outcome of the last task, copied out of the callback. */
static struct {
    int done;
    int state;
    char result[256];
    size_t len;
} s_out;

static void
s_on_result(void *arg, const tw_result_t *r)
{
    (void)arg;
    s_out.done = 1;
    s_out.state = r->state;
    s_out.len = r->result_len < sizeof s_out.result ? r->result_len : 0;
    if (s_out.len) {
        memcpy(s_out.result, r->result, s_out.len);
    }
}

/* Run `handler` with the packed `args`; 0 when it ended ok. */
static int
s_run(tw_client_t *c, const char *handler, const msgpack_sbuffer *args)
{
    memset(&s_out, 0, sizeof s_out);
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = handler;
    spec.args = args->data;
    spec.args_len = args->size;
    int rc = tw_client_submit(c, &spec, NULL);
    if (rc == 0) {
        rc = tw_client_wait_all(c, 30000);
    }
    if (rc != 0) {
        printf("%s: %s\n", handler, tw_client_strerror(rc));
        return rc;
    }
    return s_out.done && s_out.state == TW_ST_OK ? 0 : TW_EFAILED;
}

int
main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: client ENDPOINT VERSION\n");
        return 2;
    }
    s_check(strcmp(tw_version(), TW_VERSION_STRING) == 0,
            "tw_version() is the version compiled against");
    s_check(strcmp(tw_version(), argv[2]) == 0,
            "tw_version() is the project's version");
    s_check(TW_VERSION_NUMBER == TW_VERSION_MAJOR * 10000 +
                                     TW_VERSION_MINOR * 100 +
                                     TW_VERSION_PATCH,
            "TW_VERSION_NUMBER");
    s_check(TW_EINVAL == -EINVAL && TW_EFULL == -4005,
            "error codes from taskwheel/errors.h");
    s_check(strcmp(tw_client_strerror(TW_EFULL), "queue full") == 0,
            "tw_client_strerror(TW_EFULL)");
    s_check(TW_ST_OK == 0 && TW_ST_UNKNOWN == 7,
            "task states from taskwheel/errors.h");

    tw_client_t *c = tw_client_new(argv[1]);
    if (!c) {
        s_check(0, "tw_client_new");
        return 1;
    }
    tw_client_on_result(c, s_on_result, NULL);
    s_check(tw_client_ping(c, 30000) == 0, "the installed broker answers");

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_str_with_body(&pk, "installed", 9);
    s_check(s_run(c, "echo", &sb) == 0 && s_out.len == sb.size &&
                memcmp(s_out.result, sb.data, sb.size) == 0,
            "echo returns its argument");

    msgpack_sbuffer_clear(&sb);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_int(&pk, 2);
    msgpack_pack_int(&pk, 39);
    int rc = s_run(c, "example.sum", &sb);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int is42 = rc == 0 &&
               msgpack_unpack_next(&up, s_out.result, s_out.len, NULL) ==
                   MSGPACK_UNPACK_SUCCESS &&
               up.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
               up.data.via.u64 == 42;
    msgpack_unpacked_destroy(&up);
    s_check(is42, "example.sum from the plugin built against the tree");

    msgpack_sbuffer_destroy(&sb);
    tw_client_destroy(&c);
    return s_bad ? 1 : 0;
}
