/*  tests/unit/support/proto_msgs.h - realistic messages of every command,
 *  shared by the codec's tests and the fuzz corpus generator.
 *
 *  Each row builds one message body as the processes send it (HELLO as a
 *  worker sends it, SUBMIT with every optional item field, ...) or a
 *  near-miss next to one of the decoder's checks (wrong version, unknown
 *  command, a body cut short, a duplicate key, a wrong type, a missing
 *  item field), and says what tw_msg_decode() must return for it.
 *  test_proto decodes every row and checks that answer;
 *  tests/fuzz/make_corpus.c writes every row as a seed of
 *  fuzz_proto_decode, so the seeds are messages the tests prove decode
 *  (or fail) as intended. Deterministic: the same bytes on every run.
 */
#ifndef TW_TEST_PROTO_MSGS_H
#define TW_TEST_PROTO_MSGS_H

#include <stddef.h>

#include "proto/proto.h"

typedef struct {
    const char *name;           /* the seed's file name */
    tw_cmd_t cmd;               /* the header's command */
    int version;                /* the header's version byte */
    size_t cut;                 /* bytes dropped from the end of the body */
    void (*build)(tw_enc_t *e); /* encodes the body into `e` */
    int want;                   /* what tw_msg_decode() returns */
} tw_test_proto_msg_t;

/* The rows; tw_test_proto_nmsgs of them. */
extern const tw_test_proto_msg_t tw_test_proto_msgs[];
extern const size_t tw_test_proto_nmsgs;

/* Build row `m`'s whole frame: the header into hdr and the body (cut as
 * the row says) into e, which the caller initialised and frees. Returns
 * the body's length. */
size_t tw_test_proto_msg_build(const tw_test_proto_msg_t *m,
                               unsigned char hdr[TW_PROTO_HDRLEN],
                               tw_enc_t *e);

#endif /* TW_TEST_PROTO_MSGS_H */
